// Issue 14's targets, measured end to end on one built-in task (docs/feedback.md records the results):
//   1. a micro model pretrained briefly on Brown, then SFT on the task's train split;
//   2. GRPO from that SFT model (the same size): held-out accuracy gain, with a paired 95% interval;
//   3. DPO from the same SFT model on task preference pairs (right answer chosen, wrong rejected);
//   4. a larger model (≥ 4× the parameters) through the same pretraining and SFT, without RL;
//   5. a control: the micro SFT trained --sft-extra-steps longer (about GRPO's compute), so a GRPO gain is
//      not mistaken for what more SFT would have given.
// Every model answers the same held-out problems (the task's test split, greedy), so differences are
// paired: per problem d = correct(B) − correct(A), mean ± 1.96·sd/√n.
//
//   node dist/bench/feedback.js --root /tmp/fb [--task addition] [--difficulty 4] [--sft-steps 3000]
//     [--grpo-steps 200] [--dpo-steps 200] [--sft-extra-steps 1000] [--grpo-lr 1e-4] [--eval-count 1000]
//     [--big-layers 9]
// Prints progress on stderr and one JSON object (every figure, the settings and the seconds each phase took)
// on stdout; a run that exists in --root is resumed or reused, so a stopped benchmark continues.
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { dpo, grpo, sft } from "../src/feedback/index.js";
import { type TrainResult, train } from "../src/train/index.js";
import { pairedDifference, scoreModels } from "./task-compare.js";

interface Args {
  root: string;
  task: string;
  difficulty: number;
  baseSteps: number;
  sftSteps: number;
  grpoSteps: number;
  dpoSteps: number;
  sftExtraSteps: number;
  grpoLr: number;
  dpoLr: number;
  evalCount: number;
  bigLayers: number;
  seed: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    root: "",
    task: "addition",
    difficulty: 4,
    baseSteps: 300,
    sftSteps: 3000,
    grpoSteps: 200,
    dpoSteps: 200,
    sftExtraSteps: 1000,
    grpoLr: 1e-4,
    dpoLr: 1e-5,
    evalCount: 1000,
    bigLayers: 9,
    seed: 1337,
  };
  const names: Record<string, keyof Args> = {
    "--root": "root",
    "--task": "task",
    "--difficulty": "difficulty",
    "--base-steps": "baseSteps",
    "--sft-steps": "sftSteps",
    "--grpo-steps": "grpoSteps",
    "--dpo-steps": "dpoSteps",
    "--sft-extra-steps": "sftExtraSteps",
    "--grpo-lr": "grpoLr",
    "--dpo-lr": "dpoLr",
    "--eval-count": "evalCount",
    "--big-layers": "bigLayers",
    "--seed": "seed",
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]!];
    const v = argv[i + 1];
    if (!key || v === undefined)
      throw new Error(`unknown argument ${argv[i]} (known: ${Object.keys(names).join(", ")})`);
    if (typeof a[key] === "number") {
      const n = Number(v);
      const integer = key !== "grpoLr" && key !== "dpoLr";
      if (!(n >= 0) || (integer && !Number.isInteger(n)))
        throw new Error(`${argv[i]}: expected ${integer ? "an integer" : "a number"} ≥ 0, got ${v}`);
      (a as unknown as Record<string, number>)[key] = n;
    } else (a as unknown as Record<string, string>)[key] = v;
  }
  if (!a.root) throw new Error("--root <dir> is required (where the runs go)");
  return a;
}

const say = (m: string) => process.stderr.write(`[feedback bench] ${m}\n`);

