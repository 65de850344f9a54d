/**
 * Step `phase2-sweeps`: the subset sweep and the scale sweep (docs/protocol.md §19).
 *
 * - Subset sweep (`phase2.subset_sweep.enabled`): every named subset (config, or derived from the scan:
 *   `selected_mlp`, `selected_attn`, `selected_all`, `random_matched`) scaled by the generation-time
 *   ablation scale (0) on the Phase-1 intervention scope.
 * - Scale sweep (`phase2.scale_sweep.enabled`): `phase2.scale_sweep.subset_name` (when it names a subset;
 *   else `selected_all`) at every scale of `phase2.scale_sweep.scales`, plus 1.0, which *is* the Phase-1
 *   baseline (scale 1 is the identity; the rows share random streams, so the samples are the same).
 *
 * Each setting is generated into `generations/<variant>/phase2_<subset>_s<scale>.jsonl`; the same
 * (subset, scale) is generated once even when both sweeps use it. Outputs:
 * `analysis/subset_sweep_results.csv` and `analysis/scale_sweep_results.csv` (the reference's columns,
 * then CIs, degeneration, per-trigger rates, paired Δ vs baseline), `analysis/phase2_events.csv` (event
 * rows of every Phase-2 ablation sample), `analysis/phase2_sweeps.json` (all of it plus the report
 * section) and `figures/phase2_tradeoff.{svg,png}` (BT rate vs accuracy, one point per setting, CI bars).
 *
 * With `shard: {index, count}` (`--shard K/N`) the step only generates shard K of every setting's store
 * and returns ({@linkcode phase2SweepsShard}); the run without a shard merges them and computes the outputs.
 *
 * @module
 */

import type { EventRow } from "../event_row.ts";
import { eventsToCsv, toCsv } from "../events.ts";
import {
  pctCI,
  settingDegeneration,
  type SettingResult,
  settingResult,
  settingRow,
  settingsMarkdown,
} from "../phase2/summaries.ts";
import { rateCI, type RateEstimate } from "../metrics.ts";
import { ablationCondition, describeSubset, subsetInterventions } from "../phase2/subsets.ts";
import { tradeoffPoints } from "../phase2/figures.ts";
import { saveFigure, tradeoffScatter } from "../figures.ts";
import { artifactPath } from "../run.ts";
import { statsOptions } from "../settings.ts";
import { allExist } from "../artifacts/files.ts";
import {
  readSweepsResult,
  SWEEP_OUTPUTS,
  type SweepsResult,
  writePhase2Output,
} from "../artifacts/phase2.ts";
import { lockRun, type ModelContext, recordStep, say } from "../context.ts";
import {
  baselineRecords,
  eventRowsOf,
  generateSetting,
  generateSettingShard,
  type Phase2Setup,
  phase2Setup,
  type Phase2ShardStore,
  type Phase2StepOptions,
} from "../phase2/setup.ts";
import type { Config } from "../config.ts";
import type { ShardSpec } from "../../../lib/generate/shards.ts";

/** `45.0% [28.4, 62.6]`: a rate with its cluster-adjusted Wilson CI. */
const rateText = (e: RateEstimate) => pctCI(e.value, rateCI(e).lower, rateCI(e).upper);

/** The subset of the scale sweep: `phase2.scale_sweep.subset_name` when it names one, else `selected_all`. */
function scaleSubsetName(setup: Phase2Setup, config: Config): string {
  const names = setup.subsets.map((s) => s.name);
  const wanted = config.phase2.scale_sweep.subset_name;
  return names.includes(wanted)
    ? wanted
    : names.includes("selected_all")
    ? "selected_all"
    : names[names.length - 1]!;
}

/**
 * The sweeps' generation settings (subset, scale), each once, in the order the step generates them.
 */
function sweepSettings(setup: Phase2Setup, config: Config): { subset: string; scale: number }[] {
  const p2 = config.phase2;
  const out: { subset: string; scale: number }[] = [];
  const add = (subset: string, scale: number) => {
    if (!out.some((x) => x.subset === subset && x.scale === scale)) out.push({ subset, scale });
  };
  if (p2.subset_sweep.enabled) { for (const s of setup.subsets) add(s.name, setup.ablationScale); }
  if (p2.scale_sweep.enabled) {
    for (const scale of [...new Set(p2.scale_sweep.scales)].sort((a, b) => a - b)) {
      if (scale !== 1) add(scaleSubsetName(setup, config), scale);
    }
  }
  return out;
}

