// The afterscale side of the quantized-decode rows, for one GGUF file in its own process (so its RSS is the
// file's own):
//   node dist/bench/quant-decode.js <job.json> <model.gguf>
// Loads the file as sample/eval/serve do (importModel with packed weights: F32 stays F32, Q8_0/Q4_0 stay in
// their blocks), records the resident set after loading, then decodes as bench/train.ts does: the first
// job.decodePrompt prompt tokens, then job.decodeTokens greedy tokens one at a time with the KV cache.
// Prints one JSON object (decodeTokensPerSecond, peakRssMiB = resident set after load, generated ids).
import { readFileSync } from "node:fs";
import { importModel } from "../src/io/index.js";
import { forward, newKVCache } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { type BenchJob, median, type SideResult } from "./configs.js";

function argmax(row: Float32Array | Float64Array, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (row[from + i]! > row[from + best]!) best = i;
  return best;
}

function main(): void {
  const job = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as BenchJob & { promptIds: number[] };
  const { model } = importModel(process.argv[3]!, { packed: true });
  (globalThis as { gc?: () => void }).gc?.(); // the file's buffer is garbage once the weights are copied out
  const loadedRssMiB = process.memoryUsage().rss / 2 ** 20;
  const vocab = model.config.vocab;
  const cache = newKVCache(model, job.decodePrompt + job.decodeTokens);
  let next = 0;
  const step = (ids: Int32Array) =>
    noGrad(() =>
      tidy(() => {
        const logits = forward(model, ids, 1, ids.length, { cache });
        next = argmax(logits.data, (ids.length - 1) * vocab, vocab);
      }),
    );
  step(Int32Array.from(job.promptIds.slice(0, job.decodePrompt)));
  const generated: number[] = [];
  const perToken: number[] = [];
  for (let i = 0; i < job.decodeTokens; i++) {
    generated.push(next);
    const t0 = performance.now();
    step(Int32Array.of(next));
    perToken.push((performance.now() - t0) / 1000);
  }
  const result: SideResult & { generated: number[] } = {
    decodeTokensPerSecond: 1 / median(perToken),
    peakRssMiB: loadedRssMiB,
    generated,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main();
