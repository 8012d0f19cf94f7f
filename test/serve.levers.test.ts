// A model with every lever on (QK-norm, relu2 MLP, soft-cap, learned positions, LayerNorm, biases, an
// untied head) served over the OpenAI API: the server's batched, cached greedy completions equal
// afterscale's own generation, for several prompts at once.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { generate } from "../src/infer/index.js";
import { createModel, parseModelConfig, preset } from "../src/nn/index.js";
import { type RunningServer, startServer } from "../src/serve/index.js";
import { mulberry32, normal } from "./helpers/random.js";

const tokenizer = byteTokenizer();
const model = createModel(
  parseModelConfig({
    ...preset("nano", "llama", tokenizer.vocabSize, 64),
    layers: 2,
    qkNorm: true,
    mlp: "relu2",
    softcap: 8,
    positions: "learned",
    norm: "layernorm",
    bias: true,
    tie: false,
  }),
  9,
);
// Off the initialisation, so every part (gains of one, zero biases) shapes the output.
const rnd = normal(mulberry32(10));
for (const t of model.params.values()) for (let i = 0; i < t.size; i++) t.data[i]! += 0.3 * rnd();

let server: RunningServer;
let client: OpenAI;
before(async () => {
  server = await startServer({ model, tokenizer, modelId: "levers", port: 0, maxBatch: 4, maxQueue: 8 });
  client = new OpenAI({ apiKey: "unused", baseURL: `${server.url}/v1`, maxRetries: 0, timeout: 30_000 });
});
after(() => server.close());

test("served greedy completions of a lever-laden model equal generate()", async () => {
  const prompts = ["The quick", "a", "levers all on, served in a batch"];
  const served = await Promise.all(
    prompts.map((prompt) =>
      client.completions.create({
        model: "levers",
        prompt,
        max_tokens: 12,
        temperature: 0,
        ignore_eos: true,
      } as OpenAI.CompletionCreateParamsNonStreaming),
    ),
  );
  const texts = new Set<string>();
  prompts.forEach((prompt, i) => {
    const ours = generate(model, tokenizer, prompt, {
      maxTokens: 12,
      temperature: 0,
      stopAtEndOfText: false,
    });
    assert.equal(served[i]!.choices[0]!.text, ours.text, `prompt ${JSON.stringify(prompt)}`);
    texts.add(ours.text);
  });
  assert.ok(texts.size > 1, "different prompts give different completions (the model is not inert)");
});
