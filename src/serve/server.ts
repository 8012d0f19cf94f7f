// `afterscale serve`: an OpenAI-compatible HTTP API, a chat page, a compare page and an inspect page over
// one model or several. The HTTP thread only parses, validates and streams; each model lives in its own worker thread
// (engine.ts → worker.ts) that batches that model's active requests into each decode step.
import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyError } from "fastify";
import type { Tokenizer } from "../data/tokenizer.js";
import { PrefsStore } from "../feedback/prefs.js";
import type { Model } from "../nn/index.js";
import { defaultRoot } from "../train/config.js";
import { registerCompareRoutes } from "./compare.js";
import { Engine, type EngineStats, modelSource } from "./engine.js";
import { ApiError, errorBody } from "./errors.js";
import { registerInspectRoute } from "./inspect-route.js";
import type { ModelSource } from "./protocol.js";
import { registerRoutes, type ServedModel } from "./routes.js";

/** One model to serve: a spec for loadModel, or an in-memory model and its tokenizer. */
export interface ModelToServe {
  /**
   * What loadModel (src/train/resolve.ts) accepts, as every other command does: a run name, a run folder
   * (its newest good checkpoint), a checkpoint folder, a Hugging Face folder or a GGUF file.
   */
  modelSpec?: string;
  /** Or an in-memory model and its tokenizer (copied to the worker). */
  model?: Model;
  tokenizer?: Tokenizer;
  /** The id clients pass as `model`; default: the loaded model's name (run, file or folder), or "afterscale". */
  modelId?: string;
}

export interface ServeOptions extends ModelToServe {
  /**
   * Several models instead of the one above, each in its own inference worker (with its own maxBatch and
   * maxQueue); requests choose by `model`. The first is the default: the chat page's, and /health's `model`.
   */
  models?: ModelToServe[];
  /** Where run names are looked up (default: $AFTERSCALE_HOME or ./runs). */
  root?: string;
  /**
   * The SQLite file of the compare page's picks. Given, it is opened (and checked) at start; by default
   * it is prefs.sqlite in the runs root, opened at the first pick.
   */
  prefs?: string;
  /** Where the resolver's notes and warnings go (default: stderr). */
  warn?: (message: string) => void;
  /** Default 127.0.0.1: only this machine can connect unless told otherwise. */
  host?: string;
  /** Default 8000; 0 picks a free port (see the returned url). */
  port?: number;
  /** When set, /v1/* requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string | null;
  /** Sequences decoded together (default 8). */
  maxBatch?: number;
  /** Sequences that may wait for a batch row before requests get 429 (default 32). */
  maxQueue?: number;
  /** Prompt tokens fed per step alongside the decoding rows (default DEFAULT_PREFILL_CHUNK, 128). */
  prefillChunk?: number;
  /** Kernel threads of the native backend in the inference worker (default: the backend's default). */
  threads?: number | null;
  /** Largest request body in bytes (default 1 MiB); larger ones get 413. */
  bodyLimit?: number;
}

export interface RunningServer {
  url: string;
  /** The port bound (the one picked when asked for 0). */
  port: number;
  /** The default (first) model's id and engine. */
  modelId: string;
  engine: Engine;
  /** Every served model, in the order given. */
  models: readonly ServedModel[];
  /** Where the compare page's picks are kept. */
  prefsPath: string;
  /** Stops accepting requests, lets in-flight ones finish, then stops the worker. */
  close(): Promise<void>;
}

const publicDir = (() => {
  // Compiled code runs from dist/src/serve; the page's files stay in src/serve/public (tsc does not copy them).
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "public"), resolve(here, "../../../src/serve/public")];
  return candidates.find((d) => existsSync(join(d, "index.html"))) ?? null;
})();

const pageTypes: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "api.js": "text/javascript; charset=utf-8",
  "chat.js": "text/javascript; charset=utf-8",
  "chat.css": "text/css; charset=utf-8",
  "compare.html": "text/html; charset=utf-8",
  "compare.js": "text/javascript; charset=utf-8",
  "compare.css": "text/css; charset=utf-8",
  "inspect.html": "text/html; charset=utf-8",
  "inspect.js": "text/javascript; charset=utf-8",
  "inspect.css": "text/css; charset=utf-8",
};

