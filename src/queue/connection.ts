// Connections to the Redis server behind the run queue. ioredis retries a failed connection forever by
// default, which turns a wrong password or a wrong host into a silent hang; so every process first makes
// one bounded attempt (checkRedis) and fails with what went wrong, and its long-lived connections give up
// after a bounded outage (REDIS_OUTAGE_SECONDS) instead of waiting forever. A Redis restart shorter than
// that is ridden out: ioredis reconnects and BullMQ carries on.
import { Redis, type RedisOptions } from "ioredis";

/**
 * BullMQ, loaded on first use: it loads msgpackr's native addon, and importing afterscale as a library
 * must not load native code that a program never uses.
 */
export function loadBullmq(): Promise<typeof import("bullmq")> {
  return import("bullmq");
}

/** A long-lived connection stops retrying after Redis has been unreachable this long (seconds). */
export const REDIS_OUTAGE_SECONDS = 120;
/** One connection attempt (checkRedis) gives up after this long (milliseconds). */
export const CONNECT_TIMEOUT_MS = 5000;

/** The URL with its password replaced by ***, for messages and status output. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "<unparseable URL>";
  }
}

/** Checks a queue URL's form: redis:// or rediss:// (TLS), host, optional port, user, password and db. */
export function parseQueueUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(
      `queue URL ${JSON.stringify(url)}: not a URL; expected redis://[user:pass@]host:port[/db]`,
    );
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:")
    throw new Error(
      `queue URL ${redactUrl(url)}: expected a redis:// or rediss:// (TLS) URL, got ${u.protocol}//`,
    );
  if (!u.hostname) throw new Error(`queue URL ${redactUrl(url)}: no host`);
  const db = u.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d+$/.test(db))
    throw new Error(`queue URL ${redactUrl(url)}: the path must be a database number, got /${db}`);
  return u;
}

/** The environment variable a password can come from, so that it stays out of argv (`ps`) and shell history. */
export const PASSWORD_ENV = "AFTERSCALE_REDIS_PASSWORD";

/**
 * The URL to connect with: one without a password takes AFTERSCALE_REDIS_PASSWORD's, if set. A password in
 * the URL wins. Only connections use it; messages show the URL as given (redacted).
 */
export function connectionUrl(url: string): string {
  const u = parseQueueUrl(url);
  const password = process.env[PASSWORD_ENV];
  if (u.password || !password) return url;
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** Node's codes for a TLS certificate that does not chain to a trusted CA. */
const UNTRUSTED_CERT = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
]);

/** What a connection error means, in words a user can act on. */
function explain(url: string, e: Error | undefined): string {
  const where = redactUrl(url);
  const msg = e?.message ?? "connection closed";
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (/^WRONGPASS/.test(msg)) return `Redis at ${where} refused the user name or password (${msg})`;
  if (/^NOAUTH/.test(msg))
    return `Redis at ${where} requires a password: set ${PASSWORD_ENV}, or give it in the URL, redis://:PASSWORD@host:port (${msg})`;
  if (code === "ECONNREFUSED") return `no Redis server at ${where} (connection refused)`;
  if (code && UNTRUSTED_CERT.has(code))
    return (
      `Redis at ${where}: its TLS certificate is not trusted (${msg}); if your own CA signed it, give ` +
      "Node that CA: NODE_EXTRA_CA_CERTS=/path/to/ca.pem"
    );
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID")
    return `Redis at ${where}: its TLS certificate is not for this host (${msg})`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `Redis host of ${where} not found (${msg})`;
  if (code === "ETIMEDOUT" || /timeout/i.test(msg))
    return `Redis at ${where} did not answer within ${CONNECT_TIMEOUT_MS / 1000} s`;
  return `cannot use Redis at ${where}: ${msg}`;
}

/**
 * One bounded attempt to connect, authenticate and PING; throws a clear error (wrong password, no server,
 * timeout) instead of retrying. Every queue command runs it before opening BullMQ's connections.
 */
export async function checkRedis(url: string): Promise<void> {
  const client = new Redis(connectionUrl(url), {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: CONNECT_TIMEOUT_MS,
    enableOfflineQueue: false,
  });
  let last: Error | undefined;
  client.on("error", (e: Error) => {
    last = e;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    throw new Error(explain(url, last ?? (e as Error)));
  } finally {
    client.disconnect();
  }
}

/**
 * A connection for BullMQ (maxRetriesPerRequest null, as it requires): reconnects with backoff while
 * Redis is away, for at most `outageSeconds`; after that `onGiveUp` is called with the reason.
 */
export function openRedis(
  url: string,
  options: { outageSeconds?: number; onGiveUp?: (reason: string) => void } = {},
): Redis {
  const target = connectionUrl(url);
  const outage = (options.outageSeconds ?? REDIS_OUTAGE_SECONDS) * 1000;
  let downSince: number | null = null;
  let last: Error | undefined;
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest: null,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: () => {
      downSince ??= Date.now();
      if (Date.now() - downSince > outage) {
        options.onGiveUp?.(
          `${explain(url, last)}; gave up after ${Math.round(outage / 1000)} s without Redis`,
        );
        return null;
      }
      return 500;
    },
  };
  const client = new Redis(target, redisOptions);
  client.on("error", (e: Error) => {
    last = e;
  });
  client.on("ready", () => {
    downSince = null;
  });
  return client;
}
