// The chat page end to end in headless Chromium (playwright-core driving Debian's chromium): load `/`,
// type a message, send it with the keyboard, watch the reply stream in, and see the tokens/s readout.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { BrowserContext } from "playwright-core";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { createModel, preset } from "../src/nn/index.js";
import { startServer } from "../src/serve/index.js";
import { launchBrowser, noBrowser } from "./helpers/browser.js";

test("chat page: send a message, the reply streams in, tokens/s is shown", { skip: noBrowser }, async () => {
  const tokenizer = byteTokenizer();
  const model = createModel(preset("nano", "llama", tokenizer.vocabSize, 256), 2);
  const server = await startServer({ model, tokenizer, port: 0 });
  let browser: BrowserContext | null = null;
  try {
    browser = await launchBrowser();
    const page = await browser.newPage();
    page.setDefaultTimeout(30_000);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server.url);
    await page.getByText("model: afterscale").waitFor();

    // Accessible names: every control has a label; the conversation is a live region.
    await page.getByLabel("Max tokens").fill("40");
    await page.getByLabel("Seed").fill("3");
    await page.getByLabel("Temperature").fill("1");
    assert.equal(await page.locator("#log").getAttribute("aria-live"), "polite");

    const message = page.getByLabel(/^Message/);
    await message.fill("Hello, model!");
    await message.press("Enter"); // Enter sends

    await page.locator(".turn.user .text").getByText("Hello, model!").waitFor();
    const reply = page.locator(".turn.assistant .text");
    await reply.waitFor();
    // The reply grows as chunks arrive; the readout ends without "generating…" once the stream is done.
    await page.waitForFunction(() => {
      const s = document.getElementById("status")?.textContent ?? "";
      return /tokens\/s: [\d.]+ · \d+ tokens/.test(s) && !s.includes("generating");
    });
    const status = (await page.locator("#status").textContent()) ?? "";
    const tokens = Number(/· (\d+) tokens/.exec(status)![1]);
    assert.ok(tokens >= 1 && tokens <= 40, status);
    const text = (await reply.textContent()) ?? "";
    assert.ok(text.length > 0, "the reply has text");

    // The same request through the API with the same seed gives the same reply: the page streamed it all.
    const api = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "afterscale",
        messages: [{ role: "user", content: "Hello, model!" }],
        max_tokens: 40,
        seed: 3,
        temperature: 1,
        top_p: 0.95,
      }),
    });
    const body = (await api.json()) as { choices: { message: { content: string } }[] };
    assert.equal(text, body.choices[0]!.message.content);
    assert.deepEqual(errors, []);
    assert.ok(
      await message.evaluate((el) => el === document.activeElement),
      "focus returns to the message box",
    );
  } finally {
    await browser?.close();
    await server.close();
  }
});
