/**
 * The toolkit: everything a notebook cell needs to load a model, generate, intervene and analyse, with no
 * knowledge of any experiment. Experiments (e.g. `experiments/backtracking/`) import from here; nothing
 * here imports from them (a test scans the imports).
 *
 * @example
 * ```ts
 * import { HookedModel } from "./lib/mod.ts";
 * const model = await HookedModel.load("path/to/hf-folder");
 * const { logits } = await model.forward([[151646, 9707, 1879]], {
 *   interventions: [{ hook: "blocks.3.hook_mlp_out", op: "scale", value: 0 }],
 * });
 * ```
 *
 * @module
 */

export * from "./engine/mod.ts";
export * from "./generate/mod.ts";
export * from "./interp/mod.ts";
export * from "./stats/mod.ts";
export * from "./tables/mod.ts";
export * from "./figures/mod.ts";
export * from "./util/mod.ts";
export { executeNotebook, type ExecuteOptions, type ExecuteResult } from "./notebook/mod.ts";
export {
  pct,
  pctCI,
  pValue,
  showFigure,
  showHtml,
  showMarkdown,
  type ShownToken,
  showTable,
  showTokenDiff,
  showTokens,
  tableBundle,
  tokensBundle,
} from "./notebook/show.ts";
// Two RNG shapes: the generator's stateful stream (generate) and the statistics' uniform function.
export type { Rng } from "./generate/mod.ts";
export type { Rng as UniformRng } from "./stats/mod.ts";
