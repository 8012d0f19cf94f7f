// Learning-rate schedules. `lrAt(step)` is the rate for the update that follows `step` completed updates
// (0-based), so step 0 is the first update. Both schedules warm up linearly from lr/warmup to lr.
//   cosine: after warmup, lr·(r + (1 − r)·½(1 + cos πp)), p going 0 → 1 over the remaining steps
//   wsd:    warmup, then constant, then the last decayFraction of the steps decay linearly to lr·r
// where r = minLrRatio.

export interface ScheduleConfig {
  schedule: "cosine" | "wsd";
  lr: number;
  minLrRatio: number;
  warmupSteps: number;
  steps: number;
  decayFraction: number;
}

export function lrAt(step: number, c: ScheduleConfig): number {
  const { lr, minLrRatio: r, warmupSteps: warmup, steps } = c;
  if (step < warmup) return (lr * (step + 1)) / warmup;
  if (c.schedule === "cosine") {
    const p = Math.min(1, (step - warmup) / Math.max(1, steps - warmup));
    return lr * (r + (1 - r) * 0.5 * (1 + Math.cos(Math.PI * p)));
  }
  const decaySteps = Math.max(1, Math.round(c.decayFraction * steps));
  const decayStart = Math.max(warmup, steps - decaySteps);
  if (step < decayStart) return lr;
  const p = Math.min(1, (step - decayStart + 1) / Math.max(1, steps - decayStart));
  return lr * (1 - (1 - r) * p);
}
