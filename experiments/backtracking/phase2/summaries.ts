/**
 * One row per Phase-2 generation setting (an ablation subset, a scale, a steering strength): the
 * reference's sweep columns first (docs/protocol.md §19: `total, backtracking_count, backtracking_rate,
 * correct_count, accuracy, subset_name, [scale,] num_components`, accuracy = correct / total with the
 * gold aligned by example id), then ours: each rate's cluster-adjusted Wilson CI (`RateEstimate.ci`, the
 * one interval per rate of docs/protocol.md §16), the unknown-answer rate, degeneration metrics, the
 * per-trigger rates, and the paired comparison with the baseline (Δ with its problem-clustered bootstrap
 * CI, McNemar p). The markdown tables print the same intervals, in the Phase-1 report's style
 * (`45.0% [28.4, 62.6]`, `-6.3 pp [-12.5, 0.0]`).
 *
 * @example
 * ```ts
 * const res = settingResult({ setting: "baseline", kind: "baseline", num_components: 0 }, rows, rows, opts);
 * const row = settingRow(res, ["Wait", "Actually", "Hold on"]);
 * ```
 *
 * @module
 */

import { ciPct, ciPp, pct, pp } from "../../../lib/tables/format.ts";
import {
  type DegenerationFigures,
  degenerationFlags,
  type DegenerationVerdict,
  figuresOf,
  flagText,
} from "../degeneration.ts";
import type { EventRow } from "../event_row.ts";
import {
  compareToBaseline,
  comparisonColumns,
  type ConditionSummary,
  degenerationColumns,
  outcomeColumns,
  type PairedComparison,
  rateCI,
  summarizeCondition,
  type SummaryOptions,
} from "../metrics.ts";

/** What a setting is. */
export interface SettingSpec {
  /** Setting label (the store's condition name, or "baseline"). */
  readonly setting: string;
  readonly kind: "baseline" | "subset" | "scale" | "steering";
  readonly subset_name?: string;
  readonly scale?: number;
  readonly num_components: number;
  /** Steering: the layer whose `hook_resid_pre` receives the vector, and the coefficient. */
  readonly layer?: number;
  readonly coef?: number;
}

/** A setting's summary and its paired comparison with the baseline. */
export interface SettingResult {
  readonly spec: SettingSpec;
  readonly summary: ConditionSummary;
  /** Undefined for the baseline itself. */
  readonly comparison: PairedComparison | undefined;
}

/**
 * Summarise one setting and compare it with the baseline on the same (example, sample) pairs.
 *
 * @param spec The setting.
 * @param rows Its event rows.
 * @param baseline The baseline's event rows (same examples and sample ids).
 * @param options Bootstrap resamples, seed, level.
 * @throws {RangeError} when `rows` is empty.
 */
export function settingResult(
  spec: SettingSpec,
  rows: readonly EventRow[],
  baseline: readonly EventRow[],
  options: SummaryOptions,
): SettingResult {
  if (rows.length === 0) throw new RangeError(`setting "${spec.setting}" has no rows`);
  return {
    spec,
    summary: summarizeCondition(rows, options),
    comparison: spec.kind === "baseline" ? undefined : compareToBaseline(baseline, rows, options),
  };
}

/** Column name of a trigger's sample rate: `Hold on` → `rate_hold_on`. */
export function triggerColumn(trigger: string): string {
  return `rate_${trigger.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "")}`;
}

/** Share of samples with at least one match of each trigger (keys: the triggers as given). */
export function triggerRates(s: ConditionSummary, triggers: readonly string[]): Record<string, number> {
  return Object.fromEntries(triggers.map((t) => [t, (s.trigger_samples[t] ?? 0) / s.n]));
}

/** Comparison columns of the baseline row: it is its own comparison (no change, p = 1). */
const BASELINE_COMPARISON = {
  delta_bt_rate: 0,
  delta_bt_rate_lower: 0,
  delta_bt_rate_upper: 0,
  mcnemar_bt_p: 1,
  delta_accuracy: 0,
  delta_accuracy_lower: 0,
  delta_accuracy_upper: 0,
  mcnemar_accuracy_p: 1,
} as const;

/**
 * The CSV row of a setting (reference columns first; `scale` only when the spec has one).
 *
 * @param r The setting's result.
 * @param triggers Strict triggers (one `rate_<trigger>` column each).
 */
export function settingRow(r: SettingResult, triggers: readonly string[]): Record<string, unknown> {
  const s = r.summary;
  const c = r.comparison;
  const sp = r.spec;
  return {
    total: s.n,
    backtracking_count: s.bt_rate.k,
    backtracking_rate: s.bt_rate.value,
    correct_count: s.correct,
    accuracy: s.accuracy.value,
    subset_name: sp.subset_name ?? sp.setting,
    ...(sp.scale !== undefined ? { scale: sp.scale } : {}),
    num_components: sp.num_components,
    setting: sp.setting,
    kind: sp.kind,
    ...(sp.coef !== undefined ? { layer: sp.layer, coef: sp.coef } : {}),
    problems: s.problems,
    bt_rate_lower: rateCI(s.bt_rate).lower,
    bt_rate_upper: rateCI(s.bt_rate).upper,
    accuracy_lower: rateCI(s.accuracy).lower,
    accuracy_upper: rateCI(s.accuracy).upper,
    ...degenerationColumns(s),
    ...outcomeColumns(s),
    ...Object.fromEntries(Object.entries(triggerRates(s, triggers)).map(([t, v]) => [triggerColumn(t), v])),
    ...(c ? comparisonColumns(c) : BASELINE_COMPARISON),
  };
}

