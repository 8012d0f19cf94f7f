// Training configuration: one flat, strict object (model shape + optimisation + bookkeeping), validated
// with zod so a bad field is named with what is allowed. CLI flags and JSON config files both map onto it.
import { resolve } from "node:path";
import { z } from "zod";
import {
  familyNames,
  type ModelConfig,
  mlpKinds,
  normKinds,
  parseModelConfig,
  positionKinds,
  preset,
  presetNames,
} from "../nn/index.js";
import { precisions } from "../tensor/index.js";
import { applyRecipe } from "./recipes.js";

export const scheduleNames = ["cosine", "wsd"] as const;
export { familyNames };
export const optimizerNames = ["adamw", "muon"] as const;

const int = (min: number) => z.number().int().min(min);

export const trainConfigSchema = z
  .object({
    recipe: z
      .string()
      .min(1)
      .optional()
      .describe(
        "a named recipe (recipes/*.json: gpt2, llama, afterscale, gpt2-muon) or a recipe file; flags override it",
      ),

    // ---- what the run optimises, and the model a fine-tune starts from
    objective: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/)
      .default("pretrain")
      .describe("what the run optimises: pretrain (train), sft, dpo or grpo; set by the command"),
    init: z
      .string()
      .min(1)
      .optional()
      .describe("the model a fine-tune starts from (a run name or folder, Hugging Face folder or GGUF file)"),
    objectiveConfig: z
      .record(z.string(), z.unknown())
      .optional()
      .describe("the objective's own settings (checked by the command that runs it)"),

    // ---- model: a preset by size and a family, optionally with explicit fields overriding the preset
    model: z.enum(presetNames).default("micro").describe("model size preset"),
    family: z.enum(familyNames).default("llama").describe("model family"),
    dModel: int(2).optional().describe("width (overrides the preset)"),
    layers: int(1).optional().describe("transformer blocks (overrides the preset)"),
    heads: int(1).optional().describe("attention heads (overrides the preset)"),
    kvHeads: int(1).optional().describe("key/value heads, grouped-query attention (overrides the preset)"),
    mlpRatio: z.number().positive().optional().describe("MLP width / dModel (overrides the preset)"),
    normEps: z.number().positive().optional().describe("norm epsilon (overrides the preset)"),
    ropeTheta: z.number().positive().optional().describe("rotary base (overrides the preset)"),
    tie: z
      .boolean()
      .optional()
      .describe(
        "tie the output head to the embedding (overrides the preset; untied adds vocab·dModel parameters)",
      ),
    // ---- the block's parts (levers); unset means the family's recipe
    norm: z
      .enum(normKinds)
      .optional()
      .describe("norm (default: the family's; layernorm adds a bias per norm)"),
    positions: z
      .enum(positionKinds)
      .optional()
      .describe("position encoding (default: the family's; learned adds context·dModel parameters)"),
    bias: z
      .boolean()
      .optional()
      .describe("biases on attention and MLP linears (default: the family's; adds parameters, not FLOPs)"),
    mlp: z
      .enum(mlpKinds)
      .optional()
      .describe("MLP (default: the family's; the width keeps the family's parameter count unless mlpHidden)"),
    mlpHidden: int(1).optional().describe("MLP hidden width exactly (overrides mlpRatio)"),
    qkNorm: z
      .boolean()
      .optional()
      .describe("RMSNorm on each head's q and k before rotary, Qwen3 (adds 2·headDim gains per layer)"),
    softcap: z.number().min(0).optional().describe("logit soft-cap c·tanh(z/c) (0: off; no parameters)"),
    zeroInit: z
      .boolean()
      .optional()
      .describe("zero-initialise o_proj, down_proj and an untied head (no parameters or FLOPs)"),
    dropout: z.number().min(0).lt(1).default(0).describe("residual dropout probability"),

    // ---- data: a prepared dataset folder, or the name of a built-in corpus (prepared on first use)
    data: z
      .string()
      .min(1)
      .default("brown")
      .describe(
        "prepared dataset folder, or a built-in corpus (brown, synthetic), prepared once under <root>/data",
      ),
    vocab: int(257)
      .max(65536)
      .default(4096)
      .describe("BPE vocabulary for a built-in corpus (a prepared folder brings its own tokenizer)"),
    batchSize: int(1).default(16).describe("sequences per micro-batch"),
    context: int(2).default(128).describe("tokens per sequence (the model's context)"),
    steps: int(1).optional().describe("optimizer steps (default 1000); or give tokens"),
    tokens: int(1).optional().describe("train for this many tokens: steps = ceil(tokens / tokens per step)"),
    gradAccum: int(1).default(1).describe("micro-batches per optimizer step"),
    precision: z
      .enum(precisions)
      .default("fp32")
      .describe(
        "bf16-mixed: matrix products in bf16 with float32 accumulation (weights, optimizer, norms, loss stay float32)",
      ),

    // ---- optimisation
    optimizer: z
      .enum(optimizerNames)
      .default("adamw")
      .describe(
        "adamw, or muon: Muon for the hidden matrices, AdamW (lr) for embeddings, head, gains, biases",
      ),
    lr: z.number().positive().default(3e-3).describe("peak learning rate"),
    muonLr: z
      .number()
      .positive()
      .default(0.02)
      .describe("muon: peak learning rate of the hidden matrices (the schedule scales it with lr)"),
    muonMomentum: z.number().min(0).lt(1).default(0.95).describe("muon: Nesterov momentum"),
    muonWeightDecay: z
      .number()
      .min(0)
      .default(0)
      .describe("muon: decoupled weight decay of the hidden matrices"),
    muonPrecision: z
      .enum(["fp32", "bf16"])
      .default("fp32")
      .describe(
        "muon: Newton–Schulz products in fp32, or in bf16 with fp32 accumulation (Keller Jordan's choice; " +
          "half the cost on CPUs with AVX-512 BF16, slower elsewhere)",
      ),
    minLrRatio: z.number().min(0).max(1).default(0.1).describe("the schedule ends at lr × minLrRatio"),
    warmupSteps: int(0).default(100).describe("linear warmup steps"),
    schedule: z.enum(scheduleNames).default("cosine").describe("learning-rate schedule after warmup"),
    decayFraction: z
      .number()
      .gt(0)
      .max(1)
      .default(0.2)
      .describe("wsd: fraction of the steps, at the end, that decay linearly"),
    weightDecay: z
      .number()
      .min(0)
      .default(0.1)
      .describe("AdamW decoupled weight decay (not on norms, biases, embeddings)"),
    beta1: z.number().min(0).lt(1).default(0.9).describe("AdamW beta1"),
    beta2: z.number().min(0).lt(1).default(0.95).describe("AdamW beta2"),
    eps: z.number().positive().default(1e-8).describe("AdamW epsilon"),
    gradClip: z.number().min(0).default(1).describe("global gradient-norm clip (0: off)"),

    // ---- evaluation, checkpoints, logging
    evalInterval: int(0)
      .default(100)
      .describe(
        "estimate the validation loss every N steps (0: never); the whole split is scored at the end",
      ),
    evalBatches: int(1).default(20).describe("validation batches per periodic estimate"),
    checkpointInterval: int(0)
      .default(200)
      .describe("checkpoint every N steps and at the end (0: only at the end)"),
    keepCheckpoints: int(1).default(3).describe("keep the newest K checkpoints"),
    logInterval: int(1).default(25).describe("plain progress line every N steps (when not on a terminal)"),
    seed: int(0)
      .max(2 ** 32 - 1)
      .default(1337)
      .describe("seed of the initial weights, batches and dropout"),

    root: z.string().min(1).optional().describe("runs folder (default $AFTERSCALE_HOME or ./runs)"),
    runName: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
        "letters, digits, '.', '_' and '-' only, not starting with . - _",
      )
      .optional()
      .describe("run folder name under root (default <model>-<family>-<UTC time>)"),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.steps !== undefined && c.tokens !== undefined && c.steps !== stepsForTokens(c, c.tokens)) {
      ctx.addIssue({
        code: "custom",
        path: ["tokens"],
        message: `give steps or tokens, not both (tokens ${c.tokens} means ${stepsForTokens(c, c.tokens)} steps, steps is ${c.steps})`,
      });
    }
  });

