// Growing a model's vocabulary, for tokens added to its tokenizer (Tokenizer.withAddedTokens, e.g. the chat
// markers before supervised fine-tuning): the token embedding, and the output head when it is not tied,
// gain one row per new id. A new row starts at the mean of the existing rows, as Hugging Face's
// resize_token_embeddings(mean_resizing=True) centres them (it also adds noise of covariance 1e-5·Σ; the
// exact mean keeps this deterministic): a new token starts as an average known token rather than at
// random, so the logits of a known context barely move, and every old token's logit does not move at all.
import { parameter, type Tensor } from "../tensor/index.js";
import { type ModelConfig, parseModelConfig } from "./config.js";
import { partNames } from "./decoder.js";
import { type Model, paramSpecs } from "./model.js";

/**
 * A copy of `model` with a vocabulary of `vocabSize` tokens (≥ its own): ids below the old size keep their
 * rows, new ids get the mean row. The input model is left unchanged and shares no tensor with the result,
 * so one can serve as the frozen reference of the other.
 */
export function resizeVocabulary(model: Model, vocabSize: number): Model {
  const old = model.config.vocab;
  if (!Number.isInteger(vocabSize) || vocabSize < old)
    throw new Error(`resizeVocabulary: the vocabulary can only grow (from ${old} tokens), got ${vocabSize}`);
  const config: ModelConfig = parseModelConfig({ ...model.config, vocab: vocabSize });
  const names = partNames[config.family];
  const tables = new Set([`${names.embed}.weight`, ...(config.tie ? [] : [`${names.head}.weight`])]);
  const specs = paramSpecs(config);
  const params = new Map<string, Tensor>();
  for (const s of specs) {
    const t = model.params.get(s.name);
    if (!t) throw new Error(`resizeVocabulary: the model has no parameter ${s.name}`);
    const data = tables.has(s.name)
      ? grownTable(t.data as Float32Array, old, vocabSize, s.shape[1]!)
      : Float32Array.from(t.data);
    params.set(s.name, parameter(data, s.shape, s.name));
  }
  return { config, specs, params };
}

/** [old, width] rows → [size, width]: the old rows, then the mean row (summed in float64) repeated. */
function grownTable(rows: Float32Array, old: number, size: number, width: number): Float32Array {
  if (rows.length !== old * width)
    throw new Error(
      `resizeVocabulary: a vocabulary table has ${rows.length} values, expected ${old * width}`,
    );
  const out = new Float32Array(size * width);
  out.set(rows);
  const mean = new Float64Array(width);
  for (let r = 0; r < old; r++) for (let j = 0; j < width; j++) mean[j]! += rows[r * width + j]!;
  for (let j = 0; j < width; j++) mean[j]! /= old;
  for (let r = old; r < size; r++) out.set(mean, r * width);
  return out;
}
