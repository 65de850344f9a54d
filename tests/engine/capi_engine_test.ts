/**
 * The engine on the C API runtime against the onnxruntime-node runtime (the oracle): the same graphs
 * on the same ORT build give the same logits (≤ 1e-6; in practice bit-identical) through prefill,
 * cached decode, rows leaving and joining, hooks and captures; the native cache equals the JS cache;
 * no KV bytes cross into JavaScript per decode step.
 */
import assert from "node:assert/strict";
import { assertClose } from "../_close.ts";
import { HookedModel } from "../../lib/engine/hooked_model.ts";
import type { Intervention } from "../../lib/engine/hooks.ts";
import { KVCache } from "../../lib/engine/kv_cache.ts";
import { writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import {
  type AnyKVCache,
  joinCaches,
  NativeKVCache,
  selectCacheRows,
} from "../../lib/engine/ort/native_cache.ts";
import { transfers } from "../../lib/engine/ort/capi.ts";

const TOL = 1e-6;

async function withModels(fn: (node: HookedModel, capi: HookedModel) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bt-capi-" });
  await writeRandomCheckpoint(dir, {
    modelType: "qwen2",
    hiddenSize: 48,
    numLayers: 3,
    numHeads: 6,
    numKvHeads: 2,
    intermediateSize: 72,
    vocabSize: 101,
    tieWordEmbeddings: true,
    seed: 21,
  });
  const node = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime: "node" });
  const capi = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime: "capi" });
  try {
    await fn(node, capi);
  } finally {
    await node.dispose();
    await capi.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

function sameLogits(a: Float32Array[][], b: Float32Array[][], what: string): void {
  assert.equal(a.length, b.length, `${what}: row count`);
  a.forEach((row, r) => {
    assert.equal(row.length, b[r]!.length, `${what}: positions of row ${r}`);
    row.forEach((l, k) => assertClose(l, b[r]![k]!, TOL, `${what} row ${r} #${k}`));
  });
}

function sameCache(js: KVCache, native: NativeKVCache, what: string): void {
  const host = native.toHost();
  assert.deepEqual(host.mask, js.mask, `${what}: mask`);
  assert.deepEqual(host.nextPositions, js.nextPositions, `${what}: positions`);
  for (let l = 0; l < js.numLayers; l++) {
    assert.deepEqual(host.keys[l], js.keys[l], `${what}: keys of layer ${l}`);
    assert.deepEqual(host.values[l], js.values[l], `${what}: values of layer ${l}`);
  }
}

Deno.test("capi runtime equals the node runtime: prefill, decode, rows leaving and joining", async () => {
  await withModels(async (node, capi) => {
    const rows = [[3, 17, 42, 5, 9, 60, 1], [8, 2, 77], [50, 51, 52, 53, 11]];
    const ivs: Intervention[] = [
      { hook: "blocks.1.hook_attn_out", op: "scale", value: 0.5, positions: { from: [2, 1, 3] } },
      {
        hook: "blocks.2.hook_resid_pre",
        op: "add",
        vector: Array.from({ length: 48 }, (_, i) => Math.sin(i)),
      },
    ];
    const a0 = await node.forward(rows, { logits: "all", returnCache: true, interventions: ivs });
    const b0 = await capi.forward(rows, { logits: "all", returnCache: true, interventions: ivs });
    sameLogits(a0.logits, b0.logits, "prefill");
    assert.ok(a0.cache instanceof KVCache && b0.cache instanceof NativeKVCache);
    sameCache(a0.cache, b0.cache, "prefill cache");

    // Expand (repeat rows), decode, drop a row, join a new prompt, decode again.
    let ca: AnyKVCache = await selectCacheRows(a0.cache, [0, 1, 1, 2]);
    let cb: AnyKVCache = await selectCacheRows(b0.cache, [0, 1, 1, 2]);
    sameCache(ca as KVCache, cb as NativeKVCache, "expanded");
    const decodeIvs: Intervention[] = [{ hook: "blocks.1.hook_attn_out", op: "scale", value: 0.5 }, ivs[1]!];
    for (let step = 0; step < 3; step++) {
      const next = [[4 + step], [9], [10 + step], [33]];
      const sa = await node.forward(next, {
        cache: ca,
        returnCache: true,
        topK: 7,
        interventions: decodeIvs,
      });
      const sb = await capi.forward(next, {
        cache: cb,
        returnCache: true,
        topK: 7,
        interventions: decodeIvs,
      });
      sa.topk!.forEach((r, i) => {
        assert.deepEqual(sb.topk![i]![0]!.ids, r[0]!.ids, `step ${step} row ${i} ids`);
        assertClose(sb.topk![i]![0]!.values, r[0]!.values, TOL, `step ${step} row ${i} values`);
      });
      cb.dispose();
      ca = sa.cache!;
      cb = sb.cache!;
    }
    const left = [await selectCacheRows(ca, [3, 0]), await selectCacheRows(cb, [3, 0])] as const;
    sameCache(left[0] as KVCache, left[1] as NativeKVCache, "after rows left");
    const fresh = [
      await node.forward([[7, 7, 8]], { returnCache: true }),
      await capi.forward([[7, 7, 8]], { returnCache: true }),
    ];
    const joined = [
      await joinCaches(left[0], fresh[0]!.cache!),
      await joinCaches(left[1], fresh[1]!.cache!),
    ] as const;
    sameCache(joined[0] as KVCache, joined[1] as NativeKVCache, "joined");
    const last = [
      await node.forward([[1], [2], [3]], { cache: joined[0], logits: "all" }),
      await capi.forward([[1], [2], [3]], { cache: joined[1], logits: "all" }),
    ];
    sameLogits(last[0]!.logits, last[1]!.logits, "after join");
    // Joining with an empty batch returns the other cache itself (callers then must not dispose it twice).
    const empty = await selectCacheRows(joined[1], []);
    assert.equal(await joinCaches(empty, joined[1]), joined[1]);
    joined[1].dispose();
    joined[1].dispose(); // idempotent
  });
});

Deno.test("capi runtime: captures and lens equal the node runtime's", async () => {
  await withModels(async (node, capi) => {
    const rows = [[3, 17, 42, 5], [8, 2]];
    const capture = { positions: [[1, 3], [1]], lensTokenIds: [[[3, 4], [5, 6]], [[7, 8]]] };
    const a = await node.forward(rows, { capture });
    const b = await capi.forward(rows, { capture });
    sameLogits(a.logits, b.logits, "logits");
    for (const key of ["resid", "attnOut", "mlpOut"] as const) {
      a.captures![key].forEach((layer, l) =>
        layer.forEach((row, r) =>
          row.forEach((v, k) => assertClose(v, b.captures![key][l]![r]![k]!, TOL, `${key} ${l}/${r}/${k}`))
        )
      );
    }
    assert.deepEqual(b.captures!.lens, a.captures!.lens);
  });
});

Deno.test("capi runtime: no KV bytes cross into JavaScript per decode step", async () => {
  await withModels(async (_node, capi) => {
    const B = 4, topK = 5;
    let { cache } = await capi.forward(Array.from({ length: B }, (_, b) => [1 + b, 2, 3, 4, 5]), {
      returnCache: true,
    });
    for (let step = 0; step < 3; step++) {
      const before = transfers.toHost;
      const r = await capi.forward(Array.from({ length: B }, () => [step + 1]), {
        cache,
        returnCache: true,
        topK,
      });
      // Exactly the top-k candidates come back: B × k float32 values and int64 ids.
      assert.equal(transfers.toHost - before, B * topK * (4 + 8));
      cache!.dispose();
      cache = r.cache;
    }
    cache!.dispose();
  });
});

Deno.test("capi runtime: a native cache on the node runtime, or mixed joins, fail clearly", async () => {
  await withModels(async (node, capi) => {
    const native = (await capi.forward([[1, 2]], { returnCache: true })).cache!;
    const js = (await node.forward([[1, 2]], { returnCache: true })).cache!;
    await assert.rejects(node.forward([[3]], { cache: native }), /runtime: "capi"/);
    await assert.rejects(joinCaches(native, js), /native KV cache with a JavaScript one/);
    await assert.rejects(
      (native as NativeKVCache).selectRows([1]),
      /row 1 outside \[0, 1\)/,
    );
    native.dispose();
  });
});
