/**
 * GSM8K data: loading a local JSONL file or the Hugging Face Hub dataset (`openai/gsm8k`, Parquet,
 * through the hub cache), gold parsing, a seeded sample, and the reference's committed 200-problem
 * sample (docs/protocol.md §3).
 *
 * @module
 */
import pl from "nodejs-polars";
import { parseGsm8kGold } from "./answers.ts";
import { type HubOptions, type ResolvedHubFile, resolveHubFile } from "../../lib/engine/hub.ts";
import { seededRng, shuffleInPlace } from "../../lib/stats/stats.ts";

/** One GSM8K problem. */
export interface Gsm8kProblem {
  /**
   * Problem id: the 0-based line (JSONL) or row (Parquet) index in the source file, i.e. the index in
   * the split; for the reference sample, its `id`.
   */
  readonly id: number;
  readonly question: string;
  /** Full GSM8K solution text, ending in `#### <answer>`. */
  readonly answer: string;
  /** Gold answer text after the last `####`, trimmed (commas kept), as the reference stores it. */
  readonly answer_value: string;
  /** Numeric gold answer (commas removed). */
  readonly gold: number;
}

/** Error in a data file, naming the file and the 1-based line (Parquet: row); line 0: the whole file. */
export class DataFileError extends Error {
  /** The message without the `file:line: ` prefix. */
  readonly detail: string;
  constructor(readonly file: string, readonly line: number, message: string, options?: ErrorOptions) {
    super(`${file}:${line}: ${message}`, options);
    this.detail = message;
    this.name = "DataFileError";
  }
}

function fileName(path: string | URL): string {
  return path instanceof URL ? path.pathname : path;
}

/** A UTF-8 byte-order mark at the start of a text file (Windows editors write one). */
const BOM = "\uFEFF";

/** The text without a leading byte-order mark, as JSON-lines readers accept it (pandas, jq, HF datasets). */
export function stripBom(text: string): string {
  return text.startsWith(BOM) ? text.slice(1) : text;
}

/** Non-blank lines of a JSON-lines text (a leading BOM accepted, CRLF too) as objects. */
function* jsonLines(text: string, file: string): Generator<{ line: number; obj: Record<string, unknown> }> {
  const lines = stripBom(text).split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, "");
    if (raw.trim() === "") continue;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      throw new DataFileError(file, i + 1, `invalid JSON (${(e as Error).message})`, { cause: e });
    }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
      throw new DataFileError(file, i + 1, "expected a JSON object");
    }
    yield { line: i + 1, obj: obj as Record<string, unknown> };
  }
}

function stringField(o: Record<string, unknown>, key: string, file: string, line: number): string {
  const v = o[key];
  if (typeof v !== "string") {
    throw new DataFileError(
      file,
      line,
      `field "${key}" missing or not a string (got ${v === undefined ? "nothing" : JSON.stringify(v)})`,
    );
  }
  return v;
}

function answerValue(answer: string): string | undefined {
  const i = answer.lastIndexOf("####");
  return i < 0 ? undefined : answer.slice(i + 4).trim();
}

/**
 * Parse GSM8K JSONL text (`{"question", "answer"}` per line; blank lines skipped).
 *
 * @param text File content.
 * @param file File name for error messages.
 * @throws {DataFileError} naming file and line on bad JSON, a missing field, or an answer without a
 *   numeric `####` gold; naming the file (line 0) when it holds no problem at all. A leading UTF-8 BOM is
 *   accepted.
 */
export function parseGsm8kJsonl(text: string, file: string): Gsm8kProblem[] {
  const out: Gsm8kProblem[] = [];
  for (const { line, obj } of jsonLines(text, file)) out.push(gsm8kRow(obj, out.length, file, line));
  if (out.length === 0) throw emptyFile(file, text);
  return out;
}

function emptyFile(file: string, text: string): DataFileError {
  return new DataFileError(
    file,
    0,
    `no problems: the file is ${text.length === 0 ? "empty" : "only blank lines"}; it needs one JSON ` +
      `object a line with "question" and "answer" (GSM8K JSONL)`,
  );
}

/** One `{question, answer}` record as a problem (gold parsed from the `####` line). */
function gsm8kRow(obj: Record<string, unknown>, id: number, file: string, line: number): Gsm8kProblem {
  const question = stringField(obj, "question", file, line);
  const answer = stringField(obj, "answer", file, line);
  let gold: number;
  try {
    gold = parseGsm8kGold(answer);
  } catch (e) {
    throw new DataFileError(file, line, (e as Error).message, { cause: e });
  }
  return Object.freeze({ id, question, answer, answer_value: answerValue(answer)!, gold });
}

