// resizeVocabulary: new ids get the mean of the old rows (embedding, and the head when untied), the old
// tokens' logits on the same input do not move, and the input model is left as it was.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CHAT_TOKENS } from "../src/data/chat.js";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { createModel, forward, type Model, preset, resizeVocabulary } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";

const logits = (model: Model, ids: number[]): Float32Array =>
  noGrad(() => tidy(() => Float32Array.from(forward(model, Int32Array.from(ids), 1, ids.length).data)));

for (const [family, table] of [
  ["gpt2", "wte.weight"],
  ["llama", "model.embed_tokens.weight"],
] as const) {
  test(`${family}: new rows are the mean row; old logits are unchanged`, () => {
    const base = byteTokenizer();
    const chat = base.withAddedTokens(CHAT_TOKENS);
    const model = createModel({ ...preset("nano", family, base.vocabSize, 32), layers: 2 }, 11);
    const before = Float32Array.from(model.params.get(table)!.data);
    const grown = resizeVocabulary(model, chat.vocabSize);

    assert.equal(grown.config.vocab, chat.vocabSize);
    assert.equal(model.config.vocab, base.vocabSize, "the input model keeps its vocabulary");
    assert.deepEqual(model.params.get(table)!.data, before, "the input model's table is untouched");
    for (const [name, t] of grown.params) assert.notEqual(t, model.params.get(name), `${name} is shared`);

    const d = model.config.dModel;
    const heads = family === "llama" ? [table, "lm_head.weight"] : [table]; // gpt2 ties its head
    assert.equal(grown.params.has("lm_head.weight"), family === "llama");
    for (const name of heads) {
      const old = model.params.get(name)!.data;
      const now = grown.params.get(name)!.data;
      assert.deepEqual(grown.params.get(name)!.shape, [chat.vocabSize, d]);
      assert.deepEqual(now.subarray(0, old.length), old, `${name}: old rows kept`);
      for (let j = 0; j < d; j++) {
        let mean = 0;
        for (let r = 0; r < base.vocabSize; r++) mean += old[r * d + j]!;
        mean /= base.vocabSize;
        for (let r = base.vocabSize; r < chat.vocabSize; r++)
          assert.ok(Math.abs(now[r * d + j]! - mean) < 1e-7, `${name}: row ${r} column ${j} is the mean`);
      }
    }

    const ids = [72, 101, 108, 108, 111, 44, 32, 119];
    const was = logits(model, ids);
    const is = logits(grown, ids);
    const [vOld, vNew] = [base.vocabSize, chat.vocabSize];
    for (let t = 0; t < ids.length; t++) {
      assertClose(
        is.subarray(t * vNew, t * vNew + vOld),
        was.subarray(t * vOld, (t + 1) * vOld),
        1e-5,
        1e-6,
        `position ${t}`,
      );
    }
    // The new ids are usable as input.
    const withChat = logits(grown, [chat.specialId(CHAT_TOKENS[0]!), ...ids]);
    assert.ok(withChat.every(Number.isFinite));
  });
}

test("resizeVocabulary refuses to shrink", () => {
  const model = createModel(preset("nano", "gpt2", 300, 16), 1);
  assert.throws(() => resizeVocabulary(model, 299), /can only grow \(from 300 tokens\), got 299/);
  assert.equal(resizeVocabulary(model, 300).config.vocab, 300);
});
