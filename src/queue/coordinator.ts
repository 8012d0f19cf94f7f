// The coordinator: the sweep or study process that puts its runs in the queue and collects them. It adds
// each run not yet done as a job with a stable id (adding it again is a no-op), then either returns at once
// (--detach) or polls the jobs until each is completed or failed, writing every completed run into the
// run registry. Collection is idempotent: a run already finished in the registry is skipped, a completed
// job seen again rewrites the same registry row, and a job that vanished (a Redis that lost its data) is
// added again — its worker finds the finished run folder and returns its figures without training.
import type { TrainConfigInput } from "../train/index.js";
import { Registry } from "../train/index.js";
import { checkRedis, loadBullmq, openRedis, REDIS_OUTAGE_SECONDS, redactUrl } from "./connection.js";
import {
  DEFAULT_ATTEMPTS,
  JOB_FORMAT,
  jobIdOf,
  QUEUE_NAME,
  RETRY_DELAY_MS,
  type RunJob,
  type RunOutcome,
  type RunProgress,
} from "./jobs.js";

/** One run to do through the queue. */
export interface QueueTask {
  group: string;
  runName: string;
  runDir: string;
  config: TrainConfigInput;
}

export interface CoordinatorOptions {
  url: string;
  /** Enqueue and return without waiting (collect later by calling again). */
  detach?: boolean;
  /** Attempts of a job that throws before it is marked failed (default DEFAULT_ATTEMPTS). */
  attempts?: number;
  /** Give failed jobs a fresh set of attempts (a resumed sweep does). */
  retryFailed?: boolean;
  /** Milliseconds between polls of the outstanding jobs (default 500; at least 1 per outstanding run). */
  pollMs?: number;
  /** Stop waiting (the jobs stay queued for the workers). */
  signal?: AbortSignal;
  /** A run already done (in the registry): neither enqueued nor waited for. */
  isDone?: (task: QueueTask) => boolean;
  /** Called once per completed run, in completion order: write it into the registry here. */
  onResult: (task: QueueTask, outcome: RunOutcome) => void;
  outageSeconds?: number;
  log?: (message: string) => void;
}

export interface QueueSummary {
  /** Runs done before this call (registry). */
  skipped: string[];
  /** Runs whose results this call collected. */
  completed: string[];
  /** Runs that failed every attempt, with the last error. */
  failed: { runName: string; error: string }[];
  /** Runs still in the queue when this call returned (detached, or stopped by the signal). */
  pending: string[];
}

function runJob(t: QueueTask): RunJob {
  return {
    format: JOB_FORMAT,
    version: 1,
    group: t.group,
    runName: t.runName,
    runDir: t.runDir,
    config: t.config,
  };
}

