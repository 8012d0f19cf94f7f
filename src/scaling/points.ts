// Scaling-law data points (one per training run) and how they get in: a CSV file, the shipped
// Chinchilla dataset, or run records from the registry. Every value is validated, and a bad one
// is reported with its row and column.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../backend/index.js";

/** One training run: N parameters trained on D tokens with C ≈ 6ND FLOPs, reaching `loss` (nats/token). */
export interface ScalingPoint {
  N: number;
  D: number;
  C: number;
  loss: number;
  /** Nominal compute budget of the run's IsoFLOP group, when known (sweeps record it). */
  budget?: number;
}

/** A run record as the registry or a caller may hold it: D or C (or both) must be present. */
export interface RunRecord {
  N: number;
  D?: number;
  C?: number;
  loss: number;
  budget?: number;
}

export type BuiltinDataset = "chinchilla";
export const BUILTIN_DATASETS: readonly BuiltinDataset[] = ["chinchilla"];

export interface LoadOptions {
  csv?: string;
  dataset?: string;
  runs?: readonly RunRecord[];
  /** Drop the K runs with the highest loss (Epoch AI's protocol uses K = 5 on the Chinchilla data). */
  excludeTopLoss?: number;
}

// Accepted header spellings, compared after lower-casing and removing everything but letters and digits.
const COLUMN_ALIASES: Record<"N" | "D" | "C" | "loss" | "budget", string[]> = {
  N: ["n", "params", "parameters", "nparams", "numparams", "modelsize", "modelparams", "size"],
  D: ["d", "tokens", "trainingtokens", "traintokens", "ntokens", "numtokens", "data", "datasize"],
  C: ["c", "flop", "flops", "compute", "trainingflop", "trainingflops", "trainflops", "computeflops"],
  loss: ["loss", "l", "finalloss", "evalloss", "valloss", "validationloss", "testloss", "trainloss"],
  budget: ["budget", "computebudget", "isoflop", "isoflopbudget"],
};

function normalizeHeader(h: string): string {
  return h.toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** Minimal RFC 4180 CSV: commas, double-quoted fields with "" escapes, CRLF or LF line ends. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += ch;
  }
  if (quoted) throw new Error("CSV: unterminated quoted field");
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0]!.trim() === ""));
}

/** Parse CSV text into points. `source` names the input in error messages. */
export function pointsFromCsv(text: string, source = "CSV"): ScalingPoint[] {
  const rows = parseCsv(text);
  if (rows.length < 2) throw new Error(`${source}: expected a header row and at least one data row`);
  const header = rows[0]!.map((h) => h.trim());
  const normalized = header.map(normalizeHeader);
  const find = (key: keyof typeof COLUMN_ALIASES): number => {
    for (const alias of COLUMN_ALIASES[key]) {
      const i = normalized.indexOf(alias);
      if (i >= 0) return i;
    }
    return -1;
  };
  const cols = { N: find("N"), D: find("D"), C: find("C"), loss: find("loss"), budget: find("budget") };
  const have = `found columns: ${header.map((h) => JSON.stringify(h)).join(", ")}`;
  if (cols.N < 0) throw new Error(`${source}: no model-size column (N, params, model size, ...); ${have}`);
  if (cols.loss < 0) throw new Error(`${source}: no loss column (loss, final_loss, eval_loss, ...); ${have}`);
  if (cols.D < 0 && cols.C < 0) {
    throw new Error(
      `${source}: need a tokens column (D, tokens, ...) or a compute column (C, flops, ...); ${have}`,
    );
  }
  const points: ScalingPoint[] = [];
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r]!;
    // Row numbers count data rows from 1; the file line is r + 1 (header is line 1), assuming no
    // quoted newlines.
    const where = (col: number) => `${source}: data row ${r} (line ${r + 1}), column "${header[col]}"`;
    const value = (col: number, optional = false): number | undefined => {
      const raw = (row[col] ?? "").trim();
      if (raw === "" && optional) return undefined;
      const v = Number(raw);
      if (raw === "" || !Number.isFinite(v) || v <= 0) {
        throw new Error(`${where(col)}: expected a positive finite number, got ${JSON.stringify(raw)}`);
      }
      return v;
    };
    const record: RunRecord = { N: value(cols.N)!, loss: value(cols.loss)! };
    if (cols.D >= 0) record.D = value(cols.D, cols.C >= 0);
    if (cols.C >= 0) record.C = value(cols.C, cols.D >= 0);
    if (record.D === undefined && record.C === undefined) {
      throw new Error(`${source}: data row ${r} (line ${r + 1}): both tokens and compute are empty`);
    }
    if (cols.budget >= 0) record.budget = value(cols.budget, true);
    points.push(pointFromRecord(record, `${source}: data row ${r}`));
  }
  return points;
}

