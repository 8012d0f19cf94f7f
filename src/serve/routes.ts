// The OpenAI endpoints: turn a validated request into sequences for the engine, and the engine's events into
// OpenAI's response or its server-sent-event chunks.
import { randomBytes, randomInt } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { END_OF_TEXT } from "../data/tokenizer.js";
import { type ChatMessage, chatPrompt } from "./chat-template.js";
import type { DoneEvent, Engine } from "./engine.js";
import { ApiError, badRequest, errorBody } from "./errors.js";
import type { SequenceRequest } from "./protocol.js";
import { type ChatBody, type CompletionBody, chatSchema, completionSchema, parseBody } from "./schemas.js";

/** A model the server serves, under the id clients pass as `model`. */
export interface ServedModel {
  id: string;
  engine: Engine;
}

export interface RouteContext {
  /** The first is the default (the chat page's). */
  models: readonly ServedModel[];
  created: number;
}

type Usage = { prompt_tokens: number; completion_tokens: number; total_tokens: number };
type Finish = "stop" | "length";

/** What differs between /v1/completions and /v1/chat/completions: the shapes of the answer. */
interface Shape {
  idPrefix: string;
  object: string;
  chunkObject: string;
  /** Chunks sent when a choice starts streaming (chat announces the role). */
  start(index: number): object[];
  delta(index: number, text: string): object;
  finish(index: number, reason: Finish): object;
  choice(index: number, text: string, reason: Finish): object;
}

const completionShape: Shape = {
  idPrefix: "cmpl-",
  object: "text_completion",
  chunkObject: "text_completion",
  start: () => [],
  delta: (index, text) => ({ index, text, logprobs: null, finish_reason: null }),
  finish: (index, reason) => ({ index, text: "", logprobs: null, finish_reason: reason }),
  choice: (index, text, reason) => ({ index, text, logprobs: null, finish_reason: reason }),
};

