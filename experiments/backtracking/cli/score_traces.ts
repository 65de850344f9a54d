/**
 * `bt score-traces`: this toolkit's reading of reasoning traces generated elsewhere (vLLM,
 * transformers, …): the answer and its status, both detection rules, the onset, its type and the
 * answer trajectory, per line, and a summary with confidence intervals.
 *
 * ```
 * deno task bt score-traces --in traces.jsonl --out scored.jsonl [--config cfg.yaml]
 *   [--tokenizer <dir|hub id>] [--summary file.json]
 * ```
 *
 * Input: JSON Lines, one completion a line: `completion` (the text after the generation prompt, so it
 * starts inside `<think>`), `gold_answer` (a number, a numeric string such as `"1,234"`, or a GSM8K
 * answer text ending in `#### 18`; `null` = no gold, finished rows are then `unknown`), and optionally
 * `id`, `question`, `condition` (groups of the summary; default `all`), `example_id` (the problem, the
 * clustering unit of the intervals; default the question text, else the id, else the line), and
 * `token_ids` (the completion's token ids as generated). Blank lines are ignored; a line that cannot be
 * read (bad JSON, no `completion`, a bad `gold_answer` or `token_ids`) is reported by number on stderr
 * and in the summary, and skipped.
 *
 * Tokens: with `token_ids` and a tokenizer, the ids are decoded one by one (as the pipeline does) and
 * the reasoning ends at the `</think>` token (id 151649 for R1), not at the tag written in prose; the
 * decoded text is what is read (a line whose decode differs from `completion` is flagged
 * `text_from_token_ids`). Without `token_ids`, the tokenizer encodes `completion` (token indices are
 * then those of a re-tokenisation). Without a tokenizer, positions are characters only and the token
 * fields are `null`.
 *
 * Scoring follows the config's protocol: `corrected` (default) = the robust extractor, answer after the
 * reasoning first, `unfinished` when the reasoning never closed; `reference` = the reference's extractor
 * and exact comparison (no `unfinished`). Both rules' trigger flags are always written; the onset,
 * its type and trajectory use the config's rule.
 *
 * Output line: `{line, id, condition, gold, status, answer: {value, raw, method, region},
 * reasoning: {closed, end_char, end_by, end_token}, rule, triggers: {corrected, reference}: {strict,
 * relaxed}, onset: {char, char_py, token_index, token_id, trigger, text, lead} | null,
 * onset_type, onset_evidence, trajectory, token_source}`.
 *
 * Summary (stderr, and `--summary` as JSON): per condition, accuracy on all rows and on finished rows,
 * the unfinished and unknown rates, the backtracking rate under both rules, onset-type shares and the
 * answer trajectory, every proportion with a cluster-adjusted Wilson interval (`clusteredWilsonCI`).
 *
 * @module
 */

import {
  type AnswerStatus,
  extractAnswerReference,
  isCorrectReference,
  parseGsm8kGold,
  scoreCompletion,
} from "../answers.ts";
import { type Config, loadConfig, parseConfig } from "../config.ts";
import { detect, type DetectionResult, type DetectOptions } from "../detect.ts";
import { TokenTexts } from "../events.ts";
import { writeFileAtomic } from "../../../lib/util/fs.ts";
import { resolveHubFile } from "../../../lib/engine/hub.ts";
import { loadTokenizer, type Tokenizer } from "../../../lib/engine/tokenizer.ts";
import { classifyOnset, type OnsetEvidence, type OnsetType } from "../onset_type.ts";
import { type ClusteredValue, clusteredWilsonCI, type ProportionInterval } from "../../../lib/stats/stats.ts";
import {
  answerTrajectory,
  summarizeTrajectories,
  type Trajectory,
  type TrajectoryObservation,
  type TrajectorySummary,
} from "../trajectory.ts";
import { type CliIO, consoleIO, defineCli, parseOrHelp } from "../../../lib/util/cli.ts";

