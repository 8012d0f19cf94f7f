// `afterscale sft | dpo | grpo`: fine-tuning commands. Each is the trainer (src/train) with its objective
// plugged in, so checkpoints, --resume, the registry, progress and --json work as they do for `train`.
import type { Command } from "commander";
import { FINE_TUNES, type FineTuneSpec, fineTune, parseSettings } from "../feedback/index.js";
import { MODEL_SPEC_HELP, schemaFields, type TrainField, trainConfigFields } from "../train/index.js";
import { givenTrainFields, output, readConfigFile, trainFieldOption } from "./options.js";

/** The training fields a fine-tuning command takes (the model's shape comes from --model). */
const SHARED_FIELDS = [
  "steps",
  "batchSize",
  "gradAccum",
  "precision",
  "optimizer",
  "lr",
  "muonLr",
  "minLrRatio",
  "warmupSteps",
  "schedule",
  "decayFraction",
  "weightDecay",
  "gradClip",
  "evalInterval",
  "evalBatches",
  "checkpointInterval",
  "keepCheckpoints",
  "logInterval",
  "seed",
  "root",
  "runName",
];

function registerFineTune(program: Command, spec: FineTuneSpec): void {
  const cmd = program
    .command(spec.name)
    .description(spec.description)
    .option("-m, --model <spec>", `the model to start from: ${MODEL_SPEC_HELP}`)
    .option("--data <file|task:NAME>", spec.dataHelp)
    .option("--config <file>", "a JSON file of run fields (flags override it)")
    .option("--resume [runDir]", "continue a run from its newest good checkpoint")
    .option("--json", "print the result as JSON", false);
  const shared = trainConfigFields()
    .filter((f) => SHARED_FIELDS.includes(f.name))
    .map(
      (f): TrainField =>
        f.name in spec.defaults ? { ...f, default: (spec.defaults as Record<string, unknown>)[f.name] } : f,
    );
  const own = schemaFields(spec.settings);
  for (const f of [...shared, ...own]) cmd.addOption(trainFieldOption(f));
  cmd.action(async (o) => {
    const file = o.config ? readConfigFile(o.config) : {};
    const settings = { ...((file.objectiveConfig as object) ?? {}), ...givenTrainFields(o, own) };
    parseSettings(spec.settings, settings, spec.name);
    const given: Record<string, unknown> = { ...file, ...givenTrainFields(o, shared) };
    if (o.model) given.init = o.model;
    if (o.data) given.data = o.data;
    if (Object.keys(settings).length > 0) given.objectiveConfig = settings;
    if (o.resume === undefined) {
      if (!given.init) throw new Error(`${spec.name}: --model is required (the model to fine-tune)`);
      if (!given.data) throw new Error(`${spec.name}: --data is required (${spec.dataHelp})`);
    }
    const resume = o.resume === undefined ? {} : { resume: o.resume === true ? true : (o.resume as string) };
    const result = await fineTune(spec.name)(given, resume);
    output(o.json, result, () => {
      const tps = result.tokensPerSecond === null ? "-" : result.tokensPerSecond.toFixed(0);
      const figures = Object.entries(result.valMetrics ?? {}).map(
        ([k, x]) => `${k} ${Number.isInteger(x) ? x : x.toPrecision(4)}`,
      );
      return [
        `run ${result.runName} (${result.runDir})${result.alreadyFinished ? ": already finished, nothing trained or changed" : ""}`,
        `steps ${result.step}/${result.steps}, tokens ${result.tokens}, ${result.elapsedSeconds.toFixed(0)} s, ${tps} tokens/s`,
        `train loss ${result.loss?.toFixed(4) ?? "-"}, held-out loss ${result.valLoss?.toFixed(4) ?? "-"}${result.valEstimate ? " (estimate)" : ""}`,
        ...(figures.length ? [`held-out: ${figures.join(", ")}`] : []),
      ].join("\n");
    });
    if (result.interrupted) process.exitCode = 130;
  });
}

export function registerFeedbackCommands(program: Command): void {
  for (const spec of FINE_TUNES) registerFineTune(program, spec);
}
