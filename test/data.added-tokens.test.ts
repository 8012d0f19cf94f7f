import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { trainBpe } from "../src/data/bpe-train.js";
import { byteTokenizer, END_OF_TEXT, type Tokenizer } from "../src/data/tokenizer.js";
import { tokenizerFromJson } from "../src/data/tokenizer-json.js";

const EOT = END_OF_TEXT;
const PAD = "<|pad|>";

// <|endoftext|> at the start, the end, twice in a row, touching words, spaces, newlines, punctuation,
// digits and multi-byte characters, half-written, and inside angle brackets.
const TEXTS = [
  EOT,
  `${EOT}${EOT}`,
  `first document${EOT}second one`,
  `first document ${EOT} second one`,
  `first document\n${EOT}\nsecond one`,
  `first document\n\n${EOT}\n\n`,
  ` ${EOT}`,
  `${EOT} `,
  `  ${EOT}  `,
  `${EOT}The`,
  `The${EOT}`,
  `it's${EOT}'s`,
  `42${EOT}43`,
  `end.${EOT}.start`,
  `a${EOT}b${EOT}c`,
  `é${EOT}😀${EOT}日本`,
  `\t${EOT}\r\n`,
  `<${EOT}>`,
  `<|endoftext|`,
  `|endoftext|>`,
  `<|endoftext|> <|endoftext| <|endoftext|>`,
  `${PAD}${EOT}${PAD}`,
  `padded ${PAD} text`,
  "no special token at all",
];

const TRAINING = [
  "the cat sat on the mat and the dog sat on the log; the end.",
  "first document second one, and a third document with more words in it.",
  ...TEXTS.map((t) => t.replaceAll(EOT, " ").replaceAll(PAD, " ")),
];

function tokenizers(): [string, Tokenizer][] {
  return [
    ["byte-level", byteTokenizer([EOT, PAD])],
    ["trained BPE", trainBpe(TRAINING, { vocabSize: 400, minFrequency: 1, specialTokens: [EOT, PAD] })],
  ];
}

test("added tokens in the text encode to their ids exactly as @huggingface/tokenizers does", () => {
  for (const [name, tok] of tokenizers()) {
    const theirs = new HfTokenizer(tok.toJSON(), {});
    for (const text of TEXTS) {
      const ids = tok.encode(text);
      assert.deepEqual(ids, theirs.encode(text).ids, `${name}: ids differ for ${JSON.stringify(text)}`);
      const separators = text.split(EOT).length - 1;
      assert.equal(
        ids.filter((id) => id === tok.eotId).length,
        separators,
        `${name}: ${JSON.stringify(text)}`,
      );
    }
  }
});

test("decode matches @huggingface/tokenizers: special tokens as text by default, or skipped", () => {
  for (const [name, tok] of tokenizers()) {
    const theirs = new HfTokenizer(tok.toJSON(), {});
    const options = { clean_up_tokenization_spaces: false };
    for (const text of TEXTS) {
      const ids = tok.encode(text);
      assert.equal(tok.decode(ids), text, `${name}: round trip of ${JSON.stringify(text)}`);
      assert.equal(tok.decode(ids), theirs.decode(ids, options), `${name}: ${JSON.stringify(text)}`);
      assert.equal(
        tok.decode(ids, { skipSpecial: true }),
        theirs.decode(ids, { ...options, skip_special_tokens: true }),
        `${name}: skipping specials in ${JSON.stringify(text)}`,
      );
      assert.equal(tok.decode(ids, { skipSpecial: true }), text.replaceAll(EOT, "").replaceAll(PAD, ""));
    }
    if (name === "byte-level") {
      // A special token between the two bytes of "é": each side decodes to U+FFFD.
      const ids = [0xc3, tok.eotId, 0xa9];
      assert.equal(tok.decode(ids), theirs.decode(ids, options));
      assert.equal(tok.decode(ids), `\ufffd${EOT}\ufffd`);
    }
  }
});

test("allowSpecial false keeps special-token text as ordinary text", () => {
  for (const [name, tok] of tokenizers()) {
    // The same tokenizer without added tokens is what Hugging Face's encode_special_tokens does here.
    const withoutAdded = new HfTokenizer({ ...tok.toJSON(), added_tokens: [] }, {});
    for (const text of TEXTS) {
      const asText = tok.encode(text, { allowSpecial: false });
      assert.deepEqual(asText, withoutAdded.encode(text).ids, `${name}: ${JSON.stringify(text)}`);
      assert.ok(!asText.includes(tok.eotId) && !asText.includes(tok.specialId(PAD)), name);
      assert.equal(tok.decode(asText), text);
    }
  }
});

