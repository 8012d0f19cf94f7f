// `afterscale queue status`: what the queue holds — waiting, active, done and failed runs; who trains each
// active run, at which step and loss; each failure's error; the workers connected.
import { checkRedis, loadBullmq, openRedis, redactUrl } from "./connection.js";
import { QUEUE_NAME, type RunJob, type RunOutcome, type RunProgress } from "./jobs.js";

export interface QueueStatus {
  url: string;
  queue: string;
  counts: { waiting: number; active: number; done: number; failed: number; retrying: number };
  active: {
    run: string;
    group: string;
    worker: string;
    step: number | null;
    steps: number | null;
    loss: number | null;
  }[];
  failed: { run: string; group: string; attempts: number; error: string }[];
  workers: string[];
}

/** Lists of at most this many jobs per state (the counts are always complete). */
const LIST_LIMIT = 200;

export async function queueStatus(url: string): Promise<QueueStatus> {
  await checkRedis(url);
  const { Queue } = await loadBullmq();
  const connection = openRedis(url, { outageSeconds: 5 });
  const queue = new Queue<RunJob, RunOutcome>(QUEUE_NAME, { connection });
  queue.on("error", () => {});
  try {
    const c = await queue.getJobCounts("waiting", "prioritized", "active", "completed", "failed", "delayed");
    const active = (await queue.getActive(0, LIST_LIMIT - 1)).map((job) => {
      const p = job.progress as RunProgress | number;
      const progress = typeof p === "object" && p !== null ? p : null;
      return {
        run: job.data.runName,
        group: job.data.group,
        worker: progress?.worker ?? job.processedBy ?? "?",
        step: progress?.step ?? null,
        steps: progress?.steps ?? null,
        loss: progress?.loss ?? null,
      };
    });
    const failed = (await queue.getFailed(0, LIST_LIMIT - 1)).map((job) => ({
      run: job.data.runName,
      group: job.data.group,
      attempts: job.attemptsMade,
      error: job.failedReason,
    }));
    const workers = (await queue.getWorkers()).map((w) => String(w.name ?? w.id ?? "?"));
    return {
      url: redactUrl(url),
      queue: QUEUE_NAME,
      counts: {
        waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
        active: c.active ?? 0,
        done: c.completed ?? 0,
        failed: c.failed ?? 0,
        retrying: c.delayed ?? 0,
      },
      active,
      failed,
      workers,
    };
  } finally {
    await queue.close().catch(() => {});
    connection.disconnect();
  }
}

export function formatQueueStatus(s: QueueStatus): string {
  const lines = [
    `queue ${s.queue} at ${s.url}: ${s.counts.waiting} waiting, ${s.counts.active} active, ${s.counts.done} done, ` +
      `${s.counts.failed} failed${s.counts.retrying ? `, ${s.counts.retrying} waiting to retry` : ""}; ` +
      `${s.workers.length} worker${s.workers.length === 1 ? "" : "s"} connected`,
  ];
  for (const a of s.active) {
    const at = a.step === null ? "starting" : `step ${a.step}/${a.steps}, loss ${a.loss?.toFixed(4) ?? "-"}`;
    lines.push(`  active  ${a.run} (${a.group}) on ${a.worker}: ${at}`);
  }
  for (const f of s.failed)
    lines.push(`  failed  ${f.run} (${f.group}) after ${f.attempts} attempts: ${f.error}`);
  return lines.join("\n");
}
