// The compare page's API: which models are served (and whether each can be prompted in chat), and the
// picks, kept in the prefs store (src/feedback/prefs.ts). The completions themselves come from the OpenAI
// endpoints, like any client's.
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { CHAT_ROLES, hasChatTokens } from "../data/chat.js";
import { PICK_CHOICES, type PickCounts, type PrefsStore } from "../feedback/prefs.js";
import { ApiError, badRequest } from "./errors.js";
import type { ServedModel } from "./routes.js";
import { parseBody } from "./schemas.js";

export interface CompareContext {
  models: readonly ServedModel[];
  /** Opens the store on first use, so a server nobody compares on writes no file. */
  prefs: () => PrefsStore;
}

const settings = z.object({
  temperature: z.number().min(0).max(2),
  topP: z.number().min(0).max(1),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER),
  maxTokens: z.number().int().min(1),
});

const side = z.object({
  model: z.string().min(1),
  settings,
  completion: z.string(),
});

export const pickSchema = z.object({
  prompt: z.string().min(1, { error: "must not be empty" }),
  messages: z
    .array(z.object({ role: z.enum(CHAT_ROLES), content: z.string() }))
    .min(1, { error: "must contain at least one message" })
    .nullish(),
  a: side,
  b: side,
  aSetup: z.union([z.literal(1), z.literal(2)], { error: "must be 1 or 2: the setup shown on side A" }),
  pick: z.enum(PICK_CHOICES, { error: "must be 'a', 'b' or 'tie'" }),
});

const listQuery = z.object({
  limit: z.coerce.number().int().min(0).max(10_000).default(50),
});

export function registerCompareRoutes(app: FastifyInstance, ctx: CompareContext): void {
  app.get("/compare/models", async () => ({
    models: ctx.models.map(({ id, engine }) => ({
      id,
      chat: hasChatTokens(engine.tokenizer),
      context: engine.config.context,
    })),
  }));

  app.post("/compare/picks", async (req, reply) => {
    const body = parseBody(pickSchema, req.body);
    for (const key of ["a", "b"] as const) {
      const model = body[key].model;
      if (!ctx.models.some((m) => m.id === model))
        throw badRequest(
          `Invalid '${key}.model': '${model}' is not a model this server serves`,
          `${key}.model`,
        );
    }
    const prefs = ctx.prefs();
    const pick = prefs.add({ ...body, messages: body.messages ?? null });
    return reply.status(201).send({ pick, counts: prefs.counts() });
  });

  app.delete("/compare/picks/last", async () => {
    const prefs = ctx.prefs();
    const removed = prefs.removeLast();
    if (!removed)
      throw new ApiError(404, "There is no pick to undo.", "invalid_request_error", null, "no_picks");
    return { removed, counts: prefs.counts() };
  });

  app.get("/compare/picks", async (req) => {
    const { limit } = parseBody(listQuery, req.query ?? {});
    const prefs = ctx.prefs();
    const counts: PickCounts = prefs.counts();
    return { counts, picks: prefs.recent(limit) };
  });
}
