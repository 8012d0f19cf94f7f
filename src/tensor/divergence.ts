// The generalised Jensen–Shannon divergence of GKD (Agarwal et al. 2024, eq. 1) between a teacher's and a
// student's temperature-softened next-token distributions, exactly as Hugging Face TRL's
// GKDTrainer.generalized_jsd_loss computes it:
//   β = 0: KL(teacher ‖ student) (forward KL);  β = 1: KL(student ‖ teacher) (reverse KL);
//   else:  β·KL(teacher ‖ m) + (1−β)·KL(student ‖ m), with m = β·teacher + (1−β)·student,
// each distribution softmax(logits / T), averaged over rows (TRL's "batchmean" over unmasked tokens).
//
// One fused op rather than a composition of exp/log/softmax ops: the softmaxes and log-sum-exps run on the
// backend's kernels (softmax, and crossEntropy's per-row log-sum-exp), log-probabilities come from the
// logits minus that log-sum-exp (never the log of a probability that may have underflowed), the mixture's
// log is taken only where the mixture has mass, and the backward reads two saved [rows × vocab] arrays (the
// per-element part of the gradient, and p). The gradient w.r.t. the student logits s, with p the student's
// and q the teacher's distribution over the support:
//   β = 0: (p − q)/T;   β = 1: p ⊙ (log p − log q − KL)/T;   else: p ⊙ (g − Σ p g)/T, g = (1−β)(log p − log m).
// The teacher is a constant (no gradient), given as logits or as its top-k (see TeacherTarget).
import type { Backend, FloatArray } from "../backend/backend.js";
import { pool } from "./pool.js";
import { accumulateGrad, empty, needsGrad, record, type Tensor } from "./tensor.js";

/**
 * The teacher's side. `logits`: rows of `stride` logits, of which the first vocab (the student's width) are
 * used. `topk`: per row the ids and log-probabilities (at temperature 1) of its k most likely tokens; at
 * temperature T they are renormalised over those k, q_K = softmax_K(logprob / T) (exact for the tokens kept,
 * since log-probs differ from logits by a per-row constant), and the tokens outside are given probability 0.
 * With β = 0 the student keeps its whole distribution (the loss is a cross-entropy against q_K, which still
 * penalises student mass outside the k tokens); with β > 0 a zero teacher probability would make the
 * divergence infinite, so the student is renormalised over the same k tokens and compared there.
 */
export type TeacherTarget =
  | { kind: "logits"; logits: FloatArray; stride: number }
  | { kind: "topk"; ids: Int32Array; logProbs: FloatArray; k: number };

export interface DivergenceOptions {
  /** 0: forward KL, 1: reverse KL, between: the generalised JSD (TRL's default 0.5). */
  beta: number;
  /** Softmax temperature applied to both sides (> 0). */
  temperature: number;
}

/** softmax(x) per row into a pool array, and each row's log-sum-exp, on the backend's kernels. */
function softmaxRows(kern: Backend, x: FloatArray, rows: number, vocab: number, dtype: Tensor["dtype"]) {
  const prob = pool.alloc(dtype, rows * vocab);
  kern.softmax(x, prob, rows, vocab);
  const lse = pool.alloc(dtype, rows);
  const losses = pool.alloc(dtype, rows);
  kern.crossEntropy(x, new Int32Array(rows), losses, lse, rows, vocab, -1);
  pool.release(losses);
  return { prob, lse };
}

/** Softmax of x[0..n) into prob and logProb (float64, for a row's top-k). */
function softmaxSmall(x: Float64Array, n: number, prob: Float64Array, logProb: Float64Array): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) if (x[j]! > max) max = x[j]!;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(x[j]! - max);
  const shift = max + Math.log(sum);
  for (let j = 0; j < n; j++) {
    logProb[j] = x[j]! - shift;
    prob[j] = Math.exp(logProb[j]!);
  }
}

