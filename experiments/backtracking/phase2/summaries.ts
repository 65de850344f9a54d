/**
 * One row per Phase-2 generation setting (an ablation subset, a scale, a steering strength): the
 * reference's sweep columns first (docs/protocol.md §19: `total, backtracking_count, backtracking_rate,
 * correct_count, accuracy, subset_name, [scale,] num_components`, accuracy = correct / total with the
 * gold aligned by example id), then ours: problem-clustered bootstrap CIs, the unknown-answer rate,
 * degeneration metrics, the per-trigger rates, and the paired comparison with the baseline (Δ with CI,
 * McNemar p).
 *
 * @example
 * ```ts
 * const res = settingResult({ setting: "baseline", kind: "baseline", num_components: 0 }, rows, rows, opts);
 * const row = settingRow(res, ["Wait", "Actually", "Hold on"]);
 * ```
 *
 * @module
 */

import { degenerationFlags, figuresOf, flagText } from "../degeneration.ts";
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

/** Percent with one decimal. */
export function pct(x: number): string {
  return Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a";
}

/** `12.5% [8.0%, 17.1%]`. */
export function pctCI(value: number, lower: number, upper: number): string {
  return `${pct(value)} [${pct(lower)}, ${pct(upper)}]`;
}

/** `+4.0 pts [1.2, 6.9]` (percentage points). */
export function ptsCI(value: number, lower: number, upper: number): string {
  const f = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : "n/a");
  return `${value >= 0 ? "+" : ""}${f(value)} pts [${f(lower)}, ${f(upper)}]`;
}

/**
 * A markdown table of settings (for reports and notebooks). The last column flags settings whose text
 * degenerated against the baseline setting (the one without a comparison): EOS collapse, length at the cap,
 * unknown/unfinished jump (`../degeneration.ts`), e.g. a steering strength that breaks the model.
 */
export function settingsMarkdown(results: readonly SettingResult[], triggers: readonly string[]): string {
  const base = results.find((r) => r.comparison === undefined)?.summary;
  const head = [
    "setting",
    "n",
    "BT rate [95% CI]",
    "Δ BT vs baseline [CI]",
    "accuracy [95% CI]",
    "Δ accuracy [CI]",
    ...triggers.map((t) => `${t} rate`),
    "unknown",
    "EOS",
    "rep-4",
    "distinct-2",
    "mean len",
    "degeneration",
  ];
  const rows = results.map((r) => {
    const s = r.summary;
    const c = r.comparison;
    const tr = triggerRates(s, triggers);
    return [
      r.spec.setting,
      s.n,
      pctCI(s.bt_rate.value, s.bt_rate.bootstrap.lower, s.bt_rate.bootstrap.upper),
      c
        ? ptsCI(c.delta_bt_rate.difference, c.delta_bt_rate.bootstrap.lower, c.delta_bt_rate.bootstrap.upper)
        : "–",
      pctCI(s.accuracy.value, s.accuracy.bootstrap.lower, s.accuracy.bootstrap.upper),
      c
        ? ptsCI(
          c.delta_accuracy.difference,
          c.delta_accuracy.bootstrap.lower,
          c.delta_accuracy.bootstrap.upper,
        )
        : "–",
      ...triggers.map((t) => pct(tr[t]!)),
      pct(s.unknown_rate),
      pct(s.eos_rate.value),
      s.repetition_4gram.value.toFixed(3),
      s.distinct_2.value.toFixed(3),
      s.mean_length.value.toFixed(1),
      flagText(degenerationFlags(figuresOf(s), base && base !== s ? figuresOf(base) : undefined)) || "none",
    ];
  });
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map((x) => String(x).replaceAll("|", "\\|")).join(" | ")} |`),
  ].join("\n");
}
