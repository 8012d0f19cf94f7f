// Plain-text reports of scaling fits, for the CLI (`afterscale fit`, `afterscale compare`).

import type { BootstrapFit } from "./bootstrap.js";
import {
  bootstrapFit,
  DEFAULT_BOOTSTRAP_COUNT,
  derivedInterval,
  PARAM_NAMES,
  pairedInterval,
} from "./bootstrap.js";
import { computeMultiplier, computeOptimal, inferenceAwareOptimum, returnsToScale } from "./derived.js";
import type { ChinchillaFit, FitOptions, LawParams } from "./fit.js";
import { fitChinchilla } from "./fit.js";
import type { IsoflopBootstrap, IsoflopFit } from "./isoflop.js";
import { groupByBudget, isoflopBootstrap } from "./isoflop.js";
import type { ScalingPoint } from "./points.js";
import type { Interval } from "./stats.js";

/** Compact number: 4 significant digits, exponent form for very large or small magnitudes. */
export function fmt(v: number): string {
  if (Number.isNaN(v)) return "-";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) {
    return v
      .toExponential(3)
      .replace(/\.?0+e/, "e")
      .replace("e+", "e");
  }
  return Number(v.toPrecision(4)).toString();
}

function fmtInterval(i: Interval | undefined): string {
  return i ? `[${fmt(i.lo)}, ${fmt(i.hi)}]` : "";
}

/** Left-aligned first column, right-aligned numbers. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export interface FitReportInput {
  title?: string;
  fit: ChinchillaFit;
  boot?: BootstrapFit;
  /** Base budget of the returns-to-scale table (usually the largest C in the data). */
  baseCompute: number;
  /** Points left out by --exclude-top-loss. */
  excluded?: number;
  /** Expected lifetime inference tokens, for the inference-aware optimum at the base budget's loss. */
  inferenceTokens?: number;
  isoflop?: IsoflopFit | IsoflopBootstrap;
}

const PARAM_LABELS: Record<keyof LawParams, string> = {
  A: "A",
  B: "B",
  E: "E",
  alpha: "alpha",
  beta: "beta",
};

