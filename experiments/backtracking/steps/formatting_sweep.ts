/**
 * Step `formatting-sweep`: the prompt variants compared on their baseline samples (docs/protocol.md §17,
 * corrected).
 *
 * Writes `analysis/formatting_summary.csv` (the reference's table: `variant, total, backtracking_count,
 * backtracking_rate, accuracy` with accuracy = correct/(correct+incorrect)) and
 * `analysis/formatting_summary_corrected.json` / `.csv`: per variant a summary with CIs and the paired
 * comparison with the first variant (samples share random streams across variants, so pairs are
 * meaningful).
 *
 * @module
 */

import { toCsv } from "../events.ts";
import { compareToBaseline, formattingSummaryReference, summarizeCondition } from "../metrics.ts";
import { assertWritable, writeArtifact } from "../run.ts";
import {
  compactConditionRow,
  type CompareConditionsResult,
  type ConditionEntry,
} from "./compare_conditions.ts";
import { recordStep, say, type StepContext, type StepOptions } from "./context.ts";
import { readEvents } from "./detect_events.ts";
import { statsOptions } from "./logit_lens.ts";

/** Files written by {@linkcode formattingSweep}. */
export const FORMATTING_OUTPUTS = [
  "analysis/formatting_summary.csv",
  "analysis/formatting_summary_corrected.json",
  "analysis/formatting_summary_corrected.csv",
] as const;

/** One variant of the corrected sweep (`condition` holds the variant name; comparisons are vs the first). */
export type VariantEntry = ConditionEntry;

/**
 * Summarise the baseline samples of every variant.
 *
 * @param ctx Run context (no model needed).
 * @param options force.
 * @throws {Error} when no variant has baseline rows.
 */
export async function formattingSweep(
  ctx: StepContext,
  options: StepOptions = {},
): Promise<{ variants: VariantEntry[]; reference: ReturnType<typeof formattingSummaryReference> }> {
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, FORMATTING_OUTPUTS, { overwrite });
  const rows = (await readEvents(ctx)).filter((r) => r.condition === "baseline");
  const names = ctx.config.prompting.formatting_variants.map((v) => v.name).filter((v) =>
    rows.some((r) => r.variant === v)
  );
  if (names.length === 0) throw new Error("No baseline rows for any configured variant; run generate first");
  const opts = statsOptions(ctx.config);
  const first = rows.filter((r) => r.variant === names[0]);
  const variants: VariantEntry[] = names.map((v, i) => {
    const g = rows.filter((r) => r.variant === v);
    return {
      condition: v,
      summary: summarizeCondition(g, opts),
      vs_baseline: i === 0 ? undefined : compareToBaseline(first, g, opts),
    };
  });
  const reference = formattingSummaryReference(rows, { variants: names });
  await writeArtifact(
    ctx.run,
    FORMATTING_OUTPUTS[0],
    toCsv(reference, undefined, ["backtracking_rate", "accuracy"]),
    { overwrite },
  );
  const result: CompareConditionsResult = { variant: "baseline", conditions: variants };
  await writeArtifact(
    ctx.run,
    FORMATTING_OUTPUTS[1],
    { compared_to: names[0], variants: result.conditions },
    {
      overwrite,
    },
  );
  await writeArtifact(
    ctx.run,
    FORMATTING_OUTPUTS[2],
    toCsv(variants.map((e) => {
      const { variant: _v, condition, ...rest } = compactConditionRow("", e);
      return { variant: condition, ...rest };
    })),
    { overwrite },
  );
  await recordStep(ctx, "formatting-sweep", { variants: names });
  say(
    ctx,
    `formatting-sweep: ${
      variants.map((v) => `${v.condition} BT ${(v.summary.bt_rate.value * 100).toFixed(1)}%`).join(", ")
    }`,
  );
  return { variants, reference };
}
