// Vega-Lite specs of the scaling report's figures. Each builder takes plain rows and returns a spec; the
// report renders them twice: server-side to SVG (vega View.toSVG) and in the page with vega-embed.
//
// Conventions, so the figures read like a paper's: log axes carry ticks only at decades (plus 2× and 5×
// when the data spans less than two decades) labelled 10ⁿ for FLOPs and 10k / 1M / 1B for counts; one
// palette (Okabe–Ito for categories, viridis for ordered quantities); a fitted law is a solid line inside
// the data and dashed where it extrapolates; 95% bootstrap intervals are shaded bands.

/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = [
  "#0072B2",
  "#D55E00",
  "#009E73",
  "#CC79A7",
  "#E69F00",
  "#56B4E9",
  "#F0E442",
  "#000000",
];

export const CHART_WIDTH = 370;
export const CHART_HEIGHT = 270;

export type Spec = Record<string, unknown>;

export type TickKind = "flops" | "count";

const SUPERSCRIPT: Record<string, string> = {
  "0": "⁰",
  "1": "¹",
  "2": "²",
  "3": "³",
  "4": "⁴",
  "5": "⁵",
  "6": "⁶",
  "7": "⁷",
  "8": "⁸",
  "9": "⁹",
  "-": "⁻",
};

/** "10¹¹" for 1e11; "2×10¹¹" for 2e11; "1.5×10¹¹" for 1.5e11 (two significant digits). */
export function powerLabel(v: number): string {
  const k = Math.floor(Math.log10(v) + 1e-9);
  const m = Number((v / 10 ** k).toPrecision(2));
  const exp = String(k)
    .split("")
    .map((c) => SUPERSCRIPT[c] ?? c)
    .join("");
  return m === 1 ? `10${exp}` : `${m}×10${exp}`;
}

/** "10k", "2M", "1B": counts of parameters or tokens. */
export function countLabel(v: number): string {
  const units: [number, string][] = [
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [u, s] of units) if (v >= u) return `${Number((v / u).toPrecision(3))}${s}`;
  return String(Number(v.toPrecision(3)));
}

/** Tick values on a log axis over [lo, hi]: decades, plus 2× and 5× when fewer than three decades fit. */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0 && hi >= lo && Number.isFinite(hi)))
    throw new Error(`log axis: the range [${lo}, ${hi}] is not positive and finite`);
  const k0 = Math.floor(Math.log10(lo));
  const k1 = Math.ceil(Math.log10(hi));
  const inRange = (v: number) => v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9);
  const decades: number[] = [];
  for (let k = k0; k <= k1; k++) decades.push(Number(`1e${k}`));
  let ticks = decades.filter(inRange);
  if (ticks.length < 3) {
    const dense: number[] = [];
    for (let k = k0; k <= k1; k++) for (const m of [1, 2, 5]) dense.push(Number(`${m}e${k}`));
    ticks = dense.filter(inRange);
  }
  return ticks;
}

/** A Vega expression mapping each tick value to its label (a chain of exact comparisons). */
export function tickLabelExpr(ticks: readonly number[], kind: TickKind): string {
  const label = kind === "flops" ? powerLabel : countLabel;
  return ticks.reduceRight((rest, v) => `datum.value == ${String(v)} ? '${label(v)}' : ${rest}`, "''");
}

/** The domain of a log axis: the data range padded by a quarter decade either side. */
export function logDomain(values: readonly number[]): [number, number] {
  // Zero, negative or infinite values cannot sit on a log axis (a fit may drive an optimum to 0 or ∞);
  // Vega leaves them off the chart, and they must not stretch the domain to 0.
  const drawable = values.filter((v) => v > 0 && Number.isFinite(v));
  if (drawable.length === 0) return [1, 10];
  const lo = Math.min(...drawable);
  const hi = Math.max(...drawable);
  return [lo / 10 ** 0.25, hi * 10 ** 0.25];
}

/** A log-scale axis with explicit ticks and labels (a Vega expression mapping each tick to its label). */
export function logAxis(title: string, domain: [number, number], kind: TickKind): Spec {
  const ticks = logTicks(domain[0], domain[1]);
  const expr = tickLabelExpr(ticks, kind);
  return {
    scale: { type: "log", domain, nice: false },
    axis: { title, values: ticks, labelExpr: expr, grid: true, tickCount: ticks.length },
  };
}

