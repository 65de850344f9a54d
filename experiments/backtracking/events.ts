/**
 * Building {@linkcode EventRow}s from generation records: detection on the tokens the model actually
 * sampled (no re-tokenisation), answer extraction with both extractors, gold from the problem, and
 * degeneration metrics; plus the `backtracking_events.csv` writer/reader and the two summary files.
 *
 * Token texts: each record's `completion_token_ids` are decoded one by one (special tokens dropped,
 * as in the stored completion), so that their concatenation equals the decoded completion. Byte-level
 * BPE can split one character over several tokens; such a group is decoded together and the character
 * is given to the token that completes it (earlier tokens of the group get the complete characters
 * they finish, possibly ""), the same convention as `Tokenizer.tokenOffsets`. The concatenation is
 * checked against the full decode; when it differs, the exact (slower) `tokenOffsets` spans are used.
 *
 * @module
 */

import { parseCsv, toCsv as tableCsv } from "../../lib/tables/table.ts";
import { type AnswerStatus, extractAnswerReference, isCorrectReference, scoreCompletion } from "./answers.ts";
import type { Config } from "./config.ts";
import { detect, type DetectionRule } from "./detect.ts";
import type { EventRow, TrajectoryColumn } from "./event_row.ts";
import { classifyOnset, type OnsetEvidence, type OnsetRule, type OnsetType } from "./onset_type.ts";
import { answerTrajectory } from "./trajectory.ts";
import type { GenerationRecord } from "../../lib/generate/records.ts";
import { degeneration, type GroupSummary, summarizeGroups, type SummaryOptions } from "./metrics.ts";
import type { Tokenizer } from "../../lib/engine/tokenizer.ts";

/** The reference's 17 columns of `backtracking_events.csv`, in order (docs/protocol.md §10). */
export const REFERENCE_EVENT_COLUMNS = [
  "example_id",
  "sample_id",
  "variant",
  "condition",
  "has_backtracking_strict",
  "has_backtracking_relaxed",
  "onset_phrase",
  "onset_char",
  "onset_token_in_completion",
  "onset_token_in_full",
  "onset_token_id",
  "onset_token_text",
  "pred_pos_in_full",
  "predicted_answer",
  "is_correct",
  "prompt_tokens",
  "completion_tokens",
] as const satisfies readonly (keyof EventRow)[];

/** Our columns, after the reference's. */
export const EXTRA_EVENT_COLUMNS = [
  "rule",
  "bt_other_rule",
  "triggers_per_1k",
  "trigger_counts",
  "reasoning_closed",
  "finish_reason",
  "gold",
  "answer_status",
  "answer_method",
  "correct_reference",
  "repetition_4gram",
  "distinct_2",
  "digit_free",
  "answer_region",
  "final_answer",
  "onset_type",
  "onset_rule",
  "onset_evidence",
  "candidate_answer",
  "trajectory",
] as const satisfies readonly (keyof EventRow)[];

/** All columns of `backtracking_events.csv`, in order. */
export const EVENT_COLUMNS = [...REFERENCE_EVENT_COLUMNS, ...EXTRA_EVENT_COLUMNS] as const;

/** A problem as events need it: its id, numeric gold, and the reference's gold string. */
export interface ProblemGold {
  readonly id: number;
  readonly gold: number;
  /** The reference's `answer_value` (commas kept); default `String(gold)`. */
  readonly answer_value?: string;
}

/** Options of {@linkcode buildEventRow} / {@linkcode buildEventRows}. */
export interface EventOptions {
  /** Primary detection rule (`detection.rule`). */
  readonly rule: DetectionRule;
  /** Primary answer extractor (`detection.answer_extractor`). */
  readonly extractor: "robust" | "reference";
  readonly triggersStrict: readonly string[];
  readonly triggersRelaxed?: readonly string[];
  /** The reference's `detection.answer_regex` (reference extractor only). */
  readonly answerRegex?: string | null;
  /** Tag closing the reasoning span per variant name; default `</think>` for every variant. */
  readonly thinkClose?: (variant: string) => string;
  /**
   * Token id of the close tag (R1: 151649), or one per variant name (`undefined` = by text): the
   * reasoning then ends at that token, not at the tag's text (see `DetectOptions.thinkCloseTokenId`).
   * Default: by text. `detectionOptions(config, tokenizer)` sets it from the tokenizer.
   */
  readonly thinkCloseTokenId?: number | ((variant: string) => number | undefined);
}

