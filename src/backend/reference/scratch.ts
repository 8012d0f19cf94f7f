// Shared helpers for the reference kernels: grow-only float64 scratch buffers (so a warmed-up kernel
// allocates nothing per call, and float32 inputs still accumulate in float64) and argument checks.

import type { FloatArray } from "../backend.js";

const buffers: Float64Array[] = [];

/**
 * A Float64Array of at least n elements for scratch slot `slot` (contents are garbage). Kernels use
 * distinct slots for buffers they need at the same time; no kernel calls another while holding one.
 */
export function scratch(slot: number, n: number): Float64Array {
  const old = buffers[slot];
  if (old !== undefined && old.length >= n) return old;
  const grown = new Float64Array(Math.max(n, old === undefined ? 0 : 2 * old.length));
  buffers[slot] = grown;
  return grown;
}

/** Throws a clear error when `array` is shorter than the kernel is about to read or write. */
export function needLength(kernel: string, what: string, array: ArrayLike<number>, n: number): void {
  if (array.length < n) {
    throw new Error(`${kernel}: ${what} has ${array.length} elements, needs at least ${n}`);
  }
}

/** Throws unless every value is a non-negative integer. */
export function needCounts(kernel: string, counts: Record<string, number>): void {
  for (const [name, value] of Object.entries(counts)) {
    if (!Number.isInteger(value) || value < 0) {
      throw new Error(`${kernel}: ${name} must be a non-negative integer, got ${value}`);
    }
  }
}

/** Copies a float64 accumulator into the destination array. */
export function store(dst: FloatArray, src: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) dst[i] = src[i];
}
