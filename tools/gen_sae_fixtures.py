#!/usr/bin/env python3
"""Golden fixtures from PyTorch for the sparse autoencoder of src/interp/sae.ts.

Writes test/fixtures/interp/sae-loss.json: for a ReLU SAE (L1 weighted by decoder norm, decoder rows NOT at unit
norm, so the weighting matters) and a top-k SAE, the loss as SAELens writes it,
    f = ReLU(W_enc·(x − b_dec) + b_enc)   (top-k: ReLU of the k largest pre-activations, the rest 0)
    x̂ = W_dec·f + b_dec
    loss = mean over tokens of ‖x − x̂‖² + λ·Σ_i f_i·‖W_dec[i]‖
(SAELens layout: W_enc [d_in, d_sae], W_dec [d_sae, d_in]), its value, f, x̂ and the gradients of every parameter
with the decoder norms inside autograd; the W_dec gradient is also given with each row's component along
that row removed (SAELens's remove_gradient_parallel_to_decoder_directions), which is the update afterscale
takes. Everything is float64 from float32-rounded inputs.

Run where torch is installed (`pip install torch` from this machine's wheel store):
    python3 tools/gen_sae_fixtures.py
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "interp")
gen = torch.Generator().manual_seed(16)


def randn(*shape, scale=1.0):
    return (torch.randn(tuple(shape), generator=gen) * scale).float().double()


def enc(t):
    return {"shape": list(t.shape), "data": [float(x) for x in t.detach().reshape(-1).tolist()]}


def case(kind, n=6, d=5, features=8, l1=0.7, k=3):
    x = randn(n, d, scale=2.0)
    W_enc = randn(d, features, scale=0.5).requires_grad_()
    b_enc = randn(features, scale=0.3).requires_grad_()
    W_dec = randn(features, d, scale=0.7).requires_grad_()  # rows of norm ≠ 1
    b_dec = randn(d, scale=0.2).requires_grad_()
    pre = (x - b_dec) @ W_enc + b_enc
    if kind == "topk":
        vals, idx = pre.topk(k, dim=-1)
        f = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
    else:
        f = torch.relu(pre)
    xhat = f @ W_dec + b_dec
    mse = (xhat - x).pow(2).sum(-1).mean()
    sparsity = (f * W_dec.norm(dim=-1)).sum(-1).mean()
    loss = mse + l1 * sparsity if kind == "relu" else mse
    loss.backward()
    g = W_dec.grad
    unit = W_dec / W_dec.norm(dim=-1, keepdim=True)
    g_proj = g - (g * unit).sum(-1, keepdim=True) * unit
    return {
        "kind": kind,
        "l1": l1 if kind == "relu" else 0,
        "k": k if kind == "topk" else None,
        "x": enc(x),
        "W_enc": enc(W_enc),
        "b_enc": enc(b_enc),
        "W_dec": enc(W_dec),
        "b_dec": enc(b_dec),
        "loss": float(loss),
        "mse": float(mse),
        "sparsity": float(sparsity),
        "f": enc(f),
        "xhat": enc(xhat),
        "grad_W_enc": enc(W_enc.grad),
        "grad_b_enc": enc(b_enc.grad),
        "grad_b_dec": enc(b_dec.grad),
        "grad_W_dec": enc(g),
        "grad_W_dec_projected": enc(g_proj),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    doc = {"torch": torch.__version__, "cases": [case("relu"), case("topk")]}
    with open(os.path.join(OUT, "sae-loss.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote sae-loss.json")


if __name__ == "__main__":
    main()
