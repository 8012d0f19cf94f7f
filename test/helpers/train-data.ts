// A tiny prepared dataset and a tiny model config for the training tests (seconds, not minutes).
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepare } from "../../src/data/index.js";

/** A fresh temp folder holding `ds/`, a byte-level dataset of a few KB of text. */
export function tinyDataset(): { root: string; data: string } {
  const root = mkdtempSync(join(tmpdir(), "afterscale-train-"));
  const text = Array.from(
    { length: 120 },
    (_, i) => `Line ${i}: the quick brown fox ${i % 7} jumps over the lazy dog ${i % 5}.`,
  ).join("\n");
  mkdirSync(join(root, "src"));
  writeFileSync(join(root, "src", "text.txt"), text);
  prepare({ inputs: [join(root, "src", "text.txt")], outDir: join(root, "ds"), valFraction: 0.1 });
  return { root, data: join(root, "ds") };
}

/** A two-layer llama small enough that a step takes milliseconds. */
export const tinyModel = {
  model: "nano",
  family: "llama",
  dModel: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  context: 16,
  batchSize: 4,
  lr: 1e-2,
  warmupSteps: 3,
  evalBatches: 2,
} as const;
