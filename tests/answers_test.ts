import { parseCsv } from "../lib/tables/table.ts";
import assert from "node:assert/strict";
import {
  accuracySummary,
  extractAnswer,
  extractAnswerReference,
  isCorrectReference,
  normalizeReference,
  parseGsm8kGold,
  pyFloat,
  pyFloatRepr,
  reasoningBoundaryByText,
  scoreAnswer,
  scoreCompletion,
} from "../experiments/backtracking/answers.ts";

const SHARED = new URL("../../shared/data/reference/", import.meta.url);

Deno.test("pyFloatRepr follows Python repr", () => {
  const cases: [number, string][] = [
    [18, "18.0"],
    [3.5, "3.5"],
    [0.1, "0.1"],
    [1e16, "1e+16"],
    [1e15, "1000000000000000.0"],
    [1.5e16, "1.5e+16"],
    [1e-5, "1e-05"],
    [1.25e-5, "1.25e-05"],
    [0.0001, "0.0001"],
    [-0.0001234, "-0.0001234"],
    [1e300, "1e+300"],
    [5e-324, "5e-324"],
    [0.7083333333333334, "0.7083333333333334"],
    [123456789012345.6, "123456789012345.6"],
    [-0, "-0.0"],
    [Infinity, "inf"],
    [NaN, "nan"],
  ];
  for (const [x, want] of cases) assert.equal(pyFloatRepr(x), want, `repr(${x})`);
});

Deno.test("pyFloat accepts exactly what Python float() accepts", () => {
  const ok: [string, number][] = [
    [" 18 ", 18],
    ["+1.5", 1.5],
    ["-.5", -0.5],
    ["5.", 5],
    ["1_000", 1000],
    ["1_000.000_1", 1000.0001],
    ["1e5", 1e5],
    ["1E+05", 1e5],
    ["2.5e-3", 0.0025],
    ["1_0e1_0", 1e11],
    ["inf", Infinity],
    ["-Infinity", -Infinity],
    ["1e999", Infinity],
    ["\u0661\u0662", 12], // Arabic-Indic digits
    ["\uff13", 3], // fullwidth 3
    ["\u{1D7D7}", 9], // MATHEMATICAL BOLD DIGIT NINE (second run of a contiguous block)
  ];
  for (const [s, v] of ok) assert.equal(pyFloat(s), v, s);
  assert.ok(Number.isNaN(pyFloat("NaN")!));
  for (
    const s of ["", "_1", "1_", "1__0", "1_.5", "1e_5", "0x10", "1,000", "1.2.3", "e5", ". 5", "infinit"]
  ) {
    assert.equal(pyFloat(s), undefined, s);
  }
});

Deno.test("normalizeReference", () => {
  assert.equal(normalizeReference("18.0"), "18");
  assert.equal(normalizeReference(" $1,234. "), "1234");
  assert.equal(normalizeReference("3.50"), "3.5");
  assert.equal(normalizeReference("€5"), "5");
  assert.equal(normalizeReference("0.00001"), "1e-05");
  assert.equal(normalizeReference("1e16"), "10000000000000000");
  assert.equal(normalizeReference("1e300"), BigInt(1e300).toString());
  assert.equal(normalizeReference("-Inf"), "-inf");
  assert.equal(normalizeReference("NaN"), "nan");
  assert.equal(normalizeReference("1_000"), "1000");
  assert.equal(normalizeReference("**"), "**");
  assert.equal(normalizeReference("Answer"), "answer");
  assert.equal(normalizeReference("18..."), "18");
});

Deno.test("reference extractor: first Final:, patterns, last-number chunking bug", () => {
  const echo = "End with a single line: Final: <answer>\n\nWe compute 3*6 = 18.\nFinal: 18";
  assert.equal(extractAnswerReference(echo), "answer");
  assert.equal(extractAnswerReference("blah\n**Final:**\n\n\\boxed{18}"), "**");
  assert.equal(extractAnswerReference("blah\n**Final:** 18"), "** 18");
  assert.equal(extractAnswerReference("Final:\n\n 42 apples\n"), "42 apples");
  assert.equal(extractAnswerReference("so the final answer: [42]."), "42.");
  assert.equal(extractAnswerReference("The answer is 18."), "is 18.");
  assert.equal(extractAnswerReference("He earns 7500 dollars"), "0");
  assert.equal(extractAnswerReference("total 10000"), "00");
  assert.equal(extractAnswerReference("total 1,234.5 and -3"), "-3");
  assert.equal(extractAnswerReference("it is 1,234.5"), "1234.5");
  assert.equal(extractAnswerReference("no digits here"), undefined);
  assert.equal(extractAnswerReference("Final:  "), "");
  assert.equal(extractAnswerReference("x = 5", "x = (\\d+)"), "5");
  assert.equal(isCorrectReference("18.0", "18"), true);
  assert.equal(isCorrectReference("**", "18"), false);
  assert.equal(isCorrectReference(undefined, "18"), undefined);
  assert.equal(isCorrectReference("276000", "276,000"), true);
});

