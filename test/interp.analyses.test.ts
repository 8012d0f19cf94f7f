// The analyses on small random models, each held to an independent computation: direct logit attribution
// adds up to the logit, the logit lens's last layer is the model's own prediction, the induction score of
// uniform attention is known in closed form, ablating a head that writes nothing changes nothing, patching
// the one corrupted position restores the clean run, and neuron top contexts are the brute-force maxima.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ablatedRun,
  activationPatching,
  attentionPatterns,
  directLogitAttribution,
  headAblationLosses,
  inductionScores,
  logitLens,
  runWithCache,
  topActivatingContexts,
} from "../src/interp/index.js";
import {
  createModel,
  forward,
  type Model,
  type ModelConfig,
  parseModelConfig,
  preset,
} from "../src/nn/index.js";
import { noGrad, softmax, tidy } from "../src/tensor/index.js";
import { mulberry32, normal } from "./helpers/random.js";

const VOCAB = 30;

function model(levers: Partial<ModelConfig>, seed = 5): Model {
  const family = levers.family ?? "llama";
  const cfg = parseModelConfig({
    ...preset("nano", family, VOCAB, 24),
    layers: 2,
    kvHeads: family === "llama" ? 2 : 4,
    ...levers,
  });
  const m = createModel(cfg, seed);
  const rnd = normal(mulberry32(seed));
  for (const t of m.params.values()) for (let i = 0; i < t.size; i++) t.data[i]! += 0.2 * rnd();
  return m;
}

const ids = [3, 7, 1, 9, 4, 4, 12, 2];
const logitsOf = (m: Model, xs: readonly number[]) =>
  noGrad(() => tidy(() => Float32Array.from(forward(m, Int32Array.from(xs), 1, xs.length).data)));

for (const [name, levers] of [
  ["gpt2 (LayerNorm, biases, learned positions, tied)", { family: "gpt2", kvHeads: 4 }],
  ["llama (RMSNorm, GQA, QK-norm, untied)", { qkNorm: true, tie: false }],
  ["attention-only", { mlp: "none" }],
] as [string, Partial<ModelConfig>][]) {
  test(`direct logit attribution adds up to the logit: ${name}`, () => {
    const m = model(levers);
    const logits = logitsOf(m, ids);
    for (const position of [2, ids.length - 1]) {
      const row = logits.subarray(position * VOCAB, (position + 1) * VOCAB);
      for (const target of [undefined, 5]) {
        const dla = directLogitAttribution(m, ids, { position, ...(target === undefined ? {} : { target }) });
        const want = target ?? row.indexOf(Math.max(...row));
        assert.equal(dla.target, want);
        assert.ok(Math.abs(dla.logit - row[want]!) < 1e-4, `${dla.logit} vs ${row[want]}`);
        const heads = dla.components.filter((c) => c.head !== null);
        assert.equal(heads.length, m.config.layers * m.config.heads);
        assert.equal(
          dla.components.some((c) => c.name === "L1 mlp"),
          levers.mlp !== "none",
        );
      }
    }
  });
}

test("the logit lens's last layer is the model's own prediction, and its first reads the embeddings", () => {
  const m = model({ family: "gpt2", kvHeads: 4 });
  const lens = logitLens(m, ids, 3);
  assert.deepEqual(lens.labels, ["embed", "0", "1"]);
  const probs = noGrad(() =>
    tidy(() => Float32Array.from(softmax(forward(m, Int32Array.from(ids), 1, ids.length)).data)),
  );
  lens.top.at(-1)!.forEach((top, t) => {
    const row = Array.from(probs.subarray(t * VOCAB, (t + 1) * VOCAB));
    const order = row.map((p, id) => ({ p, id })).sort((a, b) => b.p - a.p);
    assert.deepEqual(
      top.map((x) => x.id),
      order.slice(0, 3).map((x) => x.id),
    );
    assert.ok(Math.abs(top[0]!.prob - order[0]!.p) < 1e-5);
  });
  assert.notDeepEqual(lens.top[0], lens.top[2], "earlier layers read differently");
});

test("induction score of uniform causal attention is the mean of 1/(d+1) over the second half", () => {
  const m = model({ mlp: "none" });
  // Zero queries: every score is 0, so each destination d attends uniformly to its d + 1 sources.
  for (const [name, t] of m.params) if (/q_proj\.weight$/.test(name)) t.data.fill(0);
  const L = 10;
  const scores = inductionScores(m, { sequences: 3, length: L, seed: 4 });
  let want = 0;
  for (let d = L; d < 2 * L; d++) want += 1 / (d + 1) / L;
  for (const layer of scores) for (const s of layer) assert.ok(Math.abs(s - want) < 1e-6, `${s} vs ${want}`);
  assert.throws(() => inductionScores(m, { length: 13 }), /exceed the context of 24/);
});

