// Continuous batching: each step is one forward pass over every active sequence (one KV cache each, all at
// different positions): sequences that are decoding feed their last token, new ones feed their prompt —
// up to `prefillChunk` prompt tokens per step in all, so a long prompt is fed over several steps instead
// of stalling everyone else's next token. Finished or cancelled sequences leave at once. Each sequence owns
// its sampler (seeded from its request), its KV cache and its text stream, so what it generates does not
// depend on which other sequences happen to share its steps.
import { END_OF_TEXT, type Tokenizer } from "../data/tokenizer.js";
import { Sampler } from "../infer/sampling.js";
import { StopTextStream } from "../infer/text-stream.js";
import { forwardStep, type KVCache, type Model, newKVCache } from "../nn/index.js";
import { noGrad, tidy } from "../tensor/index.js";
import {
  DEFAULT_PREFILL_CHUNK,
  type FinishReason,
  type SequenceEvent,
  type SequenceRequest,
} from "./protocol.js";

interface Sequence {
  req: SequenceRequest;
  cache: KVCache;
  sampler: Sampler;
  text: StopTextStream;
  /** Logits of the next position (the first tokenizer.vocabSize of them). */
  row: Float32Array;
  /** Prompt tokens already fed to the model. */
  fed: number;
  /** Sampled but not yet fed to the model. */
  next: number;
  generated: number;
}

export interface SchedulerOptions {
  /** Most sequences decoded together; the rest wait. */
  maxBatch: number;
  /** Most prompt tokens fed in one step, over all new sequences (default DEFAULT_PREFILL_CHUNK). */
  prefillChunk?: number;
}

/** One sequence's share of a step: the tokens it feeds. */
interface Feed {
  seq: Sequence;
  ids: Int32Array;
}

export class Scheduler {
  private readonly waiting: SequenceRequest[] = [];
  private active: Sequence[] = [];
  private readonly eot: number | null;
  private readonly prefillChunk: number;

