import assert from "node:assert/strict";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openShards } from "../src/data/dataset.js";
import { prepare } from "../src/data/prepare.js";
import { batchAt, batchRng, evalBatches, sampleBatch } from "../src/data/sampler.js";
import { readShard, SHARD_HEADER_BYTES, writeShard } from "../src/data/shards.js";
import { firstInvalidUtf8 } from "../src/data/text-files.js";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { tokenizerFromJson } from "../src/data/tokenizer-json.js";

const root = mkdtempSync(join(tmpdir(), "afterscale-prepare-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (): string => {
  const d = join(root, `case${counter++}`);
  mkdirSync(d);
  return d;
};

const STORY = Array.from(
  { length: 40 },
  (_, i) => `Line ${i}: the cat sat on the mat, and the dog barked.`,
).join("\n");

test("one text file: byte tokenizer, validation is the tail, shards decode back to the text", () => {
  const d = fresh();
  writeFileSync(join(d, "story.txt"), STORY);
  const out = join(d, "out");
  const meta = prepare({ inputs: [join(d, "story.txt")], outDir: out, valFraction: 0.25 });
  assert.equal(meta.tokenizerKind, "byte");
  assert.equal(meta.dtype, "uint16");
  assert.equal(meta.splitSingleDocument, true);
  const ds = openShards(out);
  assert.equal(ds.tokenizer.hash, meta.tokenizerHash);
  const train = ds.tokenizer.decode(ds.train[0]);
  const val = ds.tokenizer.decode(ds.val[0]);
  assert.equal(
    train + val,
    `${STORY.slice(0, train.length - 13)}<|endoftext|>${STORY.slice(train.length - 13)}<|endoftext|>`,
  );
  assert.ok(val.startsWith("Line "), "validation starts at a line break");
  assert.ok(meta.val.tokens > 0.15 * (meta.train.tokens + meta.val.tokens));
  assert.equal(meta.train.bytes + meta.val.bytes, Buffer.byteLength(STORY));
  assert.equal(ds.train[0][ds.train[0].length - 1], meta.eotId);
});

test("folder: recursive, sorted, hidden and unknown files skipped; BPE trained; seeded validation", () => {
  const d = fresh();
  const src = join(d, "docs");
  mkdirSync(join(src, "sub"), { recursive: true });
  mkdirSync(join(src, ".git"));
  for (let i = 0; i < 10; i++)
    writeFileSync(join(src, i % 2 ? "sub" : ".", `doc${i}.txt`), `Document ${i}. ${STORY}`);
  writeFileSync(join(src, "notes.md"), "# Notes\nSome markdown.");
  writeFileSync(join(src, "image.png"), Buffer.from([0x89, 0x50, 0xff, 0x00]));
  writeFileSync(join(src, ".git", "HEAD"), Buffer.from([0xff]));
  const a = prepare({ inputs: [src], outDir: join(d, "a"), vocabSize: 300, valDocuments: 3, seed: 7 });
  const b = prepare({ inputs: [src], outDir: join(d, "b"), vocabSize: 300, valDocuments: 3, seed: 7 });
  assert.equal(a.train.documents + a.val.documents, 11);
  assert.equal(a.val.documents, 3);
  assert.equal(a.tokenizerKind, "bpe");
  assert.equal(a.vocabSize, 300);
  assert.equal(a.tokenizerHash, b.tokenizerHash);
  assert.deepEqual(readFileSync(join(d, "a", "val-00000.bin")), readFileSync(join(d, "b", "val-00000.bin")));
  prepare({ inputs: [src], outDir: join(d, "c"), vocabSize: 300, valDocuments: 3, seed: 8 });
  assert.notDeepEqual(
    readFileSync(join(d, "a", "val-00000.bin")),
    readFileSync(join(d, "c", "val-00000.bin")),
  );
  const ds = openShards(join(d, "a"));
  const text = ds.tokenizer.decode(ds.train[0]) + ds.tokenizer.decode(ds.val[0]);
  assert.equal(text.split("<|endoftext|>").length - 1, 11);
  assert.ok(text.includes("# Notes\nSome markdown."));
  assert.ok(ds.train[0].length + ds.val[0].length < Buffer.byteLength(text) / 2, "BPE compresses");
});

test("JSONL with --field: one document per record; empty values counted", () => {
  const d = fresh();
  const lines = Array.from({ length: 20 }, (_, i) =>
    JSON.stringify({ id: i, content: `Record ${i} says hi.` }),
  );
  lines.splice(5, 0, JSON.stringify({ id: 99, content: "" }), "");
  writeFileSync(join(d, "data.jsonl"), lines.join("\n"));
  const meta = prepare({
    inputs: [join(d, "data.jsonl")],
    outDir: join(d, "out"),
    field: "content",
    valFraction: 0.1,
  });
  assert.equal(meta.train.documents + meta.val.documents, 20);
  assert.equal(meta.val.documents, 2);
  assert.equal(meta.emptyRecords, 1);
  const ds = openShards(join(d, "out"));
  assert.ok(ds.tokenizer.decode(ds.train[0]).startsWith("Record 0 says hi.<|endoftext|>Record 1"));
});

test("bad input is a clear error naming the file", () => {
  const d = fresh();
  const out = join(d, "out");
  writeFileSync(join(d, "latin1.txt"), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b]));
  assert.throws(
    () => prepare({ inputs: [join(d, "latin1.txt")], outDir: out }),
    (e: Error) =>
      e.message.includes("latin1.txt") && /not valid UTF-8 \(first bad byte at offset 3\)/.test(e.message),
  );
  writeFileSync(join(d, "empty.txt"), "  \n");
  assert.throws(() => prepare({ inputs: [join(d, "empty.txt")], outDir: out }), /empty\.txt: file is empty/);
  writeFileSync(
    join(d, "rows.jsonl"),
    `${JSON.stringify({ text: "ok" })}\n${JSON.stringify({ body: "x" })}\n`,
  );
  assert.throws(
    () => prepare({ inputs: [join(d, "rows.jsonl")], outDir: out }),
    /rows\.jsonl:2: no field "text" \(fields: body\)/,
  );
  writeFileSync(join(d, "nums.jsonl"), `${JSON.stringify({ text: 5 })}\n`);
  assert.throws(
    () => prepare({ inputs: [join(d, "nums.jsonl")], outDir: out }),
    /nums\.jsonl:1: field "text" is number/,
  );
  writeFileSync(join(d, "broken.jsonl"), "{not json}\n");
  assert.throws(
    () => prepare({ inputs: [join(d, "broken.jsonl")], outDir: out }),
    /broken\.jsonl:1: not valid JSON/,
  );
  mkdirSync(join(d, "nothing"));
  assert.throws(
    () => prepare({ inputs: [join(d, "nothing")], outDir: out }),
    /nothing: folder has no text files/,
  );
  assert.throws(
    () => prepare({ inputs: [join(d, "missing.txt")], outDir: out }),
    /missing\.txt: no such file/,
  );
  assert.throws(() => prepare({ outDir: out }), /no inputs given/);
  writeFileSync(join(d, "fine.txt"), STORY);
  prepare({ inputs: [join(d, "fine.txt")], outDir: out });
  assert.throws(
    () => prepare({ inputs: [join(d, "fine.txt")], outDir: out }),
    /already holds a prepared dataset/,
  );
  prepare({ inputs: [join(d, "fine.txt")], outDir: out, overwrite: true });
});