/** The event options a config implies. */
export function eventOptionsFromConfig(
  config: Config,
  thinkClose?: (variant: string) => string,
  thinkCloseTokenId?: (variant: string) => number | undefined,
): EventOptions {
  return {
    rule: config.detection.rule,
    extractor: config.detection.answer_extractor,
    triggersStrict: config.detection.triggers_strict,
    triggersRelaxed: config.detection.triggers_relaxed.length > 0
      ? config.detection.triggers_relaxed
      : config.detection.triggers_strict,
    answerRegex: config.detection.answer_regex,
    ...(thinkClose ? { thinkClose } : {}),
    ...(thinkCloseTokenId ? { thinkCloseTokenId } : {}),
  };
}

/** Decodes completion tokens into per-token texts, with a per-id cache shared across records. */
export class TokenTexts {
  readonly #tokenizer: Tokenizer;
  readonly #single = new Map<number, string>();
  /** Records whose fast per-token texts did not join to the full decode (exact offsets used instead). */
  fallbacks = 0;

  constructor(tokenizer: Tokenizer) {
    this.#tokenizer = tokenizer;
  }

  #one(id: number): string {
    let t = this.#single.get(id);
    if (t === undefined) {
      t = this.#tokenizer.decode([id], { skipSpecialTokens: true });
      this.#single.set(id, t);
    }
    return t;
  }

  /**
   * Per-token texts of a completion whose concatenation is `decode(ids, {skipSpecialTokens: true})`.
   *
   * @param ids Completion token ids.
   * @returns `{texts, text}`: one string per id, and the full decoded text.
   */
  split(ids: readonly number[]): { texts: string[]; text: string } {
    const texts: string[] = [];
    let group: number[] = [];
    let emitted = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const single = this.#one(id);
      if (group.length === 0 && !single.includes("\uFFFD")) {
        texts.push(single);
        continue;
      }
      group.push(id);
      const t = this.#tokenizer.decode(group, { skipSpecialTokens: true });
      if (t.endsWith("\uFFFD") && i < ids.length - 1) {
        const stable = t.replace(/\uFFFD+$/, "");
        texts.push(stable.slice(emitted));
        emitted = Math.max(emitted, stable.length);
        continue;
      }
      texts.push(t.slice(emitted));
      group = [];
      emitted = 0;
    }
    const text = this.#tokenizer.decode(ids, { skipSpecialTokens: true });
    if (texts.join("") === text) return { texts, text };
    this.fallbacks++;
    const spans = this.#tokenizer.tokenOffsets(ids, { skipSpecialTokens: true });
    return { texts: spans.map((s) => text.slice(s.start, s.end)), text };
  }
}

function otherRule(rule: DetectionRule): DetectionRule {
  return rule === "corrected" ? "reference" : "corrected";
}

/**
 * One event row from one generation record.
 *
 * @param record The generation record (needs `completion_token_ids`).
 * @param problem The problem's gold.
 * @param texts Per-token texts of the completion (see {@linkcode TokenTexts.split}); their concatenation
 *   is the text every extractor reads.
 * @param onsetTokenText Decoded single onset token (special tokens kept), e.g. `" wait"`.
 * @param options Rule, extractor, trigger lists.
 * @throws {RangeError} naming the record when the example id is not a number.
 */
