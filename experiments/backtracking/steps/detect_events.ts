/**
 * Step `detect-events`: every Phase-1 generation store of the run (not the `phase2_*` settings) → `analysis/backtracking_events.csv` (the
 * reference's 17 columns, then ours), `analysis/summary_metrics.json` (the reference's semantics: all
 * rows pooled, its two accuracy definitions) and `analysis/summary_metrics_corrected.json` (one summary
 * with CIs per variant × condition, never pooled).
 *
 * @module
 */

import type { EventRow } from "../event_row.ts";
import {
  buildEventRows,
  correctedSummary,
  eventOptionsFromConfig,
  eventsToCsv,
  type ProblemGold,
  readEventsCsv,
} from "../events.ts";
import { readStore, timingsPathFor } from "../../../lib/generate/records.ts";
import { formatReferenceSummaryJson, summaryMetricsReference } from "../metrics.ts";
import { findVariant, reasoningCloseTag } from "../prompts.ts";
import { artifactPath, assertWritable, writeArtifact } from "../run.ts";
import {
  ensureTokenizer,
  listGenerationStores,
  lockRun,
  readProblems,
  recordStep,
  say,
  type StepContext,
  type StepOptions,
} from "./context.ts";

/** Files written by {@linkcode detectEvents}. */
export const DETECT_OUTPUTS = [
  "analysis/backtracking_events.csv",
  "analysis/summary_metrics.json",
  "analysis/summary_metrics_corrected.json",
] as const;

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
 * @param ctx Run context (only the tokenizer is loaded).
 * @param options `force`: replace existing outputs (needed when re-run after the ablation conditions).
 * @throws {Error} when there are no generations, or outputs exist and `force` is not set.
 */
export async function detectEvents(ctx: StepContext, options: StepOptions = {}): Promise<DetectEventsResult> {
  await using _lock = await lockRun(ctx, "detect-events");
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, DETECT_OUTPUTS, { overwrite });
  // Phase-1 stores only: Phase-2 settings have their own tables (a re-run after Phase 2 must give the
  // same events table as before it).
  const stores = await listGenerationStores(ctx, { phase1Only: true });
  if (stores.length === 0) {
    throw new Error(`No generations under ${ctx.run.dir}/generations; run \`bt generate\` first`);
  }
  const tokenizer = await ensureTokenizer(ctx);
  const problems = new Map<number, ProblemGold>((await readProblems(ctx.run)).map((p) => [p.id, p]));
  const cfg = ctx.config;
  const closeTag = (variant: string) => {
    try {
      return reasoningCloseTag(findVariant(cfg.prompting, variant));
    } catch {
      return "</think>";
    }
  };
  const opts = eventOptionsFromConfig(cfg, closeTag);
  const rows: EventRow[] = [];
  let textMismatches = 0, missingProblems = 0;
  for (const s of stores) {
    const records = await readStore(s.path, timingsPathFor(s.path));
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
  await writeArtifact(ctx.run, DETECT_OUTPUTS[0], eventsToCsv(rows), { overwrite });
  await writeArtifact(ctx.run, DETECT_OUTPUTS[1], formatReferenceSummaryJson(summaryMetricsReference(rows)), {
    overwrite,
  });
  await writeArtifact(ctx.run, DETECT_OUTPUTS[2], correctedSummary(rows, cfg), { overwrite });
  await recordStep(ctx, "detect-events", {
    rows: rows.length,
    stores: stores.map((s) => `${s.variant}/${s.condition}`),
    text_mismatches: textMismatches,
    missing_problems: missingProblems,
  });
  say(ctx, `detect-events: ${rows.length} samples from ${stores.length} store(s)`);
  return { rows, stores: stores.length, textMismatches, missingProblems };
}

/** The run's event rows (`analysis/backtracking_events.csv`). */
export async function readEvents(ctx: Pick<StepContext, "run">): Promise<EventRow[]> {
  return await readEventsCsv(artifactPath(ctx.run, DETECT_OUTPUTS[0]));
}
