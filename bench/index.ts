// `npm run bench`: afterscale against PyTorch (CPU) and llama.cpp on the same Llama configs, same shapes,
// same thread count (llama.cpp also at 1 thread, keeping its faster figure), in one run. Each side of each
// config runs in a fresh child process, one after the other, so every peak RSS is that side's own and no
// two sides share the cores:
//   afterscale  node dist/bench/train.js          training, prefill, decode (and the GGUF export)
//   PyTorch     python3 bench/torch_bench.py      training, prefill, decode
//   llama.cpp   node dist/bench/llamacpp-bench.js prefill, decode (afterscale's F32 GGUF of the same weights)
// then, on a CPU with AVX-512 BF16, training again in bf16 mixed precision on the afterscale and PyTorch
// sides (bf16-mixed against autocast); and then, afterscale alone, the optimizer's share of a training step with AdamW and with Muon at the
// trainer's micro and small presets (node dist/bench/optimizer.js; --optimizer-only runs just that), and
// what the interpretability hooks cost a forward pass (node dist/bench/hooks.js). Per config it also decodes
// the weights as F32, Q8_0 and Q4_0 GGUF files, afterscale on its quantized kernels against llama.cpp on the
// same file (bench/quant.ts; --quant-only runs just that, on the configs' seeded initial weights).
// Usage: node dist/bench/index.js [--configs tiny,small,medium,char] [--threads 2] [--warmup 2] [--steps 5]
//                                 [--decode 128] [--reps 2] [--json] [--no-docs] [--optimizer-only]
//                                 [--quant-only] [--bf16-only]
// Prints a table of afterscale / peer ratios (stdout; progress on stderr), or the figures as JSON with
// --json, and rewrites the results block of docs/benchmarks.md unless --no-docs.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nativeAddon } from "../src/backend/native.js";
import { modelToGguf } from "../src/io/gguf-model.js";
import { createModel, trainingFlopsPerToken } from "../src/nn/index.js";
import {
  type BenchJob,
  benchJob,
  benchModelConfig,
  CONFIG_NAMES,
  type ConfigName,
  type SideResult,
} from "./configs.js";
import type { HookCost } from "./hooks.js";
import type { OptimizerShare } from "./optimizer.js";
import { measureQuantDecode, type QuantDecode } from "./quant.js";
import { benchTokenizer } from "./tokenizer.js";

const here = dirname(fileURLToPath(import.meta.url)); // dist/bench
const root = resolve(here, "..", "..");

interface Options {
  configs: ConfigName[];
  threads: number;
  warmup: number;
  steps: number;
  decode: number;
  json: boolean;
  docs: boolean;
  /** Only the optimizer-share table (and no docs rewrite: the other figures would be lost). */
  optimizerOnly: boolean;
  /** Only the quantized-decode rows, on each config's seeded initial weights. */
  quantOnly: boolean;
  /** Repetitions of each quantized-decode and --bf16-only measurement (the best counts). */
  reps: number;
  /** Only the bf16-mixed training rows (afterscale fp32 and bf16-mixed alternating, PyTorch autocast). */
  bf16Only: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    configs: [...CONFIG_NAMES],
    threads: 2,
    warmup: 2,
    steps: 5,
    decode: 128,
    json: false,
    docs: true,
    optimizerOnly: false,
    quantOnly: false,
    reps: 2,
    bf16Only: false,
  };
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag}: expected an integer ≥ ${min}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--json") o.json = true;
    else if (a === "--no-docs") o.docs = false;
    else if (a === "--optimizer-only") {
      o.optimizerOnly = true;
      o.docs = false;
    } else if (a === "--quant-only") o.quantOnly = true;
    else if (a === "--bf16-only") o.bf16Only = true;
    else if (a === "--reps" || a === "--quant-reps") o.reps = int(a, argv[++i], 1);
    else if (a === "--threads") o.threads = int(a, argv[++i], 1);
    else if (a === "--warmup") o.warmup = int(a, argv[++i], 0);
    else if (a === "--steps") o.steps = int(a, argv[++i], 1);
    else if (a === "--decode") o.decode = int(a, argv[++i], 1);
    else if (a === "--configs") {
      const names = (argv[++i] ?? "").split(",").filter(Boolean);
      for (const n of names) {
        if (!(CONFIG_NAMES as readonly string[]).includes(n))
          throw new Error(`--configs: unknown config ${n}; known: ${CONFIG_NAMES.join(", ")}`);
      }
      if (names.length === 0) throw new Error("--configs: expected a comma-separated list");
      o.configs = names as ConfigName[];
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

type Side = SideResult & { generated?: number[] };

/** The children's environment: every side on `threads` threads, and never the kernel profiler. */
function childEnv(threads: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AFTERSCALE_THREADS: String(threads),
    OMP_NUM_THREADS: String(threads),
    MKL_NUM_THREADS: String(threads),
  };
  delete env.AFTERSCALE_PROFILE;
  return env;
}

