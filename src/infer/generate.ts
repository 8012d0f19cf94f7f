// Text generation with a KV cache: the prompt goes through the model in one forward pass (prefill), then
// each new token costs one single-position forward over the cached keys and values.
//
// Every step runs under noGrad + tidy and copies its logits row into one reused buffer, so memory does not
// grow with the number of tokens; the cache itself is sized once, min(context, prompt + maxTokens).
//
// Finish reasons: "stop" (a stop string, or <|endoftext|> was generated), "length" (maxTokens),
// "context" (the model's context is full: no sliding window, generation simply ends there), "abort"
// (the AbortSignal fired). Three ways to run it, all on one core (`generation`):
//   generate(...)        synchronous, with an optional onText callback per delta (CLI streaming);
//   generateStream(...)  an async iterator of deltas that yields to the event loop between tokens, so a
//                        server can write each delta and notice a closed connection (abort) in time;
//   generation(...)      the underlying synchronous generator, for callers that drive it themselves.

import { END_OF_TEXT, type Tokenizer } from "../data/tokenizer.js";
import { forwardStep, type Model, newKVCache } from "../nn/index.js";
import { noGrad, tidy } from "../tensor/index.js";
import { Sampler, type SamplingOptions } from "./sampling.js";
import { StopTextStream } from "./text-stream.js";

export type FinishReason = "stop" | "length" | "abort" | "context";

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate (integer ≥ 0). */
  maxTokens: number;
  /** Seed of the sampler's random stream; one seed fixes the whole generation. Default 0. */
  seed?: number;
  /** Generation ends before the first occurrence of any of these strings (which is not part of the text). */
  stop?: string[];
  /** End when <|endoftext|> is generated (if the tokenizer has it). Default true. */
  stopAtEndOfText?: boolean;
  /** A string prompt may contain special tokens such as "<|endoftext|>" as such. Default false. */
  allowSpecial?: boolean;
  /** Called with each new piece of text, in order; the pieces concatenate to the result's text. */
  onText?: (delta: string) => void;
  /** Checked before every forward pass; when aborted, generation ends with finishReason "abort". */
  signal?: AbortSignal;
}

export interface GenerateResult {
  /** The generated text (without the prompt, without a stop string or anything after it). */
  text: string;
  /** Every generated token id, including the one that completed a stop string or was <|endoftext|>. */
  ids: Int32Array;
  /** Tokens fed as the prompt (an empty prompt is fed as one <|endoftext|>). */
  promptTokens: number;
  /** Generated tokens (= ids.length). */
  completionTokens: number;
  finishReason: FinishReason;
}

/** Checks options and the prompt, and returns the prompt ids to feed. */
function preparePrompt(
  model: Model,
  tokenizer: Tokenizer,
  prompt: string | Int32Array,
  opts: GenerateOptions,
): Int32Array {
  const { vocab, context } = model.config;
  if (tokenizer.vocabSize > vocab)
    throw new Error(`the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${vocab}`);
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 0)
    throw new Error(`maxTokens must be an integer ≥ 0, got ${opts.maxTokens}`);
  if (opts.seed !== undefined && !Number.isInteger(opts.seed))
    throw new Error(`seed must be an integer, got ${opts.seed}`);
  let ids: Int32Array;
  if (typeof prompt === "string") {
    ids = Int32Array.from(tokenizer.encode(prompt, { allowSpecial: opts.allowSpecial ?? false }));
  } else if (prompt instanceof Int32Array) {
    for (let i = 0; i < prompt.length; i++) {
      const id = prompt[i]!;
      if (id < 0 || id >= tokenizer.vocabSize)
        throw new Error(`prompt token ${i} is ${id}, outside the vocabulary of ${tokenizer.vocabSize}`);
    }
    ids = prompt;
  } else {
    throw new Error("prompt must be a string or an Int32Array of token ids");
  }
  if (ids.length === 0) {
    // Unconditional sampling starts from the document separator, as the model saw it in training.
    const eot = endOfTextId(tokenizer);
    if (eot === null)
      throw new Error("the prompt is empty and the tokenizer has no <|endoftext|> to start from");
    ids = Int32Array.of(eot);
  }
  if (ids.length > context)
    throw new Error(`the prompt is ${ids.length} tokens, longer than the model's context of ${context}`);
  return ids;
}

function endOfTextId(tokenizer: Tokenizer): number | null {
  return tokenizer.specialTokens.find((s) => s.content === END_OF_TEXT)?.id ?? null;
}

