/**
 * GSM8K data: loading a local JSONL file, gold parsing, a seeded sample, and the reference's committed
 * 200-problem sample (spec §2).
 *
 * @module
 */
import { parseGsm8kGold } from "./answers.ts";
import { seededRng, shuffleInPlace } from "./stats.ts";

/** One GSM8K problem. */
export interface Gsm8kProblem {
  /** Problem id: the 0-based line index in the source file (for the reference sample, its `id`). */
  readonly id: number;
  readonly question: string;
  /** Full GSM8K solution text, ending in `#### <answer>`. */
  readonly answer: string;
  /** Gold answer text after the last `####`, trimmed (commas kept), as the reference stores it. */
  readonly answer_value: string;
  /** Numeric gold answer (commas removed). */
  readonly gold: number;
}

/** Error in a data file, naming the file and the 1-based line. */
export class DataFileError extends Error {
  constructor(readonly file: string, readonly line: number, message: string, options?: ErrorOptions) {
    super(`${file}:${line}: ${message}`, options);
    this.name = "DataFileError";
  }
}

function fileName(path: string | URL): string {
  return path instanceof URL ? path.pathname : path;
}

function* jsonLines(text: string, file: string): Generator<{ line: number; obj: Record<string, unknown> }> {
  const lines = text.split("\n");
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
 *   numeric `####` gold.
 */
export function parseGsm8kJsonl(text: string, file: string): Gsm8kProblem[] {
  const out: Gsm8kProblem[] = [];
  for (const { line, obj } of jsonLines(text, file)) {
    const question = stringField(obj, "question", file, line);
    const answer = stringField(obj, "answer", file, line);
    let gold: number;
    try {
      gold = parseGsm8kGold(answer);
    } catch (e) {
      throw new DataFileError(file, line, (e as Error).message, { cause: e });
    }
    out.push(Object.freeze({ id: out.length, question, answer, answer_value: answerValue(answer)!, gold }));
  }
  return out;
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
  return out;
}
