// JSONL datasets in TRL's layouts: every layout reads into its record, a bad line is an error naming the
// file, the line and the field, and the encoders' masks and completions decode to exactly the text trained
// on or scored.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { trainBpe } from "../src/data/bpe-train.js";
import { CHAT_TOKENS, type ChatMessage, encodeChat, IM_END, renderChatML } from "../src/data/chat.js";
import { END_OF_TEXT } from "../src/data/tokenizer.js";
import {
  encodePreference,
  encodeSft,
  encodeUnpaired,
  readPreferenceFile,
  readPromptFile,
  readSftFile,
  readUnpairedFile,
} from "../src/feedback/index.js";

const dir = mkdtempSync(join(tmpdir(), "afterscale-datasets-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const tok = trainBpe(["the user asks and the assistant answers: 12 + 34 = 46, hello there\n"], {
  vocabSize: 300,
  specialTokens: [END_OF_TEXT],
}).withAddedTokens(CHAT_TOKENS);

let files = 0;
/** A JSONL file of these lines (objects are serialised; strings are written as they are). */
function jsonl(name: string, lines: (object | string)[]): string {
  const path = join(dir, `${files++}-${name}`);
  writeFileSync(path, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
  return path;
}

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });
const masked = (ids: number[], mask: Uint8Array) => tok.decode(ids.filter((_, i) => mask[i] === 1));

test("SFT: every layout reads, blank lines are allowed, other fields are ignored", () => {
  const conv = { messages: [{ role: "system", content: "Be terse." }, user("12 + 34"), assistant("46")] };
  const path = jsonl("sft.jsonl", [
    { ...conv, id: 7 },
    "",
    "   ",
    { prompt: "12 + 34 =", completion: " 46" },
    { prompt: [user("hello")], completion: [assistant("hello there")] },
    { text: "the user asks" },
    "",
  ]);
  assert.deepEqual(readSftFile(path), [
    conv,
    { prompt: "12 + 34 =", completion: " 46" },
    { prompt: [user("hello")], completion: [assistant("hello there")] },
    { text: "the user asks" },
  ]);
});

test("a bad line is an error naming the file, the line and the field", () => {
  const good = { prompt: "a", chosen: "b", rejected: "c" };
  const cases: [reader: (p: string) => unknown, bad: object | string, message: RegExp][] = [
    [readPreferenceFile, { prompt: "a", chosen: "b" }, /^.*prefs\.jsonl:3: "rejected" is missing$/],
    [
      readPreferenceFile,
      { prompt: "a", chosen: "b", rejected: 3 },
      /prefs\.jsonl:3: "rejected" must be a string$/,
    ],
    [
      readPreferenceFile,
      { prompt: [user("a")], chosen: "b", rejected: "c" },
      /:3: "prompt", "chosen", "rejected" must be all strings or all message lists/,
    ],
    [
      readPreferenceFile,
      { prompt: [user("a")], chosen: [user("b")], rejected: [assistant("c")] },
      /:3: "chosen" must hold only assistant messages/,
    ],
    [
      readPreferenceFile,
      { chosen: "abc", rejected: "xyz" },
      /:3: "prompt" is missing, and "chosen" and "rejected" share no prefix/,
    ],
    [readPreferenceFile, "{not json", /prefs\.jsonl:3: not valid JSON/],
    [readPreferenceFile, "[1, 2]", /prefs\.jsonl:3: expected a JSON object/],
    [
      readSftFile,
      { messages: [{ role: "bot", content: "x" }] },
      /:3: "messages\[0\]\.role" must be one of system, user, assistant, tool/,
    ],
    [
      readSftFile,
      { messages: [user("x"), { role: "assistant", content: null }] },
      /:3: "messages\[1\]\.content" must be a string/,
    ],
    [readSftFile, { messages: [user("x")] }, /:3: "messages" has no assistant message to train on/],
    [readSftFile, { messages: [] }, /:3: "messages" must hold at least one message/],
    [readSftFile, { prompt: "x" }, /:3: "completion" is missing/],
    [readSftFile, { question: "x" }, /:3: expected "messages", or "prompt" and "completion", or "text"/],
    [readUnpairedFile, { prompt: "a", completion: "b", label: "yes" }, /:3: "label" must be true or false/],
    [readUnpairedFile, { prompt: "a", completion: "b" }, /:3: "label" is missing/],
    [readPromptFile, { prompt: [{ role: "user" }] }, /:3: "prompt\[0\]\.content" is missing/],
  ];
  for (const [reader, bad, message] of cases) {
    const goodLine =
      reader === readSftFile
        ? { messages: [user("a"), assistant("b")] }
        : reader === readUnpairedFile
          ? { prompt: "a", completion: "b", label: true }
          : good;
    const path = jsonl("prefs.jsonl", [goodLine, "", bad, goodLine]);
    assert.throws(() => reader(path), message, JSON.stringify(bad));
  }
  for (const empty of ["", "\n  \n"]) {
    const path = jsonl("empty.jsonl", [empty]);
    assert.throws(() => readSftFile(path), /empty\.jsonl: no records/);
  }
  assert.throws(() => readSftFile(join(dir, "absent.jsonl")), /absent\.jsonl: cannot read/);
});

