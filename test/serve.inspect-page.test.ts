// The inspect page in headless Chromium: what it shows (lens cells, DLA bars, a pattern cell, losses and
// predictions) is what POST /inspect returns for the same prompt, the attention maps are really drawn (a
// screenshot of them has ink of many colours), and ticking a head shows the API's ablated loss.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { type RunningServer, startServer } from "../src/serve/index.js";
import { type InspectReport, showToken } from "../src/serve/inspect.js";
import { launchBrowser, noBrowser } from "./helpers/browser.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";

const tokenizer = ioTokenizer();
const model = ioModel("llama", tokenizer.vocabSize, false, 5);
const PROMPT = "The quick brown fox jumps over the lazy dog. The quick";
let server: RunningServer;
let browser: BrowserContext | null = null;

before(async () => {
  server = await startServer({ model, tokenizer, modelId: "tiny", port: 0 });
  if (!noBrowser) browser = await launchBrowser({ viewport: { width: 1400, height: 1000 } });
});
after(async () => {
  await browser?.close();
  await server.close();
});

async function api(ablate: { layer: number; head: number }[] = []): Promise<InspectReport> {
  const response = await fetch(`${server.url}/inspect`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: PROMPT, ablate }),
  });
  assert.equal(response.status, 200);
  return (await response.json()) as InspectReport;
}

const show = showToken;

