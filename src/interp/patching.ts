// Activation patching (causal tracing): run the corrupted prompt, put back one activation from the clean run,
// and see how much of the clean behaviour returns, measured by a metric the caller supplies.
import { type Model, mlpHidden } from "../nn/index.js";
import { tensor } from "../tensor/index.js";
import { type Hook, runWithCache, runWithHooks } from "./run.js";

/** What is patched: the residual entering a block, a block's attention or MLP output (each per position), or one head's output (all positions). */
export type PatchTarget = "resid_pre" | "attn_out" | "mlp_out" | "heads";

export interface PatchingResult {
  /** The metric on the clean and on the corrupted run, unpatched. */
  clean: number;
  corrupted: number;
  /** [layer][position] (or [layer][head] for heads): the metric with that one activation patched in. */
  patched: number[][];
}

const pointOf: Record<PatchTarget, (l: number) => string> = {
  resid_pre: (l) => `blocks.${l}.hook_resid_pre`,
  attn_out: (l) => `blocks.${l}.hook_attn_out`,
  mlp_out: (l) => `blocks.${l}.hook_mlp_out`,
  heads: (l) => `blocks.${l}.attn.hook_z`,
};

/**
 * Patches clean activations into the corrupted run one at a time. The prompts must have the same length;
 * metric receives the patched run's logits [T, vocab] (e.g. a logit difference at the last position).
 */
export function activationPatching(
  model: Model,
  clean: readonly number[],
  corrupted: readonly number[],
  metric: (logits: Float32Array) => number,
  target: PatchTarget = "resid_pre",
): PatchingResult {
  const { layers, heads, dModel } = model.config;
  if (clean.length !== corrupted.length || clean.length === 0)
    throw new Error(
      `activation patching: the clean (${clean.length}) and corrupted (${corrupted.length}) prompts need the same, non-zero length`,
    );
  if (target === "mlp_out" && mlpHidden(model.config) === 0)
    throw new Error("activation patching: mlp_out needs a model with MLPs (this one is attention-only)");
  const T = clean.length;
  const names = Array.from({ length: layers }, (_, l) => pointOf[target](l));
  const run = (ids: readonly number[], hooks: Record<string, Hook>) => {
    const logits = runWithHooks(model, { ids }, hooks);
    const m = metric(Float32Array.from(logits.data));
    logits.dispose();
    return m;
  };
  const { logits, cache } = runWithCache(model, { ids: clean }, { names });
  const cleanMetric = metric(Float32Array.from(logits.data));
  logits.dispose();
  // Replace [from, from + span) of every row of `stride` values (one position, or one head's slice).
  const patch = (
    name: string,
    rows: number[],
    from: number,
    span: number,
    stride: number,
  ): Record<string, Hook> => ({
    [name]: (act) => {
      const out = tensor(act.data, act.shape);
      const src = cache.get(name).data;
      for (const r of rows)
        out.data.set(src.subarray(r * stride + from, r * stride + from + span), r * stride + from);
      return out;
    },
  });
  const all = Array.from({ length: T }, (_, t) => t);
  const hd = dModel / heads;
  const patched = names.map((name) =>
    target === "heads"
      ? Array.from({ length: heads }, (_, h) => run(corrupted, patch(name, all, h * hd, hd, heads * hd)))
      : Array.from({ length: T }, (_, t) => run(corrupted, patch(name, [t], 0, dModel, dModel))),
  );
  cache.dispose();
  return { clean: cleanMetric, corrupted: run(corrupted, {}), patched };
}
