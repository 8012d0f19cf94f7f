// `afterscale worker`: takes runs from the queue and trains them, each in a thread of its own, until
// stopped. A run resumes from its folder's newest checkpoint, so a run another worker started (and lost:
// SIGKILL, a dead machine; BullMQ's stalled-job check hands it on once its lock lapses) continues where
// it stopped, bit for bit, and a run whose folder already holds the finished run returns its figures
// without training again. SIGTERM checkpoints the current runs and puts them back in the queue.
import { hostname } from "node:os";
import { Worker as ThreadWorker } from "node:worker_threads";
import type { Job } from "bullmq";
import { checkRedis, loadBullmq, openRedis, REDIS_OUTAGE_SECONDS, redactUrl } from "./connection.js";
import { QUEUE_NAME, type RunJob, type RunOutcome, type RunProgress, readRunJob } from "./jobs.js";
import type { FromThread, ThreadInit, ToThread } from "./train-thread.js";

export interface WorkerOptions {
  url: string;
  /** Runs trained at once (each in its own thread; default 1). */
  concurrency?: number;
  /** Kernel threads of the native backend (default: its own, the machine's cores). */
  threads?: number | null;
  /** How long a job's lock lasts without renewal (ms): a SIGKILLed worker's runs move on after about this. */
  lockDurationMs?: number;
  /** How often this worker looks for stalled jobs (ms). */
  stalledIntervalMs?: number;
  /** Give up after Redis has been unreachable this long (seconds). */
  outageSeconds?: number;
  log?: (message: string) => void;
}

export const DEFAULT_LOCK_DURATION_MS = 30_000;
export const DEFAULT_STALLED_INTERVAL_MS = 15_000;
/** A run may be recovered from a lost worker (or a Redis restart) this often before it is failed. */
export const MAX_STALLED_COUNT = 5;

export interface RunningWorker {
  /** "<host>:<pid>", as jobs record it. */
  name: string;
  /** Checkpoints the current runs, returns them to the queue and closes the connections. */
  stop(): Promise<void>;
  /** Resolves when stopped; rejects when Redis stayed away longer than the outage limit. */
  done: Promise<void>;
}

/** Training threads kept between runs, one per concurrent run. */
class ThreadPool {
  private readonly idle: ThreadWorker[] = [];

  private spawn(): ThreadWorker {
    return new ThreadWorker(new URL("./train-thread.js", import.meta.url), {
      // The parent's --input-type (node -e scripts) would stop the thread's file from loading.
      execArgv: process.execArgv.filter((a) => !a.startsWith("--input-type")),
    });
  }

  /** Trains one run on a free thread; resolves with its outcome (interrupted when `stop` was called). */
  train(
    init: ThreadInit,
    onProgress: (p: RunProgress) => void,
    register: (stop: () => void) => () => void,
  ): Promise<{ outcome: RunOutcome; interrupted: boolean }> {
    const thread = this.idle.pop() ?? this.spawn();
    const unregister = register(() => thread.postMessage({ type: "stop" } satisfies ToThread));
    return new Promise((resolve, reject) => {
      const settle = (f: () => void, keep: boolean) => {
        thread.off("message", onMessage);
        thread.off("error", onError);
        thread.off("exit", onExit);
        unregister();
        if (keep) this.idle.push(thread);
        else void thread.terminate();
        f();
      };
      const onMessage = (m: FromThread) => {
        if (m.type === "progress") onProgress(m.progress);
        else if (m.type === "done")
          settle(() => resolve({ outcome: m.outcome, interrupted: m.interrupted }), true);
        else settle(() => reject(new Error(m.message)), true);
      };
      const onError = (e: Error) => settle(() => reject(e), false);
      const onExit = (code: number) =>
        settle(() => reject(new Error(`the training thread exited (code ${code}) without a result`)), false);
      thread.on("message", onMessage);
      thread.on("error", onError);
      thread.on("exit", onExit);
      thread.postMessage({ type: "run", init } satisfies ToThread);
    });
  }

