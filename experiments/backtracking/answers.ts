/**
 * Answer extraction, normalisation and scoring.
 *
 * Two extractors:
 *
 * - {@linkcode extractAnswerReference}: the reference's extractor, bug for bug (docs/protocol.md §9), with its
 *   normaliser {@linkcode normalizeReference} reproducing Python `float()` / `repr()` (docs/protocol.md §9), and
 *   {@linkcode isCorrectReference} (exact string comparison).
 * - {@linkcode extractAnswer}: the robust extractor of the corrected protocol (docs/protocol.md §9): the text after
 *   the reasoning (`</think>`) first, the reasoning only when nothing after it carries a number; in each,
 *   the last `\boxed{…}` or `Final:` line that holds a number, else the last number; scored with a
 *   tolerance by {@linkcode scoreAnswer}. {@linkcode scoreCompletion} adds the `unfinished` status: a
 *   completion whose reasoning never closed is neither correct nor incorrect.
 *
 * Accuracy is defined once, in {@linkcode accuracySummary}: correct / n, unknowns and unfinished rows
 * counted in n; accuracy on finished rows and the unfinished rate beside it.
 *
 * Number forms read (LaTeX and markdown as R1-style models write them): `,` / `{,}` / `\,` / `\!` /
 * `\ ` / `~` / thin spaces as thousands separators (only before a group of exactly three digits), `$`,
 * `\$`, `€ £ ¥` before the number (after a sign too: `-\$5`), `−` (U+2212), `\text{…}` / `\mathrm{…}`
 * / `\textbf{…}` around numbers or units, `\frac` / `\dfrac` / `\tfrac` (also `\frac12`), mixed numbers
 * (`2\frac{1}{2}`, `2 1/2` → 2.5), `a \times 10^{b}`, `%` / `\%` (dropped: "25%" → 25), markdown
 * `**…**`. A minus sign right after an operand (`18 - 3`, `5-10`) is an operator, not a sign. A box or
 * `Final:` line that holds text but no number (`\boxed{\text{Yes}}`) gives no value (unknown), never a
 * fragment of an earlier number; a placeholder (`Final: <answer>`, an empty box) is skipped.
 *
 * @module
 */

export {
  extractAnswerReference,
  isCorrectReference,
  normalizeReference,
  pyFloat,
  pyFloatRepr,
  pyStrip,
} from "./reference/answers.ts";

// ---------------------------------------------------------------------------------------------------
// Robust extractor

/** How {@linkcode extractAnswer} found its answer. */
export type ExtractionMethod = "boxed" | "final" | "last_number" | "none";

/**
 * Which part of the completion the answer came from: `answer` = the text after the reasoning's close
 * tag, `reasoning` = the reasoning (nothing after the close tag carried a number), `all` = the whole
 * text (no close tag found).
 */
export type AnswerRegion = "answer" | "reasoning" | "all";

/** Result of {@linkcode extractAnswer}. */
export interface ExtractedAnswer {
  /** The numeric value, or `undefined` when no number was found. */
  readonly value: number | undefined;
  /** The text the value was parsed from (the number as written), or `undefined`. */
  readonly raw: string | undefined;
  readonly method: ExtractionMethod;
  /** Where the answer was read; see {@linkcode AnswerRegion}. */
  readonly region: AnswerRegion;
}

// A number token: comma-grouped or plain digits, optional decimals; or a bare decimal ".5".
const NUM = String.raw`(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+`;
// A sign counts only where it cannot be a binary operator: not after a digit, ")" or "]".
const SIGN = String.raw`(?:(?<![\d)\]]\s*)([-−])\s*)?`;
const NUMBER_RE = new RegExp(
  String.raw`(?<![\d.])${SIGN}[$€£¥]?\s*(${NUM})` +
    String.raw`(?:\s*/\s*(${NUM})|\s+(\d+)\s*/\s*(\d+)(?![\d.,/]))?(?![\d])`,
  "gu",
);

function toNumber(t: string): number {
  return Number(t.replaceAll(",", ""));
}

/** A number found in a text: its value, as written, and where it starts. */
export interface NumberHit {
  readonly value: number;
  readonly raw: string;
  /** Start index in the text searched (UTF-16). */
  readonly index: number;
}

