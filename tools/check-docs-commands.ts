// Runs every `npx afterscale …` command of README.md and docs/*.md as written, from this checkout right
// after `npm ci` (.ci/run does it in a fresh clone), so the docs cannot drift from the CLI. Commands come
// from fenced blocks and inline code; `<run>` means a tiny run this script trains first. Long jobs run for
// a bounded time: the main job (`npm start`), the sweep recipe and `train` runs of 500 steps or more start,
// show progress, get Ctrl-C and must checkpoint and exit 130; the sweep's id is then filled by a reduced sweep (printed) so the commands after
// it run as written. A server gets a health check and one completion, then Ctrl-C. Any failure exits 1.
// Commands with a redis:// URL (the run queue, docs/scale-out.md) run against a redis-server this script
// starts on a free port (Debian's, as .ci/run installs it), with one `afterscale worker` of its own in the
// background; the URL as written is replaced by that server's. A queued sweep is checked as written with
// --dry-run, then run reduced; a documented worker must start taking runs and stop cleanly on Ctrl-C.
//
//   node dist/tools/check-docs-commands.js            (from the repository root; needs `npm ci` done)
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { constants as osConstants } from "node:os";
import { join, resolve } from "node:path";

interface DocCommand {
  command: string;
  /** Where it is written: "README.md:54" (several places for a repeated command). */
  where: string[];
}

/** The placeholder run every `<run>` stands for; docs/serving.md's example run has this name too. */
const RUN_NAME = "my-run";
const TINY_RUN = `npx afterscale train --data synthetic --vocab 512 --model nano --steps 20 --context 32 --batch-size 4 --eval-interval 0 --run-name ${RUN_NAME}`;
/** A documented `train` with at least this many steps is a measurement's run (minutes): bounded like the main job. */
const LONG_TRAIN_STEPS = 500;
/** The reduced sweep that stands in for a documented one: 9 runs of a few seconds each. */
const SWEEP_REDUCTION: Record<string, string> = {
  budgets: "2e9,4e9,8e9",
  "sizes-per-budget": "3",
  spread: "4",
  "batch-size": "8",
  context: "32",
};

const repo = resolve(process.cwd());
const work = join(repo, ".docs-check");

/** Drops a trailing `# comment` outside quotes. */
function stripComment(line: string): string {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i).trimEnd();
  }
  return line.trimEnd();
}

/** `npx afterscale …` lines of fenced blocks (with `\` continuations), inline `npx afterscale …` code, and
 *  the README's `npm start` (the main job). */
export function docCommands(files: readonly string[]): DocCommand[] {
  const found = new Map<string, DocCommand>();
  const add = (command: string, where: string) => {
    const c = found.get(command) ?? { command, where: [] };
    c.where.push(where);
    found.set(command, c);
  };
  for (const file of files) {
    const lines = readFileSync(join(repo, file), "utf8").split("\n");
    let fenced = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (/^\s*```/.test(line)) {
        fenced = !fenced;
        continue;
      }
      if (!fenced) {
        // Inline code in prose; "npx afterscale …" (with an ellipsis) names the command, not an invocation.
        for (const m of line.matchAll(/`(npx afterscale [^`…]+)`/g)) add(m[1]!, `${file}:${i + 1}`);
        continue;
      }
      const start = i;
      let text = stripComment(line);
      while (text.endsWith("\\") && i + 1 < lines.length)
        text = `${text.slice(0, -1)} ${stripComment(lines[++i]!).trim()}`;
      text = text.trim().replace(/\s+/g, " ");
      if (text.startsWith("npx afterscale ")) add(text, `${file}:${start + 1}`);
      else if (/^npm ci && npm start$/.test(text)) add("npm start", `${file}:${start + 1}`);
    }
  }
  return [...found.values()];
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  seconds: number;
}

/** Process groups still running, killed if this script is stopped. */
const running = new Set<ChildProcess>();

/** The status a shell reports ($?): the exit code, or 128 + the signal's number. */
function shellStatus(r: Outcome): number {
  if (r.code !== null) return r.code;
  const n = r.signal ? osConstants.signals[r.signal] : undefined;
  return n === undefined ? -1 : 128 + n;
}

