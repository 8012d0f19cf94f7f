// Every differentiable op, through the autodiff layer, against central finite differences in float64.
import { test } from "node:test";
import * as T from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";

type Inputs = Record<string, number[]>;

/** Checks d(Σ f(x)·u)/dx from backward() against (L(x + h) − L(x − h)) / 2h for every input element. */
function gradcheck(
  name: string,
  shapes: Record<string, number[]>,
  f: (x: Record<string, T.Tensor>) => T.Tensor,
  seed = 1,
) {
  const rng = new T.Rng(seed);
  const values: Inputs = {};
  for (const [k, s] of Object.entries(shapes)) {
    values[k] = Array.from({ length: s.reduce((p, d) => p * d, 1) }, () => rng.normal());
  }
  const build = () => {
    const x: Record<string, T.Tensor> = {};
    for (const [k, s] of Object.entries(shapes))
      x[k] = T.tensor(values[k]!, s, { dtype: "float64", requiresGrad: true });
    return x;
  };
  T.tidy(() => {
    const x = build();
    const out = f(x);
    const up = T.tensor(
      Array.from({ length: out.size }, () => rng.normal()),
      out.shape,
      { dtype: "float64" },
    );
    T.sum(T.mul(out, up)).backward();
    const loss = (): number => T.noGrad(() => T.tidy(() => T.sum(T.mul(f(build()), up)).item()));
    const h = 1e-6;
    for (const k of Object.keys(shapes)) {
      const v = values[k]!;
      const numeric = v.map((_, i) => {
        const old = v[i]!;
        v[i] = old + h;
        const lp = loss();
        v[i] = old - h;
        const lm = loss();
        v[i] = old;
        return (lp - lm) / (2 * h);
      });
      const analytic = x[k]!.grad?.data ?? new Float64Array(v.length);
      assertClose(analytic, numeric, 1e-5, 1e-7, `${name}: d/d${k}`);
    }
  });
}

const ids = Int32Array.from([2, 0, 2, 4]);

test("gradcheck matmul (plain, transposed, batched, broadcast)", () => {
  gradcheck("matmul", { a: [3, 4], b: [4, 2] }, (x) => T.matmul(x.a!, x.b!));
  gradcheck("matmul transA", { a: [4, 3], b: [4, 2] }, (x) => T.matmul(x.a!, x.b!, { transA: true }));
  gradcheck("matmul transB", { a: [2, 3, 4], b: [5, 4] }, (x) => T.matmul(x.a!, x.b!, { transB: true }));
  gradcheck("matmul both", { a: [2, 4, 3], b: [2, 5, 4] }, (x) =>
    T.matmul(x.a!, x.b!, { transA: true, transB: true }),
  );
  gradcheck("matmul batched transA, shared b", { a: [3, 4, 2], b: [4, 5] }, (x) =>
    T.matmul(x.a!, x.b!, { transA: true }),
  );
  gradcheck("matmul shared a", { a: [3, 4], b: [2, 4, 2] }, (x) => T.matmul(x.a!, x.b!));
  gradcheck("matmul size-1 dims", { a: [1, 1], b: [1, 3] }, (x) => T.matmul(x.a!, x.b!));
  gradcheck("linear", { x: [2, 3], w: [4, 3], b: [4] }, (x) => T.linear(x.x!, x.w!, x.b));
});

test("gradcheck elementwise", () => {
  gradcheck("add", { a: [2, 3], b: [2, 3] }, (x) => T.add(x.a!, x.b!));
  gradcheck("add broadcast", { a: [2, 3, 4], b: [4] }, (x) => T.add(x.a!, x.b!));
  gradcheck("mul", { a: [2, 3], b: [2, 3] }, (x) => T.mul(x.a!, x.b!));
  gradcheck("mul broadcast", { a: [3, 4], b: [4] }, (x) => T.mul(x.a!, x.b!));
  gradcheck("mul self", { a: [5] }, (x) => T.mul(x.a!, x.a!));
  gradcheck("scale", { a: [5] }, (x) => T.scale(x.a!, -2.5));
  gradcheck("swapAxes12", { a: [2, 3, 4, 2] }, (x) => T.mul(T.swapAxes12(x.a!), T.swapAxes12(x.a!)));
  gradcheck("reshape", { a: [2, 6] }, (x) => T.mul(T.reshape(x.a!, [3, -1]), T.reshape(x.a!, [3, 4])));
});

