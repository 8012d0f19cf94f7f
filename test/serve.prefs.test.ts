// Several models in one server (ids, routing by `model`, 404s naming what is served, /health, the CLI's
// repeated --model / --model-id), the compare page's pick routes (bad bodies get 400 naming the field, the
// API key guards them, Undo with nothing to undo is 404), and the prefs store (earlier rows survive a
// reopen; a file that is not a prefs store, or a newer one, is refused untouched).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { type NewPick, PrefsStore } from "../src/feedback/index.js";
import { generate } from "../src/infer/index.js";
import { exportModel } from "../src/io/index.js";
import { createModel, preset } from "../src/nn/index.js";
import { type RunningServer, startServer } from "../src/serve/index.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";

const tokenizer = byteTokenizer();
const first = createModel(preset("nano", "llama", tokenizer.vocabSize, 64), 7);
const second = createModel(preset("nano", "gpt2", tokenizer.vocabSize, 32), 8);
let dir: string;
let server: RunningServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "afterscale-prefs-"));
  server = await startServer({
    models: [
      { model: first, tokenizer, modelId: "one" },
      { model: second, tokenizer, modelId: "two" },
    ],
    port: 0,
    prefs: join(dir, "served.sqlite"),
  });
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A response body: fields are read as each test expects them (and asserted). */
// biome-ignore lint/suspicious/noExplicitAny: bodies of many shapes (lists, errors, picks), checked field by field
type Body = Record<string, any>;

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${server.url}${path}`, {
    method,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: (await r.json()) as Body };
}

const side = (model: string, completion: string) => ({
  model,
  settings: { temperature: 0.8, topP: 0.95, seed: 1, maxTokens: 8 },
  completion,
});
const goodPick = {
  prompt: "Hi",
  messages: null,
  a: side("one", "x"),
  b: side("two", "y"),
  aSetup: 1,
  pick: "a",
};

describe("several models in one server", () => {
  test("/v1/models lists them in order; each request runs on the model it names", async () => {
    assert.deepEqual(
      server.models.map((m) => m.id),
      ["one", "two"],
    );
    assert.equal(server.modelId, "one", "the first is the default");
    const list = await call("GET", "/v1/models");
    assert.deepEqual(
      list.body.data.map((m: { id: string }) => m.id),
      ["one", "two"],
    );
    assert.equal((await call("GET", "/v1/models/two")).body.id, "two");
    for (const [id, model] of [
      ["one", first],
      ["two", second],
    ] as const) {
      const r = await call("POST", "/v1/completions", {
        model: id,
        prompt: "The fox",
        max_tokens: 6,
        temperature: 0,
        ignore_eos: true,
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.model, id);
      const want = generate(model, tokenizer, "The fox", {
        maxTokens: 6,
        temperature: 0,
        stopAtEndOfText: false,
      });
      assert.equal(r.body.choices[0].text, want.text, `${id} answers with its own weights`);
    }
    // Each model keeps its own context: a prompt that fits one need not fit the other.
    const long = "x".repeat(40);
    assert.equal(
      (await call("POST", "/v1/completions", { model: "one", prompt: long, max_tokens: 1 })).status,
      200,
    );
    const tooLong = await call("POST", "/v1/completions", { model: "two", prompt: long, max_tokens: 1 });
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.body.error.code, "context_length_exceeded");
  });

  test("an unknown model is 404 in OpenAI's shape, naming the served ones", async () => {
    for (const [path, body] of [
      ["/v1/completions", { model: "three", prompt: "x" }],
      ["/v1/chat/completions", { model: "three", messages: [{ role: "user", content: "x" }] }],
    ] as const) {
      const r = await call("POST", path, body);
      assert.equal(r.status, 404);
      assert.deepEqual(r.body, {
        error: {
          message: "The model 'three' does not exist; this server serves 'one', 'two'.",
          type: "invalid_request_error",
          param: "model",
          code: "model_not_found",
        },
      });
    }
    assert.equal((await call("GET", "/v1/models/three")).status, 404);
  });

  test("/health reports every model; /compare/models says which can chat", async () => {
    const h = (await call("GET", "/health")).body;
    assert.equal(h.status, "ok");
    assert.equal(h.model, "one");
    assert.deepEqual(
      h.models.map((m: { id: string; context: number }) => [m.id, m.context]),
      [
        ["one", 64],
        ["two", 32],
      ],
    );
    assert.deepEqual((await call("GET", "/compare/models")).body.models, [
      { id: "one", chat: false, context: 64 },
      { id: "two", chat: false, context: 32 },
    ]);
  });

  test("two models under one id are refused", async () => {
    await assert.rejects(
      startServer({
        models: [
          { model: first, tokenizer },
          { model: second, tokenizer },
        ],
        port: 0,
        prefs: join(dir, "unused.sqlite"),
      }),
      /two models would both be served as 'afterscale': give each its own model id/,
    );
  });
});

describe("the compare page's pick routes", () => {
  test("the page is served; bad pick bodies get 400 naming the field, and nothing is stored", async () => {
    const page = await fetch(`${server.url}/compare`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    assert.match(await page.text(), /<script type="module" src="\/compare.js">/);

    const cases: [unknown, string | null, RegExp][] = [
      [{ ...goodPick, prompt: undefined }, "prompt", /'prompt'/],
      [{ ...goodPick, prompt: "" }, "prompt", /must not be empty/],
      [{ ...goodPick, pick: "c" }, "pick", /must be 'a', 'b' or 'tie'/],
      [{ ...goodPick, pick: undefined }, "pick", /'pick'/],
      [{ ...goodPick, aSetup: 3 }, "aSetup", /must be 1 or 2/],
      [{ ...goodPick, a: { ...goodPick.a, completion: 5 } }, "a.completion", /'a.completion'/],
      [
        { ...goodPick, b: { ...goodPick.b, settings: { ...goodPick.b.settings, temperature: 3 } } },
        "b.settings.temperature",
        /'b.settings.temperature'/,
      ],
      [
        { ...goodPick, a: { ...goodPick.a, settings: { temperature: 1 } } },
        "a.settings.topP",
        /'a.settings.topP'/,
      ],
      [{ ...goodPick, messages: [] }, "messages", /at least one message/],
      [{ ...goodPick, messages: [{ role: "robot", content: "x" }] }, "messages.0.role", /'messages.0.role'/],
      [{ ...goodPick, b: side("gpt-4", "y") }, "b.model", /'gpt-4' is not a model this server serves/],
      [[goodPick], null, /must be a JSON object/],
    ];
    for (const [body, param, message] of cases) {
      const r = await call("POST", "/compare/picks", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.param, param, JSON.stringify(r.body));
      assert.match(r.body.error.message, message);
      assert.equal(r.body.error.type, "invalid_request_error");
    }
    const bad = await call("GET", "/compare/picks?limit=-1");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.param, "limit");
    assert.equal((await call("GET", "/compare/picks")).body.counts.total, 0, "no bad body was stored");
    const none = await call("DELETE", "/compare/picks/last");
    assert.equal(none.status, 404);
    assert.equal(none.body.error.code, "no_picks");
  });

  test("picks are stored, listed newest first, and undone one at a time", async () => {
    const posted = await call("POST", "/compare/picks", goodPick);
    assert.equal(posted.status, 201);
    assert.deepEqual(posted.body.counts, { total: 1, a: 1, b: 0, tie: 0 });
    const chat = { ...goodPick, messages: [{ role: "user", content: "Hi" }], aSetup: 2, pick: "tie" };
    assert.equal((await call("POST", "/compare/picks", chat)).status, 201);
    const listed = await call("GET", "/compare/picks?limit=1");
    assert.deepEqual(listed.body.counts, { total: 2, a: 1, b: 0, tie: 1 });
    assert.equal(listed.body.picks.length, 1);
    const { id, createdAt, ...rest } = listed.body.picks[0];
    assert.deepEqual(rest, chat);
    assert.ok(id > posted.body.pick.id && !Number.isNaN(Date.parse(createdAt)));

    const undone = await call("DELETE", "/compare/picks/last");
    assert.equal(undone.status, 200);
    assert.equal(undone.body.removed.id, id);
    assert.deepEqual(undone.body.counts, { total: 1, a: 1, b: 0, tie: 0 });
    assert.equal((await call("DELETE", "/compare/picks/last")).body.removed.id, posted.body.pick.id);
    assert.equal((await call("DELETE", "/compare/picks/last")).status, 404);
  });

  test("with --api-key the pick routes need the key; the page does not", async () => {
    const locked = await startServer({
      model: first,
      tokenizer,
      port: 0,
      apiKey: "s3cret",
      prefs: join(dir, "locked.sqlite"),
    });
    try {
      assert.equal((await fetch(`${locked.url}/compare`)).status, 200);
      assert.equal((await fetch(`${locked.url}/compare.js`)).status, 200);
      for (const path of ["/compare/picks", "/compare/models"]) {
        assert.equal((await fetch(`${locked.url}${path}`)).status, 401, path);
        const ok = await fetch(`${locked.url}${path}`, { headers: { authorization: "Bearer s3cret" } });
        assert.equal(ok.status, 200, path);
      }
      const del = await fetch(`${locked.url}/compare/picks/last`, { method: "DELETE" });
      assert.equal(del.status, 401);
    } finally {
      await locked.close();
    }
  });
});

describe("the prefs store", () => {
  const pick = (prompt: string, choice: NewPick["pick"]): NewPick => ({
    prompt,
    messages: null,
    a: side("one", `${prompt}-a`),
    b: side("two", `${prompt}-b`),
    aSetup: 1,
    pick: choice,
  });

  test("rows survive closing and reopening; the file is in WAL mode", () => {
    const file = join(dir, "nested", "store.sqlite");
    const store = PrefsStore.open(file);
    store.add(pick("p1", "a"));
    store.add(pick("p2", "b"));
    store.close();
    const reopened = PrefsStore.open(file);
    reopened.add(pick("p3", "tie"));
    assert.deepEqual(
      reopened.all().map((p) => [p.prompt, p.pick]),
      [
        ["p1", "a"],
        ["p2", "b"],
        ["p3", "tie"],
      ],
    );
    reopened.close();
    const db = new Database(file, { readonly: true });
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    db.close();
    // A reader (the exporter) sees the rows without writing anything.
    const reader = PrefsStore.open(file, { readonly: true });
    assert.equal(reader.counts().total, 3);
    reader.close();
  });

  test("another database, or a newer layout, is refused and left as it was", () => {
    const other = join(dir, "registry.sqlite");
    const db = new Database(other);
    db.exec("CREATE TABLE runs (id INTEGER PRIMARY KEY)");
    db.close();
    const before = readFileSync(other);
    assert.throws(
      () => PrefsStore.open(other),
      /registry.sqlite: not a preferences file \(it has tables runs/,
    );
    assert.deepEqual(readFileSync(other), before);

    const newer = join(dir, "newer.sqlite");
    PrefsStore.open(newer).close();
    const raw = new Database(newer);
    raw.pragma("user_version = 99");
    raw.close();
    assert.throws(() => PrefsStore.open(newer), /layout 99, newer than this afterscale reads \(1\)/);

    assert.throws(
      () => PrefsStore.open(join(dir, "missing.sqlite"), { readonly: true }),
      /no such preferences file/,
    );
    const garbage = join(dir, "garbage.sqlite");
    const bytes = "not a database at all, just some bytes here....";
    writeFileSync(garbage, bytes);
    assert.throws(() => PrefsStore.open(garbage), /garbage.sqlite: (not a preferences file|cannot open)/);
    assert.equal(readFileSync(garbage, "utf8"), bytes);
  });
});

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

test("serve --model a --model b --model-id x: both served, ids in order, the rest by name", async () => {
  const t = ioTokenizer();
  const a = join(dir, "a.gguf");
  const b = join(dir, "b.gguf");
  exportModel(ioModel("llama", t.vocabSize, false), t, { format: "gguf", out: a });
  exportModel(ioModel("gpt2", t.vocabSize, true), t, { format: "gguf", out: b });

  const tooMany = spawnSync(
    process.execPath,
    [cli, "serve", "--model", a, "--model-id", "x", "--model-id", "y", "--port", "0"],
    { encoding: "utf8" },
  );
  assert.equal(tooMany.status, 1);
  assert.match(tooMany.stderr, /2 --model-id for 1 --model/);

  const prefs = join(dir, "cli.sqlite");
  const child = spawn(
    process.execPath,
    [cli, "serve", "--model", a, "--model", b, "--model-id", "x", "--port", "0", "--json", "--prefs", prefs],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = once(child, "exit");
  try {
    const line = await Promise.race([
      once(createInterface({ input: child.stdout }), "line").then(([l]) => l as string),
      exited.then(([code]) => assert.fail(`serve exited (${code}): ${stderr}`)),
    ]);
    const ready = JSON.parse(line) as {
      url: string;
      modelId: string;
      prefs: string;
      models: { modelId: string }[];
    };
    assert.equal(ready.modelId, "x");
    assert.equal(ready.prefs, prefs);
    assert.deepEqual(
      ready.models.map((m) => m.modelId),
      ["x", "b"],
    );
    const models = (await (await fetch(`${ready.url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(
      models.data.map((m) => m.id),
      ["x", "b"],
    );
    statSync(prefs); // an explicit --prefs file is opened (and created) at start
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
});
