// Backend selection: AFTERSCALE_BACKEND=native|reference; native by default when the addon loads.
// float64 tensors (used by gradient checks) always run on the reference backend.
import type { Backend } from "./backend.js";
import { loadNative } from "./native.js";
import { profiled } from "./profile.js";
import { reference } from "./reference.js";

export type {
  AdamWArgs,
  AttentionShape,
  Backend,
  FloatArray,
  MatmulArgs,
  PackedMatrix,
  PackedType,
} from "./backend.js";
export { GGML_TYPE_IDS } from "./backend.js";
export { packageRoot } from "./package-root.js";

let active: Backend | null = null;
let nativeCache: Backend | null | undefined;
let warned = false;

/** The native backend, or null (with the reason printed once) when the addon is missing or broken. */
export function nativeBackend(): Backend | null {
  if (nativeCache !== undefined) return nativeCache;
  const loaded = loadNative();
  if ("error" in loaded) {
    nativeCache = null;
    if (!warned) {
      warned = true;
      process.stderr.write(
        `afterscale: native backend unavailable (${loaded.error}); using the reference backend (slow). ` +
          "Rebuild it with `npm rebuild` (needs g++ and python3).\n",
      );
    }
  } else {
    nativeCache = loaded;
  }
  return nativeCache ?? null;
}

function choose(): Backend {
  const want = process.env.AFTERSCALE_BACKEND ?? "";
  if (want === "reference") return reference;
  if (want !== "" && want !== "native") {
    throw new Error(`AFTERSCALE_BACKEND=${want}: expected "native" or "reference"`);
  }
  const native = nativeBackend();
  if (native) return native;
  if (want === "native")
    throw new Error("AFTERSCALE_BACKEND=native but the native addon could not be loaded");
  return reference;
}

/** The backend float32 tensors run on. */
export function backend(): Backend {
  if (!active) active = process.env.AFTERSCALE_PROFILE === "1" ? profiled(choose()) : choose();
  return active;
}

/** Switches the backend for float32 work (tests and benchmarks compare the two). */
export function setBackend(name: "native" | "reference"): Backend {
  if (name === "reference") active = reference;
  else {
    const native = nativeBackend();
    if (!native) throw new Error("setBackend: the native addon could not be loaded");
    active = native;
  }
  return active;
}

export { inPhase, type Phase, profileReport, resetProfile } from "./profile.js";
export { reference };
