// Interop entry points for the CLI: export a model to a Hugging Face directory or a GGUF file, and import
// either back. See docs/interop.md for what each format carries.
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Tokenizer } from "../data/index.js";
import type { Model } from "../nn/index.js";
import { type GgufDtype, type GgufImportOptions, ggufToModel, modelToGguf } from "./gguf-model.js";
import { exportHf, importHf } from "./hf.js";
import { writeFileAtomic } from "./safetensors.js";

export { type ChatExport, chatExport } from "./chat-template.js";
export { bitsPerWeight, GGML_BLOCK, type GgmlTypeName } from "./ggml-quants.js";
export { decodeGguf, encodeGguf, type GgufFile, type GgufTensor, type GgufValue } from "./gguf.js";
export {
  type GgufDtype,
  type GgufImportOptions,
  ggufToModel,
  modelToGguf,
  permuteRotary,
} from "./gguf-model.js";
export { PRESETS, QUANT_PRESETS, type QuantPreset } from "./gguf-quant-rules.js";
export {
  QUANTIZE_TYPES,
  type QuantizedTensor,
  type QuantizeResult,
  type QuantizeType,
  quantizeGguf,
} from "./gguf-quantize.js";
export { exportHf, type HfDtype, hfConfig, hfSafetensors, importHf } from "./hf.js";
export { packedRowBytes, packMatrix } from "./packed.js";
export {
  type QuantizationReport,
  quantizationReport,
  quantizationTable,
  validationLoss,
} from "./quantize.js";
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type SafetensorsFile,
  writeFileAtomic,
} from "./safetensors.js";

export interface ExportOptions {
  format: "hf" | "gguf";
  /** f32, f16, bf16, or (GGUF only) a llama.cpp quantization preset: q8_0, q4_0, q4_k_m, … */
  dtype?: GgufDtype;
  /** A directory for "hf", a file for "gguf". */
  out: string;
  name?: string;
}

export interface ExportResult {
  /** Paths written. */
  files: string[];
  bytes: number;
}

export function exportModel(model: Model, tokenizer: Tokenizer | null, opts: ExportOptions): ExportResult {
  const dtype = opts.dtype ?? "f32";
  if (opts.format === "gguf") {
    const bytes = modelToGguf(model, tokenizer, { dtype, ...(opts.name ? { name: opts.name } : {}) });
    writeFileAtomic(opts.out, bytes);
    return { files: [opts.out], bytes: bytes.length };
  }
  if (opts.format !== "hf") throw new Error(`export: unknown format ${String(opts.format)} (hf or gguf)`);
  if (dtype !== "f32" && dtype !== "f16" && dtype !== "bf16")
    throw new Error(
      `export: Hugging Face safetensors has no ${dtype.toUpperCase()}; use f32, f16 or bf16 (or --format gguf)`,
    );
  const names = exportHf(model, tokenizer, opts.out, { dtype });
  const files = names.map((n) => join(opts.out, n));
  return { files, bytes: files.reduce((s, f) => s + statSync(f).size, 0) };
}

export interface ImportResult {
  model: Model;
  tokenizer: Tokenizer | null;
  /** The file's chat template (Jinja), or null; afterscale's own exports carry CHATML_JINJA for chat models. */
  chatTemplate: string | null;
  format: "hf" | "gguf";
  /** Things the importer skipped or assumed, for the user to see. */
  notes: string[];
}

/**
 * A Hugging Face checkpoint directory or a GGUF file (recognised by its magic bytes). With `packed`, a GGUF
 * file's F16, BF16 and block-quantized matrices stay in their type (see GgufImportOptions).
 */
export function importModel(path: string, opts: GgufImportOptions = {}): ImportResult {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new Error(`import: cannot read ${path}: ${(e as Error).message}`);
  }
  if (st.isDirectory()) return { ...importHf(path), format: "hf" };
  const fd = openSync(path, "r");
  const magic = Buffer.alloc(4);
  try {
    readSync(fd, magic, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (magic.toString("latin1") !== "GGUF")
    throw new Error(`import: ${path} is neither a GGUF file nor a Hugging Face checkpoint directory`);
  return { ...ggufToModel(readFileSync(path), path, opts), format: "gguf" };
}
