// Which contexts make an MLP neuron fire: its largest activations over a dataset, each with the tokens
// around it (the first thing one looks at to guess what a neuron, or an SAE feature, stands for).
import { type Model, mlpHidden } from "../nn/index.js";
import { runWithCache } from "./run.js";

export interface ActivatingContext {
  value: number;
  /** The token's index in the dataset. */
  position: number;
  /** The tokens from position − before to position + after (clipped to the window the model saw). */
  tokens: number[];
  /** The activating token's index in `tokens`. */
  at: number;
}

export interface TopContextsOptions {
  layer: number;
  /** Neurons to report (default all). */
  neurons?: readonly number[];
  k?: number;
  before?: number;
  after?: number;
  /** Tokens to read from the dataset (default all). */
  maxTokens?: number;
}

/** The top-k activating contexts of MLP neurons (blocks.{layer}.mlp.hook_post) over token windows of the model's context. */
export function topActivatingContexts(
  model: Model,
  data: ArrayLike<number>,
  opts: TopContextsOptions,
): { neuron: number; top: ActivatingContext[] }[] {
  const width = mlpHidden(model.config);
  const { layer } = opts;
  if (width === 0) throw new Error("top activating contexts: this model is attention-only (no MLP neurons)");
  if (!Number.isInteger(layer) || layer < 0 || layer >= model.config.layers)
    throw new Error(`top activating contexts: layer ${layer} is outside 0..${model.config.layers - 1}`);
  const neurons = opts.neurons ?? Array.from({ length: width }, (_, i) => i);
  for (const n of neurons)
    if (!Number.isInteger(n) || n < 0 || n >= width)
      throw new Error(`top activating contexts: neuron ${n} is outside 0..${width - 1}`);
  const [k, before, after] = [opts.k ?? 5, opts.before ?? 8, opts.after ?? 2];
  const T = model.config.context;
  const total = Math.min(data.length, opts.maxTokens ?? data.length);
  const name = `blocks.${layer}.mlp.hook_post`;
  const tops = neurons.map(() => [] as { value: number; position: number }[]);
  for (let start = 0; start < total; start += T) {
    const ids = Array.from({ length: Math.min(T, total - start) }, (_, i) => data[start + i]!);
    const { logits, cache } = runWithCache(model, { ids }, { names: [name] });
    logits.dispose();
    const act = cache.get(name).data;
    neurons.forEach((n, i) => {
      const top = tops[i]!;
      for (let t = 0; t < ids.length; t++) {
        const value = act[t * width + n]!;
        if (top.length === k && value <= top[k - 1]!.value) continue;
        top.push({ value, position: start + t });
        top.sort((a, b) => b.value - a.value || a.position - b.position);
        if (top.length > k) top.pop();
      }
    });
    cache.dispose();
  }
  return neurons.map((neuron, i) => ({
    neuron,
    top: tops[i]!.map(({ value, position }) => {
      // The model saw only its own window: the context stops at the window's start.
      const windowStart = position - (position % T);
      const from = Math.max(windowStart, position - before);
      const to = Math.min(total, position + after + 1);
      return {
        value,
        position,
        tokens: Array.from({ length: to - from }, (_, j) => data[from + j]!),
        at: position - from,
      };
    }),
  }));
}