/** Starts a shell command in its own process group (so Ctrl-C reaches every process in it, as in a terminal). */
function start(
  command: string,
  env: NodeJS.ProcessEnv,
  cwd = work,
): { child: ChildProcess; done: Promise<Outcome> } {
  const t0 = performance.now();
  const child = spawn("sh", ["-c", command], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const done = new Promise<Outcome>((res) =>
    child.on("close", (code, signal) =>
      res({ code, signal, output, seconds: (performance.now() - t0) / 1000 }),
    ),
  );
  const snapshot = () => output;
  Object.defineProperty(child, "outputSoFar", { get: snapshot });
  return { child, done };
}

const outputOf = (child: ChildProcess): string => (child as unknown as { outputSoFar: string }).outputSoFar;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

/** Waits until the output matches, the process ends, or time runs out. */
async function waitFor(child: ChildProcess, done: Promise<Outcome>, pattern: RegExp, seconds: number) {
  const deadline = Date.now() + seconds * 1000;
  let ended = false;
  void done.then(() => (ended = true));
  while (!ended && Date.now() < deadline) {
    const m = pattern.exec(outputOf(child));
    if (m) return m;
    await new Promise((r) => setTimeout(r, 200));
  }
  return pattern.exec(outputOf(child));
}

async function runToEnd(command: string, env: NodeJS.ProcessEnv, limitSeconds = 180): Promise<Outcome> {
  const { child, done } = start(command, env);
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), limitSeconds * 1000);
  const r = await done;
  clearTimeout(timer);
  return r;
}

/** A study has started training once it announces its first learning-rate sweep run. */
const STUDY_PROGRESS = /\[lr sweep \d+\/\d+\]/;

/** A long job: started as written, it must show `progress`, then Ctrl-C must checkpoint it and exit 130. */
async function runBounded(command: string, env: NodeJS.ProcessEnv, progress: RegExp, limitSeconds: number) {
  const { child, done } = start(command, env);
  const seen = await waitFor(child, done, progress, limitSeconds);
  if (seen) killGroup(child, "SIGINT");
  else killGroup(child, "SIGKILL");
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), 60_000);
  const r = await done;
  clearTimeout(timer);
  if (!seen) throw new Error(`no progress (${progress}) within ${limitSeconds} s:\n${tail(r.output)}`);
  // Ctrl-C reaches npm/npx too, which may then die of SIGINT itself: the shell's status is 130 either way.
  const after = r.output.slice(r.output.indexOf(seen[0]));
  if (shellStatus(r) !== 130 || !/checkpoint/i.test(after) || /error/i.test(after))
    throw new Error(
      `after Ctrl-C: status ${shellStatus(r)}, expected 130 and a checkpoint:\n${tail(r.output)}`,
    );
  return { ...r, progress: seen[0] };
}

/** The redis-server and background worker behind the documented queue commands, started on first use. */
interface QueueBackend {
  url: string;
  redis: ChildProcess;
  worker: ChildProcess;
}
let queueBackend: QueueBackend | null = null;
const REDIS_URL = /rediss?:\/\/\S+/g;

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

async function startQueueBackend(env: NodeJS.ProcessEnv): Promise<QueueBackend> {
  if (queueBackend) return queueBackend;
  const port = await freePort();
  const dir = join(work, "redis");
  mkdirSync(dir, { recursive: true });
  const url = `redis://127.0.0.1:${port}`;
  const redis = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--save", ""],
    { stdio: "ignore" },
  );
  running.add(redis);
  redis.once("error", () => {}); // reported below as "did not start"
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await runToEnd(`npx afterscale queue status ${url}`, env, 30);
    if (r.code === 0) break;
    if (Date.now() > deadline || redis.exitCode !== null)
      throw new Error(`redis-server (needed by the queue commands) did not start:\n${tail(r.output)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const { child: worker } = start(`npx afterscale worker --queue ${url}`, env);
  running.add(worker);
  queueBackend = { url, redis, worker };
  return queueBackend;
}

async function stopQueueBackend(): Promise<void> {
  if (!queueBackend) return;
  const { redis, worker } = queueBackend;
  killGroup(worker, "SIGTERM");
  redis.kill("SIGTERM");
  await Promise.all(
    [worker, redis].map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once("exit", r)))),
  );
  queueBackend = null;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

/** `serve`: wait for its banner, check /health and one completion, then Ctrl-C must stop it cleanly. */
async function runServer(command: string, env: NodeJS.ProcessEnv): Promise<string> {
  let cmd = command;
  let note = "";
  if (!/--port/.test(cmd) && !(await portFree(8000))) {
    cmd += " --port 0";
    note = " (port 8000 is taken on this machine, so with --port 0)";
  }
  const { child, done } = start(cmd, env);
  const m = await waitFor(child, done, /OpenAI API\s+(http:\S+)\/v1\s+\(model "([^"]+)"/, 120);
  try {
    if (!m) throw new Error(`no "OpenAI API" banner within 120 s:\n${tail(outputOf(child))}`);
    const base = m[1]!;
    const health = await fetch(`${base}/health`);
    if (!health.ok) throw new Error(`GET /health: ${health.status}`);
    const res = await fetch(`${base}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: m[2], prompt: "The", max_tokens: 8, seed: 1 }),
    });
    const body = (await res.json()) as { choices?: { text: string }[] };
    if (!res.ok || typeof body.choices?.[0]?.text !== "string")
      throw new Error(`POST /v1/completions: ${res.status} ${JSON.stringify(body)}`);
    killGroup(child, "SIGINT");
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), 30_000);
    const r = await done;
    clearTimeout(timer);
    // The server exits 0 on SIGINT; npx, hit by the same Ctrl-C, may die of it (status 130) after its child.
    const status = shellStatus(r);
    const after = r.output.slice(r.output.indexOf("SIGINT"));
    if (![0, 130].includes(status) || !/exiting/.test(after) || /error/i.test(after))
      throw new Error(`after Ctrl-C: status ${status}, expected a clean exit:\n${tail(r.output)}`);
    return `served ${base}${note}: /health ok, a completion of ${JSON.stringify(body.choices[0]!.text)}, Ctrl-C → clean exit (status ${status})`;
  } finally {
    killGroup(child, "SIGKILL");
  }
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function lastLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  return (lines[lines.length - 1] ?? "").slice(0, 160);
}