/** The command line of `bt score-traces`: the option table of its parser and its `--help`. */
export const SCORE_TRACES_CLI = defineCli({
  command: "deno task bt score-traces",
  summary: "Score reasoning traces generated elsewhere (vLLM, transformers, ...). Per line: the answer and " +
    "its status, both detection rules, the onset, its type and the answer trajectory; then a summary " +
    "with confidence intervals.",
  options: {
    in: {
      type: "string",
      arg: "FILE",
      required: true,
      help:
        "Input JSON Lines, one completion a line: completion, gold_answer (number, numeric string, or a " +
        "GSM8K answer ending in '#### N'; null = no gold), optional id, question, condition, example_id, " +
        "token_ids.",
    },
    out: { type: "string", arg: "FILE", required: true, help: "Output JSON Lines, one scored trace a line." },
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      help: "Experiment config whose protocol (corrected or reference), detection and statistics settings " +
        "are used.",
      default: "the built-in defaults (corrected protocol)",
    },
    tokenizer: {
      type: "string",
      arg: "DIR|HUB_ID",
      help:
        "Tokenizer folder or Hugging Face hub id: decodes token_ids (the reasoning ends at the </think> " +
        "token) or re-tokenises the completion, for token positions.",
      default: "none (positions in characters only)",
    },
    summary: {
      type: "string",
      arg: "FILE",
      help: "Also write the summary (printed on stderr) as JSON to FILE.",
    },
  },
  details: [
    "Lines that cannot be read are reported by number on stderr and in the summary, and skipped. Exit " +
    "status: 0 done, 1 no line could be read (or a file error), 2 bad usage.",
  ],
  environment: {
    HF_HUB_OFFLINE: "1 = load a hub tokenizer from the local cache only.",
    "HF_HUB_CACHE / HF_HOME": "Where hub downloads are cached (default ~/.cache/huggingface/hub).",
    BT_DEBUG: "1 = print the stack trace of an error.",
  },
  examples: [
    "deno task bt score-traces --in traces.jsonl --out scored.jsonl",
    "deno task bt score-traces --in traces.jsonl --out scored.jsonl --tokenizer " +
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --summary summary.json",
  ],
});

/** One input line, validated. */
export interface TraceInput {
  readonly line: number;
  readonly id: string | number | null;
  readonly completion: string;
  readonly gold: number | undefined;
  /** The gold as given (the reference scorer compares strings). */
  readonly goldText: string | undefined;
  readonly condition: string;
  readonly cluster: string | number;
  readonly tokenIds: readonly number[] | undefined;
}

/** One output line. */
export interface ScoredTrace {
  readonly line: number;
  readonly id: string | number | null;
  readonly condition: string;
  readonly gold: number | null;
  readonly status: AnswerStatus;
  readonly answer: {
    readonly value: number | null;
    readonly raw: string | null;
    readonly method: string;
    readonly region: string | null;
  };
  readonly reasoning: {
    readonly closed: boolean;
    readonly end_char: number;
    readonly end_by: DetectionResult["reasoning_end_by"];
    readonly end_token: number | null;
  };
  readonly rule: "corrected" | "reference";
  readonly triggers: {
    readonly corrected: { readonly strict: boolean; readonly relaxed: boolean };
    readonly reference: { readonly strict: boolean; readonly relaxed: boolean };
  };
  readonly onset: {
    readonly char: number;
    readonly char_py: number;
    readonly token_index: number | null;
    readonly token_id: number | null;
    readonly trigger: string;
    readonly text: string;
    readonly lead: string;
  } | null;
  readonly onset_type: OnsetType | null;
  readonly onset_evidence: OnsetEvidence | null;
  readonly trajectory: Trajectory | null;
  /** Where token positions came from: the line's ids, a re-tokenisation, or none (characters only). */
  readonly token_source: "token_ids" | "tokenizer" | "none";
  /** The line's `token_ids` decode to a text other than its `completion` (the decode was read). */
  readonly text_from_token_ids: boolean;
}

/** A line that could not be read. */
export interface SkippedLine {
  readonly line: number;
  readonly error: string;
}

function parseGold(v: unknown, line: number): { gold: number | undefined; text: string | undefined } {
  if (v === null) return { gold: undefined, text: undefined };
  if (typeof v === "number" && Number.isFinite(v)) return { gold: v, text: String(v) };
  if (typeof v === "string") {
    if (v.includes("####")) {
      return { gold: parseGsm8kGold(v), text: v.slice(v.lastIndexOf("####") + 4).trim() };
    }
    const s = v.trim().replaceAll(",", "").replace(/^\$/, "");
    if (/^[-+]?(?:\d+(?:\.\d*)?|\.\d+)$/.test(s)) return { gold: Number(s), text: v.trim() };
  }
  throw new RangeError(
    `line ${line}: gold_answer ${JSON.stringify(v)} is not a number, a numeric string or a GSM8K answer ` +
      `ending in "#### <number>" (use null for no gold)`,
  );
}

