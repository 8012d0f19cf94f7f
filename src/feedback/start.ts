// The model a fine-tune trains. A fresh run loads `init` through the one resolver (run name or folder,
// Hugging Face folder, GGUF) and gives its tokenizer the chat markers (new embedding rows at the mean of
// the old ones); a resumed run continues from its checkpoint's weights and tokenizer.
import { z } from "zod";
import { CHAT_TOKENS, type Tokenizer, tokenizerFromJson } from "../data/index.js";
import { type Model, type ModelConfig, resizeVocabulary } from "../nn/index.js";
import { loadModel, modelFromCheckpoint, type SetupContext } from "../train/index.js";

export interface StartingPoint {
  model: Model;
  modelConfig: ModelConfig;
  tokenizer: Tokenizer;
}

/** The init model with chat tokens, as loaded for a fresh run (also the frozen reference of dpo and grpo). */
export function initModel(ctx: SetupContext, command: string): StartingPoint {
  const { config: c, say } = ctx;
  if (!c.init) throw new Error(`${command}: give the model to start from (--model <run, folder or file>)`);
  const loaded = loadModel(c.init, { root: c.root, warn: say, dequantize: true });
  const tokenizer = loaded.tokenizer.withAddedTokens(CHAT_TOKENS);
  let model = loaded.model;
  if (tokenizer !== loaded.tokenizer) {
    say(`${command}: added the chat tokens ${CHAT_TOKENS.join(" ")} to the tokenizer of ${c.init}`);
  }
  if (tokenizer.vocabSize > model.config.vocab) model = resizeVocabulary(model, tokenizer.vocabSize);
  return { model, modelConfig: model.config, tokenizer };
}

/** The model a session of a fine-tune trains: the checkpoint's when resuming, else the init model. */
export function startingPoint(ctx: SetupContext, command: string): StartingPoint {
  const ckpt = ctx.checkpoint;
  if (!ckpt) return initModel(ctx, command);
  return {
    model: modelFromCheckpoint(ckpt),
    modelConfig: ckpt.state.modelConfig,
    tokenizer: tokenizerFromJson(JSON.parse(ckpt.tokenizerJson), `${ckpt.dir}/tokenizer.json`),
  };
}

/** A fine-tune's own settings (the run's objectiveConfig), or an error naming each bad field. */
export function parseSettings<S extends z.ZodObject>(schema: S, raw: unknown, command: string): z.output<S> {
  const r = schema.safeParse(raw ?? {});
  if (!r.success) throw new Error(`${command}: ${z.prettifyError(r.error).replace(/\n/g, "; ")}`);
  return r.data;
}
