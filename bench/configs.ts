// The benchmark's model configs and run settings, shared by the orchestrator (bench/index.ts) and the
// afterscale child (bench/train.ts); the PyTorch and llama.cpp children receive the same numbers as JSON.
import { type ModelConfig, mlpHidden, parseModelConfig } from "../src/nn/index.js";

export const CONFIG_NAMES = ["tiny", "small", "medium", "char"] as const;
export type ConfigName = (typeof CONFIG_NAMES)[number];

/** Tokens per training step (batch × context), as the issue fixes it. */
export const TOKENS_PER_STEP = 8192;

const shapes: Record<
  ConfigName,
  { dModel: number; layers: number; heads: number; context: number; vocab: number }
> = {
  tiny: { dModel: 128, layers: 4, heads: 4, context: 256, vocab: 4096 },
  small: { dModel: 256, layers: 6, heads: 8, context: 256, vocab: 4096 },
  medium: { dModel: 384, layers: 8, heads: 6, context: 512, vocab: 4096 },
  char: { dModel: 384, layers: 6, heads: 6, context: 256, vocab: 256 },
};

/** Llama, SwiGLU hidden = 8/3·d rounded up to a multiple of 32, untied head, no biases, no dropout. */
export function benchModelConfig(name: ConfigName): ModelConfig {
  const s = shapes[name];
  return parseModelConfig({
    family: "llama",
    vocab: s.vocab,
    dModel: s.dModel,
    layers: s.layers,
    heads: s.heads,
    kvHeads: s.heads,
    context: s.context,
    mlpRatio: 8 / 3,
    normEps: 1e-5,
    ropeTheta: 10000,
    dropout: 0,
    tie: false,
  });
}

/** Everything a child needs to run one config; written as JSON for the Python and llama.cpp children. */
export interface BenchJob {
  name: ConfigName;
  vocab: number;
  dModel: number;
  layers: number;
  heads: number;
  hidden: number;
  context: number;
  batch: number;
  threads: number;
  warmupSteps: number;
  timedSteps: number;
  /** Prefill: one sequence of `context` tokens, repeated this many times (median). */
  prefillReps: number;
  /** Decode: a prompt of this many tokens, then `decodeTokens` greedy tokens one at a time. */
  decodePrompt: number;
  decodeTokens: number;
  seed: number;
  /** Training precision (bf16-mixed: autocast on the PyTorch side); a bf16-mixed job measures training only. */
  precision?: "fp32" | "bf16-mixed";
  /** Training only (no prefill, decode or GGUF), as a bf16-mixed job always is. */
  trainOnly?: boolean;
  /** The llama.cpp child's GGUF file (afterscale's export of the same weights). */
  modelPath?: string;
}

export function benchJob(
  name: ConfigName,
  opts: { threads: number; warmupSteps: number; timedSteps: number; decodeTokens: number },
): BenchJob {
  const c = benchModelConfig(name);
  return {
    name,
    vocab: c.vocab,
    dModel: c.dModel,
    layers: c.layers,
    heads: c.heads,
    hidden: mlpHidden(c),
    context: c.context,
    batch: TOKENS_PER_STEP / c.context,
    threads: opts.threads,
    warmupSteps: opts.warmupSteps,
    timedSteps: opts.timedSteps,
    prefillReps: 3,
    decodePrompt: 16,
    decodeTokens: opts.decodeTokens,
    seed: 1234,
  };
}

/** Figures one side reports for one config (absent: that side does not measure it). */
export interface SideResult {
  trainTokensPerSecond?: number;
  trainStepSeconds?: number[];
  prefillTokensPerSecond?: number;
  decodeTokensPerSecond?: number;
  /** Peak resident set of the child process after training (MiB). */
  peakRssTrainMiB?: number;
  /** Peak resident set at the end of the child (MiB). */
  peakRssMiB?: number;
  loss?: number[];
  note?: string;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}
