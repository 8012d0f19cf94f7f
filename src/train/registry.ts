// The run registry: every training run recorded in SQLite at <root>/registry.sqlite (config, git revision,
// machine, status, final metrics), so `afterscale runs` can list them and the scaling lab can group sweeps.
//
// A run killed with SIGKILL (or a machine that lost power) never records its end, so its row stays
// `running`. Each row therefore carries the training process's PID and host and a heartbeat the trainer
// refreshes every few seconds; reading the registry reports such a row as `interrupted` when that PID is
// gone on this host, or when a run on another host has not beaten for STALE_HEARTBEAT_SECONDS. The stored
// status is left alone (recordedStatus): resuming the run sets it again.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { cpus, hostname, platform, release } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { backend } from "../backend/index.js";
import { nativeIsa } from "../backend/native.js";

export const REGISTRY_FILE = "registry.sqlite";
export const runStatuses = ["running", "finished", "interrupted", "failed"] as const;
export type RunStatus = (typeof runStatuses)[number];

/** A `running` row from another host whose heartbeat is older than this is shown as interrupted. */
export const STALE_HEARTBEAT_SECONDS = 600;

export interface MachineInfo {
  os: string;
  cpu: string;
  cores: number;
  node: string;
  backend: string;
  isa: string | null;
  threads: number;
}