  constructor(
    private readonly model: Model,
    private readonly tokenizer: Tokenizer,
    private readonly opts: SchedulerOptions,
    private readonly emit: (event: SequenceEvent) => void,
  ) {
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1)
      throw new Error(`maxBatch must be an integer ≥ 1, got ${opts.maxBatch}`);
    this.prefillChunk = opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1)
      throw new Error(`prefillChunk must be an integer ≥ 1, got ${opts.prefillChunk}`);
    if (tokenizer.vocabSize > model.config.vocab)
      throw new Error(
        `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocab}`,
      );
    this.eot = tokenizer.specialTokens.find((s) => s.content === END_OF_TEXT)?.id ?? null;
  }

  get activeCount(): number {
    return this.active.length;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Queues a sequence; it starts at the next step with a free batch row. */
  submit(req: SequenceRequest): void {
    const { context } = this.model.config;
    if (req.prompt.length === 0 || req.prompt.length > context) {
      this.fail(req, `the prompt is ${req.prompt.length} tokens; it must be 1 to ${context}`);
      return;
    }
    for (const id of req.prompt) {
      if (id < 0 || id >= this.tokenizer.vocabSize) {
        this.fail(req, `prompt token ${id} is outside the vocabulary of ${this.tokenizer.vocabSize}`);
        return;
      }
    }
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1) {
      this.fail(req, `maxTokens must be an integer ≥ 1, got ${req.maxTokens}`);
      return;
    }
    this.waiting.push(req);
  }

  /** Drops a sequence wherever it is (its KV cache is freed) and reports it "cancelled". */
  cancel(id: number): void {
    const w = this.waiting.findIndex((r) => r.id === id);
    if (w >= 0) {
      const [req] = this.waiting.splice(w, 1);
      this.emit({
        type: "done",
        id,
        finishReason: "cancelled",
        promptTokens: req!.prompt.length,
        completionTokens: 0,
      });
      return;
    }
    const a = this.active.findIndex((s) => s.req.id === id);
    if (a >= 0) this.finish(this.active[a]!, "cancelled");
  }

  /**
   * One scheduling round: waiting sequences take the free batch rows, then one forward pass feeds every
   * decoding sequence its last token and the new ones (part of) their prompts. Returns whether work is left.
   */
  step(): boolean {
    while (this.waiting.length > 0 && this.active.length < this.opts.maxBatch)
      this.start(this.waiting.shift()!);
    const feeds: Feed[] = [];
    let budget = this.prefillChunk;
    for (const seq of this.active) {
      const left = seq.req.prompt.length - seq.fed;
      if (left === 0) feeds.push({ seq, ids: Int32Array.of(seq.next) });
      else if (budget > 0) {
        const n = Math.min(left, budget);
        feeds.push({ seq, ids: seq.req.prompt.subarray(seq.fed, seq.fed + n) });
        budget -= n;
      }
    }
    if (feeds.length > 0) this.run(feeds);
    return this.busy;
  }

  /** Work is left: sequences running or waiting. */
  get busy(): boolean {
    return this.active.length > 0 || this.waiting.length > 0;
  }

  private start(req: SequenceRequest): void {
    const { context } = this.model.config;
    try {
      this.active.push({
        req,
        cache: newKVCache(this.model, Math.min(context, req.prompt.length + req.maxTokens)),
        sampler: new Sampler({ temperature: req.temperature, topP: req.topP }, req.seed),
        text: new StopTextStream(req.stop),
        row: new Float32Array(this.tokenizer.vocabSize),
        fed: 0,
        next: -1,
        generated: 0,
      });
    } catch (e) {
      this.fail(req, (e as Error).message);
    }
  }

  /**
   * One forward pass over the feeds; each sequence whose prompt is now all in samples its next token. If
   * the batched pass fails, each sequence is retried alone, so one bad sequence ends with an error and the
   * others carry on (a failed pass leaves no trace in a cache: lengths only advance after every layer).
   */
  private run(feeds: Feed[]): void {
    const vocab = this.model.config.vocab;
    const counts = feeds.map((f) => f.ids.length);
    const ids = new Int32Array(counts.reduce((a, b) => a + b, 0));
    for (let b = 0, at = 0; b < feeds.length; at += counts[b]!, b++) ids.set(feeds[b]!.ids, at);
    try {
      noGrad(() =>
        tidy(() => {
          const logits = forwardStep(
            this.model,
            ids,
            counts,
            feeds.map((f) => f.seq.cache),
          );
          for (let b = 0; b < feeds.length; b++) {
            const row = feeds[b]!.seq.row;
            row.set(logits.data.subarray(b * vocab, b * vocab + row.length));
          }
        }),
      );
    } catch (e) {
      if (feeds.length > 1) for (const f of feeds) this.run([f]);
      else this.finish(feeds[0]!.seq, "error", (e as Error).message);
      return;
    }
    for (const { seq, ids } of feeds) {
      if (seq.fed < seq.req.prompt.length) {
        seq.fed += ids.length;
        if (seq.fed < seq.req.prompt.length) continue;
      }
      this.advance(seq);
    }
  }

  /** Samples the sequence's next token from its logits, emits its text, and ends it when it is done. */
  private advance(s: Sequence): void {
    const reason = this.take(s);
    if (reason) this.finish(s, reason.finish, reason.message);
  }

  /** The token step of advance(); returns why the sequence ends, or null to keep going. */
  private take(s: Sequence): { finish: FinishReason; message?: string } | null {
    let id: number;
    try {
      id = s.sampler.sample(s.row);
    } catch (e) {
      return { finish: "error", message: (e as Error).message };
    }
    s.generated++;
    if (id === this.eot && s.req.stopAtEndOfText) return { finish: "stop" };
    if (s.req.stopIds?.includes(id)) return { finish: "stop" };
    const bytes = this.tokenizer.bytesOf(id);
    const pushed = bytes ? s.text.pushBytes(bytes) : s.text.pushText(this.tokenizer.tokenString(id));
    this.emit({ type: "token", id: s.req.id, delta: pushed.delta });
    if (pushed.stopped) return { finish: "stop" };
    // The cache holds the prompt and every fed token; a full context ends generation like max_tokens does.
    if (s.generated >= s.req.maxTokens || s.cache.length >= this.model.config.context)
      return { finish: "length" };
    s.next = id;
    return null;
  }

  private finish(s: Sequence, reason: FinishReason, message?: string): void {
    this.active = this.active.filter((x) => x !== s);
    s.cache.dispose();
    if (reason === "stop" || reason === "length") {
      const tail = s.text.finish().delta;
      if (tail) this.emit({ type: "token", id: s.req.id, delta: tail });
    }
    this.emit({
      type: "done",
      id: s.req.id,
      finishReason: reason,
      promptTokens: s.req.prompt.length,
      completionTokens: s.generated,
      ...(message === undefined ? {} : { message }),
    });
  }

  private fail(req: SequenceRequest, message: string): void {
    this.emit({
      type: "done",
      id: req.id,
      finishReason: "error",
      promptTokens: req.prompt.length,
      completionTokens: 0,
      message,
    });
  }

  /** Frees every cache (shutdown). */
  dispose(): void {
    for (const s of this.active) s.cache.dispose();
    this.active = [];
    this.waiting.length = 0;
  }
}
