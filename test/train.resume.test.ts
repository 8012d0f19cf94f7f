// Exact resume across a SIGKILL, and a clean stop on SIGINT, with real child processes.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { formatRunsTable, getRun, listRuns } from "../src/train/index.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const child = fileURLToPath(new URL("./helpers/train-child.js", import.meta.url));
const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const { root, data } = tinyDataset();
after(() => rmSync(root, { recursive: true, force: true }));

interface Run {
  proc: ChildProcess;
  /** Resolves with the exit code (or signal) and every JSON line printed. */
  done: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    lines: Record<string, unknown>[];
    stderr: string;
  }>;
}

/** Starts the child; `onLine` sees each JSON line as it arrives. */
function start(
  arg: unknown,
  onLine: (line: Record<string, unknown>, proc: ChildProcess) => void = () => {},
): Run {
  const proc = spawn(process.execPath, [child, JSON.stringify(arg)], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: Record<string, unknown>[] = [];
  let buf = "";
  let stderr = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString("utf8");
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      lines.push(line);
      onLine(line, proc);
    }
  });
  proc.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  const done = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    lines: Record<string, unknown>[];
    stderr: string;
  }>((resolve) => proc.on("close", (code, signal) => resolve({ code, signal, lines, stderr })));
  return { proc, done };
}

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

const config = (runName: string, optimizer: "adamw" | "muon" = "adamw", precision = "fp32") => ({
  ...tinyModel,
  optimizer,
  precision,
  data,
  root,
  runName,
  steps: 30,
  dropout: 0.1, // dropout masks must also be reproduced exactly
  gradAccum: 2,
  evalInterval: 10,
  checkpointInterval: 8,
  keepCheckpoints: 2,
});

// bf16-mixed: the step's products run in the bf16 GEMM (64-row products), the master weights stay float32.
for (const [optimizer, precision] of [
  ["adamw", "fp32"],
  ["muon", "fp32"],
  ["adamw", "bf16-mixed"],
] as const) {
  const tag = precision === "fp32" ? optimizer : `${optimizer}-${precision}`;
  test(`a run killed with SIGKILL and resumed ends with bit-identical weights and ${optimizer} state (${precision})`, async () => {
    const straight = await start({ config: config(`straight-${tag}`, optimizer, precision) }).done;
    assert.equal(straight.code, 0, straight.stderr);

    // Kill right after the first checkpoint; each step then spins 30 ms so the kill lands mid-run.
    let killedAfter = -1;
    let whileRunning: ReturnType<typeof getRun> = null;
    let killedPid = -1;
    const killed = await start(
      { config: config(`killed-${tag}`, optimizer, precision), slowMs: 30 },
      (line, proc) => {
        if (typeof line.checkpoint === "number" && killedAfter < 0) {
          killedAfter = line.checkpoint;
          whileRunning = getRun(root, `killed-${tag}`);
          killedPid = proc.pid!;
          proc.kill("SIGKILL");
        }
      },
    ).done;
    assert.equal(killed.signal, "SIGKILL");
    assert.equal(killedAfter, 8);
    const lastStep = Math.max(
      ...killed.lines.filter((l) => typeof l.step === "number").map((l) => l.step as number),
    );
    assert.ok(lastStep < 30, "killed before the end");
    const live = whileRunning as ReturnType<typeof getRun>;
    assert.equal(live?.status, "running", "a live run is running");
    assert.equal(live?.host, hostname());
    assert.equal(live?.pid, killedPid);
    assert.ok(live!.heartbeatAt! > live!.createdAt, "the checkpoint refreshed the heartbeat");

    // The killed run could not record its end, but its process is gone: it reads as interrupted.
    const dead = getRun(root, `killed-${tag}`)!;
    const resumeCommand = `npx afterscale train --resume ${join(root, `killed-${tag}`)}`;
    assert.equal(dead.recordedStatus, "running");
    assert.equal(dead.status, "interrupted");
    assert.match(dead.staleReason ?? "", new RegExp(`^process ${killedPid} on .+ is gone$`));
    assert.equal(dead.resumeCommand, resumeCommand);
    assert.deepEqual(
      listRuns(root, { status: "interrupted" }).map((r) => r.name),
      [`killed-${tag}`],
    );
    assert.ok(formatRunsTable(listRuns(root)).includes(`\n  ${resumeCommand}\n`));
    const runsJson = spawnSync(process.execPath, [cli, "runs", "--root", root, "--json"], {
      encoding: "utf8",
    });
    assert.equal(runsJson.status, 0, runsJson.stderr);
    const shown = (
      JSON.parse(runsJson.stdout) as { name: string; status: string; resumeCommand: string }[]
    ).find((r) => r.name === `killed-${tag}`);
    assert.equal(shown?.status, "interrupted");
    assert.equal(shown?.resumeCommand, resumeCommand);

    const resumed = await start({ config: config(`killed-${tag}`, optimizer, precision), resume: true }).done;
    assert.equal(resumed.code, 0, resumed.stderr);
    const result = resumed.lines.at(-1)!.result as { step: number; resumedFrom: number };
    assert.equal(result.step, 30);
    assert.ok(result.resumedFrom >= 8 && result.resumedFrom < 30, `resumed from ${result.resumedFrom}`);

    for (const file of ["model.safetensors", "optimizer.safetensors"]) {
      assert.equal(
        sha(join(root, `killed-${tag}`, "ckpt-30", file)),
        sha(join(root, `straight-${tag}`, "ckpt-30", file)),
        `${file} differs from the uninterrupted run`,
      );
    }
    const metrics = (run: string) =>
      readFileSync(join(root, run, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map(
          (l) => JSON.parse(l) as { step: number; loss: number; valLoss?: number; valLossEstimate?: number },
        );
    const a = metrics(`straight-${tag}`);
    const b = metrics(`killed-${tag}`);
    assert.deepEqual(
      b.map((l) => l.step),
      a.map((l) => l.step),
      "one metrics line per step, none repeated",
    );
    assert.deepEqual(
      b.map((l) => [l.loss, l.valLossEstimate, l.valLoss]),
      a.map((l) => [l.loss, l.valLossEstimate, l.valLoss]),
    );
    const finished = getRun(root, `killed-${tag}`)!;
    assert.equal(finished.status, "finished");
    assert.equal(finished.resumeCommand, null);
  });
}

test("SIGINT saves a checkpoint and exits cleanly", async () => {
  let sent = false;
  const run = await start({ config: { ...config("interrupted"), steps: 1000 }, slowMs: 10 }, (line, proc) => {
    if (line.step === 3 && !sent) {
      sent = true;
      proc.kill("SIGINT");
    }
  }).done;
  assert.equal(run.code, 0, run.stderr);
  const result = run.lines.at(-1)!.result as { step: number; interrupted: boolean; checkpoint: string };
  assert.equal(result.interrupted, true);
  assert.ok(result.step >= 3 && result.step < 1000);
  assert.equal(result.checkpoint, join(root, "interrupted", `ckpt-${result.step}`));
  assert.ok(existsSync(join(result.checkpoint, "state.json")));
  assert.deepEqual(
    readdirSync(join(root, "interrupted")).filter((f) => f.startsWith(".")),
    [],
    "no temporary folders left",
  );
  assert.equal(getRun(root, "interrupted")!.status, "interrupted");
});
