// The teacher's top-k on disk. With `teacherCache: "topk"` a distillation run repeats its data every
// epochBatches micro-batches; the first epoch runs the teacher and writes, per micro-batch, the ids and
// log-probabilities (temperature 1, float32, most likely first) of each position's k most likely tokens;
// later epochs read them back instead of running the teacher. The loss renormalises the k at the run's
// temperature (see TeacherTarget in src/tensor/divergence.ts). A micro-batch uses the numbers the file
// holds whether it computed them or read them, so a resumed run trains exactly as an uninterrupted one.
//
// Layout: <runDir>/teacher-topk/meta.json (what the files were made for) and batch-<j>.bin per data batch:
// "ATK1", rows u32, k u32, then ids int32[rows·k] and log-probs float32[rows·k], little-endian.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { FloatArray } from "../backend/backend.js";
import { writeFileAtomic } from "../io/safetensors.js";

export interface TopK {
  ids: Int32Array;
  logProbs: Float32Array;
  k: number;
}

const MAGIC = "ATK1";
const HEADER = 12;

/**
 * Each row's k most likely tokens among the first `vocab` of `stride` logits, with their log-probabilities
 * under softmax over those vocab logits; ties go to the lower id.
 */
export function topKLogProbs(
  logits: FloatArray,
  rows: number,
  stride: number,
  vocab: number,
  k: number,
): TopK {
  if (!(Number.isInteger(k) && k >= 1 && k <= vocab))
    throw new Error(`top-k: k must be in [1, ${vocab}], got ${k}`);
  const ids = new Int32Array(rows * k);
  const logProbs = new Float32Array(rows * k);
  const bestIds = new Int32Array(k);
  const bestVals = new Float64Array(k);
  for (let r = 0; r < rows; r++) {
    const o = r * stride;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < vocab; j++) if (logits[o + j]! > max) max = logits[o + j]!;
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(logits[o + j]! - max);
    const lse = max + Math.log(sum);
    // Insertion into a sorted list of the best so far: most candidates fall below its last entry.
    let filled = 0;
    for (let j = 0; j < vocab; j++) {
      const x = logits[o + j]!;
      if (filled === k && x <= bestVals[k - 1]!) continue;
      let at = filled < k ? filled++ : k - 1;
      while (at > 0 && bestVals[at - 1]! < x) {
        bestVals[at] = bestVals[at - 1]!;
        bestIds[at] = bestIds[at - 1]!;
        at--;
      }
      bestVals[at] = x;
      bestIds[at] = j;
    }
    for (let i = 0; i < k; i++) {
      ids[r * k + i] = bestIds[i]!;
      logProbs[r * k + i] = bestVals[i]! - lse;
    }
  }
  return { ids, logProbs, k };
}

/** What a cache folder was made for; a run refuses a folder made for anything else. */
export interface CacheMeta {
  teacher: string;
  tokenizerHash: string;
  k: number;
  rows: number;
  context: number;
  seed: number;
  epochBatches: number;
}

export class TopKCache {
  readonly dir: string;
  constructor(
    runDir: string,
    private readonly meta: CacheMeta,
  ) {
    this.dir = join(runDir, "teacher-topk");
    const metaPath = join(this.dir, "meta.json");
    const text = `${JSON.stringify(meta, null, 2)}\n`;
    if (existsSync(metaPath)) {
      const found = readFileSync(metaPath, "utf8");
      if (found !== text)
        throw new Error(
          `${metaPath} was made for another teacher or batch shape (${found.replace(/\s+/g, " ").trim()}); expected ${text.replace(/\s+/g, " ").trim()}. Move the folder away to rebuild the cache.`,
        );
    } else {
      mkdirSync(this.dir, { recursive: true });
      writeFileAtomic(metaPath, text);
    }
  }

  private path(batch: number): string {
    return join(this.dir, `batch-${batch}.bin`);
  }

  /** The cached top-k of data batch `batch`, or null when it has not been written yet. */
  get(batch: number): TopK | null {
    const p = this.path(batch);
    if (!existsSync(p)) return null;
    const buf = readFileSync(p);
    const { rows, k } = this.meta;
    const want = HEADER + rows * k * 8;
    if (
      buf.length !== want ||
      buf.toString("latin1", 0, 4) !== MAGIC ||
      buf.readUInt32LE(4) !== rows ||
      buf.readUInt32LE(8) !== k
    )
      throw new Error(
        `${p}: not a top-k cache file for ${rows} rows of k ${k} (${buf.length} bytes, expected ${want}); delete it to recompute it`,
      );
    const n = rows * k;
    const ids = new Int32Array(n);
    const logProbs = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      ids[i] = buf.readInt32LE(HEADER + 4 * i);
      logProbs[i] = buf.readFloatLE(HEADER + 4 * n + 4 * i);
    }
    return { ids, logProbs, k };
  }

  put(batch: number, t: TopK): void {
    const n = t.ids.length;
    const buf = Buffer.alloc(HEADER + n * 8);
    buf.write(MAGIC, 0, "latin1");
    buf.writeUInt32LE(n / t.k, 4);
    buf.writeUInt32LE(t.k, 8);
    for (let i = 0; i < n; i++) {
      buf.writeInt32LE(t.ids[i]!, HEADER + 4 * i);
      buf.writeFloatLE(t.logProbs[i]!, HEADER + 4 * n + 4 * i);
    }
    writeFileAtomic(this.path(batch), buf);
  }
}
