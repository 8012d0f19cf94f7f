// `afterscale quantize IN OUT --type …`: llama-quantize for the architectures afterscale reads. An F32, F16
// or BF16 GGUF (afterscale's own export or llama.cpp's convert_hf_to_gguf.py output) comes in; the same file
// comes out with each tensor in the type llama.cpp's rules give it (gguf-quant-rules.ts), its metadata
// copied, general.file_type and general.quantization_version set as llama-quantize sets them. `--type bf16`
// is llama-quantize's BF16: not a quantized type, so no per-tensor rules apply and every tensor it would
// quantize (2-D weights but norms and position embeddings) becomes BF16.
import {
  decodeGguf,
  decodeTensorData,
  encodeGguf,
  encodeTensorData,
  type GgmlTypeName,
  type GgufTensor,
  type GgufValue,
  metaNumber,
  metaString,
} from "./gguf.js";
import {
  allowsQuantization,
  FILE_TYPE_BF16,
  GGML_QNT_VERSION,
  PRESETS,
  QUANT_PRESETS,
  type QuantModel,
  quantTensorType,
} from "./gguf-quant-rules.js";

export interface QuantizedTensor {
  name: string;
  shape: number[];
  from: GgmlTypeName;
  to: GgmlTypeName;
}

export interface QuantizeResult {
  bytes: Uint8Array;
  tensors: QuantizedTensor[];
  /** Tensor bytes in and out (metadata not counted), as llama-quantize reports its sizes. */
  tensorBytesIn: number;
  tensorBytesOut: number;
}

/** The target types of `afterscale quantize --type`: the quantization presets and BF16. */
export const QUANTIZE_TYPES = [...QUANT_PRESETS, "bf16"] as const;
export type QuantizeType = (typeof QUANTIZE_TYPES)[number];

/** Quantizes a GGUF file held in `buf`; `where` names it in errors. */
export function quantizeGguf(buf: Uint8Array, preset: QuantizeType, where = "gguf"): QuantizeResult {
  const info = preset === "bf16" ? { fileType: FILE_TYPE_BF16 } : PRESETS[preset];
  if (!info) throw new Error(`quantize: unknown type ${String(preset)}`);
  const file = decodeGguf(buf, where);
  const arch = metaString(file, "general.architecture", where);
  if (arch !== "llama" && arch !== "qwen3" && arch !== "gpt2")
    throw new Error(`${where}: architecture ${arch} is not supported (llama, qwen3 or gpt2)`);
  const heads = metaNumber(file, `${arch}.attention.head_count`, where);
  const model: QuantModel = {
    arch,
    layers: metaNumber(file, `${arch}.block_count`, where),
    heads,
    kvHeads: file.metadata.has(`${arch}.attention.head_count_kv`)
      ? metaNumber(file, `${arch}.attention.head_count_kv`, where)
      : heads,
    tied: !file.tensors.some((t) => t.name === "output.weight"),
  };
  const tensors: GgufTensor[] = [];
  const report: QuantizedTensor[] = [];
  let tensorBytesIn = 0;
  let tensorBytesOut = 0;
  for (const t of file.tensors) {
    const cols = t.shape[t.shape.length - 1]!;
    const to: GgmlTypeName = !allowsQuantization(t.name, t.shape.length)
      ? t.type
      : preset === "bf16"
        ? "BF16"
        : quantTensorType(t.name, cols, preset, model);
    let bytes = t.bytes;
    if (to !== t.type) {
      if (t.type !== "F32" && t.type !== "F16" && t.type !== "BF16")
        throw new Error(
          `${where}: tensor ${t.name} is already ${t.type}; quantize reads F32, F16 or BF16 files (quantizing twice compounds the error)`,
        );
      bytes = encodeTensorData(decodeTensorData(t), cols, to);
    }
    tensors.push({ ...t, type: to, bytes });
    report.push({ name: t.name, shape: t.shape, from: t.type, to });
    tensorBytesIn += t.bytes.length;
    tensorBytesOut += bytes.length;
  }
  // general.file_type changes in place with general.quantization_version beside it, where afterscale's
  // own quantized export puts it: quantizing an F32 export gives the same file as exporting quantized.
  const metadata = new Map<string, GgufValue>();
  const fileType: GgufValue = { type: "u32", value: info.fileType };
  const version: GgufValue = { type: "u32", value: GGML_QNT_VERSION };
  for (const [key, value] of file.metadata) {
    if (key === "general.quantization_version") continue;
    if (key !== "general.file_type") metadata.set(key, value);
    else metadata.set(key, fileType).set("general.quantization_version", version);
  }
  if (!metadata.has("general.file_type")) metadata.set("general.file_type", fileType);
  if (!metadata.has("general.quantization_version")) metadata.set("general.quantization_version", version);
  return { bytes: encodeGguf(metadata, tensors), tensors: report, tensorBytesIn, tensorBytesOut };
}
