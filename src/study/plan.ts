// A study plan: which runs price each recipe in compute. Every recipe (and, with ablations, every recipe
// with one lever added to the baseline or removed from the full recipe) is a "variant"; each variant trains
// the same model size at every compute budget and seed. Learning rates are tuned per recipe first: a
// sweep of lr × factor at the smallest budget and first seed, whose best factor the recipe's other runs use.
//
// Compute is counted per variant (its own FLOPs per token, plus the optimizer's matmuls per step: Muon's
// Newton–Schulz), so a lever that costs FLOPs gets fewer tokens
// at the same budget, and sizes must agree (non-embedding parameters within 5% of the baseline's): a
// bigger model is never counted as a better recipe.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { readDatasetMeta } from "../data/index.js";
import { writeFileAtomic } from "../io/index.js";
import { parameterCounts, trainingFlopsPerToken } from "../nn/index.js";
import {
  loadRecipe,
  modelConfigFor,
  optimizerFlopsPerStep,
  parseTrainConfig,
  type Recipe,
  resolveDataDir,
  type TrainConfigInput,
  tokensPerStep,
} from "../train/index.js";

export const STUDY_FORMAT = "afterscale-study";
/** Non-embedding parameters of every variant must be within this fraction of the baseline's. */
export const SIZE_TOLERANCE = 0.05;
export const DEFAULT_LR_FACTORS = [0.5, 1, 2] as const;
/** Fields that a study sets per run, or that recipes set: not shared settings. */
export const STUDY_OWNED_FIELDS = ["recipe", "steps", "tokens", "runName", "seed"] as const;

export interface Variant {
  /** "gpt2", "afterscale", "add.muon" (baseline + lever), "drop.muon" (full recipe − lever). */
  id: string;
  kind: "recipe" | "add" | "drop";
  /** The recipe whose tuned learning-rate factor this variant uses. */
  tuneFrom: string;
  /** Recipe fields (before the shared settings and the study's own). */
  fields: Record<string, unknown>;
  description: string;
  nonEmbedding: number;
  totalParams: number;
  flopsPerToken: number;
  /** Matmul FLOPs of one optimizer update (Muon's Newton–Schulz; 0 for AdamW), counted as compute too. */
  optimizerFlopsPerStep: number;
}

export interface StudyRun {
  name: string;
  variant: string;
  budget: number;
  seed: number;
  lrFactor: number;
  steps: number;
  /** Tokens trained and FLOPs spent (flopsPerToken × tokens + optimizerFlopsPerStep × steps). */
  D: number;
  C: number;
  config: TrainConfigInput;
}

export interface StudyPlan {
  format: typeof STUDY_FORMAT;
  version: 1;
  studyId: string;
  createdAt: string;
  /** Recipes in order; the first is the baseline. */
  recipes: string[];
  budgets: number[];
  seeds: number[];
  lrFactors: number[];
  ablate: boolean;
  /** Shared trainer settings (root, data, model size, batch, context …). */
  train: TrainConfigInput;
  vocab: number;
  trainTokens: number;
  variants: Variant[];
  warnings: string[];
}

export interface StudyOptions {
  studyId: string;
  recipes: string[];
  /** Compute budgets in FLOPs; default: the quick study (see quickBudgets). */
  budgets?: number[];
  seeds?: number[];
  lrFactors?: number[];
  ablate?: boolean;
  train?: TrainConfigInput;
  log?: (message: string) => void;
}

/** Tokens per run of the quick study that `npm start` runs (about 10 minutes at micro on 2 cores). */
export const QUICK_TOKENS = [0.5e6, 1e6, 2e6] as const;

export function validateStudyId(id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id))
    throw new Error(`study id ${JSON.stringify(id)}: use letters, digits, '.', '_' and '-'`);
  return id;
}

function label(x: number): string {
  const [m, e] = x.toExponential(2).split("e");
  return `${String(Number(m))}e${Number(e)}`;
}

function factorLabel(f: number): string {
  return String(f).replace(/[^0-9.]/g, "");
}

/** The learning-rate fields of a config, scaled (AdamW's lr, and Muon's when the recipe uses it). */
function scaledLr(fields: Record<string, unknown>, factor: number): Record<string, unknown> {
  const c = parseTrainConfig({ ...fields, runName: "lr" }) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { lr: (c.lr as number) * factor };
  if (typeof c.muonLr === "number") out.muonLr = c.muonLr * factor;
  return out;
}

