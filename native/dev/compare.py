"""Call-by-call comparison of the native matmul with numpy in one process (dev tool, noisy machines).

Each repetition times one numpy call and one afterscale call back to back, so background load hits both
alike; the reported ratio is the median of the per-pair ratios. The ctypes call overhead (measured on a
no-op with the same arguments) is subtracted from afterscale's times. Build first: native/dev/build.sh (it also
builds /tmp/libas_matmul.so). Usage:
  OPENBLAS_NUM_THREADS=1 AFTERSCALE_THREADS=1 python3 native/dev/compare.py M N K [tA tB [reps]]
"""

import ctypes
import os
import sys
import time

# As bench/kernels.ts does for its numpy child: these workarounds (set on some machines) select slower
# OpenBLAS kernels. OpenBLAS reads them when numpy loads it, so they go before the import.
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import numpy as np  # noqa: E402

lib = ctypes.CDLL("/tmp/libas_matmul.so")
P = ctypes.POINTER(ctypes.c_float)
ARGS = [ctypes.c_char_p, P, P, P] + [ctypes.c_long] * 4 + [ctypes.c_int] * 2 + [ctypes.c_long] * 2 + [ctypes.c_int]
lib.as_dev_matmul.argtypes = ARGS
lib.as_dev_noop.argtypes = ARGS


def main():
    m, n, k = (int(x) for x in sys.argv[1:4])
    ta = len(sys.argv) > 4 and sys.argv[4] == "1"
    tb = len(sys.argv) > 5 and sys.argv[5] == "1"
    reps = int(sys.argv[6]) if len(sys.argv) > 6 else 30
    rng = np.random.default_rng(0)
    a_store = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b_store = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    a = a_store.T if ta else a_store
    b = b_store.T if tb else b_store
    c = np.empty((m, n), dtype=np.float32)
    c2 = np.empty((m, n), dtype=np.float32)
    ptr = lambda x: x.ctypes.data_as(P)  # noqa: E731
    def ours():
        lib.as_dev_matmul(b"avx512", ptr(a_store), ptr(b_store), ptr(c2), 1, m, n, k, ta, tb, 0, 0, 0)

    theirs = lambda: np.matmul(a, b, out=c)  # noqa: E731
    for _ in range(3):
        ours()
        theirs()
    assert np.allclose(c, c2, rtol=1e-3, atol=1e-3 * np.sqrt(k))
    # ctypes costs microseconds per call (numpy's own call costs ~1 us); measure it and take it off.
    noop = []
    for _ in range(200):
        t0 = time.perf_counter()
        lib.as_dev_noop(b"avx512", ptr(a_store), ptr(b_store), ptr(c2), 1, m, n, k, ta, tb, 0, 0, 0)
        noop.append(time.perf_counter() - t0)
    overhead = sorted(noop)[len(noop) // 2]
    to, tt = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        theirs()
        t1 = time.perf_counter()
        ours()
        t2 = time.perf_counter()
        tt.append(t1 - t0)
        to.append(max(t2 - t1 - overhead, 1e-9))
    ratios = sorted(x / y for x, y in zip(tt, to))
    flops = 2 * m * n * k
    print(
        f"{m}x{n}x{k} tA={int(ta)} tB={int(tb)}: ours best {flops / min(to) / 1e9:.1f} GF/s, numpy best "
        f"{flops / min(tt) / 1e9:.1f} GF/s, median pair ratio ours/numpy {ratios[len(ratios) // 2]:.2f} "
        f"(ctypes overhead {overhead * 1e6:.1f} us removed)"
    )


main()
