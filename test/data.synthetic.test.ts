import assert from "node:assert/strict";
import { test } from "node:test";
import { SyntheticLanguage, syntheticDocuments } from "../src/data/synthetic.js";

const lang = new SyntheticLanguage({ seed: 1 });

test("synthetic: the closed-form stationary distribution is stationary (πP = π)", () => {
  const V = lang.words.length;
  const piP = new Float64Array(V);
  for (let i = 0; i < V; i++) {
    const ids = lang.next[i]!;
    const p = lang.prob[i]!;
    for (let j = 0; j < ids.length; j++) piP[ids[j]!] = piP[ids[j]!]! + lang.stationary[i]! * p[j]!;
  }
  let sum = 0;
  for (let i = 0; i < V; i++) {
    sum += lang.stationary[i]!;
    assert.ok(Math.abs(piP[i]! - lang.stationary[i]!) < 1e-15, `word ${i}`);
  }
  assert.ok(Math.abs(sum - 1) < 1e-12);
  assert.equal(new Set(lang.words).size, V, "words are distinct");
  for (const w of lang.words) assert.match(w, /^[a-z]+$/);
});

test("synthetic: empirical NLL per word and per byte converge to the exact entropy rates", () => {
  const n = 200_000;
  const it = lang.wordIds(42);
  let prev = it.next().value;
  let nll = -lang.initialLogProb(prev);
  let bytes = lang.words[prev]!.length + 1;
  let sumSq = 0;
  for (let t = 1; t < n; t++) {
    const w = it.next().value;
    const l = -lang.transitionLogProb(prev, w);
    nll += l;
    sumSq += l * l;
    bytes += lang.words[w]!.length + 1;
    prev = w;
  }
  const perWord = nll / n;
  const sd = Math.sqrt(sumSq / n - perWord * perWord);
  // The chain mixes fast, so ~5 i.i.d. standard errors is a loose but meaningful bound.
  const tol = (5 * sd) / Math.sqrt(n);
  assert.ok(
    Math.abs(perWord - lang.entropyPerWord) < tol,
    `${perWord} vs ${lang.entropyPerWord} (tol ${tol})`,
  );
  assert.ok(
    Math.abs(nll / bytes - lang.entropyPerByte) < tol / 3,
    `${nll / bytes} vs ${lang.entropyPerByte}`,
  );
  assert.ok(Math.abs(bytes / n - lang.bytesPerWord) < 0.05);
  assert.ok(lang.entropyPerWord > 1 && lang.entropyPerWord < Math.log(lang.words.length));
});

test("synthetic: seeded, deterministic, streaming text", () => {
  const again = new SyntheticLanguage({ seed: 1 });
  assert.equal(again.entropyPerWord, lang.entropyPerWord);
  assert.equal(lang.sampleText(5000, 3), again.sampleText(5000, 3));
  assert.notEqual(lang.sampleText(5000, 3), lang.sampleText(5000, 4));
  assert.notEqual(new SyntheticLanguage({ seed: 2 }).entropyPerWord, lang.entropyPerWord);
  // The stream is unlimited and chunks are whole words followed by spaces.
  const chunks = lang.text(0, 10);
  for (let i = 0; i < 1000; i++) {
    const c = chunks.next().value;
    assert.match(c, /^([a-z]+ ){10}$/);
  }
  assert.equal(lang.sampleText(100, 9).length, 100);
  assert.ok(lang.sampleText(20000, 9).startsWith(lang.sampleText(100, 9)));
  assert.throws(() => new SyntheticLanguage({ vocabSize: 1 }), /vocabSize/);
  const docs = syntheticDocuments(lang, 3, 50, 9);
  assert.equal(docs.length, 3);
  assert.equal(docs.join(""), lang.sampleText(docs.join("").length, 9), "documents are consecutive slices");
});
