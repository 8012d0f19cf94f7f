#!/usr/bin/env python3
"""Golden Muon steps from PyTorch, for test/optim.muon.test.ts.

Writes test/fixtures/muon/muon.json: four matrices (square, wide, tall, and a second square one so that
matrices of one shape are updated together), four gradients each, and the parameters and momentum buffers
after four Muon steps with Nesterov momentum and decoupled weight decay, plus one Newton-Schulz result
on its own.

The update is Keller Jordan's published one (github.com/KellerJordan/Muon, muon.py: muon_update and
zeropower_via_newtonschulz5, as SingleDeviceMuon.step applies it), run here in float64 instead of
bfloat16 so that the fixture is the algorithm's exact value and afterscale's float32 is held to it.

Run where torch is installed (`pip install torch`):  python3 tools/gen_muon_fixture.py
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "muon")
gen = torch.Generator().manual_seed(4321)


def randn(*shape, scale=1.0):
    # Rounded through float32 so afterscale's float32 inputs are exactly these values.
    return (torch.randn(tuple(shape), generator=gen, dtype=torch.float64) * scale).float().double()


def enc(t):
    return {"shape": list(t.shape), "data": [float(x) for x in t.detach().reshape(-1).tolist()]}


# ---- muon.py, with X = G.bfloat16() replaced by float64
def zeropower_via_newtonschulz5(G, steps):
    assert G.ndim >= 2
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.double()
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


def muon_update(grad, momentum, beta=0.95, ns_steps=5, nesterov=True):
    momentum.lerp_(grad, 1 - beta)
    update = grad.lerp_(momentum, beta) if nesterov else momentum
    update = zeropower_via_newtonschulz5(update, steps=ns_steps)
    update *= max(1, grad.size(-2) / grad.size(-1)) ** 0.5
    return update


def main():
    os.makedirs(OUT, exist_ok=True)
    lr, beta, wd, steps = 0.05, 0.95, 0.1, 4
    shapes = {"square": (8, 8), "wide": (6, 12), "tall": (12, 5), "square2": (8, 8)}
    params = {k: randn(*s, scale=0.2) for k, s in shapes.items()}
    grads = {k: [randn(*s, scale=0.5) for _ in range(steps)] for k, s in shapes.items()}
    p = {k: v.clone() for k, v in params.items()}
    buf = {k: torch.zeros_like(v) for k, v in params.items()}
    for t in range(steps):
        for k in shapes:
            # SingleDeviceMuon.step: the update from the gradient, then decay, then the step.
            update = muon_update(grads[k][t].clone(), buf[k], beta=beta)
            p[k].mul_(1 - lr * wd)
            p[k].add_(update.reshape(p[k].shape), alpha=-lr)
    ns_input = randn(7, 10)
    doc = {
        "lr": lr,
        "momentum": beta,
        "weightDecay": wd,
        "params": {k: enc(v) for k, v in params.items()},
        "grads": {k: [enc(g) for g in gs] for k, gs in grads.items()},
        "result": {k: enc(v) for k, v in p.items()},
        "momentumBuffers": {k: enc(v) for k, v in buf.items()},
        "newtonSchulz": {"input": enc(ns_input), "output": enc(zeropower_via_newtonschulz5(ns_input, 5))},
    }
    with open(os.path.join(OUT, "muon.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print("wrote muon")


if __name__ == "__main__":
    main()
