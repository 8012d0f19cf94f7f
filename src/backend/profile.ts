// AFTERSCALE_PROFILE=1: time every kernel call, grouped by kernel and by phase (forward, backward,
// optimizer), and print the table when the process exits — so optimisations are chosen from data.
import type { Backend } from "./backend.js";

export type Phase = "forward" | "backward" | "optimizer";

let phase: Phase = "forward";
const totals = new Map<string, { ms: number; calls: number }>();
let enabled = false;

/** Runs fn with kernel time attributed to `p` (no-op cost when profiling is off). */
export function inPhase<T>(p: Phase, fn: () => T): T {
  const prev = phase;
  phase = p;
  try {
    return fn();
  } finally {
    phase = prev;
  }
}

export function profilingEnabled(): boolean {
  return enabled;
}

/** Wraps every kernel of a backend with a timer. */
export function profiled(b: Backend): Backend {
  enabled = true;
  const wrapped: Record<string, unknown> = {};
  const keys = new Set<string>();
  for (let o: object | null = b; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) if (k !== "constructor") keys.add(k);
  }
  for (const key of keys as Set<keyof Backend>) {
    const f = b[key];
    if (typeof f !== "function" || key === "threads") {
      wrapped[key] = f;
      continue;
    }
    wrapped[key] = (...args: unknown[]) => {
      const t0 = performance.now();
      const r = (f as (...a: unknown[]) => unknown).apply(b, args);
      const id = `${phase}\t${key}`;
      const e = totals.get(id) ?? { ms: 0, calls: 0 };
      e.ms += performance.now() - t0;
      e.calls++;
      totals.set(id, e);
      return r;
    };
  }
  process.once("exit", () => process.stderr.write(profileReport()));
  return wrapped as unknown as Backend;
}

export function resetProfile(): void {
  totals.clear();
}

/** The profile so far as a table: per phase, then per kernel, with share of total time. */
export function profileReport(): string {
  const rows = [...totals.entries()].map(([id, v]) => {
    const [p, k] = id.split("\t") as [string, string];
    return { phase: p, kernel: k, ...v };
  });
  const total = rows.reduce((s, r) => s + r.ms, 0) || 1;
  const lines = [
    "",
    "afterscale profile (kernel time)",
    "phase      kernel                  calls      ms   share",
  ];
  for (const p of ["forward", "backward", "optimizer"]) {
    const mine = rows.filter((r) => r.phase === p).sort((a, b) => b.ms - a.ms);
    const sub = mine.reduce((s, r) => s + r.ms, 0);
    if (mine.length === 0) continue;
    lines.push(
      `${p.padEnd(10)} ${"(all)".padEnd(22)} ${"".padStart(6)} ${sub.toFixed(1).padStart(8)} ${((100 * sub) / total).toFixed(1).padStart(6)}%`,
    );
    for (const r of mine) {
      lines.push(
        `${"".padEnd(10)} ${r.kernel.padEnd(22)} ${String(r.calls).padStart(6)} ${r.ms.toFixed(1).padStart(8)} ${((100 * r.ms) / total).toFixed(1).padStart(6)}%`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}
