/**
 * Reading and writing safetensors files without loading them whole.
 *
 * Format: an 8-byte little-endian header length `N`, then `N` bytes of UTF-8 JSON
 * (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the
 * tensor data; `data_offsets` are relative to the first byte after the header. Readers here read the
 * header alone or one tensor's bytes with a positioned read; the writer streams tensor by tensor.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { bf16ToF32, f16Table32, f16ToF32, f32ToBf16, f32ToF16 } from "./float16.ts";

export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./float16.ts";

/** Element types of the safetensors format. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** Float dtypes that {@link readTensorF32} and {@link readTensorF64} convert. */
export type FloatDtype = "F64" | "F32" | "F16" | "BF16";

/** Dtypes that {@link writeSafetensors} writes. */
export type WritableDtype = "F32" | "F16" | "BF16";

/** Where one tensor lives: enough to read it, or to point ONNX external data at it. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** The path as found in the folder (may be a symlink, as in the Hugging Face hub cache). */
  readonly file: string;
  /** Absolute byte offset of the data in `file`: 8 + header length + begin. */
  readonly dataOffset: number;
  readonly byteLength: number;
}

/** A safetensors file is malformed or truncated; re-downloading it usually helps. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

/** Largest header accepted, as in the reference Rust implementation. */
const MAX_HEADER_BYTES = 100_000_000;
/** Bytes per read/write call when streaming. */
const CHUNK_BYTES = 16 * 1024 * 1024;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Number of elements of a shape (1 for a scalar). */
export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function isDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === "string" && Object.hasOwn(DTYPE_BYTES, x);
}

async function readFully(file: Deno.FsFile, buf: Uint8Array, what: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const end = Math.min(buf.length, done + CHUNK_BYTES);
    const n = await file.read(buf.subarray(done, end));
    if (n === null || n === 0) {
      throw new SafetensorsError(
        `Cannot read ${what}: the file ended after ${done} of ${buf.length} bytes; it looks truncated, re-download it`,
      );
    }
    done += n;
  }
}

/**
 * Read the header of a safetensors file (never its data) and index its tensors.
 *
 * @param path the file; it may be a symlink.
 * @returns tensors by name, in header order (`__metadata__` is skipped).
 * @throws {SafetensorsError} naming the file (and tensor) when the header length, the JSON, a tensor
 *   entry, or the file size is inconsistent; a file shorter than its header says "looks truncated";
 *   `data_offsets` that overlap, leave gaps or leave trailing bytes are refused as the reference reader does.
 * @throws {Deno.errors.NotFound} when the file does not exist.
 * @example
 * ```ts
 * const tensors = await readSafetensorsHeader("model/model.safetensors");
 * tensors.get("model.norm.weight")?.shape; // [896]
 * ```
 */
