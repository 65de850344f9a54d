/**
 * Test fixture: a complete `EventRow` (one sample's row of `analysis/backtracking_events.csv`) from the few
 * fields a test cares about. The defaults are a clean, correct sample without backtracking; `bt: true`
 * fills the onset fields consistently (a " Wait"-like onset at completion token 3); `fields` override
 * anything.
 *
 * @module
 */

import type { EventRow } from "../experiments/backtracking/event_row.ts";

/** Fields of {@linkcode eventRow}: any `EventRow` field, plus `bt` (has a strict trigger). */
export type EventRowFields = Partial<EventRow> & { readonly bt?: boolean };

/** A complete `EventRow`; see the module doc. */
export function eventRow(fields: EventRowFields = {}): EventRow {
  const { bt = false, ...rest } = fields;
  return {
    example_id: 0,
    sample_id: 0,
    variant: "chat",
    condition: "baseline",
    has_backtracking_strict: bt,
    has_backtracking_relaxed: bt,
    onset_phrase: bt ? "Wait" : "",
    onset_char: bt ? 10 : -1,
    onset_token_in_completion: bt ? 3 : -1,
    onset_token_in_full: bt ? 20 : -1,
    onset_token_id: bt ? 7 : -1,
    onset_token_text: bt ? "Wait" : "",
    pred_pos_in_full: bt ? 19 : -1,
    predicted_answer: "",
    is_correct: true,
    prompt_tokens: 17,
    completion_tokens: 100,
    rule: "corrected",
    bt_other_rule: bt,
    triggers_per_1k: bt ? 5 : 0,
    trigger_counts: { Wait: bt ? 1 : 0 },
    reasoning_closed: true,
    finish_reason: "eos",
    gold: 1,
    answer_status: "correct",
    answer_method: "final",
    correct_reference: true,
    repetition_4gram: 0.05,
    distinct_2: 0.9,
    digit_free: false,
    answer_region: "answer",
    final_answer: 1,
    onset_type: bt ? "revision" : "",
    onset_rule: bt ? "no_evidence" : "",
    onset_evidence: "",
    candidate_answer: undefined,
    trajectory: "",
    ...rest,
  };
}
