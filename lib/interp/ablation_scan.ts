/**
 * Single-position component ablation scan: how scaling one component's output (attention or MLP of one
 * layer) at a position moves the next-token prediction there, at events and at matched controls.
 *
 * The scan scales one component's output (attention or MLP of one layer, before the residual add) at
 * the position that predicts the backtracking onset, and measures how the onset token's log-probability
 * (and the reference's raw logit) moves. The same conditions are run at each event's matched control
 * position (a non-backtracking trace at the same completion offset), measuring the actually sampled next
 * token there; the difference is the *specificity* of a component to the trigger.
 *
 * Efficient by construction: an ablation at `predPos` cannot change the keys and values of earlier
 * positions, so each position's prefix is prefilled once and its KV cache replicated, one row per
 * condition; a single batched one-token forward then evaluates the clean row and every (layer,
 * component) condition at once (row r carries only condition r's intervention).
 *
 * @example
 * ```ts
 * const rows = await ablationScan(model, events, controls, { components: ["attn", "mlp"], scale: 0 });
 * ```
 *
 * @module
 */

import type { Intervention } from "../engine/hooks.ts";
import { selectCacheRows } from "../engine/ort/native_cache.ts";
import { clusteredMeanCI, meanStd } from "../stats/stats.ts";
import type { AnalysisModel } from "./logit_lens.ts";
import type { ControlPosition, OnsetEvent } from "./traces.ts";

/** A component whose output can be scaled. */
export type Component = "attn" | "mlp";

/**
 * One scan condition: scale `component` of block `layer` at the prediction position; with `head`
 * (attention only), scale that head's `blocks.{layer}.attn.hook_z` instead of the whole layer's output.
 */
export interface ScanCondition {
  readonly layer: number;
  readonly component: Component;
  /** Attention only: one head, 0 ≤ head < num_heads (single-head ablation through `hook_z`). */
  readonly head?: number;
}

/** A position to scan and the token ids to read there. */
export interface ScanPosition {
  readonly tokenIds: readonly number[];
  /** Position whose next-token prediction is read and where the component is scaled (≥ 1). */
  readonly predPos: number;
  readonly targetIds: readonly number[];
}

/** Logit and log-probability of one token. */
export interface TokenScore {
  readonly logit: number;
  readonly logprob: number;
}

/** Scores of one position: clean, and per condition (same order as the conditions given). */
export interface PositionScores {
  /** `clean[m]` for `targetIds[m]`. */
  readonly clean: TokenScore[];
  /** `ablated[c][m]` for condition c and `targetIds[m]`. */
  readonly ablated: TokenScore[][];
}

