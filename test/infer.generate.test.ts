// Generation: KV-cache greedy decoding picks the same tokens as a naive loop of full forward passes;
// seeds, top-k 1 and tiny top-p behave; and on a hand-built bigram model (whose greedy output is known
// exactly) stop strings, split UTF-8 characters, <|endoftext|>, maxTokens, the context limit and aborts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { byteTokenizer } from "../src/data/index.js";
import { argmax, type GenerateResult, generate, generateStream } from "../src/infer/index.js";
import { createModel, forward, type Model, preset } from "../src/nn/index.js";
import { noGrad, pool, tidy } from "../src/tensor/index.js";

const tok = byteTokenizer(); // ids 0..255 are bytes, 256 is <|endoftext|>
const EOT = 256;

function randomModel(family: "gpt2" | "llama", context = 32): Model {
  const cfg = { ...preset("nano", family, tok.vocabSize, context), layers: 2 };
  return createModel(cfg, family === "gpt2" ? 3 : 4);
}

/** Greedy continuation by recomputing the whole sequence every step (no cache). */
function naiveGreedy(model: Model, prompt: number[], n: number): number[] {
  const ids = [...prompt];
  for (let i = 0; i < n; i++) {
    const next = noGrad(() =>
      tidy(() => {
        const logits = forward(model, Int32Array.from(ids), 1, ids.length);
        const v = model.config.vocab;
        return argmax(logits.data.subarray((ids.length - 1) * v, ids.length * v));
      }),
    );
    ids.push(next);
  }
  return ids.slice(prompt.length);
}

/**
 * A gpt2 model whose output depends only on the current token: every block weight is zero (the residual
 * stream passes through unchanged), positions are zero, and token k of `chain` gets the embedding
 * e(2k) − e(2k+1), which ln_f maps to a fixed direction; lm_head points that direction at the token's
 * successor. Greedy decoding therefore follows `next` exactly.
 */
function bigramModel(next: Map<number, number>, vocab = tok.vocabSize): Model {
  const cfg = {
    family: "gpt2" as const,
    vocab,
    dModel: 64,
    layers: 1,
    heads: 4,
    kvHeads: 4,
    context: 64,
    mlpRatio: 4,
    normEps: 1e-5,
    ropeTheta: 10000,
    dropout: 0,
    tie: false,
  };
  const model = createModel(cfg, 1);
  for (const [name, p] of model.params) if (!name.includes("ln_")) p.data.fill(0);
  const wte = model.params.get("wte.weight")!.data;
  const head = model.params.get("lm_head.weight")!.data;
  let k = 0;
  for (const [from, to] of next) {
    assert.ok(2 * k + 1 < 64, "bigramModel: too many tokens");
    wte[from * 64 + 2 * k] = 1;
    wte[from * 64 + 2 * k + 1] = -1;
    head[to * 64 + 2 * k] = 5;
    head[to * 64 + 2 * k + 1] = -5;
    k++;
  }
  return model;
}

/** Bigram successors that spell `cycle` over and over (its bytes must be distinct). */
function cycleOf(cycle: string, extra: [number, number][] = []): Map<number, number> {
  const bytes = [...new TextEncoder().encode(cycle)];
  assert.equal(new Set(bytes).size, bytes.length, "cycle bytes must be distinct");
  const next = new Map<number, number>();
  for (let i = 0; i < bytes.length; i++) next.set(bytes[i]!, bytes[(i + 1) % bytes.length]!);
  for (const [a, b] of extra) next.set(a, b);
  return next;
}

// "€" is 3 bytes (E2 82 AC), so with the byte tokenizer it arrives over 3 tokens.
const abc = bigramModel(cycleOf("abc€xyz "));

for (const family of ["gpt2", "llama"] as const) {
  test(`${family}: greedy KV-cache generation equals argmax of full forward passes`, () => {
    const model = randomModel(family);
    const prompt = [...new TextEncoder().encode("Hi there")];
    const r = generate(model, tok, Int32Array.from(prompt), {
      maxTokens: 20,
      temperature: 0,
      stopAtEndOfText: false,
    });
    assert.equal(r.finishReason, "length");
    assert.equal(r.promptTokens, prompt.length);
    assert.equal(r.completionTokens, 20);
    assert.deepEqual(Array.from(r.ids), naiveGreedy(model, prompt, 20));
    // A string prompt encodes to the same ids, so the same continuation.
    const again = generate(model, tok, "Hi there", { maxTokens: 20, temperature: 0, stopAtEndOfText: false });
    assert.deepEqual(again.ids, r.ids);
    assert.equal(again.text, tok.decode(r.ids));
  });
}

test("seeds: same seed same sample, other seed other sample; top-k 1 and tiny top-p are greedy", () => {
  const model = randomModel("llama");
  const opts = { maxTokens: 16, temperature: 1, stopAtEndOfText: false };
  const a = generate(model, tok, "ab", { ...opts, seed: 1 });
  const b = generate(model, tok, "ab", { ...opts, seed: 1 });
  const c = generate(model, tok, "ab", { ...opts, seed: 2 });
  assert.deepEqual(a.ids, b.ids);
  assert.equal(a.text, b.text);
  assert.notDeepEqual(a.ids, c.ids);
  const greedy = generate(model, tok, "ab", { ...opts, temperature: 0 });
  assert.deepEqual(generate(model, tok, "ab", { ...opts, topK: 1, seed: 9 }).ids, greedy.ids);
  assert.deepEqual(generate(model, tok, "ab", { ...opts, topP: 1e-9, seed: 9 }).ids, greedy.ids);
});

