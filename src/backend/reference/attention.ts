// Rotary position embedding and (causal, grouped-query) attention.

import type { AttentionShape, CachedAttentionShape, FloatArray } from "../backend.js";
import { needCounts, needLength, scratch, store } from "./scratch.js";

const SCORES = 0; // one row of scores / probabilities [tk]
const ACC = 1; // one output or gq row [hd]
const GK = 2; // gk accumulator when gk is float32 [batch·tk·kvHeads·hd]
const GV = 3; // gv accumulator when gv is float32
const LSE = 4; // attentionCached's discarded softmax statistics

// Pair (i, i+h), h = hd/2, angle θ = pos·θ_i:  out_i = x_i·cos θ − x_{i+h}·sin θ;  out_{i+h} = x_i·sin θ + x_{i+h}·cos θ
// Backward = the same rotation by −θ (inverse = true), since a rotation's transpose is its inverse.
export function rope(
  x: FloatArray,
  out: FloatArray,
  cos: FloatArray,
  sin: FloatArray,
  batch: number,
  t: number,
  heads: number,
  headDim: number,
  positions: number | Int32Array,
  inverse: boolean,
): void {
  needCounts("rope", { batch, t, heads, headDim });
  if (typeof positions === "number") needCounts("rope", { pos0: positions });
  else needLength("rope", "positions", positions, batch * t);
  if (headDim % 2 !== 0) throw new Error(`rope: headDim must be even, got ${headDim}`);
  const half = headDim / 2;
  const n = batch * t * heads * headDim;
  needLength("rope", "x", x, n);
  needLength("rope", "out", out, n);
  if (n === 0) return;
  const position = (row: number) => (typeof positions === "number" ? positions + (row % t) : positions[row]!);
  const maxPos = Math.floor(Math.min(cos.length, sin.length) / half);
  for (let row = 0; row < batch * t; row++) {
    const p = position(row);
    if (!Number.isInteger(p) || p < 0 || p >= maxPos)
      throw new Error(`rope: position ${p} (row ${row}) is outside the cos/sin tables (${maxPos} positions)`);
  }
  const sign = inverse ? -1 : 1;
  for (let row = 0; row < batch * t; row++) {
    const table = position(row) * half;
    for (let h = 0; h < heads; h++) {
      const base = (row * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[table + i];
        const s = sign * sin[table + i];
        const x1 = x[base + i];
        const x2 = x[base + i + half];
        out[base + i] = x1 * c - x2 * s;
        out[base + i + half] = x1 * s + x2 * c;
      }
    }
  }
}

function checkShape(
  kernel: string,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  shape: AttentionShape,
): void {
  const { batch, tq, tk, heads, kvHeads, headDim } = shape;
  needCounts(kernel, { batch, tq, tk, heads, kvHeads, headDim });
  if (tq > tk) throw new Error(`${kernel}: tq=${tq} must be <= tk=${tk}`);
  if (tq > 0 && tk === 0) throw new Error(`${kernel}: no keys for ${tq} queries`);
  if (kvHeads === 0 || heads % kvHeads !== 0) {
    throw new Error(`${kernel}: heads=${heads} must be a positive multiple of kvHeads=${kvHeads}`);
  }
  needLength(kernel, "q", q, batch * tq * heads * headDim);
  needLength(kernel, "k", k, batch * tk * kvHeads * headDim);
  needLength(kernel, "v", v, batch * tk * kvHeads * headDim);
}

// s_j = scale·q·k_j (j ≤ i + tk − tq when causal);  p = softmax(s);  out_i = Σ_j p_j v_j;  lse_i = log Σ_j exp(s_j)
export function attention(
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  out: FloatArray,
  lse: FloatArray,
  shape: AttentionShape,
): void {
  checkShape("attention", q, k, v, shape);
  const { batch, tq, tk, heads, kvHeads, headDim: hd, scale, causal } = shape;
  const group = heads / kvHeads;
  const scores = scratch(SCORES, tk);
  const acc = scratch(ACC, hd);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < tq; i++) {
        const qi = ((b * tq + i) * heads + h) * hd;
        const last = causal ? i + tk - tq : tk - 1;
        let max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j <= last; j++) {
          const kj = ((b * tk + j) * kvHeads + kvh) * hd;
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += q[qi + d] * k[kj + d];
          const s = dot * scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let total = 0;
        for (let j = 0; j <= last; j++) {
          const p = Math.exp(scores[j] - max);
          scores[j] = p;
          total += p;
        }
        acc.fill(0, 0, hd);
        for (let j = 0; j <= last; j++) {
          const p = scores[j] / total;
          const vj = ((b * tk + j) * kvHeads + kvh) * hd;
          for (let d = 0; d < hd; d++) acc[d] += p * v[vj + d];
        }
        for (let d = 0; d < hd; d++) out[qi + d] = acc[d];
        lse[(b * heads + h) * tq + i] = max + Math.log(total);
      }
    }
  }
}

