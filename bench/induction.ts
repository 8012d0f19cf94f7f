// Induction heads over training (docs/interpretability.md): for each checkpoint of a run, every head's
// induction score (TransformerLens's definition: 10 random sequences of 50 tokens, each repeated, no BOS),
// and what zero-ablating the best layer-1 head does to the loss on the repeated halves, where only an
// induction mechanism can predict (the first halves are random).
//
//   node dist/bench/induction.js runs/attn2 [--sequences 10] [--length 50] [--seed 0]
// Prints a markdown table and writes induction.json into the run folder.
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ablatedRun, inductionScores } from "../src/interp/index.js";
import { Rng } from "../src/tensor/index.js";
import { loadModel } from "../src/train/index.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    sequences: { type: "string", default: "10" },
    length: { type: "string", default: "50" },
    seed: { type: "string", default: "0" },
  },
});
const run = positionals[0];
if (!run) throw new Error("usage: induction.js <run folder> [--sequences N] [--length L] [--seed S]");
const sequences = Number(values.sequences);
const length = Number(values.length);
const seed = Number(values.seed);

/** Mean next-token loss over the second halves of fresh repeated sequences (seed + 1), with heads ablated. */
function repeatedLoss(spec: string, heads: { layer: number; head: number }[]): number {
  const { model } = loadModel(spec, { warn: () => {} });
  const rng = new Rng(seed + 1);
  const vocab = model.config.vocab;
  let sum = 0;
  let count = 0;
  for (let s = 0; s < sequences; s++) {
    const half = Array.from({ length }, () => rng.int(vocab));
    const ids = [...half, ...half];
    const { logits } = ablatedRun(model, ids, heads);
    // Predictions of positions length+1 … 2·length−1 from the previous token (the second half's own tokens).
    for (let t = length; t < 2 * length - 1; t++) {
      const row = logits.subarray(t * vocab, (t + 1) * vocab);
      let max = Number.NEGATIVE_INFINITY;
      for (const x of row) max = Math.max(max, x);
      let z = 0;
      for (const x of row) z += Math.exp(x - max);
      sum += max + Math.log(z) - row[ids[t + 1]!]!;
      count++;
    }
  }
  return sum / count;
}

const checkpoints = readdirSync(run)
  .filter((d) => /^ckpt-\d+$/.test(d))
  .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
if (checkpoints.length === 0) throw new Error(`${run}: no ckpt-<step> folders`);
const rows = [];
console.log(
  "| step | best layer-0 head | best layer-1 head | repeated-half loss | … with that layer-1 head ablated |",
);
console.log("|---:|---:|---:|---:|---:|");
for (const ckpt of checkpoints) {
  const spec = join(run, ckpt);
  const { model, step } = loadModel(spec, { warn: () => {} });
  const scores = inductionScores(model, { sequences, length, seed });
  const best = (l: number) => {
    const s = scores[l] ?? [];
    const head = s.indexOf(Math.max(...s));
    return { layer: l, head, score: s[head]! };
  };
  const [b0, b1] = [best(0), best(1)];
  const clean = repeatedLoss(spec, []);
  const ablated = repeatedLoss(spec, [{ layer: 1, head: b1.head }]);
  rows.push({ step, scores, clean, ablated, best: [b0, b1] });
  console.log(
    `| ${step} | L0H${b0.head} ${b0.score.toFixed(3)} | L1H${b1.head} ${b1.score.toFixed(3)} | ${clean.toFixed(3)} | ${ablated.toFixed(3)} |`,
  );
}
writeFileSync(join(run, "induction.json"), `${JSON.stringify({ sequences, length, seed, rows }, null, 1)}\n`);
