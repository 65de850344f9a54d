/**
 * Answer trajectory around a backtracking onset: the candidate answer the trace had stated before the
 * onset (the last firm result-like number before it, {@linkcode resultNumbers}) against its final
 * answer. Per condition: the share of onsets after which the answer changed, and among the changes how
 * many went wrong → right (fixes) and right → wrong (breaks), each with a cluster-adjusted Wilson
 * interval ({@linkcode clusteredWilsonCI}, clustered by problem).
 *
 * This turns "backtracking improves accuracy" from a correlation (accuracy of rows with vs without a
 * trigger) into a within-trace comparison: did the answer move after the onset, and which way.
 *
 * Limits: the candidate is a number the trace stated as a result, not necessarily what it would have
 * answered had it stopped there (an intermediate result just before the onset counts as the candidate);
 * rows without a candidate, without a final answer, unfinished, or without gold are counted apart
 * (`undetermined`, with the reason) and never enter the shares.
 *
 * @module
 */

import { type AnswerStatus, type ResultNumber, resultNumbers } from "./answers.ts";
import { type BootstrapOptions, clusteredWilsonCI, type ProportionInterval } from "../../lib/stats/stats.ts";

/** How the answer moved across the onset. */
export type TrajectoryKind =
  | "fix"
  | "break"
  | "wrong_to_wrong"
  | "kept_right"
  | "kept_wrong"
  | "undetermined";

/** Why a trajectory could not be determined. */
export type UndeterminedReason = "no_candidate" | "no_final_answer" | "unfinished" | "no_gold";

/** One onset's answer trajectory. */
export interface Trajectory {
  /** The last firm result-like number before the onset (value, as written, where, marker). */
  readonly candidate: ResultNumber | undefined;
  /** The final answer's value (from the scorer), or `undefined`. */
  readonly final: number | undefined;
  /** Whether the final answer differs from the candidate; `undefined` when either is missing. */
  readonly changed: boolean | undefined;
  /** Whether the candidate equals the gold; `undefined` without candidate or gold. */
  readonly candidate_correct: boolean | undefined;
  /** Whether the final answer is correct (status `correct`); `undefined` when not scored. */
  readonly final_correct: boolean | undefined;
  readonly kind: TrajectoryKind;
  /** Why the kind is `undetermined`; `undefined` otherwise. */
  readonly undetermined: UndeterminedReason | undefined;
}

/** The final answer as the scorer saw it. */
export interface FinalAnswer {
  readonly status: AnswerStatus;
  readonly value: number | undefined;
}

function same(a: number, b: number, tol: number): boolean {
  return Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
}

/**
 * The answer trajectory of one onset.
 *
 * @param text The completion text.
 * @param onsetChar UTF-16 index of the onset.
 * @param final The scored final answer (`scoreCompletion`'s status and value).
 * @param gold The gold value, or `undefined`.
 * @param tolerance Relative tolerance for "same value" (default 1e-6, as `scoreAnswer`).
 * @returns The candidate, the final value, and the kind (`fix` = candidate wrong → final right, `break`
 *   = right → wrong, `wrong_to_wrong`, `kept_right`, `kept_wrong`, or `undetermined` with the reason).
 * @throws {RangeError} if `onsetChar` is outside the text.
 * @example
 * ```ts
 * answerTrajectory("3*6 = 18.\nWait, 4*6 = 24.\n</think>\n24", 10, { status: "correct", value: 24 }, 24)
 *   .kind; // "fix"
 * ```
 */
export function answerTrajectory(
  text: string,
  onsetChar: number,
  final: FinalAnswer,
  gold: number | undefined,
  tolerance = 1e-6,
): Trajectory {
  if (!Number.isInteger(onsetChar) || onsetChar < 0 || onsetChar > text.length) {
    throw new RangeError(
      `answerTrajectory: onsetChar ${onsetChar} is outside the text (length ${text.length})`,
    );
  }
  const candidate = resultNumbers(text, 0, onsetChar).filter((r) => !r.tentative).at(-1);
  const finalValue = final.status === "unfinished" ? undefined : final.value;
  const changed = candidate !== undefined && finalValue !== undefined
    ? !same(finalValue, candidate.value, tolerance)
    : undefined;
  const candidateCorrect = candidate !== undefined && gold !== undefined
    ? same(candidate.value, gold, tolerance)
    : undefined;
  const finalCorrect = final.status === "correct" ? true : final.status === "incorrect" ? false : undefined;
  let undetermined: UndeterminedReason | undefined;
  if (final.status === "unfinished") undetermined = "unfinished";
  else if (candidate === undefined) undetermined = "no_candidate";
  else if (finalValue === undefined) undetermined = "no_final_answer";
  else if (gold === undefined || finalCorrect === undefined) undetermined = "no_gold";
  let kind: TrajectoryKind = "undetermined";
  if (undetermined === undefined) {
    if (changed) kind = candidateCorrect ? "break" : finalCorrect ? "fix" : "wrong_to_wrong";
    else kind = finalCorrect ? "kept_right" : "kept_wrong";
  }
  return {
    candidate,
    final: finalValue,
    changed,
    candidate_correct: candidateCorrect,
    final_correct: finalCorrect,
    kind,
    undetermined,
  };
}

