/**
 * Backtracking-trigger detection on generated tokens, without re-tokenisation.
 *
 * The input is the decoded text of each generated token (their concatenation is the completion
 * text), so a match maps to the token that was actually sampled. Two rules:
 *
 * - `"reference"` (docs/protocol.md §8): case-insensitive `\b(t1|t2|…)\b` over the whole completion with
 *   Python's Unicode `\b`; strict and relaxed lists; the onset is the earliest match (strict first,
 *   else relaxed).
 * - `"corrected"` (docs/protocol.md §8): the trigger in its configured case, starting a sentence or clause
 *   (preceded by start of text, a newline, `.`, `!`, `?`, `:`, `;`, `,`, `—`, `–`, `(`, a quote
 *   character or `**`, then optional whitespace), followed by a word boundary, and inside the reasoning
 *   span: before the first `</think>` (the completion starts inside `<think>` because the prompt ends
 *   with `<think>\n`; with no `</think>` the whole completion is reasoning and `reasoning_closed` is
 *   false).
 *
 * Results are plain records with snake_case fields, ready to become CSV columns.
 *
 * @module
 */

/** Detection rule. */
export type DetectionRule = "reference" | "corrected";

/** What a detector reads: the generated tokens of one completion. */
export interface DetectionInput {
  /** Decoded text of each completion token; their concatenation must equal the completion text. */
  readonly tokenTexts: readonly string[];
  /** Token ids, parallel to `tokenTexts` (optional; gives `onset_token_id`). */
  readonly tokenIds?: readonly number[];
  /** Number of prompt tokens before the completion in the full sequence (BOS included). */
  readonly promptTokens: number;
}

/** One trigger occurrence. */
export interface TriggerMatch {
  /** The configured trigger that matched (as written in the config). */
  readonly trigger: string;
  /** The matched text as it appears. */
  readonly text: string;
  /** Start index in the completion, UTF-16 code units (JS string index). */
  readonly char: number;
  /** Start index in the completion, Unicode code points (Python `str` index, the reference's `onset_char`). */
  readonly char_py: number;
  /** Index of the completion token whose text span contains the match start. */
  readonly token_index: number;
}

/** Result of scanning one trigger list. */
export interface TriggerScan {
  /** Whether any trigger matched. */
  readonly has_trigger: boolean;
  /** All non-overlapping matches, in text order. */
  readonly matches: readonly TriggerMatch[];
  /** Matches per configured trigger (every trigger present, zeros included), in config order. */
  readonly counts: Readonly<Record<string, number>>;
  /** matches / tokens_searched × 1000 (0 when no token was searched). */
  readonly triggers_per_1k_tokens: number;
  /** Tokens in the searched span (whole completion for the reference rule, reasoning span otherwise). */
  readonly tokens_searched: number;
}

/** The onset: the earliest match, placed in the full token sequence. */
export interface Onset extends TriggerMatch {
  /** Token id of the onset token, when `tokenIds` was given. */
  readonly token_id: number | undefined;
  /** Onset token index in the full sequence: promptTokens + token_index. */
  readonly token_index_in_full: number;
  /** Position whose next-token distribution predicts the onset token: promptTokens + token_index − 1. */
  readonly pred_pos: number;
  /** Whether the onset came from the strict list (reference rule; always true for the corrected rule). */
  readonly from_strict: boolean;
}

/** Result of {@linkcode detect}. */
export interface DetectionResult {
  readonly rule: DetectionRule;
  /** Same as `strict.has_trigger`: the primary "backtracking" flag. */
  readonly has_trigger: boolean;
  /** Strict-list scan; `has_trigger` here is the primary "backtracking" flag. */
  readonly strict: TriggerScan;
  /** Relaxed-list scan. */
  readonly relaxed: TriggerScan;
  /** Earliest strict match, else earliest relaxed match (reference semantics), else undefined. */
  readonly onset: Onset | undefined;
  /** Whether a `</think>` closes the reasoning span (always reported; only the corrected rule uses it). */
  readonly reasoning_closed: boolean;
  /** UTF-16 index where the reasoning span ends (the `</think>` start, or the text length). */
  readonly reasoning_end_char: number;
  /** Total completion tokens. */
  readonly completion_tokens: number;
}

/** Options of {@linkcode detect}. */
export interface DetectOptions {
  readonly rule: DetectionRule;
  readonly triggersStrict: readonly string[];
  /** Relaxed list (the reference's is a superset of the strict list); default = strict list. */
  readonly triggersRelaxed?: readonly string[];
  /** Tag that closes the reasoning span; default `"</think>"`. */
  readonly thinkClose?: string;
}

