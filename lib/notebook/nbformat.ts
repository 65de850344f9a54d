/**
 * Jupyter notebook format 4: types, reading with validation, atomic writing, and small builders.
 *
 * Validation is structural (what the runner relies on), not the full JSON schema: nbformat 4, a `cells`
 * array, each cell a known `cell_type` with a string or string-array `source`.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** A text field: nbformat allows a string or a list of lines. */
export type MultilineString = string | string[];
/** A MIME bundle, e.g. `{"text/plain": "1", "text/html": "<b>1</b>"}`. */
export type MimeBundle = Record<string, unknown>;

/** A `stream` output (stdout/stderr text). */
export interface StreamOutput {
  output_type: "stream";
  name: "stdout" | "stderr";
  text: MultilineString;
}
/** A `display_data` output. */
export interface DisplayDataOutput {
  output_type: "display_data";
  data: MimeBundle;
  metadata: Record<string, unknown>;
}
/** An `execute_result` output (the value of the cell's last expression). */
export interface ExecuteResultOutput {
  output_type: "execute_result";
  data: MimeBundle;
  metadata: Record<string, unknown>;
  execution_count: number | null;
}
/** An `error` output. */
export interface ErrorOutput {
  output_type: "error";
  ename: string;
  evalue: string;
  traceback: string[];
}
/** Any code-cell output. */
export type Output = StreamOutput | DisplayDataOutput | ExecuteResultOutput | ErrorOutput;

/** A code cell. */
export interface CodeCell {
  cell_type: "code";
  id?: string;
  source: MultilineString;
  metadata: Record<string, unknown>;
  outputs: Output[];
  execution_count: number | null;
}
/** A markdown cell. */
export interface MarkdownCell {
  cell_type: "markdown";
  id?: string;
  source: MultilineString;
  metadata: Record<string, unknown>;
  attachments?: Record<string, MimeBundle>;
}
/** A raw cell. */
export interface RawCell {
  cell_type: "raw";
  id?: string;
  source: MultilineString;
  metadata: Record<string, unknown>;
  attachments?: Record<string, MimeBundle>;
}
/** Any cell. */
export type Cell = CodeCell | MarkdownCell | RawCell;

/** Notebook-level metadata (known keys typed, others kept). */
export interface NotebookMetadata {
  kernelspec?: { name: string; display_name: string; language?: string };
  language_info?: Record<string, unknown>;
  [key: string]: unknown;
}

/** An nbformat 4 notebook. */
export interface Notebook {
  nbformat: 4;
  nbformat_minor: number;
  metadata: NotebookMetadata;
  cells: Cell[];
}

/** Raised when a file is not a usable nbformat 4 notebook; the message names the file and the fault. */
export class NotebookFormatError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NotebookFormatError";
  }
}

/** The kernelspec written into executed notebooks. */
export const DENO_KERNELSPEC = { name: "deno", display_name: "Deno", language: "typescript" } as const;

/** A cell's source as one string. */
export function sourceText(source: MultilineString): string {
  return typeof source === "string" ? source : source.join("");
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isMultiline(x: unknown): x is MultilineString {
  return typeof x === "string" || (Array.isArray(x) && x.every((l) => typeof l === "string"));
}

/**
 * Parses and validates notebook JSON. Missing `metadata`, `outputs` and `execution_count` are filled in
 * with their empty values.
 *
 * @param text The file's contents.
 * @param path Where it came from, for error messages.
 * @returns The notebook.
 * @throws {NotebookFormatError} naming `path` (and the cell index) when the text is not an nbformat 4 notebook.
 */
export function parseNotebook(text: string, path: string): Notebook {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new NotebookFormatError(`Notebook "${path}" is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!isRecord(raw)) throw new NotebookFormatError(`Notebook "${path}" is not a JSON object`);
  if (raw.nbformat !== 4) {
    throw new NotebookFormatError(
      `Notebook "${path}" has nbformat ${JSON.stringify(raw.nbformat)}, only nbformat 4 is supported`,
    );
  }
  const minor = raw.nbformat_minor ?? 0;
  if (typeof minor !== "number" || !Number.isInteger(minor) || minor < 0) {
    throw new NotebookFormatError(
      `Notebook "${path}" has an invalid nbformat_minor ${JSON.stringify(minor)}`,
    );
  }
  if (!Array.isArray(raw.cells)) throw new NotebookFormatError(`Notebook "${path}" has no "cells" array`);
  const metadata = raw.metadata ?? {};
  if (!isRecord(metadata)) throw new NotebookFormatError(`Notebook "${path}" has non-object metadata`);
  const cells = raw.cells.map((c: unknown, i: number): Cell => {
    const where = `Notebook "${path}", cell ${i}`;
    if (!isRecord(c)) throw new NotebookFormatError(`${where} is not an object`);
    if (c.cell_type !== "code" && c.cell_type !== "markdown" && c.cell_type !== "raw") {
      throw new NotebookFormatError(`${where} has unknown cell_type ${JSON.stringify(c.cell_type)}`);
    }
    if (!isMultiline(c.source)) {
      throw new NotebookFormatError(`${where} has no string or string-array "source"`);
    }
    if (c.id !== undefined && typeof c.id !== "string") {
      throw new NotebookFormatError(`${where} has a non-string id ${JSON.stringify(c.id)}`);
    }
    c.metadata ??= {};
    if (!isRecord(c.metadata)) throw new NotebookFormatError(`${where} has non-object metadata`);
    if (c.cell_type === "code") {
      c.outputs ??= [];
      c.execution_count ??= null;
      if (!Array.isArray(c.outputs)) throw new NotebookFormatError(`${where} has a non-array "outputs"`);
    }
    return c as unknown as Cell;
  });
  return { ...raw, nbformat: 4, nbformat_minor: minor, metadata, cells } as Notebook;
}

/**
 * Reads and validates a notebook file.
 *
 * @param path The .ipynb file.
 * @returns The notebook.
 * @throws {NotebookFormatError} when the file is not an nbformat 4 notebook.
 * @throws {Deno.errors.NotFound} when the file does not exist (message names the file).
 */
export async function readNotebook(path: string): Promise<Notebook> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Notebook "${path}" does not exist`, { cause: err });
    }
    throw err;
  }
  return parseNotebook(text, path);
}

