#!/usr/bin/env python3
"""Golden fixture from Hugging Face's Rust `tokenizers` library for added tokens.

Writes test/fixtures/tokenizer/added-tokens.json: a small byte-level BPE tokenizer.json whose added tokens
use every flag (special, single_word, lstrip, rstrip, normalized), some texts, and what `tokenizers`
gives for each: ids, ids with encode_special_tokens (special tokens kept as text), and the decoded text
with and without skip_special_tokens. test/data.added-tokens.test.ts compares afterscale with it.

Run where the Python package is installed (`pip install tokenizers`, from this machine's wheel store):
python3 tools/gen_tokenizer_fixture.py
"""
import json
import os

import tokenizers
from tokenizers import Tokenizer

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "tokenizer", "added-tokens.json")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
vocab = {B2U[b]: b for b in range(256)}
merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("e", "n"), ("Ġ", "w"), ("o", "r")]
for a, b in merges:
    vocab[a + b] = len(vocab)


def added(content, special, **flags):
    entry = {
        "id": len(vocab) + len(ADDED),
        "content": content,
        "single_word": flags.get("single_word", False),
        "lstrip": flags.get("lstrip", False),
        "rstrip": flags.get("rstrip", False),
        "normalized": flags.get("normalized", not special),
        "special": special,
    }
    ADDED.append(entry)


ADDED = []
added("<|endoftext|>", True)
added("<|pad|>", True, lstrip=True, rstrip=True)
added("<w>", True, single_word=True)
added("<l>", True, lstrip=True)
added("<r>", False, rstrip=True, normalized=False)
added("world", False)  # non-special, normalized: matched in the second pass
added("end", False, normalized=False)  # raw: found before the longer, normalized "the end"
added("the end", False)

byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
tokenizer_json = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": ADDED,
    "normalizer": None,
    "pre_tokenizer": byte_level,
    "post_processor": None,
    "decoder": byte_level,
    "model": {
        "type": "BPE",
        "dropout": None,
        "unk_token": None,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": vocab,
        "merges": [f"{a} {b}" for a, b in merges],
    },
}

TEXTS = [
    "<|endoftext|>",
    "<|endoftext|><|endoftext|>",
    "the end<|endoftext|>the start",
    "the end <|endoftext|> the start",
    "the end\n<|endoftext|>\nthe start",
    " <|endoftext|>",
    "<|endoftext|> ",
    "<|endoftext|>the",
    "a<|endoftext|>b<|endoftext|>c",
    "<|endoftext|",
    "<<|endoftext|>>",
    "<|endoftext|>é<|endoftext|>😀",
    "x  <|pad|>  y",
    "<|pad|>\t\n",
    "a <w> b",
    "a<w> b",
    "a <w>b",
    "<w>",
    "é<w>",
    "_<w>",
    "1<w>",
    "-<w>-",
    "a   <l>b",
    "a\u0085<l>",
    "a\u00a0<l>",
    "<r>   b",
    "hello world",
    "helloworld<|endoftext|>worlds",
    "the end of the world",
    "legend end",
]


def main():
    tok = Tokenizer.from_str(json.dumps(tokenizer_json))
    cases = []
    for text in TEXTS:
        tok.encode_special_tokens = False
        ids = tok.encode(text).ids
        tok.encode_special_tokens = True
        ids_special_as_text = tok.encode(text).ids
        cases.append(
            {
                "text": text,
                "ids": ids,
                "idsSpecialAsText": ids_special_as_text,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decodedSkipSpecial": tok.decode(ids, skip_special_tokens=True),
            }
        )
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(
            {"generator": f"tokenizers {tokenizers.__version__}", "tokenizer": tokenizer_json, "cases": cases},
            f,
            ensure_ascii=False,
            indent=1,
        )
        f.write("\n")
    print(f"wrote {len(cases)} cases to {OUT}")


main()