test("gradcheck activations, softmax, norms", () => {
  gradcheck("gelu", { x: [2, 5] }, (x) => T.gelu(x.x!));
  gradcheck("silu", { x: [2, 5] }, (x) => T.silu(x.x!));
  gradcheck("relu2", { x: [2, 5] }, (x) => T.relu2(x.x!));
  gradcheck("softcap", { x: [2, 5] }, (x) => T.softcap(T.scale(x.x!, 3), 1.5));
  gradcheck("swiglu", { g: [2, 5], u: [2, 5] }, (x) => T.swiglu(x.g!, x.u!));
  gradcheck("softmax", { x: [3, 4] }, (x) => T.softmax(x.x!));
  gradcheck("softmax dim 1", { x: [3, 1] }, (x) => T.softmax(x.x!));
  gradcheck("layerNorm", { x: [3, 6], w: [6], b: [6] }, (x) => T.layerNorm(x.x!, x.w!, x.b!));
  gradcheck("layerNorm 1 row", { x: [1, 4], w: [4], b: [4] }, (x) => T.layerNorm(x.x!, x.w!, x.b!));
  gradcheck("rmsNorm", { x: [3, 6], w: [6] }, (x) => T.rmsNorm(x.x!, x.w!));
  gradcheck("rmsNorm dim 1", { x: [2, 1], w: [1] }, (x) => T.rmsNorm(x.x!, x.w!));
});

test("gradcheck embedding, cross-entropy, reductions, dropout", () => {
  gradcheck("embedding (repeated ids)", { t: [5, 3] }, (x) => T.embedding(x.t!, ids, [2, 2]));
  gradcheck("crossEntropy", { l: [4, 6] }, (x) => T.crossEntropy(x.l!, Int32Array.from([1, 5, 0, 3])));
  gradcheck("crossEntropy ignore", { l: [4, 6] }, (x) =>
    T.crossEntropy(x.l!, Int32Array.from([1, -100, 0, -100]), { ignoreIndex: -100 }),
  );
  gradcheck("crossEntropy vocab 1 row 1", { l: [1, 3] }, (x) => T.crossEntropy(x.l!, Int32Array.from([2])));
  gradcheck("sum", { x: [3, 2] }, (x) => T.sum(x.x!));
  gradcheck("mean", { x: [3, 2] }, (x) => T.mean(x.x!));
  gradcheck("dropout", { x: [4, 8] }, (x) => T.dropout(x.x!, 0.3, 77));
});

test("gradcheck the loss primitives: token log-probs, row sums, exp, log-sigmoid, clamp, minimum", () => {
  gradcheck("tokenLogProbs", { l: [4, 6] }, (x) => T.tokenLogProbs(x.l!, Int32Array.from([1, 5, 0, 3])));
  gradcheck("tokenLogProbs ignore, [B, T, V]", { l: [2, 3, 5] }, (x) =>
    T.tokenLogProbs(x.l!, Int32Array.from([4, -100, 0, 2, -100, 1]), -100),
  );
  gradcheck("sumRows", { x: [3, 4] }, (x) => T.sumRows(x.x!));
  gradcheck("sumRows [2, 3, 2]", { x: [2, 3, 2] }, (x) => T.sumRows(x.x!));
  gradcheck("sequence sums of token log-probs", { l: [2, 3, 4] }, (x) =>
    T.sumRows(T.tokenLogProbs(x.l!, Int32Array.from([0, 3, -1, 2, 2, 1]))),
  );
  gradcheck("exp", { x: [2, 5] }, (x) => T.exp(x.x!));
  gradcheck("logSigmoid", { x: [2, 5] }, (x) => T.logSigmoid(T.scale(x.x!, 4)));
  gradcheck("sub broadcast", { a: [2, 3], b: [3] }, (x) => T.sub(x.a!, x.b!));
  gradcheck("addScalar, square", { x: [5] }, (x) => T.square(T.addScalar(x.x!, -0.3)));
  // Finite differences need distance from the kinks: the draws are normal, the bounds sit between them.
  gradcheck("clamp", { x: [3, 4] }, (x) => T.clamp(x.x!, -0.55, 0.45), 5);
  gradcheck("relu", { x: [3, 4] }, (x) => T.relu(x.x!), 5);
  gradcheck("minimum", { a: [3, 4], b: [3, 4] }, (x) => T.minimum(x.a!, x.b!));
});