/**
 * Load a local GSM8K JSONL file (e.g. the HF `test` split exported as JSONL).
 *
 * @param path File path or URL.
 * @throws {DataFileError} on a bad line (file + line), or when the file cannot be read (line 0).
 */
export async function loadGsm8kJsonl(path: string | URL): Promise<Gsm8kProblem[]> {
  const file = fileName(path);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new DataFileError(file, 0, `cannot read GSM8K file (${(e as Error).message})`, { cause: e });
  }
  return parseGsm8kJsonl(text, file);
}

/**
 * Read a GSM8K Parquet file (the hub's format: string columns `question` and `answer`, one problem a
 * row; other columns ignored). Ids are row indices, so a split read here and the same split exported
 * as JSONL give the same problems and the same seeded sample.
 *
 * @param path Local file path.
 * @param file Name for error messages (default `path`), e.g. an `hf://` address.
 * @throws {DataFileError} naming the file: unreadable or not Parquet, or without the two columns
 *   (line 0); a row without a string field or a numeric `####` gold (line = 1-based row).
 */
export function readGsm8kParquet(path: string, file: string = path): Gsm8kProblem[] {
  let df: pl.DataFrame;
  try {
    df = pl.readParquet(path);
  } catch (e) {
    throw new DataFileError(file, 0, `cannot read GSM8K Parquet file (${(e as Error).message})`, {
      cause: e,
    });
  }
  const lacking = ["question", "answer"].filter((c) => !df.columns.includes(c));
  if (lacking.length > 0) {
    throw new DataFileError(
      file,
      0,
      `no column ${lacking.map((c) => `"${c}"`).join(" or ")} (columns: ${df.columns.join(", ") || "none"})`,
    );
  }
  const questions = df.getColumn("question").toArray() as unknown[];
  const answers = df.getColumn("answer").toArray() as unknown[];
  return questions.map((question, i) => gsm8kRow({ question, answer: answers[i] }, i, file, i + 1));
}

/** The hub dataset GSM8K comes from. */
export const GSM8K_HUB_REPO = "openai/gsm8k";

/** The GSM8K splits on the hub. */
export const GSM8K_SPLITS = ["test", "train"] as const;

/** A GSM8K split: `test` (1,319 problems) or `train` (7,473). */
export type Gsm8kSplit = typeof GSM8K_SPLITS[number];

/** The split's file in {@linkcode GSM8K_HUB_REPO}: `main/<split>-00000-of-00001.parquet`. */
export function gsm8kHubFile(split: Gsm8kSplit): string {
  return `main/${split}-00000-of-00001.parquet`;
}

/** Options of {@linkcode loadGsm8kFromHub}: the split, and the hub options (revision, cache, offline…). */
export interface LoadGsm8kFromHubOptions extends HubOptions {
  readonly split: Gsm8kSplit;
}

/** A GSM8K split from the hub, with where it came from. */
export interface Gsm8kFromHub {
  readonly problems: Gsm8kProblem[];
  /** The local Parquet file (in the hub cache's snapshot). */
  readonly file: string;
  /** The dataset commit the revision resolved to. */
  readonly commit: string;
  /** `hf://datasets/openai/gsm8k@<commit>/main/<split>-00000-of-00001.parquet`. */
  readonly source: string;
  /** Whether the file was already cached (no network used). */
  readonly cached: boolean;
}

/**
 * Get a GSM8K split from the Hugging Face Hub (`openai/gsm8k`, file {@linkcode gsm8kHubFile}) through
 * the hub cache (`datasets--openai--gsm8k/`; see {@linkcode resolveHubFile}: cached files need no
 * network, `HF_HUB_OFFLINE=1` forbids it) and read it as {@linkcode readGsm8kParquet} does.
 *
 * @param options The split and hub options; each hub option defaults to its environment variable.
 * @returns The problems in split order, the local file, the commit and the `hf://` source address.
 * @throws {Error} Naming the repo and file and what to do (offline and not cached: run once online, or
 *   set `dataset.path` to a local GSM8K JSONL file; hub errors; a size mismatch).
 * @throws {DataFileError} When the downloaded file is not GSM8K Parquet.
 * @throws {TypeError} On an unknown split or a malformed token.
 */
