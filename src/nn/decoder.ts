// The decoder-only transformer, the one model afterscale runs. GPT-2 and Llama are recipes (config.ts's
// familyParts): data that picks this block's parts, not separate code.
//
//   x = embed[ids] (+ pos[positions] with learned positions)
//   per block:  x = x + o(attn(qknorm(q(n)), qknorm(k(n)), v(n)))   with n = norm(x), rotary inside attn
//               x = x + down(act(up(m)))  or  down(silu(gate(m)) ⊙ up(m))   with m = norm(x)
//   logits = head(norm(x)), soft-capped when configured
//
// Parameter names are Hugging Face's for the family (GPT2LMHeadModel with q, k, v kept apart, or
// LlamaForCausalLM / Qwen3ForCausalLM), so a family's checkpoints from before the parts existed load
// unchanged and export is a copy (gpt2: a fuse and a transpose). A part the family's own architecture lacks
// gets a name in the same style (partNames below).
import {
  add,
  attention,
  dropout,
  embedding,
  gelu,
  layerNorm,
  linear,
  matmul,
  releaseStorage,
  relu2,
  reshape,
  rmsNorm,
  rope,
  scale,
  softcap,
  softmax,
  swapAxes12,
  swiglu,
  type Tensor,
  tensor,
} from "../tensor/index.js";
import {
  type BlockParts,
  blockParts,
  type Family,
  headDim,
  isGated,
  type ModelConfig,
  mlpHidden,
} from "./config.js";
import { type ForwardHook, type HookPoint, hookName } from "./hooks.js";
import { attendCached, type CachedStep, stepOutput } from "./kv-cache.js";
import type { ParamSpec } from "./params.js";

/** Names of the parts of a family's parameters; per-layer names are relative to `layer(l)`. */
interface PartNames {
  embed: string;
  pos: string;
  layer: (l: number) => string;
  attnNorm: string;
  q: string;
  k: string;
  v: string;
  qNorm: string;
  kNorm: string;
  o: string;
  mlpNorm: string;
  gate: string;
  up: string;
  down: string;
  finalNorm: string;
  head: string;
}

export const partNames: Readonly<Record<Family, PartNames>> = {
  gpt2: {
    embed: "wte",
    pos: "wpe",
    layer: (l) => `h.${l}.`,
    attnNorm: "ln_1",
    q: "attn.q_proj",
    k: "attn.k_proj",
    v: "attn.v_proj",
    qNorm: "attn.q_norm",
    kNorm: "attn.k_norm",
    o: "attn.c_proj",
    mlpNorm: "ln_2",
    gate: "mlp.c_gate",
    up: "mlp.c_fc",
    down: "mlp.c_proj",
    finalNorm: "ln_f",
    head: "lm_head",
  },
  llama: {
    embed: "model.embed_tokens",
    pos: "model.embed_positions",
    layer: (l) => `model.layers.${l}.`,
    attnNorm: "input_layernorm",
    q: "self_attn.q_proj",
    k: "self_attn.k_proj",
    v: "self_attn.v_proj",
    qNorm: "self_attn.q_norm",
    kNorm: "self_attn.k_norm",
    o: "self_attn.o_proj",
    mlpNorm: "post_attention_layernorm",
    gate: "mlp.gate_proj",
    up: "mlp.up_proj",
    down: "mlp.down_proj",
    finalNorm: "model.norm",
    head: "lm_head",
  },
};

/**
 * Every parameter: name, shape, how it is initialised, whether it decays. The order is the draw order
 * of the initialisation, and it is the order both families always had, so a seed gives the same weights.
 */
