// POST /inspect and `afterscale inspect`: the numbers are the interpretability library's own for the same
// prompt (computed here, in this thread, against what the server's worker and the CLI's process return),
// and bad requests get 400s naming the field.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  ablatedRun,
  attentionPatterns,
  directLogitAttribution,
  inductionScores,
  logitLens,
} from "../src/interp/index.js";
import { exportModel, importModel } from "../src/io/index.js";
import { type RunningServer, startServer } from "../src/serve/index.js";
import { type InspectReport, inspectPrompt, showToken } from "../src/serve/inspect.js";
import { MAX_INSPECT_TOKENS } from "../src/serve/inspect-route.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const tokenizer = ioTokenizer();
const llama = ioModel("llama", tokenizer.vocabSize, false, 5);
const gpt2 = ioModel("gpt2", tokenizer.vocabSize, true, 6);
const PROMPT = "The quick brown fox jumps over the lazy dog. The quick brown fox";
const KEY = "sesame";
let server: RunningServer;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "afterscale-inspect-"));
  server = await startServer({
    models: [
      { model: llama, tokenizer, modelId: "llama" },
      { model: gpt2, tokenizer, modelId: "gpt2" },
    ],
    port: 0,
    apiKey: KEY,
  });
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A report, or an error in OpenAI's shape. */
type Answer = InspectReport & { model: string; error: { message: string; param: string | null } };

async function inspect(body: unknown, key: string | null = KEY): Promise<{ status: number; json: Answer }> {
  const response = await fetch(`${server.url}/inspect`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

for (const [id, model] of [
  ["llama", llama],
  ["gpt2", gpt2],
] as const) {
  test(`POST /inspect (${id}): every number is the library's for the same prompt`, async () => {
    const ablate = [
      { layer: 1, head: 2 },
      { layer: 0, head: 0 },
    ];
    const { status, json } = await inspect({ model: id, prompt: PROMPT, ablate, top: 3 });
    assert.equal(status, 200, JSON.stringify(json));
    const ids = tokenizer.encode(PROMPT);
    assert.equal(json.model, id);
    assert.deepEqual(
      json.tokens,
      ids.map((t) => ({ id: t, text: tokenizer.decode([t]) })),
    );

    const lens = logitLens(model, ids, 3);
    assert.deepEqual(json.lens.labels, lens.labels);
    assert.deepEqual(
      json.lens.top.map((row) => row.map((cell) => cell.map((t) => ({ id: t.id, prob: t.prob })))),
      lens.top,
    );
    assert.equal(json.lens.top[2]![4]![0]!.text, tokenizer.decode([lens.top[2]![4]![0]!.id]));
    assert.deepEqual(json.patterns, attentionPatterns(model, ids));
    // Twice 50 tokens do not fit these models' context of 64: the halves are 32 tokens.
    assert.equal(json.inductionLength, 32);
    assert.deepEqual(json.induction, inductionScores(model, { length: 32 }));

    const dla = directLogitAttribution(model, ids, {});
    assert.deepEqual(json.dla, { ...dla, targetText: tokenizer.decode([dla.target]) });
    if (id === "gpt2") assert.ok(json.dla.components.some((c) => c.name === "pos_embed"));

    const clean = ablatedRun(model, ids, []);
    const ablated = ablatedRun(model, ids, ablate);
    assert.equal(json.clean.loss, clean.loss);
    assert.ok(json.ablated);
    assert.equal(json.ablated.loss, ablated.loss);
    assert.notEqual(json.ablated.loss, json.clean.loss, "ablating two heads changes the loss");
    assert.deepEqual(json.ablated.heads, ablate);
    // The predictions are the last position's softmax, most likely first.
    const last = clean.logits.subarray((ids.length - 1) * model.config.vocab);
    const best = last.indexOf(Math.max(...last));
    assert.equal(json.clean.top[0]!.id, best);
    assert.equal(json.clean.top.length, 3);
    assert.ok(json.clean.top[0]!.prob >= json.clean.top[1]!.prob);

    // Token ids work as well as text, and no ablation means no ablated run.
    const byIds = await inspect({ model: id, prompt: ids, top: 3 });
    assert.equal(byIds.status, 200);
    assert.equal(byIds.json.ablated, null);
    assert.deepEqual(byIds.json.dla, json.dla);
  });
}

test("POST /inspect: the default model is the first; bad requests get 400s naming the field", async () => {
  const ok = await inspect({ prompt: "the fox" });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.model, "llama");

  const bad = async (body: unknown, param: string, message: RegExp) => {
    const { status, json } = await inspect(body);
    assert.equal(status, 400, JSON.stringify(json));
    assert.equal(json.error.param, param);
    assert.match(json.error.message, message);
  };
  await bad({}, "prompt", /Invalid 'prompt'/);
  await bad({ prompt: "" }, "prompt", /must not be empty/);
  await bad({ prompt: "T" }, "prompt", /1 token long; inspect takes 2 to/);
  await bad({ prompt: "x".repeat(MAX_INSPECT_TOKENS + 1) }, "prompt", /inspect takes 2 to 64/);
  await bad({ prompt: [1, 100_000] }, "prompt", /token id 100000 is outside the vocabulary/);
  await bad({ prompt: "the fox", ablate: [{ layer: 2, head: 0 }] }, "ablate.0.layer", /not a layer.*0\.\.1/);
  await bad(
    {
      prompt: "the fox",
      ablate: [
        { layer: 0, head: 0 },
        { layer: 1, head: 4 },
      ],
    },
    "ablate.1.head",
    /not a head.*0\.\.3/,
  );
  await bad({ prompt: "the fox", ablate: [{ layer: 0 }] }, "ablate.0.head", /must be a head index/);
  await bad({ prompt: "the fox", ablate: "L0H1" }, "ablate", /array of heads/);
  await bad({ prompt: "the fox", top: 0 }, "top", /Invalid 'top'/);

  const missing = await inspect({ model: "nope", prompt: "the fox" });
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.param, "model");

  // The data needs the key; the page does not.
  assert.equal((await inspect({ prompt: "the fox" }, null)).status, 401);
  assert.equal((await inspect({ prompt: "the fox" }, "wrong")).status, 401);
  const page = await fetch(`${server.url}/inspect`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /afterscale inspect/);
});

