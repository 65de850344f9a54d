/**
 * Step `head-scan`: which attention heads write the trigger at the pre-onset position, whether ablating
 * one confirms it, and what the top heads read (docs/protocol.md §13 extended to heads; see
 * `../head_scan.ts`). On the events and matched controls of the layer scan (`analysis_items.ts`):
 *
 * 1. direct logit attribution of every head and MLP (one forward pass per batch of positions), ranked by
 *    DLA specificity (event − matched controls) with problem-clustered CIs;
 * 2. single-head zero-ablation (`blocks.{l}.attn.hook_z`, that head only) of the top heads, summarised as
 *    the layer scan (Δ log-prob, control Δ, specificity, CIs);
 * 3. the top heads' attention at the pre-onset position by token class (numbers, operators, `=`, the
 *    question, the previous sentence), events vs controls;
 *
 * each for all events, per trigger word and, when the events table has an `onset_type` column, per onset
 * type. Writes the "heads" artifact family (`artifacts/heads.ts`).
 *
 * @module
 */

import { parseCsv } from "../../../lib/tables/table.ts";
import { createProgress } from "../../../lib/util/progress.ts";
import { type AnalysisItems, analysisItems } from "../analysis_items.ts";
import { EVENT_FILES } from "../artifacts/events.ts";
import { readArtifactText } from "../artifacts/files.ts";
import { HEAD_OUTPUTS, type HeadScanSummary, writeHeadTables } from "../artifacts/heads.ts";
import {
  type AnalysisStepOptions,
  ensureModel,
  lockRun,
  type ModelContext,
  recordStep,
  say,
} from "../context.ts";
import { headScan as runHeadScan, type HeadScanResult } from "../head_scan.ts";
import { dlaComponentName } from "../head_report.ts";
import { assertWritable, type Run } from "../run.ts";
import { ablationScale, statsOptions } from "../settings.ts";

/** Options of {@linkcode headScan}. */
export interface HeadScanStepOptions extends AnalysisStepOptions {
  /** Heads to ablate and whose patterns to summarise (default 4). */
  readonly topHeads?: number;
}

/** Result of {@linkcode headScan}. */
export interface HeadScanStepResult {
  readonly items: AnalysisItems;
  readonly result: HeadScanResult;
  readonly summary: HeadScanSummary;
}

/**
 * The `onset_type` of each event from the events table, when it has that column (another analysis adds
 * it); undefined otherwise.
 */
async function onsetTypes(
  run: Run,
  variant: string,
  events: AnalysisItems["events"],
): Promise<(string | null)[] | undefined> {
  const { columns, records } = parseCsv(await readArtifactText(run, EVENT_FILES.events, "detect-events"));
  if (!columns.includes("onset_type")) return undefined;
  const byKey = new Map(
    records.filter((r) => r.variant === variant && r.condition === "baseline")
      .map((r) => [`${r.example_id}|${r.sample_id}`, r.onset_type || null]),
  );
  return events.map((e) => byKey.get(`${e.exampleId}|${e.sampleId}`) ?? null);
}

/**
 * Run the head scan.
 *
 * @param ctx The config, the run, and the model slot (loads the model).
 * @param options Variant, force, number of top heads.
 */
export async function headScan(
  ctx: ModelContext,
  options: HeadScanStepOptions = {},
): Promise<HeadScanStepResult> {
  await using _lock = await lockRun(ctx, "head-scan");
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, HEAD_OUTPUTS, { overwrite });
  const items = await analysisItems(ctx, options.variant);
  const loaded = await ensureModel(ctx);
  const types = await onsetTypes(ctx.run, items.variant, items.events);
  const stats = statsOptions(ctx.config);
  const topHeads = options.topHeads ?? 4;
  const scale = ablationScale(ctx.config);
  const text = new Map<number, string>();
  const tokenText = (id: number) => {
    let t = text.get(id);
    if (t === undefined) text.set(id, t = loaded.tokenizer.decodeEach([id])[0]!);
    return t;
  };
  let progress: ReturnType<typeof createProgress> | undefined;
  let stage = "";
  const result = await runHeadScan(loaded.model, items.events, items.controls, {
    topHeads,
    scale,
    bootstrap: stats.bootstrap,
    seed: stats.seed,
    level: stats.level,
    tokenText,
    ...(types ? { onsetTypes: types } : {}),
    onProgress: (s, done, total) => {
      if (s !== stage) {
        void progress?.done();
        stage = s;
        progress = createProgress({
          total,
          label: `head-scan ${s}`,
          unit: "positions",
          stream: ctx.progress ?? "auto",
        });
      }
      progress!.tick(done - progress!.completed);
    },
  });
  await progress?.done();
  const summary: HeadScanSummary = {
    variant: items.variant,
    n_events: result.n_events,
    n_controls: result.n_controls,
    groups: result.groups,
    onset_types: types !== undefined,
    top_heads: result.topHeads,
    cost: result.cost,
    settings: { top_heads: topHeads, scale, bootstrap: stats.bootstrap },
  };
  await writeHeadTables(ctx.run, { result, summary }, { overwrite });
  await recordStep(ctx.run, "head-scan", {
    variant: items.variant,
    n_events: result.n_events,
    n_controls: result.n_controls,
    top_heads: result.topHeads.map((h) => `L${h.layer}H${h.head}`),
    forward_calls: {
      dla: result.cost.dla.forward_calls,
      ablation: result.cost.ablation.forward_calls,
      patterns: result.cost.patterns.forward_calls,
    },
    seconds: {
      dla: result.cost.dla.seconds,
      ablation: result.cost.ablation.seconds,
      patterns: result.cost.patterns.seconds,
    },
  });
  const top = result.dla.filter((r) => r.group === "all").slice(0, 3).map(dlaComponentName);
  say(
    ctx,
    `head-scan: DLA top [${top.join(", ")}] in ${result.cost.dla.forward_calls} forward pass(es); ` +
      `ablated heads [${result.topHeads.map((h) => `L${h.layer}H${h.head}`).join(", ")}]`,
  );
  return { items, result, summary };
}
