// `afterscale export` (Hugging Face folder or GGUF file) and `afterscale import` (read one back and check it).

import { readFileSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { openShards } from "../data/index.js";
import {
  bitsPerWeight,
  exportModel,
  importModel,
  QUANT_PRESETS,
  QUANTIZE_TYPES,
  quantizationReport,
  quantizeGguf,
  writeFileAtomic,
} from "../io/index.js";
import { parameterCounts } from "../nn/index.js";
import { loadModel, MODEL_SPEC_HELP, resolveDataDir } from "../train/index.js";
import { oneOf, output } from "./options.js";

export function registerIoCommands(program: Command): void {
  program
    .command("export")
    .description(
      "Export a model as a Hugging Face folder (llama: LlamaForCausalLM, with QK-norm Qwen3ForCausalLM; gpt2: GPT2LMHeadModel) or a GGUF file for llama.cpp",
    )
    .requiredOption("--model <path>", MODEL_SPEC_HELP)
    .requiredOption("-o, --out <path>", "output folder (hf) or file (gguf)")
    .option("--format <format>", "hf or gguf", oneOf(["hf", "gguf"] as const), "gguf")
    .option(
      "--dtype <dtype>",
      `f32, f16, bf16, or (gguf only) a llama.cpp quantization: ${QUANT_PRESETS.join(", ")}`,
      oneOf(["f32", "f16", "bf16", ...QUANT_PRESETS] as const),
      "f32",
    )
    .option("--json", "print the result as JSON", false)
    .action((o) => {
      const { model, tokenizer, trainConfig } = loadModel(o.model, { dequantize: true });
      const result = exportModel(model, tokenizer, { format: o.format, dtype: o.dtype, out: o.out });
      // A quantized export reports what it costs, on the validation split the model was trained against.
      let report: ReturnType<typeof quantizationReport> | null = null;
      if (o.dtype !== "f32" && trainConfig) {
        const ds = openShards(resolveDataDir(trainConfig));
        if (ds.val.length > 0) report = quantizationReport(model, tokenizer, ds.val[0]!, o.dtype);
      }
      output(o.json, { ...result, quantization: report }, () => {
        const lines = [`wrote ${result.files.join(", ")} (${result.bytes} bytes)`];
        if (report) lines.push(JSON.stringify(report, null, 2));
        return lines.join("\n");
      });
    });

  program
    .command("quantize")
    .description(
      "Quantize an F32, F16 or BF16 GGUF file (afterscale's or llama.cpp's) as llama-quantize does: its block encodings, per-tensor types and fallbacks",
    )
    .argument("<in>", "an F32, F16 or BF16 GGUF file (llama, qwen3 or gpt2)")
    .argument("<out>", "the GGUF file to write")
    .requiredOption("--type <type>", QUANTIZE_TYPES.join(", "), oneOf(QUANTIZE_TYPES))
    .option("--json", "print the result as JSON", false)
    .action((input: string, out: string, o) => {
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(input);
      } catch (e) {
        throw new Error(`quantize: cannot read ${input}: ${(e as Error).message}`);
      }
      const same = (() => {
        try {
          return realpathSync(out) === realpathSync(input);
        } catch {
          return resolve(out) === resolve(input);
        }
      })();
      if (same) throw new Error(`quantize: the output ${out} is the input file; write to another path`);
      const r = quantizeGguf(bytes, o.type, input);
      writeFileAtomic(out, r.bytes);
      const counts = new Map<string, number>();
      let weights = 0;
      let quantBits = 0;
      for (const t of r.tensors) {
        counts.set(t.to, (counts.get(t.to) ?? 0) + 1);
        const n = t.shape.reduce((a, b) => a * b, 1);
        weights += n;
        quantBits += n * bitsPerWeight(t.to);
      }
      const summary = {
        in: input,
        out,
        type: o.type,
        bytes: r.bytes.length,
        tensorBytesIn: r.tensorBytesIn,
        tensorBytesOut: r.tensorBytesOut,
        bitsPerWeight: quantBits / weights,
        tensorTypes: Object.fromEntries(counts),
        tensors: r.tensors,
      };
      output(o.json, summary, () =>
        [
          `wrote ${out} (${r.bytes.length} bytes): tensors ${(r.tensorBytesIn / 2 ** 20).toFixed(2)} MiB → ${(r.tensorBytesOut / 2 ** 20).toFixed(2)} MiB, ${summary.bitsPerWeight.toFixed(2)} bits per weight`,
          `tensor types: ${[...counts].map(([t, n]) => `${n} ${t}`).join(", ")}`,
          ...r.tensors
            .filter((t) => t.from !== t.to)
            .map((t) => `  ${t.name} [${t.shape}] ${t.from} → ${t.to}`),
        ].join("\n"),
      );
    });

  program
    .command("import")
    .description("Read a Hugging Face folder or a GGUF file into afterscale and report what it holds")
    .argument("<path>", "a Hugging Face checkpoint folder or a GGUF file")
    .option("--json", "print the summary as JSON", false)
    .action((path: string, o) => {
      const r = importModel(path);
      const counts = parameterCounts(r.model.config);
      const summary = {
        format: r.format,
        config: r.model.config,
        parameters: counts,
        tokenizer: r.tokenizer ? { vocabSize: r.tokenizer.vocabSize, hash: r.tokenizer.hash } : null,
        notes: r.notes,
      };
      output(o.json, summary, () =>
        [
          `${r.format} model: ${r.model.config.family}, ${counts.total.toLocaleString("en-US")} parameters (${counts.nonEmbedding.toLocaleString("en-US")} non-embedding)`,
          JSON.stringify(r.model.config),
          r.tokenizer ? `tokenizer: ${r.tokenizer.vocabSize} tokens` : "no tokenizer",
          ...r.notes.map((n) => `note: ${n}`),
          `use it directly: afterscale sample --model ${path} --prompt "..."`,
        ].join("\n"),
      );
    });
}
