/**
 * Artifact family `generations/<variant>/<condition>.jsonl` (+ `.timings.jsonl`): the record stores the
 * generating steps write (Phase 1: `baseline`, `targeted_ablation`, `random_ablation[_k]`; Phase 2:
 * `phase2_*`), and their index in the reference's detection order.
 *
 * The record format itself (append-only JSONL with resume) is the toolkit's `lib/generate/records.ts`;
 * this module owns where a run keeps its stores and how they are listed.
 *
 * Sharded stores (`bt generate --shard K/N`, `lib/generate/shards.ts`): shard K of N writes
 * `generations/<variant>/<condition>.shard-K-of-N.jsonl` (+ timings, + `.done.json` when finished) beside the
 * plan `<condition>.shards-N.plan.json`. The readers here merge them into `<condition>.jsonl` the first time
 * the store is read ({@linkcode listGenerationStores}, {@linkcode readGenerations}; and `bt merge`), once
 * every shard is finished: the merged store is byte-identical to an unsharded run's. A missing, unfinished
 * or running shard is an error naming it ({@linkcode ShardMergeError}), never a silently smaller store.
 *
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { createHash } from "node:crypto";
import { type GenerationRecord, readStore, timingsPathFor } from "../../../lib/generate/records.ts";
import {
  isShardFile,
  mergeShards,
  removeShardFiles,
  shardCounts,
  ShardMergeError,
} from "../../../lib/generate/shards.ts";
import { shardLockHolders } from "../../../lib/util/run_lock.ts";
import { artifactPath, type Run } from "../run.ts";

export { ShardMergeError };

/** Condition names in the reference's order; random draws follow as `random_ablation_<k>`. */
export const CONDITION_ORDER = ["baseline", "targeted_ablation", "random_ablation"] as const;

/** Relative path of a generation store. */
export function generationFile(variant: string, condition: string): string {
  return `generations/${variant}/${condition}.jsonl`;
}

/** One store of the index. */
export interface GenerationStore {
  readonly variant: string;
  readonly condition: string;
  /** Absolute path of the `.jsonl` store. */
  readonly path: string;
}

/**
 * Whether a condition belongs to Phase 1 (baseline, targeted_ablation, random_ablation[_k],
 * reference_selection_ablation): the
 * conditions of `backtracking_events.csv` and of the Phase-1 tables. Phase-2 settings (`phase2_*`) have
 * their own tables and never enter these.
 */
export function isPhase1Condition(condition: string): boolean {
  return condition === "baseline" || condition === "targeted_ablation" ||
    condition.startsWith("random_ablation") || condition === REFERENCE_SELECTION_CONDITION;
}

/**
 * The protocol-validation condition: the reference protocol's selection (signed top-k by raw Δlogit)
 * ablated during generation, generated on models with a known circuit (the organism) so that what the
 * reference's "backtracking drop" costs in degeneration can be read beside ours (docs/protocol.md §13).
 */
export const REFERENCE_SELECTION_CONDITION = "reference_selection_ablation";

/**
 * Order of condition names: baseline, targeted_ablation, random_ablation[, _0, _1, …], then others by name
 * (reference_selection_ablation among them).
 */
export function compareConditionNames(a: string, b: string): number {
  const [x, y] = [conditionRank(a), conditionRank(b)];
  return x[0] - y[0] || x[1] - y[1] || (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0);
}

function conditionRank(c: string): [number, number, string] {
  const i = (CONDITION_ORDER as readonly string[]).indexOf(c);
  if (i >= 0) return [i, 0, c];
  const m = /^random_ablation_(\d+)$/.exec(c);
  if (m) return [2, Number(m[1]) + 1, c];
  return [9, 0, c];
}

/**
 * The generation stores of a run, in the reference's detection order: variants in config order (then
 * any others by name) × conditions baseline, targeted_ablation, random_ablation[, _0, _1, …], others.
 * `phase1Only`: leave out Phase-2 stores (see {@linkcode isPhase1Condition}).
 */
