// Preference-optimisation (DPO family) and RL (GRPO) losses, composed from differentiable tensor ops so the
// gradient reaches the policy's logits through tokenLogProbs and sumRows. Each follows Hugging Face TRL line
// by line (the source is named at each function); docs/feedback.md gives the equations.
import {
  add,
  addScalar,
  clamp,
  exp,
  logSigmoid,
  mean,
  minimum,
  mul,
  relu,
  scale,
  square,
  sub,
  sum,
  sumRows,
  Tensor,
  tensor,
  tokenLogProbs,
} from "../tensor/index.js";

/** Log-probabilities without gradient: a tensor that does not require grad, or plain numbers. */
export type ConstLogProbs = Tensor | ArrayLike<number>;

function constValues(what: string, x: ConstLogProbs, n: number): ArrayLike<number> {
  if (x instanceof Tensor) {
    if (x.requiresGrad) throw new Error(`${what} must not require grad (they are a fixed reference)`);
    if (x.size !== n) throw new Error(`${what} has ${x.size} values, expected ${n}`);
    return x.data;
  }
  if (x.length !== n) throw new Error(`${what} has ${x.length} values, expected ${n}`);
  return x;
}

function checkFinite(what: string, values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]))
      throw new Error(`${what}[${i}] is ${values[i]}, expected a finite number`);
  }
}

const batchMean = (xs: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length === 0 ? 0 : s / xs.length;
};

// ---------------------------------------------------------------- sequence log-probs

export interface SequenceLogProbsOptions {
  /** Targets equal to this are not completion tokens (default -1). */
  ignoreIndex?: number;
  /** Divide each sum by the sequence's completion-token count (at least 1): TRL's log-probs for "ipo". */
  average?: boolean;
}

/**
 * log π(completion | prompt) per sequence: logits [B, T, V] and next-token targets (B·T, ignoreIndex on
 * prompt and padding positions) → [B], the sum over each sequence's completion tokens of log-softmax at the
 * target (TRL: selective_log_softmax masked and summed over the sequence), or its mean with `average`.
 */
export function sequenceLogProbs(
  logits: Tensor,
  targets: Int32Array,
  opts: SequenceLogProbsOptions = {},
): Tensor {
  if (logits.shape.length !== 3) {
    throw new Error(`sequenceLogProbs: logits must be [batch, time, vocab], got [${logits.shape.join(",")}]`);
  }
  const [batch, time] = logits.shape as [number, number, number];
  const ignoreIndex = opts.ignoreIndex ?? -1;
  const perSequence = sumRows(tokenLogProbs(logits, targets, ignoreIndex));
  if (!opts.average) return perSequence;
  const inverseCounts = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    let n = 0;
    for (let t = 0; t < time; t++) if (targets[b * time + t] !== ignoreIndex) n++;
    inverseCounts[b] = 1 / Math.max(n, 1);
  }
  return mul(perSequence, tensor(inverseCounts, [batch], { dtype: logits.dtype }));
}

// ---------------------------------------------------------------- DPO

export type DpoLossType = "sigmoid" | "ipo" | "hinge" | "robust";
export const DPO_LOSS_TYPES: readonly DpoLossType[] = ["sigmoid", "ipo", "hinge", "robust"];

export interface DpoOptions {
  /** Default "sigmoid" (the DPO paper's). */
  type?: DpoLossType;
  /** β: how far the policy may move from the reference (IPO's τ). Default 0.1, as in TRL. */
  beta?: number;
  /** ε, the assumed probability that a preference label is flipped (sigmoid: cDPO; robust: rDPO). Default 0. */
  labelSmoothing?: number;
}

/** Batch means, as TRL logs them (rewards/*, logps/*). */
export interface DpoMetrics {
  /** β·(π_chosen − ref_chosen). */
  chosenReward: number;
  /** β·(π_rejected − ref_rejected). */
  rejectedReward: number;
  /** chosenReward − rejectedReward. */
  rewardMargin: number;
  /** Fraction of pairs whose chosen reward is strictly above the rejected one. */
  rewardAccuracy: number;
  /** Policy log-probs of the chosen and rejected completions. */
  chosenLogProb: number;
  rejectedLogProb: number;
}

export interface DpoResult {
  /** Mean loss over the pairs (a scalar tensor with gradient). */
  loss: Tensor;
  metrics: DpoMetrics;
}

