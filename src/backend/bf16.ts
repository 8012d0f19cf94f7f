// bfloat16: the top 16 bits of a float32 (8-bit exponent, 7-bit mantissa). Conversions round to nearest
// even, as `vcvtneps2bf16`, PyTorch's `.to(torch.bfloat16)` and ggml's GGML_FP32_TO_BF16 do; the reference
// backend, the formats (safetensors and GGUF BF16) and the kernels' tests all round through these.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float → bf16 bits, rounding to nearest even; NaN stays a (quiet) NaN. */
export function floatToBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  // Adding 0x7fff plus the kept part's lowest bit rounds half to even; a carry bumps the exponent.
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bf16 bits → float (exact). */
export function bf16ToFloat(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** x rounded to the nearest bf16 value, as a number. */
export function roundBf16(x: number): number {
  return bf16ToFloat(floatToBf16(x));
}

/** Every element rounded to bf16 (a new array of the same kind). */
export function roundArrayBf16<T extends Float32Array | Float64Array>(x: T): T {
  const out = new (x.constructor as new (n: number) => T)(x.length);
  for (let i = 0; i < x.length; i++) out[i] = roundBf16(x[i]!);
  return out;
}
