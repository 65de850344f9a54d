/**
 * Backtracking-trigger detection on generated tokens, without re-tokenisation.
 *
 * The input is the decoded text of each generated token (their concatenation is the completion
 * text), so a match maps to the token that was actually sampled. Two rules:
 *
 * - `"reference"` (docs/protocol.md §8): case-insensitive `\b(t1|t2|…)\b` over the whole completion with
 *   Python's Unicode `\b`; strict and relaxed lists; the onset is the earliest match (strict first,
 *   else relaxed).
 * - `"corrected"` (docs/protocol.md §8): the trigger starting a sentence or clause, followed by a word boundary,
 *   inside the reasoning span. A clause start is the start of text, a newline, `.`, `!`, `?`, `:`, `;`,
 *   `,`, `—`, `–`, `(`, a quote character or `**`, then optional whitespace. The trigger either
 *   (a) opens the clause in its configured case (`Wait`), or (b) follows one opening interjection or
 *   conjunction from {@linkcode TRIGGER_LEADS} (any case, an optional comma, then whitespace), and then
 *   its first letter may be lower case: `But wait,`, `Oh wait`, `Hmm, wait`, `, but actually`, `No, wait`;
 *   or (c) opens the clause with a lower-case first letter as an interjection, directly followed by
 *   `,`, `!`, `:`, `—`, `–`, `…` or `..` (`18... wait, 4 bags`, `3 bags, wait, 4`).
 *   The match (and the onset token) is the trigger word itself, the lead is reported in `lead`. Since
 *   every match is collected in text order, the onset is the first real trigger, including a
 *   `But wait` before a later `Wait` (issue 14). Not counted: a trigger mid-clause after other words
 *   (`we have to wait`, `it actually works`), after two lead words (`And then wait`), or lower case at a
 *   clause start but not as an interjection (`Then, wait for the bus`).
 *
 * The reasoning span ends at the close tag (`</think>`; the completion starts inside `<think>`
 * because the prompt ends with `<think>\n`). When token ids and the close tag's id are known
 * (`thinkCloseTokenId`, 151649 for the R1 tokenizer), the span ends at the first token with that id:
 * the tag written out in prose (`" </" "think" ">."`) is text, not the end of the reasoning. Otherwise
 * the first occurrence of the tag's text ends it. With no close tag the whole completion is reasoning
 * and `reasoning_closed` is false. The reference rule ignores the span (whole completion).
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
  /**
   * The interjection or conjunction before the trigger, as written with its comma and space (`"But "`,
   * `"Hmm, "`), or `""` (corrected rule, case (b) of the module doc; always `""` for the reference rule).
   */
  readonly lead: string;
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
  /** UTF-16 index where the text after the close tag starts (the text length when not closed). */
  readonly answer_start_char: number;
  /** Index of the close-tag token (`-1` when not closed or found by text only). */
  readonly reasoning_end_token: number;
  /** How the close tag was found: by its token id, by its text, or not at all. */
  readonly reasoning_end_by: "token_id" | "text" | "none";
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
  /**
   * Token id of the close tag (R1: 151649). With `tokenIds` given, the reasoning ends at the first
   * token with this id, and a tag written out in prose does not end it.
   */
  readonly thinkCloseTokenId?: number;
}

/**
 * Opening words that may stand before a trigger in the corrected rule (`But wait`, `Oh, wait`), matched
 * in any case. Interjections and conjunctions R1-style models put before a self-correction.
 */
export const TRIGGER_LEADS: readonly string[] = [
  "but",
  "oh",
  "ah",
  "hmm",
  "hm",
  "no",
  "oops",
  "okay",
  "ok",
  "well",
  "and",
  "so",
  "yet",
  "uh",
  "um",
];

const W = String.raw`[\p{L}\p{N}_]`;
/** Python's Unicode `\b`: a word character on exactly one side. */
const PY_WORD_BOUNDARY = String.raw`(?:(?<=${W})(?!${W})|(?<!${W})(?=${W}))`;
/** Start of a sentence or clause, then optional whitespace. */
const CLAUSE_START_SRC = String.raw`(?:^|[\n.!?:;,—–("'“”‘’«»]|\*\*)\s*`;
const CLAUSE_START = `(?<=${CLAUSE_START_SRC})`;
/** Any-case pattern of a plain word, e.g. `[bB][uU][tT]`. */
function anyCase(word: string): string {
  let out = "";
  for (const c of word) {
    out += c.toLowerCase() === c.toUpperCase() ? c : `[${c.toLowerCase()}${c.toUpperCase()}]`;
  }
  return out;
}
const LEAD_ALT = TRIGGER_LEADS.map(anyCase).join("|");
/** A clause start, then one lead word (any case), an optional comma, then whitespace. */
const LEAD_START = `(?<=${CLAUSE_START_SRC}(?:${LEAD_ALT}),?\\s+)`;
/** After a trigger used as an interjection: `,`, `!`, `:`, `—`, `–`, `…` or `..` (case (c)). */
const INTERJECTION_END = String.raw`(?=[,!:…]|\.\.|\s*[—–])`;
/** The lead at the end of the text before a match (as LEAD_START accepts it): used to report it. */
const LEAD_BEFORE = new RegExp(`(?<=${CLAUSE_START_SRC})(?:${LEAD_ALT}),?\\s+$`, "u");

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function triggerRegex(triggers: readonly string[], rule: DetectionRule): RegExp {
  if (rule === "reference") {
    const alts = triggers.map((t) => `(${escapeRegex(t)})`).join("|");
    return new RegExp(`${PY_WORD_BOUNDARY}(?:${alts})${PY_WORD_BOUNDARY}`, "giu");
  }
  const alts = triggers.map((t) => {
    const first = t[0]!;
    const lowerFirst = first.toLowerCase() === first.toUpperCase()
      ? escapeRegex(first)
      : `[${escapeRegex(first.toLowerCase())}${escapeRegex(first.toUpperCase())}]`;
    const anyFirst = `${lowerFirst}${escapeRegex(t.slice(1))}`;
    return `(${CLAUSE_START}${escapeRegex(t)}(?!${W})|${LEAD_START}${anyFirst}(?!${W})|` +
      `${CLAUSE_START}${anyFirst}${INTERJECTION_END})`;
  }).join("|");
  return new RegExp(`(?:${alts})`, "gu");
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
      const lead = rule === "reference" ? "" : (LEAD_BEFORE.exec(text.slice(0, m.index))?.[0] ?? "");
      matches.push({
        trigger,
        text: m[0],
        char: m.index,
        char_py: codePointIndex(text, m.index),
        token_index: tokenAt(starts, m.index),
        lead,
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
  const tag = options.thinkClose ?? "</think>";
  let reasoningEnd = text.length;
  let answerStart = text.length;
  let endToken = -1;
  let endBy: DetectionResult["reasoning_end_by"] = "none";
  if (tokenIds !== undefined && options.thinkCloseTokenId !== undefined) {
    endToken = tokenIds.indexOf(options.thinkCloseTokenId);
    if (endToken >= 0) {
      endBy = "token_id";
      reasoningEnd = starts[endToken]!;
      answerStart = starts[endToken + 1]!;
    }
  } else {
    const close = text.indexOf(tag);
    if (close >= 0) {
      endBy = "text";
      reasoningEnd = close;
      answerStart = close + tag.length;
    }
  }
  const reasoningClosed = endBy !== "none";
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
    answer_start_char: answerStart,
    reasoning_end_token: endToken,
    reasoning_end_by: endBy,
    completion_tokens: tokenTexts.length,
  };
}