/** Validate a run record and fill in D = C/(6N) or C = 6ND. */
export function pointFromRecord(run: RunRecord, where: string): ScalingPoint {
  const check = (name: string, v: unknown, optional: boolean): number | undefined => {
    if (v === undefined && optional) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new Error(`${where}: ${name} must be a positive finite number, got ${String(v)}`);
    }
    return v;
  };
  const N = check("N", run.N, false)!;
  const loss = check("loss", run.loss, false)!;
  let D = check("D", run.D, true);
  let C = check("C", run.C, true);
  if (D === undefined && C === undefined) throw new Error(`${where}: needs D (tokens) or C (FLOPs)`);
  if (D === undefined) D = C! / (6 * N);
  if (C === undefined) C = 6 * N * D;
  const point: ScalingPoint = { N, D, C, loss };
  const budget = check("budget", run.budget, true);
  if (budget !== undefined) point.budget = budget;
  return point;
}

export function pointsFromRuns(runs: readonly RunRecord[]): ScalingPoint[] {
  return runs.map((r, i) => pointFromRecord(r, `run ${i}`));
}

/** Drop the k highest-loss points (stable: ties keep input order). */
export function excludeTopLoss(points: readonly ScalingPoint[], k: number): ScalingPoint[] {
  if (!(Number.isInteger(k) && k >= 0))
    throw new Error(`excludeTopLoss: K must be a non-negative integer, got ${k}`);
  if (k === 0) return points.slice();
  if (k >= points.length) throw new Error(`excludeTopLoss: K = ${k} would drop all ${points.length} points`);
  const order = points.map((p, i) => ({ loss: p.loss, i })).sort((a, b) => b.loss - a.loss || a.i - b.i);
  const dropped = new Set(order.slice(0, k).map((o) => o.i));
  return points.filter((_, i) => !dropped.has(i));
}

/** Path of a shipped dataset. tsc does not copy .csv files, so it is read from the package's src/. */
export function builtinDatasetPath(name: BuiltinDataset): string {
  const path = join(packageRoot(), "src", "scaling", "data", `${name}.csv`);
  if (!existsSync(path)) throw new Error(`afterscale: shipped dataset file missing: ${path}`);
  return path;
}

export function loadBuiltinDataset(name: string): ScalingPoint[] {
  if (!(BUILTIN_DATASETS as readonly string[]).includes(name)) {
    throw new Error(
      `unknown dataset ${JSON.stringify(name)}; built-in datasets: ${BUILTIN_DATASETS.join(", ")}`,
    );
  }
  const path = builtinDatasetPath(name as BuiltinDataset);
  return pointsFromCsv(readFileSync(path, "utf8"), `dataset ${name}`);
}

/** Load points from exactly one of csv / dataset / runs, then apply excludeTopLoss. */
export function loadPoints(options: LoadOptions): ScalingPoint[] {
  const sources = [options.csv, options.dataset, options.runs].filter((s) => s !== undefined).length;
  if (sources !== 1) throw new Error("loadPoints: give exactly one of csv, dataset or runs");
  let points: ScalingPoint[];
  if (options.csv !== undefined) {
    if (!existsSync(options.csv)) throw new Error(`CSV file not found: ${options.csv}`);
    points = pointsFromCsv(readFileSync(options.csv, "utf8"), options.csv);
  } else if (options.dataset !== undefined) {
    points = loadBuiltinDataset(options.dataset);
  } else {
    points = pointsFromRuns(options.runs!);
  }
  return excludeTopLoss(points, options.excludeTopLoss ?? 0);
}
