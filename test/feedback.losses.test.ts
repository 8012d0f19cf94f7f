// The DPO-family and GRPO losses against PyTorch renderings of Hugging Face TRL's code
// (tools/gen_feedback_fixtures.py): loss, gradient w.r.t. the policy log-probs, gradient w.r.t. the logits
// through tokenLogProbs and sumRows, and the logged metrics. Float64 on the reference backend to 1e-9
// relative; float32 on each backend to 1e-4 relative + 2e-5 absolute (the logits gradients are O(0.1)).
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { nativeBackend, setBackend } from "../src/backend/index.js";
import {
  type DpoLossType,
  dpoLoss,
  type GrpoLossType,
  groupAdvantages,
  grpoLoss,
  sequenceLogProbs,
} from "../src/feedback/index.js";
import * as T from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";

interface Arr {
  shape: number[];
  data: number[];
}
type Pair<V> = { chosen: V; rejected: V };
interface DpoFixture {
  kind: "dpo";
  attrs: { type: DpoLossType; beta: number; labelSmoothing: number; average: boolean };
  ignoreIndex: number;
  logits: Pair<Arr>;
  targets: Pair<Arr>;
  ref: Pair<Arr>;
  logps: Pair<Arr>;
  loss: number;
  gradLogps: Pair<Arr>;
  gradLogits: Pair<Arr>;
  metrics: Record<string, number>;
}
interface GrpoFixture {
  kind: "grpo";
  attrs: {
    beta: number;
    epsilon: number;
    lossType: GrpoLossType;
    maxCompletionLength: number;
    groupSize: number;
  };
  ignoreIndex: number;
  logits: Arr;
  targets: Arr;
  mask: Arr;
  rewards: Arr;
  advantages: Arr;
  old: Arr | null;
  ref: Arr;
  logps: Arr;
  loss: number;
  gradLogps: Arr;
  gradLogits: Arr;
  metrics: Record<string, number>;
}

const here = dirname(fileURLToPath(import.meta.url));
const fixtureDir = join(here, "..", "..", "test", "fixtures", "feedback");
const files = readdirSync(fixtureDir).filter((f) => f.endsWith(".json"));
const sides = ["chosen", "rejected"] as const;

function checkDpo(fx: DpoFixture, name: string, dtype: T.DType, rtol: number, atol: number): void {
  const opts = { type: fx.attrs.type, beta: fx.attrs.beta, labelSmoothing: fx.attrs.labelSmoothing };
  T.tidy(() => {
    // From the sequence log-probs: loss, their gradient, the metrics.
    const lp = {
      chosen: T.tensor(fx.logps.chosen.data, fx.logps.chosen.shape, { dtype, requiresGrad: true }),
      rejected: T.tensor(fx.logps.rejected.data, fx.logps.rejected.shape, { dtype, requiresGrad: true }),
    };
    const r = dpoLoss(lp.chosen, lp.rejected, fx.ref.chosen.data, fx.ref.rejected.data, opts);
    assertClose([r.loss.item()], [fx.loss], rtol, atol, `${name} (${dtype}) loss`);
    r.loss.backward();
    for (const s of sides)
      assertClose(lp[s].grad!.data, fx.gradLogps[s].data, rtol, atol, `${name} d/dlogps ${s}`);
    for (const [k, want] of Object.entries(fx.metrics)) {
      const got = r.metrics[k as keyof typeof r.metrics];
      assertClose([got], [want], rtol, atol, `${name} (${dtype}) metric ${k}`);
    }
  });
  T.tidy(() => {
    // The whole chain from the logits.
    const logits = {
      chosen: T.tensor(fx.logits.chosen.data, fx.logits.chosen.shape, { dtype, requiresGrad: true }),
      rejected: T.tensor(fx.logits.rejected.data, fx.logits.rejected.shape, { dtype, requiresGrad: true }),
    };
    const seq = (s: (typeof sides)[number]) =>
      sequenceLogProbs(logits[s], Int32Array.from(fx.targets[s].data), {
        ignoreIndex: fx.ignoreIndex,
        average: fx.attrs.average,
      });
    const pc = seq("chosen");
    const pr = seq("rejected");
    assertClose(pc.data, fx.logps.chosen.data, rtol, atol, `${name} (${dtype}) chosen log-probs`);
    assertClose(pr.data, fx.logps.rejected.data, rtol, atol, `${name} (${dtype}) rejected log-probs`);
    const r = dpoLoss(pc, pr, fx.ref.chosen.data, fx.ref.rejected.data, opts);
    assertClose([r.loss.item()], [fx.loss], rtol, atol, `${name} (${dtype}) loss from logits`);
    r.loss.backward();
    for (const s of sides)
      assertClose(
        logits[s].grad!.data,
        fx.gradLogits[s].data,
        rtol,
        atol,
        `${name} (${dtype}) d/dlogits ${s}`,
      );
  });
}

