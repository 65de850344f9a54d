/**
 * Backtracking events and their token- and position-matched controls, as used by the logit lens
 * (`lib/lens.ts`) and the ablation scan (`lib/ablation.ts`).
 *
 * Two protocols:
 *
 * - `"corrected"` / `"random_across_problems"` (default, docs/protocol.md §11): events are a seeded sample
 *   spread over problems; each control's target is its own event's onset token id; controls are matched on
 *   true (unpadded) lengths and must have an actually sampled token after the matched position.
 * - `"reference"` / `"file_order"` (docs/protocol.md §11): the first `max` events in file order; the non-BT
 *   pool is shuffled with Python's `random.Random(42)`; every control's target is the onset id of the first
 *   event. The reference's length check read padded group lengths; here the check reads each trace's true
 *   length, and events left without a control are reported, not silently dropped later.
 *
 * @example
 * ```ts
 * const picked = selectEvents(allEvents, { max: 120, seed: 0, mode: "random_across_problems" });
 * const { controls, unmatched } = matchControlsReport(picked, nonBacktracking, { seed: 0, mode: "corrected" });
 * ```
 *
 * @module
 */

import { PyRandom } from "./reference/pyrandom.ts";
import { seededRng, shuffleInPlace } from "../../lib/stats/stats.ts";

import type { ControlPosition, OnsetEvent, Trace } from "../../lib/interp/traces.ts";

export type { ControlPosition, Trace };

/** A backtracking onset: at `predPos` the model emitted the trigger's first token next. */
export interface BacktrackEvent extends OnsetEvent {
  /** The trigger phrase that matched. */
  readonly trigger: string;
}

/** How events are chosen: a seeded sample spread over problems, or the reference's file order. */
export type EventSelectionMode = "random_across_problems" | "file_order";

/** Options of {@link selectEvents}. */
export interface SelectEventsOptions {
  /** Maximum number of events to keep (the reference used 120). */
  readonly max: number;
  /** Seed of the random sample (ignored in `"file_order"` mode). Default 0. */
  readonly seed?: number;
  /** Default `"random_across_problems"`. */
  readonly mode?: EventSelectionMode;
}

/**
 * Choose at most `max` events.
 *
 * - `"random_across_problems"`: problems are put in a seeded random order and each problem's events
 *   in a seeded random order; then events are taken round-robin (one per problem per round), so the
 *   sample covers as many problems as possible and no problem contributes more than one event more
 *   than another (unless it runs out of events).
 * - `"file_order"`: the first `max` events as given (the reference: examples 0–29 only).
 *
 * @param events all candidate events, in file order.
 * @returns the chosen events, in their original (file) order.
 * @throws {RangeError} when `max` is not a non-negative integer.
 */
export function selectEvents(
  events: readonly BacktrackEvent[],
  options: SelectEventsOptions,
): BacktrackEvent[] {
  const { max } = options;
  if (!Number.isInteger(max) || max < 0) {
    throw new RangeError(`selectEvents: max must be a non-negative integer, got ${max}`);
  }
  const mode = options.mode ?? "random_across_problems";
  if (mode === "file_order") return events.slice(0, max);
  if (mode !== "random_across_problems") {
    throw new RangeError(
      `selectEvents: unknown mode "${mode}"; use "random_across_problems" or "file_order"`,
    );
  }
  const rng = seededRng(options.seed ?? 0);
  const byProblem = new Map<number, number[]>();
  events.forEach((e, i) => {
    const list = byProblem.get(e.exampleId);
    if (list) list.push(i);
    else byProblem.set(e.exampleId, [i]);
  });
  const problems = shuffleInPlace([...byProblem.values()], rng).map((l) => shuffleInPlace(l, rng));
  const chosen: number[] = [];
  for (let round = 0; chosen.length < max; round++) {
    let took = false;
    for (const list of problems) {
      const idx = list[round];
      if (idx === undefined) continue;
      took = true;
      chosen.push(idx);
      if (chosen.length === max) break;
    }
    if (!took) break;
  }
  return chosen.sort((a, b) => a - b).map((i) => events[i]!);
}

/** Control matching protocol. */
export type ControlMatchingMode = "corrected" | "reference";

/** Options of {@link matchControls}. */
export interface MatchControlsOptions {
  /** Seed of the pool shuffle in `"corrected"` mode (seededRng). Default 0. */
  readonly seed?: number;
  /** Default `"corrected"`. */
  readonly mode?: ControlMatchingMode;
  /**
   * Seed of the Python `random.Random` shuffle in `"reference"` mode. Default 42, the value the
   * reference hard-codes; `seed` is not used in that mode so a run seed cannot silently break parity.
   */
  readonly referenceSeed?: number;
}

/** What {@link matchControlsReport} found. */
export interface ControlMatching {
  /** One control per matched event, in event order. */
  readonly controls: ControlPosition[];
  /** Indices of events that got no control (no unused trace long enough, or offset k ≤ 0). */
  readonly unmatched: number[];
  /** Size of the non-backtracking pool. */
  readonly poolSize: number;
  /**
   * `"corrected"`: indices of matched events whose control is matched on position only (no unused
   * trace had the event's input token); always empty in `"reference"` mode, which matches on position.
   */
  readonly positionOnly: number[];
}

/** Completion offset of an event: k = predPos − promptTokens + 1 (the reference's onset_token_in_completion). */
export function completionOffset(e: { readonly predPos: number; readonly promptTokens: number }): number {
  return e.predPos - e.promptTokens + 1;
}

