/**
 * An exclusive, advisory lock on a run folder, so that two processes never write one run at once (two
 * `bt generate --run-id X` started together would otherwise interleave their record stores).
 *
 * The lock is the file `<run>/.run.lock`, created with O_EXCL and holding who took it:
 *
 * ```json
 * {"pid": 4242, "host": "box", "started_at": "2026-11-29T23:59:01.000Z", "step": "generate", "command": "…"}
 * ```
 *
 * - A second process fails at once with a {@linkcode RunLockedError} naming the holder (pid, host, step,
 *   start time) and what to do.
 * - A lock left by a process that died (same host, pid no longer alive, e.g. after `kill -9`) is stale:
 *   it is reclaimed with a message. A lock of another host is never reclaimed automatically (its process
 *   cannot be checked from here); the message says to remove the file once that process is known gone.
 * - Re-entrant within a process: `runPipeline` holds the lock while each step takes it again.
 * - Shards (`shard: {index, count}`): shard K of N of a sharded step takes `<run>/.run.lock.shard-K-of-N`
 *   instead, so the N shards of a run (one process each, e.g. a SLURM array) write at once while a second
 *   process of the same shard is refused. Shard locks and the exclusive lock exclude each other: a shard
 *   is refused while another process holds `.run.lock` (an unsharded writer or an analysis step), and the
 *   exclusive lock is refused while a live process holds a shard lock. Each side creates its own file
 *   first and then looks for the other's, so of two that start together at least one is refused.
 *   Shards run on many hosts of a cluster, so a shard lock also carries a heartbeat: its holder touches the
 *   file every {@linkcode SHARD_LOCK_HEARTBEAT_MS}; a shard lock of another host whose file has not been
 *   touched for {@linkcode SHARD_LOCK_STALE_MS} is stale (its task was killed, e.g. preempted, and is rerun
 *   on another node) and is reclaimed with a message. Taking a shard lock leaves other processes' temp
 *   files alone (shards on other hosts may be writing them; pids cannot be checked across hosts).
 * - Taking the lock afresh also removes the temp files that killed writers left in the run folder
 *   (`*.tmp-<pid>` of record stores, `.<name>.<pid>.<rand>.tmp` of {@linkcode writeFileAtomic}) whose
 *   process is dead: nobody else can be writing them.
 *
 * @module
 */

import { join } from "node:path";
import { processAlive } from "./fs.ts";

/** Who holds a run lock (the content of `<run>/.run.lock`). */
export interface RunLockInfo {
  readonly pid: number;
  readonly host: string;
  /** ISO-8601 time the lock was taken. */
  readonly started_at: string;
  /** The step that took it (e.g. `generate`, `pipeline`). */
  readonly step: string;
  /** The command line of the holder. */
  readonly command: string;
  /**
   * The holder's start time in clock ticks since boot (Linux `/proc/<pid>/stat` field 22), so that a
   * dead holder whose pid was reused by another process is still recognised as stale.
   */
  readonly proc_start?: number;
}

/** A held lock; release it (or `await using`) when the step is done. */
export interface RunLock extends AsyncDisposable {
  /** The lock file. */
  readonly path: string;
  /** Who holds it (this process). */
  readonly info: RunLockInfo;
  /** Release once; the file is removed when the outermost holder in this process releases. */
  release(): Promise<void>;
}

/** A run held by another live process (or another host). */
export class RunLockedError extends Error {
  constructor(readonly path: string, readonly holder: RunLockInfo | undefined, detail: string) {
    super(
      `Run folder ${join(path, "..")} is locked by ${describeHolder(holder)} (${path}); ${detail}`,
    );
    this.name = "RunLockedError";
  }
}

/** The lock file of a run folder. */
export const RUN_LOCK_FILE = ".run.lock";

/** Options of {@linkcode acquireRunLock}. */
export interface RunLockOptions {
  /** The step taking the lock (recorded in the file, shown to a refused writer). */
  readonly step: string;
  /** Messages (stale lock reclaimed, temp files removed); default `console.error`. */
  readonly log?: (line: string) => void;
  /** Take shard K of N's lock instead of the exclusive one (see the module doc). */
  readonly shard?: { readonly index: number; readonly count: number };
}