/** Runs one child; its last stdout line is its JSON result. A failure becomes a note, not a crash. */
function runChild(cmd: string, args: string[], env: NodeJS.ProcessEnv): Side {
  const r = spawnSync(cmd, args, { cwd: root, env, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) return { note: `${cmd} failed to start: ${r.error.message}` };
  if (r.status !== 0) {
    const tail = (r.stderr ?? "").trim().split("\n").slice(-3).join(" | ");
    // torch_bench.py exits with 3 when PyTorch is not installed: the peer is skipped, not failed.
    if (r.status === 3) return { note: `skipped: ${tail}` };
    return { note: `${cmd} exited with ${r.status ?? r.signal}: ${tail}` };
  }
  const lines = r.stdout.trim().split("\n");
  try {
    return JSON.parse(lines[lines.length - 1]!) as Side;
  } catch {
    return { note: `${cmd} printed no JSON result` };
  }
}

/**
 * The afterscale training child on one job file, with --expose-gc so that it can collect its training
 * buffers before timing inference (bench/train.ts).
 */
function runTrainChild(jobPath: string, env: NodeJS.ProcessEnv): Side {
  return runChild(process.execPath, ["--expose-gc", join(here, "train.js"), jobPath], env);
}

interface ConfigResult {
  name: ConfigName;
  job: BenchJob;
  flopsPerToken: number;
  afterscale: Side;
  pytorch: Side;
  llamacpp: Side;
  /** Greedy decode tokens on which afterscale and llama.cpp agree, from the start (same weights). */
  decodeAgreement: number | null;
  /** Training in bf16 mixed precision (afterscale's bf16-mixed, PyTorch's CPU autocast), or why not. */
  bf16: { afterscale: Side; pytorch: Side } | string;
  /** Batch-1 decode of the same weights as F32, Q8_0 and Q4_0 files (null: not measured). */
  quant: QuantDecode[] | null;
}

function promptIds(n: number, vocab: number): number[] {
  // Stay clear of the last id (<|endoftext|> in the exported vocabulary).
  return Array.from({ length: n }, (_, i) => (i * 7919 + 13) % (vocab - 1));
}

function runConfig(name: ConfigName, o: Options, dir: string): ConfigResult {
  const job = benchJob(name, {
    threads: o.threads,
    warmupSteps: o.warmup,
    timedSteps: o.steps,
    decodeTokens: o.decode,
  });
  const modelPath = join(dir, `${name}.gguf`);
  const full = { ...job, modelPath, promptIds: promptIds(job.context, job.vocab) };
  const jobPath = join(dir, `${name}.json`);
  writeFileSync(jobPath, JSON.stringify(full));
  const env = childEnv(o.threads);
  const log = (m: string) => process.stderr.write(`[bench ${name}] ${m}\n`);
  log(`afterscale (${job.batch}×${job.context} tokens per step, ${o.warmup}+${o.steps} steps) …`);
  const afterscale = runTrainChild(jobPath, env);
  log(`PyTorch …`);
  const pytorch = runPytorch(jobPath, env, "fp32");
  let llamacpp: Side;
  let quant: QuantDecode[] | null = null;
  if (existsSync(modelPath)) {
    llamacpp = llamaCppAtBest(name, full, dir, env, log);
    quant = quantDecode(name, full, o, dir, env, log);
  } else llamacpp = { note: "skipped: the afterscale side wrote no GGUF file" };
  rmSync(modelPath, { force: true });
  let decodeAgreement: number | null = null;
  if (afterscale.generated && llamacpp.generated) {
    decodeAgreement = 0;
    while (
      decodeAgreement < afterscale.generated.length &&
      afterscale.generated[decodeAgreement] === llamacpp.generated[decodeAgreement]
    )
      decodeAgreement++;
  }
  for (const s of [afterscale, pytorch, llamacpp])
    if (s.note && !s.trainTokensPerSecond && !s.decodeTokensPerSecond) log(s.note);
  const bf16 = bf16Training(name, full, jobPath, dir, env, log);
  return {
    name,
    job,
    flopsPerToken: trainingFlopsPerToken(benchModelConfig(name)),
    afterscale,
    pytorch,
    llamacpp,
    decodeAgreement,
    bf16,
    quant,
  };
}

/** PyTorch's precisions: plain float32, or bf16 autocast around forward + loss (bench/torch_bench.py). */
export type PytorchPrecision = "fp32" | "bf16-autocast";

/**
 * The PyTorch side of one config's job file (as runConfig writes it) at a precision, in its own process:
 * training tokens/s, peak RSS, prefill and decode, as for fp32.
 */
export function runPytorch(jobPath: string, env: NodeJS.ProcessEnv, precision: PytorchPrecision): Side {
  let path = jobPath;
  if (precision !== "fp32") {
    path = jobPath.replace(/\.json$/, `-${precision}.json`);
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(jobPath, "utf8")), precision }));
  }
  return runChild("python3", [join(root, "bench", "torch_bench.py"), path], env);
}

