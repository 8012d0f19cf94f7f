// IsoFLOP sweeps: plan a grid of (compute budget C, model size N) runs, run it with the trainer, record
// every run in the SQLite registry under one sweep id, and turn the finished runs into scaling points.
//
// Plan. Shapes come from a ladder of (width, depth) configs of one family. For each budget C the planner
// guesses the optimum as the shape whose tokens-per-parameter D/N is nearest a prior (20, Chinchilla) and
// takes `sizesPerBudget` shapes log-spaced over `spread`× around it. Each run trains for
// D = C / flopsPerToken tokens, with flopsPerToken the model's own count (matmuls, output head and
// attention), so a budget is what the machine actually spends; steps = round(D / tokens per step).
//
// N. A point's N is the number of parameters a token is multiplied through (every matrix but the input
// embedding, plus the output head even when tied): (flopsPerToken − attention) / 6. It is what makes
// C ≈ 6ND hold for these small models, whose vocabulary matrices are a large share of all weights.
//
// State. The plan lives in <root>/sweeps/<id>.json; the runs in <root>/<id>-… with their checkpoints, and
// in <root>/registry.sqlite with sweep_id = id. Running a sweep again skips finished runs and resumes an
// interrupted one from its newest checkpoint, so a sweep stopped at any point continues where it stopped.
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { readDatasetMeta } from "../data/index.js";
import {
  createModel,
  decayGroups,
  forward,
  type ModelConfig,
  parameterCounts,
  trainingFlopsPerToken,
} from "../nn/index.js";
import { AdamW } from "../optim/index.js";
import { type QueueSummary, type QueueTask, recordOutcome, redactUrl, runOnQueue } from "../queue/index.js";
import { crossEntropy, tidy } from "../tensor/index.js";
import {
  defaultRoot,
  type EvalMetrics,
  modelConfigFor,
  parseTrainConfig,
  Registry,
  type RunRecord as RegistryRun,
  resolveDataDir,
  runDirOf,
  type TrainConfigInput,
  type TrainResult,
  tokensPerStep,
  train,
  trainDefaults,
} from "../train/index.js";
import {
  BUILTIN_DATASETS,
  excludeTopLoss,
  loadPoints,
  pointFromRecord,
  type ScalingPoint,
} from "./points.js";

export const SWEEP_FORMAT = "afterscale-sweep";
export type Family = "gpt2" | "llama";

/** One (width, depth) model shape. */
export interface Shape {
  dModel: number;
  layers: number;
  heads: number;
  kvHeads: number;
}

export interface PlannedRun {
  /** Run name, also the run folder under root. */
  name: string;
  /** Nominal budget (FLOPs) of this run's IsoFLOP group. */
  budget: number;
  shape: Shape;
  /** Parameters a token is multiplied through: (flopsPerToken − attention) / 6 (see the header). */
  N: number;
  parameters: { total: number; nonEmbedding: number };
  flopsPerToken: number;
  steps: number;
  /** Tokens trained: steps × tokens per step. */
  D: number;
  /** Training FLOPs actually spent: flopsPerToken × D. */
  C: number;
  /** The trainer config of this run (shared settings + shape + steps + name). */
  config: TrainConfigInput;
}

export interface SweepPlan {
  format: typeof SWEEP_FORMAT;
  version: 1;
  sweepId: string;
  createdAt: string;
  family: Family;
  budgets: number[];
  sizesPerBudget: number;
  spread: number;
  tokensPerParam: number;
  /** Vocabulary and training tokens of the dataset the runs train on. */
  vocab: number;
  trainTokens: number;
  /** Shared trainer settings (everything but the shape, steps and name). */
  train: TrainConfigInput;
  runs: PlannedRun[];
  warnings: string[];
  /** The run queue (its URL, password redacted) the sweep was put on: its runs belong to that queue's workers. */
  queue?: string;
}

