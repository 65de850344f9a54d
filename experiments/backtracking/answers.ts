/**
 * Answer extraction, normalisation and scoring.
 *
 * Two extractors:
 *
 * - {@linkcode extractAnswerReference}: the reference's extractor, bug for bug (docs/protocol.md §9), with
 *   its normaliser {@linkcode normalizeReference} reproducing Python `float()` / `repr()` (docs/protocol.md
 *   §9), and {@linkcode isCorrectReference} (exact string comparison).
 * - {@linkcode extractAnswer}: the robust extractor of the corrected protocol (docs/protocol.md §9): the last
 *   `\boxed{…}` or `Final:` line that holds a number, else the last number; scored with a tolerance by
 *   {@linkcode scoreAnswer}.
 *
 * Accuracy is defined once, in {@linkcode accuracySummary}: correct / n, unknowns counted in n.
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

/** Result of {@linkcode extractAnswer}. */
export interface ExtractedAnswer {
  /** The numeric value, or `undefined` when no number was found. */
  readonly value: number | undefined;
  /** The text the value was parsed from (the number as written), or `undefined`. */
  readonly raw: string | undefined;
  readonly method: ExtractionMethod;
}

// A number token: optional sign (ASCII or U+2212), optional currency, comma-grouped or plain digits,
// optional decimals; or a bare decimal ".5"; optionally a simple fraction "a/b".
const NUM = String.raw`(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+`;
const NUMBER_RE = new RegExp(
  String.raw`(?<![\d.])([-−]?)\s*[$€£¥]?\s*(${NUM})(?:\s*/\s*(${NUM}))?(?![\d])`,
  "gu",
);

function toNumber(t: string): number {
  return Number(t.replaceAll(",", ""));
}

interface NumberHit {
  readonly value: number;
  readonly raw: string;
}

function numbersIn(text: string): NumberHit[] {
  const out: NumberHit[] = [];
  for (const m of text.matchAll(NUMBER_RE)) {
    const sign = m[1] ? -1 : 1;
    let v = toNumber(m[2]!);
    if (m[3] !== undefined) {
      const den = toNumber(m[3]);
      if (den === 0) continue;
      v /= den;
    }
    if (Number.isFinite(v)) out.push({ value: sign * v, raw: m[0].trim() });
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

/** Strip markdown/LaTeX decoration around an answer: `**`, `$`, `\(`, `\)`, `\[`, `\]`, `\text{}` … */
export function cleanAnswerText(text: string): string {
  let t = replaceCommand(text, /\\[dt]?frac/, ([a, b]) => `(${a})/(${b})`, 2);
  t = replaceCommand(t, /\\(?:text|textbf|mathrm|mathbf|boxed|fbox)/, ([a]) => a!);
  t = t.replace(/\((-?[\d.,]+)\)\/\((-?[\d.,]+)\)/g, "$1/$2");
  t = t.replace(/\\[()[\]]/g, " ").replace(/\\[,!]/g, "").replace(/\\[;:]|\\quad|\\qquad/g, " ");
  t = t.replace(/\\%/g, "%");
  t = t.replace(/\\(?:dollars?|cdot|times|approx)\b/g, " ");
  t = t.replace(/\*\*|__|`|\$/g, " ");
  return t.replace(/\s+/g, " ").trim();
}

/** The number a final-answer snippet stands for: after the last "=", the first number. */
function numberOfSnippet(snippet: string): NumberHit | undefined {
  const cleaned = cleanAnswerText(snippet);
  const eq = cleaned.lastIndexOf("=");
  const tail = eq >= 0 ? cleaned.slice(eq + 1) : cleaned;
  return numbersIn(tail)[0] ?? (eq >= 0 ? numbersIn(cleaned).at(-1) : undefined);
}

const FINAL_RE =
  /(?<!\p{L})final(?:\s+answer)?(?:\s*(?:\*\*|__))?\s*[:：](?:\s*(?:\*\*|__))?[^\S\n]*([^\n]*)/giu;

/**
 * The robust extractor (corrected protocol). Candidates are every `\boxed{…}` (nested braces
 * allowed) and every `Final:` / `Final answer:` line (case-insensitive, markdown `**` allowed around the
 * label; an empty rest of line takes the next non-empty line). Going from the last candidate backwards,
 * the first whose cleaned text holds a number wins, so an echoed instruction `Final: <answer>` is
 * skipped. Otherwise the last number of the whole text. Numbers may carry commas, decimals, a sign
 * (`-` or `−`), currency, a percent sign (ignored: "25%" → 25), and may be simple fractions `a/b` or
 * `\frac{a}{b}` (evaluated).
 *
 * @param text Completion text.
 * @example
 * ```ts
 * extractAnswer("…so **Final:** 18"); // { value: 18, raw: "18", method: "final" }
 * ```
 */
export function extractAnswer(text: string): ExtractedAnswer {
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
    const hit = numberOfSnippet(c.snippet);
    if (hit) return { value: hit.value, raw: hit.raw, method: c.method };
  }
  const last = numbersIn(cleanAnswerText(text)).at(-1);
  if (last) return { value: last.value, raw: last.raw, method: "last_number" };
  return { value: undefined, raw: undefined, method: "none" };
}

/** Outcome of scoring one answer. */
export type Score = "correct" | "incorrect" | "unknown";

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

/** Accuracy counts, defined once for the whole project. */
export interface AccuracySummary {
  readonly n: number;
  readonly correct: number;
  readonly incorrect: number;
  readonly unknown: number;
  /** correct / n; unknowns count as not correct. NaN when n = 0. */
  readonly accuracy: number;
  /** unknown / n. NaN when n = 0. */
  readonly unknown_rate: number;
}

/**
 * The project's single accuracy definition: correct / n with unknowns in n (as not correct), and the
 * unknown rate beside it. To restrict to finished samples, filter before calling.
 */
export function accuracySummary(scores: Iterable<Score>): AccuracySummary {
  let correct = 0;
  let incorrect = 0;
  let unknown = 0;
  for (const s of scores) {
    if (s === "correct") correct++;
    else if (s === "incorrect") incorrect++;
    else unknown++;
  }
  const n = correct + incorrect + unknown;
  return { n, correct, incorrect, unknown, accuracy: correct / n, unknown_rate: unknown / n };
}
