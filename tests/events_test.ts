import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../experiments/backtracking/config.ts";
import {
  buildEventRows,
  EVENT_COLUMNS,
  eventOptionsFromConfig,
  eventsToCsv,
  parseEventsCsv,
  REFERENCE_EVENT_COLUMNS,
  TokenTexts,
} from "../experiments/backtracking/events.ts";
import { closeTagTokenId, detectionOptions } from "../experiments/backtracking/settings.ts";
import type { GenerationRecord } from "../lib/generate/records.ts";
import { loadTokenizer, type Tokenizer } from "../lib/engine/tokenizer.ts";

const MINI = fileURLToPath(new URL("./fixtures/tokenizer/r1-distill-mini/", import.meta.url));
let tok: Promise<Tokenizer> | undefined;
const mini = () => (tok ??= loadTokenizer(MINI));
const EOS = 151643;

function record(
  t: Tokenizer,
  completion: string,
  sampleId: number,
  extra: Partial<GenerationRecord> = {},
): GenerationRecord {
  const ids = [...t.encode(completion, { addSpecialTokens: false }), EOS];
  return {
    example_id: 0,
    sample_id: sampleId,
    variant: "baseline_think_newline",
    condition: "baseline",
    prompt: "p",
    prompt_tokens: 10,
    completion: t.decode(ids, { skipSpecialTokens: true }),
    completion_token_ids: ids,
    completion_tokens: ids.length,
    finish_reason: "eos",
    interventions: [],
    intervention_scope: "none",
    seed: 0,
    gen_params: { temperature: 0.7, max_new_tokens: 64, do_sample: true },
    timings: { started_at: "", duration_ms: 0 },
    ...extra,
  };
}

const problems = new Map([[0, { id: 0, gold: 7500, answer_value: "7,500" }]]);

Deno.test("per-token texts join to the decoded completion, partial UTF-8 characters included", async () => {
  const t = await mini();
  const split = new TokenTexts(t);
  for (const text of ["Hello world. Wait, 7500 é€😀 done", "😀😀", "a\u00e9", "naïve Wait"]) {
    const ids = [...t.encode(text, { addSpecialTokens: false }), EOS];
    const { texts, text: full } = split.split(ids);
    assert.equal(texts.length, ids.length);
    assert.equal(texts.join(""), full);
    assert.equal(full, text, "EOS decodes to nothing");
  }
  // A sequence cut in the middle of a character still joins to the decode (ending in U+FFFD).
  const cut = t.encode("x😀", { addSpecialTokens: false }).slice(0, -1);
  const r = split.split(cut);
  assert.equal(r.texts.join(""), r.text);
  assert.equal(split.fallbacks, 0);
});

Deno.test("corrected rule: onset on the sampled token, reference rule side by side, robust answer", async () => {
  const t = await mini();
  const cfg = parseConfig({
    protocol: "corrected",
    detection: { triggers_relaxed: ["Wait", "Actually", "mistake"] },
  }, "t");
  const recs = [
    record(t, "So the total is 7,500.\n\nWait, let me check. Final: 7500\n</think>", 0),
    record(t, "I will wait here and the answer is **7500**</think>", 1),
    record(t, "Hello world</think>", 2),
    record(t, "So the total is 7,500.\n\nWait, let me check. Final: 7500\n", 3),
  ];
  const { rows, textMismatches } = buildEventRows(recs, problems, t, eventOptionsFromConfig(cfg));
  assert.equal(textMismatches, 0);
  const [a, b, c, d] = rows;
  assert.equal(a!.has_backtracking_strict, true);
  assert.equal(a!.onset_phrase, "Wait");
  const waitIndex = a!.onset_token_in_completion;
  assert.equal(t.decode([recs[0]!.completion_token_ids[waitIndex]!]), "Wait");
  assert.equal(a!.onset_token_id, 259, "fixture's 'Wait' merge");
  assert.equal(a!.onset_token_text, "Wait");
  assert.equal(a!.onset_token_in_full, 10 + waitIndex);
  assert.equal(a!.pred_pos_in_full, 10 + waitIndex - 1);
  assert.equal(a!.onset_char, "So the total is 7,500.\n\n".length);
  assert.equal(a!.is_correct, true);
  assert.equal(a!.answer_status, "correct");
  assert.equal(a!.answer_method, "final");
  assert.equal(a!.correct_reference, true, "reference extractor: first Final: → 7500 = 7,500");
  assert.equal(a!.gold, 7500);
  assert.equal(a!.rule, "corrected");
  assert.equal(a!.bt_other_rule, true);
  assert.equal(a!.reasoning_closed, true);
  assert.deepEqual(a!.trigger_counts, { Wait: 1, Actually: 0, "Hold on": 0 });
  // lower-case "wait" mid-sentence: not a trigger under the corrected rule, one under the reference's.
  assert.equal(b!.has_backtracking_strict, false);
  assert.equal(b!.bt_other_rule, true);
  assert.equal(b!.onset_token_id, -1);
  assert.equal(b!.pred_pos_in_full, -1);
  assert.equal(b!.predicted_answer, "7500");
  assert.equal(b!.is_correct, true);
  assert.equal(c!.is_correct, undefined, "no number: unknown");
  assert.equal(c!.answer_status, "unknown");
  assert.equal(c!.predicted_answer, "");
  assert.equal(c!.digit_free, true);
  assert.equal(c!.completion_tokens, recs[2]!.completion_token_ids.length);
  // Issue 14: reasoning never closed (token budget) is unfinished, not scored on a number mid-thought.
  assert.equal(d!.reasoning_closed, false);
  assert.equal(d!.answer_status, "unfinished");
  assert.equal(d!.is_correct, undefined);
  assert.equal(d!.predicted_answer, "");
  assert.equal(d!.answer_method, "unfinished");
  assert.equal(d!.correct_reference, true, "the reference extractor is unchanged");
});