/** The lock file of shard K of N of a run folder. */
export function shardLockFile(shard: { readonly index: number; readonly count: number }): string {
  return `${RUN_LOCK_FILE}.shard-${shard.index}-of-${shard.count}`;
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

function describeHolder(h: RunLockInfo | undefined): string {
  if (!h) return "an unknown process (unreadable lock file)";
  return `pid ${h.pid} on ${h.host} (step ${h.step}, since ${h.started_at}; ${h.command})`;
}

/** How often a shard lock's holder touches its file. */
export const SHARD_LOCK_HEARTBEAT_MS = 30_000;
/** A shard lock of another host not touched for this long is stale. */
export const SHARD_LOCK_STALE_MS = 180_000;

/** Locks this process holds: lock path → depth, info and the heartbeat timer of shard locks. */
const held = new Map<
  string,
  { depth: number; info: RunLockInfo; heartbeat?: ReturnType<typeof setInterval> }
>();

/** Whether a lock file is a shard lock. */
function isShardLock(path: string): boolean {
  return /\.run\.lock\.shard-\d+-of-\d+$/.test(path);
}

/** Whether a shard lock file has not been touched for {@linkcode SHARD_LOCK_STALE_MS}. */
async function heartbeatStale(path: string): Promise<boolean> {
  if (!isShardLock(path)) return false;
  try {
    const m = (await Deno.stat(path)).mtime;
    return m !== null && Date.now() - m.getTime() > SHARD_LOCK_STALE_MS;
  } catch {
    return false;
  }
}

async function readInfo(path: string): Promise<RunLockInfo | undefined> {
  try {
    const o = JSON.parse(await Deno.readTextFile(path));
    return typeof o?.pid === "number" && typeof o?.host === "string" ? (o as RunLockInfo) : undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw e;
    return undefined;
  }
}

/**
 * Take the exclusive lock of a run folder.
 *
 * @param runDir The run folder (must exist).
 * @param options The step name, logger.
 * @returns The held lock (re-entrant within this process).
 * @throws {RunLockedError} when another live process (or another host) holds it: names the holder.
 */
export async function acquireRunLock(runDir: string, options: RunLockOptions): Promise<RunLock> {
  const lock = await acquireLockFile(runDir, options);
  // The other side: shards exclude the exclusive lock and vice versa (checked after taking our own file).
  try {
    if (options.shard) {
      const other = await liveHolder(join(runDir, RUN_LOCK_FILE), options.log);
      if (other) {
        throw new RunLockedError(
          join(runDir, RUN_LOCK_FILE),
          other,
          `shard ${options.shard.index}/${options.shard.count} of ${options.step} cannot write while it runs; ` +
            `wait for it to finish`,
        );
      }
    } else {
      for (const name of await shardLockNames(runDir)) {
        const other = await liveHolder(join(runDir, name), options.log);
        if (other) {
          throw new RunLockedError(
            join(runDir, name),
            other,
            `a shard of this run is being generated; wait for every shard to finish before running ` +
              `${options.step} on this run`,
          );
        }
      }
    }
  } catch (e) {
    await lock.release();
    throw e;
  }
  return lock;
}

/** Names of the shard lock files in a run folder. */
async function shardLockNames(runDir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(runDir)) {
      if (e.isFile && /^\.run\.lock\.shard-\d+-of-\d+$/.test(e.name)) out.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/**
 * The holder of a lock file when it is a live process other than this one (same host), or one on another
 * host; undefined when absent, ours, or stale (a stale file is removed).
 */
async function liveHolder(path: string, log?: (l: string) => void): Promise<RunLockInfo | undefined> {
  let holder: RunLockInfo | undefined;
  try {
    holder = await readInfo(path);
  } catch {
    return undefined;
  }
  if (!holder) return undefined;
  if (holder.host === hostname() && holder.pid === Deno.pid) return undefined;
  if (holder.host !== hostname() && !await heartbeatStale(path)) return holder;
  if (holder.host !== hostname()) {
    await Deno.remove(path).catch(() => {});
    (log ?? ((l: string) => console.error(l)))(
      `run lock: reclaimed the shard lock ${path} of ${describeHolder(holder)}: not touched for ${
        SHARD_LOCK_STALE_MS / 1000
      } s`,
    );
    return undefined;
  }
  if (holderAlive(holder)) return holder;
  await Deno.remove(path).catch(() => {});
  (log ?? ((l: string) => console.error(l)))(
    `run lock: reclaimed the stale lock ${path} of ${
      describeHolder(holder)
    }: that process is no longer running`,
  );
  return undefined;
}

/**
 * The live holders of the shard locks of a run folder, by shard (`K/N` → holder description).
 */
export async function shardLockHolders(runDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await shardLockNames(runDir)) {
    const m = /shard-(\d+)-of-(\d+)$/.exec(name)!;
    const h = await liveHolder(join(runDir, name));
    if (h) out.set(`${m[1]}/${m[2]}`, describeHolder(h));
  }
  return out;
}

async function acquireLockFile(runDir: string, options: RunLockOptions): Promise<RunLock> {
  const path = join(runDir, options.shard ? shardLockFile(options.shard) : RUN_LOCK_FILE);
  const log = options.log ?? ((l: string) => console.error(l));
  const mine = held.get(path);
  if (mine) {
    mine.depth++;
    return handle(path, mine.info);
  }
  const info: RunLockInfo = {
    pid: Deno.pid,
    host: hostname(),
    started_at: new Date().toISOString(),
    step: options.step,
    command: [Deno.execPath(), ...Deno.args].join(" ").slice(0, 300),
    ...(procStart(Deno.pid) !== undefined ? { proc_start: procStart(Deno.pid)! } : {}),
  };
  const text = JSON.stringify(info) + "\n";
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const f = await Deno.open(path, { write: true, createNew: true });
      try {
        await f.write(new TextEncoder().encode(text));
        await f.syncData();
      } finally {
        f.close();
      }
      if (options.shard) {
        const heartbeat = setInterval(() => {
          const now = new Date();
          Deno.utime(path, now, now).catch(() => {});
        }, SHARD_LOCK_HEARTBEAT_MS);
        Deno.unrefTimer(heartbeat);
        held.set(path, { depth: 1, info, heartbeat });
      } else {
        held.set(path, { depth: 1, info });
        await reclaimTemps(runDir, log);
      }
      return handle(path, info);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw new Error(`Cannot create the run lock ${path}: ${(e as Error).message}`, { cause: e });
      }
    }
    let holder: RunLockInfo | undefined;
    let raw: string;
    try {
      raw = await Deno.readTextFile(path);
      holder = await readInfo(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // released meanwhile: try again
      throw e;
    }
    if (!holder) {
      // Being written this instant by its creator, or corrupt: wait a little, then judge.
      await new Promise((r) => setTimeout(r, 50));
      if (attempt < 3) continue;
      throw new RunLockedError(
        path,
        undefined,
        `if no other bt process works on this run, remove ${path} and run again`,
      );
    }
    if (holder.host !== info.host && await heartbeatStale(path)) {
      const now = await Deno.readTextFile(path).catch(() => undefined);
      if (now === raw) {
        await Deno.remove(path).catch(() => {});
        log(
          `run lock: reclaimed the shard lock of ${describeHolder(holder)}: not touched for ${
            SHARD_LOCK_STALE_MS / 1000
          } s (its task is gone)`,
        );
      }
      continue;
    }
    if (holder.host !== info.host) {
      throw new RunLockedError(
        path,
        holder,
        `it cannot be checked from ${info.host}; once that process is gone, remove ${path} and run again`,
      );
    }
    if (holderAlive(holder)) {
      throw new RunLockedError(
        path,
        holder,
        options.shard
          ? `shard ${options.shard.index}/${options.shard.count} is already running there; two writers of ` +
            `one shard would corrupt its record stores`
          : `wait for it to finish (or stop it) before running ${options.step} on this run; two writers ` +
            `would corrupt its record stores`,
      );
    }
    // Stale: its process is dead. Remove it only if it is still the same lock (another reclaimer may have
    // replaced it since we read it).
    const now = await Deno.readTextFile(path).catch(() => undefined);
    if (now === raw) {
      await Deno.remove(path).catch(() => {});
      log(
        `run lock: reclaimed the stale lock of ${describeHolder(holder)}: that process is no longer running`,
      );
    }
  }
  const holder = await readInfo(path).catch(() => undefined);
  throw new RunLockedError(path, holder, "could not take it after several tries; run again");
}

