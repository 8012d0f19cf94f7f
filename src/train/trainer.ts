// The training loop, one for every objective (pretraining here; fine-tuning, preference optimisation and
// RL plug theirs in through runTraining, see objective.ts). One step:
//   tidy(() => for each micro-batch: loss = objective.microBatch(model, index) / gradAccum; loss.backward())
//   clip the global gradient norm; lr from the schedule; optimizer update (AdamW, or Muon + AdamW); zero
//   the gradients.
// Everything random is a pure function of (seed, batch index step·gradAccum + micro), so with the weights
// and optimizer moments restored bit for bit from a checkpoint, a resumed run computes exactly what an
// uninterrupted run computes. Validation: the objective's estimate every evalInterval steps, and its whole
// held-out evaluation after the last step.
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { writeFileAtomic } from "../io/safetensors.js";
import { type ModelConfig, parameterCounts, trainingFlopsPerToken } from "../nn/index.js";
import { clipGradNorm, gradNorm } from "../optim/index.js";
import { scale, tidy, withPrecision } from "../tensor/index.js";
import {
  type LoadedCheckpoint,
  latestGoodCheckpoint,
  removeStaleTemporaries,
  restoreOptimizer,
  saveCheckpoint,
} from "./checkpoint.js";
import { parseTrainConfig, runDirOf, type TrainConfig, type TrainConfigInput } from "./config.js";
import type { ObjectiveSetup, Validation } from "./objective.js";
import { createOptimizer } from "./optimizer.js";
import { pretraining } from "./pretrain.js";
import { formatSeconds, Progress } from "./progress.js";
import { REGISTRY_FILE, Registry, withRegistry } from "./registry.js";
import { lrAt } from "./schedule.js";

export const METRICS_FILE = "metrics.jsonl";
export const CONFIG_FILE = "config.json";
/** The registry's heartbeat of a running run is refreshed at most this often (and at every checkpoint). */
export const HEARTBEAT_SECONDS = 10;

/** Fields a resumed run may change; anything else would make it a different run. */
export const RESUMABLE_CHANGES = [
  "steps",
  "tokens",
  "evalInterval",
  "evalBatches",
  "checkpointInterval",
  "keepCheckpoints",
  "logInterval",
] as const;

export interface StepMetrics {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  /** Training seconds so far (across resumes). */
  elapsed: number;
  tokens: number;
  /** The objective's own figures for this step (e.g. reward, accuracy); absent for pretraining. */
  metrics?: Record<string, number>;
}

export interface EvalMetrics {
  step: number;
  valLoss: number;
  valPerplexity: number;
  /** Validation tokens scored. */
  tokens: number;
  /** True for the periodic estimate (evalBatches batches); false for the whole split after the last step. */
  estimate: boolean;
  /** The objective's own held-out figures (e.g. task accuracy). */
  metrics?: Record<string, number>;
}

export interface TrainOptions {
  /**
   * Continue a run from its newest good checkpoint. A path: that run folder, with its saved config
   * (fields given in the config argument may change only RESUMABLE_CHANGES). true: the run named by the
   * config's root/runName if it exists, else a fresh start.
   */
  resume?: boolean | string;
  /** No progress output (warnings still go to `log`). */
  quiet?: boolean;
  /** Where messages go (default: stderr). Giving one turns the live bar off. */
  log?: (message: string) => void;
  /** Force the live progress bar on or off (default: on when stderr is a TTY and no `log` is given). */
  progressBar?: boolean;
  onStep?: (m: StepMetrics) => void;
  onEval?: (m: EvalMetrics) => void;
  onCheckpoint?: (c: { step: number; dir: string }) => void;
  /** SIGINT/SIGTERM save a checkpoint and stop the run cleanly (default true). A second one exits at once. */
  handleSignals?: boolean;
  /** Aborting stops the run like SIGINT (checkpoint, status interrupted). */
  signal?: AbortSignal;
  /** Record the run in <root>/registry.sqlite (default true). */
  registry?: boolean;
  /** Groups runs of one sweep in the registry (the scaling lab). */
  sweepId?: string;
}

