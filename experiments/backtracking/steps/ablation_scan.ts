/**
 * Step `ablation-scan`: zero/scale each (layer, component) at the onset-predicting position of the
 * selected BT events and at their matched controls (docs/protocol.md §13), select the layers to
 * ablate during generation, and draw the random-control layers.
 *
 * Writes:
 *
 * - `analysis/ablation_importance.csv`: the reference's five columns first (`layer, component,
 *   delta_wait_logit_mean, delta_wait_logit_std, n_events`, rows sorted ascending by the mean Δlogit as
 *   the reference sorts), then ours (Δlog-prob with CI, control Δ, specificity with CI).
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
import { randomDraws, referenceImportanceRows, selectComponents, type SelectedLayers } from "../selection.ts";
import { toCsv } from "../events.ts";
import { createProgress } from "../../../lib/util/progress.ts";
import { assertWritable, writeArtifact } from "../run.ts";
import { ensureModel, recordStep, say, type StepContext } from "./context.ts";
import type { RandomAblationSpecs } from "./generate.ts";
import { type AnalysisItems, analysisItems, type AnalysisStepOptions, statsOptions } from "./logit_lens.ts";

/** Files written by {@linkcode ablationScan}. */
export const SCAN_OUTPUTS = [
  "analysis/ablation_importance.csv",
  "analysis/selected_layers.json",
  "analysis/random_ablation_specs.json",
] as const;

/** Result of {@linkcode ablationScan}. */
export interface AblationScanResult {
  readonly items: AnalysisItems;
  readonly rows: ScanRow[];
  readonly selected: SelectedLayers;
  readonly random: RandomAblationSpecs;
}

/** Rows of `ablation_importance.csv`: the reference's columns and order, then ours. */
export function importanceTable(rows: readonly ScanRow[]): Record<string, unknown>[] {
  const ours = new Map(rows.map((r) => [`${r.layer}|${r.component}`, r]));
  return referenceImportanceRows(rows).map((ref) => {
    const { layer: _l, component: _c, n_events: _n, delta_logit_mean: _m, delta_logit_std: _s, ...rest } =
      ours.get(
        `${ref.layer}|${ref.component}`,
      )!;
    return { ...ref, ...rest };
  });
}

/**
 * Run the scan, select components, draw random controls.
 *
 * @param ctx Run context (loads the model).
 * @param options Variant, force.
 */
export async function ablationScan(
  ctx: StepContext,
  options: AnalysisStepOptions = {},
): Promise<AblationScanResult> {
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
  const scale = cfg.ablation_generation.mode === "zero" ? 0 : cfg.ablation_generation.scale;
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
  await writeArtifact(
    ctx.run,
    SCAN_OUTPUTS[0],
    toCsv(importanceTable(rows), undefined, ["delta_wait_logit_mean", "delta_wait_logit_std"]),
    { overwrite },
  );
  await writeArtifact(ctx.run, SCAN_OUTPUTS[1], selected, { overwrite });
  await writeArtifact(ctx.run, SCAN_OUTPUTS[2], random, { overwrite });
  await recordStep(ctx, "ablation-scan", {
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
