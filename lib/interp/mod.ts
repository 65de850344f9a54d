/**
 * Interpretability methods on a hooked model: logit lens, direct logit attribution, component ablation
 * scan, activation patching, steering directions, evaluation at chosen positions. Positions, token ids
 * and metrics come in as plain data ({@linkcode ./traces.ts}).
 *
 * @module
 */

export * from "./traces.ts";
export * from "./logit_lens.ts";
export * from "./direct_logit_attribution.ts";
export * from "./ablation_scan.ts";
export * from "./activation_patching.ts";
export * from "./positions.ts";
export * from "./steering.ts";