test("clamp and minimum pass the gradient as PyTorch does at the bounds and at ties", () => {
  T.tidy(() => {
    const x = T.tensor([-1, 0, 0.5, 1, 2], [5], { dtype: "float64", requiresGrad: true });
    T.sum(T.clamp(x, 0, 1)).backward();
    assertClose(x.grad!.data, [0, 1, 1, 1, 0], 0, 0, "clamp gradient (bounds included)");
    const a = T.tensor([1, 2, 3], [3], { dtype: "float64", requiresGrad: true });
    const b = T.tensor([2, 2, 1], [3], { dtype: "float64", requiresGrad: true });
    T.sum(T.minimum(a, b)).backward();
    assertClose(a.grad!.data, [1, 0.5, 0], 0, 0, "minimum gradient to a");
    assertClose(b.grad!.data, [0, 0.5, 1], 0, 0, "minimum gradient to b");
  });
});

test("gradcheck attention: MHA, GQA, one KV head, rope, T=1, tq<tk, non-causal", () => {
  const att = (b: number, tq: number, tk: number, h: number, kv: number, hd: number, o: T.AttentionOptions) =>
    gradcheck(
      `attention b${b} tq${tq} tk${tk} h${h} kv${kv} hd${hd}${o.rope ? " rope" : ""}${o.causal === false ? " noncausal" : ""}`,
      { q: [b, tq, h * hd], k: [b, tk, kv * hd], v: [b, tk, kv * hd] },
      (x) => T.attention(x.q!, x.k!, x.v!, o),
    );
  att(2, 3, 3, 2, 2, 2, { heads: 2 });
  att(1, 4, 4, 4, 2, 4, { heads: 4, kvHeads: 2, rope: { theta: 10000 } });
  att(1, 3, 3, 3, 1, 2, { heads: 3, kvHeads: 1, rope: { theta: 100 } });
  att(2, 1, 1, 2, 1, 2, { heads: 2, kvHeads: 1, rope: { theta: 10000 } });
  att(1, 2, 5, 2, 1, 4, { heads: 2, kvHeads: 1, rope: { theta: 10000, pos0: 3 } });
  att(1, 3, 3, 2, 2, 2, { heads: 2, causal: false });
  gradcheck("rope", { x: [1, 3, 8] }, (x) => T.rope(x.x!, 2, 10000, 5));
  const positions = Int32Array.of(7, 0, 3, 3, 12, 1);
  gradcheck("rope at per-row positions", { x: [2, 3, 8] }, (x) => T.rope(x.x!, 2, 10000, positions));
});

test("gradcheck a small llama-style composition (shared weights, residuals)", () => {
  gradcheck("composition", { x: [1, 3, 4], w: [4, 4], n: [4] }, (x) => {
    const h = T.rmsNorm(x.x!, x.n!);
    const a = T.attention(T.linear(h, x.w!), T.linear(h, x.w!), h, { heads: 2, rope: { theta: 10 } });
    return T.add(x.x!, T.linear(T.swiglu(a, h), x.w!));
  });
});

test("errors name the op and the shapes", () => {
  const a = T.zeros([4, 8]);
  const b = T.zeros([7, 3]);
  let msg = "";
  try {
    T.matmul(a, b);
  } catch (e) {
    msg = (e as Error).message;
  }
  assertClose(
    [msg === "matmul: [4,8] x [7,3]: inner dimensions 8 and 7 differ" ? 1 : 0],
    [1],
    0,
    0,
    `message was "${msg}"`,
  );
});