export interface PlanOptions {
  sweepId: string;
  budgets: readonly number[];
  family?: Family;
  sizesPerBudget?: number;
  /** Ratio of the largest to the smallest N within a budget (default 16: a quarter to 4× the guess). */
  spread?: number;
  /** Prior for the optimum's tokens per parameter (default 20). */
  tokensPerParam?: number;
  /** Shared trainer settings; root, data, vocab, batchSize, context … (shape fields are not allowed). */
  train?: TrainConfigInput;
  /** Warmup as a fraction of each run's steps when train.warmupSteps is not given (default 0.05). */
  warmupFraction?: number;
  /** Evaluations per run when train.evalInterval is not given (default 5); checkpoints likewise (10). */
  evalsPerRun?: number;
  checkpointsPerRun?: number;
  log?: (message: string) => void;
}

/** Fields the sweep sets per run (family and root come from its own options). */
export const SWEEP_OWNED_FIELDS = [
  "model",
  "family",
  "dModel",
  "layers",
  "heads",
  "kvHeads",
  "steps",
  "tokens",
  "runName",
] as const;

export function validateSweepId(id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) {
    throw new Error(
      `sweep id ${JSON.stringify(id)}: use letters, digits, '.', '_' and '-', not starting with . - _`,
    );
  }
  return id;
}