/** One onset's trajectory with its condition and problem. */
export interface TrajectoryObservation {
  readonly condition: string;
  /** The clustering unit (problem id). */
  readonly cluster: string | number;
  readonly trajectory: Trajectory;
}

/** A proportion with its interval, or `undefined` interval fields when the denominator is 0. */
export type Share = ProportionInterval | { readonly k: 0; readonly n: 0; readonly estimate: number };

/** Per-condition trajectory summary. */
export interface TrajectorySummary {
  readonly condition: string;
  /** Onsets (rows with an onset) in the condition. */
  readonly onsets: number;
  /** Onsets with a candidate, a final answer and gold. */
  readonly determined: number;
  /** Undetermined onsets by reason. */
  readonly undetermined: Readonly<Record<UndeterminedReason, number>>;
  /** Counts by kind (determined onsets). */
  readonly kinds: Readonly<Record<Exclude<TrajectoryKind, "undetermined">, number>>;
  /** Changed answers / determined onsets. */
  readonly changed: Share;
  /** Fixes (wrong → right) / changed answers. */
  readonly fixes: Share;
  /** Breaks (right → wrong) / changed answers. */
  readonly breaks: Share;
  /** Fixes − breaks, per determined onset (the net accuracy effect of the changes). */
  readonly net_fix_rate: number;
}

function share(
  obs: readonly TrajectoryObservation[],
  hit: (t: Trajectory) => boolean,
  options: BootstrapOptions,
): Share {
  if (obs.length === 0) return { k: 0, n: 0, estimate: NaN };
  return clusteredWilsonCI(obs.map((o) => ({ cluster: o.cluster, value: hit(o.trajectory) })), options);
}

/**
 * Summarise trajectories per condition (in first-seen order): the share of determined onsets whose
 * answer changed, and among the changes the fixes and the breaks, each with a cluster-adjusted Wilson
 * interval by problem ({@linkcode clusteredWilsonCI}; a share over no onsets has `n: 0` and NaN).
 *
 * @param observations One per onset.
 * @param options Bootstrap samples, level and seed for the design effect.
 */
export function summarizeTrajectories(
  observations: readonly TrajectoryObservation[],
  options: BootstrapOptions = {},
): TrajectorySummary[] {
  const byCondition = new Map<string, TrajectoryObservation[]>();
  for (const o of observations) {
    const g = byCondition.get(o.condition);
    if (g) g.push(o);
    else byCondition.set(o.condition, [o]);
  }
  return [...byCondition].map(([condition, obs]) => {
    const undetermined = { no_candidate: 0, no_final_answer: 0, unfinished: 0, no_gold: 0 };
    const kinds = { fix: 0, break: 0, wrong_to_wrong: 0, kept_right: 0, kept_wrong: 0 };
    for (const o of obs) {
      const t = o.trajectory;
      if (t.kind === "undetermined") undetermined[t.undetermined!]++;
      else kinds[t.kind]++;
    }
    const determined = obs.filter((o) => o.trajectory.kind !== "undetermined");
    const changedObs = determined.filter((o) => o.trajectory.changed === true);
    return {
      condition,
      onsets: obs.length,
      determined: determined.length,
      undetermined,
      kinds,
      changed: share(determined, (t) => t.changed === true, options),
      fixes: share(changedObs, (t) => t.kind === "fix", options),
      breaks: share(changedObs, (t) => t.kind === "break", options),
      net_fix_rate: determined.length === 0 ? NaN : (kinds.fix - kinds.break) / determined.length,
    };
  });
}
