// Messages between the HTTP thread and the inference worker. Everything here is structured-clone data.
import type { ModelConfig } from "../nn/index.js";
import type { HeadRef, InspectReport } from "./inspect.js";

/** One sequence to generate: an already tokenized prompt and its sampling settings. */
export interface SequenceRequest {
  /** Unique per sequence (a request with n choices submits n sequences). */
  id: number;
  prompt: Int32Array;
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** In (0, 1]. */
  topP: number;
  /** Seeds this sequence's own sampler, so its text does not depend on what else is in the batch. */
  seed: number;
  stop: string[];
  /** End at <|endoftext|> (false: the vLLM-style ignore_eos, used by load tests). */
  stopAtEndOfText: boolean;
  /** Further tokens that end the sequence with "stop", their text not emitted (a chat model's <|im_end|>). */
  stopIds?: number[];
}

export type FinishReason = "stop" | "length" | "cancelled" | "error";

export type SequenceEvent =
  /** New safe text (may be "" when a token only completed part of a character or may start a stop string). */
  | { type: "token"; id: number; delta: string }
  | {
      type: "done";
      id: number;
      finishReason: FinishReason;
      promptTokens: number;
      completionTokens: number;
      /** Set when finishReason is "error". */
      message?: string;
    };

/**
 * Where the worker gets its model: a model spec for loadModel (run name, run or checkpoint folder, Hugging
 * Face folder, GGUF file; run names are looked up in `root`, default $AFTERSCALE_HOME or ./runs), or weights
 * copied from the caller.
 */
export type ModelSource =
  | { kind: "spec"; spec: string; root?: string }
  | {
      kind: "weights";
      config: ModelConfig;
      weights: { name: string; shape: number[]; data: Float32Array }[];
      tokenizerJson: string;
    };

/** Prompt tokens fed per step, over all new sequences, unless told otherwise. */
export const DEFAULT_PREFILL_CHUNK = 128;

export interface WorkerInit {
  source: ModelSource;
  maxBatch: number;
  prefillChunk: number;
  /** Kernel threads for the native backend (null: its default). */
  threads: number | null;
}

/** One prompt for the inspect page's analyses (src/serve/inspect.ts), run between decode steps. */
export interface InspectJob {
  id: number;
  ids: number[];
  ablate: HeadRef[];
  top: number;
}

export type ToWorker =
  | { type: "submit"; sequences: SequenceRequest[] }
  | { type: "cancel"; ids: number[] }
  | ({ type: "inspect" } & InspectJob);

/** What the worker loaded, as the resolver described it. */
export interface LoadedModelInfo {
  /** A short name: the run's name, the file or folder name, or "afterscale" for an in-memory model. */
  name: string;
  /** The checkpoint folder, "<format> <path>" for an import, or "in-memory model". */
  source: string;
  /** Training step of the loaded checkpoint (null for imported and in-memory models). */
  step: number | null;
}

export type FromWorker =
  | {
      type: "ready";
      config: ModelConfig;
      tokenizerJson: string;
      model: LoadedModelInfo;
      /** The resolver's notes and warnings (skipped checkpoints, importer assumptions), for the user. */
      notes: string[];
    }
  | { type: "events"; events: SequenceEvent[]; active: number; waiting: number }
  | { type: "inspected"; id: number; report: InspectReport }
  | { type: "inspected"; id: number; error: string }
  | { type: "fatal"; message: string };
