// `afterscale report`: one self-contained HTML file (the Vega, Vega-Lite and vega-embed builds inlined
// from node_modules, so it opens with no network) plus an SVG of every figure, rendered here with Vega's
// headless View (no browser needed) for papers and slides.
//
// What it shows for one source (a sweep, a CSV or a built-in dataset): the fitted law with 95% bootstrap
// intervals, loss against compute with the compute-optimal frontier, IsoFLOP profiles (when the runs form
// an IsoFLOP grid), compute-optimal N*(C) by approaches 2 and 3, fitted against observed, and the
// returns-to-scale table. With two sources it adds the comparison and the effective compute multiplier.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseVega, View } from "vega";
import { compile as compileVegaLite, type TopLevelSpec } from "vega-lite";
import {
  type BootstrapFit,
  bootstrapFit,
  DEFAULT_BOOTSTRAP_COUNT,
  derivedInterval,
  pairedInterval,
} from "./bootstrap.js";
import { computeMultiplier, computeOptimal, returnsToScale } from "./derived.js";
import {
  type ChinchillaFit,
  EPOCH_GRID,
  fitChinchilla,
  HUBER_DELTA,
  type LawParams,
  predictLoss,
} from "./fit.js";
import { fmt } from "./format.js";
import { groupByBudget, type IsoflopFit, type IsoflopGroup, isoflopFits, isoflopMinimum } from "./isoflop.js";
import {
  comparisonSpec,
  type FrontierRow,
  fittedVsObservedSpec,
  isoflopSpec,
  lossVsComputeSpec,
  type MinimumRow,
  type ObservedRow,
  type OptimalRow,
  optimalSizeSpec,
  type ParabolaRow,
  powerLabel,
  type Spec,
} from "./report-charts.js";
import type { Interval } from "./stats.js";
import { type LoadedSource, loadSource } from "./sweep.js";

export interface ReportOptions {
  /** One or two sources: sweep ids, CSV files or built-in datasets. */
  sources: string[];
  /** The HTML file to write. */
  out: string;
  /** Folder for the SVGs (default: <out without .html>-svg). */
  svgDir?: string;
  /** Where sweeps live (default $AFTERSCALE_HOME or ./runs). */
  root?: string;
  excludeTopLoss?: number;
  bootstrap?: number;
  seed?: number;
  title?: string;
}

export interface ReportWritten {
  html: string;
  svgDir: string;
  svgs: string[];
  figures: string[];
}

/** One source, analysed: the fit, its bootstrap, and the IsoFLOP fit when the runs form a grid. */
export interface Analysis {
  source: LoadedSource;
  fit: ChinchillaFit;
  boot: BootstrapFit | null;
  /** Budget groups with at least three runs (the IsoFLOP profiles), smallest budget first. */
  groups: IsoflopGroup[];
  /** Approach 2 over the budgets whose parabola could be fitted (needs two); null when fewer. */
  isoflop: IsoflopFit | null;
  /** Budgets whose parabola could not be fitted, with the reason (shown in captions). */
  isoflopFailures: string[];
  minC: number;
  maxC: number;
}

export function analyse(source: LoadedSource, bootstrap: number, seed: number): Analysis {
  let fit = fitChinchilla(source.points);
  // E = e^e underflows to exactly 0 when the fit sends e → −∞ (a pure power law, common for small
  // sweeps far from their floor). The derived quantities are defined for E = 0; the smallest positive
  // double stands in so they can be computed (it changes no loss by more than 5e-324).
  const floorE = (p: LawParams): LawParams => (p.E === 0 ? { ...p, E: Number.MIN_VALUE } : p);
  fit = { ...fit, params: floorE(fit.params) };
  const bad = Object.entries(fit.params).filter(([, v]) => !(Number.isFinite(v) && v > 0));
  if (bad.length > 0) {
    throw new Error(
      `${source.label}: the fitted law is degenerate (${bad.map(([k, v]) => `${k} = ${v}`).join(", ")}); ` +
        "the runs do not constrain it (too few, or sizes that do not bracket the optimum)",
    );
  }
  let boot = bootstrap > 0 ? bootstrapFit(source.points, { count: bootstrap, seed, fullFit: fit }) : null;
  if (boot) {
    // A replicate that ran off to a non-finite or non-positive parameter (e.g. A = ∞ when α blows up on a
    // resample) has no compute-optimal allocation; it counts as failed for the derived quantities.
    const usable = boot.replicates
      .map(floorE)
      .filter((p) => Object.values(p).every((v) => Number.isFinite(v) && v > 0));
    boot = { ...boot, replicates: usable, failed: boot.failed + boot.replicates.length - usable.length };
  }
  // Approach 2 budget by budget: one budget whose profile is not convex (say, too small to bracket its
  // optimum) should not hide the others.
  const groups = groupByBudget(source.points).filter((g) => g.points.length >= 3);
  const fitted: IsoflopGroup[] = [];
  const isoflopFailures: string[] = [];
  for (const g of groups) {
    try {
      isoflopMinimum(g);
      fitted.push(g);
    } catch (e) {
      isoflopFailures.push((e as Error).message.replace(/^isoflop: /, ""));
    }
  }
  const isoflop = fitted.length >= 2 ? isoflopFits(fitted) : null;
  const Cs = source.points.map((p) => p.C);
  return {
    source,
    fit,
    boot,
    groups,
    isoflop,
    isoflopFailures,
    minC: Math.min(...Cs),
    maxC: Math.max(...Cs),
  };
}