test("firstInvalidUtf8 finds bad sequences", () => {
  const enc = new TextEncoder();
  assert.equal(firstInvalidUtf8(enc.encode("héllo 😀")), -1);
  assert.equal(firstInvalidUtf8(Uint8Array.from([0x61, 0xc3])), 1, "truncated");
  assert.equal(firstInvalidUtf8(Uint8Array.from([0xc0, 0x80])), 0, "overlong");
  assert.equal(firstInvalidUtf8(Uint8Array.from([0x61, 0xed, 0xa0, 0x80])), 1, "surrogate");
});

test("shard header/reader round trip and corruption checks", () => {
  const d = fresh();
  const u16 = Uint16Array.from([1, 2, 65535, 0, 7]);
  writeShard(
    join(d, "a.bin"),
    { split: "train", shard: 0, dtype: "uint16", count: 5, vocabSize: 65536, tokenizerHash: "h" },
    u16,
  );
  const r = readShard(join(d, "a.bin"));
  assert.deepEqual([...r.tokens], [...u16]);
  assert.equal(r.header.dtype, "uint16");
  const raw = readFileSync(join(d, "a.bin"));
  assert.equal(raw.length, SHARD_HEADER_BYTES + 10);
  assert.equal(JSON.parse(raw.subarray(0, SHARD_HEADER_BYTES).toString()).count, 5);
  const u32 = Uint32Array.from([70000, 1, 2]);
  writeShard(
    join(d, "b.bin"),
    { split: "val", shard: 3, dtype: "uint32", count: 3, vocabSize: 80000, tokenizerHash: "h" },
    u32,
  );
  assert.deepEqual([...readShard(join(d, "b.bin")).tokens], [70000, 1, 2]);
  truncateSync(join(d, "b.bin"), SHARD_HEADER_BYTES + 6);
  assert.throws(() => readShard(join(d, "b.bin")), /header promises 3 uint32 tokens.*truncated/);
  writeFileSync(join(d, "c.bin"), Buffer.alloc(5000, 0x41));
  assert.throws(() => readShard(join(d, "c.bin")), /not an afterscale token shard/);
});

