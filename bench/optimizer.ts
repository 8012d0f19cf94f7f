// The optimizer's share of a training step, AdamW against Muon (Newton–Schulz included, its products in fp32
// and in bf16), at the trainer's presets and defaults (llama, vocabulary 4096, 16 × 128 tokens per step),
// with fp32 training steps and, for Muon with bf16 Newton–Schulz, bf16-mixed ones too, in its own process:
//   node dist/bench/optimizer.js [--presets micro,small] [--warmup 2] [--steps 5]
// One step is the trainer's: forward + cross-entropy + backward under tidy, clipping at 1.0, the update,
// zeroGrad. Both optimizers are timed on the same model, each after its own warm-up steps; the figure is
// median(update seconds) / median(step seconds). Prints one JSON object on stdout.
import { createModel, forward, type PresetName, preset, presetNames } from "../src/nn/index.js";
import { clipGradNorm } from "../src/optim/index.js";
import { crossEntropy, type Precision, tidy, withPrecision } from "../src/tensor/index.js";
import { createOptimizer, optimizerNames, parseTrainConfig } from "../src/train/index.js";
import { median } from "./configs.js";

export interface OptimizerShare {
  preset: PresetName;
  optimizer: (typeof optimizerNames)[number];
  /** Newton–Schulz's products (Muon only). */
  muonPrecision?: "fp32" | "bf16";
  /** The training step's matrix products. */
  precision: Precision;
  stepSeconds: number;
  updateSeconds: number;
  /** updateSeconds / stepSeconds (medians). */
  share: number;
}

function parseArgs(argv: string[]): { presets: PresetName[]; warmup: number; steps: number } {
  const o = { presets: ["micro", "small"] as PresetName[], warmup: 2, steps: 5 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[++i] ?? "";
    if (a === "--presets") {
      const names = v.split(",").filter(Boolean);
      for (const n of names)
        if (!(presetNames as readonly string[]).includes(n))
          throw new Error(`--presets: unknown preset ${n}; known: ${presetNames.join(", ")}`);
      o.presets = names as PresetName[];
    } else if (a === "--warmup" || a === "--steps") {
      const n = Number(v);
      if (!Number.isInteger(n) || n < (a === "--steps" ? 1 : 0))
        throw new Error(`${a}: expected an integer, got ${v}`);
      o[a === "--warmup" ? "warmup" : "steps"] = n;
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

function measure(name: PresetName, warmup: number, steps: number): OptimizerShare[] {
  const c = parseTrainConfig({ model: name });
  const model = createModel(preset(name, "llama", c.vocab, c.context), 1);
  const n = c.batchSize * c.context;
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 7919) % c.vocab);
  const targets = Int32Array.from({ length: n }, (_, i) => (i * 104729 + 1) % c.vocab);
  const out: OptimizerShare[] = [];
  const variants = [
    { optimizer: "adamw", precision: "fp32" },
    { optimizer: "muon", muonPrecision: "fp32", precision: "fp32" },
    { optimizer: "muon", muonPrecision: "bf16", precision: "fp32" },
    { optimizer: "muon", muonPrecision: "bf16", precision: "bf16-mixed" },
  ] as const;
  if (optimizerNames.some((o) => !variants.some((v) => v.optimizer === o)))
    throw new Error(`an optimizer is missing from the benchmark: ${optimizerNames.join(", ")}`);
  for (const v of variants) {
    const { optimizer, precision } = v;
    const muonPrecision = "muonPrecision" in v ? v.muonPrecision : undefined;
    const opt = createOptimizer(model, { ...c, optimizer, muonPrecision: muonPrecision ?? "fp32" });
    const params = opt.params();
    const step: number[] = [];
    const update: number[] = [];
    for (let s = 0; s < warmup + steps; s++) {
      const t0 = performance.now();
      withPrecision(precision, () =>
        tidy(() => crossEntropy(forward(model, ids, c.batchSize, c.context), targets).backward()),
      );
      clipGradNorm(params, 1);
      const t1 = performance.now();
      opt.update(1e-4);
      const t2 = performance.now();
      opt.zeroGrad();
      if (s >= warmup) {
        step.push((performance.now() - t0) / 1000);
        update.push((t2 - t1) / 1000);
      }
    }
    const stepSeconds = median(step);
    const updateSeconds = median(update);
    out.push({
      preset: name,
      optimizer,
      ...(muonPrecision ? { muonPrecision } : {}),
      precision,
      stepSeconds,
      updateSeconds,
      share: updateSeconds / stepSeconds,
    });
  }
  return out;
}

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  const results = o.presets.flatMap((p) => {
    process.stderr.write(`[bench optimizer] ${p} …\n`);
    return measure(p, o.warmup, o.steps);
  });
  process.stdout.write(`${JSON.stringify({ results })}\n`);
}

main();
