// Validation curves of runs side by side (for docs/benchmarks.md's bf16-mixed quality table):
//   node dist/bench/precision-curves.js runs/micro-fp32 runs/micro-bf16 [--every 200]
// Reads each run's metrics.jsonl: the periodic validation estimates (every --eval-interval steps, on
// --eval-batches batches) and the final whole-split validation loss; prints one markdown row per step with
// each run's loss, and the relative difference of the last run from the first.
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";

interface Curve {
  name: string;
  estimates: Map<number, number>;
  final?: { step: number; valLoss: number };
}

function readCurve(dir: string): Curve {
  const estimates = new Map<number, number>();
  let final: Curve["final"];
  for (const line of readFileSync(join(dir, "metrics.jsonl"), "utf8").split("\n")) {
    if (!line.trim()) continue;
    const m = JSON.parse(line) as { step: number; valLoss?: number; valLossEstimate?: number };
    if (m.valLossEstimate !== undefined) estimates.set(m.step, m.valLossEstimate);
    if (m.valLoss !== undefined) final = { step: m.step, valLoss: m.valLoss };
  }
  return { name: basename(dir), estimates, final };
}

function main(): void {
  const args = process.argv.slice(2);
  const at = args.indexOf("--every");
  const every = at >= 0 ? Number(args.splice(at, 2)[1]) : 200;
  if (args.length < 2 || !(every > 0)) {
    throw new Error("usage: precision-curves <run folder> <run folder> [...] [--every N]");
  }
  const curves = args.map(readCurve);
  const rel = (a: number, b: number) => `${(((b - a) / a) * 100).toFixed(2)}%`;
  const header = `| step | ${curves.map((c) => c.name).join(" | ")} | ${curves.at(-1)!.name} vs ${curves[0]!.name} |`;
  const rows = [header, `|---|${curves.map(() => "---|").join("")}---|`];
  const steps = [...curves[0]!.estimates.keys()].filter((s) => s % every === 0).sort((a, b) => a - b);
  for (const s of steps) {
    const v = curves.map((c) => c.estimates.get(s));
    if (v.some((x) => x === undefined)) continue;
    rows.push(`| ${s} | ${v.map((x) => x!.toFixed(4)).join(" | ")} | ${rel(v[0]!, v.at(-1)!)} |`);
  }
  const finals = curves.map((c) => c.final);
  if (finals.every((f) => f !== undefined))
    rows.push(
      `| ${finals[0]!.step}, whole split | ${finals.map((f) => `**${f!.valLoss.toFixed(4)}**`).join(" | ")} | ` +
        `**${rel(finals[0]!.valLoss, finals.at(-1)!.valLoss)}** |`,
    );
  process.stdout.write(`${rows.join("\n")}\n`);
}

main();