function variantsOf(
  recipes: Recipe[],
  ablate: boolean,
): Omit<Variant, "nonEmbedding" | "totalParams" | "flopsPerToken" | "optimizerFlopsPerStep">[] {
  const out: Omit<Variant, "nonEmbedding" | "totalParams" | "flopsPerToken" | "optimizerFlopsPerStep">[] =
    recipes.map((r) => ({
      id: r.name,
      kind: "recipe",
      tuneFrom: r.name,
      fields: r.fields,
      description: r.description,
    }));
  if (ablate) {
    const baseline = recipes[0]!;
    const full = recipes[recipes.length - 1]!;
    if (full === baseline) throw new Error("study --ablate: give a baseline and a recipe with levers");
    const levers = Object.keys(full.levers);
    if (levers.length === 0) throw new Error(`study --ablate: recipe ${full.name} lists no levers`);
    for (const lever of levers) {
      out.push({
        id: `add.${lever}`,
        kind: "add",
        tuneFrom: baseline.name,
        fields: { ...baseline.fields, ...full.levers[lever] },
        description: `${baseline.name} + ${lever}`,
      });
      out.push({
        id: `drop.${lever}`,
        kind: "drop",
        tuneFrom: full.name,
        fields: full.without(lever),
        description: `${full.name} − ${lever}`,
      });
    }
  }
  return out;
}

/** Plans a study without training anything (prepares a built-in corpus once to read its vocabulary). */
export function planStudy(options: StudyOptions): StudyPlan {
  const studyId = validateStudyId(options.studyId);
  if (options.recipes.length < 2)
    throw new Error("study: give at least two recipes (the first is the baseline)");
  if (new Set(options.recipes).size !== options.recipes.length)
    throw new Error("study: a recipe is listed twice");
  const shared: Record<string, unknown> = { ...(options.train ?? {}) };
  for (const k of STUDY_OWNED_FIELDS)
    if (shared[k] !== undefined)
      throw new Error(`study: ${k} is chosen by the study for each run; do not set it`);
  const seeds = options.seeds ?? [1337];
  const lrFactors = [...(options.lrFactors ?? DEFAULT_LR_FACTORS)].sort((a, b) => a - b);
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s) || s < 0))
    throw new Error("study: seeds must be non-negative integers");
  if (lrFactors.length < 3 || lrFactors.some((f) => !(f > 0)))
    throw new Error("study: give at least 3 positive learning-rate factors (a fair baseline is tuned)");
  const base = parseTrainConfig({ ...shared, runName: `${studyId}-plan` });
  shared.root = base.root;
  const dataDir = resolveDataDir(base, options.log ?? (() => {}));
  const meta = readDatasetMeta(dataDir);
  const recipes = options.recipes.map((r) => loadRecipe(r));
  const variants: Variant[] = variantsOf(recipes, options.ablate ?? false).map((v) => {
    const c = parseTrainConfig({ ...v.fields, ...shared, runName: "size" });
    const m = modelConfigFor(c, meta.vocabSize);
    const counts = parameterCounts(m);
    return {
      ...v,
      nonEmbedding: counts.nonEmbedding,
      totalParams: counts.total,
      flopsPerToken: trainingFlopsPerToken(m),
      optimizerFlopsPerStep: optimizerFlopsPerStep(m, c.optimizer),
    };
  });
  const ref = variants[0]!;
  for (const v of variants) {
    const ratio = v.nonEmbedding / ref.nonEmbedding;
    if (Math.abs(ratio - 1) > SIZE_TOLERANCE) {
      throw new Error(
        `study: ${v.id} has ${v.nonEmbedding.toLocaleString("en-US")} non-embedding parameters, ` +
          `${((ratio - 1) * 100).toFixed(1)}% off the baseline ${ref.id}'s ${ref.nonEmbedding.toLocaleString("en-US")}; ` +
          `a study compares recipes at one size (within ${SIZE_TOLERANCE * 100}%)`,
      );
    }
  }
  const budgets = options.budgets
    ? [...new Set(options.budgets)].sort((a, b) => a - b)
    : QUICK_TOKENS.map((t) => Number((t * ref.flopsPerToken).toPrecision(2)));
  if (budgets.length < 2 || budgets.some((b) => !(Number.isFinite(b) && b > 0)))
    throw new Error("study: give at least two positive compute budgets (FLOPs)");
  const plan: StudyPlan = {
    format: STUDY_FORMAT,
    version: 1,
    studyId,
    createdAt: new Date().toISOString(),
    recipes: recipes.map((r) => r.name),
    budgets,
    seeds,
    lrFactors,
    ablate: options.ablate ?? false,
    train: shared as TrainConfigInput,
    vocab: meta.vocabSize,
    trainTokens: meta.train.tokens,
    variants,
    warnings: [],
  };
  // Every run must be valid before anything trains.
  for (const v of variants) for (const b of budgets) studyRun(plan, v, b, seeds[0]!, lrFactors[0]!);
  const longest = Math.max(
    ...variants.map((v) => studyRun(plan, v, budgets[budgets.length - 1]!, seeds[0]!, 1).D),
  );
  if (longest > meta.train.tokens) {
    plan.warnings.push(
      `the longest run trains on ${(longest / meta.train.tokens).toFixed(1)}× the dataset's ` +
        `${meta.train.tokens.toLocaleString("en-US")} training tokens: data repeats`,
    );
  }
  return plan;
}

