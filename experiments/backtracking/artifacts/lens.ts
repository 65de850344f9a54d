/**
 * Artifact family "lens" (written by logit-lens):
 *
 * - `analysis/logit_lens.csv`: one row per layer (layer 0 = embedding output, L = final logits): our
 *   columns with problem-clustered bootstrap CIs (nested estimates flattened to `<key>_estimate` …),
 *   then the reference's;
 * - `analysis/logit_lens_reference.csv`: the reference's `logit_lens.csv` layout and layer numbering;
 * - `analysis/logit_lens_items.csv`: every event and control with its lens values per layer.
 *
 * @module
 */

import type { LensRow, LensSummaryRow } from "../../../lib/interp/logit_lens.ts";
import { parseCsv } from "../../../lib/tables/table.ts";
import type { BacktrackEvent, ControlPosition } from "../event_selection.ts";
import { toCsv } from "../events.ts";
import { referenceLensRows } from "../reference/lens_rows.ts";
import { type Run, writeArtifact } from "../run.ts";
import { numCell, readArtifactText } from "./files.ts";

/** The lens files (run-relative). */
export const LENS_FILES = {
  summary: "analysis/logit_lens.csv",
  reference: "analysis/logit_lens_reference.csv",
  items: "analysis/logit_lens_items.csv",
} as const;

/** Files written by logit-lens, in the order written. */
export const LENS_OUTPUTS = [LENS_FILES.summary, LENS_FILES.reference, LENS_FILES.items] as const;

/** Flatten nested `{estimate, lower, upper}` values into `<key>_estimate` etc. columns. */
export function flattenRow(row: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) out[`${k}_${k2}`] = v2;
    } else out[k] = v;
  }
  return out;
}

/** What {@linkcode writeLensTables} writes. */
export interface LensTables {
  /** `summarizeLens`'s rows, one per layer. */
  readonly summary: readonly LensSummaryRow[];
  /** Lens rows of the events (`item` indexes `events`) and of the controls (`item` indexes `controls`). */
  readonly bt: readonly LensRow[];
  readonly control: readonly LensRow[];
  readonly events: readonly BacktrackEvent[];
  readonly controls: readonly ControlPosition[];
}

function itemInfo(t: BacktrackEvent | ControlPosition, target: number) {
  return { example_id: t.exampleId, sample_id: t.sampleId, pred_pos: t.predPos, target_id: target };
}

/**
 * Write the three lens tables.
 *
 * @param options `overwrite` (default false).
 * @throws {ArtifactExistsError} when a file exists and `overwrite` is not set.
 */
export async function writeLensTables(
  run: Run,
  t: LensTables,
  options: { readonly overwrite?: boolean } = {},
): Promise<void> {
  const overwrite = options.overwrite ?? false;
  await writeArtifact(run, LENS_FILES.summary, toCsv(t.summary.map(flattenRow)), { overwrite });
  await writeArtifact(
    run,
    LENS_FILES.reference,
    toCsv(referenceLensRows(t.summary), undefined, [
      "mean_target_logit_bt",
      "mean_target_logit_control",
      "std_bt",
      "std_control",
    ]),
    { overwrite },
  );
  const itemRows = [
    ...t.bt.map((r) => ({
      group: "bt",
      ...itemInfo(t.events[r.item]!, t.events[r.item]!.onsetTokenId),
      ...r,
    })),
    ...t.control.map((r) => ({
      group: "control",
      ...itemInfo(t.controls[r.item]!, t.controls[r.item]!.targetId),
      ...r,
    })),
  ].map(({ exampleId: _e, ...rest }) => rest);
  await writeArtifact(run, LENS_FILES.items, toCsv(itemRows), { overwrite });
}

/** One row of `logit_lens_items.csv`. */
export interface LensItemRow {
  readonly group: "bt" | "control";
  readonly example_id: number;
  readonly sample_id: number;
  readonly pred_pos: number;
  readonly target_id: number;
  readonly item: number;
  readonly layer: number;
  readonly logit: number;
  readonly logprob: number;
  readonly rank: number;
}

/**
 * The rows of `logit_lens_items.csv`, in file order.
 *
 * @throws {MissingArtifactError} when the file cannot be read (run logit-lens).
 */
export async function readLensItems(run: Run): Promise<LensItemRow[]> {
  const { records } = parseCsv(await readArtifactText(run, LENS_FILES.items, "logit-lens"));
  return records.map((r) => ({
    group: r.group === "bt" ? "bt" : "control",
    example_id: numCell(r.example_id),
    sample_id: numCell(r.sample_id),
    pred_pos: numCell(r.pred_pos),
    target_id: numCell(r.target_id),
    item: numCell(r.item),
    layer: numCell(r.layer),
    logit: numCell(r.logit),
    logprob: numCell(r.logprob),
    rank: numCell(r.rank),
  }));
}

/** The columns of `logit_lens.csv` the report reads (one row per layer). */
export interface LensLayerRow {
  readonly layer: number;
  /** BT − control mean log-prob of the target, with its CI. */
  readonly diff_logprob_estimate: number;
  readonly diff_logprob_lower: number;
  readonly diff_logprob_upper: number;
  readonly n_bt: number;
  readonly n_control: number;
}

/**
 * The per-layer rows of `logit_lens.csv`, in file order.
 *
 * @throws {MissingArtifactError} when the file cannot be read (run logit-lens).
 */
export async function readLensSummary(run: Run): Promise<LensLayerRow[]> {
  const { records } = parseCsv(await readArtifactText(run, LENS_FILES.summary, "logit-lens"));
  return records.map((r) => ({
    layer: numCell(r.layer),
    diff_logprob_estimate: numCell(r.diff_logprob_estimate),
    diff_logprob_lower: numCell(r.diff_logprob_lower),
    diff_logprob_upper: numCell(r.diff_logprob_upper),
    n_bt: numCell(r.n_bt),
    n_control: numCell(r.n_control),
  }));
}
