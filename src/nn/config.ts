// Model configuration: a plain object, validated with a schema so a bad field is named, and presets by
// size so nobody has to hand-tune shapes. The block's parts (norm, positions, MLP, biases, QK-norm, …)
// are fields too; `family` names the recipe that fills every part a config leaves out, so a config
// written before the parts existed ({family: "gpt2"} or {family: "llama"}) keeps its meaning.
import { z } from "zod";

export const familyNames = ["gpt2", "llama"] as const;
export type Family = (typeof familyNames)[number];
export const normKinds = ["layernorm", "rmsnorm"] as const;
export const positionKinds = ["learned", "rope"] as const;
// "none" leaves the MLP out: an attention-only model (Olsson et al. 2022's induction-head models).
export const mlpKinds = ["swiglu", "gelu", "relu2", "none"] as const;
export type MlpKind = (typeof mlpKinds)[number];

export const modelConfigSchema = z
  .object({
    /** The recipe (and parameter names) the parts below default to: gpt2 or llama. */
    family: z.enum(familyNames),
    vocab: z
      .number()
      .int()
      .min(2)
      .max(1 << 24),
    dModel: z.number().int().min(2),
    layers: z.number().int().min(1),
    heads: z.number().int().min(1),
    /** Key/value heads (grouped-query attention); equal to heads for plain multi-head attention. */
    kvHeads: z.number().int().min(1),
    context: z.number().int().min(1),
    /**
     * MLP hidden width / dModel for the family's own MLP (llama: rounded up to a multiple of 32); a
     * non-gated MLP in a gated family gets 1.5× that width, a gated one in a non-gated family 2/3 of it,
     * so the parameter count stays the family's. mlpHidden, when given, is the width exactly.
     */
    mlpRatio: z.number().positive(),
    normEps: z.number().positive(),
    ropeTheta: z.number().positive(),
    dropout: z.number().min(0).lt(1),
    /** Tie the output head to the token embedding. */
    tie: z.boolean(),
    // ---- the block's parts; absent means the family's (see familyParts)
    norm: z.enum(normKinds).optional(),
    positions: z.enum(positionKinds).optional(),
    mlp: z.enum(mlpKinds).optional(),
    /** Biases on every linear layer of attention and MLP (a LayerNorm always has its own bias). */
    bias: z.boolean().optional(),
    /** The MLP hidden width exactly (overrides mlpRatio). */
    mlpHidden: z.number().int().min(1).optional(),
    /** RMSNorm with a learned gain per head dimension on each head's q and k, before rotary (Qwen3). */
    qkNorm: z.boolean().optional(),
    /** Logit soft-cap: logits = c·tanh(z/c); 0 is off. */
    softcap: z.number().min(0).optional(),
    /** Initialise the output projections (o_proj, down_proj, an untied head) to zero. */
    zeroInit: z.boolean().optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.dModel % c.heads !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["heads"],
        message: `dModel ${c.dModel} is not divisible by heads ${c.heads}`,
      });
    }
    if (c.heads % c.kvHeads !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["kvHeads"],
        message: `heads ${c.heads} is not a multiple of kvHeads ${c.kvHeads}`,
      });
    }
    if (blockParts(c).positions === "rope" && (c.dModel / c.heads) % 2 !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["heads"],
        message: "rotary embeddings need an even head dimension",
      });
    }
  });

export type ModelConfig = z.infer<typeof modelConfigSchema>;

/** Every part of the block, resolved. */
export interface BlockParts {
  norm: (typeof normKinds)[number];
  positions: (typeof positionKinds)[number];
  mlp: MlpKind;
  bias: boolean;
  qkNorm: boolean;
  softcap: number;
  zeroInit: boolean;
}

/** Each family's parts: GPT-2 and Llama are data, not code. */
export const familyParts: Readonly<Record<Family, Readonly<BlockParts>>> = {
  gpt2: {
    norm: "layernorm",
    positions: "learned",
    mlp: "gelu",
    bias: true,
    qkNorm: false,
    softcap: 0,
    zeroInit: false,
  },
  llama: {
    norm: "rmsnorm",
    positions: "rope",
    mlp: "swiglu",
    bias: false,
    qkNorm: false,
    softcap: 0,
    zeroInit: false,
  },
};

/** The config's parts, each from the config or else from its family's recipe. */
export function blockParts(c: Pick<ModelConfig, "family"> & Partial<BlockParts>): BlockParts {
  const f = familyParts[c.family];
  return {
    norm: c.norm ?? f.norm,
    positions: c.positions ?? f.positions,
    mlp: c.mlp ?? f.mlp,
    bias: c.bias ?? f.bias,
    qkNorm: c.qkNorm ?? f.qkNorm,
    softcap: c.softcap ?? f.softcap,
    zeroInit: c.zeroInit ?? f.zeroInit,
  };
}

export const isGated = (mlp: MlpKind): boolean => mlp === "swiglu";

/** The MLP hidden width: mlpHidden if given, else from mlpRatio (see the schema). */
export function mlpHidden(c: ModelConfig): number {
  if (blockParts(c).mlp === "none") return 0;
  if (c.mlpHidden !== undefined) return c.mlpHidden;
  const h = c.mlpRatio * c.dModel;
  const own = c.family === "llama" ? Math.ceil(h / 32) * 32 : Math.round(h);
  const gated = isGated(blockParts(c).mlp);
  if (gated === isGated(familyParts[c.family].mlp)) return own;
  return Math.max(1, Math.round(gated ? (own * 2) / 3 : own * 1.5));
}

export function headDim(c: ModelConfig): number {
  return c.dModel / c.heads;
}

/** Validates a (partial, merged-with-defaults) config; errors name the field and what is allowed. */
export function parseModelConfig(input: unknown): ModelConfig {
  const r = modelConfigSchema.safeParse(input);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`).join("; ");
    throw new Error(`invalid model config: ${msg}`);
  }
  return r.data;
}

export const presetNames = ["nano", "micro", "mini", "small"] as const;
export type PresetName = (typeof presetNames)[number];

const shapes: Record<PresetName, Pick<ModelConfig, "dModel" | "layers" | "heads" | "kvHeads">> = {
  // Non-embedding parameters ≈ 12·layers·d² (gpt2) / about the same for llama with mlpRatio 8/3.
  nano: { dModel: 64, layers: 4, heads: 4, kvHeads: 4 },
  micro: { dModel: 128, layers: 5, heads: 4, kvHeads: 4 },
  mini: { dModel: 256, layers: 5, heads: 8, kvHeads: 4 },
  small: { dModel: 384, layers: 9, heads: 6, kvHeads: 3 },
};

/** A preset of the given family; gpt2 ignores grouped-query attention. */
export function preset(name: PresetName, family: Family, vocab: number, context = 256): ModelConfig {
  const s = shapes[name];
  const llama = family === "llama";
  return parseModelConfig({
    family,
    vocab,
    context,
    dModel: s.dModel,
    layers: s.layers,
    heads: s.heads,
    kvHeads: llama ? s.kvHeads : s.heads,
    mlpRatio: llama ? 8 / 3 : 4,
    normEps: 1e-5,
    ropeTheta: 10000,
    dropout: 0,
    tie: !llama,
  });
}
