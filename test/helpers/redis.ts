// A real redis-server for the queue tests: on a free loopback port, in a temporary folder, with its
// append-only file on (as docs/scale-out.md's reference deployment), stopped (and its folder removed) after.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { checkRedis } from "../../src/queue/index.js";

/** The self-signed certificate (and key) a TLS test server uses (tools/gen_tls_fixture.sh). */
export const TLS_CERT = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "test",
  "fixtures",
  "tls",
  "cert.pem",
);
const TLS_KEY = join(dirname(TLS_CERT), "key.pem");

/** A reason to skip when Debian's redis-server is not installed (.ci/run installs it), else false. */
export const noRedisServer: string | false =
  spawnSync("redis-server", ["--version"]).error !== undefined &&
  "redis-server is not installed (apt-get install redis-server)";

export interface TestRedis {
  url: string;
  port: number;
  /** Stops the server (SIGTERM: it writes its AOF and exits) and starts it again on the same port and data. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** One PING over TLS, trusting the fixture's certificate (this process has no NODE_EXTRA_CA_CERTS). */
async function pingTls(port: number): Promise<void> {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    tls: { ca: readFileSync(TLS_CERT) },
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.ping();
  } finally {
    client.disconnect();
  }
}

async function untilUp(probe: () => Promise<void>, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await probe();
      return;
    } catch (e) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`redis-server did not start: ${(e as Error).message}\n${output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once("exit", () => r()));
}

/**
 * Starts redis-server (the password, when given, is required of every client; with `tls` it listens only
 * for TLS, with the fixture's certificate, and `url` is rediss://).
 */
export async function startRedis(options: { password?: string; tls?: boolean } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), "afterscale-redis-"));
  const port = await freePort();
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--appendonly",
    "yes",
    "--save",
    "",
  ];
  if (options.password) args.push("--requirepass", options.password);
  if (options.tls) {
    args[1] = "0"; // no plain port
    args.push("--tls-port", String(port), "--tls-cert-file", TLS_CERT, "--tls-key-file", TLS_KEY);
    args.push("--tls-ca-cert-file", TLS_CERT, "--tls-auth-clients", "no");
  }
  const scheme = options.tls ? "rediss" : "redis";
  const url = `${scheme}://${options.password ? `:${options.password}@` : ""}127.0.0.1:${port}`;
  const probe = options.tls ? () => pingTls(port) : () => checkRedis(url);
  let output = "";
  const launch = async () => {
    const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    await untilUp(probe, child, () => output);
    return child;
  };
  let child = await launch();
  return {
    url,
    port,
    async restart(downMs = 300) {
      child.kill("SIGTERM");
      await stopped(child);
      await new Promise((r) => setTimeout(r, downMs));
      child = await launch();
    },
    async stop() {
      child.kill("SIGTERM");
      await stopped(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