/** Enqueues the tasks not yet done and, unless detached, waits until each is completed or failed. */
export async function runOnQueue(
  tasks: readonly QueueTask[],
  options: CoordinatorOptions,
): Promise<QueueSummary> {
  const log = options.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  if (!(Number.isInteger(attempts) && attempts >= 1))
    throw new Error(`attempts must be an integer ≥ 1, got ${attempts}`);
  await checkRedis(options.url);
  const { Queue } = await loadBullmq();
  let gaveUp: string | null = null;
  const connection = openRedis(options.url, {
    outageSeconds: options.outageSeconds ?? REDIS_OUTAGE_SECONDS,
    onGiveUp: (reason) => {
      gaveUp = reason;
    },
  });
  const queue = new Queue<RunJob, RunOutcome>(QUEUE_NAME, { connection });
  let lastError = "";
  queue.on("error", (e) => {
    if (e.message !== lastError) log(`Redis: ${e.message} (waiting for it to come back)`);
    lastError = e.message;
  });
  const summary: QueueSummary = { skipped: [], completed: [], failed: [], pending: [] };
  const outstanding = new Map<string, QueueTask>();
  const jobOptions = {
    attempts,
    backoff: { type: "fixed", delay: RETRY_DELAY_MS },
    removeOnComplete: false,
    removeOnFail: false,
  };
  const add = (ts: QueueTask[]) =>
    queue.addBulk(
      ts.map((t) => ({
        name: t.runName,
        data: runJob(t),
        opts: { ...jobOptions, jobId: jobIdOf(t.group, t.runName) },
      })),
    );
  const collect = (t: QueueTask, outcome: RunOutcome) => {
    options.onResult(t, outcome);
    summary.completed.push(t.runName);
    outstanding.delete(t.runName);
  };
  const fail = (t: QueueTask, error: string) => {
    summary.failed.push({ runName: t.runName, error });
    outstanding.delete(t.runName);
    log(`${t.runName} failed after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${error}`);
  };

  try {
    // What the queue already knows: results to collect, failures, jobs in flight; the rest is added.
    const toAdd: QueueTask[] = [];
    for (const t of tasks) {
      if (options.isDone?.(t)) {
        summary.skipped.push(t.runName);
        continue;
      }
      outstanding.set(t.runName, t);
      const job = await queue.getJob(jobIdOf(t.group, t.runName));
      if (!job) {
        toAdd.push(t);
        continue;
      }
      const state = await job.getState();
      if (state === "completed") collect(t, job.returnvalue as RunOutcome);
      else if (state === "failed") {
        if (options.retryFailed) {
          log(`${t.runName}: failed before (${job.failedReason}); trying it again`);
          await job.retry("failed");
        } else fail(t, job.failedReason);
      }
    }
    if (toAdd.length > 0) await add(toAdd);
    log(
      `queue ${redactUrl(options.url)}: ${toAdd.length} runs added, ${outstanding.size - toAdd.length} already queued, ` +
        `${summary.completed.length} collected, ${summary.skipped.length} done before`,
    );
    if (options.detach) {
      summary.pending = [...outstanding.keys()];
      return summary;
    }

    // Wait: poll each outstanding job's state; report runs as workers take them.
    const seenActive = new Set<string>();
    while (outstanding.size > 0) {
      if (options.signal?.aborted) break;
      if (gaveUp) throw new Error(gaveUp);
      for (const t of [...outstanding.values()]) {
        const id = jobIdOf(t.group, t.runName);
        const state = await queue.getJobState(id);
        if (state === "completed" || state === "failed" || state === "active") {
          const job = await queue.getJob(id);
          if (!job) continue;
          if (state === "completed") {
            const o = job.returnvalue as RunOutcome;
            log(
              `${t.runName} done on ${o.worker}${o.alreadyFinished ? " (already finished in its folder)" : ""}: ` +
                `loss ${o.loss?.toFixed(4) ?? "-"}, val loss ${o.valLoss?.toFixed(4) ?? "-"}`,
            );
            collect(t, o);
          } else if (state === "failed") fail(t, job.failedReason);
          else {
            const p = job.progress as RunProgress | number;
            const worker = typeof p === "object" ? p.worker : (job.processedBy ?? "a worker");
            const key = `${t.runName}@${worker}`;
            if (!seenActive.has(key)) {
              seenActive.add(key);
              const from =
                typeof p === "object" && p.resumedFrom > 0 ? ` (resumed at step ${p.resumedFrom})` : "";
              log(`${t.runName} running on ${worker}${from}`);
            }
          }
        } else if (state === "unknown") {
          // Gone from Redis (data lost, or removed by hand): add it again; its folder decides what is left.
          log(`${t.runName}: its job is gone from the queue; adding it again`);
          await add([t]);
        }
      }
      // A pass costs about two commands per outstanding run: with many runs, pass less often (1 ms a run),
      // so that a 10,000-run sweep's coordinator stays near 2,000 commands/s (docs/scale-out.md).
      const pause = Math.max(options.pollMs ?? 500, outstanding.size);
      if (outstanding.size > 0) await new Promise((r) => setTimeout(r, pause));
    }
    summary.pending = [...outstanding.keys()];
    return summary;
  } catch (e) {
    throw gaveUp ? new Error(gaveUp) : e;
  } finally {
    await queue.close().catch(() => {});
    connection.disconnect();
  }
}

/**
 * Writes a run collected from the queue into <root>/registry.sqlite as finished, under its group (the
 * sweep or study id), with the machine and revision of the worker that trained it. Returns the run id.
 */
export function recordOutcome(root: string, group: string, o: RunOutcome): number {
  const r = new Registry(root);
  try {
    const id = r.recordStart({
      resumed: true,
      name: o.runName,
      runDir: o.runDir,
      config: {
        ...o.config,
        modelConfig: o.modelConfig,
        parameters: o.parameters,
        flopsPerToken: o.flopsPerToken,
      },
      sweepId: group,
      machine: o.machine,
      gitRevision: o.gitRevision,
    });
    const complete = o.step >= o.steps;
    r.recordFinish(id, complete ? "finished" : "interrupted", {
      step: o.step,
      steps: o.steps,
      loss: o.loss,
      valLoss: o.valLoss,
      valTokens: o.valTokens,
      valEstimate: o.valEstimate,
      valMetrics: o.valMetrics,
      tokens: o.tokens,
      elapsedSeconds: o.elapsedSeconds,
      tokensPerSecond: o.tokensPerSecond,
      worker: o.worker,
    });
    return id;
  } finally {
    r.close();
  }
}
