// Attention heads one by one: their patterns, how much each behaves as an induction head, and what the loss
// does without it.
import type { Model } from "../nn/index.js";
import { crossEntropy, noGrad, Rng, type Tensor, tensor, tidy } from "../tensor/index.js";
import { type Hook, runWithCache, runWithHooks } from "./run.js";

/** [layer][head][destination][source]: each head's attention over one sequence. */
export function attentionPatterns(model: Model, ids: readonly number[]): number[][][][] {
  const { heads, layers } = model.config;
  const T = ids.length;
  const names = Array.from({ length: layers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  const { logits, cache } = runWithCache(model, { ids }, { names });
  logits.dispose();
  const out = names.map((name) => {
    const p = cache.get(name).data;
    return Array.from({ length: heads }, (_, h) =>
      Array.from({ length: T }, (_, i) => Array.from(p.subarray((h * T + i) * T, (h * T + i + 1) * T))),
    );
  });
  cache.dispose();
  return out;
}

export interface InductionOptions {
  /** Random sequences, each repeated once (TransformerLens: 10). */
  sequences?: number;
  /** Tokens per half (TransformerLens: 50). */
  length?: number;
  seed?: number;
}

/**
 * Induction score per [layer][head], as TransformerLens defines it: sequences of `length` uniformly random
 * tokens, each repeated once, no BOS; the mean attention from each destination d in the second half to the
 * source d − length + 1, the token after d's earlier occurrence, which an induction head copies.
 */
export function inductionScores(model: Model, opts: InductionOptions = {}): number[][] {
  const { heads, layers, vocab, context } = model.config;
  const n = opts.sequences ?? 10;
  const L = opts.length ?? 50;
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`induction scores: sequences must be a positive integer, got ${n}`);
  if (!Number.isInteger(L) || L < 2)
    throw new Error(`induction scores: length must be an integer >= 2, got ${L}`);
  if (2 * L > context)
    throw new Error(
      `induction scores: two halves of ${L} tokens exceed the context of ${context} (pass a smaller length)`,
    );
  const rng = new Rng(opts.seed ?? 0);
  const ids: number[] = [];
  for (let s = 0; s < n; s++) {
    const half = Array.from({ length: L }, () => rng.int(vocab));
    ids.push(...half, ...half);
  }
  const T = 2 * L;
  const names = Array.from({ length: layers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  const { logits, cache } = runWithCache(model, { ids, batch: n }, { names });
  logits.dispose();
  const scores = names.map((name) => {
    const p = cache.get(name).data; // [n, heads, T, T]
    return Array.from({ length: heads }, (_, h) => {
      let sum = 0;
      for (let s = 0; s < n; s++)
        for (let d = L; d < T; d++) sum += p[((s * heads + h) * T + d) * T + (d - L + 1)]!;
      return sum / (n * L);
    });
  });
  cache.dispose();
  return scores;
}

export interface HeadRef {
  layer: number;
  head: number;
}

/** Mean next-token cross-entropy of logits [1, T, vocab] over ids (T − 1 predictions). */
function sequenceLoss(logits: Tensor, ids: readonly number[]): number {
  const T = ids.length;
  const vocab = logits.shape[2]!;
  return noGrad(() =>
    tidy(() => {
      const head = tensor(logits.data.subarray(0, (T - 1) * vocab), [T - 1, vocab]);
      return crossEntropy(head, Int32Array.from(ids.slice(1))).item();
    }),
  );
}

/** Hooks that replace the given heads' outputs (their slices of hook_z) by zero or by a fixed value per head. */
function headHooks(
  model: Model,
  heads: readonly HeadRef[],
  fill?: (ref: HeadRef) => Float32Array,
): Record<string, Hook> {
  const { layers, dModel } = model.config;
  const hd = dModel / model.config.heads;
  const width = model.config.heads * hd;
  const hooks: Record<string, Hook> = {};
  for (const ref of heads) {
    if (!Number.isInteger(ref.layer) || ref.layer < 0 || ref.layer >= layers)
      throw new Error(`head ablation: layer ${ref.layer} is outside 0..${layers - 1}`);
    if (!Number.isInteger(ref.head) || ref.head < 0 || ref.head >= model.config.heads)
      throw new Error(`head ablation: head ${ref.head} is outside 0..${model.config.heads - 1}`);
  }
  for (let l = 0; l < layers; l++) {
    const here = heads.filter((r) => r.layer === l);
    if (here.length === 0) continue;
    hooks[`blocks.${l}.attn.hook_z`] = (z) => {
      const out = tensor(z.data, z.shape);
      const rows = z.size / width;
      for (const ref of here) {
        const value = fill?.(ref) ?? new Float32Array(hd);
        for (let r = 0; r < rows; r++) out.data.set(value, r * width + ref.head * hd);
      }
      return out;
    };
  }
  return hooks;
}

/** Logits [T, vocab] and mean next-token loss over ids with the given heads zero-ablated. */
export function ablatedRun(
  model: Model,
  ids: readonly number[],
  heads: readonly HeadRef[],
): { logits: Float32Array; loss: number } {
  const logits = runWithHooks(model, { ids }, headHooks(model, heads));
  const result = {
    logits: Float32Array.from(logits.data),
    loss: ids.length > 1 ? sequenceLoss(logits, ids) : Number.NaN,
  };
  logits.dispose();
  return result;
}

/**
 * The loss over ids with each head ablated alone, less the clean loss: [layer][head]. "zero" replaces the
 * head's output by zero, "mean" by its mean over the sequence's positions (less off-distribution).
 */
export function headAblationLosses(
  model: Model,
  ids: readonly number[],
  kind: "zero" | "mean" = "zero",
): { clean: number; delta: number[][] } {
  if (ids.length < 2) throw new Error("head ablation: need at least 2 tokens for a next-token loss");
  const { layers, heads, dModel } = model.config;
  const hd = dModel / heads;
  const names = Array.from({ length: layers }, (_, l) => `blocks.${l}.attn.hook_z`);
  const { logits, cache } = runWithCache(model, { ids }, { names });
  const clean = sequenceLoss(logits, ids);
  logits.dispose();
  const meanOf = (ref: HeadRef) => {
    const z = cache.get(`blocks.${ref.layer}.attn.hook_z`).data;
    const out = new Float32Array(hd);
    for (let t = 0; t < ids.length; t++)
      for (let j = 0; j < hd; j++) out[j]! += z[t * heads * hd + ref.head * hd + j]! / ids.length;
    return out;
  };
  const delta = Array.from({ length: layers }, (_, layer) =>
    Array.from({ length: heads }, (_, head) => {
      const ref = { layer, head };
      const out = runWithHooks(model, { ids }, headHooks(model, [ref], kind === "mean" ? meanOf : undefined));
      const loss = sequenceLoss(out, ids);
      out.dispose();
      return loss - clean;
    }),
  );
  cache.dispose();
  return { clean, delta };
}