/** The first two reasons and how many more. */
function summarizeFailures(failures: readonly string[]): string {
  const shown = failures.slice(0, 2).join("; ");
  return failures.length > 2 ? `${shown}; and ${failures.length - 2} more budgets` : shown;
}

// ---------------------------------------------------------------- rows for the charts

function budgetName(C: number): string {
  return powerLabel(C);
}

function logSpace(lo: number, hi: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) =>
    Math.exp(Math.log(lo) + ((Math.log(hi) - Math.log(lo)) * i) / (n - 1)),
  );
}

function interval(boot: BootstrapFit | null, f: (p: LawParams) => number): Interval | null {
  return boot ? derivedInterval(boot, f) : null;
}

/** Points with the fit's prediction and (for IsoFLOP data) their budget's label. */
function observedRows(a: Analysis): ObservedRow[] {
  const budgetOf = new Map<object, string>();
  for (const g of a.groups) for (const p of g.points) budgetOf.set(p, budgetName(g.budget));
  return a.source.points.map((p) => {
    const row: ObservedRow = {
      source: a.source.label,
      N: p.N,
      D: p.D,
      C: p.C,
      loss: p.loss,
      predicted: predictLoss(a.fit.params, p.N, p.D),
    };
    const b = budgetOf.get(p);
    if (b !== undefined) row.budget = b;
    return row;
  });
}

/** L*(C) from the data's smallest budget to 100× its largest; the band is the 95% bootstrap interval. */
function frontierRows(a: Analysis, to = a.maxC * 100): FrontierRow[] {
  const rows: FrontierRow[] = [];
  for (const C of logSpace(a.minC, to, 80)) {
    const segment = C <= a.maxC * 1.0001 ? "fit range" : "extrapolation";
    const ci = interval(a.boot, (p) => computeOptimal(p, C).loss);
    const row: FrontierRow = {
      source: a.source.label,
      C,
      loss: computeOptimal(a.fit.params, C).loss,
      segment,
    };
    if (ci && Number.isFinite(ci.lo) && Number.isFinite(ci.hi)) {
      row.lo = ci.lo;
      row.hi = ci.hi;
    }
    rows.push(row);
  }
  // Both segments share the boundary point, so the solid and dashed lines join.
  const boundary = rows.findIndex((r) => r.segment === "extrapolation");
  if (boundary > 0) rows.splice(boundary, 0, { ...rows[boundary - 1]!, segment: "extrapolation" });
  return rows;
}

function isoflopRows(a: Analysis): { curves: ParabolaRow[]; minima: MinimumRow[]; order: string[] } {
  const curves: ParabolaRow[] = [];
  const minima: MinimumRow[] = [];
  const order: string[] = [];
  for (const g of a.groups) order.push(budgetName(g.budget));
  for (const m of a.isoflop?.minima ?? []) {
    const g = a.groups.find((x) => x.budget === m.budget)!;
    const label = budgetName(m.budget);
    const Ns = g.points.map((p) => p.N);
    const lo = Math.min(...Ns, m.Nopt) / 1.15;
    const hi = Math.max(...Ns, m.Nopt) * 1.15;
    const [c0, c1, c2] = m.coefficients;
    for (const N of logSpace(lo, hi, 40)) {
      const u = Math.log(N);
      curves.push({ budget: label, N, loss: c0 + c1 * u + c2 * u * u });
    }
    minima.push({ budget: label, N: m.Nopt, loss: m.lossAtOpt });
  }
  return { curves, minima, order };
}

