// What the interpretability hooks cost a forward pass (issue 16: nothing when no hook is set), at the
// trainer's micro and small presets (llama, vocabulary 4096, one sequence of 128 tokens), in its own process:
//   node dist/bench/hooks.js [--warmup 2] [--steps 7]
// Four ways of running the same forward pass, interleaved step by step so drift hits all alike: plain
// forward(); runWithHooks with no hooks (the fused path, only a test per hook point); one hook that reads
// a residual (attention then runs op by op so its pattern can be hooked); runWithCache of every hook point.
// Prints one JSON object on stdout: median seconds of each and its ratio to plain forward().
import { hookNames, runWithCache, runWithHooks } from "../src/interp/index.js";
import { createModel, forward, type PresetName, preset } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";
import { median } from "./configs.js";

export interface HookCost {
  preset: PresetName;
  way: string;
  seconds: number;
  /** seconds / plain forward's seconds (medians). */
  ratio: number;
}

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const n = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected an integer ≥ 0`);
  return n;
}

const warmup = option("--warmup", 2);
const steps = Math.max(1, option("--steps", 7));
const results: HookCost[] = [];
for (const name of ["micro", "small"] as const) {
  const model = createModel(preset(name, "llama", 4096, 128), 1);
  const ids = Array.from({ length: 128 }, (_, i) => (i * 7919) % 4096);
  const ways: [string, () => void][] = [
    ["forward()", () => noGrad(() => tidy(() => void forward(model, Int32Array.from(ids), 1, 128)))],
    ["runWithHooks, no hooks", () => runWithHooks(model, { ids }, {}).dispose()],
    [
      "runWithHooks, one hook (reads blocks.0.hook_resid_post)",
      () => runWithHooks(model, { ids }, { "blocks.0.hook_resid_post": () => undefined }).dispose(),
    ],
    [
      `runWithCache, all ${hookNames(model).length} hook points`,
      () => {
        const { logits, cache } = runWithCache(model, { ids });
        logits.dispose();
        cache.dispose();
      },
    ],
  ];
  const times = ways.map(() => [] as number[]);
  for (let s = 0; s < warmup + steps; s++)
    ways.forEach(([, run], w) => {
      const t0 = performance.now();
      run();
      if (s >= warmup) times[w]!.push((performance.now() - t0) / 1000);
    });
  const base = median(times[0]!);
  ways.forEach(([way], w) => {
    const seconds = median(times[w]!);
    results.push({ preset: name, way, seconds, ratio: seconds / base });
  });
}
console.log(JSON.stringify({ results }));
