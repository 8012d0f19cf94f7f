// One prompt looked at from inside: the interpretability analyses (src/interp) gathered into one JSON-able
// report, with token ids decoded for people. The inspect page's endpoint (run in the model's worker) and
// `afterscale inspect` both build it here, so the page, the API and the CLI's --json show the same numbers.
import type { Tokenizer } from "../data/tokenizer.js";
import {
  ablatedRun,
  attentionPatterns,
  directLogitAttribution,
  type HeadRef,
  inductionScores,
  logitLens,
} from "../interp/index.js";
import type { Model } from "../nn/index.js";

export type { HeadRef };

export interface TokenProb {
  id: number;
  text: string;
  prob: number;
}

export interface InspectRun {
  /** Mean next-token cross-entropy over the prompt (nats). */
  loss: number;
  /** The most likely next tokens after the prompt's last token. */
  top: TokenProb[];
}

export interface InspectReport {
  tokens: { id: number; text: string }[];
  /** The logit lens: the residual after each layer ("embed": before the first) read through the final norm and unembedding. */
  lens: { labels: string[]; top: TokenProb[][][] /* [label][position][k] */ };
  /** Attention patterns [layer][head][dest][src]. */
  patterns: number[][][][];
  /** TransformerLens's induction score per head [layer][head] (random repeated tokens, not this prompt). */
  induction: number[][];
  /** The length of each random half those scores repeat: 50 (TransformerLens's), or less for a short context. */
  inductionLength: number;
  /** Direct logit attribution of the top token at the last position; component values sum to `logit`. */
  dla: {
    position: number;
    target: number;
    targetText: string;
    logit: number;
    components: { name: string; layer: number | null; head: number | null; value: number }[];
  };
  clean: InspectRun;
  /** The same prompt with the given heads' outputs zeroed; null when none are ablated. */
  ablated: (InspectRun & { heads: HeadRef[] }) | null;
}

export interface InspectOptions {
  /** Heads to zero-ablate for the `ablated` run. */
  ablate?: readonly HeadRef[];
  /** Tokens per logit-lens cell and per prediction list (default 5). */
  top?: number;
  /** The model's induction scores when already known (they depend on the model only). */
  induction?: number[][];
}

/** TransformerLens's 50-token halves, shortened where twice that does not fit the context. */
export function inductionLength(model: Pick<Model, "config">): number {
  return Math.min(50, Math.floor(model.config.context / 2));
}

/**
 * A token as people see it on the page and in the CLI: spaces, tabs and line breaks made visible, other
 * control characters escaped, an empty token as ∅. (public/inspect.js has the same function.)
 */
export function showToken(text: string): string {
  if (text === "") return "∅";
  const shown: Record<string, string> = { " ": "·", "\n": "↵", "\t": "⇥" };
  return [...text]
    .map((c) => {
      if (c in shown) return shown[c]!;
      const code = c.charCodeAt(0);
      return code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : c;
    })
    .join("");
}

/** Fewest tokens a prompt may have: the loss is over next-token predictions within it. */
export const MIN_INSPECT_TOKENS = 2;

/** Checks heads against the model's shape; returns what is wrong (naming the entry) or null. */
export function badHead(
  config: Pick<Model["config"], "layers" | "heads">,
  heads: readonly HeadRef[],
): string | null {
  const { layers, heads: perLayer } = config;
  for (const [i, h] of heads.entries()) {
    if (!Number.isInteger(h.layer) || h.layer < 0 || h.layer >= layers)
      return `ablate.${i}.layer: ${h.layer} is not a layer of this model (0..${layers - 1})`;
    if (!Number.isInteger(h.head) || h.head < 0 || h.head >= perLayer)
      return `ablate.${i}.head: ${h.head} is not a head of this model (0..${perLayer - 1})`;
  }
  return null;
}

export function inspectPrompt(
  model: Model,
  tokenizer: Tokenizer,
  ids: readonly number[],
  opts: InspectOptions = {},
): InspectReport {
  if (ids.length < MIN_INSPECT_TOKENS)
    throw new Error(`inspect: the prompt needs at least ${MIN_INSPECT_TOKENS} tokens, got ${ids.length}`);
  const k = opts.top ?? 5;
  const ablate = opts.ablate ?? [];
  const wrong = badHead(model.config, ablate);
  if (wrong) throw new Error(`inspect: ${wrong}`);
  const text = (id: number) => tokenizer.decode([id]);
  const withText = (t: { id: number; prob: number }): TokenProb => ({
    id: t.id,
    text: text(t.id),
    prob: t.prob,
  });
  const vocab = model.config.vocab;
  const run = (heads: readonly HeadRef[]): InspectRun => {
    const r = ablatedRun(model, ids, [...heads]);
    return {
      loss: r.loss,
      top: topNext(r.logits.subarray((ids.length - 1) * vocab, ids.length * vocab), k).map(withText),
    };
  };
  const lens = logitLens(model, ids, k);
  const dla = directLogitAttribution(model, ids, {});
  return {
    tokens: ids.map((id) => ({ id, text: text(id) })),
    lens: { labels: lens.labels, top: lens.top.map((row) => row.map((cell) => cell.map(withText))) },
    patterns: attentionPatterns(model, ids),
    induction: opts.induction ?? inductionScores(model, { length: inductionLength(model) }),
    inductionLength: inductionLength(model),
    dla: { ...dla, targetText: text(dla.target) },
    clean: run([]),
    ablated: ablate.length === 0 ? null : { heads: [...ablate], ...run(ablate) },
  };
}

/** The k most likely tokens of one row of logits, by softmax probability. */
function topNext(logits: Float32Array, k: number): { id: number; prob: number }[] {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  return order.slice(0, k).map((id) => ({ id, prob: Math.exp(logits[id]! - max) / sum }));
}
