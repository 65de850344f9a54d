/**
 * What kind of backtracking an onset opens: a `revision` (the trace replaces a value it had stated, or
 * says it erred), a `verification` (it re-derives or re-checks and confirms), or `other` (restating or
 * rereading the question, an unresolved re-check, conflicting evidence). Rule-based and transparent:
 * every decision comes with the evidence that made it ({@linkcode OnsetEvidence}), so a reader can audit
 * each event.
 *
 * ## The rule
 *
 * The **window** is the text from the onset to the next trigger (`nextTriggerChar`), the end of the
 * reasoning, or `maxChars` (default 1200) after the onset, whichever comes first. The **value before**
 * is the last result-like number before the onset ({@linkcode resultNumbers}: a number after `=`,
 * `\boxed{`, `total is`, `that's` …; hedged ones — `maybe`, `might`, a question — are skipped); the
 * **values after** are the firm result-like numbers in the window. Phrases are matched case-insensitively
 * in the window:
 *
 * - error: an admission (`I made a mistake`, `I must have made an error`, `that's wrong`, `I was wrong`,
 *   `I miscalculated`, `misread`, `can't be right`, `doesn't seem right`, `doesn't add up`, `, not 3`,
 *   `instead of`, a window opening `Wait, no.` …); one in a question (`did I make a mistake?`) or after
 *   `if` / `whether` is not an admission, nor a negated one (`no mistake`, `didn't make a mistake`,
 *   `I don't think I made a mistake`, `nothing wrong`; these count as confirmations);
 * - confirmation: `that's correct/right`, `is correct`, `yes,`, `checks out`, `confirms`, `consistent`,
 *   `matches`, `same answer`, `looks right`, `that makes sense`, `indeed`, `as before` … (not in a
 *   question, not after `if` / `whether`);
 * - re-check (context only): `let me check/verify/double-check/recalculate/make sure` …;
 * - reread (context only): `the problem says/asks`, `let me reread`, `re-reading` ….
 *
 * Decision, first that applies:
 * 1. an error phrase → `revision` (`error_phrase`), unless a confirmation also appears and the last value
 *    after equals the value before → `other` (`conflict`);
 * 2. the last value after differs from the value before → `revision` (`value_changed`), unless a
 *    confirmation also appears and the value before is restated in the window → `other` (`conflict`);
 * 3. a confirmation → `verification` (`confirm_phrase`); the value before restated as a result (the last
 *    value after equals it) → `verification` (`restated_value`);
 * 4. otherwise `other`: `reread` (a reread phrase), `recheck_unresolved` (a re-check phrase without an
 *    outcome), `no_evidence`.
 *
 * Values are equal within 1e-6 relative (as answers are scored).
 *
 * ## Limits
 *
 * - English phrase lists: other languages, paraphrases outside the lists and sarcasm are missed.
 * - A check by an inverse computation (`18 / 6 = 3 bags, yes`) has a last value that differs from the
 *   value before; with a confirmation but without restating 18 it is read as a value change (revision).
 * - A bare `is` is not a result marker (`each bag is 6` restates the question), so `3 bags of 6 is 18`
 *   gives no value; such traces rely on phrases.
 * - The window stops at the next trigger: a re-check that is confirmed only after another `Wait` is
 *   `recheck_unresolved` here, and the later onset is classified on its own.
 * - No semantics: a revision of an intermediate step that ends at the same final value is a
 *   verification by value unless an error phrase says otherwise.
 *
 * @module
 */

import { type ResultNumber, resultNumbers } from "./answers.ts";

/** The kind of backtracking an onset opens. */
export type OnsetType = "revision" | "verification" | "other";

/** Which step of the rule (module doc) decided. */
export type OnsetRule =
  | "error_phrase"
  | "value_changed"
  | "confirm_phrase"
  | "restated_value"
  | "conflict"
  | "reread"
  | "recheck_unresolved"
  | "no_evidence";

/** A phrase found in the window. */
export interface PhraseMatch {
  /** The text matched. */
  readonly text: string;
  /** UTF-16 index in the full text. */
  readonly char: number;
}

/** The evidence behind one classification. */
export interface OnsetEvidence {
  /** The rule step that decided. */
  readonly rule: OnsetRule;
  /** The window examined, `[start, end)` in UTF-16 indices of the full text. */
  readonly window: { readonly start: number; readonly end: number };
  /** The last firm result-like number before the onset, if any. */
  readonly value_before: ResultNumber | undefined;
  /** Firm result-like numbers in the window, in order. */
  readonly values_after: readonly ResultNumber[];
  /** The first error admission in the window. */
  readonly error_phrase: PhraseMatch | undefined;
  /** The first confirmation in the window (negated error phrases included). */
  readonly confirm_phrase: PhraseMatch | undefined;
  /** The first re-check phrase in the window. */
  readonly recheck_phrase: PhraseMatch | undefined;
  /** The first reread phrase in the window. */
  readonly reread_phrase: PhraseMatch | undefined;
}

