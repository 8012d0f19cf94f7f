// eval --kl-base's statistics on two tiny models: the identical-model case (KL 0, same top 100%, ratio 1,
// Δp 0), and two different models against a plain per-position recomputation (float64 softmax of each
// logits row) with llama.cpp's uncertainty formulas; each perplexity also equals evaluate()'s.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, test } from "node:test";
import { compareWithBase, formatKlComparison } from "../src/compress/index.js";
import { evalBatches, openShards } from "../src/data/index.js";
import { evaluate } from "../src/infer/index.js";
import { createModel, forward, preset } from "../src/nn/index.js";
import { noGrad } from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";
import { tinyDataset } from "./helpers/train-data.js";

const { root, data } = tinyDataset();
after(() => rmSync(root, { recursive: true, force: true }));
const ds = openShards(data);
const vocab = ds.tokenizer.vocabSize;
const config = { ...preset("nano", "llama", vocab, 16), dModel: 16, layers: 1, heads: 2, kvHeads: 1 };
const a = createModel(config, 1);
const b = createModel({ ...config, dModel: 24, heads: 3, kvHeads: 3 }, 2);
const opts = { batchSize: 4, context: 16 };

test("a model against itself: KL 0, same top 100%, perplexity ratio 1, Δp 0", () => {
  const r = compareWithBase(a, a, ds.val, ds.tokenizer, opts);
  assert.ok(r.tokens > 100);
  assert.equal(r.kl.value, 0);
  assert.equal(r.kl.max, 0);
  assert.equal(r.kl.min, 0);
  assert.equal(r.sameTop.value, 1);
  assert.equal(r.sameTop.error, 0);
  assert.equal(r.perplexity.ratio.value, 1);
  assert.equal(r.perplexity.logRatio.error, 0);
  assert.equal(r.deltaP.rms.value, 0);
  assertClose([r.perplexity.correlation], [1], 1e-9, 0, "correlation");
});

test("two different models: every statistic matches a per-position recomputation", () => {
  const r = compareWithBase(a, b, ds.val, ds.tokenizer, opts);
  const kl: number[] = [];
  const nll: number[] = [];
  const nllBase: number[] = [];
  const dp: number[] = [];
  let same = 0;
  const logSoftmax = (x: ArrayLike<number>) => {
    const m = Math.max(...Array.from(x));
    const lse = m + Math.log(Array.from(x).reduce((s, v) => s + Math.exp(v - m), 0));
    return Array.from(x, (v) => v - lse);
  };
  const argmax = (x: number[]) => x.indexOf(Math.max(...x));
  for (const batch of evalBatches(ds.val, opts.batchSize, opts.context)) {
    noGrad(() => {
      const la = forward(a, batch.inputs, batch.rows, batch.context).data;
      const lb = forward(b, batch.inputs, batch.rows, batch.context).data;
      for (let i = 0; i < batch.rows * batch.context; i++) {
        const p = logSoftmax(la.subarray(i * vocab, (i + 1) * vocab));
        const q = logSoftmax(lb.subarray(i * vocab, (i + 1) * vocab));
        const y = batch.targets[i]!;
        kl.push(q.reduce((s, lq, j) => s + Math.exp(lq) * (lq - p[j]!), 0));
        nll.push(-p[y]!);
        nllBase.push(-q[y]!);
        dp.push(Math.exp(p[y]!) - Math.exp(q[y]!));
        if (argmax(p) === argmax(q)) same++;
      }
    });
  }
  const n = kl.length;
  assert.equal(r.tokens, n);
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const se = (x: number[]) => Math.sqrt((mean(x.map((v) => v * v)) - mean(x) ** 2) / (x.length - 1));
  assertClose([r.kl.value, r.kl.error], [mean(kl), se(kl)], 1e-9, 1e-12, "mean KL ± SE");
  const sorted = [...kl].sort((x, y) => x - y);
  assertClose([r.kl.max, r.kl.min], [sorted.at(-1)!, sorted[0]!], 1e-9, 1e-12, "KL max, min");
  const at = (f: number) => {
    const pos = f * (n - 1);
    const i = Math.floor(pos);
    return sorted[i]! + (pos - i) * (sorted[Math.min(i + 1, n - 1)]! - sorted[i]!);
  };
  assertClose(
    [r.kl.p99, r.kl.p90, r.kl.p10, r.kl.p1],
    [at(0.99), at(0.9), at(0.1), at(0.01)],
    1e-6,
    1e-9,
    "KL percentiles",
  );
  assert.ok(r.kl.min >= 0 && r.kl.p10 <= r.kl.median && r.kl.median <= r.kl.p90);
  assertClose([r.sameTop.value], [same / n], 0, 0, "same top");
  assertClose(
    [r.sameTop.error],
    [Math.sqrt(((same / n) * (1 - same / n)) / (n - 1))],
    1e-12,
    0,
    "same-top SE",
  );
  const rms = Math.sqrt(mean(dp.map((v) => v * v)));
  assertClose([r.deltaP.rms.value, r.deltaP.mean.value], [rms, mean(dp)], 1e-9, 1e-12, "RMS and mean Δp");
  const d = nll.map((v, i) => v - nllBase[i]!);
  assertClose(
    [r.perplexity.logRatio.value, r.perplexity.logRatio.error],
    [mean(d), se(d)],
    1e-6,
    1e-9,
    "ln ratio ± SE",
  );
  assertClose([r.perplexity.ratio.value], [Math.exp(mean(d))], 1e-9, 0, "ratio");
  // The perplexities are the ones `afterscale eval` reports for each model.
  const ea = evaluate(a, ds.val, ds.tokenizer, opts);
  const eb = evaluate(b, ds.val, ds.tokenizer, opts);
  assertClose(
    [r.perplexity.model.value, r.perplexity.base.value],
    [ea.perplexity, eb.perplexity],
    1e-5,
    0,
    "perplexities",
  );
  const text = formatKlComparison(r);
  assert.match(text, /Mean PPL\(Q\)\/PPL\(base\) {9}: +\d+\.\d{6} ± +\d+\.\d{6}/);
  assert.match(text, /Same top p: +\d+\.\d{3} ± +\d+\.\d{3} %/);
});

test("compareWithBase refuses a context longer than a model's", () => {
  assert.throws(
    () => compareWithBase(a, b, ds.val, ds.tokenizer, { batchSize: 2, context: 32 }),
    /context 32 exceeds the model's context 16/,
  );
});
