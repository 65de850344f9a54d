/**
 * Generation records and their append-only JSONL store with crash-safe resume.
 *
 * On-disk layout (snake_case fields, like the reference pipeline's `generations/<variant>/<condition>.jsonl`):
 * - `<file>`: one JSON object per line, the deterministic part of each record, with a canonical field
 *   order. Wall-clock timings are not in it, so a run that was killed and resumed ends, after
 *   {@link RecordStore.finalize}, byte-identical to an uninterrupted run.
 * - `<file>.timings.jsonl`: the volatile part, one `{variant, condition, example_id, sample_id, timings}`
 *   line per record (option `timings: "sidecar"`, the default). `"inline"` keeps timings in the main
 *   file instead (byte-identity across runs is then lost); `"drop"` discards them.
 *
 * Crash safety: each record is written as one complete line (`JSON + "\n"`) by one `write` of the full
 * buffer (looping only if the OS reports a partial write), and every `append`/`appendMany` call ends
 * with one `datasync`. A process killed mid-write leaves at most one unterminated trailing line, which
 * the next {@link openRecordStore} truncates away (and logs). Anything else that does not parse is an
 * error naming the file and line.
 *
 * @example
 * ```ts
 * import { openRecordStore } from "./records.ts";
 * await using store = await openRecordStore("runs/x/generations/baseline_think_newline/baseline.jsonl");
 * // for each (example, sample): if (!store.has(key)) await store.append(record);
 * await store.finalize();
 * ```
 *
 * @module
 */

import { basename, dirname } from "node:path";
import { processAlive } from "../util/fs.ts";

/** Why generation stopped: an EOS token, a stop string, or the `max_new_tokens` budget. */
export type FinishReason = "eos" | "stop" | "length";

/** Which positions an intervention touched; the named values are the usual ones. */
export type InterventionScope =
  | "all_positions"
  | "generated_only"
  | "decode_only"
  | (string & Record<never, never>);

/** Generation parameters, transformers-style names. Extra keys are kept as written. */
export interface GenParams {
  temperature: number;
  top_p?: number;
  top_k?: number;
  max_new_tokens: number;
  do_sample: boolean;
  [key: string]: unknown;
}

/** Wall-clock timings of one sample (volatile: kept out of the main file by default). */
export interface GenerationTimings {
  /** ISO-8601 start time. */
  started_at: string;
  duration_ms: number;
  [key: string]: unknown;
}

/** One generated sample, as stored. */
export interface GenerationRecord {
  example_id: number | string;
  sample_id: number;
  variant: string;
  condition: string;
  /** The exact prompt string. */
  prompt: string;
  /** Prompt length in tokens, BOS included. */
  prompt_tokens: number;
  prompt_token_ids?: number[];
  /** Decoded completion (special tokens skipped). */
  completion: string;
  completion_token_ids: number[];
  /** This sample's own generated token count (not a padded group maximum). */
  completion_tokens: number;
  finish_reason: FinishReason;
  /** The stop string that ended generation, when `finish_reason` is `"stop"`. */
  stop_string?: string;
  /** The interventions applied, as plain data. */
  interventions: unknown[];
  intervention_scope: InterventionScope;
  /** The seed of this sample's random stream. */
  seed: number;
  gen_params: GenParams;
  timings: GenerationTimings;
  model_id?: string;
}

/** The identity of a record: one sample of one example under one variant and condition. */
export interface RecordKey {
  readonly variant: string;
  readonly condition: string;
  readonly example_id: number | string;
  readonly sample_id: number;
}

/** Where timings go; see the module doc. */
export type TimingsMode = "sidecar" | "inline" | "drop";

/** Options of {@link openRecordStore}. */
export interface RecordStoreOptions {
  /** Where wall-clock timings go. Default `"sidecar"` (`<file>.timings.jsonl`). */
  readonly timings?: TimingsMode;
  /**
   * What to do with an existing file: `"resume"` (default) keeps its records, `"overwrite"` empties it,
   * `"error"` refuses to open a non-empty file.
   */
  readonly existing?: "resume" | "overwrite" | "error";
  /** Receives recovery messages (a truncated partial line). Default `console.warn`. */
  readonly log?: (message: string) => void;
}

/** Options of {@link RecordStore.finalize}. */
export interface FinalizeOptions {
  /** Record order of the final file. Default `"canonical"` ({@link compareRecordKeys}). */
  readonly order?: "canonical" | ((a: GenerationRecord, b: GenerationRecord) => number);
}

