/**
 * Step `phase2-continuation`: the continuation ablation with real measurements (docs/protocol.md §20).
 *
 * Events: the Phase-1 strict-BT events of the Phase-2 variant's baseline (`phase2.continuation_ablation`:
 * `variant`, `max_events`), a seeded sample across problems under the corrected protocol, the first in
 * file order under the reference protocol. For every event, subset and scale
 * (`phase2.continuation_ablation.scales`): P, logit and log-prob of the onset token clean and with the
 * subset scaled at the pre-onset position, and a seeded one-step sample (onset token again, another
 * trigger, or none). Prefixes are the generated token ids (no re-tokenisation).
 *
 * Writes `analysis/continuation_ablation_results.csv` (the reference's nine columns first, then the
 * measurements), `analysis/continuation_ablation_summary.csv` (per subset × scale × onset trigger, CIs),
 * `analysis/phase2_continuation.json` and `figures/continuation_onset_prob.{svg,png}`.
 *
 * @module
 */

import { toCsv } from "../events.ts";
import { selectEvents } from "../event_selection.ts";
import { continuationAblation, type ContinuationRow, summarizeContinuation } from "../phase2/continuation.ts";
import { continuationOnsetProb } from "../phase2/figures.ts";
import { describeSubset } from "../phase2/subsets.ts";
import { phase2Setup, type Phase2StepOptions } from "../phase2/setup.ts";
import { saveFigure } from "../figures.ts";
import { artifactPath } from "../run.ts";
import { eventSelectionMode, phase2Variant, samplingOptions, statsOptions } from "../settings.ts";
import { baselineEvents } from "../analysis_items.ts";
import { allExist } from "../artifacts/files.ts";
import {
  CONTINUATION_OUTPUTS,
  type ContinuationResult,
  readContinuationResult,
  writePhase2Output,
} from "../artifacts/phase2.ts";
import { ensureModel, lockRun, type ModelContext, recordStep, say } from "../context.ts";

const fmt = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a");

/**
 * Run the continuation ablation (or reuse its outputs).
 *
 * @param ctx The config, the run, and the model slot (needs detect-events and, for derived subsets, the scan).
 * @param options `force`: recompute.
 * @throws {Error} when the variant has no strict BT event.
 */
export async function phase2Continuation(
  ctx: ModelContext,
  options: Phase2StepOptions = {},
): Promise<ContinuationResult> {
  await using _lock = await lockRun(ctx, "phase2-continuation");
  if (!options.force && await allExist(ctx.run, CONTINUATION_OUTPUTS)) {
    return { ...(await readContinuationResult(ctx.run)), status: "reused" };
  }
  const cfg = ctx.config;
  const ca = cfg.phase2.continuation_ablation;
  const setup = await phase2Setup(ctx);
  const variant = phase2Variant(cfg, ca.variant);
  const { events: all } = await baselineEvents(ctx.run, variant, cfg.analysis.onset_type);
  if (all.length === 0) {
    throw new Error(`Variant "${variant}" has no strict BT event for the continuation ablation`);
  }
  const events = selectEvents(all, {
    max: ca.max_events,
    seed: cfg.run.seed,
    mode: eventSelectionMode(cfg),
  });
  const { model, tokenizer } = await ensureModel(ctx);
  const results: ContinuationRow[] = await continuationAblation(model, events, {
    subsets: setup.subsets,
    scales: ca.scales,
    sampling: samplingOptions(cfg),
    seed: cfg.run.seed,
    tokenText: (id) => tokenizer.decode([id]),
    triggers: setup.triggers,
    variant,
  });
  const summary = summarizeContinuation(results, statsOptions(cfg), setup.triggers);
  await writePhase2Output(ctx.run, CONTINUATION_OUTPUTS[0], toCsv(results));
  await writePhase2Output(ctx.run, CONTINUATION_OUTPUTS[1], toCsv(summary));
  const allRows = summary.filter((r) => r.trigger === "all");
  const clean = results.length ? results.reduce((a, r) => a + r.clean_prob, 0) / results.length : NaN;
  const perEvent = results.length / Math.max(1, events.length);
  await saveFigure(
    continuationOnsetProb(
      allRows.map((r) => ({
        subset: r.subset_name,
        scale: r.scale,
        value: r.onset_prob_mean,
        lower: Math.min(r.onset_prob_lower, r.onset_prob_mean),
        upper: Math.max(r.onset_prob_upper, r.onset_prob_mean),
      })),
      clean,
    ),
    artifactPath(ctx.run, "figures"),
  );
  const head = [
    "subset",
    "scale",
    "onset trigger",
    "events",
    "P(onset) clean",
    "P(onset) [95% CI]",
    "Δ log-prob [95% CI]",
    "sampled: onset",
    "sampled: other trigger",
    "sampled: no trigger",
  ];
  const table = [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...summary.map((r) =>
      `| ${r.subset_name} | ${r.scale} | ${r.trigger} | ${r.n_events} | ${fmt(r.clean_prob_mean)} | ${
        fmt(r.onset_prob_mean)
      } [${fmt(r.onset_prob_lower)}, ${fmt(r.onset_prob_upper)}] | ${fmt(r.delta_logprob_mean, 2)} [${
        fmt(r.delta_logprob_lower, 2)
      }, ${fmt(r.delta_logprob_upper, 2)}] | ${pct(r.sampled_onset_rate)} | ${
        pct(r.sampled_other_trigger_rate)
      } | ${pct(r.sampled_no_trigger_rate)} |`
    ),
  ].join("\n");
  const md = [
    `${events.length} strict-BT events of \`${variant}\` (of ${all.length}; ${cfg.analysis.event_selection} selection), ` +
    `${perEvent} measurements each (${setup.subsets.length} subsets × ${ca.scales.length} scales): ` +
    `${results.length} rows with real forward passes. Prefix = the generated ids up to and including the ` +
    `pre-onset position; the subset is scaled at that position only. Subsets: ${
      setup.subsets.map((s) => `\`${s.name}\` (${describeSubset(s)})`).join(", ")
    }. Mean clean P(onset) ${fmt(clean)}.`,
    "",
    table,
    "",
    "![Continuation ablation](figures/continuation_onset_prob.png)",
  ].join("\n");
  const result: ContinuationResult = {
    variant,
    n_events: events.length,
    available_events: all.length,
    summary,
    section: { title: "Phase 2: continuation ablation at the onset", markdown: md },
  };
  await writePhase2Output(ctx.run, CONTINUATION_OUTPUTS[2], result);
  await recordStep(ctx.run, "phase2-continuation", {
    variant,
    n_events: events.length,
    rows: results.length,
  });
  say(ctx, `phase2-continuation: ${events.length} events, ${results.length} measurements`);
  return { ...result, status: "ran" };
}