/**
 * Validate one parsed JSONL line.
 *
 * @throws {RangeError} naming the line and the field at fault.
 */
export function parseTraceLine(obj: unknown, line: number): TraceInput {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new RangeError(
      `line ${line}: expected a JSON object, got ${Array.isArray(obj) ? "an array" : typeof obj}`,
    );
  }
  const o = obj as Record<string, unknown>;
  if (typeof o.completion !== "string") {
    throw new RangeError(
      `line ${line}: "completion" must be a string (the text after the generation prompt)`,
    );
  }
  if (!("gold_answer" in o)) {
    throw new RangeError(`line ${line}: "gold_answer" is missing (use null when there is no gold)`);
  }
  const { gold, text } = parseGold(o.gold_answer, line);
  let tokenIds: number[] | undefined;
  if (o.token_ids !== undefined && o.token_ids !== null) {
    if (!Array.isArray(o.token_ids) || o.token_ids.some((t) => !Number.isInteger(t) || (t as number) < 0)) {
      throw new RangeError(`line ${line}: "token_ids" must be an array of non-negative integers`);
    }
    tokenIds = o.token_ids as number[];
  }
  const id = typeof o.id === "string" || typeof o.id === "number" ? o.id : null;
  const condition = typeof o.condition === "string" && o.condition !== "" ? o.condition : "all";
  const ex = o.example_id ?? o.problem_id;
  const cluster = typeof ex === "string" || typeof ex === "number"
    ? ex
    : typeof o.question === "string"
    ? `q:${o.question}`
    : id ?? `line:${line}`;
  return { line, id, completion: o.completion, gold, goldText: text, condition, cluster, tokenIds };
}

/** What scoring needs besides the line: rules, triggers, and (optionally) a tokenizer. */
export interface TraceScorer {
  readonly config: Config;
  readonly tokenizer: Tokenizer | undefined;
  /** The close tag's single token id in the tokenizer, if it is one token. */
  readonly thinkCloseTokenId: number | undefined;
  readonly splitter: TokenTexts | undefined;
}

/** A scorer for a config and an optional tokenizer. */
export function traceScorer(config: Config, tokenizer: Tokenizer | undefined): TraceScorer {
  let thinkCloseTokenId: number | undefined;
  if (tokenizer) {
    const ids = tokenizer.encode("</think>", { addSpecialTokens: false });
    if (ids.length === 1) thinkCloseTokenId = ids[0];
  }
  return {
    config,
    tokenizer,
    thinkCloseTokenId,
    splitter: tokenizer ? new TokenTexts(tokenizer) : undefined,
  };
}

/**
 * Score one trace (see the module doc for the output).
 *
 * @param input A validated line.
 * @param scorer Config, tokenizer.
 */
