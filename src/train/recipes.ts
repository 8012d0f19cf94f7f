// Recipes: named, versioned sets of training-config fields (recipes/*.json in the package, or any JSON
// file). A recipe may start from another (`base`) and lists its changes as named levers, so a study can add
// each lever alone to a baseline or remove it from the full recipe. Flags and config files override it.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { z } from "zod";
import { packageRoot } from "../backend/index.js";

/** Fields a recipe may not set: they say where and how long a run trains, or how big the model is. */
export const NON_RECIPE_FIELDS = [
  "recipe",
  "root",
  "runName",
  "steps",
  "tokens",
  "data",
  "vocab",
  "seed",
  "model",
  "dModel",
  "layers",
  "heads",
  "kvHeads",
] as const;

const fieldsSchema = z.record(z.string(), z.unknown());

const recipeFileSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits, '.', '_' and '-'"),
    description: z.string().min(1),
    /** Another recipe this one starts from. */
    base: z.string().min(1).optional(),
    /** Settings that are part of the recipe but not levers to ablate. */
    config: fieldsSchema.default({}),
    /** Named changes, each one or more fields; ablations add or remove one at a time. */
    levers: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/), fieldsSchema).default({}),
  })
  .strict();

export interface Recipe {
  name: string;
  description: string;
  /** Where it was read from. */
  path: string;
  base: Recipe | null;
  /** This recipe's own levers (not its base's). */
  levers: Record<string, Record<string, unknown>>;
  /** Every field: the base's, then `config`, then every lever's. */
  fields: Record<string, unknown>;
  /** The fields without one of this recipe's levers. */
  without(lever: string): Record<string, unknown>;
}

/** The folder of the recipes that ship with afterscale. */
export function builtinRecipeDir(): string {
  return join(packageRoot(), "recipes");
}

/** Names of the shipped recipes. */
export function builtinRecipes(): string[] {
  const dir = builtinRecipeDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -5))
    .sort();
}

function recipePath(spec: string): string {
  if (spec.endsWith(".json") || spec.includes("/") || spec.includes("\\")) {
    if (!existsSync(spec)) throw new Error(`recipe ${spec}: no such file`);
    return resolve(spec);
  }
  const path = join(builtinRecipeDir(), `${spec}.json`);
  if (!existsSync(path)) {
    throw new Error(
      `recipe ${JSON.stringify(spec)}: not a shipped recipe (${builtinRecipes().join(", ")}) or a .json file`,
    );
  }
  return path;
}

/** Loads a recipe by name (shipped) or path, with its base chain; errors name the file and the field. */
export function loadRecipe(spec: string, seen: string[] = []): Recipe {
  const path = recipePath(spec);
  if (seen.includes(path))
    throw new Error(`recipe ${spec}: its base chain loops (${[...seen, path].join(" → ")})`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`recipe ${path}: ${(e as Error).message}`);
  }
  const r = recipeFileSchema.safeParse(raw);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.join(".") || "recipe"}: ${i.message}`).join("; ");
    throw new Error(`recipe ${path}: ${msg}`);
  }
  const file = r.data;
  if (!spec.endsWith(".json") && file.name !== basename(path, ".json"))
    throw new Error(`recipe ${path}: its name ${JSON.stringify(file.name)} differs from its file name`);
  const check = (where: string, fields: Record<string, unknown>) => {
    for (const k of Object.keys(fields)) {
      if ((NON_RECIPE_FIELDS as readonly string[]).includes(k))
        throw new Error(`recipe ${path}: ${where} sets ${k}, which is the run's choice, not the recipe's`);
    }
  };
  check("config", file.config);
  for (const [name, fields] of Object.entries(file.levers)) check(`lever ${name}`, fields);
  const base = file.base ? loadRecipe(file.base, [...seen, path]) : null;
  const merge = (skip: string | null) => {
    const out: Record<string, unknown> = { ...(base?.fields ?? {}), ...file.config };
    for (const [name, fields] of Object.entries(file.levers)) if (name !== skip) Object.assign(out, fields);
    return out;
  };
  return {
    name: file.name,
    description: file.description,
    path,
    base,
    levers: file.levers,
    fields: merge(null),
    without(lever: string) {
      if (!(lever in file.levers))
        throw new Error(
          `recipe ${file.name} has no lever ${lever} (it has ${Object.keys(file.levers).join(", ")})`,
        );
      return merge(lever);
    },
  };
}

/** A config input with its recipe's fields filled in under the fields given explicitly. */
export function applyRecipe(input: Record<string, unknown>): Record<string, unknown> {
  if (typeof input.recipe !== "string") return input;
  return { ...loadRecipe(input.recipe).fields, ...input };
}