Deno.test("isCorrectReference reproduces is_correct of all 6000 committed events", async () => {
  const gold = new Map<number, string | null>();
  for (const line of (await Deno.readTextFile(new URL("gsm8k_200.jsonl", SHARED))).trim().split("\n")) {
    const r = JSON.parse(line);
    gold.set(r.id, r.answer_value);
  }
  const rows = parseCsv(
    await Deno.readTextFile(new URL("runs/20251223_232541/analysis/backtracking_events.csv", SHARED)),
  ).records;
  assert.equal(rows.length, 6000);
  let checked = 0;
  for (const r of rows) {
    // The CSV writes None and "" alike; an empty prediction with is_correct False was the empty string.
    const pred = r.predicted_answer === "" && r.is_correct === "" ? undefined : r.predicted_answer;
    const got = isCorrectReference(pred, gold.get(Number(r.example_id)));
    const want = r.is_correct === "" ? undefined : r.is_correct === "True";
    assert.equal(
      got,
      want,
      `example ${r.example_id} sample ${r.sample_id}: ${JSON.stringify(r.predicted_answer)}`,
    );
    checked++;
  }
  assert.equal(checked, 6000);
});

Deno.test("robust extractor on R1-style endings", () => {
  const e = (t: string) => extractAnswer(t);
  assert.deepEqual(e("So the total is \\boxed{18}."), {
    value: 18,
    raw: "18",
    method: "boxed",
    region: "all",
  });
  assert.deepEqual(e("Thus.\n**Final:** 18"), { value: 18, raw: "18", method: "final", region: "all" });
  assert.equal(e("Final: $1,234.50").value, 1234.5);
  assert.equal(e("Final: $1,234.50").method, "final");
  const r1 = "</think>\n\nThe total is 621.\n\n**Final Answer**\n\n\\[\n\\boxed{621}\n\\]";
  assert.deepEqual(e(r1), { value: 621, raw: "621", method: "boxed", region: "answer" });
  assert.equal(e("**Final:** \\(\\boxed{621}\\)").value, 621);
  assert.equal(e("**Final Answer:** 42 apples").value, 42);
  assert.equal(e("Final answer:\n\n  7").value, 7);
  const echo =
    "End with a single line: Final: <answer>\n\nProblem: 3 bags of 6.\n<think>3*6=18</think>\nFinal: 18";
  assert.deepEqual(e(echo), { value: 18, raw: "18", method: "final", region: "answer" });
  // Echo last (truncated after echoing): no candidate has a number → last number of the text.
  assert.deepEqual(e("3 bags of 6 apples.\nEnd with a single line: Final: <answer>"), {
    value: 6,
    raw: "6",
    method: "last_number",
    region: "all",
  });
  assert.deepEqual(e("Let me think about how the ducks eat"), {
    value: undefined,
    raw: undefined,
    method: "none",
    region: "all",
  });
  assert.deepEqual(e("so we have 35 pounds and then we divide by"), {
    value: 35,
    raw: "35",
    method: "last_number",
    region: "all",
  });
  assert.equal(e("He earns 7500 dollars").value, 7500);
  assert.equal(e("Final: 3/4").value, 0.75);
  assert.equal(e("\\boxed{\\dfrac{3}{4}}").value, 0.75);
  assert.equal(e("\\boxed{\\frac{-6}{4}}").value, -1.5);
  assert.equal(e("Final: -5").value, -5);
  assert.equal(e("the change is −12 degrees").value, -12);
  assert.equal(e("Final: 25%").value, 25);
  assert.equal(e("Final: 18 - 3 = 15").value, 15);
  assert.equal(e("\\boxed{8,\\!000}").value, 8000);
  assert.equal(e("\\boxed{\\$250}").value, 250);
  assert.equal(e("\\boxed{18 \\text{ dollars}}").value, 18);
  assert.equal(e("answer621/answer").value, 621);
  // A later boxed answer beats an earlier Final line, and vice versa.
  assert.equal(e("Final: 3\nWait, no.\n\\boxed{4}").value, 4);
  assert.equal(e("\\boxed{4}\nWait, recheck.\nFinal: 5").value, 5);
  assert.equal(e("Finally: 5 then 6").method, "last_number");
});

