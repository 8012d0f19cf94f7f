// Golden values from PyTorch (tools/gen_torch_fixtures.py): every op's output and gradients (output only for
// the inference-only cached attention), and a whole Llama block, match PyTorch — in float64 on the reference
// backend (tightly) and in float32 on each backend.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { nativeBackend, setBackend } from "../src/backend/index.js";
import type { ModelConfig } from "../src/nn/config.js";
import { decoderBlock } from "../src/nn/decoder.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import * as T from "../src/tensor/index.js";
import { assertClose } from "./helpers/close.js";

interface Arr {
  shape: number[];
  data: number[];
}
interface Fixture {
  op: string;
  attrs: Record<string, unknown>;
  inputs: Record<string, Arr>;
  intInputs: Record<string, Arr>;
  upstream: Arr;
  output: Arr;
  grads: Record<string, Arr>;
}

const here = dirname(fileURLToPath(import.meta.url));
// Compiled tests run from dist/test; fixtures stay in the source tree.
const fixtureDir = join(here, "..", "..", "test", "fixtures", "torch");

function run(fx: Fixture, x: Record<string, T.Tensor>, ints: Record<string, Int32Array>): T.Tensor {
  const a = fx.attrs;
  switch (fx.op) {
    case "matmul":
      return T.matmul(x.a!, x.b!, { transA: a.transA === true, transB: a.transB === true });
    case "linear":
      return T.linear(x.x!, x.w!, x.b);
    case "add":
      return T.add(x.a!, x.b!);
    case "mul":
      return T.mul(x.a!, x.b!);
    case "scale":
      return T.scale(x.a!, a.s as number);
    case "embedding":
      return T.embedding(x.table!, ints.ids!);
    case "layerNorm":
      return T.layerNorm(x.x!, x.w!, x.b!, a.eps as number);
    case "rmsNorm":
      return T.rmsNorm(x.x!, x.w!, a.eps as number);
    case "gelu":
      return T.gelu(x.x!);
    case "silu":
      return T.silu(x.x!);
    case "relu2":
      return T.relu2(x.x!);
    case "swiglu":
      return T.swiglu(x.gate!, x.up!);
    case "softmax":
      return T.softmax(x.x!);
    case "attention":
      return T.attention(x.q!, x.k!, x.v!, {
        heads: a.heads as number,
        kvHeads: a.kvHeads as number,
        causal: a.causal as boolean,
        ...(a.theta ? { rope: { theta: a.theta as number } } : {}),
      });
    case "rope":
      return T.rope(x.x!, a.heads as number, a.theta as number, ints.positions!);
    case "attentionCached": {
      const seqs = ints.counts!.length;
      const at = (prefix: string) => Array.from({ length: seqs }, (_, i) => x[`${prefix}${i}`]!);
      return T.attentionCached(x.q!, at("keys"), at("values"), ints.counts!, ints.lengths!, {
        heads: a.heads as number,
        kvHeads: a.kvHeads as number,
      });
    }
    case "crossEntropy":
      return T.crossEntropy(x.logits!, ints.targets!, { ignoreIndex: a.ignoreIndex as number });
    case "sum":
      return T.sum(x.x!);
    case "mean":
      return T.mean(x.x!);
    case "llamaBlock":
    case "qwen3Block": {
      // A Llama block (Qwen3's adds RMSNorm gains on each head's q and k).
      const cfg: ModelConfig = {
        family: "llama",
        vocab: 2,
        dModel: a.dModel as number,
        layers: 1,
        heads: a.heads as number,
        kvHeads: a.kvHeads as number,
        context: 64,
        mlpRatio: 1,
        mlpHidden: a.hidden as number,
        normEps: a.normEps as number,
        ropeTheta: a.ropeTheta as number,
        dropout: 0,
        tie: true,
        qkNorm: fx.op === "qwen3Block",
      };
      const w = {
        attnNorm: { weight: x.attnNorm! },
        q: { weight: x.wq! },
        k: { weight: x.wk! },
        v: { weight: x.wv! },
        qNorm: x.qNorm,
        kNorm: x.kNorm,
        o: { weight: x.wo! },
        mlp: {
          norm: { weight: x.mlpNorm! },
          gate: { weight: x.wGate! },
          up: { weight: x.wUp! },
          down: { weight: x.wDown! },
        },
      };
      return decoderBlock(x.x!, w, cfg, { dropoutSeed: null });
    }
    case "softcap":
      return T.softcap(x.x!, a.cap as number);
    default:
      throw new Error(`no runner for fixture op ${fx.op}`);
  }
}

function check(fx: Fixture, name: string, dtype: T.DType, rtol: number, atol: number): void {
  // Inference-only ops (attentionCached) come without gradients.
  const requiresGrad = Object.keys(fx.grads).length > 0;
  T.tidy(() => {
    const x: Record<string, T.Tensor> = {};
    for (const [k, v] of Object.entries(fx.inputs)) x[k] = T.tensor(v.data, v.shape, { dtype, requiresGrad });
    const ints: Record<string, Int32Array> = {};
    for (const [k, v] of Object.entries(fx.intInputs)) ints[k] = Int32Array.from(v.data);
    const out = run(fx, x, ints);
    assertClose(out.data, fx.output.data, rtol, atol, `${name} (${dtype}) output`);
    if (!requiresGrad) return;
    const up = T.tensor(fx.upstream.data, fx.upstream.shape, { dtype });
    T.sum(T.mul(out, up)).backward();
    for (const [k, g] of Object.entries(fx.grads)) {
      const grad = x[k]!.grad;
      if (!grad) throw new Error(`${name}: no gradient for ${k}`);
      assertClose(grad.data, g.data, rtol, atol, `${name} (${dtype}) grad ${k}`);
    }
  });
}

const files = readdirSync(fixtureDir).filter((f) => f.endsWith(".json") && f !== "optim.json");

test("fixture set is complete", () => {
  if (files.length < 20)
    throw new Error(`expected the PyTorch fixtures in ${fixtureDir}, found ${files.length}`);
});

for (const file of files) {
  const name = file.replace(/\.json$/, "");
  const fx = JSON.parse(readFileSync(join(fixtureDir, file), "utf8")) as Fixture;
  test(`torch fixture ${name}: float64 reference`, () => check(fx, name, "float64", 1e-9, 1e-10));
  for (const b of ["reference", "native"] as const) {
    test(`torch fixture ${name}: float32 ${b}`, (t) => {
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

test("torch fixture optim: AdamW steps and gradient clipping match torch.optim", () => {
  const fx = JSON.parse(readFileSync(join(fixtureDir, "optim.json"), "utf8"));
  const a = fx.adamw;
  const p = T.parameter(Float32Array.from(a.param.data), a.param.shape);
  const opt = new AdamW([{ params: [p] }], {
    lr: a.lr,
    beta1: a.beta1,
    beta2: a.beta2,
    eps: a.eps,
    weightDecay: a.weightDecay,
  });
  for (const g of a.grads) {
    p.grad = T.keep(T.tensor(g.data, g.shape));
    opt.update();
    opt.zeroGrad();
  }
  assertClose(p.data, a.result.data, 1e-5, 1e-7, "adamw");
  const c = fx.clip;
  const q = T.parameter(new Float32Array(c.grad.data.length), c.grad.shape);
  q.grad = T.keep(T.tensor(c.grad.data, c.grad.shape));
  const norm = clipGradNorm([q], c.maxNorm);
  assertClose([norm], [c.norm], 1e-6, 0, "clip norm");
  assertClose(q.grad.data, c.clipped.data, 1e-6, 1e-7, "clipped grad");
});
