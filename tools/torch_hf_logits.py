#!/usr/bin/env python3
"""PyTorch reference for afterscale's Hugging Face Llama export.

Reads test/fixtures/io/hf-{llama,gpt2}/{config.json, model.safetensors} (safetensors parsed by hand: only torch is
needed), runs a minimal LlamaForCausalLM written after transformers' modeling_llama.py (RMSNorm, rotate_half
rotary embeddings, repeat_kv grouped-query attention, SwiGLU) in float64, and writes the logits for a fixed
token sequence to test/fixtures/io/hf-{llama,gpt2}-logits.json. test/io.torch.test.ts compares afterscale's logits
for the same checkpoint.   python3 tools/torch_hf_logits.py [checkpoint_dir out.json]
A GPT2LMHeadModel checkpoint (model_type gpt2) is run by a minimal modeling_gpt2.py reference instead, and a
Qwen3ForCausalLM (model_type qwen3) by the Llama reference plus modeling_qwen3.py's q_norm / k_norm.
"""
import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "test", "fixtures", "io")
DEFAULT_JOBS = [
    (os.path.join(FIXTURES, f"hf-{m}"), os.path.join(FIXTURES, f"hf-{m}-logits.json")) for m in ("llama", "gpt2", "qwen3")
]
TOKENS = [256, 84, 104, 101, 32, 113, 117, 105, 99, 107, 32, 98, 114, 111, 119, 110]
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        raw = bytearray(data[8 + n + begin : 8 + n + end])
        t = torch.frombuffer(raw, dtype=DTYPES[e["dtype"]]) if raw else torch.zeros(0, dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).double()
    return out


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def llama_logits(cfg, w, ids):
    d, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    hd = d // heads
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    t = len(ids)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(t, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]  # [T, 1, hd]
    mask = torch.full((t, t), float("-inf"), dtype=torch.float64).triu(1)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        n = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (n @ w[p + "self_attn.q_proj.weight"].T).view(t, heads, hd)
        k = (n @ w[p + "self_attn.k_proj.weight"].T).view(t, kv_heads, hd)
        v = (n @ w[p + "self_attn.v_proj.weight"].T).view(t, kv_heads, hd)
        if cfg["model_type"] == "qwen3":  # modeling_qwen3.py: RMSNorm over each head's q and k, before rotary
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = heads // kv_heads  # repeat_kv: query head h reads key/value head h // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / hd**0.5 + mask
        a = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(t, d)
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        m = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = m @ w[p + "mlp.gate_proj.weight"].T
        u = m @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.T


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))


def gpt2_logits(cfg, w, ids):
    """GPT2LMHeadModel after transformers' modeling_gpt2.py: Conv1D weights are [in, out], y = x @ W + b."""
    d, heads = cfg["n_embd"], cfg["n_head"]
    hd, eps, t = d // heads, cfg.get("layer_norm_epsilon", 1e-5), len(ids)
    g = lambda name: w[name] if name in w else w[name.removeprefix("transformer.")]  # noqa: E731
    mask = torch.full((t, t), float("-inf"), dtype=torch.float64).triu(1)
    x = g("transformer.wte.weight")[torch.tensor(ids)] + g("transformer.wpe.weight")[:t]
    for l in range(cfg["n_layer"]):
        p = f"transformer.h.{l}."
        n = layer_norm(x, g(p + "ln_1.weight"), g(p + "ln_1.bias"), eps)
        q, k, v = (n @ g(p + "attn.c_attn.weight") + g(p + "attn.c_attn.bias")).split(d, dim=-1)
        q, k, v = (z.view(t, heads, hd) for z in (q, k, v))
        scores = torch.einsum("qhd,khd->hqk", q, k) / hd**0.5 + mask
        a = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(t, d)
        x = x + a @ g(p + "attn.c_proj.weight") + g(p + "attn.c_proj.bias")
        m = layer_norm(x, g(p + "ln_2.weight"), g(p + "ln_2.bias"), eps)
        h = gelu_new(m @ g(p + "mlp.c_fc.weight") + g(p + "mlp.c_fc.bias"))
        x = x + h @ g(p + "mlp.c_proj.weight") + g(p + "mlp.c_proj.bias")
    x = layer_norm(x, g("transformer.ln_f.weight"), g("transformer.ln_f.bias"), eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w and cfg.get("tie_word_embeddings") is False else g("transformer.wte.weight")
    return x @ head.T


def run(ckpt, out):
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    w = read_safetensors(os.path.join(ckpt, "model.safetensors"))
    tokens = TOKENS
    if cfg["model_type"] in ("llama", "qwen3"):
        logits = llama_logits(cfg, w, tokens)
    elif cfg["model_type"] == "gpt2":
        tokens = TOKENS[: min(len(TOKENS), 8)]  # the gpt2 fixture is tiny: 8 positions
        logits = gpt2_logits(cfg, w, tokens)
    else:
        raise SystemExit(f"model_type {cfg['model_type']} is not supported")
    doc = {
        "source": f"tools/torch_hf_logits.py (float64 PyTorch {cfg['model_type']} reference)",
        "torch": torch.__version__,
        "tokens": tokens,
        "shape": list(logits.shape),
        "logits": [float(f"{x:.7g}") for x in logits.reshape(-1).tolist()],
    }
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {out}: logits {list(logits.shape)}")


def main():
    # Optional arguments: one checkpoint directory and output file; by default both committed fixtures.
    jobs = [(sys.argv[1], sys.argv[2])] if len(sys.argv) > 2 else DEFAULT_JOBS
    for ckpt, out in jobs:
        run(ckpt, out)


if __name__ == "__main__":
    main()