/** Hash, then compare in constant time, so neither the key's content nor its length leaks through timing. */
function sameKey(a: string, b: string): boolean {
  const h = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const wanted = opts.models ?? [opts];
  if (opts.models && (opts.modelSpec !== undefined || opts.model || opts.modelId !== undefined))
    throw new Error("startServer: give either models, or one model (modelSpec or model and tokenizer)");
  if (wanted.length === 0) throw new Error("startServer: models is empty");
  // The spec goes to the worker as given (relative paths resolve against this process's cwd, which the
  // worker shares), so run names, folders and files are told apart by loadModel alone.
  const sources = wanted.map((m, i): ModelSource => {
    if (m.modelSpec !== undefined)
      return { kind: "spec", spec: m.modelSpec, ...(opts.root === undefined ? {} : { root: opts.root }) };
    if (m.model && m.tokenizer) return modelSource(m.model, m.tokenizer);
    throw new Error(
      `startServer: give modelSpec, or model and tokenizer${wanted.length > 1 ? ` (model ${i + 1})` : ""}`,
    );
  });
  const apiKey = opts.apiKey || null;
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`afterscale: ${m}\n`));
  const prefsPath = opts.prefs ?? PrefsStore.defaultPath(resolve(opts.root ?? defaultRoot()));
  let prefs: PrefsStore | null = opts.prefs === undefined ? null : PrefsStore.open(prefsPath);

  let models: ServedModel[];
  try {
    models = await startEngines(sources, wanted, opts);
  } catch (e) {
    prefs?.close();
    throw e;
  }
  for (const { id, engine } of models)
    for (const note of engine.notes) warn(models.length > 1 ? `${id}: ${note}` : note);
  const { id: modelId, engine } = models[0]!;
  const app = Fastify({ bodyLimit: opts.bodyLimit ?? 1 << 20, logger: false, forceCloseConnections: "idle" });
  let closing = false;

  // Requests in progress per connection, so a graceful shutdown can close each keep-alive connection as soon
  // as it has nothing left to send (Node leaves some idle ones open until the client's timeout).
  const busy = new Map<Socket, number>();
  app.server.on("connection", (socket: Socket) => {
    busy.set(socket, 0);
    socket.once("close", () => busy.delete(socket));
  });
  const release = (socket: Socket) => {
    const n = Math.max(0, (busy.get(socket) ?? 1) - 1);
    busy.set(socket, n);
    if (closing && n === 0) socket.end();
  };

  app.addHook("onRequest", async (req, reply) => {
    const socket = req.raw.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    reply.raw.once("close", () => release(socket));
    if (closing) {
      reply.header("connection", "close");
      throw new ApiError(503, "The server is shutting down.", "server_error", null, "shutting_down");
    }
    // The API and the compare and inspect pages' data need the key; the pages themselves and /health do not.
    const data =
      req.url.startsWith("/v1/") ||
      req.url.startsWith("/compare/") ||
      (req.method === "POST" && /^\/inspect(\?|$)/.test(req.url));
    if (!apiKey || !data) return;
    const auth = req.headers.authorization ?? "";
    const m = /^Bearer (.+)$/.exec(auth);
    if (!m || !sameKey(m[1]!, apiKey)) {
      throw new ApiError(
        401,
        m ? "Incorrect API key provided." : "No API key provided: send it as 'Authorization: Bearer <key>'.",
        "invalid_request_error",
        null,
        "invalid_api_key",
      );
    }
  });

  app.setErrorHandler((err: FastifyError | ApiError, _req, reply) => {
    if (err instanceof ApiError) {
      return reply.status(err.status).headers(err.headers).send(err.body());
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    let message = err.message;
    let code: string | null = null;
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      message = `The request body is larger than the limit of ${app.initialConfig.bodyLimit} bytes.`;
      code = "request_too_large";
    } else if (err instanceof SyntaxError || err.code === "FST_ERR_CTP_INVALID_JSON_BODY") {
      message = `We could not parse the JSON body of your request: ${err.message}`;
      code = "invalid_json";
    } else if (status === 500) {
      message = `internal error: ${err.message}`;
    }
    return reply
      .status(status)
      .send(errorBody(message, status >= 500 ? "server_error" : "invalid_request_error", null, code));
  });

  app.setNotFoundHandler((req, reply) => {
    reply
      .status(404)
      .send(
        errorBody(
          `Unknown request URL: ${req.method} ${req.url}.`,
          "invalid_request_error",
          null,
          "unknown_url",
        ),
      );
  });

  const started = Date.now();
  app.get("/health", async () => {
    const failed = models.find((m) => m.engine.failure !== null);
    const failure = failed ? `${models.length > 1 ? `${failed.id}: ` : ""}${failed.engine.failure}` : null;
    return {
      status: failure ? "failed" : "ok",
      ...(failure ? { error: failure } : {}),
      model: modelId,
      context: engine.config.context,
      step: engine.step,
      uptime_s: Math.round((Date.now() - started) / 1000),
      // Counters over all models; each model's own below.
      ...totalStats(models),
      models: models.map((m) => ({
        id: m.id,
        status: m.engine.failure ? "failed" : "ok",
        context: m.engine.config.context,
        step: m.engine.step,
        ...m.engine.stats,
      })),
    };
  });

  if (publicDir) {
    const files = new Map(Object.keys(pageTypes).map((f) => [f, readFileSync(join(publicDir, f))]));
    const page = (name: string) => async (_req: unknown, reply: import("fastify").FastifyReply) =>
      reply
        .type(pageTypes[name]!)
        .header("cache-control", "no-cache")
        .header("content-security-policy", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'")
        .header("x-content-type-options", "nosniff")
        .send(files.get(name));
    app.get("/", page("index.html"));
    app.get("/api.js", page("api.js"));
    app.get("/chat.js", page("chat.js"));
    app.get("/chat.css", page("chat.css"));
    app.get("/compare", page("compare.html"));
    app.get("/compare.js", page("compare.js"));
    app.get("/compare.css", page("compare.css"));
    app.get("/inspect", page("inspect.html"));
    app.get("/inspect.js", page("inspect.js"));
    app.get("/inspect.css", page("inspect.css"));
  }

  registerRoutes(app, { models, created: Math.floor(started / 1000) });
  registerInspectRoute(app, models);
  registerCompareRoutes(app, {
    models,
    prefs: () => {
      prefs ??= PrefsStore.open(prefsPath);
      return prefs;
    },
  });

  const stop = async () => {
    await Promise.all(models.map((m) => m.engine.close()));
    prefs?.close();
    prefs = null;
  };
  try {
    await app.listen({ host: opts.host ?? "127.0.0.1", port: opts.port ?? 8000 });
  } catch (e) {
    await stop();
    throw e;
  }
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  let closed: Promise<void> | null = null;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    modelId,
    engine,
    models,
    prefsPath,
    close() {
      closed ??= (async () => {
        closing = true;
        for (const [socket, n] of busy) if (n === 0) socket.end();
        await app.close(); // resolves once in-flight responses (streams included) have ended
        await stop();
      })();
      return closed;
    },
  };
}

