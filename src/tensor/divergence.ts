// The generalised Jensen–Shannon divergence of GKD (Agarwal et al. 2024, eq. 1) between a teacher's and a
// student's temperature-softened next-token distributions, exactly as Hugging Face TRL's
// GKDTrainer.generalized_jsd_loss computes it:
//   β = 0: KL(teacher ‖ student) (forward KL);  β = 1: KL(student ‖ teacher) (reverse KL);
//   else:  β·KL(teacher ‖ m) + (1−β)·KL(student ‖ m), with m = β·teacher + (1−β)·student,
// each distribution softmax(logits / T), averaged over rows (TRL's "batchmean" over unmasked tokens).
//
// One fused op rather than a composition of exp/log/softmax ops: it works in the log domain throughout (the
// mixture's log is a log-sum-exp, as in TRL), so nothing underflows to log 0, and it keeps no [rows × vocab]
// intermediate; the backward recomputes each row. The gradient w.r.t. the student logits s, with p the
// student's and q the teacher's distribution over the support:
//   β = 0: (p − q)/T;   β = 1: p ⊙ (log p − log q − KL)/T;   else: p ⊙ (g − Σ p g)/T, g = (1−β)(log p − log m).
// The teacher is a constant (no gradient), given as logits or as its top-k (see TeacherTarget).
import type { FloatArray } from "../backend/backend.js";
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

/** Per-row scratch: the support's columns, student log-probs, teacher log-probs. */
interface Scratch {
  cols: Int32Array;
  logP: Float64Array;
  logQ: Float64Array;
}

function logSoftmaxInto(x: Float64Array, n: number): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) if (x[j]! > max) max = x[j]!;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(x[j]! - max);
  const lse = max + Math.log(sum);
  for (let j = 0; j < n; j++) x[j] = x[j]! - lse;
}

/** log(e^a + e^b) without overflow; −∞ when both are. */
function logAddExp(a: number, b: number): number {
  const hi = Math.max(a, b);
  if (hi === Number.NEGATIVE_INFINITY) return hi;
  return hi + Math.log(Math.exp(a - hi) + Math.exp(b - hi));
}

/**
 * Fills the scratch for row r and returns the support size n: the student's log-probs over it (logP) and
 * the teacher's (logQ, −∞ where the teacher has no mass).
 */
function fillRow(
  s: FloatArray,
  r: number,
  vocab: number,
  teacher: TeacherTarget,
  beta: number,
  invT: number,
  w: Scratch,
): number {
  const sRow = r * vocab;
  if (teacher.kind === "logits") {
    const tRow = r * teacher.stride;
    for (let j = 0; j < vocab; j++) {
      w.cols[j] = j;
      w.logP[j] = s[sRow + j]! * invT;
      w.logQ[j] = teacher.logits[tRow + j]! * invT;
    }
    logSoftmaxInto(w.logP, vocab);
    logSoftmaxInto(w.logQ, vocab);
    return vocab;
  }
  const k = teacher.k;
  const kRow = r * k;
  if (beta === 0) {
    for (let j = 0; j < vocab; j++) {
      w.cols[j] = j;
      w.logP[j] = s[sRow + j]! * invT;
      w.logQ[j] = Number.NEGATIVE_INFINITY;
    }
    logSoftmaxInto(w.logP, vocab);
    const kept = new Float64Array(k);
    for (let i = 0; i < k; i++) kept[i] = teacher.logProbs[kRow + i]! * invT;
    logSoftmaxInto(kept, k);
    for (let i = 0; i < k; i++) w.logQ[teacher.ids[kRow + i]!] = kept[i]!;
    return vocab;
  }
  for (let i = 0; i < k; i++) {
    const col = teacher.ids[kRow + i]!;
    w.cols[i] = col;
    w.logP[i] = s[sRow + col]! * invT;
    w.logQ[i] = teacher.logProbs[kRow + i]! * invT;
  }
  logSoftmaxInto(w.logP, k);
  logSoftmaxInto(w.logQ, k);
  return k;
}

/**
 * The divergence of one row (support size n, scratch filled); with `grad`, also writes
 * scale · ∂divergence/∂s into grad at the support's columns (the row's other columns are left alone).
 */
function rowDivergence(
  n: number,
  w: Scratch,
  beta: number,
  grad: FloatArray | null,
  gRow: number,
  scale: number,
): number {
  const { cols, logP, logQ } = w;
  let d = 0;
  if (beta === 0) {
    for (let j = 0; j < n; j++)
      if (logQ[j]! > Number.NEGATIVE_INFINITY) d += Math.exp(logQ[j]!) * (logQ[j]! - logP[j]!);
    if (grad)
      for (let j = 0; j < n; j++) grad[gRow + cols[j]!] = scale * (Math.exp(logP[j]!) - Math.exp(logQ[j]!));
    return d;
  }
  if (beta === 1) {
    for (let j = 0; j < n; j++) d += Math.exp(logP[j]!) * (logP[j]! - logQ[j]!);
    if (grad) {
      for (let j = 0; j < n; j++)
        grad[gRow + cols[j]!] = scale * Math.exp(logP[j]!) * (logP[j]! - logQ[j]! - d);
    }
    return d;
  }
  const logB = Math.log(beta);
  const log1B = Math.log(1 - beta);
  let pg = 0;
  for (let j = 0; j < n; j++) {
    const lp = logP[j]!;
    const lq = logQ[j]!;
    const lm = logAddExp(lp + log1B, lq + logB);
    const p = Math.exp(lp);
    const q = Math.exp(lq);
    d += beta * q * (lq - lm) + (1 - beta) * p * (lp - lm);
    // logQ is reused for g = (1−β)(log p − log m) once this column's term is summed.
    const g = (1 - beta) * (lp - lm);
    pg += p * g;
    logQ[j] = g;
  }
  if (grad) for (let j = 0; j < n; j++) grad[gRow + cols[j]!] = scale * Math.exp(logP[j]!) * (logQ[j]! - pg);
  return d;
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
  const width = teacher.kind === "topk" && beta > 0 ? teacher.k : vocab;
  const scratch = (): Scratch => ({
    cols: new Int32Array(vocab),
    logP: new Float64Array(width),
    logQ: new Float64Array(vocab),
  });
  const w = scratch();
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const n = fillRow(student.data, r, vocab, teacher, beta, invT, w);
    total += rowDivergence(n, w, beta, null, 0, 0);
  }
  const out = empty([], student.dtype);
  out.data[0] = rows === 0 ? 0 : total / rows;
  if (!needsGrad(student)) return out;
  return record(out, {
    op: "generalizedJsd",
    inputs: [student],
    backward: (g) => {
      const gx = empty(student.shape, student.dtype);
      gx.data.fill(0);
      const scale = rows === 0 ? 0 : (g.data[0]! * invT) / rows;
      const ws = scratch();
      for (let r = 0; r < rows; r++) {
        const n = fillRow(student.data, r, vocab, teacher, beta, invT, ws);
        rowDivergence(n, ws, beta, gx.data, r * vocab, scale);
      }
      accumulateGrad(student, gx, true);
    },
  });
}