/**
 * The DPO-family loss of TRL's DPOTrainer.dpo_loss (v0.28, the last release with that function; TRL
 * v0.29 moved it into _compute_loss and dropped label smoothing from "sigmoid"). Policy log-probs are [B]
 * tensors with gradient; reference ones are constants. For "ipo" pass length-averaged log-probs
 * (sequenceLogProbs with `average`), as TRL computes them for that loss.
 */
export function dpoLoss(
  policyChosen: Tensor,
  policyRejected: Tensor,
  refChosen: ConstLogProbs,
  refRejected: ConstLogProbs,
  opts: DpoOptions = {},
): DpoResult {
  const type = opts.type ?? "sigmoid";
  const beta = opts.beta ?? 0.1;
  const eps = opts.labelSmoothing ?? 0;
  if (!DPO_LOSS_TYPES.includes(type))
    throw new Error(`dpoLoss: unknown type "${type}" (expected ${DPO_LOSS_TYPES.join(", ")})`);
  if (!(beta > 0) || !Number.isFinite(beta))
    throw new Error(`dpoLoss: beta must be a positive number, got ${beta}`);
  if (!(eps >= 0 && eps < 0.5)) throw new Error(`dpoLoss: labelSmoothing must be in [0, 0.5), got ${eps}`);
  if (eps > 0 && (type === "ipo" || type === "hinge"))
    throw new Error(`dpoLoss: labelSmoothing applies to "sigmoid" and "robust" only, not "${type}"`);
  const n = policyChosen.size;
  if (policyChosen.shape.length !== 1 || policyRejected.shape.length !== 1 || policyRejected.size !== n) {
    throw new Error(
      `dpoLoss: policy log-probs must be two [batch] tensors of one size, got [${policyChosen.shape.join(",")}] and [${policyRejected.shape.join(",")}]`,
    );
  }
  const refC = constValues("dpoLoss: refChosen", refChosen, n);
  const refR = constValues("dpoLoss: refRejected", refRejected, n);
  checkFinite("dpoLoss: refChosen", refC);
  checkFinite("dpoLoss: refRejected", refR);

  // logits = (π_c − π_r) − (ref_c − ref_r): the reference part is a constant.
  const refMargin = Float64Array.from({ length: n }, (_, i) => refC[i]! - refR[i]!);
  const z = sub(sub(policyChosen, policyRejected), tensor(refMargin, [n], { dtype: policyChosen.dtype }));
  let losses: Tensor;
  switch (type) {
    case "sigmoid":
    case "robust": {
      // sigmoid: −(1−ε)·log σ(βz) − ε·log σ(−βz);  robust: (−(1−ε)·log σ(βz) + ε·log σ(−βz)) / (1 − 2ε)
      const norm = type === "robust" ? 1 / (1 - 2 * eps) : 1;
      const flippedSign = type === "robust" ? 1 : -1;
      losses = scale(logSigmoid(scale(z, beta)), -(1 - eps) * norm);
      if (eps > 0) losses = add(losses, scale(logSigmoid(scale(z, -beta)), flippedSign * eps * norm));
      break;
    }
    case "hinge": // relu(1 − βz)
      losses = relu(addScalar(scale(z, -beta), 1));
      break;
    case "ipo": // (z − 1/(2β))²
      losses = square(addScalar(z, -1 / (2 * beta)));
      break;
  }

  const pc = policyChosen.data;
  const pr = policyRejected.data;
  const chosenRewards = Float64Array.from({ length: n }, (_, i) => beta * (pc[i]! - refC[i]!));
  const rejectedRewards = Float64Array.from({ length: n }, (_, i) => beta * (pr[i]! - refR[i]!));
  const chosenReward = batchMean(chosenRewards);
  const rejectedReward = batchMean(rejectedRewards);
  return {
    loss: mean(losses),
    metrics: {
      chosenReward,
      rejectedReward,
      rewardMargin: chosenReward - rejectedReward,
      rewardAccuracy: batchMean(chosenRewards.map((c, i) => (c > rejectedRewards[i]! ? 1 : 0))),
      chosenLogProb: batchMean(pc),
      rejectedLogProb: batchMean(pr),
    },
  };
}

// ---------------------------------------------------------------- GRPO