/** The documented sweep with the reduction's flags in place of (or added to) its own. */
function reducedSweep(command: string): string {
  let c = command;
  for (const [flag, value] of Object.entries(SWEEP_REDUCTION)) {
    const re = new RegExp(`--${flag} \\S+`);
    c = re.test(c) ? c.replace(re, `--${flag} ${value}`) : `${c} --${flag} ${value}`;
  }
  return c;
}

async function main(): Promise<void> {
  if (!existsSync(join(repo, "node_modules", ".bin", "afterscale")))
    throw new Error("node_modules/.bin/afterscale is missing: run `npm ci` first");
  const docs = readdirSync(join(repo, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`);
  const commands = docCommands(["README.md", ...docs]);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, AFTERSCALE_PROFILE: "" };
  delete env.AFTERSCALE_HOME;
  const t0 = performance.now();
  console.log(`checking ${commands.length} commands from README.md and docs/ in ${work}`);

  const setup = await runToEnd(TINY_RUN, env);
  if (setup.code !== 0) throw new Error(`training the placeholder run failed:\n${tail(setup.output)}`);
  console.log(`setup (${setup.seconds.toFixed(1)} s): \`<run>\` is ${RUN_NAME}, trained by: ${TINY_RUN}`);

  const failures: string[] = [];
  for (const { command: written, where } of commands) {
    const unknown = written.replace(/<run>/g, "").match(/<[^>]+>/);
    const label = `${where.join(", ")}: ${written}`;
    try {
      if (unknown) throw new Error(`unknown placeholder ${unknown[0]} (this script knows <run>)`);
      let command = written.replace(/<run>/g, RUN_NAME);
      let note = "";
      if (/rediss?:\/\/\S+/.test(command)) {
        const q = await startQueueBackend(env);
        command = command.replace(REDIS_URL, q.url);
        note = ` (with ${q.url}, this script's redis-server and worker)`;
      }
      const sub = command.split(" ")[2];
      let what: string;
      if (sub === "worker") {
        // A worker runs until stopped: it must start taking runs, then Ctrl-C must stop it cleanly.
        const { child, done } = start(command, env);
        const seen = await waitFor(child, done, /taking runs from/, 60);
        killGroup(child, seen ? "SIGINT" : "SIGKILL");
        const r = await done;
        if (!seen) throw new Error(`no "taking runs from" within 60 s:\n${tail(r.output)}`);
        if (![0, 130].includes(shellStatus(r)) || !/stopped/.test(r.output))
          throw new Error(
            `after Ctrl-C: status ${shellStatus(r)}, expected a clean stop:\n${tail(r.output)}`,
          );
        what = `took runs from the queue, Ctrl-C → stopped (status ${shellStatus(r)})${note}`;
      } else if (sub === "sweep" && command.includes("--queue") && command.includes("--resume")) {
        // Collecting a queued sweep: waits for this script's worker to train its runs.
        const r = await runToEnd(command, env, 300);
        if (r.code !== 0) throw new Error(`exit ${r.code ?? r.signal}:\n${tail(r.output)}`);
        what = `exit 0 (${r.seconds.toFixed(1)} s): ${/^sweep \S+ through the queue.*$/m.exec(r.output)?.[0] ?? lastLine(r.output)}${note}`;
      } else if (sub === "sweep" && command.includes("--queue")) {
        // As written with --dry-run (flags and plan), then reduced, enqueued for real.
        const dry = await runToEnd(`${command} --dry-run`, env);
        if (dry.code !== 0)
          throw new Error(`as written with --dry-run: exit ${dry.code}:\n${tail(dry.output)}`);
        const reduced = reducedSweep(command);
        const r = await runToEnd(reduced, env);
        if (r.code !== 0) throw new Error(`the reduced sweep failed: ${reduced}\n${tail(r.output)}`);
        what = `as written with --dry-run: exit 0; reduced: ${reduced} → "${/^sweep \S+ through the queue.*$/m.exec(r.output)?.[0] ?? lastLine(r.output)}"${note}`;
      } else if (command === "npm start") {
        // The main job, a quick recipe study: it must build, prepare the corpus, start training, and stop
        // cleanly on Ctrl-C. Its runs go to a folder of their own (AFTERSCALE_HOME), since npm runs scripts
        // in the package root.
        const r = await runBounded(
          command,
          { ...env, AFTERSCALE_HOME: join(work, "main-job") },
          STUDY_PROGRESS,
          300,
        );
        what = `started, reached "${r.progress}", Ctrl-C → checkpoint, status 130 (${r.seconds.toFixed(1)} s)`;
      } else if (sub === "train" && Number(/--steps (\d+)/.exec(command)?.[1] ?? 0) >= LONG_TRAIN_STEPS) {
        // A study-sized training run (minutes): as written, it trains, then Ctrl-C → checkpoint, 130; the
        // checkpoint it leaves is what the docs' next commands load.
        const r = await runBounded(command, env, /^step \d+\/\d+/m, 180);
        what = `as written: started, reached "${r.progress}", Ctrl-C → checkpoint, status 130 (${r.seconds.toFixed(1)} s)`;
      } else if (sub === "serve") {
        what = await runServer(command, env);
      } else if (sub === "study" && !command.includes("--dry-run")) {
        // A study is tens of minutes: as written, its plan and first run start, then Ctrl-C → checkpoint, 130.
        const r = await runBounded(
          command,
          { ...env, AFTERSCALE_HOME: join(work, "study-as-written") },
          STUDY_PROGRESS,
          300,
        );
        what = `as written: started, reached "${r.progress}", Ctrl-C → checkpoint, status 130 (${r.seconds.toFixed(1)} s)`;
      } else if (sub === "sweep" && !command.includes("--dry-run")) {
        // As written (in a root of its own): the plan, the first run's progress, Ctrl-C → checkpoint, 130.
        const bounded = await runBounded(
          command,
          { ...env, AFTERSCALE_HOME: join(work, "sweep-as-written") },
          /^step \d+\/\d+/m,
          180,
        );
        // Then a reduced sweep of the same id where the docs' next commands look for it.
        const reduced = reducedSweep(command);
        const r = await runToEnd(reduced, env);
        if (r.code !== 0) throw new Error(`the reduced sweep failed: ${reduced}\n${tail(r.output)}`);
        what =
          `as written: started, reached "${bounded.progress}", Ctrl-C → checkpoint, status 130 (${bounded.seconds.toFixed(1)} s); ` +
          `then reduced to fill its id: ${reduced} → "${/^sweep \S+: \d+ runs trained now.*$/m.exec(r.output)?.[0] ?? lastLine(r.output)}" (${r.seconds.toFixed(1)} s)`;
      } else {
        const r = await runToEnd(command, env);
        if (r.code !== 0) throw new Error(`exit ${r.code ?? r.signal}:\n${tail(r.output)}`);
        what = `exit 0 (${r.seconds.toFixed(1)} s): ${lastLine(r.output)}${note}`;
      }
      console.log(`ok   ${label}\n     ${what}`);
    } catch (e) {
      failures.push(label);
      console.log(`FAIL ${label}\n${(e as Error).message.replace(/^/gm, "     ")}`);
    }
  }
  await stopQueueBackend();
  const seconds = ((performance.now() - t0) / 1000).toFixed(0);
  if (failures.length > 0) {
    console.log(
      `${failures.length} of ${commands.length} documented commands failed (${seconds} s); ${work} is kept`,
    );
    process.exit(1);
  }
  rmSync(work, { recursive: true, force: true });
  console.log(`all ${commands.length} documented commands work (${seconds} s)`);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    for (const child of running) killGroup(child, "SIGKILL");
    process.exit(130);
  });
}
await main();