/**
 * bf16-mixed training on both sides, right after the float32 runs: afterscale's `withPrecision("bf16-mixed")`
 * and PyTorch's `torch.autocast("cpu", dtype=torch.bfloat16)`. Only on a CPU with AVX-512 BF16 (elsewhere
 * afterscale's bf16 products are rounded copies multiplied in float32, which saves nothing to measure).
 */
function bf16Training(
  name: ConfigName,
  job: BenchJob & { modelPath: string; promptIds: number[] },
  jobPath: string,
  dir: string,
  env: NodeJS.ProcessEnv,
  log: (m: string) => void,
): ConfigResult["bf16"] {
  const addon = nativeAddon();
  const isa = "error" in addon ? "none (the native addon did not load)" : addon.isa();
  if (isa !== "avx512bf16") return `not measured: this CPU's kernels are ${isa}, without AVX-512 BF16`;
  const path = join(dir, `${name}-bf16.json`);
  const { modelPath: _, ...rest } = job;
  writeFileSync(path, JSON.stringify({ ...rest, precision: "bf16-mixed" }));
  log("afterscale, bf16-mixed …");
  const afterscale = runTrainChild(path, env);
  log("PyTorch, bf16 autocast …");
  const pytorch = runPytorch(jobPath, env, "bf16-autocast");
  return { afterscale, pytorch };
}

function quantDecode(
  name: ConfigName,
  job: BenchJob & { modelPath: string; promptIds: number[] },
  o: Options,
  dir: string,
  env: NodeJS.ProcessEnv,
  log: (m: string) => void,
): QuantDecode[] {
  return measureQuantDecode(
    name,
    job,
    job.modelPath,
    dir,
    o.reps,
    (args) => afterscaleDecodeAtBest(args, o.threads, env),
    (j, tag) => llamaCppAtBest(`${name}-${tag}`, j, dir, env, () => {}),
    log,
  );
}

/**
 * afterscale's decode of one file at 1 thread and at the run's thread count, keeping the faster, as
 * llamaCppAtBest does for llama.cpp: on a shared machine a 2-thread parallel region waits for its slower
 * thread at every kernel call, and both sides are measured at their best.
 */
function afterscaleDecodeAtBest(args: string[], threads: number, env: NodeJS.ProcessEnv): Side {
  const runs = [...new Set([1, threads])].map((t) => ({
    t,
    side: runChild(process.execPath, ["--expose-gc", join(here, "quant-decode.js"), ...args], {
      ...env,
      AFTERSCALE_THREADS: String(t),
    }),
  }));
  const ok = runs.filter((r) => r.side.decodeTokensPerSecond !== undefined);
  if (ok.length === 0) return runs[runs.length - 1]!.side;
  const best = ok.reduce((a, b) => (b.side.decodeTokensPerSecond! > a.side.decodeTokensPerSecond! ? b : a));
  const note =
    ok.length < 2
      ? undefined
      : `best of ${ok.map((r) => r.t).join(" and ")} threads: decode tokens/s ${ok.map((r) => `${fmt(r.side.decodeTokensPerSecond)} at ${r.t}`).join(", ")}`;
  return { ...best.side, ...(note ? { note } : {}) };
}

/**
 * --bf16-only: one config's training in fp32 and in bf16-mixed, alternating (`reps` runs each, the faster
 * counts, so background load hits both alike), then PyTorch's bf16 autocast on the same job.
 */
function runBf16Only(
  name: ConfigName,
  o: Options,
  dir: string,
): Pick<ConfigResult, "name" | "afterscale" | "bf16"> {
  const job = benchJob(name, {
    threads: o.threads,
    warmupSteps: o.warmup,
    timedSteps: o.steps,
    decodeTokens: 1,
  });
  const env = childEnv(o.threads);
  const log = (m: string) => process.stderr.write(`[bench ${name}] ${m}\n`);
  const addon = nativeAddon();
  const isa = "error" in addon ? "none (the native addon did not load)" : addon.isa();
  const paths = { fp32: join(dir, `${name}-fp32.json`), bf16: join(dir, `${name}-bf16.json`) };
  const full = { ...job, promptIds: promptIds(job.context, job.vocab) };
  writeFileSync(paths.fp32, JSON.stringify({ ...full, trainOnly: true }));
  writeFileSync(paths.bf16, JSON.stringify({ ...full, precision: "bf16-mixed" }));
  const faster = (a: Side | null, b: Side) =>
    a && (a.trainTokensPerSecond ?? 0) >= (b.trainTokensPerSecond ?? 0) ? a : b;
  let fp32: Side | null = null;
  let bf16: Side | null = null;
  for (let r = 0; r < o.reps; r++) {
    log(`afterscale fp32, then bf16-mixed (round ${r + 1} of ${o.reps}) …`);
    fp32 = faster(fp32, runTrainChild(paths.fp32, env));
    bf16 = faster(bf16, runTrainChild(paths.bf16, env));
  }
  if (isa !== "avx512bf16")
    return {
      name,
      afterscale: fp32!,
      bf16: `not measured: this CPU's kernels are ${isa}, without AVX-512 BF16`,
    };
  log("PyTorch, bf16 autocast …");
  return {
    name,
    afterscale: fp32!,
    bf16: { afterscale: bf16!, pytorch: runPytorch(paths.fp32, env, "bf16-autocast") },
  };
}