export function scoreTrace(input: TraceInput, scorer: TraceScorer): ScoredTrace {
  const { config, splitter } = scorer;
  let texts: readonly string[];
  let ids: readonly number[] | undefined;
  let source: ScoredTrace["token_source"];
  let text = input.completion;
  if (splitter && input.tokenIds) {
    const s = splitter.split(input.tokenIds);
    texts = s.texts;
    text = s.text;
    ids = input.tokenIds;
    source = "token_ids";
  } else if (splitter && scorer.tokenizer) {
    ids = scorer.tokenizer.encode(input.completion, { addSpecialTokens: false });
    const s = splitter.split(ids);
    texts = s.texts;
    text = s.text;
    source = "tokenizer";
  } else {
    texts = [input.completion];
    source = "none";
  }
  const det = config.detection;
  const common: Omit<DetectOptions, "rule"> = {
    triggersStrict: det.triggers_strict,
    triggersRelaxed: det.triggers_relaxed.length > 0 ? det.triggers_relaxed : det.triggers_strict,
    ...(source === "token_ids" && scorer.thinkCloseTokenId !== undefined
      ? { thinkCloseTokenId: scorer.thinkCloseTokenId }
      : {}),
  };
  const detIn = { tokenTexts: texts, ...(source === "token_ids" ? { tokenIds: ids } : {}), promptTokens: 0 };
  const corrected = detect(detIn, { ...common, rule: "corrected" });
  const reference = detect(detIn, { ...common, rule: "reference" });
  const primary = det.rule === "corrected" ? corrected : reference;

  let status: AnswerStatus;
  let answer: ScoredTrace["answer"];
  if (det.answer_extractor === "robust") {
    const sc = scoreCompletion(text, input.gold, {
      reasoning: {
        closed: primary.reasoning_closed,
        end: primary.reasoning_end_char,
        answerStart: primary.answer_start_char,
      },
    });
    status = sc.status;
    answer = {
      value: sc.answer.value ?? null,
      raw: sc.answer.raw ?? null,
      method: sc.answer.method,
      region: sc.answer.region,
    };
  } else {
    const pred = extractAnswerReference(text, det.answer_regex);
    const ok = isCorrectReference(pred, input.goldText);
    status = ok === undefined ? "unknown" : ok ? "correct" : "incorrect";
    const num = pred === undefined ? NaN : Number(pred.replace(/[$€£¥,]/g, "").replace(/\.+$/, ""));
    answer = {
      value: Number.isFinite(num) ? num : null,
      raw: pred ?? null,
      method: pred === undefined ? "none" : "reference",
      region: null,
    };
  }

  const o = primary.onset;
  let onset: ScoredTrace["onset"] = null;
  let onsetType: OnsetType | null = null;
  let evidence: OnsetEvidence | null = null;
  let trajectory: Trajectory | null = null;
  if (o) {
    onset = {
      char: o.char,
      char_py: o.char_py,
      token_index: source === "none" ? null : o.token_index,
      token_id: ids?.[o.token_index] ?? null,
      trigger: o.trigger,
      text: o.text,
      lead: o.lead,
    };
    const list = o.from_strict ? primary.strict.matches : primary.relaxed.matches;
    const next = list.find((m) => m.char > o.char)?.char;
    const c = classifyOnset(text, o.char, {
      reasoningEnd: primary.reasoning_end_char > o.char ? primary.reasoning_end_char : text.length,
      ...(next !== undefined ? { nextTriggerChar: next } : {}),
    });
    onsetType = c.type;
    evidence = c.evidence;
    trajectory = answerTrajectory(text, o.char, { status, value: answer.value ?? undefined }, input.gold);
  }
  return {
    line: input.line,
    id: input.id,
    condition: input.condition,
    gold: input.gold ?? null,
    status,
    answer,
    reasoning: {
      closed: primary.reasoning_closed,
      end_char: primary.reasoning_end_char,
      end_by: primary.reasoning_end_by,
      end_token: primary.reasoning_end_token >= 0 ? primary.reasoning_end_token : null,
    },
    rule: det.rule,
    triggers: {
      corrected: { strict: corrected.strict.has_trigger, relaxed: corrected.relaxed.has_trigger },
      reference: { strict: reference.strict.has_trigger, relaxed: reference.relaxed.has_trigger },
    },
    onset,
    onset_type: onsetType,
    onset_evidence: evidence,
    trajectory,
    token_source: source,
    text_from_token_ids: source === "token_ids" && text !== input.completion,
  };
}

/** A proportion as the summary reports it. */
export interface SummaryShare {
  readonly k: number;
  readonly n: number;
  readonly estimate: number;
  readonly lower: number | null;
  readonly upper: number | null;
  readonly method: ProportionInterval["method"] | null;
}

/** Per-condition summary. */
export interface ConditionTraceSummary {
  readonly condition: string;
  readonly rows: number;
  readonly problems: number;
  readonly accuracy: SummaryShare;
  readonly accuracy_finished: SummaryShare;
  readonly unfinished_rate: SummaryShare;
  readonly unknown_rate: SummaryShare;
  readonly bt_rate: SummaryShare;
  readonly bt_rate_other_rule: SummaryShare;
  /** Shares of onsets (rows with an onset) by type. */
  readonly onset_types: Readonly<Record<OnsetType, SummaryShare>>;
  readonly trajectory: TrajectorySummary | null;
}

/** The `--summary` file. */
export interface TraceSummaryFile {
  readonly rule: "corrected" | "reference";
  readonly extractor: "robust" | "reference";
  readonly interval: string;
  readonly lines_scored: number;
  readonly lines_skipped: readonly SkippedLine[];
  readonly conditions: readonly ConditionTraceSummary[];
}

function shareOf(obs: readonly ClusteredValue[], level: number, samples: number, seed: number): SummaryShare {
  if (obs.length === 0) return { k: 0, n: 0, estimate: NaN, lower: null, upper: null, method: null };
  const w = clusteredWilsonCI(obs, { level, samples, seed });
  return { k: w.k, n: w.n, estimate: w.estimate, lower: w.lower, upper: w.upper, method: w.method };
}