/** A fresh sweep id from the UTC time: sweep-YYYYMMDD-HHMMSS. */
export function newSweepId(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `sweep-${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** Head size grows with width, as in the GPT-2 / Llama ladders: 16 below 128, 32 below 512, else 64. */
function headSize(dModel: number): number {
  return dModel < 128 ? 16 : dModel < 512 ? 32 : 64;
}

/**
 * The shape ladder: widths in steps of 16 (16 … 1024), depths 1 … 32 with aspect ratio dModel/layers in
 * [16, 64]. Dense enough that any N in its range has a shape within ~20%.
 */
export function shapeLadder(): Shape[] {
  const shapes: Shape[] = [];
  for (let d = 16; d <= 1024; d += 16) {
    const hs = headSize(d);
    if (d % hs !== 0) continue;
    for (let layers = 1; layers <= 32; layers++) {
      const aspect = d / layers;
      if (aspect < 16 || aspect > 64) continue;
      shapes.push({ dModel: d, layers, heads: d / hs, kvHeads: d / hs });
    }
  }
  return shapes;
}

/**
 * The model config a run of this shape trains: built exactly as the trainer builds it (modelConfigFor), so
 * shared settings such as mlpRatio or tie carry into N and FLOPs per token.
 */
export function shapeConfig(shape: Shape, shared: TrainConfigInput, vocab: number): ModelConfig {
  const c = parseTrainConfig({ ...shared, ...shape, runName: "shape" });
  return modelConfigFor(c, vocab);
}

/** N as this module defines it: parameters in the matmuls a token passes through (header). */
export function computeParams(c: ModelConfig): number {
  return (trainingFlopsPerToken(c) - 6 * c.layers * c.context * c.dModel) / 6;
}

function budgetLabel(C: number): string {
  const [m, e] = C.toExponential(2).split("e");
  return `${String(Number(m))}e${Number(e)}`;
}

interface Candidate {
  shape: Shape;
  config: ModelConfig;
  N: number;
  flopsPerToken: number;
}

/** Plans an IsoFLOP grid without training anything (reads the dataset's vocabulary, preparing a built-in corpus once). */
export function planSweep(options: PlanOptions): SweepPlan {
  const sweepId = validateSweepId(options.sweepId);
  const family = options.family ?? "llama";
  const sizes = options.sizesPerBudget ?? 5;
  const spread = options.spread ?? 16;
  const tpp = options.tokensPerParam ?? 20;
  if (!(Number.isInteger(sizes) && sizes >= 1))
    throw new Error(`sizes per budget must be an integer ≥ 1, got ${sizes}`);
  if (!(spread >= 1)) throw new Error(`spread must be ≥ 1, got ${spread}`);
  if (!(tpp > 0)) throw new Error(`tokens per parameter must be positive, got ${tpp}`);
  if (options.budgets.length === 0) throw new Error("sweep: give at least one compute budget");
  for (const C of options.budgets) {
    if (!(Number.isFinite(C) && C > 0))
      throw new Error(`sweep: budgets must be positive FLOP counts, got ${C}`);
  }
  const budgets = [...new Set(options.budgets)].sort((a, b) => a - b);
  const shared: Record<string, unknown> = { ...(options.train ?? {}) };
  for (const k of SWEEP_OWNED_FIELDS) {
    if (shared[k] !== undefined)
      throw new Error(`sweep: ${k} is chosen by the sweep for each run; do not set it`);
  }
  shared.family = family;
  // Validate the shared settings (and resolve root) once, with a placeholder name.
  const base = parseTrainConfig({ ...shared, runName: `${sweepId}-plan` });
  shared.root = base.root;
  const dataDir = resolveDataDir(base, options.log ?? (() => {}));
  const meta = readDatasetMeta(dataDir);
  const vocab = meta.vocabSize;
  const perStep = tokensPerStep(base);

  const candidates: Candidate[] = shapeLadder().map((shape) => {
    const config = shapeConfig(shape, shared as TrainConfigInput, vocab);
    return { shape, config, N: computeParams(config), flopsPerToken: trainingFlopsPerToken(config) };
  });
  candidates.sort((a, b) => a.N - b.N);

  const warnings: string[] = [];
  const runs: PlannedRun[] = [];
  for (const C of budgets) {
    // The guess: the shape whose D/N is nearest the prior.
    const center = candidates.reduce((best, c) =>
      Math.abs(Math.log(C / c.flopsPerToken / c.N / tpp)) <
      Math.abs(Math.log(C / best.flopsPerToken / best.N / tpp))
        ? c
        : best,
    );
    // Log-spaced targets around the guess; near an end of the ladder the window shifts inward so that
    // the sizes stay distinct and spread (a lopsided grid still brackets the optimum, a collapsed one does not).
    const half = Math.log(spread) / 2;
    const lowest = Math.log(candidates[0]!.N);
    const highest = Math.log(candidates[candidates.length - 1]!.N);
    let middle = Math.log(center.N);
    if (middle - half < lowest) middle = Math.min(lowest + half, (lowest + highest) / 2);
    if (middle + half > highest) middle = Math.max(highest - half, (lowest + highest) / 2);
    const chosen: Candidate[] = [];
    for (let k = 0; k < sizes; k++) {
      const exponent = sizes === 1 ? 0 : k / (sizes - 1) - 0.5;
      const target = Math.exp(middle + 2 * half * exponent);
      const pick = candidates
        .filter((c) => !chosen.includes(c))
        .reduce((best, c) =>
          Math.abs(Math.log(c.N / target)) < Math.abs(Math.log(best.N / target)) ? c : best,
        );
      chosen.push(pick);
    }
    chosen.sort((a, b) => a.N - b.N);
    for (const c of chosen) {
      const steps = Math.max(1, Math.round(C / c.flopsPerToken / perStep));
      const D = steps * perStep;
      const name = `${sweepId}-C${budgetLabel(C)}-d${c.shape.dModel}L${c.shape.layers}`;
      const config: Record<string, unknown> = {
        ...shared,
        ...c.shape,
        steps,
        runName: name,
      };
      if (shared.warmupSteps === undefined) {
        config.warmupSteps = Math.max(1, Math.round((options.warmupFraction ?? 0.05) * steps));
      }
      if (shared.evalInterval === undefined) {
        config.evalInterval = Math.max(1, Math.ceil(steps / (options.evalsPerRun ?? 5)));
      }
      if (shared.checkpointInterval === undefined) {
        config.checkpointInterval = Math.max(1, Math.ceil(steps / (options.checkpointsPerRun ?? 10)));
      }
      parseTrainConfig(config); // every run's config must be valid before anything trains
      if (steps < 10) warnings.push(`${name}: only ${steps} optimizer steps; its loss will say little`);
      runs.push({
        name,
        budget: C,
        shape: c.shape,
        N: c.N,
        parameters: parameterCounts(c.config),
        flopsPerToken: c.flopsPerToken,
        steps,
        D,
        C: c.flopsPerToken * D,
        config: config as TrainConfigInput,
      });
    }
    if (Math.abs(middle - Math.log(center.N)) > 1e-9) {
      warnings.push(
        `budget ${budgetLabel(C)}: the guessed optimum (N≈${human(center.N)}) is near the end of the shape ladder; ` +
          "the sizes were shifted inward",
      );
    }
  }
  const maxD = Math.max(...runs.map((r) => r.D));
  if (maxD > meta.train.tokens) {
    warnings.push(
      `the longest run trains on ${maxD.toLocaleString("en-US")} tokens, ${(maxD / meta.train.tokens).toFixed(1)}× the ` +
        `${meta.train.tokens.toLocaleString("en-US")} training tokens: data repeats, which bends the scaling law`,
    );
  }
  return {
    format: SWEEP_FORMAT,
    version: 1,
    sweepId,
    createdAt: new Date().toISOString(),
    family,
    budgets,
    sizesPerBudget: sizes,
    spread,
    tokensPerParam: tpp,
    vocab,
    trainTokens: meta.train.tokens,
    train: shared as TrainConfigInput,
    runs,
    warnings,
  };
}

// ---------------------------------------------------------------- plan files

export function sweepPlanPath(root: string, sweepId: string): string {
  return join(resolve(root), "sweeps", `${validateSweepId(sweepId)}.json`);
}

export function saveSweepPlan(plan: SweepPlan): string {
  const path = sweepPlanPath(String(plan.train.root), plan.sweepId);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(plan, null, 2)}\n`);
  renameSync(tmp, path);
  return path;
}