/** --quant-only: the quantized-decode rows of one config, on its seeded initial weights. */
function runQuantOnly(name: ConfigName, o: Options, dir: string): QuantDecode[] {
  const job = benchJob(name, { threads: o.threads, warmupSteps: 0, timedSteps: 1, decodeTokens: o.decode });
  const modelPath = join(dir, `${name}.gguf`);
  const config = benchModelConfig(name);
  writeFileSync(
    modelPath,
    modelToGguf(createModel(config, job.seed), benchTokenizer(config.vocab), { dtype: "f32" }),
  );
  const env = childEnv(o.threads);
  const log = (m: string) => process.stderr.write(`[bench ${name}] ${m}\n`);
  return quantDecode(
    name,
    { ...job, modelPath, promptIds: promptIds(job.context, job.vocab) },
    o,
    dir,
    env,
    log,
  );
}

/**
 * llama.cpp at 1 thread and at the run's thread count, keeping the faster of each figure: on some machines
 * its 2-thread decode is several times slower than its 1-thread one (threads that sleep between tokens and
 * wake late), and a peer should be measured at its best. The note says which count won and by how much.
 */
function llamaCppAtBest(
  name: string,
  job: BenchJob & { modelPath: string; promptIds: number[] },
  dir: string,
  env: NodeJS.ProcessEnv,
  log: (m: string) => void,
): Side {
  const counts = [...new Set([1, job.threads])];
  const runs: { threads: number; side: Side }[] = [];
  for (const threads of counts) {
    const path = join(dir, `${name}-llamacpp-t${threads}.json`);
    writeFileSync(path, JSON.stringify({ ...job, threads }));
    log(`llama.cpp, ${threads} thread${threads === 1 ? "" : "s"} …`);
    runs.push({ threads, side: runChild(process.execPath, [join(here, "llamacpp-bench.js"), path], env) });
  }
  const ok = runs.filter((r) => r.side.decodeTokensPerSecond !== undefined);
  if (ok.length === 0) return runs[runs.length - 1]!.side;
  const best = (key: "prefillTokensPerSecond" | "decodeTokensPerSecond") =>
    ok.reduce((a, b) => ((b.side[key] ?? 0) > (a.side[key] ?? 0) ? b : a));
  const [prefill, decode] = [best("prefillTokensPerSecond"), best("decodeTokensPerSecond")];
  const figures = (key: "prefillTokensPerSecond" | "decodeTokensPerSecond") =>
    ok.map((r) => `${fmt(r.side[key])} at ${r.threads}`).join(", ");
  const note =
    ok.length < 2
      ? undefined
      : `best of ${counts.join(" and ")} threads: prefill tokens/s ${figures("prefillTokensPerSecond")}; ` +
        `decode tokens/s ${figures("decodeTokensPerSecond")}`;
  return {
    ...decode.side,
    prefillTokensPerSecond: prefill.side.prefillTokensPerSecond!,
    peakRssMiB: Math.max(...ok.map((r) => r.side.peakRssMiB ?? 0)),
    ...(note ? { note } : {}),
  };
}

// ---------------------------------------------------------------- report

const fmt = (x: number | undefined, digits = 0) =>
  x === undefined || !Number.isFinite(x)
    ? "—"
    : x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || !(b > 0) ? undefined : a / b;
const fmtRatio = (r: number | undefined) => (r === undefined ? "—" : `${r.toFixed(2)}×`);
/** "yes"/"no" against a target; lowerIsBetter flips the comparison (RSS). */
const verdict = (r: number | undefined, target: number, lowerIsBetter = false) =>
  r === undefined ? "—" : (lowerIsBetter ? r <= target : r >= target) ? "yes" : "**no**";

function gflops(side: Side, flopsPerToken: number): number | undefined {
  return side.trainTokensPerSecond === undefined
    ? undefined
    : (side.trainTokensPerSecond * flopsPerToken) / 1e9;
}