/**
 * The summary of scored traces, per condition (first-seen order).
 *
 * @param scored Scored traces with their clusters (problems).
 * @param config Rule, extractor, interval settings (`stats.ci_level`, `stats.bootstrap_samples`,
 *   `stats.seed` ?? `run.seed`).
 * @param skipped Lines that could not be read.
 */
export function summarizeTraces(
  scored: readonly { readonly trace: ScoredTrace; readonly cluster: string | number }[],
  config: Config,
  skipped: readonly SkippedLine[] = [],
): TraceSummaryFile {
  const level = config.stats.ci_level;
  const samples = config.stats.bootstrap_samples;
  const seed = config.stats.seed ?? config.run.seed;
  const byCondition = new Map<string, { trace: ScoredTrace; cluster: string | number }[]>();
  for (const s of scored) {
    const g = byCondition.get(s.trace.condition);
    if (g) g.push(s);
    else byCondition.set(s.trace.condition, [s]);
  }
  const conditions = [...byCondition].map(([condition, rows]): ConditionTraceSummary => {
    const share = (subset: typeof rows, hit: (t: ScoredTrace) => boolean) =>
      shareOf(subset.map((r) => ({ cluster: r.cluster, value: hit(r.trace) })), level, samples, seed);
    const finished = rows.filter((r) => r.trace.status !== "unfinished");
    const withOnset = rows.filter((r) => r.trace.onset_type !== null);
    const other = config.detection.rule === "corrected" ? "reference" : "corrected";
    const trajObs: TrajectoryObservation[] = withOnset.map((r) => ({
      condition,
      cluster: r.cluster,
      trajectory: r.trace.trajectory!,
    }));
    return {
      condition,
      rows: rows.length,
      problems: new Set(rows.map((r) => r.cluster)).size,
      accuracy: share(rows, (t) => t.status === "correct"),
      accuracy_finished: share(finished, (t) => t.status === "correct"),
      unfinished_rate: share(rows, (t) => t.status === "unfinished"),
      unknown_rate: share(rows, (t) => t.status === "unknown"),
      bt_rate: share(rows, (t) => t.triggers[t.rule].strict),
      bt_rate_other_rule: share(rows, (t) => t.triggers[other].strict),
      onset_types: {
        revision: share(withOnset, (t) => t.onset_type === "revision"),
        verification: share(withOnset, (t) => t.onset_type === "verification"),
        other: share(withOnset, (t) => t.onset_type === "other"),
      },
      trajectory: summarizeTrajectories(trajObs, { level, samples, seed })[0] ?? null,
    };
  });
  return {
    rule: config.detection.rule,
    extractor: config.detection.answer_extractor,
    interval:
      `cluster-adjusted Wilson score interval (Wilson 1927) at level ${level}, clustered by problem; ` +
      "design effect from a cluster bootstrap, the largest the cluster sizes allow at 0% and 100%",
    lines_scored: scored.length,
    lines_skipped: skipped,
    conditions,
  };
}

function pct(
  s: SummaryShare | { k: number; n: number; estimate: number; lower?: number; upper?: number },
): string {
  if (s.n === 0) return "n/a (n = 0)";
  const lo = s.lower ?? NaN;
  const hi = s.upper ?? NaN;
  return `${(100 * s.estimate).toFixed(1)}% [${(100 * lo).toFixed(1)}, ${
    (100 * hi).toFixed(1)
  }] (${s.k}/${s.n})`;
}

/** The summary as text lines for stderr. */
export function summaryText(s: TraceSummaryFile): string {
  const out = [
    `score-traces: ${s.lines_scored} line(s) scored, ${s.lines_skipped.length} skipped; rule ${s.rule}, ` +
    `extractor ${s.extractor}; intervals: ${s.interval}`,
  ];
  for (const c of s.conditions) {
    out.push(`condition ${c.condition}: ${c.rows} rows, ${c.problems} problems`);
    out.push(`  accuracy (all rows):      ${pct(c.accuracy)}`);
    out.push(`  accuracy (finished rows): ${pct(c.accuracy_finished)}`);
    out.push(`  unfinished rate:          ${pct(c.unfinished_rate)}`);
    out.push(`  unknown rate:             ${pct(c.unknown_rate)}`);
    out.push(`  backtracking rate:        ${pct(c.bt_rate)}; other rule ${pct(c.bt_rate_other_rule)}`);
    out.push(
      `  onset types:              revision ${pct(c.onset_types.revision)}, verification ` +
        `${pct(c.onset_types.verification)}, other ${pct(c.onset_types.other)}`,
    );
    const t = c.trajectory;
    if (t) {
      out.push(
        `  answer trajectory:        ${t.determined} of ${t.onsets} onsets determined; changed ${
          pct(t.changed)
        }; ` +
          `of the changes fixes ${pct(t.fixes)}, breaks ${pct(t.breaks)}`,
      );
    }
  }
  return out.join("\n");
}

