#!/usr/bin/env python3
"""Golden fixtures from PyTorch for the distillation loss of src/compress (and the generalizedJsd op of src/tensor).

Writes test/fixtures/distill/<name>.json. Each case starts from student and teacher logits [B, T, V] and
next-token targets, and computes
    loss = alpha * CE(student, targets) + (1 - alpha) * T^2 * generalized_jsd(student, teacher, beta, T)
with generalized_jsd copied from Hugging Face TRL's GKDTrainer.generalized_jsd_loss (trl main, 2025-2026:
trl/trainer/gkd_trainer.py, labels=None so every position counts; its batchmean then divides by B*T, the row
count, which is the mean over rows afterscale uses). The top-k cases render afterscale's documented rule for a
cached teacher: the teacher's k kept log-probs renormalised at temperature T (softmax over the k), zero
elsewhere; with beta = 0 the student keeps its whole distribution, with beta > 0 it is renormalised over the
same k tokens.
Everything is float64; inputs are rounded through float32 so afterscale's float32 run sees the same values.
The fixture holds the loss, the divergence alone, and the gradient of the loss w.r.t. the student logits.

Run where torch is installed (`pip install torch` from this machine's wheel store):
    python3 tools/gen_distill_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "distill")
gen = torch.Generator().manual_seed(2027)


def randn(*shape, scale=1.0):
    return (torch.randn(tuple(shape), generator=gen) * scale).float().double()


def enc(t):
    return {"shape": list(t.shape), "data": [float(x) for x in t.detach().reshape(-1).tolist()]}


def enc_int(t):
    return {"shape": list(t.shape), "data": [int(x) for x in t.reshape(-1).tolist()]}


def write(name, doc):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"wrote {name}")


def generalized_jsd_loss(student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0, reduction="batchmean"):
    """TRL's GKDTrainer.generalized_jsd_loss, verbatim but for the docstring."""
    student_logits = student_logits / temperature
    teacher_logits = teacher_logits / temperature
    student_log_probs = F.log_softmax(student_logits, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits, dim=-1)
    if beta == 0:
        jsd = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(teacher_log_probs, student_log_probs, reduction="none", log_target=True)
    else:
        beta = torch.tensor(beta, dtype=student_log_probs.dtype)
        mixture_log_probs = torch.logsumexp(
            torch.stack([student_log_probs + torch.log(1 - beta), teacher_log_probs + torch.log(beta)]),
            dim=0,
        )
        kl_teacher = F.kl_div(mixture_log_probs, teacher_log_probs, reduction="none", log_target=True)
        kl_student = F.kl_div(mixture_log_probs, student_log_probs, reduction="none", log_target=True)
        jsd = beta * kl_teacher + (1 - beta) * kl_student
    if labels is not None:
        mask = labels != -100
        jsd = jsd[mask]
    if reduction == "batchmean":
        return jsd.sum() / mask.sum() if labels is not None else jsd.sum() / (jsd.size(0) * jsd.size(1))
    raise ValueError(reduction)


def topk_divergence(student_logits, teacher_logprobs_k, ids, beta, temperature):
    """afterscale's rule for a top-k teacher (see the module docstring); mean over rows."""
    s = student_logits / temperature
    lq_k = F.log_softmax(teacher_logprobs_k / temperature, dim=-1)  # renormalised over the k
    if beta == 0:
        lp = F.log_softmax(s, dim=-1)
        lp_k = torch.gather(lp, -1, ids)
        per_row = (lq_k.exp() * (lq_k - lp_k)).sum(-1)
    else:
        lp_k = F.log_softmax(torch.gather(s, -1, ids), dim=-1)  # student renormalised over the same k
        if beta == 1:
            per_row = (lp_k.exp() * (lp_k - lq_k)).sum(-1)
        else:
            b = torch.tensor(beta, dtype=s.dtype)
            lm = torch.logsumexp(torch.stack([lp_k + torch.log(1 - b), lq_k + torch.log(b)]), dim=0)
            per_row = (b * lq_k.exp() * (lq_k - lm) + (1 - b) * lp_k.exp() * (lp_k - lm)).sum(-1)
    return per_row.mean()


def case(name, b, t, v, alpha, beta, temperature, topk=None, teacher_scale=2.0):
    student = randn(b, t, v, scale=1.5).requires_grad_(True)
    teacher = randn(b, t, v, scale=teacher_scale)
    targets = torch.randint(0, v, (b, t), generator=gen)
    doc = {
        "attrs": {"alpha": alpha, "beta": beta, "temperature": temperature, "topk": topk},
        "student": enc(student),
        "targets": enc_int(targets),
    }
    ce = F.cross_entropy(student.reshape(-1, v), targets.reshape(-1))
    if topk is None:
        div = generalized_jsd_loss(student, teacher, beta=beta, temperature=temperature)
        doc["teacher"] = enc(teacher)
    else:
        # The cache stores log-probs at temperature 1, rounded to float32, most likely first.
        lq = F.log_softmax(teacher, dim=-1)
        vals, ids = torch.topk(lq, topk, dim=-1)
        vals = vals.float().double()
        div = topk_divergence(student, vals, ids, beta, temperature)
        doc["topkIds"] = enc_int(ids)
        doc["topkLogProbs"] = enc(vals)
    loss = alpha * ce + (1 - alpha) * temperature**2 * div
    loss.backward()
    doc["divergence"] = float(div.detach())
    doc["loss"] = float(loss.detach())
    doc["grad"] = enc(student.grad)
    write(name, doc)


if __name__ == "__main__":
    case("forward-kl", 2, 3, 7, alpha=0.0, beta=0.0, temperature=1.0)
    case("reverse-kl", 2, 3, 7, alpha=0.0, beta=1.0, temperature=1.0)
    case("jsd-0.5", 2, 3, 7, alpha=0.0, beta=0.5, temperature=1.0)
    case("jsd-0.1-t2", 2, 4, 9, alpha=0.0, beta=0.1, temperature=2.0)
    case("mixed-forward-t2", 3, 2, 11, alpha=0.5, beta=0.0, temperature=2.0)
    case("mixed-jsd-0.9-t0.7", 2, 3, 8, alpha=0.3, beta=0.9, temperature=0.7)
    case("peaked-reverse", 2, 3, 16, alpha=0.2, beta=1.0, temperature=1.0, teacher_scale=12.0)
    case("topk-forward", 2, 3, 12, alpha=0.5, beta=0.0, temperature=2.0, topk=4)
    case("topk-jsd-0.5", 2, 3, 12, alpha=0.0, beta=0.5, temperature=1.0, topk=5)
    case("topk-reverse", 2, 3, 12, alpha=0.25, beta=1.0, temperature=1.5, topk=3)
