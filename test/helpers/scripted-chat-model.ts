// A llama whose greedy next token is a fixed function of the current token, for tests that need a model to
// answer a chat and end its turn: every block's output projections are zero (the residual stream is just
// the token's embedding), token `from` is embedded as +1/−1 on its own pair of dimensions, and the head
// row of `to` reads that pair (logit ≈ 113 after the final RMSNorm, every other logit 0). Tokens outside
// the script embed to zero and get all-zero logits. The same weights run in afterscale and in llama.cpp.
import { createModel, type Model, parseModelConfig } from "../../src/nn/index.js";

export function scriptedChatModel(vocab: number, script: ReadonlyMap<number, number>): Model {
  const d = 64;
  if (script.size > d / 2) throw new Error(`a scripted model holds at most ${d / 2} transitions`);
  const config = parseModelConfig({
    family: "llama",
    vocab,
    dModel: d,
    layers: 1,
    heads: 4,
    kvHeads: 2,
    context: 128,
    mlpRatio: 8 / 3,
    normEps: 1e-5,
    ropeTheta: 10000,
    dropout: 0,
    tie: false,
  });
  const model = createModel(config, 1);
  for (const [name, t] of model.params)
    if (/o_proj|down_proj|embed_tokens|lm_head/.test(name)) t.data.fill(0);
  const embed = model.params.get("model.embed_tokens.weight")!.data;
  const head = model.params.get("lm_head.weight")!.data;
  let slot = 0;
  for (const [from, to] of script) {
    embed[from * d + 2 * slot] = 1;
    embed[from * d + 2 * slot + 1] = -1;
    head[to * d + 2 * slot] = 10;
    head[to * d + 2 * slot + 1] = -10;
    slot++;
  }
  return model;
}
