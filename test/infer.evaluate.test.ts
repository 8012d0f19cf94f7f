// Evaluation: loss, perplexity and bits per byte agree with a hand computation (float64 log-softmax of
// each window's logits, byte lengths from the tokenizer), and do not depend on the batch size.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tokenizer } from "../src/data/index.js";
import { evaluate, tokenByteLengths } from "../src/infer/index.js";
import { createModel, forward, preset } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";

/** Bytes 0..255, one merge "a"+"b" → "ab" (id 256, two bytes), and <|endoftext|> (id 257, no bytes). */
function tinyTokenizer(): Tokenizer {
  const tokenBytes: (Uint8Array | null)[] = [];
  for (let b = 0; b < 256; b++) tokenBytes.push(Uint8Array.of(b));
  tokenBytes.push(Uint8Array.of(0x61, 0x62), null);
  return new Tokenizer({
    tokenBytes,
    merges: [[0x61, 0x62]],
    specialTokens: [{ content: "<|endoftext|>", id: 257 }],
  });
}

test("token byte lengths come from the tokenizer; special tokens have none", () => {
  const lengths = tokenByteLengths(tinyTokenizer());
  assert.equal(lengths[0x41], 1);
  assert.equal(lengths[256], 2);
  assert.equal(lengths[257], 0);
});

test("loss, perplexity and bits per byte match a hand computation", () => {
  const tok = tinyTokenizer();
  const model = createModel({ ...preset("nano", "llama", tok.vocabSize, 8), layers: 2 }, 21);
  const context = 4;
  // 10 tokens → 2 windows of 4 targets (tokens 1..8); the last token is never a target.
  const data = Uint16Array.from([256, 0x20, 257, 256, 0x63, 0xe2, 0x82, 0xac, 257, 0x41]);

  let nats = 0;
  let bytes = 0;
  const byteLength = (id: number) => tok.bytesOf(id)?.length ?? 0;
  for (const start of [0, 4]) {
    const inputs = Int32Array.from(data.subarray(start, start + context));
    const logits = noGrad(() => tidy(() => Array.from(forward(model, inputs, 1, context).data)));
    const v = tok.vocabSize;
    for (let t = 0; t < context; t++) {
      const row = logits.slice(t * v, (t + 1) * v);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      const target = data[start + t + 1]!;
      nats += lse - row[target]!;
      bytes += byteLength(target);
    }
  }
  assert.equal(bytes, 1 + 0 + 2 + 1 + 1 + 1 + 1 + 0);

  for (const batchSize of [1, 2, 5]) {
    const r = evaluate(model, data, tok, { batchSize, context });
    assert.equal(r.tokens, 8);
    assert.equal(r.bytes, bytes);
    assert.equal(r.batches, Math.ceil(2 / batchSize));
    assert.ok(Math.abs(r.loss - nats / 8) < 1e-5, `batch ${batchSize}: loss ${r.loss} vs ${nats / 8}`);
    assert.ok(Math.abs(r.perplexity - Math.exp(r.loss)) < 1e-9 * r.perplexity, "perplexity = exp(loss)");
    const bpb = nats / (Math.LN2 * bytes);
    assert.ok(Math.abs(r.bitsPerByte - bpb) < 1e-5, `bits per byte ${r.bitsPerByte} vs ${bpb}`);
  }
  // An untrained model is close to uniform: loss ≈ ln(vocab) = 5.55.
  const r = evaluate(model, data, tok, { batchSize: 2, context });
  assert.ok(Math.abs(r.loss - Math.log(tok.vocabSize)) < 0.5, `loss ${r.loss}`);
});

test("maxBatches, several shards, progress, and errors", () => {
  const tok = tinyTokenizer();
  const model = createModel({ ...preset("nano", "gpt2", tok.vocabSize, 8), layers: 1 }, 5);
  const shard = Uint16Array.from({ length: 33 }, (_, i) => (i * 7) % 256);
  const progress: string[] = [];
  const all = evaluate(model, [shard, shard], tok, {
    batchSize: 3,
    context: 8,
    onBatch: (done, total) => progress.push(`${done}/${total}`),
  });
  // Each shard gives 4 windows of 8 → 8 windows, batches of 3, 3, 2.
  assert.equal(all.tokens, 64);
  assert.deepEqual(progress, ["1/3", "2/3", "3/3"]);
  const one = evaluate(model, shard, tok, { batchSize: 3, context: 8 });
  assert.ok(Math.abs(all.loss - one.loss) < 1e-6, "the same shard twice has the same mean loss");
  const first = evaluate(model, [shard, shard], tok, { batchSize: 3, context: 8, maxBatches: 1 });
  assert.equal(first.tokens, 24);
  assert.equal(first.batches, 1);

  assert.throws(
    () => evaluate(model, shard, tok, { batchSize: 1, context: 9 }),
    /context must be an integer in \[1, 8\]/,
  );
  assert.throws(
    () => evaluate(model, shard.subarray(0, 8), tok, { batchSize: 1, context: 8 }),
    /too short for context 8/,
  );
  assert.throws(
    () => evaluate(model, shard, tok, { batchSize: 0, context: 8 }),
    /batchSize must be an integer ≥ 1/,
  );
});
