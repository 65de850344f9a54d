/**
 * Step `logit-lens`: the lens at backtracking onsets vs position-matched controls (docs/protocol.md
 * §11–12) for one variant's baseline samples.
 *
 * Writes `analysis/logit_lens.csv` (one row per layer: our columns, layer 0 = embedding output, L =
 * final logits, with problem-clustered bootstrap CIs, then the reference's columns),
 * `analysis/logit_lens_reference.csv` (the reference's `logit_lens.csv` layout and layer numbering) and
 * `analysis/logit_lens_items.csv` (every event and control with its lens values per layer).
 *
 * Event selection (`analysis.event_selection`) and the control target (`analysis.control_target`)
 * follow the protocol: a seeded sample across problems and each control reading its own event's onset
 * token (corrected), or the first `max_events` in file order and the first event's token for every
 * control (reference).
 *
 * @module
 */

import type { Config } from "../config.ts";
import type { BacktrackEvent, ControlPosition } from "../event_selection.ts";
import { matchControlsReport, selectEvents } from "../event_selection.ts";
import { toCsv } from "../events.ts";
import { type LensRow, logitLens as runLens, summarizeLens } from "../../../lib/interp/logit_lens.ts";
import { referenceLensRows } from "../reference/lens_rows.ts";
import { createProgress } from "../../../lib/util/progress.ts";
import { assertWritable, writeArtifact } from "../run.ts";
import { readEvents } from "./detect_events.ts";
import {
  defaultAnalysisVariant,
  ensureModel,
  eventsAndPool,
  readGenerations,
  recordStep,
  say,
  type StepContext,
  type StepOptions,
} from "./context.ts";

/** Options of {@linkcode logitLens} and {@linkcode ablationScan}. */
export interface AnalysisStepOptions extends StepOptions {
  /** Variant whose baseline samples are analysed; default `baseline_think_newline` or the first. */
  readonly variant?: string;
}

/** The events and controls an analysis step uses. */
export interface AnalysisItems {
  readonly variant: string;
  readonly events: BacktrackEvent[];
  readonly controls: ControlPosition[];
  /** Indices (into `events`) of events left without a control. */
  readonly unmatched: number[];
  /** All strict-BT events available before selection, and the non-BT pool size. */
  readonly available: number;
  readonly poolSize: number;
}

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

/** Statistics options of a config. */
export function statsOptions(config: Config): { bootstrap: number; seed: number; level: number } {
  return { bootstrap: config.stats.bootstrap_samples, seed: config.stats.seed, level: config.stats.ci_level };
}

/**
 * Select BT events and match controls for one variant's baseline samples (deterministic for a config).
 *
 * @throws {Error} when there is no backtracking event to analyse.
 */
export async function analysisItems(ctx: StepContext, variant?: string): Promise<AnalysisItems> {
  const cfg = ctx.config;
  const v = variant ?? defaultAnalysisVariant(cfg);
  const rows = (await readEvents(ctx)).filter((r) => r.variant === v && r.condition === "baseline");
  if (rows.length === 0) {
    throw new Error(`No baseline events for variant "${v}"; run generate and detect-events first`);
  }
  const records = await readGenerations(ctx.run, v, "baseline");
  const { events, pool } = eventsAndPool(rows, records);
  if (events.length === 0) {
    throw new Error(
      `Variant "${v}" has no strict backtracking event in its baseline samples: nothing to analyse`,
    );
  }
  const selected = selectEvents(events, {
    max: cfg.analysis.max_events,
    seed: cfg.run.seed,
    mode: cfg.analysis.event_selection === "random" ? "random_across_problems" : "file_order",
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
    available: events.length,
    poolSize: matching.poolSize,
  };
}

/** Files written by {@linkcode logitLens}. */
export const LENS_OUTPUTS = [
  "analysis/logit_lens.csv",
  "analysis/logit_lens_reference.csv",
  "analysis/logit_lens_items.csv",
] as const;

/** Result of {@linkcode logitLens}. */
export interface LogitLensResult {
  readonly items: AnalysisItems;
  readonly summary: ReturnType<typeof summarizeLens>;
  readonly bt: LensRow[];
  readonly control: LensRow[];
}

/**
 * Run the logit lens.
 *
 * @param ctx Run context (loads the model).
 * @param options Variant, force.
 */
export async function logitLens(
  ctx: StepContext,
  options: AnalysisStepOptions = {},
): Promise<LogitLensResult> {
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, LENS_OUTPUTS, { overwrite });
  const items = await analysisItems(ctx, options.variant);
  const { model } = await ensureModel(ctx);
  const total = items.events.length + items.controls.length;
  const progress = createProgress({
    total,
    label: "logit-lens",
    unit: "positions",
    stream: ctx.progress ?? "auto",
  });
  let base = 0;
  const onProgress = (done: number) => progress.tick(base + done - progress.completed);
  const bt = await runLens(
    model,
    items.events.map((e) => ({
      tokenIds: e.tokenIds,
      predPos: e.predPos,
      targetId: e.onsetTokenId,
      exampleId: e.exampleId,
    })),
    { onProgress },
  );
  base = items.events.length;
  const control = await runLens(
    model,
    items.controls.map((c) => ({
      tokenIds: c.tokenIds,
      predPos: c.predPos,
      targetId: c.targetId,
      exampleId: c.exampleId,
    })),
    { onProgress },
  );
  await progress.done();
  const summary = summarizeLens(bt, control, statsOptions(ctx.config));
  await writeArtifact(ctx.run, LENS_OUTPUTS[0], toCsv(summary.map(flattenRow)), { overwrite });
  await writeArtifact(
    ctx.run,
    LENS_OUTPUTS[1],
    toCsv(referenceLensRows(summary), undefined, [
      "mean_target_logit_bt",
      "mean_target_logit_control",
      "std_bt",
      "std_control",
    ]),
    { overwrite },
  );
  const itemRows = [
    ...bt.map((r) => ({
      group: "bt",
      ...itemInfo(items.events[r.item]!, items.events[r.item]!.onsetTokenId),
      ...r,
    })),
    ...control.map((r) => ({
      group: "control",
      ...itemInfo(items.controls[r.item]!, items.controls[r.item]!.targetId),
      ...r,
    })),
  ].map(({ exampleId: _e, ...rest }) => rest);
  await writeArtifact(ctx.run, LENS_OUTPUTS[2], toCsv(itemRows), { overwrite });
  await recordStep(ctx, "logit-lens", {
    variant: items.variant,
    n_bt: items.events.length,
    n_control: items.controls.length,
    unmatched_events: items.unmatched.length,
    available_events: items.available,
  });
  say(
    ctx,
    `logit-lens: ${items.events.length} events, ${items.controls.length} controls (${items.unmatched.length} unmatched)`,
  );
  return { items, summary, bt, control };
}

function itemInfo(t: BacktrackEvent | ControlPosition, target: number) {
  return { example_id: t.exampleId, sample_id: t.sampleId, pred_pos: t.predPos, target_id: target };
}