test("attention patterns are the cached pattern, per layer and head", () => {
  const m = model({});
  const p = attentionPatterns(m, ids);
  const { logits, cache } = runWithCache(m, { ids }, { names: ["blocks.1.attn.hook_pattern"] });
  const T = ids.length;
  assert.equal(p.length, 2);
  assert.equal(p[1]!.length, m.config.heads);
  assert.ok(
    Math.abs(p[1]![2]![5]![3]! - cache.get("blocks.1.attn.hook_pattern").data[(2 * T + 5) * T + 3]!) < 1e-7,
  );
  logits.dispose();
  cache.dispose();
});

test("head ablation: a head that writes nothing changes nothing; others change the loss", () => {
  const m = model({ family: "gpt2", kvHeads: 4 });
  const hd = m.config.dModel / m.config.heads;
  // Head 2 of layer 1 writes nothing: its columns of c_proj are zero.
  const wo = m.params.get("h.1.attn.c_proj.weight")!;
  for (let i = 0; i < m.config.dModel; i++)
    wo.data.fill(0, i * m.config.dModel + 2 * hd, i * m.config.dModel + 3 * hd);
  const { clean, delta } = headAblationLosses(m, ids);
  assert.equal(delta[1]![2], 0);
  assert.ok(
    delta.flat().filter((d) => Math.abs(d) > 1e-4).length >= 6,
    "most heads matter in a random model",
  );
  assert.ok(Math.abs(ablatedRun(m, ids, []).loss - clean) < 1e-6);
  assert.ok(Math.abs(ablatedRun(m, ids, [{ layer: 0, head: 1 }]).loss - clean - delta[0]![1]!) < 1e-5);
  const mean = headAblationLosses(m, ids, "mean");
  assert.equal(mean.delta[1]![2], 0);
  assert.notDeepEqual(mean.delta, delta);
  assert.throws(() => ablatedRun(m, ids, [{ layer: 2, head: 0 }]), /layer 2 is outside 0\.\.1/);
});

test("activation patching: the corrupted position's clean residual restores the clean metric; others do nothing at layer 0", () => {
  const m = model({});
  const clean = [1, 2, 3, 4, 5, 6];
  const corrupted = [1, 2, 3, 17, 5, 6];
  const metric = (logits: Float32Array) => logits[5 * VOCAB + 8]! - logits[5 * VOCAB + 9]!;
  const r = activationPatching(m, clean, corrupted, metric, "resid_pre");
  assert.ok(Math.abs(r.clean - metric(logitsOf(m, clean))) < 1e-5);
  assert.ok(Math.abs(r.corrupted - metric(logitsOf(m, corrupted))) < 1e-5);
  assert.ok(Math.abs(r.clean - r.corrupted) > 1e-3, "the corruption moves the metric");
  assert.ok(Math.abs(r.patched[0]![3]! - r.clean) < 1e-4, "patching position 3 at layer 0 restores it");
  for (const t of [0, 1, 2, 4, 5]) assert.ok(Math.abs(r.patched[0]![t]! - r.corrupted) < 1e-4);
  const heads = activationPatching(m, clean, corrupted, metric, "heads");
  assert.equal(heads.patched[1]!.length, m.config.heads);
  assert.throws(() => activationPatching(m, clean, [1, 2], metric), /same, non-zero length/);
  assert.throws(
    () => activationPatching(model({ mlp: "none" }), clean, corrupted, metric, "mlp_out"),
    /attention-only/,
  );
});

test("top activating contexts are the largest activations over the dataset, with their windows", () => {
  const m = model({ family: "gpt2", kvHeads: 4 });
  const rnd = mulberry32(9);
  const data = Array.from({ length: 60 }, () => Math.floor(rnd() * VOCAB));
  const neurons = [0, 7, 100];
  const found = topActivatingContexts(m, data, { layer: 1, neurons, k: 3, before: 4, after: 1 });
  // Brute force: every window of the context's length, the activation of each token.
  const width = m.config.dModel * 4;
  const all = neurons.map(() => [] as { value: number; position: number }[]);
  for (let start = 0; start < data.length; start += 24) {
    const w = data.slice(start, start + 24);
    const { logits, cache } = runWithCache(m, { ids: w }, { names: ["blocks.1.mlp.hook_post"] });
    const act = cache.get("blocks.1.mlp.hook_post").data;
    neurons.forEach((n, i) => {
      for (let t = 0; t < w.length; t++) all[i]!.push({ value: act[t * width + n]!, position: start + t });
    });
    logits.dispose();
    cache.dispose();
  }
  neurons.forEach((n, i) => {
    const want = all[i]!.sort((a, b) => b.value - a.value).slice(0, 3);
    assert.equal(found[i]!.neuron, n);
    assert.deepEqual(
      found[i]!.top.map((x) => x.position),
      want.map((x) => x.position),
    );
    for (const c of found[i]!.top) {
      assert.equal(c.tokens[c.at], data[c.position]);
      assert.ok(c.tokens.length <= 6);
    }
  });
  assert.throws(() => topActivatingContexts(model({ mlp: "none" }), data, { layer: 0 }), /attention-only/);
});
