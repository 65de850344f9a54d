/**
 * Phase 2 beyond the reference: sweeps, continuation ablation, steering, activation patching.
 *
 * @module
 */

export {
  continuationAblation,
  type ContinuationOptions,
  type ContinuationRow,
  type ContinuationSummaryRow,
  summarizeContinuation,
  triggerOfToken,
} from "./continuation.ts";
export {
  captureAt,
  type CapturedAt,
  type CaseResult,
  evalAtPositions,
  type PositionCase,
  type RowEdit,
  rowInterventions,
} from "../../../lib/interp/positions.ts";
export {
  activationPatching,
  localise,
  type PatchDirection,
  type PatchRow,
  type PatchSummaryRow,
  summarizePatching,
} from "../../../lib/interp/activation_patching.ts";
export { phase2ReportSections, type Phase2Section as ReportSection } from "../artifacts/phase2.ts";
export {
  cosine,
  meanDifferenceDirections,
  type SteeringDirection,
  steeringInterventions,
  steeringSite,
} from "../../../lib/interp/steering.ts";
export {
  ablationCondition,
  type ComponentSubset,
  configSubsets,
  deriveSubsets,
  describeSubset,
  steeringCondition,
  subsetEdits,
  subsetInterventions,
} from "./subsets.ts";
export {
  type SettingResult,
  settingResult,
  settingRow,
  settingsMarkdown,
  type SettingSpec,
} from "./summaries.ts";