export interface TrainResult {
  runDir: string;
  runName: string;
  /** Registry id, or null when the registry was off. */
  runId: number | null;
  /** Steps completed, and the total asked for. */
  step: number;
  steps: number;
  /** True when SIGINT/SIGTERM/abort stopped the run before the last step. */
  interrupted: boolean;
  /** The step training resumed from (0 for a fresh run). */
  resumedFrom: number;
  /**
   * True when a resumed run had no steps left to train: nothing was trained or written (the figures are
   * the run's own, from its last checkpoint and the registry).
   */
  alreadyFinished: boolean;
  loss: number | null;
  /** The whole validation split's loss for a finished run, else the latest estimate (see valEstimate). */
  valLoss: number | null;
  /** Validation tokens valLoss was computed on (null when unknown: runs from older versions). */
  valTokens: number | null;
  /** True when valLoss is a periodic estimate on evalBatches batches, not the whole split. */
  valEstimate: boolean;
  /** The objective's latest held-out figures (e.g. task accuracy), null when it reports none. */
  valMetrics: Record<string, number> | null;
  tokens: number;
  elapsedSeconds: number;
  /** Training throughput of this session (of the last session for an already finished run); null if none. */
  tokensPerSecond: number | null;
  checkpoint: string;
  config: TrainConfig;
  modelConfig: ModelConfig;
  parameters: { total: number; nonEmbedding: number };
}

const stderrLine = (m: string): void => {
  process.stderr.write(`${m}\n`);
};

function readSavedConfig(runDir: string): TrainConfig | null {
  const path = join(runDir, CONFIG_FILE);
  if (!existsSync(path)) return null;
  try {
    return (JSON.parse(readFileSync(path, "utf8")) as { train: TrainConfig }).train;
  } catch {
    return null;
  }
}

/** The saved config with the caller's explicit fields applied; only RESUMABLE_CHANGES may differ. */
function mergeForResume(saved: TrainConfig, input: unknown, runDir: string): TrainConfig {
  const raw = { ...((input ?? {}) as Record<string, unknown>) };
  delete raw.root;
  delete raw.runName;
  const base: Record<string, unknown> = { ...saved };
  if ("steps" in raw || "tokens" in raw) {
    delete base.steps;
    delete base.tokens;
  }
  const merged = parseTrainConfig({ ...base, ...raw, root: dirname(runDir), runName: basename(runDir) });
  const changed = Object.keys(raw).filter(
    (k) =>
      JSON.stringify((merged as Record<string, unknown>)[k]) !==
      JSON.stringify((saved as Record<string, unknown>)[k]),
  );
  const forbidden = changed.filter((k) => !(RESUMABLE_CHANGES as readonly string[]).includes(k));
  if (forbidden.length > 0) {
    const what = forbidden
      .map(
        (k) =>
          `${k} (run has ${JSON.stringify((saved as Record<string, unknown>)[k])}, given ${JSON.stringify(raw[k])})`,
      )
      .join(", ");
    throw new Error(
      `cannot change ${what} when resuming ${runDir}; a resumed run may change only ${RESUMABLE_CHANGES.join(", ")}`,
    );
  }
  return merged;
}

interface RunPlan {
  config: TrainConfig;
  runDir: string;
  checkpoint: LoadedCheckpoint | null;
}

