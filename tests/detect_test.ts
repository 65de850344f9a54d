import assert from "node:assert/strict";
import { detect, type DetectOptions } from "../experiments/backtracking/detect.ts";

const STRICT = ["Wait", "Actually", "Hold on"];
const RELAXED = ["Wait", "Actually", "Hold on", "Let me check", "Let's check", "I was wrong", "mistake"];
const ref: DetectOptions = { rule: "reference", triggersStrict: STRICT, triggersRelaxed: RELAXED };
const cor: DetectOptions = { rule: "corrected", triggersStrict: STRICT, triggersRelaxed: RELAXED };
const P = 87;

/** Naive independent oracle for the reference rule: scan every index, Python-style \b by hand. */
function naiveReferenceOnset(text: string, triggers: string[]): number {
  const isW = (c: string | undefined) => c !== undefined && /[\p{L}\p{N}_]/u.test(c);
  const cps = Array.from(text);
  for (let i = 0; i < cps.length; i++) {
    for (const t of triggers) {
      const tc = Array.from(t);
      const seg = cps.slice(i, i + tc.length).join("");
      if (seg.toLowerCase() !== t.toLowerCase()) continue;
      const bBefore = isW(cps[i - 1]) !== isW(cps[i]);
      const bAfter = isW(cps[i + tc.length - 1]) !== isW(cps[i + tc.length]);
      if (bBefore && bAfter) return i;
    }
  }
  return -1;
}

Deno.test("lower-case 'wait' in prose counts for the reference rule only", () => {
  const toks = ["We", " have", " to", " wait", " 3", " days", ".", " Actually", " fine"];
  const r = detect({ tokenTexts: toks, promptTokens: P }, ref);
  assert.equal(r.has_trigger, true);
  assert.equal(r.onset?.text, "wait");
  assert.equal(r.onset?.trigger, "Wait");
  assert.equal(r.onset?.token_index, 3);
  assert.equal(r.onset?.pred_pos, P + 3 - 1);
  assert.deepEqual(r.strict.counts, { Wait: 1, Actually: 1, "Hold on": 0 });
  const c = detect({ tokenTexts: toks, promptTokens: P }, cor);
  assert.equal(c.has_trigger, true);
  assert.equal(c.onset?.text, "Actually");
  assert.equal(c.onset?.token_index, 7);
  assert.deepEqual(c.strict.counts, { Wait: 0, Actually: 1, "Hold on": 0 });
  // "actually" mid-sentence: not counted by the corrected rule.
  const mid = detect({ tokenTexts: ["it", " actually", " works", " Wait", " no"], promptTokens: P }, cor);
  assert.equal(mid.has_trigger, false);
});

Deno.test("a Wait after </think> is not counted by the corrected rule", () => {
  const toks = ["3", "*", "6", "=", "18", ".\n", "</think>", "\n\n", "Wait", ",", " 18", "."];
  const c = detect({ tokenTexts: toks, promptTokens: P }, cor);
  assert.equal(c.has_trigger, false);
  assert.equal(c.reasoning_closed, true);
  assert.equal(c.reasoning_end_char, "3*6=18.\n".length);
  assert.equal(c.strict.tokens_searched, 6);
  const r = detect({ tokenTexts: toks, promptTokens: P }, ref);
  assert.equal(r.onset?.token_index, 8);
  assert.equal(r.reasoning_closed, true);
  const open = detect({ tokenTexts: ["x", ".", " Wait"], promptTokens: P }, cor);
  assert.equal(open.reasoning_closed, false);
  assert.equal(open.onset?.token_index, 2);
});

Deno.test("'mistakes' does not match 'mistake'; 'hold onto' does not match", () => {
  const r = detect({ tokenTexts: ["No", " mistakes", ";", " hold", " onto", " it"], promptTokens: P }, ref);
  assert.equal(r.relaxed.has_trigger, false);
  assert.equal(r.onset, undefined);
  const m = detect({ tokenTexts: ["a", " mistake", " here"], promptTokens: P }, ref);
  assert.equal(m.strict.has_trigger, false);
  assert.equal(m.relaxed.has_trigger, true);
  assert.equal(m.onset?.text, "mistake");
  assert.equal(m.onset?.from_strict, false);
});

Deno.test("'Hold on' across a token boundary maps to the ' Hold' token", () => {
  const toks = ["18", ".", " Hold", " on", ",", " that", "'s", " wrong"];
  for (const opts of [ref, cor]) {
    const r = detect({ tokenTexts: toks, tokenIds: [1, 2, 3, 4, 5, 6, 7, 8], promptTokens: P }, opts);
    assert.equal(r.onset?.text, "Hold on");
    assert.equal(r.onset?.char, 4);
    assert.equal(r.onset?.token_index, 2);
    assert.equal(r.onset?.token_id, 3);
    assert.equal(r.onset?.token_index_in_full, P + 2);
    assert.equal(r.onset?.pred_pos, P + 1);
  }
});