/** An open record store; see {@link openRecordStore}. */
export interface RecordStore extends AsyncDisposable {
  /** The main JSONL file. */
  readonly path: string;
  /** The timings sidecar, when `timings` is `"sidecar"`. */
  readonly timingsPath: string | undefined;
  /** Number of records stored (including those being written). */
  readonly size: number;
  /** Whether a record with this key is stored or being written. */
  has(key: RecordKey): boolean;
  /**
   * Append one record and `datasync`.
   * @throws {Error} when its key is already stored, or after an earlier failed write.
   */
  append(record: GenerationRecord): Promise<void>;
  /** Append several records (one line each) with a single `datasync` at the end. */
  appendMany(records: readonly GenerationRecord[]): Promise<void>;
  /** All stored records in file order, with timings merged back from the sidecar. */
  records(): Promise<GenerationRecord[]>;
  /**
   * Rewrite the file (and sidecar) atomically, temp file then rename, in a deterministic order with
   * canonical serialisation; then close the store.
   */
  finalize(options?: FinalizeOptions): Promise<void>;
  /** Wait for pending writes and close the files. Idempotent. */
  close(): Promise<void>;
}

/** Canonical top-level field order; unknown fields follow in sorted order. */
const FIELD_ORDER = [
  "example_id",
  "sample_id",
  "variant",
  "condition",
  "prompt",
  "prompt_tokens",
  "prompt_token_ids",
  "completion",
  "completion_token_ids",
  "completion_tokens",
  "finish_reason",
  "stop_string",
  "interventions",
  "intervention_scope",
  "seed",
  "gen_params",
  "model_id",
  "timings",
] as const;

/**
 * A string that identifies a key (for maps and sets): `1` and `"1"` differ.
 * @example
 * ```ts
 * import { recordKey } from "./records.ts";
 * recordKey({ variant: "v", condition: "baseline", example_id: 3, sample_id: 0 }); // '["v","baseline",3,0]'
 * ```
 */
export function recordKey(key: RecordKey): string {
  return JSON.stringify([key.variant, key.condition, key.example_id, key.sample_id]);
}

/**
 * Canonical order: by variant, condition, example id (numbers numerically, before strings; strings
 * by UTF-16 code units, independent of locale), then sample id.
 */
export function compareRecordKeys(a: RecordKey, b: RecordKey): number {
  return compareStrings(a.variant, b.variant) || compareStrings(a.condition, b.condition) ||
    compareIds(a.example_id, b.example_id) || a.sample_id - b.sample_id;
}

/**
 * One record as a JSON line body (no newline) with canonical field order: top-level fields in the
 * order of {@link GenerationRecord}, nested object keys sorted, typed arrays as plain arrays.
 * @param options `timings: false` leaves out `timings`.
 */
export function serializeRecord(record: GenerationRecord, options: { timings?: boolean } = {}): string {
  const source = record as unknown as Record<string, unknown>;
  const ordered: Record<string, unknown> = {};
  const known = new Set<string>(FIELD_ORDER);
  const extra = Object.keys(source).filter((k) => !known.has(k)).sort(compareStrings);
  for (const k of [...FIELD_ORDER, ...extra]) {
    if (k === "timings" && options.timings === false) continue;
    if (source[k] !== undefined) ordered[k] = source[k];
  }
  return stringifyCanonical(ordered);
}

/** The sidecar path of a store file: `<path>.timings.jsonl`. */
export function timingsPathFor(path: string): string {
  return `${path}.timings.jsonl`;
}

/**
 * Open (or create) a record store. The directory must exist and be writable: this is checked first,
 * by creating and removing a probe file. An existing file is read and indexed by key; an unterminated
 * last line (a crash mid-write) is truncated away and logged.
 *
 * @param path the JSONL file.
 * @param options timings placement, handling of an existing file, logger.
 * @returns the open store.
 * @throws {Error} when the directory is missing or not writable, when `existing: "error"` meets a
 *   non-empty file, or when a line is corrupt, lacks a key field or repeats a key (naming file and line).
 */
