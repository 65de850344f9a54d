/**
 * Metrics over {@linkcode EventRow}s: degeneration of one completion, a per-condition summary with
 * confidence intervals, a paired comparison against the baseline, and the reference's
 * `summary_metrics.json` / `condition_comparison.csv` / `formatting_summary.csv` semantics for
 * reference-compatible output (docs/protocol.md §10, §17).
 *
 * Definitions used by the corrected protocol (docs/protocol.md §10, §14–16):
 *
 * - **Accuracy** = correct / n, unknown and unfinished answers counted as not correct (one definition
 *   everywhere), with the unknown and unfinished rates reported beside it; **accuracy on finished rows**
 *   = correct / rows that are not `unfinished` (docs/protocol.md §9–10).
 * - **BT rate** = samples with a strict trigger / n, and broken down by onset type (revision,
 *   verification, other; docs/protocol.md §23), with the answer trajectory of the onsets.
 * - Every proportion carries a cluster-adjusted Wilson interval (`ci`: {@linkcode clusteredWilsonCI},
 *   design effect from a bootstrap over problems, honest at 0% and 100%; docs/protocol.md §16), which
 *   tables, figures and readings show; beside it the plain Wilson interval (ignores clustering) and the
 *   percentile bootstrap over problems (`bootstrap`, which collapses to [0, 0] at a 0% rate). Means
 *   carry the percentile bootstrap.
 * - Summaries are meant for one (variant, condition) group: use {@linkcode summarizeGroups} rather than
 *   pooling conditions (the reference's mixing bug, docs/protocol.md §10).
 *
 * @module
 */

import pl from "nodejs-polars";
import { pyFloatRepr } from "./answers.ts";
import type { EventRow } from "./event_row.ts";
import type { OnsetType } from "./onset_type.ts";
import { summarizeTrajectories, type Trajectory, type TrajectorySummary } from "./trajectory.ts";
import {
  clusterBootstrap,
  clusteredMeanCI,
  type ClusteredValue,
  clusteredWilsonCI,
  mcnemarExact,
  pairedClusteredDifferenceCI,
  type ProportionInterval,
  wilsonInterval,
} from "../../lib/stats/stats.ts";

// ---------------------------------------------------------------------------------------------------
// Degeneration

/** Degeneration metrics of one completion. */
export interface Degeneration {
  /** Fraction of 4-gram occurrences that repeat an earlier 4-gram (0 with fewer than 5 tokens). */
  readonly repetition_4gram: number;
  /** Distinct bigrams / bigrams (1 with fewer than 2 tokens: nothing can repeat). */
  readonly distinct_2: number;
  /** The text has no decimal digit at all (Unicode `\p{Nd}`), e.g. degenerate text with no answer. */
  readonly digit_free: boolean;
  /** Number of tokens. */
  readonly length: number;
}

const DIGIT_RE = /\p{Nd}/u;

/**
 * Degeneration metrics of one completion: token-level 4-gram repetition and distinct-2, and whether
 * the decoded text contains no digit.
 *
 * @param tokenIds The completion's generated token ids (no prompt).
 * @param text The completion's decoded text.
 * @returns repetition_4gram, distinct_2, digit_free, length.
 * @throws {TypeError} if a token id is not an integer.
 * @example
 * ```ts
 * degeneration([1, 2, 3, 4, 1, 2, 3, 4], "a b c d a b c d");
 * // 5 four-grams, of which the last one (1,2,3,4) repeats the first: repetition_4gram = 0.2
 * ```
 */
export function degeneration(tokenIds: readonly number[], text: string): Degeneration {
  for (let i = 0; i < tokenIds.length; i++) {
    if (!Number.isInteger(tokenIds[i])) {
      throw new TypeError(`degeneration: tokenIds[${i}] is not an integer: ${tokenIds[i]}`);
    }
  }
  const n = tokenIds.length;
  const seen4 = new Set<string>();
  let grams4 = 0;
  let repeats4 = 0;
  for (let i = 0; i + 4 <= n; i++) {
    const key = `${tokenIds[i]},${tokenIds[i + 1]},${tokenIds[i + 2]},${tokenIds[i + 3]}`;
    grams4++;
    if (seen4.has(key)) repeats4++;
    else seen4.add(key);
  }
  const seen2 = new Set<string>();
  let grams2 = 0;
  for (let i = 0; i + 2 <= n; i++) {
    seen2.add(`${tokenIds[i]},${tokenIds[i + 1]}`);
    grams2++;
  }
  return {
    repetition_4gram: grams4 === 0 ? 0 : repeats4 / grams4,
    distinct_2: grams2 === 0 ? 1 : seen2.size / grams2,
    digit_free: !DIGIT_RE.test(text),
    length: n,
  };
}

// ---------------------------------------------------------------------------------------------------
// Per-condition summary

/** Options for the summaries and comparisons. */
export interface SummaryOptions {
  /** Bootstrap resamples (default 2000; must be ≥ 1). */
  readonly bootstrap?: number;
  /** Bootstrap seed (default 0). The same seed resamples the same problems for every statistic. */
  readonly seed?: number;
  /** Two-sided confidence level (default 0.95). */
  readonly level?: number;
}

/** A two-sided interval (NaN bounds when there are no observations). */
export interface CI {
  readonly lower: number;
  readonly upper: number;
}

