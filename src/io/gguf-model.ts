// afterscale models ↔ GGUF files that llama.cpp runs.
//
// Rotary layout. afterscale (like Hugging Face) rotates the pair (x[i], x[i + hd/2]) of each head: the
// half-split, GPT-NeoX convention. llama.cpp's LLM_ARCH_LLAMA uses rope "mode 0", which rotates adjacent
// pairs (x[2i], x[2i+1]): the interleaved, GPT-J/Meta convention. Attention scores only depend on q·k, so
// permuting the rows of Wq and Wk the same way inside every head turns one convention into the other. The
// writer applies exactly the permutation of convert_hf_to_gguf.py (`permute(w, n_head)`:
// w.reshape(n_head, 2, hd/2, d).swapaxes(1, 2)), to q with the query heads and to k with the key/value
// heads; the reader applies the inverse. The llama.cpp agreement test is the proof that this is right.
//
// Qwen3 (a llama-family model with QK-norm) is llama.cpp's `qwen3` architecture, whose graph rotates
// half-split pairs (rope "NEOX" mode) like afterscale: its q and k are written unpermuted.
//
// Shapes. GGUF's ne[0] is the innermost dimension: our row-major [out, in] weights are written unchanged
// and appear to ggml as ne = [in, out], which is what llama.cpp's loader expects.
import { type Tokenizer, tokenizerFromJson } from "../data/index.js";
import {
  headDim,
  type Model,
  type ModelConfig,
  mlpHidden,
  paramSpecs,
  parseModelConfig,
} from "../nn/index.js";
import { packedParameter, parameter, type Tensor } from "../tensor/index.js";
import { type Architecture, exportArchitecture } from "./architecture.js";
import { chatExport, importedTemplateNotes } from "./chat-template.js";
import {
  decodeGguf,
  decodeTensorData,
  encodeGguf,
  encodeTensorData,
  type GgmlTypeName,
  type GgufFile,
  type GgufTensor,
  type GgufValue,
  metaNumber,
  metaString,
} from "./gguf.js";
import {
  allowsQuantization,
  FILE_TYPE_BF16,
  FILE_TYPE_F16,
  FILE_TYPE_F32,
  GGML_QNT_VERSION,
  PRESETS,
  type QuantModel,
  type QuantPreset,
  quantTensorType,
} from "./gguf-quant-rules.js";
import { packMatrix, permutePackedRows } from "./packed.js";

/** The shortest decimal that rounds to the same float32: GGUF stores eps and theta as f32, 1e-5 stays 1e-5. */
function shortestF32(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const c = Number.parseFloat(x.toPrecision(p));
    if (Math.fround(c) === Math.fround(x)) return c;
  }
  return x;
}

/** Rows of a [heads·hd, d] projection, reordered from half-split to interleaved rotary pairs. */
export function permuteRotary(
  w: Float32Array,
  heads: number,
  hd: number,
  d: number,
  inverse = false,
): Float32Array {
  const out = new Float32Array(w.length);
  const half = hd / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const interleaved = h * hd + 2 * j + s; // row in llama.cpp's layout
        const split = h * hd + s * half + j; // row in afterscale's / HF's layout
        const [to, from] = inverse ? [split, interleaved] : [interleaved, split];
        out.set(w.subarray(from * d, (from + 1) * d), to * d);
      }
    }
  }
  return out;
}

