export { AdamW, type AdamWConfig, type AdamWState, adamwDefaults, type ParamGroup } from "./adamw.js";
export { clipGradNorm, gradNorm } from "./clip.js";
