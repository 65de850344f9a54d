/**
 * Small table helpers: plain row objects ↔ CSV (RFC 4180, stable column order, atomic writes), rows →
 * nodejs-polars DataFrame, and Parquet for large tables (nodejs-polars 0.25.2 `writeParquet` works
 * under Deno).
 *
 * Values are written as: `undefined`/`null` → empty field; booleans → `true`/`false` (or Python's
 * `True`/`False` with `{python: true}`); numbers → JS shortest round-trip text (or Python `repr(float)`
 * for the columns named in `floatColumns` with `{python: true}`); objects/arrays → JSON text.
 *
 * @module
 */

import pl from "nodejs-polars";
import { pyFloatRepr } from "./pyfloat.ts";
import { writeFileAtomic } from "../util/fs.ts";

/** A plain table row: any object; its own enumerable keys are the columns. */
export type Row = object;

function cell(r: Row, c: string): unknown {
  return (r as Record<string, unknown>)[c];
}

/** Options of {@linkcode toCsv} / {@linkcode writeCsv}. */
export interface CsvOptions {
  /** Column order (default: keys of the first row, then new keys in first-appearance order). */
  readonly columns?: readonly string[];
  /** Write like Python's csv module: `True`/`False`, `floatColumns` via `repr(float)`, CRLF line ends. */
  readonly python?: boolean;
  /** Line terminator (default LF, or CRLF with `python`). */
  readonly lineTerminator?: "\n" | "\r\n";
  /** Columns Python would hold as floats (only used with `python`; e.g. `1` → `1.0`). */
  readonly floatColumns?: readonly string[];
}

/** Column names of `rows`: keys of the first row, then any new keys in first-appearance order. */
export function columnsOf(rows: readonly Row[]): string[] {
  const seen = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  return [...seen];
}

function quoteField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function cellText(v: unknown, column: string, python: boolean, floats: ReadonlySet<string>): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "boolean") return python ? (v ? "True" : "False") : String(v);
  // Python writes floats with repr(): non-integers always, integral values of float columns as `1.0`.
  if (typeof v === "number") {
    return python && (floats.has(column) || !Number.isInteger(v)) ? pyFloatRepr(v) : String(v);
  }
  if (typeof v === "string") return v;
  if (typeof v === "bigint") return v.toString();
  return JSON.stringify(v);
}

/**
 * Rows → CSV text (header line, then one line per row, each ended by the line terminator).
 *
 * @throws {RangeError} if `columns` repeats a name.
 * @example
 * ```ts
 * toCsv([{ a: 1, b: "x,y" }]); // 'a,b\n1,"x,y"\n'
 * ```
 */
export function toCsv(rows: readonly Row[], options: CsvOptions = {}): string {
  const columns = options.columns ?? columnsOf(rows);
  if (new Set(columns).size !== columns.length) {
    throw new RangeError(`toCsv: option "columns" repeats a name: ${columns.join(", ")}`);
  }
  const floats = new Set(options.floatColumns ?? []);
  const python = options.python ?? false;
  const lines = [columns.map(quoteField).join(",")];
  for (const r of rows) {
    lines.push(columns.map((c) => quoteField(cellText(cell(r, c), c, python, floats))).join(","));
  }
  const eol = options.lineTerminator ?? (python ? "\r\n" : "\n");
  return lines.join(eol) + eol;
}

/** Write rows as CSV to `path` atomically (see {@linkcode toCsv} for the format). */
export async function writeCsv(path: string, rows: readonly Row[], options: CsvOptions = {}): Promise<void> {
  await writeFileAtomic(path, toCsv(rows, options), { createDir: true });
}

/**
 * Parse CSV text (RFC 4180: quoted fields with `""` escapes and embedded newlines; `\n` or `\r\n`).
 *
 * @returns The header and the records as string maps (every field a string; empty stays "").
 * @throws {SyntaxError} on an unterminated quote or a record whose width differs from the header's.
 */
