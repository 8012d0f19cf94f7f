#!/usr/bin/env python3
"""Golden fixtures from PyTorch for every afterscale op and whole Llama and Qwen3 (QK-norm) blocks.

Writes test/fixtures/torch/<name>.json: inputs (float32-representable values), the forward output and
the gradients of loss = sum(output * upstream) with respect to every input, computed in float64.
The tests (test/torch.fixtures.test.ts) run the same computation through afterscale and compare.

Run where torch is installed (`pip install torch` from this machine's wheel store, or Debian's
python3-torch):  python3 tools/gen_torch_fixtures.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "torch")
gen = torch.Generator().manual_seed(1234)


def randn(*shape, scale=1.0):
    # Rounded through float32 so afterscale's float32 inputs are exactly these values.
    return (torch.randn(tuple(shape), generator=gen) * scale).float().double()


def enc(t):
    return {"shape": list(t.shape), "data": [float(x) for x in t.detach().reshape(-1).tolist()]}


def write(name, op, inputs, fn, attrs=None, int_inputs=None, grads=True):
    """inputs: dict name -> float64 tensor (leaves); fn(**inputs) -> output tensor. grads=False for
    inference-only ops: the fixture then has no gradients (and an unused upstream)."""
    leaves = {k: v.clone().requires_grad_(grads) for k, v in inputs.items()}
    out = fn(**leaves)
    upstream = randn(*out.shape)
    if grads:
        (out * upstream).sum().backward()
    doc = {
        "op": op,
        "attrs": attrs or {},
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "intInputs": {k: {"shape": list(v.shape), "data": v.reshape(-1).tolist()} for k, v in (int_inputs or {}).items()},
        "upstream": enc(upstream),
        "output": enc(out),
        "grads": {k: enc(v.grad) for k, v in leaves.items()} if grads else {},
    }
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {name}")


def rope(x, theta, pos0=0):
    """Half-split (GPT-NeoX / Hugging Face) rotary embedding of x [B, T, H, hd]."""
    _, t, _, hd = x.shape
    half = hd // 2
    freq = theta ** (-(2 * torch.arange(half, dtype=torch.float64)) / hd)
    ang = (torch.arange(t, dtype=torch.float64) + pos0)[:, None] * freq[None, :]
    cos = ang.cos()[None, :, None, :]
    sin = ang.sin()[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def attention(q, k, v, heads, kv_heads, causal=True, theta=None):
    b, t, _ = q.shape
    hd = q.shape[-1] // heads
    q = q.view(b, t, heads, hd)
    k = k.view(b, k.shape[1], kv_heads, hd)
    v = v.view(b, v.shape[1], kv_heads, hd)
    if theta is not None:
        q, k = rope(q, theta), rope(k, theta)
    rep = heads // kv_heads
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
    return o.transpose(1, 2).reshape(b, t, heads * hd)


def rope_at(x, theta, positions):
    """Half-split rotary embedding of x [B, T, H, hd] with row (b, t) at positions[b·T + t]."""
    b, t, _, hd = x.shape
    half = hd // 2
    freq = theta ** (-(2 * torch.arange(half, dtype=torch.float64)) / hd)
    ang = positions.double().reshape(b, t)[..., None] * freq
    cos = ang.cos()[:, :, None, :]
    sin = ang.sin()[:, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def attention_cached(q, keys, values, counts, lengths, heads, kv_heads):
    """Sequence s: its counts[s] query rows of q [1, Σ counts, H·hd] against the first lengths[s] rows of
    keys[s] / values[s], query i seeing keys j <= lengths[s] - counts[s] + i (its new positions come last)."""
    hd = q.shape[-1] // heads
    outs, row = [], 0
    for k, v, n, l in zip(keys, values, counts, lengths):
        qs = q[0, row : row + n].view(n, heads, hd).transpose(0, 1)
        ks = k[:l].view(l, kv_heads, hd).repeat_interleave(heads // kv_heads, dim=1).transpose(0, 1)
        vs = v[:l].view(l, kv_heads, hd).repeat_interleave(heads // kv_heads, dim=1).transpose(0, 1)
        mask = torch.arange(l)[None, :] <= (l - n + torch.arange(n))[:, None]
        o = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask)
        outs.append(o.transpose(0, 1).reshape(n, heads * hd))
        row += n
    return torch.cat(outs)[None]


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def main():
    torch.set_default_dtype(torch.float64)
    os.makedirs(OUT, exist_ok=True)

    write("matmul", "matmul", {"a": randn(3, 5), "b": randn(5, 4)}, lambda a, b: a @ b)
    write("matmul_tb", "matmul", {"a": randn(2, 3, 5), "b": randn(4, 5)}, lambda a, b: a @ b.T, {"transB": True})
    write("matmul_ta", "matmul", {"a": randn(5, 3), "b": randn(5, 4)}, lambda a, b: a.T @ b, {"transA": True})
    write(
        "matmul_batched_tt",
        "matmul",
        {"a": randn(2, 5, 3), "b": randn(2, 4, 5)},
        lambda a, b: a.transpose(-1, -2) @ b.transpose(-1, -2),
        {"transA": True, "transB": True},
    )
    write("linear_bias", "linear", {"x": randn(2, 3, 6), "w": randn(4, 6), "b": randn(4)}, lambda x, w, b: F.linear(x, w, b))
    write("add_broadcast", "add", {"a": randn(3, 4), "b": randn(4)}, lambda a, b: a + b)
    write("mul_broadcast", "mul", {"a": randn(3, 4), "b": randn(4)}, lambda a, b: a * b)
    write("scale", "scale", {"a": randn(7)}, lambda a: a * -1.7, {"s": -1.7})
    ids = torch.tensor([3, 0, 3, 9, 1, 1], dtype=torch.int32)
    write("embedding", "embedding", {"table": randn(10, 5)}, lambda table: table[ids.long()], {}, {"ids": ids})
    write(
        "layer_norm",
        "layerNorm",
        {"x": randn(4, 8), "w": randn(8), "b": randn(8)},
        lambda x, w, b: F.layer_norm(x, (8,), w, b, 1e-5),
        {"eps": 1e-5},
    )
    write("rms_norm", "rmsNorm", {"x": randn(4, 8), "w": randn(8)}, lambda x, w: rms_norm(x, w, 1e-5), {"eps": 1e-5})
    write("gelu", "gelu", {"x": randn(3, 7, scale=2)}, lambda x: F.gelu(x, approximate="tanh"))
    write("silu", "silu", {"x": randn(3, 7, scale=2)}, lambda x: F.silu(x))
    write("relu2", "relu2", {"x": randn(3, 7, scale=2)}, lambda x: F.relu(x).pow(2))
    write("swiglu", "swiglu", {"gate": randn(3, 6), "up": randn(3, 6)}, lambda gate, up: F.silu(gate) * up)
    write("softmax", "softmax", {"x": randn(3, 6, scale=3)}, lambda x: F.softmax(x, -1))
    for name, (b, t, h, kv, hd, causal, theta) in {
        "attention_mha": (2, 5, 2, 2, 4, True, None),
        "attention_gqa_rope": (2, 6, 4, 2, 8, True, 10000.0),
        "attention_mqa_rope": (1, 4, 3, 1, 4, True, 500.0),
        "attention_t1": (2, 1, 2, 1, 4, True, 10000.0),
        "attention_noncausal": (1, 5, 2, 2, 4, False, None),
    }.items():
        write(
            name,
            "attention",
            {"q": randn(b, t, h * hd), "k": randn(b, t, kv * hd), "v": randn(b, t, kv * hd)},
            lambda q, k, v, h=h, kv=kv, causal=causal, theta=theta: attention(q, k, v, h, kv, causal, theta),
            {"heads": h, "kvHeads": kv, "causal": causal, "theta": theta},
        )
    targets = torch.tensor([2, -1, 0, 6, 6], dtype=torch.int32)
    write(
        "cross_entropy",
        "crossEntropy",
        {"logits": randn(5, 7, scale=2)},
        lambda logits: F.cross_entropy(logits, targets.long(), ignore_index=-1).reshape(()),
        {"ignoreIndex": -1},
        {"targets": targets},
    )
    write("sum", "sum", {"x": randn(3, 4)}, lambda x: x.sum())
    write("mean", "mean", {"x": randn(3, 4)}, lambda x: x.mean())

    # One whole Llama block: x + attn(rmsnorm(x)), then + SwiGLU MLP(rmsnorm(.)); GQA + rope.
    d, h, kv, hidden, eps, theta = 16, 4, 2, 48, 1e-5, 10000.0
    hd = d // h
    block_inputs = {
        "x": randn(2, 6, d),
        "attnNorm": 1 + randn(d, scale=0.1),
        "wq": randn(h * hd, d, scale=0.3),
        "wk": randn(kv * hd, d, scale=0.3),
        "wv": randn(kv * hd, d, scale=0.3),
        "wo": randn(d, h * hd, scale=0.3),
        "mlpNorm": 1 + randn(d, scale=0.1),
        "wGate": randn(hidden, d, scale=0.3),
        "wUp": randn(hidden, d, scale=0.3),
        "wDown": randn(d, hidden, scale=0.3),
    }

    def block(x, attnNorm, wq, wk, wv, wo, mlpNorm, wGate, wUp, wDown):
        n = rms_norm(x, attnNorm, eps)
        x = x + F.linear(attention(F.linear(n, wq), F.linear(n, wk), F.linear(n, wv), h, kv, True, theta), wo)
        m = rms_norm(x, mlpNorm, eps)
        return x + F.linear(F.silu(F.linear(m, wGate)) * F.linear(m, wUp), wDown)

    write(
        "llama_block",
        "llamaBlock",
        block_inputs,
        block,
        {"dModel": d, "heads": h, "kvHeads": kv, "hidden": hidden, "normEps": eps, "ropeTheta": theta},
    )

    # Optimizer: three AdamW steps and a clipped gradient, as torch.optim.AdamW / clip_grad_norm_.
    p0 = randn(6)
    grads = [randn(6) for _ in range(3)]
    p = p0.clone().float().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for g in grads:
        p.grad = g.clone().float()
        opt.step()
    q = torch.nn.Parameter(randn(5).float())
    g_before = randn(5, scale=3)
    q.grad = g_before.clone().float()
    total = torch.nn.utils.clip_grad_norm_([q], 1.0)  # clips q.grad in place
    doc = {
        "adamw": {
            "lr": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weightDecay": 0.1,
            "param": enc(p0), "grads": [enc(g) for g in grads], "result": enc(p.detach().double()),
        },
        "clip": {"maxNorm": 1.0, "grad": enc(g_before), "norm": float(total), "clipped": enc(q.grad.double())},
    }
    with open(os.path.join(OUT, "optim.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote optim")

    # Batched decoding (after everything else, so the fixtures above keep their values): rope at per-row
    # positions, and attention of several sequences against their own caches (inference only: no grads).
    positions = torch.tensor([7, 0, 3, 3, 12, 1], dtype=torch.int32)
    write(
        "rope_positions",
        "rope",
        {"x": randn(2, 3, 8)},
        lambda x: rope_at(x.view(2, 3, 2, 4), 10000.0, positions).reshape(2, 3, 8),
        {"heads": 2, "theta": 10000.0},
        {"positions": positions},
    )
    counts, lengths, h, kv, hd = [1, 3, 2], [5, 3, 7], 4, 2, 4
    cached = {"q": randn(1, sum(counts), h * hd)}
    for s_, l in enumerate(lengths):
        cached[f"keys{s_}"] = randn(l + 1, kv * hd)  # a cache holds more rows than the step reads
        cached[f"values{s_}"] = randn(l + 1, kv * hd)
    write(
        "attention_cached",
        "attentionCached",
        cached,
        lambda q, **kv_: attention_cached(
            q, [kv_[f"keys{i}"] for i in range(3)], [kv_[f"values{i}"] for i in range(3)], counts, lengths, h, kv
        ),
        {"heads": h, "kvHeads": kv},
        {"counts": torch.tensor(counts, dtype=torch.int32), "lengths": torch.tensor(lengths, dtype=torch.int32)},
        grads=False,
    )

    # Levers (after everything else, so the fixtures above keep their values): the logit soft-cap, and a
    # Qwen3 block, a Llama block with RMSNorm gains on each head's q and k before rotary.
    write("softcap", "softcap", {"x": randn(3, 7, scale=20)}, lambda x: 15.0 * torch.tanh(x / 15.0), {"cap": 15.0})
    qwen_inputs = dict(block_inputs, x=randn(2, 6, d), qNorm=1 + randn(hd, scale=0.2), kNorm=1 + randn(hd, scale=0.2))

    def qwen3_block(x, attnNorm, wq, wk, wv, wo, mlpNorm, wGate, wUp, wDown, qNorm, kNorm):
        n = rms_norm(x, attnNorm, eps)
        b_, t_ = x.shape[0], x.shape[1]
        q = rms_norm(F.linear(n, wq).view(b_, t_, h, hd), qNorm, eps).reshape(b_, t_, h * hd)
        k = rms_norm(F.linear(n, wk).view(b_, t_, kv, hd), kNorm, eps).reshape(b_, t_, kv * hd)
        x = x + F.linear(attention(q, k, F.linear(n, wv), h, kv, True, theta), wo)
        m = rms_norm(x, mlpNorm, eps)
        return x + F.linear(F.silu(F.linear(m, wGate)) * F.linear(m, wUp), wDown)

    write(
        "qwen3_block",
        "qwen3Block",
        qwen_inputs,
        qwen3_block,
        {"dModel": d, "heads": h, "kvHeads": kv, "hidden": hidden, "normEps": eps, "ropeTheta": theta},
    )
    print(f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
