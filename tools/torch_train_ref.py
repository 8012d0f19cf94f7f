#!/usr/bin/env python3
"""PyTorch reference for afterscale's training loop: the same Llama, the same initial weights, the same
batches, the same AdamW / warmup + cosine / gradient clipping, 100 steps; writes the per-step losses to
test/fixtures/train/torch_llama_100.json, which test/train.torch.test.ts compares with afterscale's.

Inputs (written by afterscale: node dist/tools/torch_train_ref_inputs.js) in test/fixtures/train/:
config.json, llama_init.safetensors (parsed by hand here: 8-byte header length, JSON header, raw
little-endian bytes; no `safetensors` package needed) and batches.json.

The model mirrors src/nn/llama.ts: RMSNorm x·rsqrt(mean x² + eps)·w, half-split rotary embeddings on q and
k, grouped-query attention by repeat_interleave of the kv heads, causal softmax(q·kᵀ/√hd), o_proj, SwiGLU
(silu(gate)·up → down_proj), final RMSNorm, untied lm_head. Float32 throughout, torch.optim.AdamW.

    python3 tools/torch_train_ref.py
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "train")


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    data = buf[8 + n :]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", f"{name}: {e['dtype']}"
        begin, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).reshape(e["shape"])
        out[name] = t.clone()
    return out


def lr_at(step, c):
    """src/train/schedule.ts: linear warmup, then cosine from lr to lr·minLrRatio."""
    lr, r, warmup, steps = c["lr"], c["minLrRatio"], c["warmupSteps"], c["steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p)))


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):
    """Half-split rotary embedding of x [B, T, H, hd] (as tools/gen_torch_fixtures.py), tables in float64."""
    _, t, _, hd = x.shape
    half = hd // 2
    freq = theta ** (-(2 * torch.arange(half, dtype=torch.float64)) / hd)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * freq[None, :]
    cos = ang.cos().float()[None, :, None, :]
    sin = ang.sin().float()[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def forward(p, mc, ids):
    b, t = ids.shape
    d, heads, kv = mc["dModel"], mc["heads"], mc["kvHeads"]
    hd = d // heads
    eps = mc["normEps"]
    x = p["model.embed_tokens.weight"][ids]
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    for l in range(mc["layers"]):
        w = lambda n: p[f"model.layers.{l}.{n}"]  # noqa: E731
        n = rms_norm(x, w("input_layernorm.weight"), eps)
        q = (n @ w("self_attn.q_proj.weight").T).view(b, t, heads, hd)
        k = (n @ w("self_attn.k_proj.weight").T).view(b, t, kv, hd)
        v = (n @ w("self_attn.v_proj.weight").T).view(b, t, kv, hd)
        q, k = rope(q, mc["ropeTheta"]), rope(k, mc["ropeTheta"])
        k = k.repeat_interleave(heads // kv, dim=2)
        v = v.repeat_interleave(heads // kv, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, hd]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        a = s.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        a = a.transpose(1, 2).reshape(b, t, heads * hd)
        x = x + a @ w("self_attn.o_proj.weight").T
        m = rms_norm(x, w("post_attention_layernorm.weight"), eps)
        h = F.silu(m @ w("mlp.gate_proj.weight").T) * (m @ w("mlp.up_proj.weight").T)
        x = x + h @ w("mlp.down_proj.weight").T
    x = rms_norm(x, p["model.norm.weight"], eps)
    return x @ p["lm_head.weight"].T


def main():
    torch.manual_seed(0)
    with open(os.path.join(HERE, "config.json")) as f:
        c = json.load(f)
    with open(os.path.join(HERE, "batches.json")) as f:
        doc = json.load(f)
    mc, batches = doc["modelConfig"], doc["batches"]
    assert not mc["tie"] and mc["family"] == "llama" and c["gradAccum"] == 1 and c["dropout"] == 0
    params = {k: v.requires_grad_(True) for k, v in read_safetensors(os.path.join(HERE, "llama_init.safetensors")).items()}
    # Weight decay on matrices only: not on the embedding or the norms (src/nn decayGroups).
    decay = [v for k, v in params.items() if v.ndim == 2 and k != "model.embed_tokens.weight"]
    no_decay = [v for k, v in params.items() if not (v.ndim == 2 and k != "model.embed_tokens.weight")]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": c["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=c["lr"],
        betas=(c["beta1"], c["beta2"]),
        eps=c["eps"],
        foreach=False,
    )
    b, t = c["batchSize"], c["context"]
    losses, grad_norms = [], []
    for step in range(c["steps"]):
        ids = torch.tensor(batches[step]["inputs"], dtype=torch.long).view(b, t)
        targets = torch.tensor(batches[step]["targets"], dtype=torch.long).view(b * t)
        logits = forward(params, mc, ids)
        loss = F.cross_entropy(logits.view(b * t, -1), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), c["gradClip"])
        for g in opt.param_groups:
            g["lr"] = lr_at(step, c)
        opt.step()
        losses.append(loss.item())
        grad_norms.append(norm.item())
    out = {
        "about": "per-step training losses of tools/torch_train_ref.py (PyTorch float32, torch.optim.AdamW)",
        "torch": torch.__version__,
        "steps": c["steps"],
        "losses": losses,
        "gradNorms": grad_norms,
    }
    with open(os.path.join(HERE, "torch_llama_100.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps; wrote torch_llama_100.json")


if __name__ == "__main__":
    main()
