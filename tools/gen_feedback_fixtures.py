#!/usr/bin/env python3
"""Golden fixtures from PyTorch for the preference (DPO family) and RL (GRPO) losses of src/feedback/losses.ts.

Writes test/fixtures/feedback/<name>.json. Each case starts from logits [B, T, V] and next-token targets (-100 on
positions that are not completion tokens), computes the per-token log-probs (TRL's selective_log_softmax), the
per-sequence sums (or means, for IPO), and the loss exactly as Hugging Face TRL writes it:
  - DPO: DPOTrainer.dpo_loss of TRL v0.28 (the last release with that function; commit e3b7897c8^), and its
    rewards/accuracy metrics; IPO's log-probs are length-averaged as TRL's concatenated_forward does.
  - GRPO: GRPOTrainer._compute_loss (TRL main, 2026-07, commit f2cd577) for loss_type grpo / bnpo / dr_grpo with
    token-level importance sampling, and the advantages of _generate_and_score_completions (scale_rewards="group").
Everything is float64; inputs are rounded through float32 so afterscale's float32 run sees the same values.
The fixture holds the loss, its gradient w.r.t. the policy log-probs and w.r.t. the logits, and the metrics.

Run where torch is installed (`pip install torch` from this machine's wheel store):
    python3 tools/gen_feedback_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "feedback")
IGNORE = -100
gen = torch.Generator().manual_seed(2026)


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


def token_logps(logits, targets):
    """TRL's selective_log_softmax, with non-completion positions set to 0."""
    safe = targets.clamp(min=0)
    lp = torch.gather(logits.log_softmax(-1), -1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(targets == IGNORE, torch.zeros_like(lp), lp)


def completion_targets(b, t, v, prompt_lens, completion_lens):
    """Targets with -100 before each completion (the prompt) and after it (padding)."""
    targets = torch.randint(0, v, (b, t), generator=gen)
    for i in range(b):
        targets[i, : prompt_lens[i]] = IGNORE
        targets[i, prompt_lens[i] + completion_lens[i] :] = IGNORE
    return targets


# ---------------------------------------------------------------- DPO (TRL v0.28 DPOTrainer.dpo_loss)


def dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, loss_type, beta, label_smoothing):
    logratios = chosen_logps - rejected_logps
    ref_logratios = ref_chosen_logps - ref_rejected_logps
    logits = logratios - ref_logratios
    if loss_type == "sigmoid":
        losses = (
            -F.logsigmoid(beta * logits) * (1 - label_smoothing)
            - F.logsigmoid(-beta * logits) * label_smoothing
        )
    elif loss_type == "robust":
        losses = (
            -F.logsigmoid(beta * logits) * (1 - label_smoothing)
            + F.logsigmoid(-beta * logits) * label_smoothing
        ) / (1 - 2 * label_smoothing)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(loss_type)
    chosen_rewards = beta * (chosen_logps - ref_chosen_logps).detach()
    rejected_rewards = beta * (rejected_logps - ref_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


def dpo_case(name, loss_type, beta, label_smoothing):
    b, t, v = 3, 6, 7
    prompt = [2, 1, 3]
    targets = {
        "chosen": completion_targets(b, t, v, prompt, [4, 3, 2]),
        "rejected": completion_targets(b, t, v, prompt, [3, 5, 1]),
    }
    logits = {k: randn(b, t, v, scale=2.0) for k in targets}
    # The reference scores each completion a little differently from the policy (about ±1 nat).
    average = loss_type == "ipo"

    def seq_logps(lg, tg):
        s = token_logps(lg, tg).sum(-1)
        if average:  # TRL v0.28 concatenated_forward: all_logps / loss_mask.sum(-1)
            s = s / (tg != IGNORE).sum(-1)
        return s

    ref = {k: (seq_logps(logits[k], targets[k]) + randn(b)).float().double() for k in targets}
    leaves = {k: logits[k].clone().requires_grad_(True) for k in targets}
    logps = {k: seq_logps(leaves[k], targets[k]) for k in targets}
    for lp in logps.values():
        lp.retain_grad()
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        logps["chosen"], logps["rejected"], ref["chosen"], ref["rejected"], loss_type, beta, label_smoothing
    )
    loss = losses.mean()
    loss.backward()
    write(
        name,
        {
            "kind": "dpo",
            "attrs": {"type": loss_type, "beta": beta, "labelSmoothing": label_smoothing, "average": average},
            "ignoreIndex": IGNORE,
            "logits": {k: enc(logits[k]) for k in targets},
            "targets": {k: enc_int(targets[k]) for k in targets},
            "ref": {k: enc(ref[k]) for k in targets},
            "logps": {k: enc(logps[k]) for k in targets},
            "loss": loss.item(),
            "gradLogps": {k: enc(logps[k].grad) for k in targets},
            "gradLogits": {k: enc(leaves[k].grad) for k in targets},
            "metrics": {
                "chosenReward": chosen_rewards.mean().item(),
                "rejectedReward": rejected_rewards.mean().item(),
                "rewardMargin": (chosen_rewards - rejected_rewards).mean().item(),
                "rewardAccuracy": (chosen_rewards > rejected_rewards).double().mean().item(),
                "chosenLogProb": logps["chosen"].mean().item(),
                "rejectedLogProb": logps["rejected"].mean().item(),
            },
        },
    )


