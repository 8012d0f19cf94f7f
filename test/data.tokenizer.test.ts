import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { trainBpe } from "../src/data/bpe-train.js";
import { BYTE_TO_UNICODE, preTokenize, tokenStringToBytes } from "../src/data/byte-level.js";
import { byteTokenizer, END_OF_TEXT, type Tokenizer } from "../src/data/tokenizer.js";
import { loadTokenizer, saveTokenizer, tokenizerFromJson } from "../src/data/tokenizer-json.js";

// Texts that exercise every branch of the GPT-2 split: contractions, letters, digits, punctuation runs,
// whitespace runs before words and at the end, newlines, tabs, CRLF, NBSP, accents, CJK, emoji with ZWJ.
const SAMPLES = [
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  "it's don't we'll I'M you're they've she'd",
  "  leading and   multiple   spaces  ",
  "line one\nline two\n\n\nafter blank lines\n",
  "tabs\tand\t\ttabs\r\nwindows line end",
  "numbers 0 7 42 1234567 3.14159 -12e10 1,000,000",
  "punctuation!!! ??? ... --- (parens) [brackets] {braces} \"quotes\" 'single'",
  "café naïve résumé Ångström",
  "日本語のテキストと中文字符",
  "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇳🇴",
  "non\u00a0breaking\u00a0space and zero\u200bwidth",
  "x",
  " ",
  "\n",
  "low lower lowest newest widest",
];

const TRAINING = [
  "low low low low low lower lower newest newest newest newest newest newest widest widest widest",
  ...SAMPLES,
  ...SAMPLES.map((s) => s.toUpperCase()),
  "the cat sat on the mat and the dog sat on the log; the end.",
];

function hf(tok: Tokenizer): HfTokenizer {
  return new HfTokenizer(tok.toJSON(), {});
}

test("bytes↔unicode table is GPT-2's", () => {
  assert.equal(BYTE_TO_UNICODE[32], "Ġ");
  assert.equal(BYTE_TO_UNICODE[10], "Ċ");
  assert.equal(BYTE_TO_UNICODE[65], "A");
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
  assert.deepEqual([...tokenStringToBytes("ĠhiĊ")], [32, 104, 105, 10]);
});

test("pre-tokenizer splits like GPT-2", () => {
  assert.deepEqual(preTokenize("Hello, world! it's  42"), [
    "Hello",
    ",",
    " world",
    "!",
    " it",
    "'s",
    " ",
    " 42",
  ]);
  for (const s of SAMPLES) assert.equal(preTokenize(s).join(""), s);
});

test("byte tokenizer: id = byte, round trips, specials after 256", () => {
  const tok = byteTokenizer();
  assert.equal(tok.vocabSize, 257);
  assert.equal(tok.eotId, 256);
  assert.deepEqual(tok.encode("Hi é"), [72, 105, 32, 0xc3, 0xa9]);
  for (const s of SAMPLES) assert.equal(tok.decode(tok.encode(s)), s);
  assert.deepEqual(tok.encode(`a${END_OF_TEXT}b`), [97, 256, 98], "special text is the special id");
  assert.equal(tok.encode(`a${END_OF_TEXT}b`, { allowSpecial: false }).length, 2 + END_OF_TEXT.length);
  assert.equal(tok.decode([97, 256, 98]), `a${END_OF_TEXT}b`);
});

test("BPE trainer learns the expected first merges on a tiny corpus", () => {
  const text =
    "low low low low low lower lower newest newest newest newest newest newest widest widest widest";
  const tok = trainBpe([text], { vocabSize: 257 + 6, minFrequency: 1 });
  const merges = tok.merges.map(([a, b]) => `${tok.tokenString(a)} ${tok.tokenString(b)}`);
  // e s (9, tie with s t broken by smaller ids), es t (9), l o (7, tie with o w), lo w (7),
  // then four pairs at 6: smallest ids first, Ġ n before Ġ low.
  assert.deepEqual(merges, ["e s", "es t", "l o", "lo w", "Ġ n", "Ġ low"]);
  assert.equal(tok.vocabSize, 263);
  assert.deepEqual(
    tok.encode(" lowest").map((id) => tok.tokenString(id)),
    ["Ġlow", "est"],
  );
});

