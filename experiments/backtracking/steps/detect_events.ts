/**
 * Step `detect-events`: every generation store of the run → `analysis/backtracking_events.csv` (the
 * reference's 17 columns, then ours), `analysis/summary_metrics.json` (the reference's semantics: all
 * rows pooled, its two accuracy definitions) and `analysis/summary_metrics_corrected.json` (one summary
 * with CIs per variant × condition, never pooled).
 *
 * @module
 */

import type { EventRow } from "../event_row.ts";
import { buildEventRows, type ProblemGold } from "../events.ts";
import { assertWritable } from "../run.ts";
import { detectionOptions } from "../settings.ts";
import { DETECT_OUTPUTS, writeEventTables } from "../artifacts/events.ts";
import { listGenerationStores, readGenerationStore } from "../artifacts/generations.ts";
import { readProblems } from "../artifacts/problems.ts";
import {
  ensureTokenizer,
  lockRun,
  type ModelContext,
  recordStep,
  say,
  type StepOptions,
} from "../context.ts";

/** Result of {@linkcode detectEvents}. */
export interface DetectEventsResult {
  readonly rows: EventRow[];
  readonly stores: number;
  readonly textMismatches: number;
  readonly missingProblems: number;
}

/**
 * Detect backtracking and score answers for every stored sample.
 *
 * @param ctx The config, the run, and the model slot (only the tokenizer is loaded).
 * @param options `force`: replace existing outputs (needed when re-run after the ablation conditions).
 * @throws {Error} when there are no generations, or outputs exist and `force` is not set.
 */
export async function detectEvents(
  ctx: ModelContext,
  options: StepOptions = {},
): Promise<DetectEventsResult> {
  await using _lock = await lockRun(ctx, "detect-events");
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, DETECT_OUTPUTS, { overwrite });
  const stores = await listGenerationStores(ctx, { phase1Only: true });
  if (stores.length === 0) {
    throw new Error(`No generations under ${ctx.run.dir}/generations; run \`bt generate\` first`);
  }
  const tokenizer = await ensureTokenizer(ctx);
  const problems = new Map<number, ProblemGold>((await readProblems(ctx.run)).map((p) => [p.id, p]));
  const cfg = ctx.config;
  const opts = detectionOptions(cfg, tokenizer);
  const rows: EventRow[] = [];
  let textMismatches = 0, missingProblems = 0;
  for (const s of stores) {
    const records = await readGenerationStore(s.path);
    const built = buildEventRows(records, problems, tokenizer, opts);
    rows.push(...built.rows);
    textMismatches += built.textMismatches;
    missingProblems += built.missingProblems;
  }
  if (rows.length === 0) throw new Error(`The generation stores under ${ctx.run.dir}/generations are empty`);
  if (textMismatches > 0) {
    say(
      ctx,
      `detect-events: ${textMismatches} record(s) store a completion text that differs from the decode ` +
        `of their token ids; the decode was used`,
    );
  }
  await writeEventTables(ctx.run, rows, cfg, { overwrite });
  await recordStep(ctx.run, "detect-events", {
    rows: rows.length,
    stores: stores.map((s) => `${s.variant}/${s.condition}`),
    text_mismatches: textMismatches,
    missing_problems: missingProblems,
  });
  say(ctx, `detect-events: ${rows.length} samples from ${stores.length} store(s)`);
  return { rows, stores: stores.length, textMismatches, missingProblems };
}
