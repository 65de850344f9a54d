/**
 * The pipeline steps, one function per step, each `(ctx, options) → result`: usable from notebooks and
 * from the CLI (`deno task bt <step>`). A step takes the narrowest context it needs (`RunContext`: config
 * and run folder; `ModelContext`: plus the model slot; see `../context.ts`), reads its inputs and writes its
 * outputs through the artifact modules (`../artifacts/`), and imports no other step; only the
 * orchestrators `runPipeline` and `runPhase2` call steps.
 *
 * For convenience this module also re-exports the context helpers and the artifact readers a notebook
 * cell uses with the steps.
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
  type AnalysisStepOptions,
  disposeContext,
  ensureModel,
  ensureTokenizer,
  type ModelContext,
  openContext,
  type RunContext,
  type StepContext,
  type StepOptions,
} from "../context.ts";
export { defaultAnalysisVariant, statsOptions } from "../settings.ts";
export { type AnalysisItems, analysisItems, eventsAndPool, traceOf } from "../analysis_items.ts";
export {
  type CompareConditionsResult,
  DETECT_OUTPUTS,
  generationFile,
  importanceTable,
  type LayerSpec,
  listGenerationStores,
  type RandomAblationSpecs,
  readEvents,
  readGenerations,
  readProblems,
} from "../artifacts/mod.ts";
export { initRun, type InitRunOptions } from "./init_run.ts";
export { prepareData, type PrepareDataResult, selectProblems, syntheticProblems } from "./prepare_data.ts";
export {
  conditionSpecs,
  generate,
  type GeneratedStore,
  type GenerateStepOptions,
  referenceSelectedLayers,
  specInterventions,
} from "./generate.ts";
export { detectEvents, type DetectEventsResult } from "./detect_events.ts";
export { logitLens, type LogitLensResult } from "./logit_lens.ts";
export { ablationScan, type AblationScanResult, ablationScanShard } from "./ablation_scan.ts";
export { headScan, type HeadScanStepOptions, type HeadScanStepResult } from "./head_scan.ts";
export { compareConditions } from "./compare_conditions.ts";
export { protocolValidation, recordedGroundTruth } from "./protocol_validation.ts";
export { formattingSweep } from "./formatting_sweep.ts";
export { buildFigures, makeReport, type MakeReportOptions, type MakeReportResult } from "./make_report.ts";
export { type PipelineOptions, type PipelineResult, runPipeline } from "./pipeline.ts";
export { phase2Sweeps, phase2SweepsShard } from "./phase2_sweeps.ts";
export { phase2Continuation } from "./phase2_continuation.ts";
export { phase2Steering, phase2SteeringShard } from "./phase2_steering.ts";
export { phase2Patching } from "./phase2_patching.ts";
export { type Phase2Result, runPhase2 } from "./phase2_run.ts";
export type {
  ContinuationResult,
  PatchingResult,
  SteeringResult,
  SweepsResult,
} from "../artifacts/phase2.ts";