/**
 * Generate shard K of N of every sweep setting (no outputs: the unsharded step makes them).
 *
 * @param ctx The config, the run, and the model slot; needs the Phase-1 scan (for derived subsets).
 * @param shard The shard.
 * @param options `force`: regenerate this shard's stores.
 */
export async function phase2SweepsShard(
  ctx: ModelContext,
  shard: ShardSpec,
  options: { readonly force?: boolean } = {},
): Promise<Phase2ShardStore[]> {
  await using _lock = await lockRun(ctx, "phase2-sweeps", shard);
  const p2 = ctx.config.phase2;
  if (!p2.subset_sweep.enabled && !p2.scale_sweep.enabled) {
    say(ctx, "phase2-sweeps: both sweeps are disabled in the config; nothing to generate");
    return [];
  }
  const setup = await phase2Setup(ctx);
  const out: Phase2ShardStore[] = [];
  for (const { subset: name, scale } of sweepSettings(setup, ctx.config)) {
    const subset = setup.subsets.find((s) => s.name === name)!;
    const res = await generateSettingShard(
      ctx,
      setup,
      ablationCondition(name, scale),
      subsetInterventions(subset, scale),
      { shard, force: options.force ?? false, command: "bt phase2-sweeps" },
    );
    say(
      ctx,
      `phase2-sweeps shard ${shard.index}/${shard.count}: ${res.condition}: ${res.generated} new, ${res.resumed} stored`,
    );
    out.push(res);
  }
  return out;
}

/**
 * Run the sweeps (or reuse their finished outputs).
 *
 * @param ctx The config, the run, and the model slot; needs the Phase-1 baseline, detect-events and (for derived subsets) the scan.
 * @param options `force`: regenerate every Phase-2 ablation store and recompute.
 */
