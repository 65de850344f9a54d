/**
 * Artifact family "heads" (written by head-scan, read by the report and the notebooks):
 *
 * - `analysis/head_dla.csv`: the DLA ranking, one row per (group, component): embedding, every head, every
 *   MLP and the bias, with event / control means, DLA specificity and CIs, `rank` 1 = most specific;
 * - `analysis/head_ablation.csv`: single-head zero-ablation of the top heads, one row per (group, head),
 *   the layer scan's columns (Δ log-prob of the trigger, control Δ, specificity, CIs);
 * - `analysis/head_attention.csv`: attention mass of the top heads on each token class at the pre-onset
 *   position, events vs controls, one row per (group, head, class);
 * - `analysis/head_scan.json`: what the scan was run on and with (variant, counts, groups, top heads,
 *   forward passes and rows per stage).
 *
 * Groups: `all`, `trigger=<phrase>`, `onset_type=<type>` (when the events table has `onset_type`).
 *
 * @module
 */

import { parseCsv } from "../../../lib/tables/table.ts";
import { toCsv } from "../events.ts";
import type {
  DlaSummaryRow,
  HeadAblationRow,
  HeadAttentionRow,
  HeadScanResult,
  StageCost,
  TokenClass,
} from "../head_scan.ts";
import { type Run, writeArtifact } from "../run.ts";
import { numCell, readArtifactJsonAs, readArtifactText } from "./files.ts";

/** The head-scan files (run-relative). */
export const HEAD_FILES = {
  dla: "analysis/head_dla.csv",
  ablation: "analysis/head_ablation.csv",
  attention: "analysis/head_attention.csv",
  summary: "analysis/head_scan.json",
} as const;

/** Files written by head-scan, in the order written (the summary last: its presence means done). */
export const HEAD_OUTPUTS = [
  HEAD_FILES.dla,
  HEAD_FILES.ablation,
  HEAD_FILES.attention,
  HEAD_FILES.summary,
] as const;

/** `analysis/head_scan.json`. */
/** A stage's forward calls and rows (its seconds are in the step record). */
export type StageCount = Omit<StageCost, "seconds">;

export interface HeadScanSummary {
  readonly variant: string;
  readonly n_events: number;
  readonly n_controls: number;
  readonly groups: readonly string[];
  /** Whether the events table had an `onset_type` column (then `onset_type=` groups exist). */
  readonly onset_types: boolean;
  /** The heads ablated and summarised, best DLA specificity first. */
  readonly top_heads: readonly { readonly layer: number; readonly head: number }[];
  /**
   * Forward calls and rows of each stage (deterministic; the wall-clock seconds go to the step record in
   * `meta.json`, so identical runs write identical artifacts).
   */
  readonly cost: {
    readonly dla: StageCount;
    readonly ablation: StageCount;
    readonly patterns: StageCount;
  };
  readonly settings: { readonly top_heads: number; readonly scale: number; readonly bootstrap: number };
}

/** What {@linkcode writeHeadTables} writes. */
export interface HeadTables {
  readonly result: HeadScanResult;
  readonly summary: HeadScanSummary;
}

/**
 * Write the three tables and the summary.
 *
 * @param options `overwrite` (default false).
 * @throws {ArtifactExistsError} when a file exists and `overwrite` is not set.
 */
export async function writeHeadTables(
  run: Run,
  t: HeadTables,
  options: { readonly overwrite?: boolean } = {},
): Promise<void> {
  const overwrite = options.overwrite ?? false;
  await writeArtifact(run, HEAD_FILES.dla, toCsv(t.result.dla), { overwrite });
  await writeArtifact(run, HEAD_FILES.ablation, toCsv(t.result.ablation), { overwrite });
  await writeArtifact(run, HEAD_FILES.attention, toCsv(t.result.attention), { overwrite });
  // Calls and rows only, whatever the caller's cost objects carry: wall-clock seconds would make identical
  // runs write different artifacts (they belong in the step record).
  const counts = (c: StageCount): StageCount => ({
    forward_calls: c.forward_calls,
    forward_rows: c.forward_rows,
  });
  const cost = t.summary.cost;
  const summary = {
    ...t.summary,
    cost: { dla: counts(cost.dla), ablation: counts(cost.ablation), patterns: counts(cost.patterns) },
  };
  await writeArtifact(run, HEAD_FILES.summary, summary, { overwrite });
}

/** The tables and summary of a finished head scan. */
export interface HeadScanFiles {
  readonly summary: HeadScanSummary;
  readonly dla: DlaSummaryRow[];
  readonly ablation: HeadAblationRow[];
  readonly attention: HeadAttentionRow[];
}

async function records(run: Run, rel: string): Promise<Record<string, string>[]> {
  return parseCsv(await readArtifactText(run, rel, "head-scan")).records;
}

/** Every column not listed as text, as a number (NaN for empty / `nan`). */
function typed<T>(r: Record<string, string>, text: readonly string[]): T {
  return Object.fromEntries(
    Object.entries(r).map(([k, v]) => [k, text.includes(k) ? v : numCell(v)]),
  ) as T;
}

/**
 * The head scan's files.
 *
 * @throws {MissingArtifactError} when a file cannot be read (run head-scan).
 */
export async function readHeadScan(run: Run): Promise<HeadScanFiles> {
  const summary = await readArtifactJsonAs<HeadScanSummary>(run, HEAD_FILES.summary, "head-scan");
  const dla = (await records(run, HEAD_FILES.dla)).map((r) =>
    typed<DlaSummaryRow>(r, ["group", "name", "kind"])
  );
  const ablation = (await records(run, HEAD_FILES.ablation)).map((r) => typed<HeadAblationRow>(r, ["group"]));
  const attention = (await records(run, HEAD_FILES.attention)).map((r) => ({
    ...typed<HeadAttentionRow>(r, ["group", "token_class"]),
    token_class: r.token_class as TokenClass,
  }));
  return { summary, dla, ablation, attention };
}
