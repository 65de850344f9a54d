/**
 * Step `ablation-scan`: zero/scale each (layer, component) at the onset-predicting position of the
 * selected BT events and at their matched controls (docs/protocol.md §13), select the layers to
 * ablate during generation, and draw the random-control layers.
 *
 * Writes the scan tables (`artifacts/scan.ts`):
 *
 * - `analysis/ablation_importance.csv`: the reference's five columns first, then ours (Δlog-prob with
 *   CI, control Δ, specificity with CI).
 * - `analysis/selected_layers.json`: `{attn, mlp}` in importance order, by `analysis.selection_criterion`
 *   with `analysis.topk_layers_for_generation` per component.
 * - `analysis/random_ablation_specs.json`: `{mode, seed, selected, draws}` with
 *   `analysis.random_ablation_draws` draws: the reference's draw (Python `Random(random_control_seed)`,
 *   disjoint from every selected layer index) under the reference protocol, otherwise draws matched per
 *   component type.
 *
 * @module
 */

import { ablationScan as runScan, type ScanRow } from "../../../lib/interp/ablation_scan.ts";
import { createProgress } from "../../../lib/util/progress.ts";
import { type AnalysisItems, analysisItems } from "../analysis_items.ts";
import { type RandomAblationSpecs, SCAN_OUTPUTS, writeScanTables } from "../artifacts/scan.ts";
import {
  type AnalysisStepOptions,
  ensureModel,
  lockRun,
  type ModelContext,
  recordStep,
  say,
} from "../context.ts";
import { assertWritable } from "../run.ts";
import { randomDraws, selectComponents, type SelectedLayers } from "../selection.ts";
import { ablationScale, statsOptions } from "../settings.ts";

/** Result of {@linkcode ablationScan}. */
export interface AblationScanResult {
  readonly items: AnalysisItems;
  readonly rows: ScanRow[];
  readonly selected: SelectedLayers;
  readonly random: RandomAblationSpecs;
}

/**
 * Run the scan, select components, draw random controls.
 *
 * @param ctx The config, the run, and the model slot (loads the model).
 * @param options Variant, force.
 */
export async function ablationScan(
  ctx: ModelContext,
  options: AnalysisStepOptions = {},
): Promise<AblationScanResult> {
  await using _lock = await lockRun(ctx, "ablation-scan");
  const cfg = ctx.config;
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, SCAN_OUTPUTS, { overwrite });
  const items = await analysisItems(ctx, options.variant);
  const { model } = await ensureModel(ctx);
  const numLayers = model.config.numLayers;
  const layers = cfg.analysis.ablation_layers === "all" ? undefined : [...cfg.analysis.ablation_layers];
  for (const l of layers ?? []) {
    if (l >= numLayers) {
      throw new RangeError(
        `analysis.ablation_layers has layer ${l}, but the model has ${numLayers} layers (0..${
          numLayers - 1
        })`,
      );
    }
  }
  let progress: ReturnType<typeof createProgress> | undefined;
  const scale = ablationScale(cfg);
  const rows = await runScan(model, items.events, items.controls, {
    components: [...cfg.analysis.ablation_components],
    ...(layers ? { layers } : {}),
    scale,
    ...statsOptions(cfg),
    onProgress: (done, total) => {
      progress ??= createProgress({
        total,
        label: "ablation-scan",
        unit: "positions",
        stream: ctx.progress ?? "auto",
      });
      progress.tick(done - progress.completed);
    },
  });
  await progress?.done();
  const selected = selectComponents(rows, {
    criterion: cfg.analysis.selection_criterion,
    topk: cfg.analysis.topk_layers_for_generation,
    minEffect: cfg.analysis.min_specificity_effect,
  });
  const mode = cfg.protocol === "reference" ? "reference" : "matched";
  const seed = cfg.ablation_generation.random_control_seed;
  const draws = randomDraws(selected, {
    numLayers,
    draws: cfg.analysis.random_ablation_draws,
    seed,
    referenceSeed: seed,
    mode,
  });
  const random: RandomAblationSpecs = { mode, seed, selected, draws };
  await writeScanTables(ctx.run, { rows, selected, random }, { overwrite });
  await recordStep(ctx.run, "ablation-scan", {
    variant: items.variant,
    n_events: items.events.length,
    n_controls: items.controls.length,
    criterion: cfg.analysis.selection_criterion,
    selected,
    random_draws: draws,
  });
  say(
    ctx,
    `ablation-scan: selected attn [${selected.attn}] mlp [${selected.mlp}]; ${draws.length} random draw(s)`,
  );
  return { items, rows, selected, random };
}