/** Load a tokenizer from a folder, or its tokenizer files from the hub (cache first). */
export async function loadTokenizerSpec(spec: string): Promise<Tokenizer> {
  let isDir = false;
  try {
    isDir = (await Deno.stat(spec)).isDirectory;
  } catch {
    isDir = false;
  }
  if (isDir || spec.startsWith(".") || spec.startsWith("/")) return await loadTokenizer(spec);
  const repo = { type: "model" as const, name: spec };
  const main = await resolveHubFile(repo, "tokenizer.json");
  await resolveHubFile(repo, "tokenizer_config.json");
  for (const f of ["special_tokens_map.json", "generation_config.json"]) {
    await resolveHubFile(repo, f).catch(() => undefined);
  }
  return await loadTokenizer(main.path.slice(0, main.path.lastIndexOf("/")));
}

/** JSON replacer writing absent (`undefined`) fields as `null`, so every line has the same keys. */
function keepKeys(_key: string, value: unknown): unknown {
  return value === undefined ? null : value;
}

/**
 * Run the subcommand.
 *
 * @param args The arguments after `score-traces`.
 * @param io Where the help goes (the summary and notes go to stderr).
 * @returns The exit status: 0 done, 1 no line could be read.
 * @throws {UsageError} on bad usage; {Error} when `--in` cannot be read.
 */
export async function scoreTracesCommand(args: string[], io: CliIO = consoleIO): Promise<number> {
  const parsed = parseOrHelp(SCORE_TRACES_CLI, args, io);
  if (parsed.help) return 0;
  const values = parsed.values as {
    in: string;
    out: string;
    config?: string;
    tokenizer?: string;
    summary?: string;
  };
  const config = values.config
    ? await loadConfig(values.config)
    : parseConfig(undefined, "built-in defaults");
  const tokenizer = values.tokenizer ? await loadTokenizerSpec(values.tokenizer) : undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(values.in);
  } catch (e) {
    throw new Error(`Cannot read --in ${values.in}: ${(e as Error).message}`, { cause: e });
  }
  const scorer = traceScorer(config, tokenizer);
  const scored: { trace: ScoredTrace; cluster: string | number }[] = [];
  const skipped: SkippedLine[] = [];
  let idsWithoutTokenizer = 0;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === "") continue;
    const line = i + 1;
    try {
      let obj: unknown;
      try {
        obj = JSON.parse(raw);
      } catch (e) {
        throw new RangeError(`line ${line}: not valid JSON (${(e as Error).message})`);
      }
      const input = parseTraceLine(obj, line);
      if (input.tokenIds && !tokenizer) idsWithoutTokenizer++;
      scored.push({ trace: scoreTrace(input, scorer), cluster: input.cluster });
    } catch (e) {
      const msg = (e as Error).message;
      skipped.push({ line, error: msg.startsWith(`line ${line}`) ? msg : `line ${line}: ${msg}` });
    }
  }
  for (const s of skipped) console.error(`score-traces: skipped ${s.error}`);
  if (idsWithoutTokenizer > 0) {
    console.error(
      `score-traces: note: ${idsWithoutTokenizer} line(s) have token_ids but no --tokenizer was given: ` +
        "positions are characters only; pass --tokenizer to map ids to text and use the </think> token",
    );
  }
  await writeFileAtomic(
    values.out,
    scored.map((s) => JSON.stringify(s.trace, keepKeys)).join("\n") + (scored.length ? "\n" : ""),
  );
  const summary = summarizeTraces(scored, config, skipped);
  if (values.summary) await writeFileAtomic(values.summary, JSON.stringify(summary, keepKeys, 2) + "\n");
  console.error(summaryText(summary));
  return scored.length === 0 && skipped.length > 0 ? 1 : 0;
}