/** Options of {@link scanPositions}. */
export interface ScanPositionsOptions {
  readonly conditions: readonly ScanCondition[];
  /** Scale applied to the component output (default 0 = zero-ablation). */
  readonly scale?: number;
  /** Rows per batched forward (default 64); a position needs 1 + conditions rows. */
  readonly maxRows?: number;
  /** Positions whose prefixes are prefilled together (default 4). */
  readonly prefillBatch?: number;
  /** Called after each prefill group with the number of positions done. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** The hook of a condition. */
export function conditionHook(
  c: ScanCondition,
): `blocks.${number}.hook_attn_out` | `blocks.${number}.hook_mlp_out` | `blocks.${number}.attn.hook_z` {
  if (c.head !== undefined) return `blocks.${c.layer}.attn.hook_z`;
  return c.component === "attn" ? `blocks.${c.layer}.hook_attn_out` : `blocks.${c.layer}.hook_mlp_out`;
}

function validateScale(scale: number): void {
  if (!Number.isFinite(scale)) throw new RangeError(`ablation scale must be finite, got ${scale}`);
}

/**
 * Clean and ablated scores of target tokens at each position, for every condition (the scan's engine).
 *
 * Per group of positions: one prefill of `tokenIds.slice(0, predPos)` with the cache returned; then the
 * cache rows are replicated (one clean row plus one per condition) and a single one-token forward of
 * `tokenIds[predPos]` runs every condition, chunked to `maxRows` rows.
 *
 * @throws {RangeError} on a position outside its tokens, predPos 0 (no prefix), a bad target id, layer
 *   or component.
 */
export async function scanPositions(
  model: AnalysisModel,
  positions: readonly ScanPosition[],
  options: ScanPositionsOptions,
): Promise<PositionScores[]> {
  const { numLayers: L, vocabSize: V } = model.config;
  const scale = options.scale ?? 0;
  validateScale(scale);
  const maxRows = options.maxRows ?? 64;
  const prefillBatch = options.prefillBatch ?? 4;
  if (!Number.isInteger(maxRows) || maxRows < 1) {
    throw new RangeError(`scanPositions: maxRows must be a positive integer, got ${maxRows}`);
  }
  if (!Number.isInteger(prefillBatch) || prefillBatch < 1) {
    throw new RangeError(`scanPositions: prefillBatch must be a positive integer, got ${prefillBatch}`);
  }
  const conditions = options.conditions;
  for (const c of conditions) {
    if (!Number.isInteger(c.layer) || c.layer < 0 || c.layer >= L) {
      throw new RangeError(`scan condition layer ${c.layer} is outside [0, ${L})`);
    }
    if (c.component !== "attn" && c.component !== "mlp") {
      throw new RangeError(`scan condition component "${c.component}" is not "attn" or "mlp"`);
    }
    if (c.head !== undefined) {
      const nh = model.config.numHeads;
      if (c.component !== "attn" || !Number.isInteger(c.head) || c.head < 0 || c.head >= nh) {
        throw new RangeError(
          `scan condition layer ${c.layer} ${c.component} head ${c.head}: a head needs component "attn" ` +
            `and 0 <= head < ${nh}`,
        );
      }
    }
  }
  positions.forEach((p, i) => {
    if (!Number.isInteger(p.predPos) || p.predPos < 1 || p.predPos >= p.tokenIds.length) {
      throw new RangeError(
        `scan position ${i}: predPos ${p.predPos} must lie in [1, ${p.tokenIds.length - 1}] ` +
          `(a non-empty prefix and a token at predPos)`,
      );
    }
    for (const id of p.targetIds) {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new RangeError(`scan position ${i}: target id ${id} is outside [0, ${V})`);
      }
    }
  });

  const result: PositionScores[] = new Array(positions.length);
  const groups = prefillGroups(positions, prefillBatch);
  const perPos = conditions.length + 1; // row 0 of each position is the clean one
  let done = 0;
  for (const group of groups) {
    const pre = await model.forward(
      group.map((i) => positions[i]!.tokenIds.slice(0, positions[i]!.predPos)),
      { logits: "none", returnCache: true },
    );
    const cache = pre.cache!;
    for (const i of group) {
      result[i] = {
        clean: [],
        ablated: conditions.map(() => []),
      };
    }
    const jobs = group.flatMap((_, g) => Array.from({ length: perPos }, (_, c) => ({ g, c: c - 1 })));
    for (let j0 = 0; j0 < jobs.length; j0 += maxRows) {
      const chunk = jobs.slice(j0, j0 + maxRows);
      const pos = chunk.map((j) => positions[group[j.g]!]!);
      const interventions: Intervention[] = [];
      for (const c of new Set(chunk.map((j) => j.c))) {
        if (c < 0) continue;
        const cond = conditions[c]!;
        interventions.push({
          hook: conditionHook(cond),
          op: "scale",
          value: scale,
          positions: chunk.map((j, r) => (j.c === c ? [pos[r]!.predPos] : [])),
          ...(cond.head !== undefined ? { head: cond.head } : {}),
        });
      }
      // Either kind of cache (a native one on the C API runtime is released right after use).
      const rowsCache = await selectCacheRows(cache, chunk.map((j) => j.g));
      const res = await model.forward(pos.map((p) => [p.tokenIds[p.predPos]!]), {
        cache: rowsCache,
        interventions,
      });
      rowsCache.dispose();
      chunk.forEach((j, r) => {
        const logits = res.logits[r]![0]!;
        const logZ = logSumExp(logits);
        const scores = pos[r]!.targetIds.map((id) => ({ logit: logits[id]!, logprob: logits[id]! - logZ }));
        const target = result[group[j.g]!]!;
        if (j.c < 0) target.clean.push(...scores);
        else target.ablated[j.c] = scores;
      });
    }
    done += group.length;
    options.onProgress?.(done, positions.length);
  }
  return result;
}

