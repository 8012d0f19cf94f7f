// POST /inspect: the inspect page's data. The prompt is tokenized and checked here; the analyses run in the
// model's worker (engine.inspect), so the HTTP thread stays free while they do.
import type { FastifyInstance } from "fastify";
import { ApiError, badRequest } from "./errors.js";
import { badHead, MIN_INSPECT_TOKENS } from "./inspect.js";
import { modelNotFound, type ServedModel } from "./routes.js";
import { inspectSchema, parseBody } from "./schemas.js";

/** Longest prompt inspected: the patterns alone are layers·heads·T² numbers in the answer. */
export const MAX_INSPECT_TOKENS = 64;

export function registerInspectRoute(app: FastifyInstance, models: readonly ServedModel[]): void {
  app.post("/inspect", async (req) => {
    const body = parseBody(inspectSchema, req.body);
    const served = body.model == null ? models[0]! : models.find((m) => m.id === body.model);
    if (!served)
      throw modelNotFound(
        body.model!,
        models.map((m) => m.id),
      );
    const { engine } = served;
    const vocab = engine.config.vocab;
    const ids = typeof body.prompt === "string" ? engine.tokenizer.encode(body.prompt) : body.prompt;
    const most = Math.min(MAX_INSPECT_TOKENS, engine.config.context);
    if (ids.length < MIN_INSPECT_TOKENS || ids.length > most)
      throw badRequest(
        `Invalid 'prompt': it is ${ids.length} token${ids.length === 1 ? "" : "s"} long; inspect takes ${MIN_INSPECT_TOKENS} to ${most}`,
        "prompt",
      );
    const outside = ids.find((id) => id >= vocab);
    if (outside !== undefined)
      throw badRequest(
        `Invalid 'prompt': token id ${outside} is outside the vocabulary of ${vocab}`,
        "prompt",
      );
    const ablate = body.ablate ?? [];
    const wrong = badHead(engine.config, ablate);
    if (wrong) {
      const param = wrong.slice(0, wrong.indexOf(":"));
      throw badRequest(`Invalid '${param}'${wrong.slice(param.length)}`, param);
    }
    if (engine.failure) throw new ApiError(503, engine.failure);
    if (!engine.canInspect)
      throw new ApiError(
        429,
        "The server is busy with other inspect requests. Retry after the time in the Retry-After header.",
        "rate_limit_exceeded",
        null,
        "queue_full",
        { "retry-after": "1" },
      );
    try {
      const report = await engine.inspect(ids, ablate, body.top ?? 5);
      return { model: served.id, ...report };
    } catch (e) {
      throw new ApiError(500, `inspect failed: ${(e as Error).message}`);
    }
  });
}
