/**
 * The run's artifacts, one module per family, each the one typed reader and writer of its files: steps
 * write through them, and steps, notebooks and the report read through them.
 *
 * | family | files | written by |
 * |---|---|---|
 * | problems | `data/problems.jsonl` | prepare-data |
 * | generations | `generations/<variant>/<condition>.jsonl` (+ timings) | generate, phase2-* |
 * | generation shards | `generations/<variant>/<condition>.shard-K-of-N.{jsonl,done.json}`, `<condition>.shards-N.plan.json` | generate, phase2-sweeps, phase2-steering with `--shard K/N`; merged into the store above by its readers / `bt merge` |
 * | events | `analysis/backtracking_events.csv`, `summary_metrics.json`, `summary_metrics_corrected.json` | detect-events |
 * | lens | `analysis/logit_lens.csv`, `logit_lens_reference.csv`, `logit_lens_items.csv` | logit-lens |
 * | scan | `analysis/ablation_importance.csv`, `selected_layers.json`, `random_ablation_specs.json` | ablation-scan |
 * | heads | `analysis/head_dla.csv`, `head_ablation.csv`, `head_attention.csv`, `head_scan.json` | head-scan |
 * | comparisons | `analysis/condition_comparison.csv`, `condition_comparison_corrected.{json,csv}` | compare-conditions |
 * | formatting | `analysis/formatting_summary.csv`, `formatting_summary_corrected.{json,csv}` | formatting-sweep |
 * | protocol validation | `analysis/protocol_validation.{json,csv}` (organism only) | protocol-validation |
 * | phase2 | sweeps, steering, continuation, patching tables and `phase2_<name>.json` results | phase2-* |
 *
 * The run folder itself (`config_resolved.yaml`, `meta.json`, atomic writes) is `run.ts`.
 *
 * @module
 */

export {
  allExist,
  ifPresent,
  MissingArtifactError,
  numCell,
  readArtifactJsonAs,
  readArtifactText,
} from "./files.ts";
export { PROBLEMS_FILE, readProblems, writeProblems } from "./problems.ts";
export {
  CONDITION_ORDER,
  generationFile,
  type GenerationStore,
  listGenerationStores,
  prepareGenerationStore,
  readGenerations,
  readGenerationStore,
  REFERENCE_SELECTION_CONDITION,
} from "./generations.ts";
export { DETECT_OUTPUTS, EVENT_FILES, readCorrectedSummary, readEvents, writeEventTables } from "./events.ts";
export {
  flattenRow,
  LENS_FILES,
  LENS_OUTPUTS,
  type LensItemRow,
  type LensLayerRow,
  type LensTables,
  readLensItems,
  readLensSummary,
  writeLensTables,
} from "./lens.ts";
export {
  type ImportanceRow,
  importanceTable,
  type LayerSpec,
  type RandomAblationSpecs,
  readImportanceTable,
  readRandomAblationSpecs,
  readSelectedLayers,
  readSelection,
  SCAN_FILES,
  SCAN_OUTPUTS,
  type ScanTables,
  writeScanTables,
} from "./scan.ts";
export {
  HEAD_FILES,
  HEAD_OUTPUTS,
  type HeadScanFiles,
  type HeadScanSummary,
  type HeadTables,
  readHeadScan,
  writeHeadTables,
} from "./heads.ts";
export {
  compactConditionRow,
  COMPARE_OUTPUTS,
  type CompareConditionsResult,
  COMPARISON_FILES,
  type ConditionEntry,
  readConditionComparison,
  writeConditionComparison,
} from "./comparisons.ts";
export {
  type ConditionFigures,
  type ExpectedOutcome,
  PROTOCOL_VALIDATION_FILES,
  PROTOCOL_VALIDATION_OUTPUTS,
  type ProtocolOutcome,
  type ProtocolValidationArtifact,
  protocolValidationRows,
  readProtocolValidation,
  writeProtocolValidation,
} from "./protocol_validation.ts";
export {
  FORMATTING_FILES,
  FORMATTING_OUTPUTS,
  type FormattingSummaryFile,
  readFormattingSummary,
  type VariantEntry,
  writeFormattingSummary,
} from "./formatting.ts";
export {
  CONTINUATION_OUTPUTS,
  type ContinuationResult,
  type DirectionInfo,
  PATCHING_OUTPUTS,
  type PatchingResult,
  type PatchingSettings,
  PHASE2_SECTION_FILES,
  phase2ReportSections,
  type Phase2Section,
  readContinuationResult,
  readPatchingResult,
  readPhase2Result,
  readSteeringResult,
  readSweepsResult,
  STEERING_OUTPUTS,
  type SteeringResult,
  type SteeringSettings,
  SWEEP_OUTPUTS,
  type SweepsResult,
  writePhase2Output,
} from "./phase2.ts";