test("bigram model: greedy output is known; a 3-byte character split over 3 tokens streams whole", () => {
  const deltas: string[] = [];
  const r = generate(abc, tok, "a", { maxTokens: 12, temperature: 0, onText: (d) => deltas.push(d) });
  assert.equal(r.text, "bc€xyz abc");
  assert.deepEqual(deltas, ["b", "c", "€", "x", "y", "z", " ", "a", "b", "c"]);
  assert.equal(r.finishReason, "length");
  assert.equal(r.completionTokens, 12);
  assert.equal(r.text, tok.decode(r.ids));
  // Cut mid-character by maxTokens: the incomplete tail decodes to U+FFFD, as Tokenizer.decode does.
  const cut = generate(abc, tok, "a", { maxTokens: 4, temperature: 0 });
  assert.equal(cut.text, "bc\uFFFD");
  assert.equal(cut.text, tok.decode(cut.ids));
  // Sampling at temperature 1 follows the bigram too: its margin is ~57 nats.
  assert.equal(generate(abc, tok, "a", { maxTokens: 12, temperature: 1, seed: 5 }).text, "bc€xyz abc");
});

test("stop strings cut exactly and are never streamed", () => {
  const run = (stop: string[], maxTokens = 40) => {
    const deltas: string[] = [];
    const r = generate(abc, tok, "a", { maxTokens, temperature: 0, stop, onText: (d) => deltas.push(d) });
    assert.equal(deltas.join(""), r.text, "deltas concatenate to the text");
    return { r, deltas };
  };
  const z = run(["z a"]);
  assert.equal(z.r.text, "bc€xy");
  assert.equal(z.r.finishReason, "stop");
  assert.ok(!z.deltas.some((d) => d.includes("z")), `streamed ${JSON.stringify(z.deltas)}`);
  // The stop string completes on the token after "z a": b c E2 82 AC x y z ' ' a = 10 tokens.
  assert.equal(z.r.completionTokens, 10);

  const euro = run(["€x"]);
  assert.equal(euro.r.text, "bc");
  assert.deepEqual(euro.deltas, ["b", "c"]);

  assert.equal(run(["y", "c€"]).r.text, "b", "the earliest match wins");
  // A stop string that only ever partly matches holds "xy" back, then releases it with "z".
  const partial = run(["xyq"], 12);
  assert.equal(partial.r.text, "bc€xyz abc");
  assert.ok(partial.deltas.includes("xyz"), `streamed ${JSON.stringify(partial.deltas)}`);
  assert.equal(partial.r.finishReason, "length");
  // Held text at the end of generation is released: "bc€x" ends in "x", a prefix of "xyq".
  assert.equal(run(["xyq"], 6).r.text, "bc€x");
});

test("<|endoftext|> ends generation unless disabled; an empty prompt starts from it", () => {
  const model = bigramModel(
    cycleOf("abc€xyz", [
      [0x7a, EOT],
      [EOT, 0x61],
    ]),
  ); // z → eot → a
  const r = generate(model, tok, "a", { maxTokens: 50, temperature: 0 });
  assert.equal(r.text, "bc€xyz");
  assert.equal(r.finishReason, "stop");
  assert.equal(r.ids[r.ids.length - 1], EOT);
  assert.equal(r.completionTokens, 9);
  const on = generate(model, tok, "a", { maxTokens: 12, temperature: 0, stopAtEndOfText: false });
  assert.equal(on.text, "bc€xyz<|endoftext|>abc");
  const empty = generate(model, tok, "", { maxTokens: 3, temperature: 0 });
  assert.equal(empty.promptTokens, 1);
  assert.equal(empty.text, "abc");
  // With allowSpecial, "<|endoftext|>" in a string prompt is the special token.
  const special = generate(model, tok, "<|endoftext|>", { maxTokens: 2, temperature: 0, allowSpecial: true });
  assert.equal(special.promptTokens, 1);
  assert.equal(special.text, "ab");
});

test("the context limit ends generation with finishReason context", () => {
  const model = randomModel("gpt2", 16);
  const prompt = new Int32Array(14).fill(65);
  // Positions 0..13 hold the prompt; tokens fed at 14 and 15, and the last one sampled without feeding.
  const r = generate(model, tok, prompt, { maxTokens: 10, temperature: 0, stopAtEndOfText: false });
  assert.equal(r.finishReason, "context");
  assert.equal(r.completionTokens, 3);
  const full = generate(model, tok, new Int32Array(16).fill(65), {
    maxTokens: 10,
    temperature: 0,
    stopAtEndOfText: false,
  });
  assert.equal(full.completionTokens, 1);
  assert.equal(full.finishReason, "context");
  assert.throws(
    () => generate(model, tok, new Int32Array(17).fill(65), { maxTokens: 1 }),
    /longer than the model's context of 16/,
  );
  // maxTokens reached exactly at the context edge is "length".
  assert.equal(
    generate(model, tok, prompt, { maxTokens: 3, temperature: 0, stopAtEndOfText: false }).finishReason,
    "length",
  );
});