/** Runs a phase unless its run already finished (then reuses it), timing it. */
async function phase(
  name: string,
  runDir: string,
  seconds: Record<string, number>,
  run: (resume: boolean) => Promise<TrainResult>,
): Promise<string> {
  const t0 = performance.now();
  say(`${name}…`);
  const r = await run(existsSync(runDir));
  seconds[name] = (performance.now() - t0) / 1000;
  say(`${name}: ${r.step}/${r.steps} steps, ${seconds[name]!.toFixed(0)} s`);
  return r.runDir;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const { root, seed } = a;
  const seconds: Record<string, number> = {};
  const data = `task:${a.task}`;
  const task = { taskDifficulty: a.difficulty, taskEvalCount: 200 };
  const quiet = { quiet: true, log: say };
  const dir = (name: string) => join(root, name);

  const base = (name: string, extra: Record<string, unknown>) =>
    phase(name, dir(name), seconds, (resume) =>
      train(
        { model: "micro", ...extra, steps: a.baseSteps, evalInterval: 0, root, runName: name, seed },
        { ...quiet, resume },
      ),
    );
  const baseSmall = await base("base-micro", {});
  const baseBig = await base("base-big", { model: "mini", layers: a.bigLayers });

  const sftRun = (name: string, init: string, steps = a.sftSteps) =>
    phase(name, dir(name), seconds, (resume) =>
      sft(
        {
          init,
          data,
          objectiveConfig: { ...task, taskCount: 50_000 },
          steps,
          batchSize: 16,
          evalInterval: 500,
          checkpointInterval: 500,
          root,
          runName: name,
          seed,
        },
        { ...quiet, resume },
      ),
    );
  const sftSmall = await sftRun("sft-micro", baseSmall);
  const sftBig = await sftRun("sft-big", baseBig);
  const sftLong = await sftRun("sft-micro-long", baseSmall, a.sftSteps + a.sftExtraSteps);

  const grpoSmall = await phase("grpo-micro", dir("grpo-micro"), seconds, (resume) =>
    grpo(
      {
        init: sftSmall,
        data,
        objectiveConfig: task,
        steps: a.grpoSteps,
        lr: a.grpoLr,
        evalInterval: 50,
        root,
        runName: "grpo-micro",
        seed,
      },
      { ...quiet, resume },
    ),
  );
  const dpoSmall = await phase("dpo-micro", dir("dpo-micro"), seconds, (resume) =>
    dpo(
      {
        init: sftSmall,
        data,
        objectiveConfig: { ...task, taskCount: 5000 },
        steps: a.dpoSteps,
        lr: a.dpoLr,
        root,
        runName: "dpo-micro",
        seed,
      },
      { ...quiet, resume },
    ),
  );

  // The same held-out problems for every model (seed 0 of the test split, as `eval --task` defaults).
  const models = { sftSmall, grpoSmall, dpoSmall, sftBig, sftLong };
  const t0 = performance.now();
  const names = Object.keys(models);
  const scores = scoreModels(Object.values(models), a.task, a.difficulty, a.evalCount);
  const results = Object.fromEntries(names.map((n, i) => [n, scores[i]!]));
  for (const [name, r] of Object.entries(results))
    say(`${name}: accuracy ${r.accuracy.toFixed(4)} [${r.interval.map((x) => x.toFixed(4)).join(", ")}]`);
  seconds.evaluation = (performance.now() - t0) / 1000;
  const diff = (x: string, y: string) => pairedDifference(results[x]!.correct, results[y]!.correct);
  const out = {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    settings: a,
    accuracy: Object.fromEntries(
      Object.entries(results).map(([k, r]) => [
        k,
        { accuracy: r.accuracy, interval: r.interval, parameters: r.parameters },
      ]),
    ),
    grpoGain: diff("sftSmall", "grpoSmall"),
    dpoGain: diff("sftSmall", "dpoSmall"),
    grpoOverLongerSft: diff("sftLong", "grpoSmall"),
    smallTunedOverBig: diff("sftBig", "grpoSmall"),
    parameterRatio: results.sftBig!.parameters / results.sftSmall!.parameters,
    grpoFinal: readLastVal(grpoSmall),
    dpoFinal: readLastVal(dpoSmall),
    seconds,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

/** The final held-out figures a fine-tune wrote to its metrics.jsonl (val.* fields of its last line). */
function readLastVal(runDir: string): Record<string, number> {
  const lines = readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n");
  const last = JSON.parse(lines[lines.length - 1]!) as Record<string, number>;
  return Object.fromEntries(Object.entries(last).filter(([k]) => k.startsWith("val")));
}

await main();
