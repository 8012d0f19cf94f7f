// `afterscale sweep` (plan and run an IsoFLOP grid) and `afterscale report` (the HTML report of a fit).
import { resolve } from "node:path";
import type { Command } from "commander";
import { redactUrl } from "../queue/index.js";
import { DEFAULT_BOOTSTRAP_COUNT } from "../scaling/bootstrap.js";
import { writeReport } from "../scaling/report.js";
import {
  formatPlan,
  loadSweepPlan,
  newSweepId,
  type PlanOptions,
  planDifference,
  planSweep,
  probeThroughput,
  runSweep,
  runSweepOnQueue,
  SWEEP_OWNED_FIELDS,
  type SweepPlan,
  sweepExists,
  sweepStatus,
  validateSweepId,
} from "../scaling/sweep.js";
import {
  defaultRoot,
  familyNames,
  type TrainConfigInput,
  type TrainField,
  trainConfigFields,
} from "../train/index.js";
import {
  abortOnSignals,
  givenTrainFields,
  int,
  num,
  numList,
  oneOf,
  output,
  trainFieldOption,
} from "./options.js";

/** The trainer's flags that a sweep passes to every run: every config field the sweep does not set itself. */
function trainerFields(): TrainField[] {
  const owned = new Set<string>([...SWEEP_OWNED_FIELDS, "root"]);
  return trainConfigFields().filter((f) => !owned.has(f.name));
}

function trainerSettings(o: Record<string, unknown>): TrainConfigInput {
  const out = givenTrainFields(o, trainerFields());
  if (o.root !== undefined) out.root = o.root;
  return out as TrainConfigInput;
}

function stderrLine(m: string): void {
  process.stderr.write(`${m}\n`);
}

/** `sweep --queue`: enqueue, then wait for the workers (or detach), and report every run's outcome. */
async function sweepOnQueue(plan: SweepPlan, o: Record<string, unknown>, rootFlag: string): Promise<void> {
  const url = String(o.queue);
  const resume = `afterscale sweep --resume ${plan.sweepId}${rootFlag} --queue ${redactUrl(url)}`;
  // SIGINT/SIGTERM stop waiting; the runs stay queued for the workers.
  const stop = abortOnSignals("sweep (its runs stay in the queue)");
  const started = performance.now();
  try {
    const summary = await runSweepOnQueue(plan, {
      url,
      detach: Boolean(o.detach),
      attempts: Number(o.attempts),
      signal: stop.signal,
      log: o.json ? () => {} : stderrLine,
    });
    const seconds = (performance.now() - started) / 1000;
    output(Boolean(o.json), { sweepId: plan.sweepId, seconds, ...summary }, () => {
      const lines = [
        `sweep ${plan.sweepId} through the queue: ${summary.completed.length} runs collected now, ` +
          `${summary.skipped.length} already finished, ${summary.failed.length} failed, ${summary.pending.length} in the queue ` +
          `(${seconds.toFixed(0)} s)`,
      ];
      for (const f of summary.failed) lines.push(`failed: ${f.runName}: ${f.error}`);
      if (summary.pending.length > 0) lines.push(`collect the results with: ${resume}`);
      else if (summary.failed.length > 0)
        lines.push(`after fixing the cause, retry the failed runs with: ${resume}`);
      else
        lines.push(
          `fit it: afterscale fit --sweep ${plan.sweepId}${rootFlag}; report: afterscale report ${plan.sweepId}${rootFlag} -o report.html`,
        );
      return lines.join("\n");
    });
    if (summary.failed.length > 0) process.exitCode = 1;
    else if (summary.pending.length > 0 && !o.detach) process.exitCode = 130;
  } finally {
    stop.release();
  }
}