function optimalRows(a: Analysis): { law: OptimalRow[]; minima: OptimalRow[]; powerLaw: OptimalRow[] } {
  const lo = a.minC;
  const hi = a.maxC * 100;
  const law: OptimalRow[] = logSpace(lo, hi, 60).map((C) => {
    const row: OptimalRow = {
      source: a.source.label,
      C,
      N: computeOptimal(a.fit.params, C).N,
      segment: C <= a.maxC * 1.0001 ? "fit range" : "extrapolation",
    };
    const ci = interval(a.boot, (p) => computeOptimal(p, C).N);
    if (ci && Number.isFinite(ci.lo) && Number.isFinite(ci.hi) && ci.lo > 0) {
      row.lo = ci.lo;
      row.hi = ci.hi;
    }
    return row;
  });
  const boundary = law.findIndex((r) => r.segment === "extrapolation");
  if (boundary > 0) law.splice(boundary, 0, { ...law[boundary - 1]!, segment: "extrapolation" });
  const minima: OptimalRow[] = (a.isoflop?.minima ?? []).map((m) => ({
    source: a.source.label,
    C: m.budget,
    N: m.Nopt,
  }));
  const powerLaw: OptimalRow[] = a.isoflop
    ? logSpace(lo, hi, 20).map((C) => ({
        source: a.source.label,
        C,
        N: a.isoflop!.N.k * C ** a.isoflop!.N.exponent,
      }))
    : [];
  return { law, minima, powerLaw };
}

// ---------------------------------------------------------------- rendering