const chatShape: Shape = {
  idPrefix: "chatcmpl-",
  object: "chat.completion",
  chunkObject: "chat.completion.chunk",
  start: (index) => [
    { index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
  ],
  delta: (index, text) => ({ index, delta: { content: text }, logprobs: null, finish_reason: null }),
  finish: (index, reason) => ({ index, delta: {}, logprobs: null, finish_reason: reason }),
  choice: (index, text, reason) => ({
    index,
    message: { role: "assistant", content: text, refusal: null },
    logprobs: null,
    finish_reason: reason,
  }),
};

/** Everything needed to generate one request's choices. */
interface Job {
  prompts: Int32Array[];
  n: number;
  sampling: Omit<SequenceRequest, "id" | "prompt" | "seed">;
  seed: number | null;
  stream: boolean;
  includeUsage: boolean;
}

export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const modelIds = ctx.models.map((m) => m.id);
  /** The served model a request names (404 in OpenAI's shape when there is none of that id). */
  const served = (id: string): ServedModel => {
    const m = ctx.models.find((s) => s.id === id);
    if (!m) throw modelNotFound(id, modelIds);
    return m;
  };

  const modelObject = (id: string) => ({ id, object: "model", created: ctx.created, owned_by: "afterscale" });
  app.get("/v1/models", async () => ({ object: "list", data: modelIds.map(modelObject) }));
  app.get<{ Params: { id: string } }>("/v1/models/:id", async (req) => modelObject(served(req.params.id).id));

  const encode = (model: ServedModel, text: string, param: string): Int32Array =>
    checkIds(model, model.engine.tokenizer.encode(text), param);
  /** Token ids of a prompt; an empty prompt is <|endoftext|>, as in OpenAI's API. */
  const checkIds = ({ engine }: ServedModel, tokens: number[], param: string): Int32Array => {
    const eot = engine.tokenizer.specialTokens.find((s) => s.content === END_OF_TEXT)?.id ?? null;
    const ids = Int32Array.from(tokens);
    return checkPrompt(engine, ids.length === 0 && eot !== null ? Int32Array.of(eot) : ids, param);
  };
  const checkPrompt = (engine: Engine, ids: Int32Array, param: string): Int32Array => {
    const context = engine.config.context;
    const tokenizer = engine.tokenizer;
    if (ids.length === 0)
      throw badRequest("the prompt is empty (and the tokenizer has no <|endoftext|>)", param);
    // A prompt must leave room for at least one generated token.
    if (ids.length >= context)
      throw badRequest(
        `This model's maximum context length is ${context} tokens, but the prompt is ${ids.length} tokens` +
          (ids.length === context ? ", which leaves no room for a completion." : "."),
        param,
        "context_length_exceeded",
      );
    for (const id of ids) {
      if (id >= tokenizer.vocabSize)
        throw badRequest(`token id ${id} is outside the vocabulary of ${tokenizer.vocabSize}`, param);
    }
    return ids;
  };

  /** Fields common to both endpoints → the sampling settings, checked against this model. */
  const settings = (
    { engine }: ServedModel,
    body: CompletionBody | ChatBody,
    prompts: Int32Array[],
    maxTokens: number,
    extraStops: readonly string[],
    stopIds: readonly number[],
  ): Job => {
    const n = body.n ?? 1;
    const total = prompts.length * n;
    const capacity = engine.options.maxBatch + engine.options.maxQueue;
    if (total > capacity)
      throw badRequest(`this request needs ${total} sequences; the server holds at most ${capacity}`, "n");
    const stops = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
    const topP = body.top_p ?? 1;
    return {
      prompts,
      n,
      seed: body.seed ?? null,
      stream: body.stream ?? false,
      includeUsage: body.stream_options?.include_usage ?? false,
      sampling: {
        maxTokens,
        // top_p 0 keeps only the most likely token: greedy.
        temperature: topP === 0 ? 0 : (body.temperature ?? 1),
        topP: topP === 0 ? 1 : topP,
        stop: [...stops, ...extraStops],
        stopAtEndOfText: !(body.ignore_eos ?? false),
        // ignore_eos lifts every end-of-generation token, the chat model's end of turn included.
        stopIds: body.ignore_eos ? [] : [...stopIds],
      },
    };
  };

  app.post("/v1/completions", async (req, reply) => {
    const body = parseBody(completionSchema, req.body);
    const model = served(body.model);
    const p = body.prompt ?? "";
    let prompts: Int32Array[];
    if (typeof p === "string") prompts = [encode(model, p, "prompt")];
    else if (p.every((x) => typeof x === "string"))
      prompts = (p as string[]).map((s) => encode(model, s, "prompt"));
    else if (p.every((x) => typeof x === "number"))
      prompts = [checkPrompt(model.engine, Int32Array.from(p as number[]), "prompt")];
    else prompts = (p as number[][]).map((ids) => checkPrompt(model.engine, Int32Array.from(ids), "prompt"));
    const job = settings(model, body, prompts, body.max_tokens ?? 16, [], []);
    return run(model, job, completionShape, req, reply);
  });

  app.post("/v1/chat/completions", async (req, reply) => {
    const body = parseBody(chatSchema, req.body);
    const model = served(body.model);
    const messages: ChatMessage[] = body.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: typeof m.content === "string" ? m.content : m.content.map((part) => part.text).join(""),
    }));
    const chat = chatPrompt(model.engine.tokenizer, messages);
    const prompt = checkIds(model, chat.ids, "messages");
    const maxTokens =
      body.max_completion_tokens ?? body.max_tokens ?? model.engine.config.context - prompt.length;
    const job = settings(model, body, [prompt], maxTokens, chat.stops, chat.stopIds);
    return run(model, job, chatShape, req, reply);
  });
}

export function modelNotFound(requested: string, served: readonly string[]): ApiError {
  return new ApiError(
    404,
    `The model '${requested}' does not exist; this server serves ${served.map((id) => `'${id}'`).join(", ")}.`,
    "invalid_request_error",
    "model",
    "model_not_found",
  );
}

