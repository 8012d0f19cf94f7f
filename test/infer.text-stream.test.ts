// Incremental decoding with stop strings, byte by byte: characters split over tokens come out whole, a
// stop string and what follows never come out, and text that might start a stop string waits.
import assert from "node:assert/strict";
import { test } from "node:test";
import { StopTextStream } from "../src/infer/index.js";

const utf8 = new TextEncoder();

/** Feeds text one byte at a time; returns the non-empty deltas and whether a stop string was hit. */
function feedBytes(stream: StopTextStream, text: string): { deltas: string[]; stopped: boolean } {
  const deltas: string[] = [];
  for (const b of utf8.encode(text)) {
    if (stream.stopped) break;
    const r = stream.pushBytes(Uint8Array.of(b));
    if (r.delta) deltas.push(r.delta);
  }
  const stopped = stream.stopped;
  const tail = stream.finish().delta;
  if (tail) deltas.push(tail);
  return { deltas, stopped };
}

test("a 3-byte character split over 3 pushes comes out once, whole", () => {
  const s = new StopTextStream();
  assert.equal(s.pushBytes(Uint8Array.of(0x61)).delta, "a");
  assert.equal(s.pushBytes(Uint8Array.of(0xe2)).delta, "");
  assert.equal(s.pushBytes(Uint8Array.of(0x82)).delta, "");
  assert.equal(s.pushBytes(Uint8Array.of(0xac)).delta, "€");
  // A 4-byte character (two UTF-16 units) split 1 + 3.
  assert.equal(s.pushBytes(Uint8Array.of(0xf0)).delta, "");
  assert.equal(s.pushBytes(Uint8Array.of(0x9f, 0x98, 0x80)).delta, "😀");
  assert.equal(s.finish().delta, "");
  assert.equal(s.text, "a€😀");
});

test("an incomplete character at the end becomes U+FFFD, as Tokenizer.decode does", () => {
  const s = new StopTextStream();
  assert.equal(s.pushBytes(Uint8Array.of(0x62, 0xe2, 0x82)).delta, "b");
  assert.equal(s.finish().delta, "\uFFFD");
  assert.equal(s.text, "b\uFFFD");
});

test("stop strings cut exactly; neither they nor what follows is emitted", () => {
  const text = "Hello, world! END and more";
  const r = feedBytes(new StopTextStream(["END"]), text);
  assert.ok(r.stopped);
  assert.equal(r.deltas.join(""), "Hello, world! ");
  for (const d of r.deltas) assert.ok(!d.includes("E"), `delta ${JSON.stringify(d)} leaks the stop string`);

  // The earliest match wins, whichever stop string it is.
  const two = feedBytes(new StopTextStream(["more", "world"]), text);
  assert.equal(two.deltas.join(""), "Hello, ");

  // Stop string made of multi-byte characters, split across pushes.
  const euro = feedBytes(new StopTextStream(["€€"]), "5€ or 6€€ later");
  assert.equal(euro.deltas.join(""), "5€ or 6");
  assert.ok(euro.stopped);
});

test("a possible stop-string prefix is held back, then released when it turns out not to be one", () => {
  const s = new StopTextStream(["<stop>"]);
  assert.equal(s.pushBytes(utf8.encode("ab<")).delta, "ab");
  assert.equal(s.pushBytes(utf8.encode("st")).delta, "");
  assert.equal(s.pushBytes(utf8.encode("x")).delta, "<stx");
  assert.equal(s.pushBytes(utf8.encode("<sto")).delta, "");
  // Generation ends (e.g. maxTokens): what was held is real text and comes out.
  assert.equal(s.finish().delta, "<sto");
  assert.equal(s.text, "ab<stx<sto");
  assert.equal(s.stopped, false);
  assert.equal(s.ended, true);
});

test("a stop string at the very start, and pushText for special tokens", () => {
  const first = feedBytes(new StopTextStream(["\n"]), "\nabc");
  assert.deepEqual(first.deltas, []);
  assert.ok(first.stopped);
  const s = new StopTextStream(["<|end"]);
  assert.equal(s.pushBytes(utf8.encode("x")).delta, "x");
  const r = s.pushText("<|endoftext|>");
  assert.equal(r.stopped, true);
  assert.equal(r.delta, "");
  assert.equal(s.text, "x");
  assert.throws(() => s.pushBytes(utf8.encode("y")), /after the stream ended/);
});

test("empty stop strings are rejected", () => {
  assert.throws(() => new StopTextStream([""]), /stop strings must be non-empty/);
});
