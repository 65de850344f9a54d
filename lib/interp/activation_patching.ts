/**
 * Activation patching of attention / MLP outputs at the pre-onset position, per layer and component.
 *
 * For every BT event and its position-matched control (a non-backtracking trace at the same completion
 * offset), each component output is captured at the matched position. Two directions:
 *
 * - `bt_from_control`: the recipient is the BT prefix; at its `predPos` the component's output is
 *   replaced (scale 0 + add) by the control's output. A component that carries the trigger lowers the
 *   onset token's log-prob.
 * - `control_from_bt`: the recipient is the control prefix; the BT event's output is written in. A
 *   component that carries the trigger raises the log-prob of the event's onset token there.
 *
 * The effect is Δ log-prob of the event's onset token (patched − clean recipient), summarised per
 * (direction, component, layer) and per onset trigger with problem-clustered bootstrap CIs.
 *
 * @example
 * ```ts
 * const rows = await activationPatching(model, events, controls);
 * const table = summarizePatching(rows, { bootstrap: 1000, seed: 0, level: 0.95 });
 * const top = localise(table, "bt_from_control");
 * ```
 *
 * @module
 */

import type { ControlPosition, OnsetEvent } from "./traces.ts";
import type { AnalysisModel } from "./logit_lens.ts";
import { clusteredMeanCI } from "../stats/stats.ts";
import { captureAt, type CapturedAt, evalAtPositions, logSumExp, type RowEdit } from "./positions.ts";

/** An onset event with the label its rows are grouped by in the summary (e.g. the onset word). */
export interface LabelledEvent extends OnsetEvent {
  readonly trigger: string;
}

/** Patching direction (recipient ← donor). */
export type PatchDirection = "bt_from_control" | "control_from_bt";

/** One item × direction × component × layer. */
export interface PatchRow {
  readonly direction: PatchDirection;
  /** Index of the event in the events given. */
  readonly event: number;
  readonly example_id: number;
  readonly sample_id: number;
  readonly trigger: string;
  readonly onset_token_id: number;
  readonly component: "attn" | "mlp";
  readonly layer: number;
  readonly clean_logprob: number;
  readonly patched_logprob: number;
  readonly delta_logprob: number;
}

