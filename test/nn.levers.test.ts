// The decoder's levers, each alone on both families and all together: cached decoding (a ragged step of
// prompts and decoding rows) equals the full forward pass; parameter counts, training FLOPs and the memory
// formula are right for every combination; hook points fire by their names and can replace activations;
// zero-init, the soft-cap and exact MLP widths do what they say.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  blockParts,
  createModel,
  forward,
  forwardStep,
  HOOK_POINTS,
  headDim,
  hookName,
  isGated,
  type Model,
  type ModelConfig,
  mlpHidden,
  newKVCache,
  parameterCounts,
  parseModelConfig,
  preset,
  trainingFlopsPerToken,
} from "../src/nn/index.js";
import { trainingStepMemory } from "../src/nn/memory.js";
import { crossEntropy, noGrad, pool, Rng, tidy, zeros } from "../src/tensor/index.js";
import { modelConfigFor, parseTrainConfig } from "../src/train/config.js";
import { assertClose } from "./helpers/close.js";
import { mulberry32, normal } from "./helpers/random.js";

const VOCAB = 40;

function config(family: "gpt2" | "llama", levers: Partial<ModelConfig>): ModelConfig {
  const base = preset("nano", family, VOCAB, 32);
  return parseModelConfig({ ...base, layers: 2, kvHeads: family === "llama" ? 2 : 4, ...levers });
}

/** Every weight moved off its initialisation, so no part (zero-initialised or a gain of ones) is inert. */
function perturbed(cfg: ModelConfig, seed: number): Model {
  const model = createModel(cfg, seed);
  const rnd = normal(mulberry32(seed + 77));
  for (const t of model.params.values()) for (let i = 0; i < t.size; i++) t.data[i]! += 0.1 * rnd();
  return model;
}

const single: [string, (family: "gpt2" | "llama") => Partial<ModelConfig>][] = [
  ["family defaults", () => ({})],
  ["qkNorm", () => ({ qkNorm: true })],
  ["mlp relu2", () => ({ mlp: "relu2" })],
  ["mlp gelu", () => ({ mlp: "gelu" })],
  ["mlp swiglu", () => ({ mlp: "swiglu" })],
  ["mlp none (attention only)", () => ({ mlp: "none" })],
  ["zeroInit", () => ({ zeroInit: true })],
  ["softcap 2", () => ({ softcap: 2 })],
  ["tie flipped", (f) => ({ tie: f === "llama" })],
  ["norm flipped", (f) => ({ norm: f === "llama" ? "layernorm" : "rmsnorm" })],
  ["positions flipped", (f) => ({ positions: f === "llama" ? "learned" : "rope" })],
  ["bias flipped", (f) => ({ bias: f === "llama" })],
  ["mlpHidden 50", () => ({ mlpHidden: 50 })],
  [
    "everything",
    (f) => ({
      qkNorm: true,
      mlp: "relu2",
      softcap: 3,
      zeroInit: true,
      tie: false,
      bias: f === "llama",
      norm: f === "llama" ? "layernorm" : "rmsnorm",
      positions: f === "llama" ? "learned" : "rope",
      mlpHidden: 72,
    }),
  ],
];

/** Parameters counted from the recipe, independently of the parameter specs. */
function expectedCounts(c: ModelConfig): { total: number; nonEmbedding: number } {
  const r = blockParts(c);
  const [d, hd, f, L] = [c.dModel, headDim(c), mlpHidden(c), c.layers];
  const [q, kv] = [c.heads * hd, c.kvHeads * hd];
  const norm = r.norm === "layernorm" ? 2 * d : d;
  const gated = isGated(r.mlp);
  const attn = d * q + 2 * d * kv + q * d + (r.bias ? q + 2 * kv + d : 0) + (r.qkNorm ? 2 * hd : 0);
  const mlp = r.mlp === "none" ? 0 : (gated ? 3 : 2) * d * f + (r.bias ? (gated ? 2 : 1) * f + d : 0);
  const nonEmbedding = L * ((r.mlp === "none" ? 1 : 2) * norm + attn + mlp) + norm;
  const vocabulary = c.vocab * d * (c.tie ? 1 : 2) + (r.positions === "learned" ? c.context * d : 0);
  return { total: nonEmbedding + vocabulary, nonEmbedding };
}

function expectedFlops(c: ModelConfig): number {
  const [d, hd, f] = [c.dModel, headDim(c), mlpHidden(c)];
  const matrices =
    2 * d * c.heads * hd + 2 * d * c.kvHeads * hd + (isGated(blockParts(c).mlp) ? 3 : 2) * d * f;
  return 6 * (c.layers * matrices + c.vocab * d) + 6 * c.layers * c.context * d;
}

