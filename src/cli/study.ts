// `afterscale study`: train recipes at one model size over several compute budgets and report how much
// compute each is worth over the first (the baseline). With no budgets it runs the quick study that
// `npm start` shows (about 10 minutes at micro on 2 cores).
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { generate } from "../infer/index.js";
import { redactUrl } from "../queue/index.js";
import {
  estimateStudy,
  formatStudy,
  loadStudyPlan,
  mainRuns,
  planStudy,
  runStudy,
  STUDY_OWNED_FIELDS,
  type StudyPlan,
  studyPlanDifference,
  studyPlanPath,
  tuning,
  validateStudyId,
  writeStudyReport,
} from "../study/index.js";
import {
  defaultRoot,
  loadModelFrom,
  parseTrainConfig,
  runDirOf,
  type TrainConfigInput,
  trainConfigFields,
} from "../train/index.js";
import { abortOnSignals, givenTrainFields, int, numList, output, trainFieldOption } from "./options.js";

function stderrLine(m: string): void {
  process.stderr.write(`${m}\n`);
}

function timestampId(d = new Date()): string {
  return `study-${d.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)}`;
}

/** One sample from each recipe's largest-budget model (first seed), so the gain can be read as text too. */
function samplesOf(plan: StudyPlan, prompt: string): { recipe: string; text: string }[] {
  const runs = mainRuns(plan, tuning(plan)) ?? [];
  const top = plan.budgets[plan.budgets.length - 1]!;
  return plan.recipes.flatMap((recipe) => {
    const run = runs.find((r) => r.variant === recipe && r.budget === top && r.seed === plan.seeds[0]);
    if (!run) return [];
    const dir = runDirOf(parseTrainConfig(run.config));
    if (!existsSync(dir)) return [];
    const { model, tokenizer } = loadModelFrom(dir);
    const r = generate(model, tokenizer, prompt, { maxTokens: 60, temperature: 0.8, topK: 50, seed: 1 });
    return [{ recipe, text: `${prompt}${r.text}` }];
  });
}

