// Fine-tuning data in the JSONL layouts of Hugging Face TRL, one JSON object a line, and their token ids.
//
//   SFT          {"messages": [{role, content}…]}                     conversational
//                {"prompt": "…", "completion": "…"}                   standard: plain text, no template
//                {"prompt": [messages], "completion": [messages]}     conversational prompt-completion
//                {"text": "…"}                                        standard language modelling
//   preferences  {"prompt", "chosen", "rejected"}: three strings, or a message list and two lists of
//                assistant messages; or TRL's implicit prompt, {"chosen", "rejected"} as two whole
//                conversations whose shared leading messages are the prompt
//   unpaired     {"prompt", "completion", "label": true | false}: strings or message lists
//   prompts      {"prompt": "…" | [messages], …}: for RL, every other field goes to the reward function
//
// Conversations are rendered in ChatML (data/chat.ts), so they need a tokenizer with the chat markers;
// plain text is encoded with special-token text kept as text (as `prepare` does), and a completion ends
// with <|endoftext|>. Other fields on a line are ignored (TRL datasets often carry ids and metadata).
// A line that does not fit is an error naming the file, the line and the field: never a silent skip.
import { readFileSync } from "node:fs";
import { z } from "zod";
import { CHAT_ROLES, type ChatMessage, encodeChat, IM_END, IM_START } from "../data/chat.js";
import type { Tokenizer } from "../data/tokenizer.js";

export type SftRecord =
  | { messages: ChatMessage[] }
  | { prompt: string; completion: string }
  | { prompt: ChatMessage[]; completion: ChatMessage[] }
  | { text: string };

export type PreferenceRecord =
  | { prompt: string; chosen: string; rejected: string }
  | { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

export type UnpairedRecord =
  | { prompt: string; completion: string; label: boolean }
  | { prompt: ChatMessage[]; completion: ChatMessage[]; label: boolean };

/** An RL prompt and the rest of its line (what a reward function may read, e.g. an answer). */
export type PromptRecord = { prompt: string | ChatMessage[] } & Record<string, unknown>;

// ---------------------------------------------------------------- schemas

/** A zod error callback: `"field" is missing` when absent, else `"field" <what>`. */
const expect = (what: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? "is missing" : what),
});

const message = z.object({
  role: z.enum(CHAT_ROLES, expect(`must be one of ${CHAT_ROLES.join(", ")}`)),
  content: z.string(expect("must be a string")),
});
const messages = z
  .array(message, expect("must be a list of messages"))
  .min(1, "must hold at least one message");
const assistantTurns = messages.refine((ms) => ms.every((m) => m.role === "assistant"), {
  message: "must hold only assistant messages (the completion is the assistant's turn)",
});
const text = z.string(expect("must be a string"));
const label = z.boolean(expect("must be true or false"));

const conversation = z.object({ messages }).refine((r) => r.messages.some((m) => m.role === "assistant"), {
  message: "has no assistant message to train on",
  path: ["messages"],
});

/** The schemas of a layout whose fields are either all text or all conversational. */
interface Layout<T> {
  fields: string[];
  text: z.ZodType<T>;
  chat: z.ZodType<T>;
}

const sftPair: Layout<SftRecord> = {
  fields: ["prompt", "completion"],
  text: z.object({ prompt: text, completion: text }),
  chat: z.object({ prompt: messages, completion: assistantTurns }),
};
const preference: Layout<PreferenceRecord> = {
  fields: ["prompt", "chosen", "rejected"],
  text: z.object({ prompt: text, chosen: text, rejected: text }),
  chat: z.object({ prompt: messages, chosen: assistantTurns, rejected: assistantTurns }),
};
const unpaired: Layout<UnpairedRecord> = {
  fields: ["prompt", "completion"],
  text: z.object({ prompt: text, completion: text, label }),
  chat: z.object({ prompt: messages, completion: assistantTurns, label }),
};

// ---------------------------------------------------------------- readers

