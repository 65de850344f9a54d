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

import { compareToBaseline, formattingSummaryReference, summarizeCondition } from "../metrics.ts";
import { assertWritable } from "../run.ts";
import { statsOptions } from "../settings.ts";
import { readEvents } from "../artifacts/events.ts";
import { FORMATTING_OUTPUTS, type VariantEntry, writeFormattingSummary } from "../artifacts/formatting.ts";
import { lockRun, recordStep, type RunContext, say, type StepOptions } from "../context.ts";

/**
 * Summarise the baseline samples of every variant.
 *
 * @param ctx The config and the run (no model needed).
 * @param options force.
 * @throws {Error} when no variant has baseline rows.
 */
export async function formattingSweep(
  ctx: RunContext,
  options: StepOptions = {},
): Promise<{ variants: VariantEntry[]; reference: ReturnType<typeof formattingSummaryReference> }> {
  await using _lock = await lockRun(ctx, "formatting-sweep");
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, FORMATTING_OUTPUTS, { overwrite });
  const rows = (await readEvents(ctx.run)).filter((r) => r.condition === "baseline");
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
  await writeFormattingSummary(ctx.run, reference, { compared_to: names[0]!, variants }, { overwrite });
  await recordStep(ctx.run, "formatting-sweep", { variants: names });
  say(
    ctx,
    `formatting-sweep: ${
      variants.map((v) => `${v.condition} BT ${(v.summary.bt_rate.value * 100).toFixed(1)}%`).join(", ")
    }`,
  );
  return { variants, reference };
}