Deno.test("a trigger at the very first token", () => {
  for (const opts of [ref, cor]) {
    const r = detect({ tokenTexts: ["Wait", ",", " let", " me"], promptTokens: P }, opts);
    assert.equal(r.onset?.token_index, 0);
    assert.equal(r.onset?.char, 0);
    assert.equal(r.onset?.pred_pos, P - 1);
  }
});

Deno.test("clause starts for the corrected rule: newline, punctuation, quotes, markdown", () => {
  const count = (t: string) => detect({ tokenTexts: [t], promptTokens: 0 }, cor).strict.matches.length;
  assert.equal(count("x\n\nWait"), 1);
  assert.equal(count("x; Wait"), 1);
  assert.equal(count("x, Actually"), 1);
  assert.equal(count("x — Wait"), 1);
  assert.equal(count("(Wait"), 1);
  assert.equal(count('"Wait'), 1);
  assert.equal(count("**Wait**"), 1);
  assert.equal(count("I Wait"), 0);
  assert.equal(count("x. Waiting"), 0);
  assert.equal(count("x. WAIT"), 0);
  assert.equal(count("x. Wait_"), 0);
});

Deno.test("non-ASCII neighbours use Python's Unicode \\b; indices in UTF-16 and code points", () => {
  // "éwait": JS ASCII \b would match; Python \b does not (é is a word character).
  const r1 = detect({ tokenTexts: ["caf", "éwait", " ok"], promptTokens: 0 }, ref);
  assert.equal(r1.has_trigger, false);
  const r2 = detect({ tokenTexts: ["waitä"], promptTokens: 0 }, ref);
  assert.equal(r2.has_trigger, false);
  // Astral characters before the match: UTF-16 and code-point indices differ.
  const toks = ["𝑥", " = ", "2", ". ", "Wait"];
  const r3 = detect({ tokenTexts: toks, promptTokens: 10 }, ref);
  assert.equal(r3.onset?.char, 8);
  assert.equal(r3.onset?.char_py, 7);
  assert.equal(r3.onset?.token_index, 4);
  const r4 = detect({ tokenTexts: ["¿", "Wait", "?"], promptTokens: 0 }, ref);
  assert.equal(r4.onset?.token_index, 1);
});

Deno.test("reference onset agrees with a naive per-index oracle on generated texts", () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const words = [
    "wait",
    "Wait",
    "WAIT",
    "awaits",
    "é",
    "Actually",
    "hold",
    "on",
    "mistake",
    "mistakes",
    "_",
    "7",
    "x",
  ];
  const seps = [" ", "", ",", "\n", "é", ".", "_"];
  for (let k = 0; k < 500; k++) {
    const toks: string[] = [];
    for (let i = 0; i < 8; i++) {
      toks.push(seps[Math.floor(rnd() * seps.length)]! + words[Math.floor(rnd() * words.length)]!);
    }
    const text = toks.join("");
    const r = detect({ tokenTexts: toks, promptTokens: 0 }, ref);
    const naive = naiveReferenceOnset(text, STRICT);
    const naiveRelaxed = naiveReferenceOnset(text, RELAXED);
    assert.equal(r.strict.matches[0]?.char_py ?? -1, naive, JSON.stringify(text));
    assert.equal(r.onset?.char_py ?? -1, naive >= 0 ? naive : naiveRelaxed, JSON.stringify(text));
    if (r.onset) {
      const before = toks.slice(0, r.onset.token_index).join("").length;
      assert.ok(before <= r.onset.char && r.onset.char < before + toks[r.onset.token_index]!.length);
    }
  }
});

Deno.test("triggers per 1k tokens and mismatched ids", () => {
  const toks = Array.from({ length: 500 }, (_, i) => (i % 100 === 0 ? "\nWait" : " x"));
  const r = detect({ tokenTexts: toks, promptTokens: 0 }, cor);
  assert.equal(r.strict.matches.length, 5);
  assert.equal(r.strict.triggers_per_1k_tokens, 10);
  assert.throws(() => detect({ tokenTexts: ["a"], tokenIds: [], promptTokens: 0 }, cor), /tokenIds has 0/);
});

// ---------------------------------------------------------------------------------------------------
// Issue 14

