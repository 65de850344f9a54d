/**
 * Step `phase2-steering`: steering along the backtracking direction, and its comparison with ablation.
 *
 * 1. Directions: residuals captured at the selected BT events' pre-onset positions and at their
 *    position-matched controls (the lens/scan items, `analysis.max_events`); per residual layer the
 *    difference of means (`analysis/steering_directions.json`: norm, separation d′, and for the model
 *    organism the cosine with its planted feature directions).
 * 2. Site: "at" block `phase2.steering.layer` (null, the default: the scan's top MLP, else its top
 *    attention layer) the direction is read right after the block and added at the next `hook_resid_pre`
 *    (the block's own for the last block), on every generated position (the Phase-1 intervention scope).
 * 3. Dose-response: one generation per coefficient (`phase2.steering.coefficients`, default
 *    {@linkcode DEFAULT_STEERING_COEFS}; 0 = the Phase-1 baseline is always added) over
 *    `phase2.steering.max_examples` problems × `num_samples_per_prompt` samples (null = the sweeps'), into
 *    `generations/<variant>/phase2_steer_<label>_l<hook>_c<coef>.jsonl`; BT rate, accuracy, degeneration
 *    and per-trigger rates with CIs and paired Δ vs baseline (`analysis/steering_results.csv`),
 *    `figures/steering_dose_response`, and `figures/intervention_tradeoff` with the ablation sweeps'
 *    points when they exist.
 *
 * Directions steered (`phase2.steering.direction`): `"mean_difference"` (label `meandiff`; on the model
 * organism also its planted wait feature direction, label `planted_wait`, as the ground-truth comparison)
 * or `"planted"` (organism only: `planted_wait` alone). The first one steered is the primary direction
 * (unsuffixed figure, the trade-off figure's baseline).
 *
 * Finished outputs are reused only when they were made with the same settings
 * ({@linkcode steeringSettings}, stored in `phase2_steering.json`).
 *
 * @module
 */

import { fixed } from "../../../lib/tables/format.ts";
import type { EventRow } from "../event_row.ts";
import { eventsToCsv, toCsv } from "../events.ts";
import { steeringDoseResponse, tradeoffPoints } from "../phase2/figures.ts";
import { captureAt } from "../../../lib/interp/positions.ts";
import {
  cosine,
  meanDifferenceDirections,
  steeringInterventions,
  steeringSite,
} from "../../../lib/interp/steering.ts";
import {
  pctCI,
  ppCI,
  rowFigures,
  type SettingResult,
  settingResult,
  settingRow,
  settingsMarkdown,
} from "../phase2/summaries.ts";
import { degenerationFlags, flagText } from "../degeneration.ts";
import { steeringCondition } from "../phase2/subsets.ts";
import {
  baselineRecords,
  eventRowsOf,
  generateSetting,
  generateSettingShard,
  phase2Setup,
  type Phase2ShardStore,
  type Phase2StepOptions,
} from "../phase2/setup.ts";
import type { ShardSpec } from "../../../lib/generate/shards.ts";
import { type Figure, saveFigure, type TradeoffPoint, tradeoffScatter, valueCI } from "../figures.ts";
import { artifactPath } from "../run.ts";
import type { Config } from "../config.ts";
import { statsOptions } from "../settings.ts";
import { analysisItems } from "../analysis_items.ts";
import { allExist, ifPresent } from "../artifacts/files.ts";
import { readSelection } from "../artifacts/scan.ts";
import {
  type DirectionInfo,
  readSteeringResult,
  readSweepsResult,
  STEERING_OUTPUTS,
  type SteeringResult,
  type SteeringSettings,
  type SweepsResult,
  writePhase2Output,
} from "../artifacts/phase2.ts";
import { ensureModel, lockRun, type ModelContext, recordStep, say } from "../context.ts";

/**
 * Default steering coefficients (multiples of the mean difference; 0 = baseline is added): the default
 * of `phase2.steering.coefficients`.
 */
export const DEFAULT_STEERING_COEFS: readonly number[] = [-1, -0.5, 0.5, 1];

