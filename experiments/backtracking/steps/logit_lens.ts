/**
 * Step `logit-lens`: the lens at backtracking onsets vs position-matched controls (docs/protocol.md
 * §11–12) for one variant's baseline samples.
 *
 * Writes the lens tables (`artifacts/lens.ts`): `analysis/logit_lens.csv` (one row per layer: our
 * columns, layer 0 = embedding output, L = final logits, with problem-clustered bootstrap CIs, then the
 * reference's columns), `analysis/logit_lens_reference.csv` (the reference's `logit_lens.csv` layout and
 * layer numbering) and `analysis/logit_lens_items.csv` (every event and control with its lens values per
 * layer).
 *
 * Event selection (`analysis.event_selection`) and the control target (`analysis.control_target`)
 * follow the protocol: a seeded sample across problems and each control reading its own event's onset
 * token (corrected), or the first `max_events` in file order and the first event's token for every
 * control (reference); see `analysis_items.ts`.
 *
 * @module
 */

import { type LensRow, logitLens as runLens, summarizeLens } from "../../../lib/interp/logit_lens.ts";
import { createProgress } from "../../../lib/util/progress.ts";
import { type AnalysisItems, analysisItems } from "../analysis_items.ts";
import { LENS_OUTPUTS, writeLensTables } from "../artifacts/lens.ts";
import {
  type AnalysisStepOptions,
  ensureModel,
  lockRun,
  type ModelContext,
  recordStep,
  say,
} from "../context.ts";
import { assertWritable } from "../run.ts";
import { statsOptions } from "../settings.ts";

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
 * @param ctx The config, the run, and the model slot (loads the model).
 * @param options Variant, force.
 */
export async function logitLens(
  ctx: ModelContext,
  options: AnalysisStepOptions = {},
): Promise<LogitLensResult> {
  await using _lock = await lockRun(ctx, "logit-lens");
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
  await writeLensTables(ctx.run, { summary, bt, control, events: items.events, controls: items.controls }, {
    overwrite,
  });
  await recordStep(ctx.run, "logit-lens", {
    variant: items.variant,
    n_bt: items.events.length,
    n_control: items.controls.length,
    unmatched_events: items.unmatched.length,
    position_only_controls: items.positionOnly.length,
    available_events: items.available,
    onset_type: items.onsetType,
  });
  say(
    ctx,
    `logit-lens: ${items.events.length} events, ${items.controls.length} controls (${items.unmatched.length} unmatched, ` +
      `${items.positionOnly.length} matched on position only)`,
  );
  return { items, summary, bt, control };
}
