// Small statistics helpers shared by the fits: summaries of bootstrap samples and least squares.

/** A point estimate with its bootstrap standard error and 95% percentile interval. */
export interface Interval {
  estimate: number;
  se: number;
  lo: number;
  hi: number;
}

/** Quantile q ∈ [0, 1] of sorted values, linear interpolation between order statistics. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function standardDeviation(values: readonly number[]): number {
  const n = values.length;
  if (n < 2) return Number.NaN;
  let mean = 0;
  for (const v of values) mean += v;
  mean /= n;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  return Math.sqrt(ss / (n - 1));
}

/** Estimate + bootstrap SE + 95% percentile interval. Non-finite samples are dropped. */
export function summarize(estimate: number, samples: readonly number[]): Interval {
  const finite = samples.filter(Number.isFinite).sort((a, b) => a - b);
  return {
    estimate,
    se: standardDeviation(finite),
    lo: quantileSorted(finite, 0.025),
    hi: quantileSorted(finite, 0.975),
  };
}

/** Ordinary least squares y = intercept + slope·x. */
export function linearFit(x: readonly number[], y: readonly number[]): { intercept: number; slope: number } {
  const n = x.length;
  if (n !== y.length) throw new Error("linearFit: x and y differ in length");
  if (n < 2) throw new Error(`linearFit: need at least 2 points, got ${n}`);
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (x[i]! - mx) ** 2;
    sxy += (x[i]! - mx) * (y[i]! - my);
  }
  if (!(sxx > 0)) throw new Error("linearFit: all x values are equal");
  const slope = sxy / sxx;
  return { intercept: my - slope * mx, slope };
}

/** Least-squares parabola y = c0 + c1·x + c2·x² (x centred internally for conditioning). */
export function quadraticFit(x: readonly number[], y: readonly number[]): [number, number, number] {
  const n = x.length;
  if (n !== y.length) throw new Error("quadraticFit: x and y differ in length");
  if (new Set(x).size < 3)
    throw new Error(`quadraticFit: need at least 3 distinct x values, got ${new Set(x).size}`);
  let xm = 0;
  for (const v of x) xm += v;
  xm /= n;
  // Normal equations in u = x − xm: [Σ1 Σu Σu²; Σu Σu² Σu³; Σu² Σu³ Σu⁴] c = [Σy; Σuy; Σu²y].
  const s = [0, 0, 0, 0, 0];
  const t = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const u = x[i]! - xm;
    let p = 1;
    for (let k = 0; k < 5; k++) {
      s[k]! += p;
      if (k < 3) t[k]! += p * y[i]!;
      p *= u;
    }
  }
  const M = [
    [s[0]!, s[1]!, s[2]!],
    [s[1]!, s[2]!, s[3]!],
    [s[2]!, s[3]!, s[4]!],
  ];
  const [d0, d1, d2] = solve3(M, t as [number, number, number]);
  // Back to powers of x: d0 + d1(x − xm) + d2(x − xm)².
  return [d0 - d1 * xm + d2 * xm * xm, d1 - 2 * d2 * xm, d2];
}

function solve3(M: number[][], b: [number, number, number]): [number, number, number] {
  const det = (m: number[][]) =>
    m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
    m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
    m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!);
  const D = det(M);
  if (!(Math.abs(D) > 0)) throw new Error("quadraticFit: singular system");
  const out: number[] = [];
  for (let c = 0; c < 3; c++) {
    const Mc = M.map((row, r) => row.map((v, k) => (k === c ? b[r]! : v)));
    out.push(det(Mc) / D);
  }
  return out as [number, number, number];
}
