#!/usr/bin/env python3
"""Hugging Face transformers on afterscale's BF16 safetensors export.

Loads test/fixtures/io/hf-{llama,gpt2}-bf16 (written by tools/export_io_fixture.ts: `export --format hf --dtype
bf16` of the float32 checkpoints test/fixtures/io/hf-{llama,gpt2}) with transformers' AutoModelForCausalLM, checks
that every weight it loaded is bfloat16 and equals PyTorch's own rounding of the float32 checkpoint's tensor
(`.to(torch.bfloat16)`, round to nearest even), then runs the model in float64 (eager attention) and writes
the logits for a fixed token sequence to test/fixtures/io/hf-{llama,gpt2}-bf16-logits.json, which
test/io.torch.test.ts compares with afterscale's forward pass on the imported BF16 checkpoint.
    pip install torch transformers && python3 tools/transformers_bf16_logits.py
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_hf_logits import FIXTURES, TOKENS, read_safetensors  # noqa: E402


def run(arch):
    ckpt = os.path.join(FIXTURES, f"hf-{arch}-bf16")
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16, attn_implementation="eager")
    state = model.state_dict()
    f32 = read_safetensors(os.path.join(FIXTURES, f"hf-{arch}", "model.safetensors"))  # float64 of the F32 values
    checked = 0
    for name, value in f32.items():
        key = name if name in state else f"transformer.{name}"
        got = state[key]
        if got.dtype != torch.bfloat16:
            raise SystemExit(f"{key}: transformers loaded {got.dtype}, expected torch.bfloat16")
        want = value.float().to(torch.bfloat16)
        if not torch.equal(got.view(torch.int16), want.view(torch.int16)):
            raise SystemExit(f"{key}: the BF16 export is not torch's round-to-nearest-even of the F32 weight")
        checked += 1
    tokens = TOKENS if arch == "llama" else TOKENS[:8]  # the gpt2 fixture's context is 16: 8 positions, as before
    model = model.to(torch.float64).eval()
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0]
    doc = {
        "source": f"tools/transformers_bf16_logits.py ({type(model).__name__} from the BF16 safetensors, run in float64)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokens": tokens,
        "shape": list(logits.shape),
        "logits": [float(f"{x:.7g}") for x in logits.reshape(-1).tolist()],
    }
    out = os.path.join(FIXTURES, f"hf-{arch}-bf16-logits.json")
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"{ckpt}: {checked} tensors are torch's bf16 rounding of the F32 checkpoint; wrote {out} {list(logits.shape)}")


if __name__ == "__main__":
    for arch in ("llama", "gpt2"):
        run(arch)