export function resultsTable(results: ConfigResult[]): string {
  const rows = [
    "| config | figure | afterscale | PyTorch | afterscale / PyTorch | llama.cpp | afterscale / llama.cpp | target | met |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    const a = r.afterscale;
    const p = r.pytorch;
    const l = r.llamacpp;
    const trainTarget = r.name === "tiny" ? 1.5 : 1.0;
    const tr = ratio(a.trainTokensPerSecond, p.trainTokensPerSecond);
    rows.push(
      `| ${r.name} | training tokens/s | ${fmt(a.trainTokensPerSecond)} | ${fmt(p.trainTokensPerSecond)} | ${fmtRatio(tr)} | | | ≥ ${trainTarget.toFixed(1)}× PyTorch | ${verdict(tr, trainTarget)} |`,
    );
    rows.push(
      `| ${r.name} | training GFLOP/s | ${fmt(gflops(a, r.flopsPerToken), 1)} | ${fmt(gflops(p, r.flopsPerToken), 1)} | ${fmtRatio(tr)} | | | | |`,
    );
    const pp = ratio(a.prefillTokensPerSecond, p.prefillTokensPerSecond);
    const pl = ratio(a.prefillTokensPerSecond, l.prefillTokensPerSecond);
    rows.push(
      `| ${r.name} | prefill tokens/s (${r.job.context}) | ${fmt(a.prefillTokensPerSecond)} | ${fmt(p.prefillTokensPerSecond)} | ${fmtRatio(pp)} | ${fmt(l.prefillTokensPerSecond)} | ${fmtRatio(pl)} | ≥ 0.8× llama.cpp | ${verdict(pl, 0.8)} |`,
    );
    const dp = ratio(a.decodeTokensPerSecond, p.decodeTokensPerSecond);
    const dl = ratio(a.decodeTokensPerSecond, l.decodeTokensPerSecond);
    rows.push(
      `| ${r.name} | decode tokens/s (batch 1) | ${fmt(a.decodeTokensPerSecond)} | ${fmt(p.decodeTokensPerSecond)} | ${fmtRatio(dp)} | ${fmt(l.decodeTokensPerSecond)} | ${fmtRatio(dl)} | ≥ 1.0× llama.cpp | ${verdict(dl, 1.0)} |`,
    );
    const rr = ratio(a.peakRssTrainMiB, p.peakRssTrainMiB);
    rows.push(
      `| ${r.name} | peak RSS, training (MiB) | ${fmt(a.peakRssTrainMiB)} | ${fmt(p.peakRssTrainMiB)} | ${fmtRatio(rr)} | | | ≤ 1.0× PyTorch | ${verdict(rr, 1.0, true)} |`,
    );
  }
  return rows.join("\n");
}