/**
 * The prefill groups {@link scanPositions} computes, in its order: position indices sorted by `predPos`
 * (ties by index), in chunks of `prefillBatch`. Each group's scores depend only on the group (the positions
 * of one group share a padded prefill batch, so their floats can change with its composition); scanning the
 * positions of any set of whole groups, in their original relative order and with the same `prefillBatch`,
 * forms the same groups again and gives bitwise the same scores. That is how a scan is split into shards.
 *
 * @param positions The positions (only `predPos` is read).
 * @param prefillBatch Positions per group (default 4, as {@link scanPositions}).
 * @returns Groups of indices into `positions`.
 */
export function prefillGroups(
  positions: readonly { readonly predPos: number }[],
  prefillBatch = 4,
): number[][] {
  const order = positions.map((_, i) => i).sort((a, b) =>
    positions[a]!.predPos - positions[b]!.predPos || a - b
  );
  const groups: number[][] = [];
  for (let start = 0; start < order.length; start += prefillBatch) {
    groups.push(order.slice(start, start + prefillBatch));
  }
  return groups;
}

/** log Σ exp(x), in float64. */
function logSumExp(x: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > max) max = x[i]!;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i]! - max);
  return max + Math.log(s);
}

/** One measured effect: a position (event or control) under one condition. */
export interface EffectRow {
  readonly kind: "event" | "control";
  /** Index into the events or the controls given to {@link scanEffects}. */
  readonly index: number;
  /** The event this row belongs to (itself for an event, `matchedTo` for a control). */
  readonly event: number;
  readonly example_id: number;
  readonly sample_id: number;
  readonly pred_pos: number;
  readonly layer: number;
  readonly component: Component;
  /** Event: the onset token; control: the actually sampled next token `tokenIds[predPos + 1]`. */
  readonly target_id: number;
  readonly clean_logit: number;
  readonly clean_logprob: number;
  /** Ablated − clean logit of the target (the reference's Δlogit, for events). */
  readonly delta_logit: number;
  /** Ablated − clean log-probability of the target. */
  readonly delta_logprob: number;
  /** Event: the onset again; control: its lens target (`ControlPosition.targetId`, a trigger id). */
  readonly trigger_id: number;
  readonly trigger_delta_logprob: number;
}