export function decoderParams(c: ModelConfig): ParamSpec[] {
  const r = blockParts(c);
  const n = partNames[c.family];
  const d = c.dModel;
  const hd = headDim(c);
  const hidden = mlpHidden(c);
  // Residual projections start smaller so the residual stream's variance does not grow with depth (GPT-2).
  const resid = 0.02 / Math.sqrt(2 * c.layers);
  const specs: ParamSpec[] = [
    { name: `${n.embed}.weight`, shape: [c.vocab, d], init: "normal", std: 0.02, decay: false },
  ];
  if (r.positions === "learned")
    specs.push({ name: `${n.pos}.weight`, shape: [c.context, d], init: "normal", std: 0.01, decay: false });
  const norm = (name: string, dim: number) => {
    specs.push({ name: `${name}.weight`, shape: [dim], init: "ones", decay: false });
    if (r.norm === "layernorm")
      specs.push({ name: `${name}.bias`, shape: [dim], init: "zeros", decay: false });
  };
  const linearSpec = (name: string, out: number, inp: number, std: number | "zero") => {
    specs.push(
      std === "zero"
        ? { name: `${name}.weight`, shape: [out, inp], init: "zeros", decay: true }
        : { name: `${name}.weight`, shape: [out, inp], init: "normal", std, decay: true },
    );
    if (r.bias) specs.push({ name: `${name}.bias`, shape: [out], init: "zeros", decay: false });
  };
  const outStd = r.zeroInit ? "zero" : resid;
  for (let l = 0; l < c.layers; l++) {
    const p = n.layer(l);
    norm(p + n.attnNorm, d);
    linearSpec(p + n.q, c.heads * hd, d, 0.02);
    linearSpec(p + n.k, c.kvHeads * hd, d, 0.02);
    linearSpec(p + n.v, c.kvHeads * hd, d, 0.02);
    if (r.qkNorm) {
      specs.push({ name: `${p}${n.qNorm}.weight`, shape: [hd], init: "ones", decay: false });
      specs.push({ name: `${p}${n.kNorm}.weight`, shape: [hd], init: "ones", decay: false });
    }
    linearSpec(p + n.o, d, c.heads * hd, outStd);
    if (r.mlp === "none") continue;
    norm(p + n.mlpNorm, d);
    if (isGated(r.mlp)) linearSpec(p + n.gate, hidden, d, 0.02);
    linearSpec(p + n.up, hidden, d, 0.02);
    linearSpec(p + n.down, d, hidden, outStd);
  }
  norm(n.finalNorm, d);
  if (!c.tie) {
    const name = `${n.head}.weight`;
    specs.push(
      r.zeroInit
        ? { name, shape: [c.vocab, d], init: "zeros", decay: true }
        : { name, shape: [c.vocab, d], init: "normal", std: 0.02, decay: true },
    );
  }
  return specs;
}

/** A linear layer's weight [out, in] and its bias, or a norm's gain and (LayerNorm's) bias. */
export interface Affine {
  weight: Tensor;
  bias?: Tensor | undefined;
}

/** One block's parameters; gate only for gated MLPs, qNorm/kNorm only with QK-norm, no MLP with mlp none. */
export interface BlockWeights {
  attnNorm: Affine;
  q: Affine;
  k: Affine;
  v: Affine;
  qNorm?: Tensor | undefined;
  kNorm?: Tensor | undefined;
  o: Affine;
  mlp: { norm: Affine; gate?: Affine | undefined; up: Affine; down: Affine } | null;
}

function getter(params: Map<string, Tensor>) {
  return (name: string): Tensor => {
    const t = params.get(name);
    if (!t) throw new Error(`decoder: missing parameter ${name}`);
    return t;
  };
}

function affine(params: Map<string, Tensor>, name: string, biased: boolean): Affine {
  const weight = getter(params)(`${name}.weight`);
  return biased ? { weight, bias: getter(params)(`${name}.bias`) } : { weight };
}

/** Block l's weights from the parameter map. */
export function blockWeights(params: Map<string, Tensor>, c: ModelConfig, l: number): BlockWeights {
  const r = blockParts(c);
  const n = partNames[c.family];
  const p = n.layer(l);
  const ln = r.norm === "layernorm";
  const lin = (part: string) => affine(params, p + part, r.bias);
  return {
    attnNorm: affine(params, p + n.attnNorm, ln),
    q: lin(n.q),
    k: lin(n.k),
    v: lin(n.v),
    qNorm: r.qkNorm ? getter(params)(`${p}${n.qNorm}.weight`) : undefined,
    kNorm: r.qkNorm ? getter(params)(`${p}${n.kNorm}.weight`) : undefined,
    o: lin(n.o),
    mlp:
      r.mlp === "none"
        ? null
        : {
            norm: affine(params, p + n.mlpNorm, ln),
            gate: isGated(r.mlp) ? lin(n.gate) : undefined,
            up: lin(n.up),
            down: lin(n.down),
          },
  };
}

function normalize(x: Tensor, w: Affine, r: BlockParts, eps: number): Tensor {
  if (r.norm === "rmsnorm") return rmsNorm(x, w.weight, eps);
  if (!w.bias) throw new Error("decoder: a LayerNorm needs its bias");
  return layerNorm(x, w.weight, w.bias, eps);
}

const apply = (x: Tensor, w: Affine) => linear(x, w.weight, w.bias ?? null);

/** RMSNorm over each head's slice of x [B, T, heads·hd], with one gain [hd] shared by the heads. */
function headNorm(x: Tensor, gain: Tensor, eps: number): Tensor {
  const hd = gain.size;
  return reshape(rmsNorm(reshape(x, [x.size / hd, hd]), gain, eps), x.shape);
}

export interface BlockContext {
  /** Dropout seed of this step, or null when not training. */
  dropoutSeed: number | null;
  /** Incremental decoding: each sequence's new tokens attend over its cache, which they extend. */
  step?: CachedStep | null;
  layer?: number;
  hook?: ForwardHook | null;
}

