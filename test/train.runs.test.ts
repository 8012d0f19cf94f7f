// What `afterscale train` and `afterscale runs` report about a run: the final validation loss is the
// whole split (the same figure `afterscale eval` gives), resuming a finished run changes nothing, and a
// `running` row whose process is gone reads as interrupted (registries from older versions included).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { join, relative } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import {
  getRun,
  listRuns,
  REGISTRY_FILE,
  Registry,
  STALE_HEARTBEAT_SECONDS,
  train,
} from "../src/train/index.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const { root, data } = tinyDataset();
after(() => rmSync(root, { recursive: true, force: true }));

const quiet = { quiet: true, handleSignals: false, log: () => {} };

function afterscale(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every file under dir (relative path → sha256). */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out[relative(dir, path)] = createHash("sha256").update(readFileSync(path)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

/** The registry row of a run folder exactly as stored. */
function storedRow(registryRoot: string, runDir: string): unknown {
  const db = new Database(join(registryRoot, REGISTRY_FILE), { readonly: true });
  try {
    return db.prepare("SELECT * FROM runs WHERE run_dir = ?").get(runDir);
  } finally {
    db.close();
  }
}

test("train's final validation loss is the whole split, the figure afterscale eval gives", async () => {
  const r = await train(
    { ...tinyModel, data, root, runName: "final-eval", steps: 8, evalInterval: 4 },
    quiet,
  );
  assert.equal(r.valEstimate, false);
  // The estimate covers evalBatches 2 × batchSize 4 windows of 16 tokens; the split is larger.
  assert.ok(r.valTokens! > 2 * 4 * 16, `whole split: ${r.valTokens} tokens`);
  const ev = afterscale("eval", "--model", r.runDir, "--json");
  assert.equal(ev.status, 0, ev.stderr);
  const scored = JSON.parse(ev.stdout) as { loss: number; tokens: number };
  assert.equal(scored.tokens, r.valTokens);
  assert.equal(scored.loss, r.valLoss, "eval on the final checkpoint gives train's final valLoss");
});

test("resuming a finished run says so and changes nothing; a larger --steps continues it", async () => {
  const r = await train(
    { ...tinyModel, data, root, runName: "done", steps: 6, checkpointInterval: 3 },
    quiet,
  );
  assert.ok(r.tokensPerSecond! > 0);
  const files = hashTree(r.runDir);
  const row = storedRow(root, r.runDir);

  const json = afterscale("train", "--resume", r.runDir, "--json");
  assert.equal(json.status, 0, json.stderr);
  const again = JSON.parse(json.stdout) as Record<string, unknown>;
  assert.equal(again.alreadyFinished, true);
  assert.equal(again.interrupted, false);
  assert.equal(again.step, 6);
  assert.equal(again.loss, r.loss);
  assert.equal(again.valLoss, r.valLoss);
  assert.equal(again.valTokens, r.valTokens);
  assert.equal(again.valEstimate, false);
  assert.equal(again.tokensPerSecond, r.tokensPerSecond, "the recorded throughput, not 0");
  assert.equal(again.checkpoint, r.checkpoint);

  const text = afterscale("train", "--resume", r.runDir);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /already finished, nothing trained or changed/);
  assert.match(text.stdout, /validation loss \d+\.\d{4} \(whole split, [\d,]+ tokens\)/);
  assert.doesNotMatch(text.stdout, / 0 tokens\/s/);
  assert.match(text.stderr, /is already finished: step 6\/6; .* nothing changed/);

  assert.deepEqual(hashTree(r.runDir), files, "no file in the run folder changed");
  assert.deepEqual(storedRow(root, r.runDir), row, "the registry row is untouched");
  assert.equal(getRun(root, "done")!.status, "finished");

  const more = afterscale("train", "--resume", r.runDir, "--steps", "9", "--json");
  assert.equal(more.status, 0, more.stderr);
  const continued = JSON.parse(more.stdout) as Record<string, unknown>;
  assert.equal(continued.alreadyFinished, false);
  assert.equal(continued.resumedFrom, 6);
  assert.equal(continued.step, 9);
  const lines = readFileSync(join(r.runDir, "metrics.jsonl"), "utf8").trim().split("\n");
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { step: number }).step),
    [1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  const rec = getRun(root, "done")!;
  assert.equal(rec.status, "finished");
  assert.equal(rec.metrics!.step, 9);
  assert.equal(typeof rec.metrics!.tokensPerSecond, "number");
});