/** One step of the core: a generated token (id) or the end of the text (id null), and the new safe text. */
export interface GenerationStep {
  id: number | null;
  /** Text that became safe to show with this step; may be "" (partial UTF-8, or held for a stop string). */
  delta: string;
}

/**
 * The generation core: a synchronous generator with one step per generated token (plus a last step with
 * id null when text was still held back), returning the result. Stopping it early (return()) releases the
 * KV cache. Grad mode is switched off inside each forward pass only, never across a yield.
 */
export function* generation(
  model: Model,
  tokenizer: Tokenizer,
  prompt: string | Int32Array,
  opts: GenerateOptions,
): Generator<GenerationStep, GenerateResult, void> {
  const promptIds = preparePrompt(model, tokenizer, prompt, opts);
  const sampler = new Sampler(opts, opts.seed ?? 0);
  const text = new StopTextStream(opts.stop ?? []);
  const eot = opts.stopAtEndOfText === false ? null : endOfTextId(tokenizer);
  const { context } = model.config;
  const maxTokens = opts.maxTokens;
  const ids: number[] = [];
  const result = (finishReason: FinishReason): GenerateResult => ({
    text: text.text,
    ids: Int32Array.from(ids),
    promptTokens: promptIds.length,
    completionTokens: ids.length,
    finishReason,
  });
  if (opts.signal?.aborted) return result("abort");
  if (maxTokens === 0) return result("length");

  const cache = newKVCache(model, Math.min(context, promptIds.length + maxTokens));
  // Only the first tokenizer.vocabSize logits are sampled: a model may pad its vocabulary.
  const row = new Float32Array(tokenizer.vocabSize);
  // Only the last position's logits are computed (a prompt does not pay for the head at every position).
  const step = (input: Int32Array) =>
    noGrad(() =>
      tidy(() => {
        const logits = forwardStep(model, input, [input.length], [cache]);
        row.set(logits.data.subarray(0, row.length));
      }),
    );
  let finishReason: FinishReason;
  try {
    step(promptIds);
    for (;;) {
      const id = sampler.sample(row);
      ids.push(id);
      if (id === eot) {
        yield { id, delta: "" };
        finishReason = "stop";
        break;
      }
      const bytes = tokenizer.bytesOf(id);
      const pushed = bytes ? text.pushBytes(bytes) : text.pushText(tokenizer.tokenString(id));
      yield { id, delta: pushed.delta };
      if (pushed.stopped) {
        finishReason = "stop";
        break;
      }
      if (ids.length >= maxTokens) {
        finishReason = "length";
        break;
      }
      if (cache.length >= context) {
        finishReason = "context";
        break;
      }
      if (opts.signal?.aborted) {
        finishReason = "abort";
        break;
      }
      step(Int32Array.of(id));
    }
  } finally {
    cache.dispose();
  }
  const tail = text.finish().delta;
  if (tail) yield { id: null, delta: tail };
  return result(finishReason);
}

/** Generates synchronously; `onText` (if given) receives each delta as soon as it is safe to show. */
export function generate(
  model: Model,
  tokenizer: Tokenizer,
  prompt: string | Int32Array,
  opts: GenerateOptions,
): GenerateResult {
  const it = generation(model, tokenizer, prompt, opts);
  try {
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
      if (r.value.delta) opts.onText?.(r.value.delta);
    }
  } finally {
    it.return(undefined as unknown as GenerateResult); // frees the KV cache if onText threw
  }
}

/**
 * Streams deltas as an async iterator, yielding to the event loop before every token so timers, I/O and
 * abort signals are handled while generating. Breaking out of the loop stops generation and frees the
 * cache. The final result (with finishReason) is delivered to `onDone`, and is also the iterator's return
 * value for callers that drive it with next().
 */
export async function* generateStream(
  model: Model,
  tokenizer: Tokenizer,
  prompt: string | Int32Array,
  opts: GenerateOptions & { onDone?: (result: GenerateResult) => void },
): AsyncGenerator<string, GenerateResult, void> {
  const it = generation(model, tokenizer, prompt, opts);
  try {
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const r = it.next();
      if (r.done) {
        opts.onDone?.(r.value);
        return r.value;
      }
      const delta = r.value.delta;
      if (!delta) continue;
      opts.onText?.(delta);
      yield delta;
    }
  } finally {
    // Runs the core's cleanup (frees the KV cache) when the consumer stops early; a no-op once it is done.
    it.return(undefined as unknown as GenerateResult);
  }
}
