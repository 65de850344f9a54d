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
 * Shards (`--shard K/N`, {@linkcode ablationScanShard}): the scan's positions are split into whole prefill
 * groups (`lib/interp/ablation_scan.ts` `prefillGroups`: a group's scores depend on the group only, so a
 * shard reproduces them bitwise) dealt by greedy longest-processing-time on their prefix tokens; each shard
 * writes its scores to `analysis/shards/ablation_scan.shard-K-of-N.json`. The unsharded step then
 * assembles them (every position exactly once, same config and items; a missing shard is an error naming
 * it) instead of scanning, and writes tables byte-identical to an unsharded scan.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  ablationScan as runScan,
  effectRows,
  type PositionScores,
  prefillGroups,
  type ScanCondition,
  scanConditions,
  type ScanPosition,
  scanPositionList,
  scanPositions,
  type ScanRow,
  summarizeScan,
} from "../../../lib/interp/ablation_scan.ts";
import { partitionKeys, type ShardSpec } from "../../../lib/generate/shards.ts";
import { generationConfigHash } from "../artifacts/generations.ts";
import { createProgress } from "../../../lib/util/progress.ts";
import { type AnalysisItems, analysisItems } from "../analysis_items.ts";
import {
  type RandomAblationSpecs,
  readScanShards,
  removeScanShards,
  SCAN_OUTPUTS,
  type ScanShard,
  scanShardFile,
  writeScanShard,
  writeScanTables,
} from "../artifacts/scan.ts";
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
  const shards = await readScanShards(ctx.run);
  let rows: ScanRow[];
  if (shards.size > 0 && !overwrite) {
    const conditions = scanConditions(numLayers, {
      components: [...cfg.analysis.ablation_components],
      ...(layers ? { layers } : {}),
    });
    const { positions } = scanPositionList(items.events, items.controls);
    const scores = assembleScanShards(
      shards,
      generationConfigHash(cfg),
      positionsHash(positions, conditions, scale),
    );
    rows = summarizeScan(effectRows(items.events, items.controls, scores, conditions), statsOptions(cfg));
    say(ctx, `ablation-scan: assembled the scores of ${[...shards.values()][0]!.size} shard(s)`);
  } else {
    if (overwrite) await removeScanShards(ctx.run);
    rows = await runScan(model, items.events, items.controls, {
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
  }
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
    onset_type: items.onsetType,
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

/** sha256 of the scanned positions, conditions and scale: shards of one scan must agree on it. */
function positionsHash(
  positions: readonly ScanPosition[],
  conditions: readonly ScanCondition[],
  scale: number,
): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ conditions, scale }));
  for (const p of positions) h.update(JSON.stringify([p.predPos, p.targetIds, p.tokenIds]));
  return h.digest("hex");
}

/**
 * The scores of every position from the shards of one count.
 *
 * @throws {Error} naming each missing shard (with its command), a shard made with another config or
 *   items, or several shard counts.
 */
function assembleScanShards(
  shards: Map<number, Map<number, ScanShard>>,
  configHash: string,
  itemsHash: string,
): PositionScores[] {
  if (shards.size > 1) {
    throw new Error(
      `analysis/shards holds ablation-scan shards of several counts (${[...shards.keys()].join(", ")}); ` +
        `remove those of the stale count and run ablation-scan again`,
    );
  }
  const [count, byIndex] = [...shards][0]!;
  const problems: string[] = [];
  let n: number | undefined;
  for (let k = 0; k < count; k++) {
    const s = byIndex.get(k);
    const file = scanShardFile({ index: k, count });
    if (!s) {
      problems.push(
        `shard ${k}/${count} (${file}) is missing: run \`bt ablation-scan --shard ${k}/${count}\``,
      );
    } else if (s.config_hash !== configHash) {
      problems.push(`shard ${k}/${count} (${file}) was made with another config`);
    } else if (s.positions_hash !== itemsHash) {
      problems.push(`shard ${k}/${count} (${file}) scanned other items (events, controls or conditions)`);
    } else n = s.n_positions;
  }
  if (problems.length) throw new Error(`Cannot assemble the sharded ablation scan: ${problems.join("; ")}`);
  const scores: (PositionScores | undefined)[] = new Array(n!);
  for (const s of byIndex.values()) {
    s.indices.forEach((i, j) => {
      if (scores[i] !== undefined) throw new Error(`ablation-scan shards: position ${i} is in two shards`);
      scores[i] = s.scores[j];
    });
  }
  const missing = scores.map((x, i) => (x === undefined ? i : -1)).filter((i) => i >= 0);
  if (missing.length || scores.length !== n) {
    throw new Error(
      `ablation-scan shards lack positions ${missing.slice(0, 10).join(", ")}; rerun every shard`,
    );
  }
  return scores as PositionScores[];
}

/**
 * Scan shard K of N of the positions (see the module doc) and write its scores; the unsharded
 * ablation-scan assembles them.
 *
 * @param ctx The config, the run, and the model slot (needs detect-events).
 * @param shard The shard.
 * @param options Variant.
 * @returns The shard file (run-relative) and how many positions it scanned.
 */
export async function ablationScanShard(
  ctx: ModelContext,
  shard: ShardSpec,
  options: AnalysisStepOptions = {},
): Promise<{ file: string; positions: number }> {
  await using _lock = await lockRun(ctx, "ablation-scan", shard);
  const cfg = ctx.config;
  const items = await analysisItems(ctx, options.variant);
  const { model } = await ensureModel(ctx);
  const layers = cfg.analysis.ablation_layers === "all" ? undefined : [...cfg.analysis.ablation_layers];
  const conditions = scanConditions(model.config.numLayers, {
    components: [...cfg.analysis.ablation_components],
    ...(layers ? { layers } : {}),
  });
  const scale = ablationScale(cfg);
  const { positions } = scanPositionList(items.events, items.controls);
  const groups = prefillGroups(positions);
  const parts = partitionKeys(
    groups.map((g, i) => ({
      exampleId: i,
      sampleId: 0,
      cost: g.reduce((a, p) => a + positions[p]!.predPos + 1, 0) * (conditions.length + 1),
    })),
    shard.count,
  );
  const indices = parts[shard.index]!.flatMap(([g]) => groups[g as number]!).sort((a, b) => a - b);
  const scores = indices.length
    ? await scanPositions(model, indices.map((i) => positions[i]!), { conditions, scale })
    : [];
  const file = await writeScanShard(ctx.run, {
    shard: shard.index,
    count: shard.count,
    config_hash: generationConfigHash(cfg),
    positions_hash: positionsHash(positions, conditions, scale),
    n_positions: positions.length,
    indices,
    scores,
  });
  say(
    ctx,
    `ablation-scan shard ${shard.index}/${shard.count}: ${indices.length} of ${positions.length} positions → ${file}`,
  );
  return { file, positions: indices.length };
}
