// `afterscale worker` (train runs from the queue until stopped) and `afterscale queue status`.
import type { Command } from "commander";
import {
  DEFAULT_LOCK_DURATION_MS,
  DEFAULT_STALLED_INTERVAL_MS,
  formatQueueStatus,
  queueStatus,
  REDIS_OUTAGE_SECONDS,
  startWorker,
} from "../queue/index.js";
import { int, output } from "./options.js";

const QUEUE_URL_HELP =
  "Redis URL: redis://[user:pass@]host:port[/db], or rediss:// for TLS (a password can come from " +
  "AFTERSCALE_REDIS_PASSWORD instead, out of ps and shell history)";

export function registerQueueCommands(program: Command): void {
  program
    .command("worker")
    .description(
      "Train runs from the queue (sweeps and studies started with --queue) until stopped; run folders must be on " +
        "storage every worker and the coordinator reach at the same path. SIGTERM/SIGINT: checkpoint the current " +
        "runs, put them back in the queue, exit",
    )
    .requiredOption("--queue <url>", QUEUE_URL_HELP)
    .option("--concurrency <n>", "runs trained at once, each in a thread of its own", int(1, 256), 1)
    .option(
      "--threads <n>",
      "kernel threads of the native backend (default: the machine's cores)",
      int(1, 1024),
    )
    .option(
      "--lock-ms <ms>",
      "job lock duration: a worker that dies (SIGKILL, lost machine) loses its runs to others after about this",
      int(1000),
      DEFAULT_LOCK_DURATION_MS,
    )
    .option(
      "--stalled-interval-ms <ms>",
      "how often to look for runs of dead workers",
      int(500),
      DEFAULT_STALLED_INTERVAL_MS,
    )
    .option(
      "--outage-seconds <s>",
      "exit after Redis has been unreachable this long",
      int(1),
      REDIS_OUTAGE_SECONDS,
    )
    .action(async (o) => {
      const worker = await startWorker({
        url: o.queue,
        concurrency: o.concurrency,
        threads: o.threads ?? null,
        lockDurationMs: o.lockMs,
        stalledIntervalMs: o.stalledIntervalMs,
        outageSeconds: o.outageSeconds,
      });
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        if (++signals > 1) process.exit(130);
        process.stderr.write(
          `${sig}: checkpointing the current runs, returning them to the queue, then exiting (again to quit at once)\n`,
        );
        void worker.stop();
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        await worker.done;
        process.stderr.write(`[worker ${worker.name}] stopped\n`);
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });

  const queue = program.command("queue").description("The run queue on Redis (see docs/scale-out.md)");
  queue
    .command("status")
    .description(
      "Waiting, active, done and failed runs; the worker, step and loss of each active run; each failure's error",
    )
    .argument("<url>", QUEUE_URL_HELP)
    .option("--json", "print the status as JSON", false)
    .action(async (url: string, o) => {
      const s = await queueStatus(url);
      output(o.json, s, () => formatQueueStatus(s));
    });
}
