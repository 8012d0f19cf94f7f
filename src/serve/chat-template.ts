// The default chat template for base models (which were never taught one): each message as a plain-text
// role marker on its own line, then its content; the prompt ends with the assistant marker, so the model
// continues as the assistant. Generation ends at <|endoftext|> or when the model starts another turn
// (any role marker), which is why the markers are also the stop strings.
//
//   <|system|>
//   You are terse.
//   <|user|>
//   Hello!
//   <|assistant|>
//
// Markers are encoded as ordinary text (never as special tokens), so a message cannot inject one.

export type ChatRole = "system" | "user" | "assistant" | "tool";

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

const ROLES: readonly ChatRole[] = ["system", "user", "assistant", "tool"];

export const marker = (role: ChatRole): string => `<|${role}|>`;

/** The prompt text for a conversation. */
export function renderChat(messages: readonly ChatMessage[]): string {
  let out = "";
  for (const m of messages) out += `${marker(m.role)}\n${m.content}\n`;
  return `${out}${marker("assistant")}\n`;
}

/** Stop strings of the template: a new turn, with or without the newline that should precede it. */
export const CHAT_STOPS: readonly string[] = ROLES.flatMap((r) => [`\n${marker(r)}`, marker(r)]);
