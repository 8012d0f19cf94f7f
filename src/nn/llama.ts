// The Llama family in one file: RMSNorm, rotary embeddings, SwiGLU, grouped-query attention, no biases.
// Parameter names follow Hugging Face's LlamaForCausalLM, so export is a rename-free copy.
import { add, attention, dropout, embedding, linear, rmsNorm, swiglu, type Tensor } from "../tensor/index.js";
import { headDim, type ModelConfig, mlpHidden } from "./config.js";
import { attendCached, type CachedStep, stepOutput } from "./kv-cache.js";
import type { ParamSpec } from "./params.js";

export interface LlamaLayer {
  attnNorm: Tensor;
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  wo: Tensor;
  mlpNorm: Tensor;
  wGate: Tensor;
  wUp: Tensor;
  wDown: Tensor;
}

/** Every parameter: name, shape, and how it is initialised. */
export function llamaParams(c: ModelConfig): ParamSpec[] {
  const hd = headDim(c);
  const hidden = mlpHidden(c);
  const d = c.dModel;
  // Residual projections start smaller so the residual stream's variance does not grow with depth (GPT-2).
  const resid = 0.02 / Math.sqrt(2 * c.layers);
  const specs: ParamSpec[] = [
    { name: "model.embed_tokens.weight", shape: [c.vocab, d], init: "normal", std: 0.02, decay: false },
  ];
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    specs.push(
      { name: `${p}input_layernorm.weight`, shape: [d], init: "ones", decay: false },
      {
        name: `${p}self_attn.q_proj.weight`,
        shape: [c.heads * hd, d],
        init: "normal",
        std: 0.02,
        decay: true,
      },
      {
        name: `${p}self_attn.k_proj.weight`,
        shape: [c.kvHeads * hd, d],
        init: "normal",
        std: 0.02,
        decay: true,
      },
      {
        name: `${p}self_attn.v_proj.weight`,
        shape: [c.kvHeads * hd, d],
        init: "normal",
        std: 0.02,
        decay: true,
      },
      {
        name: `${p}self_attn.o_proj.weight`,
        shape: [d, c.heads * hd],
        init: "normal",
        std: resid,
        decay: true,
      },
      { name: `${p}post_attention_layernorm.weight`, shape: [d], init: "ones", decay: false },
      { name: `${p}mlp.gate_proj.weight`, shape: [hidden, d], init: "normal", std: 0.02, decay: true },
      { name: `${p}mlp.up_proj.weight`, shape: [hidden, d], init: "normal", std: 0.02, decay: true },
      { name: `${p}mlp.down_proj.weight`, shape: [d, hidden], init: "normal", std: resid, decay: true },
    );
  }
  specs.push({ name: "model.norm.weight", shape: [d], init: "ones", decay: false });
  if (!c.tie)
    specs.push({ name: "lm_head.weight", shape: [c.vocab, d], init: "normal", std: 0.02, decay: true });
  return specs;
}

export function llamaLayer(params: Map<string, Tensor>, l: number): LlamaLayer {
  const get = (n: string) => {
    const t = params.get(`model.layers.${l}.${n}`);
    if (!t) throw new Error(`llama: missing parameter model.layers.${l}.${n}`);
    return t;
  };
  return {
    attnNorm: get("input_layernorm.weight"),
    wq: get("self_attn.q_proj.weight"),
    wk: get("self_attn.k_proj.weight"),
    wv: get("self_attn.v_proj.weight"),
    wo: get("self_attn.o_proj.weight"),
    mlpNorm: get("post_attention_layernorm.weight"),
    wGate: get("mlp.gate_proj.weight"),
    wUp: get("mlp.up_proj.weight"),
    wDown: get("mlp.down_proj.weight"),
  };
}

export interface BlockContext {
  /** Dropout seed for this block in this step, or null when not training. */
  dropoutSeed: number | null;
  /** Incremental decoding: each sequence's new tokens attend over its cache, which they extend. */
  cache?: { step: CachedStep; layer: number };
}

/**
 * One transformer block on the residual stream x [B, T, d]:
 *   x = x + Wo·attn(rope(Wq·n), rope(Wk·n), Wv·n)   with n = rmsnorm(x)
 *   x = x + Wdown·(silu(Wgate·m) ⊙ Wup·m)            with m = rmsnorm(x)
 */
export function llamaBlock(
  x: Tensor,
  w: LlamaLayer,
  c: ModelConfig,
  ctx: BlockContext = { dropoutSeed: null },
): Tensor {
  const n = rmsNorm(x, w.attnNorm, c.normEps);
  const heads = { heads: c.heads, kvHeads: c.kvHeads, rope: { theta: c.ropeTheta } };
  const [q, k, v] = [linear(n, w.wq), linear(n, w.wk), linear(n, w.wv)];
  const a = ctx.cache
    ? attendCached(ctx.cache.step, ctx.cache.layer, q, k, v, heads)
    : attention(q, k, v, { ...heads, causal: true });
  x = add(x, residualDropout(linear(a, w.wo), c, ctx, 0));
  const m = rmsNorm(x, w.mlpNorm, c.normEps);
  const h = swiglu(linear(m, w.wGate), linear(m, w.wUp));
  return add(x, residualDropout(linear(h, w.wDown), c, ctx, 1));
}

function residualDropout(t: Tensor, c: ModelConfig, ctx: BlockContext, which: number): Tensor {
  if (ctx.dropoutSeed === null || c.dropout === 0) return t;
  return dropout(t, c.dropout, (ctx.dropoutSeed * 2 + which) >>> 0);
}

/**
 * Logits [B, T, vocab] for token ids [B·T]. With a cached step, the ids are its sequences' new tokens,
 * packed (B·T = Σ counts), and step.lastOnly returns [sequences, 1, vocab].
 */
export function llamaForward(
  params: Map<string, Tensor>,
  c: ModelConfig,
  ids: Int32Array,
  batch: number,
  time: number,
  dropoutSeed: number | null = null,
  step: CachedStep | null = null,
): Tensor {
  const embed = params.get("model.embed_tokens.weight")!;
  let x = embedding(embed, ids, [batch, time]);
  for (let l = 0; l < c.layers; l++) {
    const seed = dropoutSeed === null ? null : (dropoutSeed * 131 + l) >>> 0;
    x = llamaBlock(x, llamaLayer(params, l), c, {
      dropoutSeed: seed,
      ...(step ? { cache: { step, layer: l } } : {}),
    });
  }
  x = rmsNorm(stepOutput(x, step), params.get("model.norm.weight")!, c.normEps);
  return linear(x, c.tie ? embed : params.get("lm_head.weight")!);
}