test("afterscale inspect: --json is the library's report; the text shows the lens grid, heads and DLA", () => {
  const out = join(dir, "hf-llama");
  exportModel(llama, tokenizer, { format: "hf", out });
  const loaded = importModel(out);
  const ids = tokenizer.encode(PROMPT);
  const expected = inspectPrompt(loaded.model, loaded.tokenizer!, ids, {
    ablate: [{ layer: 1, head: 1 }],
    top: 4,
  });

  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [cli, "inspect", "--model", out, "--prompt", PROMPT, ...args], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const json = JSON.parse(run("--json", "--top", "4", "--ablate", "L1H1"));
  assert.equal(json.model, "hf-llama");
  const { model: _m, step: _s, ...report } = json;
  assert.deepEqual(report, expected);

  const text = run("--top", "3");
  const lines = text.split("\n");
  // One grid row per lens label, each cell the top token there (spaces shown as ·).
  for (const [i, label] of expected.lens.labels.entries()) {
    const row = lines.find((l) => l.startsWith(`${label.padEnd(5)} `));
    assert.ok(row, `a lens row ${label}`);
    assert.ok(row.includes(showToken(expected.lens.top[i]![0]![0]!.text)), row);
  }
  const heads = expected.induction
    .flatMap((s, layer) => s.map((score, head) => ({ name: `L${layer}H${head}`, score })))
    .sort((a, b) => b.score - a.score);
  const listed = lines
    .slice(lines.findIndex((l) => l.startsWith("top heads by induction score")) + 1)
    .slice(0, 3);
  assert.deepEqual(
    listed.map((l) => l.trim().split(/\s+/)[0]),
    heads.slice(0, 3).map((h) => h.name),
  );
  const top = [...expected.dla.components].sort((a, b) => Math.abs(b.value) - Math.abs(a.value))[0]!;
  assert.match(
    text,
    new RegExp(`direct logit attribution to .* \\(logit ${expected.dla.logit.toFixed(3)}\\)`),
  );
  assert.ok(text.includes(`${top.name}`), "the largest contributor is listed");

  const bad = spawnSync(
    process.execPath,
    [cli, "inspect", "--model", out, "--prompt", PROMPT, "--ablate", "L5H0"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--ablate L5H0: 5 is not a layer of this model \(0\.\.1\)/);
});

test("showToken: whitespace made visible, control characters escaped, the empty token shown", () => {
  assert.equal(showToken(" the\n\tend\u0001\u007f"), "·the↵⇥end\\x01\\x7f");
  assert.equal(showToken(""), "∅");
  assert.equal(showToken("café"), "café");
});