export async function phase2Sweeps(
  ctx: ModelContext,
  options: Phase2StepOptions = {},
): Promise<SweepsResult> {
  await using _lock = await lockRun(ctx, "phase2-sweeps");
  const force = options.force ?? false;
  if (!force && await allExist(ctx.run, SWEEP_OUTPUTS)) {
    return { ...(await readSweepsResult(ctx.run)), status: "reused" };
  }
  const cfg = ctx.config;
  const p2 = cfg.phase2;
  const setup = await phase2Setup(ctx);
  const stats = statsOptions(cfg);
  const baseRows = await eventRowsOf(ctx, await baselineRecords(ctx.run, setup));
  const baseline = settingResult(
    { setting: "baseline", kind: "baseline", num_components: 0 },
    baseRows,
    baseRows,
    stats,
  );
  const generated = new Map<string, EventRow[]>();
  const run = async (subsetName: string, scale: number): Promise<EventRow[]> => {
    const subset = setup.subsets.find((s) => s.name === subsetName)!;
    const condition = ablationCondition(subset.name, scale);
    let rows = generated.get(condition);
    if (!rows) {
      const recs = await generateSetting(
        ctx,
        setup,
        condition,
        subsetInterventions(subset, scale),
        force,
        "bt phase2-sweeps",
      );
      rows = await eventRowsOf(ctx, recs);
      generated.set(condition, rows);
      say(ctx, `phase2-sweeps: ${condition} (${describeSubset(subset)} × ${scale}): ${rows.length} samples`);
    }
    return rows;
  };

  const subsetResults: SettingResult[] = [baseline];
  if (p2.subset_sweep.enabled) {
    for (const s of setup.subsets) {
      const rows = await run(s.name, setup.ablationScale);
      subsetResults.push(settingResult(
        {
          setting: ablationCondition(s.name, setup.ablationScale),
          kind: "subset",
          subset_name: s.name,
          num_components: s.components.length,
        },
        rows,
        baseRows,
        stats,
      ));
    }
  }
  const scaleSubset = scaleSubsetName(setup, cfg);
  const scaleResults: SettingResult[] = [];
  if (p2.scale_sweep.enabled) {
    const n = setup.subsets.find((s) => s.name === scaleSubset)!.components.length;
    const scales = [...new Set([...p2.scale_sweep.scales, 1])].sort((a, b) => a - b);
    for (const scale of scales) {
      if (scale === 1) {
        scaleResults.push({
          ...baseline,
          spec: { setting: "baseline", kind: "scale", subset_name: scaleSubset, scale: 1, num_components: n },
        });
        continue;
      }
      const rows = await run(scaleSubset, scale);
      scaleResults.push(settingResult(
        {
          setting: ablationCondition(scaleSubset, scale),
          kind: "scale",
          subset_name: scaleSubset,
          scale,
          num_components: n,
        },
        rows,
        baseRows,
        stats,
      ));
    }
  }

  const triggers = setup.triggers;
  const subsetRows = subsetResults.map((r) => settingRow(r, triggers));
  const scaleRows = scaleResults.map((r) => settingRow(r, triggers));
  await writePhase2Output(ctx.run, SWEEP_OUTPUTS[0], toCsv(subsetRows));
  await writePhase2Output(ctx.run, SWEEP_OUTPUTS[1], toCsv(scaleRows.length ? scaleRows : [{}]));
  await writePhase2Output(ctx.run, SWEEP_OUTPUTS[2], eventsToCsv([...generated.values()].flat()));
  const fig = tradeoffScatter(
    [
      ...tradeoffPoints(subsetResults, () => "subset (scale 0)", baseline.summary),
      ...tradeoffPoints(
        scaleResults.filter((r) => r.spec.scale !== 1 && r.spec.scale !== setup.ablationScale),
        () => `${scaleSubset} × scale`,
        baseline.summary,
      ),
    ],
    { subtitle: "Phase-2 sweeps; bars: 95% CI (Wilson, clustered by problem)" },
  );
  await saveFigure({ ...fig, name: "phase2_tradeoff" }, artifactPath(ctx.run, "figures"));

  // a degenerate setting is no trade-off: its BT rate fell because the text broke
  const best =
    subsetResults.slice(1).filter((r) =>
      r.summary.accuracy.value >= 0.5 * baseline.summary.accuracy.value &&
      !settingDegeneration(r, baseline.summary).degenerate
    ).sort((a, b) => a.summary.bt_rate.value - b.summary.bt_rate.value)[0];
  const md = [
    `Variant \`${setup.variant}\`, ${setup.problems.length} problems × ${setup.samples} samples per setting, the ` +
    `Phase-1 prompt builder and baseline (paired: same problems, sample ids and random streams), gold aligned ` +
    `by example id, intervention scope \`${cfg.generation.intervention_scope}\`. Generations: ` +
    `\`generations/${setup.variant}/phase2_<subset>_s<scale>.jsonl\`.`,
    "",
    `Subsets: ${setup.subsets.map((s) => `\`${s.name}\` (${describeSubset(s)}; ${s.origin})`).join(", ")}.`,
    ...(p2.subset_sweep.enabled
      ? ["", `### Subset sweep (scale ${setup.ablationScale})`, "", settingsMarkdown(subsetResults, triggers)]
      : []),
    ...(best
      ? [
        "",
        "Best trade-off (accuracy ≥ half the baseline's, lowest BT rate, text not degenerate): " +
        `\`${best.spec.subset_name}\`, BT ${rateText(best.summary.bt_rate)} vs ` +
        `${rateText(baseline.summary.bt_rate)}, accuracy ${rateText(best.summary.accuracy)} vs ` +
        `${rateText(baseline.summary.accuracy)}.`,
      ]
      : []),
    ...(p2.scale_sweep.enabled
      ? [
        "",
        `### Scale sweep (\`${scaleSubset}\`; scale 1.0 = the baseline)`,
        "",
        settingsMarkdown(
          scaleResults.map((r) => ({ ...r, spec: { ...r.spec, setting: `scale ${r.spec.scale}` } })),
          triggers,
        ),
      ]
      : []),
    "",
    "![Phase-2 trade-off](figures/phase2_tradeoff.png)",
  ].join("\n");
  const result: SweepsResult = {
    variant: setup.variant,
    examples: setup.problems.length,
    samples: setup.samples,
    subsets: setup.subsets.map((s) => ({ name: s.name, components: describeSubset(s), origin: s.origin })),
    subset_sweep: subsetRows,
    scale_sweep: { subset: scaleSubset, rows: scaleRows },
    section: { title: "Phase 2: subset and scale sweeps", markdown: md },
  };
  await writePhase2Output(ctx.run, SWEEP_OUTPUTS[3], result);
  await recordStep(ctx.run, "phase2-sweeps", {
    variant: setup.variant,
    settings: [...generated.keys()],
    scale_subset: scaleSubset,
  });
  return { ...result, status: "ran" };
}
