// Public surface of the data layer: tokenizers, the built-in corpus, prepare, shards and batches.

export type { AddedToken } from "./added-tokens.js";
export { countWords, type TrainBpeOptions, trainBpe, trainBpeFromCounts } from "./bpe-train.js";
export { type BrownDocument, brownCorpus, brownDocuments } from "./brown.js";
export { GPT2_SPLIT_PATTERN, preTokenize } from "./byte-level.js";
export {
  CHAT_ROLES,
  CHAT_TOKENS,
  CHATML_JINJA,
  type ChatMessage,
  type ChatRole,
  chatStopIds,
  type EncodedChat,
  encodeChat,
  hasChatTokens,
  IM_END,
  IM_START,
  renderChatML,
} from "./chat.js";
export {
  type DatasetMeta,
  type OpenDataset,
  openShards,
  readDatasetMeta,
  type SplitMeta,
} from "./dataset.js";
export { BUILTIN_CORPORA, type BuiltinCorpus, type PrepareOptions, prepare } from "./prepare.js";
export { type Batch, batchAt, batchRng, evalBatches, type IntRng, sampleBatch } from "./sampler.js";
export { readShard, type ShardHeader, type TokenArray, type TokenDtype, writeShard } from "./shards.js";
export { decodeUtf8Strict, readDocuments } from "./text-files.js";
export { byteTokenizer, END_OF_TEXT, type SpecialToken, Tokenizer, type TokenizerSpec } from "./tokenizer.js";
export { loadTokenizer, saveTokenizer, tokenizerFromJson } from "./tokenizer-json.js";
