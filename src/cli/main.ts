#!/usr/bin/env node
// The `afterscale` command: one subcommand per job, each with --help and --json.
import { createRequire } from "node:module";
import { Command, CommanderError } from "commander";
import { registerDataCommands } from "./data.js";
import { registerDistillCommand } from "./distill.js";
import { registerFeedbackCommands } from "./feedback.js";
import { registerInspectCommand } from "./inspect.js";
import { registerIoCommands } from "./io.js";
import { registerPrefsCommands } from "./prefs.js";
import { registerQueueCommands } from "./queue.js";
import { registerSaeCommands } from "./sae.js";
import { registerScalingCommands } from "./scaling.js";
import { registerServeCommand } from "./serve.js";
import { registerStudyCommand } from "./study.js";
import { registerSweepCommands } from "./sweep.js";
import { registerTasksCommands } from "./tasks.js";
import { registerTrainCommands } from "./train.js";

const program = new Command();
program
  .name("afterscale")
  .description("Small language models on an ordinary machine: train, sample, evaluate, measure scaling.")
  // The package resolves itself by name (package.json "exports"), from the repository and when installed.
  .version(createRequire(import.meta.url)("afterscale/package.json").version, "-V, --version")
  .showHelpAfterError()
  .exitOverride();

registerDataCommands(program);
registerTrainCommands(program);
registerScalingCommands(program);
registerSweepCommands(program);
registerStudyCommand(program);
registerQueueCommands(program);
registerFeedbackCommands(program);
registerDistillCommand(program);
registerIoCommands(program);
registerServeCommand(program);
registerInspectCommand(program);
registerTasksCommands(program);
registerPrefsCommands(program);
registerSaeCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  process.stderr.write(`afterscale: ${(e as Error).message}\n`);
  if (process.env.AFTERSCALE_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
}
