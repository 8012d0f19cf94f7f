// A buffer pool: tensors take their storage from here and give it back when disposed, so a training
// loop that repeats the same shapes every step allocates nothing after its first step.
import type { FloatArray } from "../backend/backend.js";

export type DType = "float32" | "float64";

/** Buffers kept for reuse are capped, so inference with ever-changing shapes cannot hoard memory. */
const MAX_POOLED_BYTES = 1 << 30;

class BufferPool {
  private readonly free = {
    float32: new Map<number, Float32Array[]>(),
    float64: new Map<number, Float64Array[]>(),
  };
  private pooledBytes = 0;
  /** Bytes handed out and not yet returned. */
  liveBytes = 0;
  peakLiveBytes = 0;
  allocations = 0;
  reuses = 0;

  alloc(dtype: DType, n: number): FloatArray {
    const list = this.free[dtype].get(n);
    const bytes = n * (dtype === "float32" ? 4 : 8);
    this.liveBytes += bytes;
    if (this.liveBytes > this.peakLiveBytes) this.peakLiveBytes = this.liveBytes;
    const reused = list?.pop();
    if (reused) {
      this.pooledBytes -= bytes;
      this.reuses++;
      return reused;
    }
    this.allocations++;
    return dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
  }

  release(buf: FloatArray): void {
    const bytes = buf.byteLength;
    this.liveBytes -= bytes;
    if (buf.length === 0 || this.pooledBytes + bytes > MAX_POOLED_BYTES) return;
    const dtype: DType = buf instanceof Float32Array ? "float32" : "float64";
    const map = this.free[dtype] as Map<number, FloatArray[]>;
    let list = map.get(buf.length);
    if (!list) map.set(buf.length, (list = []));
    list.push(buf);
    this.pooledBytes += bytes;
  }

  /** Drops every pooled buffer (e.g. between benchmark configs). */
  clear(): void {
    this.free.float32.clear();
    this.free.float64.clear();
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
