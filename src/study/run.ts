// Runs a study plan: the learning-rate sweeps first, then every variant at every budget and seed with its
// recipe's best factor. Runs are ordinary trainer runs, recorded in the registry under the study id; a run
// already finished is skipped and an interrupted one resumes from its checkpoint, so a killed study
// continues where it stopped when run again.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { recordOutcome, runOnQueue } from "../queue/index.js";
import { parseTrainConfig, Registry, type RunRecord, runDirOf, train } from "../train/index.js";
import { type StudyPlan, type StudyRun, saveStudyPlan, studyRun } from "./plan.js";

export interface RunStudyOptions {
  signal?: AbortSignal;
  log?: (message: string) => void;
  quiet?: boolean;
  /**
   * Train through the run queue instead of here: each phase's runs (the learning-rate sweeps, then the
   * main runs) go to the workers at once. Detached, the current phase is enqueued and the call returns;
   * calling again collects it and enqueues the next.
   */
  queue?: { url: string; detach?: boolean; attempts?: number; pollMs?: number };
}

export interface StudyRunSummary {
  completed: string[];
  skipped: string[];
  /** The run a signal stopped (the study stops there), or null. */
  interrupted: string | null;
  /** Through the queue: runs that failed every attempt (the study stops after their phase). */
  failed: { runName: string; error: string }[];
  /** Through the queue: runs left in the queue (detached, or stopped waiting). */
  pending: string[];
}

/** Finished runs of a study by name, with their final validation loss. */
export function finishedRuns(plan: StudyPlan): Map<string, { loss: number; record: RunRecord }> {
  const out = new Map<string, { loss: number; record: RunRecord }>();
  const root = String(plan.train.root);
  if (!existsSync(join(resolve(root), "registry.sqlite"))) return out;
  const r = new Registry(root);
  try {
    for (const rec of r.listRuns({ sweepId: plan.studyId })) {
      const m = rec.metrics ?? {};
      const steps = Number((rec.config as { steps?: number }).steps ?? Number.NaN);
      if (rec.status !== "finished" || !(Number(m.step) >= steps)) continue;
      const loss = typeof m.valLoss === "number" ? m.valLoss : Number(m.loss);
      if (Number.isFinite(loss)) out.set(rec.name, { loss, record: rec });
    }
  } finally {
    r.close();
  }
  return out;
}

/** How many times a sweep whose best factor is at its edge is extended by one factor of 2 that way. */
export const MAX_LR_EXTENSIONS = 2;

export interface Tuning {
  recipe: string;
  /** Loss per factor tried (NaN where the run has not finished), factors ascending. */
  losses: { lrFactor: number; lr: number; loss: number }[];
  /** The best factor, or null while a tuning run is still to do. */
  best: number | null;
  /** True when the best factor is still the smallest or largest tried: the optimum may lie outside. */
  atEdge: boolean;
}

function tuningRun(plan: StudyPlan, recipe: string, factor: number): StudyRun {
  const v = plan.variants.find((x) => x.id === recipe)!;
  return studyRun(plan, v, plan.budgets[0]!, plan.seeds[0]!, factor);
}

/**
 * Each recipe's learning-rate sweep at the smallest budget and first seed: the plan's factors, extended by
 * ×½ or ×2 (at most MAX_LR_EXTENSIONS times) while the best one sits at an edge, so that no recipe is
 * compared at a learning rate the sweep merely ran out at.
 */
export function tuning(plan: StudyPlan, done = finishedRuns(plan)): Tuning[] {
  return plan.recipes.map((recipe) => {
    const factors = [...plan.lrFactors];
    for (let extensions = 0; ; extensions++) {
      const losses = factors.map((f) => {
        const r = tuningRun(plan, recipe, f);
        return { lrFactor: f, lr: parseTrainConfig(r.config).lr, loss: done.get(r.name)?.loss ?? Number.NaN };
      });
      if (!losses.every((l) => Number.isFinite(l.loss))) return { recipe, losses, best: null, atEdge: false };
      const best = losses.reduce((a, b) => (b.loss < a.loss ? b : a)).lrFactor;
      const low = best === factors[0];
      const atEdge = low || best === factors[factors.length - 1];
      if (!atEdge || extensions === MAX_LR_EXTENSIONS) return { recipe, losses, best, atEdge };
      if (low) factors.unshift(factors[0]! / 2);
      else factors.push(factors[factors.length - 1]! * 2);
    }
  });
}

