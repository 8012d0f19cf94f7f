// sft, dpo and grpo as library calls and as the table the CLI builds its commands from: each is the one
// training loop (src/train runTraining) with its objective, its own settings (the run's objectiveConfig)
// and training defaults suited to fine-tuning (fewer steps, a lower rate than pretraining).
import type { z } from "zod";
import {
  type ObjectiveSetup,
  runTraining,
  type TrainConfigInput,
  type TrainOptions,
  type TrainResult,
} from "../train/index.js";
import { directPreferenceOptimisation, dpoSettingsSchema } from "./dpo.js";
import { groupRelativePolicyOptimisation, grpoSettingsSchema } from "./grpo.js";
import { sftSettingsSchema, supervisedFineTuning } from "./sft.js";

export interface FineTuneSpec {
  name: "sft" | "dpo" | "grpo";
  description: string;
  dataHelp: string;
  setup: ObjectiveSetup;
  settings: z.ZodObject;
  /** Training fields whose defaults differ from pretraining's. */
  defaults: Partial<TrainConfigInput>;
}

const common = { steps: 300, lr: 1e-3, warmupSteps: 20, evalInterval: 100, checkpointInterval: 100 };

export const FINE_TUNES: readonly FineTuneSpec[] = [
  {
    name: "sft",
    description:
      "Supervised fine-tuning: teach a model to chat (ChatML) on conversations or prompt-completion pairs; loss on the assistant's tokens only",
    dataHelp:
      'a JSONL file ({"messages":[…]} or {"prompt","completion"} per line), or task:NAME for a built-in task (afterscale tasks list)',
    setup: supervisedFineTuning,
    settings: sftSettingsSchema,
    defaults: common,
  },
  {
    name: "dpo",
    description:
      "Preference optimisation (DPO, IPO, hinge, robust) against the starting model as the frozen reference",
    dataHelp:
      'a JSONL file of {"prompt","chosen","rejected"} (strings or message lists), or task:NAME (chosen: the right answer, rejected: a wrong one)',
    setup: directPreferenceOptimisation,
    settings: dpoSettingsSchema,
    // Measured on addition (docs/feedback.md): 1e-5 helped, 1e-4 and 2e-4 hurt held-out accuracy.
    defaults: { ...common, lr: 1e-5 },
  },
  {
    name: "grpo",
    description:
      "Reinforcement learning with verifiable rewards (GRPO): sample a group of completions per prompt, reward them, move toward the better ones",
    dataHelp:
      'task:NAME (rewarded by the task\'s checker), or a JSONL file of {"prompt": text or messages, …} with --reward ./reward.js',
    setup: groupRelativePolicyOptimisation,
    settings: grpoSettingsSchema,
    // 2e-4 knocked the reward down for its first tens of steps in the measurements; 1e-4 did not.
    defaults: { ...common, lr: 1e-4, batchSize: 8, evalInterval: 50 },
  },
];

export function fineTuneSpec(name: string): FineTuneSpec {
  const spec = FINE_TUNES.find((f) => f.name === name);
  if (!spec)
    throw new Error(`no fine-tuning objective ${name} (${FINE_TUNES.map((f) => f.name).join(", ")})`);
  return spec;
}

/**
 * Runs (or with options.resume, continues) a fine-tune: `init` names the model to start from, `data` a
 * JSONL file or task:NAME, `objectiveConfig` the objective's settings; other fields are train's.
 */
export function fineTune(name: FineTuneSpec["name"]) {
  return (input: TrainConfigInput, options: TrainOptions = {}): Promise<TrainResult> => {
    const spec = fineTuneSpec(name);
    return runTraining(name, spec.setup, options.resume ? input : { ...spec.defaults, ...input }, options);
  };
}

export const sft = fineTune("sft");
export const dpo = fineTune("dpo");
export const grpo = fineTune("grpo");
