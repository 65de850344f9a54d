/**
 * Continuation ablation as the reference intended it (docs/protocol.md §20): at each backtracking onset,
 * the prefix is the *generated* token ids up to and including the pre-onset position `predPos` (no
 * decode / re-encode), and the onset token's probability, logit and log-prob are measured clean and with
 * each component subset scaled at `predPos` only, for every scale. One next token is also sampled per
 * condition from a seeded stream shared by all conditions of an event (common random numbers), to see
 * whether the onset token, another trigger, or something else takes its place.
 *
 * @example
 * ```ts
 * const rows = await continuationAblation(model, events, {
 *   subsets, scales: [0, 0.5, 0.9], sampling: { temperature: 0.7, topP: 0.95, topK: 50 }, seed: 42,
 *   tokenText: (id) => tokenizer.decode([id]), triggers: ["Wait", "Actually", "Hold on"],
 * });
 * const table = summarizeContinuation(rows, { bootstrap: 1000, seed: 0, level: 0.95 });
 * ```
 *
 * @module
 */

import type { BacktrackEvent } from "../event_selection.ts";
import { sampleStream } from "../../../lib/generate/rng.ts";
import { sampleToken, type SamplingParams } from "../../../lib/generate/sampling.ts";
import type { AnalysisModel } from "../../../lib/interp/logit_lens.ts";
import { clusteredMeanCI } from "../../../lib/stats/stats.ts";
import { evalAtPositions, logSumExp } from "../../../lib/interp/positions.ts";
import { type ComponentSubset, subsetEdits } from "./subsets.ts";

/** Options of {@linkcode continuationAblation}. */
export interface ContinuationOptions {
  readonly subsets: readonly ComponentSubset[];
  readonly scales: readonly number[];
  /** Sampling of the one-step continuation (the generation's settings). */
  readonly sampling: SamplingParams;
  /** Seed of the per-event sampling streams. */
  readonly seed: number;
  /** Text of one token (for the table). */
  readonly tokenText: (id: number) => string;
  /** Strict triggers: a sampled token whose trimmed text is a trigger's first word counts as that trigger. */
  readonly triggers: readonly string[];
  readonly variant?: string;
  readonly onProgress?: (done: number, total: number) => void;
}

/** One event × subset × scale (the columns of `continuation_ablation_results.csv`). */
export interface ContinuationRow {
  // the reference's columns (docs/protocol.md §20)
  readonly example_id: number;
  readonly sample_id: number;
  readonly variant: string;
  readonly pred_pos: number;
  readonly onset_token_id: number;
  readonly onset_token_text: string;
  readonly subset_name: string;
  readonly scale: number;
  readonly num_components: number;
  // the measurements the reference never made
  readonly trigger: string;
  readonly clean_prob: number;
  readonly clean_logit: number;
  readonly clean_logprob: number;
  readonly onset_prob: number;
  readonly onset_logit: number;
  readonly onset_logprob: number;
  readonly delta_logprob: number;
  /** Vocabulary entries with a larger logit under the condition (0 = top-1). */
  readonly onset_rank: number;
  readonly clean_sampled_id: number;
  readonly clean_sampled_text: string;
  readonly sampled_token_id: number;
  readonly sampled_token_text: string;
  /** The trigger the sampled token starts, or "" when none. */
  readonly sampled_trigger: string;
  readonly sampled_is_onset: boolean;
}

/**
 * The trigger a token starts: its trimmed text equals a trigger's first word (case-sensitive), e.g.
 * `" Hold"` → `"Hold on"`; undefined for other tokens.
 */
export function triggerOfToken(text: string, triggers: readonly string[]): string | undefined {
  const t = text.trim();
  if (t === "") return undefined;
  return triggers.find((tr) => tr.split(/\s+/)[0] === t);
}

interface Reading {
  logit: number;
  logprob: number;
  rank: number;
  sampled: number;
}

/**
 * Measure every event under every (subset, scale) at its pre-onset position.
 *
 * @param model The hooked model.
 * @param events BT events (stored token ids; `predPos` = position predicting the onset token).
 * @param options Subsets, scales, sampling, seed, token texts, triggers.
 * @returns Rows event-major, then subset, then scale.
 * @throws {RangeError} when there are no subsets or scales, or an event's position is outside its tokens.
 */