/** bf16-mixed against float32 training (issue 18): ≥ 1.6× afterscale's fp32, ≥ 1.0× PyTorch's autocast. */
export function bf16Table(results: Pick<ConfigResult, "name" | "afterscale" | "bf16">[]): string {
  const rows = [
    "| config | figure | afterscale fp32 | afterscale bf16-mixed | bf16 / fp32 | PyTorch autocast bf16 | afterscale / PyTorch (bf16) | target | met |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  const skipped: string[] = [];
  for (const r of results) {
    if (typeof r.bf16 === "string") {
      skipped.push(`${r.name}: ${r.bf16}`);
      continue;
    }
    const a = r.afterscale;
    const b = r.bf16.afterscale;
    const p = r.bf16.pytorch;
    const own = ratio(b.trainTokensPerSecond, a.trainTokensPerSecond);
    const peer = ratio(b.trainTokensPerSecond, p.trainTokensPerSecond);
    const target = r.name === "tiny" ? undefined : 1.6;
    rows.push(
      `| ${r.name} | training tokens/s | ${fmt(a.trainTokensPerSecond)} | ${fmt(b.trainTokensPerSecond)} | ${fmtRatio(own)} | ${fmt(p.trainTokensPerSecond)} | ${fmtRatio(peer)} | ` +
        `${target ? `≥ ${target.toFixed(1)}× fp32, ` : ""}≥ 1.0× PyTorch | ${target ? verdict(own, target) : ""}${target ? " / " : ""}${verdict(peer, 1.0)} |`,
    );
    const rss = ratio(b.peakRssTrainMiB, a.peakRssTrainMiB);
    rows.push(
      `| ${r.name} | peak RSS, training (MiB) | ${fmt(a.peakRssTrainMiB)} | ${fmt(b.peakRssTrainMiB)} | ${fmtRatio(rss)} | ${fmt(p.peakRssTrainMiB)} | ${fmtRatio(ratio(b.peakRssTrainMiB, p.peakRssTrainMiB))} | ≤ 1.0× fp32 | ${verdict(rss, 1.0, true)} |`,
    );
    for (const [side, x] of [
      ["afterscale bf16-mixed", b],
      ["PyTorch autocast", p],
    ] as const)
      if (x.note) skipped.push(`${r.name}, ${side}: ${x.note}`);
  }
  const tail = [
    ...skipped.map((n) => `- ${n}`),
    "- Intel AMX: not measured (no machine with AMX was available to this benchmark).",
  ];
  return `${rows.length > 2 ? rows.join("\n") : "- no bf16 rows"}\n\n${tail.join("\n")}`;
}

/** Quantized decode must reach llama.cpp's on the same file, and 1.8× afterscale's own F32 decode on medium. */
const QUANT_VS_F32_TARGET = 1.8;

export function quantTable(results: { name: ConfigName; quant: QuantDecode[] | null }[]): string {
  const rows = [
    "| config | weights | file (MiB) | afterscale decode tokens/s | afterscale RSS after load (MiB) | llama.cpp decode tokens/s | afterscale / llama.cpp | target | met | / afterscale F32 | target | met |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    if (!r.quant) continue;
    const f32 = r.quant.find((q) => q.type === "f32")?.afterscale.decodeTokensPerSecond;
    for (const q of r.quant) {
      const a = q.afterscale.decodeTokensPerSecond;
      const vsLlama = ratio(a, q.llamacpp.decodeTokensPerSecond);
      const vsF32 = q.type === "f32" ? undefined : ratio(a, f32);
      const f32Target = q.type !== "f32" && r.name === "medium";
      rows.push(
        `| ${r.name} | ${q.type.toUpperCase()} | ${fmt(q.fileMiB, 1)} | ${fmt(a)} | ${fmt(q.afterscale.peakRssMiB)} | ` +
          `${fmt(q.llamacpp.decodeTokensPerSecond)} | ${fmtRatio(vsLlama)} | ${q.type === "f32" ? "" : "≥ 1.0× llama.cpp"} | ` +
          `${q.type === "f32" ? "" : verdict(vsLlama, 1.0)} | ${fmtRatio(vsF32)} | ` +
          `${f32Target ? `≥ ${QUANT_VS_F32_TARGET}× F32` : ""} | ${f32Target ? verdict(vsF32, QUANT_VS_F32_TARGET) : ""} |`,
      );
    }
  }
  return rows.join("\n");
}

function quantNotes(results: { name: ConfigName; quant: QuantDecode[] | null }[]): string[] {
  const out: string[] = [];
  for (const r of results)
    for (const q of r.quant ?? [])
      for (const [side, s] of [
        ["afterscale", q.afterscale],
        ["llama.cpp", q.llamacpp],
      ] as const)
        if (s.note) out.push(`${r.name} ${q.type.toUpperCase()}, ${side}: ${s.note}`);
  return out;
}

/** Muon is held to a Newton–Schulz overhead of at most 10% of a training step (issue 13). */
const MUON_SHARE_TARGET = 0.1;

function optimizerShares(o: Options, env: NodeJS.ProcessEnv): OptimizerShare[] | string {
  process.stderr.write("[bench optimizer] AdamW and Muon at the micro and small presets …\n");
  const args = [join(here, "optimizer.js"), "--warmup", String(o.warmup), "--steps", String(o.steps)];
  const r = runChild(process.execPath, args, env) as Side & { results?: OptimizerShare[] };
  return r.results ?? r.note ?? "no result";
}

export function optimizerTable(shares: OptimizerShare[]): string {
  const rows = [
    "| preset | optimizer | training step | step (s) | optimizer update (s) | update / step | target | met |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const s of shares) {
    const muon = s.optimizer === "muon";
    const name = muon ? `muon, Newton–Schulz in ${s.muonPrecision ?? "fp32"}` : s.optimizer;
    rows.push(
      `| ${s.preset} | ${name} | ${s.precision ?? "fp32"} | ${fmt(s.stepSeconds, 3)} | ${fmt(s.updateSeconds, 3)} | ${(100 * s.share).toFixed(1)}% | ` +
        `${muon ? `≤ ${100 * MUON_SHARE_TARGET}%` : ""} | ${muon ? verdict(s.share, MUON_SHARE_TARGET, true) : ""} |`,
    );
  }
  return rows.join("\n");
}

function hookCosts(o: Options, env: NodeJS.ProcessEnv): string {
  process.stderr.write("[bench hooks] forward passes with and without interpretability hooks …\n");
  const args = [join(here, "hooks.js"), "--warmup", String(o.warmup), "--steps", String(o.steps + 2)];
  const r = runChild(process.execPath, args, env) as Side & { results?: HookCost[] };
  if (!r.results) return `- not measured: ${r.note ?? "no result"}`;
  const rows = ["| preset | forward pass | seconds | / forward() |", "|---|---|---|---|"];
  for (const c of r.results)
    rows.push(`| ${c.preset} | ${c.way} | ${fmt(c.seconds, 4)} | ${c.ratio.toFixed(2)}× |`);
  return rows.join("\n");
}

function notes(results: ConfigResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    for (const [side, s] of [
      ["afterscale", r.afterscale],
      ["PyTorch", r.pytorch],
      ["llama.cpp", r.llamacpp],
    ] as const) {
      if (s.note) out.push(`${r.name}, ${side}: ${s.note}`);
    }
    if (r.decodeAgreement !== null)
      out.push(
        `${r.name}: greedy decode agrees with llama.cpp on the first ${r.decodeAgreement} of ${r.job.decodeTokens} tokens`,
      );
  }
  return out;
}

