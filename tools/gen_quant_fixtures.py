#!/usr/bin/env python3
"""Golden ggml block quantizations, for test/io.quants.test.ts.

Loads the ggml that node-llama-cpp ships (node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/
libggml-base.so) with ctypes and, for every block type afterscale writes, quantizes a set of seeded rows
with ggml's reference quantizer (quantize_row_<type>_ref, checked here to equal ggml_quantize_chunk without
an importance matrix, the path llama-quantize takes) and dequantizes the result with dequantize_row_<type>.

Writes test/fixtures/quant/:
  input.f32            ROWS x COLS little-endian float32 rows (the awkward ones listed in ROWS below)
  <type>.bin           ggml's bytes for every row, concatenated
  <type>.f32           dequantize_row_<type> of those bytes
  manifest.json        shapes, types, block sizes and the library that produced them
  llama-quantize.json  for each source model of test/helpers/quant-models.ts (written by
                       dist/tools/write_quant_sources.js) and each of its presets: the sha256 of the source
                       file, and the type and sha256 of every tensor of the file llama.cpp's own
                       llama_model_quantize (libllama, what the llama-quantize tool calls) writes from it

Run from the repository root (numpy only):  npm run build && python3 tools/gen_quant_fixtures.py
"""
import ctypes
import hashlib
import json
import os
import struct
import subprocess
import tempfile

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LIB = os.path.join(ROOT, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so")
META = os.path.join(ROOT, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/_nlcBuildMetadata.json")
OUT = os.path.join(ROOT, "test", "fixtures", "quant")
COLS = 512  # two K-quant super-blocks, sixteen 32-blocks

# name, ggml_type id, elements per block, bytes per block
TYPES = [
    ("q4_0", 2, 32, 18),
    ("q4_1", 3, 32, 20),
    ("q5_0", 6, 32, 22),
    ("q5_1", 7, 32, 24),
    ("q8_0", 8, 32, 34),
    ("q4_K", 12, 256, 144),
    ("q5_K", 13, 256, 176),
    ("q6_K", 14, 256, 210),
]


def rows():
    rng = np.random.default_rng(20261207)
    out = []
    out.append(("normal", rng.standard_normal(COLS)))
    out.append(("weights", rng.standard_normal(COLS) * 0.02))
    out.append(("zeros", np.zeros(COLS)))
    out.append(("constant", np.full(COLS, 0.37)))
    out.append(("negative constant", np.full(COLS, -1.5)))
    outliers = rng.standard_normal(COLS) * 0.05
    outliers[rng.choice(COLS, 12, replace=False)] = rng.choice([-1, 1], 12) * rng.uniform(20, 80, 12)
    out.append(("outliers", outliers))
    out.append(("all positive", rng.uniform(0.1, 2.0, COLS)))
    out.append(("all negative", -rng.uniform(0.5, 3.0, COLS)))
    out.append(("tiny (subnormal half scales)", rng.standard_normal(COLS) * 1e-6))
    # each 32-block its own scale from 1e-3 to 1e3, some blocks all zero, one block one repeated value
    scales = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), COLS // 32)).repeat(32)
    mixed = rng.standard_normal(COLS) * scales
    mixed[64:96] = 0
    mixed[160:192] = 2.5
    out.append(("mixed block scales", mixed))
    # ties for round-half cases: multiples of 0.5 and exact grid values
    out.append(("half steps", np.round(rng.uniform(-8, 8, COLS) * 2) / 2))
    out.append(("sparse", np.where(rng.uniform(size=COLS) < 0.9, 0.0, rng.standard_normal(COLS))))
    return [(n, r.astype(np.float32)) for n, r in out]


# llama_ftype and --pure of each preset (src/io/gguf-quant-rules.ts PRESETS)
PRESETS = {
    "q4_0": (2, False), "q4_1": (3, False), "q8_0": (7, False), "q5_0": (8, False),
    "q4_k": (14, True), "q4_k_s": (14, False), "q4_k_m": (15, False), "q6_k": (18, False),
}
BLOCK = {0: (1, 4), 1: (1, 2), **{tid: (qk, size) for _, tid, qk, size in TYPES}}


def gguf_tensors(path):
    """(name, ggml type id, sha256 of the data) of every tensor of a GGUF v3 file."""
    b = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, b, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return b[pos - n:pos].decode()

    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            it, n = take("I"), take("Q")
            return [value(it) for _ in range(n)]
        return take(sizes[t])

    assert b[:4] == b"GGUF"
    pos = 8
    n_tensors, n_kv = take("Q"), take("Q")
    align = 32
    for _ in range(n_kv):
        key, t = string(), take("I")
        v = value(t)
        if key == "general.alignment":
            align = v
    infos = []
    for _ in range(n_tensors):
        name, nd = string(), take("I")
        ne = [take("Q") for _ in range(nd)]
        tid, off = take("I"), take("Q")
        count = 1
        for d in ne:
            count *= d
        qk, size = BLOCK[tid]
        infos.append((name, tid, off, count // qk * size))
    start = (pos + align - 1) // align * align
    return [(n, tid, hashlib.sha256(b[start + o:start + o + sz]).hexdigest()) for n, tid, o, sz in infos]


def llama_quantize_fixture():
    d = os.path.join(ROOT, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/")
    ctypes.CDLL(d + "libggml-base.so", mode=ctypes.RTLD_GLOBAL)
    ctypes.CDLL(d + "libggml.v0.4.0.so", mode=ctypes.RTLD_GLOBAL)
    llama = ctypes.CDLL(d + "libllama.v0.4.0.so")

    # llama_model_quantize_params, as this libllama lays it out: int32 nthread, ftype, output_tensor_type,
    # token_embedding_type; bools allow_requantize, quantize_output_tensor, only_copy, pure, keep_split,
    # dry_run; four pointers. Read the defaults into a roomy buffer and set only nthread, ftype and pure.
    class Params(ctypes.Structure):
        _fields_ = [("raw", ctypes.c_uint8 * 256)]

    llama.llama_model_quantize_default_params.restype = Params
    llama.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Params)]
    llama.llama_backend_init()
    defaults = llama.llama_model_quantize_default_params()
    assert struct.unpack_from("<iiii", bytes(defaults.raw)) == (0, 7, 43, 43), "unexpected params layout"
    assert bytes(defaults.raw[16:22]) == bytes([0, 1, 0, 0, 0, 0]), "unexpected params layout"
    out = {"generator": "tools/gen_quant_fixtures.py (llama_model_quantize)", "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        cases = json.loads(subprocess.check_output(
            ["node", os.path.join(ROOT, "dist/tools/write_quant_sources.js"), tmp]))
        for case in cases:
            src = os.path.join(tmp, case["name"] + ".gguf")
            entry = {"name": case["name"], "sourceSha256": hashlib.sha256(open(src, "rb").read()).hexdigest(),
                     "presets": {}}
            for preset in case["presets"]:
                ftype, pure = PRESETS[preset]
                p = llama.llama_model_quantize_default_params()
                struct.pack_into("<ii", p.raw, 0, 1, ftype)
                p.raw[19] = int(pure)
                dst = os.path.join(tmp, f"{case['name']}.{preset}.gguf")
                assert llama.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p)) == 0, preset
                entry["presets"][preset] = [
                    {"name": n, "ggmlType": t, "sha256": h} for n, t, h in gguf_tensors(dst)]
            out["models"].append(entry)
    with open(os.path.join(OUT, "llama-quantize.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main():
    lib = ctypes.CDLL(LIB)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
        ctypes.c_void_p,
    ]
    named = rows()
    x = np.ascontiguousarray(np.stack([r for _, r in named]))
    os.makedirs(OUT, exist_ok=True)
    x.astype("<f4").tofile(os.path.join(OUT, "input.f32"))
    manifest = {
        "generator": "tools/gen_quant_fixtures.py",
        "library": json.load(open(META))["buildOptions"]["llamaCpp"],
        "rows": len(named),
        "cols": COLS,
        "rowNames": [n for n, _ in named],
        "types": [],
    }
    for name, tid, qk, size in TYPES:
        row_bytes = COLS // qk * size
        ref = getattr(lib, f"quantize_row_{name}_ref")
        ref.restype = None
        ref.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        deq = getattr(lib, f"dequantize_row_{name}")
        deq.restype = None
        deq.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        q = np.zeros(len(named) * row_bytes, dtype=np.uint8)
        for i in range(len(named)):
            ref(x[i].ctypes.data, q[i * row_bytes:].ctypes.data, COLS)
        chunk = np.zeros_like(q)
        n = lib.ggml_quantize_chunk(tid, x.ctypes.data, chunk.ctypes.data, 0, len(named), COLS, None)
        assert n == q.size, (name, n, q.size)
        assert np.array_equal(q, chunk), f"{name}: quantize_row_ref and ggml_quantize_chunk differ"
        y = np.zeros(x.shape, dtype=np.float32)
        for i in range(len(named)):
            deq(q[i * row_bytes:].ctypes.data, y[i].ctypes.data, COLS)
        q.tofile(os.path.join(OUT, f"{name.lower()}.bin"))
        y.astype("<f4").tofile(os.path.join(OUT, f"{name.lower()}.f32"))
        manifest["types"].append({"name": name.upper(), "ggmlType": tid, "blockSize": qk, "blockBytes": size})
        print(f"{name}: {q.size} bytes, max |x - dequant| = {np.max(np.abs(x - y)):.3g}")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    llama_quantize_fixture()


if __name__ == "__main__":
    main()
