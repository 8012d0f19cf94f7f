// What the run queue costs: the same N training runs trained directly (one after the other, in this
// process, as a local sweep trains them) and through the queue (a redis-server of its own with AOF on,
// one `afterscale worker` process, this process as the coordinator), alternating, twice each; prints the
// median wall times and their ratio, and what each queued run cost Redis (commands, memory) and the
// storage (checkpoint bytes). docs/scale-out.md records the result.
//   node dist/bench/queue.js [--runs 6] [--steps 400] [--model nano] [--reps 2] [--json]
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { type RunOutcome, recordOutcome, runOnQueue } from "../src/queue/index.js";
import { type TrainConfigInput, train } from "../src/train/index.js";
import { startRedis } from "../test/helpers/redis.js";
import { tinyDataset } from "../test/helpers/train-data.js";

const here = dirname(fileURLToPath(import.meta.url)); // dist/bench
const MAIN = join(here, "..", "src", "cli", "main.js");

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}
const runs = flag("runs", 6);
const steps = flag("steps", 400);
const reps = flag("reps", 2);
const model = (() => {
  const i = process.argv.indexOf("--model");
  return (i < 0 ? "nano" : process.argv[i + 1]!) as TrainConfigInput["model"];
})();
// A small prepared corpus (test/helpers): the runs' time is training, not the final whole-split evaluation.
const dataset = tinyDataset();
const json = process.argv.includes("--json");

const configs = (root: string): TrainConfigInput[] =>
  Array.from({ length: runs }, (_, i) => ({
    root,
    runName: `bench-${i}`,
    data: dataset.data,
    model,
    context: 64,
    batchSize: 8,
    steps,
    seed: i + 1,
    evalInterval: Math.ceil(steps / 5),
    checkpointInterval: Math.ceil(steps / 10),
    logInterval: 1000,
  }));

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