Deno.test("scoreAnswer, gold parsing and the single accuracy definition", () => {
  assert.equal(scoreAnswer(extractAnswer("\\boxed{18}"), 18), "correct");
  assert.equal(scoreAnswer(extractAnswer("Final: 18.0000001"), 18), "correct");
  assert.equal(scoreAnswer(extractAnswer("Final: 18.01"), 18), "incorrect");
  assert.equal(scoreAnswer(extractAnswer("nothing"), 18), "unknown");
  assert.equal(scoreAnswer(1e-7, 0), "correct");
  assert.equal(scoreAnswer(1e-7, 0, { tolerance: 0 }), "incorrect");
  assert.equal(parseGsm8kGold("x\n#### 18"), 18);
  assert.equal(parseGsm8kGold("a #### 1\nb #### 276,000 "), 276000);
  assert.equal(parseGsm8kGold("#### -3.5"), -3.5);
  assert.throws(() => parseGsm8kGold("no marker"), /no "####"/);
  assert.throws(() => parseGsm8kGold("#### ten"), /not a number: "ten"/);
  const s = accuracySummary(["correct", "incorrect", "unknown", "correct"]);
  assert.deepEqual(s, {
    n: 4,
    correct: 2,
    incorrect: 1,
    unknown: 1,
    unfinished: 0,
    accuracy: 0.5,
    accuracy_finished: 0.5,
    unknown_rate: 0.25,
    unfinished_rate: 0,
  });
  assert.ok(Number.isNaN(accuracySummary([]).accuracy));
});

// ---------------------------------------------------------------------------------------------------
// Issue 14: real reasoning traces

Deno.test("issue 14 fault 1: reasoning that never closed is unfinished, never correct or incorrect", () => {
  // Hit the token budget mid-thought, arguing for another value: the last number (18) equals the gold.
  const cut = "<think>\n3 bags of 6 is 18. Wait, the question says 4 bags, so it should be 24, not 18";
  const s = scoreCompletion(cut, 18);
  assert.equal(s.status, "unfinished");
  assert.equal(s.answer.value, 18); // what the whole text gives, kept for inspection only
  assert.equal(s.answer.region, "all");
  assert.equal(scoreCompletion(cut, 24).status, "unfinished");
  assert.equal(scoreCompletion("no close tag at all", undefined).status, "unfinished");
  // Closed: scored; without gold: unknown.
  assert.equal(scoreCompletion("<think>\n4*6=24\n</think>\n\n24", 24).status, "correct");
  assert.equal(scoreCompletion("<think>\n4*6=24\n</think>\n\n24", 18).status, "incorrect");
  assert.equal(scoreCompletion("<think>\nhmm\n</think>\n\n\\boxed{\\text{No}}", 18).status, "unknown");
  assert.equal(scoreCompletion("<think>x</think> 24", undefined).status, "unknown");
  // A token-level boundary overrides the text: the prose tag is not the end of the reasoning.
  const prose = "<think>\nI must end with </think>. 3*6=18";
  assert.equal(scoreCompletion(prose, 18).status, "correct"); // by text, the prose tag closes it
  assert.equal(
    scoreCompletion(prose, 18, { reasoning: { closed: false, end: prose.length, answerStart: prose.length } })
      .status,
    "unfinished",
  );
  // Accuracy on all rows (unfinished = not correct) and on finished rows, with the unfinished rate.
  const a = accuracySummary(["correct", "unfinished", "incorrect", "correct", "unfinished"]);
  assert.equal(a.n, 5);
  assert.equal(a.unfinished, 2);
  assert.equal(a.accuracy, 2 / 5);
  assert.equal(a.accuracy_finished, 2 / 3);
  assert.equal(a.unfinished_rate, 2 / 5);
  assert.ok(Number.isNaN(accuracySummary(["unfinished"]).accuracy_finished));
});