for (const family of ["gpt2", "llama"] as const) {
  for (const [name, levers] of single) {
    const cfg = config(family, levers(family));

    test(`${family} + ${name}: a ragged cached step equals each sequence's full forward pass`, () => {
      const model = perturbed(cfg, 11);
      const seqs = [
        Int32Array.from([1, 2, 3, 4, 5, 6]),
        Int32Array.from([7, 8, 9]),
        Int32Array.from([10, 11]),
      ];
      const already = [5, 0, 1];
      noGrad(() =>
        tidy(() => {
          const caches = seqs.map(() => newKVCache(model));
          seqs.forEach((ids, s) => {
            if (already[s]! > 0)
              forward(model, ids.subarray(0, already[s]), 1, already[s]!, { cache: caches[s]! });
          });
          const fed = seqs.map((ids, s) => ids.subarray(already[s]));
          const logits = forwardStep(
            model,
            Int32Array.from(fed.flatMap((x) => [...x])),
            fed.map((x) => x.length),
            caches,
          );
          let spread = 0;
          seqs.forEach((ids, s) => {
            const full = forward(model, ids, 1, ids.length).data;
            const last = (ids.length - 1) * VOCAB;
            const want = full.subarray(last, last + VOCAB);
            for (const x of want) spread = Math.max(spread, Math.abs(x - want[0]!));
            assertClose(logits.data.subarray(s * VOCAB, (s + 1) * VOCAB), want, 1e-4, 1e-5, `sequence ${s}`);
          });
          assert.ok(spread > 1e-3, "the logits depend on the token (the model is not inert)");
          for (const c of caches) c.dispose();
        }),
      );
    });

    test(`${family} + ${name}: parameter counts and training FLOPs follow the recipe`, () => {
      assert.deepEqual(parameterCounts(cfg), expectedCounts(cfg));
      assert.equal(trainingFlopsPerToken(cfg), expectedFlops(cfg));
    });
  }
}

test("levers that add nothing: QK-norm adds 2·headDim gains per layer and no counted FLOPs; soft-cap adds neither", () => {
  for (const family of ["gpt2", "llama"] as const) {
    const base = config(family, {});
    const qk = config(family, { qkNorm: true });
    assert.equal(parameterCounts(qk).total - parameterCounts(base).total, 2 * headDim(base) * base.layers);
    assert.equal(trainingFlopsPerToken(qk), trainingFlopsPerToken(base));
    const capped = config(family, { softcap: 30 });
    assert.deepEqual(parameterCounts(capped), parameterCounts(base));
  }
});

test("a non-gated MLP in the gated family gets 1.5× the width: same parameters; the other way 2/3", () => {
  const llama = config("llama", {});
  const relu = config("llama", { mlp: "relu2" });
  assert.equal(mlpHidden(relu), 1.5 * mlpHidden(llama));
  assert.equal(parameterCounts(relu).total, parameterCounts(llama).total);
  const gpt2 = config("gpt2", {});
  const glu = config("gpt2", { mlp: "swiglu" });
  assert.equal(mlpHidden(glu), Math.round((mlpHidden(gpt2) * 2) / 3));
  // mlpHidden is exact and overrides mlpRatio; old configs without it keep their meaning.
  assert.equal(mlpHidden(config("llama", { mlpHidden: 171 })), 171);
  assert.equal(mlpHidden(preset("nano", "llama", 50)), 192); // 8/3 · 64 rounded up to a multiple of 32
});

test("the memory formula holds for lever combinations", () => {
  const combos: [string, ModelConfig][] = [
    ["llama + qkNorm + softcap + learned + bias", config("llama", single[12]![1]("llama"))],
    ["gpt2 + everything", config("gpt2", single[12]![1]("gpt2"))],
    ["llama + qkNorm", config("llama", { qkNorm: true })],
    ["gpt2 + swiglu, no bias", config("gpt2", { mlp: "swiglu", bias: false })],
  ];
  for (const [what, cfg] of combos) {
    const [batch, context] = [2, 16];
    const model = createModel(cfg, 1);
    const rng = new Rng(5);
    const ids = Int32Array.from({ length: batch * context }, () => rng.int(VOCAB));
    pool.clear();
    const base = pool.stats().liveBytes;
    let forwardBytes = 0;
    tidy(() => {
      const loss = crossEntropy(forward(model, ids, batch, context), ids);
      forwardBytes = pool.stats().liveBytes - base - 4;
      loss.backward();
    });
    assert.equal(forwardBytes, trainingStepMemory(cfg, batch, context).activationBytes, what);
    for (const p of model.params.values()) p.grad = null;
  }
});