/** Options of {@linkcode phase2Steering}; each overrides its `phase2.steering` key. */
export interface SteeringStepOptions extends Phase2StepOptions {
  /** Block to steer at (`layer`; null: the scan's top MLP, else its top attention layer, else the last). */
  readonly layer?: number | null;
  /** Coefficients (`coefficients`, default {@linkcode DEFAULT_STEERING_COEFS}). */
  readonly coefs?: readonly number[];
  /** `direction`: the mean difference (default) or, organism only, the planted wait direction alone. */
  readonly direction?: "mean_difference" | "planted";
  /** With `"mean_difference"`, organism only: also steer along its planted wait direction (default true). */
  readonly planted?: boolean;
  /** Problems (`max_examples`; null = `phase2.max_examples`). */
  readonly maxExamples?: number | null;
  /** Samples per problem (`num_samples_per_prompt`; null = `phase2.num_samples_per_prompt`). */
  readonly samplesPerPrompt?: number | null;
}

/**
 * The effective steering settings: options over `phase2.steering`, nulls resolved to the sweeps' values.
 *
 * @throws {RangeError} on a non-finite coefficient.
 */
export function steeringSettings(
  config: Config,
  options: Omit<SteeringStepOptions, "force"> = {},
): SteeringSettings {
  const p2 = config.phase2;
  const st = p2.steering;
  const coefs = options.coefs ?? st.coefficients;
  for (const c of coefs) {
    if (!Number.isFinite(c)) throw new RangeError(`phase2.steering.coefficients: ${c} is not finite`);
  }
  return {
    layer: options.layer === undefined ? st.layer : options.layer,
    coefficients: [...new Set([...coefs, 0])].sort((a, b) => a - b),
    direction: options.direction ?? st.direction,
    planted_comparison: options.planted ?? true,
    max_examples: options.maxExamples ?? st.max_examples ?? p2.max_examples,
    num_samples_per_prompt: options.samplesPerPrompt ?? st.num_samples_per_prompt ??
      p2.num_samples_per_prompt,
  };
}

/** The directions, the steering site and what is steered (shared by the step and its shards). */
async function steeringPlan(ctx: ModelContext, settings: SteeringSettings) {
  const loaded = await ensureModel(ctx);
  const { model } = loaded;
  const L = model.config.numLayers;
  const planted = (loaded.organism as { feature_directions?: Record<string, number[]> } | undefined)
    ?.feature_directions;
  if (settings.direction === "planted" && !planted?.wait) {
    throw new Error(
      'phase2.steering.direction "planted" needs the model organism (its planted wait feature direction)',
    );
  }
  if (settings.layer !== null && settings.layer >= L) {
    throw new RangeError(`phase2.steering.layer ${settings.layer} is outside the model's blocks [0, ${L})`);
  }
  const setup = await phase2Setup(ctx, {
    maxExamples: settings.max_examples,
    samplesPerPrompt: settings.num_samples_per_prompt,
  });
  const items = await analysisItems(ctx, setup.variant);
  const matched = items.events.filter((_, i) => !items.unmatched.includes(i));
  const evCaps = await captureAt(model, matched.map((e) => ({ tokenIds: e.tokenIds, pos: e.predPos })));
  const ctCaps = await captureAt(
    model,
    items.controls.map((c) => ({ tokenIds: c.tokenIds, pos: c.predPos })),
  );
  const dirs = meanDifferenceDirections(evCaps, ctCaps);
  let block = settings.layer ?? undefined;
  if (block === undefined) {
    const { selected } = await readSelection(ctx.run);
    block = selected.mlp[0] ?? selected.attn[0] ?? L - 1;
  }
  const { directionLayer, hookLayer } = steeringSite(block, L);
  const dir = dirs[directionLayer]!;
  const directions: DirectionInfo[] = dirs.map((d) => ({
    layer: d.layer,
    norm: d.norm,
    event_norm: d.event_norm,
    separation: d.separation,
    n_events: d.n_events,
    n_controls: d.n_controls,
    ...(planted
      ? { cos_planted: Object.fromEntries(Object.entries(planted).map(([k, v]) => [k, cosine(d.vector, v)])) }
      : {}),
  }));
  // The mean-difference direction; on the organism also (or, with direction "planted", only) its planted
  // wait feature direction, scaled to the wait-feature component of the mean difference (the
  // ground-truth check of the method).
  const steerings: { label: string; vector: Float32Array; what: string }[] = settings.direction === "planted"
    ? []
    : [{ label: "meandiff", vector: dir.vector, what: `mean difference at resid[${directionLayer}]` }];
  const wait = planted?.wait;
  if (wait && (settings.direction === "planted" || settings.planted_comparison)) {
    const n = Math.sqrt(wait.reduce((a, x) => a + x * x, 0));
    const proj = Math.abs(wait.reduce((a, x, i) => a + x * dir.vector[i]!, 0)) / n;
    steerings.push({
      label: "planted_wait",
      vector: Float32Array.from(wait, (x) => (x / n) * proj),
      what:
        `the organism's planted wait feature direction, scaled to the mean difference's projection on it (${
          proj.toFixed(3)
        })`,
    });
  }
  return {
    setup,
    planted,
    evCaps,
    ctCaps,
    dirs,
    block,
    directionLayer,
    hookLayer,
    dir,
    directions,
    steerings,
  };
}

