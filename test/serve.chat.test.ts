// serve's chat endpoint speaks ChatML to a model that has the chat markers: the prompt is encodeChat's
// (ending with the generation prompt), and the answer ends at <|im_end|> with finish_reason "stop" and
// without the marker in its text. A base model keeps the plain-text template. The model is scripted
// (helpers/scripted-chat-model) to answer "Hi" and end its turn.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { CHAT_TOKENS, type ChatMessage, encodeChat, IM_END } from "../src/data/chat.js";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { CHAT_STOPS, chatPrompt, type RunningServer, renderChat, startServer } from "../src/serve/index.js";
import { scriptedChatModel } from "./helpers/scripted-chat-model.js";

const tokenizer = byteTokenizer().withAddedTokens(CHAT_TOKENS);
const end = tokenizer.specialId(IM_END);
const byte = (c: string) => c.charCodeAt(0);
const model = scriptedChatModel(
  tokenizer.vocabSize,
  new Map([
    [byte("\n"), byte("H")],
    [byte("H"), byte("i")],
    [byte("i"), end],
  ]),
);
const MODEL = "chat-test";
const messages: (ChatMessage & { role: "system" | "user" })[] = [
  { role: "system", content: "Be terse." },
  { role: "user", content: "Say hi. <|im_end|> stays text." },
];

let server: RunningServer;
let client: OpenAI;
before(async () => {
  server = await startServer({ model, tokenizer, modelId: MODEL, port: 0, maxBatch: 4, maxQueue: 4 });
  client = new OpenAI({ apiKey: "unused", baseURL: `${server.url}/v1`, maxRetries: 0, timeout: 30_000 });
});
after(() => server.close());

test("chatPrompt: ChatML through encodeChat with the chat markers, the plain template without", () => {
  const chat = chatPrompt(tokenizer, messages);
  assert.equal(chat.template, "chatml");
  assert.deepEqual(chat.ids, encodeChat(tokenizer, messages, { addGenerationPrompt: true }).ids);
  assert.deepEqual(chat.stops, []);
  assert.deepEqual(chat.stopIds, [end, tokenizer.specialId(CHAT_TOKENS[0]!)]);
  const base = byteTokenizer();
  const plain = chatPrompt(base, messages);
  assert.equal(plain.template, "plain");
  assert.deepEqual(plain.ids, base.encode(renderChat(messages)));
  assert.deepEqual(plain.stops, CHAT_STOPS);
  assert.deepEqual(plain.stopIds, []);
});

test("a chat model's answer stops at <|im_end|>, which is not in the text", async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages, temperature: 0, max_tokens: 20 });
  assert.equal(r.choices[0]!.message.content, "Hi");
  assert.equal(r.choices[0]!.finish_reason, "stop");
  const promptIds = encodeChat(tokenizer, messages, { addGenerationPrompt: true }).ids;
  assert.equal(r.usage?.prompt_tokens, promptIds.length, "the prompt is encodeChat's");
  assert.equal(r.usage?.completion_tokens, 3, "H, i and <|im_end|>");
});

test("streaming: the deltas add up to the answer, and the stream ends with stop", async () => {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages,
    temperature: 0,
    max_tokens: 20,
    stream: true,
  });
  let text = "";
  let finish: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, "Hi");
  assert.equal(finish, "stop");
});

test("ignore_eos goes on past <|im_end|> (so the stop above was the marker)", async () => {
  const params = { model: MODEL, messages, temperature: 0, max_tokens: 5, ignore_eos: true };
  const r = await client.chat.completions.create(params as OpenAI.ChatCompletionCreateParamsNonStreaming);
  assert.ok(r.choices[0]!.message.content!.startsWith(`Hi${IM_END}`), JSON.stringify(r.choices[0]!.message));
  assert.equal(r.choices[0]!.finish_reason, "length");
});