export interface RunRecord {
  id: number;
  name: string;
  createdAt: string;
  finishedAt: string | null;
  /** The run's status as it is now: a `running` row whose process is gone reads `interrupted`. */
  status: RunStatus;
  /** The status stored in the registry (differs from status only for a dead `running` row). */
  recordedStatus: RunStatus;
  /** Why a `running` row is shown as interrupted; null otherwise. */
  staleReason: string | null;
  /** The command that continues an interrupted run; null for other statuses. */
  resumeCommand: string | null;
  config: Record<string, unknown>;
  gitRevision: string | null;
  machine: MachineInfo;
  /** Final (or latest) metrics: step, loss, valLoss, tokensSeen, elapsedSeconds, tokensPerSecond … */
  metrics: Record<string, unknown> | null;
  runDir: string;
  sweepId: string | null;
  /** The training process (the latest start or resume) and its host; null in rows from older versions. */
  pid: number | null;
  host: string | null;
  /** When the training process last reported (ISO time); null in rows from older versions. */
  heartbeatAt: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  created_at TEXT NOT NULL,
  finished_at TEXT,
  status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
  config TEXT NOT NULL,
  git_revision TEXT,
  machine TEXT NOT NULL,
  metrics TEXT,
  run_dir TEXT NOT NULL UNIQUE,
  sweep_id TEXT,
  pid INTEGER,
  host TEXT,
  heartbeat_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_name ON runs (name);
CREATE INDEX IF NOT EXISTS runs_sweep ON runs (sweep_id);
`;

/** Columns added after the first release: a registry.sqlite without them gets them on open. */
const ADDED_COLUMNS: Record<string, string> = { pid: "INTEGER", host: "TEXT", heartbeat_at: "TEXT" };

interface Row {
  id: number;
  name: string;
  created_at: string;
  finished_at: string | null;
  status: RunStatus;
  config: string;
  git_revision: string | null;
  machine: string;
  metrics: string | null;
  run_dir: string;
  sweep_id: string | null;
  pid: number | null;
  host: string | null;
  heartbeat_at: string | null;
}

/** Whether a process with this PID exists on this machine (EPERM: it exists but belongs to someone else). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Why a row stored as `running` is in fact dead, or null when it may still be running. */
function staleReasonOf(r: Row, now: number): string | null {
  if (r.status !== "running") return null;
  if (r.host !== null && r.host === hostname()) {
    if (r.pid !== null && !processAlive(r.pid)) return `process ${r.pid} on ${r.host} is gone`;
    return null;
  }
  if (r.heartbeat_at === null) return null; // a row from before heartbeats: nothing to judge by
  const age = (now - Date.parse(r.heartbeat_at)) / 1000;
  if (age > STALE_HEARTBEAT_SECONDS) {
    return `no heartbeat from ${r.host ?? "its host"} for ${Math.round(age)} s (process ${r.pid ?? "?"})`;
  }
  return null;
}

/** A path as one shell word. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

/** The command a run was started by: train, or a fine-tuning objective's (sft, dpo, grpo). */
export function commandOf(config: Record<string, unknown>): string {
  return typeof config.objective === "string" && config.objective !== "pretrain" ? config.objective : "train";
}

/** The model column: "micro/llama" for a preset run; "sft of <init>" for a fine-tune. */
function modelLabel(c: Record<string, unknown>): string {
  if (typeof c.init === "string") {
    const m = (c.modelConfig ?? {}) as Record<string, unknown>;
    return `${commandOf(c)} of ${c.init.split(/[\\/]/).filter(Boolean).pop()} (${String(m.family ?? "?")})`;
  }
  return `${String(c.model ?? "?")}/${String(c.family ?? "?")}`;
}

function fromRow(r: Row, now = Date.now()): RunRecord {
  const staleReason = staleReasonOf(r, now);
  const status: RunStatus = staleReason === null ? r.status : "interrupted";
  const config = JSON.parse(r.config) as Record<string, unknown>;
  return {
    id: r.id,
    name: r.name,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    status,
    recordedStatus: r.status,
    staleReason,
    resumeCommand:
      status === "interrupted"
        ? `npx afterscale ${commandOf(config)} --resume ${shellWord(r.run_dir)}`
        : null,
    config,
    gitRevision: r.git_revision,
    machine: JSON.parse(r.machine) as MachineInfo,
    metrics: r.metrics === null ? null : (JSON.parse(r.metrics) as Record<string, unknown>),
    runDir: r.run_dir,
    sweepId: r.sweep_id,
    pid: r.pid ?? null,
    host: r.host ?? null,
    heartbeatAt: r.heartbeat_at ?? null,
  };
}

/** This machine and the active kernel backend. */
export function machineInfo(): MachineInfo {
  const b = backend();
  let isa: string | null = null;
  if (b.name === "native") {
    try {
      isa = nativeIsa();
    } catch {
      isa = null;
    }
  }
  const cpuList = cpus();
  return {
    os: `${platform()} ${release()}`,
    cpu: cpuList[0]?.model.trim() ?? "unknown",
    cores: cpuList.length,
    node: process.version,
    backend: b.name,
    isa,
    threads: b.threads(),
  };
}

let cachedRevision: string | null | undefined;

/** `git rev-parse HEAD` of the afterscale source tree, or null outside a git checkout. */
export function gitRevision(): string | null {
  if (cachedRevision !== undefined) return cachedRevision;
  try {
    const here = dirname(fileURLToPath(import.meta.url));
    const out = execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: here,
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5000,
    });
    const rev = out.toString("utf8").trim();
    cachedRevision = /^[0-9a-f]{40,64}$/.test(rev) ? rev : null;
  } catch {
    cachedRevision = null;
  }
  return cachedRevision;
}

export class Registry {
  readonly path: string;
  private readonly db: Database.Database;

  constructor(root: string) {
    mkdirSync(root, { recursive: true });
    this.path = join(root, REGISTRY_FILE);
    this.db = new Database(this.path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
    this.migrate();
  }

  /** Adds the columns a registry written by an older version lacks (their values stay null). */
  private migrate(): void {
    const have = new Set((this.db.pragma("table_info(runs)") as { name: string }[]).map((c) => c.name));
    for (const [column, type] of Object.entries(ADDED_COLUMNS)) {
      if (!have.has(column)) this.db.exec(`ALTER TABLE runs ADD COLUMN ${column} ${type}`);
    }
  }

  /**
   * Records that a run started. A run folder already registered keeps its row and id: a resumed run
   * (`resumed`) is set running again; a fresh run in the same folder also gets a new created_at and no
   * metrics. The calling process is recorded as the one training it (pid, host, heartbeat). Returns the
   * run id.
   */
  recordStart(run: {
    resumed?: boolean;
    name: string;
    runDir: string;
    config: unknown;
    sweepId?: string | null;
    machine?: MachineInfo;
    gitRevision?: string | null;
  }): number {
    const machine = JSON.stringify(run.machine ?? machineInfo());
    const rev = run.gitRevision === undefined ? gitRevision() : run.gitRevision;
    const now = new Date().toISOString();
    const existing = this.db.prepare("SELECT id FROM runs WHERE run_dir = ?").get(run.runDir) as
      | { id: number }
      | undefined;
    if (existing) {
      if (!run.resumed) {
        this.db
          .prepare("UPDATE runs SET created_at = ?, metrics = NULL, name = ?, sweep_id = ? WHERE id = ?")
          .run(now, run.name, run.sweepId ?? null, existing.id);
      }
      this.db
        .prepare(
          `UPDATE runs SET status = 'running', finished_at = NULL, config = ?, machine = ?, git_revision = ?,
           pid = ?, host = ?, heartbeat_at = ? WHERE id = ?`,
        )
        .run(JSON.stringify(run.config), machine, rev, process.pid, hostname(), now, existing.id);
      return existing.id;
    }
    const info = this.db
      .prepare(
        `INSERT INTO runs (name, created_at, status, config, git_revision, machine, run_dir, sweep_id,
           pid, host, heartbeat_at)
         VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        run.name,
        now,
        JSON.stringify(run.config),
        rev,
        machine,
        run.runDir,
        run.sweepId ?? null,
        process.pid,
        hostname(),
        now,
      );
    return Number(info.lastInsertRowid);
  }

  /** Updates the latest metrics of a running run. */
  update(id: number, metrics: Record<string, unknown>): void {
    this.db.prepare("UPDATE runs SET metrics = ? WHERE id = ?").run(JSON.stringify(metrics), id);
  }

  /** The training process is alive: refreshes the heartbeat and, when given, the latest metrics. */
  heartbeat(id: number, metrics?: Record<string, unknown>): void {
    this.db
      .prepare("UPDATE runs SET heartbeat_at = ?, metrics = COALESCE(?, metrics) WHERE id = ?")
      .run(new Date().toISOString(), metrics === undefined ? null : JSON.stringify(metrics), id);
  }

  /** Records the end of a run: finished, interrupted or failed, with its final metrics. */
  recordFinish(
    id: number,
    status: Exclude<RunStatus, "running">,
    metrics: Record<string, unknown> | null,
  ): void {
    this.db
      .prepare("UPDATE runs SET status = ?, finished_at = ?, metrics = COALESCE(?, metrics) WHERE id = ?")
      .run(status, new Date().toISOString(), metrics === null ? null : JSON.stringify(metrics), id);
  }

  /** Every run, oldest first; optionally only one sweep's, or those with one (current) status. */
  listRuns(filter: { sweepId?: string; status?: RunStatus } = {}): RunRecord[] {
    const sql = `SELECT * FROM runs ${filter.sweepId !== undefined ? "WHERE sweep_id = ?" : ""} ORDER BY id`;
    const args = filter.sweepId !== undefined ? [filter.sweepId] : [];
    const now = Date.now();
    const runs = (this.db.prepare(sql).all(...args) as Row[]).map((r) => fromRow(r, now));
    return filter.status === undefined ? runs : runs.filter((r) => r.status === filter.status);
  }

  /** The run recorded for this run folder, or null. */
  getRunByDir(runDir: string): RunRecord | null {
    const r = this.db.prepare("SELECT * FROM runs WHERE run_dir = ?").get(runDir) as Row | undefined;
    return r ? fromRow(r) : null;
  }

  /** A run by numeric id or by name (the newest run of that name); null when there is none. */
  getRun(idOrName: number | string): RunRecord | null {
    const asId = typeof idOrName === "number" ? idOrName : /^\d+$/.test(idOrName) ? Number(idOrName) : null;
    if (asId !== null) {
      const r = this.db.prepare("SELECT * FROM runs WHERE id = ?").get(asId) as Row | undefined;
      if (r) return fromRow(r);
    }
    const r = this.db
      .prepare("SELECT * FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1")
      .get(String(idOrName)) as Row | undefined;
    return r ? fromRow(r) : null;
  }

  close(): void {
    this.db.close();
  }
}

