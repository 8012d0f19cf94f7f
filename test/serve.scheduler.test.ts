// The continuous-batching scheduler, in-process (no worker, no HTTP): batching must not change what a
// seeded sequence generates, cancellation frees the sequence at once, and the batch never exceeds maxBatch.
import assert from "node:assert/strict";
import { test } from "node:test";
import { byteTokenizer } from "../src/data/tokenizer.js";
import { generate } from "../src/infer/index.js";
import { createModel, preset } from "../src/nn/index.js";
import type { SequenceEvent, SequenceRequest } from "../src/serve/protocol.js";
import { Scheduler } from "../src/serve/scheduler.js";

const tokenizer = byteTokenizer();
const model = createModel(preset("nano", "llama", tokenizer.vocabSize, 128), 7);
const encode = (s: string) => Int32Array.from(tokenizer.encode(s));

function request(
  id: number,
  prompt: string,
  seed: number,
  extra: Partial<SequenceRequest> = {},
): SequenceRequest {
  return {
    id,
    prompt: encode(prompt),
    maxTokens: 24,
    temperature: 1,
    topP: 0.95,
    seed,
    stop: [],
    stopAtEndOfText: false,
    ...extra,
  };
}

/** Runs the scheduler until idle; returns each sequence's text and done event, and the largest batch seen. */
function runAll(
  requests: SequenceRequest[],
  maxBatch: number,
  onStep?: (s: Scheduler, tokens: Map<number, number>) => void,
  prefillChunk?: number,
) {
  const texts = new Map<number, string>();
  const tokens = new Map<number, number>();
  const done = new Map<number, Extract<SequenceEvent, { type: "done" }>>();
  const opts = prefillChunk === undefined ? { maxBatch } : { maxBatch, prefillChunk };
  const scheduler = new Scheduler(model, tokenizer, opts, (e) => {
    if (e.type === "token") {
      texts.set(e.id, (texts.get(e.id) ?? "") + e.delta);
      tokens.set(e.id, (tokens.get(e.id) ?? 0) + 1);
    } else done.set(e.id, e);
  });
  for (const r of requests) scheduler.submit(r);
  let largest = 0;
  while (scheduler.step()) {
    largest = Math.max(largest, scheduler.activeCount);
    onStep?.(scheduler, tokens);
  }
  return { texts, done, largest };
}

test("a seeded sequence generates the same text alone and batched with others", () => {
  const target = request(1, "The quick brown fox", 1234);
  const alone = runAll([target], 8);
  const others = [request(2, "Once upon a time", 1), request(3, "x", 2), request(4, "Lorem ipsum dolor", 3)];
  // Others start before and alongside it, so it joins a batch already running at other positions.
  const batched = runAll([others[0]!, others[1]!, target, others[2]!], 8);
  assert.equal(batched.largest, 4);
  assert.equal(batched.texts.get(1), alone.texts.get(1));
  assert.equal(batched.done.get(1)!.completionTokens, 24);
  assert.equal(batched.done.get(1)!.finishReason, "length");
  // And it agrees with the single-sequence generator of src/infer.
  const reference = generate(model, tokenizer, target.prompt, {
    maxTokens: 24,
    temperature: 1,
    topP: 0.95,
    seed: 1234,
    stopAtEndOfText: false,
  });
  assert.equal(alone.texts.get(1), reference.text);
});

