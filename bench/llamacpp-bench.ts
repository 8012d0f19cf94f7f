// The llama.cpp side of the benchmark for one config (prefill and decode only), in its own process:
//   node dist/bench/llamacpp-bench.js <job.json>
// Loads afterscale's F32 GGUF export of the same weights with node-llama-cpp (CPU only, job.threads
// threads, F32 KV cache, no flash attention) and evaluates token ids, as test/helpers/llamacpp-child.ts does:
// - prefill: one full-context sequence in one batch (median of job.prefillReps, history cleared between);
// - decode: the first job.decodePrompt tokens, then job.decodeTokens greedy tokens one evaluation each.
// Prints one JSON object (SideResult plus the generated ids) on stdout.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type BenchJob, median, type SideResult } from "./configs.js";

// biome-ignore lint/suspicious/noExplicitAny: node-llama-cpp is an optional dev dependency without types here
async function loadNodeLlamaCpp(): Promise<any> {
  const dir = process.env.AFTERSCALE_NODE_LLAMA_CPP;
  if (dir) return import(pathToFileURL(join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);
  const name = "node-llama-cpp"; // a variable, so TypeScript does not need the package's types to compile this
  return import(name);
}

async function main(): Promise<void> {
  const job = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as BenchJob & { promptIds: number[] };
  if (!job.modelPath) throw new Error("llamacpp-bench: the job has no modelPath");
  const { getLlama, LlamaLogLevel } = await loadNodeLlamaCpp();
  const llama = await getLlama({
    gpu: false,
    build: "never",
    logLevel: LlamaLogLevel.error,
    maxThreads: job.threads,
  });
  const model = await llama.loadModel({ modelPath: job.modelPath, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: job.context,
    batchSize: job.context,
    sequences: 1,
    threads: job.threads,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const seq = context.getSequence();
  const pick = { generateNext: { token: true, options: { temperature: 0 } } };
  const withPick = (ids: number[]): unknown[] => {
    const items: unknown[] = ids.slice();
    items[items.length - 1] = [ids[ids.length - 1], pick];
    return items;
  };

  // ---- prefill (one warm-up, then the timed repetitions)
  const full = job.promptIds.slice(0, job.context);
  const prefill: number[] = [];
  for (let r = 0; r <= job.prefillReps; r++) {
    await seq.clearHistory();
    const t0 = performance.now();
    await seq.controlledEvaluate(withPick(full));
    if (r > 0) prefill.push((performance.now() - t0) / 1000);
  }

  // ---- decode
  await seq.clearHistory();
  const first = await seq.controlledEvaluate(withPick(job.promptIds.slice(0, job.decodePrompt)));
  let next = first[job.decodePrompt - 1]?.next?.token as number;
  const generated: number[] = [];
  const perToken: number[] = [];
  for (let i = 0; i < job.decodeTokens; i++) {
    if (typeof next !== "number") throw new Error(`llama.cpp generated no token at step ${i}`);
    generated.push(next);
    const t0 = performance.now();
    const res = await seq.controlledEvaluate(withPick([next]));
    perToken.push((performance.now() - t0) / 1000);
    next = res[0]?.next?.token as number;
  }

  const result: SideResult & { generated: number[] } = {
    prefillTokensPerSecond: job.context / median(prefill),
    decodeTokensPerSecond: 1 / median(perToken),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    generated,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  process.stderr.write(`llamacpp-bench: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