/** Options of {@link scanEffects} and {@link ablationScan}. */
export interface ScanOptions {
  /** Default `["attn", "mlp"]` (the reference's config order). */
  readonly components?: readonly Component[];
  /** Default every layer 0..L−1. */
  readonly layers?: readonly number[];
  /** Default 0 (zero-ablation). */
  readonly scale?: number;
  /** See {@link ScanPositionsOptions.maxRows}. */
  readonly maxRows?: number;
  /** See {@link ScanPositionsOptions.prefillBatch}. */
  readonly prefillBatch?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

/** The conditions of a scan: layer-major, components in the given order (the reference's loop order). */
export function scanConditions(
  numLayers: number,
  options: Pick<ScanOptions, "components" | "layers"> = {},
): ScanCondition[] {
  const components = options.components ?? ["attn", "mlp"];
  const layers = options.layers ?? Array.from({ length: numLayers }, (_, l) => l);
  return layers.flatMap((layer) => components.map((component) => ({ layer, component })));
}

/**
 * Per-(position, condition) effects of the scan, in long format (one row per event or control and
 * condition). Controls without a token after their position (no sampled next token) are skipped.
 *
 * @throws {RangeError} on a control whose `matchedTo` is not an index of `events`, and as
 *   {@link scanPositions}.
 */
export async function scanEffects(
  model: AnalysisModel,
  events: readonly OnsetEvent[],
  controls: readonly ControlPosition[],
  options: ScanOptions = {},
): Promise<EffectRow[]> {
  const conditions = scanConditions(model.config.numLayers, options);
  const { positions } = scanPositionList(events, controls);
  const scores = await scanPositions(model, positions, {
    conditions,
    ...(options.scale !== undefined ? { scale: options.scale } : {}),
    ...(options.maxRows !== undefined ? { maxRows: options.maxRows } : {}),
    ...(options.prefillBatch !== undefined ? { prefillBatch: options.prefillBatch } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  return effectRows(events, controls, scores, conditions);
}

/**
 * The positions {@link scanEffects} scans: the events (target: the onset token), then the controls that
 * have a token after their position (targets: that token and the control's trigger id).
 *
 * @returns The positions, and for each scanned control its index into `controls`.
 * @throws {RangeError} on a control whose `matchedTo` is not an index of `events`.
 */
export function scanPositionList(
  events: readonly OnsetEvent[],
  controls: readonly ControlPosition[],
): { positions: ScanPosition[]; usable: number[] } {
  controls.forEach((c, i) => {
    if (!Number.isInteger(c.matchedTo) || c.matchedTo < 0 || c.matchedTo >= events.length) {
      throw new RangeError(
        `control ${i}: matchedTo ${c.matchedTo} is not an index of the ${events.length} events`,
      );
    }
  });
  const usable = controls.map((_, i) => i).filter((i) =>
    controls[i]!.predPos + 1 < controls[i]!.tokenIds.length
  );
  const positions: ScanPosition[] = [
    ...events.map((e) => ({ tokenIds: e.tokenIds, predPos: e.predPos, targetIds: [e.onsetTokenId] })),
    ...usable.map((i) => {
      const c = controls[i]!;
      return {
        tokenIds: c.tokenIds,
        predPos: c.predPos,
        targetIds: [c.tokenIds[c.predPos + 1]!, c.targetId],
      };
    }),
  ];
  return { positions, usable };
}

/**
 * The effect rows of scanned positions ({@link scanEffects}' second half): one row per event or scanned
 * control and condition.
 *
 * @param scores The scores of {@link scanPositionList}'s positions, in its order.
 * @param conditions The conditions the scores were computed for.
 */
export function effectRows(
  events: readonly OnsetEvent[],
  controls: readonly ControlPosition[],
  scores: readonly PositionScores[],
  conditions: readonly ScanCondition[],
): EffectRow[] {
  const { usable } = scanPositionList(events, controls);
  if (scores.length !== events.length + usable.length) {
    throw new RangeError(
      `effectRows: ${scores.length} scores for ${events.length} events + ${usable.length} scanned controls`,
    );
  }
  const rows: EffectRow[] = [];
  const emit = (
    kind: "event" | "control",
    index: number,
    event: number,
    trace: OnsetEvent | ControlPosition,
    s: PositionScores,
    targetId: number,
    triggerId: number,
  ) => {
    const t = s.clean[0]!, g = s.clean[s.clean.length - 1]!;
    conditions.forEach((cond, c) => {
      const a = s.ablated[c]!;
      rows.push({
        kind,
        index,
        event,
        example_id: trace.exampleId,
        sample_id: trace.sampleId,
        pred_pos: trace.predPos,
        layer: cond.layer,
        component: cond.component,
        target_id: targetId,
        clean_logit: t.logit,
        clean_logprob: t.logprob,
        delta_logit: a[0]!.logit - t.logit,
        delta_logprob: a[0]!.logprob - t.logprob,
        trigger_id: triggerId,
        trigger_delta_logprob: a[a.length - 1]!.logprob - g.logprob,
      });
    });
  };
  events.forEach((e, i) => emit("event", i, i, e, scores[i]!, e.onsetTokenId, e.onsetTokenId));
  usable.forEach((i, u) => {
    const c = controls[i]!;
    emit("control", i, c.matchedTo, c, scores[events.length + u]!, c.tokenIds[c.predPos + 1]!, c.targetId);
  });
  return rows;
}

/** Aggregated effect of one (layer, component) condition. */
export interface ScanRow {
  readonly layer: number;
  readonly component: Component;
  readonly n_events: number;
  /** Mean Δlogprob of the onset token at the events, with a problem-clustered bootstrap CI. */
  readonly delta_logprob_mean: number;
  readonly delta_logprob_std: number;
  readonly delta_logprob_lower: number;
  readonly delta_logprob_upper: number;
  /** The reference's statistic: mean raw Δlogit of the onset token, and its sample std (n−1). */
  readonly delta_logit_mean: number;
  readonly delta_logit_std: number;
  readonly n_controls: number;
  /** Mean Δlogprob of the actually sampled next token at the control positions, with CI. */
  readonly control_delta_logprob_mean: number;
  readonly control_delta_logprob_lower: number;
  readonly control_delta_logprob_upper: number;
  /** Mean Δlogprob, at the control positions, of the controls' trigger ids (`ControlPosition.targetId`). */
  readonly control_trigger_delta_logprob_mean: number;
  /** Events with at least one scanned control. */
  readonly n_pairs: number;
  /** Mean over paired events of Δtrigger − Δcontrol (mean over the event's controls), with CI. */
  readonly specificity_mean: number;
  readonly specificity_lower: number;
  readonly specificity_upper: number;
  readonly level: number;
}

/** Options of {@link summarizeScan}. */
export interface SummarizeScanOptions {
  /** Bootstrap resamples (default 2000). */
  readonly bootstrap?: number;
  /** Bootstrap seed (default 0). */
  readonly seed?: number;
  /** Confidence level (default 0.95). */
  readonly level?: number;
}

/**
 * Aggregate effect rows per (layer, component), in the order the conditions first appear. CIs are
 * percentile bootstraps clustered by problem (`example_id`; for specificity, the event's problem).
 * Statistics of an empty set are NaN.
 */
export function summarizeScan(effects: readonly EffectRow[], options: SummarizeScanOptions = {}): ScanRow[] {
  const level = options.level ?? 0.95;
  const boot = { samples: options.bootstrap ?? 2000, seed: options.seed ?? 0, level };
  const groups = new Map<string, EffectRow[]>();
  for (const r of effects) {
    const key = `${r.layer}|${r.component}`;
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  const ci = (obs: { cluster: number; value: number }[]) => {
    if (obs.length === 0) return { estimate: NaN, lower: NaN, upper: NaN };
    return clusteredMeanCI(obs, boot);
  };
  const mean = (xs: number[]) => (xs.length ? meanStd(xs).mean : NaN);
  const std = (xs: number[]) => (xs.length ? meanStd(xs).std : NaN);
  return [...groups.values()].map((rows) => {
    const ev = rows.filter((r) => r.kind === "event");
    const ctl = rows.filter((r) => r.kind === "control");
    const byEvent = new Map<number, number[]>();
    for (const c of ctl) {
      const list = byEvent.get(c.event);
      if (list) list.push(c.delta_logprob);
      else byEvent.set(c.event, [c.delta_logprob]);
    }
    const spec = ev.filter((e) => byEvent.has(e.index)).map((e) => ({
      cluster: e.example_id,
      value: e.delta_logprob - mean(byEvent.get(e.index)!),
    }));
    const dl = ci(ev.map((r) => ({ cluster: r.example_id, value: r.delta_logprob })));
    const cd = ci(ctl.map((r) => ({ cluster: r.example_id, value: r.delta_logprob })));
    const sp = ci(spec);
    return {
      layer: rows[0]!.layer,
      component: rows[0]!.component,
      n_events: ev.length,
      delta_logprob_mean: dl.estimate,
      delta_logprob_std: std(ev.map((r) => r.delta_logprob)),
      delta_logprob_lower: dl.lower,
      delta_logprob_upper: dl.upper,
      delta_logit_mean: mean(ev.map((r) => r.delta_logit)),
      delta_logit_std: std(ev.map((r) => r.delta_logit)),
      n_controls: ctl.length,
      control_delta_logprob_mean: cd.estimate,
      control_delta_logprob_lower: cd.lower,
      control_delta_logprob_upper: cd.upper,
      control_trigger_delta_logprob_mean: mean(ctl.map((r) => r.trigger_delta_logprob)),
      n_pairs: spec.length,
      specificity_mean: sp.estimate,
      specificity_lower: sp.lower,
      specificity_upper: sp.upper,
      level,
    };
  });
}

/**
 * The ablation scan: {@link scanEffects} then {@link summarizeScan}.
 *
 * @param events the events (target: `onsetTokenId` at `predPos`).
 * @param controls their matched controls (target: the sampled token after `predPos`); may be empty,
 *   then the control and specificity columns are NaN.
 * @returns one row per (layer, component), layer-major.
 */
export async function ablationScan(
  model: AnalysisModel,
  events: readonly OnsetEvent[],
  controls: readonly ControlPosition[],
  options: ScanOptions & SummarizeScanOptions = {},
): Promise<ScanRow[]> {
  return summarizeScan(await scanEffects(model, events, controls, options), options);
}