function checkGrpo(fx: GrpoFixture, name: string, dtype: T.DType, rtol: number, atol: number): void {
  const a = fx.attrs;
  const advantages = groupAdvantages(fx.rewards.data, a.groupSize);
  assertClose(advantages, fx.advantages.data, 1e-12, 1e-12, `${name} advantages`);
  const opts = {
    beta: a.beta,
    epsilon: a.epsilon,
    lossType: a.lossType,
    maxCompletionLength: a.maxCompletionLength,
  };
  const inputs = (logProbs: T.Tensor) => ({
    logProbs,
    ...(fx.old ? { oldLogProbs: fx.old.data } : {}),
    refLogProbs: fx.ref.data,
    advantages,
    mask: fx.mask.data,
  });
  T.tidy(() => {
    const lp = T.tensor(fx.logps.data, fx.logps.shape, { dtype, requiresGrad: true });
    const r = grpoLoss(inputs(lp), opts);
    assertClose([r.loss.item()], [fx.loss], rtol, atol, `${name} (${dtype}) loss`);
    r.loss.backward();
    assertClose(lp.grad!.data, fx.gradLogps.data, rtol, atol, `${name} (${dtype}) d/dlogps`);
    for (const [k, want] of Object.entries(fx.metrics)) {
      const got = r.metrics[k as keyof typeof r.metrics];
      assertClose([got ?? Number.NaN], [want], rtol, atol, `${name} (${dtype}) metric ${k}`);
    }
  });
  T.tidy(() => {
    const logits = T.tensor(fx.logits.data, fx.logits.shape, { dtype, requiresGrad: true });
    const lp = T.tokenLogProbs(logits, Int32Array.from(fx.targets.data), fx.ignoreIndex);
    assertClose(lp.data, fx.logps.data, rtol, atol, `${name} (${dtype}) token log-probs`);
    const r = grpoLoss(inputs(lp), opts);
    assertClose([r.loss.item()], [fx.loss], rtol, atol, `${name} (${dtype}) loss from logits`);
    r.loss.backward();
    assertClose(logits.grad!.data, fx.gradLogits.data, rtol, atol, `${name} (${dtype}) d/dlogits`);
  });
}

function check(fx: DpoFixture | GrpoFixture, name: string, dtype: T.DType, rtol: number, atol: number) {
  if (fx.kind === "dpo") checkDpo(fx, name, dtype, rtol, atol);
  else checkGrpo(fx, name, dtype, rtol, atol);
}

test("feedback fixture set is complete", () => {
  const kinds = files.map((f) => f.split("_")[0]);
  assert.ok(kinds.filter((k) => k === "dpo").length >= 6, `DPO fixtures in ${fixtureDir}`);
  assert.ok(kinds.filter((k) => k === "grpo").length >= 4, `GRPO fixtures in ${fixtureDir}`);
});