export async function openRecordStore(path: string, options: RecordStoreOptions = {}): Promise<RecordStore> {
  const timingsMode = options.timings ?? "sidecar";
  if (!["sidecar", "inline", "drop"].includes(timingsMode)) {
    throw new RangeError(
      `Option "timings" must be "sidecar", "inline" or "drop", got ${JSON.stringify(timingsMode)}`,
    );
  }
  const existing = options.existing ?? "resume";
  if (!["resume", "overwrite", "error"].includes(existing)) {
    throw new RangeError(
      `Option "existing" must be "resume", "overwrite" or "error", got ${JSON.stringify(existing)}`,
    );
  }
  const log = options.log ?? ((m: string) => console.warn(m));
  await checkWritableDir(path);
  for (const t of await reclaimStoreTemps(path)) {
    log(`Record store "${path}": removed ${t}, left by an interrupted finalisation`);
  }
  const timingsPath = timingsMode === "sidecar" ? timingsPathFor(path) : undefined;

  const size = await fileSize(path);
  if (size > 0 && existing === "error") {
    throw new Error(`Record store "${path}" already exists with ${size} bytes (existing: "error")`);
  }
  if (existing === "overwrite") {
    for (const p of [path, timingsPath]) if (p && await fileSize(p) > 0) await Deno.truncate(p, 0);
  }

  const keys = new Map<string, number>();
  for (const { line, value } of await readJsonl(path, log)) {
    const key = validateKey(value, `Record store "${path}" line ${line}`);
    const k = recordKey(key);
    const first = keys.get(k);
    if (first !== undefined) {
      throw new Error(`Record store "${path}" line ${line} repeats the key ${k} of line ${first}`);
    }
    keys.set(k, line);
  }
  if (timingsPath) await readJsonl(timingsPath, log); // recover a partial trailing line

  const main = await Deno.open(path, { write: true, append: true, create: true });
  const side = timingsPath
    ? await Deno.open(timingsPath, { write: true, append: true, create: true })
    : undefined;
  return new JsonlRecordStore(path, timingsPath, timingsMode, keys, main, side);
}

class JsonlRecordStore implements RecordStore {
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  #failed: Error | undefined;

  constructor(
    readonly path: string,
    readonly timingsPath: string | undefined,
    readonly timingsMode: TimingsMode,
    readonly keys: Map<string, number>,
    readonly main: Deno.FsFile,
    readonly side: Deno.FsFile | undefined,
  ) {}

  get size(): number {
    return this.keys.size;
  }

  has(key: RecordKey): boolean {
    return this.keys.has(recordKey(key));
  }

  async append(record: GenerationRecord): Promise<void> {
    await this.appendMany([record]);
  }

