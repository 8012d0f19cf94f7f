// afterscale's chat format: ChatML, the template of Qwen and many small chat models, which Hugging Face
// (tokenizer_config.json `chat_template`) and llama.cpp (GGUF `tokenizer.chat_template`, detected as
// "chatml") both format the same way. Each message is
//
//   <|im_start|>{role}\n{content}<|im_end|>\n
//
// and a prompt for the model ends with `<|im_start|>assistant\n`; the model ends its turn with <|im_end|>.
// The two markers are special tokens (a tokenizer gains them with withAddedTokens, no retraining). Message
// content is encoded with special tokens kept as text, so a message cannot forge a turn.
import { END_OF_TEXT, type Tokenizer } from "./tokenizer.js";

export type ChatRole = "system" | "user" | "assistant" | "tool";
export const CHAT_ROLES: readonly ChatRole[] = ["system", "user", "assistant", "tool"];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export const IM_START = "<|im_start|>";
export const IM_END = "<|im_end|>";
export const CHAT_TOKENS: readonly string[] = [IM_START, IM_END];

/** The same template in Jinja, as Hugging Face's apply_chat_template and llama.cpp read it. */
export const CHATML_JINJA =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** True when the tokenizer has both chat markers, i.e. the model can be prompted in ChatML. */
export function hasChatTokens(tokenizer: Tokenizer): boolean {
  return CHAT_TOKENS.every((t) => tokenizer.hasSpecial(t));
}

/** The conversation as text (what the Jinja template renders). */
export function renderChatML(messages: readonly ChatMessage[], addGenerationPrompt = false): string {
  let out = "";
  for (const m of messages) out += `${IM_START}${m.role}\n${m.content}${IM_END}\n`;
  return addGenerationPrompt ? `${out}${IM_START}assistant\n` : out;
}

export interface EncodedChat {
  ids: number[];
  /**
   * 1 where the token is trained on in supervised fine-tuning: the content of assistant messages and the
   * <|im_end|> that closes each (so the model learns to stop), 0 elsewhere (markers, roles, other turns).
   */
  assistantMask: Uint8Array;
}

/**
 * Token ids of a conversation in ChatML, with the assistant mask: exactly tokenizer.encode(renderChatML(…))
 * — the text between two markers is encoded as one piece, as Hugging Face and llama.cpp encode it — except
 * that marker text inside a message stays text. A token that straddles the start of an assistant message
 * ("\n" joined to leading spaces) counts as prompt.
 */
export function encodeChat(
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  options: { addGenerationPrompt?: boolean } = {},
): EncodedChat {
  if (!hasChatTokens(tokenizer)) {
    throw new Error(
      `the tokenizer has no chat tokens (${CHAT_TOKENS.join(", ")}); fine-tune the model with \`afterscale sft\`, which adds them`,
    );
  }
  const start = tokenizer.specialId(IM_START);
  const end = tokenizer.specialId(IM_END);
  const ids: number[] = [];
  const mask: number[] = [];
  /** Encodes `head + body` as one piece; tokens that begin at or after body's first byte get `trained`. */
  const pushText = (head: string, body: string, trained: boolean) => {
    const headBytes = utf8.encode(head).length;
    let at = 0;
    for (const id of tokenizer.encode(head + body, { allowSpecial: false })) {
      ids.push(id);
      mask.push(trained && at >= headBytes ? 1 : 0);
      at += tokenizer.bytesOf(id)?.length ?? 0;
    }
  };
  for (const m of messages) {
    const assistant = m.role === "assistant";
    ids.push(start);
    mask.push(0);
    pushText(`${m.role}\n`, m.content, assistant);
    ids.push(end);
    mask.push(assistant ? 1 : 0);
    pushText("", "\n", false);
  }
  if (options.addGenerationPrompt) {
    ids.push(start);
    mask.push(0);
    pushText("assistant\n", "", false);
  }
  return { ids, assistantMask: Uint8Array.from(mask) };
}

const utf8 = new TextEncoder();

/** The token ids that end a chat turn (<|im_end|>) or a text (<|endoftext|>), those the tokenizer has. */
export function chatStopIds(tokenizer: Tokenizer): Set<number> {
  const stops = new Set<number>();
  for (const t of [IM_END, END_OF_TEXT]) if (tokenizer.hasSpecial(t)) stops.add(tokenizer.specialId(t));
  return stops;
}