test("hook points: every applicable name fires once, in forward order; identity hooks change nothing", () => {
  for (const [family, levers] of [
    ["llama", { qkNorm: true }],
    ["gpt2", {}],
    ["llama", { mlp: "none" }],
  ] as const) {
    const model = perturbed(config(family, levers), 3);
    const r = blockParts(model.config);
    const ids = Int32Array.from([1, 2, 3, 4]);
    const seen: string[] = [];
    const [plain, hooked] = noGrad(() =>
      tidy(() => [
        Float32Array.from(forward(model, ids, 1, 4).data),
        Float32Array.from(
          forward(model, ids, 1, 4, {
            hook: (name, t) => {
              seen.push(name);
              assert.ok(t.size > 0);
              return undefined;
            },
          }).data,
        ),
      ]),
    );
    // With a hook, attention runs op by op (so its pattern can be hooked): the same function, rounded apart.
    assertClose(hooked, plain, 1e-5, 1e-5, family);
    const want = new Set<string>();
    for (const p of HOOK_POINTS) {
      if (p === "hook_pos_embed" && r.positions !== "learned") continue;
      if (p.includes("mlp") && r.mlp === "none") continue;
      if (p === "blocks.{l}.mlp.hook_pre_linear" && !isGated(r.mlp)) continue;
      for (let l = 0; l < (p.startsWith("blocks.") ? model.config.layers : 1); l++) want.add(hookName(p, l));
    }
    assert.equal(seen.length, new Set(seen).size, "each point fires once");
    assert.deepEqual(new Set(seen), want, family);
    assert.equal(seen[0], "hook_embed");
    assert.equal(seen.at(-1), "ln_final.hook_normalized");
  }
});

test("a hook replaces its activation: zeroing the final norm's output zeroes the logits", () => {
  const model = perturbed(config("llama", {}), 4);
  const logits = noGrad(() =>
    tidy(() =>
      Float32Array.from(
        forward(model, Int32Array.from([5, 6]), 1, 2, {
          hook: (name, t) => (name === "ln_final.hook_normalized" ? zeros(t.shape) : undefined),
        }).data,
      ),
    ),
  );
  assert.ok(logits.every((x) => x === 0));
});

test("zeroInit: o_proj, down_proj and the untied head start at zero and still get gradients", () => {
  const cfg = config("llama", { zeroInit: true, tie: false });
  const model = createModel(cfg, 2);
  const zeroed = model.specs.filter((s) => /o_proj|down_proj|lm_head/.test(s.name));
  assert.equal(zeroed.length, 2 * cfg.layers + 1);
  for (const s of zeroed)
    assert.ok(
      model.params.get(s.name)!.data.every((x) => x === 0),
      s.name,
    );
  for (const s of model.specs.filter((s) => /q_proj\.weight/.test(s.name)))
    assert.ok(
      model.params.get(s.name)!.data.some((x) => x !== 0),
      `${s.name} keeps its random init`,
    );
  const ids = Int32Array.from([1, 2, 3, 4, 5, 6]);
  tidy(() => crossEntropy(forward(model, ids, 1, 6), ids).backward());
  const head = model.params.get("lm_head.weight")!.grad!;
  assert.ok(
    head.data.some((x) => x !== 0),
    "the zero head gets a gradient",
  );
  for (const p of model.params.values()) p.grad = null;
});

test("softcap bounds every logit by the cap", () => {
  const model = perturbed(config("gpt2", { softcap: 0.5 }), 6);
  const logits = noGrad(() =>
    tidy(() => Float32Array.from(forward(model, Int32Array.from([1, 2, 3]), 1, 3).data)),
  );
  assert.ok(logits.every((x) => Math.abs(x) < 0.5));
  assert.ok(logits.some((x) => Math.abs(x) > 0.1));
});

test("train flags reach the model config, and leave the family's recipe alone when unset", () => {
  const c = modelConfigFor(
    parseTrainConfig({
      family: "llama",
      qkNorm: true,
      mlp: "relu2",
      softcap: 15,
      zeroInit: true,
      tie: false,
      mlpHidden: 100,
      norm: "layernorm",
      positions: "learned",
      bias: true,
    }),
    300,
  );
  assert.deepEqual(blockParts(c), {
    norm: "layernorm",
    positions: "learned",
    mlp: "relu2",
    bias: true,
    qkNorm: true,
    softcap: 15,
    zeroInit: true,
  });
  assert.equal(mlpHidden(c), 100);
  assert.equal(c.tie, false);
  const plain = modelConfigFor(parseTrainConfig({ family: "gpt2" }), 300);
  assert.deepEqual(Object.keys(plain).sort(), Object.keys(preset("micro", "gpt2", 300, 128)).sort());
  assert.throws(() => parseTrainConfig({ mlp: "tanh" }), /mlp.*allowed: swiglu, gelu, relu2/);
});
