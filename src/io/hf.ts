// Hugging Face checkpoint directories: config.json + model.safetensors + tokenizer files.
//
// llama: afterscale's parameter names are LlamaForCausalLM's, and afterscale rotates the half-split pairs
// (x[i], x[i + hd/2]) exactly as HF's rotate_half does, so q_proj and k_proj are written unchanged: no
// head permutation is needed for HF (only GGUF, whose llama graph rotates interleaved pairs; see gguf-model.ts).
//
// qwen3: a llama-family model with QK-norm is a Qwen3ForCausalLM: Llama's tensors plus each layer's
// self_attn.q_norm / k_norm gains (afterscale's names already), applied before rotary as afterscale does.
//
// gpt2: GPT2LMHeadModel keeps q, k and v in one Conv1D `c_attn` whose weight is stored [in, out], the
// transpose of a Linear's; every Conv1D weight (c_attn, c_proj, c_fc) is transposed on the way out and in.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { floatToBf16 } from "../backend/bf16.js";
import { loadTokenizer, type Tokenizer } from "../data/index.js";
import {
  blockParts,
  headDim,
  type Model,
  type ModelConfig,
  mlpHidden,
  paramSpecs,
  parseModelConfig,
} from "../nn/index.js";
import { parameter, type Tensor } from "../tensor/index.js";
import { exportArchitecture } from "./architecture.js";
import { chatExport, importedTemplateNotes } from "./chat-template.js";
import { MAX_CONTEXT } from "./gguf-model.js";
import {
  decodeSafetensors,
  encodeSafetensors,
  entryToFloat32,
  floatToHalf,
  type SafetensorsEntry,
  type TensorToWrite,
  writeFileAtomic,
} from "./safetensors.js";

/** The float types of model.safetensors: every tensor, norms included, in one type (as save_pretrained does). */
export type HfDtype = "f32" | "f16" | "bf16";

export interface HfExportOptions {
  dtype?: HfDtype;
}

const SAFETENSORS_DTYPE = { f32: "F32", f16: "F16", bf16: "BF16" } as const;
const TORCH_DTYPE = { f32: "float32", f16: "float16", bf16: "bfloat16" } as const;

type Json = Record<string, unknown>;

function transpose(v: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c]!;
  return out;
}

function specialIds(tokenizer: Tokenizer | null): {
  bos: number | null;
  eos: number | null;
  eot: string | null;
} {
  const eot =
    tokenizer?.specialTokens.find((s) => s.content === "<|endoftext|>") ?? tokenizer?.specialTokens[0];
  return { bos: eot?.id ?? null, eos: eot?.id ?? null, eot: eot?.content ?? null };
}

/** config.json for the model, in the HF class that expresses its recipe (or an error naming the lever). */
export function hfConfig(c: ModelConfig, tokenizer: Tokenizer | null, dtype: HfDtype = "f32"): Json {
  const { bos, eos } = specialIds(tokenizer);
  const torchDtype = TORCH_DTYPE[dtype];
  const arch = exportArchitecture(c, "hf export");
  const bias = blockParts(c).bias;
  if (arch === "qwen3" || arch === "llama") {
    // The two share Llama's fields; Qwen3 adds QK-norm (q_norm/k_norm) and has no biases.
    const llama: Json = {
      vocab_size: c.vocab,
      hidden_size: c.dModel,
      intermediate_size: mlpHidden(c),
      num_hidden_layers: c.layers,
      num_attention_heads: c.heads,
      num_key_value_heads: c.kvHeads,
      head_dim: headDim(c),
      max_position_embeddings: c.context,
      rope_theta: c.ropeTheta,
      rope_scaling: null,
      rms_norm_eps: c.normEps,
      hidden_act: "silu",
      attention_bias: arch === "qwen3" ? false : bias,
      attention_dropout: 0,
    };
    const tail: Json = {
      tie_word_embeddings: c.tie,
      initializer_range: 0.02,
      use_cache: true,
      bos_token_id: bos,
      eos_token_id: eos,
      torch_dtype: torchDtype,
    };
    if (arch === "qwen3") {
      return {
        architectures: ["Qwen3ForCausalLM"],
        model_type: "qwen3",
        ...llama,
        use_sliding_window: false,
        sliding_window: null,
        max_window_layers: c.layers,
        ...tail,
      };
    }
    return {
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      ...llama,
      mlp_bias: bias,
      pretraining_tp: 1,
      ...tail,
    };
  }
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: c.vocab,
    n_positions: c.context,
    n_embd: c.dModel,
    n_layer: c.layers,
    n_head: c.heads,
    n_inner: mlpHidden(c),
    activation_function: "gelu_new", // the tanh approximation afterscale's gelu computes
    layer_norm_epsilon: c.normEps,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    scale_attn_weights: true,
    tie_word_embeddings: c.tie,
    bos_token_id: bos,
    eos_token_id: eos,
    torch_dtype: torchDtype,
  };
}

