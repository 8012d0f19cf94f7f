// Without a loadable addon afterscale says so once, clearly, and computes on the reference backend.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const tensorIndex = fileURLToPath(new URL("../src/tensor/index.js", import.meta.url));

const dir = mkdtempSync(join(tmpdir(), "afterscale-fallback-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(env: Record<string, string>) {
  const script = join(dir, "load.mjs");
  writeFileSync(
    script,
    `import * as T from ${JSON.stringify(tensorIndex)};
     import { backend } from ${JSON.stringify(tensorIndex.replace("tensor", "backend"))};
     const a = T.tensor([1, 2, 3, 4], [2, 2]);
     const b = T.matmul(a, a);
     T.matmul(b, a);
     console.log(JSON.stringify({ backend: backend().name, values: Array.from(b.data) }));`,
  );
  return spawnSync(process.execPath, [script], { env: { ...process.env, ...env }, encoding: "utf8" });
}

test("a missing addon: one clear warning, then the reference backend", () => {
  const r = run({ AFTERSCALE_NATIVE_PATH: "/nonexistent/afterscale_native.node", AFTERSCALE_BACKEND: "" });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.backend, "reference");
  assert.deepEqual(out.values, [7, 10, 15, 22]);
  const warnings = r.stderr.split("\n").filter((l) => l.includes("native backend unavailable"));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0]!, /nonexistent.*using the reference backend/);
});

test("AFTERSCALE_BACKEND=native without an addon is an error, and a bad name is named", () => {
  const forced = run({ AFTERSCALE_NATIVE_PATH: "/nonexistent/x.node", AFTERSCALE_BACKEND: "native" });
  assert.notEqual(forced.status, 0);
  assert.match(forced.stderr, /AFTERSCALE_BACKEND=native but the native addon could not be loaded/);
  const bad = run({ AFTERSCALE_BACKEND: "gpu" });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /AFTERSCALE_BACKEND=gpu: expected "native" or "reference"/);
});

test("the default is native when the addon loads", () => {
  const r = run({ AFTERSCALE_BACKEND: "" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).backend, "native");
});