/** afterscale parameter name → GGUF tensor name, per family. */
function ggufName(family: ModelConfig["family"], name: string): string {
  const rules: [RegExp, string][] =
    family === "llama"
      ? [
          [/^model\.embed_tokens\.weight$/, "token_embd.weight"],
          [/^model\.norm\.weight$/, "output_norm.weight"],
          [/^lm_head\.weight$/, "output.weight"],
          [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, "blk.$1.attn_norm.weight"],
          [/^model\.layers\.(\d+)\.self_attn\.q_proj\.weight$/, "blk.$1.attn_q.weight"],
          [/^model\.layers\.(\d+)\.self_attn\.k_proj\.weight$/, "blk.$1.attn_k.weight"],
          [/^model\.layers\.(\d+)\.self_attn\.v_proj\.weight$/, "blk.$1.attn_v.weight"],
          [/^model\.layers\.(\d+)\.self_attn\.q_norm\.weight$/, "blk.$1.attn_q_norm.weight"],
          [/^model\.layers\.(\d+)\.self_attn\.q_proj\.bias$/, "blk.$1.attn_q.bias"],
          [/^model\.layers\.(\d+)\.self_attn\.k_proj\.bias$/, "blk.$1.attn_k.bias"],
          [/^model\.layers\.(\d+)\.self_attn\.v_proj\.bias$/, "blk.$1.attn_v.bias"],
          [/^model\.layers\.(\d+)\.self_attn\.o_proj\.bias$/, "blk.$1.attn_output.bias"],
          [/^model\.layers\.(\d+)\.mlp\.gate_proj\.bias$/, "blk.$1.ffn_gate.bias"],
          [/^model\.layers\.(\d+)\.mlp\.up_proj\.bias$/, "blk.$1.ffn_up.bias"],
          [/^model\.layers\.(\d+)\.mlp\.down_proj\.bias$/, "blk.$1.ffn_down.bias"],
          [/^model\.layers\.(\d+)\.self_attn\.k_norm\.weight$/, "blk.$1.attn_k_norm.weight"],
          [/^model\.layers\.(\d+)\.self_attn\.o_proj\.weight$/, "blk.$1.attn_output.weight"],
          [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, "blk.$1.ffn_norm.weight"],
          [/^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$/, "blk.$1.ffn_gate.weight"],
          [/^model\.layers\.(\d+)\.mlp\.up_proj\.weight$/, "blk.$1.ffn_up.weight"],
          [/^model\.layers\.(\d+)\.mlp\.down_proj\.weight$/, "blk.$1.ffn_down.weight"],
        ]
      : [
          [/^wte\.weight$/, "token_embd.weight"],
          [/^wpe\.weight$/, "position_embd.weight"],
          [/^ln_f\.(weight|bias)$/, "output_norm.$1"],
          [/^lm_head\.weight$/, "output.weight"],
          [/^h\.(\d+)\.ln_1\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
          [/^h\.(\d+)\.attn\.qkv\.(weight|bias)$/, "blk.$1.attn_qkv.$2"],
          [/^h\.(\d+)\.attn\.c_proj\.(weight|bias)$/, "blk.$1.attn_output.$2"],
          [/^h\.(\d+)\.ln_2\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
          [/^h\.(\d+)\.mlp\.c_fc\.(weight|bias)$/, "blk.$1.ffn_up.$2"],
          [/^h\.(\d+)\.mlp\.c_proj\.(weight|bias)$/, "blk.$1.ffn_down.$2"],
        ];
  for (const [re, to] of rules) if (re.test(name)) return name.replace(re, to);
  throw new Error(`gguf: no GGUF name for parameter ${name}`);
}

/** Heads of a q or k projection (weight or bias), whose rows llama.cpp's llama graph rotates interleaved; else 0. */
function rotaryHeads(c: ModelConfig, name: string): number {
  if (/q_proj\.(weight|bias)$/.test(name)) return c.heads;
  if (/k_proj\.(weight|bias)$/.test(name)) return c.kvHeads;
  return 0;
}

const u32 = (value: number): GgufValue => ({ type: "u32", value });
const f32 = (value: number): GgufValue => ({ type: "f32", value });
const str = (value: string): GgufValue => ({ type: "string", value });

/** general.file_type (llama_ftype) of an export. */
function fileType(dtype: GgufExportOptions["dtype"]): number {
  if (dtype === "f32") return FILE_TYPE_F32;
  if (dtype === "f16") return FILE_TYPE_F16;
  return dtype === "bf16" ? FILE_TYPE_BF16 : PRESETS[dtype].fileType;
}

/** GGUF tokenizer metadata for afterscale's byte-level BPE: llama.cpp's "gpt2" tokenizer model. */
export function tokenizerMetadata(tok: Tokenizer): [string, GgufValue][] {
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    tokens.push(tok.tokenString(id));
    types.push(tok.bytesOf(id) === null ? 3 : 1); // CONTROL for special tokens, NORMAL otherwise
  }
  const merges = tok.merges.map(([a, b]) => `${tok.tokenString(a)} ${tok.tokenString(b)}`);
  const eot = tok.specialTokens.find((s) => s.content === "<|endoftext|>")?.id ?? tok.specialTokens[0]?.id;
  const meta: [string, GgufValue][] = [
    ["tokenizer.ggml.model", str("gpt2")],
    // "gpt-2" selects llama.cpp's GPT-2 pre-tokenizer regex, the same split afterscale uses.
    ["tokenizer.ggml.pre", str("gpt-2")],
    ["tokenizer.ggml.tokens", { type: "array", itemType: "string", value: tokens }],
    ["tokenizer.ggml.token_type", { type: "array", itemType: "i32", value: types }],
    ["tokenizer.ggml.merges", { type: "array", itemType: "string", value: merges }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: false }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
  ];
  if (eot !== undefined)
    meta.push(["tokenizer.ggml.bos_token_id", u32(eot)], ["tokenizer.ggml.eos_token_id", u32(eot)]);
  const chat = chatExport(tok);
  if (chat) {
    // llama.cpp ends generation at every end-of-generation token: eos (<|endoftext|>) and eot, the end of
    // a turn. Its chat code (and node-llama-cpp's) formats with the Jinja template.
    meta.push(
      ["tokenizer.ggml.eot_token_id", u32(chat.endId)],
      ["tokenizer.chat_template", str(chat.template)],
    );
  }
  return meta;
}

/** The tokenizer stored in a GGUF file (gpt2 model type only), or null if the file has none. */
export function tokenizerFromGguf(file: GgufFile, where = "gguf"): Tokenizer | null {
  if (!file.metadata.has("tokenizer.ggml.model")) return null;
  const model = metaString(file, "tokenizer.ggml.model", where);
  if (model !== "gpt2")
    throw new Error(
      `${where}: tokenizer model ${model} is not supported (afterscale reads byte-level BPE, "gpt2")`,
    );
  const tokens = file.metadata.get("tokenizer.ggml.tokens");
  const types = file.metadata.get("tokenizer.ggml.token_type");
  const merges = file.metadata.get("tokenizer.ggml.merges");
  if (tokens?.type !== "array" || tokens.itemType !== "string")
    throw new Error(`${where}: tokenizer.ggml.tokens must be an array of strings`);
  if (
    types &&
    (types.type !== "array" || types.itemType !== "i32" || types.value.length !== tokens.value.length)
  )
    throw new Error(`${where}: tokenizer.ggml.token_type must be an i32 array as long as the tokens`);
  if (merges && (merges.type !== "array" || merges.itemType !== "string"))
    throw new Error(`${where}: tokenizer.ggml.merges must be an array of strings`);
  const special = (id: number) => types !== undefined && (types.value as number[])[id] === 3;
  // Rebuild it through the tokenizer.json reader, which validates every token and merge.
  const vocab: Record<string, number> = Object.create(null);
  const added: { id: number; content: string; special: true }[] = []; // control tokens are special
  (tokens.value as string[]).forEach((t, id) => {
    if (special(id)) added.push({ id, content: t, special: true });
    else vocab[t] = id;
  });
  const json = {
    model: { type: "BPE", vocab, merges: (merges?.value as string[] | undefined) ?? [] },
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: true },
    added_tokens: added,
  };
  try {
    return tokenizerFromJson(json, `${where} (tokenizer.ggml.*)`);
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.startsWith(where) ? msg : `${where}: tokenizer.ggml.*: ${msg}`);
  }
}