Deno.test("reference rule and extractor fill the reference columns", async () => {
  const t = await mini();
  const cfg = parseConfig({ protocol: "reference" }, "t");
  const recs = [record(t, "I will wait here. Final: answer\nso 7500", 0)];
  const [r] = buildEventRows(recs, problems, t, eventOptionsFromConfig(cfg)).rows;
  assert.equal(r!.rule, "reference");
  assert.equal(r!.has_backtracking_strict, true);
  assert.equal(r!.onset_phrase, "wait");
  assert.equal(r!.bt_other_rule, false);
  assert.equal(r!.predicted_answer, "answer", "the reference takes the first Final:");
  assert.equal(r!.is_correct, false);
  assert.equal(r!.answer_method, "reference");
});

Deno.test("backtracking_events.csv: reference's 17 columns first, Python conventions, round trip", async () => {
  const t = await mini();
  const cfg = parseConfig({ protocol: "corrected" }, "t");
  const recs = [
    record(t, 'So 7,500.\n\nWait, "quoted", yes. Final: 7500', 0),
    record(t, "Hello world", 1, { finish_reason: "length" }),
  ];
  const { rows } = buildEventRows(recs, problems, t, eventOptionsFromConfig(cfg));
  const csv = eventsToCsv(rows);
  const header = csv.split("\r\n")[0]!.split(",");
  assert.deepEqual(header.slice(0, 17), [...REFERENCE_EVENT_COLUMNS]);
  assert.deepEqual(header, [...EVENT_COLUMNS]);
  assert.match(csv, /\r\n0,1,baseline_think_newline,baseline,False,False,,-1,-1,-1,-1,,-1,,,10,/);
  assert.deepEqual(parseEventsCsv(csv), rows);
  assert.throws(() => parseEventsCsv("example_id\r\n1\r\n", "x.csv"), /x.csv: missing column/);
  const bad = csv.replace(",False,False,", ",maybe,False,");
  assert.throws(() => parseEventsCsv(bad, "x.csv"), /x.csv:3: column has_backtracking_strict/);
});

Deno.test("detectionOptions: the reasoning ends at the </think> token from the tokenizer, not at the tag in prose", async () => {
  const t = await mini();
  const cfg = parseConfig({ protocol: "corrected" }, "t");
  assert.equal(closeTagTokenId(t, "</think>"), 151649);
  assert.equal(closeTagTokenId(t, "no such tag here"), undefined);
  const opts = detectionOptions(cfg, t);
  assert.equal(typeof opts.thinkCloseTokenId, "function");
  const idFor = opts.thinkCloseTokenId as (v: string) => number | undefined;
  assert.equal(idFor("baseline_think_newline"), 151649);
  assert.equal(detectionOptions(cfg).thinkCloseTokenId, undefined, "no tokenizer: by text");
  // The model writes the tag in prose as " </" "think" ">" (three tokens), then keeps reasoning.
  const enc = (x: string) => t.encode(x, { addSpecialTokens: false });
  const ids = [
    ...enc("6*3 = 18, see the tag "),
    ...enc("</"),
    ...enc("think"),
    ...enc(">"),
    ...enc(".\nWait, 4 bags: 4*6 = 24.\n"),
    151649,
    ...enc("\n\nThe answer is 24."),
    EOS,
  ];
  const rec = record(t, "", 0, {
    completion_token_ids: ids,
    completion_tokens: ids.length,
    completion: t.decode(ids, { skipSpecialTokens: true }),
  });
  const gold24 = new Map([[0, { id: 0, gold: 24 }]]);
  const [byToken] = buildEventRows([rec], gold24, t, opts).rows;
  assert.equal(byToken!.has_backtracking_strict, true, "the Wait after the prose tag is in the reasoning");
  assert.equal(byToken!.onset_char, "6*3 = 18, see the tag </think>.\n".length);
  assert.equal(byToken!.answer_region, "answer");
  assert.equal(byToken!.final_answer, 24);
  const [byText] = buildEventRows([rec], gold24, t, eventOptionsFromConfig(cfg)).rows;
  assert.equal(
    byText!.has_backtracking_strict,
    false,
    "by text the reasoning (wrongly) ends at the prose tag",
  );
});