test("BPE trainer is deterministic and independent of document order", () => {
  const a = trainBpe(TRAINING, { vocabSize: 400, minFrequency: 1 });
  const b = trainBpe(TRAINING, { vocabSize: 400, minFrequency: 1 });
  const c = trainBpe([...TRAINING].reverse(), { vocabSize: 400, minFrequency: 1 });
  assert.equal(a.hash, b.hash);
  assert.equal(a.hash, c.hash);
  assert.deepEqual(a.merges, c.merges);
});

test("BPE: minFrequency stops early, vocab bounds are checked", () => {
  const tok = trainBpe(["ab ab ab cd"], { vocabSize: 1000, minFrequency: 2 });
  assert.ok(tok.vocabSize < 1000);
  for (const [a, b] of tok.merges) assert.notEqual(`${tok.tokenString(a)}${tok.tokenString(b)}`, "cd");
  assert.throws(() => trainBpe(["x"], { vocabSize: 100 }), /vocabSize must be an integer from 257/);
});

test("BPE encode/decode round trips and compresses", () => {
  const tok = trainBpe(TRAINING, { vocabSize: 500, minFrequency: 1 });
  for (const s of SAMPLES) {
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), s);
    assert.ok(ids.length <= new TextEncoder().encode(s).length);
  }
  const ids = tok.encode("low lower newest");
  assert.ok(ids.length < "low lower newest".length, "merges must shorten trained words");
  assert.equal(
    tok.encode("newest newest").join(),
    tok.encode("newest newest").join(),
    "cache gives same ids",
  );
});

test("@huggingface/tokenizers loads our tokenizer.json and encodes to the same ids", () => {
  for (const tok of [byteTokenizer(), trainBpe(TRAINING, { vocabSize: 600, minFrequency: 1 })]) {
    const theirs = hf(tok);
    for (const s of SAMPLES) {
      const ids = tok.encode(s);
      assert.deepEqual(theirs.encode(s).ids, ids, `ids differ for ${JSON.stringify(s)}`);
      assert.equal(theirs.decode(ids, { clean_up_tokenization_spaces: false }), s);
    }
    const withSpecial = `first document${END_OF_TEXT}second one`;
    assert.deepEqual(theirs.encode(withSpecial).ids, tok.encode(withSpecial));
    assert.equal(theirs.token_to_id(END_OF_TEXT), tok.eotId);
  }
});

test("tokenizer.json save/load round trip keeps ids and hash", () => {
  const dir = mkdtempSync(join(tmpdir(), "afterscale-tok-"));
  try {
    const tok = trainBpe(TRAINING, {
      vocabSize: 450,
      minFrequency: 1,
      specialTokens: [END_OF_TEXT, "<|pad|>"],
    });
    const path = join(dir, "tokenizer.json");
    saveTokenizer(tok, path);
    const back = loadTokenizer(path);
    assert.equal(back.hash, tok.hash);
    assert.equal(back.vocabSize, tok.vocabSize);
    assert.equal(back.specialId("<|pad|>"), 257);
    for (const s of SAMPLES) assert.deepEqual(back.encode(s), tok.encode(s));
    // Same tokenizer written differently (merges as arrays, compact) → same canonical hash.
    const json = JSON.parse(readFileSync(path, "utf8"));
    json.model.merges = json.model.merges.map((m: string) => m.split(" "));
    assert.equal(tokenizerFromJson(json).hash, tok.hash);
    assert.match(tok.hash, /^[0-9a-f]{64}$/);
    assert.notEqual(tok.hash, byteTokenizer().hash);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("tokenizer.json errors name the problem", () => {
  const json = byteTokenizer().toJSON() as Record<string, unknown>;
  assert.throws(
    () => tokenizerFromJson({ ...json, model: { type: "WordPiece" } }),
    /model.type must be "BPE"/,
  );
  assert.throws(
    () => tokenizerFromJson({ ...json, normalizer: { type: "NFC" } }),
    /normalizers are not supported/,
  );
  const model = { ...(json.model as Record<string, unknown>), merges: ["Ġ zz"] };
  assert.throws(() => tokenizerFromJson({ ...json, model }), /merge 0 uses a token not in the vocab/);
});
