// Reading the residual stream in the vocabulary. The logit lens puts the residual after each layer through
// the final norm and the unembedding (nostalgebraist 2020); direct logit attribution splits one logit into
// the parts of the residual that wrote it: embeddings, each head, each MLP, the biases.
//
//   logit_t = Σ_c  c · u_t / s        u_t = w ⊙ W_U[t]  (the final norm's gain times the token's head row)
//
// where s is the final norm's scale at that position, taken from the cached final residual (RMS, or the
// standard deviation after centring each part for LayerNorm, whose bias adds b · W_U[t]). This is exact
// before the soft-cap; with a soft-cap the parts add up to the pre-cap logit.
import { blockParts, finalNorm, headDim, type Model, partNames, unembed } from "../nn/index.js";
import { noGrad, softmax, type Tensor, tidy } from "../tensor/index.js";
import { runWithCache } from "./run.js";

/** The k most likely tokens in each row of probabilities [rows, vocab]. */
export function topTokens(probs: ArrayLike<number>, rows: number, vocab: number, k: number) {
  const out: { id: number; prob: number }[][] = [];
  for (let r = 0; r < rows; r++) {
    const row = Array.from({ length: vocab }, (_, id) => ({ id, prob: probs[r * vocab + id]! }));
    out.push(row.sort((a, b) => b.prob - a.prob || a.id - b.id).slice(0, k));
  }
  return out;
}

export interface LogitLens {
  /** "embed" (the residual entering block 0), then "0" … "L-1": the residual after each block. */
  labels: string[];
  /** [label][position][k]: the top tokens and their probabilities. */
  top: { id: number; prob: number }[][][];
}

/** The logit lens over one sequence: what the model would predict if it stopped after each block. */
export function logitLens(model: Model, ids: readonly number[], k = 5): LogitLens {
  const c = model.config;
  const T = ids.length;
  const names = [
    "blocks.0.hook_resid_pre",
    ...Array.from({ length: c.layers }, (_, l) => `blocks.${l}.hook_resid_post`),
  ];
  const { logits, cache } = runWithCache(model, { ids }, { names });
  logits.dispose();
  const top = names.map((name) =>
    noGrad(() =>
      tidy(() => {
        const probs = softmax(unembed(model.params, c, finalNorm(model.params, c, cache.get(name))));
        return topTokens(probs.data, T, c.vocab, k);
      }),
    ),
  );
  cache.dispose();
  return { labels: ["embed", ...Array.from({ length: c.layers }, (_, l) => String(l))], top };
}

export interface Attribution {
  /** "embed", "pos_embed", "L{l}H{h}" (one head), "L{l} attn bias", "L{l} mlp", "final norm bias". */
  name: string;
  layer: number | null;
  head: number | null;
  value: number;
}

export interface LogitAttribution {
  position: number;
  target: number;
  /** The target's logit before any soft-cap: the sum of the components' values. */
  logit: number;
  components: Attribution[];
}

/** Direct logit attribution of the target token's logit at one position (default: the last, its top token). */
export function directLogitAttribution(
  model: Model,
  ids: readonly number[],
  opts: { position?: number; target?: number } = {},
): LogitAttribution {
  const c = model.config;
  const r = blockParts(c);
  const n = partNames[c.family];
  const T = ids.length;
  const d = c.dModel;
  const position = opts.position ?? T - 1;
  if (!Number.isInteger(position) || position < 0 || position >= T)
    throw new Error(`direct logit attribution: position ${position} is outside the ${T} tokens`);
  const { logits, cache } = runWithCache(model, { ids });
  const target = opts.target ?? argmax(logits.data.subarray(position * c.vocab, (position + 1) * c.vocab));
  logits.dispose();
  if (!Number.isInteger(target) || target < 0 || target >= c.vocab)
    throw new Error(`direct logit attribution: target ${target} is outside the vocabulary of ${c.vocab}`);
  const row = (t: Tensor, width = d) => t.data.subarray(position * width, (position + 1) * width);
  const param = (name: string) => {
    const p = model.params.get(name);
    if (!p) throw new Error(`direct logit attribution: missing parameter ${name}`);
    return p.packed ? p.packed.dequantizeRows(0, p.packed.rows) : p.data; // a quantized model's head
  };
  // u = gain ⊙ W_U[target], centred for LayerNorm (centring each part is centring u); s from the cache.
  const gain = param(`${n.finalNorm}.weight`);
  const head = param(c.tie ? `${n.embed}.weight` : `${n.head}.weight`).subarray(target * d, (target + 1) * d);
  const u = Float64Array.from({ length: d }, (_, i) => gain[i]! * head[i]!);
  const resid = row(cache.get(`blocks.${c.layers - 1}.hook_resid_post`));
  let s: number;
  if (r.norm === "layernorm") {
    const mu = mean(resid);
    s = Math.sqrt(mean(Array.from(resid, (x) => (x - mu) ** 2)) + c.normEps);
    const uMean = mean(u);
    for (let i = 0; i < d; i++) u[i]! -= uMean;
  } else {
    s = Math.sqrt(mean(Array.from(resid, (x) => x * x)) + c.normEps);
  }
  const value = (v: ArrayLike<number>) => {
    let dot = 0;
    for (let i = 0; i < d; i++) dot += v[i]! * u[i]!;
    return dot / s;
  };
  const components: Attribution[] = [];
  const add = (name: string, layer: number | null, head: number | null, v: number) =>
    components.push({ name, layer, head, value: v });
  add("embed", null, null, value(row(cache.get("hook_embed"))));
  if (r.positions === "learned") add("pos_embed", null, null, value(row(cache.get("hook_pos_embed"))));
  const hd = headDim(c);
  const width = c.heads * hd;
  for (let l = 0; l < c.layers; l++) {
    const p = n.layer(l);
    const wo = param(`${p}${n.o}.weight`); // [d, heads·hd]
    const z = row(cache.get(`blocks.${l}.attn.hook_z`), width);
    for (let h = 0; h < c.heads; h++) {
      // The head's write into the residual: W_O[:, h] z_h.
      const out = new Float64Array(d);
      for (let i = 0; i < d; i++) {
        let acc = 0;
        for (let j = h * hd; j < (h + 1) * hd; j++) acc += wo[i * width + j]! * z[j]!;
        out[i] = acc;
      }
      add(`L${l}H${h}`, l, h, value(out));
    }
    if (r.bias) add(`L${l} attn bias`, l, null, value(param(`${p}${n.o}.bias`)));
    if (r.mlp !== "none") add(`L${l} mlp`, l, null, value(row(cache.get(`blocks.${l}.hook_mlp_out`))));
  }
  if (r.norm === "layernorm") {
    const b = param(`${n.finalNorm}.bias`);
    let dot = 0;
    for (let i = 0; i < d; i++) dot += b[i]! * head[i]!;
    add("final norm bias", null, null, dot);
  }
  cache.dispose();
  return { position, target, logit: components.reduce((a, x) => a + x.value, 0), components };
}

export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s / xs.length;
}