function planRun(input: unknown, options: TrainOptions, warn: (m: string) => void): RunPlan {
  if (options.resume) {
    let runDir: string;
    if (typeof options.resume === "string") {
      runDir = resolve(options.resume);
      if (!existsSync(runDir)) throw new Error(`resume: ${options.resume} does not exist`);
    } else {
      const raw = (input ?? {}) as Record<string, unknown>;
      if (typeof raw.runName !== "string") {
        throw new Error("resume: give the run folder, or a config with runName naming the run to continue");
      }
      runDir = runDirOf(parseTrainConfig(input));
    }
    if (existsSync(runDir)) {
      const checkpoint = latestGoodCheckpoint(runDir, warn);
      const saved = checkpoint?.state.trainConfig ?? readSavedConfig(runDir);
      if (saved) return { config: mergeForResume(saved, input, runDir), runDir, checkpoint };
      if (typeof options.resume === "string") {
        throw new Error(
          `resume: ${options.resume} has no checkpoint and no ${CONFIG_FILE}; not an afterscale run`,
        );
      }
    }
  }
  const config = parseTrainConfig(input);
  const runDir = runDirOf(config);
  if (existsSync(runDir) && readdirSync(runDir).length > 0) {
    throw new Error(`run folder ${runDir} already exists; resume it (--resume) or choose another runName`);
  }
  return { config, runDir, checkpoint: null };
}

/** Keeps the metrics of steps up to `step` (a resumed run rewrites what came after its checkpoint). */
function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => {
      if (line.trim() === "") return false;
      try {
        return (JSON.parse(line) as { step: number }).step <= step;
      } catch {
        return false; // a line cut short by a crash
      }
    });
  writeFileAtomic(path, kept.length ? `${kept.join("\n")}\n` : "");
}

/** The latest validation figure in metrics.jsonl at or before `step`: its loss, tokens and kind. */
function valRecordAt(
  metricsPath: string,
  step: number,
): { valLoss: number; tokens: number | null; estimate: boolean } | null {
  if (!existsSync(metricsPath)) return null;
  let found: { valLoss: number; tokens: number | null; estimate: boolean } | null = null;
  for (const text of readFileSync(metricsPath, "utf8").split("\n")) {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(text) as Record<string, unknown>;
    } catch {
      continue; // blank, or cut short by a crash
    }
    if (typeof m.step !== "number" || m.step > step) continue;
    if (typeof m.valLoss === "number") {
      // Before whole-split final evaluations (no valTokens), valLoss was always the estimate.
      const tokens = typeof m.valTokens === "number" ? m.valTokens : null;
      found = { valLoss: m.valLoss, tokens, estimate: tokens === null };
    } else if (typeof m.valLossEstimate === "number") {
      const tokens = typeof m.valEstimateTokens === "number" ? m.valEstimateTokens : null;
      found = { valLoss: m.valLossEstimate, tokens, estimate: true };
    }
  }
  return found;
}

/** What a checkpoint's valLoss was computed on, read back from the run's metrics.jsonl. */
function valLabelOf(runDir: string, ckpt: LoadedCheckpoint): { tokens: number | null; estimate: boolean } {
  const found = valRecordAt(join(runDir, METRICS_FILE), ckpt.state.step);
  return found && found.valLoss === ckpt.state.valLoss ? found : { tokens: null, estimate: true };
}

/** "val loss 4.2909 (whole validation split, 201,600 tokens)" or "val loss estimate 4.3769 (40,960 tokens)". */
function describeVal(valLoss: number | null, tokens: number | null, estimate: boolean): string {
  if (valLoss === null) return "val loss -";
  const on = tokens === null ? "" : `${tokens.toLocaleString("en-US")} tokens`;
  return estimate
    ? `val loss estimate ${valLoss.toFixed(4)}${on ? ` (${on})` : ""}`
    : `val loss ${valLoss.toFixed(4)} (whole validation split${on ? `, ${on}` : ""})`;
}

/** "micro llama" for a preset run, "llama model from <init>" for a fine-tune. */
function describeModel(c: TrainConfig, m: ModelConfig): string {
  return c.init ? `${m.family} model from ${c.init}` : `${c.model} ${c.family}`;
}

/** A figure for a progress line: integers as they are, others to 4 significant digits. */
function formatFigure(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4);
}

/**
 * A resumed run with no steps left: reports the run as its last checkpoint and the registry have it and
 * writes nothing (a row left `running` by a process killed after its final checkpoint is marked finished).
 */
