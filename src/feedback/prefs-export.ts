// Picks → Hugging Face TRL's preference JSONL, {"prompt", "chosen", "rejected"}, ready for `afterscale dpo`:
// strings for a plain prompt, message lists for a chat (prompt = the conversation sent, chosen and rejected =
// one assistant message each). A tie says neither side is better; it is left out unless asked for, and then
// written as both orderings, whose DPO losses together pull the two completions' implicit rewards together.
import type { ChatMessage } from "../data/chat.js";
import type { PickSide, StoredPick } from "./prefs.js";

export type PreferenceRecord =
  | { prompt: string; chosen: string; rejected: string }
  | { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

export interface PreferenceExport {
  records: PreferenceRecord[];
  /** Picks turned into records (a tie counts once, though it writes two records). */
  used: number;
  /** Ties left out (0 with includeTies). */
  skippedTies: number;
}

export function preferenceRecords(
  picks: readonly StoredPick[],
  options: { includeTies?: boolean } = {},
): PreferenceExport {
  const records: PreferenceRecord[] = [];
  let used = 0;
  let skippedTies = 0;
  for (const p of picks) {
    if (p.pick === "tie" && !options.includeTies) {
      skippedTies++;
      continue;
    }
    used++;
    if (p.pick === "b") records.push(record(p, p.b, p.a));
    else records.push(record(p, p.a, p.b));
    if (p.pick === "tie") records.push(record(p, p.b, p.a));
  }
  return { records, used, skippedTies };
}

function record(p: StoredPick, chosen: PickSide, rejected: PickSide): PreferenceRecord {
  if (p.messages === null)
    return { prompt: p.prompt, chosen: chosen.completion, rejected: rejected.completion };
  const reply = (s: PickSide): ChatMessage[] => [{ role: "assistant", content: s.completion }];
  return { prompt: p.messages, chosen: reply(chosen), rejected: reply(rejected) };
}

/** One JSON object per line, each line ending in a newline. */
export function toJsonl(records: readonly PreferenceRecord[]): string {
  return records.map((r) => `${JSON.stringify(r)}\n`).join("");
}

/** How one setup (a model with its sampling settings, seed aside) fared against the others. */
export interface SourceStats {
  model: string;
  temperature: number;
  topP: number;
  maxTokens: number;
  won: number;
  lost: number;
  tied: number;
}

export interface PrefsStats {
  total: number;
  ties: number;
  /** Picks of whichever was shown on side A / side B: far apart, the person favours a position. */
  pickedA: number;
  pickedB: number;
  chat: number;
  sources: SourceStats[];
}

export function prefsStats(picks: readonly StoredPick[]): PrefsStats {
  const sources = new Map<string, SourceStats>();
  const source = (s: PickSide): SourceStats => {
    const { temperature, topP, maxTokens } = s.settings;
    const key = JSON.stringify([s.model, temperature, topP, maxTokens]);
    let out = sources.get(key);
    if (!out) {
      out = { model: s.model, temperature, topP, maxTokens, won: 0, lost: 0, tied: 0 };
      sources.set(key, out);
    }
    return out;
  };
  const stats: PrefsStats = { total: picks.length, ties: 0, pickedA: 0, pickedB: 0, chat: 0, sources: [] };
  for (const p of picks) {
    const a = source(p.a);
    const b = source(p.b);
    if (p.messages !== null) stats.chat++;
    if (p.pick === "tie") {
      stats.ties++;
      a.tied++;
      b.tied++;
    } else if (p.pick === "a") {
      stats.pickedA++;
      a.won++;
      b.lost++;
    } else {
      stats.pickedB++;
      b.won++;
      a.lost++;
    }
  }
  stats.sources = [...sources.values()];
  return stats;
}
