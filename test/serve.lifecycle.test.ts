// The server's life around generation: it answers /health while the worker generates, a client that
// disconnects stops its sequence, SIGTERM lets in-flight streams finish before the process exits, and a
// worker shut down in the middle of a kernel call never takes the process with it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { createModel, preset } from "../src/nn/index.js";
import { startServer } from "../src/serve/index.js";
import { train } from "../src/train/index.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const tokenizer = byteTokenizer();

/** Reads SSE `data:` payloads from a fetch response as they arrive. */
async function* events(response: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true });
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (event.startsWith("data: ")) yield event.slice(6);
    }
  }
}

function streamRequest(url: string, maxTokens: number, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "afterscale",
      prompt: "long",
      max_tokens: maxTokens,
      stream: true,
      ignore_eos: true,
    }),
    ...(signal ? { signal } : {}),
  });
}

/** `import` specifier of a compiled module under src/, for scripts run in a child process. */
const src = (path: string) => JSON.stringify(new URL(`../src/${path}`, import.meta.url).href);

/** Runs an ES-module script in a fresh Node process, stdout and stderr piped. */
function spawnModule(script: string, extra: { timeout?: number; killSignal?: NodeJS.Signals } = {}) {
  return spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
    ...extra,
  });
}

/** Waits (checking every few ms) until `condition` holds; fails after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("/health answers while generating; a disconnected stream's sequence is dropped", async () => {
  const model = createModel(preset("nano", "llama", tokenizer.vocabSize, 512), 5);
  const server = await startServer({ model, tokenizer, port: 0 });
  try {
    const controller = new AbortController();
    const response = await streamRequest(server.url, 500, controller.signal);
    const it = events(response);
    assert.match((await it.next()).value as string, /"text_completion"/); // the worker is generating
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    const h = (await health.json()) as { status: string; inFlight: number };
    assert.equal(h.status, "ok");
    assert.equal(h.inFlight, 1, "health was answered while the sequence was still generating");

    controller.abort(); // the client goes away mid-stream
    await until(() => server.engine.stats.cancelled === 1, 10_000, "the worker drops the sequence");
    const s = server.engine.stats;
    assert.equal(s.inFlight, 0);
    assert.equal(s.completed, 0);
    assert.ok(s.tokens < 500, `generation stopped early (${s.tokens} of 500 tokens)`);
  } finally {
    await server.close();
  }
});

test("SIGTERM: the in-flight stream completes, then the process exits 0", async () => {
  const child = spawnModule(
    `import { startServer, closeOnSignals } from ${src("serve/index.js")};
     import { createModel, preset } from ${src("nn/index.js")};
     import { byteTokenizer } from ${src("data/tokenizer.js")};
     const tokenizer = byteTokenizer();
     const model = createModel(preset("nano", "llama", tokenizer.vocabSize, 256), 1);
     const server = await startServer({ model, tokenizer, port: 0 });
     closeOnSignals(server);
     process.stdout.write(server.url + "\\n");`,
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = once(child, "exit");
  try {
    const [line] = (await Promise.race([
      once(child.stdout, "data"),
      exited.then(() => assert.fail(`the server process exited early: ${stderr}`)),
    ])) as [Buffer];
    const url = line.toString().trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);

    const it = events(await streamRequest(url, 200));
    const first = await it.next();
    assert.equal(first.done, false);
    child.kill("SIGTERM"); // mid-generation
    const rest: string[] = [];
    for await (const data of it) rest.push(data);
    assert.equal(rest.at(-1), "[DONE]", "the stream ended normally");
    const finish = JSON.parse(rest.at(-2)!) as { choices: { finish_reason: string }[] };
    assert.equal(finish.choices[0]!.finish_reason, "length", "all 200 tokens were generated");

    const [code, signal] = (await exited) as [number | null, string | null];
    assert.equal(signal, null);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /SIGTERM: finishing 1 in-flight sequence/);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});

test("serves a run folder: its newest checkpoint, named after the folder, within its context", async () => {
  const { root, data } = tinyDataset();
  try {
    const run = {
      ...tinyModel,
      data,
      root,
      runName: "served",
      steps: 4,
      evalInterval: 4,
      checkpointInterval: 4,
    };
    await train(run, { quiet: true, handleSignals: false, log: () => {} });
    const server = await startServer({ modelSpec: join(root, "served"), port: 0 });
    try {
      const health = (await (await fetch(`${server.url}/health`)).json()) as Record<string, unknown>;
      assert.equal(health.model, "served");
      assert.equal(health.step, 4);
      assert.equal(health.context, 16);
      const post = (path: string, body: object) =>
        fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const r = await post("/v1/completions", { model: "served", prompt: "Line", max_tokens: 5, seed: 1 });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
      assert.equal(body.usage.prompt_tokens, 4);
      assert.ok(body.usage.completion_tokens >= 1 && body.usage.completion_tokens <= 5);
      // The chat template alone is longer than this model's 16-token context.
      const chat = await post("/v1/chat/completions", {
        model: "served",
        messages: [{ role: "user", content: "hi" }],
      });
      assert.equal(chat.status, 400);
      const e = (await chat.json()) as { error: { code: string; param: string } };
      assert.equal(e.error.code, "context_length_exceeded");
      assert.equal(e.error.param, "messages");
    } finally {
      await server.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("engines closed mid-generation, over and over, beside main-thread kernels, never crash the process", async () => {
  // In a child process, so a crash fails this test instead of the runner. Each round starts an engine (its
  // worker thread loads the addon and shares the kernel thread pool with this thread), submits sequences,
  // and terminates the worker a few milliseconds in, often inside a kernel call; meanwhile the main thread
  // runs the same model's forward pass and checks it gives the same logits every time.
  const child = spawnModule(
    `import { Engine, modelSource } from ${src("serve/engine.js")};
     import { createModel, forward, preset } from ${src("nn/index.js")};
     import { noGrad, tidy } from ${src("tensor/index.js")};
     import { byteTokenizer } from ${src("data/tokenizer.js")};
     const tokenizer = byteTokenizer();
     const model = createModel(preset("micro", "llama", tokenizer.vocabSize, 128), 3);
     const ids = Int32Array.from({ length: 64 }, (_, i) => (i * 37) % 256);
     const logits = () => noGrad(() => tidy(() => forward(model, ids, 1, 64).data.slice()));
     const want = logits();
     const source = modelSource(model, tokenizer);
     for (let round = 0; round < 40; round++) {
       const engine = await Engine.start(source, { maxBatch: 8, maxQueue: 8 });
       const seqs = Array.from({ length: 6 }, (_, k) => ({
         prompt: Int32Array.from(tokenizer.encode("hello world ".repeat(1 + k))),
         maxTokens: 100, temperature: 1, topP: 1, seed: k, stop: [], stopAtEndOfText: false,
       }));
       engine.submit(seqs, seqs.map(() => ({ onToken() {}, onDone() {} })));
       const until = Date.now() + 2 + (round % 7) * 3;
       while (Date.now() < until) {
         const got = logits();
         if (got.some((x, i) => x !== want[i])) throw new Error("main-thread logits changed in round " + round);
       }
       await engine.close();
     }
     process.stdout.write("survived\\n");`,
    // A kernel call that never returns (two threads in one pool region) would hang: time out instead.
    { timeout: 120_000, killSignal: "SIGKILL" },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
  assert.equal(signal, null, `the process died of ${signal} (SIGKILL: it hung for 2 minutes): ${stderr}`);
  assert.equal(code, 0, stderr);
  assert.equal(stdout, "survived\n");
});
