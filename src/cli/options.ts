// Parsers for option values, so a bad flag is an error that names the flag and what it accepts.
import { readFileSync } from "node:fs";
import { InvalidArgumentError, Option } from "commander";
import type { TrainField } from "../train/index.js";

export function int(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got "${value}"`);
    }
    return n;
  };
}

export function num(min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a number in [${min}, ${max}], got "${value}"`);
    }
    return n;
  };
}

export function oneOf<T extends string>(allowed: readonly T[]) {
  return (value: string): T => {
    if (!(allowed as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`expected one of ${allowed.join(", ")}, got "${value}"`);
    }
    return value as T;
  };
}

/** Comma-separated numbers, e.g. --budgets 3e12,1e13. */
export function numList(value: string): number[] {
  const parts = value.split(",").map((s) => s.trim());
  const nums = parts.map(Number);
  if (parts.some((p) => p === "") || nums.some((n) => !Number.isFinite(n))) {
    throw new InvalidArgumentError(`expected comma-separated numbers, got "${value}"`);
  }
  return nums;
}

/** Writes either the JSON form or the human form of a result. */
export function output(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function fieldParser(f: TrainField): (v: string) => unknown {
  switch (f.type) {
    case "integer":
      return int();
    case "number":
      return num();
    case "boolean":
      return (v: string) => {
        if (v !== "true" && v !== "false")
          throw new InvalidArgumentError(`expected true or false, got "${v}"`);
        return v === "true";
      };
    default:
      return (v: string) => v;
  }
}

/** The flag for one trainer config field (`train` and `sweep` generate theirs from the schema). */
export function trainFieldOption(f: TrainField, description = f.description): Option {
  // The default goes in the text, not opt.default(): an unset flag must stay undefined, so that it does
  // not override a --config file (commander prints a default only when it would fill the value in).
  const dflt = f.default !== undefined ? ` (default: ${String(f.default)})` : "";
  const opt = new Option(`--${kebab(f.name)} <value>`, `${description}${dflt}`).argParser(fieldParser(f));
  if (f.allowed) opt.choices(f.allowed);
  return opt;
}

/** The trainer fields given on the command line. */
export function givenTrainFields(
  o: Record<string, unknown>,
  fields: readonly TrainField[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) if (o[f.name] !== undefined) out[f.name] = o[f.name];
  return out;
}

/**
 * The first SIGINT/SIGTERM aborts the returned signal (the job checkpoints its current run and stops); a
 * second one exits at once. `release` removes the handlers.
 */
export function abortOnSignals(what: string): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(
      `${sig}: checkpointing the current run, then stopping the ${what} (again to quit at once)\n`,
    );
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    release: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

/** A `--config` file: a JSON object of run fields, or an error naming the file. */
export function readConfigFile(path: string): Record<string, unknown> {
  let input: unknown;
  try {
    input = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`--config ${path}: ${(e as Error).message}`);
  }
  if (!input || typeof input !== "object" || Array.isArray(input))
    throw new Error(`--config ${path}: not a JSON object`);
  return input as Record<string, unknown>;
}
