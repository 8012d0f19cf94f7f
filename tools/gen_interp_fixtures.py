#!/usr/bin/env python3
"""Hugging Face transformers' view of afterscale's exported models, for the interpretability hooks.

Loads test/fixtures/io/hf-{llama,gpt2,qwen3} (exported from afterscale by tools/export_io_fixture.ts) with
transformers (eager attention, float32), runs a fixed token sequence with output_hidden_states and
output_attentions, and writes test/fixtures/interp/hf-{name}-acts.json:
  hidden[i]   transformers' hidden_states[i]: the residual stream entering layer i (i < layers), and for
              i = layers the final norm's output (transformers applies the final norm to the last entry);
  attentions[l]  layer l's attention pattern [heads, T, T].
test/interp.hf.test.ts compares runWithCache's blocks.{l}.hook_resid_pre / hook_resid_post, ln_final.hook_normalized
and blocks.{l}.attn.hook_pattern to these.   pip install torch transformers; python3 tools/gen_interp_fixtures.py
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
IO = os.path.join(HERE, "..", "test", "fixtures", "io")
OUT = os.path.join(HERE, "..", "test", "fixtures", "interp")
TOKENS = [256, 84, 104, 101, 32, 113, 117, 105, 99, 107, 32, 98, 114, 111, 119, 110]


def rounded(t):
    return [round(float(x), 7) for x in t.flatten().tolist()]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ("llama", "gpt2", "qwen3"):
        model = AutoModelForCausalLM.from_pretrained(
            os.path.join(IO, f"hf-{name}"), attn_implementation="eager", torch_dtype=torch.float32
        )
        model.eval()
        with torch.no_grad():
            out = model(torch.tensor([TOKENS]), output_hidden_states=True, output_attentions=True)
        fixture = {
            "tokens": TOKENS,
            "transformers": __import__("transformers").__version__,
            "hidden": [rounded(h[0]) for h in out.hidden_states],
            "attentions": [rounded(a[0]) for a in out.attentions],
            "logits": rounded(out.logits[0]),
        }
        with open(os.path.join(OUT, f"hf-{name}-acts.json"), "w") as f:
            json.dump(fixture, f)
        print(f"hf-{name}: {len(fixture['hidden'])} hidden states, {len(fixture['attentions'])} attention maps")


if __name__ == "__main__":
    main()
