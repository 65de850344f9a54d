/**
 * Sharded generation: a deterministic partition of a store's (example, sample) keys into N shards that
 * run as independent processes (a SLURM job array, a Kubernetes Indexed Job), each writing its own
 * append-only store, and the merge that checks completeness and writes the store an unsharded run writes.
 *
 * Files, beside the store `<dir>/<name>.jsonl` of an unsharded run:
 *
 * - `<name>.shards-<N>.plan.json`: the partition ({@linkcode ShardPlan}): every shard's keys, the config
 *   and model hashes, the command that makes a shard. Every shard computes it and writes it when absent,
 *   or checks that the existing one is the same (a shard started with another config is refused).
 * - `<name>.shard-<K>-of-<N>.jsonl` (+ `.timings.jsonl`): shard K's records (`lib/generate/records.ts`:
 *   append-only, resumable after a kill).
 * - `<name>.shard-<K>-of-<N>.done.json`: written when shard K finished its keys ({@linkcode ShardDone}).
 *
 * Partition ({@linkcode partitionKeys}): greedy longest-processing-time. Each key's expected work is the
 * prompt length plus the token budget (a sample's cost is its prefill and its decode steps, bounded by
 * `max_new_tokens`); keys are taken by decreasing cost (ties in canonical key order) and each goes to the
 * shard with the least work so far (ties: the lowest index). Every shard gets keys of many problems, and
 * no shard gets more than one key's cost above the mean.
 *
 * Shard numbers K are 0-based (`0/3`, `1/3`, `2/3`), as Kubernetes' `JOB_COMPLETION_INDEX`.
 *
 * A sample's tokens depend only on its (example, sample) stream and the model, not on which shard or
 * batch it ran in (`generate.ts`), so the merged store is byte-identical to an unsharded run's.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import {
  compareRecordKeys,
  type GenerationRecord,
  readStore,
  recordKey,
  timingsPathFor,
  writeFinalStore,
} from "./records.ts";

/** Shard K of N (K 0-based). */
export interface ShardSpec {
  readonly index: number;
  readonly count: number;
}

/** `K/N` of a shard (K 0-based). */
export function shardLabel(shard: ShardSpec): string {
  return `${shard.index}/${shard.count}`;
}

/**
 * Parse `K/N` (0 ≤ K < N). `none` (or an empty string) means unsharded: `undefined`.
 *
 * @param text The shard as written on the command line or in `BT_SHARD`.
 * @param source Where it came from (for the error message), e.g. `--shard`.
 * @throws {RangeError} naming the source and value when it is not `K/N` with 0 ≤ K < N.
 */
export function parseShard(text: string, source = "--shard"): ShardSpec | undefined {
  const t = text.trim();
  if (t === "" || t === "none") return undefined;
  const m = /^(\d+)\s*\/\s*(\d+)$/.exec(t);
  if (!m) throw new RangeError(`${source}: expected K/N (shard K of N, K from 0), got "${text}"`);
  return checkShard(Number(m[1]), Number(m[2]), `${source} "${text}"`);
}

function checkShard(index: number, count: number, source: string): ShardSpec {
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new RangeError(`${source}: the shard count must be an integer ≥ 1, got ${count}`);
  }
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`${source}: the shard index must be in 0..${count - 1}, got ${index}`);
  }
  return { index, count };
}

/**
 * The shard of this process from the command line or the environment, first found wins:
 *
 * 1. `flag` (`--shard K/N`; `none` = unsharded);
 * 2. `<PREFIX>_SHARD` (`K/N` or `none`);
 * 3. SLURM job arrays: `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT`, K = task id − `SLURM_ARRAY_TASK_MIN`
 *    (0 when unset), so `--array=1-4` gives shards 0/4 … 3/4;
 * 4. Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` with the count in `<PREFIX>_SHARD_COUNT` (Kubernetes
 *    does not export `completions`).
 *
 * @param flag The `--shard` value, if given.
 * @param env Environment lookup (default `Deno.env.get`).
 * @param prefix Prefix of the tool's own variables (default `BT`).
 * @returns The shard, or undefined when unsharded.
 * @throws {RangeError} on ill-formed values, naming the variable; when `JOB_COMPLETION_INDEX` is set
 *   without `<PREFIX>_SHARD_COUNT`; when a SLURM task id lies outside the array's count.
 */
