// L-BFGS with a strong-Wolfe line search (Nocedal & Wright, "Numerical Optimization", 2nd ed.,
// Algorithm 7.4 for the two-loop recursion, Algorithms 3.5/3.6 for the line search).
// Small and dependency-free: the scaling fits call it thousands of times on 5-parameter problems,
// so it works on plain Float64Arrays and allocates only at start-up.

/** Returns f(x) and writes ∇f(x) into `grad`. May return a non-finite value for x outside the domain. */
export type Objective = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  /** Number of (s, y) correction pairs kept. */
  memory?: number;
  maxIterations?: number;
  maxEvaluations?: number;
  /** Converged when the largest |∂f/∂x_i| is at most this. */
  gradTol?: number;
  /** Converged when an iteration lowers f by at most relTol·|f| (scale-free: no floor of 1, because
   * objectives such as the Huber fit of log-losses are ~1e-3 in size). */
  relTol?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  /** Infinity norm of the gradient at x. */
  gradNorm: number;
  iterations: number;
  evaluations: number;
  converged: boolean;
  reason: "gradient" | "relative-change" | "max-iterations" | "max-evaluations" | "line-search";
}

const C1 = 1e-4; // sufficient decrease
const C2 = 0.9; // curvature (the usual choice for quasi-Newton methods)
const MAX_LINE_SEARCH_EVALS = 40;

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function infNorm(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Minimiser of the cubic interpolating (a, fa, da) and (b, fb, db); NaN when it does not exist. */
function cubicMinimizer(a: number, fa: number, da: number, b: number, fb: number, db: number): number {
  const d1 = da + db - (3 * (fa - fb)) / (a - b);
  const disc = d1 * d1 - da * db;
  if (!(disc >= 0)) return Number.NaN;
  const d2 = Math.sign(b - a) * Math.sqrt(disc);
  return b - ((b - a) * (db + d2 - d1)) / (db - da + 2 * d2);
}

export function lbfgs(objective: Objective, x0: ArrayLike<number>, options: LbfgsOptions = {}): LbfgsResult {
  const n = x0.length;
  const m = options.memory ?? 10;
  const maxIterations = options.maxIterations ?? 1000;
  const maxEvaluations = options.maxEvaluations ?? 20 * maxIterations;
  const gradTol = options.gradTol ?? 1e-8;
  const relTol = options.relTol ?? 1e-12;
  if (n === 0) throw new Error("lbfgs: x0 must have at least one component");

  const x = Float64Array.from(x0);
  const g = new Float64Array(n);
  const d = new Float64Array(n);
  const xTrial = new Float64Array(n);
  const gTrial = new Float64Array(n);
  // Best point seen inside the current line search (its Armijo-satisfying "lo" end).
  const xLo = new Float64Array(n);
  const gLo = new Float64Array(n);
  const S = Array.from({ length: m }, () => new Float64Array(n));
  const Y = Array.from({ length: m }, () => new Float64Array(n));
  const sNew = new Float64Array(n);
  const yNew = new Float64Array(n);
  const rho = new Float64Array(m);
  const alphaBuf = new Float64Array(m);
  let stored = 0;
  let head = 0; // index of the next slot to overwrite

  let evaluations = 1;
  let f = objective(x, g);
  if (!Number.isFinite(f)) throw new Error(`lbfgs: objective is not finite at the starting point (f = ${f})`);

  const result = (iterations: number, reason: LbfgsResult["reason"], converged: boolean): LbfgsResult => ({
    x,
    f,
    gradNorm: infNorm(g),
    iterations,
    evaluations,
    converged,
    reason,
  });

  // phi(t) = f(x + t d); writes the point and gradient into xTrial/gTrial and returns [phi, phi'].
  const evalAt = (t: number): [number, number] => {
    for (let i = 0; i < n; i++) xTrial[i] = x[i]! + t * d[i]!;
    evaluations++;
    const ft = objective(xTrial, gTrial);
    return [Number.isFinite(ft) ? ft : Number.POSITIVE_INFINITY, dot(gTrial, d)];
  };

  // --- line search along d from x; phi0/dphi0 are f and f' at t = 0 ---
  function strongWolfe(tInit: number, phi0: number, dphi0: number): number | null {
    let tPrev = 0;
    let fPrev = phi0;
    let dPrev = dphi0;
    let t = tInit;
    for (let k = 0; k < MAX_LINE_SEARCH_EVALS; k++) {
      const [ft, dt] = evalAt(t);
      if (ft > phi0 + C1 * t * dphi0 || (k > 0 && ft >= fPrev)) {
        return zoom(tPrev, fPrev, dPrev, t, ft, dt, phi0, dphi0);
      }
      if (Math.abs(dt) <= -C2 * dphi0) {
        xLo.set(xTrial);
        gLo.set(gTrial);
        return ft;
      }
      if (dt >= 0) {
        xLo.set(xTrial);
        gLo.set(gTrial);
        return zoom(t, ft, dt, tPrev, fPrev, dPrev, phi0, dphi0);
      }
      xLo.set(xTrial);
      gLo.set(gTrial);
      tPrev = t;
      fPrev = ft;
      dPrev = dt;
      t *= 4;
    }
    return tPrev > 0 ? fPrev : null;
  }

  // Invariant: lo satisfies sufficient decrease and has the lowest f so far; xLo/gLo hold lo's point
  // whenever tLo > 0. The bracket [lo, hi] contains a step satisfying the strong Wolfe conditions.
  function zoom(
    tLo: number,
    fLo: number,
    dLo: number,
    tHi: number,
    fHi: number,
    dHi: number,
    phi0: number,
    dphi0: number,
  ): number | null {
    for (let k = 0; k < MAX_LINE_SEARCH_EVALS; k++) {
      const width = tHi - tLo;
      let t = Number.isFinite(fHi) ? cubicMinimizer(tLo, fLo, dLo, tHi, fHi, dHi) : Number.NaN;
      const lo = Math.min(tLo, tHi) + 0.1 * Math.abs(width);
      const hi = Math.max(tLo, tHi) - 0.1 * Math.abs(width);
      if (!(t >= lo && t <= hi)) t = tLo + 0.5 * width;
      if (Math.abs(width) <= 1e-16 * Math.max(1, Math.abs(tLo))) break;
      const [ft, dt] = evalAt(t);
      if (ft > phi0 + C1 * t * dphi0 || ft >= fLo) {
        tHi = t;
        fHi = ft;
        dHi = dt;
      } else {
        if (Math.abs(dt) <= -C2 * dphi0) {
          xLo.set(xTrial);
          gLo.set(gTrial);
          return ft;
        }
        if (dt * (tHi - tLo) >= 0) {
          tHi = tLo;
          fHi = fLo;
          dHi = dLo;
        }
        tLo = t;
        fLo = ft;
        dLo = dt;
        xLo.set(xTrial);
        gLo.set(gTrial);
      }
    }
    // Bracket collapsed: accept lo if it made progress (sufficient decrease holds for it).
    return tLo > 0 && fLo < phi0 ? fLo : null;
  }

  for (let iter = 0; iter < maxIterations; iter++) {
    if (infNorm(g) <= gradTol) return result(iter, "gradient", true);

    // Two-loop recursion: d = -H g.
    for (let i = 0; i < n; i++) d[i] = -g[i]!;
    for (let k = 0; k < stored; k++) {
      const j = (head - 1 - k + m) % m;
      const a = rho[j]! * dot(S[j]!, d);
      alphaBuf[j] = a;
      const y = Y[j]!;
      for (let i = 0; i < n; i++) d[i] = d[i]! - a * y[i]!;
    }
    if (stored > 0) {
      const j = (head - 1 + m) % m;
      const gamma = dot(S[j]!, Y[j]!) / dot(Y[j]!, Y[j]!);
      for (let i = 0; i < n; i++) d[i] = d[i]! * gamma;
    }
    for (let k = stored - 1; k >= 0; k--) {
      const j = (head - 1 - k + m) % m;
      const b = rho[j]! * dot(Y[j]!, d);
      const a = alphaBuf[j]! - b;
      const s = S[j]!;
      for (let i = 0; i < n; i++) d[i] = d[i]! + a * s[i]!;
    }
    let dphi0 = dot(g, d);
    if (!(dphi0 < 0)) {
      // Not a descent direction (lost curvature information): restart from steepest descent.
      stored = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i]!;
      dphi0 = dot(g, d);
    }

    // Initial trial step: 1 for quasi-Newton steps; a unit-length step when there is no curvature yet.
    const t0 = stored > 0 ? 1 : 1 / Math.sqrt(-dphi0);
    const phi0 = f;
    const step = strongWolfe(t0, phi0, dphi0);
    if (step === null) {
      // No acceptable step: we are at the resolution limit of f (or the model is broken).
      return result(iter, "line-search", infNorm(g) <= Math.sqrt(gradTol));
    }
    const fNew = step;
    // Accept xLo/gLo (the line search leaves the accepted point there).
    for (let i = 0; i < n; i++) {
      sNew[i] = xLo[i]! - x[i]!;
      yNew[i] = gLo[i]! - g[i]!;
      x[i] = xLo[i]!;
      g[i] = gLo[i]!;
    }
    const sy = dot(sNew, yNew);
    // Keep the pair only if it carries positive curvature (strong Wolfe guarantees it up to rounding).
    if (sy > 1e-12 * Math.sqrt(dot(sNew, sNew) * dot(yNew, yNew))) {
      S[head]!.set(sNew);
      Y[head]!.set(yNew);
      rho[head] = 1 / sy;
      head = (head + 1) % m;
      stored = Math.min(stored + 1, m);
    }
    const fOld = f;
    f = fNew;
    if (fOld - f <= relTol * Math.max(Math.abs(fOld), Math.abs(f))) {
      return result(iter + 1, "relative-change", true);
    }
    if (evaluations >= maxEvaluations) return result(iter + 1, "max-evaluations", false);
  }
  return result(maxIterations, "max-iterations", false);
}