  close(): Promise<unknown> {
    return Promise.all(this.idle.splice(0).map((t) => t.terminate()));
  }
}

/** Connects (failing fast on a wrong password or no server) and starts taking runs. */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const log = options.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  await checkRedis(options.url);
  const { WaitingError, Worker } = await loadBullmq();
  const name = `${hostname()}:${process.pid}`;
  const say = (m: string) => log(`[worker ${name}] ${m}`);
  let giveUp: (reason: string) => void = () => {};
  const gaveUp = new Promise<never>((_, reject) => {
    giveUp = (reason) => reject(new Error(reason));
  });
  gaveUp.catch(() => {});
  const connection = openRedis(options.url, {
    outageSeconds: options.outageSeconds ?? REDIS_OUTAGE_SECONDS,
    onGiveUp: (reason) => giveUp(reason),
  });
  const stops = new Set<() => void>();
  const register = (stop: () => void) => {
    stops.add(stop);
    return () => stops.delete(stop);
  };
  let stopping = false;
  const threads = new ThreadPool();

  const process_ = async (job: Job<RunJob, RunOutcome>, token?: string): Promise<RunOutcome> => {
    const run = readRunJob(job.data);
    const attempt = `attempt ${job.attemptsMade + 1}/${job.opts.attempts ?? 1}`;
    say(`took ${run.runName} (${attempt})`);
    const t0 = performance.now();
    const { outcome, interrupted } = await threads.train(
      { job: run, worker: name, threads: options.threads ?? null, progressMs: 1000 },
      (p) => {
        job.updateProgress(p).catch(() => {}); // best effort: a Redis outage must not stop training
      },
      register,
    );
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    if (interrupted) {
      // Stopped by SIGTERM: checkpointed; back to waiting for another worker (not a failed attempt).
      say(`stopped ${run.runName} at step ${outcome.step}/${outcome.steps}, checkpointed, back in the queue`);
      await job.moveToWait(token);
      throw new WaitingError();
    }
    if (outcome.alreadyFinished) {
      say(`already-finished ${run.runName}: its folder holds all ${outcome.steps} steps; nothing trained`);
    } else {
      say(
        `finished ${run.runName}: steps ${outcome.resumedFrom}→${outcome.step}, loss ${outcome.loss?.toFixed(4) ?? "-"}, ` +
          `val loss ${outcome.valLoss?.toFixed(4) ?? "-"} (${seconds} s)`,
      );
    }
    return outcome;
  };

  const worker = new Worker<RunJob, RunOutcome>(QUEUE_NAME, process_, {
    connection,
    name,
    concurrency: options.concurrency ?? 1,
    lockDuration: options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS,
    stalledInterval: options.stalledIntervalMs ?? DEFAULT_STALLED_INTERVAL_MS,
    maxStalledCount: MAX_STALLED_COUNT,
    autorun: false,
  });
  let lastError = "";
  worker.on("error", (e) => {
    // During a Redis restart every command fails; say so once per kind of error, not per retry.
    if (e.message !== lastError) say(`Redis: ${e.message}`);
    lastError = e.message;
  });
  worker.on("ready", () => {
    lastError = "";
  });
  worker.on("failed", (job, e) => {
    if (job && !(e instanceof WaitingError) && e.name !== "WaitingError")
      say(`failed ${job.data.runName} (attempt ${job.attemptsMade}/${job.opts.attempts ?? 1}): ${e.message}`);
  });
  const running = worker.run();
  say(
    `taking runs from ${redactUrl(options.url)} (queue ${QUEUE_NAME}, concurrency ${options.concurrency ?? 1})`,
  );

  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      stopping = true;
      for (const s of stops) s();
      await worker.close();
      await threads.close();
      connection.disconnect();
    })();
    return stopped;
  };
  const done = Promise.race([running.then(() => stopped ?? undefined), gaveUp]).catch(async (e) => {
    if (!stopping) await worker.close(true).catch(() => {});
    await threads.close();
    connection.disconnect();
    throw e;
  });
  return { name, stop, done };
}
