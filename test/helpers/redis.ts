// A real redis-server for the queue tests: on a free loopback port, in a temporary folder, with its
// append-only file on (as docs/scale-out.md's reference deployment), stopped (and its folder removed) after.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkRedis } from "../../src/queue/index.js";

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

async function untilUp(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await checkRedis(url);
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

/** Starts redis-server (the password, when given, is required of every client). */
export async function startRedis(options: { password?: string } = {}): Promise<TestRedis> {
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
  const url = `redis://${options.password ? `:${options.password}@` : ""}127.0.0.1:${port}`;
  let output = "";
  const launch = async () => {
    const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    await untilUp(url, child, () => output);
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