/** HF tensors (name → row-major float32 values and shape), in afterscale's parameter order. */
export function hfTensors(model: Model): Map<string, { shape: number[]; values: Float32Array }> {
  const c = model.config;
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  const get = (n: string): Tensor => {
    const t = model.params.get(n);
    if (!t) throw new Error(`hf export: the model has no parameter ${n}`);
    return t;
  };
  if (exportArchitecture(c, "hf export") !== "gpt2") {
    for (const s of paramSpecs(c))
      out.set(s.name, { shape: s.shape, values: Float32Array.from(get(s.name).data) });
    return out;
  }
  const d = c.dModel;
  for (const s of paramSpecs(c)) {
    const v = get(s.name).data;
    const qkv = /^h\.(\d+)\.attn\.(q|k|v)_proj\.(weight|bias)$/.exec(s.name);
    if (qkv) {
      if (qkv[2] !== "q") continue;
      const l = qkv[1];
      if (qkv[3] === "weight") {
        const fused = new Float32Array(3 * d * d);
        for (const [i, x] of ["q", "k", "v"].entries())
          fused.set(get(`h.${l}.attn.${x}_proj.weight`).data, i * d * d);
        out.set(`transformer.h.${l}.attn.c_attn.weight`, {
          shape: [d, 3 * d],
          values: transpose(fused, 3 * d, d),
        });
      } else {
        const fused = new Float32Array(3 * d);
        for (const [i, x] of ["q", "k", "v"].entries())
          fused.set(get(`h.${l}.attn.${x}_proj.bias`).data, i * d);
        out.set(`transformer.h.${l}.attn.c_attn.bias`, { shape: [3 * d], values: fused });
      }
      continue;
    }
    const conv = /^h\.\d+\.(attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(s.name);
    const name = s.name === "lm_head.weight" ? s.name : `transformer.${s.name}`;
    if (conv) {
      const [rows, cols] = s.shape as [number, number];
      out.set(name, { shape: [cols, rows], values: transpose(v, rows, cols) });
    } else {
      out.set(name, { shape: s.shape, values: Float32Array.from(v) });
    }
  }
  return out;
}

/** model.safetensors bytes in HF layout. */
export function hfSafetensors(model: Model, dtype: HfDtype = "f32"): Uint8Array {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, t] of hfTensors(model)) {
    // Both 16-bit types round to nearest even, as torch's .to(float16 / bfloat16) does.
    const half = dtype === "f16" ? floatToHalf : floatToBf16;
    const data = dtype === "f32" ? t.values : Uint16Array.from(t.values, half);
    tensors.set(name, { dtype: SAFETENSORS_DTYPE[dtype], shape: t.shape, data });
  }
  return encodeSafetensors(tensors, { format: "pt" });
}

/** Writes a HF checkpoint directory: config.json, model.safetensors, tokenizer files, generation_config.json. */
export function exportHf(
  model: Model,
  tokenizer: Tokenizer | null,
  dir: string,
  opts: HfExportOptions = {},
): string[] {
  const dtype = opts.dtype ?? "f32";
  const c = model.config;
  if (tokenizer && tokenizer.vocabSize !== c.vocab)
    throw new Error(
      `hf export: tokenizer has ${tokenizer.vocabSize} tokens, the model's vocabulary is ${c.vocab}`,
    );
  exportArchitecture(c, "hf export"); // refuses an inexpressible lever before anything is written
  mkdirSync(dir, { recursive: true });
  const json = (o: unknown) => `${JSON.stringify(o, null, 2)}\n`;
  const written: string[] = [];
  const write = (name: string, data: Uint8Array | string) => {
    writeFileAtomic(join(dir, name), data);
    written.push(name);
  };
  write("config.json", json(hfConfig(c, tokenizer, dtype)));
  write("model.safetensors", hfSafetensors(model, dtype));
  const { bos, eos, eot } = specialIds(tokenizer);
  // A chat model's generation ends at <|im_end|> (its turn) as well as at <|endoftext|>, as Qwen's do.
  const chat = chatExport(tokenizer);
  const eosIds = chat ? [chat.endId, ...(eos === null ? [] : [eos])] : eos;
  write("generation_config.json", json({ bos_token_id: bos, eos_token_id: eosIds, max_length: c.context }));
  if (tokenizer) {
    write("tokenizer.json", tokenizer.toJsonText());
    write(
      "tokenizer_config.json",
      json({
        tokenizer_class: "PreTrainedTokenizerFast",
        bos_token: eot,
        eos_token: chat ? chat.endToken : eot,
        unk_token: null,
        add_bos_token: false,
        add_eos_token: false,
        clean_up_tokenization_spaces: false,
        model_max_length: c.context,
        ...(chat ? { chat_template: chat.template } : {}),
      }),
    );
  }
  return written;
}