test("sampler: targets are inputs shifted by one; a pure function of (seed, step)", () => {
  const tokens = Uint16Array.from({ length: 1000 }, (_, i) => i);
  const a = batchAt(tokens, 4, 16, 42, 10);
  const b = batchAt(tokens, 4, 16, 42, 10);
  assert.deepEqual(a, b);
  assert.notDeepEqual(batchAt(tokens, 4, 16, 42, 11).inputs, a.inputs);
  assert.notDeepEqual(batchAt(tokens, 4, 16, 43, 10).inputs, a.inputs);
  for (let row = 0; row < 4; row++) {
    const start = a.inputs[row * 16];
    for (let t = 0; t < 16; t++) {
      assert.equal(a.inputs[row * 16 + t], start + t);
      assert.equal(a.targets[row * 16 + t], start + t + 1);
    }
    assert.ok(start + 16 < 1000);
  }
  // Multiple shards: windows never straddle two shards; both shards get used.
  const s1 = Uint32Array.from({ length: 50 }, (_, i) => i);
  const s2 = Uint32Array.from({ length: 50 }, (_, i) => 1000 + i);
  const seen = new Set<number>();
  for (let step = 0; step < 20; step++) {
    const batch = sampleBatch([s1, s2], 8, 8, batchRng(1, step));
    for (let row = 0; row < 8; row++) {
      const first = batch.inputs[row * 8];
      const last = batch.targets[row * 8 + 7];
      assert.equal(last - first, 8);
      seen.add(first >= 1000 ? 2 : 1);
    }
  }
  assert.deepEqual([...seen].sort(), [1, 2]);
  assert.throws(
    () => sampleBatch(Uint16Array.from([1, 2, 3]), 1, 8, batchRng(0, 0)),
    /too short for context 8/,
  );
});

