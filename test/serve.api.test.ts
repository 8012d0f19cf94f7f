// The OpenAI-compatible API, driven by the official `openai` client pointed at a local server over a tiny
// random-init llama: models, completions, chat, streaming, stop strings, seeds, n, usage and error shapes.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { createModel, preset } from "../src/nn/index.js";
import { type RunningServer, startServer } from "../src/serve/index.js";

const tokenizer = byteTokenizer();
const model = createModel(preset("nano", "llama", tokenizer.vocabSize, 128), 3);
const MODEL = "nano-test";

let server: RunningServer;
let client: OpenAI;

before(async () => {
  server = await startServer({ model, tokenizer, modelId: MODEL, port: 0, maxBatch: 8, maxQueue: 8 });
  client = new OpenAI({ apiKey: "unused", baseURL: `${server.url}/v1`, maxRetries: 0, timeout: 30_000 });
});
after(() => server.close());

/** Non-OpenAI fields the server accepts (vLLM's ignore_eos) on top of the client's parameter types. */
type Extra = { ignore_eos?: boolean };

async function complete(
  prompt: string | string[],
  seed: number,
  maxTokens: number,
  extra: Partial<OpenAI.CompletionCreateParamsNonStreaming> = {},
) {
  const params: OpenAI.CompletionCreateParamsNonStreaming & Extra = {
    model: MODEL,
    prompt,
    seed,
    max_tokens: maxTokens,
    temperature: 1,
    ignore_eos: true,
    ...extra,
  };
  return client.completions.create(params);
}

async function streamText(prompt: string, seed: number, maxTokens: number): Promise<string> {
  const params: OpenAI.CompletionCreateParamsStreaming & Extra = {
    model: MODEL,
    prompt,
    seed,
    max_tokens: maxTokens,
    stream: true,
    ignore_eos: true,
  };
  let text = "";
  for await (const chunk of await client.completions.create(params)) text += chunk.choices[0]?.text ?? "";
  return text;
}

/** The error a call fails with (the test fails if it succeeds). */
async function failure(call: () => Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call();
  } catch (e) {
    if (e instanceof OpenAI.APIError) return e;
    throw e;
  }
  assert.fail("the request succeeded but should have failed");
}

