// The distillation loss: a mix of the hard-label cross-entropy and the divergence from the teacher's
// temperature-softened distribution (Hinton et al. 2015; the divergence is GKD's generalised JSD, which is
// forward KL at β = 0 and reverse KL at β = 1):
//   loss = α · CE(student, targets) + (1 − α) · T² · JSD_β(softmax(teacher/T) ‖ softmax(student/T)).
// T² keeps the soft term's gradient on the scale of the hard term's as T grows (its gradient scales as 1/T²).
import {
  add,
  crossEntropy,
  generalizedJsd,
  noGrad,
  scale,
  type TeacherTarget,
  type Tensor,
} from "../tensor/index.js";

export const DIVERGENCES = ["forward-kl", "reverse-kl", "jsd"] as const;
export type Divergence = (typeof DIVERGENCES)[number];

/** β of the generalised JSD that a divergence name stands for (jsd: the given β). */
export function betaOf(divergence: Divergence, jsdBeta: number): number {
  return divergence === "forward-kl" ? 0 : divergence === "reverse-kl" ? 1 : jsdBeta;
}

export interface DistillLossOptions {
  /** Weight of the hard-label cross-entropy, in [0, 1]. */
  alpha: number;
  /** 0: forward KL, 1: reverse KL, between: the generalised JSD. */
  beta: number;
  temperature: number;
  /** Targets equal to this count in no cross-entropy (e.g. student-generated tokens); default -1. */
  ignoreIndex?: number;
}

export interface DistillLoss {
  loss: Tensor;
  /** The two parts, as numbers (for the run's metrics). */
  hard: number;
  divergence: number;
}

/** The loss of one micro-batch: student logits [..., vocab], one target per row, the teacher's side. */
export function distillationLoss(
  logits: Tensor,
  targets: Int32Array,
  teacher: TeacherTarget,
  opts: DistillLossOptions,
): DistillLoss {
  const { alpha, beta, temperature } = opts;
  if (!(alpha >= 0 && alpha <= 1))
    throw new Error(`distillation loss: alpha must be in [0, 1], got ${alpha}`);
  // A part with weight 0 is still reported, but computed without recording a graph node.
  const part = <T>(weight: number, f: () => T): T => (weight === 0 ? noGrad(f) : f());
  const div = part(1 - alpha, () => generalizedJsd(logits, teacher, { beta, temperature }));
  const ce = part(alpha, () => crossEntropy(logits, targets, { ignoreIndex: opts.ignoreIndex ?? -1 }));
  const soft = scale(div, (1 - alpha) * temperature * temperature);
  const loss = alpha === 0 ? soft : alpha === 1 ? ce : add(scale(ce, alpha), soft);
  return { loss, hard: ce.item(), divergence: div.item() };
}