test("evalBatches covers every token once, in order", () => {
  const tokens = Uint16Array.from({ length: 103 }, (_, i) => i);
  const batches = [...evalBatches(tokens, 4, 10)];
  // Windows start at 0, 10, …, 90 (the one at 100 lacks 11 tokens): 10 windows → batches of 4, 4, 2.
  assert.deepEqual(
    batches.map((b) => b.rows),
    [4, 4, 2],
  );
  const starts = batches.flatMap((b) => Array.from({ length: b.rows }, (_, r) => b.inputs[r * 10]));
  assert.deepEqual(starts, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  assert.equal([...evalBatches(tokens, 4, 10, 1)].length, 1);
});

test("built-in corpus prepares with a BPE tokenizer", () => {
  const d = fresh();
  const meta = prepare({ corpus: "brown", outDir: join(d, "brown"), vocabSize: 512, valFraction: 0.02 });
  assert.equal(meta.train.documents + meta.val.documents, 500);
  assert.equal(meta.val.documents, 10);
  assert.deepEqual(meta.sources, ["builtin:brown"]);
  const ds = openShards(join(d, "brown"));
  assert.ok(ds.train[0].length > 1_000_000);
  assert.ok(meta.train.bytes / meta.train.tokens > 2, "BPE-512 should average over 2 bytes per token");
});

test("an existing tokenizer.json is reused as is", () => {
  const d = fresh();
  writeFileSync(join(d, "a.txt"), STORY);
  const first = prepare({ inputs: [join(d, "a.txt")], outDir: join(d, "one"), vocabSize: 280 });
  const second = prepare({
    inputs: [join(d, "a.txt")],
    outDir: join(d, "two"),
    tokenizer: join(d, "one", "tokenizer.json"),
  });
  assert.equal(second.tokenizerKind, "file");
  assert.equal(second.tokenizerHash, first.tokenizerHash);
  assert.deepEqual(
    readFileSync(join(d, "one", "train-00000.bin")),
    readFileSync(join(d, "two", "train-00000.bin")),
  );
  assert.throws(
    () => prepare({ inputs: [join(d, "a.txt")], outDir: join(d, "three"), vocabSize: 300, tokenizer: "x" }),
    /either vocabSize .* or tokenizer/,
  );
});

test("corpus text spelling <|endoftext|> stays text: separators come only from document ends", () => {
  const d = fresh();
  const docs = ["A post about the <|endoftext|> token.", "Second<|endoftext|>document.", "Third one."];
  writeFileSync(join(d, "docs.jsonl"), docs.map((text) => JSON.stringify({ text })).join("\n"));
  for (const vocabSize of [undefined, 300]) {
    const out = join(d, `out-${vocabSize}`);
    const meta = prepare({ inputs: [join(d, "docs.jsonl")], outDir: out, valDocuments: 0, vocabSize });
    const ds = openShards(out);
    const ids = [...ds.train[0]];
    assert.equal(ids.filter((id) => id === meta.eotId).length, 3, "one separator per document");
    assert.deepEqual(ids, [
      ...docs.flatMap((text) => [...ds.tokenizer.encode(text, { allowSpecial: false }), meta.eotId]),
    ]);
    assert.equal(ds.tokenizer.decode(ids), `${docs.join("<|endoftext|>")}<|endoftext|>`);
  }
});

test("a new folder is built privately and published whole; the log names the final folder", () => {
  const d = fresh();
  writeFileSync(join(d, "a.txt"), STORY);
  const out = join(d, "nested", "out");
  const logs: string[] = [];
  prepare({ inputs: [join(d, "a.txt")], outDir: out, log: (m) => logs.push(m) });
  assert.match(logs[logs.length - 1]!, /validation tokens to .*nested\/out$/);
  assert.ok(!logs.some((m) => m.includes(".tmp")), logs.join("\n"));
  assert.deepEqual(readdirSync(join(d, "nested")), ["out"]);
  assert.deepEqual(readdirSync(out).sort(), [
    "dataset.json",
    "tokenizer.json",
    "train-00000.bin",
    "val-00000.bin",
  ]);

  // An empty existing folder is published into; a failure leaves neither it filled nor a private folder.
  mkdirSync(join(d, "empty"));
  prepare({ inputs: [join(d, "a.txt")], outDir: join(d, "empty") });
  assert.ok(readdirSync(join(d, "empty")).includes("dataset.json"));
  const noSpace = tokenizerFromJson(withoutByte(byteTokenizer().toJSON(), 0x20), "no-space.json");
  assert.throws(
    () => prepare({ inputs: [join(d, "a.txt")], outDir: join(d, "failed"), tokenizer: noSpace }),
    /no-space\.json: cannot encode " " \(U\+0020\): the vocabulary has no token for byte 0x20/,
  );
  assert.deepEqual(readdirSync(d).sort(), ["a.txt", "empty", "nested"]);
});

/** A tokenizer.json without the token of one byte (ids renumbered to stay dense). */
function withoutByte(json: object, byte: number): object {
  const j = json as { added_tokens: { id: number }[]; model: { vocab: Record<string, number> } };
  const entries = Object.entries(j.model.vocab)
    .filter(([, id]) => id !== byte)
    .map(([t, id]): [string, number] => [t, id > byte ? id - 1 : id]);
  return {
    ...j,
    added_tokens: j.added_tokens.map((t) => ({ ...t, id: t.id - 1 })),
    model: { ...j.model, vocab: Object.fromEntries(entries) },
  };
}
