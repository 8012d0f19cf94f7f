// Model configuration: a plain object, validated with a schema so a bad field is named, and presets by
// size so nobody has to hand-tune shapes.
import { z } from "zod";

export const modelConfigSchema = z
  .object({
    family: z.enum(["gpt2", "llama"]),
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
    /** MLP hidden width = mlpRatio·dModel (llama: rounded up to a multiple of 32). */
    mlpRatio: z.number().positive(),
    normEps: z.number().positive(),
    ropeTheta: z.number().positive(),
    dropout: z.number().min(0).lt(1),
    /** Tie the output head to the token embedding. */
    tie: z.boolean(),
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
    if (c.family === "llama" && (c.dModel / c.heads) % 2 !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["heads"],
        message: "rotary embeddings need an even head dimension",
      });
    }
    if (c.family === "gpt2" && c.kvHeads !== c.heads) {
      ctx.addIssue({
        code: "custom",
        path: ["kvHeads"],
        message: "gpt2 uses multi-head attention: kvHeads must equal heads",
      });
    }
  });

export type ModelConfig = z.infer<typeof modelConfigSchema>;

export function mlpHidden(c: ModelConfig): number {
  const h = c.mlpRatio * c.dModel;
  return c.family === "llama" ? Math.ceil(h / 32) * 32 : Math.round(h);
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
export function preset(
  name: PresetName,
  family: ModelConfig["family"],
  vocab: number,
  context = 256,
): ModelConfig {
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
