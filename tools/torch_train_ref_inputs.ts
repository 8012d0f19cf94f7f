// Inputs for the PyTorch training reference (tools/torch_train_ref.py), written by afterscale itself:
//   test/fixtures/train/text.txt                 a few KB of Brown corpus text (the training data)
//   test/fixtures/train/config.json              the train config (a two-layer llama, AdamW, warmup + cosine)
//   test/fixtures/train/llama_init.safetensors   the initial weights (createModel with the config's seed)
//   test/fixtures/train/batches.json             the batch of every step (batchAt over the prepared text)
// test/train.torch.test.ts checks these still match what afterscale produces, then trains and compares
// its per-step losses with PyTorch's. Run from the repository root after building:
//   node dist/tools/torch_train_ref_inputs.js && python3 tools/torch_train_ref.py
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { batchAt, brownCorpus, openShards, prepare } from "../src/data/index.js";
import { createModel } from "../src/nn/index.js";
import { encodeModel } from "../src/train/checkpoint.js";
import { modelConfigFor, parseTrainConfig } from "../src/train/config.js";

const referenceConfig = {
  model: "nano",
  family: "llama",
  dModel: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  tie: false,
  context: 16,
  batchSize: 4,
  steps: 100,
  lr: 1e-2,
  minLrRatio: 0.1,
  warmupSteps: 10,
  schedule: "cosine",
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  gradClip: 1,
  gradAccum: 1,
  dropout: 0,
  seed: 1234,
  evalInterval: 0,
  checkpointInterval: 0,
} as const;

const out = resolve(process.argv[2] ?? "test/fixtures/train");
mkdirSync(out, { recursive: true });
const text = brownCorpus().slice(0, 3).join("\n\n").slice(0, 6000);
writeFileSync(join(out, "text.txt"), text);
writeFileSync(join(out, "config.json"), `${JSON.stringify(referenceConfig, null, 2)}\n`);

const tmp = mkdtempSync(join(tmpdir(), "afterscale-ref-"));
try {
  prepare({ inputs: [join(out, "text.txt")], outDir: join(tmp, "ds") });
  const ds = openShards(join(tmp, "ds"));
  const c = parseTrainConfig({ ...referenceConfig, root: tmp, runName: "ref" });
  const modelConfig = modelConfigFor(c, ds.meta.vocabSize);
  const model = createModel(modelConfig, c.seed);
  writeFileSync(
    join(out, "llama_init.safetensors"),
    encodeModel(model, { config: JSON.stringify(modelConfig) }),
  );
  const batches = [];
  for (let step = 0; step < c.steps; step++) {
    const b = batchAt(ds.train, c.batchSize, c.context, c.seed, step);
    batches.push({ inputs: Array.from(b.inputs), targets: Array.from(b.targets) });
  }
  writeFileSync(join(out, "batches.json"), JSON.stringify({ modelConfig, batches }));
  console.log(`wrote the reference inputs to ${out} (vocab ${modelConfig.vocab}, ${c.steps} batches)`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