export function loadSweepPlan(root: string, sweepId: string): SweepPlan {
  const path = sweepPlanPath(root, sweepId);
  if (!existsSync(path))
    throw new Error(`no sweep ${JSON.stringify(sweepId)} under ${resolve(root)} (no ${path})`);
  const plan = JSON.parse(readFileSync(path, "utf8")) as SweepPlan;
  if (plan.format !== SWEEP_FORMAT || plan.version !== 1)
    throw new Error(`${path}: not an afterscale sweep plan`);
  return plan;
}

export function sweepExists(root: string, sweepId: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(sweepId) && existsSync(sweepPlanPath(root, sweepId));
}

/** Why a stored plan and a new one differ (run names, steps, shared settings), or null when they agree. */
export function planDifference(a: SweepPlan, b: SweepPlan): string | null {
  const key = (p: SweepPlan) => JSON.stringify(p.runs.map((r) => [r.name, r.steps, r.config]));
  if (JSON.stringify(a.train) !== JSON.stringify(b.train)) return "the shared trainer settings differ";
  if (key(a) !== key(b)) return "the runs (names, shapes or steps) differ";
  return null;
}

// ---------------------------------------------------------------- wall-time estimate

export interface ThroughputProbe {
  /** What the estimate rests on, in words (printed with the plan). */
  method: string;
  /** Measured training FLOP/s per probed model size. */
  samples: { N: number; flopsPerSecond: number }[];
}

/**
 * Times real training steps (forward, backward, AdamW) of the smallest and the largest model planned:
 * two warm-up steps (first-touch allocations, JIT), then steps until `seconds` have passed (at least 3,
 * at most 200), so that tiny models are not timed on a handful of milliseconds.
 */
