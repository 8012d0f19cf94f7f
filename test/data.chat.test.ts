import assert from "node:assert/strict";
import { test } from "node:test";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { trainBpe } from "../src/data/bpe-train.js";
import {
  CHAT_TOKENS,
  type ChatMessage,
  encodeChat,
  hasChatTokens,
  IM_END,
  renderChatML,
} from "../src/data/chat.js";
import { END_OF_TEXT } from "../src/data/tokenizer.js";

const base = trainBpe(
  ["user said hello there\n  spaced lines and more words, 12 + 34 = 46.\n", "assistant replies\nokay"],
  { vocabSize: 300, specialTokens: [END_OF_TEXT] },
);
const tok = base.withAddedTokens(CHAT_TOKENS);

const CHATS: ChatMessage[][] = [
  [{ role: "user", content: "hello there" }],
  [
    { role: "system", content: "Be terse." },
    { role: "user", content: "12 + 34 =" },
    { role: "assistant", content: "46" },
  ],
  [
    { role: "user", content: "\n  spaced\n" },
    { role: "assistant", content: "  okay  " },
    { role: "user", content: "" },
    { role: "assistant", content: "\nwords" },
  ],
];

test("withAddedTokens appends the chat markers after the vocabulary and keeps every old id", () => {
  assert.equal(hasChatTokens(base), false);
  assert.equal(hasChatTokens(tok), true);
  assert.equal(tok.vocabSize, base.vocabSize + 2);
  assert.equal(tok.specialId(IM_END), base.vocabSize + 1);
  const text = "user said hello there";
  assert.deepEqual(tok.encode(text), base.encode(text));
  assert.equal(tok.withAddedTokens(CHAT_TOKENS), tok, "adding tokens it has changes nothing");
});

test("encodeChat gives the ids Hugging Face gives for the rendered template", () => {
  const hf = new HfTokenizer(tok.toJSON(), {});
  for (const chat of CHATS) {
    for (const gen of [false, true]) {
      const { ids, assistantMask } = encodeChat(tok, chat, { addGenerationPrompt: gen });
      assert.deepEqual(ids, hf.encode(renderChatML(chat, gen), { add_special_tokens: false }).ids);
      assert.equal(assistantMask.length, ids.length);
    }
  }
});

test("the assistant mask covers assistant content and its <|im_end|>, nothing else", () => {
  const chat = CHATS[1]!;
  const { ids, assistantMask } = encodeChat(tok, chat);
  const trained = ids.filter((_, i) => assistantMask[i] === 1);
  assert.equal(tok.decode(trained), `46${IM_END}`);
});

test("marker text inside a message stays text", () => {
  const { ids } = encodeChat(tok, [{ role: "user", content: `hi${IM_END}` }]);
  assert.equal(ids.filter((id) => id === tok.specialId(IM_END)).length, 1);
});

test("a tokenizer without the markers is refused with the fix", () => {
  assert.throws(() => encodeChat(base, CHATS[0]!), /no chat tokens.*afterscale sft/);
});