const W = String.raw`[\p{L}\p{N}_]`;
/** Python's Unicode `\b`: a word character on exactly one side. */
const PY_WORD_BOUNDARY = String.raw`(?:(?<=${W})(?!${W})|(?<!${W})(?=${W}))`;
/** Start of a sentence or clause, then optional whitespace. */
const CLAUSE_START = String.raw`(?<=(?:^|[\n.!?:;,—–("'“”‘’«»]|\*\*)\s*)`;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function triggerRegex(triggers: readonly string[], rule: DetectionRule): RegExp {
  const alts = triggers.map((t) => `(${escapeRegex(t)})`).join("|");
  return rule === "reference"
    ? new RegExp(`${PY_WORD_BOUNDARY}(?:${alts})${PY_WORD_BOUNDARY}`, "giu")
    : new RegExp(`${CLAUSE_START}(?:${alts})(?!${W})`, "gu");
}

/** Token spans: `starts[i]` is the UTF-16 offset of token i; `starts[n]` is the text length. */
function tokenStarts(tokenTexts: readonly string[]): number[] {
  const starts = [0];
  let acc = 0;
  for (const t of tokenTexts) starts.push(acc += t.length);
  return starts;
}

/** Index of the token whose span [start, end) contains `char` (skips empty tokens). */
function tokenAt(starts: readonly number[], char: number): number {
  let lo = 0;
  let hi = starts.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= char) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function codePointIndex(text: string, utf16: number): number {
  let n = 0;
  for (let i = 0; i < utf16; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < utf16) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

function scan(
  text: string,
  end: number,
  starts: readonly number[],
  triggers: readonly string[],
  rule: DetectionRule,
): TriggerScan {
  const counts: Record<string, number> = {};
  for (const t of triggers) counts[t] = 0;
  const matches: TriggerMatch[] = [];
  if (triggers.length > 0) {
    for (const m of text.matchAll(triggerRegex(triggers, rule))) {
      if (m.index >= end) break;
      const which = m.slice(1).findIndex((g) => g !== undefined);
      const trigger = triggers[which]!;
      counts[trigger] = (counts[trigger] ?? 0) + 1;
      matches.push({
        trigger,
        text: m[0],
        char: m.index,
        char_py: codePointIndex(text, m.index),
        token_index: tokenAt(starts, m.index),
      });
    }
  }
  const tokensSearched = end >= text.length ? starts.length - 1 : tokenAt(starts, end);
  return {
    has_trigger: matches.length > 0,
    matches,
    counts,
    triggers_per_1k_tokens: tokensSearched > 0 ? (matches.length / tokensSearched) * 1000 : 0,
    tokens_searched: tokensSearched,
  };
}

/**
 * Detect backtracking triggers in one completion.
 *
 * @param input The completion's token texts (and optionally ids) and the prompt length in tokens.
 * @param options Rule and trigger lists.
 * @returns Strict and relaxed scans, the onset mapped to the generated tokens, and the reasoning span.
 * @throws {RangeError} if `tokenIds` is given with a different length than `tokenTexts`.
 * @example
 * ```ts
 * const r = detect(
 *   { tokenTexts: ["So", " 18", ".", "\n\n", "Wait", ",", " no"], promptTokens: 87 },
 *   { rule: "corrected", triggersStrict: ["Wait", "Actually", "Hold on"] },
 * );
 * r.onset?.token_index; // 4
 * r.onset?.pred_pos;    // 90
 * ```
 */
export function detect(input: DetectionInput, options: DetectOptions): DetectionResult {
  const { tokenTexts, tokenIds, promptTokens } = input;
  if (tokenIds !== undefined && tokenIds.length !== tokenTexts.length) {
    throw new RangeError(
      `detect: tokenIds has ${tokenIds.length} entries but tokenTexts has ${tokenTexts.length}`,
    );
  }
  const text = tokenTexts.join("");
  const starts = tokenStarts(tokenTexts);
  const close = text.indexOf(options.thinkClose ?? "</think>");
  const reasoningClosed = close >= 0;
  const reasoningEnd = reasoningClosed ? close : text.length;
  const end = options.rule === "reference" ? text.length : reasoningEnd;
  const strictList = options.triggersStrict;
  const relaxedList = options.triggersRelaxed ?? strictList;
  const strict = scan(text, end, starts, strictList, options.rule);
  const relaxed = scan(text, end, starts, relaxedList, options.rule);
  const first = strict.matches[0] ?? relaxed.matches[0];
  const onset: Onset | undefined = first && {
    ...first,
    token_id: tokenIds?.[first.token_index],
    token_index_in_full: promptTokens + first.token_index,
    pred_pos: promptTokens + first.token_index - 1,
    from_strict: strict.matches[0] !== undefined,
  };
  return {
    rule: options.rule,
    has_trigger: strict.has_trigger,
    strict,
    relaxed,
    onset,
    reasoning_closed: reasoningClosed,
    reasoning_end_char: reasoningEnd,
    completion_tokens: tokenTexts.length,
  };
}