test("preferences: explicit text and conversational forms, and TRL's implicit prompt", () => {
  const path = jsonl("prefs.jsonl", [
    { prompt: "12 + 34 =", chosen: " 46", rejected: " 47" },
    { prompt: [user("12 + 34")], chosen: [assistant("46")], rejected: [assistant("47")] },
    // Implicit prompt: the shared leading messages, and (text) the shared prefix backed off a space.
    { chosen: [user("hi"), assistant("hello there")], rejected: [user("hi"), assistant("go away")] },
    { chosen: "The sky is blue.", rejected: "The sky is green." },
  ]);
  assert.deepEqual(readPreferenceFile(path), [
    { prompt: "12 + 34 =", chosen: " 46", rejected: " 47" },
    { prompt: [user("12 + 34")], chosen: [assistant("46")], rejected: [assistant("47")] },
    { prompt: [user("hi")], chosen: [assistant("hello there")], rejected: [assistant("go away")] },
    { prompt: "The sky is", chosen: " blue.", rejected: " green." },
  ]);
  const unpaired = jsonl("kto.jsonl", [
    { prompt: "12 + 34 =", completion: " 46", label: true },
    { prompt: [user("hi")], completion: [assistant("go away")], label: false },
  ]);
  assert.deepEqual(readUnpairedFile(unpaired), [
    { prompt: "12 + 34 =", completion: " 46", label: true },
    { prompt: [user("hi")], completion: [assistant("go away")], label: false },
  ]);
  const prompts = jsonl("prompts.jsonl", [{ prompt: "12 + 34 =", answer: "46" }, { prompt: [user("hi")] }]);
  assert.deepEqual(readPromptFile(prompts), [
    { prompt: "12 + 34 =", answer: "46" },
    { prompt: [user("hi")] },
  ]);
});

test("encodeSft: the mask decodes to exactly the completion (and its end token)", () => {
  // Text: no template; special-token text in the data stays text.
  const text = encodeSft(tok, { prompt: "12 + 34 = <|im_end|>", completion: " 46, hello" });
  assert.deepEqual(text.ids, [
    ...tok.encode("12 + 34 = <|im_end|>", { allowSpecial: false }),
    ...tok.encode(" 46, hello"),
    tok.eotId,
  ]);
  assert.equal(masked(text.ids, text.mask), ` 46, hello${END_OF_TEXT}`);

  // A conversation: every assistant turn and its <|im_end|>.
  const messages = [user("12 + 34"), assistant("46"), user("hello"), assistant("hello there")];
  const conv = encodeSft(tok, { messages });
  assert.deepEqual(conv.ids, encodeChat(tok, messages).ids);
  assert.equal(masked(conv.ids, conv.mask), `46${IM_END}hello there${IM_END}`);

  // Conversational prompt-completion: only the completion's turns, not the prompt's assistant turn.
  const pc = encodeSft(tok, { prompt: messages.slice(0, 3), completion: messages.slice(3) });
  assert.deepEqual(pc.ids, conv.ids);
  assert.equal(masked(pc.ids, pc.mask), `hello there${IM_END}`);

  const plain = encodeSft(tok, { text: "the user asks" });
  assert.equal(masked(plain.ids, plain.mask), `the user asks${END_OF_TEXT}`);
});

test("encodePreference: prompt with the generation prompt; completions end with their end token", () => {
  const prompt = [{ role: "system", content: "Be terse." } as ChatMessage, user("12 + 34")];
  const e = encodePreference(tok, {
    prompt,
    chosen: [assistant("46")],
    rejected: [assistant("47"), assistant("no")],
  });
  assert.deepEqual(e.prompt, encodeChat(tok, prompt, { addGenerationPrompt: true }).ids);
  assert.equal(tok.decode(e.prompt), renderChatML(prompt, true));
  assert.equal(tok.decode(e.chosen), `46${IM_END}`);
  assert.equal(e.chosen.at(-1), tok.specialId(IM_END));
  // prompt + rejected is the ChatML conversation, up to the end token of its last turn.
  const whole = renderChatML([...prompt, assistant("47"), assistant("no")]);
  assert.equal(tok.decode([...e.prompt, ...e.rejected]), whole.slice(0, -1));

  const t = encodePreference(tok, { prompt: "12 + 34 =", chosen: " 46", rejected: " 47" });
  assert.deepEqual(t.prompt, tok.encode("12 + 34 ="));
  assert.deepEqual(t.chosen, [...tok.encode(" 46"), tok.eotId]);
  assert.equal(tok.decode(t.rejected), ` 47${END_OF_TEXT}`);

  const u = encodeUnpaired(tok, { prompt: [user("hi")], completion: [assistant("hello")], label: false });
  assert.equal(
    tok.decode([...u.prompt, ...u.completion]),
    renderChatML([user("hi"), assistant("hello")]).slice(0, -1),
  );
  assert.equal(u.label, false);
});
