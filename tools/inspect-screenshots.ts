// Screenshots of the inspect page for the docs (docs/img/inspect-*.png): serves a model, inspects a prompt in
// headless Chromium, and saves each panel — the attention maps, one head's map with its tokens, the logit
// lens, the DLA bars, and the losses with a head ablated (the head with the largest direct attribution).
//   npm run build && node dist/tools/inspect-screenshots.js --model /work/runs-bench/runs/base-micro
// Options: --prompt "…", --head L1H2 (the head drawn large; default: the highest induction score), --out docs/img.
import { mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { InspectReport } from "../src/serve/inspect.js";
import { startServer } from "../src/serve/server.js";
import { launchBrowser } from "../test/helpers/browser.js";

/** What the docs allow per picture. */
const MAX_BYTES = 200_000;

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    prompt: { type: "string", default: "The jury said it did not find that the jury said it did" },
    head: { type: "string" },
    out: { type: "string", default: "docs/img" },
  },
});
if (!values.model) throw new Error("inspect-screenshots: --model <run or folder> is required");
const out = resolve(values.out);
mkdirSync(out, { recursive: true });

const server = await startServer({ modelSpec: values.model, port: 0 });
const browser = await launchBrowser({ viewport: { width: 1280, height: 900 } });
try {
  const api = async (ablate: { layer: number; head: number }[]) => {
    const response = await fetch(`${server.url}/inspect`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: values.prompt, ablate }),
    });
    if (!response.ok) throw new Error(`POST /inspect: ${response.status} ${await response.text()}`);
    return (await response.json()) as InspectReport;
  };
  const report = await api([]);
  const heads = report.induction.flatMap((s, layer) => s.map((score, head) => ({ layer, head, score })));
  const m = values.head ? /^L(\d+)H(\d+)$/.exec(values.head) : null;
  if (values.head && !m) throw new Error(`--head: expected L<layer>H<head>, got ${values.head}`);
  const shown = m
    ? { layer: Number(m[1]), head: Number(m[2]) }
    : heads.reduce((a, b) => (b.score > a.score ? b : a));
  const ablated = report.dla.components
    .filter((c) => c.head !== null)
    .reduce((a, b) => (Math.abs(b.value) > Math.abs(a.value) ? b : a));

  const page = await browser.newPage();
  page.setDefaultTimeout(60_000);
  await page.goto(`${server.url}/inspect`);
  await page.locator("#model option").first().waitFor({ state: "attached" });
  await page.getByLabel(/^Prompt/).fill(values.prompt!);
  await page.getByRole("button", { name: "Inspect" }).click();
  await page.locator("#lens td").first().waitFor();
  await page.locator(`canvas.map[data-layer="${shown.layer}"][data-head="${shown.head}"]`).click();
  await page.getByText(`L${shown.layer}H${shown.head}: attention`).waitFor();

  const shots: [string, string][] = [
    ["inspect-heads.png", "#heads"],
    ["inspect-pattern.png", "#detail"],
    ["inspect-lens.png", "#lens-section"],
    ["inspect-dla.png", "#dla-section"],
  ];
  const save = async (file: string, selector: string) => {
    const path = join(out, file);
    await page.locator(selector).screenshot({ path });
    const bytes = statSync(path).size;
    if (bytes > MAX_BYTES)
      throw new Error(`${path} is ${bytes} bytes, over ${MAX_BYTES}: use a shorter prompt`);
    process.stdout.write(`${path} (${Math.round(bytes / 1000)} kB)\n`);
  };
  for (const [file, selector] of shots) await save(file, selector);
  await page.getByLabel(`ablate L${ablated.layer}H${ablated.head}`, { exact: true }).check();
  await page.locator("#ablated-run").waitFor({ state: "visible" });
  await save("inspect-ablation.png", "#summary");
  process.stdout.write(
    `model ${values.model}, prompt ${JSON.stringify(values.prompt)}: L${shown.layer}H${shown.head} drawn large; L${ablated.layer}H${ablated.head} ablated\n`,
  );
} finally {
  await browser.close();
  await server.close();
}