/**
 * Matched controls: for each event with completion offset k, an unused non-backtracking trace and a
 * position in it (each trace serves at most one event).
 *
 * - `"corrected"`: matched on **token and position** (docs/protocol.md §11). The pool is shuffled with
 *   `seededRng(seed)`. Events are served in descending k (ties in event order). For each, among the
 *   unused traces, a candidate position p must hold the event's input token (`tokenIds[predPos]`, e.g.
 *   the "." before " Wait"), lie in the completion's predicting range (p ≥ promptTokens − 1) and have an
 *   actually sampled next token (p + 1 < length; needed for the ablation scan's specificity); the
 *   candidate whose completion offset is nearest to k wins (ties: pool order, then the earlier
 *   position). Without a token match the control falls back to the same completion offset k in the first
 *   unused trace with completion length ≥ k + 1, and the event is listed in `positionOnly`. Matching on
 *   the token too makes the contrast at the embedding zero: the lens then measures what the layers add,
 *   not which token was read. Target = the event's own onset token id.
 * - `"reference"` (docs/protocol.md §11): the pool is shuffled with Python `random.Random(42)`
 *   (lib/pyrandom.ts); events are served in order, each taking the first unused trace with completion length
 *   ≥ k; target = `events[0].onsetTokenId` for every control. The reference compared padded lengths; here
 *   lengths are true lengths (`tokenIds.length − promptTokens`), so the controls the reference later dropped
 *   for being past the end of their text are reported as unmatched instead. Passing traces whose `tokenIds`
 *   are padded to the reference's lengths reproduces its list exactly.
 *
 * @param events the selected events (their indices become `matchedTo`).
 * @param nonBacktracking the pool of traces without backtracking, in file order.
 * @throws {RangeError} on an unknown mode or an event whose predPos is outside its trace.
 */
export function matchControlsReport(
  events: readonly BacktrackEvent[],
  nonBacktracking: readonly Trace[],
  options: MatchControlsOptions = {},
): ControlMatching {
  const mode = options.mode ?? "corrected";
  if (mode !== "corrected" && mode !== "reference") {
    throw new RangeError(`matchControls: unknown mode "${mode}"; use "corrected" or "reference"`);
  }
  events.forEach((e, i) => {
    if (!Number.isInteger(e.predPos) || e.predPos < 0 || e.predPos >= e.tokenIds.length) {
      throw new RangeError(
        `matchControls: event ${i} (example ${e.exampleId}, sample ${e.sampleId}) has predPos ${e.predPos} ` +
          `outside its ${e.tokenIds.length} tokens`,
      );
    }
  });
  const pool = [...nonBacktracking];
  if (mode === "reference") new PyRandom(options.referenceSeed ?? 42).shuffle(pool);
  else shuffleInPlace(pool, seededRng(options.seed ?? 0));
  const used = new Uint8Array(pool.length);
  const extra = mode === "corrected" ? 1 : 0;
  const order = events.map((_, i) => i);
  if (mode === "corrected") {
    order.sort((a, b) => completionOffset(events[b]!) - completionOffset(events[a]!) || a - b);
  }
  const found = new Map<number, ControlPosition>();
  const unmatched: number[] = [];
  const referenceTarget = events[0]?.onsetTokenId;
  const positionOnly: number[] = [];
  for (const i of order) {
    const e = events[i]!;
    const k = completionOffset(e);
    let j = -1;
    let pos = -1;
    if (mode === "corrected" && k > 0) {
      const token = e.tokenIds[e.predPos];
      let best = Infinity;
      pool.forEach((t, jj) => {
        if (used[jj] !== 0) return;
        for (let p = Math.max(0, t.promptTokens - 1); p + 1 < t.tokenIds.length; p++) {
          if (t.tokenIds[p] !== token) continue;
          const d = Math.abs(p - t.promptTokens + 1 - k);
          if (d < best) [best, j, pos] = [d, jj, p];
        }
      });
    }
    if (j < 0) {
      j = k <= 0
        ? -1
        : pool.findIndex((t, j) => used[j] === 0 && t.tokenIds.length - t.promptTokens >= k + extra);
      pos = j < 0 ? -1 : pool[j]!.promptTokens + k - 1;
      if (j >= 0 && mode === "corrected") positionOnly.push(i);
    }
    if (j < 0) {
      unmatched.push(i);
      continue;
    }
    used[j] = 1;
    const t = pool[j]!;
    found.set(i, {
      exampleId: t.exampleId,
      sampleId: t.sampleId,
      tokenIds: t.tokenIds,
      promptTokens: t.promptTokens,
      predPos: pos,
      targetId: mode === "reference" ? referenceTarget! : e.onsetTokenId,
      matchedTo: i,
    });
  }
  const controls = [...found.keys()].sort((a, b) => a - b).map((i) => found.get(i)!);
  return {
    controls,
    unmatched: unmatched.sort((a, b) => a - b),
    poolSize: pool.length,
    positionOnly: positionOnly.sort((a, b) => a - b),
  };
}

/**
 * Position-matched controls (see {@link matchControlsReport} for the rules per mode); events left without
 * a control are simply absent: use {@link matchControlsReport} to learn which.
 */
export function matchControls(
  events: readonly BacktrackEvent[],
  nonBacktracking: readonly Trace[],
  options: MatchControlsOptions = {},
): ControlPosition[] {
  return matchControlsReport(events, nonBacktracking, options).controls;
}