export interface GroupAdvantageOptions {
  /** Divide by the group's standard deviation (TRL scale_rewards="group", the default); false: "none". */
  scale?: boolean;
}

/**
 * GRPO's advantages (TRL GRPOTrainer._generate_and_score_completions): rewards come in consecutive groups
 * of groupSize completions of one prompt; A = r − mean(group), divided by (std(group) + 1e-4) with `scale`.
 * The std is the unbiased one (Bessel's correction, TRL's nanstd); a group of one has std 0.
 */
export function groupAdvantages(
  rewards: ArrayLike<number>,
  groupSize: number,
  opts: GroupAdvantageOptions = {},
): Float64Array {
  if (!Number.isInteger(groupSize) || groupSize < 1)
    throw new Error(`groupAdvantages: groupSize must be a positive integer, got ${groupSize}`);
  if (rewards.length % groupSize !== 0) {
    throw new Error(
      `groupAdvantages: ${rewards.length} rewards do not split into groups of ${groupSize} (one group per prompt)`,
    );
  }
  checkFinite("groupAdvantages: rewards", rewards);
  const scaleByStd = opts.scale ?? true;
  const out = new Float64Array(rewards.length);
  for (let g0 = 0; g0 < rewards.length; g0 += groupSize) {
    let m = 0;
    for (let i = 0; i < groupSize; i++) m += rewards[g0 + i]!;
    m /= groupSize;
    let ss = 0;
    for (let i = 0; i < groupSize; i++) ss += (rewards[g0 + i]! - m) ** 2;
    const std = groupSize > 1 ? Math.sqrt(ss / (groupSize - 1)) : 0;
    for (let i = 0; i < groupSize; i++) {
      const a = rewards[g0 + i]! - m;
      out[g0 + i] = scaleByStd ? a / (std + 1e-4) : a;
    }
  }
  return out;
}

export type GrpoLossType = "grpo" | "bnpo" | "dr_grpo";
export const GRPO_LOSS_TYPES: readonly GrpoLossType[] = ["grpo", "bnpo", "dr_grpo"];

export interface GrpoInputs {
  /** The policy's per-token log-probs of the completions, [B, T], with gradient (tokenLogProbs of logits [B, T, V]). */
  logProbs: Tensor;
  /** Log-probs of the policy that sampled the completions, [B·T]; omitted: logProbs' own values (one update per batch). */
  oldLogProbs?: ConstLogProbs;
  /** The reference model's per-token log-probs [B·T]; needed when beta > 0. */
  refLogProbs?: ConstLogProbs;
  /** One advantage per sequence [B] (groupAdvantages). */
  advantages: ArrayLike<number>;
  /** 1 for completion tokens, 0 for padding, [B·T]. */
  mask: ArrayLike<number>;
}

export interface GrpoOptions {
  /** Clip range: the ratio is clipped to [1 − ε, 1 + ε]. Default 0.2, as in TRL. */
  epsilon?: number;
  /** Weight of the per-token KL to the reference; 0 (TRL's default) skips it. */
  beta?: number;
  /** How the token losses are averaged (default "grpo": per sequence, then over sequences). */
  lossType?: GrpoLossType;
  /** "dr_grpo" divides by B·maxCompletionLength (default T). */
  maxCompletionLength?: number;
}

/** Masked means over completion tokens, as TRL logs them. */
export interface GrpoMetrics {
  /** Mean k3 KL to the reference (null when no reference log-probs were given). */
  kl: number | null;
  /** Fraction of tokens whose ratio was clipped where clipping binds: below 1 − ε with A < 0, or above 1 + ε with A > 0 (TRL's clip_ratio/region_mean). */
  clipFraction: number;
  clipLow: number;
  clipHigh: number;
}

export interface GrpoResult {
  loss: Tensor;
  metrics: GrpoMetrics;
}

/**
 * TRL GRPOTrainer._compute_loss, token-level importance sampling: with ratio = exp(logp − old_logp),
 * per-token loss = −min(ratio·A, clip(ratio, 1 − ε, 1 + ε)·A) + β·(exp(ref − logp) − (ref − logp) − 1),
 * averaged over completion tokens as lossType says.
 */
