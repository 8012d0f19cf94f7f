// What travels through the queue. A job is one training run: its full trainer config (whose root and
// runName name the run folder on storage every worker reaches). Progress is the run's latest step, and
// the job's return value its final figures, which the coordinator (the sweep or study process) writes
// into the run registry: workers never open registry.sqlite, so no two machines write one SQLite file.
import type { MachineInfo, TrainConfigInput, TrainResult } from "../train/index.js";

/** The one BullMQ queue every sweep, study and worker uses (jobs carry their group). */
export const QUEUE_NAME = "afterscale-runs";
export const JOB_FORMAT = "afterscale-run";

/** Attempts of a job that throws (a bad config, a missing dataset) before it is marked failed. */
export const DEFAULT_ATTEMPTS = 3;
/** Milliseconds between those attempts. */
export const RETRY_DELAY_MS = 1000;

export interface RunJob {
  format: typeof JOB_FORMAT;
  version: 1;
  /** The sweep or study id the run belongs to (the registry's sweep_id). */
  group: string;
  runName: string;
  /** Absolute run folder (root/runName): where checkpoints live, on storage every worker reaches. */
  runDir: string;
  config: TrainConfigInput;
}

export interface RunProgress {
  /** The worker holding the run: "<host>:<pid>[/<slot>]". */
  worker: string;
  step: number;
  steps: number;
  loss: number | null;
  /** Step the run (re)started from on this worker: > 0 after a resume from a checkpoint. */
  resumedFrom: number;
}

/** A run's final figures as train() returns them (see TrainResult), and what only the worker knows. */
export type RunOutcome = Pick<
  TrainResult,
  | "runName"
  | "runDir"
  | "step"
  | "steps"
  | "resumedFrom" // 0 fresh; > 0 resumed on this worker; = steps when the folder was already done
  | "alreadyFinished" // the run folder already held the finished run: nothing was trained again
  | "loss"
  | "valLoss"
  | "valTokens"
  | "valEstimate"
  | "valMetrics"
  | "tokens"
  | "elapsedSeconds"
  | "tokensPerSecond"
  | "config"
  | "modelConfig"
  | "parameters"
> & {
  worker: string;
  flopsPerToken: number;
  machine: MachineInfo;
  gitRevision: string | null;
};

/** The BullMQ job id of a run: stable, so enqueueing a run twice adds it once. */
export function jobIdOf(group: string, runName: string): string {
  return `${group}.${runName}`;
}

/** A job's data, checked: what a worker accepts before training anything. */
export function readRunJob(data: unknown): RunJob {
  const d = data as Partial<RunJob> | null;
  if (!d || d.format !== JOB_FORMAT || d.version !== 1)
    throw new Error(`not an afterscale run job (format ${JSON.stringify(d?.format)}, version ${d?.version})`);
  if (typeof d.runName !== "string" || typeof d.runDir !== "string" || typeof d.group !== "string")
    throw new Error("afterscale run job without runName, runDir or group");
  if (!d.config || typeof d.config !== "object") throw new Error(`run job ${d.runName}: no config`);
  return d as RunJob;
}
