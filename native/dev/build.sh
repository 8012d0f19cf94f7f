#!/bin/sh
# Builds the standalone matmul harness (/tmp/matmul_harness) and the ctypes library for compare.py
# (/tmp/libas_matmul.so) with the same flags binding.gyp uses per ISA, without node-gyp.
# THREADPOOL=path overrides threadpool.cc (to try a patched pool).
set -e
cd "$(dirname "$0")/../src"
obj=$(mktemp -d)
common="-O3 -std=c++17 -fPIC -fno-math-errno -Wall -Wno-unused-function"
g++ $common -DAS_ISA=generic -c matmul.cc -o "$obj/mm_generic.o" &
g++ $common -DAS_ISA=avx2 -mavx2 -mfma -mf16c -c matmul.cc -o "$obj/mm_avx2.o" &
g++ $common -DAS_ISA=avx512 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c -c matmul.cc \
  -o "$obj/mm_avx512.o"
wait
g++ $common -pthread -c "${THREADPOOL:-threadpool.cc}" -o "$obj/threadpool.o"
g++ -O2 -std=c++17 -pthread ../dev/matmul_harness.cc "$obj"/*.o -o /tmp/matmul_harness
g++ -O2 -std=c++17 -fPIC -shared -pthread ../dev/capi.cc "$obj"/*.o -o /tmp/libas_matmul.so
rm -rf "$obj"
echo "built /tmp/matmul_harness /tmp/libas_matmul.so"