export function resolveShard(
  flag: string | undefined,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  prefix = "BT",
): ShardSpec | undefined {
  if (flag !== undefined) return parseShard(flag, "--shard");
  const own = env(`${prefix}_SHARD`);
  if (own !== undefined) return parseShard(own, `${prefix}_SHARD`);
  const int = (name: string): number | undefined => {
    const v = env(name);
    if (v === undefined || v.trim() === "") return undefined;
    if (!/^\s*\d+\s*$/.test(v)) throw new RangeError(`${name}: expected a non-negative integer, got "${v}"`);
    return Number(v);
  };
  const task = int("SLURM_ARRAY_TASK_ID");
  if (task !== undefined) {
    const count = int("SLURM_ARRAY_TASK_COUNT");
    if (count === undefined) {
      throw new RangeError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shard K/N");
    }
    const min = int("SLURM_ARRAY_TASK_MIN") ?? 0;
    return checkShard(
      task - min,
      count,
      `SLURM_ARRAY_TASK_ID=${task} (SLURM_ARRAY_TASK_MIN=${min}, SLURM_ARRAY_TASK_COUNT=${count}; use a ` +
        `contiguous --array=0-${count - 1})`,
    );
  }
  const index = int("JOB_COMPLETION_INDEX");
  if (index !== undefined) {
    const count = int(`${prefix}_SHARD_COUNT`);
    if (count === undefined) {
      throw new RangeError(
        `JOB_COMPLETION_INDEX is set but ${prefix}_SHARD_COUNT is not: set it to the Job's completions`,
      );
    }
    return checkShard(index, count, `JOB_COMPLETION_INDEX=${index} (${prefix}_SHARD_COUNT=${count})`);
  }
  return undefined;
}

/** One key of a store with its expected work (any unit; the generator uses tokens). */
export interface WorkItem {
  readonly exampleId: number | string;
  readonly sampleId: number;
  readonly cost: number;
}

/**
 * Split keys into `count` shards by greedy longest-processing-time (see the module doc).
 *
 * @param items The keys with their costs (each key once).
 * @param count Number of shards (≥ 1).
 * @returns Per shard, its keys in canonical (example, sample) order.
 * @throws {RangeError} on a count < 1 or a negative / non-finite cost.
 */
export function partitionKeys(items: readonly WorkItem[], count: number): [number | string, number][][] {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`partitionKeys: count ${count} < 1`);
  for (const it of items) {
    if (!(Number.isFinite(it.cost) && it.cost >= 0)) {
      throw new RangeError(`partitionKeys: key (${it.exampleId}, ${it.sampleId}) has cost ${it.cost}`);
    }
  }
  const keyOf = (it: WorkItem) => ({
    variant: "",
    condition: "",
    example_id: it.exampleId,
    sample_id: it.sampleId,
  });
  const order = [...items].sort((a, b) => b.cost - a.cost || compareRecordKeys(keyOf(a), keyOf(b)));
  const load = new Array<number>(count).fill(0);
  const out: WorkItem[][] = Array.from({ length: count }, () => []);
  for (const it of order) {
    let best = 0;
    for (let k = 1; k < count; k++) if (load[k]! < load[best]!) best = k;
    load[best]! += it.cost;
    out[best]!.push(it);
  }
  return out.map((s) =>
    s.sort((a, b) => compareRecordKeys(keyOf(a), keyOf(b))).map((it) => [it.exampleId, it.sampleId])
  );
}

/** The partition of one store (the `.plan.json` file). */
export interface ShardPlan {
  readonly variant: string;
  readonly condition: string;
  readonly count: number;
  /** Hash of the settings the records depend on (the caller's choice, e.g. the config). */
  readonly config_hash: string;
  /** Hash of the model (weights). */
  readonly model_hash: string;
  /** How the keys were split. */
  readonly partition: string;
  /** The command that generates one shard, `{shard}` standing for `K/N` (shown in error messages). */
  readonly command: string;
  /** Per shard, its keys `[example_id, sample_id]`. */
  readonly shards: readonly (readonly [number | string, number])[][];
}

/** What a finished shard writes (the `.done.json` file). */
export interface ShardDone {
  readonly shard: number;
  readonly count: number;
  readonly config_hash: string;
  readonly model_hash: string;
  readonly records: number;
}

/** The files of shard K of N of the store `path` (`<dir>/<name>.jsonl`). */
export function shardFiles(path: string, shard: ShardSpec): { store: string; timings: string; done: string } {
  const base = path.replace(/\.jsonl$/, "");
  const store = `${base}.shard-${shard.index}-of-${shard.count}.jsonl`;
  return {
    store,
    timings: timingsPathFor(store),
    done: `${base}.shard-${shard.index}-of-${shard.count}.done.json`,
  };
}

/** The plan file of a store split into `count` shards. */
export function planFile(path: string, count: number): string {
  return `${path.replace(/\.jsonl$/, "")}.shards-${count}.plan.json`;
}

