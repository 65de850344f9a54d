/**
 * Sharded generation (issue 17): the shard of a process from flags and the schedulers' variables, the
 * work partition, the merge (byte-identical to an unsharded store; a missing or unfinished shard named),
 * and a sample's tokens not depending on its shard or batch.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HookedModel } from "../../lib/engine/hooked_model.ts";
import { writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import { openRecordStore } from "../../lib/generate/records.ts";
import { generateToStore } from "../../lib/generate/run_generation.ts";
import {
  mergeShards,
  parseShard,
  partitionKeys,
  planFile,
  resolveShard,
  shardFiles,
  ShardMergeError,
  type ShardPlan,
  type WorkItem,
  writeOrCheckPlan,
  writeShardDone,
} from "../../lib/generate/shards.ts";
import { fixtureRecord } from "./_writer_script.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("resolveShard: --shard, BT_SHARD, SLURM arrays, Kubernetes Indexed Jobs, in that order", () => {
  assert.deepEqual(resolveShard("1/3", env({ BT_SHARD: "0/2" })), { index: 1, count: 3 });
  assert.equal(
    resolveShard("none", env({ SLURM_ARRAY_TASK_ID: "1", SLURM_ARRAY_TASK_COUNT: "2" })),
    undefined,
  );
  assert.deepEqual(resolveShard(undefined, env({ BT_SHARD: "0/2", JOB_COMPLETION_INDEX: "1" })), {
    index: 0,
    count: 2,
  });
  assert.equal(resolveShard(undefined, env({ BT_SHARD: "none", SLURM_ARRAY_TASK_ID: "1" })), undefined);
  // SLURM: --array=0-3 and --array=1-4 both give shards 0..3 of 4.
  assert.deepEqual(
    resolveShard(undefined, env({ SLURM_ARRAY_TASK_ID: "3", SLURM_ARRAY_TASK_COUNT: "4" })),
    { index: 3, count: 4 },
  );
  assert.deepEqual(
    resolveShard(
      undefined,
      env({ SLURM_ARRAY_TASK_ID: "4", SLURM_ARRAY_TASK_COUNT: "4", SLURM_ARRAY_TASK_MIN: "1" }),
    ),
    { index: 3, count: 4 },
  );
  assert.deepEqual(
    resolveShard(undefined, env({ JOB_COMPLETION_INDEX: "2", BT_SHARD_COUNT: "3" })),
    { index: 2, count: 3 },
  );
  assert.equal(resolveShard(undefined, env({})), undefined);
  assert.throws(() => resolveShard(undefined, env({ JOB_COMPLETION_INDEX: "2" })), /BT_SHARD_COUNT is not/);
  assert.throws(() => resolveShard(undefined, env({ SLURM_ARRAY_TASK_ID: "2" })), /SLURM_ARRAY_TASK_COUNT/);
  assert.throws(
    () => resolveShard(undefined, env({ SLURM_ARRAY_TASK_ID: "7", SLURM_ARRAY_TASK_COUNT: "4" })),
    /SLURM_ARRAY_TASK_ID=7 .*0\.\.3, got 7/,
  );
  assert.throws(() => parseShard("3/3"), /--shard "3\/3": the shard index must be in 0\.\.2, got 3/);
  assert.throws(() => parseShard("1-3", "BT_SHARD"), /BT_SHARD: expected K\/N/);
  assert.throws(() => parseShard("0/0"), /count must be an integer ≥ 1/);
});

/** The largest shard load of an assignment. */
function makespan(items: readonly WorkItem[], shards: [number | string, number][][]): number {
  const cost = new Map(items.map((i) => [`${i.exampleId}/${i.sampleId}`, i.cost]));
  return Math.max(...shards.map((s) => s.reduce((a, [e, k]) => a + cost.get(`${e}/${k}`)!, 0)));
}

/** The best makespan over every assignment (brute force; small inputs only). */
function optimalMakespan(costs: readonly number[], n: number): number {
  let best = Infinity;
  const load = new Array<number>(n).fill(0);
  const go = (i: number) => {
    if (Math.max(...load) >= best) return;
    if (i === costs.length) {
      best = Math.max(...load);
      return;
    }
    for (let k = 0; k < n; k++) {
      load[k]! += costs[i]!;
      go(i + 1);
      load[k]! -= costs[i]!;
    }
  };
  go(0);
  return best;
}