export function buildEventRow(
  record: GenerationRecord,
  problem: ProblemGold | undefined,
  texts: readonly string[],
  onsetTokenText: (id: number) => string,
  options: EventOptions,
): EventRow {
  const where =
    `record ${record.variant}/${record.condition} example ${record.example_id} sample ${record.sample_id}`;
  if (typeof record.example_id !== "number") {
    throw new RangeError(`${where}: example_id must be a number to join with the problems`);
  }
  const ids = record.completion_token_ids;
  const thinkClose = options.thinkClose?.(record.variant) ?? "</think>";
  const closeId = typeof options.thinkCloseTokenId === "function"
    ? options.thinkCloseTokenId(record.variant)
    : options.thinkCloseTokenId;
  const common = {
    triggersStrict: options.triggersStrict,
    triggersRelaxed: options.triggersRelaxed ?? options.triggersStrict,
    thinkClose,
    ...(closeId !== undefined ? { thinkCloseTokenId: closeId } : {}),
  };
  const input = { tokenTexts: texts, tokenIds: ids, promptTokens: record.prompt_tokens };
  const primary = detect(input, { ...common, rule: options.rule });
  const other = detect(input, { ...common, rule: otherRule(options.rule) });
  const text = texts.join("");
  const onset = primary.onset;

  const refPred = extractAnswerReference(text, options.answerRegex);
  const refGold = problem === undefined ? undefined : (problem.answer_value ?? String(problem.gold));
  const correctReference = isCorrectReference(refPred, refGold);

  let predicted: string;
  let isCorrect: boolean | undefined;
  let method: string;
  let status: AnswerStatus;
  let region: EventRow["answer_region"] = "";
  let finalValue: number | undefined;
  if (options.extractor === "robust") {
    // Corrected scoring: the answer after the reasoning first; reasoning never closed = unfinished
    // (neither correct nor incorrect; no answer is read from a text cut mid-thought).
    const sc = scoreCompletion(text, problem?.gold, {
      reasoning: {
        closed: primary.reasoning_closed,
        end: primary.reasoning_end_char,
        answerStart: primary.answer_start_char,
      },
    });
    status = sc.status;
    predicted = status === "unfinished" ? "" : (sc.answer.raw ?? "");
    method = status === "unfinished" ? "unfinished" : sc.answer.method;
    region = status === "unfinished" ? "" : sc.answer.region;
    finalValue = status === "unfinished" ? undefined : sc.answer.value;
    isCorrect = status === "correct" ? true : status === "incorrect" ? false : undefined;
  } else {
    // Reference-compatible scoring, unchanged: no unfinished status.
    predicted = refPred ?? "";
    method = refPred === undefined ? "none" : "reference";
    isCorrect = correctReference;
    status = isCorrect === undefined ? "unknown" : isCorrect ? "correct" : "incorrect";
    finalValue = referenceAnswerValue(refPred);
  }
  const deg = degeneration(ids, text);
  let onsetType: OnsetType | "" = "";
  let onsetRule: OnsetRule | "" = "";
  let evidence = "";
  let candidate: number | undefined;
  let trajectory: TrajectoryColumn = "";
  if (onset) {
    // The window ends at the next trigger of the list the onset came from, or the end of the reasoning.
    const list = onset.from_strict ? primary.strict.matches : primary.relaxed.matches;
    const next = list.find((m) => m.char > onset.char)?.char;
    const c = classifyOnset(text, onset.char, {
      reasoningEnd: primary.reasoning_end_char > onset.char ? primary.reasoning_end_char : text.length,
      ...(next !== undefined ? { nextTriggerChar: next } : {}),
    });
    onsetType = c.type;
    onsetRule = c.evidence.rule;
    evidence = evidenceSummary(c.evidence);
    const t = answerTrajectory(text, onset.char, { status, value: finalValue }, problem?.gold);
    candidate = t.candidate?.value;
    trajectory = t.kind === "undetermined" ? t.undetermined! : t.kind;
  }
  return {
    example_id: record.example_id,
    sample_id: record.sample_id,
    variant: record.variant,
    condition: record.condition,
    has_backtracking_strict: primary.strict.has_trigger,
    has_backtracking_relaxed: primary.relaxed.has_trigger,
    onset_phrase: onset?.text ?? "",
    onset_char: onset?.char_py ?? -1,
    onset_token_in_completion: onset?.token_index ?? -1,
    onset_token_in_full: onset?.token_index_in_full ?? -1,
    onset_token_id: onset?.token_id ?? -1,
    onset_token_text: onset?.token_id !== undefined ? onsetTokenText(onset.token_id) : "",
    pred_pos_in_full: onset === undefined ? -1 : Math.max(0, onset.pred_pos),
    predicted_answer: predicted,
    is_correct: isCorrect,
    prompt_tokens: record.prompt_tokens,
    completion_tokens: record.completion_tokens,
    rule: options.rule,
    bt_other_rule: other.strict.has_trigger,
    triggers_per_1k: primary.strict.triggers_per_1k_tokens,
    trigger_counts: { ...primary.strict.counts },
    reasoning_closed: primary.reasoning_closed,
    finish_reason: record.finish_reason,
    gold: problem?.gold,
    answer_status: status,
    answer_method: method,
    correct_reference: correctReference,
    repetition_4gram: deg.repetition_4gram,
    distinct_2: deg.distinct_2,
    digit_free: deg.digit_free,
    answer_region: region,
    final_answer: finalValue,
    onset_type: onsetType,
    onset_rule: onsetRule,
    onset_evidence: evidence,
    candidate_answer: candidate,
    trajectory,
  };
}