/** Submits the job's sequences and answers, streaming or not. Client disconnects cancel them. */
function run(
  model: ServedModel,
  job: Job,
  shape: Shape,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<unknown> {
  const { engine } = model;
  const count = job.prompts.length * job.n;
  if (!engine.hasRoom(count))
    throw new ApiError(
      429,
      "The server is busy: its request queue is full. Retry after the time in the Retry-After header.",
      "rate_limit_exceeded",
      null,
      "queue_full",
      { "retry-after": "1" },
    );
  const id = `${shape.idPrefix}${randomBytes(12).toString("hex")}`;
  const created = Math.floor(Date.now() / 1000);
  const envelope = (choices: object[], usage?: Usage) => ({
    id,
    object: job.stream ? shape.chunkObject : shape.object,
    created,
    model: model.id,
    choices,
    ...(usage ? { usage } : {}),
  });
  // A request without a seed still gets one, fixed per choice, so its choices differ from each other.
  const base = job.seed ?? randomInt(0, 2 ** 32 - 1);
  const sequences: Omit<SequenceRequest, "id">[] = [];
  for (let p = 0; p < job.prompts.length; p++) {
    const prompt = job.prompts[p]!;
    // As vLLM and llama.cpp's server do, a max_tokens beyond the context is not an error: generation stops
    // when prompt and completion fill the context, with finish_reason "length".
    const maxTokens = Math.min(job.sampling.maxTokens, engine.config.context - prompt.length);
    for (let c = 0; c < job.n; c++) {
      sequences.push({ ...job.sampling, maxTokens, prompt, seed: base + p * job.n + c });
    }
  }
  const texts = sequences.map(() => "");
  const dones: (DoneEvent | null)[] = sequences.map(() => null);
  let remaining = sequences.length;
  let settled = false;
  const raw = reply.raw;
  const usage = (): Usage => {
    let prompt = 0;
    let completion = 0;
    dones.forEach((d, i) => {
      if (i % job.n === 0) prompt += d?.promptTokens ?? 0; // a prompt counts once, however many choices
      completion += d?.completionTokens ?? 0;
    });
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  };
  const failure = () => dones.find((d) => d?.finishReason === "error");
  const finishOf = (d: DoneEvent): Finish => (d.finishReason === "length" ? "length" : "stop");

  return new Promise((resolve, reject) => {
    const write = (data: object | string) => {
      if (!raw.writableEnded && !raw.destroyed)
        raw.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    };
    const listeners = sequences.map((_, i) => ({
      onToken: (delta: string) => {
        if (!delta) return;
        texts[i] += delta;
        if (job.stream) write(envelope([shape.delta(i, delta)]));
      },
      onDone: (d: DoneEvent) => {
        dones[i] = d;
        if (job.stream && d.finishReason !== "error" && d.finishReason !== "cancelled")
          write(envelope([shape.finish(i, finishOf(d))]));
        if (--remaining === 0) complete();
      },
    }));
    const complete = () => {
      if (settled) return;
      settled = true;
      const failed = failure();
      if (job.stream) {
        if (failed) write(errorBody(`generation failed: ${failed.message}`, "server_error", null, null));
        else {
          if (job.includeUsage) write({ ...envelope([]), usage: usage() });
          write("[DONE]");
        }
        raw.end();
        resolve(undefined);
      } else if (failed) {
        reject(new ApiError(500, `generation failed: ${failed.message}`));
      } else if (dones.some((d) => d?.finishReason === "cancelled")) {
        resolve(reply); // the client went away: nothing to answer (returning the reply tells fastify so)
      } else {
        resolve(
          envelope(
            dones.map((d, i) => shape.choice(i, texts[i]!, finishOf(d!))),
            usage(),
          ),
        );
      }
    };

    if (job.stream) {
      reply.hijack();
      raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      for (let i = 0; i < sequences.length; i++) for (const chunk of shape.start(i)) write(envelope([chunk]));
    }
    let ids: number[];
    try {
      ids = engine.submit(sequences, listeners);
    } catch (e) {
      settled = true;
      if (!job.stream) return reject(new ApiError(503, (e as Error).message));
      write(errorBody((e as Error).message, "server_error", null, null));
      raw.end();
      return resolve(undefined);
    }
    // The response closing before we finished means the client disconnected: stop generating for it.
    raw.on("close", () => {
      if (settled) return;
      engine.cancel(ids);
      req.raw.socket?.destroy(); // a half-closed socket would otherwise hold up a graceful shutdown
    });
    if (req.raw.socket?.destroyed) engine.cancel(ids); // it left before we were listening
  });
}