/** What `export --format gguf --dtype` writes: unquantized floats, or a llama.cpp quantization preset. */
export type GgufDtype = "f32" | "f16" | "bf16" | QuantPreset;

export interface GgufExportOptions {
  /** f32, f16, bf16, or a llama.cpp quantization preset (q8_0, q4_k_m, …; see gguf-quant-rules.ts). */
  dtype: GgufDtype;
  name?: string;
}

/**
 * f32/f16/bf16: 2-D weights F32/F16/BF16, everything else (norms, biases: the 1-D tensors) F32, as
 * convert_hf_to_gguf.py writes --outtype f16/bf16. Quantization presets: llama-quantize's choice for
 * each tensor it would quantize (its rules, from an F32 source); the rest (norms, biases, GPT-2's
 * position embeddings) stay F32.
 */
function tensorType(
  name: string,
  shape: readonly number[],
  dtype: GgufExportOptions["dtype"],
  qm: QuantModel,
): GgmlTypeName {
  if (dtype === "f32") return "F32";
  if (dtype === "f16") return shape.length === 2 ? "F16" : "F32";
  if (dtype === "bf16") return shape.length === 2 ? "BF16" : "F32";
  if (!allowsQuantization(name, shape.length)) return "F32";
  return quantTensorType(name, shape[shape.length - 1]!, dtype, qm);
}

