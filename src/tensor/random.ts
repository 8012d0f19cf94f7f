// The one seeded PRNG (xoshiro128** seeded through splitmix32) for every layer: training, sampling, data
// and the scaling lab. Its whole state is four 32-bit words, so a checkpoint can store it and a resumed run
// draws exactly the numbers the uninterrupted run would have drawn. `randomStream` wraps it as closures
// for code that passes a draw function around (bootstraps, synthetic data).

export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private s: Uint32Array;

  constructor(seed: number | RngState = 0) {
    this.s = new Uint32Array(4);
    if (typeof seed === "number") {
      const next = splitmix32(seed);
      for (let i = 0; i < 4; i++) this.s[i] = next();
    } else {
      this.s.set(seed);
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  state(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller; one draw per call keeps the state simple to save). */
  normal(): number {
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

/** A seeded stream of plain functions: `next` may be passed around unbound (e.g. `resample(n, rng.next)`). */
export interface RandomStream {
  /** Uniform in [0, 1) with 53 random bits (the same numbers as `new Rng(seed).uniform()`). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal by Box–Muller using both outputs: the second is kept for the next call. */
  normal(): number;
}

/** A RandomStream over `new Rng(seed)`; the seed must be finite (it is truncated to 32 bits). */
export function randomStream(seed: number): RandomStream {
  if (!Number.isFinite(seed)) throw new Error(`randomStream: seed must be a finite number, got ${seed}`);
  const rng = new Rng(Math.trunc(seed));
  const next = (): number => rng.uniform();
  let spare: number | null = null;
  return {
    next,
    int(n: number): number {
      if (!(Number.isInteger(n) && n > 0)) throw new Error(`int: n must be a positive integer, got ${n}`);
      return Math.floor(next() * n);
    },
    normal(): number {
      if (spare !== null) {
        const v = spare;
        spare = null;
        return v;
      }
      let u = 0;
      while (u === 0) u = next();
      const r = Math.sqrt(-2 * Math.log(u));
      const theta = 2 * Math.PI * next();
      spare = r * Math.sin(theta);
      return r * Math.cos(theta);
    },
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