/**
 * One support point's contribution: the divergence term, and a (see rowC) for the gradient
 * ∂/∂s = (a − p·c)/T: β = 0: a = p − q; β = 1: a = p·(log p − log q); else a = p·g, g = (1−β)(log p − log m).
 */
function term(
  beta: number,
  p: number,
  lp: number,
  q: number,
  lq: number,
  out: { d: number; a: number },
): void {
  if (beta === 0) {
    out.d = q > 0 ? q * (lq - lp) : 0;
    out.a = p - q;
  } else if (beta === 1) {
    out.d = p > 0 ? p * (lp - lq) : 0;
    out.a = out.d;
  } else {
    const m = (1 - beta) * p + beta * q;
    if (m === 0) {
      out.d = 0;
      out.a = 0;
      return;
    }
    const lm = Math.log(m);
    const ps = p > 0 ? (1 - beta) * p * (lp - lm) : 0;
    out.d = (q > 0 ? beta * q * (lq - lm) : 0) + ps;
    out.a = ps;
  }
}

/**
 * Mean over rows of the generalised JSD(β) between softmax(teacher/T) and softmax(student/T); student
 * logits [..., vocab] → scalar. Differentiable w.r.t. the student only.
 */
export function generalizedJsd(student: Tensor, teacher: TeacherTarget, opts: DivergenceOptions): Tensor {
  const { beta, temperature } = opts;
  if (!(beta >= 0 && beta <= 1)) throw new Error(`generalizedJsd: beta must be in [0, 1], got ${beta}`);
  if (!(temperature > 0)) throw new Error(`generalizedJsd: temperature must be > 0, got ${temperature}`);
  if (student.shape.length === 0)
    throw new Error("generalizedJsd: expected logits [..., vocab], got a scalar");
  const vocab = student.shape[student.shape.length - 1]!;
  const rows = student.size / vocab;
  if (teacher.kind === "logits") {
    if (teacher.stride < vocab || teacher.logits.length !== rows * teacher.stride)
      throw new Error(
        `generalizedJsd: the teacher's logits (${teacher.logits.length} values, rows of ${teacher.stride}) do not cover ${rows} rows of ${vocab}`,
      );
  } else {
    const { k } = teacher;
    if (!(k >= 1 && k <= vocab) || teacher.ids.length !== rows * k || teacher.logProbs.length !== rows * k)
      throw new Error(
        `generalizedJsd: the teacher's top-k (k ${k}, ${teacher.ids.length} ids, ${teacher.logProbs.length} log-probs) does not fit ${rows} rows of ${vocab}`,
      );
    for (const id of teacher.ids)
      if (id < 0 || id >= vocab)
        throw new Error(`generalizedJsd: teacher token id ${id} is outside [0, ${vocab})`);
  }
  const invT = 1 / temperature;
  const { dtype } = student;
  const kern = student.kernels;
  const n = student.size;
  const xs = pool.alloc(dtype, n);
  kern.scale(student.data, invT, xs, n);
  const S = softmaxRows(kern, xs, rows, vocab, dtype);
  const grad = needsGrad(student);
  // For the backward: a per element (0 off the support), c per row, and p (the student's over the support).
  const a = grad ? pool.alloc(dtype, n) : null;
  const c = new Float64Array(rows);
  const t = { d: 0, a: 0 };
  let total = 0;
  let pSaved: FloatArray = S.prob;
  if (teacher.kind === "logits") {
    const xt = pool.alloc(dtype, n);
    if (teacher.stride === vocab && teacher.logits.constructor === xt.constructor)
      kern.scale(teacher.logits, invT, xt, n);
    else {
      for (let r = 0; r < rows; r++) {
        const src = r * teacher.stride;
        for (let j = 0; j < vocab; j++) xt[r * vocab + j] = teacher.logits[src + j]! * invT;
      }
    }
    const Q = softmaxRows(kern, xt, rows, vocab, dtype);
    if (beta === 0) {
      // Forward KL, all on kernels: Σⱼ q (log q − log p) = Σⱼ q (t − s) + lse_s − lse_t (Σ q = 1); a = p − q.
      kern.scale(xs, -1, xs, n);
      kern.add(xt, xs, xt, n, n);
      kern.mul(Q.prob, xt, xt, n, n);
      total = kern.sum(xt, n);
      for (let r = 0; r < rows; r++) total += S.lse[r]! - Q.lse[r]!;
      if (a) {
        kern.scale(Q.prob, -1, Q.prob, n);
        kern.add(S.prob, Q.prob, a, n, n);
      }
    } else {
      for (let r = 0; r < rows; r++) {
        const o = r * vocab;
        const ls = S.lse[r]!;
        const lt = Q.lse[r]!;
        let d = 0;
        let pg = 0;
        for (let j = o; j < o + vocab; j++) {
          term(beta, S.prob[j]!, xs[j]! - ls, Q.prob[j]!, xt[j]! - lt, t);
          d += t.d;
          pg += t.a;
          if (a) a[j] = t.a;
        }
        total += d;
        c[r] = beta === 1 ? d : pg;
      }
    }
    pool.release(xt);
    pool.release(Q.prob);
    pool.release(Q.lse);
  } else {
    const k = teacher.k;
    const x = new Float64Array(k);
    const qk = new Float64Array(k);
    const lqk = new Float64Array(k);
    const pk = new Float64Array(k);
    const lpk = new Float64Array(k);
    if (beta > 0) {
      // The student renormalised over the teacher's k tokens; p is 0 elsewhere.
      pSaved = pool.alloc(dtype, n);
      pSaved.fill(0);
      a?.fill(0);
    }
    for (let r = 0; r < rows; r++) {
      const o = r * vocab;
      for (let i = 0; i < k; i++) x[i] = teacher.logProbs[r * k + i]! * invT;
      softmaxSmall(x, k, qk, lqk);
      let d = 0;
      if (beta === 0) {
        const ls = S.lse[r]!;
        if (a) for (let j = o; j < o + vocab; j++) a[j] = S.prob[j]!;
        for (let i = 0; i < k; i++) {
          const col = o + teacher.ids[r * k + i]!;
          d += qk[i]! * (lqk[i]! - (xs[col]! - ls));
          if (a) a[col] = a[col]! - qk[i]!;
        }
      } else {
        for (let i = 0; i < k; i++) x[i] = xs[o + teacher.ids[r * k + i]!]!;
        softmaxSmall(x, k, pk, lpk);
        let pg = 0;
        for (let i = 0; i < k; i++) {
          term(beta, pk[i]!, lpk[i]!, qk[i]!, lqk[i]!, t);
          d += t.d;
          pg += t.a;
          const col = o + teacher.ids[r * k + i]!;
          if (a) a[col] = t.a;
          pSaved[col] = pk[i]!;
        }
        c[r] = beta === 1 ? d : pg;
      }
      total += d;
    }
    if (pSaved !== S.prob) pool.release(S.prob);
  }
  pool.release(xs);
  pool.release(S.lse);
  const out = empty([], dtype);
  out.data[0] = rows === 0 ? 0 : total / rows;
  if (!a) {
    pool.release(pSaved);
    return out;
  }
  const p = pSaved;
  return record(out, {
    op: "generalizedJsd",
    inputs: [student],
    backward: (g) => {
      const gx = empty(student.shape, dtype);
      const scale = rows === 0 ? 0 : (g.data[0]! * invT) / rows;
      const d = gx.data;
      if (beta === 0) kern.scale(a, scale, d, n);
      else {
        for (let r = 0; r < rows; r++) {
          const cr = c[r]!;
          for (let j = r * vocab; j < (r + 1) * vocab; j++) d[j] = scale * (a[j]! - p[j]! * cr);
        }
      }
      accumulateGrad(student, gx, true);
    },
    release: () => {
      pool.release(a);
      pool.release(p);
    },
  });
}