/**
 * Serialises a notebook as Jupyter does (1-space indent, trailing newline).
 *
 * @param notebook The notebook.
 * @returns The JSON text.
 */
export function formatNotebook(notebook: Notebook): string {
  return JSON.stringify(notebook, null, 1) + "\n";
}

/**
 * Writes a notebook atomically: to a temporary file in the same folder, then renamed over `path`. Creates
 * the folder if needed.
 *
 * @param path Destination .ipynb file.
 * @param notebook The notebook.
 */
export async function writeNotebook(path: string, notebook: Notebook): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  try {
    await Deno.writeTextFile(tmp, formatNotebook(notebook));
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/** A fresh cell id (nbformat ≥ 4.5: 1-64 chars of `[a-zA-Z0-9-_]`). */
export function newCellId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

/**
 * A code cell with no outputs.
 *
 * @example
 * ```ts
 * const nb = newNotebook([markdownCell("# Title"), codeCell("1 + 1")]);
 * ```
 */
export function codeCell(source: string): CodeCell {
  return { cell_type: "code", id: newCellId(), source, metadata: {}, outputs: [], execution_count: null };
}

/** A markdown cell. */
export function markdownCell(source: string): MarkdownCell {
  return { cell_type: "markdown", id: newCellId(), source, metadata: {} };
}

/** An nbformat 4.5 notebook with the Deno kernelspec and the given cells. */
export function newNotebook(cells: Cell[]): Notebook {
  return { nbformat: 4, nbformat_minor: 5, metadata: { kernelspec: { ...DENO_KERNELSPEC } }, cells };
}

/** Result of {@linkcode denoFmtStdin}. */
export interface DenoFmtResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Run `deno fmt <args> -` on `text` through stdin (no file written): formatting generated notebooks, and
 * parsing a cell to recover the syntax error the kernel does not report.
 */
export async function denoFmtStdin(
  args: readonly string[],
  text: string,
  cwd?: string,
): Promise<DenoFmtResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", ...args, "-"],
    ...(cwd ? { cwd } : {}),
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/**
 * Format notebook text with `deno fmt` (run in `cwd`, so the project's fmt options apply), so that
 * generated notebooks have deno fmt's layout (notebooks/ is excluded from `deno fmt`: Deno 2.9.6
 * reports .ipynb files as unformatted on a cold cache even when formatting them changes nothing).
 * @throws naming `file` when `deno fmt` fails.
 */
export async function formatNotebookText(text: string, file: string, cwd: string): Promise<string> {
  const { code, stdout, stderr } = await denoFmtStdin(["--ext=ipynb"], text, cwd);
  if (code !== 0) throw new Error(`deno fmt failed on ${file}: ${stderr}`);
  return stdout;
}

/** A cell as a notebook generator writes it: markdown, or code (optionally shown collapsed). */
export type CellSpec = { readonly md: string } | { readonly code: string; readonly hidden?: boolean };

/** Source text as nbformat's list of lines (each but the last ending in "\n"), outer blank lines trimmed. */
function sourceLines(text: string): string[] {
  const parts = text.replace(/^\n+/, "").replace(/\s+$/, "").split("\n");
  return parts.map((l, i) => (i < parts.length - 1 ? l + "\n" : l));
}

/**
 * A notebook from generator cell specs, with stable cell ids `nb<NN>-<index>` (NN = the file name's
 * two-digit prefix), so regenerating writes identical files.
 */
export function notebookFromSpecs(file: string, specs: readonly CellSpec[]): Notebook {
  const stem = file.slice(0, 2);
  const cells: Cell[] = specs.map((c, i) => {
    const id = `nb${stem}-${String(i).padStart(2, "0")}`;
    if ("md" in c) return { cell_type: "markdown", id, metadata: {}, source: sourceLines(c.md) };
    return {
      cell_type: "code",
      id,
      metadata: c.hidden ? { jupyter: { source_hidden: true } } : {},
      source: sourceLines(c.code),
      outputs: [],
      execution_count: null,
    };
  });
  return newNotebook(cells);
}
