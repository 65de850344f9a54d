import assert from "node:assert/strict";
import { eventsAndPool } from "../experiments/backtracking/analysis_items.ts";
import { parseConfig } from "../experiments/backtracking/config.ts";
import type { EventRow } from "../experiments/backtracking/event_row.ts";
import type { GenerationRecord } from "../lib/generate/records.ts";

function record(example: number, sample: number): GenerationRecord {
  return {
    example_id: example,
    sample_id: sample,
    variant: "v",
    condition: "baseline",
    prompt: "p",
    prompt_tokens: 2,
    prompt_token_ids: [1, 2],
    completion: "",
    completion_token_ids: [3, 4, 5],
    completion_tokens: 3,
    finish_reason: "eos",
    interventions: [],
    intervention_scope: "none",
    seed: 0,
    gen_params: {},
    timings: { started_at: "", duration_ms: 0 },
  } as unknown as GenerationRecord;
}

function row(example: number, sample: number, type: EventRow["onset_type"]): EventRow {
  const bt = type !== "";
  return {
    example_id: example,
    sample_id: sample,
    has_backtracking_strict: bt,
    onset_token_id: bt ? 4 : -1,
    pred_pos_in_full: bt ? 2 : -1,
    onset_phrase: bt ? "Wait" : "",
    onset_type: type,
  } as EventRow;
}

Deno.test("eventsAndPool: analysis.onset_type keeps only events of that type; the pool is unchanged", () => {
  const types: EventRow["onset_type"][] = ["revision", "verification", "other", "", "revision", ""];
  const rows = types.map((t, i) => row(i, 0, t));
  const records = types.map((_, i) => record(i, 0));
  const all = eventsAndPool(rows, records);
  assert.deepEqual(all.events.map((e) => e.exampleId), [0, 1, 2, 4]);
  const rev = eventsAndPool(rows, records, "revision");
  assert.deepEqual(rev.events.map((e) => e.exampleId), [0, 4]);
  assert.deepEqual(eventsAndPool(rows, records, "verification").events.map((e) => e.exampleId), [1]);
  assert.deepEqual(
    rev.pool.map((t) => t.exampleId),
    [3, 5],
    "samples without a trigger, whatever the filter",
  );
  assert.deepEqual(all.pool, rev.pool);
});

Deno.test("config: analysis.onset_type defaults to all and accepts only the three types", () => {
  assert.equal(parseConfig({}, "t").analysis.onset_type, "all");
  assert.equal(parseConfig({ analysis: { onset_type: "revision" } }, "t").analysis.onset_type, "revision");
  assert.throws(() => parseConfig({ analysis: { onset_type: "fix" } }, "t"), /analysis\.onset_type/);
});
