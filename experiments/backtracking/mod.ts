/**
 * The backtracking experiment ("backtracking as a state transition"), built on the toolkit in `lib/`:
 * config, GSM8K data, prompts, trigger detection, answers, events and matched controls, metrics, the
 * pipeline steps (Phase 1 and Phase 2), the run's artifacts (one typed reader and writer per family), report
 * and figures. Reference-reproduction code (Python `random`, the reference's answer extractor and table
 * layouts) lives in `reference/`. See `docs/architecture.md`.
 *
 * @example
 * ```ts
 * import { detectEvents, generate, initRun, loadConfig, prepareData } from "./experiments/backtracking/mod.ts";
 * const ctx = await initRun({ config: await loadConfig("configs/organism.yaml") });
 * await prepareData(ctx);
 * await generate(ctx, { condition: "baseline" });
 * const { rows } = await detectEvents(ctx);
 * ```
 *
 * @module
 */

export * from "./steps/mod.ts";
export * from "./artifacts/mod.ts";
export { type Config, loadConfig } from "./config.ts";
export { buildPrompt } from "./prompts.ts";
export { extractAnswer, scoreAnswer } from "./answers.ts";
export { type BacktrackEvent, matchControlsReport, selectEvents } from "./event_selection.ts";
export { artifactPath, openRun, readMeta, type Run } from "./run.ts";
export { type ExploreTrace, sampleTrace, type SampleTraceOptions } from "./explore.ts";
export { detect, type DetectionResult, type Onset, type TriggerMatch } from "./detect.ts";
export { detectionOptions, samplingOptions } from "./settings.ts";
export { notebookParams, PROJECT_ROOT } from "./notebook_params.ts";
