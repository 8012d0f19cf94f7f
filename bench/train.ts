// The afterscale side of the benchmark for one config, run in its own process (so its peak RSS is its own):
//   node dist/bench/train.js <job.json>     (threads come from AFTERSCALE_THREADS, set by bench/index.ts)
// 1. training: the trainer's step (forward + cross-entropy + backward under tidy, gradient clipping at 1.0,
//    AdamW, zeroGrad) on random tokens; warm-up steps, then timed steps (median);
// 2. the peak RSS so far (training's); then the training buffers go, with a full GC;
// 3. optionally the trained weights as an F32 GGUF file for the llama.cpp child (job.modelPath);
// 4. prefill: one full-context sequence through a KV cache (median of job.prefillReps);
// 5. decode: a short prompt, then job.decodeTokens greedy tokens one at a time with the KV cache.
// Prints one JSON object (SideResult plus the generated ids) on stdout.
import { readFileSync, writeFileSync } from "node:fs";
import { modelToGguf } from "../src/io/gguf-model.js";
import { createModel, decayGroups, forward, newKVCache } from "../src/nn/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { crossEntropy, noGrad, pool, tidy, withPrecision } from "../src/tensor/index.js";
import { type BenchJob, benchModelConfig, median, type SideResult } from "./configs.js";
import { timedGreedyDecode } from "./decode.js";
import { benchTokenizer } from "./tokenizer.js";

const maxRssMiB = () => process.resourceUsage().maxRSS / 1024;

/** Deterministic pseudo-random token ids (the values do not matter for speed, only the shapes). */
function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const ids = new Int32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    ids[i] = (s >>> 8) % vocab;
  }
  return ids;
}

function main(): void {
  const job = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as BenchJob & { promptIds: number[] };
  const config = benchModelConfig(job.name);
  const model = createModel(config, job.seed);
  const { batch, context, vocab } = job;

  // ---- training
  const groups = decayGroups(model);
  const optimizer = new AdamW([{ params: groups.decay }, { params: groups.noDecay, weightDecay: 0 }], {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.95,
    weightDecay: 0.1,
  });
  const params = optimizer.params();
  const seconds: number[] = [];
  const losses: number[] = [];
  for (let step = 0; step < job.warmupSteps + job.timedSteps; step++) {
    const tokens = randomIds(batch * (context + 1), vocab, job.seed + step);
    const inputs = new Int32Array(batch * context);
    const targets = new Int32Array(batch * context);
    for (let b = 0; b < batch; b++) {
      inputs.set(tokens.subarray(b * (context + 1), b * (context + 1) + context), b * context);
      targets.set(tokens.subarray(b * (context + 1) + 1, (b + 1) * (context + 1)), b * context);
    }
    const t0 = performance.now();
    let loss = 0;
    withPrecision(job.precision ?? "fp32", () =>
      tidy(() => {
        const l = crossEntropy(forward(model, inputs, batch, context), targets);
        loss = l.item();
        l.backward();
      }),
    );
    clipGradNorm(params, 1.0);
    optimizer.update();
    optimizer.zeroGrad();
    const s = (performance.now() - t0) / 1000;
    losses.push(loss);
    if (step >= job.warmupSteps) seconds.push(s);
  }
  const peakRssTrainMiB = maxRssMiB();
  pool.clear();
  // The training buffers just dropped are freed by the next full collection: run it now (the orchestrator
  // passes --expose-gc), or it lands inside the first prefill timings and doubles them.
  (globalThis as { gc?: () => void }).gc?.();
  if (job.precision === "bf16-mixed" || job.trainOnly) {
    const trained: SideResult = {
      trainTokensPerSecond: (batch * context) / median(seconds),
      trainStepSeconds: seconds,
      peakRssTrainMiB,
      peakRssMiB: maxRssMiB(),
      loss: losses,
    };
    process.stdout.write(`${JSON.stringify(trained)}\n`);
    return;
  }

  // ---- the same weights for llama.cpp
  if (job.modelPath)
    writeFileSync(job.modelPath, modelToGguf(model, benchTokenizer(vocab), { dtype: "f32" }));

  // ---- prefill: one full-context sequence
  const prompt = Int32Array.from(job.promptIds);
  const prefill: number[] = [];
  for (let r = 0; r <= job.prefillReps; r++) {
    const cache = newKVCache(model, context);
    const t0 = performance.now();
    noGrad(() => tidy(() => void forward(model, prompt.subarray(0, context), 1, context, { cache })));
    if (r > 0) prefill.push((performance.now() - t0) / 1000); // the first is a warm-up
    cache.dispose();
  }

  // ---- decode: greedy, one token at a time after a short prompt
  const { generated, perTokenSeconds } = timedGreedyDecode(
    model,
    prompt.subarray(0, job.decodePrompt),
    job.decodeTokens,
  );

  const result: SideResult & { generated: number[] } = {
    trainTokensPerSecond: (batch * context) / median(seconds),
    trainStepSeconds: seconds,
    prefillTokensPerSecond: context / median(prefill),
    decodeTokensPerSecond: 1 / median(perTokenSeconds),
    peakRssTrainMiB,
    peakRssMiB: maxRssMiB(),
    loss: losses,
    generated,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main();