/** Whether a file name is a shard's file (store, timings, done marker or plan), not a store of its own. */
export function isShardFile(name: string): boolean {
  return /\.shard-\d+-of-\d+\.(jsonl|timings\.jsonl|done\.json)$/.test(name) ||
    /\.shards-\d+\.plan\.json$/.test(name);
}

/**
 * Write the plan of a store, or check it against the one already there (another shard wrote it).
 *
 * @throws {Error} when a plan exists and differs (other config, model or keys), naming both hashes and
 *   what to do.
 */
export async function writeOrCheckPlan(path: string, plan: ShardPlan): Promise<void> {
  const file = planFile(path, plan.count);
  const text = JSON.stringify(plan) + "\n";
  try {
    const f = await Deno.open(file, { write: true, createNew: true });
    try {
      await writeAllBytes(f, new TextEncoder().encode(text));
      await f.syncData();
    } finally {
      f.close();
    }
    return;
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  const old = await readPlan(file);
  if (JSON.stringify(old) === JSON.stringify(plan)) return;
  const what = old.config_hash !== plan.config_hash
    ? `config hash ${old.config_hash.slice(0, 12)} there, ${plan.config_hash.slice(0, 12)} here`
    : old.model_hash !== plan.model_hash
    ? `model hash ${old.model_hash.slice(0, 12)} there, ${plan.model_hash.slice(0, 12)} here`
    : "other keys (problems, samples or prompts changed)";
  throw new Error(
    `Shard plan ${file} was made for other settings (${what}): every shard of a store must run with the same ` +
      `config and model. Run this shard with the config of the others, or remove the store's shard files ` +
      `(${basename(path).replace(/\.jsonl$/, "")}.shard*) and run every shard again`,
  );
}

async function readPlan(file: string): Promise<ShardPlan> {
  // A plan is written whole by one write and fsync before it is visible under its name only when written
  // with createNew; a reader can meet it mid-write: retry a few times.
  for (let attempt = 0;; attempt++) {
    try {
      return JSON.parse(await Deno.readTextFile(file)) as ShardPlan;
    } catch (e) {
      if (attempt >= 20 || e instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot read the shard plan ${file}: ${(e as Error).message}`, { cause: e });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Mark shard K of a store finished (atomically: temp file, rename). */
export async function writeShardDone(path: string, shard: ShardSpec, done: ShardDone): Promise<void> {
  const file = shardFiles(path, shard).done;
  const tmp = `${file}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(done) + "\n");
  await Deno.rename(tmp, file);
}

/** One shard that the merge could not use, with why and the keys it lacks. */
export interface ShardProblem {
  readonly shard: ShardSpec;
  /** The shard's store, relative to the store's folder. */
  readonly file: string;
  readonly reason: string;
  /** Keys of the plan not in the shard's store. */
  readonly missing: readonly (readonly [number | string, number])[];
}

/** A merge that cannot be done: names every shard at fault. */
export class ShardMergeError extends Error {
  constructor(readonly store: string, readonly problems: readonly ShardProblem[], hint: string) {
    super(
      `Cannot merge the shards of ${store}: ` +
        problems.map((p) =>
          `shard ${shardLabel(p.shard)} (${p.file}) ${p.reason}` +
          (p.missing.length
            ? `, missing ${p.missing.length} key(s): ${
              p.missing.slice(0, 8).map(([e, s]) => `(${JSON.stringify(e)}, ${s})`).join(" ")
            }${p.missing.length > 8 ? " …" : ""}`
            : "")
        ).join("; ") + (hint ? `. ${hint}` : ""),
    );
    this.name = "ShardMergeError";
  }
}

/** The shard counts with a plan beside the store `path`. */
export async function shardCounts(path: string): Promise<number[]> {
  const dir = dirname(path);
  const name = basename(path).replace(/\.jsonl$/, "");
  const counts: number[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !e.name.startsWith(`${name}.shards-`)) continue;
      const m = /^\.shards-(\d+)\.plan\.json$/.exec(e.name.slice(name.length));
      if (m) counts.push(Number(m[1]));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return counts.sort((a, b) => a - b);
}

/** Options of {@linkcode mergeShards}. */
export interface MergeShardsOptions {
  /** Whether shard K is being written right now by a live process (a held shard lock). */
  readonly running?: (shard: ShardSpec) => string | undefined;
  /** Expected hashes (the merging process's own): a plan made with others is refused. */
  readonly configHash?: string;
  readonly modelHash?: string;
}

/**
 * Merge the shards of the store `path` into `path` (+ its timings sidecar), byte-identical to the store an
 * unsharded run writes: every key of the plan exactly once, records in canonical order.
 *
 * Checks: one plan (one shard count); every shard finished (its `.done.json`) with the plan's config and
 * model hashes; every shard's keys are exactly its keys of the plan; every record has the same
 * interventions. Nothing is written unless all hold.
 *
 * @param path The unsharded store's path.
 * @param options Running-shard check, expected hashes.
 * @returns The shard count and the number of records merged.
 * @throws {ShardMergeError} naming each missing, unfinished, running or inconsistent shard and its
 *   missing keys; {Error} when there is no plan or several.
 */
export async function mergeShards(
  path: string,
  options: MergeShardsOptions = {},
): Promise<{ count: number; records: number }> {
  const counts = await shardCounts(path);
  if (counts.length === 0) {
    throw new Error(`${path}: no shard plan (${basename(planFile(path, 0))} for any N)`);
  }
  if (counts.length > 1) {
    throw new Error(
      `${path}: shards of several counts (${counts.join(", ")}) are present; keep the files of one count ` +
        `(remove the others' .shard-K-of-N.* and .shards-N.plan.json files) and merge again`,
    );
  }
  const count = counts[0]!;
  const plan = await readPlan(planFile(path, count));
  const problems: ShardProblem[] = [];
  const all: GenerationRecord[] = [];
  const timings = new Map<string, unknown>();
  let interventions: string | undefined;
  for (let index = 0; index < count; index++) {
    const shard = { index, count };
    const files = shardFiles(path, shard);
    const want = plan.shards[index] ?? [];
    const rel = basename(files.store);
    const recs = await readStore(files.store, files.timings);
    const have = new Set(recs.map((r) => recordKey(r)));
    const keyOf = ([e, s]: readonly [number | string, number]) =>
      recordKey({ variant: plan.variant, condition: plan.condition, example_id: e, sample_id: s });
    const missing = want.filter((k) => !have.has(keyOf(k)));
    const wanted = new Set(want.map(keyOf));
    const extra = recs.filter((r) => !wanted.has(recordKey(r)));
    const running = options.running?.(shard);
    const done = await Deno.readTextFile(files.done).then((t) => JSON.parse(t) as ShardDone).catch(() =>
      undefined
    );
    const problem = (reason: string) => problems.push({ shard, file: rel, reason, missing });
    if (running) problem(`is still running (${running})`);
    else if (recs.length === 0 && !done) problem("was never run or wrote nothing");
    else if (!done) problem(`did not finish (${recs.length} of ${want.length} records; killed?)`);
    else if (done.config_hash !== plan.config_hash || done.model_hash !== plan.model_hash) {
      problem(`was made with another config or model than its plan`);
    } else if (missing.length) problem(`is incomplete (${recs.length} of ${want.length} records)`);
    else if (extra.length) {
      problem(`holds ${extra.length} record(s) of other shards or settings, e.g. ${recordKey(extra[0]!)}`);
    } else {
      for (const r of recs) {
        const iv = JSON.stringify(r.interventions ?? []);
        interventions ??= iv;
        if (iv !== interventions) {
          problem(
            `holds records made with other interventions than the shards before it (e.g. ${recordKey(r)})`,
          );
          break;
        }
      }
    }
    all.push(...recs);
    for (const r of recs) if (r.timings !== undefined) timings.set(recordKey(r), r.timings);
  }
  for (const [h, mine] of [["config", options.configHash], ["model", options.modelHash]] as const) {
    const theirs = h === "config" ? plan.config_hash : plan.model_hash;
    if (mine !== undefined && mine !== theirs) {
      throw new Error(
        `${path}: its shards were made with ${h} hash ${theirs.slice(0, 12)}, this process has ${
          mine.slice(0, 12)
        }; merge with the shards' ${h}`,
      );
    }
  }
  if (problems.length) {
    const commands = problems.map((p) => `\`${plan.command.replaceAll("{shard}", shardLabel(p.shard))}\``);
    throw new ShardMergeError(
      path,
      problems,
      `Run ${commands.join(", ")} (a shard resumes where it stopped), then merge again`,
    );
  }
  all.sort(compareRecordKeys);
  await writeFinalStore(path, all, { timings: timings.size > 0 });
  return { count, records: all.length };
}

/** Remove every shard file of the store `path` (all counts), e.g. before regenerating it. */
export async function removeShardFiles(path: string): Promise<void> {
  const dir = dirname(path);
  const name = basename(path).replace(/\.jsonl$/, "");
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.startsWith(`${name}.shard`) && isShardFile(e.name)) {
        await Deno.remove(join(dir, e.name)).catch(() => {});
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function writeAllBytes(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}