# ---------------------------------------------------------------- GRPO (TRL GRPOTrainer)


def group_advantages(rewards, num_generations):
    # _generate_and_score_completions, sum_then_normalize with scale_rewards="group" (nanstd: Bessel-corrected).
    mean_grouped = rewards.view(-1, num_generations).mean(dim=1).repeat_interleave(num_generations, dim=0)
    std = rewards.view(-1, num_generations).std(dim=1, unbiased=True).repeat_interleave(num_generations, dim=0)
    return (rewards - mean_grouped) / (std + 1e-4)


def grpo_loss(per_token_logps, old_per_token_logps, ref_per_token_logps, advantages, mask, beta, eps, loss_type, max_len):
    advantages = advantages.unsqueeze(1)
    log_ratio = per_token_logps - old_per_token_logps
    coef_1 = torch.exp(log_ratio)
    if beta != 0.0:
        per_token_kl = torch.exp(ref_per_token_logps - per_token_logps) - (ref_per_token_logps - per_token_logps) - 1
    coef_2 = torch.clamp(coef_1, 1 - eps, 1 + eps)
    per_token_loss1 = coef_1 * advantages
    per_token_loss2 = coef_2 * advantages
    per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_len)
    else:
        raise ValueError(loss_type)

    def masked_mean(x):
        return ((x * mask).sum() / mask.sum().clamp(min=1.0)).item()

    is_low = (coef_1 < 1 - eps) & (advantages < 0)
    is_high = (coef_1 > 1 + eps) & (advantages > 0)
    kl = torch.exp(ref_per_token_logps - per_token_logps) - (ref_per_token_logps - per_token_logps) - 1
    metrics = {
        "kl": masked_mean(kl.detach()),
        "clipFraction": masked_mean((is_low | is_high).double()),
        "clipLow": masked_mean(is_low.double()),
        "clipHigh": masked_mean(is_high.double()),
    }
    return loss, metrics


def grpo_case(name, beta, loss_type="grpo", on_policy=False, max_len=None, eps=0.2):
    groups, g, t, v = 2, 3, 5, 7
    b = groups * g
    targets = completion_targets(b, t, v, [0] * b, [5, 3, 4, 1, 5, 2])
    mask = (targets != IGNORE).double()
    logits = randn(b, t, v, scale=1.5)
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.2, 0.9, 0.9], dtype=torch.float64)
    advantages = group_advantages(rewards, g)
    base = token_logps(logits, targets)
    # The sampling policy and the reference differ from the policy by ±0.3 nats per token: some ratios clip.
    old = None if on_policy else (base + randn(b, t, scale=0.3)).float().double()
    ref = (base + randn(b, t, scale=0.3)).float().double()
    leaves = logits.clone().requires_grad_(True)
    logps = token_logps(leaves, targets)
    logps.retain_grad()
    loss, metrics = grpo_loss(
        logps, logps.detach() if old is None else old, ref, advantages, mask, beta, eps, loss_type, max_len or t
    )
    loss.backward()
    write(
        name,
        {
            "kind": "grpo",
            "attrs": {"beta": beta, "epsilon": eps, "lossType": loss_type, "maxCompletionLength": max_len or t,
                      "groupSize": g},
            "ignoreIndex": IGNORE,
            "logits": enc(logits),
            "targets": enc_int(targets),
            "mask": enc(mask),
            "rewards": enc(rewards),
            "advantages": enc(advantages),
            "old": None if old is None else enc(old),
            "ref": enc(ref),
            "logps": enc(logps),
            "loss": loss.item(),
            "gradLogps": enc(logps.grad),
            "gradLogits": enc(leaves.grad),
            "metrics": metrics,
        },
    )


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    for loss_type in ["sigmoid", "ipo", "hinge", "robust"]:
        dpo_case(f"dpo_{loss_type}", loss_type, 0.1 if loss_type != "ipo" else 0.5, 0.0)
    dpo_case("dpo_sigmoid_smoothed", "sigmoid", 0.1, 0.2)
    dpo_case("dpo_robust_smoothed", "robust", 0.1, 0.2)
    dpo_case("dpo_hinge_beta2", "hinge", 2.0, 0.0)
    grpo_case("grpo_beta0", 0.0)
    grpo_case("grpo_beta", 0.04)
    grpo_case("grpo_on_policy", 0.04, on_policy=True)
    grpo_case("grpo_bnpo", 0.04, loss_type="bnpo")
    grpo_case("grpo_dr_grpo", 0.04, loss_type="dr_grpo", max_len=8)
