/**
 * Generating one store of the run, whole or as one shard: what the generating steps (`generate`, the
 * Phase-2 sweeps and steering) share.
 *
 * - Unsharded: the store `generations/<variant>/<condition>.jsonl` is generated (resuming what is there).
 *   When shards of it exist and it does not, they are merged first (all must be finished; a missing one is
 *   an error naming it), so an unsharded rerun after a sharded run regenerates nothing.
 * - Shard K of N (`--shard K/N`, `BT_SHARD`, the schedulers' variables; `lib/generate/shards.ts`): the
 *   store's (problem, sample) keys are split by expected work (prompt tokens + `max_new_tokens`, greedy
 *   longest-processing-time), the plan is written (or checked against the other shards'), and only this
 *   shard's keys are generated, into `<condition>.shard-K-of-N.jsonl`, resumable; a `.done.json` marks it
 *   finished. The merged store is written by the next reader (`artifacts/generations.ts`) or `bt merge`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Intervention } from "../../lib/engine/hooks.ts";
import type { LoadedModel } from "../../lib/engine/load.ts";
import { readStore, recordKey } from "../../lib/generate/records.ts";
import { generateToStore, type PromptRecordInput } from "../../lib/generate/run_generation.ts";
import {
  partitionKeys,
  planFile,
  shardCounts,
  shardFiles,
  shardLabel,
  type ShardPlan,
  type ShardSpec,
  writeOrCheckPlan,
  writeShardDone,
} from "../../lib/generate/shards.ts";
import {
  generationConfigHash,
  generationFile,
  mergeGenerationShards,
  prepareGenerationStore,
} from "./artifacts/generations.ts";
import type { ModelContext } from "./context.ts";
import { say } from "./context.ts";
import { generationSettings } from "./settings.ts";

/** One store to generate. */
export interface StoreGenerationSpec {
  readonly variant: string;
  readonly condition: string;
  readonly prompts: readonly PromptRecordInput[];
  readonly samplesPerPrompt: number;
  readonly interventions: readonly Intervention[];
  /** Delete the store (this shard's files, with a shard) first. */
  readonly force?: boolean;
  /** Generate only this shard's keys; undefined = the whole store. */
  readonly shard?: ShardSpec | undefined;
  /** The command that generates one shard of this store, `{shard}` standing for K/N (for messages). */
  readonly command: string;
}

/** What {@linkcode generateStore} did. */
export interface StoreGenerationResult {
  /** The store written: the whole store, or this shard's file. */
  readonly path: string;
  readonly generated: number;
  readonly resumed: number;
  readonly shard?: ShardSpec;
}

/**
 * The hash of a loaded model as the shards compare it: model id, commit and weight-file hashes.
 */
export function modelHash(loaded: LoadedModel): string {
  const w = loaded.weightHashes ?? {};
  const id = {
    model_id: loaded.modelId,
    commit: loaded.commit ?? null,
    weights: Object.keys(w).sort().map((k) => [k, w[k]]),
    organism: loaded.organism ?? null,
  };
  return createHash("sha256").update(JSON.stringify(id)).digest("hex");
}

/**
 * Generate a store (or one shard of it); see the module doc.
 *
 * @param ctx The run, config and the loaded model's slot.
 * @param loaded The loaded model.
 * @param spec The store, its prompts, interventions, force and shard.
 * @throws {Error} when, with a shard, an incomplete unsharded store is there (finish it unsharded, or
 *   force), or another shard's plan differs; when unsharded and existing shards cannot be merged
 *   (`ShardMergeError`, naming them).
 */
export async function generateStore(
  ctx: ModelContext,
  loaded: LoadedModel,
  spec: StoreGenerationSpec,
): Promise<StoreGenerationResult> {
  const { variant, condition, prompts, shard } = spec;
  const force = spec.force ?? false;
  const settings = generationSettings(ctx.config, loaded, ctx.progress);
  const rel = generationFile(variant, condition);
  if (!shard) {
    const path = await prepareGenerationStore(ctx.run, variant, condition, { fresh: force });
    if (!force && !await exists(path) && (await shardCounts(path)).length > 0) {
      await mergeGenerationShards(ctx, variant, condition);
    }
    const res = await generateToStore(loaded.model, prompts, {
      ...settings,
      path,
      variant,
      condition,
      samplesPerPrompt: spec.samplesPerPrompt,
      interventions: [...spec.interventions],
    });
    return { path, generated: res.generated, resumed: res.resumed };
  }

  const path = await prepareGenerationStore(ctx.run, variant, condition);
  const files = shardFiles(path, shard);
  const label = shardLabel(shard);
  const keyOf = (e: number | string, s: number) =>
    recordKey({ variant, condition, example_id: e, sample_id: s });
  const plan: ShardPlan = {
    variant,
    condition,
    count: shard.count,
    config_hash: generationConfigHash(ctx.config),
    model_hash: modelHash(loaded),
    partition: "greedy LPT over (example, sample) keys; cost = prompt tokens + max_new_tokens",
    command: spec.command,
    shards: partitionKeys(
      prompts.flatMap((p) =>
        Array.from({ length: spec.samplesPerPrompt }, (_, s) => ({
          exampleId: p.exampleId,
          sampleId: s,
          cost: p.tokenIds.length + settings.maxNewTokens,
        }))
      ),
      shard.count,
    ),
  };
  const mine = plan.shards[shard.index]!;
  if (force) {
    for (const p of [files.store, files.timings, files.done, path, `${path}.timings.jsonl`]) {
      await Deno.remove(p).catch(() => {});
    }
    await Deno.remove(planFile(path, shard.count)).catch(() => {});
  } else if (await exists(path)) {
    // Merged already (or an unsharded run): this shard has nothing to do when every one of its keys is there.
    const have = new Set((await readStore(path)).map((r) => recordKey(r)));
    const lacking = mine.filter(([e, s]) => !have.has(keyOf(e, s)));
    if (lacking.length === 0) {
      say(ctx, `generate ${variant}/${condition} shard ${label}: ${rel} is complete already; nothing to do`);
      return { path: files.store, generated: 0, resumed: mine.length, shard };
    }
    throw new Error(
      `${rel} exists without ${lacking.length} of shard ${label}'s keys: an unsharded run wrote it. Finish ` +
        `it unsharded (the same command without --shard), or run every shard with --force to start over`,
    );
  }
  await writeOrCheckPlan(path, plan);
  await Deno.remove(files.done).catch(() => {});
  const wanted = new Set(mine.map(([e, s]) => keyOf(e, s)));
  const res = await generateToStore(loaded.model, prompts, {
    ...settings,
    path: files.store,
    variant,
    condition,
    samplesPerPrompt: spec.samplesPerPrompt,
    interventions: [...spec.interventions],
    include: (p, s) => wanted.has(keyOf(prompts[p]!.exampleId, s)),
  });
  await writeShardDone(path, shard, {
    shard: shard.index,
    count: shard.count,
    config_hash: plan.config_hash,
    model_hash: plan.model_hash,
    records: mine.length,
  });
  return { path: files.store, generated: res.generated, resumed: res.resumed, shard };
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}