/** The hook's replacement for an activation, or the activation itself when no hook is set. */
function tap(ctx: BlockContext, point: HookPoint, t: Tensor): Tensor {
  if (!ctx.hook) return t;
  return ctx.hook(hookName(point, ctx.layer ?? 0), t) ?? t;
}

/**
 * Gives back the storage of activations the block is done with (releaseStorage: what a backward reads
 * stays, in bf16 where it reads only that). Not with hooks, which may hold any activation, nor in cached
 * decoding, where the step's tensors are small and feed the caches.
 */
function done(ctx: BlockContext, ...ts: Tensor[]): void {
  if (ctx.hook || ctx.step) return;
  for (const t of ts) releaseStorage(t);
}

/** Residual dropout at site `salt` (0: embeddings, 2l+1: block l's attention, 2l+2: its MLP). */
function drop(t: Tensor, c: ModelConfig, ctx: BlockContext, salt: number): Tensor {
  if (ctx.dropoutSeed === null || c.dropout === 0) return t;
  return dropout(t, c.dropout, (ctx.dropoutSeed * 977 + salt) >>> 0);
}

/** One transformer block on the residual stream x [B, T, d] (with a cached step: its packed new tokens). */
export function decoderBlock(x: Tensor, w: BlockWeights, c: ModelConfig, ctx: BlockContext): Tensor {
  const r = blockParts(c);
  const l = ctx.layer ?? 0;
  x = tap(ctx, "blocks.{l}.hook_resid_pre", x);
  const n = normalize(x, w.attnNorm, r, c.normEps);
  let q = apply(n, w.q);
  let k = apply(n, w.k);
  if (w.qNorm && w.kNorm) {
    q = headNorm(q, w.qNorm, c.normEps);
    k = headNorm(k, w.kNorm, c.normEps);
  }
  q = tap(ctx, "blocks.{l}.attn.hook_q", q);
  k = tap(ctx, "blocks.{l}.attn.hook_k", k);
  const v = tap(ctx, "blocks.{l}.attn.hook_v", apply(n, w.v));
  // A hook sees the attention scores and pattern only through the explicit path; the fused kernel never
  // forms them. Cached decoding keeps the fused path.
  const z = ctx.step
    ? attendCached(ctx.step, l, q, k, v, attnHeads(c, r))
    : ctx.hook
      ? explicitAttention(q, k, v, c, r, ctx)
      : attention(q, k, v, { ...attnHeads(c, r), causal: true });
  done(ctx, n, q, k, v);
  const attnOut = tap(ctx, "blocks.{l}.hook_attn_out", apply(tap(ctx, "blocks.{l}.attn.hook_z", z), w.o));
  const attnDropped = drop(attnOut, c, ctx, 2 * l + 1);
  x = tap(ctx, "blocks.{l}.hook_resid_mid", add(x, attnDropped));
  done(ctx, z, attnOut, attnDropped);
  if (!w.mlp) return tap(ctx, "blocks.{l}.hook_resid_post", x);
  const m = normalize(x, w.mlp.norm, r, c.normEps);
  const pre = tap(ctx, "blocks.{l}.mlp.hook_pre", apply(m, w.mlp.gate ?? w.mlp.up));
  let post: Tensor;
  if (r.mlp === "swiglu") {
    if (!w.mlp.gate) throw new Error("decoder: a SwiGLU MLP needs its gate");
    const up = tap(ctx, "blocks.{l}.mlp.hook_pre_linear", apply(m, w.mlp.up));
    post = swiglu(pre, up);
    done(ctx, up);
  } else {
    post = r.mlp === "gelu" ? gelu(pre) : relu2(pre);
  }
  done(ctx, m, pre);
  post = tap(ctx, "blocks.{l}.mlp.hook_post", post);
  const mlpOut = tap(ctx, "blocks.{l}.hook_mlp_out", apply(post, w.mlp.down));
  const mlpDropped = drop(mlpOut, c, ctx, 2 * l + 2);
  const out = add(x, mlpDropped);
  done(ctx, post, mlpOut, mlpDropped);
  return tap(ctx, "blocks.{l}.hook_resid_post", out);
}

const attnHeads = (c: ModelConfig, r: BlockParts) => ({
  heads: c.heads,
  kvHeads: c.kvHeads,
  ...(r.positions === "rope" ? { rope: { theta: c.ropeTheta } } : {}),
});

/**
 * Causal attention written out op by op, the same function as the fused kernel, so that hooks can read and
 * replace its scores and pattern (TransformerLens's hook_attn_scores and hook_pattern, [B, heads, T, T]):
 *   scores = q·kᵀ/√hd, −∞ above the diagonal;  pattern = softmax(scores);  z = pattern·v
 * Query head h uses key/value head ⌊h / (heads/kvHeads)⌋, as in the fused kernel (grouped-query attention).
 */
function explicitAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  c: ModelConfig,
  r: BlockParts,
  ctx: BlockContext,
) {
  const [B, T] = q.shape as [number, number];
  const hd = headDim(c);
  const [H, KV] = [c.heads, c.kvHeads];
  if (r.positions === "rope") {
    q = rope(q, H, c.ropeTheta);
    k = rope(k, KV, c.ropeTheta);
  }
  const qh = swapAxes12(reshape(q, [B, T, H, hd])); // [B, H, T, hd]
  const kh = swapAxes12(reshape(k, [B, T, KV, hd])); // [B, KV, T, hd]
  const vh = swapAxes12(reshape(v, [B, T, KV, hd]));
  // The heads that share a key/value head stacked along time: [B, KV, (H/KV)·T, hd].
  const qk = matmul(reshape(qh, [B, KV, (H / KV) * T, hd]), kh, { transB: true });
  const masked = add(scale(reshape(qk, [B, H, T, T]), 1 / Math.sqrt(hd)), causalMask(T, q.dtype));
  const scores = tap(ctx, "blocks.{l}.attn.hook_attn_scores", masked);
  const pattern = tap(ctx, "blocks.{l}.attn.hook_pattern", softmax(scores));
  const z = matmul(reshape(pattern, [B, KV, (H / KV) * T, T]), vh); // [B, KV, (H/KV)·T, hd]
  return reshape(swapAxes12(reshape(z, [B, H, T, hd])), [B, T, H * hd]);
}

/** [T, T]: 0 on and below the diagonal, −∞ above it (a query never sees a later key). */
function causalMask(T: number, dtype: Tensor["dtype"]): Tensor {
  const m = new Array<number>(T * T).fill(0);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = Number.NEGATIVE_INFINITY;
  return tensor(m, [T, T], { dtype });
}

export interface DecoderOptions {
  /** Seed for this step's dropout masks; null disables dropout, as in evaluation. */
  dropoutSeed?: number | null;
  /** Incremental decoding: the step's sequences, caches and positions. */
  step?: CachedStep | null;
  /** Called at every hook point (hooks.ts); none by default. */
  hook?: ForwardHook | null;
}

/**
 * Logits [B, T, vocab] for token ids [B·T]. With a cached step, the ids are its sequences' new tokens,
 * packed (B·T = Σ counts), and step.lastOnly returns [sequences, 1, vocab].
 */
export function decoderForward(
  params: Map<string, Tensor>,
  c: ModelConfig,
  ids: Int32Array,
  batch: number,
  time: number,
  opts: DecoderOptions = {},
): Tensor {
  const r = blockParts(c);
  const n = partNames[c.family];
  const get = getter(params);
  const step = opts.step ?? null;
  const ctx: BlockContext = { dropoutSeed: opts.dropoutSeed ?? null, step, hook: opts.hook ?? null };
  let x = tap(ctx, "hook_embed", embedding(get(`${n.embed}.weight`), ids, [batch, time]));
  if (r.positions === "learned") {
    // Each sequence's positions continue from its own cache (sequences may be at different positions).
    const positions = step?.positions ?? Int32Array.from({ length: batch * time }, (_, i) => i % time);
    const tokens = x;
    const pos = tap(ctx, "hook_pos_embed", embedding(get(`${n.pos}.weight`), positions, [batch, time]));
    x = add(tokens, pos);
    done(ctx, tokens, pos);
  }
  x = drop(x, c, ctx, 0);
  for (let l = 0; l < c.layers; l++) {
    ctx.layer = l;
    x = decoderBlock(x, blockWeights(params, c, l), c, ctx);
  }
  const normed = tap(ctx, "ln_final.hook_normalized", finalNorm(params, c, stepOutput(x, step)));
  const logits = unembed(params, c, normed);
  done(ctx, normed);
  return logits;
}

/** The final norm of the residual stream (the logit lens applies it to every layer's residual). */
export function finalNorm(params: Map<string, Tensor>, c: ModelConfig, x: Tensor): Tensor {
  const r = blockParts(c);
  return normalize(x, affine(params, partNames[c.family].finalNorm, r.norm === "layernorm"), r, c.normEps);
}

/** The unembedding: the head's matrix (the token embedding when tied), then the soft-cap when configured. */
export function unembed(params: Map<string, Tensor>, c: ModelConfig, normed: Tensor): Tensor {
  const n = partNames[c.family];
  const softcapAt = blockParts(c).softcap;
  const logits = linear(normed, getter(params)(c.tie ? `${n.embed}.weight` : `${n.head}.weight`));
  return softcapAt > 0 ? softcap(logits, softcapAt) : logits;
}
