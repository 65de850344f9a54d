/**
 * The reference pipeline's answer extractor, bug for bug (docs/protocol.md §9), with its normaliser
 * reproducing Python `float()` / `repr()` (docs/protocol.md §9) and its exact-string scoring, plus the Python
 * `str` semantics they need. Reference reproduction only: the corrected protocol uses
 * {@linkcode ../answers.ts}.
 *
 * @module
 */

import { pyFloatRepr } from "../../../lib/tables/pyfloat.ts";

export { pyFloatRepr };

// ---------------------------------------------------------------------------------------------------
// Python semantics helpers

/** Python `str.isspace()` characters (the `\s` of a `str` pattern). Differs from JS `\s`. */
const PY_WS =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_WS_RE = new RegExp(`[${PY_WS}]`, "u");

/** Python `str.strip()` (no argument). */
export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && PY_WS_RE.test(s[a]!)) a++;
  while (b > a && PY_WS_RE.test(s[b - 1]!)) b--;
  return s.slice(a, b);
}

const ND_RE = /^\p{Nd}$/u;

/**
 * Value 0–9 of a Unicode decimal digit (category Nd), as Python's `float()`/`int()` read it.
 * Unicode guarantees Nd characters come in contiguous runs of ten from 0 to 9, so the value is the
 * offset from the start of the maximal run modulo 10.
 */
function digitValue(ch: string): number {
  const cp = ch.codePointAt(0)!;
  if (cp >= 0x30 && cp <= 0x39) return cp - 0x30;
  let start = cp;
  while (ND_RE.test(String.fromCodePoint(start - 1))) start--;
  return (cp - start) % 10;
}

const PY_FLOAT_RE =
  /^([+-]?)(?:((?:\p{Nd}(?:_?\p{Nd})*)?\.\p{Nd}(?:_?\p{Nd})*|\p{Nd}(?:_?\p{Nd})*\.?)(?:[eE]([+-]?\p{Nd}(?:_?\p{Nd})*))?|(inf|infinity|nan))$/iu;

/**
 * Python `float(s)` for a string: surrounding whitespace, sign, `_` digit separators (PEP 515),
 * exponents, any Unicode decimal digits, `inf`/`infinity`/`nan` in any case.
 *
 * @returns The value, or `undefined` where Python raises `ValueError`.
 */
export function pyFloat(s: string): number | undefined {
  const m = PY_FLOAT_RE.exec(pyStrip(s));
  if (!m) return undefined;
  const sign = m[1] === "-" ? -1 : 1;
  if (m[4] !== undefined) return m[4].toLowerCase() === "nan" ? NaN : sign * Infinity;
  const ascii = (t: string) =>
    Array.from(t.replaceAll("_", ""), (c) => (c === "." ? "." : String(digitValue(c)))).join("");
  const mant = ascii(m[2]!);
  const exp = m[3] === undefined
    ? ""
    : `e${m[3][0] === "-" || m[3][0] === "+" ? m[3][0] + ascii(m[3].slice(1)) : ascii(m[3])}`;
  return sign * Number(mant + exp);
}

// ---------------------------------------------------------------------------------------------------
// Reference extractor (bug-compatible)

// `.` of a Python pattern excludes only "\n"; JS `.` also excludes \r, \u2028, \u2029.
const REF_PATTERNS = [
  new RegExp(`Final:[${PY_WS}]*([^\\n]+?)(?:\\n|$)`, "iu"),
  new RegExp(`final answer[:${PY_WS}]+([^\\n]+?)(?:\\n|$)`, "iu"),
  new RegExp(`answer[:${PY_WS}]+([^\\n]+?)(?:\\n|$)`, "iu"),
];
const REF_LAST_NUMBER = /[-+]?\p{Nd}{1,3}(?:,\p{Nd}{3})*(?:\.\p{Nd}+)?|\p{Nd}+(?:\.\p{Nd}+)?/gu;

/**
 * The reference's answer extractor (docs/protocol.md §9), bug-compatible: the first case-insensitive match of
 * `Final:`, then `final answer[:\s]+`, then `answer[:\s]+`, capture stripped and `<>[]` removed;
 * otherwise the last number of a regex that cuts unformatted numbers of ≥ 4 digits into chunks of
 * three ("7500" → "0").
 *
 * @param completion The completion text.
 * @param answerRegex The config's `detection.answer_regex` (Python syntax assumed compatible with JS).
 * @returns The predicted answer string, or `undefined` (Python None).
 */
export function extractAnswerReference(completion: string, answerRegex?: string | null): string | undefined {
  if (answerRegex) {
    const m = new RegExp(answerRegex, "u").exec(completion);
    if (!m) return undefined;
    return m.length > 1 ? m[1] : m[0];
  }
  for (const re of REF_PATTERNS) {
    const m = re.exec(completion);
    if (m) return pyStrip(m[1]!).replace(/[<>[\]]/g, "");
  }
  const all = completion.match(REF_LAST_NUMBER);
  if (!all || all.length === 0) return undefined;
  return all[all.length - 1]!.replaceAll(",", "");
}

/**
 * The reference's `normalize` (docs/protocol.md §9): strip; delete `$ € £ ¥` and commas; strip trailing
 * periods; then Python `float()`: ±inf → lower-cased string, integral → integer digits, otherwise Python
 * float repr; unparseable or NaN → lower-cased string.
 */
export function normalizeReference(x: string | number): string {
  let s = typeof x === "number" ? pyFloatRepr(x) : x;
  s = pyStrip(s).replace(/[$€£¥,]/g, "").replace(/\.+$/, "");
  const f = pyFloat(s);
  if (f === undefined || Number.isNaN(f) || !Number.isFinite(f)) return s.toLowerCase();
  if (Number.isInteger(f)) return BigInt(f).toString();
  return pyFloatRepr(f);
}

/**
 * The reference's `is_correct`: `undefined` if either side is missing, else exact equality of the
 * normalised strings (no tolerance).
 */
export function isCorrectReference(
  pred: string | null | undefined,
  gold: string | number | null | undefined,
): boolean | undefined {
  if (pred === undefined || pred === null || gold === undefined || gold === null) return undefined;
  return normalizeReference(pred) === normalizeReference(gold);
}