describe("OpenAI-compatible API", () => {
  test("lists and retrieves the served model", async () => {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      [MODEL],
    );
    assert.equal((await client.models.retrieve(MODEL)).id, MODEL);
    const e = await failure(() => client.models.retrieve("gpt-4"));
    assert.equal(e.status, 404);
  });

  test("completion: text, finish reason and usage", async () => {
    const r = await complete("Hello", 1, 12);
    assert.equal(r.object, "text_completion");
    assert.equal(r.model, MODEL);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0]!.finish_reason, "length");
    assert.ok(r.choices[0]!.text.length > 0);
    assert.deepEqual(r.usage, { prompt_tokens: 5, completion_tokens: 12, total_tokens: 17 });
  });

  test("streaming completion matches the non-streaming text for the same seed", async () => {
    const whole = await complete("Stream me", 42, 20);
    assert.equal(await streamText("Stream me", 42, 20), whole.choices[0]!.text);
  });

  test("seed: identical text alone and amid concurrent requests; other seeds differ", async () => {
    const alone = (await complete("Reproducible", 777, 30)).choices[0]!.text;
    const [, , again] = await Promise.all([
      streamText("Busy neighbour one", 1, 40),
      complete("Busy neighbour two", 2, 35),
      complete("Reproducible", 777, 30),
      streamText("Busy neighbour three", 3, 25),
    ]);
    assert.equal(again.choices[0]!.text, alone);
    assert.notEqual((await complete("Reproducible", 778, 30)).choices[0]!.text, alone);
  });

  test("stop strings (string or array) cut the text before the first match", async () => {
    const free = (await complete("Stop test", 5, 80)).choices[0]!.text;
    const at = Array.from({ length: free.length }, (_, i) => i).find(
      (i) => i > 2 && /^[ -~]{2}$/.test(free.slice(i, i + 2)),
    );
    assert.ok(at !== undefined, `no printable pair in ${JSON.stringify(free)}`);
    const stop = free.slice(at, at + 2);
    for (const s of [stop, ["\u0000never", stop]]) {
      const r = await complete("Stop test", 5, 80, { stop: s });
      assert.equal(r.choices[0]!.text, free.slice(0, free.indexOf(stop)));
      assert.equal(r.choices[0]!.finish_reason, "stop");
    }
  });

  test("n choices, each reproducible, usage counts the prompt once", async () => {
    const r = await complete("Many", 9, 8, { n: 3 });
    assert.equal(r.choices.length, 3);
    assert.deepEqual(
      r.choices.map((c) => c.index),
      [0, 1, 2],
    );
    assert.deepEqual(r.usage, { prompt_tokens: 4, completion_tokens: 24, total_tokens: 28 });
    const again = await complete("Many", 9, 8, { n: 3 });
    assert.deepEqual(
      again.choices.map((c) => c.text),
      r.choices.map((c) => c.text),
    );
  });

  test("chat completion, non-streaming and streaming with usage", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi there" },
    ];
    const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, seed: 11 });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0]!.message.role, "assistant");
    assert.ok(["stop", "length"].includes(r.choices[0]!.finish_reason));
    assert.ok(r.usage!.prompt_tokens > 20 && r.usage!.completion_tokens >= 1);

    const stream = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 10,
      seed: 11,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let role: string | undefined;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      const c = chunk.choices[0];
      role ??= c?.delta.role;
      text += c?.delta.content ?? "";
      finish = c?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(role, "assistant");
    assert.equal(text, r.choices[0]!.message.content);
    assert.equal(finish, r.choices[0]!.finish_reason);
    assert.deepEqual(usage, r.usage);
  });

  test("max_tokens beyond the context: completions fill the context and end with 'length'", async () => {
    // 3 prompt tokens + 125 generated = the 128-token context, streaming or not.
    const r = await complete("And", 4, 200);
    assert.equal(r.choices[0]!.finish_reason, "length");
    assert.deepEqual(r.usage, { prompt_tokens: 3, completion_tokens: 125, total_tokens: 128 });

    const params: OpenAI.CompletionCreateParamsStreaming & Extra = {
      model: MODEL,
      prompt: "And",
      seed: 4,
      max_tokens: 200,
      temperature: 1,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    };
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of await client.completions.create(params)) {
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, r.choices[0]!.text);
    assert.equal(finish, "length");
    assert.deepEqual(usage, r.usage);

    // Each prompt of a batch gets the rest of its own context; one a token short of it gets one token.
    const many = await complete(["a", "abcd", "y".repeat(127)], 5, 1000);
    assert.deepEqual(
      many.choices.map((c) => c.finish_reason),
      ["length", "length", "length"],
    );
    assert.deepEqual(many.usage, {
      prompt_tokens: 1 + 4 + 127,
      completion_tokens: 127 + 124 + 1,
      total_tokens: 3 * 128,
    });
  });

  test("max_tokens / max_completion_tokens beyond the context: chat fills the context with 'length'", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Go on" }];
    for (const limit of [{ max_tokens: 500 }, { max_completion_tokens: 500 }]) {
      const base: OpenAI.ChatCompletionCreateParamsNonStreaming & Extra = {
        model: MODEL,
        messages,
        seed: 8,
        ignore_eos: true,
        ...limit,
      };
      const r = await client.chat.completions.create(base);
      assert.equal(r.choices[0]!.finish_reason, "length", JSON.stringify(limit));
      const u = r.usage!;
      assert.ok(u.prompt_tokens > 10 && u.prompt_tokens < 128);
      assert.equal(u.completion_tokens, 128 - u.prompt_tokens);
      assert.equal(u.total_tokens, 128);

      const streaming: OpenAI.ChatCompletionCreateParamsStreaming & Extra = {
        ...base,
        stream: true,
        stream_options: { include_usage: true },
      };
      let text = "";
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | undefined | null;
      for await (const chunk of await client.chat.completions.create(streaming)) {
        text += chunk.choices[0]?.delta.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
        usage = chunk.usage ?? usage;
      }
      assert.equal(text, r.choices[0]!.message.content);
      assert.equal(finish, "length");
      assert.deepEqual(usage, u);
    }
  });

  test("validation errors are 400s in OpenAI's shape, naming the problem", async () => {
    const cases: [object, RegExp, string | null][] = [
      [{ model: MODEL, prompt: "x", temperature: "hot" }, /temperature.*expected number/, "temperature"],
      [
        { model: MODEL, prompt: "x".repeat(500) },
        /maximum context length is 128 tokens.*500 tokens/,
        "prompt",
      ],
      [
        { model: MODEL, prompt: "x".repeat(128), max_tokens: 1 },
        /maximum context length is 128 tokens.*128 tokens, which leaves no room for a completion/,
        "prompt",
      ],
      [{ model: MODEL, prompt: "x", max_tokens: 0 }, /'max_tokens'/, "max_tokens"],
      [{ model: MODEL, prompt: "x", n: 0 }, /'n'/, "n"],
      [{ model: MODEL, prompt: "x", logprobs: 2 }, /logprobs is not supported/, "logprobs"],
      [{ prompt: "x" }, /'model': is required/, "model"],
    ];
    for (const [body, message, param] of cases) {
      const e = await failure(() =>
        client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming),
      );
      assert.equal(e.status, 400, JSON.stringify(body));
      assert.match(e.message, message);
      assert.equal(e.param, param);
      assert.equal(e.type, "invalid_request_error");
    }
    const chat = await failure(() => client.chat.completions.create({ model: MODEL, messages: [] }));
    assert.equal(chat.status, 400);
    assert.match(chat.message, /at least one message/);
    const wrongModel = await failure(() => client.completions.create({ model: "gpt-4", prompt: "x" }));
    assert.equal(wrongModel.status, 404);
    assert.equal(wrongModel.code, "model_not_found");
  });

  test("malformed JSON, oversized bodies and unknown URLs get OpenAI error JSON", async () => {
    const post = (path: string, body: string) =>
      fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const bad = await post("/v1/completions", '{"model": "nano-test", "prompt": ');
    assert.equal(bad.status, 400);
    const badBody = (await bad.json()) as { error: { message: string; type: string; code: string } };
    assert.match(badBody.error.message, /could not parse the JSON body/);
    assert.equal(badBody.error.code, "invalid_json");

    const big = await post("/v1/completions", JSON.stringify({ model: MODEL, prompt: "x".repeat(2 << 20) }));
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { error: { code: string } }).error.code, "request_too_large");

    const missing = await fetch(`${server.url}/v1/embeddings`, { method: "POST" });
    assert.equal(missing.status, 404);
    assert.match(
      ((await missing.json()) as { error: { message: string } }).error.message,
      /Unknown request URL/,
    );
  });
});

