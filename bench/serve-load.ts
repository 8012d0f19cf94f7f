// Load test of `afterscale serve`: N concurrent streaming clients on loopback, each sending completion
// requests back to back for a bounded time. Reports time to first token (p50/p99), aggregate generated
// tokens/s, and errors, for each N given, and the speed-up over one stream (continuous batching's payoff).
//
//   node dist/bench/serve-load.js [--model RUN_OR_CKPT | --preset small] [--streams 1,8] [--seconds 20]
//       [--rounds 4] [--max-tokens 128] [--max-batch 8] [--threads N] [--markdown]
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { createModel, type PresetName, preset, presetNames } from "../src/nn/index.js";
import { startServer } from "../src/serve/index.js";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    preset: { type: "string", default: "small" },
    context: { type: "string", default: "256" },
    streams: { type: "string", default: "1,8" },
    seconds: { type: "string", default: "20" },
    "max-tokens": { type: "string", default: "128" },
    "max-batch": { type: "string", default: "8" },
    "prefill-chunk": { type: "string" },
    threads: { type: "string" },
    rounds: { type: "string", default: "4" },
    markdown: { type: "boolean", default: false },
  },
});

const positiveInt = (name: string, v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be an integer ≥ 1, got "${v}"`);
  return n;
};
const streamCounts = args.streams.split(",").map((s) => positiveInt("streams", s.trim()));
const seconds = Number(args.seconds);
if (!(seconds > 0)) throw new Error(`--seconds must be > 0, got "${args.seconds}"`);
const maxTokens = positiveInt("max-tokens", args["max-tokens"]);
const maxBatch = positiveInt("max-batch", args["max-batch"]);
const prefillChunk =
  args["prefill-chunk"] === undefined ? undefined : positiveInt("prefill-chunk", args["prefill-chunk"]);
const rounds = positiveInt("rounds", args.rounds);
const threads = args.threads === undefined ? null : positiveInt("threads", args.threads);

interface RequestResult {
  ttftMs: number;
  tokens: number;
  error: string | null;
}

/** One streaming completion; TTFT is the time to the first chunk that carries text. */
async function streamOnce(url: string, modelId: string, prompt: string): Promise<RequestResult> {
  const start = performance.now();
  let ttftMs = Number.NaN;
  let tokens = 0;
  try {
    const response = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: modelId,
        prompt,
        max_tokens: maxTokens,
        temperature: 1,
        stream: true,
        stream_options: { include_usage: true },
        ignore_eos: true, // every request generates exactly max_tokens, so runs are comparable
      }),
    });
    if (!response.ok) return { ttftMs, tokens, error: `HTTP ${response.status}: ${await response.text()}` };
    const decoder = new TextDecoder();
    let buffer = "";
    let done = false;
    for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(bytes, { stream: true });
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const data = buffer.slice(6, end);
        buffer = buffer.slice(end + 2);
        if (data === "[DONE]") {
          done = true;
          continue;
        }
        const chunk = JSON.parse(data) as {
          choices: { text: string }[];
          usage?: { completion_tokens: number };
          error?: { message: string };
        };
        if (chunk.error) return { ttftMs, tokens, error: chunk.error.message };
        if (Number.isNaN(ttftMs) && chunk.choices[0]?.text) ttftMs = performance.now() - start;
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      }
    }
    return { ttftMs, tokens, error: done ? null : "the stream ended without [DONE]" };
  } catch (e) {
    return { ttftMs, tokens, error: (e as Error).message };
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface LevelResult {
  streams: number;
  requests: number;
  errors: number;
  ttftP50: number;
  ttftP99: number;
  tokensPerSecond: number;
  firstError: string | null;
}

/** `streams` clients loop for `ms`; requests in flight at the deadline finish and count. */
async function level(url: string, modelId: string, streams: number, ms: number, round: number) {
  const results: RequestResult[] = [];
  const start = performance.now();
  const deadline = start + ms;
  await Promise.all(
    Array.from({ length: streams }, async (_, client) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const prompt = `Round ${round}, client ${client}, request ${i}: once upon a time`;
        results.push(await streamOnce(url, modelId, prompt));
      }
    }),
  );
  return { results, seconds: (performance.now() - start) / 1000 };
}

/**
 * Every stream count gets `seconds` in all, split into `rounds` windows that alternate between the counts,
 * so a change in background load over the run affects every count alike (the ratio is what matters).
 */
async function measure(url: string, modelId: string): Promise<LevelResult[]> {
  const all = new Map(streamCounts.map((n) => [n, { results: [] as RequestResult[], seconds: 0 }]));
  for (let r = 0; r < rounds; r++) {
    for (const n of streamCounts) {
      const { results, seconds: s } = await level(url, modelId, n, (seconds * 1000) / rounds, r);
      all.get(n)!.results.push(...results);
      all.get(n)!.seconds += s;
    }
  }
  return streamCounts.map((streams) => {
    const { results, seconds: elapsed } = all.get(streams)!;
    const ok = results.filter((x) => x.error === null);
    const ttfts = ok.map((x) => x.ttftMs).sort((a, b) => a - b);
    return {
      streams,
      requests: results.length,
      errors: results.length - ok.length,
      ttftP50: percentile(ttfts, 50),
      ttftP99: percentile(ttfts, 99),
      tokensPerSecond: ok.reduce((sum, x) => sum + x.tokens, 0) / elapsed,
      firstError: results.find((x) => x.error !== null)?.error ?? null,
    };
  });
}

async function main(): Promise<void> {
  let server: Awaited<ReturnType<typeof startServer>>;
  let what: string;
  if (args.model) {
    server = await startServer({
      modelSpec: args.model,
      port: 0,
      maxBatch,
      maxQueue: 64,
      prefillChunk,
      threads,
    });
    what = `${args.model}`;
  } else {
    if (!(presetNames as readonly string[]).includes(args.preset))
      throw new Error(`--preset must be one of ${presetNames.join(", ")}, got "${args.preset}"`);
    const tokenizer = byteTokenizer();
    const context = positiveInt("context", args.context);
    const model = createModel(preset(args.preset as PresetName, "llama", tokenizer.vocabSize, context), 1);
    server = await startServer({ model, tokenizer, port: 0, maxBatch, maxQueue: 64, prefillChunk, threads });
    what = `random-init ${args.preset} llama, byte vocabulary, context ${context}`;
  }
  try {
    await streamOnce(server.url, server.modelId, "warm-up"); // first-call costs out of the measurement
    const load = loadavg()[0]!.toFixed(1);
    const rows = await measure(server.url, server.modelId);
    for (const r of rows) {
      process.stderr.write(
        `streams ${r.streams}: ${r.tokensPerSecond.toFixed(1)} tokens/s, TTFT p50 ${r.ttftP50.toFixed(0)} ms, errors ${r.errors}${r.firstError ? ` (${r.firstError})` : ""}\n`,
      );
    }
    const base = rows.find((r) => r.streams === 1)?.tokensPerSecond ?? null;
    const lines = [
      `Model: ${what}; ${maxTokens} tokens per request, max batch ${maxBatch}, kernel threads ${threads ?? "default"}, ${seconds} s per stream count in ${rounds} alternating windows.`,
      `Machine: ${cpus()[0]?.model ?? "unknown CPU"} × ${cpus().length} cores, Node ${process.version}, ` +
        `load average ${load} at start; ${new Date().toISOString().slice(0, 10)}.`,
      "",
      "| streams | requests | errors | TTFT p50 (ms) | TTFT p99 (ms) | aggregate tokens/s | per stream | vs 1 stream |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|",
      ...rows.map(
        (r) =>
          `| ${r.streams} | ${r.requests} | ${r.errors} | ${r.ttftP50.toFixed(0)} | ${r.ttftP99.toFixed(0)} | ` +
          `${r.tokensPerSecond.toFixed(1)} | ${(r.tokensPerSecond / r.streams).toFixed(1)} | ` +
          `${base ? `${(r.tokensPerSecond / base).toFixed(2)}×` : "–"} |`,
      ),
    ];
    process.stdout.write(`${args.markdown ? lines.join("\n") : JSON.stringify(rows, null, 2)}\n`);
  } finally {
    await server.close();
  }
}

await main();