export async function readSafetensorsHeader(path: string): Promise<Map<string, TensorInfo>> {
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const at = `safetensors file "${path}"`;
  if (size < 8) {
    throw new SafetensorsError(
      `Cannot read ${at}: only ${size} bytes, not even a header length; re-download it`,
    );
  }
  const lenBuf = new Uint8Array(8);
  await readFully(file, lenBuf, at);
  const headerLen = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
  if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      `Cannot read ${at}: header length ${headerLen} is not between 2 and ${MAX_HEADER_BYTES} bytes; ` +
        `it is not a safetensors file or it is corrupt`,
    );
  }
  if (8 + headerLen > size) {
    throw new SafetensorsError(
      `Cannot read ${at}: header of ${headerLen} bytes does not fit in the file of ${size} bytes; ` +
        `the file looks truncated, re-download it`,
    );
  }
  const headerBytes = new Uint8Array(headerLen);
  await readFully(file, headerBytes, at);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new SafetensorsError(`Cannot read ${at}: its header is not valid UTF-8 JSON; re-download it`, {
      cause: e,
    });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`Cannot read ${at}: its header is not a JSON object`);
  }
  const dataStart = 8 + headerLen;
  const dataBytes = size - dataStart;
  const out = new Map<string, TensorInfo>();
  const ends: { name: string; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const bad = (what: string) =>
      new SafetensorsError(`Cannot read ${at}: tensor "${name}" has ${what}; the file is corrupt`);
    if (typeof entry !== "object" || entry === null) throw bad("no {dtype, shape, data_offsets} entry");
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDtype(dtype)) throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`an invalid shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      throw bad(`invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const expected = numElements(shape as number[]) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw bad(
        `data_offsets [${begin}, ${end}] spanning ${end - begin} bytes, but ${dtype} ${
          JSON.stringify(shape)
        } needs ${expected}`,
      );
    }
    ends.push({ name, begin, end });
    out.set(name, {
      name,
      dtype,
      shape: Object.freeze([...(shape as number[])]),
      file: path,
      dataOffset: dataStart + begin,
      byteLength: expected,
    });
  }
  const overflow = ends.filter((e) => e.end > dataBytes).sort((a, b) => a.end - b.end)[0];
  if (overflow !== undefined) {
    throw new SafetensorsError(
      `Cannot read ${at}: tensor "${overflow.name}" ends at data byte ${overflow.end} but the file holds only ` +
        `${dataBytes} data bytes; the file looks truncated (an interrupted download?), re-download it`,
    );
  }
  // As the reference reader (the safetensors crate's Metadata::validate): tensors sorted by offsets must
  // tile the data buffer exactly, from byte 0, without overlaps, gaps or trailing bytes; otherwise one
  // tensor could read another's bytes and the model would load silently wrong.
  const sorted = [...ends].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expectedBegin = 0;
  let previous: string | undefined;
  for (const t of sorted) {
    if (t.begin !== expectedBegin) {
      const what = t.begin < expectedBegin
        ? `overlaps tensor "${previous}" (data bytes ${t.begin}..${expectedBegin})`
        : `leaves a gap of ${t.begin - expectedBegin} bytes after ${
          previous === undefined ? "the header" : `tensor "${previous}"`
        }`;
      throw new SafetensorsError(
        `Cannot read ${at}: tensor "${t.name}" with data_offsets [${t.begin}, ${t.end}] ${what}; the ` +
          `offsets must be contiguous and non-overlapping, as the safetensors format requires; the file is ` +
          `corrupt or was written by a faulty tool`,
      );
    }
    expectedBegin = t.end;
    previous = t.name;
  }
  if (expectedBegin !== dataBytes) {
    throw new SafetensorsError(
      `Cannot read ${at}: its tensors cover ${expectedBegin} data bytes but the file holds ${dataBytes} ` +
        `(${dataBytes - expectedBegin} trailing bytes no tensor accounts for); the file is corrupt`,
    );
  }
  return out;
}

/**
 * Read one tensor's raw bytes with a positioned, chunked read (the rest of the file is not touched).
 * @throws {SafetensorsError} when the file is shorter than the tensor's extent.
 */
export async function readTensorBytes(info: TensorInfo): Promise<Uint8Array<ArrayBuffer>> {
  using file = await Deno.open(info.file, { read: true });
  await file.seek(info.dataOffset, Deno.SeekMode.Start);
  const buf = new Uint8Array(info.byteLength);
  await readFully(file, buf, `tensor "${info.name}" from "${info.file}"`);
  return buf;
}

function checkFloat(info: TensorInfo): FloatDtype {
  const d = info.dtype;
  if (d === "F32" || d === "F16" || d === "BF16" || d === "F64") return d;
  throw new TypeError(
    `Cannot read tensor "${info.name}" from "${info.file}" as floats: dtype ${d} is not one of F32, F16, BF16, F64`,
  );
}

function requireLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new RangeError("safetensors I/O here needs a little-endian host");
}

