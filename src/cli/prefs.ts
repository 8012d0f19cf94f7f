// `afterscale prefs`: the picks collected on serve's compare page, exported as preference JSONL for `dpo`
// or summarised.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { PrefsStore, preferenceRecords, prefsStats, toJsonl } from "../feedback/index.js";
import { writeFileAtomic } from "../io/index.js";
import { defaultRoot } from "../train/index.js";
import { output } from "./options.js";

const DB_HELP = "the picks' SQLite file (default: prefs.sqlite in $AFTERSCALE_HOME or ./runs)";

function readPicks(db: string | undefined) {
  const store = PrefsStore.open(db ?? PrefsStore.defaultPath(defaultRoot()), { readonly: true });
  try {
    return { path: store.path, picks: store.all() };
  } finally {
    store.close();
  }
}

export function registerPrefsCommands(program: Command): void {
  const prefs = program
    .command("prefs")
    .description("Preferences picked on serve's compare page (/compare): export them for dpo, or summarise");

  prefs
    .command("export")
    .description('Write the picks as TRL preference JSONL ({"prompt","chosen","rejected"}), ready for dpo')
    .option("--db <file>", DB_HELP)
    .option("--out <file>", "the JSONL file to write (default: stdout)")
    .option("--force", "replace --out if it exists", false)
    .option("--include-ties", "write each tie as both orderings (default: ties are skipped)", false)
    .option("--json", "print the summary as JSON (on stderr when the records go to stdout)", false)
    .action((o) => {
      if (o.out !== undefined && existsSync(o.out) && !o.force)
        throw new Error(`${o.out} exists; pass --force to replace it`);
      const { path, picks } = readPicks(o.db);
      const { records, used, skippedTies } = preferenceRecords(picks, { includeTies: o.includeTies });
      const jsonl = toJsonl(records);
      if (o.out !== undefined) writeFileAtomic(o.out, jsonl);
      else process.stdout.write(jsonl);
      const summary = {
        db: resolve(path),
        out: o.out === undefined ? null : resolve(o.out),
        picks: picks.length,
        exported: used,
        records: records.length,
        skippedTies,
      };
      const human =
        `afterscale prefs export: ${records.length} record(s) from ${used} of ${picks.length} pick(s) in ${path}` +
        (o.out === undefined ? "" : ` → ${o.out}`) +
        (skippedTies > 0 ? `; ${skippedTies} tie(s) skipped (--include-ties writes them)` : "");
      // With the records on stdout, the summary goes to stderr so the JSONL stays clean.
      if (o.out !== undefined) output(o.json, summary, () => human);
      else process.stderr.write(`${o.json ? JSON.stringify(summary) : human}\n`);
    });

  prefs
    .command("stats")
    .description("Count the picks: A / B / tie, and how each model and setting fared")
    .option("--db <file>", DB_HELP)
    .option("--json", "print the summary as JSON", false)
    .action((o) => {
      const { path, picks } = readPicks(o.db);
      const stats = prefsStats(picks);
      output(o.json, { db: resolve(path), ...stats }, () => {
        const lines = [
          `${path}: ${stats.total} pick(s), ${stats.chat} of them chat; ` +
            `A ${stats.pickedA} · B ${stats.pickedB} · tie ${stats.ties}`,
        ];
        for (const s of stats.sources) {
          const decided = s.won + s.lost;
          const rate = decided > 0 ? ` (won ${((100 * s.won) / decided).toFixed(0)}% of decided)` : "";
          lines.push(
            `  ${s.model} temperature ${s.temperature} top-p ${s.topP} max-tokens ${s.maxTokens}: ` +
              `won ${s.won}, lost ${s.lost}, tied ${s.tied}${rate}`,
          );
        }
        return lines.join("\n");
      });
    });
}