// p_ij = exp(scale·q_i·k_j − lse_i);  D_i = gOut_i·out_i;  ds_ij = p_ij·(gOut_i·v_j − D_i);
// gq_i = scale·Σ_j ds_ij k_j;  gk_j = scale·Σ_i ds_ij q_i;  gv_j = Σ_i p_ij gOut_i
export function attentionBackward(
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  out: FloatArray,
  lse: FloatArray,
  gOut: FloatArray,
  gq: FloatArray,
  gk: FloatArray,
  gv: FloatArray,
  shape: AttentionShape,
): void {
  checkShape("attentionBackward", q, k, v, shape);
  const { batch, tq, tk, heads, kvHeads, headDim: hd, scale, causal } = shape;
  const group = heads / kvHeads;
  const kvSize = batch * tk * kvHeads * hd;
  // gk/gv sum over queries and the query heads of a group: accumulate in float64.
  const gkAcc = gk instanceof Float64Array ? gk : scratch(GK, kvSize);
  const gvAcc = gv instanceof Float64Array ? gv : scratch(GV, kvSize);
  gkAcc.fill(0, 0, kvSize);
  gvAcc.fill(0, 0, kvSize);
  const acc = scratch(ACC, hd);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < tq; i++) {
        const qi = ((b * tq + i) * heads + h) * hd;
        const last = causal ? i + tk - tq : tk - 1;
        const lseI = lse[(b * heads + h) * tq + i];
        let dI = 0;
        for (let d = 0; d < hd; d++) dI += gOut[qi + d] * out[qi + d];
        acc.fill(0, 0, hd);
        for (let j = 0; j <= last; j++) {
          const kj = ((b * tk + j) * kvHeads + kvh) * hd;
          let qk = 0;
          let dp = 0; // gOut_i·v_j
          for (let d = 0; d < hd; d++) {
            qk += q[qi + d] * k[kj + d];
            dp += gOut[qi + d] * v[kj + d];
          }
          const p = Math.exp(qk * scale - lseI);
          const ds = p * (dp - dI) * scale;
          for (let d = 0; d < hd; d++) {
            acc[d] += ds * k[kj + d];
            gkAcc[kj + d] += ds * q[qi + d];
            gvAcc[kj + d] += p * gOut[qi + d];
          }
        }
        for (let d = 0; d < hd; d++) gq[qi + d] = acc[d];
      }
    }
  }
  if (gkAcc !== gk) store(gk, gkAcc, kvSize);
  if (gvAcc !== gv) store(gv, gvAcc, kvSize);
}

// Each sequence on its own: its queries are the last counts[s] of its lengths[s] keys (causal).
export function attentionCached(
  q: FloatArray,
  keys: readonly FloatArray[],
  values: readonly FloatArray[],
  counts: Int32Array,
  lengths: Int32Array,
  out: FloatArray,
  shape: CachedAttentionShape,
): void {
  const { heads, kvHeads, headDim } = shape;
  const n = counts.length;
  if (keys.length !== n || values.length !== n || lengths.length !== n)
    throw new Error(
      `attentionCached: ${n} counts, ${lengths.length} lengths, ${keys.length} keys and ${values.length} values`,
    );
  const rowWidth = heads * headDim;
  let row = 0;
  for (let s = 0; s < n; s++) {
    const tq = counts[s]!;
    const tk = lengths[s]!;
    const one = { batch: 1, tq, tk, heads, kvHeads, headDim, scale: shape.scale, causal: true };
    const kvLength = tk * kvHeads * headDim;
    needLength("attentionCached", `keys[${s}]`, keys[s]!, kvLength);
    needLength("attentionCached", `values[${s}]`, values[s]!, kvLength);
    const qs = q.subarray(row * rowWidth, (row + tq) * rowWidth);
    const lse = scratch(LSE, heads * tq);
    attention(
      qs,
      keys[s]!.subarray(0, kvLength),
      values[s]!.subarray(0, kvLength),
      out.subarray(row * rowWidth),
      lse,
      one,
    );
    row += tq;
  }
}
