// `afterscale prepare`: text → tokenizer + token shards + validation split.
import type { Command } from "commander";
import { BUILTIN_CORPORA, prepare } from "../data/index.js";
import { int, num, oneOf, output } from "./options.js";

export function registerDataCommands(program: Command): void {
  program
    .command("prepare")
    .description(
      "Tokenize text files, folders or JSONL (or the built-in corpus) into token shards with a validation split",
    )
    .argument("[inputs...]", "text files, folders (recursive) or .jsonl files")
    .requiredOption("-o, --out <dir>", "output folder for tokenizer.json, dataset.json and the shards")
    .option(
      "--corpus <name>",
      `use a built-in corpus (${BUILTIN_CORPORA.join(", ")})`,
      oneOf(BUILTIN_CORPORA),
    )
    .option("--field <name>", "JSONL field holding the text", "text")
    .option(
      "--vocab <n>",
      "train a byte-level BPE with this vocabulary size (default: byte-level, 257)",
      int(257, 1 << 20),
    )
    .option("--tokenizer <file>", "use an existing tokenizer.json instead of training one")
    .option("--min-frequency <n>", "BPE: ignore pairs seen fewer times", int(1), 2)
    .option("--val-fraction <f>", "fraction of documents held out for validation", num(0, 0.9))
    .option("--val-documents <n>", "exact number of validation documents", int(1))
    .option("--seed <n>", "seed of the validation split", int(0), 1337)
    .option("--force", "replace a dataset already in the output folder", false)
    .option("--json", "print the dataset summary as JSON", false)
    .action((inputs: string[], o) => {
      if (inputs.length === 0 && !o.corpus)
        throw new Error("prepare: give input files or folders, or --corpus brown");
      if (inputs.length > 0 && o.corpus)
        throw new Error("prepare: give either input files or --corpus, not both");
      const meta = prepare({
        inputs,
        corpus: o.corpus,
        outDir: o.out,
        field: o.field,
        vocabSize: o.vocab,
        tokenizer: o.tokenizer,
        minFrequency: o.minFrequency,
        valFraction: o.valFraction,
        valDocuments: o.valDocuments,
        seed: o.seed,
        overwrite: o.force,
        log: o.json ? () => {} : (m: string) => process.stderr.write(`${m}\n`),
      });
      output(o.json, meta, () => {
        const s = meta as unknown as Record<string, unknown>;
        return `prepared ${o.out}\n${JSON.stringify(s, null, 2)}`;
      });
    });
}