/**
 * Read a float tensor (F32, F16, BF16 or F64) as float32 values, row-major.
 * @throws {TypeError} for a non-float dtype, {SafetensorsError} for a truncated file.
 * @example
 * ```ts
 * const w = await readTensorF32(tensors.get("model.norm.weight")!);
 * ```
 */
export async function readTensorF32(info: TensorInfo): Promise<Float32Array<ArrayBuffer>> {
  requireLittleEndian();
  const dtype = checkFloat(info);
  const bytes = await readTensorBytes(info);
  const n = numElements(info.shape);
  if (dtype === "F32") return new Float32Array(bytes.buffer, 0, n);
  if (dtype === "F64") return Float32Array.from(new Float64Array(bytes.buffer, 0, n));
  const src = new Uint16Array(bytes.buffer, 0, n);
  const out = new Float32Array(n);
  if (dtype === "BF16") {
    const out32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) out32[i] = src[i]! << 16;
  } else {
    const table = f16Table32();
    for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
  }
  return out;
}

/**
 * Read some rows of a float matrix (F32, F16, BF16 or F64; rows = first dimension) as float32, with one
 * positioned read per row, so a few unembedding rows do not cost reading the whole matrix.
 * @param rows row indices, each in [0, shape[0]).
 * @returns `[rows.length, rowWidth]` row-major, in the order of `rows`.
 * @throws {RangeError} for a row outside the tensor, {TypeError} for a non-float dtype.
 */
export async function readTensorRowsF32(info: TensorInfo, rows: readonly number[]): Promise<Float32Array> {
  requireLittleEndian();
  const dtype = checkFloat(info);
  const n = info.shape[0] ?? 1;
  const width = numElements(info.shape) / n;
  const bytes = DTYPE_BYTES[dtype];
  const out = new Float32Array(rows.length * width);
  using file = await Deno.open(info.file, { read: true });
  const buf = new Uint8Array(width * bytes);
  for (const [i, r] of rows.entries()) {
    if (!Number.isInteger(r) || r < 0 || r >= n) {
      throw new RangeError(`Row ${r} of tensor "${info.name}" is outside [0, ${n})`);
    }
    await file.seek(info.dataOffset + r * width * bytes, Deno.SeekMode.Start);
    await readFully(file, buf, `row ${r} of tensor "${info.name}" from "${info.file}"`);
    const dst = out.subarray(i * width, (i + 1) * width);
    if (dtype === "F32") dst.set(new Float32Array(buf.buffer, 0, width));
    else if (dtype === "F64") dst.set(new Float64Array(buf.buffer, 0, width));
    else {
      const src = new Uint16Array(buf.buffer, 0, width);
      for (let j = 0; j < width; j++) dst[j] = dtype === "BF16" ? bf16ToF32(src[j]!) : f16ToF32(src[j]!);
    }
  }
  return out;
}

/**
 * Read a float tensor (F32, F16, BF16 or F64) as float64 values, row-major (exact widening).
 * @throws {TypeError} for a non-float dtype, {SafetensorsError} for a truncated file.
 */
export async function readTensorF64(info: TensorInfo): Promise<Float64Array<ArrayBuffer>> {
  requireLittleEndian();
  if (checkFloat(info) === "F64") {
    const bytes = await readTensorBytes(info);
    return new Float64Array(bytes.buffer, 0, numElements(info.shape));
  }
  return Float64Array.from(await readTensorF32(info));
}

/**
 * A tensor's values: an array-like, or a function that produces them when the writer reaches the
 * tensor (so a large checkpoint can be generated and written one tensor at a time).
 */
export type TensorData = ArrayLike<number> | (() => ArrayLike<number>);

/** One tensor to write. */
export interface TensorToWrite {
  readonly name: string;
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
  /** Row-major float values, `numElements(shape)` of them; converted to `dtype` on write. */
  readonly data: TensorData;
}

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** String metadata stored under `__metadata__` (default: none; Hugging Face writes `{format: "pt"}`). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * Build the header bytes (length prefix + JSON padded with spaces to a multiple of 8) for tensors
 * in the given order. Exposed for tests and for size estimates.
 */