export function probeThroughput(plan: SweepPlan, seconds = 0.75): ThroughputProbe {
  const first = plan.runs.reduce((a, b) => (b.N < a.N ? b : a));
  const last = plan.runs.reduce((a, b) => (b.N > a.N ? b : a));
  const c = parseTrainConfig({ ...plan.train, runName: `${plan.sweepId}-probe` });
  const samples: ThroughputProbe["samples"] = [];
  let timedSteps = 0;
  for (const run of first === last ? [first] : [first, last]) {
    const config = shapeConfig(run.shape, plan.train, plan.vocab);
    const model = createModel(config, 1);
    const groups = decayGroups(model);
    const opt = new AdamW([{ params: groups.decay }, { params: groups.noDecay, weightDecay: 0 }], {
      lr: 1e-4,
    });
    const n = c.batchSize * c.context;
    const ids = Int32Array.from({ length: n }, (_, i) => (i * 7919) % plan.vocab);
    const targets = Int32Array.from({ length: n }, (_, i) => (i * 104729 + 1) % plan.vocab);
    const step = () => {
      tidy(() => {
        crossEntropy(forward(model, ids, c.batchSize, c.context), targets).backward();
      });
      opt.update();
      opt.zeroGrad();
    };
    step();
    step();
    const t0 = performance.now();
    let steps = 0;
    while (steps < 3 || (steps < 200 && performance.now() - t0 < seconds * 1000)) {
      step();
      steps++;
    }
    const elapsed = (performance.now() - t0) / 1000;
    timedSteps += steps;
    samples.push({ N: run.N, flopsPerSecond: (run.flopsPerToken * n * steps) / elapsed });
  }
  return {
    method: `measured: ${timedSteps} timed training steps of the smallest and largest model on this machine`,
    samples,
  };
}

/** FLOP/s at size N: log-linear between the probed sizes, constant beyond them. */
function rateAt(probe: ThroughputProbe, N: number): number {
  const s = probe.samples;
  if (s.length === 1 || N <= s[0]!.N) return s[0]!.flopsPerSecond;
  if (N >= s[s.length - 1]!.N) return s[s.length - 1]!.flopsPerSecond;
  const t = Math.log(N / s[0]!.N) / Math.log(s[1]!.N / s[0]!.N);
  return Math.exp((1 - t) * Math.log(s[0]!.flopsPerSecond) + t * Math.log(s[1]!.flopsPerSecond));
}

/** Estimated seconds of one run: training FLOPs plus its evaluations (forward only: a third of a step). */
export function estimateRunSeconds(run: PlannedRun, probe: ThroughputProbe): number {
  const c = parseTrainConfig(run.config);
  const evals = c.evalInterval > 0 ? Math.ceil(run.steps / c.evalInterval) : 1;
  const evalFlops = evals * c.evalBatches * c.batchSize * c.context * (run.flopsPerToken / 3);
  return (run.C + evalFlops) / rateAt(probe, run.N);
}

// ---------------------------------------------------------------- formatting