/** Encodes a model (and its tokenizer) as a GGUF file llama.cpp can load. */
export function modelToGguf(model: Model, tokenizer: Tokenizer | null, opts: GgufExportOptions): Uint8Array {
  const c = model.config;
  const arch: Architecture = exportArchitecture(c, "gguf export");
  const hd = headDim(c);
  const quantized = opts.dtype !== "f32" && opts.dtype !== "f16" && opts.dtype !== "bf16";
  const qm: QuantModel = { arch, layers: c.layers, heads: c.heads, kvHeads: c.kvHeads, tied: c.tie };
  const meta: [string, GgufValue][] = [
    ["general.architecture", str(arch)],
    ["general.name", str(opts.name ?? "afterscale")],
    ["general.alignment", u32(32)],
    // llama_ftype: 0 all F32, 1 mostly F16, else the preset's (7 mostly Q8_0, 15 Q4_K_M, …).
    ["general.file_type", u32(fileType(opts.dtype))],
    ...(quantized ? [["general.quantization_version", u32(GGML_QNT_VERSION)] as [string, GgufValue]] : []),
    [`${arch}.context_length`, u32(c.context)],
    [`${arch}.embedding_length`, u32(c.dModel)],
    [`${arch}.block_count`, u32(c.layers)],
    [`${arch}.feed_forward_length`, u32(mlpHidden(c))],
    [`${arch}.attention.head_count`, u32(c.heads)],
  ];
  if (arch === "llama") {
    meta.push(
      ["llama.attention.head_count_kv", u32(c.kvHeads)],
      ["llama.rope.freq_base", f32(c.ropeTheta)],
      ["llama.rope.dimension_count", u32(hd)],
      ["llama.attention.layer_norm_rms_epsilon", f32(c.normEps)],
      ["llama.vocab_size", u32(c.vocab)],
    );
  } else if (arch === "qwen3") {
    meta.push(
      ["qwen3.attention.head_count_kv", u32(c.kvHeads)],
      ["qwen3.attention.key_length", u32(hd)],
      ["qwen3.attention.value_length", u32(hd)],
      ["qwen3.rope.freq_base", f32(c.ropeTheta)],
      ["qwen3.attention.layer_norm_rms_epsilon", f32(c.normEps)],
    );
  } else {
    meta.push(["gpt2.attention.layer_norm_epsilon", f32(c.normEps)]);
  }
  if (tokenizer) {
    if (tokenizer.vocabSize !== c.vocab)
      throw new Error(
        `gguf export: tokenizer has ${tokenizer.vocabSize} tokens, the model's vocabulary is ${c.vocab}`,
      );
    meta.push(...tokenizerMetadata(tokenizer));
  }
  const tensors: GgufTensor[] = [];
  const add = (name: string, shape: number[], values: Float32Array) => {
    const gname = ggufName(c.family, name);
    const type = tensorType(gname, shape, opts.dtype, qm);
    tensors.push({
      name: gname,
      shape,
      type,
      bytes: encodeTensorData(values, shape[shape.length - 1]!, type),
    });
  };
  const p = (n: string) => {
    const t = model.params.get(n);
    if (!t) throw new Error(`gguf export: the model has no parameter ${n}`);
    return t;
  };
  if (arch !== "gpt2") {
    for (const s of paramSpecs(c)) {
      let v = p(s.name).data as Float32Array;
      const rotated = arch === "llama" ? rotaryHeads(c, s.name) : 0;
      // A bias is a one-column matrix: its rows move with the weight's.
      if (rotated) v = permuteRotary(v, rotated, hd, s.shape[1] ?? 1);
      add(s.name, s.shape, Float32Array.from(v));
    }
  } else {
    // llama.cpp's gpt2 graph takes one fused [3d, d] q/k/v projection.
    for (const s of paramSpecs(c)) {
      const m = /^h\.(\d+)\.attn\.(q|k|v)_proj\.(weight|bias)$/.exec(s.name);
      if (!m) {
        add(s.name, s.shape, Float32Array.from(p(s.name).data));
        continue;
      }
      if (m[2] !== "q") continue;
      const parts = ["q", "k", "v"].map((x) => p(`h.${m[1]}.attn.${x}_proj.${m[3]}`).data);
      const fused = new Float32Array(3 * parts[0]!.length);
      for (const [i, d] of parts.entries()) fused.set(d, i * d.length);
      add(`h.${m[1]}.attn.qkv.${m[3]}`, m[3] === "weight" ? [3 * c.dModel, c.dModel] : [3 * c.dModel], fused);
    }
  }
  return encodeGguf(new Map(meta), tensors);
}