/** Vega-Lite → Vega → SVG, headless (renderer "none": no canvas, no DOM). */
export async function renderSvg(spec: Spec): Promise<string> {
  const vg = compileVegaLite(spec as unknown as TopLevelSpec).spec;
  const view = new View(parseVega(vg), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** JSON safe inside a <script> element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/** A library build from node_modules, safe to inline in a <script> element. */
function inlineScript(pkg: "vega" | "vega-lite" | "vega-embed", file: string): string {
  const entry = fileURLToPath(import.meta.resolve(pkg));
  const text = readFileSync(join(dirname(entry), file), "utf8");
  return text.replace(/<\/script/gi, "<\\/script").replace(/\/\/# sourceMappingURL=.*$/gm, "");
}

function ci(i: Interval | null | undefined, digits = 3): string {
  if (!i || !Number.isFinite(i.lo) || !Number.isFinite(i.hi)) return "";
  return ` [${fmtNum(i.lo, digits)}, ${fmtNum(i.hi, digits)}]`;
}

function fmtNum(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return fmt(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2).replace("e+", "e");
  return Number(v.toPrecision(digits + 1)).toString();
}

function sciHtml(v: number, digits = 2): string {
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  const k = Math.floor(Math.log10(Math.abs(v)));
  const m = v / 10 ** k;
  return `${m.toFixed(digits)}×10<sup>${k}</sup>`;
}

function countHtml(v: number): string {
  if (!Number.isFinite(v)) return fmt(v);
  for (const [u, s] of [
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "k"],
  ] as const) {
    if (v >= u) return `${Number((v / u).toPrecision(3))}${s}`;
  }
  return String(Number(v.toPrecision(3)));
}

const PARAM_ROWS: [keyof LawParams, string][] = [
  ["E", "E (irreducible loss)"],
  ["A", "A"],
  ["alpha", "α (size exponent)"],
  ["B", "B"],
  ["beta", "β (data exponent)"],
];

function paramsTable(a: Analysis): string {
  const rows = PARAM_ROWS.map(([k, label]) => {
    const i = a.boot?.params[k];
    return `<tr><td>${label}</td><td>${fmtNum(a.fit.params[k], 4)}</td><td>${i ? fmtNum(i.se, 3) : "–"}</td><td>${i ? `${fmtNum(i.lo, 4)} – ${fmtNum(i.hi, 4)}` : "–"}</td></tr>`;
  });
  const p = a.fit.params;
  const a3 = p.beta / (p.alpha + p.beta);
  const a3ci = interval(a.boot, (q) => q.beta / (q.alpha + q.beta));
  rows.push(
    `<tr><td>a = β/(α+β), N* ∝ C<sup>a</sup></td><td>${fmtNum(a3, 3)}</td><td>${a3ci ? fmtNum(a3ci.se, 3) : "–"}</td><td>${a3ci ? `${fmtNum(a3ci.lo, 3)} – ${fmtNum(a3ci.hi, 3)}` : "–"}</td></tr>`,
  );
  return `<table class="num"><thead><tr><th>parameter</th><th>estimate</th><th>s.e.</th><th>95% interval</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function returnsTable(a: Analysis): string {
  const rows = returnsToScale(a.fit.params, a.maxC);
  const body = rows
    .map((r) => {
      const loss = interval(a.boot, (p) => computeOptimal(p, r.C).loss);
      const gain =
        r.multiple === 1
          ? null
          : interval(a.boot, (p) => computeOptimal(p, r.C / 10).loss - computeOptimal(p, r.C).loss);
      const N = interval(a.boot, (p) => computeOptimal(p, r.C).N);
      return (
        `<tr><td>${r.multiple === 1 ? "1×" : `10<sup>${Math.round(Math.log10(r.multiple))}</sup>×`}</td>` +
        `<td>${sciHtml(r.C)}</td><td>${countHtml(r.N)}${N ? ` <span class="ci">[${countHtml(N.lo)}, ${countHtml(N.hi)}]</span>` : ""}</td>` +
        `<td>${countHtml(r.D)}</td><td>${fmtNum(r.tokensPerParam, 3)}</td>` +
        `<td>${r.loss.toFixed(4)}${loss ? ` <span class="ci">[${loss.lo.toFixed(4)}, ${loss.hi.toFixed(4)}]</span>` : ""}</td>` +
        `<td>${Number.isNaN(r.gain) ? "–" : `${r.gain.toFixed(4)}${gain ? ` <span class="ci">[${gain.lo.toFixed(4)}, ${gain.hi.toFixed(4)}]</span>` : ""}`}</td>` +
        `<td>${r.reducible.toFixed(4)}</td></tr>`
      );
    })
    .join("");
  return (
    `<table class="num"><thead><tr><th>compute</th><th>C (FLOPs)</th><th>N*</th><th>D*</th><th>D*/N*</th>` +
    `<th>loss L*(C)</th><th>gain from this 10×</th><th>L* − E</th></tr></thead><tbody>${body}</tbody></table>`
  );
}

function sourceDescription(s: LoadedSource): string {
  if (s.kind === "dataset" && s.label === "chinchilla") {
    return (
      "the 245 training runs of Hoffmann et al. (2022, Figure 4) as extracted by Epoch AI " +
      "(Besiroglu et al. 2024, arXiv:2404.10102); D = C/(6N)"
    );
  }
  if (s.kind === "sweep" && s.plan) {
    const p = s.plan;
    const t = p.train as Record<string, unknown>;
    return (
      `sweep <code>${escapeHtml(p.sweepId)}</code>: ${p.runs.length} ${p.family} runs, ${p.budgets.length} budgets × ` +
      `${p.sizesPerBudget} sizes on <code>${escapeHtml(String(t.data ?? "brown"))}</code> (vocabulary ${p.vocab}); ` +
      `loss is the final validation loss; N counts the parameters in the matmuls a token passes through ` +
      `(non-embedding + output head), C the FLOPs spent` +
      (s.missing && s.missing.length > 0
        ? `; ${s.missing.length} planned runs not finished and left out`
        : "")
    );
  }
  return `CSV file <code>${escapeHtml(s.path ?? s.label)}</code>`;
}

export interface Figure {
  id: string;
  title: string;
  caption: string;
  spec: Spec;
}

function lawSentence(a: Analysis): string {
  const p = a.fit.params;
  const b = a.boot?.params;
  return (
    `L(N, D) = E + A/N<sup>α</sup> + B/D<sup>β</sup> with E = ${fmtNum(p.E, 4)}${ci(b?.E, 4)}, ` +
    `A = ${fmtNum(p.A)}${ci(b?.A)}, α = ${fmtNum(p.alpha, 4)}${ci(b?.alpha, 4)}, ` +
    `B = ${fmtNum(p.B)}${ci(b?.B)}, β = ${fmtNum(p.beta, 4)}${ci(b?.beta, 4)}` +
    (a.boot ? " (95% bootstrap intervals in brackets)" : "")
  );
}

function figuresFor(a: Analysis, index: number): Figure[] {
  const label = escapeHtml(a.source.label);
  const computeTitle = "training compute C (FLOPs)";
  const obs = observedRows(a);
  const figs: Figure[] = [];
  figs.push({
    id: `loss-vs-compute-${index}`,
    title: `Loss against compute: ${label}`,
    caption:
      `Each point is one run, coloured by parameters N. The line is the compute-optimal frontier ` +
      `L*(C) = min<sub>N</sub> L(N, C/6N) of the fitted law (solid over the data's compute range, dashed where it ` +
      `extrapolates, to 100× the largest budget); the band is its 95% bootstrap interval. The dotted line is the ` +
      `fitted irreducible loss E. Points sit at the FLOPs they spent; the frontier counts C = 6ND (for a sweep the ` +
      `two differ by attention's share). Fit: ${lawSentence(a)}.`,
    spec: lossVsComputeSpec(obs, frontierRows(a), a.fit.params.E, computeTitle),
  });
  if (
    a.groups.length >= 2 &&
    (a.isoflop || a.groups.every((g) => new Set(g.points.map((p) => p.N)).size >= 3))
  ) {
    const iso = isoflopRows(a);
    const ex = a.isoflop?.minima.filter((m) => m.extrapolated).length ?? 0;
    const failed =
      a.isoflopFailures.length > 0
        ? ` No parabola for: ${escapeHtml(summarizeFailures(a.isoflopFailures))}.`
        : "";
    figs.push({
      id: `isoflop-${index}`,
      title: `IsoFLOP profiles: ${label}`,
      caption:
        `Loss against N for each compute budget, with a parabola in log N fitted per budget (Chinchilla approach 2); ` +
        `diamonds mark each parabola's minimum N<sub>opt</sub>(C).` +
        (a.isoflop
          ? ` Power laws through the minima: N<sub>opt</sub> ∝ C<sup>${a.isoflop.N.exponent.toFixed(3)}</sup>, ` +
            `D<sub>opt</sub> ∝ C<sup>${a.isoflop.D.exponent.toFixed(3)}</sup>.`
          : " Fewer than two budgets have a fitted minimum, so no power law is drawn.") +
        (ex > 0
          ? ` ${ex} of ${a.isoflop!.minima.length} minima lie outside the sampled sizes (extrapolated; less trustworthy).`
          : "") +
        failed,
      spec: isoflopSpec(obs, iso.curves, iso.minima, iso.order),
    });
  }
  const opt = optimalRows(a);
  const p = a.fit.params;
  figs.push({
    id: `optimal-size-${index}`,
    title: `Compute-optimal model size: ${label}`,
    caption:
      `N*(C) from the fitted law (approach 3; N* ∝ C<sup>${(p.beta / (p.alpha + p.beta)).toFixed(3)}</sup>, band: 95% bootstrap interval)` +
      (a.isoflop
        ? ` and the IsoFLOP minima with their power law (approach 2, dotted; N<sub>opt</sub> ∝ C<sup>${a.isoflop.N.exponent.toFixed(3)}</sup>)`
        : "") +
      `. The law's C is 6ND.`,
    spec: optimalSizeSpec(opt.law, opt.minima, opt.powerLaw, computeTitle),
  });
  figs.push({
    id: `fitted-vs-observed-${index}`,
    title: `Fitted against observed: ${label}`,
    caption:
      `Each run's loss against the fitted L(N, D); the dashed line is equality. ` +
      `RMS residual of log loss ${fmtNum(a.fit.rmsLogResidual, 3)} over ${a.fit.nPoints} runs.`,
    spec: fittedVsObservedSpec(obs, [a.source.label]),
  });
  return figs;
}

// ---------------------------------------------------------------- the page

const STYLE = `
body { font: 15px/1.5 "Charter", "Georgia", "Times New Roman", serif; color: #1a1a1a; max-width: 1240px; margin: 2.5em auto; padding: 0 1.5em; }
h1 { font-size: 1.6em; font-weight: normal; margin-bottom: 0.1em; }
h2 { font-size: 1.2em; font-weight: normal; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.sub { color: #555; margin-top: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1.5em 2em; }
figure { margin: 0; flex: 1 1 560px; max-width: 600px; }
figure.wide { max-width: 100%; }
.chart { min-height: 300px; }
figcaption { font-size: 0.86em; color: #333; margin-top: 0.3em; }
figcaption b { font-weight: 600; }
table.num { border-collapse: collapse; font-size: 0.88em; margin: 0.6em 0; font-variant-numeric: tabular-nums; }
table.num th, table.num td { padding: 0.25em 0.7em; text-align: right; }
table.num th:first-child, table.num td:first-child { text-align: left; }
table.num thead th { border-top: 1.5px solid #222; border-bottom: 1px solid #222; font-weight: 600; }
table.num tbody tr:last-child td { border-bottom: 1.5px solid #222; }
.ci { color: #666; font-size: 0.9em; }
.callout { background: #f5f7fa; border-left: 3px solid #0072B2; padding: 0.6em 1em; }
code { font-size: 0.9em; }
.methods { font-size: 0.92em; }
`;

function methodsParagraph(analyses: Analysis[], options: ReportOptions): string {
  const a = analyses[0]!;
  const starts =
    EPOCH_GRID.a.length *
    EPOCH_GRID.b.length *
    EPOCH_GRID.e.length *
    EPOCH_GRID.alpha.length *
    EPOCH_GRID.beta.length;
  const boots = options.bootstrap ?? DEFAULT_BOOTSTRAP_COUNT;
  const excluded = analyses.map((x) => x.source.excluded).filter((k) => k > 0);
  return (
    `<p class="methods">The law L(N, D) = E + A/N<sup>α</sup> + B/D<sup>β</sup> is fitted as in Hoffmann et al. (2022, approach 3) ` +
    `and Epoch AI's replication (Besiroglu et al. 2024): parameterised as log L = LSE(a − α log N, b − β log D, e) with ` +
    `A = e<sup>a</sup>, B = e<sup>b</sup>, E = e<sup>e</sup>, it minimises the Huber loss (δ = ${a.fit.delta === HUBER_DELTA ? "10<sup>−3</sup>" : fmtNum(a.fit.delta)}) ` +
    `of the log-loss residuals with L-BFGS from a grid of ${starts} starting points (α, β ∈ {0, 0.5, …, 2}; e ∈ {−1, −0.5, …, 1}; ` +
    `a, b ∈ {0, 5, …, 25}) and keeps the best. ` +
    (boots > 0
      ? `Uncertainty: ${boots} bootstrap resamples of the runs (seed ${options.seed ?? 1}), each refitted; intervals are the 2.5th–97.5th percentiles, ` +
        `and every derived quantity (N*, L*, gains, the compute multiplier) is computed per replicate. `
      : "No bootstrap was run (intervals omitted). ") +
    (excluded.length > 0
      ? `The ${excluded.join(" / ")} highest-loss runs were excluded first, as in Epoch AI's protocol. `
      : "") +
    `The compute-optimal allocation minimises L(N, D) subject to C = 6ND: N* = G(C/6)<sup>β/(α+β)</sup>, ` +
    `D* = G<sup>−1</sup>(C/6)<sup>α/(α+β)</sup>, G = (αA/(βB))<sup>1/(α+β)</sup>. ` +
    `IsoFLOP profiles (approach 2) fit a parabola of loss in log N per budget and power laws through the minima by least squares in log space.</p>`
  );
}

function comparisonSection(a: Analysis, b: Analysis): { html: string; figure: Figure } {
  const C = a.maxC;
  const m = computeMultiplier(a.fit.params, b.fit.params, C);
  const mi =
    a.boot && b.boot
      ? pairedInterval(a.boot, b.boot, (pa, pb) => computeMultiplier(pa, pb, C).multiplier)
      : null;
  const la = escapeHtml(a.source.label);
  const lb = escapeHtml(b.source.label);
  const points = [...observedRows(a), ...observedRows(b)];
  const to = Math.max(a.maxC, b.maxC) * 100;
  const frontier = [...frontierRows(a, to), ...frontierRows(b, to)];
  const sources = [a.source.label, b.source.label];
  const verdict =
    m.multiplier > 1
      ? `${lb} reaches ${la}'s compute-optimal loss with ${fmtNum(m.multiplier, 3)}× less compute`
      : `${lb} needs ${fmtNum(1 / m.multiplier, 3)}× more compute than ${la} to reach ${la}'s compute-optimal loss`;
  const html =
    `<p class="callout">At C = ${sciHtml(C)} FLOPs (the largest budget of ${la}), ${la}'s compute-optimal loss is ` +
    `${m.lossA.toFixed(4)}; ${verdict}: effective compute multiplier ${fmtNum(m.multiplier, 3)}` +
    (mi ? ` (95% interval ${fmtNum(mi.lo, 3)} – ${fmtNum(mi.hi, 3)}, paired bootstrap)` : "") +
    `.</p><table class="num"><thead><tr><th>parameter</th><th>${la}</th><th>${lb}</th></tr></thead><tbody>` +
    PARAM_ROWS.map(
      ([k, label]) =>
        `<tr><td>${label}</td><td>${fmtNum(a.fit.params[k], 4)}<span class="ci">${ci(a.boot?.params[k], 3)}</span></td>` +
        `<td>${fmtNum(b.fit.params[k], 4)}<span class="ci">${ci(b.boot?.params[k], 3)}</span></td></tr>`,
    ).join("") +
    `</tbody></table>`;
  return {
    html,
    figure: {
      id: "comparison",
      title: `Comparison: ${la} and ${lb}`,
      caption:
        `Both sources' runs and compute-optimal frontiers (solid over each one's data, dashed beyond; bands: 95% bootstrap intervals). ` +
        `The horizontal gap between the frontiers at equal loss is the effective compute multiplier.`,
      spec: comparisonSpec(points, frontier, sources, "training compute C (FLOPs)"),
    },
  };
}

export function figureHtml(f: Figure, n: number, svgHref: string): string {
  return (
    `<figure id="fig-${f.id}"><div class="chart" id="chart-${f.id}" data-figure="${f.id}"></div>` +
    `<figcaption><b>Figure ${n}.</b> ${f.caption} <a href="${escapeHtml(svgHref)}">SVG</a></figcaption></figure>`
  );
}

/** Builds the report; returns the page and the figures (for the SVGs). */
export function buildReport(
  options: ReportOptions,
  svgHrefBase: string,
): { html: string; figures: Figure[] } {
  if (options.sources.length < 1 || options.sources.length > 2) {
    throw new Error(`report: give one or two sources, got ${options.sources.length}`);
  }
  const bootstrap = options.bootstrap ?? DEFAULT_BOOTSTRAP_COUNT;
  const seed = options.seed ?? 1;
  const analyses = options.sources.map((s, i) => {
    const source = loadSource(s, {
      ...(options.root ? { root: options.root } : {}),
      excludeTopLoss: options.excludeTopLoss ?? 0,
    });
    // A CSV is named by its file name in figures and tables; the full path is in the data line.
    const label = source.kind === "csv" ? basename(source.label).replace(/\.csv$/i, "") : source.label;
    return analyse({ ...source, label }, bootstrap, seed + i);
  });
  if (analyses.length === 2 && analyses[0]!.source.label === analyses[1]!.source.label) {
    analyses[1]!.source.label = `${analyses[1]!.source.label} (2)`;
  }
  const figures: Figure[] = [];
  const sections: string[] = [];
  let n = 0;
  const place = (figs: Figure[]) =>
    `<div class="figures">${figs.map((f) => figureHtml(f, ++n, `${svgHrefBase}/${f.id}.svg`)).join("")}</div>`;
  let tableNo = 0;
  for (const [i, a] of analyses.entries()) {
    const figs = figuresFor(a, i + 1);
    figures.push(...figs);
    const s = a.source;
    sections.push(
      `<h2>${analyses.length > 1 ? `${i + 1}. ` : ""}${escapeHtml(s.label)}</h2>` +
        `<p>Data: ${sourceDescription(s)}; ${s.points.length} runs` +
        (s.excluded > 0 ? ` after excluding the ${s.excluded} highest-loss runs` : "") +
        `, compute ${sciHtml(a.minC)} – ${sciHtml(a.maxC)} FLOPs.` +
        (a.isoflop
          ? ""
          : ` Approach 2 (IsoFLOP minima) not available: ${escapeHtml(summarizeFailures(a.isoflopFailures) || "the runs do not form an IsoFLOP grid (at least two budgets with three or more sizes)")}.`) +
        `</p>` +
        `<p><b>Table ${++tableNo}.</b> Fitted parameters of L(N, D) = E + A/N<sup>α</sup> + B/D<sup>β</sup>` +
        (a.boot
          ? ` with bootstrap standard errors and 95% intervals (${a.boot.count} resamples, ${a.boot.failed} failed)`
          : "") +
        `.</p>${paramsTable(a)}` +
        place(figs) +
        `<p><b>Table ${++tableNo}.</b> Returns to scale: the compute-optimal loss predicted at 1× to 10<sup>6</sup>× ` +
        `the largest budget (${sciHtml(a.maxC)} FLOPs), and the loss each further 10× buys; brackets: 95% bootstrap intervals. ` +
        `Beyond the data these are extrapolations of the fitted law.</p>${returnsTable(a)}`,
    );
  }
  if (analyses.length === 2) {
    const c = comparisonSection(analyses[0]!, analyses[1]!);
    figures.push(c.figure);
    sections.push(`<h2>3. Comparison</h2>${c.html}${place([c.figure])}`);
  }
  const plainTitle = options.title ?? `Scaling report: ${analyses.map((a) => a.source.label).join(" vs ")}`;
  const subtitle = `Generated by afterscale on ${new Date().toISOString().slice(0, 10)} · ${analyses.map((a) => a.source.points.length).join(" + ")} runs · Chinchilla approach 3 with Epoch AI's protocol${bootstrap > 0 ? ` · ${bootstrap} bootstrap resamples` : ""}`;
  const body = `${sections.join("\n")}
<h2>Methods</h2>
${methodsParagraph(analyses, options)}
<p class="methods">References: J. Hoffmann et al., <i>Training Compute-Optimal Large Language Models</i>, arXiv:2203.15556 (2022).
T. Besiroglu, E. Erdil, M. Barnett, J. You, <i>Chinchilla Scaling: A replication attempt</i>, arXiv:2404.10102 (2024).</p>`;
  const html = pageHtml(plainTitle, subtitle, body, figures);
  return { html, figures };
}

/** Writes the HTML report and one SVG per figure. */
export async function writeReport(options: ReportOptions): Promise<ReportWritten> {
  return writePage(options.out, options.svgDir, (href) => buildReport(options, href));
}

/** A self-contained page: title, subtitle (plain text), body HTML, and the figures' charts rendered in place. */
export function pageHtml(
  plainTitle: string,
  subtitle: string,
  body: string,
  figures: readonly Figure[],
): string {
  const title = escapeHtml(plainTitle);
  const specs = Object.fromEntries(figures.map((f) => [f.id, f.spec]));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${title}</h1>
<p class="sub">${escapeHtml(subtitle)}</p>
${body}
<script>${inlineScript("vega", "vega.min.js")}</script>
<script>${inlineScript("vega-lite", "vega-lite.min.js")}</script>
<script>${inlineScript("vega-embed", "vega-embed.min.js")}</script>
<script>
const specs = ${scriptJson(specs)};
window.chartsRendered = Promise.all(Object.entries(specs).map(([id, spec]) =>
  vegaEmbed("#chart-" + id, spec, { renderer: "svg", actions: false })));
window.chartsRendered.then(() => { document.body.dataset.charts = "ready"; },
  (e) => { document.body.dataset.charts = "failed"; console.error(e); });
</script>
</body>
</html>
`;
}

/** Writes a page and one SVG per figure; `build` gets the SVG folder's address relative to the page. */
export async function writePage(
  out: string,
  svgDirOption: string | undefined,
  build: (svgHrefBase: string) => { html: string; figures: Figure[] },
): Promise<ReportWritten> {
  const html = resolve(out);
  const svgDir = resolve(svgDirOption ?? `${html.replace(/\.html?$/i, "")}-svg`);
  const href = relative(dirname(html), svgDir).split("\\").join("/") || ".";
  const built = build(href);
  mkdirSync(dirname(html), { recursive: true });
  mkdirSync(svgDir, { recursive: true });
  const svgs: string[] = [];
  for (const f of built.figures) {
    const path = join(svgDir, `${f.id}.svg`);
    writeFileSync(path, await renderSvg(f.spec));
    svgs.push(path);
  }
  writeFileSync(html, built.html);
  return { html, svgDir, svgs, figures: built.figures.map((f) => f.id) };
}