/**
 * Every number of an already cleaned text (see {@linkcode cleanAnswerText}), in text order: signs,
 * currency, comma groups, decimals, simple fractions `a/b` (evaluated; `/0` skipped) and mixed numbers
 * `a b/c` with b < c (= a + b/c).
 */
export function numbersIn(text: string): NumberHit[] {
  const out: NumberHit[] = [];
  const re = new RegExp(NUMBER_RE.source, "gu");
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const sign = m[1] ? -1 : 1;
    let v = toNumber(m[2]!);
    let raw = m[0].trim();
    if (m[3] !== undefined) {
      const den = toNumber(m[3]);
      if (den === 0) continue;
      v /= den;
    } else if (m[4] !== undefined) {
      const num = Number(m[4]);
      const den = Number(m[5]);
      if (den === 0 || num >= den || /[,.]/.test(m[2]!)) {
        // not a mixed number ("3 5/4"): read the leading number alone, then go on from the next one
        re.lastIndex = m.index + m[0].indexOf(m[2]!) + m[2]!.length;
        raw = m[0].slice(0, m[0].indexOf(m[2]!) + m[2]!.length).trim();
      } else v += num / den;
    }
    if (Number.isFinite(v)) out.push({ value: sign * v, raw, index: m.index });
  }
  return out;
}

/** Extract the balanced-brace argument starting at `open` (index of "{"); undefined if unbalanced. */
function bracedArg(text: string, open: number): { arg: string; end: number } | undefined {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return { arg: text.slice(open + 1, i), end: i + 1 };
  }
  return undefined;
}

/** Replace every `\cmd{arg}` by `f(arg)`, handling nested braces. */
function replaceCommand(text: string, cmd: RegExp, f: (args: string[]) => string, nargs = 1): string {
  let out = "";
  let i = 0;
  const re = new RegExp(cmd.source, "g");
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index < i) continue;
    let pos = m.index + m[0].length;
    const args: string[] = [];
    for (let k = 0; k < nargs; k++) {
      while (text[pos] === " ") pos++;
      if (text[pos] !== "{") break;
      const a = bracedArg(text, pos);
      if (!a) break;
      args.push(a.arg);
      pos = a.end;
    }
    if (args.length !== nargs) continue;
    out += text.slice(i, m.index) + f(args);
    i = pos;
    re.lastIndex = pos;
  }
  return out + text.slice(i);
}

/** Shortest decimal text of a value (no exponent for the magnitudes answers have). */
function decimalText(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(15)));
}

/**
 * Strip markdown/LaTeX decoration around an answer (`**`, `$`, `\(`, `\)`, `\[`, `\]`, `\text{}` …) and
 * normalise LaTeX number forms (separators, fractions, mixed numbers, `\times 10^{n}`) so that
 * {@linkcode numbersIn} reads whole numbers, never fragments.
 */