/** Longest context an imported model may claim (2^21 positions); larger is treated as a corrupt file. */
export const MAX_CONTEXT = 1 << 21;

/** Row order that undoes llama.cpp's interleaved rotary rows (permuteRotary's inverse, for packed rows). */
function unrotatedRowOrder(heads: number, hd: number): Int32Array {
  const order = new Int32Array(heads * hd);
  const half = hd / 2;
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (let s = 0; s < 2; s++) order[h * hd + s * half + j] = h * hd + 2 * j + s;
  return order;
}

export interface GgufImportOptions {
  /**
   * Keep the 2-D weights that the file holds in F16, BF16 or a block type (the linear layers, the head and
   * the token embedding) in that type — packed parameters that linear() multiplies natively and embedding()
   * dequantizes row by row — instead of dequantizing them to float32. Such a model runs inference only.
   */
  packed?: boolean;
}

/**
 * Reads a GGUF file (llama, qwen3 or gpt2 architecture; F32, F16, BF16 or any block type in ggml-quants.ts)
 * into an afterscale model. F16 and BF16 widen to float32 exactly and quantized tensors are dequantized to
 * float32 (the model runs on the values the file holds, at float32's memory cost), or with `packed` the
 * matrices are kept in their type.
 */
export function ggufToModel(
  buf: Uint8Array,
  where = "gguf",
  opts: GgufImportOptions = {},
): { model: Model; tokenizer: Tokenizer | null; chatTemplate: string | null; notes: string[] } {
  const file = decodeGguf(buf, where);
  const arch = metaString(file, "general.architecture", where);
  if (arch !== "llama" && arch !== "qwen3" && arch !== "gpt2")
    throw new Error(`${where}: architecture ${arch} is not supported (llama, qwen3 or gpt2)`);
  const rms = arch !== "gpt2"; // llama and qwen3: RMSNorm, rotary, SwiGLU, grouped-query attention
  const num = (k: string) => metaNumber(file, `${arch}.${k}`, where);
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const embd = byName.get("token_embd.weight");
  if (embd?.shape.length !== 2) throw new Error(`${where}: token_embd.weight is missing or not 2-D`);
  const dModel = num("embedding_length");
  const heads = num("attention.head_count");
  const ffn = num("feed_forward_length");
  const notes: string[] = [];
  const cfgInput = {
    family: rms ? "llama" : "gpt2",
    vocab: embd.shape[0],
    dModel,
    layers: num("block_count"),
    heads,
    kvHeads:
      rms && file.metadata.has(`${arch}.attention.head_count_kv`) ? num("attention.head_count_kv") : heads,
    context: num("context_length"),
    mlpRatio: ffn / dModel,
    mlpHidden: ffn,
    normEps: shortestF32(rms ? num("attention.layer_norm_rms_epsilon") : num("attention.layer_norm_epsilon")),
    ropeTheta: shortestF32(
      rms && file.metadata.has(`${arch}.rope.freq_base`) ? num("rope.freq_base") : 10000,
    ),
    dropout: 0,
    tie: !byName.has("output.weight"),
    ...(arch === "qwen3" ? { qkNorm: true } : {}),
    ...(arch === "llama" && byName.has("blk.0.attn_q.bias") ? { bias: true } : {}),
  };
  // Cheap consistency checks before the config sizes any loop or allocation (a hostile file could claim
  // a billion layers or a context no cache could hold).
  if (embd.shape[1] !== dModel)
    throw new Error(`${where}: token_embd.weight is [${embd.shape}] but embedding_length is ${dModel}`);
  if (cfgInput.layers > file.tensors.length)
    throw new Error(
      `${where}: block_count ${cfgInput.layers} but the file has only ${file.tensors.length} tensors`,
    );
  if (cfgInput.context > MAX_CONTEXT)
    throw new Error(`${where}: context_length ${cfgInput.context} exceeds ${MAX_CONTEXT}`);
  let config: ModelConfig;
  try {
    config = parseModelConfig(cfgInput);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  const hd = headDim(config);
  if (rms && file.metadata.has(`${arch}.rope.dimension_count`) && num("rope.dimension_count") !== hd)
    throw new Error(
      `${where}: partial rotary (rope.dimension_count ${num("rope.dimension_count")} ≠ head dim ${hd}) is not supported`,
    );
  for (const key of ["key_length", "value_length"])
    if (file.metadata.has(`${arch}.attention.${key}`) && num(`attention.${key}`) !== hd)
      throw new Error(
        `${where}: attention.${key} ${num(`attention.${key}`)} ≠ embedding_length / head_count ${hd} is not supported`,
      );
  const params = new Map<string, Tensor>();
  const used = new Set<string>();
  const tensor = (gname: string, shape: number[]) => {
    const t = byName.get(gname);
    if (!t) throw new Error(`${where}: tensor ${gname} is missing`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new Error(`${where}: tensor ${gname} has shape [${t.shape}], expected [${shape}]`);
    used.add(gname);
    return t;
  };
  const keptTypes = new Set<string>();
  for (const s of paramSpecs(config)) {
    const qkv = /^h\.(\d+)\.attn\.(q|k|v)_proj\.(weight|bias)$/.exec(s.name);
    const n = s.shape.reduce((a, b) => a * b, 1);
    const t = qkv
      ? tensor(`blk.${qkv[1]}.attn_qkv.${qkv[3]}`, qkv[3] === "weight" ? [3 * dModel, dModel] : [3 * dModel])
      : tensor(ggufName(config.family, s.name), s.shape);
    const part = qkv ? "qkv".indexOf(qkv[2]!) : 0; // which third of a fused qkv
    const rotated = arch === "llama" ? rotaryHeads(config, s.name) : 0;
    if (opts.packed && t.type !== "F32" && s.shape.length === 2 && !/position|wpe/.test(s.name)) {
      // Rows are whole blocks, so slicing (fused qkv) and reordering (rotary) work on the bytes.
      const [rows, cols] = s.shape as [number, number];
      const rowBytes = t.bytes.length / t.shape[0]!;
      let m = packMatrix(
        t.type,
        rows,
        cols,
        t.bytes.slice(part * rows * rowBytes, (part + 1) * rows * rowBytes),
      );
      if (rotated) m = permutePackedRows(m, unrotatedRowOrder(rotated, hd));
      params.set(s.name, packedParameter(m, s.name));
      keptTypes.add(t.type);
      continue;
    }
    let v = decodeTensorData(t);
    if (qkv) v = v.slice(part * n, (part + 1) * n);
    if (rotated) v = permuteRotary(v, rotated, hd, s.shape[1] ?? 1, true);
    params.set(s.name, parameter(v, s.shape, s.name));
  }
  if (opts.packed) for (const p of params.values()) p.requiresGrad = false; // an inference-only model: nothing records a graph
  for (const t of file.tensors) if (!used.has(t.name)) notes.push(`ignored tensor ${t.name}`);
  const quantized = [
    ...new Set(
      file.tensors
        .filter((t) => t.type !== "F32" && t.type !== "F16" && t.type !== "BF16" && !keptTypes.has(t.type))
        .map((t) => t.type),
    ),
  ];
  if (quantized.length > 0)
    notes.push(
      `${quantized.join(", ")} tensors are dequantized to float32: the model runs on the values the file holds, at float32's memory cost`,
    );
  const tokenizer = tokenizerFromGguf(file, where);
  if (tokenizer && tokenizer.vocabSize !== config.vocab)
    throw new Error(
      `${where}: tokenizer has ${tokenizer.vocabSize} tokens, token_embd has ${config.vocab} rows`,
    );
  const chatTemplate = file.metadata.has("tokenizer.chat_template")
    ? metaString(file, "tokenizer.chat_template", where)
    : null;
  notes.push(...importedTemplateNotes(tokenizer, chatTemplate));
  return { model: { config, params, specs: paramSpecs(config) }, tokenizer, chatTemplate, notes };
}
