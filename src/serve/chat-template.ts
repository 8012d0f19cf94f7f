// How /v1/chat/completions turns messages into a prompt, and where the answer ends.
//
// A model fine-tuned to chat (its tokenizer has the ChatML markers, see data/chat.ts) is prompted in ChatML
// through encodeChat, ending with the generation prompt `<|im_start|>assistant\n`; its answer ends at the
// <|im_end|> token (or at <|im_start|>, a new turn), which is not part of the returned text — as
// transformers and llama.cpp format the same model with its exported template.
//
// A base model (never taught a chat format) gets a plain-text template: each message as a role marker on
// its own line, then its content; the prompt ends with the assistant marker, so the model continues as the
// assistant. Generation ends at <|endoftext|> or when the model starts another turn (any role marker),
// which is why the markers are also the stop strings.
//
//   <|system|>
//   You are terse.
//   <|user|>
//   Hello!
//   <|assistant|>
//
// Either way a message cannot inject a turn: plain-text markers are encoded as ordinary text (never as
// special tokens), and ChatML content keeps special-token text as text.
import {
  CHAT_ROLES,
  type ChatMessage,
  type ChatRole,
  encodeChat,
  hasChatTokens,
  IM_END,
  IM_START,
} from "../data/chat.js";
import type { Tokenizer } from "../data/tokenizer.js";

export type { ChatMessage, ChatRole };

export const marker = (role: ChatRole): string => `<|${role}|>`;

/** The plain-text template's prompt for a conversation (base models). */
export function renderChat(messages: readonly ChatMessage[]): string {
  let out = "";
  for (const m of messages) out += `${marker(m.role)}\n${m.content}\n`;
  return `${out}${marker("assistant")}\n`;
}

/** Stop strings of the plain-text template: a new turn, with or without the newline that should precede it. */
export const CHAT_STOPS: readonly string[] = CHAT_ROLES.flatMap((r) => [`\n${marker(r)}`, marker(r)]);

export interface ChatPrompt {
  /** "chatml" for a model with the chat markers, "plain" otherwise. */
  template: "chatml" | "plain";
  ids: number[];
  /** Stop strings the template adds. */
  stops: readonly string[];
  /** Tokens that end the answer (not part of its text). */
  stopIds: readonly number[];
}

/** The prompt for a conversation, in the template this tokenizer's model understands. */
export function chatPrompt(tokenizer: Tokenizer, messages: readonly ChatMessage[]): ChatPrompt {
  if (hasChatTokens(tokenizer)) {
    return {
      template: "chatml",
      ids: encodeChat(tokenizer, messages, { addGenerationPrompt: true }).ids,
      stops: [],
      stopIds: [tokenizer.specialId(IM_END), tokenizer.specialId(IM_START)],
    };
  }
  return { template: "plain", ids: tokenizer.encode(renderChat(messages)), stops: CHAT_STOPS, stopIds: [] };
}
