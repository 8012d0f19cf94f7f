"""The PyTorch side of the benchmark for one config, in its own process (so its peak RSS is its own).

    python3 bench/torch_bench.py <job.json>

The same Llama as afterscale's (src/nn/llama.ts): RMSNorm, half-split rotary embeddings (theta 10000),
causal attention (F.scaled_dot_product_attention), SwiGLU MLP, untied head, no biases, float32, eager
mode, torch.set_num_threads(job threads). Same job as the afterscale child (bench/train.ts):
1. training: forward + cross-entropy + backward, gradient clipping at 1.0, AdamW (fused when this build
   has it, else foreach; weight decay 0.1 on the matrices only), zero_grad; warm-up, then timed steps;
2. peak RSS after training (resource.getrusage: ru_maxrss is KiB on Linux);
3. prefill: one full-context sequence through a KV cache under inference_mode (median of reps);
4. decode: a short prompt, then greedy tokens one at a time with the KV cache.
With job "precision": "bf16-autocast" every forward pass (and the training loss) runs under
torch.autocast("cpu", dtype=torch.bfloat16), as PyTorch's CPU mixed-precision users write it: float32 master
weights and AdamW state; the linears and attention in bf16 on bf16 copies autocast makes of the weights; the
residual stream, the norms on it and the cross-entropy stay float32 (type promotion, and autocast's float32
list); backward, clipping and the optimizer step as on the fp32 side. "fp32" (the default) is plain float32.
Prints one JSON object on stdout. Exits with status 3 and a message when torch cannot be imported.
"""

import contextlib
import json
import math
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the orchestrator reports the peer as skipped
    print(f"torch_bench: PyTorch is not installed ({e}); pip install torch", file=sys.stderr)
    sys.exit(3)


def max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Llama(torch.nn.Module):
    def __init__(self, j):
        super().__init__()
        d, h, f, v = j["dModel"], j["heads"], j["hidden"], j["vocab"]
        self.heads, self.hd, self.eps = h, d // h, 1e-5
        self.embed = torch.nn.Embedding(v, d)
        self.layers = torch.nn.ModuleList()
        for _ in range(j["layers"]):
            layer = torch.nn.Module()
            layer.attn_norm = torch.nn.Parameter(torch.ones(d))
            layer.q = torch.nn.Linear(d, d, bias=False)
            layer.k = torch.nn.Linear(d, d, bias=False)
            layer.v = torch.nn.Linear(d, d, bias=False)
            layer.o = torch.nn.Linear(d, d, bias=False)
            layer.mlp_norm = torch.nn.Parameter(torch.ones(d))
            layer.gate = torch.nn.Linear(d, f, bias=False)
            layer.up = torch.nn.Linear(d, f, bias=False)
            layer.down = torch.nn.Linear(f, d, bias=False)
            self.layers.append(layer)
        self.norm = torch.nn.Parameter(torch.ones(d))
        self.head = torch.nn.Linear(d, v, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)
        half = self.hd // 2
        freq = 10000.0 ** (-torch.arange(half, dtype=torch.float64) * 2 / self.hd)
        ang = torch.arange(j["context"], dtype=torch.float64)[:, None] * freq[None, :]
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def rope(self, x, pos0):
        # x [B, H, T, hd]; pairs (i, i + hd/2) rotate by pos·θ_i.
        t = x.shape[2]
        cos, sin = self.cos[pos0 : pos0 + t], self.sin[pos0 : pos0 + t]
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)

    def forward(self, ids, cache=None, pos0=0):
        b, t = ids.shape
        x = self.embed(ids)
        for i, L in enumerate(self.layers):
            n = F.rms_norm(x, (x.shape[-1],), L.attn_norm, self.eps)
            q = L.q(n).view(b, t, self.heads, self.hd).transpose(1, 2)
            k = L.k(n).view(b, t, self.heads, self.hd).transpose(1, 2)
            v = L.v(n).view(b, t, self.heads, self.hd).transpose(1, 2)
            q, k = self.rope(q, pos0), self.rope(k, pos0)
            if cache is None:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                ck, cv = cache[i]
                ck[:, :, pos0 : pos0 + t] = k
                cv[:, :, pos0 : pos0 + t] = v
                keys, values = ck[:, :, : pos0 + t], cv[:, :, : pos0 + t]
                # One new query sees every cached key; several new queries need the causal mask.
                a = F.scaled_dot_product_attention(q, keys, values, is_causal=t > 1 and pos0 == 0)
                if t > 1 and pos0 > 0:
                    raise ValueError("chunked prefill after a prefix is not used by this benchmark")
            x = x + L.o(a.transpose(1, 2).reshape(b, t, -1))
            m = F.rms_norm(x, (x.shape[-1],), L.mlp_norm, self.eps)
            x = x + L.down(F.silu(L.gate(m)) * L.up(m))
        x = F.rms_norm(x, (x.shape[-1],), self.norm, self.eps)
        return self.head(x)

    def new_cache(self, length):
        shape = (1, self.heads, length, self.hd)
        return [(torch.zeros(shape), torch.zeros(shape)) for _ in self.layers]


