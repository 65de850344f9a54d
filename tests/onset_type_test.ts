/**
 * Onset types on hand-written R1-style traces: at least 10 per type, ambiguous ones landing in `other`.
 * The onset and the next trigger come from the corrected detection rule, as in the pipeline.
 */
import assert from "node:assert/strict";
import { detect } from "../experiments/backtracking/detect.ts";
import { classifyOnset, type OnsetRule, type OnsetType } from "../experiments/backtracking/onset_type.ts";

function classify(text: string) {
  const d = detect({ tokenTexts: [text], promptTokens: 0 }, {
    rule: "corrected",
    triggersStrict: ["Wait", "Actually", "Hold on"],
  });
  const onset = d.onset;
  assert.ok(onset, `no onset in ${JSON.stringify(text)}`);
  return classifyOnset(text, onset.char, {
    nextTriggerChar: d.strict.matches[1]?.char,
    reasoningEnd: d.reasoning_end_char,
  });
}

function check(cases: readonly (readonly [string, OnsetType, OnsetRule])[]) {
  for (const [text, type, rule] of cases) {
    const r = classify(text);
    assert.equal(r.type, type, `${JSON.stringify(text)}: ${JSON.stringify(r.evidence)}`);
    assert.equal(r.evidence.rule, rule, `${JSON.stringify(text)}: ${JSON.stringify(r.evidence)}`);
  }
}

const REVISIONS = [
  // the trace
  [
    "3 bags of 6 is 18, so \\boxed{18}.\nWait, there are 4 bags, not 3. 4*6 = 24.\n</think>\n\n24",
    "revision",
    "error_phrase",
  ],
  [
    "So the total is 18.\n\nWait, I made a mistake. Each bag has 8 apples, so 3*8 = 24.",
    "revision",
    "error_phrase",
  ],
  ["He pays 5*4 = 20 dollars.\nWait, that's wrong: the price is 6, so 6*4 = 24.", "revision", "error_phrase"],
  [
    "Total = 120 minutes.\nActually, I misread the question: it asks for hours, so 120/60 = 2.",
    "revision",
    "error_phrase",
  ],
  [
    "So she has 15 - 4 = 11 left.\nHold on, I forgot the 3 she gave away. 11 - 3 = 8.",
    "revision",
    "error_phrase",
  ],
  ["That gives 42.\nWait, that can't be right, there are only 30 students.", "revision", "error_phrase"],
  ["So x = 7.\nWait, I think I miscalculated. 3*9 = 27, so x = 9.", "revision", "error_phrase"],
  ["Then 12 + 8 = 20 cookies.\nWait, 12 + 9 = 21 cookies.", "revision", "value_changed"],
  ["So the answer is 64.\n\nWait, the price doubles each year: 8 * 2 * 2 = 32.", "revision", "value_changed"],
  [
    "The total is $9{,}500$.\nWait, we need the monthly amount: 9500/12 ≈ 791.67.",
    "revision",
    "value_changed",
  ],
  ["= 250 pounds.\nActually, each crate is 30 pounds, so 10*30 = 300.", "revision", "value_changed"],
  ["So he earns 40 per day.\nBut wait, my mistake, 8*6 = 48 per day.", "revision", "error_phrase"],
  [
    "So the answer is 18.\nWait, no. The problem says 4 bags, so 4 times 6 is 24.",
    "revision",
    "error_phrase",
  ],
  ["So x = 12.\nWait, that doesn't seem right. Let me redo it.", "revision", "error_phrase"],
  ["Total = 50.\nHold on, I must have made an error in the second step.", "revision", "error_phrase"],
] as const;

const VERIFICATIONS = [
  [
    "3*6 = 18 apples.\nWait, let me double-check. 6+6+6 = 18. Yes, that's correct.",
    "verification",
    "confirm_phrase",
  ],
  [
    "So the total is 24.\n\nWait, let me verify: 4 bags of 6 is 24. That checks out.",
    "verification",
    "confirm_phrase",
  ],
  ["She has 11 left.\nWait, 15 - 4 = 11. So 11 is right.", "verification", "confirm_phrase"],
  ["Total = 120.\nHold on, let me make sure: 60*2 = 120. Same answer.", "verification", "confirm_phrase"],
  [
    "So x = 9.\nWait, did I make a mistake? 3*9 = 27, so x = 9. No, it's correct.",
    "verification",
    "confirm_phrase",
  ],
  ["He earns 48 dollars.\nWait, let me recheck. I don't see any mistake.", "verification", "confirm_phrase"],
  ["The answer is 32.\nActually, computing again: 8*4 = 32.", "verification", "restated_value"],
  ["So 7 + 5 = 12 marbles.\nWait, 5 + 7 = 12.", "verification", "restated_value"],
  [
    "That makes 250 pounds.\nWait, let me check if 250 is correct. 25*10 = 250. Yes.",
    "verification",
    "confirm_phrase",
  ],
  ["So the area is 36.\nWait, 6 by 6 gives 36, consistent with before.", "verification", "confirm_phrase"],
  ["So he needs 14 more.\nWait, nothing wrong there: 20 - 6 = 14.", "verification", "confirm_phrase"],
  ["So x = 12.\nWait, I don't think I made a mistake. 3*4 = 12.", "verification", "confirm_phrase"],
  ["Total = 50.\nWait, 5 groups of 10 is 50. That makes sense.", "verification", "confirm_phrase"],
] as const;