/** Options of {@linkcode activationPatching}. */
export interface PatchingOptions {
  /** Layers to patch (default all). */
  readonly layers?: readonly number[];
  /** Components (default both). */
  readonly components?: readonly ("attn" | "mlp")[];
  /** Directions (default both). */
  readonly directions?: readonly PatchDirection[];
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * Patch every (layer, component) in both directions for each event with a matched control.
 *
 * @param model The hooked model.
 * @param events BT events.
 * @param controls Matched controls (`matchedTo` indexes `events`); events without one are skipped.
 * @returns Rows in (direction, event, component, layer) order.
 */
export async function activationPatching(
  model: AnalysisModel,
  events: readonly LabelledEvent[],
  controls: readonly ControlPosition[],
  options: PatchingOptions = {},
): Promise<PatchRow[]> {
  const L = model.config.numLayers;
  const layers = options.layers ?? Array.from({ length: L }, (_, l) => l);
  const components = options.components ?? ["attn", "mlp"];
  const directions = options.directions ?? ["bt_from_control", "control_from_bt"];
  const pairs = controls.filter((c) => events[c.matchedTo] !== undefined).map((c) => ({
    e: c.matchedTo,
    event: events[c.matchedTo]!,
    control: c,
  }));
  const caps = await captureAt(model, [
    ...pairs.map((p) => ({ tokenIds: p.event.tokenIds, pos: p.event.predPos })),
    ...pairs.map((p) => ({ tokenIds: p.control.tokenIds, pos: p.control.predPos })),
  ]);
  const eventCap = (i: number) => caps[i]!;
  const controlCap = (i: number) => caps[pairs.length + i]!;
  const sites = components.flatMap((component) => layers.map((layer) => ({ component, layer })));
  const edits = (donor: CapturedAt): RowEdit[][] =>
    sites.map(({ component, layer }) => {
      const hook = component === "attn"
        ? `blocks.${layer}.hook_attn_out` as const
        : `blocks.${layer}.hook_mlp_out` as const;
      const vector = component === "attn" ? donor.attnOut[layer]! : donor.mlpOut[layer]!;
      return [{ hook, op: "scale", value: 0 }, { hook, op: "add", vector }];
    });
  const rows: PatchRow[] = [];
  for (const direction of directions) {
    const cases = pairs.map((p, i) =>
      direction === "bt_from_control"
        ? { tokenIds: p.event.tokenIds, predPos: p.event.predPos, conditions: edits(controlCap(i)) }
        : { tokenIds: p.control.tokenIds, predPos: p.control.predPos, conditions: edits(eventCap(i)) }
    );
    const res = await evalAtPositions(model, cases, {
      read: (logits, i) => logits[pairs[i]!.event.onsetTokenId]! - logSumExp(logits),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    pairs.forEach((p, i) => {
      const r = res[i]!;
      sites.forEach((s, k) => {
        rows.push({
          direction,
          event: p.e,
          example_id: p.event.exampleId,
          sample_id: p.event.sampleId,
          trigger: p.event.trigger,
          onset_token_id: p.event.onsetTokenId,
          component: s.component,
          layer: s.layer,
          clean_logprob: r.clean,
          patched_logprob: r.conditions[k]!,
          delta_logprob: r.conditions[k]! - r.clean,
        });
      });
    });
  }
  return rows;
}

/** One (direction, trigger group, component, layer) of the patching summary. */
export interface PatchSummaryRow {
  readonly direction: PatchDirection;
  /** "all" or one onset trigger. */
  readonly trigger: string;
  readonly component: "attn" | "mlp";
  readonly layer: number;
  readonly n: number;
  readonly problems: number;
  readonly delta_logprob_mean: number;
  readonly delta_logprob_lower: number;
  readonly delta_logprob_upper: number;
  readonly clean_logprob_mean: number;
}

/** Mean Δ log-prob with problem-clustered bootstrap CIs, over all events and per onset trigger. */
export function summarizePatching(
  rows: readonly PatchRow[],
  options: { readonly bootstrap: number; readonly seed: number; readonly level: number },
): PatchSummaryRow[] {
  const groups = new Map<string, PatchRow[]>();
  for (const r of rows) {
    for (const t of ["all", r.trigger]) {
      const key = JSON.stringify([r.direction, t, r.component, r.layer]);
      const g = groups.get(key) ?? [];
      g.push(r);
      groups.set(key, g);
    }
  }
  const boot = { samples: options.bootstrap, seed: options.seed, level: options.level };
  return [...groups.entries()].map(([key, g]) => {
    const [direction, trigger, component, layer] = JSON.parse(key) as [
      PatchDirection,
      string,
      "attn" | "mlp",
      number,
    ];
    const ci = clusteredMeanCI(g.map((r) => ({ cluster: r.example_id, value: r.delta_logprob })), boot);
    return {
      direction,
      trigger,
      component,
      layer,
      n: g.length,
      problems: new Set(g.map((r) => r.example_id)).size,
      delta_logprob_mean: ci.estimate,
      delta_logprob_lower: ci.lower,
      delta_logprob_upper: ci.upper,
      clean_logprob_mean: g.reduce((a, r) => a + r.clean_logprob, 0) / g.length,
    };
  }).sort((a, b) =>
    a.direction.localeCompare(b.direction) || Number(b.trigger === "all") - Number(a.trigger === "all") ||
    a.trigger.localeCompare(b.trigger) || a.component.localeCompare(b.component) || a.layer - b.layer
  );
}

/**
 * The component with the largest effect in the expected sign: the most negative mean Δ for
 * `bt_from_control`, the most positive for `control_from_bt`.
 *
 * @param trigger "all" (default) or one onset trigger.
 * @throws {RangeError} when the summary has no row for that direction and trigger.
 */
export function localise(
  summary: readonly PatchSummaryRow[],
  direction: PatchDirection,
  trigger = "all",
): PatchSummaryRow {
  const rows = summary.filter((r) => r.direction === direction && r.trigger === trigger);
  if (rows.length === 0) throw new RangeError(`localise: no rows for ${direction} / trigger "${trigger}"`);
  const sign = direction === "bt_from_control" ? -1 : 1;
  return rows.reduce((best, r) => (sign * r.delta_logprob_mean > sign * best.delta_logprob_mean ? r : best));
}
