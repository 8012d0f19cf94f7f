// The afterscale side of the quantized-decode rows, for one GGUF file in its own process (so its RSS is the
// file's own):
//   node dist/bench/quant-decode.js <job.json> <model.gguf>
// Loads the file as sample/eval/serve do (importModel with packed weights: F32 stays F32, Q8_0/Q4_0 stay in
// their blocks), records the resident set after loading, then decodes as bench/train.ts does: the first
// job.decodePrompt prompt tokens, then job.decodeTokens greedy tokens one at a time with the KV cache.
// Prints one JSON object (decodeTokensPerSecond, peakRssMiB = resident set after load, generated ids).
import { readFileSync } from "node:fs";
import { importModel } from "../src/io/index.js";
import { type BenchJob, median, type SideResult } from "./configs.js";
import { timedGreedyDecode } from "./decode.js";

function main(): void {
  const job = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as BenchJob & { promptIds: number[] };
  const { model } = importModel(process.argv[3]!, { packed: true });
  (globalThis as { gc?: () => void }).gc?.(); // the file's buffer is garbage once the weights are copied out
  const loadedRssMiB = process.memoryUsage().rss / 2 ** 20;
  const { generated, perTokenSeconds } = timedGreedyDecode(
    model,
    Int32Array.from(job.promptIds.slice(0, job.decodePrompt)),
    job.decodeTokens,
  );
  const result: SideResult & { generated: number[] } = {
    decodeTokensPerSecond: 1 / median(perTokenSeconds),
    peakRssMiB: loadedRssMiB,
    generated,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main();
