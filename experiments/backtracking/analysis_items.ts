/**
 * The events and controls the analysis steps (logit lens, ablation scan, steering directions, patching,
 * continuation ablation) work on: strict-BT events joined from the event rows (detection) and the
 * generation records (token ids), a selection of them, and position-matched controls from the samples
 * without backtracking. Deterministic for a config.
 *
 * @module
 */

import type { Config } from "./config.ts";
import type { EventRow } from "./event_row.ts";
import {
  type BacktrackEvent,
  type ControlPosition,
  matchControlsReport,
  selectEvents,
  type Trace,
} from "./event_selection.ts";
import type { GenerationRecord } from "../../lib/generate/records.ts";
import type { Run } from "./run.ts";
import { readEvents } from "./artifacts/events.ts";
import { readGenerations } from "./artifacts/generations.ts";
import { defaultAnalysisVariant, eventSelectionMode } from "./settings.ts";

/** The full token sequence of a record: prompt ids (stored) then completion ids. */
export function traceOf(r: GenerationRecord): Trace {
  if (!r.prompt_token_ids) {
    throw new Error(
      `record ${r.variant}/${r.condition} example ${r.example_id} sample ${r.sample_id} has no prompt_token_ids; ` +
        `regenerate with storePromptTokenIds on`,
    );
  }
  return {
    exampleId: Number(r.example_id),
    sampleId: r.sample_id,
    tokenIds: [...r.prompt_token_ids, ...r.completion_token_ids],
    promptTokens: r.prompt_tokens,
  };
}

/** Which onset types the analyses use (`analysis.onset_type`): one type, or `all`. */
export type OnsetTypeFilter = Config["analysis"]["onset_type"];

/**
 * Backtracking events and the non-backtracking pool of one (variant, condition), joined from the event
 * rows (detection) and the generation records (token ids), in file order.
 *
 * @param onsetType Keep only events whose onset has this type (docs/protocol.md §23); default `all`. The
 *   pool (samples without a strict trigger) is the same whatever the filter.
 */
export function eventsAndPool(
  rows: readonly EventRow[],
  records: readonly GenerationRecord[],
  onsetType: OnsetTypeFilter = "all",
): { events: BacktrackEvent[]; pool: Trace[] } {
  const byKey = new Map(records.map((r) => [`${r.example_id}|${r.sample_id}`, r]));
  const events: BacktrackEvent[] = [];
  const pool: Trace[] = [];
  for (const row of rows) {
    const rec = byKey.get(`${row.example_id}|${row.sample_id}`);
    if (!rec) continue;
    const trace = traceOf(rec);
    if (row.has_backtracking_strict && row.onset_token_id >= 0) {
      if (onsetType !== "all" && row.onset_type !== onsetType) continue;
      events.push({
        ...trace,
        predPos: row.pred_pos_in_full,
        onsetTokenId: row.onset_token_id,
        trigger: row.onset_phrase,
      });
    } else if (!row.has_backtracking_strict) pool.push(trace);
  }
  return { events, pool };
}

/**
 * All strict-BT events of one variant's baseline samples (from the run's event table and baseline store),
 * in file order, with the non-BT pool.
 *
 * @param onsetType Keep only events of this onset type (`analysis.onset_type`); default `all`.
 * @throws {Error} when the variant has no baseline rows.
 */
export async function baselineEvents(
  run: Run,
  variant: string,
  onsetType: OnsetTypeFilter = "all",
): Promise<{ events: BacktrackEvent[]; pool: Trace[] }> {
  const rows = (await readEvents(run)).filter((r) => r.variant === variant && r.condition === "baseline");
  if (rows.length === 0) {
    throw new Error(`No baseline events for variant "${variant}"; run generate and detect-events first`);
  }
  return eventsAndPool(rows, await readGenerations(run, variant, "baseline"), onsetType);
}

/** The events and controls an analysis step uses. */
export interface AnalysisItems {
  readonly variant: string;
  readonly events: BacktrackEvent[];
  readonly controls: ControlPosition[];
  /** Indices (into `events`) of events left without a control. */
  readonly unmatched: number[];
  /** Indices (into `events`) of events whose control is matched on position only, not on token. */
  readonly positionOnly: number[];
  /** All strict-BT events available before selection (of `onsetType`), and the non-BT pool size. */
  readonly available: number;
  /** The onset type the events were restricted to (`analysis.onset_type`), or `all`. */
  readonly onsetType: OnsetTypeFilter;
  readonly poolSize: number;
}

/**
 * Select BT events (`analysis.onset_type`, `analysis.max_events`, `analysis.event_selection`) and match
 * controls (`analysis.control_target`) for one variant's baseline samples.
 *
 * @param ctx The config and the run (reads the event table and the variant's baseline store).
 * @param variant Default: the analysis variant.
 * @throws {Error} when there is no backtracking event (of the configured onset type) to analyse.
 */
export async function analysisItems(
  ctx: { readonly config: Config; readonly run: Run },
  variant?: string,
): Promise<AnalysisItems> {
  const cfg = ctx.config;
  const v = variant ?? defaultAnalysisVariant(cfg);
  const onsetType = cfg.analysis.onset_type;
  const { events, pool } = await baselineEvents(ctx.run, v, onsetType);
  if (events.length === 0) {
    throw new Error(
      onsetType === "all"
        ? `Variant "${v}" has no strict backtracking event in its baseline samples: nothing to analyse`
        : `Variant "${v}" has no strict backtracking event of onset type "${onsetType}" in its baseline ` +
          `samples (analysis.onset_type): nothing to analyse; set analysis.onset_type to another type or "all"`,
    );
  }
  const selected = selectEvents(events, {
    max: cfg.analysis.max_events,
    seed: cfg.run.seed,
    mode: eventSelectionMode(cfg),
  });
  const matching = matchControlsReport(selected, pool, {
    seed: cfg.run.seed,
    mode: cfg.analysis.control_target === "matched_event_token" ? "corrected" : "reference",
  });
  return {
    variant: v,
    events: selected,
    controls: matching.controls,
    unmatched: matching.unmatched,
    positionOnly: matching.positionOnly,
    available: events.length,
    onsetType,
    poolSize: matching.poolSize,
  };
}
