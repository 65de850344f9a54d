/**
 * The file access the artifact modules share: JSON and text reads that name the file and the step that
 * makes it, and a wrapper that turns a missing file into `undefined` (for readers of optional inputs).
 *
 * @module
 */

import { pathExists } from "../../../lib/util/fs.ts";
import { artifactPath, type Run } from "../run.ts";

/** The error a reader throws when an artifact cannot be read: names the file and the step that writes it. */
export class MissingArtifactError extends Error {
  constructor(
    /** The absolute path. */
    readonly path: string,
    /** The step (or command) that writes it. */
    readonly producer: string,
    cause: unknown,
  ) {
    super(`Cannot read ${path}: ${(cause as Error).message}; run ${producer} first`, { cause });
    this.name = "MissingArtifactError";
  }
}

/**
 * The text of a run artifact.
 *
 * @param run The run.
 * @param rel Path relative to the run folder.
 * @param producer The step that writes it (for the error message).
 * @throws {MissingArtifactError} when the file cannot be read.
 */
export async function readArtifactText(run: Run, rel: string, producer: string): Promise<string> {
  const path = artifactPath(run, rel);
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new MissingArtifactError(path, producer, e);
  }
}

/**
 * A run artifact parsed as JSON (no validation beyond JSON: the writer in the same module made it).
 *
 * @throws {MissingArtifactError} when the file cannot be read or is not JSON.
 */
export async function readArtifactJsonAs<T>(run: Run, rel: string, producer: string): Promise<T> {
  const path = artifactPath(run, rel);
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    throw new MissingArtifactError(path, producer, e);
  }
}

/**
 * The value of a reader, or undefined when its file does not exist (other errors are thrown).
 *
 * @example
 * ```ts
 * const selected = await ifPresent(() => readSelectedLayers(run));
 * ```
 */
export async function ifPresent<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (e) {
    const cause = e instanceof MissingArtifactError ? e.cause : e;
    if (cause instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Whether every run-relative path exists. */
export async function allExist(run: Run, rels: readonly string[]): Promise<boolean> {
  for (const rel of rels) if (!(await pathExists(artifactPath(run, rel)))) return false;
  return true;
}

/** A number cell: empty → NaN, `nan` → NaN. */
export function numCell(s: string | undefined): number {
  return s === undefined || s === "" ? NaN : Number(s === "nan" ? NaN : s);
}
