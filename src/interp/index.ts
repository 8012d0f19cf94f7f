// Interpretability: a model's activations by TransformerLens hook name, read or replaced.
export {
  ActivationCache,
  type CacheOptions,
  type Hook,
  hookNames,
  runWithCache,
  runWithHooks,
  type Tokens,
} from "./run.js";