const OTHERS = [
  // rereading / restating the question, no value stated
  ["So far 3*6 = 18.\nWait, the question says she buys 3 bags. OK.", "other", "reread"],
  ["Let me start.\nWait, let me reread the problem. John has 5 apples.", "other", "reread"],
  // no value before and no phrase
  ["First, understand the problem.\nWait, how many bags are there?", "other", "no_evidence"],
  // re-check announced, next trigger comes before any outcome
  ["Total = 24.\nWait, let me double-check.\nWait, the bags hold 6.", "other", "recheck_unresolved"],
  // hedged alternatives: tentative values are not statements
  ["So 18.\nWait, maybe it's 24? Or 12? Hmm.", "other", "no_evidence"],
  // a question about a mistake, no outcome
  ["So x = 5.\nWait, did I make an error?", "other", "no_evidence"],
  // conflicting: admits a mistake yet confirms the same value
  ["The total is 18.\nWait, I made a mistake... no, 3*6 = 18, that's right.", "other", "conflict"],
  // conflicting: a different value and the old one restated with a confirmation
  ["That is 18.\nWait, 18/6 = 3 and 3*6 = 18 — yes, then = 3 bags.", "other", "conflict"],
  // a trigger with nothing after it (window cut by the end of the reasoning)
  ["So 18.\nWait</think>\n\n18", "other", "no_evidence"],
  // restating the goal without values
  ["We know 4*6 = 24.\nActually, the goal is the number of apples per person.", "other", "no_evidence"],
  // "no" inside a phrase is not "Wait, no."
  ["We have 3 bags.\nActually, no more bags are bought later.", "other", "no_evidence"],
  // a check that only restates question numbers (a bare "is" is not a result)
  ["So 24 in total.\nWait, each bag is 6 and there are 4 bags.", "other", "no_evidence"],
] as const;

Deno.test("revision: an error admission or a replaced value (≥10 traces)", () => {
  assert.ok(REVISIONS.length >= 10);
  check(REVISIONS);
});

Deno.test("verification: a confirmation or the value re-derived (≥10 traces)", () => {
  assert.ok(VERIFICATIONS.length >= 10);
  check(VERIFICATIONS);
});

Deno.test("other: rereading, unresolved re-checks, hedges, conflicts (≥10 traces)", () => {
  assert.ok(OTHERS.length >= 10);
  check(OTHERS);
});

Deno.test("the evidence names the phrase and the values before and after", () => {
  const text = "3 bags of 6 is 18, so \\boxed{18}.\nWait, there are 4 bags, not 3. 4*6 = 24.\n";
  const r = classify(text);
  assert.equal(r.evidence.value_before?.value, 18);
  assert.equal(r.evidence.value_before?.marker, "\\boxed{");
  assert.deepEqual(r.evidence.values_after.map((v) => v.value), [24]);
  assert.equal(r.evidence.error_phrase?.text, ", not 3");
  assert.equal(r.evidence.error_phrase?.char, text.indexOf(", not 3"));
  assert.equal(r.evidence.window.start, text.indexOf("Wait"));
  assert.equal(r.evidence.window.end, text.length);
  const v = classify("Total = 24.\nWait, let me check: 4*6 = 24. Yes, correct.");
  assert.equal(v.evidence.recheck_phrase?.text, "let me check");
  assert.equal(v.evidence.confirm_phrase?.text, "Yes,");
  // The window: at most maxChars, never past the reasoning end.
  const long = "x = 5.\nWait, " + "a".repeat(50) + " = 7";
  assert.equal(classifyOnset(long, 7, { maxChars: 20 }).evidence.window.end, 27);
  assert.equal(classifyOnset(long, 7, { maxChars: 20 }).type, "other");
  assert.equal(classifyOnset(long, 7).type, "revision");
  assert.equal(classifyOnset(long, 7, { reasoningEnd: 10 }).evidence.window.end, 10);
  assert.throws(() => classifyOnset("abc", 9), /onsetChar 9 is outside the text \(length 3\)/);
});

Deno.test("documented limit: a check by an inverse computation reads as a value change", () => {
  // A reader calls this a verification; the rule sees 9 replaced by 27 (module doc, Limits).
  const r = classify("So x = 9.\nWait, did I make a mistake? 3*9 = 27. No, it's correct.");
  assert.equal(r.type, "revision");
  assert.equal(r.evidence.rule, "value_changed");
});
