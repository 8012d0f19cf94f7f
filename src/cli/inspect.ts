// `afterscale inspect`: one prompt looked at from inside — the logit lens as a grid of decoded tokens, the
// heads with the highest induction scores and the largest direct-logit-attribution contributors — the same
// report the inspect page draws (src/serve/inspect.ts).
import { type Command, InvalidArgumentError } from "commander";
import {
  badHead,
  type HeadRef,
  type InspectReport,
  inspectPrompt,
  MIN_INSPECT_TOKENS,
  showToken,
} from "../serve/inspect.js";
import { loadModel, MODEL_SPEC_HELP } from "../train/index.js";
import { int, output } from "./options.js";

/** "L1H2,L0H3" → heads. */
function headList(value: string): HeadRef[] {
  return value.split(",").map((part) => {
    const m = /^L(\d+)H(\d+)$/i.exec(part.trim());
    if (!m)
      throw new InvalidArgumentError(`expected heads as L<layer>H<head>, comma-separated, got "${part}"`);
    return { layer: Number(m[1]), head: Number(m[2]) };
  });
}

export function registerInspectCommand(program: Command): void {
  program
    .command("inspect")
    .description(
      "Look inside a model on one prompt: the logit lens, the top induction heads and the top direct-logit-attribution contributors at the last position",
    )
    .requiredOption("--model <spec>", MODEL_SPEC_HELP)
    .requiredOption("--prompt <text>", `the text to inspect (at least ${MIN_INSPECT_TOKENS} tokens)`)
    .option("--top <n>", "heads and contributors listed, and tokens per lens cell in --json", int(1, 1000), 5)
    .option("--ablate <heads>", "also run with these heads zero-ablated, e.g. L1H2,L0H3", headList)
    .option("--json", "print the whole report as JSON (patterns, lens, attribution, losses)", false)
    .action((o) => {
      const loaded = loadModel(o.model, { dequantize: true });
      const ids = loaded.tokenizer.encode(o.prompt);
      if (ids.length > loaded.model.config.context)
        throw new Error(
          `--prompt is ${ids.length} tokens; this model's context is ${loaded.model.config.context}`,
        );
      const ablate: HeadRef[] = o.ablate ?? [];
      const wrong = badHead(loaded.model.config, ablate);
      if (wrong) {
        const i = Number(/^ablate\.(\d+)/.exec(wrong)![1]);
        throw new Error(`--ablate L${ablate[i]!.layer}H${ablate[i]!.head}: ${wrong.replace(/^[^:]*: /, "")}`);
      }
      const report = inspectPrompt(loaded.model, loaded.tokenizer, ids, {
        ablate: o.ablate ?? [],
        top: o.top,
      });
      output(o.json, { model: loaded.name, step: loaded.step, ...report }, () =>
        formatReport(report, { name: loaded.name, step: loaded.step, top: o.top }),
      );
    });
}

const show = showToken;

const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(3)}`;

function clip(s: string, width: number): string {
  const chars = [...s];
  return chars.length > width ? `${chars.slice(0, width - 1).join("")}…` : s;
}

const pad = (s: string, width: number) => s + " ".repeat(Math.max(0, width - [...s].length));

export function formatReport(
  r: InspectReport,
  about: { name: string; step: number | null; top: number },
): string {
  const lines: string[] = [];
  const predictions = (top: InspectReport["clean"]["top"]) =>
    top.map((t) => `${show(t.text)} ${(t.prob * 100).toFixed(1)}%`).join("  ");
  lines.push(
    `${about.name}${about.step === null ? "" : ` (step ${about.step})`} · ${r.tokens.length} tokens · loss ${r.clean.loss.toFixed(4)}`,
    `next token: ${predictions(r.clean.top)}`,
  );
  if (r.ablated) {
    const heads = r.ablated.heads.map((h) => `L${h.layer}H${h.head}`).join(",");
    lines.push(
      `ablated ${heads}: loss ${r.ablated.loss.toFixed(4)} (${signed(r.ablated.loss - r.clean.loss)})`,
      `next token: ${predictions(r.ablated.top)}`,
    );
  }

  // The lens grid: one column per position, headed by the input token; each cell the top prediction there.
  const columns = r.tokens.map((t, pos) => {
    const cells = r.lens.top.map((row) => show(row[pos]![0]!.text));
    return Math.min(10, Math.max(...[show(t.text), ...cells].map((s) => [...s].length)));
  });
  const labelWidth = Math.max(5, ...r.lens.labels.map((l) => l.length));
  const row = (label: string, cells: string[]) =>
    [pad(label, labelWidth), ...cells.map((c, i) => pad(clip(c, columns[i]!), columns[i]!))]
      .join(" ")
      .trimEnd();
  lines.push("", "logit lens: top next token after each layer (rows) at each position (columns)");
  lines.push(
    row(
      "input",
      r.tokens.map((t) => show(t.text)),
    ),
  );
  r.lens.labels.forEach((label, i) => {
    lines.push(
      row(
        label,
        r.lens.top[i]!.map((cell) => show(cell[0]!.text)),
      ),
    );
  });

  const heads = r.induction
    .flatMap((scores, layer) => scores.map((score, head) => ({ name: `L${layer}H${head}`, score })))
    .sort((a, b) => b.score - a.score)
    .slice(0, about.top);
  lines.push("", `top heads by induction score (random tokens repeated, halves of ${r.inductionLength})`);
  for (const h of heads) lines.push(`  ${pad(h.name, 8)} ${h.score.toFixed(3)}`);

  const { dla } = r;
  const contributors = [...dla.components]
    .sort((a, b) => Math.abs(b.value) - Math.abs(a.value))
    .slice(0, about.top);
  const nameWidth = Math.max(...contributors.map((c) => c.name.length));
  lines.push(
    "",
    `direct logit attribution to ${show(dla.targetText)} (logit ${dla.logit.toFixed(3)}) after ${show(r.tokens[dla.position]!.text)} (position ${dla.position})`,
  );
  for (const c of contributors) lines.push(`  ${pad(c.name, nameWidth)} ${signed(c.value)}`);
  return lines.join("\n");
}
