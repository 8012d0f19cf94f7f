// Preferences picked by a person on serve's compare page, kept in SQLite (default <runs root>/prefs.sqlite):
// one row per pick with the prompt (and the messages of a chat), both completions, the model and sampling
// settings behind each, which setup was shown on side A, the pick and the time. WAL mode lets
// `afterscale prefs export` read while the server writes. Opening never drops or rewrites earlier rows: a
// file that is not a prefs store, or is one of a newer layout, is refused.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import type { ChatMessage } from "../data/chat.js";

export const PREFS_FILE = "prefs.sqlite";
export const PICK_CHOICES = ["a", "b", "tie"] as const;
export type PickChoice = (typeof PICK_CHOICES)[number];

/** The layout written here; a file with a larger user_version was written by a newer afterscale. */
const VERSION = 1;

/** The sampling settings one side was generated with (the seed actually used, so it can be reproduced). */
export interface SamplingSettings {
  temperature: number;
  topP: number;
  seed: number;
  maxTokens: number;
}

export interface PickSide {
  /** The served model id. */
  model: string;
  settings: SamplingSettings;
  completion: string;
}

export interface NewPick {
  /** The text the person typed. */
  prompt: string;
  /** For a chat comparison, the conversation sent (ending with the prompt as a user message); else null. */
  messages: ChatMessage[] | null;
  a: PickSide;
  b: PickSide;
  /** Which of the page's two setups was shown on side A (the other was on B): the per-prompt coin flip. */
  aSetup: 1 | 2;
  pick: PickChoice;
}

export interface StoredPick extends NewPick {
  id: number;
  /** ISO time of the pick. */
  createdAt: string;
}

export interface PickCounts {
  total: number;
  a: number;
  b: number;
  tie: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS picks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at TEXT NOT NULL,
  prompt TEXT NOT NULL,
  messages TEXT,
  a_model TEXT NOT NULL,
  a_settings TEXT NOT NULL,
  a_completion TEXT NOT NULL,
  b_model TEXT NOT NULL,
  b_settings TEXT NOT NULL,
  b_completion TEXT NOT NULL,
  a_setup INTEGER NOT NULL CHECK (a_setup IN (1, 2)),
  pick TEXT NOT NULL CHECK (pick IN ('a', 'b', 'tie'))
);
`;

interface Row {
  id: number;
  created_at: string;
  prompt: string;
  messages: string | null;
  a_model: string;
  a_settings: string;
  a_completion: string;
  b_model: string;
  b_settings: string;
  b_completion: string;
  a_setup: 1 | 2;
  pick: PickChoice;
}

const COLUMNS = [
  "id",
  "created_at",
  "prompt",
  "messages",
  "a_model",
  "a_settings",
  "a_completion",
  "b_model",
  "b_settings",
  "b_completion",
  "a_setup",
  "pick",
];

export class PrefsStore {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {}

  /**
   * Opens (creating it and its folder unless readonly) the store at `path`. Throws, naming the file, when
   * it is not a prefs store or was written by a newer version.
   */
  static open(path: string, options: { readonly?: boolean } = {}): PrefsStore {
    const readonly = options.readonly ?? false;
    if (readonly && !existsSync(path)) throw new Error(`${path}: no such preferences file`);
    if (!readonly) mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(path, { readonly, fileMustExist: readonly });
    } catch (e) {
      throw new Error(`${path}: cannot open the preferences file: ${(e as Error).message}`);
    }
    try {
      check(db, path, readonly);
      if (!readonly) {
        db.pragma("journal_mode = WAL");
        db.exec(SCHEMA);
        db.pragma(`user_version = ${VERSION}`);
      }
      db.pragma("busy_timeout = 5000");
      return new PrefsStore(db, path);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** The default location: prefs.sqlite in the runs root. */
  static defaultPath(root: string): string {
    return join(root, PREFS_FILE);
  }

  add(p: NewPick, at: Date = new Date()): StoredPick {
    const createdAt = at.toISOString();
    const r = this.db
      .prepare(
        `INSERT INTO picks (created_at, prompt, messages, a_model, a_settings, a_completion,
           b_model, b_settings, b_completion, a_setup, pick) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        createdAt,
        p.prompt,
        p.messages === null ? null : JSON.stringify(p.messages),
        p.a.model,
        JSON.stringify(p.a.settings),
        p.a.completion,
        p.b.model,
        JSON.stringify(p.b.settings),
        p.b.completion,
        p.aSetup,
        p.pick,
      );
    return { ...p, id: Number(r.lastInsertRowid), createdAt };
  }

  /** Removes the newest pick and returns it (null when there is none): the page's Undo. */
  removeLast(): StoredPick | null {
    return this.db.transaction(() => {
      const row = this.db.prepare("SELECT * FROM picks ORDER BY id DESC LIMIT 1").get() as Row | undefined;
      if (!row) return null;
      this.db.prepare("DELETE FROM picks WHERE id = ?").run(row.id);
      return fromRow(row);
    })();
  }

  /** The newest `limit` picks, newest first. */
  recent(limit: number): StoredPick[] {
    const rows = this.db.prepare("SELECT * FROM picks ORDER BY id DESC LIMIT ?").all(limit) as Row[];
    return rows.map(fromRow);
  }

  /** Every pick, oldest first. */
  all(): StoredPick[] {
    return (this.db.prepare("SELECT * FROM picks ORDER BY id").all() as Row[]).map(fromRow);
  }

  counts(): PickCounts {
    const rows = this.db.prepare("SELECT pick, COUNT(*) AS n FROM picks GROUP BY pick").all() as {
      pick: PickChoice;
      n: number;
    }[];
    const counts: PickCounts = { total: 0, a: 0, b: 0, tie: 0 };
    for (const { pick, n } of rows) {
      counts[pick] = n;
      counts.total += n;
    }
    return counts;
  }

  close(): void {
    this.db.close();
  }
}

/** Refuses a file that is some other database, or a prefs store of a newer layout. */
function check(db: Database.Database, path: string, readonly: boolean): void {
  let tables: string[];
  try {
    tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[])
      .map((t) => t.name)
      .filter((n) => !n.startsWith("sqlite_"));
  } catch (e) {
    throw new Error(`${path}: not a preferences file (${(e as Error).message})`);
  }
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > VERSION)
    throw new Error(
      `${path}: preferences file of layout ${version}, newer than this afterscale reads (${VERSION})`,
    );
  if (!tables.includes("picks")) {
    if (tables.length > 0)
      throw new Error(`${path}: not a preferences file (it has tables ${tables.join(", ")} but no picks)`);
    if (readonly) throw new Error(`${path}: not a preferences file (it has no picks table)`);
    return;
  }
  const have = new Set(
    (db.prepare("SELECT name FROM pragma_table_info('picks')").all() as { name: string }[]).map(
      (c) => c.name,
    ),
  );
  const missing = COLUMNS.filter((c) => !have.has(c));
  if (missing.length > 0)
    throw new Error(`${path}: its picks table lacks column(s) ${missing.join(", ")}; not a preferences file`);
}

function fromRow(r: Row): StoredPick {
  return {
    id: r.id,
    createdAt: r.created_at,
    prompt: r.prompt,
    messages: r.messages === null ? null : (JSON.parse(r.messages) as ChatMessage[]),
    a: {
      model: r.a_model,
      settings: JSON.parse(r.a_settings) as SamplingSettings,
      completion: r.a_completion,
    },
    b: {
      model: r.b_model,
      settings: JSON.parse(r.b_settings) as SamplingSettings,
      completion: r.b_completion,
    },
    aSetup: r.a_setup,
    pick: r.pick,
  };
}
