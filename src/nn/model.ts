// A model is its config plus a map of named parameters; this file creates one, runs it, and reports
// its size and cost.
import { Rng, type Tensor } from "../tensor/index.js";
import { headDim, type ModelConfig, parseModelConfig } from "./config.js";
import { decoderForward, decoderParams, partNames } from "./decoder.js";
import type { ForwardHook } from "./hooks.js";
import { type CachedStep, cachedStep, KVCache } from "./kv-cache.js";
import { countParams, initParams, type ParamSpec } from "./params.js";

export interface Model {
  config: ModelConfig;
  params: Map<string, Tensor>;
  specs: ParamSpec[];
}

export function paramSpecs(c: ModelConfig): ParamSpec[] {
  return decoderParams(c);
}

/** A freshly initialised model; the seed fixes every weight. */
export function createModel(config: ModelConfig, seed: number): Model {
  const c = parseModelConfig(config);
  const specs = paramSpecs(c);
  return { config: c, specs, params: initParams(specs, new Rng(seed)) };
}

export interface ForwardOptions {
  /** Seed for this step's dropout masks; null (default) disables dropout, as in evaluation. */
  dropoutSeed?: number | null;
  /** Incremental decoding of one sequence. */
  cache?: KVCache | null;
  /** Incremental decoding of a batch of independent sequences: one cache per batch row. */
  caches?: readonly KVCache[] | null;
  /** Reads or replaces the named activations (nn/hooks.ts); none by default. */
  hook?: ForwardHook | null;
}

/** Logits [batch, time, vocab] for token ids laid out [batch·time]. */
export function forward(
  model: Model,
  ids: Int32Array,
  batch: number,
  time: number,
  opts: ForwardOptions = {},
): Tensor {
  if (ids.length !== batch * time)
    throw new Error(`forward: ${ids.length} ids for batch ${batch} × time ${time}`);
  const { family, context } = model.config;
  const caches = opts.caches ?? (opts.cache ? [opts.cache] : null);
  if (!caches && time > context)
    throw new Error(`${family}: ${time} positions exceed the context of ${context}`);
  const step = caches ? cachedStep(family, model.config, caches, Array(batch).fill(time)) : null;
  return run(model, ids, batch, time, opts.dropoutSeed ?? null, step, opts.hook ?? null);
}

/**
 * One incremental step of several sequences, each at its own position and with its own number of new
 * tokens: sequence s feeds counts[s] tokens (packed in `ids`, sequence after sequence) and attends over,
 * and extends, caches[s]. Returns the logits of each sequence's last new token, [sequences, 1, vocab] —
 * what sampling needs, so a server can prefill new prompts and decode running sequences in one pass.
 */
export function forwardStep(
  model: Model,
  ids: Int32Array,
  counts: readonly number[],
  caches: readonly KVCache[],
  hook: ForwardHook | null = null,
): Tensor {
  const step = cachedStep(model.config.family, model.config, caches, counts, true);
  if (ids.length !== step.positions.length)
    throw new Error(`forwardStep: ${ids.length} ids for counts adding up to ${step.positions.length}`);
  return run(model, ids, 1, ids.length, null, step, hook);
}

function run(
  model: Model,
  ids: Int32Array,
  batch: number,
  time: number,
  dropoutSeed: number | null,
  step: CachedStep | null,
  hook: ForwardHook | null,
): Tensor {
  const logits = decoderForward(model.params, model.config, ids, batch, time, { dropoutSeed, step, hook });
  // Every layer has stored this step's keys and values.
  for (let s = 0; s < (step?.caches.length ?? 0); s++) step!.caches[s]!.advance(step!.counts[s]!);
  return logits;
}

export function newKVCache(model: Model, capacity = model.config.context): KVCache {
  const c = model.config;
  return new KVCache(c.layers, capacity, c.kvHeads * headDim(c));
}

// Token and position tables: lookups, not matrices a token is multiplied through.
const embeddingNames = new Set(
  Object.values(partNames).flatMap((n) => [`${n.embed}.weight`, `${n.pos}.weight`]),
);
const vocabularyNames = new Set([
  ...embeddingNames,
  ...Object.values(partNames).map((n) => `${n.head}.weight`),
]);

/** Parameter counts; "non-embedding" excludes the vocabulary and position matrices (Kaplan et al.), tied or not. */
export function parameterCounts(c: ModelConfig): { total: number; nonEmbedding: number } {
  const specs = paramSpecs(c);
  return { total: countParams(specs), nonEmbedding: countParams(specs, (s) => !vocabularyNames.has(s.name)) };
}

/**
 * Training FLOPs per token: 6 per multiply-accumulate weight (forward 2, backward 4) over every matrix a
 * token passes through, including the output head, plus attention's score and value products over the
 * full context, 6·layers·context·dModel (Kaplan et al. 2020, eq. 2.2 with the backward pass). Elementwise
 * work (norms, QK-norm, biases, activations, the soft-cap) is left out, as in Kaplan et al.; the MLP kind
 * and width enter through its matrices.
 */
export function trainingFlopsPerToken(c: ModelConfig): number {
  const specs = paramSpecs(c);
  const matrices = countParams(specs, (s) => s.shape.length === 2 && !embeddingNames.has(s.name));
  const head = c.tie ? c.vocab * c.dModel : 0; // the tied head is a matmul too
  return 6 * (matrices + head) + 6 * c.layers * c.context * c.dModel;
}

/** Parameters that get weight decay, and those that do not (norms, biases, embeddings). */
export function decayGroups(model: Model): { decay: Tensor[]; noDecay: Tensor[] } {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const s of model.specs) (s.decay ? decay : noDecay).push(model.params.get(s.name)!);
  return { decay, noDecay };
}