export async function continuationAblation(
  model: AnalysisModel,
  events: readonly BacktrackEvent[],
  options: ContinuationOptions,
): Promise<ContinuationRow[]> {
  if (options.subsets.length === 0) throw new RangeError("continuationAblation: no subsets");
  if (options.scales.length === 0) throw new RangeError("continuationAblation: no scales");
  const conds = options.subsets.flatMap((subset) => options.scales.map((scale) => ({ subset, scale })));
  const results = await evalAtPositions<Reading>(
    model,
    events.map((e) => ({
      tokenIds: e.tokenIds,
      predPos: e.predPos,
      conditions: conds.map((c) => subsetEdits(c.subset, c.scale)),
    })),
    {
      read: (logits, i) => {
        const e = events[i]!;
        const z = logSumExp(logits);
        const x = logits[e.onsetTokenId]!;
        let rank = 0;
        for (let k = 0; k < logits.length; k++) if (logits[k]! > x) rank++;
        // The same stream for every condition of an event: differences come from the intervention.
        const rng = sampleStream(options.seed, "continuation", e.exampleId, e.sampleId);
        return { logit: x, logprob: x - z, rank, sampled: sampleToken(logits, options.sampling, rng) };
      },
      maxRows: 64,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    },
  );
  const text = new Map<number, string>();
  const tt = (id: number) => {
    let s = text.get(id);
    if (s === undefined) text.set(id, s = options.tokenText(id));
    return s;
  };
  const rows: ContinuationRow[] = [];
  events.forEach((e, i) => {
    const r = results[i]!;
    conds.forEach((c, k) => {
      const x = r.conditions[k]!;
      const sampledText = tt(x.sampled);
      rows.push({
        example_id: e.exampleId,
        sample_id: e.sampleId,
        variant: options.variant ?? "",
        pred_pos: e.predPos,
        onset_token_id: e.onsetTokenId,
        onset_token_text: tt(e.onsetTokenId),
        subset_name: c.subset.name,
        scale: c.scale,
        num_components: c.subset.components.length,
        trigger: e.trigger,
        clean_prob: Math.exp(r.clean.logprob),
        clean_logit: r.clean.logit,
        clean_logprob: r.clean.logprob,
        onset_prob: Math.exp(x.logprob),
        onset_logit: x.logit,
        onset_logprob: x.logprob,
        delta_logprob: x.logprob - r.clean.logprob,
        onset_rank: x.rank,
        clean_sampled_id: r.clean.sampled,
        clean_sampled_text: tt(r.clean.sampled),
        sampled_token_id: x.sampled,
        sampled_token_text: sampledText,
        sampled_trigger: triggerOfToken(sampledText, options.triggers) ?? "",
        sampled_is_onset: x.sampled === e.onsetTokenId,
      });
    });
  });
  return rows;
}

/** One (subset, scale, trigger group) of the continuation summary. */
export interface ContinuationSummaryRow {
  readonly subset_name: string;
  readonly scale: number;
  /** "all" or one onset trigger. */
  readonly trigger: string;
  readonly n_events: number;
  readonly problems: number;
  readonly clean_prob_mean: number;
  readonly onset_prob_mean: number;
  readonly onset_prob_lower: number;
  readonly onset_prob_upper: number;
  readonly delta_logprob_mean: number;
  readonly delta_logprob_lower: number;
  readonly delta_logprob_upper: number;
  /** Share of sampled next tokens that are the onset token / another trigger / no trigger. */
  readonly sampled_onset_rate: number;
  readonly sampled_other_trigger_rate: number;
  readonly sampled_no_trigger_rate: number;
  /** The same for the clean run. */
  readonly clean_sampled_onset_rate: number;
}

/**
 * Means with problem-clustered bootstrap CIs per (subset, scale) over all events and per onset trigger.
 */
export function summarizeContinuation(
  rows: readonly ContinuationRow[],
  options: { readonly bootstrap: number; readonly seed: number; readonly level: number },
  triggers: readonly string[] = [],
): ContinuationSummaryRow[] {
  const groups = new Map<string, ContinuationRow[]>();
  for (const r of rows) {
    for (const t of ["all", r.trigger]) {
      const key = JSON.stringify([r.subset_name, r.scale, t]);
      const g = groups.get(key) ?? [];
      g.push(r);
      groups.set(key, g);
    }
  }
  const boot = { samples: options.bootstrap, seed: options.seed, level: options.level };
  const out: ContinuationSummaryRow[] = [];
  for (const [key, g] of groups) {
    const [subset_name, scale, trigger] = JSON.parse(key) as [string, number, string];
    const ci = (get: (r: ContinuationRow) => number) =>
      clusteredMeanCI(g.map((r) => ({ cluster: r.example_id, value: get(r) })), boot);
    const p = ci((r) => r.onset_prob);
    const d = ci((r) => r.delta_logprob);
    const share = (f: (r: ContinuationRow) => boolean) => g.filter(f).length / g.length;
    const isTrigger = (r: ContinuationRow) =>
      r.sampled_trigger !== "" || triggerOfToken(r.sampled_token_text, triggers);
    out.push({
      subset_name,
      scale,
      trigger,
      n_events: g.length,
      problems: new Set(g.map((r) => r.example_id)).size,
      clean_prob_mean: g.reduce((a, r) => a + r.clean_prob, 0) / g.length,
      onset_prob_mean: p.estimate,
      onset_prob_lower: p.lower,
      onset_prob_upper: p.upper,
      delta_logprob_mean: d.estimate,
      delta_logprob_lower: d.lower,
      delta_logprob_upper: d.upper,
      sampled_onset_rate: share((r) => r.sampled_is_onset),
      sampled_other_trigger_rate: share((r) => !r.sampled_is_onset && Boolean(isTrigger(r))),
      sampled_no_trigger_rate: share((r) => !r.sampled_is_onset && !isTrigger(r)),
      clean_sampled_onset_rate: share((r) => r.clean_sampled_id === r.onset_token_id),
    });
  }
  const order = (
    t: string,
  ) => (t === "all" ? -1 : triggers.indexOf(t) < 0 ? triggers.length : triggers.indexOf(t));
  const subsetOrder = [...new Set(rows.map((r) => r.subset_name))];
  return out.sort((a, b) =>
    subsetOrder.indexOf(a.subset_name) - subsetOrder.indexOf(b.subset_name) || a.scale - b.scale ||
    order(a.trigger) - order(b.trigger) || a.trigger.localeCompare(b.trigger)
  );
}