test("tidy gives buffers back and reuses them; kept tensors survive", () => {
  const w = T.parameter(new Float32Array(16).fill(0.5), [4, 4]);
  const step = () =>
    T.tidy(() => {
      const x = T.full([2, 4], 1);
      const loss = T.mean(T.matmul(x, w));
      loss.backward();
      return loss.item();
    });
  step();
  step(); // the first accumulation into an existing gradient needs one more buffer, once
  const before = T.pool.stats();
  const l2 = step();
  const after = T.pool.stats();
  assertClose([l2], [2], 0, 1e-6, "loss");
  assertClose([after.allocations - before.allocations], [0], 0, 0, "allocations in a repeated step");
  assertClose([w.grad?.data[0] ?? -1], [0.75], 0, 1e-6, "gradient accumulated over three steps");
});

test("attentionCached (inference) equals attention over each sequence's keys, and refuses gradients", () => {
  const rng = new T.Rng(3);
  const rand = (shape: number[], requiresGrad = false) =>
    T.tensor(
      Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => rng.normal()),
      shape,
      { dtype: "float64", requiresGrad },
    );
  const [heads, kvHeads, hd] = [4, 2, 4];
  const seqs: [number, number][] = [
    [1, 5],
    [3, 3],
    [2, 7],
  ];
  T.tidy(() => {
    const q = rand([1, 6, heads * hd]);
    const keys = seqs.map(([, l]) => rand([l + 1, kvHeads * hd]));
    const values = seqs.map(([, l]) => rand([l + 1, kvHeads * hd]));
    const counts = Int32Array.from(seqs, ([n]) => n);
    const lengths = Int32Array.from(seqs, ([, l]) => l);
    const out = T.attentionCached(q, keys, values, counts, lengths, { heads, kvHeads });
    let row = 0;
    seqs.forEach(([n, l], s) => {
      const view = (t: T.Tensor, rows: number, from: number) =>
        T.tensor(
          t.data.slice(from * t.shape.at(-1)!, (from + rows) * t.shape.at(-1)!),
          [1, rows, t.shape.at(-1)!],
          {
            dtype: "float64",
          },
        );
      const want = T.attention(view(q, n, row), view(keys[s]!, l, 0), view(values[s]!, l, 0), {
        heads,
        kvHeads,
      });
      const got = out.data.subarray(row * heads * hd, (row + n) * heads * hd);
      assertClose(got, want.data, 1e-12, 1e-14, `sequence ${s}`);
      row += n;
    });
    const g = rand([1, 6, heads * hd], true);
    let message = "";
    try {
      T.attentionCached(g, keys, values, counts, lengths, { heads, kvHeads });
    } catch (e) {
      message = (e as Error).message;
    }
    assertClose([message.includes("inference only") ? 1 : 0], [1], 0, 0, `message was "${message}"`);
  });
});

test("gradcheck the generalised JSD of distillation: forward KL, JSD(β), reverse KL; dense and top-k teachers", () => {
  const rows = 3;
  const vocab = 6;
  const rng = new T.Rng(11);
  const teacherLogits = Float64Array.from({ length: rows * (vocab + 2) }, () => 2 * rng.normal());
  const dense: T.TeacherTarget = { kind: "logits", logits: teacherLogits, stride: vocab + 2 };
  const topk: T.TeacherTarget = {
    kind: "topk",
    ids: Int32Array.from([4, 0, 1, 5, 2, 3, 0, 1, 2]),
    logProbs: Float64Array.from([-0.4, -1.5, -2.2, -0.9, -1.0, -3.1, -0.2, -2.5, -2.6]),
    k: 3,
  };
  for (const beta of [0, 0.3, 0.9, 1]) {
    for (const temperature of [1, 1.7]) {
      gradcheck(`generalizedJsd dense β ${beta} T ${temperature}`, { s: [rows, vocab] }, (x) =>
        T.generalizedJsd(x.s!, dense, { beta, temperature }),
      );
      gradcheck(`generalizedJsd top-3 β ${beta} T ${temperature}`, { s: [rows, vocab] }, (x) =>
        T.generalizedJsd(x.s!, topk, { beta, temperature }),
      );
    }
  }
});
