{
  # One addon; the kernels are compiled once per instruction set and chosen at run time (cpu.cc),
  # so a single build runs on any x86-64 and the portable path compiles everywhere else.
  "variables": {
    "kernel_sources": ["native/src/matmul.cc", "native/src/ops.cc", "native/src/ops_norm.cc", "native/src/ops_attention.cc", "native/src/matmul_quant.cc"],
    "kernel_cflags": ["-O3", "-std=c++17", "-fPIC", "-fno-math-errno", "-Wall", "-Wno-unused-function"]
  },
  "targets": [
    {
      "target_name": "afterscale_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/bind_matmul.cc",
        "native/src/bind_ops.cc",
        "native/src/threadpool.cc",
        "native/src/cpu.cc",
        "native/src/bind_quant.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # SWALLOW_UNTHROWABLE: a worker thread terminated inside a kernel call (a server shutting down) makes
      # its N-API calls fail; the binding's C++ exception then cannot become a JS one, and without this
      # node-addon-api rethrows it and aborts the process.
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-O3", "-std=c++17", "-fexceptions", "-pthread"],
      # nodelete: the kernel thread pool lives in this library and outlives any one JS thread; a worker
      # thread that loaded the addon must not unmap it on exit while the pool's threads still run its code.
      "ldflags": ["-pthread", "-Wl,-z,nodelete"],
      "dependencies": ["kernels_generic"],
      "conditions": [
        ["target_arch=='x64'", {
          "dependencies": ["kernels_avx2", "kernels_avx512", "kernels_avx512bf16", "kernels_avx512vnni"],
          "defines": ["AS_HAVE_X86_VARIANTS=1"]
        }]
      ]
    },
    {
      "target_name": "kernels_generic",
      "type": "static_library",
      "sources": ["<@(kernel_sources)"],
      "defines": ["AS_ISA=generic"],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<@(kernel_cflags)"]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "kernels_avx2",
          "type": "static_library",
          "sources": ["<@(kernel_sources)"],
          "defines": ["AS_ISA=avx2"],
          "cflags_cc!": ["-std=gnu++17", "-std=gnu++20"],
          "cflags_cc": ["<@(kernel_cflags)", "-mavx2", "-mfma", "-mf16c"]
        },
        {
          "target_name": "kernels_avx512",
          "type": "static_library",
          "sources": ["<@(kernel_sources)"],
          "defines": ["AS_ISA=avx512"],
          "cflags_cc!": ["-std=gnu++17", "-std=gnu++20"],
          "cflags_cc": ["<@(kernel_cflags)", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mf16c"]
        },
        {
          # Only the matrix products and attention, with AVX-512 BF16 (vdpbf16ps): chosen where the CPU has it.
          "target_name": "kernels_avx512bf16",
          "type": "static_library",
          "sources": ["native/src/matmul.cc", "native/src/ops_attention.cc"],
          "defines": ["AS_ISA=avx512bf16"],
          "cflags_cc!": ["-std=gnu++17", "-std=gnu++20"],
          "cflags_cc": ["<@(kernel_cflags)", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512bf16", "-mavx2", "-mfma", "-mf16c"]
        },
        {
          # The quantized-weight products once more with AVX-512 VNNI (vpdpbusd), chosen where the CPU has it.
          "target_name": "kernels_avx512vnni",
          "type": "static_library",
          "sources": ["native/src/matmul_quant.cc"],
          "defines": ["AS_ISA=avx512vnni"],
          "cflags_cc!": ["-std=gnu++17", "-std=gnu++20"],
          "cflags_cc": ["<@(kernel_cflags)", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni", "-mavx2", "-mfma", "-mf16c"]
        }
      ]
    }]
  ]
}