/** A mean with a problem-clustered percentile bootstrap CI. */
export interface MeanEstimate {
  /** The mean over all observations (NaN when n = 0). */
  readonly value: number;
  /** Observations. */
  readonly n: number;
  /** Problems (clusters) the observations come from. */
  readonly clusters: number;
  /** Percentile bootstrap over problems. */
  readonly bootstrap: CI;
}

/** A cluster-adjusted Wilson interval ({@linkcode clusteredWilsonCI}); NaN bounds when n = 0. */
export interface ClusteredCI extends CI {
  /** How the design effect was chosen (`wilson`, `cluster_wilson`, `cluster_wilson_max`; "" when n = 0). */
  readonly method: ProportionInterval["method"] | "";
  /** The design effect the Wilson interval was widened by (NaN when n = 0). */
  readonly design_effect: number;
}

/**
 * A proportion k/n with three intervals: `ci` (cluster-adjusted Wilson: the one to report), `wilson`
 * (plain Wilson) and `bootstrap` (percentile bootstrap over problems).
 */
export interface RateEstimate extends MeanEstimate {
  /** Successes. */
  readonly k: number;
  /** Wilson score interval (treats samples as independent). */
  readonly wilson: CI;
  /**
   * Cluster-adjusted Wilson interval by problem ({@linkcode clusteredWilsonCI}): the interval every
   * table, figure and reading shows; stays honest at 0% and 100%.
   */
  readonly ci: ClusteredCI;
}

/** One onset type's share of a group: rate over all samples, share of the BT samples, their accuracy. */
export interface OnsetTypeRates {
  /** Samples whose (strict) onset has this type / all samples: the BT rate of this type. */
  readonly rate: RateEstimate;
  /** Samples with this type / samples with a strict trigger. */
  readonly share: RateEstimate;
  /** Accuracy (correct / n) of the samples with this type. */
  readonly accuracy: RateEstimate;
}

/** The onset types in table order. */
export const ONSET_TYPES: readonly OnsetType[] = ["revision", "verification", "other"];

/** Summary of one group of samples (normally one variant × condition). */
export interface ConditionSummary {
  /** Samples. */
  readonly n: number;
  /** Distinct problems (example_id). */
  readonly problems: number;
  /** Variants present, in first-appearance order (one, unless conditions were pooled). */
  readonly variants: readonly string[];
  /** Conditions present, in first-appearance order. */
  readonly conditions: readonly string[];
  /** Rule behind `has_backtracking_strict` (the rows' `rule`; "mixed" if they disagree). */
  readonly rule: "corrected" | "reference" | "mixed" | "none";
  /** Confidence level of every interval. */
  readonly level: number;
  /** Bootstrap resamples behind every bootstrap interval. */
  readonly bootstrap: number;
  /** Strict-trigger rate under the rows' rule. */
  readonly bt_rate: RateEstimate;
  /** Strict-trigger rate under the other rule (`bt_other_rule`). */
  readonly bt_rate_other_rule: RateEstimate;
  /** Relaxed-trigger rate. */
  readonly bt_rate_relaxed: RateEstimate;
  /** correct / n (unknown and unfinished count as not correct), primary extractor. */
  readonly accuracy: RateEstimate;
  /** Counts behind `accuracy` (they sum to n). */
  readonly correct: number;
  readonly incorrect: number;
  readonly unknown: number;
  /** Rows whose reasoning never closed (corrected scoring; always 0 with the reference extractor). */
  readonly unfinished: number;
  /** unknown / n. */
  readonly unknown_rate: number;
  /** unfinished / n, with intervals. */
  readonly unfinished_rate: RateEstimate;
  /** Accuracy on finished rows: correct / rows not `unfinished`; NaN when every row is unfinished. */
  readonly accuracy_finished: RateEstimate;
  /** Accuracy among samples that ended with EOS or a stop string (finish_reason "eos" / "stop"). */
  readonly accuracy_eos: RateEstimate;
  /** Accuracy of samples with / without a strict trigger (correlational, see docs/protocol.md §18). */
  readonly accuracy_with_bt: RateEstimate;
  readonly accuracy_without_bt: RateEstimate;
  /** Reference extractor + normaliser: correct_reference true / n. */
  readonly accuracy_reference_extractor: RateEstimate;
  /** Samples that ended with EOS. */
  readonly eos_rate: RateEstimate;
  /** Samples cut by the token budget (finish_reason "length"). */
  readonly truncation_rate: RateEstimate;
  /** Mean completion length in tokens. */
  readonly mean_length: MeanEstimate;
  /** Mean 4-gram repetition. */
  readonly repetition_4gram: MeanEstimate;
  /** Mean distinct-2. */
  readonly distinct_2: MeanEstimate;
  /** Samples whose completion has no digit. */
  readonly digit_free_rate: RateEstimate;
  /** Mean strict triggers per 1000 searched tokens. */
  readonly triggers_per_1k: MeanEstimate;
  /** BT rate, share and accuracy per onset type of the strict onset (docs/protocol.md §23). */
  readonly onset_types: Readonly<Record<OnsetType, OnsetTypeRates>>;
  /** Answer trajectory of the strict onsets: changed / fixes / breaks with intervals (docs/protocol.md §23). */
  readonly trajectory: TrajectoryCounts;
  /** Total matches per trigger, over all samples (keys sorted by count, then name). */
  readonly trigger_counts: Readonly<Record<string, number>>;
  /** Samples with at least one match of each trigger (same key order). */
  readonly trigger_samples: Readonly<Record<string, number>>;
}