function alreadyFinished(plan: RunPlan, ckpt: LoadedCheckpoint, options: TrainOptions): TrainResult {
  const { config: c, runDir } = plan;
  const s = ckpt.state;
  const complete = s.step >= s.trainConfig.steps;
  let runId: number | null = null;
  let tokensPerSecond: number | null = null;
  if (options.registry !== false && existsSync(join(c.root, REGISTRY_FILE))) {
    withRegistry(c.root, (r) => {
      const rec = r.getRunByDir(runDir);
      if (!rec) return;
      runId = rec.id;
      const tps = rec.metrics?.tokensPerSecond;
      tokensPerSecond = typeof tps === "number" ? tps : null;
      if (complete && rec.recordedStatus !== "finished") r.recordFinish(rec.id, "finished", null);
    });
  }
  const val = valLabelOf(runDir, ckpt);
  if (!options.quiet) {
    (options.log ?? stderrLine)(
      `${runDir} ${complete ? "is already finished" : `is already past the ${c.steps} steps asked`}: ` +
        `step ${s.step}/${s.trainConfig.steps}; loss ${s.loss?.toFixed(4) ?? "-"}, ` +
        `${describeVal(s.valLoss, val.tokens, val.estimate)}; nothing to train, nothing changed ` +
        `(resume with a larger --steps to train further)`,
    );
  }
  return {
    runDir,
    runName: c.runName,
    runId,
    step: s.step,
    steps: c.steps,
    interrupted: false,
    resumedFrom: s.step,
    alreadyFinished: true,
    loss: s.loss,
    valLoss: s.valLoss,
    valTokens: val.tokens,
    valEstimate: val.estimate,
    valMetrics: null,
    tokens: s.tokensSeen,
    elapsedSeconds: s.elapsedSeconds,
    tokensPerSecond,
    checkpoint: ckpt.dir,
    config: c,
    modelConfig: s.modelConfig,
    parameters: parameterCounts(s.modelConfig),
  };
}

/** Trains (or resumes) a pretraining run; resolves when it finishes or is stopped by a signal. */
export function train(
  input?: TrainConfigInput | TrainConfig,
  options: TrainOptions = {},
): Promise<TrainResult> {
  return runTraining("pretrain", pretraining, input, options);
}

/**
 * Trains (or resumes) a run of `objectiveName` whose model, tokenizer and loss come from `setup`: the one
 * loop behind train, sft, dpo and grpo. The config's `objective` field must name the same objective (it is
 * filled in for a fresh run), so a run is always resumed by the command that started it.
 */