/** Opens <root>/registry.sqlite (creating it), runs fn, closes it. */
export function withRegistry<T>(root: string, fn: (r: Registry) => T): T {
  const r = new Registry(root);
  try {
    return fn(r);
  } finally {
    r.close();
  }
}

/** Runs recorded under root, oldest first ([] when there is no registry yet; nothing is created). */
export function listRuns(root: string, filter: { sweepId?: string; status?: RunStatus } = {}): RunRecord[] {
  if (!existsSync(join(root, REGISTRY_FILE))) return [];
  return withRegistry(root, (r) => r.listRuns(filter));
}

/** A run by id or name, or null (also when there is no registry yet). */
export function getRun(root: string, idOrName: number | string): RunRecord | null {
  if (!existsSync(join(root, REGISTRY_FILE))) return null;
  return withRegistry(root, (r) => r.getRun(idOrName));
}

function num(x: unknown, digits: number): string {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "-";
}

function duration(seconds: unknown): string {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "-";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The `afterscale runs` table: one line per run, columns aligned, then how to resume interrupted runs. */
export function formatRunsTable(runs: RunRecord[]): string {
  if (runs.length === 0) return "no runs recorded yet\n";
  const header = ["id", "name", "status", "model", "steps", "loss", "val loss", "tok/s", "time", "created"];
  const rows = runs.map((r) => {
    const c = r.config;
    const m = r.metrics ?? {};
    return [
      String(r.id),
      r.name,
      r.status,
      modelLabel(c),
      `${m.step ?? 0}/${c.steps ?? "?"}`,
      num(m.loss, 4),
      num(m.valLoss, 4),
      num(m.tokensPerSecond, 0),
      duration(m.elapsedSeconds),
      r.createdAt.replace("T", " ").slice(0, 19),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || (i >= 4 && i <= 8) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const resumable = runs
    .filter((r) => r.resumeCommand !== null)
    .map(
      (r) =>
        `run ${r.id} (${r.name}) ${r.staleReason ? `was killed: ${r.staleReason}` : "was interrupted"}; resume it with\n  ${r.resumeCommand}`,
    );
  return `${[line(header), ...rows.map(line)].join("\n")}\n${resumable.length ? `\n${resumable.join("\n")}\n` : ""}`;
}

/** The `afterscale runs --json` output: the records as a JSON array. */
export function formatRunsJson(runs: RunRecord[]): string {
  return `${JSON.stringify(runs, null, 2)}\n`;
}
