/**
 * The pipeline steps, one function per step, each `(ctx, options) → result`: usable from notebooks and
 * from the CLI (`deno task bt <step>`).
 *
 * @example
 * ```ts
 * import { initRun, prepareData, generate, detectEvents } from "./experiments/backtracking/steps/mod.ts";
 * const ctx = await initRun({ config: await loadConfig("configs/organism.yaml") });
 * await prepareData(ctx);
 * await generate(ctx, { condition: "baseline" });
 * const { rows } = await detectEvents(ctx);
 * ```
 *
 * @module
 */

export {
  defaultAnalysisVariant,
  disposeContext,
  ensureModel,
  ensureTokenizer,
  eventsAndPool,
  generationFile,
  listGenerationStores,
  openContext,
  readGenerations,
  readProblems,
  type StepContext,
  type StepOptions,
  traceOf,
} from "./context.ts";
export { initRun, type InitRunOptions } from "./init_run.ts";
export { prepareData, type PrepareDataResult, selectProblems, syntheticProblems } from "./prepare_data.ts";
export {
  conditionSpecs,
  generate,
  type GeneratedStore,
  type GenerateStepOptions,
  type RandomAblationSpecs,
  specInterventions,
} from "./generate.ts";
export { DETECT_OUTPUTS, detectEvents, type DetectEventsResult, readEvents } from "./detect_events.ts";
export {
  type AnalysisItems,
  analysisItems,
  type AnalysisStepOptions,
  logitLens,
  type LogitLensResult,
} from "./logit_lens.ts";
export { ablationScan, type AblationScanResult, importanceTable } from "./ablation_scan.ts";
export { compareConditions, type CompareConditionsResult } from "./compare_conditions.ts";
export { formattingSweep } from "./formatting_sweep.ts";
export { buildFigures, makeReport, type MakeReportOptions, type MakeReportResult } from "./make_report.ts";
export { type PipelineOptions, type PipelineResult, runPipeline } from "./pipeline.ts";
export { phase2Sweeps, type SweepsResult } from "./phase2_sweeps.ts";
export { type ContinuationResult, phase2Continuation } from "./phase2_continuation.ts";
export { phase2Steering, type SteeringResult } from "./phase2_steering.ts";
export { type PatchingResult, phase2Patching } from "./phase2_patching.ts";
export { type Phase2Result, runPhase2 } from "./phase2_run.ts";
