// The HTTP thread's handle on the inference worker: submits sequences, routes the worker's events back to
// each sequence's listener, cancels, and keeps the counts that bound the queue and feed /health.
import { Worker } from "node:worker_threads";
import type { Tokenizer } from "../data/tokenizer.js";
import { tokenizerFromJson } from "../data/tokenizer-json.js";
import type { Model, ModelConfig } from "../nn/index.js";
import type { HeadRef, InspectReport } from "./inspect.js";
import {
  DEFAULT_PREFILL_CHUNK,
  type FromWorker,
  type LoadedModelInfo,
  type ModelSource,
  type SequenceEvent,
  type SequenceRequest,
  type ToWorker,
  type WorkerInit,
} from "./protocol.js";

export type DoneEvent = Extract<SequenceEvent, { type: "done" }>;

export interface SequenceListener {
  onToken(delta: string): void;
  onDone(event: DoneEvent): void;
}

export interface EngineOptions {
  /** Sequences decoded together in one step. */
  maxBatch: number;
  /** Sequences that may wait for a batch row; beyond maxBatch + maxQueue, submissions are refused. */
  maxQueue: number;
  /** Prompt tokens fed per step alongside the decoding rows (default DEFAULT_PREFILL_CHUNK). */
  prefillChunk?: number;
  /** Kernel threads of the native backend in the worker (default: the backend's own default). */
  threads?: number | null;
}

export interface EngineStats {
  /** Sequences submitted and not yet done. */
  inFlight: number;
  /** As last reported by the worker. */
  active: number;
  waiting: number;
  completed: number;
  cancelled: number;
  failed: number;
  /** Tokens generated since start. */
  tokens: number;
}

/** Weights and tokenizer of an in-memory model, copied for the worker (typed arrays are cloned). */
export function modelSource(model: Model, tokenizer: Tokenizer): ModelSource {
  return {
    kind: "weights",
    config: model.config,
    // slice(): a tensor may view a larger pooled buffer, and cloning a view clones its whole buffer.
    weights: model.specs.map((s) => {
      const p = model.params.get(s.name)!;
      if (p.packed)
        throw new Error(
          `serve: ${s.name} is kept in ${p.packed.type}; serve a quantized model by its file or run name`,
        );
      return { name: s.name, shape: s.shape, data: p.data.slice() as Float32Array };
    }),
    tokenizerJson: tokenizer.toJsonText(),
  };
}

/** Inspect requests an engine holds at once (each is several forward passes); beyond, the server says 429. */
export const MAX_PENDING_INSPECTS = 4;

