// The compare page end to end in headless Chromium: a prompt in, two completions side by side, clicks on A,
// B, tie and Undo become (and stop being) rows in SQLite that say truthfully what was shown where (each
// stored completion is what its model gives for the stored settings), and `afterscale prefs export` turns
// the rows into preference JSONL whose chosen and rejected are the picked and the other side.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import type { BrowserContext, Page } from "playwright-core";
import { CHAT_TOKENS } from "../src/data/chat.js";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { readPreferenceFile } from "../src/feedback/index.js";
import { createModel, preset } from "../src/nn/index.js";
import { type RunningServer, startServer } from "../src/serve/index.js";
import { launchBrowser, noBrowser } from "./helpers/browser.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
let dir: string;
let browser: BrowserContext | null = null;
/** Script errors on any page, checked at the end of each test. */
const pageErrors: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "afterscale-compare-"));
  if (!noBrowser) browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Row {
  id: number;
  created_at: string;
  prompt: string;
  messages: string | null;
  a_model: string;
  a_settings: string;
  a_completion: string;
  b_model: string;
  b_settings: string;
  b_completion: string;
  a_setup: number;
  pick: string;
}

function rows(file: string): Row[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("SELECT * FROM picks ORDER BY id").all() as Row[];
  } finally {
    db.close();
  }
}

async function openPage(server: RunningServer): Promise<Page> {
  const page = await browser!.newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`${server.url}/compare`);
  await page
    .locator("#counter")
    .getByText(/^picks: \d+/)
    .waitFor();
  return page;
}

async function setSetup(page: Page, n: 1 | 2, s: { temperature: string; topP: string; seed: string }) {
  const group = page.getByRole("group", { name: `Setup ${n}` });
  await group.getByLabel("Temperature").fill(s.temperature);
  await group.getByLabel("Top p").fill(s.topP);
  await group.getByLabel(/^Seed/).fill(s.seed);
}

/** Types a prompt, compares, and returns the two texts shown once both have arrived. */
async function comparePrompt(page: Page, prompt: string): Promise<{ a: string; b: string }> {
  const box = page.getByLabel(/^Prompt/);
  await box.fill(prompt);
  await box.press("Enter"); // Enter compares
  await page.locator("#status").getByText("Which is better?").waitFor();
  assert.equal(await page.getByRole("button", { name: "A is better" }).isEnabled(), true);
  return {
    a: (await page.locator("#text-a").textContent()) ?? "",
    b: (await page.locator("#text-b").textContent()) ?? "",
  };
}

async function pick(page: Page, name: "A is better" | "B is better" | "Tie", count: number) {
  await page.getByRole("button", { name }).click();
  await page
    .locator("#counter")
    .getByText(new RegExp(`^picks: ${count} `))
    .waitFor();
  assert.equal(await page.getByRole("button", { name: "A is better" }).isEnabled(), false, "one pick each");
}