function sci(x: number, digits = 2): string {
  return x.toExponential(digits).replace("e+", "e");
}

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The plan as a table, with the wall-time estimate when a probe is given. */
export function formatPlan(plan: SweepPlan, probe?: ThroughputProbe, status?: Map<string, string>): string {
  const c = parseTrainConfig({ ...plan.train, runName: `${plan.sweepId}-plan` });
  const lines: string[] = [];
  lines.push(
    `sweep ${plan.sweepId}: ${plan.runs.length} runs, ${plan.budgets.length} budgets × ${plan.sizesPerBudget} sizes, ` +
      `${plan.family}, data ${String(plan.train.data ?? trainDefaults.data)} (vocab ${plan.vocab}, ` +
      `${human(plan.trainTokens)} training tokens), ${tokensPerStep(c)} tokens/step`,
  );
  lines.push(
    "N = parameters in the matmuls a token passes through (non-embedding + output head); C = FLOPs/token × D",
  );
  const header = ["run", "budget C", "d×L", "N", "total params", "steps", "tokens D", "D/N", "FLOPs C"];
  if (probe) header.push("est. time");
  if (status) header.push("status");
  const rows = plan.runs.map((r) => {
    const row = [
      r.name,
      sci(r.budget),
      `${r.shape.dModel}×${r.shape.layers}`,
      human(r.N),
      human(r.parameters.total),
      String(r.steps),
      human(r.D),
      (r.D / r.N).toFixed(1),
      sci(r.C),
    ];
    if (probe) row.push(formatDuration(estimateRunSeconds(r, probe)));
    if (status) row.push(status.get(r.name) ?? "pending");
    return row;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join("  ");
  lines.push(line(header), ...rows.map(line));
  if (probe) {
    const total = plan.runs.reduce((s, r) => s + estimateRunSeconds(r, probe), 0);
    const rates = probe.samples.map(
      (s) => `${(s.flopsPerSecond / 1e9).toFixed(2)} GFLOP/s at N=${human(s.N)}`,
    );
    lines.push(`estimated wall time: ${formatDuration(total)} (${probe.method}: ${rates.join(", ")})`);
  }
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  return lines.join("\n");
}

// ---------------------------------------------------------------- running

export interface SweepRunSummary {
  /** Runs already finished before this call, and runs finished by it. */
  skipped: string[];
  completed: string[];
  /** The run that was stopped (signal or abort), if any; the sweep stops there. */
  interrupted: string | null;
}

export interface RunSweepOptions {
  /** Stop the sweep (checkpointing the current run) when aborted. */
  signal?: AbortSignal;
  log?: (message: string) => void;
  quiet?: boolean;
  /** Live progress bar of each run (default off: plain lines). */
  progressBar?: boolean;
  /** Called after each run finishes (tests use it to interrupt at a chosen point). */
  onRunFinished?: (run: PlannedRun, result: TrainResult) => void;
  onEval?: (run: PlannedRun, m: EvalMetrics) => void;
}

/** Per-eval validation losses of a run, read back from its metrics.jsonl. */
export function evalHistory(runDir: string): { step: number; valLoss: number; tokens: number }[] {
  const path = join(runDir, "metrics.jsonl");
  if (!existsSync(path)) return [];
  const out: { step: number; valLoss: number; tokens: number }[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    try {
      const m = JSON.parse(line) as {
        step: number;
        valLoss?: number;
        valLossEstimate?: number;
        tokens: number;
      };
      // valLossEstimate: the periodic estimates; valLoss: the whole split after the last step.
      const valLoss = m.valLoss ?? m.valLossEstimate;
      if (typeof valLoss === "number") out.push({ step: m.step, valLoss, tokens: m.tokens });
    } catch {
      // a line cut short by a crash: the trainer rewrites it on resume
    }
  }
  return out;
}

/** The sweep fields recorded in a finished run's registry metrics. */
export interface SweepRunFields {
  sweep: { id: string; budget: number; N: number; D: number; C: number; flopsPerToken: number; shape: Shape };
  evals: { step: number; valLoss: number; tokens: number }[];
}

function isDone(rec: RegistryRun | undefined, run: PlannedRun): boolean {
  return rec?.status === "finished" && Number(rec.metrics?.step ?? 0) >= run.steps;
}

/** Adds the sweep fields (N, D, C, budget, per-eval losses) to a finished run's registry record. */
function annotate(registry: Registry, plan: SweepPlan, run: PlannedRun, rec: RegistryRun): void {
  // metrics.jsonl holds the periodic evaluations and the final whole-split one; runs from older versions
  // have their final one only in the registry's final metrics.
  const evals = evalHistory(rec.runDir);
  const m = rec.metrics ?? {};
  const last = evals[evals.length - 1];
  if (typeof m.valLoss === "number" && typeof m.step === "number" && (!last || last.step < m.step)) {
    evals.push({
      step: m.step,
      valLoss: m.valLoss,
      tokens: Number(m.tokens ?? m.step * (run.D / run.steps)),
    });
  }
  const fields: SweepRunFields = {
    sweep: {
      id: plan.sweepId,
      budget: run.budget,
      N: run.N,
      D: run.D,
      C: run.C,
      flopsPerToken: run.flopsPerToken,
      shape: run.shape,
    },
    evals,
  };
  registry.update(rec.id, { ...(rec.metrics ?? {}), ...fields });
}

/**
 * Runs every planned run that has not finished, in plan order (small budgets first). Saves the plan
 * first (so `--resume ID` can find it). A run interrupted earlier resumes from its newest checkpoint.
 */
export async function runSweep(plan: SweepPlan, options: RunSweepOptions = {}): Promise<SweepRunSummary> {
  const log = options.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const root = String(plan.train.root);
  saveSweepPlan(plan);
  const summary: SweepRunSummary = { skipped: [], completed: [], interrupted: null };
  for (const [i, run] of plan.runs.entries()) {
    const runDir = runDirOf(parseTrainConfig(run.config));
    const rec = (() => {
      const r = new Registry(root);
      try {
        const found = r.listRuns({ sweepId: plan.sweepId }).find((x) => x.runDir === runDir);
        // (Re)write the sweep fields of a finished run: a crash between finishing and annotating leaves none.
        if (found && isDone(found, run)) annotate(r, plan, run, found);
        return found;
      } finally {
        r.close();
      }
    })();
    if (isDone(rec, run)) {
      summary.skipped.push(run.name);
      continue;
    }
    if (options.signal?.aborted) {
      summary.interrupted = run.name;
      break;
    }
    if (!options.quiet) {
      log(
        `[${i + 1}/${plan.runs.length}] ${run.name}: N=${human(run.N)}, D=${human(run.D)}, C=${sci(run.C)}` +
          (existsSync(runDir) ? " (resuming)" : ""),
      );
    }
    const result = await train(run.config, {
      resume: true,
      sweepId: plan.sweepId,
      quiet: options.quiet ?? false,
      log,
      progressBar: options.progressBar ?? false,
      handleSignals: false,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onEval ? { onEval: (m: EvalMetrics) => options.onEval!(run, m) } : {}),
    });
    if (result.interrupted) {
      summary.interrupted = run.name;
      break;
    }
    const r = new Registry(root);
    try {
      const done = r.getRun(result.runId ?? run.name);
      if (done) annotate(r, plan, run, done);
    } finally {
      r.close();
    }
    summary.completed.push(run.name);
    options.onRunFinished?.(run, result);
  }
  return summary;
}

export interface QueueSweepOptions {
  /** The Redis URL of the run queue. */
  url: string;
  /** Enqueue and return; `sweep --resume ID --queue URL` collects later. */
  detach?: boolean;
  /** Give runs that failed earlier a fresh set of attempts (default true: a resumed sweep retries). */
  retryFailed?: boolean;
  attempts?: number;
  pollMs?: number;
  signal?: AbortSignal;
  log?: (message: string) => void;
}

/**
 * Runs the sweep through the queue: every unfinished run becomes a job for `afterscale worker`s; each run
 * a worker finishes is written into the registry here (with its sweep fields), as a local run would be.
 * Saves the plan first, so `--resume ID` finds it.
 */
export async function runSweepOnQueue(plan: SweepPlan, options: QueueSweepOptions): Promise<QueueSummary> {
  const root = String(plan.train.root);
  saveSweepPlan({ ...plan, queue: redactUrl(options.url) });
  const byName = new Map(plan.runs.map((r) => [r.name, r]));
  const records = new Map<string, RegistryRun>();
  if (existsSync(join(resolve(root), "registry.sqlite"))) {
    const r = new Registry(root);
    try {
      for (const rec of r.listRuns({ sweepId: plan.sweepId })) records.set(rec.runDir, rec);
    } finally {
      r.close();
    }
  }
  const tasks: QueueTask[] = plan.runs.map((run) => ({
    group: plan.sweepId,
    runName: run.name,
    runDir: runDirOf(parseTrainConfig(run.config)),
    config: run.config,
  }));
  return runOnQueue(tasks, {
    url: options.url,
    retryFailed: options.retryFailed ?? true,
    ...(options.detach !== undefined ? { detach: options.detach } : {}),
    ...(options.attempts !== undefined ? { attempts: options.attempts } : {}),
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.log ? { log: options.log } : {}),
    isDone: (t) => isDone(records.get(t.runDir), byName.get(t.runName)!),
    onResult: (t, outcome) => {
      const id = recordOutcome(root, plan.sweepId, outcome);
      const r = new Registry(root);
      try {
        const rec = r.getRun(id);
        if (rec) annotate(r, plan, byName.get(t.runName)!, rec);
      } finally {
        r.close();
      }
    },
  });
}