/**
 * SIGTERM / SIGINT: stop accepting requests, let in-flight ones finish, exit 0. A second signal exits at once.
 */
export function closeOnSignals(
  server: RunningServer,
  log: (message: string) => void = (m) => process.stderr.write(`${m}\n`),
): void {
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++received > 1) {
      log(`afterscale serve: ${signal} again: exiting without waiting`);
      process.exit(130);
    }
    log(
      `afterscale serve: ${signal}: finishing ${totalStats(server.models).inFlight} in-flight sequence(s), then exiting`,
    );
    server.close().then(
      () => process.exit(0),
      (e: Error) => {
        log(`afterscale serve: shutdown failed: ${e.message}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

/** Starts one engine per model (in parallel); if any fails, stops the others and throws its error. */
async function startEngines(
  sources: ModelSource[],
  wanted: ModelToServe[],
  opts: ServeOptions,
): Promise<ServedModel[]> {
  const started = await Promise.allSettled(
    sources.map((source) =>
      Engine.start(source, {
        maxBatch: opts.maxBatch ?? 8,
        maxQueue: opts.maxQueue ?? 32,
        prefillChunk: opts.prefillChunk,
        threads: opts.threads ?? null,
      }),
    ),
  );
  const engines = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = started.findIndex((r) => r.status === "rejected");
  let problem: Error | null = null;
  if (failed >= 0) {
    const reason = (started[failed] as PromiseRejectedResult).reason as Error;
    problem = sources.length > 1 ? new Error(`model ${failed + 1}: ${reason.message}`) : reason;
  }
  const models = engines.map((engine, i) => ({ id: wanted[i]!.modelId ?? engine.loaded.name, engine }));
  if (!problem) {
    const seen = new Set<string>();
    for (const { id } of models) {
      if (seen.has(id))
        problem = new Error(`two models would both be served as '${id}': give each its own model id`);
      seen.add(id);
    }
  }
  if (problem) {
    await Promise.all(engines.map((e) => e.close()));
    throw problem;
  }
  return models;
}

function totalStats(models: readonly ServedModel[]): EngineStats {
  const total: EngineStats = {
    inFlight: 0,
    active: 0,
    waiting: 0,
    completed: 0,
    cancelled: 0,
    failed: 0,
    tokens: 0,
  };
  for (const { engine } of models)
    for (const k of Object.keys(total) as (keyof EngineStats)[]) total[k] += engine.stats[k];
  return total;
}