/** One run of a variant at a budget, seed and learning-rate factor (deterministic name, so reruns resume). */
export function studyRun(
  plan: StudyPlan,
  v: Variant,
  budget: number,
  seed: number,
  lrFactor: number,
): StudyRun {
  const perStep = tokensPerStep(parseTrainConfig({ ...v.fields, ...plan.train, runName: "x" }));
  const steps = Math.max(1, Math.round(budget / (v.flopsPerToken * perStep + v.optimizerFlopsPerStep)));
  const name = `${plan.studyId}-${v.id}-C${label(budget)}-s${seed}-lr${factorLabel(lrFactor)}`;
  const config: Record<string, unknown> = {
    ...v.fields,
    ...plan.train,
    ...scaledLr({ ...v.fields, ...plan.train }, lrFactor),
    seed,
    steps,
    runName: name,
  };
  // Warmup scales with the run (5%), evaluation happens once at the end on the whole validation split,
  // and checkpoints let a killed study resume mid-run.
  if (config.warmupSteps === undefined) config.warmupSteps = Math.max(1, Math.round(0.05 * steps));
  if (config.evalInterval === undefined) config.evalInterval = 0;
  if (config.checkpointInterval === undefined) config.checkpointInterval = Math.max(1, Math.ceil(steps / 5));
  parseTrainConfig(config);
  const D = steps * perStep;
  return {
    name,
    variant: v.id,
    budget,
    seed,
    lrFactor,
    steps,
    D,
    C: D * v.flopsPerToken + steps * v.optimizerFlopsPerStep,
    config: config as TrainConfigInput,
  };
}

// ---------------------------------------------------------------- plan files

export function studyPlanPath(root: string, studyId: string): string {
  return join(resolve(root), "studies", `${validateStudyId(studyId)}.json`);
}

export function saveStudyPlan(plan: StudyPlan): string {
  const path = studyPlanPath(String(plan.train.root), plan.studyId);
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, `${JSON.stringify(plan, null, 2)}\n`);
  return path;
}

export function loadStudyPlan(root: string, studyId: string): StudyPlan {
  const path = studyPlanPath(root, studyId);
  if (!existsSync(path))
    throw new Error(`no study ${JSON.stringify(studyId)} under ${resolve(root)} (no ${path})`);
  let plan: StudyPlan;
  try {
    plan = JSON.parse(readFileSync(path, "utf8")) as StudyPlan;
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  if (plan.format !== STUDY_FORMAT || plan.version !== 1)
    throw new Error(`${path}: not an afterscale study plan`);
  return plan;
}

/** Why a stored plan and a new one differ, or null when they describe the same runs. */
export function studyPlanDifference(a: StudyPlan, b: StudyPlan): string | null {
  const key = (p: StudyPlan) =>
    JSON.stringify([
      p.recipes,
      p.budgets,
      p.seeds,
      p.lrFactors,
      p.ablate,
      p.train,
      p.variants.map((v) => [v.id, v.fields]),
    ]);
  return key(a) === key(b)
    ? null
    : "the recipes, budgets, seeds, learning-rate factors or shared settings differ";
}