Deno.test("issue 14 fault 4: the reasoning ends at the </think> token, not at the tag written in prose", () => {
  const THINK_CLOSE = 151649;
  // The model writes the tag in prose (" </" "think" ">."), then keeps reasoning and backtracks.
  const toks = [
    "I",
    " end",
    " with",
    " </",
    "think",
    ">.",
    " 3",
    "*",
    "6",
    "=",
    "18",
    ".\n",
    "Wait",
    ",",
    " 24",
  ];
  const ids = toks.map((_, i) => 1000 + i);
  const closed = [...toks, "</think>", "\n\n", "Wait", " 24"];
  const closedIds = [...ids, THINK_CLOSE, 2000, 2001, 2002];
  const byId = detect(
    { tokenTexts: closed, tokenIds: closedIds, promptTokens: P },
    { ...cor, thinkCloseTokenId: THINK_CLOSE },
  );
  assert.equal(byId.reasoning_end_by, "token_id");
  assert.equal(byId.reasoning_end_token, toks.length);
  assert.equal(byId.reasoning_end_char, toks.join("").length);
  assert.equal(byId.answer_start_char, toks.join("").length + "</think>".length);
  assert.equal(byId.has_trigger, true);
  assert.equal(byId.onset?.token_index, 12);
  assert.equal(byId.strict.matches.length, 1); // the Wait after the real close tag is not counted
  // By text, the prose tag would cut the reasoning before the Wait.
  const byText = detect({ tokenTexts: closed, promptTokens: P }, cor);
  assert.equal(byText.reasoning_end_by, "text");
  assert.equal(byText.reasoning_end_char, "I end with ".length);
  assert.equal(byText.has_trigger, false);
  // Ids known, no close token: not closed although the text holds "</think>".
  const open = detect({ tokenTexts: toks, tokenIds: ids, promptTokens: P }, {
    ...cor,
    thinkCloseTokenId: THINK_CLOSE,
  });
  assert.equal(open.reasoning_closed, false);
  assert.equal(open.reasoning_end_by, "none");
  assert.equal(open.reasoning_end_char, toks.join("").length);
  assert.equal(open.reasoning_end_token, -1);
  assert.equal(open.onset?.token_index, 12);
  // The reference rule still reads the whole completion.
  const r = detect({ tokenTexts: closed, tokenIds: closedIds, promptTokens: P }, {
    ...ref,
    thinkCloseTokenId: THINK_CLOSE,
  });
  assert.equal(r.strict.matches.length, 2);
});

Deno.test("issue 14 fault 5: triggers after an interjection or conjunction; the onset is the first one", () => {
  const one = (text: string) => detect({ tokenTexts: [text], promptTokens: P }, cor);
  for (
    const [text, lead, word] of [
      ["18 apples. But wait, there are 4 bags.", "But ", "wait"],
      ["18 apples. Oh wait, 4 bags.", "Oh ", "wait"],
      ["18 apples. Oh, wait. 4 bags.", "Oh, ", "wait"],
      ["So 18. Hmm, wait, that is wrong.", "Hmm, ", "wait"],
      ["So 18, but wait, 4 bags.", "but ", "wait"],
      ["So 18.\nNo, wait: 24.", "No, ", "wait"],
      ["So 18. But actually, it is 24.", "But ", "actually"],
      ["So 18. But hold on, 24.", "But ", "hold on"],
      ["So 18. And Wait, 24.", "And ", "Wait"],
      ["So 18. OKAY wait.", "OKAY ", "wait"],
      // (c) lower case at a clause start, used as an interjection
      ["So 18... wait, 4 bags.", "", "wait"],
      ["3 bags, wait, 4 bags.", "", "wait"],
      ["So 18 — wait — 24.", "", "wait"],
      ["It is, actually, 24.", "", "actually"],
    ] as const
  ) {
    const r = one(text);
    assert.equal(r.has_trigger, true, text);
    assert.equal(r.onset?.text, word, text);
    assert.equal(r.onset?.lead, lead, text);
    assert.equal(r.onset?.char, text.indexOf(word), text);
  }
  // The onset is the first real trigger: an earlier "But wait" before a sentence-initial "Wait".
  const toks = [
    "3",
    "*",
    "6",
    "=",
    "18",
    ".",
    " But",
    " wait",
    ",",
    " 4",
    " bags",
    ".",
    "\n",
    "Wait",
    ",",
    " 24",
  ];
  const r = detect({ tokenTexts: toks, promptTokens: P }, cor);
  assert.equal(r.onset?.token_index, 7);
  assert.equal(r.onset?.text, "wait");
  assert.equal(r.onset?.lead, " But ".trimStart());
  assert.deepEqual(r.strict.counts, { Wait: 2, Actually: 0, "Hold on": 0 });
  assert.equal(r.strict.matches[1]!.lead, "");
  // Not triggers: mid-clause words, a lead that is part of a word, two lead words, other verbs.
  for (
    const text of [
      "we have to wait 3 days",
      "it actually works",
      "Also wait, no.", // "also" is not a lead; "so" inside it is not a word
      "And so wait for it",
      "But we wait.",
      "Buttons wait.",
      "but waiting is fine", // word boundary after the trigger
      "Then, wait for the bus.", // lower case, not an interjection
      "Then, actually it works", // lower case without a lead or an interjection mark
    ]
  ) assert.equal(one(text).has_trigger, false, text);
  // Lead + lower case is the corrected rule only; the reference rule is unchanged (any case anywhere).
  const refR = detect({ tokenTexts: toks, promptTokens: P }, ref);
  assert.equal(refR.onset?.token_index, 7);
  assert.equal(refR.onset?.lead, "");
});
