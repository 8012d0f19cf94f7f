// The study's table: every variant's size, compute and losses per budget, and its multiplier over the
// baseline with the bootstrap interval; then the learning-rate sweeps and the estimator's caveats.

import { INTERVAL_MASS, type StudyResult, type VariantResult } from "./estimate.js";
import type { StudyPlan } from "./plan.js";

const sci = (x: number) => (Number.isFinite(x) ? x.toExponential(2).replace("e+", "e") : "-");
const human = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n));

export function formatMultiplier(m: VariantResult["multiplier"]): string {
  if (!m) return "-";
  const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : v > 0 ? "unbounded" : "-");
  return `${x(m.estimate)} [${x(m.lo)}, ${x(m.hi)}]`;
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join("  ");
  return [line(header), ...rows.map(line)];
}

export function formatStudy(plan: StudyPlan, r: StudyResult): string {
  const lines: string[] = [];
  const t = plan.train;
  lines.push(
    `study ${plan.studyId}: ${plan.recipes.join(" vs ")} (baseline ${r.baseline}), model ${String(t.model ?? "micro")}, ` +
      `data ${String(t.data ?? "brown")}, budgets ${plan.budgets.map(sci).join(", ")} FLOPs, seeds ${plan.seeds.join(", ")}`,
  );
  lines.push("", "learning rates (tuned at the smallest budget, first seed):");
  for (const tu of r.tuning) {
    const tried = tu.losses.map(
      (l) => `lr ${l.lr.toPrecision(3)}: ${Number.isFinite(l.loss) ? l.loss.toFixed(4) : "-"}`,
    );
    lines.push(
      `  ${tu.recipe}: ${tried.join(", ")} → ${tu.best === null ? "pending" : `×${tu.best}`}` +
        (tu.atEdge ? "  (best at the edge of the sweep: the optimum may lie outside)" : ""),
    );
  }
  lines.push("");
  const header = [
    "variant",
    "non-emb params",
    "FLOPs/token",
    ...plan.budgets.map((b) => `loss @${sci(b)}`),
    "multiplier",
  ];
  const rows = r.variants.map((v) => [
    v.id,
    human(v.nonEmbedding),
    human(v.flopsPerToken),
    ...v.points.map((p) =>
      Number.isFinite(p.mean)
        ? `${p.mean.toFixed(4)}${p.extrapolated && v.id !== r.baseline ? "*" : ""}`
        : "-",
    ),
    v.id === r.baseline ? "1 (baseline)" : formatMultiplier(v.multiplier),
  ]);
  lines.push(...table(header, rows));
  lines.push(
    "",
    `multiplier: the compute the baseline needs to reach a variant's loss ÷ the compute the variant used, ` +
      `geometric mean over budgets; [${INTERVAL_MASS * 100}% bootstrap interval over seeds and budgets, ${r.bootstrap} resamples]. ` +
      "* the baseline curve is extrapolated to this loss. Below 1× a lever hurts.",
  );
  if (r.fit) {
    lines.push(
      `baseline curve: L(C) = ${r.fit.E.toFixed(3)} + ${r.fit.A.toFixed(3)}·(C/${sci(r.fit.C0)})^-${r.fit.alpha.toFixed(3)}`,
    );
  }
  if (r.missing.length > 0)
    lines.push(`not finished: ${r.missing.length} runs (run the study again to continue)`);
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  return lines.join("\n");
}