/**
 * Generate shard K of N of every steered coefficient's store (no outputs: the unsharded step makes them).
 * The directions are computed here as in the step (the same captures, so every shard steers along the
 * same vector; the merge checks that every record carries the same interventions).
 *
 * @param ctx The config, the run, and the model slot (needs the scan and detect-events).
 * @param shard The shard.
 * @param options `force` and overrides of the `phase2.steering` keys, as {@linkcode phase2Steering}.
 */
export async function phase2SteeringShard(
  ctx: ModelContext,
  shard: ShardSpec,
  options: SteeringStepOptions = {},
): Promise<Phase2ShardStore[]> {
  await using _lock = await lockRun(ctx, "phase2-steering", shard);
  if (!ctx.config.phase2.steering.enabled) {
    say(ctx, "phase2-steering: phase2.steering.enabled is false; nothing to generate");
    return [];
  }
  const settings = steeringSettings(ctx.config, options);
  const { setup, steerings, hookLayer } = await steeringPlan(ctx, settings);
  const out: Phase2ShardStore[] = [];
  for (const st of steerings) {
    for (const coef of settings.coefficients) {
      if (coef === 0) continue;
      const res = await generateSettingShard(
        ctx,
        setup,
        steeringCondition(hookLayer, coef, st.label),
        steeringInterventions(st.vector, hookLayer, coef),
        { shard, force: options.force ?? false, command: "bt phase2-steering" },
      );
      say(
        ctx,
        `phase2-steering shard ${shard.index}/${shard.count}: ${res.condition}: ${res.generated} new, ${res.resumed} stored`,
      );
      out.push(res);
    }
  }
  return out;
}

const round = (x: number) => Number(x.toPrecision(6));

/**
 * The ablation settings of the sweeps (`phase2_sweeps.json`) that the `intervention_tradeoff` figure and the
 * "Ablation vs steering" table show: every subset-sweep row but the baseline, every scale-sweep row but the
 * baseline and scale 0 (the subset sweep's own), and the sweeps' baseline row (their degeneration
 * reference). No sweeps: no rows.
 */
export function sweepAblationRows(sweeps: SweepsResult | undefined): {
  readonly rows: Record<string, unknown>[];
  readonly baseline: Record<string, unknown> | undefined;
} {
  return {
    rows: [
      ...(sweeps?.subset_sweep ?? []).filter((r) => r.kind !== "baseline"),
      ...(sweeps?.scale_sweep.rows ?? []).filter((r) => r.setting !== "baseline" && Number(r.scale) !== 0),
    ],
    baseline: sweeps?.subset_sweep.find((r) => r.kind === "baseline") ??
      sweeps?.scale_sweep.rows.find((r) => r.setting === "baseline"),
  };
}

/**
 * The `intervention_tradeoff` figure: the steering points (from {@linkcode tradeoffPoints}) and the sweeps'
 * ablation points ({@linkcode ablationPoints}), every bar the rates' cluster-adjusted Wilson CI, degenerate
 * settings faded. Without the sweeps' results (notebook 12 run alone) the subtitle says that the ablation
 * points are missing and how to get them.
 *
 * @param steering The steering points (the primary direction's c = 0 as the baseline).
 * @param sweeps The sweeps' result, when `phase2-sweeps` has run.
 */