interface ResolvedOptions {
  readonly bootstrap: number;
  readonly seed: number;
  readonly level: number;
}

function resolveOptions(options: SummaryOptions, where: string): ResolvedOptions {
  const bootstrap = options.bootstrap ?? 2000;
  const seed = options.seed ?? 0;
  const level = options.level ?? 0.95;
  if (!Number.isInteger(bootstrap) || bootstrap < 1) {
    throw new RangeError(`${where}: option "bootstrap" must be an integer >= 1, got ${bootstrap}`);
  }
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`${where}: option "level" must be in (0, 1), got ${level}`);
  }
  if (!Number.isFinite(seed)) throw new RangeError(`${where}: option "seed" must be finite, got ${seed}`);
  return { bootstrap, seed, level };
}

const NAN_CI: CI = { lower: NaN, upper: NaN };

function meanEstimate(obs: readonly ClusteredValue[], o: ResolvedOptions): MeanEstimate {
  if (obs.length === 0) return { value: NaN, n: 0, clusters: 0, bootstrap: NAN_CI };
  const r = clusteredMeanCI(obs, { samples: o.bootstrap, seed: o.seed, level: o.level });
  return { value: r.estimate, n: r.n, clusters: r.clusters, bootstrap: { lower: r.lower, upper: r.upper } };
}

const NAN_CLUSTERED: ClusteredCI = { lower: NaN, upper: NaN, method: "", design_effect: NaN };

function rateEstimate(
  rows: readonly EventRow[],
  pred: (r: EventRow) => boolean,
  o: ResolvedOptions,
): RateEstimate {
  const obs = rows.map((r) => ({ cluster: r.example_id, value: pred(r) }));
  const k = obs.reduce((a, x) => a + (x.value ? 1 : 0), 0);
  const w = wilsonInterval(k, rows.length, o.level);
  let ci = NAN_CLUSTERED;
  if (obs.length > 0) {
    const c = clusteredWilsonCI(obs, { samples: o.bootstrap, seed: o.seed, level: o.level });
    ci = { lower: c.lower, upper: c.upper, method: c.method, design_effect: c.design_effect };
  }
  return { ...meanEstimate(obs, o), k, wilson: { lower: w.lower, upper: w.upper }, ci };
}

/** The per-condition answer trajectory of {@linkcode ConditionSummary} (one condition of `summarizeTrajectories`). */
export type TrajectoryCounts = Omit<TrajectorySummary, "condition">;

/**
 * The trajectory of one row as `summarizeTrajectories` reads it (kind, reason, changed), rebuilt from the
 * row's `trajectory` column; `undefined` for a row without an onset.
 */
export function rowTrajectory(r: EventRow): Trajectory | undefined {
  const t = r.trajectory;
  if (t === "" || t === undefined) return undefined;
  const undetermined = t === "no_candidate" || t === "no_final_answer" || t === "unfinished" ||
    t === "no_gold";
  const changed = t === "fix" || t === "break" || t === "wrong_to_wrong";
  return {
    candidate: undefined,
    final: r.final_answer,
    changed: undetermined ? undefined : changed,
    candidate_correct: undetermined ? undefined : t === "break" || t === "kept_right",
    final_correct: undetermined ? undefined : t === "fix" || t === "kept_right",
    kind: undetermined ? "undetermined" : t,
    undetermined: undetermined ? t : undefined,
  };
}

/**
 * The answer trajectory of a group's strict-BT rows (docs/protocol.md §23): changed / fixes / breaks with
 * cluster-adjusted Wilson intervals by problem (see `summarizeTrajectories`).
 */
export function trajectoryCounts(rows: readonly EventRow[], options: SummaryOptions = {}): TrajectoryCounts {
  const o = resolveOptions(options, "trajectoryCounts");
  const obs = rows.filter((r) => r.has_backtracking_strict).flatMap((r) => {
    const t = rowTrajectory(r);
    return t ? [{ condition: "all", cluster: r.example_id, trajectory: t }] : [];
  });
  const s = summarizeTrajectories(obs, { samples: o.bootstrap, seed: o.seed, level: o.level })[0];
  if (s) {
    const { condition: _c, ...rest } = s;
    return rest;
  }
  const none = { k: 0 as const, n: 0 as const, estimate: NaN };
  return {
    onsets: 0,
    determined: 0,
    undetermined: { no_candidate: 0, no_final_answer: 0, unfinished: 0, no_gold: 0 },
    kinds: { fix: 0, break: 0, wrong_to_wrong: 0, kept_right: 0, kept_wrong: 0 },
    changed: none,
    fixes: none,
    breaks: none,
    net_fix_rate: NaN,
  };
}

function numericMean(rows: readonly EventRow[], get: (r: EventRow) => number, o: ResolvedOptions) {
  return meanEstimate(rows.map((r) => ({ cluster: r.example_id, value: get(r) })), o);
}

function uniqueInOrder(values: Iterable<string>): string[] {
  return [...new Set(values)];
}