export function formatFitReport(input: FitReportInput): string {
  const { fit, boot } = input;
  const p = fit.params;
  const ci = (f: (q: LawParams) => number): Interval | undefined =>
    boot ? derivedInterval(boot, f) : undefined;
  const out: string[] = [];
  out.push(input.title ?? "Scaling-law fit: L(N, D) = E + A/N^alpha + B/D^beta");
  out.push(
    `${fit.nPoints} runs${input.excluded ? ` (${input.excluded} highest-loss excluded)` : ""}; ` +
      `Huber delta ${fit.delta} on log loss; L-BFGS from ${fit.starts} starts; ` +
      `objective ${fit.objective.toExponential(6)}; rms log residual ${fmt(fit.rmsLogResidual)}` +
      (fit.converged ? "" : "; WARNING: optimiser did not converge"),
  );
  if (boot) {
    out.push(
      `bootstrap: ${boot.replicates.length} resamples of runs (seed ${boot.seed}` +
        `${boot.failed ? `, ${boot.failed} failed refits dropped` : ""}); 95% percentile intervals`,
    );
  }
  out.push("");
  out.push(
    formatTable(
      ["parameter", "estimate", "std err", "95% interval"],
      PARAM_NAMES.map((k) => [
        PARAM_LABELS[k],
        fmt(p[k]),
        boot ? fmt(boot.params[k].se) : "",
        fmtInterval(boot?.params[k]),
      ]),
    ),
  );

  const C = input.baseCompute;
  const opt = computeOptimal(p, C);
  out.push("");
  out.push(`Compute-optimal allocation at C = ${fmt(C)} FLOPs (C = 6ND)`);
  const derivedRows: [string, number, Interval | undefined][] = [
    ["N* (params)", opt.N, ci((q) => computeOptimal(q, C).N)],
    ["D* (tokens)", opt.D, ci((q) => computeOptimal(q, C).D)],
    ["tokens/param", opt.tokensPerParam, ci((q) => computeOptimal(q, C).tokensPerParam)],
    ["loss", opt.loss, ci((q) => computeOptimal(q, C).loss)],
    ["N* exponent b/(a+b)", p.beta / (p.alpha + p.beta), ci((q) => q.beta / (q.alpha + q.beta))],
    ["D* exponent a/(a+b)", p.alpha / (p.alpha + p.beta), ci((q) => q.alpha / (q.alpha + q.beta))],
  ];
  out.push(
    formatTable(
      ["quantity", "estimate", "std err", "95% interval"],
      derivedRows.map(([name, v, i]) => [name, fmt(v), i ? fmt(i.se) : "", fmtInterval(i)]),
    ),
  );

  const rows = returnsToScale(p, C);
  out.push("");
  out.push("Returns to scale: compute-optimal loss at multiples of the base budget");
  out.push(
    formatTable(
      [
        "compute",
        "C (FLOPs)",
        "N*",
        "D*",
        "loss",
        "95% interval",
        "gain from 10x",
        "95% interval",
        "loss - E",
      ],
      rows.map((r, k) => {
        const lossCi = ci((q) => computeOptimal(q, C * 10 ** k).loss);
        const gainCi =
          k > 0
            ? ci((q) => computeOptimal(q, C * 10 ** (k - 1)).loss - computeOptimal(q, C * 10 ** k).loss)
            : undefined;
        return [
          k === 0 ? "1x" : `10^${k}x`,
          fmt(r.C),
          fmt(r.N),
          fmt(r.D),
          fmt(r.loss),
          fmtInterval(lossCi),
          k > 0 ? fmt(r.gain) : "",
          fmtInterval(gainCi),
          fmt(r.reducible),
        ];
      }),
    ),
  );

  if (input.inferenceTokens !== undefined) {
    const inf = inferenceAwareOptimum(p, { trainingCompute: C }, input.inferenceTokens);
    out.push("");
    out.push(
      `Inference-aware optimum (Sardana et al. 2023) for loss ${fmt(inf.targetLoss)} ` +
        `with ${fmt(input.inferenceTokens)} inference tokens`,
    );
    out.push(
      formatTable(
        ["model", "N", "D", "tokens/param", "train FLOPs", "inference FLOPs", "total FLOPs"],
        [
          [
            "inference-aware",
            fmt(inf.N),
            fmt(inf.D),
            fmt(inf.tokensPerParam),
            fmt(inf.trainFlops),
            fmt(inf.inferenceFlops),
            fmt(inf.totalFlops),
          ],
          [
            "Chinchilla-optimal",
            fmt(inf.chinchilla.N),
            fmt(inf.chinchilla.D),
            fmt(inf.chinchilla.D / inf.chinchilla.N),
            fmt(inf.chinchilla.trainFlops),
            fmt(inf.chinchilla.inferenceFlops),
            fmt(inf.chinchilla.totalFlops),
          ],
        ],
      ),
    );
    out.push(`lifetime FLOPs saved: ${fmt(100 * inf.savings)}%`);
  }

  if (input.isoflop) {
    const iso = input.isoflop;
    const boot2 = "a" in iso ? iso : undefined;
    out.push("");
    out.push("IsoFLOP profiles (approach 2): parabola of loss vs ln N per budget");
    out.push(
      formatTable(
        ["budget (FLOPs)", "runs", "N_opt", "D_opt", "loss at opt", "note"],
        iso.minima.map((m) => [
          fmt(m.budget),
          String(m.runs),
          fmt(m.Nopt),
          fmt(m.Dopt),
          fmt(m.lossAtOpt),
          m.extrapolated ? "vertex outside sampled N" : "",
        ]),
      ),
    );
    out.push(
      `N_opt ∝ C^${fmt(iso.N.exponent)}${boot2 ? ` ${fmtInterval(boot2.a)}` : ""}; ` +
        `D_opt ∝ C^${fmt(iso.D.exponent)}${boot2 ? ` ${fmtInterval(boot2.b)}` : ""}` +
        `; parametric fit gives ${fmt(p.beta / (p.alpha + p.beta))} and ${fmt(p.alpha / (p.alpha + p.beta))}`,
    );
  }
  return out.join("\n");
}

