// The optimizer state in checkpoints: a Muon run saves Muon's momentum buffers and AdamW's moments by
// parameter, a checkpoint written before Muon existed (AdamW only, no optimizer fields in its config)
// still resumes, and a state that does not fit the run's optimizer is refused with a clear error.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { decodeSafetensors } from "../src/io/safetensors.js";
import { modelFromCheckpoint, restoreOptimizer } from "../src/train/checkpoint.js";
import { createOptimizer, isHiddenMatrix, readCheckpoint, train } from "../src/train/index.js";
import { tinyDataset, tinyModel } from "./helpers/train-data.js";

const { root, data } = tinyDataset();
after(() => rmSync(root, { recursive: true, force: true }));
const quiet = { quiet: true, handleSignals: false, log: () => {}, registry: false };

test("a muon checkpoint holds momentum_buffer for the hidden matrices and AdamW moments for the rest", async () => {
  const r = await train({ ...tinyModel, data, root, runName: "muon", steps: 4, optimizer: "muon" }, quiet);
  const ckpt = readCheckpoint(r.checkpoint);
  assert.equal(ckpt.optimizerName, "muon");
  const file = decodeSafetensors(readFileSync(join(r.checkpoint, "optimizer.safetensors")));
  assert.equal(file.metadata.optimizer, "muon");
  const model = modelFromCheckpoint(ckpt);
  let hidden = 0;
  for (const s of model.specs) {
    const slots = [...file.tensors.keys()]
      .filter((k) => k.startsWith(`${s.name}.`))
      .map((k) => k.slice(s.name.length + 1));
    if (isHiddenMatrix(s, model.config)) {
      hidden++;
      assert.deepEqual(slots, ["momentum_buffer"], s.name);
      assert.ok(
        ckpt.optimizer.get(`${s.name}.momentum_buffer`)!.some((x) => x !== 0),
        `${s.name} has momentum`,
      );
    } else assert.deepEqual(slots.sort(), ["exp_avg", "exp_avg_sq"], s.name);
  }
  assert.equal(hidden, tinyModel.layers * 7);

  // Restoring into an optimizer of another kind, or with a buffer missing, names what is wrong.
  const adamw = createOptimizer(model, { ...r.config, optimizer: "adamw" });
  assert.throws(() => restoreOptimizer(adamw, ckpt), /optimizer state is muon, the run's optimizer is adamw/);
  const muon = createOptimizer(model, r.config);
  const q = model.specs.find((s) => isHiddenMatrix(s, model.config))!.name;
  ckpt.optimizer.delete(`${q}.momentum_buffer`);
  assert.throws(
    () => restoreOptimizer(muon, ckpt),
    new RegExp(`no saved optimizer state momentum_buffer for ${q}`),
  );
});

test("an AdamW checkpoint from before Muon (no optimizer fields in its config) still resumes", async () => {
  const r = await train({ ...tinyModel, data, root, runName: "old", steps: 4 }, quiet);
  // Rewrite state.json and config.json as the older code wrote them: without the new fields.
  const newFields = ["optimizer", "muonLr", "muonMomentum", "muonWeightDecay"];
  const statePath = join(r.checkpoint, "state.json");
  const { checksum: _, ...body } = JSON.parse(readFileSync(statePath, "utf8"));
  for (const k of newFields) delete body.trainConfig[k];
  const checksum = createHash("sha256").update(JSON.stringify(body)).digest("hex");
  writeFileSync(statePath, `${JSON.stringify({ ...body, checksum }, null, 2)}\n`);
  const configPath = join(r.runDir, "config.json");
  const saved = JSON.parse(readFileSync(configPath, "utf8"));
  for (const k of newFields) delete saved.train[k];
  writeFileSync(configPath, JSON.stringify(saved));

  const old = readCheckpoint(r.checkpoint);
  assert.equal(old.state.trainConfig.optimizer, undefined);
  assert.equal(old.optimizerName, "adamw");
  const resumed = await train({ steps: 6 }, { ...quiet, resume: r.runDir });
  assert.equal(resumed.resumedFrom, 4);
  assert.equal(resumed.step, 6);
  assert.equal(resumed.config.optimizer, "adamw");
});
