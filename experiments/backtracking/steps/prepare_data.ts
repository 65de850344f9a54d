/**
 * Step `prepare-data`: choose the run's problems and write them to `data/problems.jsonl` in the run
 * folder (one `{id, question, answer, answer_value, gold}` per line).
 *
 * Sources, in order:
 *
 * 1. `dataset.name: synthetic`: seeded GSM8K-style word problems generated here (no file needed; used
 *    by the embedded model-organism default, whose vocabulary is small anyway).
 * 2. `dataset.path` set: a local JSONL file. A file in the reference-sample format (`id`, `question`,
 *    `answer`, `answer_value`: the reference's committed `gsm8k_200.jsonl`) is read in file order and
 *    never re-shuffled (docs/protocol.md §3); its first `max_examples` are used. A plain GSM8K JSONL
 *    (`question`, `answer`) gives a seeded sample of `max_examples` (`dataset.seed`) when
 *    `dataset.shuffle`, else the first `max_examples`.
 * 3. `dataset.path` null: the reference sample at `dataset.save_path` (`data/processed/gsm8k_200.jsonl`,
 *    where the reference keeps it), if that file exists. Nothing else is searched: which problems a run
 *    uses must not depend on what happens to lie near the working folder.
 * 4. `dataset.path` null, no reference sample, `dataset.name: gsm8k`: the `dataset.split` split of
 *    `openai/gsm8k` from the Hugging Face Hub (Parquet, through the hub cache: `HF_HUB_CACHE`,
 *    `HF_HOME`, `HF_TOKEN`, `HF_HUB_OFFLINE`, `HF_ENDPOINT` apply), sampled as a plain GSM8K JSONL is;
 *    the source is recorded as `hf://datasets/openai/gsm8k@<commit>/<file>`.
 *
 * @module
 */