/** The numeric value of a reference-extractor answer (`$1,234.` → 1234), or undefined. */
function referenceAnswerValue(pred: string | undefined): number | undefined {
  if (pred === undefined) return undefined;
  const v = Number(pred.replace(/[$€£¥,]/g, "").replace(/\.+$/, ""));
  return pred.trim() !== "" && Number.isFinite(v) ? v : undefined;
}

/**
 * The evidence behind an onset type in one line: the deciding rule, then the phrases found (error,
 * confirmation, re-check, reread, each the first in the window), the value before the onset and the
 * last firm value after it with how many there were, e.g.
 * `value_changed; before 18; after 24 (2 values)` or `confirm_phrase; confirm "that's correct"; before 18`.
 */
export function evidenceSummary(e: OnsetEvidence): string {
  const out: string[] = [e.rule];
  const phrase = (label: string, m: { text: string } | undefined) => {
    if (m) out.push(`${label} ${JSON.stringify(m.text.replace(/\s+/g, " ").trim())}`);
  };
  phrase("error", e.error_phrase);
  phrase("confirm", e.confirm_phrase);
  phrase("recheck", e.recheck_phrase);
  phrase("reread", e.reread_phrase);
  if (e.value_before) out.push(`before ${e.value_before.value}`);
  const last = e.values_after.at(-1);
  if (last) {
    out.push(`after ${last.value}${e.values_after.length > 1 ? ` (${e.values_after.length} values)` : ""}`);
  }
  return out.join("; ");
}

/** Result of {@linkcode buildEventRows}. */
export interface BuiltEvents {
  readonly rows: EventRow[];
  /** Records whose stored `completion` differs from the decode of their token ids (the decode was used). */
  readonly textMismatches: number;
  /** Records that needed the exact (slow) token-offset path. */
  readonly offsetFallbacks: number;
  /** Records whose example id is not among the problems (gold unknown). */
  readonly missingProblems: number;
}

/**
 * Event rows for a list of records, in the given order.
 *
 * @param records Generation records.
 * @param problems Problems (gold) by id.
 * @param tokenizer The tokenizer the records were generated with.
 * @param options Rule, extractor, triggers (see {@linkcode eventOptionsFromConfig}).
 */
export function buildEventRows(
  records: readonly GenerationRecord[],
  problems: ReadonlyMap<number, ProblemGold>,
  tokenizer: Tokenizer,
  options: EventOptions,
): BuiltEvents {
  const splitter = new TokenTexts(tokenizer);
  const pieceCache = new Map<number, string>();
  const piece = (id: number) => {
    let t = pieceCache.get(id);
    if (t === undefined) pieceCache.set(id, t = tokenizer.decode([id]));
    return t;
  };
  let textMismatches = 0;
  let missingProblems = 0;
  const rows = records.map((r) => {
    if (!Array.isArray(r.completion_token_ids)) {
      throw new RangeError(
        `record ${r.variant}/${r.condition} example ${r.example_id} sample ${r.sample_id} has no ` +
          `completion_token_ids; regenerate it with this project's generate step`,
      );
    }
    const { texts, text } = splitter.split(r.completion_token_ids);
    if (text !== r.completion) textMismatches++;
    const p = typeof r.example_id === "number" ? problems.get(r.example_id) : undefined;
    if (p === undefined) missingProblems++;
    return buildEventRow(r, p, texts, piece, options);
  });
  return { rows, textMismatches, offsetFallbacks: splitter.fallbacks, missingProblems };
}

// ---------------------------------------------------------------------------------------------------
// CSV

/**
 * CSV text with Python csv conventions (`True`/`False`, empty for None, floats in Python repr, `\r\n`
 * line ends), as the reference's artifacts are written; a thin front to {@linkcode tableCsv}.
 *
 * @param rows Objects.
 * @param columns Column order; default the keys of the first row.
 * @param floatColumns Columns Python holds as floats: integral values are written `1.0`, as `repr(float)`.
 */
export function toCsv(
  rows: readonly object[],
  columns?: readonly string[],
  floatColumns: readonly string[] = [],
): string {
  return tableCsv(rows, {
    columns: columns ?? (rows[0] ? Object.keys(rows[0]) : []),
    floatColumns,
    python: true,
  });
}

/** `backtracking_events.csv` text: the reference's 17 columns, then ours. */
export function eventsToCsv(rows: readonly EventRow[]): string {
  return toCsv(rows, EVENT_COLUMNS, ["triggers_per_1k", "repetition_4gram", "distinct_2"]);
}

