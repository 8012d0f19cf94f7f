// `afterscale sae train` (a sparse autoencoder on one hook's activations, with its held-out metrics) and
// `afterscale sae inspect` (each feature's top-activating contexts and density).
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { type OpenDataset, openShards, type Tokenizer } from "../data/index.js";
import {
  checkSaeHook,
  evaluateSae,
  type FeatureReport,
  loadSae,
  type SaeActivation,
  type SaeMetrics,
  saveSae,
  scanFeatures,
  trainSae,
} from "../interp/index.js";
import {
  formatSeconds,
  loadModel,
  MODEL_SPEC_HELP,
  type ResolvedModel,
  resolveDataDir,
} from "../train/index.js";
import { Progress } from "../train/progress.js";
import { int, num, oneOf, output } from "./options.js";

/** The dataset a command reads: --data, or the one the model was trained on; its tokenizer must be the model's. */
function openData(loaded: ResolvedModel, data: string | undefined, what: string): OpenDataset {
  const dir = data ?? (loaded.trainConfig ? resolveDataDir(loaded.trainConfig) : undefined);
  if (!dir) throw new Error(`${what}: --data is required for a model without a training config`);
  const ds = openShards(dir);
  if (ds.meta.tokenizerHash !== loaded.tokenizer.hash)
    throw new Error(`${what}: ${dir} was tokenized with a different tokenizer than the model's`);
  return ds;
}

/** The file or folder a resolved model came from, so a later command loads the same checkpoint. */
function modelPath(loaded: ResolvedModel): string {
  return existsSync(loaded.source) ? loaded.source : loaded.source.slice(loaded.source.indexOf(" ") + 1);
}

function intList(value: string): number[] {
  const parts = value.split(",").map((s) => s.trim());
  const nums = parts.map(Number);
  if (parts.some((p) => p === "") || nums.some((n) => !Number.isInteger(n) || n < 0))
    throw new InvalidArgumentError(`expected comma-separated feature indices, got "${value}"`);
  return nums;
}

function formatMetrics(m: SaeMetrics): string {
  const f = (x: number) => x.toFixed(4);
  return [
    `held-out activations: ${m.tokens} tokens`,
    `L0 ${m.l0.toFixed(2)} | explained variance ${f(m.explainedVariance)} | dead features ${m.deadFeatures} (never active over ${m.tokens} tokens)`,
    `CE clean ${f(m.ce.clean)} | with SAE ${f(m.ce.withSae)} | ${m.ce.ablation}-ablated ${f(m.ce.ablated)} | CE recovered ${f(m.ce.recovered)}`,
  ].join("\n");
}

/** A context on one line: the marked token in «», newlines shown as ⏎. */
function renderContext(tok: Tokenizer, before: number[], token: number, after: number[]): string {
  const show = (ids: number[]) => tok.decode(ids).replace(/\n/g, "⏎");
  return `${show(before)}«${show([token])}»${show(after)}`;
}