/** What the served model gives for a stored side: the same text, or the row does not say what was shown. */
async function regenerate(server: RunningServer, row: Row, side: "a" | "b"): Promise<string> {
  const s = JSON.parse(side === "a" ? row.a_settings : row.b_settings);
  const common = {
    model: side === "a" ? row.a_model : row.b_model,
    temperature: s.temperature,
    top_p: s.topP,
    seed: s.seed,
    max_tokens: s.maxTokens,
  };
  const chat = row.messages !== null;
  const r = await fetch(`${server.url}/v1/${chat ? "chat/completions" : "completions"}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(
      chat ? { ...common, messages: JSON.parse(row.messages!) } : { ...common, prompt: row.prompt },
    ),
  });
  const body = (await r.json()) as { choices: { text?: string; message?: { content: string } }[] };
  assert.equal(r.status, 200, JSON.stringify(body));
  return chat ? body.choices[0]!.message!.content : body.choices[0]!.text!;
}

function exportPrefs(db: string, out: string, ...flags: string[]) {
  const r = spawnSync(process.execPath, [cli, "prefs", "export", "--db", db, "--out", out, ...flags], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = readFileSync(out, "utf8").split("\n");
  assert.equal(lines.pop(), "", "the file ends with a newline");
  // What dpo reads: every exported line is a valid preference record.
  if (lines.length > 0) assert.equal(readPreferenceFile(out).length, lines.length);
  return { stdout: r.stdout, records: lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test("one model, two sampling settings: A, B, tie and undo become rows; export round-trips", {
  skip: noBrowser,
}, async () => {
  const tokenizer = byteTokenizer();
  const model = createModel(preset("nano", "llama", tokenizer.vocabSize, 256), 2);
  const prefs = join(dir, "one-model.sqlite");
  const server = await startServer({ model, tokenizer, modelId: "tiny", port: 0, prefs });
  try {
    const page = await openPage(server);
    await page.getByText("models: tiny").waitFor();
    assert.equal(await page.locator("#counter").textContent(), "picks: 0 (A 0 · B 0 · tie 0)");
    assert.equal(await page.getByRole("button", { name: "Undo last pick" }).isEnabled(), false);
    const setups = {
      1: { temperature: "0.7", topP: "0.9", seed: "11" },
      2: { temperature: "1.3", topP: "1", seed: "22" },
    };
    await setSetup(page, 1, setups[1]);
    await setSetup(page, 2, setups[2]);
    await page.getByLabel("Max tokens").fill("12");

    const shown: { prompt: string; a: string; b: string }[] = [];
    const plan: [string, "A is better" | "B is better" | "Tie"][] = [
      ["The quick brown fox", "A is better"],
      ["Once upon a time", "B is better"],
      ["Hello", "Tie"],
    ];
    for (const [i, [prompt, button]] of plan.entries()) {
      shown.push({ prompt, ...(await comparePrompt(page, prompt)) });
      await pick(page, button, i + 1);
    }
    // A fourth pick, undone: the row goes, the comparison comes back to be picked again (as B this time).
    const fourth = { prompt: "Numbers: 1 2 3", ...(await comparePrompt(page, "Numbers: 1 2 3")) };
    await pick(page, "A is better", 4);
    assert.equal(rows(prefs).length, 4);
    await page.getByRole("button", { name: "Undo last pick" }).click();
    await page
      .locator("#counter")
      .getByText(/^picks: 3 /)
      .waitFor();
    assert.equal(rows(prefs).length, 3, "undo removed the row");
    assert.equal(await page.locator("#text-a").textContent(), fourth.a, "the undone pair is shown again");
    assert.equal(await page.locator("#text-b").textContent(), fourth.b);
    await pick(page, "B is better", 4);
    shown.push(fourth);
    assert.equal(await page.locator("#counter").textContent(), "picks: 4 (A 1 · B 2 · tie 1)");
    await page.close();

    const stored = rows(prefs);
    assert.deepEqual(
      stored.map((r) => r.pick),
      ["a", "b", "tie", "b"],
    );
    for (const [i, r] of stored.entries()) {
      assert.equal(r.prompt, shown[i]!.prompt);
      assert.equal(r.messages, null, "a tokenizer without chat tokens gets plain completions");
      assert.equal(r.a_completion, shown[i]!.a);
      assert.equal(r.b_completion, shown[i]!.b);
      assert.ok(r.a_setup === 1 || r.a_setup === 2);
      // Each side's settings are its setup's, the other setup on the other side.
      const want = (n: number) => {
        const s = setups[n as 1 | 2];
        return {
          temperature: Number(s.temperature),
          topP: Number(s.topP),
          seed: Number(s.seed),
          maxTokens: 12,
        };
      };
      assert.deepEqual(JSON.parse(r.a_settings), want(r.a_setup));
      assert.deepEqual(JSON.parse(r.b_settings), want(3 - r.a_setup));
      assert.equal(r.a_model, "tiny");
      assert.equal(r.b_model, "tiny");
      assert.ok(Math.abs(Date.parse(r.created_at) - Date.now()) < 10 * 60_000, r.created_at);
      assert.equal(await regenerate(server, r, "a"), r.a_completion);
      assert.equal(await regenerate(server, r, "b"), r.b_completion);
    }
    assert.ok(
      stored.some((r) => r.a_completion !== r.b_completion),
      "two settings give different completions",
    );

    const out = join(dir, "one-model.jsonl");
    const exported = exportPrefs(prefs, out);
    assert.match(exported.stdout, /3 record\(s\) from 3 of 4 pick\(s\).*1 tie\(s\) skipped/);
    const decided = stored.filter((r) => r.pick !== "tie");
    assert.deepEqual(
      exported.records,
      decided.map((r) => ({
        prompt: r.prompt,
        chosen: r.pick === "a" ? r.a_completion : r.b_completion,
        rejected: r.pick === "a" ? r.b_completion : r.a_completion,
      })),
    );
    // An existing export is not replaced without --force; with --include-ties a tie is both orderings.
    const again = spawnSync(process.execPath, [cli, "prefs", "export", "--db", prefs, "--out", out]);
    assert.equal(again.status, 1);
    assert.match(String(again.stderr), /exists; pass --force/);
    const withTies = exportPrefs(prefs, out, "--include-ties", "--force");
    assert.equal(withTies.records.length, 5);
    const tie = stored[2]!;
    assert.deepEqual(withTies.records.slice(2, 4), [
      { prompt: tie.prompt, chosen: tie.a_completion, rejected: tie.b_completion },
      { prompt: tie.prompt, chosen: tie.b_completion, rejected: tie.a_completion },
    ]);
    assert.deepEqual(pageErrors, []);
  } finally {
    await server.close();
  }
});

test("two models with chat tokens: chat completions, each side from its model; export as message lists", {
  skip: noBrowser,
}, async () => {
  const tokenizer = byteTokenizer().withAddedTokens(CHAT_TOKENS);
  const prefs = join(dir, "two-models.sqlite");
  const server = await startServer({
    models: [
      {
        model: createModel(preset("nano", "llama", tokenizer.vocabSize, 256), 3),
        tokenizer,
        modelId: "llama",
      },
      { model: createModel(preset("nano", "gpt2", tokenizer.vocabSize, 256), 4), tokenizer, modelId: "gpt2" },
    ],
    port: 0,
    prefs,
  });
  try {
    const page = await openPage(server);
    await page.getByText("models: llama, gpt2").waitFor();
    const setup = (n: number) => page.getByRole("group", { name: `Setup ${n}` }).getByLabel("Model");
    assert.equal(await setup(1).inputValue(), "llama", "setup 1 defaults to the first model");
    assert.equal(await setup(2).inputValue(), "gpt2", "setup 2 to the second");
    for (const n of [1, 2] as const) await setSetup(page, n, { temperature: "0", topP: "1", seed: "5" });
    await page.getByLabel("Max tokens").fill("10");

    const shown = [await comparePrompt(page, "Say hi.")];
    await pick(page, "A is better", 1);
    shown.push(await comparePrompt(page, "Count to three."));
    await pick(page, "B is better", 2);
    await page.close();

    const stored = rows(prefs);
    assert.equal(stored.length, 2);
    for (const [i, r] of stored.entries()) {
      assert.deepEqual(JSON.parse(r.messages!), [{ role: "user", content: r.prompt }], "chat: messages kept");
      assert.equal(r.a_model, r.a_setup === 1 ? "llama" : "gpt2");
      assert.equal(r.b_model, r.a_setup === 1 ? "gpt2" : "llama");
      assert.equal(r.a_completion, shown[i]!.a);
      assert.equal(r.b_completion, shown[i]!.b);
      assert.equal(await regenerate(server, r, "a"), r.a_completion);
      assert.equal(await regenerate(server, r, "b"), r.b_completion);
    }

    const exported = exportPrefs(prefs, join(dir, "two-models.jsonl"));
    const reply = (content: string) => [{ role: "assistant", content }];
    assert.deepEqual(exported.records, [
      {
        prompt: [{ role: "user", content: "Say hi." }],
        chosen: reply(stored[0]!.a_completion),
        rejected: reply(stored[0]!.b_completion),
      },
      {
        prompt: [{ role: "user", content: "Count to three." }],
        chosen: reply(stored[1]!.b_completion),
        rejected: reply(stored[1]!.a_completion),
      },
    ]);

    const stats = spawnSync(process.execPath, [cli, "prefs", "stats", "--db", prefs, "--json"], {
      encoding: "utf8",
    });
    assert.equal(stats.status, 0, stats.stderr);
    const s = JSON.parse(stats.stdout) as { total: number; pickedA: number; pickedB: number; chat: number };
    assert.deepEqual([s.total, s.pickedA, s.pickedB, s.chat], [2, 1, 1, 2]);
    assert.deepEqual(pageErrors, []);
  } finally {
    await server.close();
  }
});
