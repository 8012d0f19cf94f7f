// Seeded random inputs for tests: mulberry32 for uniforms, Box-Muller for normals.

/** A uniform [0, 1) generator from a 32-bit seed (mulberry32). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box-Muller) from a uniform generator. */
export function normal(uniform: () => number): () => number {
  return () => {
    const u1 = 1 - uniform(); // (0, 1], so the log is finite
    const u2 = uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}

/** A test RNG: uniforms, normals, and filled arrays. */
export class TestRandom {
  readonly uniform: () => number;
  readonly gaussian: () => number;

  constructor(seed: number) {
    this.uniform = mulberry32(seed);
    this.gaussian = normal(this.uniform);
  }

  /** Float64Array of n normals times `scale`. */
  normals(n: number, scale = 1): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.gaussian() * scale;
    return out;
  }

  /** Float64Array of n uniforms in [lo, hi). */
  uniforms(n: number, lo: number, hi: number): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** Int32Array of n integers in [0, max). */
  ints(n: number, max: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.uniform() * max);
    return out;
  }
}
