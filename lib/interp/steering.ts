/**
 * Steering along a backtracking direction: per layer, the difference of mean residuals at pre-onset
 * positions (BT events) and at position-matched control positions (non-backtracking traces at the same
 * completion offset), read from `resid[l]` captures (l = 0..L; l = `blocks.l.hook_resid_pre`, L = the
 * final `hook_resid_post`). During generation the direction is added with a coefficient at
 * `blocks.{hookLayer}.hook_resid_pre` on every generated position; coefficient 1 moves a control position
 * by the average pre-onset offset, negative coefficients subtract it.
 *
 * @example
 * ```ts
 * const dirs = meanDifferenceDirections(eventCaps, controlCaps);
 * const ivs = steeringInterventions(dirs[4]!.vector, 3, -1); // subtract at blocks.3.hook_resid_pre
 * ```
 *
 * @module
 */

import type { AddIntervention } from "../engine/hooks.ts";
import type { CapturedAt } from "./positions.ts";

/** The mean-difference direction of one residual layer. */
export interface SteeringDirection {
  /** Residual index: `resid[layer]` (0..L). */
  readonly layer: number;
  /** mean(events) − mean(controls), unnormalised. */
  readonly vector: Float32Array;
  /** Its Euclidean norm. */
  readonly norm: number;
  /** Mean residual norm at the events (scale reference). */
  readonly event_norm: number;
  /**
   * Separation along the unit direction: (mean projection of events − of controls) / pooled SD of the
   * projections (a d′; large = the direction separates pre-onset from control positions).
   */
  readonly separation: number;
  readonly n_events: number;
  readonly n_controls: number;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Cosine similarity (NaN when a vector is zero). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`cosine: lengths ${a.length} and ${b.length} differ`);
  return dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
}

function mean(vs: readonly Float32Array[]): Float64Array {
  const out = new Float64Array(vs[0]!.length);
  for (const v of vs) for (let i = 0; i < v.length; i++) out[i]! += v[i]!;
  for (let i = 0; i < out.length; i++) out[i]! /= vs.length;
  return out;
}

/**
 * Mean-difference directions for every residual layer.
 *
 * @param events Captures at the pre-onset positions.
 * @param controls Captures at the matched control positions.
 * @returns One direction per residual layer 0..L.
 * @throws {RangeError} when either side is empty.
 */
export function meanDifferenceDirections(
  events: readonly CapturedAt[],
  controls: readonly CapturedAt[],
): SteeringDirection[] {
  if (events.length === 0 || controls.length === 0) {
    throw new RangeError(
      `meanDifferenceDirections: need events and controls (got ${events.length} and ${controls.length})`,
    );
  }
  const layers = events[0]!.resid.length;
  return Array.from({ length: layers }, (_, l) => {
    const ev = events.map((c) => c.resid[l]!);
    const ct = controls.map((c) => c.resid[l]!);
    const me = mean(ev), mc = mean(ct);
    const vector = Float32Array.from(me, (x, i) => x - mc[i]!);
    const norm = Math.sqrt(dot(vector, vector));
    const unit = Float64Array.from(vector, (x) => (norm > 0 ? x / norm : 0));
    const pe = ev.map((v) => dot(v, unit)), pc = ct.map((v) => dot(v, unit));
    const m = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
    const v = (xs: number[], mu: number) =>
      xs.reduce((a, x) => a + (x - mu) ** 2, 0) / Math.max(1, xs.length - 1);
    const sd = Math.sqrt((v(pe, m(pe)) + v(pc, m(pc))) / 2);
    return {
      layer: l,
      vector,
      norm,
      event_norm: m(ev.map((x) => Math.sqrt(dot(x, x)))),
      separation: sd > 0 ? (m(pe) - m(pc)) / sd : NaN,
      n_events: ev.length,
      n_controls: ct.length,
    };
  });
}

/**
 * The residual index of the direction and the hook layer for steering "at" a block: the direction is
 * read right after block `layer` (`resid[layer + 1]`) and added at `blocks.{layer + 1}.hook_resid_pre`,
 * or at `blocks.{layer}.hook_resid_pre` when `layer` is the last block (there is no later hook).
 */
export function steeringSite(
  layer: number,
  numLayers: number,
): { directionLayer: number; hookLayer: number } {
  if (!Number.isInteger(layer) || layer < 0 || layer >= numLayers) {
    throw new RangeError(`steering layer ${layer} is outside [0, ${numLayers})`);
  }
  return { directionLayer: layer + 1, hookLayer: Math.min(layer + 1, numLayers - 1) };
}

/** The generation intervention: add `coef · vector` at `blocks.{hookLayer}.hook_resid_pre`. */
export function steeringInterventions(
  vector: ArrayLike<number>,
  hookLayer: number,
  coef: number,
): AddIntervention[] {
  if (!Number.isFinite(coef)) throw new RangeError(`steering coefficient must be finite, got ${coef}`);
  return [{ hook: `blocks.${hookLayer}.hook_resid_pre`, op: "add", vector: Array.from(vector), coef }];
}