// ---------------------------------------------------------------- import

function readJson(path: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path}: cannot read JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error(`${path}: not a JSON object`);
  return v as Json;
}

/** All tensors of a checkpoint: model.safetensors, or the shards listed by model.safetensors.index.json. */
function readCheckpointTensors(dir: string): Map<string, SafetensorsEntry> {
  const single = join(dir, "model.safetensors");
  if (existsSync(single)) return decodeSafetensors(readFileSync(single), single).tensors;
  const indexPath = join(dir, "model.safetensors.index.json");
  if (!existsSync(indexPath)) throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json`);
  const map = readJson(indexPath).weight_map;
  if (!map || typeof map !== "object") throw new Error(`${indexPath}: weight_map is missing`);
  const out = new Map<string, SafetensorsEntry>();
  for (const shard of new Set(Object.values(map as Record<string, unknown>))) {
    if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\"))
      throw new Error(`${indexPath}: invalid shard name ${String(shard)}`);
    const path = join(dir, shard);
    for (const [k, v] of decodeSafetensors(readFileSync(path), path).tensors) out.set(k, v);
  }
  return out;
}

function num(cfg: Json, key: string, where: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new Error(`${where}: ${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** Reads a HF LlamaForCausalLM, Qwen3ForCausalLM or GPT2LMHeadModel checkpoint directory into an afterscale model. */
export function importHf(dir: string): {
  model: Model;
  tokenizer: Tokenizer | null;
  chatTemplate: string | null;
  notes: string[];
} {
  const where = join(dir, "config.json");
  const cfg = readJson(where);
  const notes: string[] = [];
  const type = cfg.model_type;
  if (type !== "llama" && type !== "qwen3" && type !== "gpt2")
    throw new Error(`${where}: model_type ${JSON.stringify(type)} is not supported (llama, qwen3 or gpt2)`);
  const tensors = readCheckpointTensors(dir);
  let config: ModelConfig;
  const build = (input: Record<string, unknown>) => {
    try {
      return parseModelConfig(input);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  };
  if (type === "llama" || type === "qwen3") {
    if ((cfg.hidden_act ?? "silu") !== "silu")
      throw new Error(`${where}: hidden_act ${cfg.hidden_act} is not supported (silu)`);
    if (cfg.rope_scaling != null) throw new Error(`${where}: rope_scaling is not supported`);
    const attnBias = cfg.attention_bias === true;
    const mlpBias = type === "llama" && cfg.mlp_bias === true;
    if (attnBias !== mlpBias)
      throw new Error(
        `${where}: attention_bias ${attnBias} with ${type === "qwen3" ? "Qwen3's bias-free MLP" : `mlp_bias ${mlpBias}`} is not supported (afterscale biases all linears or none)`,
      );
    if (type === "qwen3" && cfg.use_sliding_window === true)
      throw new Error(`${where}: use_sliding_window is not supported`);
    const d = num(cfg, "hidden_size", where);
    const heads = num(cfg, "num_attention_heads", where);
    if (cfg.head_dim != null && cfg.head_dim !== d / heads)
      throw new Error(`${where}: head_dim ${cfg.head_dim} ≠ hidden_size / num_attention_heads`);
    const tie =
      cfg.tie_word_embeddings === undefined
        ? !tensors.has("lm_head.weight")
        : cfg.tie_word_embeddings === true;
    const hidden = num(cfg, "intermediate_size", where);
    config = build({
      family: "llama",
      vocab: num(cfg, "vocab_size", where),
      dModel: d,
      layers: num(cfg, "num_hidden_layers", where),
      heads,
      kvHeads: num(cfg, "num_key_value_heads", where, heads),
      context: num(cfg, "max_position_embeddings", where),
      mlpRatio: hidden / d,
      mlpHidden: hidden,
      normEps: num(cfg, "rms_norm_eps", where),
      ropeTheta: num(cfg, "rope_theta", where, 10000),
      dropout: 0,
      tie,
      ...(attnBias ? { bias: true } : {}),
      ...(type === "qwen3" ? { qkNorm: true } : {}),
    });
  } else {
    const act = cfg.activation_function ?? "gelu_new";
    if (act !== "gelu_new" && act !== "gelu_pytorch_tanh")
      throw new Error(
        `${where}: activation_function ${act} is not supported (afterscale's gelu is the tanh form, gelu_new)`,
      );
    const d = num(cfg, "n_embd", where);
    const inner = cfg.n_inner == null ? 4 * d : num(cfg, "n_inner", where);
    config = build({
      family: "gpt2",
      vocab: num(cfg, "vocab_size", where),
      dModel: d,
      layers: num(cfg, "n_layer", where),
      heads: num(cfg, "n_head", where),
      kvHeads: num(cfg, "n_head", where),
      context: num(cfg, "n_positions", where),
      mlpRatio: inner / d,
      mlpHidden: inner,
      normEps: num(cfg, "layer_norm_epsilon", where, 1e-5),
      ropeTheta: 10000,
      dropout: 0,
      tie: cfg.tie_word_embeddings !== false,
    });
  }

  if (config.layers > tensors.size)
    throw new Error(`${where}: ${config.layers} layers but only ${tensors.size} tensors`);
  if (config.context > MAX_CONTEXT)
    throw new Error(`${where}: context ${config.context} exceeds ${MAX_CONTEXT}`);
  const used = new Set<string>();
  const take = (name: string, shape: number[]): Float32Array => {
    const alt =
      config.family === "gpt2" && !name.startsWith("lm_head") ? name.replace(/^transformer\./, "") : name;
    const key = tensors.has(name) ? name : alt;
    const e = tensors.get(key);
    if (!e) throw new Error(`${dir}: tensor ${name} is missing`);
    if (e.shape.length !== shape.length || e.shape.some((x, i) => x !== shape[i]))
      throw new Error(`${dir}: tensor ${key} has shape [${e.shape}], expected [${shape}]`);
    used.add(key);
    return entryToFloat32(e, key);
  };
  const params = new Map<string, Tensor>();
  const d = config.dModel;
  for (const s of paramSpecs(config)) {
    let v: Float32Array;
    if (config.family === "llama") {
      v = take(s.name, s.shape);
    } else {
      const qkv = /^h\.(\d+)\.attn\.(q|k|v)_proj\.(weight|bias)$/.exec(s.name);
      const i = qkv ? "qkv".indexOf(qkv[2]!) : -1;
      if (qkv && qkv[3] === "weight") {
        const fused = transpose(take(`transformer.h.${qkv[1]}.attn.c_attn.weight`, [d, 3 * d]), d, 3 * d);
        v = fused.slice(i * d * d, (i + 1) * d * d);
      } else if (qkv) {
        v = take(`transformer.h.${qkv[1]}.attn.c_attn.bias`, [3 * d]).slice(i * d, (i + 1) * d);
      } else if (/^h\.\d+\.(attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(s.name)) {
        const [rows, cols] = s.shape as [number, number];
        v = transpose(take(`transformer.${s.name}`, [cols, rows]), cols, rows);
      } else {
        v = take(s.name === "lm_head.weight" ? s.name : `transformer.${s.name}`, s.shape);
      }
    }
    params.set(s.name, parameter(v, s.shape, s.name));
  }
  for (const k of tensors.keys()) {
    if (used.has(k)) continue;
    if (/rotary_emb\.inv_freq$/.test(k))
      notes.push(`ignored ${k} (rotary frequencies are recomputed from rope_theta)`);
    else if (/\.attn\.(masked_)?bias$/.test(k)) notes.push(`ignored ${k} (GPT-2's causal-mask buffer)`);
    else if (k === "lm_head.weight" && config.tie)
      notes.push("ignored lm_head.weight: tie_word_embeddings is true, so the head is the token embedding");
    else
      throw new Error(
        `${dir}: unexpected tensor ${k} (not part of a ${config.family} model afterscale can run)`,
      );
  }
  const tokPath = join(dir, "tokenizer.json");
  let tokenizer: Tokenizer | null = null;
  if (existsSync(tokPath)) {
    tokenizer = loadTokenizer(tokPath);
    if (tokenizer.vocabSize !== config.vocab) {
      notes.push(
        `tokenizer.json has ${tokenizer.vocabSize} tokens but vocab_size is ${config.vocab}; tokenizer not loaded`,
      );
      tokenizer = null;
    }
  } else {
    notes.push("no tokenizer.json: model imported without a tokenizer");
  }
  const chatTemplate = readChatTemplate(dir);
  notes.push(...importedTemplateNotes(tokenizer, chatTemplate));
  return { model: { config, params, specs: paramSpecs(config) }, tokenizer, chatTemplate, notes };
}

/**
 * tokenizer_config.json's chat_template: a string, or (older transformers) a list of named templates, of
 * which "default" is the one apply_chat_template uses. Null when there is none.
 */
function readChatTemplate(dir: string): string | null {
  const path = join(dir, "tokenizer_config.json");
  if (!existsSync(path)) return null;
  const t = readJson(path).chat_template;
  if (t == null) return null;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => x && typeof x === "object" && (x as Json).name === "default") as
      | Json
      | undefined;
    if (named && typeof named.template === "string") return named.template;
  }
  throw new Error(`${path}: chat_template must be a string or a list with a "default" template`);
}