function sortedCounts(m: Map<string, number>): Record<string, number> {
  const entries = [...m.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return Object.fromEntries(entries);
}

/**
 * Rows in the canonical (example_id, sample_id) order (numeric ids numerically, before string ids), as
 * a copy. Every bootstrap here resamples clusters in first-appearance order, so without this the CIs
 * would depend on the order rows arrive in (store order, CSV order, Map iteration order): identical
 * data must give identical numbers, however it was read.
 */
export function canonicalRows(rows: readonly EventRow[]): EventRow[] {
  const rank = (id: number | string) => (typeof id === "number" ? 0 : 1);
  return [...rows].sort((a, b) => {
    const [x, y] = [a.example_id as number | string, b.example_id as number | string];
    if (x !== y) {
      if (rank(x) !== rank(y)) return rank(x) - rank(y);
      return typeof x === "number" ? x - (y as number) : String(x) < String(y) ? -1 : 1;
    }
    return a.sample_id - b.sample_id;
  });
}

function endedByEos(r: EventRow): boolean {
  return r.finish_reason === "eos" || r.finish_reason === "stop";
}

/**
 * Summarise one group of samples (normally one variant × condition) with CIs.
 *
 * @param input The samples, in any order (the result does not depend on it: see {@linkcode canonicalRows}).
 * @param options bootstrap (resamples, default 2000), seed (default 0), level (default 0.95).
 * @returns A {@linkcode ConditionSummary}; rates of empty subsets are NaN with NaN intervals.
 * @throws {RangeError} if `rows` is empty or an option is invalid.
 * @example
 * ```ts
 * const s = summarizeCondition(rows.filter((r) => r.condition === "baseline"), { seed: 1 });
 * console.log(s.bt_rate.value, s.bt_rate.bootstrap.lower, s.bt_rate.bootstrap.upper);
 * ```
 */
export function summarizeCondition(
  input: readonly EventRow[],
  options: SummaryOptions = {},
): ConditionSummary {
  const o = resolveOptions(options, "summarizeCondition");
  if (input.length === 0) throw new RangeError("summarizeCondition: no rows to summarise");
  const rows = canonicalRows(input);
  const rules = new Set(rows.map((r) => r.rule));
  const rule = rules.size === 1 ? [...rules][0]! : rules.size === 0 ? "none" : "mixed";
  const finished = rows.filter((r) => r.answer_status !== "unfinished");
  const eos = rows.filter(endedByEos);
  const bt = rows.filter((r) => r.has_backtracking_strict);
  const nonBt = rows.filter((r) => !r.has_backtracking_strict);
  const isCorrect = (r: EventRow) => r.answer_status === "correct";
  let correct = 0;
  let incorrect = 0;
  let unknown = 0;
  let unfinished = 0;
  const triggerCounts = new Map<string, number>();
  const triggerSamples = new Map<string, number>();
  for (const r of rows) {
    if (r.answer_status === "correct") correct++;
    else if (r.answer_status === "incorrect") incorrect++;
    else if (r.answer_status === "unfinished") unfinished++;
    else unknown++;
    for (const [t, c] of Object.entries(r.trigger_counts)) {
      triggerCounts.set(t, (triggerCounts.get(t) ?? 0) + c);
      triggerSamples.set(t, (triggerSamples.get(t) ?? 0) + (c > 0 ? 1 : 0));
    }
  }
  const counts = sortedCounts(triggerCounts);
  const samples = Object.fromEntries(Object.keys(counts).map((k) => [k, triggerSamples.get(k) ?? 0]));
  return {
    n: rows.length,
    problems: new Set(rows.map((r) => r.example_id)).size,
    variants: uniqueInOrder(rows.map((r) => r.variant)),
    conditions: uniqueInOrder(rows.map((r) => r.condition)),
    rule,
    level: o.level,
    bootstrap: o.bootstrap,
    bt_rate: rateEstimate(rows, (r) => r.has_backtracking_strict, o),
    bt_rate_other_rule: rateEstimate(rows, (r) => r.bt_other_rule, o),
    bt_rate_relaxed: rateEstimate(rows, (r) => r.has_backtracking_relaxed, o),
    accuracy: rateEstimate(rows, isCorrect, o),
    correct,
    incorrect,
    unknown,
    unfinished,
    unknown_rate: unknown / rows.length,
    unfinished_rate: rateEstimate(rows, (r) => r.answer_status === "unfinished", o),
    accuracy_finished: rateEstimate(finished, isCorrect, o),
    accuracy_eos: rateEstimate(eos, isCorrect, o),
    accuracy_with_bt: rateEstimate(bt, isCorrect, o),
    accuracy_without_bt: rateEstimate(nonBt, isCorrect, o),
    accuracy_reference_extractor: rateEstimate(rows, (r) => r.correct_reference === true, o),
    eos_rate: rateEstimate(rows, (r) => r.finish_reason === "eos", o),
    truncation_rate: rateEstimate(rows, (r) => r.finish_reason === "length", o),
    mean_length: numericMean(rows, (r) => r.completion_tokens, o),
    repetition_4gram: numericMean(rows, (r) => r.repetition_4gram, o),
    distinct_2: numericMean(rows, (r) => r.distinct_2, o),
    digit_free_rate: rateEstimate(rows, (r) => r.digit_free, o),
    triggers_per_1k: numericMean(rows, (r) => r.triggers_per_1k, o),
    onset_types: Object.fromEntries(ONSET_TYPES.map((t) => {
      const typed = (r: EventRow) => r.has_backtracking_strict && r.onset_type === t;
      return [t, {
        rate: rateEstimate(rows, typed, o),
        share: rateEstimate(bt, typed, o),
        accuracy: rateEstimate(rows.filter(typed), isCorrect, o),
      }];
    })) as Record<OnsetType, OnsetTypeRates>,
    trajectory: trajectoryCounts(rows, o),
    trigger_counts: counts,
    trigger_samples: samples,
  };
}

/** One (variant, condition) group and its summary. */
export interface GroupSummary {
  readonly variant: string;
  readonly condition: string;
  readonly summary: ConditionSummary;
}

/**
 * Summarise every (variant, condition) group separately (never pooled), in first-appearance order.
 *
 * @param rows All samples of a run.
 * @param options As for {@linkcode summarizeCondition}.
 * @throws {RangeError} if `rows` is empty.
 */
export function summarizeGroups(rows: readonly EventRow[], options: SummaryOptions = {}): GroupSummary[] {
  if (rows.length === 0) throw new RangeError("summarizeGroups: no rows to summarise");
  const groups = new Map<string, EventRow[]>();
  for (const r of rows) {
    const key = JSON.stringify([r.variant, r.condition]);
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()].map((g) => ({
    variant: g[0]!.variant,
    condition: g[0]!.condition,
    summary: summarizeCondition(g, options),
  }));
}

// ---------------------------------------------------------------------------------------------------
// Paired comparison against the baseline

/** A paired difference (other − baseline) with a problem-clustered paired bootstrap CI. */
export interface PairedDifference {
  /** Rate in the baseline, on the paired samples. */
  readonly baseline: number;
  /** Rate in the other condition, on the paired samples. */
  readonly other: number;
  /** other − baseline. */
  readonly difference: number;
  /** Paired bootstrap over problems. */
  readonly bootstrap: CI;
}

/** Result of {@linkcode compareToBaseline}. */
export interface PairedComparison {
  /** Paired samples (same example_id and sample_id in both). */
  readonly pairs: number;
  /** Problems among the paired samples. */
  readonly problems: number;
  /** Baseline samples with no partner in `other`, and vice versa (left out of every statistic). */
  readonly unpaired_baseline: number;
  readonly unpaired_other: number;
  readonly level: number;
  readonly bootstrap: number;
  /** Strict BT rate: other − baseline. */
  readonly delta_bt_rate: PairedDifference;
  /** Relative change of the BT rate, (other − baseline) / baseline, with a paired bootstrap CI. */
  readonly relative_bt_change: { readonly value: number; readonly bootstrap: CI };
  /** Accuracy (correct / n): other − baseline. */
  readonly delta_accuracy: PairedDifference;
  /** McNemar exact test on per-sample BT (a = other, b = baseline). */
  readonly mcnemar_bt: {
    readonly other_only: number;
    readonly baseline_only: number;
    readonly p_value: number;
  };
  /** McNemar exact test on per-sample correctness. */
  readonly mcnemar_accuracy: {
    readonly other_only: number;
    readonly baseline_only: number;
    readonly p_value: number;
  };
}

function sampleKey(r: EventRow): string {
  return `${r.example_id}\u0000${r.sample_id}`;
}

function indexRows(rows: readonly EventRow[], side: string): Map<string, EventRow> {
  const m = new Map<string, EventRow>();
  for (const r of rows) {
    const k = sampleKey(r);
    if (m.has(k)) {
      throw new RangeError(
        `compareToBaseline: ${side} has two rows for example_id=${r.example_id}, sample_id=${r.sample_id} ` +
          `(variant "${r.variant}", condition "${r.condition}"); pass one variant × condition per side`,
      );
    }
    m.set(k, r);
  }
  return m;
}

/**
 * Compare a condition with the baseline on the same samples: pairs rows by (example_id, sample_id)
 * where both exist, then gives Δ BT rate and Δ accuracy (other − baseline) with paired percentile
 * bootstrap CIs that resample problems, the relative BT change with CI, and McNemar exact p-values.
 *
 * @param baseline Rows of the baseline condition (one variant × condition), in any order.
 * @param other Rows of the compared condition (one variant × condition), in any order.
 * @param options bootstrap (default 2000), seed (default 0), level (default 0.95).
 * @throws {RangeError} if a side has duplicate (example_id, sample_id) keys or no pair exists.
 * @example
 * ```ts
 * const c = compareToBaseline(base, targeted, { seed: 0 });
 * console.log(c.delta_bt_rate.difference, c.delta_bt_rate.bootstrap, c.mcnemar_bt.p_value);
 * ```
 */
export function compareToBaseline(
  baseline: readonly EventRow[],
  other: readonly EventRow[],
  options: SummaryOptions = {},
): PairedComparison {
  const o = resolveOptions(options, "compareToBaseline");
  const bIdx = indexRows(canonicalRows(baseline), "baseline");
  const oIdx = indexRows(other, "other");
  const pairs: [EventRow, EventRow][] = [];
  for (const [k, b] of bIdx) {
    const x = oIdx.get(k);
    if (x) pairs.push([b, x]);
  }
  if (pairs.length === 0) {
    throw new RangeError(
      `compareToBaseline: no (example_id, sample_id) pair in common between ${baseline.length} baseline ` +
        `and ${other.length} other rows`,
    );
  }
  const boot = { samples: o.bootstrap, seed: o.seed, level: o.level };
  const diff = (get: (r: EventRow) => boolean): PairedDifference => {
    const a = pairs.map(([, x]) => ({ cluster: x.example_id, value: get(x) }));
    const b = pairs.map(([y]) => ({ cluster: y.example_id, value: get(y) }));
    const r = pairedClusteredDifferenceCI(a, b, boot);
    const rate = (v: readonly ClusteredValue[]) => v.reduce((s, q) => s + (q.value ? 1 : 0), 0) / v.length;
    return {
      baseline: rate(b),
      other: rate(a),
      difference: r.estimate,
      bootstrap: { lower: r.lower, upper: r.upper },
    };
  };
  const bt = (r: EventRow) => r.has_backtracking_strict;
  const ok = (r: EventRow) => r.answer_status === "correct";
  // Relative change, bootstrapped over problems with both conditions kept together.
  const byProblem = new Map<number, [number, number, number]>(); // [n, bt_baseline, bt_other]
  for (const [b, x] of pairs) {
    const g = byProblem.get(b.example_id) ?? [0, 0, 0];
    g[0]++;
    g[1] += bt(b) ? 1 : 0;
    g[2] += bt(x) ? 1 : 0;
    byProblem.set(b.example_id, g);
  }
  const rel = clusterBootstrap([...byProblem.values()], (gs) => {
    let sb = 0;
    let so = 0;
    for (const g of gs) {
      sb += g[1];
      so += g[2];
    }
    return sb === 0 ? NaN : (so - sb) / sb;
  }, boot);
  const mc = (get: (r: EventRow) => boolean) => {
    const m = mcnemarExact(pairs.map(([, x]) => get(x)), pairs.map(([y]) => get(y)));
    return { other_only: m.a_only, baseline_only: m.b_only, p_value: m.p_value };
  };
  return {
    pairs: pairs.length,
    problems: byProblem.size,
    unpaired_baseline: baseline.length - pairs.length,
    unpaired_other: other.length - pairs.length,
    level: o.level,
    bootstrap: o.bootstrap,
    delta_bt_rate: diff(bt),
    relative_bt_change: { value: rel.estimate, bootstrap: { lower: rel.lower, upper: rel.upper } },
    delta_accuracy: diff(ok),
    mcnemar_bt: mc(bt),
    mcnemar_accuracy: mc(ok),
  };
}

// ---------------------------------------------------------------------------------------------------
// Reference-compatible summaries (docs/protocol.md §10, §17)

/** One entry of the reference's `by_variant` / `by_condition` (accuracy = correct / total). */
export interface ReferenceGroupStats {
  total: number;
  backtracking_strict: number;
  backtracking_rate: number;
  correct: number;
  accuracy: number;
}

/** The reference's `summary_metrics.json` object (docs/protocol.md §10), keys in the reference's order. */
export interface ReferenceSummaryMetrics {
  total_samples: number;
  backtracking_strict_count: number;
  backtracking_strict_rate: number;
  backtracking_relaxed_count: number;
  backtracking_relaxed_rate: number;
  correct_count: number;
  incorrect_count: number;
  unknown_count: number;
  /** correct / (correct + incorrect): unknowns excluded; null when that is 0. */
  accuracy: number | null;
  /** correct among strict-BT rows / strict-BT rows (unknowns in the denominator); null if none. */
  accuracy_with_backtracking: number | null;
  accuracy_without_backtracking: number | null;
  by_variant: Record<string, ReferenceGroupStats>;
  by_condition: Record<string, ReferenceGroupStats>;
}

/** Which correctness column the reference-compatible summaries read. */
export interface ReferenceSummaryOptions {
  /**
   * `"is_correct"` (default): the rows' primary verdict (the reference extractor in a
   * reference-compatible run); `"correct_reference"`: the reference extractor's verdict stored beside
   * a corrected run's own.
   */
  readonly correctness?: "is_correct" | "correct_reference";
}

function correctness(options: ReferenceSummaryOptions): (r: EventRow) => boolean | undefined {
  const c = options.correctness ?? "is_correct";
  if (c === "is_correct") return (r) => r.is_correct;
  if (c === "correct_reference") return (r) => r.correct_reference;
  throw new RangeError(`option "correctness" must be "is_correct" or "correct_reference", got ${String(c)}`);
}

/** One row per event with what the reference-compatible summaries count (`correct`: null when unknown). */
function referenceFrame(rows: readonly EventRow[], ok: (r: EventRow) => boolean | undefined): pl.DataFrame {
  return pl.DataFrame([
    pl.Series("variant", rows.map((r) => r.variant), pl.Utf8),
    pl.Series("condition", rows.map((r) => r.condition), pl.Utf8),
    pl.Series("strict", rows.map((r) => r.has_backtracking_strict), pl.Bool),
    pl.Series("relaxed", rows.map((r) => r.has_backtracking_relaxed), pl.Bool),
    pl.Series("correct", rows.map((r) => ok(r) ?? null), pl.Bool),
  ]);
}

/**
 * The reference's counts as polars aggregations (a `select` over all rows, or `agg` per group): boolean
 * sums skip nulls, so an unknown answer is neither correct nor incorrect, and `true AND null` is not counted.
 */
function referenceCounts(): pl.Expr[] {
  const strict = pl.col("strict"), correct = pl.col("correct");
  return [
    pl.len().alias("total"),
    strict.sum().alias("strict"),
    pl.col("relaxed").sum().alias("relaxed"),
    correct.sum().alias("correct"),
    correct.not().sum().alias("incorrect"),
    correct.isNull().sum().alias("unknown"),
    strict.and(correct).sum().alias("bt_correct"),
    strict.not().and(correct).sum().alias("non_bt_correct"),
  ];
}

/** The counts of {@linkcode referenceCounts} per value of `key`, in first-appearance order. */
function groupStats(frame: pl.DataFrame, key: "variant" | "condition"): Record<string, ReferenceGroupStats> {
  const groups = frame.lazy().groupBy(key, { maintainOrder: true }).agg(...referenceCounts()).collectSync();
  const out: Record<string, ReferenceGroupStats> = {};
  for (const g of groups.toRecords()) {
    const total = Number(g.total), strict = Number(g.strict), correct = Number(g.correct);
    out[String(g[key])] = {
      total,
      backtracking_strict: strict,
      backtracking_rate: strict / total,
      correct,
      accuracy: correct / total,
    };
  }
  return out;
}

/**
 * The reference's `compute_summary_metrics` (docs/protocol.md §10), bug for bug: the top-level accuracy
 * excludes unknowns, `by_variant` / `by_condition` accuracy counts them as wrong, and everything passed in is
 * pooled (pass all rows to reproduce `summary_metrics.json`). Group keys are in first-appearance order (the
 * reference uses set order, which is not deterministic).
 *
 * @param rows Events, e.g. all 6000 rows of a Phase 1 run.
 * @param options Which correctness column to read (default `is_correct`).
 * @throws {RangeError} if `rows` is empty (the reference returns `{"error": "no events"}`).
 */
export function summaryMetricsReference(
  rows: readonly EventRow[],
  options: ReferenceSummaryOptions = {},
): ReferenceSummaryMetrics {
  if (rows.length === 0) throw new RangeError("summaryMetricsReference: no events");
  const frame = referenceFrame(rows, correctness(options));
  const c = frame.select(...referenceCounts()).toRecords()[0]!;
  const [total, strict, relaxed] = [Number(c.total), Number(c.strict), Number(c.relaxed)];
  const [correct, incorrect, unknown] = [Number(c.correct), Number(c.incorrect), Number(c.unknown)];
  const [bt, btCorrect, nonBtCorrect] = [strict, Number(c.bt_correct), Number(c.non_bt_correct)];
  const nonBt = total - bt;
  return {
    total_samples: total,
    backtracking_strict_count: strict,
    backtracking_strict_rate: strict / total,
    backtracking_relaxed_count: relaxed,
    backtracking_relaxed_rate: relaxed / total,
    correct_count: correct,
    incorrect_count: incorrect,
    unknown_count: unknown,
    accuracy: correct + incorrect > 0 ? correct / (correct + incorrect) : null,
    accuracy_with_backtracking: bt > 0 ? btCorrect / bt : null,
    accuracy_without_backtracking: nonBt > 0 ? nonBtCorrect / nonBt : null,
    by_variant: groupStats(frame, "variant"),
    by_condition: groupStats(frame, "condition"),
  };
}

/** Keys of {@linkcode ReferenceSummaryMetrics} that Python writes as floats. */
const REFERENCE_FLOAT_KEYS = new Set([
  "backtracking_strict_rate",
  "backtracking_relaxed_rate",
  "accuracy",
  "accuracy_with_backtracking",
  "accuracy_without_backtracking",
  "backtracking_rate",
]);

/**
 * Serialise a {@linkcode ReferenceSummaryMetrics} as the reference writes `summary_metrics.json`
 * (Python `json.dump(indent=2)`: floats always with a decimal point, `null` for None, no trailing
 * newline), so the file can be compared byte for byte.
 */
export function formatReferenceSummaryJson(summary: ReferenceSummaryMetrics): string {
  const write = (v: unknown, key: string, indent: string): string => {
    if (v === null) return "null";
    if (typeof v === "number") return REFERENCE_FLOAT_KEYS.has(key) ? pyFloatRepr(v) : String(v);
    if (typeof v === "string") return JSON.stringify(v);
    if (typeof v === "object") {
      const entries = Object.entries(v as Record<string, unknown>);
      if (entries.length === 0) return "{}";
      const inner = indent + "  ";
      const body = entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${write(x, k, inner)}`).join(",\n");
      return `{\n${body}\n${indent}}`;
    }
    throw new TypeError(`formatReferenceSummaryJson: cannot write ${typeof v} at "${key}"`);
  };
  return write(summary, "", "");
}

/** One row of the reference's `condition_comparison.csv` (docs/protocol.md §17). */
export interface ConditionComparisonRow {
  variant: string;
  condition: string;
  total: number;
  backtracking_count: number;
  backtracking_rate: number;
  /** correct / total (unknowns counted as wrong), as the reference computes it here. */
  accuracy: number;
}

/**
 * The reference's `compare-conditions --variant V` table (docs/protocol.md §17): docs/protocol.md §10 over
 * all rows of the variant, then `by_condition`. Row order is first appearance (the reference's is set order).
 *
 * @throws {RangeError} if no row has that variant.
 */
export function conditionComparisonReference(
  rows: readonly EventRow[],
  variant: string,
  options: ReferenceSummaryOptions = {},
): ConditionComparisonRow[] {
  const vRows = rows.filter((r) => r.variant === variant);
  if (vRows.length === 0) {
    const have = uniqueInOrder(rows.map((r) => r.variant));
    throw new RangeError(
      `conditionComparisonReference: no rows for variant "${variant}" (have: ${have.join(", ")})`,
    );
  }
  const s = summaryMetricsReference(vRows, options);
  return Object.entries(s.by_condition).map(([condition, g]) => ({
    variant,
    condition,
    total: g.total,
    backtracking_count: g.backtracking_strict,
    backtracking_rate: g.backtracking_rate,
    accuracy: g.accuracy,
  }));
}

/** One row of the reference's `formatting_summary.csv` (docs/protocol.md §17). */
export interface FormattingSummaryRow {
  variant: string;
  total: number;
  backtracking_count: number;
  backtracking_rate: number;
  /** correct / (correct + incorrect): unknowns excluded, as the reference computes it here. */
  accuracy: number | null;
}

/**
 * The reference's `formatting-sweep` table (docs/protocol.md §17): for each variant, baseline condition only,
 * docs/protocol.md §10's top-level numbers. Variants default to first-appearance order; variants with no
 * baseline rows are skipped, as in the reference.
 */
export function formattingSummaryReference(
  rows: readonly EventRow[],
  options: ReferenceSummaryOptions & { readonly variants?: readonly string[]; readonly condition?: string } =
    {},
): FormattingSummaryRow[] {
  const condition = options.condition ?? "baseline";
  const variants = options.variants ?? uniqueInOrder(rows.map((r) => r.variant));
  const out: FormattingSummaryRow[] = [];
  for (const v of variants) {
    const vRows = rows.filter((r) => r.variant === v && r.condition === condition);
    if (vRows.length === 0) continue;
    const s = summaryMetricsReference(vRows, options);
    out.push({
      variant: v,
      total: s.total_samples,
      backtracking_count: s.backtracking_strict_count,
      backtracking_rate: s.backtracking_strict_rate,
      accuracy: s.accuracy,
    });
  }
  return out;
}

/**
 * A summary's unknown rate and degeneration figures as flat table columns (one shared column set for
 * every condition table).
 */
export function degenerationColumns(s: ConditionSummary) {
  return {
    unknown_rate: s.unknown_rate,
    unfinished_rate: s.unfinished_rate.value,
    eos_rate: s.eos_rate.value,
    truncation_rate: s.truncation_rate.value,
    mean_length: s.mean_length.value,
    repetition_4gram: s.repetition_4gram.value,
    distinct_2: s.distinct_2.value,
    digit_free_rate: s.digit_free_rate.value,
    triggers_per_1k: s.triggers_per_1k.value,
  };
}

/** A shown interval: the cluster-adjusted Wilson `ci`, or the bootstrap for summaries written before it. */
export function rateCI(e: RateEstimate): CI {
  return e.ci ?? e.bootstrap;
}

/**
 * A summary's accuracy (on all rows and on finished rows), unfinished rate, onset-type breakdown and
 * answer trajectory as flat table columns, every proportion with its cluster-adjusted Wilson interval
 * (`_lower` / `_upper`; docs/protocol.md §16, §23). One shared column set for every condition table. A
 * rate over nothing (no onset of a type, no changed answer) is `undefined` (an empty CSV cell), never NaN.
 */
export function outcomeColumns(s: ConditionSummary): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  const put = (name: string, e: RateEstimate | undefined) => {
    out[name] = e?.value;
    out[`${name}_lower`] = e ? rateCI(e).lower : undefined;
    out[`${name}_upper`] = e ? rateCI(e).upper : undefined;
  };
  put("accuracy_finished", s.accuracy_finished);
  put("unfinished_rate", s.unfinished_rate);
  for (const t of ONSET_TYPES) {
    put(`bt_${t}_rate`, s.onset_types?.[t]?.rate);
    out[`bt_${t}_share`] = s.onset_types?.[t]?.share.value;
    out[`accuracy_bt_${t}`] = s.onset_types?.[t]?.accuracy.value;
  }
  const tr = s.trajectory;
  out.onsets_determined = tr?.determined;
  const share = (name: string, x: TrajectoryCounts["changed"] | undefined) => {
    out[name] = x?.estimate;
    out[`${name}_lower`] = x && "lower" in x ? x.lower : undefined;
    out[`${name}_upper`] = x && "upper" in x ? x.upper : undefined;
  };
  share("answer_changed", tr?.changed);
  out.fixes = tr?.kinds.fix;
  out.breaks = tr?.kinds.break;
  share("fix_share", tr?.fixes);
  share("break_share", tr?.breaks);
  // A rate over nothing (no revision onsets, no changed answer) is an empty cell, not "nan".
  for (const [k, v] of Object.entries(out)) if (v !== undefined && Number.isNaN(v)) out[k] = undefined;
  return out;
}

/** A paired comparison with the baseline as flat table columns (undefined when there is none). */
export function comparisonColumns(c: PairedComparison | undefined) {
  return {
    delta_bt_rate: c?.delta_bt_rate.difference,
    delta_bt_rate_lower: c?.delta_bt_rate.bootstrap.lower,
    delta_bt_rate_upper: c?.delta_bt_rate.bootstrap.upper,
    mcnemar_bt_p: c?.mcnemar_bt.p_value,
    delta_accuracy: c?.delta_accuracy.difference,
    delta_accuracy_lower: c?.delta_accuracy.bootstrap.lower,
    delta_accuracy_upper: c?.delta_accuracy.bootstrap.upper,
    mcnemar_accuracy_p: c?.mcnemar_accuracy.p_value,
  };
}