function machine(): string {
  const model = cpus()[0]?.model ?? "unknown CPU";
  return `${model}, ${cpus().length} cores visible, Node ${process.version}`;
}

const BEGIN = "<!-- bench:results:begin (written by `npm run bench`) -->";
const END = "<!-- bench:results:end -->";
const SECTION = "## Training and inference vs PyTorch and llama.cpp";
const QUANT_BEGIN =
  "<!-- bench:quant:begin (written by `npm run bench`, or `node dist/bench/index.js --quant-only`) -->";
const QUANT_END = "<!-- bench:quant:end -->";
const BF16_BEGIN = "<!-- bench:bf16:begin (written by `node dist/bench/index.js --bf16-only`) -->";
const BF16_END = "<!-- bench:bf16:end -->";

/** Rewrites a marked block of docs/benchmarks.md (it must exist), keeping everything else. */
function writeBlock(begin: string, end: string, block: string): string {
  const path = join(root, "docs", "benchmarks.md");
  const text = readFileSync(path, "utf8");
  const b = text.indexOf(begin);
  const e = text.indexOf(end);
  if (b < 0 || e < b) throw new Error(`bench: ${path} has no ${begin} … ${end} block`);
  writeFileSync(path, `${text.slice(0, b)}${begin}\n${block}\n${text.slice(e)}`);
  return path;
}
const writeQuantDocs = (block: string) => writeBlock(QUANT_BEGIN, QUANT_END, block);

/** The quantized-decode block: when, where, how, the table and its notes. */
function quantBlock(
  results: { name: ConfigName; quant: QuantDecode[] | null }[],
  o: Options,
  started: Date,
  load: number,
  weights: string,
): string {
  const header =
    `Measured ${started.toISOString().replace(/\.\d+Z$/, "Z")} on ${machine()}; ${weights}; batch-1 decode of ${o.decode} ` +
    `greedy tokens after a 16-token prompt, each side the faster of 1 and ${o.threads} threads; ` +
    `each file's figures are the best of ${o.reps} interleaved runs; 1-minute load average ${load.toFixed(2)} at the start ` +
    `and ${loadavg()[0]!.toFixed(2)} at the end. RSS after load: the afterscale process's resident set once the model is loaded.`;
  const extra = quantNotes(results);
  return `${header}\n\n${quantTable(results)}\n${extra.length ? `\n${extra.map((n) => `- ${n}`).join("\n")}\n` : ""}`;
}

