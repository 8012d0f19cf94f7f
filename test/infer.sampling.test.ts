// Sampling: option checks, greedy ties, and that temperature / top-k / top-p draw from the distributions
// they claim to (frequencies over many seeded draws against probabilities computed here by hand).
import assert from "node:assert/strict";
import { test } from "node:test";
import { argmax, resolveSampling, Sampler, sampleToken } from "../src/infer/index.js";
import { Rng } from "../src/tensor/index.js";

function softmax(logits: number[], temperature: number): number[] {
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp((l - m) / temperature));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** Draw n tokens and check every frequency is within 5 standard errors of the expected probability. */
function assertFrequencies(sampler: Sampler, logits: number[], expected: number[], n: number, what: string) {
  const counts = new Array(logits.length).fill(0);
  const row = Float32Array.from(logits);
  for (let i = 0; i < n; i++) counts[sampler.sample(row)]++;
  for (let id = 0; id < logits.length; id++) {
    const p = expected[id]!;
    const freq = counts[id] / n;
    if (p === 0) assert.equal(counts[id], 0, `${what}: token ${id} has probability 0 but was drawn`);
    const tol = 5 * Math.sqrt((p * (1 - p)) / n) + 1e-9;
    assert.ok(
      Math.abs(freq - p) <= tol,
      `${what}: token ${id} drawn ${freq.toFixed(4)}, expected ${p.toFixed(4)}`,
    );
  }
}

test("options are checked and name what is wrong", () => {
  assert.deepEqual(resolveSampling({}), { temperature: 1, topK: 0, topP: 1 });
  assert.throws(() => resolveSampling({ temperature: -0.1 }), /temperature must be a finite number ≥ 0/);
  assert.throws(() => resolveSampling({ temperature: Number.NaN }), /temperature/);
  assert.throws(() => resolveSampling({ topK: 1.5 }), /topK must be an integer ≥ 0/);
  assert.throws(() => resolveSampling({ topK: -1 }), /topK/);
  assert.throws(() => resolveSampling({ topP: 0 }), /topP must be in \(0, 1\]/);
  assert.throws(() => resolveSampling({ topP: 1.01 }), /topP/);
});

test("greedy: argmax with the lowest id on ties; no random numbers used", () => {
  assert.equal(argmax([0.5, 2, 2, -1]), 1);
  assert.throws(() => argmax([0, Number.NaN]), /logit 1 is NaN/);
  assert.throws(() => argmax([Number.NEGATIVE_INFINITY]), /every logit is -Infinity/);
  const rng = new Rng(5);
  const before = rng.state();
  const row = Float32Array.from([0.1, 3, 3, 2.9]);
  assert.equal(sampleToken(row, { temperature: 0 }, rng), 1);
  assert.equal(sampleToken(row, { topK: 1, temperature: 2 }, rng), 1);
  assert.deepEqual(rng.state(), before, "greedy choices draw no random numbers");
  assert.equal(
    sampleToken(row, { topP: 1e-9, temperature: 2 }, rng),
    1,
    "tiny top-p keeps only the first by id",
  );
});

test("temperature: frequencies match softmax(logits / T)", () => {
  const logits = [1, 2, 0.5, 3, -1];
  for (const t of [0.7, 1, 2.5]) {
    assertFrequencies(new Sampler({ temperature: t }, 42), logits, softmax(logits, t), 40000, `T=${t}`);
  }
});

test("top-k keeps the k largest and renormalises", () => {
  const logits = [1, 2, 0.5, 3, -1];
  const t = 1.3;
  const p = softmax(logits, t);
  const kept = p[1]! + p[3]!;
  const expected = p.map((x, i) => (i === 1 || i === 3 ? x / kept : 0));
  assertFrequencies(new Sampler({ temperature: t, topK: 2 }, 7), logits, expected, 40000, "top-k 2");
});

test("top-p keeps the smallest prefix that reaches p and renormalises", () => {
  const probs = [0.15, 0.5, 0.05, 0.3];
  const logits = probs.map(Math.log);
  // Sorted: 0.5 (id 1), 0.3 (id 3), 0.15, 0.05. p = 0.7: 0.5 < 0.7 ≤ 0.8, so ids 1 and 3 remain.
  assertFrequencies(new Sampler({ topP: 0.7 }, 3), logits, [0, 0.625, 0, 0.375], 40000, "top-p 0.7");
  // p = 0.9: 0.8 < 0.9 ≤ 0.95, so three remain.
  assertFrequencies(
    new Sampler({ topP: 0.9 }, 4),
    logits,
    [0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95],
    40000,
    "top-p 0.9",
  );
  // top-k applies first, then top-p within it: k = 3 drops 0.05; p = 0.6 of the remaining 0.95 mass is 0.57.
  assertFrequencies(
    new Sampler({ topK: 3, topP: 0.6 }, 5),
    logits,
    [0, 0.625, 0, 0.375],
    40000,
    "top-k 3 + top-p 0.6",
  );
});

test("one seed fixes the draws; another seed gives other draws; -Infinity is never drawn", () => {
  const row = Float32Array.from([0, 0.1, -0.2, 0.3, Number.NEGATIVE_INFINITY, 0.05, -0.1, 0.2]);
  const draws = (seed: number) => {
    const s = new Sampler({ temperature: 1, topP: 0.95 }, seed);
    return Array.from({ length: 64 }, () => s.sample(row));
  };
  assert.deepEqual(draws(11), draws(11));
  assert.notDeepEqual(draws(11), draws(12));
  for (const id of draws(13)) assert.notEqual(id, 4);
});

/** The sampler written the obvious way: comparator sort of every id, cut by k, then by p. */
function referenceSample(logits: Float32Array, t: number, topK: number, topP: number, rng: Rng): number {
  const n = logits.length;
  const max = Math.max(...logits);
  const w = Array.from(logits, (l) => Math.exp((l - max) / t));
  const ids = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const k = topK > 0 && topK < n ? topK : n;
  let kept = ids.slice(0, k);
  if (topP < 1) {
    const total = k === n ? w.reduce((s, x) => s + x, 0) : kept.reduce((s, i) => s + w[i]!, 0);
    let mass = 0;
    let keep = 0;
    while (keep < k) {
      mass += w[kept[keep]!]!;
      keep++;
      if (mass >= topP * total) break;
    }
    kept = kept.slice(0, keep);
  }
  let u = rng.uniform() * kept.reduce((s, i) => s + w[i]!, 0);
  for (const i of kept) {
    u -= w[i]!;
    if (u < 0) return i;
  }
  return kept[kept.length - 1]!;
}

test("the fast top-k / top-p path picks exactly what the obvious implementation picks", () => {
  const data = new Rng(99);
  // 1000 logits on a coarse grid, so many are tied; a few -Infinity.
  const logits = Float32Array.from({ length: 1000 }, () => Math.round(data.normal() * 8) / 4);
  for (let i = 0; i < 1000; i += 97) logits[i] = Number.NEGATIVE_INFINITY;
  for (const [temperature, topK, topP] of [
    [1, 5, 1],
    [0.7, 50, 1],
    [1, 999, 1],
    [1, 0, 0.3],
    [1.5, 0, 0.9],
    [0.8, 40, 0.95],
  ] as const) {
    const fast = new Sampler({ temperature, topK, topP }, 1234);
    const slow = new Rng(1234);
    for (let draw = 0; draw < 200; draw++) {
      const want = referenceSample(logits, temperature, topK, topP, slow);
      assert.equal(fast.sample(logits), want, `T=${temperature} k=${topK} p=${topP}, draw ${draw}`);
    }
  }
});