for (const file of files) {
  const name = file.replace(/\.json$/, "");
  const fx = JSON.parse(readFileSync(join(fixtureDir, file), "utf8")) as DpoFixture | GrpoFixture;
  test(`feedback fixture ${name}: float64 reference`, () => check(fx, name, "float64", 1e-9, 1e-10));
  for (const b of ["reference", "native"] as const) {
    test(`feedback fixture ${name}: float32 ${b}`, (t) => {
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

test("groupAdvantages: unbiased std per group, a group of one gets 0, scale off leaves r − mean", () => {
  // Group [1, 2, 3]: mean 2, unbiased std 1.
  assertClose(
    groupAdvantages([1, 2, 3, 5, 5, 5], 3),
    [-1 / 1.0001, 0, 1 / 1.0001, 0, 0, 0],
    1e-12,
    0,
    "scaled",
  );
  assertClose(groupAdvantages([1, 2, 3, 7], 2, { scale: false }), [-0.5, 0.5, -2, 2], 0, 0, "unscaled");
  assertClose(groupAdvantages([4, -1], 1), [0, 0], 0, 0, "groups of one");
  assert.throws(() => groupAdvantages([1, 2, 3], 2), /3 rewards do not split into groups of 2/);
  assert.throws(() => groupAdvantages([1, Number.NaN], 2), /rewards\[1\] is NaN/);
});

test("dpoLoss and grpoLoss refuse bad options and inputs with a clear error", () => {
  T.tidy(() => {
    const p = T.tensor([-3, -4], [2], { requiresGrad: true });
    const ref = [-3.5, -3.5];
    assert.throws(() => dpoLoss(p, p, ref, ref, { type: "hinge", labelSmoothing: 0.1 }), /not "hinge"/);
    assert.throws(() => dpoLoss(p, p, ref, ref, { type: "robust", labelSmoothing: 0.5 }), /\[0, 0.5\)/);
    assert.throws(() => dpoLoss(p, p, ref, ref, { beta: 0 }), /beta must be a positive number/);
    assert.throws(() => dpoLoss(p, p, p, ref), /refChosen must not require grad/);
    assert.throws(() => dpoLoss(p, p, [1, 2, 3], ref), /refChosen has 3 values, expected 2/);
    assert.throws(
      () => dpoLoss(p, p, ref, ref, { type: "kto" as DpoLossType }),
      /unknown type "kto" \(expected sigmoid, ipo, hinge, robust\)/,
    );
    const lp = T.tensor([-1, -2, -3, -4], [2, 2], { requiresGrad: true });
    const base = { logProbs: lp, advantages: [1, -1], mask: [1, 1, 1, 0] };
    assert.throws(() => grpoLoss(base, { beta: 0.1 }), /beta > 0 needs refLogProbs/);
    assert.throws(() => grpoLoss({ ...base, advantages: [1] }), /1 advantages for 2 sequences/);
    assert.throws(() => grpoLoss({ ...base, mask: [1, 1] }), /mask has 2 values, expected 4/);
    assert.throws(() => grpoLoss(base, { epsilon: 1 }), /epsilon must be in \[0, 1\)/);
  });
});

test("GRPO on-policy: the loss is −mean(A) and each completion token's gradient is −A/len(sequence)", () => {
  T.tidy(() => {
    const lp = T.tensor([-1, -2, -3, -4, -5, -6], [2, 3], { dtype: "float64", requiresGrad: true });
    const advantages = [0.5, -2];
    const mask = [1, 1, 0, 1, 1, 1];
    const r = grpoLoss({ logProbs: lp, advantages, mask });
    assertClose([r.loss.item()], [-(0.5 - 2) / 2], 1e-15, 0, "loss");
    r.loss.backward();
    assertClose(
      lp.grad!.data,
      [-0.25, -0.25, 0, 2 / 3, 2 / 3, 2 / 3].map((g) => g / 2),
      1e-15,
      0,
      "gradient",
    );
    assert.equal(r.metrics.kl, null);
    assert.equal(r.metrics.clipFraction, 0);
  });
});