Deno.test("partitionKeys: every key once, deterministic, within LPT's bound of the optimum", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 20; trial++) {
    const problems = 2 + Math.floor(rand() * 3);
    const samples = 1 + Math.floor(rand() * 3);
    const items: WorkItem[] = [];
    for (let e = 0; e < problems; e++) {
      const cost = 50 + Math.floor(rand() * 400);
      for (let s = 0; s < samples; s++) items.push({ exampleId: e, sampleId: s, cost });
    }
    for (const n of [1, 2, 3]) {
      const parts = partitionKeys(items, n);
      assert.equal(parts.length, n);
      const flat = parts.flat().map(([e, s]) => `${e}/${s}`).sort();
      assert.deepEqual(
        flat,
        items.map((i) => `${i.exampleId}/${i.sampleId}`).sort(),
        "each key exactly once",
      );
      assert.deepEqual(partitionKeys([...items].reverse(), n), parts, "independent of the input order");
      const opt = optimalMakespan(items.map((i) => i.cost), n);
      assert.ok(
        makespan(items, parts) <= (4 / 3) * opt + 1e-9,
        `LPT bound: ${makespan(items, parts)} vs ${opt}`,
      );
    }
  }
  assert.throws(() => partitionKeys([{ exampleId: 0, sampleId: 0, cost: NaN }], 2), /cost NaN/);
});

/** Records 0..n-1 of one store (fixtureRecord, all with the same interventions, as in a real store). */
function records(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    ...fixtureRecord(i),
    interventions: [{ op: "scale", hook: "blocks.3.hook_mlp_out", value: 0 }],
  }));
}

async function writeStore(path: string, recs: ReturnType<typeof records>): Promise<void> {
  await using store = await openRecordStore(path);
  for (const r of recs) await store.append(r);
  await store.finalize();
}

function planOf(recs: ReturnType<typeof records>, n: number): ShardPlan {
  return {
    variant: recs[0]!.variant,
    condition: recs[0]!.condition,
    count: n,
    config_hash: "c".repeat(64),
    model_hash: "m".repeat(64),
    partition: "test",
    command: "bt generate --shard {shard}",
    shards: partitionKeys(
      recs.map((r) => ({ exampleId: r.example_id, sampleId: r.sample_id, cost: r.prompt.length })),
      n,
    ),
  };
}

/** Write shard stores, plan and done markers for `recs` under `path`; `skip` shards are left out. */
async function writeShards(path: string, recs: ReturnType<typeof records>, n: number, skip: number[] = []) {
  const plan = planOf(recs, n);
  await writeOrCheckPlan(path, plan);
  for (let k = 0; k < n; k++) {
    if (skip.includes(k)) continue;
    const mine = new Set(plan.shards[k]!.map(([e, s]) => `${e}/${s}`));
    // Shard stores are written in reverse order: the merge must not depend on append order.
    await writeStore(
      shardFiles(path, { index: k, count: n }).store,
      recs.filter((r) => mine.has(`${r.example_id}/${r.sample_id}`)).reverse(),
    );
    await writeShardDone(path, { index: k, count: n }, {
      shard: k,
      count: n,
      config_hash: plan.config_hash,
      model_hash: plan.model_hash,
      records: mine.size,
    });
  }
  return plan;
}