  /** Validation and key reservation run synchronously (before the first await), so racing calls see them. */
  async appendMany(records: readonly GenerationRecord[]): Promise<void> {
    this.#checkUsable();
    const batch = new Set<string>();
    for (const r of records) {
      const k = recordKey(validateKey(r, `Record for store "${this.path}"`));
      if (this.keys.has(k) || batch.has(k)) throw new Error(`Record ${k} is already in store "${this.path}"`);
      batch.add(k);
    }
    const lines = records.map((r) => ({
      main: serializeRecord(r, { timings: this.timingsMode === "inline" }) + "\n",
      side: this.side ? timingsLine(r) + "\n" : undefined,
    }));
    for (const k of batch) this.keys.set(k, -1);
    const run = async () => {
      const enc = new TextEncoder();
      try {
        for (const l of lines) {
          await writeAll(this.main, enc.encode(l.main));
          if (this.side && l.side) await writeAll(this.side, enc.encode(l.side));
        }
        await this.main.syncData();
        await this.side?.syncData();
      } catch (e) {
        this.#failed = new Error(`Write to record store "${this.path}" failed; reopen it to recover`, {
          cause: e,
        });
        for (const k of batch) this.keys.delete(k);
        throw this.#failed;
      }
    };
    const done = this.#queue.then(run);
    this.#queue = done.catch(() => {});
    await done;
  }

  async records(): Promise<GenerationRecord[]> {
    await this.#queue;
    return await readStore(this.path, this.timingsPath);
  }

  async finalize(options: FinalizeOptions = {}): Promise<void> {
    this.#checkUsable();
    await this.#queue;
    if (this.#failed) throw this.#failed;
    const order = options.order ?? "canonical";
    const compare = order === "canonical" ? compareRecordKeys : order;
    await this.close();
    const noLog = () => {};
    const rows = (await readJsonl(this.path, noLog)).map((r) => r.value as unknown as GenerationRecord);
    rows.sort(compare);
    const mainText = rows.map((r) => serializeRecord(r, { timings: this.timingsMode === "inline" }) + "\n")
      .join("");
    await writeAtomic(this.path, mainText);
    if (this.timingsPath) {
      const timings = new Map<string, unknown>();
      for (const { value } of await readJsonl(this.timingsPath, noLog)) {
        timings.set(recordKey(value as unknown as RecordKey), value);
      }
      const sideText = rows.flatMap((r) => {
        const t = timings.get(recordKey(r));
        return t === undefined ? [] : [stringifyCanonical(t as object) + "\n"];
      }).join("");
      await writeAtomic(this.timingsPath, sideText);
    }
    await syncDir(dirname(this.path));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    this.main.close();
    this.side?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #checkUsable(): void {
    if (this.#closed) {
      throw new Error(`Record store "${this.path}" is closed (finalized or closed); reopen it`);
    }
    if (this.#failed) throw this.#failed;
  }
}

/**
 * Read a store file (read-only, no recovery): records in file order with timings merged from the
 * sidecar when present. An unterminated last line is ignored.
 * @throws {Error} naming file and line for a corrupt line.
 */
export async function readStore(path: string, timingsPath?: string): Promise<GenerationRecord[]> {
  const rows = (await readJsonl(path, undefined)).map((r) => r.value as unknown as GenerationRecord);
  if (timingsPath && await fileSize(timingsPath) > 0) {
    const timings = new Map<string, GenerationTimings>();
    for (const { value } of await readJsonl(timingsPath, undefined)) {
      timings.set(recordKey(value as unknown as RecordKey), value.timings as GenerationTimings);
    }
    for (const r of rows) {
      const t = timings.get(recordKey(r));
      if (t !== undefined) r.timings = t;
    }
  }
  return rows;
}

/**
 * Write a finished store from records (e.g. merged shards): the main file with canonical serialisation in
 * canonical key order, without timings, and (with `timings: true`) the `.timings.jsonl` sidecar of the
 * records that carry timings, each atomically; byte-identical to what {@link RecordStore.finalize} of a
 * sidecar store holding these records writes.
 *
 * @param path The main JSONL file (its folder must exist).
 * @param records The records (any order; keys must be distinct).
 * @param options `timings`: write the sidecar (default true).
 * @throws {Error} on a repeated key, or when a file cannot be written (naming it).
 */
export async function writeFinalStore(
  path: string,
  records: readonly GenerationRecord[],
  options: { readonly timings?: boolean } = {},
): Promise<void> {
  const rows = [...records].sort(compareRecordKeys);
  for (let i = 1; i < rows.length; i++) {
    if (compareRecordKeys(rows[i - 1]!, rows[i]!) === 0) {
      throw new Error(`Cannot write store "${path}": key ${recordKey(rows[i]!)} occurs twice`);
    }
  }
  await writeAtomic(path, rows.map((r) => serializeRecord(r, { timings: false }) + "\n").join(""));
  if (options.timings ?? true) {
    const side = rows.filter((r) => r.timings !== undefined).map((r) => timingsLine(r) + "\n").join("");
    await writeAtomic(timingsPathFor(path), side);
  }
  await syncDir(dirname(path));
}

// ---------------------------------------------------------------------------------------------------

function timingsLine(r: GenerationRecord): string {
  const { variant, condition, example_id, sample_id, timings } = r;
  return stringifyCanonical({ variant, condition, example_id, sample_id, timings });
}

/**
 * JSON with typed arrays as plain arrays and nested objects' keys sorted; the root object keeps its
 * own key order.
 */
function stringifyCanonical(root: object): string {
  return JSON.stringify(root, (_key: string, value: unknown) => {
    if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
      return Array.from(
        value as unknown as ArrayLike<number | bigint>,
        (x) => typeof x === "bigint" ? Number(x) : x,
      );
    }
    if (value !== root && value !== null && typeof value === "object" && !Array.isArray(value)) {
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(value).sort(compareStrings)) {
        sorted[k] = (value as Record<string, unknown>)[k];
      }
      return sorted;
    }
    return value;
  });
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareIds(a: number | string, b: number | string): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return compareStrings(a, b);
}

