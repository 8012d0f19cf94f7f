// The study's HTML report, on the scaling report's page (same styles, inlined Vega, SVG per figure): loss
// against compute per variant with the baseline's fitted curve, where each recipe's multiplier is the
// horizontal gap from its point to the baseline curve at the same loss.
import {
  escapeHtml,
  type Figure,
  figureHtml,
  pageHtml,
  type ReportWritten,
  writePage,
} from "../scaling/report.js";
import { chartSpec, logAxis, logDomain, PALETTE, segmentDash } from "../scaling/report-charts.js";
import { computeForLoss, INTERVAL_MASS, type StudyResult } from "./estimate.js";
import { formatMultiplier } from "./format.js";
import type { StudyPlan } from "./plan.js";

function lossVsComputeFigure(r: StudyResult, ids: readonly string[]): Figure {
  const shown = r.variants.filter((v) => ids.includes(v.id));
  const points = shown.flatMap((v) =>
    v.points.filter((p) => Number.isFinite(p.mean)).map((p) => ({ variant: v.id, C: p.C, loss: p.mean })),
  );
  const gaps = shown
    .filter((v) => v.id !== r.baseline && r.fit)
    .flatMap((v) =>
      v.points
        .filter((p) => Number.isFinite(p.mean))
        .map((p) => ({ variant: v.id, C: p.C, C2: computeForLoss(r.fit!, p.mean), loss: p.mean }))
        .filter((g) => Number.isFinite(g.C2)),
    );
  const xs = [...points.map((p) => p.C), ...gaps.map((g) => g.C2)];
  const domain = logDomain(xs.length ? xs : [1, 10]);
  const curve: { C: number; loss: number; segment: string }[] = [];
  if (r.fit) {
    const base = r.variants.find((v) => v.id === r.baseline)!;
    const lo = Math.min(...base.points.map((p) => p.C));
    const hi = Math.max(...base.points.map((p) => p.C));
    for (let i = 0; i <= 80; i++) {
      const C = domain[0] * (domain[1] / domain[0]) ** (i / 80);
      const f = r.fit;
      curve.push({
        C,
        loss: f.E + f.A * (C / f.C0) ** -f.alpha,
        segment: C < lo || C > hi ? "extrapolation" : "fit range",
      });
    }
  }
  const losses = [...points.map((p) => p.loss)];
  const pad = (Math.max(...losses) - Math.min(...losses)) * 0.08 || 0.05;
  const x = { field: "C", type: "quantitative", ...logAxis("training compute C (FLOPs)", domain, "flops") };
  const y = {
    field: "loss",
    type: "quantitative",
    title: "validation loss (nats/token)",
    scale: { zero: false, nice: false, domain: [Math.min(...losses) - pad, Math.max(...losses) + pad] },
  };
  const color = {
    field: "variant",
    type: "nominal",
    scale: { domain: ids, range: PALETTE },
    title: "recipe",
  };
  return {
    id: `loss-${ids.length}`,
    title: "Loss against compute",
    caption:
      `Final validation loss (mean over seeds) against training compute for ${ids.map(escapeHtml).join(", ")} at one model size. ` +
      `Grey: the baseline's fitted curve (dashed where extrapolated). Each horizontal segment runs from a recipe's point to the ` +
      "compute at which the baseline curve reaches the same loss: its length on the log axis is the compute multiplier.",
    spec: chartSpec({
      layer: [
        {
          data: { values: curve },
          mark: { type: "line", color: "#888", clip: true },
          encoding: {
            x,
            y,
            strokeDash: segmentDash(null),
          },
        },
        {
          data: { values: gaps },
          mark: { type: "rule", strokeDash: [2, 2], clip: true },
          encoding: { x, x2: { field: "C2" }, y, color },
        },
        {
          data: { values: points },
          mark: { type: "line", point: { filled: true, size: 50 } },
          encoding: {
            x,
            y,
            color,
            tooltip: [{ field: "variant" }, { field: "C", format: ".3e" }, { field: "loss", format: ".4f" }],
          },
        },
      ],
    }),
  };
}