describe("server limits", () => {
  test("a full queue answers 429 with Retry-After", async () => {
    const small = await startServer({ model, tokenizer, modelId: MODEL, port: 0, maxBatch: 1, maxQueue: 0 });
    try {
      const c = new OpenAI({ apiKey: "unused", baseURL: `${small.url}/v1`, maxRetries: 0 });
      const params: OpenAI.CompletionCreateParamsStreaming & Extra = {
        model: MODEL,
        prompt: "hold the only slot",
        max_tokens: 120,
        stream: true,
        ignore_eos: true,
      };
      const controller = new AbortController();
      const stream = await c.completions.create(params, { signal: controller.signal });
      const it = stream[Symbol.asyncIterator]();
      await it.next(); // generating: the one slot is taken
      const e = await failure(() => c.completions.create({ model: MODEL, prompt: "me too", max_tokens: 2 }));
      assert.equal(e.status, 429);
      assert.equal(e.code, "queue_full");
      assert.equal(e.headers?.get("retry-after"), "1");
      controller.abort();
    } finally {
      await small.close();
    }
  });

  test("--prefill-chunk: prompts fed a token per step give the same text; a bad value is refused", async () => {
    const prompt = "a prompt of some forty tokens, fed one token per step";
    const expected = await complete(prompt, 7, 12);
    const slow = await startServer({ model, tokenizer, modelId: MODEL, port: 0, prefillChunk: 1 });
    try {
      const c = new OpenAI({ apiKey: "unused", baseURL: `${slow.url}/v1`, maxRetries: 0 });
      const params: OpenAI.CompletionCreateParamsNonStreaming & Extra = {
        model: MODEL,
        prompt,
        seed: 7,
        max_tokens: 12,
        temperature: 1,
        ignore_eos: true,
      };
      const [a, b] = await Promise.all([c.completions.create(params), c.completions.create(params)]);
      assert.equal(a.choices[0]!.text, expected.choices[0]!.text);
      assert.equal(b.choices[0]!.text, expected.choices[0]!.text);
    } finally {
      await slow.close();
    }
    await assert.rejects(
      startServer({ model, tokenizer, port: 0, prefillChunk: 0 }),
      /prefillChunk must be an integer ≥ 1, got 0/,
    );
  });

  test("--api-key: /v1 needs the bearer key (401 otherwise); /health does not", async () => {
    const locked = await startServer({ model, tokenizer, modelId: MODEL, port: 0, apiKey: "s3cret" });
    try {
      const wrong = new OpenAI({ apiKey: "guess", baseURL: `${locked.url}/v1`, maxRetries: 0 });
      const e = await failure(() => wrong.models.list());
      assert.equal(e.status, 401);
      assert.equal(e.code, "invalid_api_key");
      const none = await fetch(`${locked.url}/v1/models`);
      assert.equal(none.status, 401);
      assert.match(((await none.json()) as { error: { message: string } }).error.message, /No API key/);
      const right = new OpenAI({ apiKey: "s3cret", baseURL: `${locked.url}/v1`, maxRetries: 0 });
      assert.equal((await right.models.list()).data[0]!.id, MODEL);
      assert.equal((await fetch(`${locked.url}/health`)).status, 200);
      assert.ok(locked.url.startsWith("http://127.0.0.1:"), "binds loopback by default");
    } finally {
      await locked.close();
    }
  });
});