Deno.test("issue 14 fault 2: the answer after the reasoning beats the answer inside it", () => {
  const boxed = "<think>\n3 bags of 6 is 18, so \\boxed{18}.\nWait, there are 4 bags, not 3. 4*6 = 24.\n" +
    "</think>\n\nThere are 24 apples in total.";
  assert.deepEqual(extractAnswer(boxed), { value: 24, raw: "24", method: "last_number", region: "answer" });
  const final = "<think>\n3 bags of 6 is 18.\nFinal: 18\nWait, there are 4 bags, not 3. 4*6 = 24.\n" +
    "</think>\n\nThere are 24 apples in total.";
  assert.deepEqual(extractAnswer(final), { value: 24, raw: "24", method: "last_number", region: "answer" });
  assert.equal(scoreCompletion(boxed, 24).status, "correct");
  assert.equal(scoreCompletion(final, 18).status, "incorrect");
  // A boxed answer after the reasoning wins over a later-looking number inside it, and over prose after.
  assert.equal(
    extractAnswer("<think>\n\\boxed{5}\n</think>\nSo 3 + 4: \\boxed{7} (checked 9 ways)").value,
    7,
  );
  // Nothing after the reasoning carries a number: the reasoning is the fallback.
  assert.deepEqual(extractAnswer("<think>\nSo \\boxed{18}.\n</think>\n\nDone."), {
    value: 18,
    raw: "18",
    method: "boxed",
    region: "reasoning",
  });
  assert.deepEqual(extractAnswer("<think>\nno numbers\n</think>\n"), {
    value: undefined,
    raw: undefined,
    method: "none",
    region: "reasoning",
  });
  // A text-only box after the reasoning is the stated answer: unknown, no fallback to the reasoning.
  assert.deepEqual(extractAnswer("<think>\n= 18\n</think>\n\\boxed{\\text{Yes}}"), {
    value: undefined,
    raw: undefined,
    method: "boxed",
    region: "answer",
  });
  // Explicit boundary (e.g. from token ids): the text after it is read.
  const t = "<think>\nthe tag </think> ends it. \\boxed{18}\n</think>\nDone.";
  const end = t.lastIndexOf("</think>");
  assert.equal(extractAnswer(t).region, "answer"); // by text: the prose tag
  const byToken = extractAnswer(t, { reasoning: { closed: true, end, answerStart: end + 8 } });
  assert.deepEqual(byToken, { value: 18, raw: "18", method: "boxed", region: "reasoning" });
  assert.deepEqual(reasoningBoundaryByText("a</think>b"), { closed: true, end: 1, answerStart: 9 });
  assert.deepEqual(reasoningBoundaryByText("ab"), { closed: false, end: 2, answerStart: 2 });
});

