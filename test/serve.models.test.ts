// `serve` finds its model as every other command does (loadModel): a run by name, a GGUF file, a Hugging Face
// folder. Each served model answers completions, the text is the loaded model's own (the same greedy text as
// generate() on the imported model), and `serve --json` announces what it loaded in one line on stdout.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { generate } from "../src/infer/index.js";
import { exportModel, importModel } from "../src/io/index.js";
import { type RunningServer, startServer } from "../src/serve/index.js";
import { train } from "../src/train/index.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const RUN = "served-by-name";
let root: string;
let exports: string;
let gguf: string;
let hf: string;

before(async () => {
  const ds = tinyDataset();
  root = ds.root;
  const config = {
    ...tinyModel,
    data: ds.data,
    root,
    runName: RUN,
    steps: 4,
    evalInterval: 4,
    checkpointInterval: 4,
  };
  await train(config, { quiet: true, handleSignals: false, log: () => {} });
  exports = mkdtempSync(join(tmpdir(), "afterscale-serve-models-"));
  const tokenizer = ioTokenizer();
  gguf = join(exports, "tiny-llama.gguf");
  exportModel(ioModel("llama", tokenizer.vocabSize, false), tokenizer, { format: "gguf", out: gguf });
  hf = join(exports, "tiny-gpt2");
  exportModel(ioModel("gpt2", tokenizer.vocabSize, true), tokenizer, { format: "hf", out: hf });
});

after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(exports, { recursive: true, force: true });
});