def random_ids(n, vocab, seed):
    # The same LCG as bench/train.ts (the values do not matter for speed, only the shapes).
    ids, s = [], seed & 0xFFFFFFFF
    for _ in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        ids.append((s >> 8) % vocab)
    return ids


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.dim() == 2 and p is not model.embed.weight]
    no_decay = [p for p in model.parameters() if p.dim() != 2 or p is model.embed.weight]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=True), "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=True), "foreach"


PRECISIONS = ("fp32", "bf16-autocast")


def autocast_for(precision):
    """A context for each forward pass: bf16 autocast, or nothing for fp32."""
    if precision not in PRECISIONS:
        raise SystemExit(f"torch_bench: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast("cpu", dtype=torch.bfloat16)


def main():
    job = json.load(open(sys.argv[1]))
    precision = job.get("precision", "fp32")
    autocast = autocast_for(precision)
    torch.set_num_threads(job["threads"])
    torch.manual_seed(job["seed"])
    model = Llama(job)
    batch, context, vocab = job["batch"], job["context"], job["vocab"]
    opt, kind = make_optimizer(model)

    seconds, losses = [], []
    for step in range(job["warmupSteps"] + job["timedSteps"]):
        tokens = torch.tensor(random_ids(batch * (context + 1), vocab, job["seed"] + step)).view(batch, context + 1)
        inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
        t0 = time.perf_counter()
        with autocast():
            logits = model(inputs)
            loss = F.cross_entropy(logits.view(-1, vocab), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        del logits
        losses.append(loss.item())
        del loss
        s = time.perf_counter() - t0
        if step >= job["warmupSteps"]:
            seconds.append(s)
    peak_train = max_rss_mib()

    prompt = torch.tensor(job["promptIds"], dtype=torch.long)[None, :]
    prefill = []
    with torch.inference_mode(), autocast():
        for r in range(job["prefillReps"] + 1):
            cache = model.new_cache(context)
            t0 = time.perf_counter()
            model(prompt[:, :context], cache, 0)
            if r > 0:
                prefill.append(time.perf_counter() - t0)

        p = job["decodePrompt"]
        cache = model.new_cache(p + job["decodeTokens"])
        nxt = int(model(prompt[:, :p], cache, 0)[0, -1].argmax())
        generated, per_token = [], []
        for i in range(job["decodeTokens"]):
            generated.append(nxt)
            t0 = time.perf_counter()
            nxt = int(model(torch.tensor([[nxt]]), cache, p + i)[0, -1].argmax())
            per_token.append(time.perf_counter() - t0)

    prefill.sort()
    seconds_sorted = sorted(seconds)
    med = lambda xs: xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
    out = {
        "trainTokensPerSecond": batch * context / med(seconds_sorted),
        "trainStepSeconds": seconds,
        "prefillTokensPerSecond": context / med(prefill),
        "decodeTokensPerSecond": 1 / med(sorted(per_token)),
        "peakRssTrainMiB": peak_train,
        "peakRssMiB": max_rss_mib(),
        "loss": losses,
        "generated": generated,
        "precision": precision,
        "note": f"torch {torch.__version__}, {precision}, AdamW {kind}, {torch.get_num_threads()} threads",
    }
    assert all(math.isfinite(x) for x in losses)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
