// Continuous batching: every active sequence advances by one token per decode step, in one batched forward
// pass (one KV cache per batch row, sequences at different positions). New sequences are prefilled on their
// own and join the batch at the next step; finished or cancelled ones leave it at once. Each sequence owns
// its sampler (seeded from its request), its KV cache and its text stream, so what it generates does not
// depend on which other sequences happen to share its steps.
import { END_OF_TEXT, type Tokenizer } from "../data/tokenizer.js";
import { Sampler } from "../infer/sampling.js";
import { StopTextStream } from "../infer/text-stream.js";
import { forward, type KVCache, type Model, newKVCache } from "../nn/index.js";
import { noGrad, tidy } from "../tensor/index.js";
import type { FinishReason, SequenceEvent, SequenceRequest } from "./protocol.js";

interface Sequence {
  req: SequenceRequest;
  cache: KVCache;
  sampler: Sampler;
  text: StopTextStream;
  /** Logits of the next position (the first tokenizer.vocabSize of them). */
  row: Float32Array;
  /** Sampled but not yet fed to the model. */
  next: number;
  generated: number;
}

export interface SchedulerOptions {
  /** Most sequences decoded together; the rest wait. */
  maxBatch: number;
}

export class Scheduler {
  private readonly waiting: SequenceRequest[] = [];
  private active: Sequence[] = [];
  private readonly eot: number | null;

  constructor(
    private readonly model: Model,
    private readonly tokenizer: Tokenizer,
    private readonly opts: SchedulerOptions,
    private readonly emit: (event: SequenceEvent) => void,
  ) {
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1)
      throw new Error(`maxBatch must be an integer ≥ 1, got ${opts.maxBatch}`);
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

  /** One scheduling round: prefill waiting sequences into free rows, then one batched decode step. */
  step(): boolean {
    while (this.admit());
    this.decodeStep();
    return this.busy;
  }

  /** Prefills the next waiting sequence if a batch row is free (it has its first token after this). */
  admit(): boolean {
    if (this.waiting.length === 0 || this.active.length >= this.opts.maxBatch) return false;
    this.prefill(this.waiting.shift()!);
    return true;
  }

  /** One token for every active sequence, in one batched forward pass. */
  decodeStep(): void {
    if (this.active.length > 0) this.decode();
  }

  /** Work is left: sequences running or waiting. */
  get busy(): boolean {
    return this.active.length > 0 || this.waiting.length > 0;
  }

  private prefill(req: SequenceRequest): void {
    const { context } = this.model.config;
    let seq: Sequence;
    try {
      seq = {
        req,
        cache: newKVCache(this.model, Math.min(context, req.prompt.length + req.maxTokens)),
        sampler: new Sampler({ temperature: req.temperature, topP: req.topP }, req.seed),
        text: new StopTextStream(req.stop),
        row: new Float32Array(this.tokenizer.vocabSize),
        next: -1,
        generated: 0,
      };
    } catch (e) {
      this.fail(req, (e as Error).message);
      return;
    }
    this.active.push(seq);
    if (this.run(req.prompt, 1, req.prompt.length, [seq])) this.advance(seq);
  }

  private decode(): void {
    const batch = this.active.slice();
    const ids = Int32Array.from(batch, (s) => s.next);
    if (this.run(ids, batch.length, 1, batch)) for (const s of batch) this.advance(s);
  }

  /**
   * Forward pass over `seqs` (one per batch row) that leaves each one's last logits row in seq.row.
   * A failure ends those sequences with an error (the others carry on) and returns false.
   */
  private run(ids: Int32Array, batch: number, time: number, seqs: Sequence[]): boolean {
    const vocab = this.model.config.vocab;
    try {
      noGrad(() =>
        tidy(() => {
          const logits = forward(this.model, ids, batch, time, { caches: seqs.map((s) => s.cache) });
          for (let b = 0; b < batch; b++) {
            const start = (b * time + time - 1) * vocab;
            seqs[b]!.row.set(logits.data.subarray(start, start + seqs[b]!.row.length));
          }
        }),
      );
      return true;
    } catch (e) {
      for (const s of seqs) this.finish(s, "error", (e as Error).message);
      return false;
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