/** Rewrites the results block of docs/benchmarks.md, keeping everything else (e.g. the serving section). */
function writeDocs(block: string): string {
  const path = join(root, "docs", "benchmarks.md");
  const fresh = `${BEGIN}\n${block}\n${END}`;
  let text = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmarks\n";
  const b = text.indexOf(BEGIN);
  const e = text.indexOf(END);
  if (b >= 0 && e > b) text = text.slice(0, b) + fresh + text.slice(e + END.length);
  else {
    const section = `${SECTION}\n\n${fresh}\n`;
    const serving = text.indexOf("## Serving load test");
    if (text.includes(SECTION)) {
      const at = text.indexOf(SECTION) + SECTION.length;
      text = `${text.slice(0, at)}\n\n${fresh}\n${text.slice(at)}`;
    } else if (serving >= 0) text = `${text.slice(0, serving)}${section}\n${text.slice(serving)}`;
    else text = `${text.trimEnd()}\n\n${section}`;
  }
  writeFileSync(path, text);
  return path;
}

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(join(here, "train.js")))
    throw new Error("bench: run `npm run build` first (dist/bench/train.js is missing)");
  const dir = mkdtempSync(join(tmpdir(), "afterscale-bench-"));
  const started = new Date();
  const load = loadavg()[0]!;
  const t0 = performance.now();
  const results: ConfigResult[] = [];
  const env = childEnv(o.threads);
  if (o.bf16Only) {
    const rows: Pick<ConfigResult, "name" | "afterscale" | "bf16">[] = [];
    try {
      for (const name of o.configs) rows.push(runBf16Only(name, o, dir));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const block =
      `Measured ${started.toISOString().replace(/\.\d+Z$/, "Z")} on ${machine()}; ${o.threads} threads per side; ` +
      `${o.warmup} warm-up + ${o.steps} timed training steps of 8192 tokens (median); afterscale fp32 and ` +
      `bf16-mixed alternating, the faster of ${o.reps} runs each; 1-minute load average ${load.toFixed(2)} ` +
      `at the start and ${loadavg()[0]!.toFixed(2)} at the end; the run took ${((performance.now() - t0) / 60000).toFixed(1)} minutes.\n\n` +
      bf16Table(rows);
    if (o.json)
      process.stdout.write(
        `${JSON.stringify({ date: started.toISOString(), machine: machine(), rows }, null, 2)}\n`,
      );
    else process.stdout.write(`${block}\n`);
    if (o.docs) process.stderr.write(`bench: wrote ${writeBlock(BF16_BEGIN, BF16_END, block)}\n`);
    return;
  }
  if (o.quantOnly) {
    const quant: { name: ConfigName; quant: QuantDecode[] | null }[] = [];
    try {
      for (const name of o.configs) quant.push({ name, quant: runQuantOnly(name, o, dir) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const block = quantBlock(
      quant,
      o,
      started,
      load,
      "each config's seeded initial weights (`--quant-only`)",
    );
    if (o.json)
      process.stdout.write(
        `${JSON.stringify({ date: started.toISOString(), machine: machine(), threads: o.threads, quant }, null, 2)}\n`,
      );
    else process.stdout.write(`${block}\n`);
    if (o.docs) process.stderr.write(`bench: wrote ${writeQuantDocs(block)}\n`);
    return;
  }
  try {
    if (!o.optimizerOnly) for (const name of o.configs) results.push(runConfig(name, o, dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const shares = optimizerShares(o, env);
  const sharesBlock =
    `Optimizer update as a share of a training step (afterscale alone; llama, the trainer's defaults: ` +
    `16 × 128 tokens per step, vocabulary 4096; median of ${o.steps} steps after ${o.warmup} warm-up; ` +
    `Muon's update includes Newton–Schulz):\n\n` +
    (typeof shares === "string" ? `- not measured: ${shares}` : optimizerTable(shares));
  if (o.optimizerOnly) {
    if (o.json)
      process.stdout.write(
        `${JSON.stringify({ machine: machine(), threads: o.threads, shares }, null, 2)}\n`,
      );
    else process.stdout.write(`${sharesBlock}\n`);
    return;
  }
  const hooksBlock =
    "Interpretability hooks (afterscale alone; llama, one sequence of 128 tokens, median of " +
    `${o.steps + 2} interleaved passes; with no hook set the fused path runs, so its ratio is 1 within noise):\n\n` +
    hookCosts(o, env);
  const minutes = (performance.now() - t0) / 60000;
  const header =
    `Measured ${started.toISOString().replace(/\.\d+Z$/, "Z")} on ${machine()}; ${o.threads} threads per side ` +
    `${o.threads > 1 ? `(llama.cpp: the faster of 1 and ${o.threads} threads, per figure)` : ""}, ` +
    `${o.warmup} warm-up + ${o.steps} timed training steps of 8192 tokens (median), prefill of one full-context ` +
    `sequence (median of 3), decode of ${o.decode} greedy tokens after a 16-token prompt; ` +
    `1-minute load average ${load.toFixed(2)} at the start and ${loadavg()[0]!.toFixed(2)} at the end (2 of it is the run itself); ` +
    `the run took ${minutes.toFixed(1)} minutes.`;
  const table = resultsTable(results);
  const extra = notes(results);
  const bf16Block =
    'Training in bf16 mixed precision (the same steps; afterscale `withPrecision("bf16-mixed")`, PyTorch ' +
    '`torch.autocast("cpu", dtype=torch.bfloat16)`; run right after the same config\'s float32 runs):\n\n' +
    bf16Table(results);
  const block = `${header}\n\n${table}\n${extra.length ? `\n${extra.map((n) => `- ${n}`).join("\n")}\n` : ""}\n${bf16Block}\n\n${sharesBlock}\n\n${hooksBlock}\n`;
  if (o.json) {
    process.stdout.write(
      `${JSON.stringify({ date: started.toISOString(), machine: machine(), threads: o.threads, minutes, results, shares }, null, 2)}\n`,
    );
  }
  const qBlock = quantBlock(results, o, started, load, "the trained weights of the training rows");
  if (!o.json) process.stdout.write(`${block}\n${qBlock}\n`);
  if (o.docs) {
    process.stderr.write(`bench: wrote ${writeDocs(block)}\n`);
    writeQuantDocs(qBlock);
  }
}

main();