function validateKey(value: unknown, where: string): RecordKey {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${where}: expected a JSON object`);
  }
  const v = value as Record<string, unknown>;
  for (const f of ["variant", "condition"] as const) {
    if (typeof v[f] !== "string") {
      throw new TypeError(`${where}: field "${f}" must be a string, got ${JSON.stringify(v[f])}`);
    }
  }
  const id = v.example_id;
  if (!(typeof id === "string" || (typeof id === "number" && Number.isFinite(id)))) {
    throw new TypeError(`${where}: field "example_id" must be a number or string, got ${JSON.stringify(id)}`);
  }
  if (!Number.isSafeInteger(v.sample_id) || (v.sample_id as number) < 0) {
    throw new TypeError(
      `${where}: field "sample_id" must be a non-negative integer, got ${JSON.stringify(v.sample_id)}`,
    );
  }
  return v as unknown as RecordKey;
}

/**
 * Parse a JSONL file into objects with 1-based line numbers; a missing file is empty. An unterminated
 * last line is truncated away (and logged) when `log` is given, ignored otherwise. Blank lines are
 * skipped.
 */
async function readJsonl(
  path: string,
  log: ((m: string) => void) | undefined,
): Promise<{ line: number; value: Record<string, unknown> }[]> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw new Error(`Cannot read record store "${path}"`, { cause: e });
  }
  const end = bytes.lastIndexOf(10) + 1;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const out: { line: number; value: Record<string, unknown> }[] = [];
  let line = 0;
  for (let start = 0; start < end;) {
    const stop = bytes.indexOf(10, start);
    line++;
    const chunk = bytes.subarray(start, stop);
    start = stop + 1;
    let text: string;
    let value: unknown;
    try {
      text = decoder.decode(chunk);
      if (text.trim() === "") continue;
      value = JSON.parse(text);
    } catch (e) {
      throw new Error(
        `Corrupt record store "${path}": line ${line} is not valid JSON (${(e as Error).message})`,
        {
          cause: e,
        },
      );
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`Corrupt record store "${path}": line ${line} is not a JSON object`);
    }
    out.push({ line, value: value as Record<string, unknown> });
  }
  if (end < bytes.length && log) {
    await Deno.truncate(path, end);
    log(
      `Record store "${path}": truncated a partial trailing line ${line + 1} (${
        bytes.length - end
      } bytes), ` +
        `left by an interrupted write`,
    );
  }
  return out;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

/**
 * Replace `path` atomically with `text`: a temp file `<path>.tmp-<pid>` beside it, datasync, rename. On any
 * failure (e.g. ENOSPC while writing or syncing) the temp file is removed and the error names `path` and
 * the cause, so a full disk never leaves a partial file or a stray temp file behind.
 * @throws {Error} "Cannot write <path> while finalising its record store: <cause>; free disk space …".
 */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      await writeAll(file, new TextEncoder().encode(text));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    const cause = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    throw new Error(
      `Cannot write ${path} while finalising its record store (${text.length} characters): ${cause}; ` +
        `the store's records are intact (appended lines are kept); free disk space and run the step again`,
      { cause: e },
    );
  }
}

/**
 * Remove the temp files a killed finalisation left beside a store: `<file>.tmp-<pid>` (and the sidecar's)
 * whose process is no longer alive, or this process's own (it cannot be mid-write while opening).
 *
 * @returns The removed paths.
 */
export async function reclaimStoreTemps(path: string): Promise<string[]> {
  const dir = dirname(path);
  const names = [basename(path), basename(timingsPathFor(path))];
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!e.isFile) continue;
    for (const n of names) {
      const m = e.name.startsWith(`${n}.tmp-`) ? /^(\d+)$/.exec(e.name.slice(n.length + 5)) : null;
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid !== Deno.pid && processAlive(pid)) continue;
      await Deno.remove(`${dir}/${e.name}`).catch(() => {});
      removed.push(`${dir}/${e.name}`);
    }
  }
  return removed;
}

async function syncDir(dir: string): Promise<void> {
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Directory fsync is best effort (unsupported on some platforms).
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

async function checkWritableDir(path: string): Promise<void> {
  const dir = dirname(path);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    throw new Error(
      `Cannot open record store "${path}": directory "${dir}" does not exist; create it first`,
      {
        cause: e,
      },
    );
  }
  if (!info.isDirectory) throw new Error(`Cannot open record store "${path}": "${dir}" is not a directory`);
  const probe = `${dir}/.${basename(path)}.probe-${Deno.pid}-${crypto.randomUUID()}`;
  try {
    (await Deno.open(probe, { write: true, createNew: true })).close();
    await Deno.remove(probe);
  } catch (e) {
    throw new Error(
      `Cannot open record store "${path}": directory "${dir}" is not writable (${(e as Error).message})`,
      { cause: e },
    );
  }
}