export function registerStudyCommand(program: Command): void {
  const owned = new Set<string>([...STUDY_OWNED_FIELDS, "root"]);
  const fields = trainConfigFields().filter((f) => !owned.has(f.name));
  const cmd = program
    .command("study")
    .description(
      "How much compute a recipe is worth: train recipes at one model size over several budgets (learning rates " +
        "tuned per recipe) and report each one's effective compute multiplier over the first, with a bootstrap interval",
    )
    .option(
      "--recipes <names>",
      "comma-separated recipes or recipe files; the first is the baseline",
      "gpt2,afterscale",
    )
    .option(
      "--budgets <flops>",
      "compute budgets in FLOPs (default: the quick study, 0.5M/1M/2M baseline tokens)",
      numList,
    )
    .option("--seeds <list>", "comma-separated seeds (paired across recipes)", numList)
    .option(
      "--lr-factors <list>",
      "learning-rate multipliers tried at the smallest budget (at least 3)",
      numList,
    )
    .option(
      "--ablate",
      "also train each lever of the last recipe added to the baseline alone, and removed from it",
      false,
    )
    .option("--study-id <id>", "name of the study (default study-<UTC time>); an existing id continues it")
    .option("--resume <id>", "continue a study from its saved plan")
    .option("--root <dir>", "where runs, the registry and studies live (default $AFTERSCALE_HOME or ./runs)")
    .option("--report <file>", "also write the HTML report here")
    .option("--samples <n>", "print a sample from each recipe's largest model", int(0, 1), 0)
    .option("--bootstrap <n>", "bootstrap resamples for the interval", int(0, 100000), 2000)
    .option("--dry-run", "print the plan and stop", false)
    .option("--json", "print the result as JSON", false)
    .option(
      "--queue <url>",
      "train the runs on `afterscale worker`s through this Redis queue (redis://[user:pass@]host:port[/db]); " +
        "--root must be storage the workers reach at the same path",
    )
    .option(
      "--detach",
      "with --queue: enqueue the current phase and exit; --resume ID --queue URL collects it and enqueues the next",
      false,
    )
    .option(
      "--attempts <n>",
      "with --queue: attempts of a failing run before it is marked failed",
      int(1, 100),
      3,
    );
  for (const f of fields) cmd.addOption(trainFieldOption(f, `trainer (every run): ${f.description}`));
  cmd.action(async (o) => {
    const root = resolve(o.root ?? defaultRoot());
    let plan: StudyPlan;
    if (o.resume !== undefined) {
      plan = loadStudyPlan(root, validateStudyId(o.resume));
    } else {
      const studyId = validateStudyId(o.studyId ?? timestampId());
      const train = { ...givenTrainFields(o, fields), root } as TrainConfigInput;
      plan = planStudy({
        studyId,
        recipes: String(o.recipes)
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean),
        ...(o.budgets ? { budgets: o.budgets } : {}),
        ...(o.seeds ? { seeds: o.seeds } : {}),
        ...(o.lrFactors ? { lrFactors: o.lrFactors } : {}),
        ablate: o.ablate,
        train,
        log: o.json ? () => {} : stderrLine,
      });
      if (existsSync(studyPlanPath(root, studyId))) {
        const saved = loadStudyPlan(root, studyId);
        const why = studyPlanDifference(saved, plan);
        if (why)
          throw new Error(
            `study ${studyId} already exists with a different plan (${why}); choose another --study-id`,
          );
        plan = saved;
      }
    }
    const runCount =
      plan.variants.length * plan.budgets.length * plan.seeds.length +
      plan.recipes.length * (plan.lrFactors.length - 1);
    if (!o.json) {
      stderrLine(
        `study ${plan.studyId}: ${plan.variants.map((v) => v.id).join(", ")}; about ${runCount} runs ` +
          `(${plan.lrFactors.length} learning rates per recipe at the smallest budget, more where the best is at an edge; then ${plan.budgets.length} budgets × ${plan.seeds.length} seeds)`,
      );
      for (const v of plan.variants)
        stderrLine(
          `  ${v.id}: ${v.nonEmbedding.toLocaleString("en-US")} non-embedding parameters, ${v.flopsPerToken.toLocaleString("en-US")} FLOPs/token` +
            (v.optimizerFlopsPerStep > 0
              ? ` + ${v.optimizerFlopsPerStep.toExponential(2)} optimizer FLOPs/step`
              : "") +
            ` — ${v.description}`,
        );
      for (const w of plan.warnings) stderrLine(`warning: ${w}`);
    }
    if (o.dryRun) {
      if (o.json) output(true, plan, () => "");
      return;
    }
    if (o.detach && !o.queue) throw new Error("study: --detach needs --queue URL");
    const stop = abortOnSignals(o.queue ? "study (its runs stay in the queue)" : "study");
    const started = performance.now();
    const rootFlag = o.root ? ` --root ${o.root}` : "";
    const resume = `afterscale study --resume ${plan.studyId}${rootFlag}${o.queue ? ` --queue ${redactUrl(o.queue)}` : ""}`;
    try {
      const summary = await runStudy(plan, {
        signal: stop.signal,
        log: o.json ? () => {} : stderrLine,
        ...(o.queue ? { queue: { url: o.queue, detach: o.detach, attempts: o.attempts } } : {}),
      });
      const seconds = (performance.now() - started) / 1000;
      const result = estimateStudy(plan, { bootstrap: o.bootstrap });
      const report = o.report ? await writeStudyReport(plan, result, o.report) : null;
      const samples = o.samples > 0 && !summary.interrupted ? samplesOf(plan, "He said that") : [];
      output(o.json, { ...result, seconds, summary, report: report?.html ?? null, samples }, () => {
        const lines = [
          formatStudy(plan, result),
          "",
          `${summary.completed.length} runs trained now, ${summary.skipped.length} already finished (${seconds.toFixed(0)} s)`,
        ];
        for (const f of summary.failed) lines.push(`failed: ${f.runName}: ${f.error}`);
        if (summary.failed.length > 0) lines.push(`after fixing the cause, retry them with: ${resume}`);
        else if (summary.interrupted)
          lines.push(`stopped at ${summary.interrupted}; continue with: ${resume}`);
        else if (summary.pending.length > 0)
          lines.push(
            `${summary.pending.length} runs in the queue; collect them (and enqueue the next phase) with: ${resume}`,
          );
        if (report) lines.push(`report: ${report.html}`);
        for (const s of samples) lines.push("", `--- sample from ${s.recipe} ---`, s.text);
        return lines.join("\n");
      });
      if (summary.failed.length > 0) process.exitCode = 1;
      else if (summary.interrupted) process.exitCode = 130;
    } finally {
      stop.release();
    }
  });
}