const ONSET_TYPES = new Set(["", "revision", "verification", "other"]);
const TRAJECTORY_VALUES = new Set([
  "",
  "fix",
  "break",
  "wrong_to_wrong",
  "kept_right",
  "kept_wrong",
  "no_candidate",
  "no_final_answer",
  "unfinished",
  "no_gold",
]);

const BOOL_COLS = new Set([
  "has_backtracking_strict",
  "has_backtracking_relaxed",
  "bt_other_rule",
  "reasoning_closed",
  "digit_free",
]);
const OPT_BOOL_COLS = new Set(["is_correct", "correct_reference"]);
const NUM_COLS = new Set([
  "example_id",
  "sample_id",
  "onset_char",
  "onset_token_in_completion",
  "onset_token_in_full",
  "onset_token_id",
  "pred_pos_in_full",
  "prompt_tokens",
  "completion_tokens",
  "triggers_per_1k",
  "repetition_4gram",
  "distinct_2",
]);

/**
 * Parse `backtracking_events.csv` text written by {@linkcode eventsToCsv}.
 *
 * @param text The CSV text.
 * @param file File name for error messages.
 * @throws {Error} naming the file, line and column on a missing column or a bad value.
 */
export function parseEventsCsv(text: string, file = "backtracking_events.csv"): EventRow[] {
  const { columns: header, records } = parseCsv(text);
  const missing = EVENT_COLUMNS.filter((c) => !header.includes(c));
  if (missing.length > 0) {
    throw new Error(`${file}: missing column(s) ${missing.join(", ")}; re-run detect-events with --force`);
  }
  return records.map((r, n) => {
    const line = n + 2;
    const out: Record<string, unknown> = {};
    for (const col of EVENT_COLUMNS) {
      const v = r[col] ?? "";
      const bad = () => new Error(`${file}:${line}: column ${col} has invalid value ${JSON.stringify(v)}`);
      if (BOOL_COLS.has(col)) {
        if (v !== "True" && v !== "False") throw bad();
        out[col] = v === "True";
      } else if (OPT_BOOL_COLS.has(col)) {
        if (v !== "True" && v !== "False" && v !== "") throw bad();
        out[col] = v === "" ? undefined : v === "True";
      } else if (NUM_COLS.has(col)) {
        const x = Number(v);
        if (v === "" || !Number.isFinite(x)) throw bad();
        out[col] = x;
      } else if (col === "gold" || col === "final_answer" || col === "candidate_answer") {
        const x = Number(v);
        if (v !== "" && !Number.isFinite(x)) throw bad();
        out[col] = v === "" ? undefined : x;
      } else if (col === "onset_type") {
        if (!ONSET_TYPES.has(v)) throw bad();
        out[col] = v;
      } else if (col === "trajectory") {
        if (!TRAJECTORY_VALUES.has(v)) throw bad();
        out[col] = v;
      } else if (col === "trigger_counts") {
        try {
          out[col] = v === "" ? {} : JSON.parse(v);
        } catch {
          throw bad();
        }
      } else out[col] = v;
    }
    return out as unknown as EventRow;
  });
}

/** Read `backtracking_events.csv` from a path. */
export async function readEventsCsv(path: string): Promise<EventRow[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as Error).message}; run detect-events first`, { cause: e });
  }
  return parseEventsCsv(text, path);
}

// ---------------------------------------------------------------------------------------------------
// Corrected summary

/** `summary_metrics_corrected.json`: one summary per (variant, condition), never pooled. */
export interface CorrectedSummaryFile {
  readonly protocol: string;
  readonly rule: DetectionRule;
  readonly extractor: string;
  readonly accuracy_definition: string;
  readonly groups: readonly GroupSummary[];
}

/**
 * The corrected summary: {@linkcode summarizeGroups} over all rows, with the definitions stated.
 *
 * @param rows All event rows.
 * @param config The run's config (rule, extractor, bootstrap settings).
 */
export function correctedSummary(rows: readonly EventRow[], config: Config): CorrectedSummaryFile {
  const opts: SummaryOptions = {
    bootstrap: config.stats.bootstrap_samples,
    seed: config.stats.seed,
    level: config.stats.ci_level,
  };
  return {
    protocol: config.protocol,
    rule: config.detection.rule,
    extractor: config.detection.answer_extractor,
    accuracy_definition:
      "correct / n (unknown and unfinished answers count as not correct; unknown_rate and unfinished_rate " +
      "beside it); accuracy_finished = correct / rows not unfinished; rate intervals: `ci` = Wilson " +
      "widened by the design effect of a bootstrap over problems (docs/protocol.md §16)",
    groups: summarizeGroups(rows, opts),
  };
}