/** `afterscale compare A B`: how much less compute B needs to reach A's compute-optimal loss at C. */
export function formatComparison(
  a: BootstrapFit | ChinchillaFit,
  b: BootstrapFit | ChinchillaFit,
  C: number,
  labels: [string, string] = ["A", "B"],
): string {
  const fa = "fit" in a ? a.fit : a;
  const fb = "fit" in b ? b.fit : b;
  const m = computeMultiplier(fa.params, fb.params, C);
  const interval =
    "fit" in a && "fit" in b
      ? pairedInterval(a, b, (pa, pb) => computeMultiplier(pa, pb, C).multiplier)
      : undefined;
  const rows = [labels[0], labels[1]].map((label, i) => {
    const q = (i === 0 ? fa : fb).params;
    return [label, fmt(q.A), fmt(q.B), fmt(q.E), fmt(q.alpha), fmt(q.beta), fmt(computeOptimal(q, C).loss)];
  });
  const out = [
    formatTable(["fit", "A", "B", "E", "alpha", "beta", `loss at C=${fmt(C)}`], rows),
    "",
    `${labels[0]} reaches loss ${fmt(m.lossA)} with ${fmt(C)} FLOPs; ${labels[1]} needs ${fmt(m.computeB)} FLOPs.`,
    `effective compute multiplier of ${labels[1]} over ${labels[0]}: ${fmt(m.multiplier)}x` +
      (interval ? ` (95% interval ${fmtInterval(interval)}, SE ${fmt(interval.se)})` : ""),
  ];
  return out.join("\n");
}

export interface FitCommandOptions {
  /** Bootstrap resamples (0 = point estimates only). */
  bootstrap?: number;
  seed?: number;
  /** Base budget of the tables; default: the largest C among the points. */
  baseCompute?: number;
  inferenceTokens?: number;
  /** Also fit IsoFLOP profiles (approach 2); a note replaces them when the runs are not an IsoFLOP grid. */
  isoflop?: boolean;
  excluded?: number;
  title?: string;
  fit?: FitOptions;
}

/** Everything `afterscale fit` prints: fit, bootstrap, derived tables, optional IsoFLOP profiles. */
export function fitAndFormat(
  points: readonly ScalingPoint[],
  options: FitCommandOptions = {},
): { text: string; fit: ChinchillaFit; boot?: BootstrapFit; isoflop?: IsoflopBootstrap } {
  const fit = fitChinchilla(points, options.fit);
  const count = options.bootstrap ?? DEFAULT_BOOTSTRAP_COUNT;
  const seed = options.seed ?? 0;
  const boot = count > 0 ? bootstrapFit(points, { count, seed, fit: options.fit, fullFit: fit }) : undefined;
  let isoflop: IsoflopBootstrap | undefined;
  let note = "";
  if (options.isoflop) {
    try {
      isoflop = isoflopBootstrap(groupByBudget(points), { count: Math.max(count, 2), seed });
    } catch (err) {
      note = `\n\nIsoFLOP profiles skipped: ${(err as Error).message}`;
    }
  }
  const text = formatFitReport({
    title: options.title,
    fit,
    boot,
    baseCompute: options.baseCompute ?? Math.max(...points.map((p) => p.C)),
    excluded: options.excluded,
    inferenceTokens: options.inferenceTokens,
    isoflop,
  });
  return { text: text + note, fit, boot, isoflop };
}

/** Everything `afterscale compare A B` prints; C defaults to the largest budget in A. */
export function compareAndFormat(
  a: readonly ScalingPoint[],
  b: readonly ScalingPoint[],
  options: {
    bootstrap?: number;
    seed?: number;
    compute?: number;
    labels?: [string, string];
    fit?: FitOptions;
  } = {},
): string {
  const count = options.bootstrap ?? DEFAULT_BOOTSTRAP_COUNT;
  const seed = options.seed ?? 0;
  const C = options.compute ?? Math.max(...a.map((p) => p.C));
  if (count > 0) {
    // Different seeds for the two datasets: their resamples are independent.
    const ba = bootstrapFit(a, { count, seed, fit: options.fit });
    const bb = bootstrapFit(b, { count, seed: seed + 1, fit: options.fit });
    return formatComparison(ba, bb, C, options.labels);
  }
  return formatComparison(fitChinchilla(a, options.fit), fitChinchilla(b, options.fit), C, options.labels);
}