export const CHART_CONFIG: Spec = {
  font: "Helvetica Neue, Helvetica, Arial, sans-serif",
  background: "white",
  padding: 8,
  view: { stroke: "#444", strokeWidth: 0.8 },
  axis: {
    labelFontSize: 11,
    titleFontSize: 12,
    titleFontWeight: "normal",
    titleColor: "#222",
    labelColor: "#333",
    gridColor: "#e6e6e6",
    gridWidth: 0.6,
    domainColor: "#444",
    tickColor: "#444",
    labelFlush: false,
  },
  legend: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: "normal", symbolSize: 60 },
  title: { fontSize: 13, fontWeight: "normal", anchor: "start" },
  range: { category: PALETTE },
};

/** Solid where the fit has data, dashed where it extrapolates (the "segment" field of a curve's points). */
export function segmentDash(legend: Spec | null): Spec {
  return {
    field: "segment",
    type: "nominal",
    scale: {
      domain: ["fit range", "extrapolation"],
      range: [
        [1, 0],
        [5, 4],
      ],
    },
    legend,
  };
}

/** A Vega-Lite spec with the reports' size and style. */
export function chartSpec(extra: Spec): Spec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    config: CHART_CONFIG,
    ...extra,
  };
}

const lossScale = (values: readonly number[]): Spec => {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = (hi - lo) * 0.06 || 0.05;
  return { scale: { zero: false, domain: [lo - pad, hi + pad], nice: false } };
};

export interface ObservedRow {
  source: string;
  N: number;
  D: number;
  C: number;
  loss: number;
  predicted: number;
  /** Budget label of the run's IsoFLOP group, when grouped. */
  budget?: string;
}

export interface FrontierRow {
  source: string;
  C: number;
  loss: number;
  lo?: number;
  hi?: number;
  /** "fit range" inside the data's compute range, "extrapolation" beyond it. */
  segment: "fit range" | "extrapolation";
}

