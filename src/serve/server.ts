// `afterscale serve`: an OpenAI-compatible HTTP API and a chat page over one model. The HTTP thread only
// parses, validates and streams; the model lives in a worker thread (engine.ts → worker.ts) that batches
// every active request into each decode step.
import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyError } from "fastify";
import type { Tokenizer } from "../data/tokenizer.js";
import type { Model } from "../nn/index.js";
import { Engine, modelSource } from "./engine.js";
import { ApiError, errorBody } from "./errors.js";
import type { ModelSource } from "./protocol.js";
import { registerRoutes } from "./routes.js";

export interface ServeOptions {
  /**
   * What loadModel (src/train/resolve.ts) accepts, as every other command does: a run name, a run folder
   * (its newest good checkpoint), a checkpoint folder, a Hugging Face folder or a GGUF file.
   */
  modelSpec?: string;
  /** Where run names are looked up (default: $AFTERSCALE_HOME or ./runs). */
  root?: string;
  /** Or an in-memory model and its tokenizer (copied to the worker). */
  model?: Model;
  tokenizer?: Tokenizer;
  /** The id clients pass as `model`; default: the loaded model's name (run, file or folder), or "afterscale". */
  modelId?: string;
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
  modelId: string;
  engine: Engine;
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
  "chat.js": "text/javascript; charset=utf-8",
  "chat.css": "text/css; charset=utf-8",
};

/** Hash, then compare in constant time, so neither the key's content nor its length leaks through timing. */
function sameKey(a: string, b: string): boolean {
  const h = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  let source: ModelSource;
  // The spec goes to the worker as given (relative paths resolve against this process's cwd, which the
  // worker shares), so run names, folders and files are told apart by loadModel alone.
  if (opts.modelSpec !== undefined)
    source = { kind: "spec", spec: opts.modelSpec, ...(opts.root === undefined ? {} : { root: opts.root }) };
  else if (opts.model && opts.tokenizer) source = modelSource(opts.model, opts.tokenizer);
  else throw new Error("startServer: give modelSpec, or model and tokenizer");
  const apiKey = opts.apiKey || null;

  const engine = await Engine.start(source, {
    maxBatch: opts.maxBatch ?? 8,
    maxQueue: opts.maxQueue ?? 32,
    prefillChunk: opts.prefillChunk,
    threads: opts.threads ?? null,
  });
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`afterscale: ${m}\n`));
  for (const note of engine.notes) warn(note);
  const modelId = opts.modelId ?? engine.loaded.name;
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
    if (!apiKey || !req.url.startsWith("/v1/")) return;
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
    const failure = engine.failure;
    return {
      status: failure ? "failed" : "ok",
      ...(failure ? { error: failure } : {}),
      model: modelId,
      context: engine.config.context,
      step: engine.step,
      uptime_s: Math.round((Date.now() - started) / 1000),
      ...engine.stats,
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
    app.get("/chat.js", page("chat.js"));
    app.get("/chat.css", page("chat.css"));
  }

  registerRoutes(app, { engine, modelId, created: Math.floor(started / 1000) });

  try {
    await app.listen({ host: opts.host ?? "127.0.0.1", port: opts.port ?? 8000 });
  } catch (e) {
    await engine.close();
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
    close() {
      closed ??= (async () => {
        closing = true;
        for (const [socket, n] of busy) if (n === 0) socket.end();
        await app.close(); // resolves once in-flight responses (streams included) have ended
        await engine.close();
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
      `afterscale serve: ${signal}: finishing ${server.engine.stats.inFlight} in-flight sequence(s), then exiting`,
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