Deno.test("issue 14 fault 3: LaTeX and markdown number forms give whole numbers or unknown", () => {
  const v = (t: string) => extractAnswer(t).value;
  // the inputs
  assert.equal(v("\\boxed{9{,}500}"), 9500);
  assert.equal(v("The answer is $9{,}500$."), 9500);
  // thousands separators
  assert.equal(v("\\boxed{1{,}000{,}000}"), 1000000);
  assert.equal(v("\\boxed{9\\,500}"), 9500);
  assert.equal(v("\\boxed{8,\\!000}"), 8000);
  assert.equal(v("\\boxed{9\\!500}"), 9500);
  assert.equal(v("\\boxed{9\\ 500}"), 9500);
  assert.equal(v("\\boxed{9~500}"), 9500);
  assert.equal(v("\\boxed{9\u202f500}"), 9500);
  assert.equal(v("\\boxed{9 500}"), 9500);
  assert.equal(v("**Final:** $12{,}345.50"), 12345.5);
  assert.notEqual(v("\\boxed{3{,}5}"), 35);
  // currency signs, escaped or not, before or after a sign
  assert.equal(v("\\boxed{\\$250}"), 250);
  assert.equal(v("\\boxed{\\$1{,}250.75}"), 1250.75);
  assert.equal(v("Final: \\$-5"), -5);
  assert.equal(v("\\boxed{-\\$5}"), -5);
  assert.equal(v("\\boxed{\\text{\\$}18}"), 18);
  assert.equal(v("The total is $\\$18$."), 18);
  assert.equal(v("Final: €40"), 40);
  // \text around units and numbers
  assert.equal(v("\\boxed{18 \\text{ dollars}}"), 18);
  assert.equal(v("\\boxed{\\text{18 apples}}"), 18);
  assert.equal(v("\\boxed{\\mathrm{18}\\,\\mathrm{km}}"), 18);
  assert.equal(v("\\boxed{\\textbf{42}}"), 42);
  assert.equal(v("\\boxed{18\\text{ m}^2}"), 18);
  // fractions and mixed numbers
  assert.equal(v("\\boxed{\\dfrac{3}{4}}"), 0.75);
  assert.equal(v("\\boxed{\\frac12}"), 0.5);
  assert.equal(v("\\boxed{2\\frac{1}{2}}"), 2.5);
  assert.equal(v("\\boxed{2\\dfrac{1}{2}}"), 2.5);
  assert.equal(v("\\boxed{2 \\tfrac{3}{4}}"), 2.75);
  assert.equal(v("\\boxed{-2\\frac{1}{2}}"), -2.5);
  assert.equal(v("\\boxed{-\\frac{3}{4}}"), -0.75);
  assert.equal(v("Final: 2 1/2"), 2.5);
  assert.equal(v("It takes 3 1/4 hours."), 3.25);
  assert.equal(v("It is 3 5/4"), 1.25); // not a mixed number: "3" then "5/4", the last is 5/4
  assert.equal(v("Final: 5/4"), 1.25);
  // negative signs vs operators
  assert.equal(v("\\boxed{-18}"), -18);
  assert.equal(v("\\boxed{−18}"), -18);
  assert.equal(v("the change is −12 degrees"), -12);
  assert.equal(v("the change is -12 degrees"), -12);
  assert.equal(v("between 5-10 apples"), 10);
  assert.equal(v("Final: 20 - 2"), 20); // the first number of the line, never "-2"
  assert.equal(v("so we take 20 - 2"), 2);
  assert.equal(v("Final: 20 - 2 = 18"), 18);
  assert.equal(v("\\boxed{(-4)}"), -4);
  // percent
  assert.equal(v("\\boxed{25\\%}"), 25);
  assert.equal(v("\\boxed{12.5\\%}"), 12.5);
  assert.equal(v("Final: 40%"), 40);
  // scientific notation
  assert.equal(v("\\boxed{1.2 \\times 10^{3}}"), 1200);
  assert.equal(v("\\boxed{3 \\times 10^6}"), 3000000);
  // display math and markdown around the answer
  assert.equal(v("\\[\n\\boxed{\\displaystyle 621}\n\\]"), 621);
  assert.equal(v("**Final Answer:** **$1{,}080$**"), 1080);
  assert.equal(v("Final: `64`"), 64);
  // text-only boxes and lines: no value (unknown), never a fragment of an earlier number
  assert.deepEqual(extractAnswer("He has 18 apples. \\boxed{\\text{Yes}}"), {
    value: undefined,
    raw: undefined,
    method: "boxed",
    region: "all",
  });
  assert.equal(v("So 18 or 24.\n\\boxed{\\text{Not enough information}}"), undefined);
  assert.equal(v("18 cats\nFinal: John"), undefined);
  // a box holding several numbers stands for none of them (never the first fragment)
  assert.equal(v("He works 5.5 hours.\n\\boxed{5 \\text{ hours and } 30 \\text{ minutes}}"), undefined);
  assert.equal(v("\\boxed{12, 15}"), undefined);
  assert.equal(v("\\boxed{5-10}"), undefined);
  assert.equal(v("\\boxed{3:30}"), undefined);
  assert.equal(v("\\boxed{4 \\times 6 = 24}"), 24);
  // unit exponents and ordinals are not numbers
  assert.equal(v("\\boxed{18 \\text{ cm}^2}"), 18);
  assert.equal(v("\\boxed{18\\,\\text{m}^{3}}"), 18);
  assert.equal(v("\\boxed{3\\text{rd}}"), 3);
  // a Final line keeps its first number after the last "=" (explanations may follow)
  assert.equal(v("Final: 18 apples (3 bags of 6)"), 18);
  // placeholders are skipped
  assert.equal(v("Compute 3*6 = 18.\n\\boxed{}"), 18);
  assert.equal(v("3*6 = 18\nFinal: [answer]"), 18);
  assert.equal(scoreAnswer(extractAnswer("<think>.</think>\\boxed{\\text{Yes}}"), 1), "unknown");
});
