// Examples → padded micro-batches for fine-tuning. A fine-tuning example is a token sequence with a mask
// of the tokens that are trained on (an SFT completion, a preference's chosen or rejected answer). A batch
// pads its rows on the right to its longest row: with causal attention, padding after a row's last token
// cannot change any earlier position, and padded targets are ignored by the loss (-1).
//
// Which examples micro-batch `index` holds is a pure function of (seed, index): example slot
// p = index·batchSize + j is example permutation(seed, epoch)[p mod n] with epoch = ⌊p / n⌋, a fresh
// seeded shuffle per epoch. That keeps a resumed run bit-exact without saving a data-loader state.
import { Rng } from "../tensor/random.js";

export interface Sequence {
  ids: readonly number[];
  /** 1 where the token is a training target (predicted from the tokens before it), 0 elsewhere. */
  mask: ArrayLike<number>;
}

export interface PaddedBatch {
  /** Token ids [rows·time], padded with padId. */
  inputs: Int32Array;
  /** Next-token targets [rows·time]: the id where the mask trains it, else -1. */
  targets: Int32Array;
  rows: number;
  time: number;
  /** Trained (target) tokens in the batch. */
  trained: number;
  /** Rows cut to the context (their tail was dropped). */
  truncated: number;
}

/**
 * Pads sequences into one batch of inputs and masked targets, each cut to its first context + 1 tokens
 * (Hugging Face TRL truncates the same way, keeping the start).
 */
export function padBatch(seqs: readonly Sequence[], context: number, padId: number): PaddedBatch {
  if (seqs.length === 0) throw new Error("padBatch: no sequences");
  let time = 1;
  let truncated = 0;
  for (const s of seqs) {
    if (s.ids.length > context + 1) truncated++;
    time = Math.max(time, Math.min(s.ids.length, context + 1) - 1);
  }
  const rows = seqs.length;
  const inputs = new Int32Array(rows * time).fill(padId);
  const targets = new Int32Array(rows * time).fill(-1);
  let trained = 0;
  seqs.forEach((s, r) => {
    const n = Math.min(s.ids.length, context + 1);
    for (let t = 0; t + 1 < n; t++) {
      inputs[r * time + t] = s.ids[t]!;
      if (s.mask[t + 1]) {
        targets[r * time + t] = s.ids[t + 1]!;
        trained++;
      }
    }
  });
  return { inputs, targets, rows, time, trained, truncated };
}

/** A seeded permutation of 0 … n−1 (Fisher–Yates), one per (seed, epoch). */
function permutation(n: number, seed: number, epoch: number): Int32Array {
  const rng = new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** The example indices of micro-batch `index` (see the top of this file); epochs' orders are cached. */
export class ExampleOrder {
  private readonly epochs = new Map<number, Int32Array>();

  constructor(
    readonly count: number,
    readonly batchSize: number,
    readonly seed: number,
  ) {
    if (count === 0) throw new Error("no training examples");
  }

  batch(index: number): number[] {
    const out: number[] = [];
    for (let j = 0; j < this.batchSize; j++) {
      const slot = index * this.batchSize + j;
      const epoch = Math.floor(slot / this.count);
      let perm = this.epochs.get(epoch);
      if (!perm) {
        if (this.epochs.size > 2) this.epochs.clear();
        perm = permutation(this.count, this.seed, epoch);
        this.epochs.set(epoch, perm);
      }
      out.push(perm[slot % this.count]!);
    }
    return out;
  }
}
