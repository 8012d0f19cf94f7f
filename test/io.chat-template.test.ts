// Exports carry the chat template: a chat model (tokenizer with the ChatML markers) is written with
// CHATML_JINJA and <|im_end|> as an end of generation in Hugging Face's tokenizer_config.json /
// generation_config.json and in GGUF's tokenizer metadata, and the importers read the template back; a base
// model is written without one. Hugging Face's Jinja engine (@huggingface/jinja, present when node-llama-cpp
// is installed) renders the exported template to exactly renderChatML's text.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CHAT_TOKENS, CHATML_JINJA, type ChatMessage, IM_END, renderChatML } from "../src/data/chat.js";
import { END_OF_TEXT } from "../src/data/tokenizer.js";
import { decodeGguf } from "../src/io/gguf.js";
import { ggufToModel, modelToGguf } from "../src/io/gguf-model.js";
import { exportHf, importHf } from "../src/io/hf.js";
import { resizeVocabulary } from "../src/nn/index.js";
import { ioModel, ioTokenizer } from "./helpers/io-models.js";

const dir = mkdtempSync(join(tmpdir(), "afterscale-chat-io-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = ioTokenizer();
const chat = base.withAddedTokens(CHAT_TOKENS);
const baseModel = ioModel("llama", base.vocabSize, false);
const chatModel = resizeVocabulary(baseModel, chat.vocabSize);
const imEnd = chat.specialId(IM_END);
const eot = chat.specialId(END_OF_TEXT);

const readJson = (path: string) => JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;

test("HF export of a chat model writes the template and <|im_end|> as an end of generation", () => {
  const out = join(dir, "hf-chat");
  exportHf(chatModel, chat, out);
  const tc = readJson(join(out, "tokenizer_config.json"));
  assert.equal(tc.chat_template, CHATML_JINJA);
  assert.equal(tc.eos_token, IM_END);
  assert.deepEqual(readJson(join(out, "generation_config.json")).eos_token_id, [imEnd, eot]);
  const back = importHf(out);
  assert.equal(back.chatTemplate, CHATML_JINJA);
  assert.equal(back.tokenizer?.vocabSize, chat.vocabSize);
  assert.deepEqual(back.notes, []);
});

test("HF export of a base model writes no template; an imported foreign template is noted", () => {
  const out = join(dir, "hf-base");
  exportHf(baseModel, base, out);
  const tc = readJson(join(out, "tokenizer_config.json"));
  assert.equal("chat_template" in tc, false);
  assert.equal(tc.eos_token, END_OF_TEXT);
  assert.equal(readJson(join(out, "generation_config.json")).eos_token_id, eot);
  const back = importHf(out);
  assert.equal(back.chatTemplate, null);
  assert.deepEqual(back.notes, []);
  // A template afterscale would not use is read, and the user told.
  const foreign = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
  writeFileSync(join(out, "tokenizer_config.json"), JSON.stringify({ ...tc, chat_template: foreign }));
  const withTemplate = importHf(out);
  assert.equal(withTemplate.chatTemplate, foreign);
  assert.match(withTemplate.notes.join("\n"), /chat template is not used: the tokenizer lacks/);
  const chatOut = join(dir, "hf-chat-foreign");
  exportHf(chatModel, chat, chatOut);
  const chatTc = readJson(join(chatOut, "tokenizer_config.json"));
  writeFileSync(
    join(chatOut, "tokenizer_config.json"),
    JSON.stringify({ ...chatTc, chat_template: [{ name: "default", template: foreign }] }),
  );
  const chatForeign = importHf(chatOut);
  assert.equal(chatForeign.chatTemplate, foreign);
  assert.match(chatForeign.notes.join("\n"), /differs from afterscale's ChatML/);
});

test("GGUF export of a chat model writes tokenizer.chat_template and eot_token_id; import reads them", () => {
  const bytes = modelToGguf(chatModel, chat, { dtype: "f32" });
  const meta = decodeGguf(bytes).metadata;
  assert.deepEqual(meta.get("tokenizer.chat_template"), { type: "string", value: CHATML_JINJA });
  assert.deepEqual(meta.get("tokenizer.ggml.eot_token_id"), { type: "u32", value: imEnd });
  assert.deepEqual(meta.get("tokenizer.ggml.eos_token_id"), { type: "u32", value: eot });
  const back = ggufToModel(bytes);
  assert.equal(back.chatTemplate, CHATML_JINJA);
  assert.deepEqual(back.notes, []);

  const plain = decodeGguf(modelToGguf(baseModel, base, { dtype: "f32" })).metadata;
  assert.equal(plain.has("tokenizer.chat_template"), false);
  assert.equal(plain.has("tokenizer.ggml.eot_token_id"), false);
  assert.equal(ggufToModel(modelToGguf(baseModel, base, { dtype: "f32" })).chatTemplate, null);
});

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const jinjaAvailable = existsSync(join(repoRoot, "node_modules", "@huggingface", "jinja"));

test("Hugging Face's Jinja engine renders the exported template as renderChatML", {
  skip: jinjaAvailable ? false : "@huggingface/jinja is not installed (node-llama-cpp brings it)",
}, async () => {
  const name = "@huggingface/jinja"; // a variable: it is not a declared dependency
  const { Template } = (await import(name)) as {
    Template: new (src: string) => { render(ctx: Record<string, unknown>): string };
  };
  const out = join(dir, "hf-jinja");
  exportHf(chatModel, chat, out);
  const template = new Template(readJson(join(out, "tokenizer_config.json")).chat_template as string);
  const chats: ChatMessage[][] = [
    [{ role: "user", content: "hi" }],
    [
      { role: "system", content: "Be terse.\nVery." },
      { role: "user", content: "12 + 34 = ?" },
      { role: "assistant", content: " 46 " },
      { role: "user", content: "<|im_end|> is text here, {{ not jinja }}" },
    ],
  ];
  for (const messages of chats) {
    for (const gen of [false, true]) {
      const text = template.render({ messages, add_generation_prompt: gen, eos_token: IM_END });
      assert.equal(text, renderChatML(messages, gen));
    }
  }
});