/** The tuning runs still to do (the plan's factors, then any extension the results so far ask for). */
export function pendingTuningRuns(plan: StudyPlan, tuned: Tuning[]): StudyRun[] {
  return tuned.flatMap((t) =>
    t.losses.filter((l) => !Number.isFinite(l.loss)).map((l) => tuningRun(plan, t.recipe, l.lrFactor)),
  );
}

/** The main runs (every variant, budget and seed) once the tuning is complete; null before. */
export function mainRuns(plan: StudyPlan, tuned: Tuning[]): StudyRun[] | null {
  const best = new Map(tuned.map((t) => [t.recipe, t.best]));
  if ([...best.values()].some((b) => b === null)) return null;
  const out: StudyRun[] = [];
  for (const v of plan.variants)
    for (const budget of plan.budgets)
      for (const seed of plan.seeds) out.push(studyRun(plan, v, budget, seed, best.get(v.tuneFrom)!));
  return out;
}

export async function runStudy(plan: StudyPlan, options: RunStudyOptions = {}): Promise<StudyRunSummary> {
  const log = options.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  saveStudyPlan(plan);
  const summary: StudyRunSummary = { completed: [], skipped: [], interrupted: null, failed: [], pending: [] };
  const root = String(plan.train.root);
  const viaQueue = async (runs: StudyRun[], phase: string): Promise<boolean> => {
    const done = finishedRuns(plan);
    const q = options.queue!;
    if (!options.quiet) log(`[${phase}] ${runs.length} runs through the queue`);
    const s = await runOnQueue(
      runs.map((run) => ({
        group: plan.studyId,
        runName: run.name,
        runDir: runDirOf(parseTrainConfig(run.config)),
        config: run.config,
      })),
      {
        url: q.url,
        retryFailed: true,
        ...(q.detach !== undefined ? { detach: q.detach } : {}),
        ...(q.attempts !== undefined ? { attempts: q.attempts } : {}),
        ...(q.pollMs !== undefined ? { pollMs: q.pollMs } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        log: options.quiet ? () => {} : log,
        isDone: (t) => done.has(t.runName),
        onResult: (_t, outcome) => {
          recordOutcome(root, plan.studyId, outcome);
        },
      },
    );
    for (const name of s.skipped)
      if (!summary.skipped.includes(name) && !summary.completed.includes(name)) summary.skipped.push(name);
    summary.completed.push(...s.completed);
    summary.failed.push(...s.failed);
    summary.pending.push(...s.pending);
    if (s.pending.length > 0 && !q.detach) summary.interrupted = s.pending[0]!;
    return s.failed.length === 0 && s.pending.length === 0;
  };
  const execute = async (runs: StudyRun[], phase: string): Promise<boolean> => {
    if (options.queue) return viaQueue(runs, phase);
    const done = finishedRuns(plan);
    for (const [i, run] of runs.entries()) {
      if (done.has(run.name)) {
        if (!summary.skipped.includes(run.name) && !summary.completed.includes(run.name))
          summary.skipped.push(run.name);
        continue;
      }
      if (options.signal?.aborted) {
        summary.interrupted = run.name;
        return false;
      }
      const runDir = runDirOf(parseTrainConfig(run.config));
      if (!options.quiet) {
        log(
          `[${phase} ${i + 1}/${runs.length}] ${run.name}: ${run.steps} steps, ${run.D.toLocaleString("en-US")} tokens, ` +
            `C=${run.C.toExponential(2)}${existsSync(runDir) ? " (resuming)" : ""}`,
        );
      }
      const result = await train(run.config, {
        resume: true,
        sweepId: plan.studyId,
        quiet: true,
        log,
        progressBar: false,
        handleSignals: false,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (result.interrupted) {
        summary.interrupted = run.name;
        return false;
      }
      summary.completed.push(run.name);
      if (!options.quiet) log(`    validation loss ${result.valLoss?.toFixed(4) ?? "-"}`);
    }
    return true;
  };
  // Learning-rate sweeps, extended while a recipe's best factor is at an edge.
  for (;;) {
    const pending = pendingTuningRuns(plan, tuning(plan));
    if (pending.length === 0) break;
    if (!(await execute(pending, "lr sweep"))) return summary;
  }
  const tuned = tuning(plan);
  for (const t of tuned) {
    if (!options.quiet) {
      const tried = t.losses.map((l) => `×${l.lrFactor}: ${l.loss.toFixed(4)}`).join(", ");
      log(
        `${t.recipe}: learning-rate factor ${t.best} (${tried})${t.atEdge ? " — at the edge of the sweep" : ""}`,
      );
    }
  }
  await execute(mainRuns(plan, tuned)!, "runs");
  return summary;
}