const OLD_SCHEMA = `
CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  created_at TEXT NOT NULL,
  finished_at TEXT,
  status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
  config TEXT NOT NULL,
  git_revision TEXT,
  machine TEXT NOT NULL,
  metrics TEXT,
  run_dir TEXT NOT NULL UNIQUE,
  sweep_id TEXT
);`;

test("a registry written by an older version opens, gains the new columns and keeps its rows", () => {
  const old = join(root, "old-registry");
  mkdirSync(old);
  const db = new Database(join(old, REGISTRY_FILE));
  db.exec(OLD_SCHEMA);
  const insert = db.prepare(
    `INSERT INTO runs (name, created_at, status, config, machine, metrics, run_dir)
     VALUES (?, '2026-01-01T00:00:00.000Z', ?, '{"steps": 10}', '{}', ?, ?)`,
  );
  insert.run("old-finished", "finished", '{"step": 10, "loss": 3.5}', join(old, "a"));
  insert.run("old-running", "running", null, join(old, "b"));
  db.close();

  const runs = listRuns(old);
  assert.deepEqual(
    runs.map((r) => [r.name, r.status, r.pid, r.host, r.heartbeatAt]),
    [
      ["old-finished", "finished", null, null, null],
      // No PID or heartbeat to judge by: an old row keeps its stored status.
      ["old-running", "running", null, null, null],
    ],
  );
  assert.equal(runs[0]!.metrics!.loss, 3.5);
  const check = new Database(join(old, REGISTRY_FILE), { readonly: true });
  const columns = (check.pragma("table_info(runs)") as { name: string }[]).map((c) => c.name);
  check.close();
  for (const c of ["pid", "host", "heartbeat_at"]) assert.ok(columns.includes(c), c);

  const registry = new Registry(old);
  try {
    const id = registry.recordStart({ name: "new", runDir: join(old, "c"), config: {}, gitRevision: null });
    assert.equal(registry.getRun(id)!.pid, process.pid);
    assert.equal(registry.getRun(id)!.status, "running");
  } finally {
    registry.close();
  }
});

test("a running row is interrupted when its process is gone, or its host's heartbeat is stale", () => {
  const dir = join(root, "stale");
  const registry = new Registry(dir);
  const id = registry.recordStart({ name: "r", runDir: join(dir, "r"), config: {}, gitRevision: null });
  const db = new Database(registry.path);
  const set = (host: string, pid: number, heartbeatAgoSeconds: number) =>
    db
      .prepare("UPDATE runs SET host = ?, pid = ?, heartbeat_at = ? WHERE id = ?")
      .run(host, pid, new Date(Date.now() - heartbeatAgoSeconds * 1000).toISOString(), id);
  try {
    assert.equal(registry.getRun(id)!.status, "running", "this process is alive");

    const exited = spawnSync(process.execPath, ["-e", ""]).pid!;
    set(hostname(), exited, 0);
    const gone = registry.getRun(id)!;
    assert.equal(gone.status, "interrupted");
    assert.equal(gone.staleReason, `process ${exited} on ${hostname()} is gone`);
    assert.equal(gone.resumeCommand, `npx afterscale train --resume ${join(dir, "r")}`);

    // Another host: its PIDs mean nothing here, only the heartbeat does.
    set("some-other-host", exited, 5);
    assert.equal(registry.getRun(id)!.status, "running");
    set("some-other-host", exited, STALE_HEARTBEAT_SECONDS + 60);
    const stale = registry.getRun(id)!;
    assert.equal(stale.status, "interrupted");
    assert.match(stale.staleReason!, /^no heartbeat from some-other-host for \d+ s/);
    assert.equal(stale.recordedStatus, "running", "reading does not rewrite the row");

    registry.recordFinish(id, "finished", null);
    assert.equal(registry.getRun(id)!.status, "finished", "only running rows are judged");
  } finally {
    db.close();
    registry.close();
  }
});
