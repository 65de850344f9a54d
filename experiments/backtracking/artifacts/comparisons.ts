/**
 * Artifact family "condition comparisons" (written by compare-conditions):
 *
 * - `analysis/condition_comparison.csv`: the reference's table (`variant, condition, total,
 *   backtracking_count, backtracking_rate, accuracy` with accuracy = correct/total);
 * - `analysis/condition_comparison_corrected.json`: per condition a summary with CIs and, for each
 *   non-baseline condition, the paired comparison with the baseline;
 * - `analysis/condition_comparison_corrected.csv`: the same, one compact row per condition.
 *
 * The compact row ({@linkcode compactConditionRow}) is shared with the formatting sweep's tables.
 *
 * @module
 */

import { toCsv } from "../events.ts";
import {
  comparisonColumns,
  type conditionComparisonReference,
  type ConditionSummary,
  degenerationColumns,
  outcomeColumns,
  type PairedComparison,
  rateCI,
} from "../metrics.ts";
import { type Run, writeArtifact } from "../run.ts";
import { readArtifactJsonAs } from "./files.ts";

/** The comparison files (run-relative). */
export const COMPARISON_FILES = {
  reference: "analysis/condition_comparison.csv",
  corrected: "analysis/condition_comparison_corrected.json",
  correctedCsv: "analysis/condition_comparison_corrected.csv",
} as const;

/** Files written by compare-conditions, in the order written. */
export const COMPARE_OUTPUTS = [
  COMPARISON_FILES.reference,
  COMPARISON_FILES.corrected,
  COMPARISON_FILES.correctedCsv,
] as const;

/** One condition of the corrected comparison. */
export interface ConditionEntry {
  readonly condition: string;
  readonly summary: ConditionSummary;
  /** Paired comparison with the baseline (undefined for the baseline itself). */
  readonly vs_baseline: PairedComparison | undefined;
}

/** `analysis/condition_comparison_corrected.json`. */
export interface CompareConditionsResult {
  readonly variant: string;
  readonly conditions: ConditionEntry[];
}

/**
 * A compact row per condition (for the CSV and quick tables): counts, BT rate and accuracy (on all rows)
 * with cluster-adjusted Wilson intervals (docs/protocol.md §16), the degeneration columns, accuracy on
 * finished rows and the unfinished rate, the BT rate per onset type and the answer trajectory
 * ({@linkcode outcomeColumns}), then the paired comparison with the baseline (bootstrap intervals).
 */
export function compactConditionRow(variant: string, e: ConditionEntry): Record<string, unknown> {
  const s = e.summary;
  return {
    variant,
    condition: e.condition,
    n: s.n,
    problems: s.problems,
    bt_rate: s.bt_rate.value,
    bt_rate_lower: rateCI(s.bt_rate).lower,
    bt_rate_upper: rateCI(s.bt_rate).upper,
    accuracy: s.accuracy.value,
    accuracy_lower: rateCI(s.accuracy).lower,
    accuracy_upper: rateCI(s.accuracy).upper,
    ...degenerationColumns(s),
    ...outcomeColumns(s),
    ...comparisonColumns(e.vs_baseline),
  };
}

/**
 * Write the three comparison tables.
 *
 * @param reference The reference's rows (`conditionComparisonReference`).
 * @param corrected The corrected comparison.
 * @param options `overwrite` (default false).
 * @throws {ArtifactExistsError} when a file exists and `overwrite` is not set.
 */
export async function writeConditionComparison(
  run: Run,
  reference: ReturnType<typeof conditionComparisonReference>,
  corrected: CompareConditionsResult,
  options: { readonly overwrite?: boolean } = {},
): Promise<void> {
  const overwrite = options.overwrite ?? false;
  await writeArtifact(
    run,
    COMPARISON_FILES.reference,
    toCsv(reference, undefined, ["backtracking_rate", "accuracy"]),
    { overwrite },
  );
  await writeArtifact(run, COMPARISON_FILES.corrected, corrected, { overwrite });
  await writeArtifact(
    run,
    COMPARISON_FILES.correctedCsv,
    toCsv(corrected.conditions.map((e) => compactConditionRow(corrected.variant, e))),
    { overwrite },
  );
}

/**
 * The corrected comparison (`analysis/condition_comparison_corrected.json`).
 *
 * @throws {MissingArtifactError} when the file cannot be read (run compare-conditions).
 */
export async function readConditionComparison(run: Run): Promise<CompareConditionsResult> {
  return await readArtifactJsonAs<CompareConditionsResult>(
    run,
    COMPARISON_FILES.corrected,
    "compare-conditions",
  );
}
