// The GPT-2 family in one file: LayerNorm, learned absolute positions, GELU MLP, biases, tied embeddings.
// Parameter names follow Hugging Face's GPT2LMHeadModel where the layout allows (q, k, v kept separate).
import { add, attention, dropout, embedding, gelu, layerNorm, linear, type Tensor } from "../tensor/index.js";
import { type ModelConfig, mlpHidden } from "./config.js";
import { attendCached, type CachedStep, stepOutput } from "./kv-cache.js";
import type { ParamSpec } from "./params.js";

export function gpt2Params(c: ModelConfig): ParamSpec[] {
  const d = c.dModel;
  const hidden = mlpHidden(c);
  const resid = 0.02 / Math.sqrt(2 * c.layers);
  const specs: ParamSpec[] = [
    { name: "wte.weight", shape: [c.vocab, d], init: "normal", std: 0.02, decay: false },
    { name: "wpe.weight", shape: [c.context, d], init: "normal", std: 0.01, decay: false },
  ];
  for (let l = 0; l < c.layers; l++) {
    const p = `h.${l}.`;
    const w = (name: string, shape: number[], std = 0.02): ParamSpec => ({
      name: p + name,
      shape,
      init: "normal",
      std,
      decay: true,
    });
    const z = (name: string, shape: number[]): ParamSpec => ({
      name: p + name,
      shape,
      init: "zeros",
      decay: false,
    });
    specs.push(
      { name: `${p}ln_1.weight`, shape: [d], init: "ones", decay: false },
      z("ln_1.bias", [d]),
      w("attn.q_proj.weight", [d, d]),
      z("attn.q_proj.bias", [d]),
      w("attn.k_proj.weight", [d, d]),
      z("attn.k_proj.bias", [d]),
      w("attn.v_proj.weight", [d, d]),
      z("attn.v_proj.bias", [d]),
      w("attn.c_proj.weight", [d, d], resid),
      z("attn.c_proj.bias", [d]),
      { name: `${p}ln_2.weight`, shape: [d], init: "ones", decay: false },
      z("ln_2.bias", [d]),
      w("mlp.c_fc.weight", [hidden, d]),
      z("mlp.c_fc.bias", [hidden]),
      w("mlp.c_proj.weight", [d, hidden], resid),
      z("mlp.c_proj.bias", [d]),
    );
  }
  specs.push(
    { name: "ln_f.weight", shape: [d], init: "ones", decay: false },
    { name: "ln_f.bias", shape: [d], init: "zeros", decay: false },
  );
  if (!c.tie)
    specs.push({ name: "lm_head.weight", shape: [c.vocab, d], init: "normal", std: 0.02, decay: true });
  return specs;
}

/**
 * Logits [B, T, vocab] (with a cached step: its packed new tokens, see llamaForward):
 *   x = wte[ids] + wpe[pos]
 *   x = x + c_proj·attn(q, k, v)    with q, k, v = W·ln_1(x) + b
 *   x = x + c_proj·gelu(c_fc·ln_2(x))
 */
export function gpt2Forward(
  params: Map<string, Tensor>,
  c: ModelConfig,
  ids: Int32Array,
  batch: number,
  time: number,
  dropoutSeed: number | null = null,
  step: CachedStep | null = null,
): Tensor {
  const get = (n: string) => {
    const t = params.get(n);
    if (!t) throw new Error(`gpt2: missing parameter ${n}`);
    return t;
  };
  // Each sequence's positions continue from its own cache (sequences may be at different positions).
  const positions = step?.positions ?? Int32Array.from({ length: batch * time }, (_, i) => i % time);
  let x = add(
    embedding(get("wte.weight"), ids, [batch, time]),
    embedding(get("wpe.weight"), positions, [batch, time]),
  );
  const drop = (t: Tensor, salt: number) =>
    dropoutSeed === null || c.dropout === 0 ? t : dropout(t, c.dropout, (dropoutSeed * 977 + salt) >>> 0);
  x = drop(x, 0);
  for (let l = 0; l < c.layers; l++) {
    const p = `h.${l}.`;
    const n = layerNorm(x, get(`${p}ln_1.weight`), get(`${p}ln_1.bias`), c.normEps);
    const q = linear(n, get(`${p}attn.q_proj.weight`), get(`${p}attn.q_proj.bias`));
    const k = linear(n, get(`${p}attn.k_proj.weight`), get(`${p}attn.k_proj.bias`));
    const v = linear(n, get(`${p}attn.v_proj.weight`), get(`${p}attn.v_proj.bias`));
    const a = step
      ? attendCached(step, l, q, k, v, { heads: c.heads, kvHeads: c.heads })
      : attention(q, k, v, { heads: c.heads, causal: true });
    x = add(x, drop(linear(a, get(`${p}attn.c_proj.weight`), get(`${p}attn.c_proj.bias`)), 2 * l + 1));
    const m = layerNorm(x, get(`${p}ln_2.weight`), get(`${p}ln_2.bias`), c.normEps);
    const h = gelu(linear(m, get(`${p}mlp.c_fc.weight`), get(`${p}mlp.c_fc.bias`)));
    x = add(x, drop(linear(h, get(`${p}mlp.c_proj.weight`), get(`${p}mlp.c_proj.bias`)), 2 * l + 2));
  }
  x = layerNorm(stepOutput(x, step), get("ln_f.weight"), get("ln_f.bias"), c.normEps);
  return linear(x, c.tie ? get("wte.weight") : get("lm_head.weight"));
}
