// Running a model with its activations in view: runWithCache keeps the named activations of one forward
// pass, runWithHooks lets a function read or replace them (TransformerLens's run_with_cache and
// run_with_hooks). The names are the decoder's hook points (nn/hooks.ts), with the layer filled in.
import {
  blockParts,
  forward,
  HOOK_POINTS,
  type HookPoint,
  hookName,
  isGated,
  type Model,
} from "../nn/index.js";
import { keep, noGrad, type Tensor, tensor, tidy } from "../tensor/index.js";

/** A hook for one activation: return a tensor of the same shape to replace it, or nothing to leave it. */
export type Hook = (activation: Tensor, name: string) => Tensor | undefined;

/** Token ids [batch·time], batch rows of equal length (batch 1 by default). */
export interface Tokens {
  ids: Int32Array | readonly number[];
  batch?: number;
}

/** The activations of one forward pass, by hook name; copies that outlive the pass (dispose() frees them). */
export class ActivationCache {
  constructor(private readonly acts: Map<string, Tensor>) {}

  get(name: string): Tensor {
    const t = this.acts.get(name);
    if (!t) {
      const have = [...this.acts.keys()];
      throw new Error(
        `activation cache: no ${name}; it holds ${have.length ? have.slice(0, 8).join(", ") + (have.length > 8 ? ", …" : "") : "nothing"}`,
      );
    }
    return t;
  }

  has(name: string): boolean {
    return this.acts.has(name);
  }

  names(): string[] {
    return [...this.acts.keys()];
  }

  dispose(): void {
    for (const t of this.acts.values()) t.dispose();
    this.acts.clear();
  }
}

/** Every hook name the model has, in forward order (MLP points only where the blocks have an MLP). */
export function hookNames(model: Model): string[] {
  const r = blockParts(model.config);
  const has = (p: HookPoint) =>
    (p !== "hook_pos_embed" || r.positions === "learned") &&
    (!/mlp/.test(p) || r.mlp !== "none") &&
    (p !== "blocks.{l}.mlp.hook_pre_linear" || isGated(r.mlp));
  const points = HOOK_POINTS.filter(has);
  const block = points.filter((p) => p.startsWith("blocks."));
  return [
    ...points.filter((p) => p.startsWith("hook_")),
    ...Array.from({ length: model.config.layers }, (_, l) => block.map((p) => hookName(p, l))).flat(),
    "ln_final.hook_normalized",
  ];
}

function shapeOf(model: Model, tokens: Tokens): { ids: Int32Array; batch: number; time: number } {
  const ids = tokens.ids instanceof Int32Array ? tokens.ids : Int32Array.from(tokens.ids);
  const batch = tokens.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1 || ids.length % batch !== 0 || ids.length === 0)
    throw new Error(`interp: ${ids.length} ids do not split into ${batch} rows of equal length`);
  for (const id of ids)
    if (!Number.isInteger(id) || id < 0 || id >= model.config.vocab)
      throw new Error(`interp: token id ${id} is outside the vocabulary of ${model.config.vocab}`);
  return { ids, batch, time: ids.length / batch };
}

function checkNames(model: Model, names: Iterable<string>): void {
  const known = new Set(hookNames(model));
  for (const n of names)
    if (!known.has(n))
      throw new Error(
        `interp: no hook point ${n} in this model (e.g. ${[...known].slice(0, 4).join(", ")}; see HOOK_POINTS)`,
      );
}

/** Logits [batch, time, vocab] with hooks at the named points; the logits outlive the call (dispose them). */
export function runWithHooks(model: Model, tokens: Tokens, hooks: Readonly<Record<string, Hook>>): Tensor {
  checkNames(model, Object.keys(hooks));
  const { ids, batch, time } = shapeOf(model, tokens);
  const any = Object.keys(hooks).length > 0;
  return noGrad(() =>
    tidy(() =>
      keep(
        forward(model, ids, batch, time, {
          hook: any ? (name, act) => hooks[name]?.(act, name) : null,
        }),
      ),
    ),
  );
}

export interface CacheOptions {
  /** The activations to keep: names, or a filter; all by default. */
  names?: readonly string[] | ((name: string) => boolean);
  /** Hooks applied in the same pass (a patched run's cache). */
  hooks?: Readonly<Record<string, Hook>>;
}

/** Logits and the named activations of one forward pass; both outlive the call. */
export function runWithCache(
  model: Model,
  tokens: Tokens,
  opts: CacheOptions = {},
): { logits: Tensor; cache: ActivationCache } {
  const all = hookNames(model);
  const wanted =
    typeof opts.names === "function" ? new Set(all.filter(opts.names)) : new Set(opts.names ?? all);
  checkNames(model, wanted);
  const acts = new Map<string, Tensor>();
  const record = (t: Tensor, name: string): Tensor | undefined => {
    const replaced = opts.hooks?.[name]?.(t, name);
    const seen = replaced ?? t;
    if (wanted.has(name)) acts.set(name, keep(tensor(seen.data, seen.shape, { dtype: seen.dtype })));
    return replaced;
  };
  const hooks: Record<string, Hook> = {};
  for (const n of new Set([...wanted, ...Object.keys(opts.hooks ?? {})])) hooks[n] = record;
  const logits = runWithHooks(model, tokens, hooks);
  return { logits, cache: new ActivationCache(acts) };
}