export function registerSaeCommands(program: Command): void {
  const sae = program.command("sae").description("Sparse autoencoders on a model's activations");

  sae
    .command("train")
    .description(
      "Train a sparse autoencoder on one hook's activations over the training split; report L0, explained variance, dead features and CE recovered on the validation split",
    )
    .requiredOption("--model <path>", MODEL_SPEC_HELP)
    .requiredOption("--hook <name>", "a TransformerLens hook name, e.g. blocks.1.hook_resid_post")
    .option("--features <n>", "dictionary size (default: 8× the hook's width)", int(1))
    .option("--l1 <lambda>", "L1 coefficient (weighted by decoder norm) of a ReLU SAE", num(0))
    .option("--topk <k>", "a top-k SAE instead: keep the k largest pre-activations, no L1", int(1))
    .option("--steps <n>", "optimizer steps", int(1), 2000)
    .option("--lr <lr>", "Adam learning rate (constant, then linear decay over the last 20%)", num(0), 1e-3)
    .option("--batch-tokens <n>", "activations per step", int(1), 2048)
    .option("--seed <n>", "seed of the init and the data order", int(0), 1)
    .option(
      "--b-dec-init <how>",
      "b_dec's init: geometric median or mean",
      oneOf(["median", "mean"] as const),
      "median",
    )
    .option("--data <dir>", "a prepared dataset folder (default: the one the model was trained on)")
    .option("--eval-tokens <n>", "held-out tokens for the metrics", int(1), 65536)
    .option(
      "--ablation <how>",
      "CE recovered's baseline: zero or mean ablation",
      oneOf(["zero", "mean"] as const),
      "zero",
    )
    .option(
      "-o, --out <dir>",
      "the SAE folder to write (must not exist; default sae-<model>-<hook>-<features>)",
    )
    .option("--quiet", "no progress", false)
    .option("--json", "print the result as JSON", false)
    .action((o) => {
      if ((o.l1 === undefined) === (o.topk === undefined))
        throw new Error("sae train: give exactly one of --l1 λ (a ReLU SAE) or --topk K");
      const loaded = loadModel(o.model, { dequantize: true });
      checkSaeHook(loaded.model, o.hook);
      const ds = openData(loaded, o.data, "sae train");
      const width = loaded.model.config.dModel;
      const features: number = o.features ?? 8 * width;
      const out = resolve(o.out ?? `sae-${loaded.name}-${o.hook}-${features}`);
      if (existsSync(out))
        throw new Error(`sae train: ${out} already exists; choose another output folder (-o)`);
      const activation: SaeActivation =
        o.topk !== undefined ? { kind: "topk", k: o.topk } : { kind: "relu", l1: o.l1 };
      const progress = new Progress({ quiet: o.quiet, logInterval: 100 });
      progress.message(
        `sae: ${features} features on ${o.hook} of ${loaded.name} (${loaded.source}), ${activation.kind === "topk" ? `top-${activation.k}` : `λ ${activation.l1}`}, ${o.steps} steps of ${o.batchTokens} activations`,
      );
      progress.start(o.steps, 0);
      const t0 = performance.now();
      const trained = trainSae(
        loaded.model,
        ds.train,
        {
          hook: o.hook,
          features,
          activation,
          steps: o.steps,
          lr: o.lr,
          batchTokens: o.batchTokens,
          seed: o.seed,
          bDecInit: o.bDecInit,
        },
        (s) => {
          progress.update({
            step: s.step,
            loss: s.loss,
            lr: s.lr,
            tokensPerSecond: s.tokensPerSecond,
            valLoss: null,
            valEstimate: false,
          });
          if (s.step % 100 === 0 || s.step === s.steps)
            progress.message(
              `step ${s.step}: mse ${s.mse.toFixed(4)} | L0 ${s.l0.toFixed(1)} | explained variance ${s.explainedVariance.toFixed(4)} (training batch)`,
            );
        },
        100,
      );
      progress.stop();
      const trainSeconds = (performance.now() - t0) / 1000;
      progress.message(`sae: trained in ${formatSeconds(trainSeconds)}; measuring on the validation split`);
      const metrics = evaluateSae(loaded.model, trained, ds.val, {
        maxTokens: o.evalTokens,
        ablation: o.ablation,
      });
      const wallSeconds = (performance.now() - t0) / 1000;
      const { density, ...summary } = metrics;
      saveSae(out, trained, {
        model: modelPath(loaded),
        modelSource: loaded.source,
        data: ds.dir,
        seed: o.seed,
        steps: o.steps,
        batchTokens: o.batchTokens,
        lr: o.lr,
        bDecInit: o.bDecInit,
        metrics: summary,
        trainSeconds,
        wallSeconds,
        created: new Date().toISOString(),
      });
      output(o.json, { out, hook: o.hook, features, activation, ...summary, wallSeconds }, () =>
        [formatMetrics(metrics), `wrote ${out} (${formatSeconds(wallSeconds)})`].join("\n"),
      );
    });

  sae
    .command("inspect")
    .description("Each feature's top-activating contexts over the validation split, and its density")
    .argument("<sae-dir>", "a folder written by sae train")
    .option("--features <i,j,…>", "these features", intList)
    .option("--top <n>", "the n features that fire most often (default 10)", int(1))
    .option("--contexts <k>", "top contexts per feature", int(1), 5)
    .option("--window <before,after>", "tokens shown before and after the marked one", "8,3")
    .option("--model <path>", "the model (default: the one the SAE was trained on)")
    .option("--data <dir>", "a prepared dataset folder (default: the model's)")
    .option("--max-tokens <n>", "held-out tokens scanned", int(1), 65536)
    .option("--json", "print the result as JSON", false)
    .action((dir: string, o) => {
      if (o.features && o.top !== undefined)
        throw new Error("sae inspect: give --features or --top, not both");
      const window = String(o.window).split(",").map(Number);
      if (window.length !== 2 || window.some((n) => !Number.isInteger(n) || n < 0))
        throw new Error(`sae inspect: --window expects two counts "before,after", got "${o.window}"`);
      const { sae, file } = loadSae(dir);
      const loaded = loadModel(o.model ?? file.info.model, { dequantize: true });
      const ds = openData(
        loaded,
        o.data ?? (existsSync(file.info.data) ? file.info.data : undefined),
        "sae inspect",
      );
      for (const f of o.features ?? [])
        if (f >= sae.config.features)
          throw new Error(`sae inspect: feature ${f} is out of range (the SAE has ${sae.config.features})`);
      const scan = scanFeatures(loaded.model, sae, ds.val, {
        contexts: o.contexts,
        before: window[0],
        after: window[1],
        maxTokens: o.maxTokens,
      });
      const chosen: FeatureReport[] = o.features
        ? (o.features as number[]).map((f) => scan.features[f]!)
        : scan.features
            .filter((f) => f.density > 0)
            .sort((a, b) => b.density - a.density || a.feature - b.feature)
            .slice(0, o.top ?? 10);
      const dead = scan.features.filter((f) => f.density === 0).length;
      const tok = loaded.tokenizer;
      const withText = chosen.map((f) => ({
        ...f,
        contexts: f.contexts.map((c) => ({ ...c, text: renderContext(tok, c.before, c.token, c.after) })),
      }));
      output(
        o.json,
        { sae: resolve(dir), hook: sae.config.hook, tokens: scan.tokens, dead, features: withText },
        () => {
          const lines = [
            `${sae.config.features} features on ${sae.config.hook}, scanned ${scan.tokens} validation tokens; ${dead} never fire`,
          ];
          for (const f of withText) {
            lines.push(
              "",
              `feature ${f.feature}: density ${(100 * f.density).toFixed(3)}%, max activation ${f.maxActivation.toFixed(3)}`,
            );
            for (const c of f.contexts) lines.push(`  ${c.activation.toFixed(3).padStart(8)}  ${c.text}`);
          }
          return lines.join("\n");
        },
      );
    });
}
