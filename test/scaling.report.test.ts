// The HTML report: tick labels, the self-contained page and its SVGs, and the page itself opened in
// headless Chromium with the network cut off (every chart must render, nothing may be fetched).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { predictLoss } from "../src/scaling/fit.js";
import { buildReport, renderSvg, writeReport } from "../src/scaling/report.js";
import { countLabel, logDomain, logTicks, powerLabel } from "../src/scaling/report-charts.js";
import { launchBrowser, noBrowser } from "./helpers/browser.js";
import { mulberry32, normal } from "./helpers/random.js";

const dir = mkdtempSync(join(tmpdir(), "afterscale-report-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An IsoFLOP grid (3 budgets × 5 sizes) from a known law with 0.5% multiplicative noise, as a CSV. */
function gridCsv(
  name: string,
  law: { A: number; B: number; E: number; alpha: number; beta: number },
  seed: number,
) {
  const noise = normal(mulberry32(seed));
  const lines = ["N,D,loss,budget"];
  for (const C of [1e18, 1e19, 1e20]) {
    const center = 0.09 * Math.sqrt(C / 6) ** 1.0; // near the optimum of these laws
    for (let k = -2; k <= 2; k++) {
      const N = center * 2.2 ** k;
      const D = C / (6 * N);
      const loss = predictLoss(law, N, D) * (1 + 0.005 * noise());
      lines.push(`${N},${D},${loss},${C}`);
    }
  }
  const path = join(dir, `${name}.csv`);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

const lawA = { A: 400, B: 410, E: 1.8, alpha: 0.34, beta: 0.28 };
const lawB = { ...lawA, A: 250, B: 300 };
const csvA = gridCsv("baseline", lawA, 1);
const csvB = gridCsv("improved", lawB, 2);

test("log-axis ticks and labels", () => {
  assert.deepEqual(logTicks(3e17, 2e21), [1e18, 1e19, 1e20, 1e21]);
  assert.deepEqual(logTicks(1.2e4, 3e5), [2e4, 5e4, 1e5, 2e5], "under three decades: 1-2-5 ticks");
  assert.equal(powerLabel(1e21), "10²¹");
  assert.equal(powerLabel(2e-3), "2×10⁻³");
  assert.equal(powerLabel(1.5e11), "1.5×10¹¹");
  assert.equal(countLabel(1.2e4), "12k");
  assert.equal(countLabel(7e9), "7B");
  assert.equal(countLabel(5e5), "500k");
});

test("the page is self-contained: libraries inline, no external references, every figure present", () => {
  const { html, figures } = buildReport(
    { sources: [csvA, csvB], out: join(dir, "r.html"), bootstrap: 8 },
    "r-svg",
  );
  const ids = figures.map((f) => f.id);
  for (const id of [
    "loss-vs-compute-1",
    "isoflop-1",
    "optimal-size-1",
    "fitted-vs-observed-1",
    "isoflop-2",
    "comparison",
  ]) {
    assert.ok(ids.includes(id), `figure ${id}`);
    assert.ok(html.includes(`id="chart-${id}"`), `container for ${id}`);
  }
  assert.doesNotMatch(html, /<script[^>]+src=/i, "no external scripts");
  assert.doesNotMatch(html, /<link[^>]+href=/i, "no external stylesheets");
  assert.match(html, /vegaEmbed/);
  assert.ok(html.length > 500_000, "vega, vega-lite and vega-embed are inlined");
  assert.match(html, /effective compute multiplier/);
  assert.match(html, /Huber loss \(δ = 10<sup>−3<\/sup>\)/);
  assert.match(html, /8 bootstrap resamples/);
  // The returns-to-scale table: 1× … 10⁶×.
  assert.equal((html.match(/<sup>\d<\/sup>×<\/td>/g) ?? []).length, 2 * 6);
});

test("server-side SVG rendering of a chart", async () => {
  const { figures } = buildReport({ sources: [csvA], out: join(dir, "s.html"), bootstrap: 0 }, "s-svg");
  const svg = await renderSvg(figures.find((f) => f.id === "isoflop-1")!.spec);
  assert.match(svg, /^<svg[^>]+width="\d+"/);
  assert.match(svg, /budget C \(FLOPs\)/);
  assert.match(svg, /parameters N/);
});

test("the report renders in headless Chromium with the network cut off", { skip: noBrowser }, async () => {
  const out = join(dir, "report.html");
  const written = await writeReport({ sources: [csvA, csvB], out, bootstrap: 8 });
  assert.equal(written.svgs.length, written.figures.length);
  for (const s of written.svgs) assert.match(readFileSync(s, "utf8"), /^<svg/);

  const context = await launchBrowser({ viewport: { width: 1320, height: 900 } });
  try {
    const attempted: string[] = [];
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith("file:")) return route.continue();
      attempted.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`file://${out}`);
    await page.waitForFunction(() => document.body.dataset.charts !== undefined, null, { timeout: 30_000 });
    const state = await page.evaluate(() => ({
      charts: document.body.dataset.charts,
      containers: [...document.querySelectorAll(".chart")].map((c) => ({
        id: c.id,
        svg: c.querySelectorAll("svg").length,
        marks: c.querySelectorAll("svg path, svg line").length,
      })),
    }));
    await page.screenshot({ path: join(tmpdir(), "afterscale-report-test.png"), fullPage: true });
    assert.equal(state.charts, "ready");
    assert.equal(state.containers.length, written.figures.length);
    for (const c of state.containers) {
      assert.ok(c.svg >= 1, `${c.id} has an svg`);
      assert.ok(c.marks > 10, `${c.id} drew ${c.marks} marks`);
    }
    assert.deepEqual(attempted, [], "no network requests");
    assert.deepEqual(errors, [], "no console errors");
  } finally {
    await context.close();
  }
});

test("a log axis ignores values it cannot draw (0, ∞) instead of ticking from 10^-∞", () => {
  const [lo, hi] = logDomain([0, 1e3, 1e5, Number.POSITIVE_INFINITY]);
  assert.ok(Math.abs(lo - 1e3 / 10 ** 0.25) < 1e-6 && Math.abs(hi - 1e5 * 10 ** 0.25) < 1e-3);
  assert.deepEqual(logTicks(lo, hi), [1e3, 1e4, 1e5]);
  assert.throws(() => logTicks(0, 10), /not positive and finite/);
});
