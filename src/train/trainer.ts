// The training loop. One step:
//   tidy(() => for each micro-batch: loss = crossEntropy(forward(x)) / gradAccum; loss.backward())
//   clip the global gradient norm; lr from the schedule; optimizer update (AdamW, or Muon + AdamW); zero
//   the gradients.
// Everything random is a pure function of (seed, step): the batches (batchAt with batch index
// step·gradAccum + micro) and the dropout masks. With the weights and optimizer moments restored bit for
// bit from a checkpoint, a resumed run therefore computes exactly what an uninterrupted run computes.
//
// Validation: every evalInterval steps an estimate on the first evalBatches batches of the validation
// split; after the last step the whole split, scored by infer's evaluate() exactly as `afterscale eval`
// scores it, so the two agree on the final checkpoint.
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
import { type Batch, batchAt, evalBatches, type OpenDataset } from "../data/index.js";
import { DEFAULT_EVAL_BATCH_SIZE, evaluate } from "../infer/evaluate.js";
import { writeFileAtomic } from "../io/safetensors.js";
import {
  createModel,
  forward,
  type Model,
  type ModelConfig,
  parameterCounts,
  trainingFlopsPerToken,
} from "../nn/index.js";
import { clipGradNorm, gradNorm } from "../optim/index.js";
import { crossEntropy, noGrad, scale, tidy } from "../tensor/index.js";
import {
  type LoadedCheckpoint,
  latestGoodCheckpoint,
  modelFromCheckpoint,
  removeStaleTemporaries,
  restoreOptimizer,
  saveCheckpoint,
} from "./checkpoint.js";
import {
  modelConfigFor,
  parseTrainConfig,
  runDirOf,
  type TrainConfig,
  type TrainConfigInput,
  tokensPerStep,
} from "./config.js";
import { openTrainingData } from "./data.js";
import { createOptimizer } from "./optimizer.js";
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
}

export interface EvalMetrics {
  step: number;
  valLoss: number;
  valPerplexity: number;
  /** Validation tokens scored. */
  tokens: number;
  /** True for the periodic estimate (evalBatches batches); false for the whole split after the last step. */
  estimate: boolean;
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

function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The dropout seed of one micro-batch: a pure function of (seed, batch index). */
export function dropoutSeedFor(seed: number, batchIndex: number): number {
  return mix32(mix32(seed ^ 0x5bd1e995) ^ mix32(batchIndex + 0x68e31da4) ^ Math.floor(batchIndex / 2 ** 32));
}

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
    tokens: s.tokensSeen,
    elapsedSeconds: s.elapsedSeconds,
    tokensPerSecond,
    checkpoint: ckpt.dir,
    config: c,
    modelConfig: s.modelConfig,
    parameters: parameterCounts(s.modelConfig),
  };
}

/** Mean loss over fixed validation batches (each token predicted once), without gradients. */
export function evaluateLoss(model: Model, batches: Batch[]): number {
  let total = 0;
  let count = 0;
  noGrad(() => {
    for (const b of batches) {
      tidy(() => {
        const logits = forward(model, b.inputs, b.rows, b.context);
        const n = b.rows * b.context;
        total += crossEntropy(logits, b.targets).item() * n;
        count += n;
      });
    }
  });
  return count === 0 ? Number.NaN : total / count;
}

