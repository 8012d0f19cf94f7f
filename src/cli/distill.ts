// `afterscale distill`: train a student from a teacher. The trainer (src/train) with the distillation
// objective (src/compress) plugged in, so checkpoints, --resume, the registry, progress and --json work as
// they do for `train`.
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { distill, distillSettingsSchema, parseDistillSettings } from "../compress/index.js";
import { presetNames } from "../nn/index.js";
import { MODEL_SPEC_HELP, schemaFields, trainConfigFields } from "../train/index.js";
import { givenTrainFields, output, readConfigFile, trainFieldOption } from "./options.js";

/** The train fields distill takes as flags: the student's shape comes from --student (and these overrides). */
const OWN_FLAGS = ["model", "data"];

/** --student: a preset name, or a JSON file of the student's model fields (model, family, dModel, layers, …). */
function studentFields(spec: string): Record<string, unknown> {
  if ((presetNames as readonly string[]).includes(spec)) return { model: spec };
  if (!existsSync(spec))
    throw new Error(
      `distill: --student ${spec} is neither a preset (${presetNames.join(", ")}) nor a JSON file`,
    );
  return readConfigFile(spec);
}

export function registerDistillCommand(program: Command): void {
  const cmd = program
    .command("distill")
    .description(
      "Distil a teacher into a smaller student: hard-label cross-entropy plus the divergence from the teacher's softened distribution (forward KL, reverse KL or GKD's JSD)",
    )
    .option("--teacher <model>", `the teacher: ${MODEL_SPEC_HELP}`)
    .option(
      "--student <preset|file>",
      `the student: a size preset (${presetNames.join(", ")}) or a JSON file of model fields (default: micro)`,
    )
    .option(
      "--data <dir|corpus>",
      "prepared dataset folder or built-in corpus, tokenized like the teacher (default: brown)",
    )
    .option("--config <file>", "a JSON file of run fields (flags override it)")
    .option("--resume [runDir]", "continue a run from its newest good checkpoint")
    .option("--json", "print the result as JSON", false);
  const shared = trainConfigFields().filter((f) => !OWN_FLAGS.includes(f.name));
  const own = schemaFields(distillSettingsSchema).filter((f) => f.name !== "teacher");
  for (const f of [...shared, ...own]) cmd.addOption(trainFieldOption(f));
  cmd.action(async (o) => {
    const file = o.config ? readConfigFile(o.config) : {};
    const settings: Record<string, unknown> = {
      ...((file.objectiveConfig as object) ?? {}),
      ...givenTrainFields(o, own),
    };
    if (o.teacher) settings.teacher = o.teacher;
    const given: Record<string, unknown> = {
      ...file,
      ...(o.student ? studentFields(o.student) : {}),
      ...givenTrainFields(o, shared),
    };
    if (o.data) given.data = o.data;
    if (Object.keys(settings).length > 0) given.objectiveConfig = settings;
    if (o.resume === undefined) {
      if (!settings.teacher) throw new Error("distill: --teacher is required (the model to distil)");
      parseDistillSettings(settings);
    }
    const resume = o.resume === undefined ? {} : { resume: o.resume === true ? true : (o.resume as string) };
    const result = await distill(given, resume);
    output(o.json, result, () => {
      const tps = result.tokensPerSecond === null ? "-" : result.tokensPerSecond.toFixed(0);
      return [
        `run ${result.runName} (${result.runDir})${result.alreadyFinished ? ": already finished, nothing trained or changed" : ""}`,
        `student ${result.parameters.total.toLocaleString("en-US")} parameters; steps ${result.step}/${result.steps}, tokens ${result.tokens}, ${result.elapsedSeconds.toFixed(0)} s, ${tps} tokens/s`,
        `train loss ${result.loss?.toFixed(4) ?? "-"}, validation loss ${result.valLoss?.toFixed(4) ?? "-"}${result.valEstimate ? " (estimate)" : " (whole split)"}`,
      ].join("\n");
    });
    if (result.interrupted) process.exitCode = 130;
  });
}