/** The non-blank lines of a JSONL file as objects, each with its 1-based line number. */
function readLines(path: string): { line: number; value: Record<string, unknown> }[] {
  let content: string;
  try {
    content = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  const out: { line: number; value: Record<string, unknown> }[] = [];
  content
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .forEach((raw, i) => {
      if (raw.trim() === "") return;
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (e) {
        throw new Error(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
      }
      if (value === null || typeof value !== "object" || Array.isArray(value))
        throw new Error(`${path}:${i + 1}: expected a JSON object`);
      out.push({ line: i + 1, value: value as Record<string, unknown> });
    });
  if (out.length === 0) throw new Error(`${path}: no records (the file is empty)`);
  return out;
}

/** `"messages[2].role"` for a zod path. */
function fieldName(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : `${s ? "." : ""}${String(p)}`;
  return `"${s}"`;
}

/** Validates one line against a schema; the error names file, line and field. */
function check<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new Error(`${where}: ${fieldName(issue.path)} ${issue.message}`);
}

/** A line of a layout: conversational when its first present field is a list, text otherwise. */
function checkLayout<T>(layout: Layout<T>, value: Record<string, unknown>, where: string): T {
  const present = layout.fields.filter((f) => value[f] !== undefined);
  const lists = present.filter((f) => Array.isArray(value[f]));
  if (lists.length > 0 && lists.length < present.length)
    throw new Error(
      `${where}: ${layout.fields.map((f) => `"${f}"`).join(", ")} must be all strings or all message lists`,
    );
  return check(lists.length > 0 ? layout.chat : layout.text, value, where);
}

/** A prompt (text or messages), with errors about the one form it is. */
const promptOnly = (value: Record<string, unknown>, where: string): string | ChatMessage[] =>
  check(z.object({ prompt: Array.isArray(value.prompt) ? messages : text }), value, where).prompt;

/** SFT records: conversations, prompt-completion pairs (text or messages), or plain text. */
export function readSftFile(path: string): SftRecord[] {
  return readLines(path).map(({ line, value }) => {
    const where = `${path}:${line}`;
    if ("messages" in value) return check(conversation, value, where);
    if ("prompt" in value || "completion" in value) return checkLayout(sftPair, value, where);
    if ("text" in value) return check(z.object({ text }), value, where);
    throw new Error(`${where}: expected "messages", or "prompt" and "completion", or "text"`);
  });
}

/** Preference records; TRL's implicit-prompt form is split into prompt, chosen and rejected. */
export function readPreferenceFile(path: string): PreferenceRecord[] {
  return readLines(path).map(({ line, value }) => {
    const where = `${path}:${line}`;
    if (!("prompt" in value) && "chosen" in value && "rejected" in value)
      return checkLayout(preference, implicitPrompt(value, where), where);
    return checkLayout(preference, value, where);
  });
}

/** Unpaired feedback: a prompt, one completion and whether it is good. */
export function readUnpairedFile(path: string): UnpairedRecord[] {
  return readLines(path).map(({ line, value }) => checkLayout(unpaired, value, `${path}:${line}`));
}

/** RL prompts: each line's "prompt" (text or messages) and its other fields, kept for the reward. */
export function readPromptFile(path: string): PromptRecord[] {
  return readLines(path).map(({ line, value }) => ({
    ...value,
    prompt: promptOnly(value, `${path}:${line}`),
  }));
}

/**
 * TRL's extract_prompt for the implicit form: the prompt is the longest common leading part of chosen and
 * rejected (messages for conversations, characters for text, backing off a space as TRL does).
 */
function implicitPrompt(value: Record<string, unknown>, where: string): Record<string, unknown> {
  const { chosen, rejected } = value;
  if (typeof chosen === "string" && typeof rejected === "string") {
    let i = 0;
    while (i < Math.min(chosen.length, rejected.length) && chosen[i] === rejected[i]) i++;
    if (i > 0 && chosen[i - 1] === " ") i--;
    if (i === 0)
      throw new Error(`${where}: "prompt" is missing, and "chosen" and "rejected" share no prefix`);
    return { prompt: chosen.slice(0, i), chosen: chosen.slice(i), rejected: rejected.slice(i) };
  }
  if (Array.isArray(chosen) && Array.isArray(rejected)) {
    // Validate both as conversations first, so a broken message is reported as such.
    const both = z.object({ chosen: messages, rejected: messages });
    const c = check(both, value, where);
    const same = (a: ChatMessage, b: ChatMessage) => a.role === b.role && a.content === b.content;
    let i = 0;
    while (i < Math.min(c.chosen.length, c.rejected.length) && same(c.chosen[i]!, c.rejected[i]!)) i++;
    if (i === 0)
      throw new Error(`${where}: "prompt" is missing, and "chosen" and "rejected" share no leading messages`);
    return { prompt: c.chosen.slice(0, i), chosen: c.chosen.slice(i), rejected: c.rejected.slice(i) };
  }
  throw new Error(`${where}: "chosen" and "rejected" must be both strings or both message lists`);
}

// ---------------------------------------------------------------- encoders

/** Token ids of an SFT example and its loss mask. */
export interface EncodedSft {
  ids: number[];
  /** 1 where ids[i] is trained on (predicted from the tokens before it), 0 elsewhere. */
  mask: Uint8Array;
}

const asText = (tokenizer: Tokenizer, s: string) => tokenizer.encode(s, { allowSpecial: false });

/**
 * An SFT record as ids with its mask: conversations train on the assistant's turns (encodeChat's mask:
 * content and <|im_end|>); a conversational prompt-completion on the completion's turns only; a text
 * prompt-completion is encode(prompt) + encode(completion) + <|endoftext|>, training on the last two; plain
 * text trains on every token and its <|endoftext|>.
 */
export function encodeSft(tokenizer: Tokenizer, record: SftRecord): EncodedSft {
  if ("messages" in record) {
    const e = encodeChat(tokenizer, record.messages);
    return { ids: e.ids, mask: e.assistantMask };
  }
  if ("text" in record) {
    const ids = [...asText(tokenizer, record.text), tokenizer.eotId];
    return { ids, mask: new Uint8Array(ids.length).fill(1) };
  }
  if (typeof record.prompt === "string" && typeof record.completion === "string") {
    const prompt = asText(tokenizer, record.prompt);
    const completion = [...asText(tokenizer, record.completion), tokenizer.eotId];
    return { ids: [...prompt, ...completion], mask: maskAfter(prompt.length, completion.length) };
  }
  const prompt = record.prompt as ChatMessage[];
  const completion = record.completion as ChatMessage[];
  // encodeChat encodes message by message, so the prompt's ids are a prefix of the whole conversation's.
  const head = encodeChat(tokenizer, prompt).ids.length;
  const e = encodeChat(tokenizer, [...prompt, ...completion]);
  const mask = e.assistantMask.slice();
  mask.fill(0, 0, head);
  return { ids: e.ids, mask };
}

function maskAfter(zeros: number, ones: number): Uint8Array {
  const mask = new Uint8Array(zeros + ones);
  mask.fill(1, zeros);
  return mask;
}

/** A prompt and its completions as ids, as a preference trainer scores them. */
export interface EncodedPreference {
  /** Text: encode(prompt). Conversation: ChatML ending with the generation prompt `<|im_start|>assistant\n`. */
  prompt: number[];
  /** The completion's ids, ending with its end token (<|endoftext|>, or <|im_end|> in a conversation). */
  chosen: number[];
  rejected: number[];
}

/**
 * Ids of a preference record, prompt and completions apart (as TRL tokenizes them), for the trainer to
 * join: prompt + chosen and prompt + rejected are the two sequences whose completion log-probs are compared.
 */
export function encodePreference(tokenizer: Tokenizer, record: PreferenceRecord): EncodedPreference {
  return {
    prompt: encodePrompt(tokenizer, record.prompt),
    chosen: encodeCompletion(tokenizer, record.chosen),
    rejected: encodeCompletion(tokenizer, record.rejected),
  };
}

/** Ids of an unpaired record: the prompt, the completion (as in encodePreference) and its label. */
export function encodeUnpaired(
  tokenizer: Tokenizer,
  record: UnpairedRecord,
): { prompt: number[]; completion: number[]; label: boolean } {
  return {
    prompt: encodePrompt(tokenizer, record.prompt),
    completion: encodeCompletion(tokenizer, record.completion),
    label: record.label,
  };
}

/** A prompt as the model sees it before answering: text as is, a conversation with the generation prompt. */
export function encodePrompt(tokenizer: Tokenizer, prompt: string | readonly ChatMessage[]): number[] {
  if (typeof prompt === "string") return asText(tokenizer, prompt);
  return encodeChat(tokenizer, prompt, { addGenerationPrompt: true }).ids;
}

/**
 * A completion's ids after its prompt: text and <|endoftext|>; or the assistant's turns, the first
 * continuing the generation prompt (its content, then <|im_end|>), any later one a whole ChatML turn.
 */
export function encodeCompletion(
  tokenizer: Tokenizer,
  completion: string | readonly ChatMessage[],
): number[] {
  if (typeof completion === "string") return [...asText(tokenizer, completion), tokenizer.eotId];
  const start = tokenizer.specialId(IM_START);
  const end = tokenizer.specialId(IM_END);
  const ids: number[] = [];
  completion.forEach((m, i) => {
    if (i > 0)
      ids.push(...asText(tokenizer, "\n"), start, ...asText(tokenizer, `${m.role}\n${m.content}`), end);
    else ids.push(...asText(tokenizer, m.content), end);
  });
  return ids;
}
