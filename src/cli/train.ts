// `afterscale train | sample | eval | runs`.
import { type Command, Option } from "commander";
import { compareWithBase, formatKlComparison } from "../compress/index.js";
import { openShards } from "../data/index.js";
import { DEFAULT_TASK_EVAL_BATCH } from "../feedback/index.js";
import { DEFAULT_EVAL_BATCH_SIZE, evaluate, generate } from "../infer/index.js";
import {
  defaultRoot,
  formatRunsJson,
  formatRunsTable,
  listRuns,
  loadModel,
  loadModelFrom,
  MODEL_SPEC_HELP,
  parseTrainConfig,
  resolveDataDir,
  train,
  trainConfigFields,
} from "../train/index.js";
import { givenTrainFields, int, num, output, readConfigFile, trainFieldOption } from "./options.js";
import { addTaskEvalOptions, checkEvalOptions, evalTaskCommand } from "./tasks.js";

/** "(whole split, 201,600 tokens)" or "(estimate on 40,960 tokens)". */
function valScope(tokens: number | null, estimate: boolean): string {
  const n = tokens === null ? null : `${tokens.toLocaleString("en-US")} tokens`;
  if (estimate) return n ? `(estimate on ${n})` : "(estimate)";
  return n ? `(whole split, ${n})` : "(whole split)";
}

/** Prompts the main job samples from after training. */
const SAMPLE_PROMPTS = ["The", "In the morning", "He said that"];