test("AbortSignal ends generation with finishReason abort", () => {
  const controller = new AbortController();
  const deltas: string[] = [];
  const r = generate(abc, tok, "a", {
    maxTokens: 40,
    temperature: 0,
    signal: controller.signal,
    onText: (d) => {
      deltas.push(d);
      if (deltas.length === 3) controller.abort();
    },
  });
  assert.equal(r.finishReason, "abort");
  assert.equal(r.text, "bc€");
  assert.equal(r.completionTokens, 5);
  const before = AbortSignal.abort();
  const none = generate(abc, tok, "a", { maxTokens: 40, signal: before });
  assert.equal(none.finishReason, "abort");
  assert.equal(none.completionTokens, 0);
});

test("memory does not grow per token, and the cache is given back", () => {
  const model = randomModel("llama");
  generate(model, tok, "warm", { maxTokens: 4, temperature: 0 }); // fill the pool with the step's shapes
  const base = pool.stats().liveBytes;
  const live: number[] = [];
  generate(model, tok, "Some prompt", {
    maxTokens: 20,
    temperature: 0.8,
    seed: 3,
    stopAtEndOfText: false,
    onText: () => live.push(pool.stats().liveBytes),
  });
  assert.ok(live.length >= 2, "expected several deltas");
  assert.ok(
    live.every((b) => b === live[0]),
    `live bytes changed during decoding: ${live.join(", ")}`,
  );
  assert.equal(pool.stats().liveBytes, base, "live bytes after generation");
  // A callback that throws ends generation and still gives the cache back.
  assert.throws(
    () =>
      generate(model, tok, "x", {
        maxTokens: 5,
        onText: () => {
          throw new Error("consumer failed");
        },
      }),
    /consumer failed/,
  );
  assert.equal(pool.stats().liveBytes, base, "live bytes after a failed generation");
});

test("generateStream yields the same deltas, can be aborted or broken off, and frees the cache", async () => {
  const base = pool.stats().liveBytes;
  const deltas: string[] = [];
  let done = null as GenerateResult | null;
  for await (const d of generateStream(abc, tok, "a", {
    maxTokens: 12,
    temperature: 0,
    stop: ["z"],
    onDone: (r) => {
      done = r;
    },
  })) {
    deltas.push(d);
  }
  assert.deepEqual(deltas, ["b", "c", "€", "x", "y"]);
  assert.equal(done?.text, "bc€xy");
  assert.equal(done?.finishReason, "stop");

  const controller = new AbortController();
  const got: string[] = [];
  let result = null as GenerateResult | null;
  for await (const d of generateStream(abc, tok, "a", {
    maxTokens: 40,
    temperature: 0,
    signal: controller.signal,
    onDone: (r) => {
      result = r;
    },
  })) {
    got.push(d);
    if (got.length === 2) setImmediate(() => controller.abort()); // aborted from outside, between tokens
  }
  assert.equal(result?.finishReason, "abort");
  assert.deepEqual(got, ["b", "c"]);

  for await (const d of generateStream(abc, tok, "a", { maxTokens: 40, temperature: 0 })) {
    if (d === "x") break;
  }
  assert.equal(pool.stats().liveBytes, base, "breaking off the stream gave the KV cache back");
});

test("a model with a padded vocabulary only samples the tokenizer's ids", () => {
  // "a" points at id 299, which the model has but the byte tokenizer (257 ids) does not.
  const padded = bigramModel(new Map([[0x61, 299]]), 300);
  const r = generate(padded, tok, "a", { maxTokens: 1, temperature: 0 });
  assert.deepEqual(Array.from(r.ids), [0], "all of the tokenizer's logits are 0: greedy takes id 0");
  const small = bigramModel(new Map([[0x61, 0x62]]));
  const big = byteTokenizer(["<|endoftext|>", "<|pad|>"]);
  assert.throws(
    () => generate(small, big, "a", { maxTokens: 1 }),
    /tokenizer has 258 tokens but the model only 257/,
  );
});

test("bad options are errors that name the option", () => {
  assert.throws(() => generate(abc, tok, "a", { maxTokens: -1 }), /maxTokens must be an integer ≥ 0/);
  assert.throws(() => generate(abc, tok, "a", { maxTokens: 2, temperature: -1 }), /temperature/);
  assert.throws(() => generate(abc, tok, "a", { maxTokens: 2, topP: 0 }), /topP/);
  assert.throws(
    () => generate(abc, tok, "a", { maxTokens: 2, stop: [""] }),
    /stop strings must be non-empty/,
  );
  assert.throws(() => generate(abc, tok, Int32Array.of(300), { maxTokens: 2 }), /prompt token 0 is 300/);
  assert.equal(generate(abc, tok, "a", { maxTokens: 0 }).finishReason, "length");
});
