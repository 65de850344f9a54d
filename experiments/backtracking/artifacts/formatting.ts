/**
 * Artifact family "formatting summaries" (written by formatting-sweep):
 *
 * - `analysis/formatting_summary.csv`: the reference's table (`variant, total, backtracking_count,
 *   backtracking_rate, accuracy` with accuracy = correct/(correct+incorrect));
 * - `analysis/formatting_summary_corrected.json`: `{compared_to, variants}`, per variant a summary with CIs
 *   and the paired comparison with the first variant;
 * - `analysis/formatting_summary_corrected.csv`: one compact row per variant.
 *
 * @module
 */

import { toCsv } from "../events.ts";
import type { formattingSummaryReference } from "../metrics.ts";
import { type Run, writeArtifact } from "../run.ts";
import { compactConditionRow, type ConditionEntry } from "./comparisons.ts";
import { readArtifactJsonAs } from "./files.ts";

/** The formatting files (run-relative). */
export const FORMATTING_FILES = {
  reference: "analysis/formatting_summary.csv",
  corrected: "analysis/formatting_summary_corrected.json",
  correctedCsv: "analysis/formatting_summary_corrected.csv",
} as const;

/** Files written by formatting-sweep, in the order written. */
export const FORMATTING_OUTPUTS = [
  FORMATTING_FILES.reference,
  FORMATTING_FILES.corrected,
  FORMATTING_FILES.correctedCsv,
] as const;

/** One variant of the corrected sweep (`condition` holds the variant name; comparisons are vs the first). */
export type VariantEntry = ConditionEntry;

/** `analysis/formatting_summary_corrected.json`. */
export interface FormattingSummaryFile {
  /** The variant every other is compared with (the first configured one with samples). */
  readonly compared_to: string;
  readonly variants: VariantEntry[];
}

/**
 * Write the three formatting tables.
 *
 * @param reference The reference's rows (`formattingSummaryReference`).
 * @param corrected The corrected summaries.
 * @param options `overwrite` (default false).
 * @throws {ArtifactExistsError} when a file exists and `overwrite` is not set.
 */
export async function writeFormattingSummary(
  run: Run,
  reference: ReturnType<typeof formattingSummaryReference>,
  corrected: FormattingSummaryFile,
  options: { readonly overwrite?: boolean } = {},
): Promise<void> {
  const overwrite = options.overwrite ?? false;
  await writeArtifact(
    run,
    FORMATTING_FILES.reference,
    toCsv(reference, undefined, ["backtracking_rate", "accuracy"]),
    { overwrite },
  );
  await writeArtifact(run, FORMATTING_FILES.corrected, corrected, { overwrite });
  await writeArtifact(
    run,
    FORMATTING_FILES.correctedCsv,
    toCsv(corrected.variants.map((e) => {
      const { variant: _v, condition, ...rest } = compactConditionRow("", e);
      return { variant: condition, ...rest };
    })),
    { overwrite },
  );
}

/**
 * The corrected formatting summary (`analysis/formatting_summary_corrected.json`).
 *
 * @throws {MissingArtifactError} when the file cannot be read (run formatting-sweep).
 */
export async function readFormattingSummary(run: Run): Promise<FormattingSummaryFile> {
  return await readArtifactJsonAs<FormattingSummaryFile>(run, FORMATTING_FILES.corrected, "formatting-sweep");
}
