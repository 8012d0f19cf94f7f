// What exports carry of afterscale's chat format, and what imports read back. A model whose tokenizer has
// the ChatML markers (it was fine-tuned to chat) is written with the template as Jinja — Hugging Face's
// tokenizer_config.json `chat_template`, GGUF's `tokenizer.chat_template` — and with <|im_end|> as an end of
// generation, so transformers' generate and llama.cpp stop where the assistant's turn ends. A base model is
// written without a template: it was never taught one.
import { CHATML_JINJA, hasChatTokens, IM_END, type Tokenizer } from "../data/index.js";

export interface ChatExport {
  /** The Jinja template. */
  template: string;
  /** The token that ends an assistant turn. */
  endToken: string;
  endId: number;
}

/** The chat template an export writes for this tokenizer, or null for a base model's. */
export function chatExport(tokenizer: Tokenizer | null): ChatExport | null {
  if (!tokenizer || !hasChatTokens(tokenizer)) return null;
  return { template: CHATML_JINJA, endToken: IM_END, endId: tokenizer.specialId(IM_END) };
}

/**
 * Notes for the user about an imported chat template: afterscale formats chats in ChatML whenever the
 * tokenizer has its markers (and in its plain-text template otherwise), whatever the file's template says.
 */
export function importedTemplateNotes(tokenizer: Tokenizer | null, template: string | null): string[] {
  if (template === null) return [];
  if (!tokenizer || !hasChatTokens(tokenizer))
    return [
      "the chat template is not used: the tokenizer lacks afterscale's ChatML markers (<|im_start|>, <|im_end|>)",
    ];
  if (template !== CHATML_JINJA)
    return ["the file's chat template differs from afterscale's ChatML; afterscale formats chats in ChatML"];
  return [];
}