import { basename, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "../config.ts";
import {
  fetchGsm8kFromHub,
  GSM8K_SPLITS,
  type Gsm8kProblem,
  type Gsm8kSplit,
  loadGsm8kJsonl,
  loadReferenceSample,
  seededSample,
  stripBom,
} from "../data.ts";
import { seededRng } from "../../../lib/stats/stats.ts";
import { sha256File } from "../../../lib/util/fs.ts";
import { artifactPath, assertWritable, updateMeta } from "../run.ts";
import { PROBLEMS_FILE, writeProblems } from "../artifacts/problems.ts";
import { lockRun, recordStep, type RunContext, say, type StepOptions } from "../context.ts";

/** Result of {@linkcode prepareData}. */
export interface PrepareDataResult {
  readonly problems: Gsm8kProblem[];
  /** Where the problems were written. */
  readonly path: string;
  /** What they came from: a file path, `hf://datasets/openai/gsm8k@<commit>/<file>`, or `synthetic`. */
  readonly source: string;
  /** sha256 of the source file (for the hub, of the downloaded Parquet file; undefined for synthetic). */
  readonly sourceSha256: string | undefined;
}

async function exists(p: string): Promise<boolean> {
  try {
    return (await Deno.stat(p)).isFile;
  } catch {
    return false;
  }
}

async function isReferenceFormat(path: string): Promise<boolean> {
  const text = stripBom(await Deno.readTextFile(path));
  const first = text.split("\n").find((l) => l.trim() !== "");
  if (!first) return false;
  try {
    const o = JSON.parse(first);
    return typeof o === "object" && o !== null && "id" in o && "answer_value" in o;
  } catch {
    return false;
  }
}

const NAMES = [["Tom", "he", "his"], ["Anna", "she", "her"], ["Sam", "he", "his"], [
  "Mia",
  "she",
  "her",
]] as const;
const ITEMS = ["apples", "books", "pens", "cookies", "cards", "eggs"] as const;

/**
 * Seeded synthetic GSM8K-style problems (add, subtract, multiply; small numbers), with GSM8K-format
 * solutions ending in `#### <gold>`.
 *
 * @param n Number of problems.
 * @param seed Seed.
 */
export function syntheticProblems(n: number, seed: number): Gsm8kProblem[] {
  const rng = seededRng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const out: Gsm8kProblem[] = [];
  for (let id = 0; id < n; id++) {
    const [name, he] = NAMES[int(0, NAMES.length - 1)]!;
    const item = ITEMS[int(0, ITEMS.length - 1)]!;
    const kind = int(0, 2);
    const a = int(2, 40), b = int(2, kind === 2 ? 9 : 30);
    let question: string, steps: string, gold: number;
    if (kind === 0) {
      gold = a + b;
      question = `${name} has ${a} ${item}. ${
        cap(he)
      } buys ${b} more ${item}. How many ${item} does ${he} have now?`;
      steps = `${a} + ${b} = ${gold}`;
    } else if (kind === 1) {
      const big = a + b;
      gold = a;
      question = `${name} has ${big} ${item}. ${cap(he)} gives ${b} ${item} away. How many ${item} are left?`;
      steps = `${big} - ${b} = ${gold}`;
    } else {
      gold = a * b;
      question = `${name} has ${b} boxes with ${a} ${item} in each box. How many ${item} does ${he} have?`;
      steps = `${b} * ${a} = ${gold}`;
    }
    const answer = `${steps}\n#### ${gold}`;
    out.push({ id, question, answer, answer_value: String(gold), gold });
  }
  return out;
}

function cap(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}

/** The project root (the folder holding `datasets/`, `configs/`, `experiments/`). */
const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");

/**
 * Where a configured `dataset.path` points: an absolute path as given; a relative one relative to the
 * working directory when it exists there, else relative to the project root (so the shipped configs'
 * `datasets/gsm8k/test.jsonl` works from any working directory, e.g. a notebook's folder or a test's).
 *
 * @returns The path to read (the working-directory one when neither exists, for the error message).
 */
export async function resolveDatasetPath(path: string): Promise<string> {
  if (isAbsolute(path) || await exists(path)) return path;
  const fromRoot = join(PROJECT_ROOT, path);
  return await exists(fromRoot) ? fromRoot : path;
}

/**
 * Choose the problems a config asks for (see the module doc); nothing is written but, for the hub
 * dataset, the hub cache.
 *
 * @returns The problems, their source (a path, an `hf://` address or `synthetic`), and the local file
 *   they were read from (for its sha256; undefined for synthetic).
 */
export async function selectProblems(
  config: Config,
): Promise<{ problems: Gsm8kProblem[]; source: string; file: string | undefined }> {
  const ds = config.dataset;
  if (ds.name === "synthetic") {
    return { problems: syntheticProblems(ds.max_examples, ds.seed), source: "synthetic", file: undefined };
  }
  let file = ds.path === null ? undefined : await resolveDatasetPath(ds.path);
  if (file !== undefined && !(await exists(file))) {
    throw new Error(
      `dataset.path "${ds.path}" does not exist (relative to the working directory ${Deno.cwd()} nor to ` +
        `the project root ${PROJECT_ROOT}); point it at a local GSM8K JSONL file (e.g. the reference's ` +
        `gsm8k_200.jsonl) or set dataset.name: synthetic`,
    );
  }
  if (file === undefined) {
    if (await exists(ds.save_path)) file = ds.save_path;
    if (file === undefined && ds.name === "gsm8k") {
      if (!(GSM8K_SPLITS as readonly string[]).includes(ds.split)) {
        throw new Error(
          `dataset.split "${ds.split}" is not a GSM8K split (${GSM8K_SPLITS.join(", ")}); fix it, or set ` +
            `dataset.path to a local GSM8K JSONL file`,
        );
      }
      const hub = await fetchGsm8kFromHub({ split: ds.split as Gsm8kSplit });
      return { problems: sample(hub.problems, config), source: hub.source, file: hub.file };
    }
    if (file === undefined) {
      throw new Error(
        `No dataset: dataset.path is null and the reference sample is not at ${ds.save_path}; set dataset.path to a local GSM8K JSONL file (only dataset.name gsm8k is downloaded from the ` +
          `Hugging Face Hub; this config names "${ds.name}")`,
      );
    }
  }
  if (await isReferenceFormat(file)) {
    const all = await loadReferenceSample(file);
    return { problems: all.slice(0, ds.max_examples), source: file, file };
  }
  return { problems: sample(await loadGsm8kJsonl(file), config), source: file, file };
}

/** A full split's sample: seeded (`dataset.seed`) when `dataset.shuffle`, else the first `max_examples`. */
function sample(all: readonly Gsm8kProblem[], config: Config): Gsm8kProblem[] {
  const ds = config.dataset;
  return ds.shuffle ? seededSample(all, ds.max_examples, ds.seed) : all.slice(0, ds.max_examples);
}

/**
 * Write the run's problems.
 *
 * @param ctx The config and the run.
 * @param options `force`: replace an existing `data/problems.jsonl`.
 * @throws {ArtifactExistsError} when the file exists and `force` is not set.
 */
export async function prepareData(ctx: RunContext, options: StepOptions = {}): Promise<PrepareDataResult> {
  await using _lock = await lockRun(ctx, "prepare-data");
  await assertWritable(ctx.run, [PROBLEMS_FILE], { overwrite: options.force ?? false });
  const { problems, source, file } = await selectProblems(ctx.config);
  if (problems.length === 0) {
    throw new Error(
      `prepare-data: no problems from ${source} (dataset.max_examples ${ctx.config.dataset.max_examples}); ` +
        `point dataset.path at a GSM8K JSONL file with problems`,
    );
  }
  const path = await writeProblems(ctx.run, problems, { overwrite: options.force ?? false });
  const sourceSha256 = file ? await sha256File(file) : undefined;
  await updateMeta(ctx.run, {
    data: {
      source,
      source_name: file ? basename(file) : "synthetic",
      source_sha256: sourceSha256 ?? null,
      problems_file: PROBLEMS_FILE,
      problems_sha256: await sha256File(artifactPath(ctx.run, PROBLEMS_FILE)),
      n_problems: problems.length,
    },
  });
  await recordStep(ctx.run, "prepare-data", { n_problems: problems.length, source });
  say(ctx, `prepare-data: ${problems.length} problems from ${source}`);
  return { problems, path, source, sourceSha256 };
}
