// The library's documentation runs: every ```js example in docs/api.md (then README.md's) is executed as
// written, in order, in one empty folder that imports the package by its name (through package.json "exports").
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The ```js blocks of a markdown file, in order. */
function jsExamples(markdown: string): string[] {
  return [...markdown.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** A folder whose node_modules/afterscale is this checkout, as `npm install <checkout>` would link it. */
function userFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), "afterscale-api-"));
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(repo, join(dir, "node_modules", "afterscale"), "dir");
  return dir;
}

/** Runs an ES module in `dir` with a clean afterscale environment; returns its output. */
function run(
  dir: string,
  file: string,
  code: string,
): { status: number | null; stdout: string; stderr: string } {
  writeFileSync(join(dir, file), code);
  const env = { ...process.env };
  delete env.AFTERSCALE_HOME;
  const r = spawnSync(process.execPath, [file], { cwd: dir, env, encoding: "utf8", timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("docs/api.md and README.md: every library example runs as written, in order", async (t) => {
  const examples = jsExamples(readFileSync(join(repo, "docs", "api.md"), "utf8"));
  // Train, generate, evaluate, distil, tune, look inside, export, serve, fit, sweep: dropping one from the doc should be deliberate.
  assert.equal(examples.length, 10, "docs/api.md should have ten ```js examples");
  const dir = userFolder();
  const outputs: string[] = [];
  try {
    for (const [i, code] of examples.entries()) {
      const first = code.split("\n").find((l) => l.startsWith("import")) ?? "";
      await t.test(`example ${i + 1}: ${first}`, () => {
        const r = run(dir, `example-${i + 1}.mjs`, code);
        assert.equal(r.status, 0, `example ${i + 1} failed:\n${r.stdout}\n${r.stderr}`);
        outputs.push(r.stdout);
      });
    }
    // The README's example loads "runs/my-run": here, the run the first example trained.
    symlinkSync(join(dir, "runs", "tiny"), join(dir, "runs", "my-run"), "dir");
    const readme = jsExamples(readFileSync(join(repo, "README.md"), "utf8"));
    assert.ok(readme.length >= 1, "README.md's library example");
    for (const [i, code] of readme.entries()) {
      await t.test(`README.md example ${i + 1}`, () => {
        const r = run(dir, `readme-${i + 1}.mjs`, code);
        assert.equal(r.status, 0, `README.md example ${i + 1} failed:\n${r.stdout}\n${r.stderr}`);
        assert.ok(r.stdout.length > 0, "it should print the generated text");
      });
    }
    const all = outputs.join("\n");
    // What each example claims to show holds.
    assert.match(all, /tiny: 40 steps, 20480 tokens, val loss \d+\.\d{3}/);
    assert.match(all, /the stream gave the same text/);
    assert.match(all, /loss \d+\.\d{3} nats\/token, perplexity/);
    assert.match(all, /pattern 1,4,\d+,\d+, logits 1,\d+,512/);
    assert.match(all, /induction scores, layer 1: \d\.\d\d \d\.\d\d \d\.\d\d \d\.\d\d\n/);
    assert.match(all, /the Hugging Face copy generates the same text/);
    assert.match(all, /tiny at http:\/\/127\.0\.0\.1:\d+ answered 200: \d+ tokens/);
    // Epoch AI's published approach-3 estimate on these points is alpha 0.3478.
    assert.match(all, /alpha 0\.34\d\d \[/);
    assert.match(all, /trained 9 runs\n9 points/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("importing the library has no side effects: no output, no signal handlers, no native addon", () => {
  const dir = userFolder();
  try {
    // createRequire's cache is the one the backend's createRequire loads the addon into.
    const r = run(
      dir,
      "import.mjs",
      `import { createRequire } from "node:module";
const events = ["SIGINT", "SIGTERM", "exit"];
const before = events.map((e) => process.listenerCount(e));
const afterscale = await import("afterscale");
const added = events.filter((e, i) => process.listenerCount(e) !== before[i]);
const cache = createRequire(import.meta.url).cache;
const loaded = Object.keys(cache).some((p) => p.endsWith(".node"));
console.log(JSON.stringify({ added, loaded, exports: Object.keys(afterscale).length }));
`,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
    const seen = JSON.parse(r.stdout);
    assert.deepEqual({ added: seen.added, loaded: seen.loaded }, { added: [], loaded: false });
    assert.ok(seen.exports > 30, `expected the public API, got ${seen.exports} exports`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