export type TrainConfigInput = z.input<typeof trainConfigSchema>;
type Parsed = z.output<typeof trainConfigSchema>;
/** A validated config with steps, root and runName filled in. */
export type TrainConfig = Parsed & { steps: number; root: string; runName: string };

/** Every default, as the schema fills them in (steps, root, runName are resolved by parseTrainConfig). */
export const trainDefaults: Readonly<Parsed> = Object.freeze(trainConfigSchema.parse({}));
export const DEFAULT_STEPS = 1000;

export function tokensPerStep(c: { batchSize: number; context: number; gradAccum: number }): number {
  return c.batchSize * c.context * c.gradAccum;
}

function stepsForTokens(
  c: { batchSize: number; context: number; gradAccum: number },
  tokens: number,
): number {
  return Math.ceil(tokens / tokensPerStep(c));
}

/** Describes one zod issue: the field, what was wrong, and for enums and unknown keys what is allowed. */
function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.join(".") || "config";
  if (issue.code === "unrecognized_keys") {
    const allowed = Object.keys(trainConfigSchema.shape).join(", ");
    return `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.join(", ")} (allowed: ${allowed})`;
  }
  if (issue.code === "invalid_value" && "values" in issue) {
    return `${field}: ${issue.message} (allowed: ${issue.values.map((v) => String(v)).join(", ")})`;
  }
  return `${field}: ${issue.message}`;
}