export async function fetchGsm8kFromHub(options: LoadGsm8kFromHubOptions): Promise<Gsm8kFromHub> {
  const { split, ...hubOptions } = options;
  if (!(GSM8K_SPLITS as readonly string[]).includes(split)) {
    throw new TypeError(
      `GSM8K split ${JSON.stringify(split)} is not one of ${GSM8K_SPLITS.join(", ")}; set dataset.split`,
    );
  }
  const path = gsm8kHubFile(split);
  let resolved: ResolvedHubFile;
  try {
    resolved = await resolveHubFile({ type: "dataset", name: GSM8K_HUB_REPO }, path, hubOptions);
  } catch (e) {
    if (!(e instanceof Error) || e instanceof TypeError) throw e;
    throw new Error(
      `Cannot get GSM8K (${split} split) from the Hugging Face Hub: ${e.message}; or set dataset.path to ` +
        `a local GSM8K JSONL file`,
      { cause: e },
    );
  }
  const source = `hf://datasets/${GSM8K_HUB_REPO}@${resolved.commit}/${path}`;
  let problems: Gsm8kProblem[];
  try {
    problems = readGsm8kParquet(resolved.path, source);
  } catch (e) {
    if (!(e instanceof DataFileError)) throw e;
    throw new DataFileError(
      e.file,
      e.line,
      `${e.detail} (cached at ${resolved.path}: delete it to fetch it again)`,
      { cause: e },
    );
  }
  return {
    problems,
    file: resolved.path,
    commit: resolved.commit,
    source,
    cached: resolved.source === "cache",
  };
}

/**
 * Load a GSM8K split from the Hugging Face Hub: {@linkcode fetchGsm8kFromHub} without the provenance.
 *
 * @example
 * ```ts
 * const problems = await loadGsm8kFromHub({ split: "test" }); // 1,319 problems, ids 0..1318
 * ```
 */
export async function loadGsm8kFromHub(options: LoadGsm8kFromHubOptions): Promise<Gsm8kProblem[]> {
  return (await fetchGsm8kFromHub(options)).problems;
}

/**
 * A deterministic sample of `n` items: a Fisher–Yates shuffle of a copy (j uniform in [0, i] for
 * i = len−1 … 1) driven by {@linkcode seededRng} (xoshiro128** seeded by SplitMix32), then the
 * first `n`. This is our own shuffle, **not** the HF datasets / numpy permutation the reference used;
 * for the reference's sample use {@linkcode loadReferenceSample}.
 *
 * @param items Items to sample from (not modified).
 * @param n Sample size (clamped to the number of items).
 * @param seed Seed.
 */
export function seededSample<T>(items: readonly T[], n: number, seed: number): T[] {
  return shuffleInPlace([...items], seededRng(seed)).slice(0, Math.max(0, Math.min(n, items.length)));
}

/** A problem of the reference's committed sample. */
export interface ReferenceProblem extends Gsm8kProblem {
  /** The reference's `answer_value` (string, commas kept), as stored; the reference scores against it. */
  readonly answer_value: string;
}

/**
 * Read the reference's committed sample (`gsm8k_200.jsonl`: `{id, question, answer, answer_value}`)
 * as "the reference's sample", in file order. Ids must run 0, 1, 2, … (the position in the reference's
 * shuffled order, not the GSM8K index).
 *
 * @param path Path of `gsm8k_200.jsonl`.
 * @throws {DataFileError} naming file and line on bad JSON, missing fields, out-of-order ids, or an
 *   `answer_value` that disagrees with the text after `####`.
 */
export async function loadReferenceSample(path: string | URL): Promise<ReferenceProblem[]> {
  const file = fileName(path);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new DataFileError(file, 0, `cannot read reference sample (${(e as Error).message})`, { cause: e });
  }
  const out: ReferenceProblem[] = [];
  for (const { line, obj } of jsonLines(text, file)) {
    const id = obj["id"];
    if (id !== out.length) {
      throw new DataFileError(file, line, `expected "id" ${out.length}, got ${JSON.stringify(id)}`);
    }
    const question = stringField(obj, "question", file, line);
    const answer = stringField(obj, "answer", file, line);
    const value = stringField(obj, "answer_value", file, line);
    if (answerValue(answer) !== value) {
      throw new DataFileError(
        file,
        line,
        `"answer_value" ${JSON.stringify(value)} differs from the answer's "####" text`,
      );
    }
    let gold: number;
    try {
      gold = parseGsm8kGold(answer);
    } catch (e) {
      throw new DataFileError(file, line, (e as Error).message, { cause: e });
    }
    out.push(Object.freeze({ id, question, answer, answer_value: value, gold }));
  }
  if (out.length === 0) throw emptyFile(file, text);
  return out;
}