export async function listGenerationStores(
  ctx: { readonly config: Config; readonly run: Run; readonly log?: (line: string) => void },
  options: { readonly phase1Only?: boolean } = {},
): Promise<GenerationStore[]> {
  const root = join(ctx.run.dir, "generations");
  const found: GenerationStore[] = [];
  const sharded = new Map<string, GenerationStore>();
  try {
    for await (const v of Deno.readDir(root)) {
      if (!v.isDirectory) continue;
      for await (const f of Deno.readDir(join(root, v.name))) {
        if (!f.isFile) continue;
        const plan = /^(.+)\.shards-\d+\.plan\.json$/.exec(f.name);
        if (plan) {
          const condition = plan[1]!;
          if (options.phase1Only && !isPhase1Condition(condition)) continue;
          const path = join(root, v.name, `${condition}.jsonl`);
          sharded.set(path, { variant: v.name, condition, path });
          continue;
        }
        if (!f.name.endsWith(".jsonl") || f.name.endsWith(".timings.jsonl") || isShardFile(f.name)) continue;
        if (options.phase1Only && !isPhase1Condition(f.name.slice(0, -6))) continue;
        found.push({ variant: v.name, condition: f.name.slice(0, -6), path: join(root, v.name, f.name) });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const have = new Set(found.map((s) => s.path));
  const problems: Error[] = [];
  for (const [path, store] of sharded) {
    if (have.has(path)) continue;
    try {
      await mergeGenerationShards(ctx, store.variant, store.condition);
      found.push(store);
    } catch (e) {
      problems.push(e as Error);
    }
  }
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) {
    throw new Error(
      `${problems.length} sharded stores cannot be merged:\n${problems.map((e) => e.message).join("\n")}`,
    );
  }
  const vOrder = ctx.config.prompting.formatting_variants.map((v) => v.name);
  const vr = (v: string) => {
    const i = vOrder.indexOf(v);
    return i < 0 ? vOrder.length : i;
  };
  return found.sort((a, b) => {
    const [ca, cb] = [conditionRank(a.condition), conditionRank(b.condition)];
    return vr(a.variant) - vr(b.variant) || a.variant.localeCompare(b.variant) || ca[0] - cb[0] ||
      ca[1] - cb[1] || ca[2].localeCompare(cb[2]);
  });
}

/** The records of a store at an absolute path (with its timings), in file order. */
export async function readGenerationStore(path: string): Promise<GenerationRecord[]> {
  return await readStore(path, timingsPathFor(path));
}

/**
 * Read one generation store of the run (records in file order).
 *
 * @throws {Error} naming the store and the command that makes it when it does not exist.
 */
export async function readGenerations(
  run: Run,
  variant: string,
  condition: string,
): Promise<GenerationRecord[]> {
  const path = artifactPath(run, generationFile(variant, condition));
  if (!await exists(path) && (await shardCounts(path)).length > 0) {
    await mergeGenerationShards({ run }, variant, condition);
  }
  try {
    await Deno.stat(path);
  } catch {
    throw new Error(
      `${path} does not exist; run \`bt generate --condition ${condition} --variant ${variant}\` first`,
    );
  }
  return await readGenerationStore(path);
}

/**
 * Make a store ready for the generator (which appends and resumes): create its folder, and with `fresh`
 * delete the store and its timings so it is regenerated from scratch.
 *
 * @returns The absolute path of the store.
 */
export async function prepareGenerationStore(
  run: Run,
  variant: string,
  condition: string,
  options: { readonly fresh?: boolean } = {},
): Promise<string> {
  const path = artifactPath(run, generationFile(variant, condition));
  await Deno.mkdir(artifactPath(run, `generations/${variant}`), { recursive: true });
  if (options.fresh) {
    for (const p of [path, timingsPathFor(path)]) await Deno.remove(p).catch(() => {});
    await removeShardFiles(path);
  }
  return path;
}

/**
 * Merge the finished shards of one store into `generations/<variant>/<condition>.jsonl` (see the module doc
 * and `lib/generate/shards.ts` `mergeShards`): every key of the plan exactly once, the same config and
 * model hashes, byte-identical to an unsharded run.
 *
 * @param ctx The run (and an optional logger; with `config`, the plan's config hash must match it).
 * @returns The shard count and number of records.
 * @throws {ShardMergeError} naming each missing, unfinished or running shard with its missing keys.
 */
export async function mergeGenerationShards(
  ctx: { readonly run: Run; readonly config?: Config; readonly log?: (line: string) => void },
  variant: string,
  condition: string,
): Promise<{ count: number; records: number; path: string }> {
  const path = artifactPath(ctx.run, generationFile(variant, condition));
  const running = await shardLockHolders(ctx.run.dir);
  const res = await mergeShards(path, {
    running: (s) => running.get(`${s.index}/${s.count}`),
    ...(ctx.config ? { configHash: generationConfigHash(ctx.config) } : {}),
  });
  (ctx.log ?? ((l: string) => console.error(l)))(
    `merge ${variant}/${condition}: ${res.count} shard(s), ${res.records} records → ${
      generationFile(variant, condition)
    }`,
  );
  return { ...res, path };
}

/**
 * Every sharded store of the run: merged now, already merged, or not mergeable (with the error naming
 * the shards at fault). `bt merge` prints this.
 */
export async function mergeAllGenerationShards(
  ctx: { readonly run: Run; readonly config?: Config; readonly log?: (line: string) => void },
): Promise<{ variant: string; condition: string; status: "merged" | "present" | "failed"; error?: Error }[]> {
  const root = join(ctx.run.dir, "generations");
  const out: {
    variant: string;
    condition: string;
    status: "merged" | "present" | "failed";
    error?: Error;
  }[] = [];
  const seen = new Set<string>();
  let dirs: Deno.DirEntry[] = [];
  try {
    dirs = await Array.fromAsync(Deno.readDir(root));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const v of dirs.filter((d) => d.isDirectory).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const names = (await Array.fromAsync(Deno.readDir(join(root, v.name)))).map((f) => f.name).sort();
    for (const n of names) {
      const m = /^(.+)\.shards-\d+\.plan\.json$/.exec(n);
      if (!m || seen.has(`${v.name}/${m[1]}`)) continue;
      seen.add(`${v.name}/${m[1]}`);
      const condition = m[1]!;
      if (await exists(join(root, v.name, `${condition}.jsonl`))) {
        out.push({ variant: v.name, condition, status: "present" });
        continue;
      }
      try {
        await mergeGenerationShards(ctx, v.name, condition);
        out.push({ variant: v.name, condition, status: "merged" });
      } catch (e) {
        out.push({ variant: v.name, condition, status: "failed", error: e as Error });
      }
    }
  }
  return out;
}

/**
 * The hash of the settings a generation store depends on: the resolved config without the run's id and
 * output folder (which do not change a sample), as sha256 hex of its canonical JSON.
 */
export function generationConfigHash(config: Config): string {
  const c = structuredClone(config) as unknown as { run: Record<string, unknown> };
  c.run = { ...c.run, run_id: null, output_dir: null };
  return createHash("sha256").update(canonicalJson(c)).digest("hex");
}

function canonicalJson(v: unknown): string {
  return JSON.stringify(
    v,
    (_k, x) =>
      x !== null && typeof x === "object" && !Array.isArray(x)
        ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, (x as Record<string, unknown>)[k]]))
        : x,
  );
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}
