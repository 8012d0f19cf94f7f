// The distillation loss against PyTorch (tools/gen_distill_fixtures.py): TRL's GKDTrainer.generalized_jsd_loss
// for forward KL, reverse KL and the generalised JSD at several temperatures, mixed with the hard-label
// cross-entropy; and the documented top-k rule. Loss, divergence and the gradient w.r.t. the student
// logits; float64 on the reference backend to 1e-9 relative, float32 on each backend to 1e-4 + 2e-5.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { nativeBackend, setBackend } from "../src/backend/index.js";
import { distillationLoss, topKLogProbs } from "../src/compress/index.js";
import * as T from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";

interface Arr {
  shape: number[];
  data: number[];
}
interface Fixture {
  attrs: { alpha: number; beta: number; temperature: number; topk: number | null };
  student: Arr;
  targets: Arr;
  teacher?: Arr;
  topkIds?: Arr;
  topkLogProbs?: Arr;
  divergence: number;
  loss: number;
  grad: Arr;
}

const here = dirname(fileURLToPath(import.meta.url));
const fixtureDir = join(here, "..", "..", "test", "fixtures", "distill");
const files = readdirSync(fixtureDir).filter((f) => f.endsWith(".json"));

function teacherOf(fx: Fixture, dtype: T.DType): T.TeacherTarget {
  if (fx.teacher) {
    const v = fx.teacher.shape.at(-1)!;
    const logits =
      dtype === "float64" ? Float64Array.from(fx.teacher.data) : Float32Array.from(fx.teacher.data);
    return { kind: "logits", logits, stride: v };
  }
  return {
    kind: "topk",
    ids: Int32Array.from(fx.topkIds!.data),
    logProbs: Float32Array.from(fx.topkLogProbs!.data),
    k: fx.attrs.topk!,
  };
}

function check(fx: Fixture, name: string, dtype: T.DType, rtol: number, atol: number): void {
  T.tidy(() => {
    const logits = T.tensor(fx.student.data, fx.student.shape, { dtype, requiresGrad: true });
    const { alpha, beta, temperature } = fx.attrs;
    const r = distillationLoss(logits, Int32Array.from(fx.targets.data), teacherOf(fx, dtype), {
      alpha,
      beta,
      temperature,
    });
    assertClose([r.divergence], [fx.divergence], rtol, atol, `${name} (${dtype}) divergence`);
    assertClose([r.loss.item()], [fx.loss], rtol, atol, `${name} (${dtype}) loss`);
    r.loss.backward();
    assertClose(logits.grad!.data, fx.grad.data, rtol, atol, `${name} (${dtype}) d/dlogits`);
  });
}

test("distillation fixture set covers forward KL, reverse KL, JSD, temperatures and top-k", () => {
  const fxs = files.map((f) => JSON.parse(readFileSync(join(fixtureDir, f), "utf8")) as Fixture);
  const betas = new Set(fxs.map((f) => f.attrs.beta));
  for (const b of [0, 1, 0.5]) assert.ok(betas.has(b), `a fixture with beta ${b}`);
  assert.ok(fxs.some((f) => f.attrs.temperature !== 1));
  assert.ok(fxs.some((f) => f.attrs.alpha > 0 && f.attrs.alpha < 1));
  assert.ok(fxs.filter((f) => f.attrs.topk !== null).length >= 3);
});

for (const file of files) {
  const name = file.replace(/\.json$/, "");
  const fx = JSON.parse(readFileSync(join(fixtureDir, file), "utf8")) as Fixture;
  test(`distillation fixture ${name}: float64 reference`, () => {
    setBackend("reference");
    try {
      check(fx, name, "float64", 1e-9, 1e-10);
    } finally {
      setBackend("native");
    }
  });
  for (const b of ["reference", "native"] as const) {
    test(`distillation fixture ${name}: float32 ${b}`, (t) => {
      if (b === "native" && !nativeBackend()) return t.skip("native addon not built");
      setBackend(b);
      try {
        check(fx, name, "float32", 1e-4, 2e-5);
      } finally {
        setBackend("native");
      }
    });
  }
}

test("topKLogProbs keeps the k most likely tokens, most likely first, ties to the lower id", () => {
  // Row 0: logits [0, 3, 1, 3, -2] over vocab 5 of stride 6 (the sixth column is padding, never chosen).
  const logits = Float32Array.from([0, 3, 1, 3, -2, 99, 5, 4, 3, 2, 1, 99]);
  const t = topKLogProbs(logits, 2, 6, 5, 3);
  assert.deepEqual(Array.from(t.ids), [1, 3, 2, 0, 1, 2]);
  const lse0 = Math.log([0, 3, 1, 3, -2].reduce((s, x) => s + Math.exp(x), 0));
  assertClose(Array.from(t.logProbs.subarray(0, 3)), [3 - lse0, 3 - lse0, 1 - lse0], 1e-6, 1e-6, "row 0");
  assert.throws(() => topKLogProbs(logits, 2, 6, 5, 6), /k must be in \[1, 5\]/);
});

test("the divergence refuses bad options and mismatched teachers with a clear error", () => {
  T.tidy(() => {
    const s = T.tensor([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
    const teacher: T.TeacherTarget = { kind: "logits", logits: new Float32Array(6), stride: 3 };
    assert.throws(
      () => T.generalizedJsd(s, teacher, { beta: 1.5, temperature: 1 }),
      /beta must be in \[0, 1\]/,
    );
    assert.throws(() => T.generalizedJsd(s, teacher, { beta: 0, temperature: 0 }), /temperature must be > 0/);
    assert.throws(
      () =>
        T.generalizedJsd(
          s,
          { kind: "logits", logits: new Float32Array(4), stride: 2 },
          { beta: 0, temperature: 1 },
        ),
      /do not cover 2 rows of 3/,
    );
    const ids = Int32Array.from([0, 7]);
    assert.throws(
      () =>
        T.generalizedJsd(
          s,
          { kind: "topk", ids, logProbs: new Float32Array(2), k: 1 },
          { beta: 0, temperature: 1 },
        ),
      /teacher token id 7 is outside \[0, 3\)/,
    );
    assert.throws(
      () => distillationLoss(s, Int32Array.from([0, 1]), teacher, { alpha: 2, beta: 0, temperature: 1 }),
      /alpha must be in \[0, 1\]/,
    );
  });
});

test("identical teacher and student: every divergence is 0 and so is its gradient", () => {
  T.tidy(() => {
    const values = [0.3, -1.2, 2.0, 0.1, 0.5, 0.5, -3, 1];
    for (const beta of [0, 0.3, 1]) {
      const s = T.tensor(values, [2, 4], { dtype: "float64", requiresGrad: true });
      const d = T.generalizedJsd(
        s,
        { kind: "logits", logits: Float64Array.from(values), stride: 4 },
        { beta, temperature: 2 },
      );
      assertClose([d.item()], [0], 0, 1e-15, `beta ${beta} divergence`);
      d.backward();
      assertClose(s.grad!.data, new Array(8).fill(0), 0, 1e-15, `beta ${beta} gradient`);
    }
  });
});