export function parseCsv(text: string): { columns: string[]; records: Record<string, string>[] } {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let i = 0;
  let quoted = false;
  let line = 1;
  while (i < text.length) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        if (ch === "\n") line++;
        field += ch;
      }
      i++;
      continue;
    }
    if (ch === '"' && field === "") quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      line++;
    } else field += ch;
    i++;
  }
  if (quoted) throw new SyntaxError(`parseCsv: unterminated quoted field starting before line ${line}`);
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  const [header, ...body] = rows;
  if (!header) return { columns: [], records: [] };
  const records = body.map((r, k) => {
    if (r.length !== header.length) {
      throw new SyntaxError(
        `parseCsv: record ${k + 1} has ${r.length} fields, the header has ${header.length}`,
      );
    }
    return Object.fromEntries(header.map((c, j) => [c, r[j]!]));
  });
  return { columns: header, records };
}

/** Read and parse a CSV file (see {@linkcode parseCsv}). */
export async function readCsv(
  path: string,
): Promise<{ columns: string[]; records: Record<string, string>[] }> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read CSV "${path}"`, { cause: e });
  }
  try {
    return parseCsv(text);
  } catch (e) {
    throw new SyntaxError(`Cannot parse CSV "${path}": ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Rows → nodejs-polars DataFrame with one typed column per key (column order as in
 * {@linkcode columnsOf} or `columns`): all-integer columns → Int64, other numbers → Float64, booleans
 * → Bool, strings → Utf8; objects/arrays become JSON text; `undefined` → null. The DataFrame also has each
 * column as a property, which hides a method of the same name (a `head` column hides `DataFrame.head`):
 * pass `columns`, or `select`, before calling it.
 *
 * @throws {TypeError} if a column mixes kinds (e.g. numbers and strings).
 */
export function toDataFrame(rows: readonly Row[], columns?: readonly string[]): pl.DataFrame {
  const cols = columns ?? columnsOf(rows);
  const series = cols.map((c) => {
    const values = rows.map((r) => cell(r, c));
    const kinds = new Set(values.filter((v) => v !== undefined && v !== null).map((v) => typeof v));
    if (kinds.size > 1) {
      throw new TypeError(`toDataFrame: column "${c}" mixes ${[...kinds].join(" and ")} values`);
    }
    const kind = [...kinds][0] ?? "string";
    const clean = values.map((v) => (v === undefined ? null : v));
    if (kind === "number") {
      const ints = clean.every((v) => v === null || Number.isSafeInteger(v));
      return pl.Series(c, clean as (number | null)[], ints ? pl.Int64 : pl.Float64);
    }
    if (kind === "boolean") return pl.Series(c, clean as (boolean | null)[], pl.Bool);
    if (kind === "string") return pl.Series(c, clean as (string | null)[], pl.Utf8);
    return pl.Series(c, clean.map((v) => (v === null ? null : JSON.stringify(v))), pl.Utf8);
  });
  return pl.DataFrame(series);
}

/**
 * Write rows as Parquet to `path` atomically (via {@linkcode toDataFrame}).
 *
 * @throws {TypeError} as {@linkcode toDataFrame}.
 */
export async function writeParquet(
  path: string,
  rows: readonly Row[],
  columns?: readonly string[],
): Promise<void> {
  const df = toDataFrame(rows, columns);
  const slash = path.lastIndexOf("/");
  await Deno.mkdir(slash >= 0 ? path.slice(0, slash) || "/" : ".", { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    df.writeParquet(tmp);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write Parquet "${path}"`, { cause: e });
  }
}

/** Options of {@linkcode writeTable}. */
export interface WriteTableOptions extends CsvOptions {
  /** Also write `<base>.parquet` when there are at least this many rows (default 100000; `null` = never). */
  readonly parquetAbove?: number | null;
}

/**
 * Write a table as `<base>.csv` (always) and `<base>.parquet` (when large), both atomically.
 *
 * @param base Path without extension.
 * @returns The paths written.
 */
export async function writeTable(
  base: string,
  rows: readonly Row[],
  options: WriteTableOptions = {},
): Promise<{ csvPath: string; parquetPath?: string }> {
  const csvPath = `${base}.csv`;
  await writeCsv(csvPath, rows, options);
  const above = options.parquetAbove === undefined ? 100000 : options.parquetAbove;
  if (above !== null && rows.length >= above) {
    const parquetPath = `${base}.parquet`;
    await writeParquet(parquetPath, rows, options.columns ?? columnsOf(rows));
    return { csvPath, parquetPath };
  }
  return { csvPath };
}
