/**
 * The shared row type of the experiment: one generated sample after detection and scoring, i.e. one
 * row of `analysis/backtracking_events.csv`. Built by `lib/events.ts`; read by `lib/metrics.ts`,
 * `lib/plots.ts` and `lib/report.ts`.
 *
 * The first 17 fields are the reference's columns (docs/protocol.md §10) computed with the run's primary rule
 * and extractor; the rest are this project's additions.
 *
 * @module
 */

import type { OnsetRule, OnsetType } from "./onset_type.ts";
import type { TrajectoryKind, UndeterminedReason } from "./trajectory.ts";

/** The `trajectory` column: the kind, or why it is undetermined, or "" without an onset. */
export type TrajectoryColumn = Exclude<TrajectoryKind, "undetermined"> | UndeterminedReason | "";

/** How a sample stopped: end-of-sequence token, a stop string, or the token budget. */
export type FinishReason = "eos" | "stop" | "length";

/**
 * Outcome of scoring one answer; `"unknown"` = no answer could be extracted (or no gold);
 * `"unfinished"` = the reasoning never closed (corrected scoring only; counts as not correct).
 */
export type AnswerStatus = "correct" | "incorrect" | "unknown" | "unfinished";

/** The detection rule behind the reference columns of an {@linkcode EventRow}. */
export type EventRule = "corrected" | "reference";

/** One generated sample after detection and scoring: one row of analysis/backtracking_events.csv. */
export interface EventRow {
  // the reference's 17 columns (docs/protocol.md §10), computed with the run's primary rule/extractor
  /** Problem index (the clustering unit of every bootstrap). */
  example_id: number;
  /** Sample index within the problem. */
  sample_id: number;
  /** Prompt-formatting variant, e.g. `baseline_think_newline`. */
  variant: string;
  /** Generation condition, e.g. `baseline`, `targeted_ablation`, `random_ablation`. */
  condition: string;
  /** At least one strict trigger (the backtracking outcome). */
  has_backtracking_strict: boolean;
  /** At least one relaxed trigger (superset of strict). */
  has_backtracking_relaxed: boolean;
  /** Matched onset text as it appears ("" when none). */
  onset_phrase: string;
  /** Onset start in the completion, Python code points (-1 when none). */
  onset_char: number;
  /** Onset token index inside the completion (-1 when none). */
  onset_token_in_completion: number;
  /** Onset token index in the full BOS-prefixed sequence (-1 when none). */
  onset_token_in_full: number;
  /** Onset token id (-1 when none). */
  onset_token_id: number;
  /** Decoded onset token ("" when none). */
  onset_token_text: string;
  /** Position whose next-token distribution predicts the onset token (-1 when none). */
  pred_pos_in_full: number;
  /** Extracted answer text ("" when none). */
  predicted_answer: string;
  /** Primary extractor's verdict; `undefined` = unknown. */
  is_correct: boolean | undefined;
  /** Prompt length in tokens (BOS included). */
  prompt_tokens: number;
  /** Completion length in tokens (the sample's own, not a padded group maximum). */
  completion_tokens: number;
  // ours
  /** Rule behind the reference columns above. */
  rule: EventRule;
  /** Strict trigger under the other rule (side by side). */
  bt_other_rule: boolean;
  /** Strict trigger matches per 1000 searched tokens. */
  triggers_per_1k: number;
  /** Matches per configured trigger (zeros included). */
  trigger_counts: Record<string, number>;
  /** Whether the reasoning span was closed (`</think>` seen). */
  reasoning_closed: boolean;
  /** How the sample stopped. */
  finish_reason: FinishReason;
  /** Gold answer; `undefined` when the problem has none. */
  gold: number | undefined;
  /**
   * Primary extractor's outcome: correct / incorrect / unknown, or `unfinished` (corrected scoring: the
   * reasoning never closed, so no answer is read; counts as not correct; docs/protocol.md §9).
   */
  answer_status: AnswerStatus;
  /**
   * Which extraction method produced the answer (`boxed`, `final`, `last_number`, `none`; `unfinished`
   * for an unfinished row; `reference` for the reference extractor).
   */
  answer_method: string;
  /**
   * Where the robust extractor read the answer: `answer` (after the close tag), `reasoning` (fallback),
   * `all` (no close tag); "" for unfinished rows and the reference extractor.
   */
  answer_region: "answer" | "reasoning" | "all" | "";
  /** The scored answer's numeric value (undefined when none, and for unfinished rows). */
  final_answer: number | undefined;
  /**
   * What kind of backtracking the onset opens (`classifyOnset`, docs/protocol.md §23): `revision`,
   * `verification`, `other`; "" when the row has no onset.
   */
  onset_type: OnsetType | "";
  /** The rule step that decided the onset type (`error_phrase`, `value_changed`, …; "" without onset). */
  onset_rule: OnsetRule | "";
  /** The evidence behind the onset type in one line (phrases found, value before, last value after). */
  onset_evidence: string;
  /** The candidate answer before the onset (last firm result-like number before it); undefined if none. */
  candidate_answer: number | undefined;
  /**
   * The answer trajectory across the onset (`answerTrajectory`, docs/protocol.md §23): `fix`, `break`,
   * `wrong_to_wrong`, `kept_right`, `kept_wrong`, or why it is undetermined (`no_candidate`,
   * `no_final_answer`, `unfinished`, `no_gold`); "" when the row has no onset.
   */
  trajectory: TrajectoryColumn;
  /** Reference extractor + normaliser verdict; `undefined` = the reference's None. */
  correct_reference: boolean | undefined;
  /** Fraction of 4-gram occurrences that repeat an earlier 4-gram (from `lib/metrics.ts`). */
  repetition_4gram: number;
  /** Distinct bigrams / bigrams (from `lib/metrics.ts`). */
  distinct_2: number;
  /** The completion contains no digit at all. */
  digit_free: boolean;
}