export function buildStudyReport(
  plan: StudyPlan,
  r: StudyResult,
  svgHrefBase: string,
): { html: string; figures: Figure[] } {
  const recipes = plan.recipes;
  const figures = [lossVsComputeFigure(r, recipes)];
  if (plan.ablate)
    figures.push(
      lossVsComputeFigure(
        r,
        r.variants.map((v) => v.id),
      ),
    );
  const rows = r.variants
    .map(
      (v) =>
        `<tr><td>${escapeHtml(v.id)}</td><td>${escapeHtml(v.description)}</td><td>${v.nonEmbedding.toLocaleString("en-US")}</td>` +
        `<td>${v.flopsPerToken.toLocaleString("en-US")}</td>` +
        v.points
          .map(
            (p) =>
              `<td>${Number.isFinite(p.mean) ? p.mean.toFixed(4) : "-"}${p.extrapolated && v.id !== r.baseline ? "*" : ""}</td>`,
          )
          .join("") +
        `<td>${v.id === r.baseline ? "1 (baseline)" : escapeHtml(formatMultiplier(v.multiplier))}</td></tr>`,
    )
    .join("");
  const head =
    "<tr><th>variant</th><th>what</th><th>non-embedding params</th><th>FLOPs/token</th>" +
    plan.budgets.map((b) => `<th>loss @ ${b.toExponential(2)}</th>`).join("") +
    "<th>compute multiplier</th></tr>";
  const tuningRows = r.tuning
    .map(
      (t) =>
        `<tr><td>${escapeHtml(t.recipe)}</td>${t.losses.map((l) => `<td>lr ${l.lr.toPrecision(3)}: ${Number.isFinite(l.loss) ? l.loss.toFixed(4) : "-"}</td>`).join("")}` +
        `<td>${t.best === null ? "pending" : `×${t.best}${t.atEdge ? " (edge)" : ""}`}</td></tr>`,
    )
    .join("");
  let n = 0;
  const body =
    `<p>Recipes ${recipes.map(escapeHtml).join(", ")} (baseline ${escapeHtml(r.baseline)}) at one model size, ` +
    `budgets ${plan.budgets.map((b) => b.toExponential(2)).join(", ")} FLOPs, seeds ${plan.seeds.join(", ")}, ` +
    `data ${escapeHtml(String(plan.train.data ?? "brown"))}.</p>` +
    `<p><b>Table 1.</b> Final validation loss per budget and the effective compute multiplier over the baseline, with its ` +
    `${INTERVAL_MASS * 100}% bootstrap interval over seeds and budgets (${r.bootstrap} resamples). * extrapolated baseline curve.</p>` +
    `<table>${head}${rows}</table>` +
    `<div class="figures">${figures.map((f) => figureHtml(f, ++n, `${svgHrefBase}/${f.id}.svg`)).join("")}</div>` +
    `<p><b>Table 2.</b> Learning-rate sweeps at the smallest budget; each recipe's other runs use its best factor.</p>` +
    `<table>${tuningRows}</table>` +
    '<h2>Methods</h2><p class="methods">The baseline\'s loss against compute is fitted with L(C) = E + A·(C/C₀)<sup>−α</sup>; ' +
    "each recipe point's multiplier is the baseline compute at which that curve reaches the recipe's loss, divided by the " +
    "recipe's compute; a recipe's multiplier is the geometric mean over budgets. Compute counts each recipe's own FLOPs per " +
    "token, so levers that cost FLOPs pay for them. See docs/recipes.md for the estimator's bias.</p>";
  const subtitle = `Generated by afterscale on ${new Date().toISOString().slice(0, 10)} · study ${plan.studyId}`;
  return { html: pageHtml(`Recipe study: ${recipes.join(" vs ")}`, subtitle, body, figures), figures };
}

export function writeStudyReport(plan: StudyPlan, r: StudyResult, out: string): Promise<ReportWritten> {
  return writePage(out, undefined, (href) => buildStudyReport(plan, r, href));
}