export function interventionTradeoff(
  steering: readonly TradeoffPoint[],
  sweeps: SweepsResult | undefined,
): Figure {
  const { rows, baseline } = sweepAblationRows(sweeps);
  const fig = tradeoffScatter([...steering, ...ablationPoints(rows, baseline)], {
    title: "Ablation vs steering: backtracking rate vs accuracy",
    subtitle: "one point per setting; bars: 95% CI (Wilson, clustered by problem)" +
      (sweeps === undefined
        ? "\nno ablation points: run phase2-sweeps (notebook 11) first"
        : rows.length === 0
        ? "\nno ablation points: the sweeps made none (phase2.subset_sweep and scale_sweep disabled)"
        : ""),
  });
  return { ...fig, name: "intervention_tradeoff" };
}

/**
 * The ablation points of the `intervention_tradeoff` figure from the sweeps' CSV rows
 * (`subset_sweep_results.csv` / `scale_sweep_results.csv` as stored in `phase2_sweeps.json`): BT rate and
 * accuracy with the rows' cluster-adjusted Wilson bounds (`bt_rate_lower` / `_upper`, the same interval
 * `tradeoffPoints` takes from a summary), group "ablation", labelled by the subset (a scale point
 * `<subset> ×<scale>`), `degenerate` when the row's text broke down against `baseline` (the sweeps' baseline
 * row; `degenerationFlags`, the report's verdict).
 *
 * @throws {RangeError} naming the setting when a row lacks a degeneration column (`rowFigures`).
 */
export function ablationPoints(
  rows: readonly Record<string, unknown>[],
  baseline: Record<string, unknown> | undefined,
): TradeoffPoint[] {
  return rows.map((r) => {
    const n = (k: string) => Number(r[k]);
    const verdict = degenerationFlags(rowFigures(r), baseline ? rowFigures(baseline) : undefined);
    return {
      // a scale point names its subset: the legend's "ablation" group holds subsets and scales alike
      label: r.kind === "scale" ? `${r.subset_name} ×${r.scale}` : String(r.subset_name),
      group: "ablation",
      bt_rate: { value: n("backtracking_rate"), lower: n("bt_rate_lower"), upper: n("bt_rate_upper") },
      accuracy: { value: n("accuracy"), lower: n("accuracy_lower"), upper: n("accuracy_upper") },
      ...(verdict.degenerate ? { degenerate: true } : {}),
    };
  });
}

/**
 * Compute the directions and run the dose-response (or reuse the finished outputs).
 *
 * @param ctx The config, the run, and the model slot (needs the scan and detect-events).
 * @param options `force`, and overrides of the `phase2.steering` keys.
 * @throws {Error} for `direction: "planted"` on a model without a planted wait direction, or a `layer`
 *   outside the model.
 */