/** Status of every planned run from the registry: finished, interrupted, running (killed), failed or pending. */
export function sweepStatus(plan: SweepPlan): Map<string, string> {
  const root = String(plan.train.root);
  const out = new Map<string, string>();
  if (!existsSync(join(resolve(root), "registry.sqlite"))) return out;
  const r = new Registry(root);
  try {
    const runs = r.listRuns({ sweepId: plan.sweepId });
    for (const run of plan.runs) {
      const rec = runs.find((x) => x.name === run.name);
      if (!rec) continue;
      // "running" in the registry may also be a run whose process was killed; either way it resumes.
      const state = rec.status === "running" ? "started" : rec.status;
      out.set(run.name, isDone(rec, run) ? "finished" : `${state}, step ${rec.metrics?.step ?? 0}`);
    }
  } finally {
    r.close();
  }
  return out;
}

// ---------------------------------------------------------------- points for the fits

export interface SweepPoints {
  plan: SweepPlan;
  points: ScalingPoint[];
  /** Planned runs without a finished record (left out of the points). */
  missing: string[];
}

/**
 * The scaling points of a sweep's finished runs: N (see the header), D tokens, C FLOPs spent, loss =
 * final validation loss (training loss when the dataset has no validation split), budget = nominal C.
 */
export function pointsFromSweep(root: string, sweepId: string): SweepPoints {
  const plan = loadSweepPlan(root, sweepId);
  const r = new Registry(resolve(root));
  let records: RegistryRun[];
  try {
    records = r.listRuns({ sweepId });
  } finally {
    r.close();
  }
  const points: ScalingPoint[] = [];
  const missing: string[] = [];
  for (const run of plan.runs) {
    const rec = records.find((x) => x.name === run.name);
    if (!isDone(rec, run)) {
      missing.push(run.name);
      continue;
    }
    const m = rec!.metrics!;
    const loss = typeof m.valLoss === "number" ? m.valLoss : Number(m.loss);
    points.push(
      pointFromRecord(
        { N: run.N, D: run.D, C: run.C, loss, budget: run.budget },
        `sweep ${sweepId} run ${run.name}`,
      ),
    );
  }
  if (points.length === 0)
    throw new Error(`sweep ${sweepId}: no finished runs yet (run afterscale sweep --resume ${sweepId})`);
  return { plan, points, missing };
}

