// Child process for the llama.cpp agreement test: loads a GGUF file with node-llama-cpp (CPU only, F32 KV
// cache), evaluates a fixed token sequence and prints JSON with the log-probabilities at every position, a greedy
// continuation and llama.cpp's tokenization of some strings. It runs in its own process so that a native
// crash inside llama.cpp fails the test with a message instead of killing the test runner.
//
// Usage: node llamacpp-child.js <job.json>   job = {modelPath, tokens, prompt, generate, texts, vocab}
// With job.modelPaths (a list) instead, every model is evaluated in turn and the output is {results: [...]},
// one result per model: one process start for many files.
// node-llama-cpp is resolved from AFTERSCALE_NODE_LLAMA_CPP (a directory whose node_modules has it) when
// set, else from the repository's own node_modules.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

interface Job {
  modelPath: string;
  modelPaths?: string[];
  tokens: number[];
  /** Greedy generation continues the first `prompt` tokens by `generate` tokens. */
  prompt: number;
  generate: number;
  texts: string[];
  /** Vocabulary size: every row of the output has this many entries. */
  vocab: number;
}

// biome-ignore lint/suspicious/noExplicitAny: node-llama-cpp is an optional dev dependency without types here
async function loadNodeLlamaCpp(): Promise<any> {
  const dir = process.env.AFTERSCALE_NODE_LLAMA_CPP;
  if (dir) return import(pathToFileURL(join(dir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);
  const name = "node-llama-cpp"; // a variable, so TypeScript does not need the package's types to compile this
  return import(name);
}

async function main(): Promise<void> {
  // Without a job (e.g. picked up by a test runner scanning test/), there is nothing to do.
  if (process.argv[2] === undefined) return;
  const job = JSON.parse(readFileSync(process.argv[2], "utf8")) as Job;
  const { getLlama, LlamaLogLevel } = await loadNodeLlamaCpp();
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: 2 });
  if (job.modelPaths) {
    const results: unknown[] = [];
    for (const modelPath of job.modelPaths) results.push(await evaluate(llama, { ...job, modelPath }));
    process.stdout.write(JSON.stringify({ results }));
  } else {
    process.stdout.write(JSON.stringify(await evaluate(llama, job)));
  }
  await llama.dispose();
}

// biome-ignore lint/suspicious/noExplicitAny: node-llama-cpp's Llama, untyped here
async function evaluate(llama: any, job: Job): Promise<unknown> {
  const model = await llama.loadModel({ modelPath: job.modelPath, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: Math.max(64, job.tokens.length + job.generate + 8),
    batchSize: 512,
    sequences: 1,
    threads: 2,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const seq = context.getSequence();
  // The full next-token distribution after every input token (temperature 1, no top-k/top-p/min-p
  // filtering), sent as log-probabilities: softmax of them is the distribution itself.
  const full = { temperature: 1, topK: 0, topP: 1, minP: 0 };
  const items = job.tokens.map((t) => [t, { generateNext: { probabilities: true, options: full } }]);
  const results = await seq.controlledEvaluate(items as Parameters<typeof seq.controlledEvaluate>[0]);
  const logProbs: number[][] = [];
  for (let i = 0; i < job.tokens.length; i++) {
    const map = results[i]?.next?.probabilities as Map<number, number> | undefined;
    if (!map) throw new Error(`llama.cpp returned no probabilities at position ${i}`);
    // Tokens llama.cpp left out have probability 0; -1e30 keeps the JSON finite.
    const row = new Array<number>(job.vocab).fill(-1e30);
    for (const [tok, v] of map) row[tok] = v > 0 ? Math.log(v) : -1e30;
    logProbs.push(row);
  }
  // Greedy continuation in a fresh sequence state, one token at a time (evaluate() would stop at <|endoftext|>).
  await seq.clearHistory();
  const greedy: number[] = [];
  const pick = { generateNext: { token: true, options: { temperature: 0 } } };
  let input: unknown[] = job.tokens.slice(0, job.prompt);
  for (let i = 0; i < job.generate; i++) {
    input[input.length - 1] = [input[input.length - 1], pick];
    const res = await seq.controlledEvaluate(input);
    const tok = res[input.length - 1]?.next?.token;
    if (typeof tok !== "number") throw new Error(`llama.cpp generated no token at step ${i}`);
    greedy.push(tok);
    input = [tok];
  }
  const tokenized = job.texts.map((t) => Array.from(model.tokenize(t, false) as number[]));
  await context.dispose();
  await model.dispose();
  return { logProbs, greedy, tokenized };
}

main().catch((e) => {
  process.stderr.write(`llamacpp-child: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
