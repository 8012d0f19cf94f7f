// The inference worker: owns the model and runs the batching scheduler, so the HTTP thread never blocks on
// a forward pass. Between decode steps it yields to its event loop, which is when submissions and
// cancellations from the HTTP thread arrive; events of one step go back in one message.
import { parentPort, workerData } from "node:worker_threads";
import { nativeBackend } from "../backend/index.js";
import { setNativeThreads } from "../backend/native.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { tokenizerFromJson } from "../data/tokenizer-json.js";
import { type Model, paramSpecs, parseModelConfig } from "../nn/index.js";
import { parameter, type Tensor } from "../tensor/index.js";
import { loadModel } from "../train/resolve.js";
import { inspectPrompt } from "./inspect.js";
import type {
  FromWorker,
  InspectJob,
  LoadedModelInfo,
  ModelSource,
  SequenceEvent,
  ToWorker,
  WorkerInit,
} from "./protocol.js";
import { Scheduler } from "./scheduler.js";

interface Loaded {
  model: Model;
  tokenizer: Tokenizer;
  info: LoadedModelInfo;
}

/** Loads the model here, off the HTTP thread: through the one resolver every command uses, or from weights. */
function load(source: ModelSource, notes: string[]): Loaded {
  if (source.kind === "spec") {
    const r = loadModel(source.spec, {
      warn: (m) => notes.push(m),
      ...(source.root === undefined ? {} : { root: source.root }),
    });
    return {
      model: r.model,
      tokenizer: r.tokenizer,
      info: { name: r.name, source: r.source, step: r.step },
    };
  }
  const config = parseModelConfig(source.config);
  const specs = paramSpecs(config);
  const byName = new Map(source.weights.map((w) => [w.name, w]));
  const params = new Map<string, Tensor>();
  for (const s of specs) {
    const w = byName.get(s.name);
    if (!w) throw new Error(`the model weights lack ${s.name}`);
    if (w.shape.join(",") !== s.shape.join(","))
      throw new Error(`${s.name} has shape [${w.shape}], expected [${s.shape}]`);
    params.set(s.name, parameter(w.data, s.shape, s.name));
  }
  const tokenizer = tokenizerFromJson(JSON.parse(source.tokenizerJson), "the served tokenizer");
  return {
    model: { config, specs, params },
    tokenizer,
    info: { name: "afterscale", source: "in-memory model", step: null },
  };
}

function main(port: NonNullable<typeof parentPort>, init: WorkerInit): void {
  const post = (m: FromWorker) => port.postMessage(m);
  // Load the addon before "ready", so the first request does not pay for it.
  const native = nativeBackend();
  if (init.threads !== null && native) setNativeThreads(init.threads);
  const notes: string[] = [];
  let loaded: Loaded;
  try {
    loaded = load(init.source, notes);
  } catch (e) {
    post({ type: "fatal", message: (e as Error).message });
    return;
  }
  let pending: SequenceEvent[] = [];
  const scheduler = new Scheduler(
    loaded.model,
    loaded.tokenizer,
    { maxBatch: init.maxBatch, prefillChunk: init.prefillChunk },
    (e) => pending.push(e),
  );
  const flush = () => {
    if (pending.length === 0) return;
    const events = pending;
    pending = [];
    post({ type: "events", events, active: scheduler.activeCount, waiting: scheduler.waitingCount });
  };

  let scheduled = false;
  const loop = () => {
    scheduled = false;
    try {
      // One batched forward pass per turn: every decoding sequence gets a token, new ones are prefilled.
      scheduler.step();
    } catch (e) {
      flush();
      post({ type: "fatal", message: `the scheduler failed: ${(e as Error).message}` });
      process.exit(1);
    }
    flush();
    // setImmediate, not a tight loop: messages (new requests, cancellations) are handled between turns.
    if (scheduler.busy) wake();
  };
  const wake = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(loop);
  };

  // The induction scores depend on the model alone: computed at the first inspect request, then kept.
  let induction: number[][] | undefined;
  const inspect = (job: InspectJob) => {
    try {
      const report = inspectPrompt(loaded.model, loaded.tokenizer, job.ids, {
        ablate: job.ablate,
        top: job.top,
        ...(induction ? { induction } : {}),
      });
      induction = report.induction;
      post({ type: "inspected", id: job.id, report });
    } catch (e) {
      post({ type: "inspected", id: job.id, error: (e as Error).message });
    }
  };

  port.on("message", (msg: ToWorker) => {
    if (msg.type === "submit") for (const s of msg.sequences) scheduler.submit(s);
    else if (msg.type === "cancel") for (const id of msg.ids) scheduler.cancel(id);
    // Synchronous, between two decode steps: streams pause for its length (a few forward passes).
    else if (msg.type === "inspect") inspect(msg);
    flush(); // rejections and cancellations are reported at once
    wake();
  });
  post({
    type: "ready",
    config: loaded.model.config,
    tokenizerJson: loaded.tokenizer.toJsonText(),
    model: loaded.info,
    notes,
  });
}

if (!parentPort) throw new Error("src/serve/worker.ts runs as a worker thread (see engine.ts)");
main(parentPort, workerData as WorkerInit);
