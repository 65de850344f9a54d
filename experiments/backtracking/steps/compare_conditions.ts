/**
 * Step `compare-conditions`: baseline vs the ablation conditions of one variant (docs/protocol.md §17;
 * see also §10, §14–16).
 *
 * Writes `analysis/condition_comparison.csv` (the reference's table: `variant, condition, total,
 * backtracking_count, backtracking_rate, accuracy` with accuracy = correct/total) and
 * `analysis/condition_comparison_corrected.json` / `.csv`: per condition a summary with CIs
 * (BT rate, accuracy with unknowns reported, degeneration) and, for each non-baseline condition, the
 * paired comparison with the baseline (Δ BT rate, Δ accuracy with problem-clustered bootstrap CIs,
 * McNemar p-values).
 *
 * @module
 */

import type { EventRow } from "../event_row.ts";
import { toCsv } from "../events.ts";
import {
  compareToBaseline,
  comparisonColumns,
  conditionComparisonReference,
  type ConditionSummary,
  degenerationColumns,
  type PairedComparison,
  summarizeCondition,
} from "../metrics.ts";
import { assertWritable, writeArtifact } from "../run.ts";
import { defaultAnalysisVariant, recordStep, say, type StepContext } from "./context.ts";
import { readEvents } from "./detect_events.ts";
import { type AnalysisStepOptions, statsOptions } from "./logit_lens.ts";

/** Files written by {@linkcode compareConditions}. */
export const COMPARE_OUTPUTS = [
  "analysis/condition_comparison.csv",
  "analysis/condition_comparison_corrected.json",
  "analysis/condition_comparison_corrected.csv",
] as const;

/** One condition of the corrected comparison. */
export interface ConditionEntry {
  readonly condition: string;
  readonly summary: ConditionSummary;
  /** Paired comparison with the baseline (undefined for the baseline itself). */
  readonly vs_baseline: PairedComparison | undefined;
}

/** Result of {@linkcode compareConditions}. */
export interface CompareConditionsResult {
  readonly variant: string;
  readonly conditions: ConditionEntry[];
}

/** A compact row per condition (for the CSV and quick tables). */
export function compactConditionRow(variant: string, e: ConditionEntry): Record<string, unknown> {
  const s = e.summary;
  return {
    variant,
    condition: e.condition,
    n: s.n,
    problems: s.problems,
    bt_rate: s.bt_rate.value,
    bt_rate_lower: s.bt_rate.bootstrap.lower,
    bt_rate_upper: s.bt_rate.bootstrap.upper,
    accuracy: s.accuracy.value,
    accuracy_lower: s.accuracy.bootstrap.lower,
    accuracy_upper: s.accuracy.bootstrap.upper,
    ...degenerationColumns(s),
    ...comparisonColumns(e.vs_baseline),
  };
}

/** Whether a condition belongs to the phase-1 comparison (phase-2 settings have their own tables). */
export function isPhase1Condition(condition: string): boolean {
  return condition === "baseline" || condition === "targeted_ablation" ||
    condition.startsWith("random_ablation");
}

/** Group phase-1 rows of one variant by condition, in first-appearance order. */
export function byCondition(rows: readonly EventRow[], variant: string): Map<string, EventRow[]> {
  const m = new Map<string, EventRow[]>();
  for (const r of rows) {
    if (r.variant !== variant || !isPhase1Condition(r.condition)) continue;
    const g = m.get(r.condition);
    if (g) g.push(r);
    else m.set(r.condition, [r]);
  }
  return m;
}

/**
 * Compare the conditions of one variant.
 *
 * @param ctx Run context (no model needed).
 * @param options Variant (default the analysis variant), force.
 * @throws {Error} when the variant has no baseline rows.
 */
export async function compareConditions(
  ctx: StepContext,
  options: AnalysisStepOptions = {},
): Promise<CompareConditionsResult> {
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, COMPARE_OUTPUTS, { overwrite });
  const variant = options.variant ?? defaultAnalysisVariant(ctx.config);
  const rows = await readEvents(ctx);
  const groups = byCondition(rows, variant);
  const base = groups.get("baseline");
  if (!base) throw new Error(`No baseline rows for variant "${variant}" in backtracking_events.csv`);
  const opts = statsOptions(ctx.config);
  const conditions: ConditionEntry[] = [...groups.entries()].map(([condition, g]) => ({
    condition,
    summary: summarizeCondition(g, opts),
    vs_baseline: condition === "baseline" ? undefined : compareToBaseline(base, g, opts),
  }));
  await writeArtifact(
    ctx.run,
    COMPARE_OUTPUTS[0],
    toCsv(
      conditionComparisonReference(rows.filter((r) => isPhase1Condition(r.condition)), variant),
      undefined,
      ["backtracking_rate", "accuracy"],
    ),
    { overwrite },
  );
  await writeArtifact(ctx.run, COMPARE_OUTPUTS[1], { variant, conditions }, { overwrite });
  await writeArtifact(
    ctx.run,
    COMPARE_OUTPUTS[2],
    toCsv(conditions.map((e) => compactConditionRow(variant, e))),
    {
      overwrite,
    },
  );
  await recordStep(ctx, "compare-conditions", { variant, conditions: conditions.map((c) => c.condition) });
  say(
    ctx,
    `compare-conditions: ${variant}: ${
      conditions.map((c) => `${c.condition} BT ${(c.summary.bt_rate.value * 100).toFixed(1)}%`).join(", ")
    }`,
  );
  return { variant, conditions };
}
