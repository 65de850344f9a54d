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
import { compareToBaseline, conditionComparisonReference, summarizeCondition } from "../metrics.ts";
import { assertWritable } from "../run.ts";
import { defaultAnalysisVariant, statsOptions } from "../settings.ts";
import {
  COMPARE_OUTPUTS,
  type CompareConditionsResult,
  type ConditionEntry,
  writeConditionComparison,
} from "../artifacts/comparisons.ts";
import { readEvents } from "../artifacts/events.ts";
import { compareConditionNames, isPhase1Condition } from "../artifacts/generations.ts";
import { type AnalysisStepOptions, lockRun, recordStep, type RunContext, say } from "../context.ts";

export { isPhase1Condition };

/**
 * Group phase-1 rows of one variant by condition, conditions in the canonical order (baseline,
 * targeted_ablation, random_ablation[_k] by k), so the tables do not depend on the order of the rows.
 */
export function byCondition(rows: readonly EventRow[], variant: string): Map<string, EventRow[]> {
  const m = new Map<string, EventRow[]>();
  for (const r of rows) {
    if (r.variant !== variant || !isPhase1Condition(r.condition)) continue;
    const g = m.get(r.condition);
    if (g) g.push(r);
    else m.set(r.condition, [r]);
  }
  return new Map([...m.entries()].sort(([a], [b]) => compareConditionNames(a, b)));
}

/**
 * Compare the conditions of one variant.
 *
 * @param ctx The config and the run (no model needed).
 * @param options Variant (default the analysis variant), force.
 * @throws {Error} when the variant has no baseline rows.
 */
export async function compareConditions(
  ctx: RunContext,
  options: AnalysisStepOptions = {},
): Promise<CompareConditionsResult> {
  await using _lock = await lockRun(ctx, "compare-conditions");
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, COMPARE_OUTPUTS, { overwrite });
  const variant = options.variant ?? defaultAnalysisVariant(ctx.config);
  const rows = await readEvents(ctx.run);
  const groups = byCondition(rows, variant);
  const base = groups.get("baseline");
  if (!base) throw new Error(`No baseline rows for variant "${variant}" in backtracking_events.csv`);
  const opts = statsOptions(ctx.config);
  const conditions: ConditionEntry[] = [...groups.entries()].map(([condition, g]) => ({
    condition,
    summary: summarizeCondition(g, opts),
    vs_baseline: condition === "baseline" ? undefined : compareToBaseline(base, g, opts),
  }));
  await writeConditionComparison(
    ctx.run,
    conditionComparisonReference(
      rows.filter((r) => isPhase1Condition(r.condition)).sort((a, b) =>
        compareConditionNames(a.condition, b.condition)
      ),
      variant,
    ),
    { variant, conditions },
    { overwrite },
  );
  await recordStep(ctx.run, "compare-conditions", {
    variant,
    conditions: conditions.map((c) => c.condition),
  });
  say(
    ctx,
    `compare-conditions: ${variant}: ${
      conditions.map((c) => `${c.condition} BT ${(c.summary.bt_rate.value * 100).toFixed(1)}%`).join(", ")
    }`,
  );
  return { variant, conditions };
}