async function direct(): Promise<{ seconds: number; losses: (number | null)[] }> {
  const root = mkdtempSync(join(tmpdir(), "afterscale-bench-direct-"));
  try {
    const t0 = performance.now();
    const losses: (number | null)[] = [];
    for (const c of configs(root)) losses.push((await train(c, { quiet: true, log: () => {} })).loss);
    return { seconds: (performance.now() - t0) / 1000, losses };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

interface QueuedPass {
  seconds: number;
  losses: (number | null)[];
  commands: number;
  memoryBytes: number;
  checkpointBytes: number;
  parameters: number;
  keepCheckpoints: number;
  jobBytes: number;
  commandstats: { command: string; calls: number }[];
}

async function queued(url: string): Promise<QueuedPass> {
  const root = mkdtempSync(join(tmpdir(), "afterscale-bench-queue-"));
  const admin = new Redis(url);
  const worker = spawn(process.execPath, [MAIN, "worker", "--queue", url], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  worker.stderr!.on("data", (d) => (log += d));
  try {
    await admin.flushall();
    while (!/taking runs from/.test(log)) {
      if (worker.exitCode !== null) throw new Error(`the worker exited:\n${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const stat = async () => {
      const info = await admin.info();
      const get = (k: string) => Number(new RegExp(`^${k}:(\\d+)`, "m").exec(info)![1]);
      return { commands: get("total_commands_processed"), memory: get("used_memory") };
    };
    await admin.config("RESETSTAT");
    const before = await stat();
    const outcomes = new Map<string, RunOutcome>();
    const tasks = configs(root).map((c) => ({
      group: "bench",
      runName: String(c.runName),
      runDir: join(root, String(c.runName)),
      config: c,
    }));
    const options = {
      url,
      log: () => {},
      onResult: (t: { runName: string }, o: RunOutcome) => {
        outcomes.set(t.runName, o);
        recordOutcome(root, "bench", o);
      },
    };
    // Enqueue (detached), watch the completed count with one command every 100 ms (subtracted below),
    // then collect: so the commands counted are the workers' and the enqueue and collection's, not a
    // waiting coordinator's polling, whose cost depends on its poll interval (docs/scale-out.md).
    const t0 = performance.now();
    await runOnQueue(tasks, { ...options, detach: true });
    let polls = 0;
    while (Number(await admin.zcard("bull:afterscale-runs:completed")) < runs) {
      polls++;
      await new Promise((r) => setTimeout(r, 100));
    }
    polls++;
    const summary = await runOnQueue(tasks, options);
    const seconds = (performance.now() - t0) / 1000;
    const afterRun = await stat();
    // Which commands (scripts count once as EVALSHA, and their inner calls under their own names).
    const commandstats = [...(await admin.info("commandstats")).matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)]
      .map((m) => ({ command: m[1]!, calls: Number(m[2]) }))
      .sort((a, b) => b.calls - a.calls)
      .slice(0, 8);
    if (summary.failed.length > 0) throw new Error(`queued runs failed: ${JSON.stringify(summary.failed)}`);
    // The stored job (data, options, progress, return value) of one run, as Redis holds it.
    const jobBytes = Number(await admin.memory("USAGE", "bull:afterscale-runs:bench.bench-0"));
    const ckpts = readdirSync(join(root, "bench-0")).filter((f) => f.startsWith("ckpt-"));
    return {
      seconds,
      losses: configs(root).map((c) => outcomes.get(String(c.runName))?.loss ?? null),
      // INFO itself (once before, once after) and the completed-count polls are the bench's, not the queue's.
      commands: afterRun.commands - before.commands - polls - 1,
      memoryBytes: afterRun.memory - before.memory,
      checkpointBytes: dirBytes(join(root, "bench-0", ckpts[ckpts.length - 1]!)),
      parameters: outcomes.get("bench-0")!.parameters.total,
      keepCheckpoints: ckpts.length,
      jobBytes,
      commandstats,
    };
  } finally {
    worker.kill("SIGTERM");
    await new Promise((r) => worker.once("exit", r));
    admin.disconnect();
    rmSync(root, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

const redis = await startRedis();
try {
  const directs: Awaited<ReturnType<typeof direct>>[] = [];
  const queues: QueuedPass[] = [];
  for (let r = 0; r < reps; r++) {
    process.stderr.write(`rep ${r + 1}/${reps}: direct…`);
    directs.push(await direct());
    process.stderr.write(` ${directs[r]!.seconds.toFixed(2)} s; queue…`);
    queues.push(await queued(redis.url));
    process.stderr.write(` ${queues[r]!.seconds.toFixed(2)} s\n`);
  }
  const same = queues.every((q) => JSON.stringify(q.losses) === JSON.stringify(directs[0]!.losses));
  const d = median(directs.map((x) => x.seconds));
  const q = median(queues.map((x) => x.seconds));
  const last = queues[queues.length - 1]!;
  const result = {
    date: new Date().toISOString().slice(0, 10),
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    cores: cpus().length,
    runs,
    steps,
    model,
    directSeconds: d,
    queueSeconds: q,
    ratio: q / d,
    overheadPerRunSeconds: (q - d) / runs,
    sameLosses: same,
    redisCommandsPerRun: last.commands / runs,
    redisCommandsPerRunSecond: last.commands / runs / (q / runs),
    redisMemoryBytesPerRun: last.memoryBytes / runs,
    jobBytes: last.jobBytes,
    checkpointBytes: last.checkpointBytes,
    checkpointsKept: last.keepCheckpoints,
    parameters: last.parameters,
    checkpointBytesPerParameter: last.checkpointBytes / last.parameters,
    commandstats: last.commandstats,
  };
  if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else
    process.stdout.write(
      `${[
        `${runs} runs of ${steps} steps (${model}, a tiny byte-level corpus) on ${result.cpu} (${result.cores} cores), ${result.date}`,
        `directly: ${d.toFixed(2)} s; through the queue (1 worker): ${q.toFixed(2)} s; ratio ${result.ratio.toFixed(3)} ` +
          `(${(result.overheadPerRunSeconds * 1000).toFixed(0)} ms per run); same losses: ${same}`,
        `Redis per run: ${result.redisCommandsPerRun.toFixed(0)} commands (${result.redisCommandsPerRunSecond.toFixed(1)} per run-second, ` +
          `workers, enqueue and collection; no waiting coordinator's polling), ${(result.redisMemoryBytesPerRun / 1024).toFixed(1)} KiB memory, job ${result.jobBytes} bytes`,
        `commands by name (all runs): ${last.commandstats.map((c) => `${c.command} ${c.calls}`).join(", ")}`,
        `storage per run: ${(result.checkpointBytes / 1024).toFixed(0)} KiB per checkpoint (${result.parameters.toLocaleString("en-US")} parameters: ` +
          `${result.checkpointBytesPerParameter.toFixed(1)} bytes each), ${result.checkpointsKept} kept`,
      ].join("\n")}\n`,
    );
} finally {
  await redis.stop();
  rmSync(dataset.root, { recursive: true, force: true });
}
