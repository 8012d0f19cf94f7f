// Batch-1 greedy decode timed token by token, as both benchmark children measure it (bench/train.ts on a
// freshly built model, bench/quant-decode.ts on a loaded GGUF): the prompt through a KV cache, then
// `tokens` greedy tokens one at a time.
import { argmax } from "../src/infer/index.js";
import { forward, type Model, newKVCache } from "../src/nn/index.js";
import { noGrad, tidy } from "../src/tensor/index.js";

export function timedGreedyDecode(
  model: Model,
  prompt: Int32Array,
  tokens: number,
): { generated: number[]; perTokenSeconds: number[] } {
  const vocab = model.config.vocab;
  const cache = newKVCache(model, prompt.length + tokens);
  let next = 0;
  const step = (ids: Int32Array) =>
    noGrad(() =>
      tidy(() => {
        const logits = forward(model, ids, 1, ids.length, { cache });
        next = argmax(logits.data.subarray((ids.length - 1) * vocab, ids.length * vocab));
      }),
    );
  step(prompt);
  const generated: number[] = [];
  const perTokenSeconds: number[] = [];
  for (let i = 0; i < tokens; i++) {
    generated.push(next);
    const t0 = performance.now();
    step(Int32Array.of(next));
    perTokenSeconds.push((performance.now() - t0) / 1000);
  }
  cache.dispose();
  return { generated, perTokenSeconds };
}