Deno.test("events: onset type, evidence and answer trajectory per row (issue 14)", async () => {
  const t = await mini();
  const cfg = parseConfig({ protocol: "corrected" }, "t");
  const gold = new Map([[0, { id: 0, gold: 24 }]]);
  const recs = [
    // revision by value, wrong → right: a fix
    record(t, "3 bags: 3*6 = 18.\nWait, there are 4 bags. 4*6 = 24.\n</think>\n\n24", 0),
    // revision by an admitted error, right → wrong: a break
    record(t, "4*6 = 24.\nWait, I made a mistake, it is 5*6 = 30.\n</think>\n\n30", 1),
    // verification: re-check confirms, the answer is kept right
    record(t, "4*6 = 24.\nWait, let me double-check: 6+6+6+6 = 24. Yes, that's correct.\n</think>\n\n24", 2),
    // other: rereading the question, no value before the onset
    record(t, "Four bags of six.\nWait, the problem says four bags.\n</think>\n\n24", 3),
    // unfinished: the reasoning never closed
    record(t, "4*6 = 24.\nWait, let me check that again", 4),
    // no onset
    record(t, "4*6 = 24.\n</think>\n\n24", 5),
  ];
  const rows = buildEventRows(recs, gold, t, eventOptionsFromConfig(cfg)).rows;
  const got = rows.map((r) => [r.onset_type, r.onset_rule, r.candidate_answer, r.final_answer, r.trajectory]);
  assert.deepEqual(got, [
    ["revision", "value_changed", 18, 24, "fix"],
    ["revision", "error_phrase", 24, 30, "break"],
    ["verification", "confirm_phrase", 24, 24, "kept_right"],
    ["other", "reread", undefined, 24, "no_candidate"],
    ["other", "recheck_unresolved", 24, undefined, "unfinished"],
    ["", "", undefined, 24, ""],
  ]);
  assert.equal(rows[0]!.onset_evidence, "value_changed; before 18; after 24");
  assert.equal(rows[1]!.onset_evidence, 'error_phrase; error "I made a mistake"; before 24; after 30');
  assert.equal(
    rows[2]!.onset_evidence,
    'confirm_phrase; confirm "Yes,"; recheck "let me double-check"; before 24; after 24',
  );
  assert.equal(rows[3]!.onset_evidence, 'reread; reread "the problem says"');
  assert.equal(rows[4]!.answer_status, "unfinished");
  assert.equal(rows[4]!.answer_region, "");
  assert.equal(rows[5]!.onset_evidence, "");
  // The new columns survive the CSV round trip; a bad onset type or trajectory names its line
  const csv = eventsToCsv(rows);
  assert.deepEqual(parseEventsCsv(csv), rows);
  const line2 = csv.split("\r\n")[1]!;
  assert.ok(line2.includes(",revision,value_changed,"), line2);
  assert.throws(
    () => parseEventsCsv(csv.replace(",revision,value_changed,", ",revisoin,value_changed,"), "e.csv"),
    /e.csv:2: column onset_type has invalid value "revisoin"/,
  );
  assert.throws(
    () => parseEventsCsv(csv.replace(",fix\r\n", ",fixed\r\n"), "e.csv"),
    /e.csv:2: column trajectory has invalid value "fixed"/,
  );
});

Deno.test("records without token ids are an error naming the record", async () => {
  const t = await mini();
  const cfg = parseConfig({}, "t");
  const r = record(t, "x", 4);
  delete (r as Partial<GenerationRecord>).completion_token_ids;
  assert.throws(
    () => buildEventRows([r], problems, t, eventOptionsFromConfig(cfg)),
    /example 0 sample 4 has no completion_token_ids/,
  );
});