export { pct } from "../../../lib/tables/format.ts";

/**
 * A rate with its interval, as the Phase-1 report writes it: `12.5% [8.0%, 17.1%]`. Pass a rate's
 * cluster-adjusted Wilson interval (`RateEstimate.ci`, docs/protocol.md §16).
 */
export function pctCI(value: number, lower: number, upper: number): string {
  const ci = ciPct(lower, upper);
  return ci ? `${pct(value)} ${ci}` : pct(value);
}

/**
 * A percentage-point difference with its interval, as the Phase-1 report writes it: `+4.0 pp [1.2, 6.9]`
 * (`-1.3 pp [-3.8, 1.3]`; "n/a" when the difference is not finite).
 */
export function ppCI(value: number, lower: number, upper: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const ci = ciPp(lower, upper);
  return `${pp(value)}${ci ? ` ${ci}` : ""}`;
}

/**
 * The degeneration verdict of a setting against the baseline summary (`../degeneration.ts`, the same
 * verdict as the report's condition tables); the baseline itself (or no baseline) gets only the absolute
 * length-cap rule.
 */
export function settingDegeneration(
  r: SettingResult,
  baseline: ConditionSummary | undefined,
): DegenerationVerdict {
  return degenerationFlags(
    figuresOf(r.summary),
    baseline && baseline !== r.summary ? figuresOf(baseline) : undefined,
  );
}

/**
 * The degeneration figures of a {@linkcode settingRow} (a row of `subset_sweep_results.csv`,
 * `scale_sweep_results.csv` or `steering_results.csv`): its `eos_rate`, `truncation_rate`, and
 * `unknown_rate` + `unfinished_rate`, as `figuresOf` reads a summary (a row without `unfinished_rate`, from
 * before the corrected scoring, counts none, as `figuresOf` does).
 *
 * @throws {RangeError} naming the setting when `eos_rate`, `truncation_rate` or `unknown_rate` is missing or
 *   not a number.
 */
export function rowFigures(row: Record<string, unknown>): DegenerationFigures {
  const n = (k: string) => {
    const v = row[k];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new RangeError(
        `setting row "${String(row.setting)}": column ${k} is ${JSON.stringify(v)}, not a number ` +
          "(rows written before the degeneration columns: rerun the step with --force)",
      );
    }
    return v;
  };
  return {
    eos_rate: n("eos_rate"),
    truncation_rate: n("truncation_rate"),
    unknown_rate: n("unknown_rate") + (row.unfinished_rate === undefined ? 0 : n("unfinished_rate")),
  };
}

/**
 * A markdown table of settings (for reports and notebooks): rates with their cluster-adjusted Wilson CI
 * (as `settingRow`'s `_lower` / `_upper` columns), paired Δ in percentage points with their bootstrap CI,
 * both in the Phase-1 report's style ({@linkcode pctCI}, {@linkcode ppCI}). The last column flags settings whose text
 * degenerated against the baseline setting (the one without a comparison): EOS collapse, length at the cap,
 * unknown/unfinished jump (`../degeneration.ts`), e.g. a steering strength that breaks the model.
 */
export function settingsMarkdown(results: readonly SettingResult[], triggers: readonly string[]): string {
  const base = results.find((r) => r.comparison === undefined)?.summary;
  const head = [
    "setting",
    "n",
    "BT rate [95% CI]",
    "Δ BT vs baseline [95% CI]",
    "accuracy [95% CI]",
    "Δ accuracy [95% CI]",
    ...triggers.map((t) => `${t} rate`),
    "unknown / unfinished",
    "EOS",
    "4-gram repetition",
    "distinct-2",
    "mean length",
    "degeneration",
  ];
  const rows = results.map((r) => {
    const s = r.summary;
    const c = r.comparison;
    const tr = triggerRates(s, triggers);
    return [
      r.spec.setting,
      s.n,
      pctCI(s.bt_rate.value, rateCI(s.bt_rate).lower, rateCI(s.bt_rate).upper),
      c
        ? ppCI(c.delta_bt_rate.difference, c.delta_bt_rate.bootstrap.lower, c.delta_bt_rate.bootstrap.upper)
        : "–",
      pctCI(s.accuracy.value, rateCI(s.accuracy).lower, rateCI(s.accuracy).upper),
      c
        ? ppCI(
          c.delta_accuracy.difference,
          c.delta_accuracy.bootstrap.lower,
          c.delta_accuracy.bootstrap.upper,
        )
        : "–",
      ...triggers.map((t) => pct(tr[t]!)),
      // without an answer (unknown + unfinished), as in the Phase-1 degeneration table
      pct(figuresOf(s).unknown_rate),
      pct(s.eos_rate.value),
      s.repetition_4gram.value.toFixed(3),
      s.distinct_2.value.toFixed(3),
      s.mean_length.value.toFixed(1),
      flagText(settingDegeneration(r, base)) || "none",
    ];
  });
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map((x) => String(x).replaceAll("|", "\\|")).join(" | ")} |`),
  ].join("\n");
}