async function openInspected(errors: string[]): Promise<Page> {
  const page = await browser!.newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.url}/inspect`);
  await page.getByText("model: tiny").waitFor();
  const prompt = page.getByLabel(/^Prompt/);
  await prompt.fill(PROMPT);
  await prompt.press("Enter");
  await page.locator("#lens td").first().waitFor();
  return page;
}

test("inspect page: the lens grid, DLA bars, patterns and losses are the API's", {
  skip: noBrowser,
}, async () => {
  const errors: string[] = [];
  const page = await openInspected(errors);
  const r = await api();
  const T = r.tokens.length;

  // Logit lens: one row per label, one cell per position, the top token's text, id and probability.
  const cells = await page
    .locator("#lens tbody td")
    .evaluateAll((tds) =>
      tds.map((td) => ({ text: td.textContent, id: Number(td.dataset.id), prob: Number(td.dataset.prob) })),
    );
  assert.equal(cells.length, r.lens.labels.length * T);
  const expected = r.lens.top.flatMap((row) =>
    row.map((cell) => ({ text: show(cell[0]!.text), id: cell[0]!.id, prob: cell[0]!.prob })),
  );
  assert.deepEqual(cells, expected);
  const columns = await page.locator("#lens thead th").allTextContents();
  assert.deepEqual(
    columns.slice(1),
    r.tokens.map((t) => show(t.text)),
  );

  // DLA: a bar per component, its value in a data attribute, its width proportional to |value|.
  const bars = await page.locator(".dla-row").evaluateAll((rows) =>
    rows.map((row) => ({
      name: row.dataset.name,
      value: Number(row.dataset.value),
      width: (row.querySelector(".bar") as HTMLElement).getBoundingClientRect().width,
    })),
  );
  assert.deepEqual(
    bars.map(({ name, value }) => ({ name, value })),
    r.dla.components.map(({ name, value }) => ({ name, value })),
  );
  const widest = bars.reduce((a, b) => (Math.abs(b.value) > Math.abs(a.value) ? b : a));
  for (const b of bars) assert.ok(b.width <= widest.width + 0.5, `${b.name} is no wider than ${widest.name}`);
  assert.ok(widest.width > 20, "the largest contribution has a visible bar");

  // A head's map in detail: every cell of the lower triangle, its value the API's.
  await page.locator('canvas.map[data-layer="1"][data-head="2"]').click();
  await page.getByText("L1H2: attention from each token").waitFor();
  const rects = await page
    .locator("#pattern rect")
    .evaluateAll((els) =>
      els.map((e) => [Number(e.dataset.dest), Number(e.dataset.src), Number(e.dataset.value)] as const),
    );
  assert.equal(rects.length, (T * (T + 1)) / 2);
  for (const [d, s, v] of rects) assert.equal(v, r.patterns[1]![2]![d]![s]!, `pattern cell ${d},${s}`);

  // Induction scores on each head's tile; the clean loss and predictions.
  const score = await page
    .locator('.head[data-layer="1"][data-head="3"] .induction')
    .getAttribute("data-value");
  assert.equal(Number(score), r.induction[1]![3]!);
  assert.equal(Number(await page.locator("#loss-clean").getAttribute("data-value")), r.clean.loss);
  const top = await page
    .locator("#top-clean li")
    .evaluateAll((lis) => lis.map((li) => Number(li.dataset.id)));
  assert.deepEqual(
    top,
    r.clean.top.map((t) => t.id),
  );
  assert.ok(await page.locator("#ablated-run").isHidden());
  assert.deepEqual(errors, []);
  await page.close();
});

test("inspect page: the attention maps are drawn (a screenshot has ink of many colours)", {
  skip: noBrowser,
}, async () => {
  const errors: string[] = [];
  const page = await openInspected(errors);
  const { layers, heads } = model.config;
  assert.equal(await page.locator("canvas.map").count(), layers * heads);
  const png = await page.locator("#heads").screenshot();
  // Decode the screenshot in a blank page (the inspect page's CSP refuses data: URLs; no PNG decoder is
  // needed here) and count what is not background.
  const blank = await browser!.newPage();
  const ink = await blank.evaluate(async (b64) => {
    const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const g = canvas.getContext("2d")!;
    g.drawImage(bitmap, 0, 0);
    const px = g.getImageData(0, 0, bitmap.width, bitmap.height).data;
    const colours = new Set<number>();
    let blue = 0;
    for (let i = 0; i < px.length; i += 4) {
      const [r, gr, b] = [px[i]!, px[i + 1]!, px[i + 2]!];
      colours.add((r << 16) | (gr << 8) | b);
      if (b > r) blue++; // the heatmaps' scale runs from white to dark blue; text and borders are grey
    }
    return { colours: colours.size, blue, total: px.length / 4 };
  }, png.toString("base64"));
  await blank.close();
  assert.ok(ink.colours > 50, `${ink.colours} colours`);
  // Every head's causal triangle is ink: at least a quarter of each 128-pixel map.
  assert.ok(ink.blue > layers * heads * 128 * 128 * 0.25, `${ink.blue} of ${ink.total} pixels are heatmap`);
  assert.deepEqual(errors, []);
  await page.close();
});

test("inspect page: ticking a head re-runs with it ablated and shows the API's ablated loss", {
  skip: noBrowser,
}, async () => {
  const errors: string[] = [];
  const page = await openInspected(errors);
  const ablated = await api([{ layer: 1, head: 0 }]);
  assert.ok(ablated.ablated);
  await page.getByLabel("ablate L1H0").check();
  await page.locator("#ablated-run").waitFor({ state: "visible" });
  assert.equal(await page.locator("#ablated-heads").textContent(), "L1H0");
  assert.equal(Number(await page.locator("#loss-ablated").getAttribute("data-value")), ablated.ablated.loss);
  assert.equal(Number(await page.locator("#loss-clean").getAttribute("data-value")), ablated.clean.loss);
  const delta = ablated.ablated.loss - ablated.clean.loss;
  assert.equal(
    await page.locator("#loss-delta").textContent(),
    `(${delta >= 0 ? "+" : ""}${delta.toFixed(4)})`,
  );
  const top = await page
    .locator("#top-ablated li")
    .evaluateAll((lis) => lis.map((li) => Number(li.dataset.id)));
  assert.deepEqual(
    top,
    ablated.ablated.top.map((t) => t.id),
  );

  // A second head joins the first; unticking both returns to the clean run alone.
  const both = await api([
    { layer: 1, head: 0 },
    { layer: 0, head: 3 },
  ]);
  await page.getByLabel("ablate L0H3").check();
  await page.locator("#ablated-heads").getByText("L1H0, L0H3").waitFor();
  assert.equal(Number(await page.locator("#loss-ablated").getAttribute("data-value")), both.ablated!.loss);
  assert.ok(await page.getByLabel("ablate L1H0").isChecked(), "ticks survive the re-render");
  await page.getByRole("button", { name: "Clear ablations" }).click();
  await page.locator("#ablated-run").waitFor({ state: "hidden" });
  assert.ok(!(await page.getByLabel("ablate L1H0").isChecked()));
  assert.deepEqual(errors, []);
  await page.close();
});