interface Completion {
  model: string;
  choices: { text: string; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

async function complete(url: string, body: object, headers: Record<string, string> = {}) {
  const r = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const json = await r.json();
  assert.equal(r.status, 200, JSON.stringify(json));
  return json as Completion;
}

async function withServer(
  options: Parameters<typeof startServer>[0],
  fn: (s: RunningServer) => Promise<void>,
) {
  const server = await startServer({ port: 0, ...options });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

/** Greedy text of the imported file, served, equals generate() on the same import in this thread. */
async function servesImport(path: string, id: string, family: string, format: string): Promise<void> {
  await withServer({ modelSpec: path }, async (server) => {
    assert.equal(server.modelId, id, "the default model id is the file or folder name");
    assert.equal(server.engine.config.family, family);
    assert.equal(server.engine.loaded.source, `${format} ${path}`);
    assert.equal(server.engine.step, null);
    const r = await complete(server.url, {
      model: id,
      prompt: "The quick brown",
      max_tokens: 12,
      temperature: 0,
      ignore_eos: true,
    });
    assert.equal(r.model, id);
    assert.equal(r.choices[0]!.finish_reason, "length");
    assert.equal(r.usage.completion_tokens, 12);
    const imported = importModel(path);
    const want = generate(imported.model, imported.tokenizer!, "The quick brown", {
      maxTokens: 12,
      temperature: 0,
      stopAtEndOfText: false,
    });
    assert.equal(r.usage.prompt_tokens, want.promptTokens);
    assert.ok(want.text.length > 0);
    assert.equal(r.choices[0]!.text, want.text);
  });
}

describe("serve resolves --model through loadModel", () => {
  test("a run by name (looked up in the registry): its newest checkpoint, named after the run", async () => {
    await withServer({ modelSpec: RUN, root }, async (server) => {
      assert.equal(server.modelId, RUN);
      assert.equal(server.engine.step, 4);
      assert.equal(server.engine.loaded.source, join(root, RUN, "ckpt-4"));
      const r = await complete(server.url, { model: RUN, prompt: "Line", max_tokens: 5, seed: 1 });
      assert.equal(r.usage.prompt_tokens, 4);
      assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 5);
    });
  });

  test("a GGUF file", () => servesImport(gguf, "tiny-llama", "llama", "gguf"));

  test("a Hugging Face folder", () => servesImport(hf, "tiny-gpt2", "gpt2", "hf"));

  test("--model-id overrides the resolved name", async () => {
    await withServer({ modelSpec: gguf, modelId: "custom" }, async (server) => {
      assert.equal(server.modelId, "custom");
      const r = await complete(server.url, { model: "custom", prompt: "x", max_tokens: 2 });
      assert.equal(r.model, "custom");
    });
  });

  test("an unknown name is refused, naming the spec and where runs were looked for", async () => {
    await assert.rejects(
      startServer({ modelSpec: "no-such-run", root, port: 0 }),
      new RegExp(`model no-such-run: no such file or folder, and no run of that name in ${root}`),
    );
  });
});

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/**
 * Starts `afterscale serve` and resolves once it is ready: with --json, at its first stdout line (parsed);
 * without, when the banner on stderr is complete.
 */
async function serveCli(args: string[], env: Record<string, string>, json = true) {
  const { AFTERSCALE_API_KEY: _, ...inherited } = process.env;
  const child = spawn(process.execPath, [cli, "serve", "--port", "0", ...(json ? ["--json"] : []), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...inherited, ...env },
  });
  let stderr = "";
  const stdout: string[] = [];
  const exited = once(child, "exit");
  const ready = new Promise<void>((resolve) => {
    child.stderr.on("data", (d) => {
      stderr += d;
      if (!json && /health +http/.test(stderr)) resolve();
    });
    createInterface({ input: child.stdout }).on("line", (l) => {
      stdout.push(l);
      if (json) resolve();
    });
  });
  await Promise.race([
    ready,
    exited.then(([code]) => assert.fail(`serve exited (${code}) before it was ready: ${stderr}`)),
  ]);
  return {
    child,
    ready: json ? (JSON.parse(stdout[0]!) as Record<string, unknown>) : {},
    stdout,
    stderr: () => stderr,
    exited,
  };
}

describe("serve --json", () => {
  test("a run by name with an API key: one ready line on stdout, nothing else there", async () => {
    const s = await serveCli(["--model", RUN, "--api-key", "sekret"], { AFTERSCALE_HOME: root });
    try {
      const { ready } = s;
      assert.match(String(ready.url), /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(ready.url, `http://127.0.0.1:${ready.port}`);
      assert.equal(ready.modelId, RUN);
      assert.equal(ready.name, RUN);
      assert.equal(ready.source, join(root, RUN, "ckpt-4"));
      assert.equal(ready.family, "llama");
      assert.equal(ready.context, 16);
      assert.equal(ready.step, 4);
      assert.equal(ready.apiKeyRequired, true);
      assert.equal(ready.pid, s.child.pid);
      const r = await complete(
        String(ready.url),
        { model: RUN, prompt: "Line", max_tokens: 3 },
        { authorization: "Bearer sekret" },
      );
      assert.equal(r.usage.prompt_tokens, 4);
      s.child.kill("SIGTERM");
      const [code] = await s.exited;
      assert.equal(code, 0, s.stderr());
      assert.equal(s.stdout.length, 1, `stdout held only the ready line: ${JSON.stringify(s.stdout)}`);
      assert.doesNotMatch(s.stderr(), /chat page/, "the human banner is left out with --json");
    } finally {
      if (s.child.exitCode === null) s.child.kill("SIGKILL");
    }
  });

  test("a GGUF file without a key", async () => {
    const s = await serveCli(["--model", gguf], {});
    try {
      const { ready } = s;
      assert.equal(ready.modelId, "tiny-llama");
      assert.equal(ready.source, `gguf ${gguf}`);
      assert.equal(ready.family, "llama");
      assert.equal(ready.context, 64);
      assert.equal(ready.step, null);
      assert.equal(ready.apiKeyRequired, false);
      const r = await complete(String(ready.url), { model: "tiny-llama", prompt: "fox", max_tokens: 4 });
      assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 4);
    } finally {
      s.child.kill("SIGTERM");
      await s.exited;
    }
  });

  test("without --json: the banner on stderr names the model and its source; stdout stays empty", async () => {
    const s = await serveCli(["--model", hf], {}, false);
    try {
      const url = /OpenAI API +(http:\/\/\S+)\/v1 +\(model "tiny-gpt2"\)/.exec(s.stderr())?.[1];
      assert.ok(url, s.stderr());
      assert.ok(s.stderr().includes(`model       hf ${hf}\n`), s.stderr());
      const r = await complete(url, { model: "tiny-gpt2", prompt: "fox", max_tokens: 4 });
      assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 4);
      assert.deepEqual(s.stdout, []);
    } finally {
      s.child.kill("SIGTERM");
      await s.exited;
    }
  });
});