export function cleanAnswerText(text: string): string {
  // thousands separators written in LaTeX: 9{,}500, 9\,500, 8,\!000, 9\!500, 9\ 500, 9~500, thin spaces
  let t = text.replace(
    /(\d)(?:\{,\}|,\\!|\\!|\\,|\\thinspace ?|\\ |~|[\u2009\u202f])(?=\d{3}(?!\d))/g,
    "$1,",
  );
  t = t.replace(/\\[dt]?frac\s*(\d)\s*(\d)/g, "\\frac{$1}{$2}");
  t = replaceCommand(t, /\\(?:text|textbf|textrm|mathrm|mathbf|boxed|fbox|displaystyle|mbox)/, ([a]) => a!);
  // mixed numbers: 2\frac{1}{2} → 2.5 (a sign before the whole number applies to the whole)
  t = t.replace(
    /(?<![\d.])(\d+)\s*(?:\\[,;!: ]|~)?\s*\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}/g,
    (all, a: string, b: string, c: string) =>
      Number(c) !== 0 && Number(b) < Number(c) ? decimalText(Number(a) + Number(b) / Number(c)) : all,
  );
  t = replaceCommand(t, /\\[dt]?frac/, ([a, b]) => `(${a})/(${b})`, 2);
  t = t.replace(/\(\s*(-?[\d.,]+)\s*\)\/\(\s*(-?[\d.,]+)\s*\)/g, "$1/$2");
  // scientific notation: 1.2 \times 10^{3}, 1.2 × 10^3
  t = t.replace(
    /(\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|×)\s*10\s*\^\s*\{?\s*([-−]?\d+)\s*\}?/g,
    (_all, m: string, e: string) => decimalText(Number(m) * 10 ** Number(e.replace("−", "-"))),
  );
  t = t.replace(/\\\$/g, "$");
  t = t.replace(/\\[()[\]]/g, " ").replace(/\\[,!]/g, "").replace(/\\[;:]|\\quad|\\qquad|\\ /g, " ");
  t = t.replace(/\\%/g, "%");
  t = t.replace(/\\(?:dollars?|cdot|times|approx|left|right)\b/g, " ");
  t = t.replace(/\*\*|__|`|\$/g, " ");
  t = t.replace(/[{}]/g, " ");
  return t.replace(/\s+/g, " ").trim();
}

/** A result-like number in a text: see {@linkcode resultNumbers}. */
export interface ResultNumber {
  readonly value: number;
  /** The number as written (after LaTeX clean-up). */
  readonly raw: string;
  /** UTF-16 index of the result marker (`=`, `\boxed`, `is a total of` …) in the full text. */
  readonly char: number;
  /** The marker that made it a result, as written. */
  readonly marker: string;
  /** Stated in a hedged sentence (`maybe`, `perhaps`, `might`, `could`, or a question). */
  readonly tentative: boolean;
}

// Markers after which a number is a stated result. Deliberately not a bare "is" ("each bag is 6").
const RESULT_MARKER_RE = new RegExp(
  String.raw`(?<![<>=!])=(?!=)|≈|\\approx|\\boxed\s*\{|\bfinal(?:\s+answer)?\s*[:：]|` +
    String
      .raw`\b(?:answer|total|result|sum|product|difference)\s+(?:is|was|would be|will be|of|comes to)\b|` +
    String.raw`\b(?:equals?|makes|gives|yields|comes to|results in|gets?|got|that's|that is|which is|it's)\b`,
  "giu",
);

/**
 * Result-like numbers of `text[from, to)`: a number right after a result marker (`=`, `≈`, `\boxed{`,
 * `Final:`, `total is`, `answer is`, `equals`, `makes`, `gives`, `get(s)`/`got`, `that's`, `which is`,
 * `it's` …), with only a sign, currency or markup between, and not followed by an operator and another
 * operand (`= 4*6 = 24` gives 24, not 4). Numbers are read as {@linkcode numbersIn} reads them after
 * {@linkcode cleanAnswerText}; the snippet after a marker is cut at the line end and at `to`.
 *
 * @param text The full text.
 * @param from Start of the searched span (UTF-16; default 0).
 * @param to End of the searched span (UTF-16, exclusive; default the text length).
 * @returns The results in text order.
 */
export function resultNumbers(text: string, from = 0, to = text.length): ResultNumber[] {
  const out: ResultNumber[] = [];
  const span = text.slice(from, to);
  for (const m of span.matchAll(RESULT_MARKER_RE)) {
    const start = m.index + m[0].length;
    const nl = span.indexOf("\n", start);
    const snippet = span.slice(start, Math.min(nl < 0 ? span.length : nl, start + 60));
    const cleaned = cleanAnswerText(snippet);
    const hit = numbersIn(cleaned)[0];
    if (!hit || !/^[-−]?\s*[$€£¥]?\s*$/.test(cleaned.slice(0, hit.index))) continue;
    const rest = cleaned.slice(hit.index + hit.raw.length);
    if (/^\s*(?:[*×x÷/+^-]|\\div)\s*[\d(.]/.test(rest)) continue;
    // the sentence around the marker: hedged or a question?
    const sStart = Math.max(
      span.lastIndexOf(".", m.index - 1),
      span.lastIndexOf("\n", m.index - 1),
      span.lastIndexOf("?", m.index - 1),
      span.lastIndexOf("!", m.index - 1),
    ) + 1;
    const endMatch = /[.!?\n]/.exec(span.slice(start + hit.index + hit.raw.length));
    const sEnd = endMatch ? start + hit.index + hit.raw.length + endMatch.index + 1 : span.length;
    const sentence = span.slice(sStart, sEnd);
    const tentative = /\b(?:maybe|perhaps|might|could|possibly)\b/i.test(sentence) || sentence.endsWith("?");
    out.push({ value: hit.value, raw: hit.raw, char: from + m.index, marker: m[0], tentative });
  }
  return out;
}

/** Whether a cleaned candidate is a placeholder to skip: empty, `<answer>`, `[answer]`, `…`. */
function isPlaceholder(cleaned: string): boolean {
  return cleaned === "" || /^(?:<[^<>]*>|\[[^[\]]*\]|\.\.\.|…)$/.test(cleaned);
}

/**
 * The number a final-answer snippet stands for: after the last "=", the first number. With
 * `single` (boxes), a tail holding several numbers (`\boxed{5 \text{ h } 30 \text{ min}}`,
 * `\boxed{12, 15}`, `\boxed{5-10}`) stands for none: `undefined`, never one of them.
 */
function numberOfSnippet(cleaned: string, single: boolean): Omit<NumberHit, "index"> | undefined {
  // a whole snippet of space-grouped digits is one number: "9 500" → 9500
  const spaced = /^([-−]?)\s*[$€£¥]?\s*(\d{1,3}(?: \d{3})+(?:\.\d+)?)\s*%?$/.exec(cleaned);
  if (spaced) {
    const v = Number(spaced[2]!.replaceAll(" ", "")) * (spaced[1] ? -1 : 1);
    return { value: v, raw: cleaned };
  }
  // unit exponents are not numbers: "18 cm^2", "18 m^{3}"
  const plain = cleaned.replace(/(\p{L})\s*\^\s*\d+/gu, "$1");
  const eq = plain.lastIndexOf("=");
  const tail = eq >= 0 ? plain.slice(eq + 1) : plain;
  const nums = numbersIn(tail);
  if (single && nums.length > 1) return undefined;
  return nums[0] ?? (eq >= 0 && !single ? numbersIn(plain).at(-1) : undefined);
}

const FINAL_RE =
  /(?<!\p{L})final(?:\s+answer)?(?:\s*(?:\*\*|__))?\s*[:：](?:\s*(?:\*\*|__))?[^\S\n]*([^\n]*)/giu;

/** Extraction within one region: candidates (boxes, Final lines), else the last number. */
function extractIn(text: string, region: AnswerRegion): ExtractedAnswer {
  const candidates: { pos: number; method: "boxed" | "final"; snippet: string }[] = [];
  for (const m of text.matchAll(/\\(?:boxed|fbox)\s*(?=\{)/g)) {
    const a = bracedArg(text, m.index + m[0].length);
    if (a) candidates.push({ pos: m.index, method: "boxed", snippet: a.arg });
  }
  for (const m of text.matchAll(FINAL_RE)) {
    let snippet = m[1]!;
    if (cleanAnswerText(snippet) === "") {
      const rest = text.slice(m.index + m[0].length).split("\n").map((l) => l.trim()).find((l) => l !== "");
      snippet = rest ?? "";
    }
    candidates.push({ pos: m.index, method: "final", snippet });
  }
  candidates.sort((a, b) => a.pos - b.pos);
  for (let i = candidates.length - 1; i >= 0; i--) {
    const c = candidates[i]!;
    const cleaned = cleanAnswerText(c.snippet);
    if (isPlaceholder(cleaned)) continue;
    const hit = numberOfSnippet(cleaned, c.method === "boxed");
    // A stated answer without a (single) number (`\boxed{\text{Yes}}`) is the answer: no value, no
    // fallback to an earlier number.
    if (!hit) return { value: undefined, raw: undefined, method: c.method, region };
    return { value: hit.value, raw: hit.raw, method: c.method, region };
  }
  const last = numbersIn(cleanAnswerText(text)).at(-1);
  if (last) return { value: last.value, raw: last.raw, method: "last_number", region };
  return { value: undefined, raw: undefined, method: "none", region };
}

/** Where a completion's reasoning ends (see `DetectionResult` in `lib/detect.ts`). */
export interface ReasoningBoundary {
  /** Whether the reasoning was closed (`</think>` seen). */
  readonly closed: boolean;
  /** UTF-16 index where the reasoning ends (the close tag's start; the text length when not closed). */
  readonly end: number;
  /** UTF-16 index where the text after the close tag starts (the text length when not closed). */
  readonly answerStart: number;
}

/**
 * The reasoning boundary by text: the first occurrence of `thinkClose`. Prefer the token-level boundary
 * of `detect` (`lib/detect.ts`) when token ids are known: a tag mentioned in prose is text too.
 *
 * @param text Completion text.
 * @param thinkClose Close tag (default `</think>`).
 */
export function reasoningBoundaryByText(text: string, thinkClose = "</think>"): ReasoningBoundary {
  const i = text.indexOf(thinkClose);
  return i < 0
    ? { closed: false, end: text.length, answerStart: text.length }
    : { closed: true, end: i, answerStart: i + thinkClose.length };
}

/** Options of {@linkcode extractAnswer}. */
export interface ExtractOptions {
  /** Where the reasoning ends; default {@linkcode reasoningBoundaryByText} with `thinkClose`. */
  readonly reasoning?: ReasoningBoundary;
  /** Close tag used when `reasoning` is not given (default `</think>`). */
  readonly thinkClose?: string;
}

/**
 * The robust extractor (corrected protocol). When the reasoning is closed, the text after the close tag
 * is read first (region `answer`); the reasoning is read (region `reasoning`) only when nothing after
 * the tag carries a number or a stated answer; with no close tag the whole text is read (region `all`).
 *
 * Within a region, candidates are every `\boxed{…}` (nested braces allowed) and every `Final:` /
 * `Final answer:` line (case-insensitive, markdown `**` allowed around the label; an empty rest of line
 * takes the next non-empty line). Going from the last candidate backwards, placeholders (an echoed
 * instruction `Final: <answer>`, an empty box) are skipped; the first other candidate decides: its
 * number (after its last `=`), or no value when it holds text only (`\boxed{\text{Yes}}` → unknown).
 * Without candidates, the last number of the region. Number forms: see the module doc.
 *
 * @param text Completion text.
 * @param options The reasoning boundary (default: the first `</think>` in the text).
 * @example
 * ```ts
 * extractAnswer("…so **Final:** 18"); // { value: 18, raw: "18", method: "final", region: "all" }
 * extractAnswer("<think>\n\\boxed{18}\nWait, 4*6 = 24.\n</think>\n\n24 apples."); // value 24, region "answer"
 * ```
 */
export function extractAnswer(text: string, options: ExtractOptions = {}): ExtractedAnswer {
  const b = options.reasoning ?? reasoningBoundaryByText(text, options.thinkClose);
  if (!b.closed) return extractIn(text, "all");
  const after = extractIn(text.slice(b.answerStart), "answer");
  if (after.method !== "none") return after;
  return extractIn(text.slice(0, b.end), "reasoning");
}

/** Outcome of scoring one answer. */
export type Score = "correct" | "incorrect" | "unknown";

/**
 * Outcome of scoring one completion: a {@linkcode Score}, or `unfinished` when the reasoning never
 * closed (the token budget ran out mid-thought): such a row is neither correct nor incorrect.
 */
export type AnswerStatus = Score | "unfinished";

/** Options of {@linkcode scoreAnswer}. */
export interface ScoreOptions {
  /** Accept |pred − gold| ≤ tolerance · max(1, |gold|) (absolute near 0, relative above). Default 1e-6. */
  readonly tolerance?: number;
}

/**
 * Score a prediction against a numeric gold answer.
 *
 * @param pred An {@linkcode ExtractedAnswer}, a number, or `undefined`.
 * @param gold The gold value.
 * @returns `"unknown"` when no number was extracted, else `"correct"` / `"incorrect"`.
 */
export function scoreAnswer(
  pred: ExtractedAnswer | number | undefined,
  gold: number,
  options: ScoreOptions = {},
): Score {
  const tol = options.tolerance ?? 1e-6;
  const v = typeof pred === "object" ? pred.value : pred;
  if (v === undefined || !Number.isFinite(v)) return "unknown";
  return Math.abs(v - gold) <= tol * Math.max(1, Math.abs(gold)) ? "correct" : "incorrect";
}

/**
 * Parse a GSM8K gold answer: the text after the last `####`, trimmed, commas removed.
 *
 * @throws {RangeError} if there is no `####` or the text after it is not a number.
 */
export function parseGsm8kGold(answerText: string): number {
  const i = answerText.lastIndexOf("####");
  if (i < 0) throw new RangeError(`GSM8K answer has no "####": ${JSON.stringify(answerText.slice(-80))}`);
  const s = answerText.slice(i + 4).trim().replaceAll(",", "");
  const v = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)$/.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(v)) {
    throw new RangeError(`GSM8K gold after "####" is not a number: ${JSON.stringify(s)}`);
  }
  return v;
}

/** Options of {@linkcode scoreCompletion}. */
export interface ScoreCompletionOptions extends ScoreOptions {
  /** Where the reasoning ends; default {@linkcode reasoningBoundaryByText} with `thinkClose`. */
  readonly reasoning?: ReasoningBoundary;
  /** Close tag used when `reasoning` is not given (default `</think>`). */
  readonly thinkClose?: string;
}

/** Result of {@linkcode scoreCompletion}. */
export interface CompletionScore {
  readonly status: AnswerStatus;
  /**
   * The extraction. For an `unfinished` completion this is what the whole text would give (a number
   * taken mid-thought, kept for inspection only: it is not the model's answer).
   */
  readonly answer: ExtractedAnswer;
}

/**
 * Score one completion under the corrected protocol: `unfinished` when the reasoning never closed,
 * else {@linkcode scoreAnswer} of {@linkcode extractAnswer} (answer after the reasoning first). The
 * reference-compatible mode does not use this (it scores with {@linkcode isCorrectReference}).
 *
 * @param text Completion text (after the generation prompt).
 * @param gold The gold value, or `undefined` (then a finished completion is `unknown`).
 * @param options Reasoning boundary and tolerance.
 */
export function scoreCompletion(
  text: string,
  gold: number | undefined,
  options: ScoreCompletionOptions = {},
): CompletionScore {
  const reasoning = options.reasoning ?? reasoningBoundaryByText(text, options.thinkClose);
  const answer = extractAnswer(text, { reasoning });
  if (!reasoning.closed) return { status: "unfinished", answer };
  return { status: gold === undefined ? "unknown" : scoreAnswer(answer, gold, options), answer };
}

/** Accuracy counts, defined once for the whole project. */
export interface AccuracySummary {
  readonly n: number;
  readonly correct: number;
  readonly incorrect: number;
  readonly unknown: number;
  /** Rows whose reasoning never closed (counted in n as not correct). */
  readonly unfinished: number;
  /** correct / n; unknown and unfinished rows count as not correct. NaN when n = 0. */
  readonly accuracy: number;
  /** correct / (n − unfinished): accuracy on finished rows. NaN when every row is unfinished. */
  readonly accuracy_finished: number;
  /** unknown / n. NaN when n = 0. */
  readonly unknown_rate: number;
  /** unfinished / n. NaN when n = 0. */
  readonly unfinished_rate: number;
}

/**
 * The project's single accuracy definition: correct / n with unknown and unfinished rows in n (as not
 * correct); accuracy on finished rows, the unknown rate and the unfinished rate beside it.
 */
export function accuracySummary(scores: Iterable<AnswerStatus>): AccuracySummary {
  let correct = 0;
  let incorrect = 0;
  let unknown = 0;
  let unfinished = 0;
  for (const s of scores) {
    if (s === "correct") correct++;
    else if (s === "incorrect") incorrect++;
    else if (s === "unfinished") unfinished++;
    else unknown++;
  }
  const n = correct + incorrect + unknown + unfinished;
  return {
    n,
    correct,
    incorrect,
    unknown,
    unfinished,
    accuracy: correct / n,
    accuracy_finished: correct / (n - unfinished),
    unknown_rate: unknown / n,
    unfinished_rate: unfinished / n,
  };
}
