// `afterscale fit` and `afterscale compare`: scaling-law fits with bootstrap intervals.
import type { Command } from "commander";
import {
  BUILTIN_DATASETS,
  bootstrapFit,
  computeMultiplier,
  computeOptimal,
  DEFAULT_BOOTSTRAP_COUNT,
  fitChinchilla,
  formatComparison,
  formatFitReport,
  groupByBudget,
  isoflopFits,
  returnsToScale,
  type ScalingPoint,
} from "../scaling/index.js";
import { loadSource } from "../scaling/sweep.js";
import { int, num, output } from "./options.js";

/** A source is a built-in dataset name, a CSV path, or a sweep id (under root; see loadSource). */
function pointsFrom(
  source: string,
  exclude: number,
  root?: string,
): { points: ScalingPoint[]; excluded: number } {
  const s = loadSource(source, { excludeTopLoss: exclude, ...(root ? { root } : {}) });
  if (s.missing && s.missing.length > 0) {
    process.stderr.write(
      `afterscale: sweep ${source}: ${s.missing.length} planned runs not finished; fitting the rest\n`,
    );
  }
  return { points: s.points, excluded: s.excluded };
}

export function registerScalingCommands(program: Command): void {
  program
    .command("fit")
    .description(
      "Fit L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla approach 3, Epoch AI protocol) with bootstrap intervals",
    )
    .option("--dataset <name>", `a built-in dataset (${BUILTIN_DATASETS.join(", ")})`)
    .option("--csv <file>", "a CSV with columns for N, D or C, and loss")
    .option("--sweep <id>", "a sweep's finished runs (afterscale sweep)")
    .option("--root <dir>", "where sweeps live (default $AFTERSCALE_HOME or ./runs)")
    .option(
      "--exclude-top-loss <k>",
      "drop the k highest-loss runs first (Epoch AI drop 5 on Chinchilla)",
      int(0),
      0,
    )
    .option(
      "--bootstrap <n>",
      "bootstrap resamples for intervals (0 = none)",
      int(0, 100000),
      DEFAULT_BOOTSTRAP_COUNT,
    )
    .option("--seed <n>", "bootstrap seed", int(0), 1)
    .option(
      "--inference-tokens <n>",
      "expected lifetime inference tokens, for the inference-aware optimum",
      num(0),
    )
    .option("--json", "print the fit as JSON", false)
    .action((o) => {
      const given = [o.dataset, o.csv, o.sweep].filter((x) => x !== undefined);
      if (given.length !== 1) throw new Error("fit: give exactly one of --dataset, --csv or --sweep");
      const { points, excluded } = pointsFrom(given[0], o.excludeTopLoss, o.root);
      const fit = fitChinchilla(points);
      const boot =
        o.bootstrap > 0
          ? bootstrapFit(points, { count: o.bootstrap, seed: o.seed, fullFit: fit })
          : undefined;
      const baseCompute = Math.max(...points.map((p) => p.C));
      let isoflop: ReturnType<typeof isoflopFits> | undefined;
      try {
        isoflop = isoflopFits(groupByBudget(points));
      } catch {
        isoflop = undefined; // not an IsoFLOP grid: approaches 1/2 do not apply
      }
      output(
        o.json,
        {
          points: points.length,
          excluded,
          fit,
          intervals: boot?.params,
          computeOptimalAtBase: computeOptimal(fit.params, baseCompute),
          returnsToScale: returnsToScale(fit.params, baseCompute),
          isoflop,
        },
        () =>
          formatFitReport({
            fit,
            ...(boot ? { boot } : {}),
            baseCompute,
            excluded,
            ...(o.inferenceTokens !== undefined ? { inferenceTokens: o.inferenceTokens } : {}),
            ...(isoflop ? { isoflop } : {}),
          }),
      );
    });

  program
    .command("compare")
    .description(
      "Effective compute multiplier: how much less compute B needs to reach A's compute-optimal loss",
    )
    .argument("<a>", "baseline: a built-in dataset, a CSV or a sweep id")
    .argument("<b>", "candidate: a built-in dataset, a CSV or a sweep id")
    .option("--root <dir>", "where sweeps live (default $AFTERSCALE_HOME or ./runs)")
    .option(
      "--compute <flops>",
      "the budget C at which A's loss is taken (default: A's largest budget)",
      num(0),
    )
    .option(
      "--bootstrap <n>",
      "bootstrap resamples for the interval",
      int(0, 100000),
      DEFAULT_BOOTSTRAP_COUNT,
    )
    .option("--seed <n>", "bootstrap seed", int(0), 1)
    .option("--exclude-top-loss <k>", "drop the k highest-loss runs of each", int(0), 0)
    .option("--json", "print the comparison as JSON", false)
    .action((a: string, b: string, o) => {
      const pa = pointsFrom(a, o.excludeTopLoss, o.root).points;
      const pb = pointsFrom(b, o.excludeTopLoss, o.root).points;
      const C = o.compute ?? Math.max(...pa.map((p) => p.C));
      const fa = fitChinchilla(pa);
      const fb = fitChinchilla(pb);
      const ba =
        o.bootstrap > 0 ? bootstrapFit(pa, { count: o.bootstrap, seed: o.seed, fullFit: fa }) : undefined;
      const bb =
        o.bootstrap > 0 ? bootstrapFit(pb, { count: o.bootstrap, seed: o.seed + 1, fullFit: fb }) : undefined;
      output(
        o.json,
        { compute: C, a: fa.params, b: fb.params, ...computeMultiplier(fa.params, fb.params, C) },
        () => formatComparison(ba ?? fa, bb ?? fb, C, [a, b]),
      );
    });
}
