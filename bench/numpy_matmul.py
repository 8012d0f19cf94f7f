"""numpy (OpenBLAS) side of the kernel benchmark, run by bench/kernels.ts as a child process.

Protocol (JSON lines): first prints {"blas": {...}} describing the BLAS numpy runs; then for each input line
{"name", "m", "n", "k", "transA", "transB", "reps"} it times `reps` calls of np.matmul after a warm-up and
prints {"name", "seconds"} with the median. The caller alternates cases with its own timings so background
load hits both sides alike, and sets OPENBLAS_NUM_THREADS to its own thread count.
"""

import ctypes
import glob
import json
import os
import sys
import time

import numpy as np


def blas_info():
    info = {"numpy": np.__version__, "threads_env": os.environ.get("OPENBLAS_NUM_THREADS")}
    # numpy wheels bundle scipy-openblas; ask it which core kernel it picked at run time.
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "")):
            try:
                corename = getattr(lib, prefix + "get_corename" + suffix)
                config = getattr(lib, prefix + "get_config" + suffix)
                nthreads = getattr(lib, prefix + "get_num_threads" + suffix)
            except AttributeError:
                continue
            corename.restype = config.restype = ctypes.c_char_p
            info.update(
                library=os.path.basename(path),
                corename=corename().decode(),
                config=config().decode(),
                threads=nthreads(),
            )
            return info
    try:
        from threadpoolctl import threadpool_info

        info["threadpoolctl"] = threadpool_info()
    except ImportError:
        info["note"] = "OpenBLAS core name unavailable (no bundled scipy-openblas, no threadpoolctl)"
    return info


def operand(rng, rows, cols, trans):
    """A float32 [rows, cols] operand; transposed ones are views of a [cols, rows] array (no copy)."""
    if trans:
        return rng.standard_normal((cols, rows), dtype=np.float32).T
    return rng.standard_normal((rows, cols), dtype=np.float32)


def main():
    rng = np.random.default_rng(0)
    arrays = {}
    print(json.dumps({"blas": blas_info()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        name = case["name"]
        if name not in arrays:
            m, n, k = case["m"], case["n"], case["k"]
            a = operand(rng, m, k, case["transA"])
            b = operand(rng, k, n, case["transB"])
            arrays[name] = (a, b, np.empty((m, n), dtype=np.float32))
        a, b, c = arrays[name]
        reps = case["reps"]
        for _ in range(max(2, reps // 5)):
            np.matmul(a, b, out=c)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
        times.sort()
        print(json.dumps({"name": name, "seconds": times[len(times) // 2]}), flush=True)


if __name__ == "__main__":
    main()
