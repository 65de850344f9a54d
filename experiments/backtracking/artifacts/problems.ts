/**
 * Artifact `data/problems.jsonl`: the run's problems, one `{id, question, answer, answer_value, gold}`
 * per line (written by prepare-data, read by generation, detection and the notebooks).
 *
 * @module
 */

import { parseGsm8kGold } from "../answers.ts";
import type { Gsm8kProblem } from "../data.ts";
import { artifactPath, type Run, writeArtifact } from "../run.ts";

/** Path of the run's problem file (run-relative). */
export const PROBLEMS_FILE = "data/problems.jsonl";

/**
 * Write the run's problems.
 *
 * @param options `overwrite`: replace an existing file (default false).
 * @returns The absolute path written.
 * @throws {ArtifactExistsError} when the file exists and `overwrite` is not set.
 */
export async function writeProblems(
  run: Run,
  problems: readonly Gsm8kProblem[],
  options: { readonly overwrite?: boolean } = {},
): Promise<string> {
  const text = problems.map((p) =>
    JSON.stringify({
      id: p.id,
      question: p.question,
      answer: p.answer,
      answer_value: p.answer_value,
      gold: p.gold,
    })
  ).join("\n") + "\n";
  return await writeArtifact(run, PROBLEMS_FILE, text, { overwrite: options.overwrite ?? false });
}

/**
 * The problems of the run (`data/problems.jsonl`, written by prepare-data).
 *
 * @throws {Error} naming the file (and line) when it is missing or bad.
 */
export async function readProblems(run: Run): Promise<Gsm8kProblem[]> {
  const path = artifactPath(run, PROBLEMS_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as Error).message}; run prepare-data first`, { cause: e });
  }
  return text.split("\n").filter((l) => l.trim() !== "").map((l, i) => {
    try {
      const o = JSON.parse(l);
      return { ...o, gold: typeof o.gold === "number" ? o.gold : parseGsm8kGold(o.answer) } as Gsm8kProblem;
    } catch (e) {
      throw new Error(`${path}:${i + 1}: ${(e as Error).message}; re-run prepare-data with --force`, {
        cause: e,
      });
    }
  });
}
