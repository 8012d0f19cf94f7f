// The run queue against a real redis-server (AOF on) and real worker processes: a 16-run sweep through 3
// workers with one SIGKILLed mid-run and one Redis restart (every run done exactly once, every loss equal
// bit for bit to the same sweep run locally), a run that fails deterministically, a worker stopped by
// SIGTERM, and wrong passwords.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { checkRedis, queueStatus, runOnQueue } from "../src/queue/index.js";
import { planSweep, runSweep, runSweepOnQueue } from "../src/scaling/sweep.js";
import { estimateStudy, finishedRuns, planStudy, runStudy } from "../src/study/index.js";
import { listRuns, parseTrainConfig, runDirOf, train } from "../src/train/index.js";
import { noRedisServer, startRedis, type TestRedis, TLS_CERT } from "./helpers/redis.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const { root, data } = tinyDataset();
let redis: TestRedis;
const workers: { child: ChildProcess; log: () => string }[] = [];

before(async () => {
  if (!noRedisServer) redis = await startRedis();
});
after(async () => {
  for (const w of workers)
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
  await redis?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** `afterscale worker` as a process of its own, with short locks so a killed worker's runs move on fast. */
function spawnWorker(url = redis.url): { child: ChildProcess; log: () => string } {
  const child = spawn(
    process.execPath,
    [MAIN, "worker", "--queue", url, "--lock-ms", "3000", "--stalled-interval-ms", "1000"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  child.stdout!.on("data", (d) => (log += d));
  child.stderr!.on("data", (d) => (log += d));
  const w = { child, log: () => log };
  workers.push(w);
  return w;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once("exit", (code) => r(code)));
}

/** SIGTERM to each worker still running, and their exits. */
async function stopWorkers(): Promise<void> {
  await Promise.all(
    workers.map((w) => {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGTERM");
      return exited(w.child);
    }),
  );
}

async function until(what: string, ok: () => boolean, seconds = 60): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const count = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].length;
const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

test("a 16-run sweep on 3 worker processes, one SIGKILLed mid-run and one Redis restart: every run done exactly once, losses equal to a local sweep", {
  skip: noRedisServer,
  timeout: 100_000,
}, async () => {
  const shared = { data, batchSize: 4, context: 16, lr: 1e-2, evalBatches: 2, logInterval: 1000 };
  const sweep = (r: string) =>
    planSweep({
      sweepId: "grid",
      budgets: [5e7, 1e8, 2e8, 4e8],
      sizesPerBudget: 4,
      spread: 4,
      train: { ...shared, root: r },
    });
  const plan = sweep(join(root, "queued"));
  assert.equal(plan.runs.length, 16);
  const longest = plan.runs.reduce((a, b) => (b.steps > a.steps ? b : a));
  const pool = [spawnWorker(), spawnWorker(), spawnWorker()];
  const all = () => pool.map((w) => w.log()).join("");

  const coordinator = runSweepOnQueue(plan, { url: redis.url, pollMs: 100, log: () => {} });
  // Redis restarts once a few runs are done (SIGTERM, then started again on its append-only file).
  await until("4 finished runs", () => count(all(), /\] finished /g) >= 4);
  await redis.restart();
  // The worker that takes the longest run is SIGKILLed once the run has a checkpoint and is not done.
  const longestDir = runDirOf(parseTrainConfig(longest.config));
  const took = new RegExp(`took ${reEscape(longest.name)} `);
  await until(`a worker taking ${longest.name}`, () => pool.some((w) => took.test(w.log())));
  const victim = pool.find((w) => took.test(w.log()))!;
  await until(
    `a checkpoint of ${longest.name}`,
    () => existsSync(longestDir) && readdirSync(longestDir).some((f) => /^ckpt-\d+$/.test(f)),
  );
  assert.doesNotMatch(victim.log(), new RegExp(`finished ${reEscape(longest.name)}:`), "killed too late");
  victim.child.kill("SIGKILL");
  const summary = await coordinator;

  assert.deepEqual(summary.failed, []);
  assert.deepEqual(summary.pending, []);
  assert.equal(summary.completed.length, 16);
  // Exactly once: one worker trained each run to its end (the killed worker never finished its run).
  for (const run of plan.runs) {
    assert.equal(count(all(), new RegExp(`\\] finished ${reEscape(run.name)}:`, "g")), 1, run.name);
  }
  const resumed = new RegExp(`finished ${reEscape(longest.name)}: steps (\\d+)→${longest.steps}`).exec(all());
  assert.ok(resumed && Number(resumed[1]) > 0, `${longest.name} resumed from a checkpoint`);
  assert.doesNotMatch(victim.log(), resumed[0] ? new RegExp(reEscape(resumed[0])) : /$^/);

  // The coordinator wrote the registry: 16 finished runs of the sweep, trained on the workers.
  const queued = listRuns(join(root, "queued"), { sweepId: "grid" });
  assert.equal(queued.length, 16);
  for (const rec of queued) {
    assert.equal(rec.status, "finished", rec.name);
    assert.match(String(rec.metrics?.worker), /:\d+$/);
    assert.ok(Array.isArray((rec.metrics as { evals?: unknown[] }).evals), "sweep fields annotated");
  }
  const status = await queueStatus(redis.url);
  assert.equal(status.counts.done, 16);
  assert.equal(status.counts.failed, 0);

  // The same sweep run here: the same losses, bit for bit (the killed run included).
  await runSweep(sweep(join(root, "local")), { quiet: true, log: () => {} });
  const local = new Map(listRuns(join(root, "local"), { sweepId: "grid" }).map((r) => [r.name, r]));
  for (const rec of queued) {
    const l = local.get(rec.name)!;
    assert.equal(rec.metrics?.loss, l.metrics?.loss, `${rec.name} loss`);
    assert.equal(rec.metrics?.valLoss, l.metrics?.valLoss, `${rec.name} val loss`);
    assert.equal(rec.metrics?.step, l.metrics?.step);
  }
  await stopWorkers();
});

test("a run that fails deterministically is tried a bounded number of times, then failed with its error; the coordinator reports it and returns", {
  skip: noRedisServer,
  timeout: 60_000,
}, async () => {
  const good = { ...tinyModel, root: join(root, "fail"), data, steps: 6, evalInterval: 0, runName: "good" };
  const bad = { ...good, data: join(root, "no-such-dataset"), runName: "bad" };
  const task = (c: typeof good) => ({
    group: "failing",
    runName: c.runName,
    runDir: join(root, "fail", c.runName),
    config: c,
  });
  const w = spawnWorker();
  const outcomes: string[] = [];
  const summary = await runOnQueue([task(good), task(bad)], {
    url: redis.url,
    attempts: 2,
    pollMs: 100,
    log: () => {},
    onResult: (t) => outcomes.push(t.runName),
  });
  assert.deepEqual(summary.completed, ["good"]);
  assert.deepEqual(outcomes, ["good"]);
  assert.equal(summary.failed.length, 1);
  assert.equal(summary.failed[0]!.runName, "bad");
  assert.match(summary.failed[0]!.error, /no-such-dataset/);
  assert.equal(count(w.log(), /took bad /g), 2, "two attempts, no more");

  const status = await queueStatus(redis.url);
  const failed = status.failed.find((f) => f.run === "bad");
  assert.ok(failed, "queue status lists the failure");
  assert.equal(failed.attempts, 2);
  assert.match(failed.error, /no-such-dataset/);
  // The command's JSON says the same.
  const cli = spawn(process.execPath, [MAIN, "queue", "status", redis.url, "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  cli.stdout!.on("data", (d) => (out += d));
  assert.equal(await exited(cli), 0);
  const json = JSON.parse(out) as { counts: { failed: number }; failed: { run: string; error: string }[] };
  assert.ok(json.counts.failed >= 1);
  assert.match(json.failed.find((f) => f.run === "bad")!.error, /no-such-dataset/);
  await stopWorkers();
});

test("rediss:// (TLS): queue commands work with the server's CA given to Node, and say what to do without it", {
  skip: noRedisServer,
  timeout: 30_000,
}, async () => {
  const secure = await startRedis({ tls: true });
  try {
    const status = (env: NodeJS.ProcessEnv) => {
      const cli = spawn(process.execPath, [MAIN, "queue", "status", secure.url, "--json"], {
        stdio: ["ignore", "pipe", "pipe"],
        env,
      });
      let out = "";
      cli.stdout!.on("data", (d) => (out += d));
      cli.stderr!.on("data", (d) => (out += d));
      return exited(cli).then((code) => ({ code, out }));
    };
    const trusted = await status({ ...process.env, NODE_EXTRA_CA_CERTS: TLS_CERT });
    assert.equal(trusted.code, 0, trusted.out);
    const json = JSON.parse(trusted.out) as { url: string; counts: { waiting: number } };
    assert.match(json.url, /^rediss:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(json.counts.waiting, 0);
    const { NODE_EXTRA_CA_CERTS: _, ...plain } = process.env;
    const untrusted = await status(plain);
    assert.equal(untrusted.code, 1);
    assert.match(
      untrusted.out,
      /TLS certificate is not trusted \(self-signed certificate\).*NODE_EXTRA_CA_CERTS/,
    );
  } finally {
    await secure.stop();
  }
});

test("SIGTERM: the worker checkpoints its run, returns it to the queue and exits; another worker finishes it with the uninterrupted run's losses", {
  skip: noRedisServer,
  timeout: 60_000,
}, async () => {
  const config = {
    ...tinyModel,
    root: join(root, "term"),
    data,
    steps: 400,
    checkpointInterval: 50,
    evalInterval: 0,
    runName: "long",
  };
  const runDir = join(root, "term", "long");
  const first = spawnWorker();
  await until("the worker to start", () => /taking runs from/.test(first.log()));
  const coordinator = runOnQueue([{ group: "term", runName: "long", runDir, config }], {
    url: redis.url,
    pollMs: 100,
    log: () => {},
    onResult: () => {},
  });
  await until(
    "a checkpoint",
    () => existsSync(runDir) && readdirSync(runDir).some((f) => /^ckpt-\d+$/.test(f)),
  );
  first.child.kill("SIGTERM");
  assert.equal(await exited(first.child), 0);
  assert.match(first.log(), /stopped long at step \d+\/400, checkpointed, back in the queue/);
  const second = spawnWorker();
  const summary = await coordinator;
  assert.deepEqual(summary.completed, ["long"]);
  assert.match(second.log(), /finished long: steps [1-9]\d*→400/);

  const reference = await train(
    { ...config, root: join(root, "term-local") },
    { quiet: true, registry: false },
  );
  const resumed = await train(config, { resume: true, quiet: true, registry: false });
  assert.ok(resumed.alreadyFinished);
  assert.equal(resumed.loss, reference.loss);
  assert.equal(resumed.valLoss, reference.valLoss);
});

test("a study through the queue: detached, the learning-rate phase is enqueued; resumed, every phase is collected with the losses of a local study", {
  skip: noRedisServer,
  timeout: 90_000,
}, async () => {
  await stopWorkers();
  const options = (r: string) => ({
    studyId: "qstudy",
    recipes: ["gpt2", "llama"],
    budgets: [3e7, 6e7],
    seeds: [1],
    train: {
      root: r,
      data,
      model: "nano",
      dModel: 48,
      layers: 2,
      heads: 4,
      context: 16,
      batchSize: 4,
      logInterval: 1000,
    } as const,
    log: () => {},
  });
  const plan = planStudy(options(join(root, "study-queued")));
  const queue = { url: redis.url, pollMs: 100 };
  const detached = await runStudy(plan, { quiet: true, queue: { ...queue, detach: true } });
  assert.equal(detached.completed.length, 0);
  assert.equal(detached.pending.length, 2 * 3, "the two recipes' learning-rate sweeps");
  spawnWorker();
  spawnWorker();
  const collected = await runStudy(plan, { quiet: true, queue });
  assert.deepEqual(collected.failed, []);
  assert.deepEqual(collected.pending, []);
  assert.equal(collected.interrupted, null);
  assert.deepEqual(estimateStudy(plan, { bootstrap: 50 }).missing, []);

  const localPlan = planStudy(options(join(root, "study-local")));
  await runStudy(localPlan, { quiet: true });
  const viaQueue = finishedRuns(plan);
  const local = finishedRuns(localPlan);
  assert.deepEqual([...viaQueue.keys()].sort(), [...local.keys()].sort());
  for (const [name, r] of viaQueue) assert.equal(r.loss, local.get(name)!.loss, name);
  await stopWorkers();
});

test("a wrong or missing password fails at once with a clear error (no retrying forever); AFTERSCALE_REDIS_PASSWORD", {
  skip: noRedisServer,
  timeout: 30_000,
}, async () => {
  const locked = await startRedis({ password: "right-password" });
  try {
    const port = locked.port;
    await checkRedis(locked.url);
    await assert.rejects(
      checkRedis(`redis://:wrong@127.0.0.1:${port}`),
      /refused the user name or password \(WRONGPASS/,
    );
    await assert.rejects(checkRedis(`redis://127.0.0.1:${port}`), /requires a password/);
    const t0 = performance.now();
    const w = spawnWorker(`redis://:wrong@127.0.0.1:${port}`);
    assert.equal(await exited(w.child), 1);
    assert.ok(performance.now() - t0 < 15_000);
    assert.match(
      w.log(),
      /afterscale: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the user name or password/,
    );
    assert.doesNotMatch(w.log(), /wrong/, "the password is not printed");

    // AFTERSCALE_REDIS_PASSWORD keeps the password off the command line; a password in the URL wins.
    const bare = `redis://127.0.0.1:${port}`;
    process.env.AFTERSCALE_REDIS_PASSWORD = "right-password";
    try {
      await checkRedis(bare);
      await assert.rejects(checkRedis(`redis://:wrong@127.0.0.1:${port}`), /WRONGPASS/);
      process.env.AFTERSCALE_REDIS_PASSWORD = "wrong";
      await checkRedis(locked.url);
      await assert.rejects(checkRedis(bare), /refused the user name or password/);
    } finally {
      delete process.env.AFTERSCALE_REDIS_PASSWORD;
    }
    await assert.rejects(checkRedis(bare), /requires a password: set AFTERSCALE_REDIS_PASSWORD/);
    const cli = spawn(process.execPath, [MAIN, "queue", "status", bare, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, AFTERSCALE_REDIS_PASSWORD: "right-password" },
    });
    let out = "";
    cli.stdout!.on("data", (d) => (out += d));
    cli.stderr!.on("data", (d) => (out += d));
    assert.equal(await exited(cli), 0, out);
    assert.ok((JSON.parse(out) as { counts: object }).counts);
  } finally {
    await locked.stop();
  }
});
