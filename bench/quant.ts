// The quantized-decode rows of `npm run bench`: batch-1 decode of one config's weights as F32, Q8_0 and Q4_0
// GGUF files, afterscale (bench/quant-decode.ts, weights kept in their type) against llama.cpp
// (bench/llamacpp-bench.ts) on the same file and thread count, interleaved file by file and repeated, each
// figure the best of its repetitions (the machine may be shared; a load spike then costs both sides alike).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { quantizeGguf } from "../src/io/gguf-quantize.js";
import type { BenchJob, ConfigName, SideResult } from "./configs.js";

export const QUANT_TYPES = ["f32", "q8_0", "q4_0"] as const;
export type QuantFileType = (typeof QUANT_TYPES)[number];

export interface QuantDecode {
  type: QuantFileType;
  fileMiB: number;
  afterscale: SideResult;
  llamacpp: SideResult;
}

type Runner = (args: string[]) => SideResult;
/** llama.cpp on one job at its best thread count (bench/index.ts: llamaCppAtBest). */
type LlamaRunner = (job: BenchJob & { modelPath: string; promptIds: number[] }, tag: string) => SideResult;

const best = (runs: SideResult[]): SideResult =>
  runs.reduce((a, b) => ((b.decodeTokensPerSecond ?? 0) > (a.decodeTokensPerSecond ?? 0) ? b : a));

/**
 * Writes the Q8_0 and Q4_0 files next to `f32Path` (llama-quantize's bytes, `afterscale quantize`) and
 * measures each type `reps` times.
 */
export function measureQuantDecode(
  name: ConfigName,
  job: BenchJob & { promptIds: number[] },
  f32Path: string,
  dir: string,
  reps: number,
  afterscale: Runner,
  llamacpp: LlamaRunner,
  log: (m: string) => void,
): QuantDecode[] {
  const f32 = readFileSync(f32Path);
  const paths: Record<QuantFileType, string> = { f32: f32Path, q8_0: "", q4_0: "" };
  const sizes: Record<string, number> = { f32: f32.length };
  for (const t of ["q8_0", "q4_0"] as const) {
    const q = quantizeGguf(f32, t, f32Path).bytes;
    paths[t] = join(dir, `${name}.${t}.gguf`);
    writeFileSync(paths[t], q);
    sizes[t] = q.length;
  }
  const jobPath = join(dir, `${name}-quant.json`);
  writeFileSync(jobPath, JSON.stringify(job));
  const runs = new Map<QuantFileType, { a: SideResult[]; l: SideResult[] }>(
    QUANT_TYPES.map((t) => [t, { a: [], l: [] }]),
  );
  for (let r = 0; r < reps; r++)
    for (const t of QUANT_TYPES) {
      log(`quantized decode ${t} (${r + 1}/${reps}): afterscale, llama.cpp …`);
      runs.get(t)!.a.push(afterscale([jobPath, paths[t]]));
      runs.get(t)!.l.push(llamacpp({ ...job, modelPath: paths[t], prefillReps: 1 }, `${t}-${r}`));
    }
  return QUANT_TYPES.map((t) => ({
    type: t,
    fileMiB: sizes[t]! / 2 ** 20,
    afterscale: best(runs.get(t)!.a),
    llamacpp: best(runs.get(t)!.l),
  }));
}