export async function runTraining(
  objectiveName: string,
  setup: ObjectiveSetup,
  input?: TrainConfigInput | TrainConfig,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const warn = options.log ?? stderrLine;
  const given = (input ?? {}) as Record<string, unknown>;
  const withObjective =
    options.resume || "objective" in given ? given : { ...given, objective: objectiveName };
  const plan = planRun(withObjective, options, warn);
  const { config: c, runDir } = plan;
  if (c.objective !== objectiveName) {
    throw new Error(
      `${runDir} is a${/^[aeiou]/.test(c.objective) ? "n" : ""} ${c.objective} run; ` +
        `${options.resume ? "resume" : "run"} it with \`afterscale ${c.objective === "pretrain" ? "train" : c.objective}\`, not ${objectiveName === "pretrain" ? "train" : objectiveName}`,
    );
  }
  const ckpt = plan.checkpoint;
  if (ckpt && ckpt.state.step >= c.steps) return alreadyFinished(plan, ckpt, options);
  const progress = new Progress({
    quiet: options.quiet ?? false,
    logInterval: c.logInterval,
    ...(options.log ? { log: options.log } : {}),
    ...(options.progressBar !== undefined ? { bar: options.progressBar } : {}),
  });
  const say = (m: string) => progress.message(m);

  // ---- model, tokenizer and objective; optimizer
  const run = await setup({ config: c, runDir, checkpoint: ckpt, say });
  const { model, modelConfig, tokenizer, objective } = run;
  if (ckpt && ckpt.state.tokenizerHash !== tokenizer.hash) {
    throw new Error(
      `resume: the tokenizer of ${run.data} (${tokenizer.hash.slice(0, 12)}) is not the one ${ckpt.dir} was trained with (${ckpt.state.tokenizerHash.slice(0, 12)})`,
    );
  }
  const optimizer = createOptimizer(model, c);
  if (ckpt) restoreOptimizer(optimizer, ckpt);
  const params = optimizer.params();
  const counts = parameterCounts(modelConfig);

  // ---- run folder: config, tokenizer, metrics
  mkdirSync(runDir, { recursive: true });
  removeStaleTemporaries(runDir);
  const tokenizerJson = tokenizer.toJsonText();
  writeFileAtomic(
    join(runDir, CONFIG_FILE),
    `${JSON.stringify({ train: c, model: modelConfig, parameters: counts, data: run.data }, null, 2)}\n`,
  );
  if (!existsSync(join(runDir, "tokenizer.json"))) {
    if (run.tokenizerFile) copyFileSync(run.tokenizerFile, join(runDir, "tokenizer.json"));
    else writeFileAtomic(join(runDir, "tokenizer.json"), tokenizerJson);
  }
  const metricsPath = join(runDir, METRICS_FILE);
  const startStep = ckpt?.state.step ?? 0;
  if (ckpt) truncateMetrics(metricsPath, startStep);
  else writeFileSync(metricsPath, "");

  const registry = options.registry === false ? null : new Registry(c.root);
  const runId =
    registry?.recordStart({
      name: c.runName,
      runDir,
      resumed: ckpt !== null,
      config: { ...c, modelConfig, parameters: counts, flopsPerToken: trainingFlopsPerToken(modelConfig) },
      sweepId: options.sweepId ?? null,
    }) ?? null;
  // Kept when this session trains no step, so the registry does not lose the run's throughput.
  const previousTps = ckpt ? registry?.getRun(runId!)?.metrics?.tokensPerSecond : undefined;

  // ---- signals: finish the current step, checkpoint, stop
  let stopReason: string | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopReason !== null) process.exit(130);
    stopReason = sig;
    say(`${sig}: saving a checkpoint after this step, then stopping (again to quit at once)`);
  };
  const handleSignals = options.handleSignals ?? true;
  if (handleSignals) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  const onAbort = () => {
    stopReason ??= "abort";
  };
  options.signal?.addEventListener("abort", onAbort);
  if (options.signal?.aborted) onAbort();

  let step = startStep;
  let loss: number | null = ckpt?.state.loss ?? null;
  let valLoss: number | null = ckpt?.state.valLoss ?? null;
  let { tokens: valTokens, estimate: valEstimate } = ckpt
    ? valLabelOf(runDir, ckpt)
    : { tokens: null as number | null, estimate: true };
  const elapsedBefore = ckpt?.state.elapsedSeconds ?? 0;
  let trainSeconds = 0; // time in steps this session (not evaluation or checkpoints)
  const sessionStart = performance.now();
  const elapsed = () => elapsedBefore + (performance.now() - sessionStart) / 1000;
  let lastCheckpoint = ckpt?.dir ?? "";
  let savedStep = ckpt ? startStep : -1;
  let evaluatedStep = -1;
  let smoothTps = 0;
  let tokensSeen = ckpt?.state.tokensSeen ?? 0;
  let sessionTokens = 0;
  let valMetrics = null as Record<string, number> | null;

  const metricsOf = () => ({
    step,
    steps: c.steps,
    loss,
    valLoss,
    valTokens,
    valEstimate,
    valMetrics,
    tokens: tokensSeen,
    elapsedSeconds: elapsed(),
    tokensPerSecond:
      trainSeconds > 0 ? sessionTokens / trainSeconds : typeof previousTps === "number" ? previousTps : null,
  });

  let lastBeat = performance.now();
  /** Tells the registry this process is alive, at most every HEARTBEAT_SECONDS unless forced. */
  const heartbeat = (force = false) => {
    if (registry === null || runId === null) return;
    const now = performance.now();
    if (!force && now - lastBeat < HEARTBEAT_SECONDS * 1000) return;
    lastBeat = now;
    registry.heartbeat(runId, metricsOf());
  };

  /** Runs the objective's estimate (final: its whole held-out evaluation) and reports it. */
  const runEval = (final: boolean) => {
    const t0 = performance.now();
    const v: Validation | null = final
      ? objective.final(model, () => heartbeat())
      : objective.estimate(model);
    if (v === null) return;
    valLoss = v.loss;
    valTokens = v.tokens;
    valEstimate = !final;
    valMetrics = v.metrics ?? null;
    evaluatedStep = step;
    const perplexity = v.loss === null || v.lossName ? Number.NaN : Math.exp(v.loss);
    options.onEval?.({
      step,
      valLoss: v.loss ?? Number.NaN,
      valPerplexity: perplexity,
      tokens: v.tokens,
      estimate: !final,
      ...(v.metrics ? { metrics: v.metrics } : {}),
    });
    const on = `${v.tokens.toLocaleString("en-US")} ${v.unit ?? "tokens"}`;
    const figures = [
      ...(v.loss === null || v.lossName
        ? [
            `${final ? "held-out" : "held-out estimate"} (${on})`,
            ...(v.loss === null ? [] : [`${v.lossName} ${v.loss.toFixed(4)}`]),
          ]
        : [describeVal(v.loss, v.tokens, !final), `perplexity ${perplexity.toFixed(2)}`]),
      ...Object.entries(v.metrics ?? {}).map(([k, x]) => `${k} ${formatFigure(x)}`),
    ];
    const took = final ? ` (${((performance.now() - t0) / 1000).toFixed(1)} s)` : "";
    say(`step ${step}: ${figures.join(", ")}${took}`);
  };

  const checkpoint = () => {
    lastCheckpoint = saveCheckpoint(
      runDir,
      model,
      optimizer,
      tokenizerJson,
      {
        step,
        optimizerStep: optimizer.step,
        dataPosition: { nextStep: step, nextBatchIndex: step * c.gradAccum, seed: c.seed },
        rng: null,
        trainConfig: c,
        modelConfig,
        tokenizerHash: tokenizer.hash,
        tokensSeen,
        elapsedSeconds: elapsed(),
        loss,
        valLoss,
      },
      c.keepCheckpoints,
    );
    savedStep = step;
    heartbeat(true);
    options.onCheckpoint?.({ step, dir: lastCheckpoint });
  };

  if (!options.quiet) {
    say(
      `${ckpt ? `resuming ${runDir} at step ${startStep}` : `training ${runDir}`}: ${describeModel(c, modelConfig)} ` +
        `(${counts.total.toLocaleString("en-US")} parameters, ${counts.nonEmbedding.toLocaleString("en-US")} non-embedding), ` +
        `${c.steps} steps${run.tokensPerStep === null ? "" : ` of ${run.tokensPerStep} tokens`}; ${objective.describe}`,
    );
  }
  progress.start(c.steps, startStep);
  try {
    while (step < c.steps && stopReason === null) {
      const lr = lrAt(step, c);
      const t0 = performance.now();
      let lossSum = 0;
      let stepTokens = 0;
      const sums: Record<string, number> = {};
      // The micro-batches' forward and backward run in the configured precision; validation, clipping and
      // the optimizer stay float32 on the float32 master weights.
      withPrecision(c.precision, () =>
        tidy(() => {
          for (let micro = 0; micro < c.gradAccum; micro++) {
            const r = objective.microBatch(model, step * c.gradAccum + micro);
            lossSum += r.loss.item();
            stepTokens += r.tokens;
            for (const [k, x] of Object.entries(r.metrics ?? {})) sums[k] = (sums[k] ?? 0) + x;
            (c.gradAccum > 1 ? scale(r.loss, 1 / c.gradAccum) : r.loss).backward();
          }
        }),
      );
      const stepMetrics = Object.keys(sums).length
        ? Object.fromEntries(Object.entries(sums).map(([k, x]) => [k, x / c.gradAccum]))
        : undefined;
      const norm = c.gradClip > 0 ? clipGradNorm(params, c.gradClip) : gradNorm(params);
      optimizer.update(lr);
      optimizer.zeroGrad();
      const seconds = (performance.now() - t0) / 1000;
      trainSeconds += seconds;
      step++;
      loss = lossSum / c.gradAccum;
      if (!Number.isFinite(loss)) throw new Error(`training diverged: loss is ${loss} at step ${step}`);
      tokensSeen += stepTokens;
      sessionTokens += stepTokens;
      const tps = stepTokens / Math.max(seconds, 1e-9);
      smoothTps = smoothTps === 0 ? tps : 0.9 * smoothTps + 0.1 * tps;
      const line: Record<string, number> = {
        step,
        loss,
        lr,
        gradNorm: norm,
        tokensPerSecond: tps,
        elapsed: elapsed(),
        tokens: tokensSeen,
        ...stepMetrics,
      };
      const final = step === c.steps;
      if (final || (c.evalInterval > 0 && step % c.evalInterval === 0)) {
        runEval(final);
        if (evaluatedStep === step) {
          // The whole held-out evaluation is valLoss; a periodic estimate is labelled as one.
          const prefix = final ? "val" : "valEstimate";
          if (valLoss !== null) line[final ? "valLoss" : "valLossEstimate"] = valLoss;
          line[final ? "valTokens" : "valEstimateTokens"] = valTokens!;
          for (const [k, x] of Object.entries(valMetrics ?? {})) line[`${prefix}.${k}`] = x;
        }
      }
      appendFileSync(metricsPath, `${JSON.stringify(line)}\n`);
      options.onStep?.({
        step,
        steps: c.steps,
        loss,
        lr,
        gradNorm: norm,
        tokensPerSecond: tps,
        elapsed: line.elapsed!,
        tokens: tokensSeen,
        ...(stepMetrics ? { metrics: stepMetrics } : {}),
      });
      progress.update({ step, loss, lr, tokensPerSecond: smoothTps, valLoss, valEstimate });
      heartbeat();
      if (c.checkpointInterval > 0 && step % c.checkpointInterval === 0 && step < c.steps) checkpoint();
      // Let signal handlers run between steps.
      await new Promise<void>((r) => setImmediate(r));
    }
    const interrupted = step < c.steps;
    if (savedStep !== step) checkpoint();
    progress.stop();
    const summary = metricsOf();
    registry?.recordFinish(runId!, interrupted ? "interrupted" : "finished", summary);
    if (!options.quiet) {
      say(
        `${interrupted ? `stopped (${stopReason}) at step ${step}/${c.steps}` : `finished ${c.steps} steps`} in ` +
          `${formatSeconds(summary.elapsedSeconds)}; loss ${loss?.toFixed(4) ?? "-"}, ${describeVal(valLoss, valTokens, valEstimate)}; ` +
          `checkpoint ${lastCheckpoint}`,
      );
    }
    return {
      runDir,
      runName: c.runName,
      runId,
      step,
      steps: c.steps,
      interrupted,
      resumedFrom: startStep,
      alreadyFinished: false,
      loss,
      valLoss,
      valTokens,
      valEstimate,
      valMetrics,
      tokens: tokensSeen,
      elapsedSeconds: summary.elapsedSeconds,
      tokensPerSecond: summary.tokensPerSecond,
      checkpoint: lastCheckpoint,
      config: c,
      modelConfig,
      parameters: counts,
    };
  } catch (e) {
    progress.stop();
    registry?.recordFinish(runId!, "failed", { ...metricsOf(), error: (e as Error).message });
    throw e;
  } finally {
    if (handleSignals) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    options.signal?.removeEventListener("abort", onAbort);
    registry?.close();
  }
}