/** Start time of a process in ticks since boot (Linux), else undefined. */
function procStart(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the parenthesised command name; starttime is field 22 overall.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote a lock (same host) still runs: its pid is alive and is the same process. */
function holderAlive(h: RunLockInfo): boolean {
  if (!processAlive(h.pid)) return false;
  if (h.proc_start === undefined) return true;
  const now = procStart(h.pid);
  return now === undefined || now === h.proc_start;
}

function handle(path: string, info: RunLockInfo): RunLock {
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    const h = held.get(path);
    if (!h) return;
    if (--h.depth > 0) return;
    if (h.heartbeat !== undefined) clearInterval(h.heartbeat);
    held.delete(path);
    await Deno.remove(path).catch(() => {});
  };
  return { path, info, release, [Symbol.asyncDispose]: release };
}

/** Whether this process holds the lock of `runDir`. */
export function holdsRunLock(runDir: string): boolean {
  return held.has(join(runDir, RUN_LOCK_FILE));
}

const TEMP_PATTERNS = [
  /\.tmp-(\d+)$/, // record stores: <file>.tmp-<pid>
  /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/, // writeFileAtomic: .<name>.<pid>.<rand>.tmp
];

/** Remove temp files of dead processes under the run folder (recursively), logging each. */
async function reclaimTemps(dir: string, log: (l: string) => void): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory) {
      await reclaimTemps(p, log);
      continue;
    }
    if (!e.isFile) continue;
    for (const re of TEMP_PATTERNS) {
      const m = re.exec(e.name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === Deno.pid || processAlive(pid)) continue;
      try {
        await Deno.remove(p);
        log(`run lock: removed ${p}, a temp file left by process ${pid} (no longer running)`);
      } catch {
        // gone already
      }
      break;
    }
  }
}