interface FixtureCase {
  text: string;
  ids: number[];
  idsSpecialAsText: number[];
  decoded: string;
  decodedSkipSpecial: string;
}

test("every added-token flag behaves as in Hugging Face's Rust tokenizers (committed fixture)", () => {
  const path = new URL("../../test/fixtures/tokenizer/added-tokens.json", import.meta.url);
  const fixture = JSON.parse(readFileSync(path, "utf8")) as { tokenizer: object; cases: FixtureCase[] };
  const tok = tokenizerFromJson(fixture.tokenizer, "added-tokens fixture");
  const flags = tok.specialTokens.map((t) => [t.content, t.special, t.singleWord, t.lstrip, t.rstrip]);
  assert.deepEqual(flags.slice(1, 5), [
    [PAD, true, false, true, true],
    ["<w>", true, true, false, false],
    ["<l>", true, false, true, false],
    ["<r>", false, false, false, true],
  ]);
  assert.ok(fixture.cases.length >= 30);
  for (const c of fixture.cases) {
    const what = JSON.stringify(c.text);
    assert.deepEqual(tok.encode(c.text), c.ids, `ids of ${what}`);
    assert.deepEqual(tok.encode(c.text, { allowSpecial: false }), c.idsSpecialAsText, `as text: ${what}`);
    assert.equal(tok.decode(c.ids), c.decoded, `decode of ${what}`);
    assert.equal(tok.decode(c.ids, { skipSpecial: true }), c.decodedSkipSpecial, `skipping: ${what}`);
  }
  // The written tokenizer.json keeps every flag.
  assert.deepEqual(
    (tok.toJSON() as { added_tokens: unknown[] }).added_tokens,
    (fixture.tokenizer as { added_tokens: unknown[] }).added_tokens,
  );
});

test("added_tokens flags: Hugging Face's defaults when absent, clear errors when malformed", () => {
  const json = byteTokenizer().toJSON() as { added_tokens: Record<string, unknown>[] };
  const bare = { ...json, added_tokens: [{ id: 256, content: EOT }] };
  const tok = tokenizerFromJson(bare);
  assert.deepEqual(tok.specialTokens[0], {
    content: EOT,
    id: 256,
    special: false,
    singleWord: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
  });
  assert.deepEqual(tok.encode(`a${EOT}`, { allowSpecial: false }), [97, 256], "not special: always matched");
  const bad = { ...json, added_tokens: [{ ...json.added_tokens[0], lstrip: "yes" }] };
  assert.throws(
    () => tokenizerFromJson(bad, "my/tokenizer.json"),
    /my\/tokenizer\.json: added token "<\|endoftext\|>": lstrip must be true or false, got "yes"/,
  );
});

test("a vocabulary without some bytes loads; encoding one of them names the character", () => {
  const json = byteTokenizer().toJSON() as {
    added_tokens: object[];
    model: { vocab: Record<string, number> };
  };
  // Drop bytes 0x00 and 0xA9 (the second byte of "é"), renumbering to keep ids dense.
  const kept = Object.entries(json.model.vocab)
    .filter(([, id]) => id !== 0 && id !== 0xa9)
    .sort((a, b) => a[1] - b[1]);
  const vocab = Object.fromEntries(kept.filter(([t]) => t !== EOT).map(([t], i) => [t, i]));
  const eot = kept.length - 1;
  const file = {
    ...json,
    added_tokens: [{ ...json.added_tokens[0], id: eot }],
    model: { ...json.model, vocab: { ...vocab, [EOT]: eot } },
  };
  const tok = tokenizerFromJson(file, "gaps/tokenizer.json");
  assert.equal(tok.vocabSize, 255);
  assert.equal(tok.decode(tok.encode(`plain text${EOT}ü`)), `plain text${EOT}ü`);
  assert.deepEqual(tok.encode(`x${EOT}`).slice(-1), [eot]);
  assert.throws(
    () => tok.encode("a\u0000b"),
    /gaps\/tokenizer\.json: cannot encode "\\u0000" \(U\+0000\): the vocabulary has no token for byte 0x00/,
  );
  assert.throws(
    () => tok.encode("café"),
    /gaps\/tokenizer\.json: cannot encode "é" \(U\+00E9\): the vocabulary has no token for byte 0xa9/,
  );
  const theirs = new HfTokenizer(tok.toJSON(), {});
  assert.deepEqual(theirs.encode("plain text").ids, tok.encode("plain text"));
});
