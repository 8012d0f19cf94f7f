// A buffer pool: tensors take their storage from here and give it back when disposed, so a training
// loop that repeats the same shapes every step allocates nothing after its first step.
import type { FloatArray } from "../backend/backend.js";

export type DType = "float32" | "float64";

/** Buffers kept for reuse are capped, so inference with ever-changing shapes cannot hoard memory. */
const MAX_POOLED_BYTES = 1 << 30;

const BYTES = { float32: 4, float64: 8, bf16: 2 } as const;
const ARRAYS = { float32: Float32Array, float64: Float64Array, bf16: Uint16Array } as const;
type Buffer<K extends keyof typeof ARRAYS> = InstanceType<(typeof ARRAYS)[K]>;

class BufferPool {
  private readonly free = {
    float32: new Map<number, Float32Array[]>(),
    float64: new Map<number, Float64Array[]>(),
    // bf16 copies of released activations (releaseStorage), as their raw 16-bit patterns
    bf16: new Map<number, Uint16Array[]>(),
  };
  private pooledBytes = 0;
  /** Bytes handed out and not yet returned. */
  liveBytes = 0;
  peakLiveBytes = 0;
  allocations = 0;
  reuses = 0;

  alloc(dtype: DType, n: number): FloatArray {
    return this.take(dtype, n);
  }

  allocBf16(n: number): Uint16Array {
    return this.take("bf16", n);
  }

  private take<K extends keyof BufferPool["free"]>(kind: K, n: number): Buffer<K> {
    const bytes = n * BYTES[kind];
    this.liveBytes += bytes;
    if (this.liveBytes > this.peakLiveBytes) this.peakLiveBytes = this.liveBytes;
    const reused = this.free[kind].get(n)?.pop() as Buffer<K> | undefined;
    if (reused) {
      this.pooledBytes -= bytes;
      this.reuses++;
      return reused;
    }
    this.allocations++;
    return new ARRAYS[kind](n) as Buffer<K>;
  }

  release(buf: FloatArray | Uint16Array): void {
    const bytes = buf.byteLength;
    this.liveBytes -= bytes;
    if (buf.length === 0 || this.pooledBytes + bytes > MAX_POOLED_BYTES) return;
    const kind = buf instanceof Float32Array ? "float32" : buf instanceof Float64Array ? "float64" : "bf16";
    const map = this.free[kind] as Map<number, (FloatArray | Uint16Array)[]>;
    let list = map.get(buf.length);
    if (!list) map.set(buf.length, (list = []));
    list.push(buf);
    this.pooledBytes += bytes;
  }

  /** Drops every pooled buffer (e.g. between benchmark configs). */
  clear(): void {
    for (const map of Object.values(this.free)) map.clear();
    this.pooledBytes = 0;
  }

  stats() {
    return {
      liveBytes: this.liveBytes,
      peakLiveBytes: this.peakLiveBytes,
      pooledBytes: this.pooledBytes,
      allocations: this.allocations,
      reuses: this.reuses,
    };
  }

  resetPeak(): void {
    this.peakLiveBytes = this.liveBytes;
  }
}

export const pool = new BufferPool();