/** Result of {@linkcode classifyOnset}. */
export interface OnsetClassification {
  readonly type: OnsetType;
  readonly evidence: OnsetEvidence;
}

/** Options of {@linkcode classifyOnset}. */
export interface ClassifyOnsetOptions {
  /** Start of the next trigger (the window ends there). */
  readonly nextTriggerChar?: number;
  /** End of the reasoning (the window ends there); default the text length. */
  readonly reasoningEnd?: number;
  /** Longest window in UTF-16 code units (default 1200). */
  readonly maxChars?: number;
}

const ERROR_RES: readonly RegExp[] = [
  /\b(?:I|we)\s+(?:\w+\s+){0,2}(?:made|make)\s+(?:a|an|some)\s+(?:\w+\s+)?(?:mistake|error)s?\b/giu,
  // "Wait, no." / "Actually no," at the start of the window
  /^\S+(?:\s+on)?[,.!]?\s+no\s*[,.!;:—–-]/giu,
  /\b(?:doesn't|does\s+not|don't|do\s+not)\s+(?:seem|look|sound)\s+(?:right|correct)\b/giu,
  /\b(?:that|this|it)(?:'s|’s|\s+is)\s+(?:not\s+possible|impossible)\b/giu,
  /\bmy\s+(?:mistake|error|bad)\b/giu,
  /\b(?:that|this|it|which|that\s+answer|the\s+answer)(?:'s|’s|\s+is|\s+was)\s+(?:wrong|incorrect|not\s+right|not\s+correct|a\s+mistake|an\s+error)\b/giu,
  /\b(?:I|we)\s+(?:was|were)\s+wrong\b/giu,
  /\b(?:I|we)\s+(?:miscalculated|misread|misunderstood|miscounted|forgot|overlooked|messed\s+up|mixed\s+up)\b/giu,
  /\bmis(?:calculat|read|count|understood|interpret)\w*/giu,
  /\b(?:can't|can’t|cannot|couldn't)\s+be\s+(?:right|correct)\b/giu,
  /\b(?:doesn't|does\s+not|don't|do\s+not)\s+(?:make\s+sense|add\s+up)\b/giu,
  /\b(?:is|was)\s+incorrect\b/giu,
  /,\s*not\s+[$€£¥]?\d/giu,
  /\b(?:instead\s+of|rather\s+than)\b/giu,
  /\bI\s+(?:think\s+I\s+)?(?:need|have)\s+to\s+correct\b/giu,
];

const NEGATED_ERROR_RE =
  /\b(?:don't|do\s+not|didn't|did\s+not)\s+think\s+(?:I|we)\s+(?:\w+\s+){0,2}(?:made|make)\s+(?:a|an|any)\s+(?:mistake|error)s?\b|\b(?:no|not\s+a|without\s+(?:a|any))\s+(?:mistakes?|errors?)\b|\b(?:didn't|did\s+not|don't|do\s+not|haven't|have\s+not)\s+(?:make|see|find|spot)\s+(?:a\s+|an\s+|any\s+)?(?:mistakes?|errors?)\b|\bnothing\s+(?:is\s+)?wrong\b|\bnot\s+wrong\b/giu;

const CONFIRM_RE =
  /\b(?:that's|that’s|that\s+is|this\s+is|it's|it’s|it\s+is|which\s+is|so\s+it's|answer\s+is)\s+(?:correct|right|consistent|confirmed)\b|\b(?:is|are|was|seems|looks|sounds)\s+(?:correct|right)\b|\b(?:yes|yep|yeah)\b[,.!]|\bchecks\s+out\b|\bconfirm(?:s|ed)\b|\bconsistent\b|\bmatches\b|\bsame\s+(?:answer|result|value|number)\b|\b(?:looks|seems|sounds)\s+good\b|\bas\s+before\b|\bthat\s+makes\s+sense\b|\bindeed\b|\ball\s+good\b|\b(?:I'm|I\s+am)\s+(?:confident|sure)\b|\bstill\s+(?:get|gets|got|gives|comes\s+to)\b/giu;

const RECHECK_RE =
  /\blet\s+me\s+(?:double[- ]?check|check|verify|re-?check|re-?calculate|re-?compute|confirm|make\s+sure|go\s+(?:back|through)|re-?examine|re-?do)\b|\b(?:to|should|I'll|I\s+will)\s+(?:double[- ]?check|verify|re-?check|make\s+sure)\b|\bdouble[- ]?check(?:ing)?\b|\bverify(?:ing)?\b/giu;

const REREAD_RE =
  /\bthe\s+(?:problem|question)\s+(?:says|said|states|asks|is\s+asking|mentions|gives)\b|\blet\s+me\s+re-?read\b|\bre-?read(?:ing)?\b|\bread(?:ing)?\s+(?:the\s+)?(?:problem|question)\s+again\b/giu;

/**
 * The first match of `re` in `text` (positions shifted by `offset`), skipping, when `assertive`, matches
 * in a question or after `if` / `whether` in their sentence (`let me check if 18 is correct`).
 */
function firstMatch(re: RegExp, text: string, offset: number, assertive = false): PhraseMatch | undefined {
  for (const m of text.matchAll(new RegExp(re.source, re.flags))) {
    if (assertive) {
      if (inQuestion(text, m.index + m[0].length)) continue;
      const sStart = Math.max(...[".", "!", "?", "\n"].map((c) => text.lastIndexOf(c, m.index - 1))) + 1;
      if (/\b(?:if|whether)\b/i.test(text.slice(sStart, m.index))) continue;
    }
    return { text: m[0], char: offset + m.index };
  }
  return undefined;
}

/** Whether the sentence holding `[i, j)` of `text` ends with a question mark. */
function inQuestion(text: string, j: number): boolean {
  const end = /[.!?\n]/.exec(text.slice(j));
  return end?.[0] === "?";
}

function same(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
}

/**
 * Classify one backtracking onset (see the module doc for the rule and its limits).
 *
 * @param text The completion text.
 * @param onsetChar UTF-16 index of the onset (the trigger's start) in `text`.
 * @param options Window limits: the next trigger, the end of the reasoning, the longest window.
 * @returns The type and the evidence behind it.
 * @throws {RangeError} if `onsetChar` is outside the text.
 * @example
 * ```ts
 * classifyOnset("4 bags: 3*6 = 18.\nWait, 4 bags, not 3. 4*6 = 24.", 18).type; // "revision"
 * ```
 */
export function classifyOnset(
  text: string,
  onsetChar: number,
  options: ClassifyOnsetOptions = {},
): OnsetClassification {
  if (!Number.isInteger(onsetChar) || onsetChar < 0 || onsetChar > text.length) {
    throw new RangeError(`classifyOnset: onsetChar ${onsetChar} is outside the text (length ${text.length})`);
  }
  const end = Math.max(
    onsetChar,
    Math.min(
      text.length,
      options.reasoningEnd ?? text.length,
      options.nextTriggerChar !== undefined && options.nextTriggerChar > onsetChar
        ? options.nextTriggerChar
        : text.length,
      onsetChar + (options.maxChars ?? 1200),
    ),
  );
  const win = text.slice(onsetChar, end);
  const before = resultNumbers(text, 0, onsetChar).filter((r) => !r.tentative).at(-1);
  const after = resultNumbers(text, onsetChar, end).filter((r) => !r.tentative);

  // Negated error phrases are confirmations; blank them out before looking for admissions.
  const negated = firstMatch(NEGATED_ERROR_RE, win, onsetChar);
  const blanked = win.replace(
    new RegExp(NEGATED_ERROR_RE.source, NEGATED_ERROR_RE.flags),
    (m) => " ".repeat(m.length),
  );
  let error: PhraseMatch | undefined;
  for (const re of ERROR_RES) {
    const m = firstMatch(re, blanked, onsetChar, true);
    if (m && (error === undefined || m.char < error.char)) error = m;
  }
  const confirmWord = firstMatch(CONFIRM_RE, blanked, onsetChar, true);
  const confirm = [confirmWord, negated].filter((x) => x !== undefined).sort((a, b) => a.char - b.char)[0];
  const recheck = firstMatch(RECHECK_RE, win, onsetChar);
  const reread = firstMatch(REREAD_RE, win, onsetChar);

  const last = after.at(-1);
  const changed = before !== undefined && last !== undefined && !same(last.value, before.value);
  const lastRestates = before !== undefined && last !== undefined && same(last.value, before.value);
  const restatedAnywhere = before !== undefined && after.some((r) => same(r.value, before.value));

  let type: OnsetType;
  let rule: OnsetRule;
  if (error) {
    [type, rule] = confirm && lastRestates ? ["other", "conflict"] : ["revision", "error_phrase"];
  } else if (changed) {
    [type, rule] = confirm && restatedAnywhere ? ["other", "conflict"] : ["revision", "value_changed"];
  } else if (confirm) {
    [type, rule] = ["verification", "confirm_phrase"];
  } else if (lastRestates) {
    [type, rule] = ["verification", "restated_value"];
  } else if (reread) {
    [type, rule] = ["other", "reread"];
  } else if (recheck) {
    [type, rule] = ["other", "recheck_unresolved"];
  } else {
    [type, rule] = ["other", "no_evidence"];
  }
  return {
    type,
    evidence: {
      rule,
      window: { start: onsetChar, end },
      value_before: before,
      values_after: after,
      error_phrase: error,
      confirm_phrase: confirm,
      recheck_phrase: recheck,
      reread_phrase: reread,
    },
  };
}
