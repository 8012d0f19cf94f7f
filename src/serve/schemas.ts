// Request bodies of the OpenAI endpoints, validated with zod. Unknown fields are ignored (clients send
// extras such as `user`); fields whose non-default values this server cannot honour are refused, so a
// client never silently gets something other than what it asked for.
import { z } from "zod";
import { badRequest } from "./errors.js";

const tokenIds = z.array(z.number().int().min(0), { error: "must be an array of token ids (integers ≥ 0)" });

const stop = z
  .union([z.string().min(1), z.array(z.string().min(1)).max(16)], {
    error: "must be a non-empty string or an array of at most 16 non-empty strings",
  })
  .nullish();

const unsupported = (name: string, allowed: unknown[]) =>
  z
    .unknown()
    .optional()
    .refine((v) => v === undefined || v === null || allowed.includes(v), {
      message: `${name} is not supported by this server`,
    });

/** Sampling and output fields shared by both endpoints. */
const common = {
  model: z.string({ error: "is required: the id of the model (see GET /v1/models)" }),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  stop,
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  /** vLLM's extension: keep generating past <|endoftext|> (load tests use it). */
  ignore_eos: z.boolean().nullish(),
  frequency_penalty: unsupported("frequency_penalty (other than 0)", [0]),
  presence_penalty: unsupported("presence_penalty (other than 0)", [0]),
  logit_bias: unsupported("logit_bias", []),
};

export const completionSchema = z.object({
  ...common,
  prompt: z
    .union([z.string(), z.array(z.string()).min(1), tokenIds.min(1), z.array(tokenIds.min(1)).min(1)], {
      error: "must be a string, an array of strings, an array of token ids, or an array of those",
    })
    .nullish(),
  echo: unsupported("echo", [false]),
  logprobs: unsupported("logprobs", []),
  suffix: unsupported("suffix", []),
  best_of: unsupported("best_of (other than 1)", [1]),
});

const textPart = z.object({ type: z.literal("text"), text: z.string() });

export const chatSchema = z.object({
  ...common,
  max_completion_tokens: z.number().int().min(1).nullish(),
  messages: z
    .array(
      z.object({
        role: z.enum(["system", "developer", "user", "assistant", "tool"]),
        content: z.union([z.string(), z.array(textPart)], {
          error: "must be a string or an array of text parts ({type: 'text', text})",
        }),
        name: z.string().optional(),
      }),
    )
    .min(1, { error: "must contain at least one message" }),
  logprobs: unsupported("logprobs", [false]),
  top_logprobs: unsupported("top_logprobs", []),
  tools: unsupported("tools", []),
  response_format: z
    .object({ type: z.literal("text", { error: "only the 'text' response format is supported" }) })
    .nullish(),
});

/** POST /inspect: the inspect page's analyses of one prompt (src/serve/inspect.ts). */
export const inspectSchema = z.object({
  model: z.string().min(1).nullish(),
  prompt: z.union([z.string().min(1, { error: "must not be empty" }), tokenIds.min(1)], {
    error: "must be a non-empty string or an array of token ids",
  }),
  ablate: z
    .array(
      z.object({
        layer: z.number({ error: "must be a layer index" }).int().min(0),
        head: z.number({ error: "must be a head index" }).int().min(0),
      }),
      { error: "must be an array of heads ({layer, head})" },
    )
    .max(1024)
    .nullish(),
  top: z.number().int().min(1).max(50).nullish(),
});

export type InspectBody = z.infer<typeof inspectSchema>;
export type CompletionBody = z.infer<typeof completionSchema>;
export type ChatBody = z.infer<typeof chatSchema>;

/** Parses a body or throws a 400 naming the first wrong field and what is wrong with it. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body))
    throw badRequest("the request body must be a JSON object (Content-Type: application/json)");
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.map(String).join(".") || null;
  const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more problems)` : "";
  throw badRequest(`${param ? `Invalid '${param}': ` : ""}${issue.message}${more}`, param);
}