export async function phase2Steering(
  ctx: ModelContext,
  options: SteeringStepOptions = {},
): Promise<SteeringResult> {
  await using _lock = await lockRun(ctx, "phase2-steering");
  const force = options.force ?? false;
  const settings = steeringSettings(ctx.config, options);
  if (!force && await allExist(ctx.run, STEERING_OUTPUTS)) {
    const stored = await readSteeringResult(ctx.run);
    if (JSON.stringify(stored.settings) === JSON.stringify(settings)) return { ...stored, status: "reused" };
    say(ctx, "phase2-steering: settings changed since the outputs were made; recomputing");
  }
  const {
    setup,
    evCaps,
    ctCaps,
    dirs,
    block,
    directionLayer,
    hookLayer,
    dir,
    directions,
    steerings,
  } = await steeringPlan(ctx, settings);
  const stats = statsOptions(ctx.config);
  await writePhase2Output(ctx.run, STEERING_OUTPUTS[0], {
    variant: setup.variant,
    definition: "mean resid at pre-onset positions − mean resid at matched control positions; resid[l] = " +
      "blocks.l.hook_resid_pre, resid[L] = final hook_resid_post",
    block,
    direction_layer: directionLayer,
    hook_layer: hookLayer,
    layers: directions.map((d, l) => ({ ...d, vector: Array.from(dirs[l]!.vector, round) })),
  });

  const baseRows = await eventRowsOf(ctx, await baselineRecords(ctx.run, setup));
  const coefs = settings.coefficients;
  const primary = steerings[0]!.label;
  const resultsBy = new Map<string, SettingResult[]>();
  const allRows: EventRow[] = [];
  for (const st of steerings) {
    const list: SettingResult[] = [];
    for (const coef of coefs) {
      if (coef === 0) {
        list.push(settingResult(
          { setting: "baseline", kind: "steering", num_components: 0, layer: hookLayer, coef: 0 },
          baseRows,
          baseRows,
          stats,
        ));
        continue;
      }
      const condition = steeringCondition(hookLayer, coef, st.label);
      const recs = await generateSetting(
        ctx,
        setup,
        condition,
        steeringInterventions(st.vector, hookLayer, coef),
        force,
        "bt phase2-steering",
      );
      const rows = await eventRowsOf(ctx, recs);
      allRows.push(...rows);
      list.push(settingResult(
        { setting: condition, kind: "steering", num_components: 0, layer: hookLayer, coef },
        rows,
        baseRows,
        stats,
      ));
      say(ctx, `phase2-steering: ${condition}: BT ${(100 * list.at(-1)!.summary.bt_rate.value).toFixed(1)}%`);
    }
    resultsBy.set(st.label, list);
  }
  const rowsBy = new Map(
    [...resultsBy].map((
      [label, list],
    ) => [
      label,
      list.map((r): Record<string, unknown> => ({ direction: label, ...settingRow(r, setup.triggers) })),
    ]),
  );
  const rows = [...rowsBy.values()].flat();
  await writePhase2Output(ctx.run, STEERING_OUTPUTS[1], toCsv(rows));
  await writePhase2Output(ctx.run, STEERING_OUTPUTS[2], eventsToCsv(allRows));
  const figDir = artifactPath(ctx.run, "figures");
  for (const [label, list] of resultsBy) {
    const fig = steeringDoseResponse(
      list.map((r) => ({
        coef: r.spec.coef!,
        bt_rate: valueCI(r.summary.bt_rate),
        accuracy: valueCI(r.summary.accuracy),
      })),
      hookLayer,
      label === "planted_wait"
        ? {
          title: "the organism's planted wait direction",
          unit: "planted wait direction, at the mean difference's projection on it",
        }
        : undefined,
    );
    await saveFigure(fig, figDir, label === primary ? fig.name : `${fig.name}_${label}`);
  }
  // Ablation vs steering, one trade-off figure (the sweeps' rows when they exist). Every point shows the
  // rates' cluster-adjusted Wilson CI (the CSVs' `_lower` / `_upper`) and is flagged degenerate against its
  // own baseline (the steering baseline, or the sweeps' baseline row for an ablation point).
  const points: TradeoffPoint[] = [...resultsBy].flatMap(([label, list]) =>
    tradeoffPoints(
      label === primary ? list : list.filter((r) => r.spec.coef !== 0),
      () => `steering (${label})`,
      list.find((r) => r.spec.coef === 0)?.summary,
    )
  );
  const sweeps: SweepsResult | undefined = await ifPresent(() => readSweepsResult(ctx.run));
  const { rows: ablationRows, baseline: sweepsBaseline } = sweepAblationRows(sweeps);
  await saveFigure(interventionTradeoff(points, sweeps), figDir);
  const cmpHead = [
    "intervention",
    "setting",
    "BT rate [95% CI]",
    "Δ BT [95% CI]",
    "accuracy [95% CI]",
    "Δ accuracy [95% CI]",
    "4-gram repetition",
    "distinct-2",
    "degeneration",
  ];
  const steerBase = rows.find((r) => r.setting === "baseline" && r.direction === primary);
  const cmpRow = (kind: string, r: Record<string, unknown>, base: Record<string, unknown> | undefined) => {
    const n = (k: string) => Number(r[k]);
    const cells = [
      kind,
      r.setting === "baseline"
        ? "baseline"
        : r.coef !== undefined
        ? `coef ${r.coef}`
        : r.kind === "scale"
        ? `${r.subset_name} ×${r.scale}`
        : String(r.subset_name),
      pctCI(n("backtracking_rate"), n("bt_rate_lower"), n("bt_rate_upper")),
      ppCI(n("delta_bt_rate"), n("delta_bt_rate_lower"), n("delta_bt_rate_upper")),
      pctCI(n("accuracy"), n("accuracy_lower"), n("accuracy_upper")),
      ppCI(n("delta_accuracy"), n("delta_accuracy_lower"), n("delta_accuracy_upper")),
      n("repetition_4gram").toFixed(3),
      n("distinct_2").toFixed(3),
      flagText(degenerationFlags(rowFigures(r), base && base !== r ? rowFigures(base) : undefined)) || "none",
    ];
    return `| ${cells.join(" | ")} |`;
  };
  const comparison = [
    `| ${cmpHead.join(" | ")} |`,
    `|${cmpHead.map(() => "---").join("|")}|`,
    ...ablationRows.map((r) => cmpRow("ablation", r, sweepsBaseline)),
    ...rows.filter((r) => r.setting !== "baseline" || r.direction === primary).map((r) =>
      cmpRow(r.setting === "baseline" ? "none" : `steering (${r.direction})`, r, steerBase)
    ),
  ].join("\n");
  const best = [...directions].sort((a, b) => (b.separation || 0) - (a.separation || 0))[0]!;
  const cosText = directions[directionLayer]?.cos_planted
    ? ` Cosine of the steering direction with the organism's planted feature directions: ${
      Object.entries(directions[directionLayer]!.cos_planted!).map(([k, v]) => `${k} ${fixed(v, 3)}`).join(
        ", ",
      )
    }.`
    : "";
  const md = [
    `Direction: mean residual at ${evCaps.length} pre-onset positions minus at ${ctCaps.length} matched control ` +
    `positions, read at resid[${directionLayer}] (after block ${block}; norm ${dir.norm.toFixed(3)}, d′ ${
      dir.separation.toFixed(2)
    }; the most separating layer is resid[${best.layer}], d′ ${best.separation.toFixed(2)}), added as ` +
    `coef × direction at \`blocks.${hookLayer}.hook_resid_pre\` on every generated position.${cosText} ` +
    `Steered: ${steerings.map((st) => st.label).join(", ")}; ${setup.problems.length} problems × ` +
    `${setup.samples} samples per coefficient.`,
    "",
    ...steerings.flatMap((st) => [
      `### Dose-response: ${st.label}`,
      "",
      `Direction: ${st.what}.`,
      "",
      settingsMarkdown(
        resultsBy.get(st.label)!.map((r) => ({ ...r, spec: { ...r.spec, setting: `coef ${r.spec.coef}` } })),
        setup.triggers,
      ),
      "",
      `![Steering dose-response (${st.label})](figures/steering_dose_response${
        st.label === primary ? "" : `_${st.label}`
      }.png)`,
      "",
    ]),
    "",
    "### Ablation vs steering",
    "",
    ...(sweeps === undefined
      ? ["No ablation rows: `phase2-sweeps` (notebook 11) had not run when this step ran.", ""]
      : []),
    comparison,
    "",
    "![Ablation vs steering](figures/intervention_tradeoff.png)",
  ].join("\n");
  const result: SteeringResult = {
    variant: setup.variant,
    block,
    direction_layer: directionLayer,
    hook_layer: hookLayer,
    directions,
    rows,
    directions_steered: steerings.map((s) => ({ label: s.label, description: s.what })),
    settings,
    section: { title: "Phase 2: steering along the backtracking direction", markdown: md },
  };
  await writePhase2Output(ctx.run, STEERING_OUTPUTS[3], result);
  await recordStep(ctx.run, "phase2-steering", {
    variant: setup.variant,
    block,
    hook_layer: hookLayer,
    coefs,
    directions: steerings.map((st) => st.label),
    problems: setup.problems.length,
    samples: setup.samples,
  });
  return { ...result, status: "ran" };
}