export class Engine {
  private readonly listeners = new Map<number, SequenceListener>();
  private readonly inspections = new Map<
    number,
    { resolve: (r: InspectReport) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private dead: string | null = null;
  private readonly counts = { active: 0, waiting: 0, completed: 0, cancelled: 0, failed: 0, tokens: 0 };

  private readonly handlers: {
    message: (m: FromWorker) => void;
    error: (e: Error) => void;
    exit: (c: number) => void;
  };

  private constructor(
    private readonly worker: Worker,
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    /** What was loaded: its name, source and checkpoint step. */
    readonly loaded: LoadedModelInfo,
    /** The resolver's notes and warnings while loading, for the caller to show. */
    readonly notes: readonly string[],
    readonly options: EngineOptions,
  ) {
    this.handlers = {
      message: (m) => this.onMessage(m),
      error: (e) => this.die(`the inference worker failed: ${e.message}`),
      exit: (code) => this.die(`the inference worker exited (code ${code})`),
    };
    worker.on("message", this.handlers.message);
    worker.on("error", this.handlers.error);
    worker.on("exit", this.handlers.exit);
  }

  /** Starts the worker and resolves once it has loaded the model. */
  static start(source: ModelSource, options: EngineOptions): Promise<Engine> {
    const prefillChunk = options.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    for (const [k, v, min] of [
      ["maxBatch", options.maxBatch, 1],
      ["maxQueue", options.maxQueue, 0],
      ["prefillChunk", prefillChunk, 1],
    ] as const) {
      if (!Number.isInteger(v) || v < min) throw new Error(`${k} must be an integer ≥ ${min}, got ${v}`);
    }
    const init: WorkerInit = {
      source,
      maxBatch: options.maxBatch,
      prefillChunk,
      threads: options.threads ?? null,
    };
    const worker = new Worker(new URL("./worker.js", import.meta.url), {
      workerData: init,
      // The parent's --input-type (node -e scripts) would stop the worker's file from loading.
      execArgv: process.execArgv.filter((a) => !a.startsWith("--input-type")),
    });
    return new Promise((resolve, reject) => {
      // Named handlers removed one by one: removeAllListeners() would also drop Worker's own bookkeeping.
      const off = () => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
      };
      const fail = (message: string) => {
        off();
        void worker.terminate();
        reject(new Error(message));
      };
      const onMessage = (m: FromWorker) => {
        off();
        if (m.type !== "ready")
          return fail(m.type === "fatal" ? m.message : `unexpected worker message ${m.type}`);
        const tokenizer = tokenizerFromJson(JSON.parse(m.tokenizerJson), "the served tokenizer");
        resolve(new Engine(worker, m.config, tokenizer, m.model, m.notes, options));
      };
      const onError = (e: Error) => fail(`the inference worker failed to start: ${e.message}`);
      const onExit = (code: number) => fail(`the inference worker exited while loading (code ${code})`);
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
  }

  /** Training step of the loaded checkpoint (null for imported and in-memory models). */
  get step(): number | null {
    return this.loaded.step;
  }

  /** Room for `n` more sequences? */
  hasRoom(n: number): boolean {
    return this.listeners.size + n <= this.options.maxBatch + this.options.maxQueue;
  }

  /** Why the engine cannot take work (the worker died), or null. */
  get failure(): string | null {
    return this.dead;
  }

  get stats(): EngineStats {
    return { inFlight: this.listeners.size, ...this.counts };
  }

  /** Submits sequences (ids are assigned here); returns the ids, for cancel(). */
  submit(sequences: Omit<SequenceRequest, "id">[], listeners: SequenceListener[]): number[] {
    if (this.dead) throw new Error(this.dead);
    const withIds = sequences.map((s, i) => {
      const id = this.nextId++;
      this.listeners.set(id, listeners[i]!);
      return { ...s, id };
    });
    this.post({ type: "submit", sequences: withIds });
    return withIds.map((s) => s.id);
  }

  /** Room for one more inspect request? */
  get canInspect(): boolean {
    return this.inspections.size < MAX_PENDING_INSPECTS;
  }

  /** The inspect page's analyses of one prompt (src/serve/inspect.ts), run in the worker. */
  inspect(ids: readonly number[], ablate: readonly HeadRef[], top: number): Promise<InspectReport> {
    if (this.dead) return Promise.reject(new Error(this.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.inspections.set(id, { resolve, reject });
      this.post({ type: "inspect", id, ids: [...ids], ablate: ablate.map((h) => ({ ...h })), top });
    });
  }

  /** Stops sequences; each still gets its done event (finishReason "cancelled") once the worker drops it. */
  cancel(ids: number[]): void {
    const live = ids.filter((id) => this.listeners.has(id));
    if (live.length > 0 && !this.dead) this.post({ type: "cancel", ids: live });
  }

  async close(): Promise<void> {
    this.dead ??= "the server is shutting down";
    this.worker.off("error", this.handlers.error);
    this.worker.off("exit", this.handlers.exit);
    await this.worker.terminate();
    this.failAll(this.dead);
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromWorker): void {
    if (m.type === "fatal") {
      this.die(m.message);
      return;
    }
    if (m.type === "inspected") {
      const pending = this.inspections.get(m.id);
      this.inspections.delete(m.id);
      if ("error" in m) pending?.reject(new Error(m.error));
      else pending?.resolve(m.report);
      return;
    }
    if (m.type !== "events") return;
    this.counts.active = m.active;
    this.counts.waiting = m.waiting;
    for (const e of m.events) {
      const listener = this.listeners.get(e.id);
      if (!listener) continue;
      if (e.type === "token") {
        this.counts.tokens++;
        listener.onToken(e.delta);
        continue;
      }
      this.listeners.delete(e.id);
      if (e.finishReason === "cancelled") this.counts.cancelled++;
      else if (e.finishReason === "error") this.counts.failed++;
      else this.counts.completed++;
      listener.onDone(e);
    }
  }

  private die(message: string): void {
    if (this.dead) return;
    this.dead = message;
    this.failAll(message);
  }

  private failAll(message: string): void {
    const inspections = [...this.inspections.values()];
    this.inspections.clear();
    for (const p of inspections) p.reject(new Error(message));
    const pending = [...this.listeners];
    this.listeners.clear();
    for (const [id, l] of pending) {
      this.counts.failed++;
      l.onDone({ type: "done", id, finishReason: "error", promptTokens: 0, completionTokens: 0, message });
    }
  }
}
