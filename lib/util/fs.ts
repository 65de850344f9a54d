/**
 * Small file-system helpers shared across the library.
 * @module
 */

import { basename, dirname, join } from "node:path";

/**
 * Whether `path` exists (file, folder or link target).
 * @throws errors other than "not found" (e.g. permission denied), so they are not mistaken for absence.
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Options of {@linkcode writeFileAtomic}. */
export interface WriteAtomicOptions {
  /** Create the parent folder when missing. Default false: a missing folder is an error. */
  readonly createDir?: boolean;
}

/**
 * Write a file atomically: a temp file beside it, fsync, rename; the temp file is removed on failure, so
 * a crash or a bad write never leaves a half-written file under `path`. The temp file is named
 * `.<name>.<pid>.<rand>.tmp`, so one left by a killed process can be recognised and reclaimed
 * (`lib/run_lock.ts` does so for run folders).
 * @throws {Error} "Cannot write <path>: …" with the cause attached.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: WriteAtomicOptions = {},
): Promise<void> {
  if (options.createDir) await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  try {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const f = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let off = 0;
      while (off < bytes.length) off += await f.write(bytes.subarray(off));
      await f.syncData();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * SHA-256 of a file, streamed in chunks (constant memory), as lowercase hex.
 *
 * @param path The file.
 */
export async function sha256File(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(4 << 20);
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
  return hash.digest("hex");
}

/**
 * Whether process `pid` is alive on this machine (Linux: `/proc/<pid>` exists; on other systems every
 * pid is assumed alive, so nothing of a live process is ever reclaimed by mistake).
 */
export function processAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  if (Deno.build.os !== "linux") return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