// ---------------------------------------------------------------- sources for fit, compare and report

export interface LoadedSource {
  /** What the source was given as (a dataset name, a CSV path or a sweep id). */
  label: string;
  kind: "dataset" | "csv" | "sweep";
  /** The CSV file's path, for a CSV. */
  path?: string;
  points: ScalingPoint[];
  /** Points dropped by --exclude-top-loss. */
  excluded: number;
  /** The sweep plan, for a sweep. */
  plan?: SweepPlan;
  /** Planned runs of a sweep that have not finished. */
  missing?: string[];
}

/**
 * A fit input: a built-in dataset name, a CSV file, or a sweep id (looked up under `root`, default
 * $AFTERSCALE_HOME or ./runs). An existing file wins over a sweep of the same name.
 */
export function loadSource(
  source: string,
  options: { root?: string; excludeTopLoss?: number } = {},
): LoadedSource {
  const exclude = options.excludeTopLoss ?? 0;
  const root = resolve(options.root ?? defaultRoot());
  let loaded: Omit<LoadedSource, "excluded">;
  if ((BUILTIN_DATASETS as readonly string[]).includes(source)) {
    loaded = { label: source, kind: "dataset", points: loadPoints({ dataset: source }) };
  } else if (existsSync(source) && statSync(source).isFile()) {
    loaded = { label: source, kind: "csv", path: resolve(source), points: loadPoints({ csv: source }) };
  } else if (sweepExists(root, source)) {
    const s = pointsFromSweep(root, source);
    loaded = { label: source, kind: "sweep", points: s.points, plan: s.plan, missing: s.missing };
  } else {
    throw new Error(
      `${JSON.stringify(source)} is not a built-in dataset (${BUILTIN_DATASETS.join(", ")}), an existing CSV file, ` +
        `or a sweep under ${root} (sweeps/${source}.json); pass --root for sweeps elsewhere`,
    );
  }
  const points = exclude > 0 ? excludeTopLoss(loaded.points, exclude) : loaded.points;
  return { ...loaded, points, excluded: loaded.points.length - points.length };
}