export function registerSweepCommands(program: Command): void {
  const sweep = program
    .command("sweep")
    .description(
      "Plan an IsoFLOP grid (budgets × model sizes), print it with a wall-time estimate, and train every run " +
        "(recorded in the run registry under a sweep id; running it again resumes where it stopped)",
    )
    .option("--budgets <flops>", "comma-separated compute budgets in FLOPs, e.g. 1e11,3e11,1e12", numList)
    .option("--family <name>", `model family (${familyNames.join(", ")})`, oneOf(familyNames), "llama")
    .option("--sizes-per-budget <n>", "model sizes per budget", int(1, 50), 5)
    .option("--spread <x>", "largest / smallest N within a budget", num(1), 16)
    .option("--tokens-per-param <x>", "prior for the optimum's D/N, centres each budget's sizes", num(0), 20)
    .option("--sweep-id <id>", "name of the sweep (default sweep-<UTC time>); an existing id resumes it")
    .option("--resume <id>", "continue a sweep from its saved plan (no other flags needed)")
    .option("--root <dir>", "where runs, the registry and sweeps live (default $AFTERSCALE_HOME or ./runs)")
    .option("--dry-run", "print the plan and stop", false)
    .option("--no-probe", "skip the throughput probe (no wall-time estimate)")
    .option("--json", "print the plan (and the summary) as JSON", false)
    .option(
      "--queue <url>",
      "train the runs on `afterscale worker`s through this Redis queue (redis://[user:pass@]host:port[/db], rediss:// for TLS) " +
        "instead of here; --root must be storage the workers reach at the same path",
    )
    .option(
      "--detach",
      "with --queue: enqueue the runs and exit; collect them later with --resume ID --queue URL",
      false,
    )
    .option(
      "--attempts <n>",
      "with --queue: attempts of a failing run before it is marked failed",
      int(1, 100),
      3,
    );
  // Trainer flags (generated from the config schema, as `afterscale train` does) apply to every run.
  for (const f of trainerFields()) {
    const note =
      f.name === "warmupSteps"
        ? " (sweep default: 5% of each run's steps)"
        : f.name === "evalInterval"
          ? " (sweep default: 5 evaluations per run)"
          : f.name === "checkpointInterval"
            ? " (sweep default: 10 checkpoints per run)"
            : "";
    sweep.addOption(trainFieldOption(f, `trainer: ${f.description}${note}`));
  }
  sweep.action(async (o) => {
    const root = resolve(o.root ?? defaultRoot());
    let plan: ReturnType<typeof planSweep>;
    if (o.resume !== undefined) {
      if (o.budgets) throw new Error("sweep: --resume continues a saved plan; do not give --budgets with it");
      plan = loadSweepPlan(root, validateSweepId(o.resume));
    } else {
      if (!o.budgets) throw new Error("sweep: give --budgets (e.g. --budgets 1e11,3e11,1e12) or --resume ID");
      const sweepId = validateSweepId(o.sweepId ?? newSweepId());
      const options: PlanOptions = {
        sweepId,
        budgets: o.budgets,
        family: o.family,
        sizesPerBudget: o.sizesPerBudget,
        spread: o.spread,
        tokensPerParam: o.tokensPerParam,
        train: trainerSettings({ ...o, root }),
        log: o.json ? () => {} : stderrLine,
      };
      plan = planSweep(options);
      if (sweepExists(root, sweepId)) {
        const saved = loadSweepPlan(root, sweepId);
        const why = planDifference(saved, plan);
        if (why) {
          throw new Error(
            `sweep ${sweepId} already exists with a different plan (${why}); ` +
              `continue it with --resume ${sweepId} or choose another --sweep-id`,
          );
        }
        plan = saved;
      }
    }
    const probe = o.probe ? probeThroughput(plan) : undefined;
    const status = sweepStatus(plan);
    if (o.json && o.dryRun) {
      output(true, { plan, probe }, () => "");
      return;
    }
    if (!o.json) process.stdout.write(`${formatPlan(plan, probe, status.size > 0 ? status : undefined)}\n`);
    if (o.dryRun) return;

    const rootFlag = o.root ? ` --root ${o.root}` : "";
    if (o.detach && !o.queue) throw new Error("sweep: --detach needs --queue URL");
    // Training a queued sweep here as well would race its workers for the same run folders.
    if (plan.queue && !o.queue)
      throw new Error(
        `sweep ${plan.sweepId} was put on the run queue ${plan.queue}: collect it with ` +
          `afterscale sweep --resume ${plan.sweepId}${rootFlag} --queue ${plan.queue}`,
      );
    if (o.queue) {
      await sweepOnQueue(plan, o, rootFlag);
      return;
    }
    // First SIGINT/SIGTERM: the current run checkpoints and the sweep stops; a second one quits at once.
    const stop = abortOnSignals("sweep");
    const started = performance.now();
    try {
      const summary = await runSweep(plan, { signal: stop.signal, log: stderrLine });
      const seconds = (performance.now() - started) / 1000;
      const left = plan.runs.length - summary.skipped.length - summary.completed.length;
      output(o.json, { sweepId: plan.sweepId, seconds, ...summary }, () =>
        [
          `sweep ${plan.sweepId}: ${summary.completed.length} runs trained now, ${summary.skipped.length} already finished, ` +
            `${left} left (${seconds.toFixed(0)} s)`,
          summary.interrupted
            ? `stopped at ${summary.interrupted}; continue with: afterscale sweep --resume ${plan.sweepId}${rootFlag}`
            : `fit it: afterscale fit --sweep ${plan.sweepId}${rootFlag}; ` +
              `report: afterscale report ${plan.sweepId}${rootFlag} -o report.html`,
        ].join("\n"),
      );
      if (summary.interrupted) process.exitCode = 130;
    } finally {
      stop.release();
    }
  });

  program
    .command("report")
    .description(
      "Write a self-contained HTML report (Vega-Lite charts, inline, no network) and SVGs of a scaling fit: " +
        "loss vs compute with the compute-optimal frontier, IsoFLOP curves, fitted vs observed, returns to scale",
    )
    .argument("<source>", "a sweep id, a CSV file, or a built-in dataset (chinchilla)")
    .argument("[second]", "a second source to compare with the first (effective compute multiplier)")
    .option("-o, --out <file>", "the HTML file to write", "report.html")
    .option("--svg-dir <dir>", "where the SVGs go (default: <out without .html>-svg)")
    .option("--root <dir>", "where sweeps live (default $AFTERSCALE_HOME or ./runs)")
    .option("--exclude-top-loss <k>", "drop the k highest-loss runs of each source first", int(0), 0)
    .option(
      "--bootstrap <n>",
      "bootstrap resamples for the intervals",
      int(0, 100000),
      DEFAULT_BOOTSTRAP_COUNT,
    )
    .option("--seed <n>", "bootstrap seed", int(0), 1)
    .option("--title <text>", "report title")
    .option("--json", "print what was written as JSON", false)
    .action(async (source: string, second: string | undefined, o) => {
      const written = await writeReport({
        sources: second === undefined ? [source] : [source, second],
        out: o.out,
        ...(o.svgDir ? { svgDir: o.svgDir } : {}),
        ...(o.root ? { root: o.root } : {}),
        excludeTopLoss: o.excludeTopLoss,
        bootstrap: o.bootstrap,
        seed: o.seed,
        ...(o.title ? { title: o.title } : {}),
      });
      output(
        o.json,
        written,
        () => `wrote ${written.html} and ${written.svgs.length} SVGs in ${written.svgDir}`,
      );
    });
}