export function registerTrainCommands(program: Command): void {
  const cmd = program
    .command("train")
    .description(
      "Train a model (default: the micro llama preset on the built-in Brown corpus) and sample from it",
    )
    .option("--config <file>", "a JSON file of training fields (flags override it)")
    .option("--resume [runDir]", "continue a run from its newest good checkpoint")
    .addOption(
      new Option("--samples <n>", "print this many samples when training ends")
        .argParser(int(0, 100))
        .default(0),
    )
    .option("--json", "print the result as JSON", false);
  const fields = trainConfigFields();
  for (const f of fields) cmd.addOption(trainFieldOption(f));
  cmd.action(async (o) => {
    const input: Record<string, unknown> = o.config ? readConfigFile(o.config) : {};
    Object.assign(input, givenTrainFields(o, fields));
    const result =
      o.resume !== undefined
        ? await train(input, { resume: o.resume === true ? true : o.resume })
        : await train(parseTrainConfig(input));
    const samples: { prompt: string; text: string }[] = [];
    if (o.samples > 0) {
      const { model, tokenizer } = loadModelFrom(result.runDir);
      for (let i = 0; i < o.samples; i++) {
        const prompt = SAMPLE_PROMPTS[i % SAMPLE_PROMPTS.length]!;
        const r = generate(model, tokenizer, prompt, {
          maxTokens: 80,
          temperature: 0.8,
          topK: 50,
          seed: i + 1,
        });
        samples.push({ prompt, text: r.text });
      }
    }
    output(o.json, { ...result, samples }, () => {
      const tps = result.tokensPerSecond === null ? "-" : result.tokensPerSecond.toFixed(0);
      const val =
        result.valLoss === null
          ? "-"
          : `${result.valLoss.toFixed(4)} ${valScope(result.valTokens, result.valEstimate)}`;
      const lines = [
        `run ${result.runName} (${result.runDir})${result.alreadyFinished ? ": already finished, nothing trained or changed" : ""}`,
        `steps ${result.step}/${result.steps}, tokens ${result.tokens}, ${result.elapsedSeconds.toFixed(0)} s, ${tps} tokens/s`,
        `train loss ${result.loss?.toFixed(4) ?? "-"}, validation loss ${val}`,
      ];
      for (const s of samples)
        lines.push("", `--- sample (prompt "${s.prompt}") ---`, `${s.prompt}${s.text}`);
      return lines.join("\n");
    });
    if (result.interrupted) process.exitCode = 130;
  });

  program
    .command("sample")
    .description("Generate text from a trained model, streamed to stdout")
    .requiredOption("--model <path>", MODEL_SPEC_HELP)
    .option("--prompt <text>", "the prompt", "")
    .option("--max-tokens <n>", "tokens to generate at most", int(0, 1_000_000), 200)
    .option("--temperature <t>", "0 = greedy", num(0), 0.8)
    .option("--top-k <k>", "keep the k most likely tokens (0 = off)", int(0), 0)
    .option("--top-p <p>", "nucleus sampling mass", num(0, 1), 1)
    .option("--seed <n>", "sampling seed", int(0), 1)
    .option("--stop <text...>", "stop before any of these strings")
    .option("--json", "print the result as JSON instead of streaming", false)
    .action((o) => {
      const { model, tokenizer } = loadModel(o.model);
      if (!o.json) process.stdout.write(o.prompt);
      const r = generate(model, tokenizer, o.prompt, {
        maxTokens: o.maxTokens,
        temperature: o.temperature,
        topK: o.topK,
        topP: o.topP,
        seed: o.seed,
        ...(o.stop ? { stop: o.stop } : {}),
        ...(o.json ? {} : { onText: (d: string) => process.stdout.write(d) }),
      });
      if (o.json) output(true, { ...r, ids: Array.from(r.ids) }, () => "");
      else process.stdout.write(`\n[${r.completionTokens} tokens, finish: ${r.finishReason}]\n`);
    });

  const evalCmd = program
    .command("eval")
    .description(
      "Validation loss, perplexity and bits per byte of a model on a prepared dataset; with --task, exact-match accuracy on a built-in task",
    )
    .requiredOption("--model <path>", MODEL_SPEC_HELP)
    .option("--data <dir>", "a prepared dataset folder (default: the one the model was trained on)")
    .option(
      "--batch-size <n>",
      `sequences per batch (default: ${DEFAULT_EVAL_BATCH_SIZE}; with --task ${DEFAULT_TASK_EVAL_BATCH})`,
      int(1),
    )
    .option("--max-batches <n>", "evaluate at most this many batches", int(1))
    .option(
      "--kl-base <model>",
      "compare with this base model as llama-perplexity --kl-divergence does: perplexity of both and their ratio, KL(base‖model), same top token, Δp",
    );
  addTaskEvalOptions(evalCmd)
    .option("--json", "print the result as JSON", false)
    .action((o) => {
      checkEvalOptions(o);
      if (o.task !== undefined) return evalTaskCommand(o);
      const loaded = loadModel(o.model);
      const base = o.klBase !== undefined ? loadModel(o.klBase) : null;
      // A quantized or exported copy has no training config: its base's dataset is the natural default.
      const trained = loaded.trainConfig ?? base?.trainConfig;
      const dir = o.data ?? (trained ? resolveDataDir(trained) : undefined);
      if (!dir)
        throw new Error(
          `eval: --data is required for a model without a training config${base ? " (and the base has none either)" : ""}`,
        );
      const ds = openShards(dir);
      if (ds.meta.tokenizerHash !== loaded.tokenizer.hash) {
        throw new Error(`eval: ${dir} was tokenized with a different tokenizer than the model's`);
      }
      if (o.klBase !== undefined && base) {
        if (base.tokenizer.hash !== loaded.tokenizer.hash)
          throw new Error(
            `eval: ${o.model} and the base ${o.klBase} use different tokenizers (${loaded.tokenizer.hash.slice(0, 12)} vs ${base.tokenizer.hash.slice(0, 12)}); a KL comparison needs the same tokens`,
          );
        const context = Math.min(loaded.model.config.context, base.model.config.context);
        const k = compareWithBase(loaded.model, base.model, ds.val, loaded.tokenizer, {
          batchSize: o.batchSize ?? DEFAULT_EVAL_BATCH_SIZE,
          context,
          ...(o.maxBatches ? { maxBatches: o.maxBatches } : {}),
        });
        output(o.json, { data: dir, model: o.model, base: o.klBase, context, ...k }, () =>
          [
            `${o.model} against the base ${o.klBase} on the validation split of ${dir}`,
            formatKlComparison(k),
          ].join("\n"),
        );
        return;
      }
      const r = evaluate(loaded.model, ds.val, loaded.tokenizer, {
        batchSize: o.batchSize ?? DEFAULT_EVAL_BATCH_SIZE,
        context: loaded.model.config.context,
        ...(o.maxBatches ? { maxBatches: o.maxBatches } : {}),
      });
      output(o.json, { data: dir, ...r }, () =>
        [
          `validation split of ${dir}: ${r.tokens} tokens (${r.bytes} bytes) in ${r.batches} batches`,
          `loss ${r.loss.toFixed(4)} nats/token, perplexity ${r.perplexity.toFixed(2)}, ${r.bitsPerByte.toFixed(4)} bits/byte`,
        ].join("\n"),
      );
    });

  program
    .command("runs")
    .description("List the runs in the registry")
    .option("--root <dir>", "runs folder (default: $AFTERSCALE_HOME or ./runs)")
    .option("--json", "print the runs as JSON", false)
    .action((o) => {
      const runs = listRuns(o.root ?? defaultRoot());
      if (o.json) process.stdout.write(`${formatRunsJson(runs)}\n`);
      else process.stdout.write(`${runs.length === 0 ? "no runs yet" : formatRunsTable(runs)}\n`);
    });
}
