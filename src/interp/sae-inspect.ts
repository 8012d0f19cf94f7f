// What an SAE's features respond to: each feature's top-activating tokens over held-out text, with a window
// of context either side, and how often it fires (its density).
import type { TokenArray } from "../data/index.js";
import type { Model } from "../nn/index.js";
import type { Sae } from "./sae.js";
import { saeApply } from "./sae.js";
import { checkSaeHook, heldOutBatches, hookActivations } from "./sae-train.js";

export interface FeatureContext {
  activation: number;
  /** Token ids before the token, the token, and after it (within its window of the split). */
  before: number[];
  token: number;
  after: number[];
}

export interface FeatureReport {
  feature: number;
  /** Fraction of the scanned tokens the feature fires on. */
  density: number;
  maxActivation: number;
  contexts: FeatureContext[];
}

export interface FeatureScan {
  /** Tokens scanned. */
  tokens: number;
  /** Every feature, in feature order. */
  features: FeatureReport[];
}

export interface ScanOptions {
  /** Top contexts kept per feature (default 5). */
  contexts?: number;
  /** Tokens shown before and after the marked one (default 8 and 3). */
  before?: number;
  after?: number;
  /** At most this many held-out tokens (default 65536). */
  maxTokens?: number;
}

/** Scans held-out tokens once, keeping each feature's density and its top-activating contexts. */
export function scanFeatures(
  model: Model,
  sae: Sae,
  tokens: readonly TokenArray[],
  o: ScanOptions = {},
): FeatureScan {
  checkSaeHook(model, sae.config.hook);
  const K = o.contexts ?? 5;
  const before = o.before ?? 8;
  const after = o.after ?? 3;
  const F = sae.config.features;
  const context = model.config.context;
  const fires = new Float64Array(F);
  const maxAct = new Float64Array(F);
  // Per feature, its top K as (activation, row tokens, position), kept sorted descending.
  const top: { act: number; row: Int32Array; t: number }[][] = Array.from({ length: F }, () => []);
  let n = 0;
  for (const b of heldOutBatches(tokens, context, o.maxTokens ?? 65536)) {
    const { acts, d } = hookActivations(model, sae.config.hook, b.inputs, b.rows);
    if (d !== sae.config.dIn)
      throw new Error(
        `sae: ${sae.config.hook} has width ${d} in this model, the SAE's d_in is ${sae.config.dIn}`,
      );
    const rows = b.rows * b.context;
    const { f } = saeApply(sae, acts, rows);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < F; j++) {
        const a = f[i * F + j]!;
        if (!(a > 0)) continue;
        fires[j]!++;
        if (a > maxAct[j]!) maxAct[j] = a;
        const list = top[j]!;
        if (list.length === K && a <= list[K - 1]!.act) continue;
        const r = Math.floor(i / b.context);
        const entry = {
          act: a,
          row: b.inputs.subarray(r * b.context, (r + 1) * b.context),
          t: i % b.context,
        };
        let p = list.length;
        while (p > 0 && list[p - 1]!.act < a) p--;
        list.splice(p, 0, entry);
        if (list.length > K) list.pop();
      }
    }
    n += rows;
  }
  if (n === 0) throw new Error(`sae: the held-out split is too short for one window of ${context} tokens`);
  return {
    tokens: n,
    features: top.map((list, j) => ({
      feature: j,
      density: fires[j]! / n,
      maxActivation: maxAct[j]!,
      contexts: list.map(({ act, row, t }) => ({
        activation: act,
        before: Array.from(row.subarray(Math.max(0, t - before), t)),
        token: row[t]!,
        after: Array.from(row.subarray(t + 1, t + 1 + after)),
      })),
    })),
  };
}
