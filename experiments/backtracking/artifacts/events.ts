/**
 * Artifact family "events" (written by detect-events):
 *
 * - `analysis/backtracking_events.csv`: one row per sample (the reference's 17 columns, then ours);
 * - `analysis/summary_metrics.json`: the reference's summary (all rows pooled, its two accuracy definitions);
 * - `analysis/summary_metrics_corrected.json`: one summary with CIs per variant × condition, never pooled.
 *
 * The row format (columns, CSV conventions, parsing) is `events.ts`; this module owns the files.
 *
 * @module
 */

import type { Config } from "../config.ts";
import type { EventRow } from "../event_row.ts";
import { correctedSummary, type CorrectedSummaryFile, eventsToCsv, readEventsCsv } from "../events.ts";
import { formatReferenceSummaryJson, summaryMetricsReference } from "../metrics.ts";
import { artifactPath, type Run, writeArtifact } from "../run.ts";
import { readArtifactJsonAs } from "./files.ts";

/** The event files (run-relative). */
export const EVENT_FILES = {
  events: "analysis/backtracking_events.csv",
  summary: "analysis/summary_metrics.json",
  corrected: "analysis/summary_metrics_corrected.json",
} as const;

/** Files written by detect-events, in the order written. */
export const DETECT_OUTPUTS = [EVENT_FILES.events, EVENT_FILES.summary, EVENT_FILES.corrected] as const;

/**
 * Write the events table and both summaries of the rows.
 *
 * @param rows Every sample's event row, in store order.
 * @param config The run's config (the corrected summary's rule, extractor and bootstrap settings).
 * @param options `overwrite` (default false).
 * @throws {ArtifactExistsError} when a file exists and `overwrite` is not set.
 */
export async function writeEventTables(
  run: Run,
  rows: readonly EventRow[],
  config: Config,
  options: { readonly overwrite?: boolean } = {},
): Promise<void> {
  const overwrite = options.overwrite ?? false;
  await writeArtifact(run, EVENT_FILES.events, eventsToCsv(rows), { overwrite });
  await writeArtifact(run, EVENT_FILES.summary, formatReferenceSummaryJson(summaryMetricsReference(rows)), {
    overwrite,
  });
  await writeArtifact(run, EVENT_FILES.corrected, correctedSummary(rows, config), { overwrite });
}

/**
 * The run's event rows (`analysis/backtracking_events.csv`).
 *
 * @throws {Error} naming the file when it is missing (run detect-events) or has a bad line.
 */
export async function readEvents(run: Run): Promise<EventRow[]> {
  return await readEventsCsv(artifactPath(run, EVENT_FILES.events));
}

/** `analysis/summary_metrics_corrected.json`. */
export async function readCorrectedSummary(run: Run): Promise<CorrectedSummaryFile> {
  return await readArtifactJsonAs<CorrectedSummaryFile>(run, EVENT_FILES.corrected, "detect-events");
}