test("prompts are fed in chunks alongside decoding rows, and new prompts share a step", () => {
  const long = request(1, "A prompt long enough to take several chunks of eight tokens.", 77);
  const reference = generate(model, tokenizer, long.prompt, {
    maxTokens: 24,
    temperature: 1,
    topP: 0.95,
    seed: 77,
    stopAtEndOfText: false,
  });
  const others = [request(2, "hi", 5), request(3, "yo", 6)];
  let steps = 0;
  let firstTokensAt = -1;
  const { texts } = runAll(
    [others[0]!, others[1]!, long],
    4,
    (_, tokens) => {
      steps++;
      // 2 + 2 + 8 tokens fit the first step's budget of 12: the short prompts' first tokens come at once.
      if (steps === 1) firstTokensAt = (tokens.get(2) ?? 0) + (tokens.get(3) ?? 0);
      // The long prompt (60 tokens) needs ceil((60 − 8) / 12) more steps before its first token.
      if (steps === 5) assert.equal(tokens.get(1) ?? 0, 0);
      if (steps === 6) assert.equal(tokens.get(1), 1);
    },
    12,
  );
  assert.equal(firstTokensAt, 2);
  assert.equal(long.prompt.length, 60);
  assert.equal(texts.get(1), reference.text);
});

test("the batch never exceeds maxBatch; waiting sequences start as rows free up", () => {
  const reqs = [1, 2, 3, 4, 5].map((i) => request(i, `prompt ${i}`, i, { maxTokens: 3 + i }));
  const { done, largest } = runAll(reqs, 2);
  assert.equal(largest, 2);
  for (const r of reqs) assert.equal(done.get(r.id)!.completionTokens, r.maxTokens);
});

test("cancel drops a running sequence and a waiting one at once", () => {
  const reqs = [
    request(1, "a", 1, { maxTokens: 50 }),
    request(2, "b", 2, { maxTokens: 50 }),
    request(3, "c", 3),
  ];
  let cancelled = false;
  const { done } = runAll(reqs, 2, (s) => {
    if (cancelled) return;
    cancelled = true;
    s.cancel(1); // active
    s.cancel(3); // still waiting
    assert.equal(s.activeCount, 1);
    assert.equal(s.waitingCount, 0);
  });
  assert.equal(done.get(1)!.finishReason, "cancelled");
  assert.ok(done.get(1)!.completionTokens < 50);
  assert.equal(done.get(3)!.finishReason, "cancelled");
  assert.equal(done.get(2)!.finishReason, "length");
});

test("stop strings end a sequence before the stop string; bad requests are reported, not thrown", () => {
  const free = runAll([request(1, "hello", 99, { maxTokens: 60 })], 1).texts.get(1)!;
  const at = Array.from({ length: free.length }, (_, i) => i).findIndex(
    (i) => i > 2 && /^[ -~]{2}$/.test(free.slice(i, i + 2)),
  );
  assert.ok(at > 0, "the sample text has two printable ASCII characters in a row");
  const stop = free.slice(at, at + 2);
  const { texts, done } = runAll([request(1, "hello", 99, { maxTokens: 60, stop: [stop] })], 1);
  assert.equal(texts.get(1) ?? "", free.slice(0, free.indexOf(stop)));
  assert.equal(done.get(1)!.finishReason, "stop");

  const bad = runAll([request(5, "", 1), request(6, "x".repeat(200), 1)], 2).done;
  assert.equal(bad.get(5)!.finishReason, "error");
  assert.match(bad.get(6)!.message!, /200 tokens; it must be 1 to 128/);
});

test("a sequence whose pass fails ends with an error; the others in its batch carry on unchanged", () => {
  const reqs = [request(1, "alpha", 11), request(2, "beta", 12), request(3, "gamma", 13)];
  const alone = runAll([reqs[0]!, reqs[2]!], 8);
  let broken = false;
  const { texts, done } = runAll(reqs, 8, (s) => {
    if (broken) return;
    broken = true;
    // Sabotage sequence 2's cache (as a bug would): its next step cannot fit, so the batched pass throws.
    const active = (s as unknown as { active: { req: { id: number }; cache: { capacity: number } }[] })
      .active;
    const victim = active.find((a) => a.req.id === 2)!;
    (victim.cache as { capacity: number }).capacity = 0;
  });
  assert.equal(done.get(2)!.finishReason, "error");
  assert.match(done.get(2)!.message!, /exceed the context/);
  for (const id of [1, 3]) {
    assert.equal(done.get(id)!.finishReason, "length");
    assert.equal(texts.get(id), alone.texts.get(id));
  }
});
