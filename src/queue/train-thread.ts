// Queued runs, trained in a worker thread: the worker process's main thread stays free to renew the job's
// lock in Redis while a step or the final evaluation computes (a blocked event loop would let the lock
// lapse and BullMQ would hand a healthy run to a second worker). A thread trains one run at a time and is
// kept for the next (starting one costs ~0.4 s of module loading). It reports progress and the outcome as
// messages; "stop" from the parent (SIGTERM) checkpoints the current run and ends it early.
import { parentPort } from "node:worker_threads";
import { backend } from "../backend/index.js";
import { setNativeThreads } from "../backend/native.js";
import { trainingFlopsPerToken } from "../nn/index.js";
import { gitRevision, machineInfo, parseTrainConfig, runDirOf, train } from "../train/index.js";
import type { RunJob, RunOutcome, RunProgress } from "./jobs.js";

export interface ThreadInit {
  job: RunJob;
  worker: string;
  threads: number | null;
  /** Minimum milliseconds between progress messages. */
  progressMs: number;
}

export type ToThread = { type: "run"; init: ThreadInit } | { type: "stop" };

export type FromThread =
  | { type: "progress"; progress: RunProgress }
  | { type: "done"; outcome: RunOutcome; interrupted: boolean }
  | { type: "error"; message: string };

async function trainRun(
  port: NonNullable<typeof parentPort>,
  init: ThreadInit,
  stop: AbortController,
): Promise<void> {
  const { job, worker } = init;
  const post = (m: FromThread) => port.postMessage(m);
  if (init.threads !== null && backend().name === "native") setNativeThreads(init.threads);
  const runDir = runDirOf(parseTrainConfig(job.config));
  if (runDir !== job.runDir)
    throw new Error(`run job ${job.runName}: its config names ${runDir}, the job ${job.runDir}`);
  let resumedFrom = 0;
  let lastSent = 0;
  const result = await train(job.config, {
    resume: true,
    registry: false,
    quiet: true,
    handleSignals: false,
    signal: stop.signal,
    log: () => {},
    onStep: (m) => {
      if (resumedFrom === 0 && lastSent === 0) resumedFrom = m.step - 1;
      const now = performance.now();
      if (now - lastSent < init.progressMs && m.step < m.steps) return;
      lastSent = now;
      post({
        type: "progress",
        progress: { worker, step: m.step, steps: m.steps, loss: m.loss, resumedFrom },
      });
    },
  });
  post({
    type: "done",
    interrupted: result.interrupted,
    outcome: {
      runName: result.runName,
      runDir: result.runDir,
      worker,
      step: result.step,
      steps: result.steps,
      resumedFrom: result.resumedFrom,
      alreadyFinished: result.alreadyFinished,
      loss: result.loss,
      valLoss: result.valLoss,
      valTokens: result.valTokens,
      valEstimate: result.valEstimate,
      valMetrics: result.valMetrics,
      tokens: result.tokens,
      elapsedSeconds: result.elapsedSeconds,
      tokensPerSecond: result.tokensPerSecond,
      config: result.config,
      modelConfig: result.modelConfig,
      parameters: result.parameters,
      flopsPerToken: trainingFlopsPerToken(result.modelConfig),
      machine: machineInfo(),
      gitRevision: gitRevision(),
    },
  });
}

if (parentPort) {
  const port = parentPort;
  let stop: AbortController | null = null;
  port.on("message", (m: ToThread) => {
    if (m.type === "stop") {
      stop?.abort();
      return;
    }
    stop = new AbortController();
    trainRun(port, m.init, stop)
      .catch((e: unknown) => {
        port.postMessage({ type: "error", message: (e as Error).message } satisfies FromThread);
      })
      .finally(() => {
        stop = null;
      });
  });
}