/** Figure: loss against compute, points coloured by N, with the compute-optimal frontier L*(C) and E. */
export function lossVsComputeSpec(
  points: readonly ObservedRow[],
  frontier: readonly FrontierRow[],
  E: number,
  computeTitle: string,
): Spec {
  const xDomain = logDomain([...points.map((p) => p.C), ...frontier.map((f) => f.C)]);
  const yValues = [...points.map((p) => p.loss), ...frontier.map((f) => f.loss), E];
  const x = { field: "C", type: "quantitative", ...logAxis(computeTitle, xDomain, "flops") };
  const y = { field: "loss", type: "quantitative", title: "loss (nats/token)", ...lossScale(yValues) };
  const nDomain = logDomain(points.map((p) => p.N));
  return chartSpec({
    layer: [
      {
        data: { values: frontier.filter((f) => f.lo !== undefined) },
        mark: { type: "area", color: PALETTE[0], opacity: 0.16, clip: true },
        encoding: { x, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" } },
      },
      {
        data: { values: frontier },
        mark: { type: "line", color: PALETTE[0], strokeWidth: 2, clip: true },
        encoding: {
          x,
          y,
          strokeDash: segmentDash({ title: "frontier L*(C)", orient: "top-right" }),
        },
      },
      {
        data: { values: [{ E, label: `E = ${E.toFixed(3)}` }] },
        layer: [
          {
            mark: { type: "rule", color: "#777", strokeDash: [2, 3] },
            encoding: { y: { field: "E", type: "quantitative" } },
          },
          {
            mark: { type: "text", align: "left", dx: 4, dy: -6, color: "#555", fontSize: 10.5, x: 0 },
            encoding: { y: { field: "E", type: "quantitative" }, text: { field: "label" } },
          },
        ],
      },
      {
        data: { values: points },
        mark: { type: "point", filled: true, size: 42, opacity: 0.9, stroke: "#222", strokeWidth: 0.4 },
        encoding: {
          x,
          y,
          color: {
            field: "N",
            type: "quantitative",
            scale: { type: "log", scheme: "viridis", domain: nDomain },
            legend: {
              title: "parameters N",
              values: logTicks(nDomain[0], nDomain[1]),
              labelExpr: tickLabelExpr(logTicks(nDomain[0], nDomain[1]), "count"),
              gradientLength: 120,
            },
          },
          tooltip: [
            { field: "N", format: ".3s", title: "N" },
            { field: "D", format: ".3s", title: "D" },
            { field: "C", format: ".3e", title: "C" },
            { field: "loss", format: ".4f" },
          ],
        },
      },
    ],
  });
}

export interface ParabolaRow {
  budget: string;
  N: number;
  loss: number;
}

export interface MinimumRow {
  budget: string;
  N: number;
  loss: number;
}

/** Figure: IsoFLOP profiles, loss against N per budget, with each budget's parabola and its minimum. */
export function isoflopSpec(
  points: readonly ObservedRow[],
  curves: readonly ParabolaRow[],
  minima: readonly MinimumRow[],
  budgetOrder: readonly string[],
): Spec {
  const xDomain = logDomain([...points.map((p) => p.N), ...minima.map((m) => m.N)]);
  const x = { field: "N", type: "quantitative", ...logAxis("parameters N", xDomain, "count") };
  const yValues = [...points.map((p) => p.loss), ...minima.map((m) => m.loss)];
  const y = { field: "loss", type: "quantitative", title: "loss (nats/token)", ...lossScale(yValues) };
  const color = {
    field: "budget",
    type: "ordinal",
    sort: budgetOrder,
    scale: { scheme: "viridis", domain: budgetOrder },
    legend: { title: "budget C (FLOPs)", orient: "right" },
  };
  return chartSpec({
    layer: [
      {
        data: { values: curves },
        mark: { type: "line", strokeWidth: 1.6, clip: true },
        encoding: { x, y, color, detail: { field: "budget" } },
      },
      {
        data: { values: points.filter((p) => p.budget !== undefined) },
        mark: { type: "point", filled: true, size: 40, stroke: "#222", strokeWidth: 0.4, opacity: 0.95 },
        encoding: {
          x,
          y,
          color,
          tooltip: [
            { field: "budget", title: "budget" },
            { field: "N", format: ".3s" },
            { field: "D", format: ".3s" },
            { field: "loss", format: ".4f" },
          ],
        },
      },
      {
        data: { values: minima },
        mark: { type: "point", shape: "diamond", size: 120, filled: true, stroke: "black", strokeWidth: 1 },
        encoding: {
          x,
          y,
          color,
          tooltip: [{ field: "budget" }, { field: "N", format: ".3s", title: "N_opt" }],
        },
      },
    ],
  });
}

export interface OptimalRow {
  source: string;
  C: number;
  N: number;
  lo?: number;
  hi?: number;
  segment?: "fit range" | "extrapolation";
}

/** Figure: compute-optimal N against C: the law's N*(C) (approach 3) and the IsoFLOP minima (approach 2). */
export function optimalSizeSpec(
  law: readonly OptimalRow[],
  minima: readonly OptimalRow[],
  powerLaw: readonly OptimalRow[],
  computeTitle: string,
): Spec {
  const all = [...law, ...minima, ...powerLaw];
  const x = {
    field: "C",
    type: "quantitative",
    ...logAxis(computeTitle, logDomain(all.map((r) => r.C)), "flops"),
  };
  const yDomain = logDomain([...all.map((r) => r.N), ...law.filter((r) => r.lo).map((r) => r.lo!)]);
  const y = {
    field: "N",
    type: "quantitative",
    ...logAxis("compute-optimal parameters N*", yDomain, "count"),
  };
  const methods =
    minima.length > 0 ? ["approach 3: fitted law", "approach 2: IsoFLOP minima"] : ["approach 3: fitted law"];
  const method = {
    field: "method",
    type: "nominal",
    scale: { domain: methods, range: [PALETTE[0], PALETTE[1]].slice(0, methods.length) },
    legend: { title: null, orient: "top-left" },
  };
  return chartSpec({
    layer: [
      {
        data: {
          values: law
            .filter((r) => r.lo !== undefined)
            .map((r) => ({ ...r, method: "approach 3: fitted law" })),
        },
        mark: { type: "area", color: PALETTE[0], opacity: 0.16, clip: true },
        encoding: {
          x,
          y: { field: "lo", type: "quantitative", scale: { type: "log", domain: yDomain } },
          y2: { field: "hi" },
        },
      },
      {
        data: { values: law.map((r) => ({ ...r, method: "approach 3: fitted law" })) },
        mark: { type: "line", strokeWidth: 2, clip: true },
        encoding: {
          x,
          y,
          color: method,
          strokeDash: segmentDash(null),
        },
      },
      {
        data: { values: powerLaw.map((r) => ({ ...r, method: "approach 2: IsoFLOP minima" })) },
        mark: { type: "line", strokeWidth: 1.2, strokeDash: [2, 2], clip: true },
        encoding: { x, y, color: method },
      },
      {
        data: { values: minima.map((r) => ({ ...r, method: "approach 2: IsoFLOP minima" })) },
        mark: { type: "point", shape: "diamond", size: 110, filled: true, stroke: "black", strokeWidth: 0.8 },
        encoding: {
          x,
          y,
          color: method,
          tooltip: [
            { field: "C", format: ".3e" },
            { field: "N", format: ".3s" },
          ],
        },
      },
    ],
  });
}

/** Figure: fitted against observed loss, with the identity line; colour by source. */
export function fittedVsObservedSpec(points: readonly ObservedRow[], sources: readonly string[]): Spec {
  const values = [...points.map((p) => p.loss), ...points.map((p) => p.predicted)];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = (hi - lo) * 0.05 || 0.05;
  const domain = [lo - pad, hi + pad];
  return chartSpec({
    width: CHART_HEIGHT + 40,
    height: CHART_HEIGHT,
    layer: [
      {
        data: {
          values: [
            { a: domain[0], b: domain[0] },
            { a: domain[1], b: domain[1] },
          ],
        },
        mark: { type: "line", color: "#888", strokeDash: [4, 3], strokeWidth: 1 },
        encoding: {
          x: { field: "a", type: "quantitative", scale: { domain, zero: false, nice: false } },
          y: { field: "b", type: "quantitative", scale: { domain, zero: false, nice: false } },
        },
      },
      {
        data: { values: points },
        mark: { type: "point", filled: true, size: 34, opacity: 0.8, stroke: "#222", strokeWidth: 0.3 },
        encoding: {
          x: {
            field: "loss",
            type: "quantitative",
            title: "observed loss (nats/token)",
            scale: { domain, zero: false, nice: false },
          },
          y: {
            field: "predicted",
            type: "quantitative",
            title: "fitted L(N, D) (nats/token)",
            scale: { domain, zero: false, nice: false },
          },
          color: {
            field: "source",
            type: "nominal",
            scale: { domain: sources, range: PALETTE.slice(0, sources.length) },
            legend: sources.length > 1 ? { title: null, orient: "top-left" } : null,
          },
          tooltip: [
            { field: "source" },
            { field: "N", format: ".3s" },
            { field: "D", format: ".3s" },
            { field: "loss", format: ".4f" },
            { field: "predicted", format: ".4f" },
          ],
        },
      },
    ],
  });
}

/** Figure: two sources' points and frontiers on one loss-vs-compute plot. */
export function comparisonSpec(
  points: readonly ObservedRow[],
  frontier: readonly FrontierRow[],
  sources: readonly string[],
  computeTitle: string,
): Spec {
  const xDomain = logDomain([...points.map((p) => p.C), ...frontier.map((f) => f.C)]);
  const x = { field: "C", type: "quantitative", ...logAxis(computeTitle, xDomain, "flops") };
  const y = {
    field: "loss",
    type: "quantitative",
    title: "loss (nats/token)",
    ...lossScale([...points.map((p) => p.loss), ...frontier.map((f) => f.loss)]),
  };
  const color = {
    field: "source",
    type: "nominal",
    scale: { domain: sources, range: PALETTE.slice(0, sources.length) },
    legend: { title: null, orient: "top-right", symbolOpacity: 1 },
  };
  return chartSpec({
    layer: [
      {
        data: { values: frontier.filter((f) => f.lo !== undefined) },
        mark: { type: "area", opacity: 0.14, clip: true },
        encoding: { x, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color },
      },
      {
        data: { values: frontier },
        mark: { type: "line", strokeWidth: 2, clip: true },
        encoding: {
          x,
          y,
          color,
          detail: { field: "segment" },
          strokeDash: segmentDash(null),
        },
      },
      {
        data: { values: points },
        mark: { type: "point", filled: true, size: 34, opacity: 0.85, stroke: "#222", strokeWidth: 0.3 },
        encoding: {
          x,
          y,
          color,
          shape: { field: "source", type: "nominal", scale: { domain: sources }, legend: color.legend },
        },
      },
    ],
  });
}