export interface TrainField {
  name: string;
  /** "number", "integer", "string", "boolean" or "enum". */
  type: string;
  /** Enum values. */
  allowed?: string[];
  default?: unknown;
  description: string;
}

/**
 * Fields that the command sets, not flags: what the run optimises, the model a fine-tune starts from
 * (`sft --model`) and the objective's own settings (its own flags).
 */
export const OBJECTIVE_FIELDS: readonly string[] = ["objective", "init", "objectiveConfig"];

/** Every flag-able config field with its type, allowed values, default and description (for --help). */
export function trainConfigFields(): TrainField[] {
  return schemaFields(trainConfigSchema).filter((f) => !OBJECTIVE_FIELDS.includes(f.name));
}

/** The fields of a flat zod object schema (trainConfigSchema, an objective's settings) as TrainFields. */
export function schemaFields(object: z.ZodObject): TrainField[] {
  return Object.entries(object.shape).map(([name, schema]) => {
    let inner: z.ZodType = schema as z.ZodType;
    let dflt: unknown;
    for (;;) {
      const def = (
        inner as unknown as { def: { type: string; innerType?: z.ZodType; defaultValue?: unknown } }
      ).def;
      if (def.type === "default") dflt = def.defaultValue;
      if ((def.type === "default" || def.type === "optional") && def.innerType) inner = def.innerType;
      else break;
    }
    const def = (
      inner as unknown as {
        def: { type: string; checks?: { _zod: { def: { check: string; format?: string } } }[] };
      }
    ).def;
    let type = def.type;
    const field: TrainField = { name, type, description: (schema as z.ZodType).description ?? "" };
    if (type === "enum") field.allowed = (inner as unknown as { options: string[] }).options;
    if (type === "number" && def.checks?.some((c) => c._zod.def.format === "safeint")) type = "integer";
    field.type = type;
    if (dflt !== undefined) field.default = dflt;
    return field;
  });
}

/** The default run root: $AFTERSCALE_HOME, else ./runs. */
export function defaultRoot(): string {
  return process.env.AFTERSCALE_HOME && process.env.AFTERSCALE_HOME.length > 0
    ? process.env.AFTERSCALE_HOME
    : "./runs";
}

function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/**
 * Validates a config (a plain object from flags or a JSON file), with its recipe's fields (if it names
 * one) under the ones given. Unknown fields and invalid values throw
 * an Error that names the field and the allowed values. Fills in steps (from tokens, or the default),
 * an absolute root, and a runName (<model>-<family>-<UTC time>) when none is given.
 */
export function parseTrainConfig(input: unknown): TrainConfig {
  const raw = (input ?? {}) as Record<string, unknown>;
  const withRecipe = raw && typeof raw === "object" && !Array.isArray(raw) ? applyRecipe(raw) : raw;
  const r = trainConfigSchema.safeParse(withRecipe);
  if (!r.success) {
    const from = withRecipe !== raw ? ` (with the fields of recipe ${String(raw.recipe)})` : "";
    throw new Error(`invalid train config${from}: ${r.error.issues.map(describeIssue).join("; ")}`);
  }
  const c = r.data;
  const steps = c.steps ?? (c.tokens !== undefined ? stepsForTokens(c, c.tokens) : DEFAULT_STEPS);
  const root = resolve(c.root ?? defaultRoot());
  const runName =
    c.runName ?? (c.init ? `${c.objective}-${timestamp()}` : `${c.model}-${c.family}-${timestamp()}`);
  return { ...c, steps, root, runName };
}

/** The model config for a training config and a vocabulary size (the dataset's). */
export function modelConfigFor(c: TrainConfig, vocab: number): ModelConfig {
  const base = preset(c.model, c.family, vocab, c.context);
  const overrides: Partial<ModelConfig> = {};
  for (const k of [
    "dModel",
    "layers",
    "heads",
    "kvHeads",
    "mlpRatio",
    "normEps",
    "ropeTheta",
    "tie",
    "norm",
    "positions",
    "bias",
    "mlp",
    "mlpHidden",
    "qkNorm",
    "softcap",
    "zeroInit",
  ] as const) {
    if (c[k] !== undefined) (overrides as Record<string, unknown>)[k] = c[k];
  }
  // gpt2 has no grouped-query attention: a heads override carries kvHeads along unless given.
  if (c.family === "gpt2" && c.heads !== undefined && c.kvHeads === undefined) overrides.kvHeads = c.heads;
  if (
    c.family === "llama" &&
    c.heads !== undefined &&
    c.kvHeads === undefined &&
    c.heads % base.kvHeads !== 0
  ) {
    overrides.kvHeads = c.heads;
  }
  return parseModelConfig({ ...base, ...overrides, dropout: c.dropout });
}

/** Where a run lives. */
export function runDirOf(c: Pick<TrainConfig, "root" | "runName">): string {
  return resolve(c.root, c.runName);
}