export function encodeSafetensorsHeader(
  tensors: readonly Pick<TensorToWrite, "name" | "dtype" | "shape">[],
  options: WriteSafetensorsOptions = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) header.__metadata__ = { ...options.metadata };
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__" || seen.has(t.name)) {
      throw new RangeError(`Cannot write safetensors: tensor name "${t.name}" is reserved or repeated`);
    }
    seen.add(t.name);
    if (!isDtype(t.dtype) || !["F32", "F16", "BF16"].includes(t.dtype)) {
      throw new RangeError(`Cannot write tensor "${t.name}": dtype ${t.dtype} is not one of F32, F16, BF16`);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(`Cannot write tensor "${t.name}": invalid shape ${JSON.stringify(t.shape)}`);
    }
    const bytes = numElements(t.shape) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

async function writeTensorData(file: Deno.FsFile, t: TensorToWrite, scratch: Uint8Array): Promise<void> {
  const values = typeof t.data === "function" ? t.data() : t.data;
  const n = numElements(t.shape);
  if (values.length !== n) {
    throw new RangeError(
      `Cannot write tensor "${t.name}": shape ${
        JSON.stringify(t.shape)
      } needs ${n} values, got ${values.length}`,
    );
  }
  if (t.dtype === "F32" && values instanceof Float32Array) {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (let i = 0; i < bytes.length; i += CHUNK_BYTES) {
      await writeAll(file, bytes.subarray(i, i + CHUNK_BYTES));
    }
    return;
  }
  const size = DTYPE_BYTES[t.dtype];
  const per = Math.floor(scratch.length / size);
  const f32 = new Float32Array(scratch.buffer, 0, Math.floor(scratch.length / 4));
  const u16 = new Uint16Array(scratch.buffer, 0, Math.floor(scratch.length / 2));
  for (let start = 0; start < n; start += per) {
    const end = Math.min(n, start + per);
    if (t.dtype === "F32") {
      for (let i = start; i < end; i++) f32[i - start] = values[i]!;
    } else if (t.dtype === "F16") {
      for (let i = start; i < end; i++) u16[i - start] = f32ToF16(values[i]!);
    } else {
      for (let i = start; i < end; i++) u16[i - start] = f32ToBf16(values[i]!);
    }
    await writeAll(file, scratch.subarray(0, (end - start) * size));
  }
}

/**
 * Write a safetensors file atomically: the bytes go to a temporary file in the same folder, which is
 * renamed over `path` only when complete, so a crash or error never leaves a partial file (on error
 * the temporary file is removed and `path` is untouched).
 *
 * The output is deterministic: tensors appear in the header and the data in the order given (not
 * sorted), the header JSON is padded with spaces to a multiple of 8 bytes as Hugging Face does, and
 * values are converted with round-to-nearest-even. Data is streamed tensor by tensor in chunks, so
 * files of several GB need no buffer larger than one tensor.
 *
 * @param path the file to create or replace.
 * @param tensors tensors in file order; `data` may be a function called when the tensor is written.
 * @param options `metadata`: stored under `__metadata__` (default none).
 * @throws {RangeError} for a repeated name, bad dtype/shape, or a value count that does not match the shape.
 * @example
 * ```ts
 * await writeSafetensors("w.safetensors", [{ name: "w", dtype: "BF16", shape: [2], data: [1, 2] }]);
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  requireLittleEndian();
  const header = encodeSafetensorsHeader(tensors, options);
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${crypto.randomUUID()}`);
  const file = await Deno.open(tmp, { write: true, createNew: true });
  try {
    await writeAll(file, header);
    const scratch = new Uint8Array(CHUNK_BYTES);
    for (const t of tensors) await writeTensorData(file, t, scratch);
    await file.syncData();
    file.close();
    await Deno.rename(tmp, path);
  } catch (e) {
    try {
      file.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