Deno.test("mergeShards: byte-identical to the unsharded store for 1, 2 and 3 shards", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shards_merge_" });
  try {
    const recs = records(14);
    const whole = join(dir, "whole.jsonl");
    await writeStore(whole, recs);
    for (const n of [1, 2, 3]) {
      const path = join(dir, `n${n}`, "baseline.jsonl");
      await Deno.mkdir(join(dir, `n${n}`));
      await writeShards(path, recs, n);
      const res = await mergeShards(path, { configHash: "c".repeat(64) });
      assert.deepEqual(res, { count: n, records: 14 });
      assert.deepEqual(await Deno.readFile(path), await Deno.readFile(whole), `${n} shards`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mergeShards: a missing, unfinished or running shard is named with its missing keys", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shards_missing_" });
  try {
    const recs = records(12);
    const path = join(dir, "baseline.jsonl");
    const plan = await writeShards(path, recs, 3, [1]);
    const err = await mergeShards(path).catch((e) => e);
    assert.ok(err instanceof ShardMergeError, String(err));
    assert.equal(err.problems.length, 1);
    assert.deepEqual(err.problems[0]!.shard, { index: 1, count: 3 });
    assert.deepEqual(err.problems[0]!.missing, plan.shards[1]);
    assert.match(err.message, /shard 1\/3 \(baseline\.shard-1-of-3\.jsonl\) was never run/);
    assert.match(err.message, /`bt generate --shard 1\/3`/);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound, "nothing merged");
    // Shard 1 killed mid-way: some records, no done marker.
    const mine = new Set(plan.shards[1]!.map(([e, s]) => `${e}/${s}`));
    const part = recs.filter((r) => mine.has(`${r.example_id}/${r.sample_id}`)).slice(0, 1);
    await writeStore(shardFiles(path, { index: 1, count: 3 }).store, part);
    await assert.rejects(mergeShards(path), /shard 1\/3 .* did not finish \(1 of 4 records; killed\?\)/);
    // Running (a live lock holder).
    await assert.rejects(
      mergeShards(path, { running: (s) => (s.index === 1 ? "pid 7 on box" : undefined) }),
      /shard 1\/3 .* is still running \(pid 7 on box\)/,
    );
    // Another config in a shard's done marker.
    await writeShardDone(path, { index: 1, count: 3 }, {
      shard: 1,
      count: 3,
      config_hash: "x".repeat(64),
      model_hash: plan.model_hash,
      records: 4,
    });
    await assert.rejects(mergeShards(path), /shard 1\/3 .* was made with another config or model/);
    // The merging process's config differs from the plan's.
    await assert.rejects(mergeShards(path, { configHash: "d".repeat(64) }), /config hash cccccccccccc/);
    // Records of one shard made with other interventions (e.g. another steering vector).
    await Deno.mkdir(join(dir, "iv"));
    const p2 = join(dir, "iv", "baseline.jsonl");
    await writeShards(p2, recs, 3, [1]);
    await writeStore(
      shardFiles(p2, { index: 1, count: 3 }).store,
      recs.filter((r) => mine.has(`${r.example_id}/${r.sample_id}`)).map((r) => ({
        ...r,
        interventions: [{ op: "scale", hook: "blocks.3.hook_mlp_out", value: 0.5 }],
      })),
    );
    await writeShardDone(p2, { index: 1, count: 3 }, {
      shard: 1,
      count: 3,
      config_hash: plan.config_hash,
      model_hash: plan.model_hash,
      records: 4,
    });
    await assert.rejects(mergeShards(p2), /shard 1\/3 .* holds records made with other interventions/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeOrCheckPlan: a shard with another config is refused; two shard counts are not merged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shards_plan_" });
  try {
    const recs = records(6);
    const path = join(dir, "baseline.jsonl");
    await writeOrCheckPlan(path, planOf(recs, 2));
    await writeOrCheckPlan(path, planOf(recs, 2)); // the same plan again: fine
    await assert.rejects(
      writeOrCheckPlan(path, { ...planOf(recs, 2), config_hash: "e".repeat(64) }),
      /made for other settings \(config hash cccccccccccc there, eeeeeeeeeeee here\)/,
    );
    await writeOrCheckPlan(path, planOf(recs, 3));
    assert.ok(await Deno.stat(planFile(path, 3)));
    await assert.rejects(mergeShards(path), /shards of several counts \(2, 3\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a sample's tokens do not depend on its shard or batch: merged shards equal the whole store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shards_gen_" });
  try {
    await writeRandomCheckpoint(join(dir, "ckpt"), {
      modelType: "qwen2",
      hiddenSize: 32,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 48,
      vocabSize: 64,
      seed: 5,
    });
    const model = await HookedModel.load(join(dir, "ckpt"), { cacheDir: join(dir, ".graphs") });
    try {
      const prompts = [
        { exampleId: 0, prompt: "a", tokenIds: [1, 5, 9, 12] },
        { exampleId: 1, prompt: "b", tokenIds: [2, 7] },
        { exampleId: 2, prompt: "c", tokenIds: [3, 3, 8, 40, 41, 42, 11] },
        { exampleId: 3, prompt: "d", tokenIds: [4, 9, 9] },
      ];
      const common = {
        variant: "v",
        condition: "baseline",
        samplesPerPrompt: 3,
        maxNewTokens: 12,
        sampling: { temperature: 0.9, topP: 0.95, topK: 20 },
        eosTokenIds: [63],
        seed: 42,
        decodeCompletion: (ids: readonly number[]) => ids.join(" "),
        progress: "silent" as const,
      };
      const whole = join(dir, "whole.jsonl");
      await generateToStore(model, prompts, { ...common, path: whole, batchSize: 16 });
      for (const n of [2, 3]) {
        await Deno.mkdir(join(dir, `n${n}`));
        const path = join(dir, `n${n}`, "baseline.jsonl");
        const plan: ShardPlan = {
          variant: "v",
          condition: "baseline",
          count: n,
          config_hash: "c",
          model_hash: "m",
          partition: "test",
          command: "x {shard}",
          shards: partitionKeys(
            prompts.flatMap((p) =>
              [0, 1, 2].map((s) => ({ exampleId: p.exampleId, sampleId: s, cost: p.tokenIds.length + 12 }))
            ),
            n,
          ),
        };
        await writeOrCheckPlan(path, plan);
        for (let k = 0; k < n; k++) {
          const mine = new Set(plan.shards[k]!.map(([e, s]) => `${e}/${s}`));
          const files = shardFiles(path, { index: k, count: n });
          // Each shard with another batch size (1, 2, 3 rows), so batch composition differs throughout.
          await generateToStore(model, prompts, {
            ...common,
            path: files.store,
            batchSize: k + 1,
            include: (p, s) => mine.has(`${prompts[p]!.exampleId}/${s}`),
          });
          await writeShardDone(path, { index: k, count: n }, {
            shard: k,
            count: n,
            config_hash: "c",
            model_hash: "m",
            records: mine.size,
          });
        }
        await mergeShards(path);
        assert.equal(await Deno.readTextFile(path), await Deno.readTextFile(whole), `${n} shards`);
      }
    } finally {
      await model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
