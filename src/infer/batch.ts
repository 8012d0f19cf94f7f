// Many completions at once: every prompt gets its own KV cache, the prompts are prefilled in one forward
// pass, and each step decodes one token for every sequence still running (one forwardStep per step). Each
// sequence has its own Sampler (its own seed), so its tokens do not depend on which other sequences share
// the batch: the same prompt and seed give the same completion alone or batched.
import { forwardStep, type KVCache, type Model, newKVCache } from "../nn/index.js";
import { noGrad, tidy } from "../tensor/index.js";
import { Sampler, type SamplingOptions } from "./sampling.js";

export interface DecodeBatchOptions extends SamplingOptions {
  /** Most new tokens per sequence. */
  maxTokens: number;
  /** Token ids that end a sequence (not included in its output). */
  stops: ReadonlySet<number>;
  /** One sampling seed per prompt (default: its index); unused when greedy (temperature 0). */
  seeds?: readonly number[];
  /** Only the first `vocab` logits are candidates (a model's table may be wider than its tokenizer). */
  vocab?: number;
}

export interface DecodedSequence {
  /** The new tokens, without the stop token. */
  ids: number[];
  /** "stop": a stop token; "length": maxTokens; "context": the model's context is full. */
  finish: "stop" | "length" | "context";
  /** The stop token that ended the sequence, or null. */
  stopId: number | null;
}

/** Completes every prompt (token ids, each within the model's context). */
export function decodeBatch(
  model: Model,
  prompts: readonly Int32Array[],
  opts: DecodeBatchOptions,
): DecodedSequence[] {
  const { context, vocab } = model.config;
  const width = Math.min(opts.vocab ?? vocab, vocab);
  for (const [i, p] of prompts.entries()) {
    if (p.length === 0 || p.length > context)
      throw new Error(
        `decodeBatch: prompt ${i} has ${p.length} tokens; it needs 1 … ${context} (the context)`,
      );
  }
  const samplers = prompts.map((_, i) => new Sampler(opts, opts.seeds?.[i] ?? i));
  const caches: KVCache[] = prompts.map((p) =>
    newKVCache(model, Math.min(context, p.length + opts.maxTokens)),
  );
  const out: DecodedSequence[] = prompts.map(() => ({ ids: [], finish: "length", stopId: null }));
  const rows = prompts.map(() => new Float32Array(width));
  const step = (which: number[], feeds: Int32Array[]) =>
    noGrad(() =>
      tidy(() => {
        const counts = feeds.map((f) => f.length);
        const ids = new Int32Array(counts.reduce((a, b) => a + b, 0));
        for (let b = 0, at = 0; b < feeds.length; at += counts[b]!, b++) ids.set(feeds[b]!, at);
        const logits = forwardStep(
          model,
          ids,
          counts,
          which.map((s) => caches[s]!),
        );
        which.forEach((s, b) => {
          rows[s]!.set(logits.data.subarray(b * vocab, b * vocab + width));
        });
      }),
    );
  try {
    let active = prompts.map((_, s) => s);
    if (opts.maxTokens > 0) step(active, [...prompts]);
    else active = [];
    while (active.length > 0) {
      const next: number[] = [];
      const feeds: Int32Array[] = [];
      for (const s of active) {
        const id = samplers[s]!.sample(rows[s]!);
        if (opts.stops.has(id)) {
          out[s]!.finish = "stop";
          out[s]!.stopId = id;
          continue;
        }
        out[s]!.ids.push(id);
        if (out[s]!.ids.length >= opts.maxTokens) continue;
        if (caches[s]!.length >= context) {
          out[s]!.finish = "context";
          continue;
        }
        next.push(s);
        feeds.push(Int32Array.of(id));
      }
      active = next;
      if (active.length > 0) step(active, feeds);
    }
  } finally {
    for (const c of caches) c.dispose();
  }
  return out;
}