export function grpoLoss(inputs: GrpoInputs, opts: GrpoOptions = {}): GrpoResult {
  const { logProbs, advantages, mask } = inputs;
  const epsilon = opts.epsilon ?? 0.2;
  const beta = opts.beta ?? 0;
  const lossType = opts.lossType ?? "grpo";
  if (logProbs.shape.length !== 2)
    throw new Error(`grpoLoss: logProbs must be [batch, time], got [${logProbs.shape.join(",")}]`);
  const [batch, time] = logProbs.shape as [number, number];
  const n = batch * time;
  if (!(epsilon >= 0 && epsilon < 1)) throw new Error(`grpoLoss: epsilon must be in [0, 1), got ${epsilon}`);
  if (!(beta >= 0) || !Number.isFinite(beta)) throw new Error(`grpoLoss: beta must be >= 0, got ${beta}`);
  if (!GRPO_LOSS_TYPES.includes(lossType))
    throw new Error(`grpoLoss: unknown lossType "${lossType}" (expected ${GRPO_LOSS_TYPES.join(", ")})`);
  const maxLen = opts.maxCompletionLength ?? time;
  if (!Number.isInteger(maxLen) || maxLen < 1)
    throw new Error(`grpoLoss: maxCompletionLength must be a positive integer, got ${maxLen}`);
  if (advantages.length !== batch)
    throw new Error(`grpoLoss: ${advantages.length} advantages for ${batch} sequences`);
  if (mask.length !== n) throw new Error(`grpoLoss: mask has ${mask.length} values, expected ${n}`);
  checkFinite("grpoLoss: advantages", advantages);
  const dtype = logProbs.dtype;
  const old =
    inputs.oldLogProbs === undefined
      ? logProbs.data
      : constValues("grpoLoss: oldLogProbs", inputs.oldLogProbs, n);
  const ref =
    inputs.refLogProbs === undefined ? null : constValues("grpoLoss: refLogProbs", inputs.refLogProbs, n);
  if (beta > 0 && ref === null) throw new Error("grpoLoss: beta > 0 needs refLogProbs");
  const constant = (values: ArrayLike<number>) => tensor(values, [batch, time], { dtype });
  const perToken = (f: (b: number, t: number) => number) =>
    constant(Float64Array.from({ length: n }, (_, i) => f(Math.floor(i / time), i % time)));

  const adv = perToken((b) => advantages[b]!);
  const ratio = exp(sub(logProbs, constant(old)));
  const unclipped = mul(ratio, adv);
  const clipped = mul(clamp(ratio, 1 - epsilon, 1 + epsilon), adv);
  let tokenLoss = scale(minimum(unclipped, clipped), -1);
  if (beta > 0) {
    const d = sub(constant(ref!), logProbs); // ref − logp
    const kl = addScalar(sub(exp(d), d), -1);
    tokenLoss = add(tokenLoss, scale(kl, beta));
  }
  const masked = mul(tokenLoss, constant(mask));
  let maskTotal = 0;
  for (let i = 0; i < n; i++) maskTotal += mask[i]!;
  let loss: Tensor;
  if (lossType === "grpo") {
    const inverseLengths = Float64Array.from({ length: batch }, (_, b) => {
      let len = 0;
      for (let t = 0; t < time; t++) len += mask[b * time + t]!;
      return 1 / Math.max(len, 1);
    });
    loss = mean(mul(sumRows(masked), tensor(inverseLengths, [batch], { dtype })));
  } else if (lossType === "bnpo") {
    loss = scale(sum(masked), 1 / Math.max(maskTotal, 1));
  } else {
    loss = scale(sum(masked), 1 / (batch * maxLen));
  }

  // Metrics from the values (no gradient), masked means over completion tokens.
  const r = ratio.data;
  let low = 0;
  let high = 0;
  let klSum = 0;
  for (let i = 0; i < n; i++) {
    const m = mask[i]!;
    const a = advantages[Math.floor(i / time)]!;
    if (r[i]! < 1 - epsilon && a < 0) low += m;
    if (r[i]! > 1 + epsilon && a > 0) high += m;
    if (ref) {
      const d = ref[i]! - logProbs.data[i]!;
      klSum += m * (Math.exp(d) - d - 1);
    }
  }
  const denom = Math.max(maskTotal, 1);
  return {
    loss,
    metrics: {
      kl: ref ? klSum / denom : null,
      clipFraction: (low + high) / denom,
      clipLow: low / denom,
      clipHigh: high / denom,
    },
  };
}
