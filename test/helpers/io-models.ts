// Small models and a small BPE tokenizer for the interop tests. Weights are random but scaled up from the
// training initialisation so that attention patterns, rotary positions, norm weights and the output head
// all visibly shape the logits: a near-uniform model would agree with anything.
import { trainBpe } from "../../src/data/index.js";
import type { Tokenizer } from "../../src/data/tokenizer.js";
import { createModel, type Model, type ModelConfig, parseModelConfig } from "../../src/nn/index.js";
import { mulberry32, normal } from "./random.js";

const TEXT = [
  "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.",
  "Small language models are trained, measured and exported to other tools.",
  "It's a test: numbers 12345 and 678, symbols !? and whitespace\tand\nnew lines.",
  "the the the fox fox dog dog models models tokens tokens",
];

/** Byte-level BPE: 256 bytes + <|endoftext|> + up to 63 merges. */
export function ioTokenizer(): Tokenizer {
  return trainBpe(TEXT, { vocabSize: 320 });
}

export const IO_TEXTS = [...TEXT, "Hello, world! café", " leading space and  two"];

/** A small config of the family; levers (qkNorm, mlp, …) override its recipe. */
export function ioConfig(
  family: ModelConfig["family"],
  vocab: number,
  tie: boolean,
  levers: Partial<ModelConfig> = {},
): ModelConfig {
  return parseModelConfig({
    family,
    vocab,
    dModel: 64,
    layers: 2,
    heads: 4,
    kvHeads: family === "llama" ? 2 : 4,
    context: 64,
    mlpRatio: family === "llama" ? 8 / 3 : 4,
    normEps: 1e-5,
    ropeTheta: 10000,
    dropout: 0,
    tie,
    ...levers,
  });
}

export function ioModel(
  family: ModelConfig["family"],
  vocab: number,
  tie: boolean,
  seed = 5,
  levers: Partial<ModelConfig> = {},
): Model {
  const model = createModel(ioConfig(family, vocab, tie, levers), seed);
  const rnd = normal(mulberry32(seed + 1000));
  for (const spec of model.specs) {
    const d = model.params.get(spec.name)!.data;
    const embedding = /embed_tokens|wte|wpe|lm_head/.test(spec.name);
    if (spec.init === "ones" || spec.init === "zeros") {
      for (let i = 0; i < d.length; i++) d[i] = (spec.init === "ones" ? 1 : 0) + 0.2 * rnd();
    } else {
      const scale = embedding ? 25 : 8;
      for (let i = 0; i < d.length; i++) d[i] = d[i]! * scale;
    }
  }
  return model;
}