/** Trains (or resumes) a run; resolves when it finishes or is stopped by a signal. */
export async function train(
  input?: TrainConfigInput | TrainConfig,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const warn = options.log ?? stderrLine;
  const plan = planRun(input, options, warn);
  const { config: c, runDir } = plan;
  const ckpt = plan.checkpoint;
  if (ckpt && ckpt.state.step >= c.steps) return alreadyFinished(plan, ckpt, options);
  const progress = new Progress({
    quiet: options.quiet ?? false,
    logInterval: c.logInterval,
    ...(options.log ? { log: options.log } : {}),
    ...(options.progressBar !== undefined ? { bar: options.progressBar } : {}),
  });
  const say = (m: string) => progress.message(m);

  // ---- data, model, optimizer
  const data: OpenDataset = openTrainingData(c, say);
  if (ckpt && ckpt.state.tokenizerHash !== data.tokenizer.hash) {
    throw new Error(
      `resume: the data's tokenizer (${data.tokenizer.hash.slice(0, 12)}) is not the one ${ckpt.dir} was trained with (${ckpt.state.tokenizerHash.slice(0, 12)})`,
    );
  }
  const modelConfig = ckpt ? ckpt.state.modelConfig : modelConfigFor(c, data.meta.vocabSize);
  const model = ckpt ? modelFromCheckpoint(ckpt) : createModel(modelConfig, c.seed);
  const optimizer = createOptimizer(model, c);
  if (ckpt) restoreOptimizer(optimizer, ckpt);
  const params = optimizer.params();
  const evalSet = [...evalBatches(data.val, c.batchSize, c.context, c.evalBatches)];
  if (evalSet.length === 0) {
    warn(`afterscale: warning: the validation split is too short for context ${c.context}; no evaluation`);
  }
  const estimateTokens = evalSet.reduce((n, b) => n + b.rows * b.context, 0);
  const counts = parameterCounts(modelConfig);
  const perStep = tokensPerStep(c);

  // ---- run folder: config, tokenizer, metrics
  mkdirSync(runDir, { recursive: true });
  removeStaleTemporaries(runDir);
  const tokenizerJson = data.tokenizer.toJsonText();
  writeFileAtomic(
    join(runDir, CONFIG_FILE),
    `${JSON.stringify({ train: c, model: modelConfig, parameters: counts, data: data.dir }, null, 2)}\n`,
  );
  if (!existsSync(join(runDir, "tokenizer.json")))
    copyFileSync(join(data.dir, "tokenizer.json"), join(runDir, "tokenizer.json"));
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

  const metricsOf = () => ({
    step,
    steps: c.steps,
    loss,
    valLoss,
    valTokens,
    valEstimate,
    tokens: step * perStep,
    elapsedSeconds: elapsed(),
    tokensPerSecond:
      trainSeconds > 0
        ? ((step - startStep) * perStep) / trainSeconds
        : typeof previousTps === "number"
          ? previousTps
          : null,
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

  const runEval = () => {
    if (evalSet.length === 0) return;
    valLoss = evaluateLoss(model, evalSet);
    valTokens = estimateTokens;
    valEstimate = true;
    evaluatedStep = step;
    options.onEval?.({ step, valLoss, valPerplexity: Math.exp(valLoss), tokens: valTokens, estimate: true });
    say(`step ${step}: ${describeVal(valLoss, valTokens, true)}, perplexity ${Math.exp(valLoss).toFixed(2)}`);
  };

  /** The whole validation split, scored as `afterscale eval` scores it (same function, same batches). */
  const runFinalEval = () => {
    if (evalSet.length === 0) return;
    const t0 = performance.now();
    const r = evaluate(model, data.val, data.tokenizer, {
      batchSize: DEFAULT_EVAL_BATCH_SIZE,
      context: modelConfig.context,
      onBatch: () => heartbeat(),
    });
    valLoss = r.loss;
    valTokens = r.tokens;
    valEstimate = false;
    evaluatedStep = step;
    options.onEval?.({ step, valLoss, valPerplexity: r.perplexity, tokens: r.tokens, estimate: false });
    say(
      `step ${step}: ${describeVal(valLoss, valTokens, false)}, perplexity ${r.perplexity.toFixed(2)}, ` +
        `${r.bitsPerByte.toFixed(4)} bits/byte (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
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
        tokenizerHash: data.tokenizer.hash,
        tokensSeen: step * perStep,
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
      `${ckpt ? `resuming ${runDir} at step ${startStep}` : `training ${runDir}`}: ${c.model} ${c.family} ` +
        `(${counts.total.toLocaleString("en-US")} parameters, ${counts.nonEmbedding.toLocaleString("en-US")} non-embedding), ` +
        `${c.steps} steps of ${perStep} tokens`,
    );
  }
  progress.start(c.steps, startStep);
  try {
    while (step < c.steps && stopReason === null) {
      const lr = lrAt(step, c);
      const t0 = performance.now();
      let lossSum = 0;
      tidy(() => {
        for (let micro = 0; micro < c.gradAccum; micro++) {
          const index = step * c.gradAccum + micro;
          const b = batchAt(data.train, c.batchSize, c.context, c.seed, index);
          const dropoutSeed = modelConfig.dropout > 0 ? dropoutSeedFor(c.seed, index) : null;
          const logits = forward(model, b.inputs, c.batchSize, c.context, { dropoutSeed });
          const l = crossEntropy(logits, b.targets);
          lossSum += l.item();
          (c.gradAccum > 1 ? scale(l, 1 / c.gradAccum) : l).backward();
        }
      });
      const norm = c.gradClip > 0 ? clipGradNorm(params, c.gradClip) : gradNorm(params);
      optimizer.update(lr);
      optimizer.zeroGrad();
      const seconds = (performance.now() - t0) / 1000;
      trainSeconds += seconds;
      step++;
      loss = lossSum / c.gradAccum;
      if (!Number.isFinite(loss)) throw new Error(`training diverged: loss is ${loss} at step ${step}`);
      const tps = perStep / Math.max(seconds, 1e-9);
      smoothTps = smoothTps === 0 ? tps : 0.9 * smoothTps + 0.1 * tps;
      const line: Record<string, number> = {
        step,
        loss,
        lr,
        gradNorm: norm,
        tokensPerSecond: tps,
        elapsed: elapsed(),
        tokens: step * perStep,
      };
      if (step === c.steps) {
        runFinalEval();
        if (evaluatedStep === step) {
          line.valLoss = valLoss!;
          line.valTokens = valTokens!;
        }
      } else if (c.evalInterval > 0 && step % c.evalInterval === 0) {
        runEval();
        if (evaluatedStep === step) {
          line.valLossEstimate = valLoss!;
          line.valEstimateTokens = valTokens!;
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
        tokens: line.tokens!,
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
    const final = metricsOf();
    registry?.recordFinish(runId!, interrupted ? "interrupted" : "finished", final);
    if (!options.quiet) {
      say(
        `${interrupted ? `stopped (${stopReason}) at step ${step}/${c.steps}` : `finished ${c.steps} steps`} in ` +
          `${formatSeconds(final.elapsedSeconds)}; loss ${loss?.toFixed(4) ?? "-"}, ${describeVal(valLoss, valTokens, valEstimate)}; ` +
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
      tokens: step * perStep,
      elapsedSeconds: final.elapsedSeconds,
      tokensPerSecond: final.tokensPerSecond,
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
