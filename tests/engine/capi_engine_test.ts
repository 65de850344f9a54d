/**
 * The engine on the C API runtime against the onnxruntime-node runtime (the oracle), through prefill,
 * cached decode, rows leaving and joining, hooks and captures; no KV bytes cross into JavaScript per
 * decode step. Two cache modes: `inPlaceCache: false` runs the same graphs as the node runtime (logits
 * ≤ 1e-6 apart, in practice bit-identical; caches equal); the default in-place cache (preallocated,
 * attention over the capacity with unused slots masked) sums the softmax over more (zero) terms, so
 * its logits may differ by float rounding: ≤ 1e-6 relative (|a − b| ≤ 1e-6 · max(1, |a|)).
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

/** The capi cache modes under test: bit-exact concatenation, and in place with a small chunk (growth). */
const MODES = {
  exact: { inPlaceCache: false },
  in_place: { inPlaceCache: true, cacheChunk: 4 },
} as const;
type Mode = keyof typeof MODES;

/** Tolerance of `mode` for values of magnitude around `x`. */
function tolFor(mode: Mode, x: ArrayLike<number>): number {
  if (mode === "exact") return TOL;
  let m = 1;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return TOL * m;
}

async function withModels(
  fn: (node: HookedModel, capi: HookedModel) => Promise<void>,
  mode: Mode = "exact",
): Promise<void> {
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
  const capi = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime: "capi", ...MODES[mode] });
  try {
    await fn(node, capi);
  } finally {
    await node.dispose();
    await capi.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

function sameLogits(a: Float32Array[][], b: Float32Array[][], what: string, mode: Mode = "exact"): void {
  assert.equal(a.length, b.length, `${what}: row count`);
  a.forEach((row, r) => {
    assert.equal(row.length, b[r]!.length, `${what}: positions of row ${r}`);
    row.forEach((l, k) => assertClose(l, b[r]![k]!, tolFor(mode, l), `${what} row ${r} #${k}`));
  });
}

/** The native cache equals the JS one: bit for bit in exact mode, within rounding in place. */
function sameCache(js: KVCache, native: NativeKVCache, what: string, mode: Mode = "exact"): void {
  const host = native.toHost();
  assert.deepEqual(host.mask, js.mask, `${what}: mask`);
  assert.deepEqual(host.nextPositions, js.nextPositions, `${what}: positions`);
  for (let l = 0; l < js.numLayers; l++) {
    if (mode === "exact") {
      assert.deepEqual(host.keys[l], js.keys[l], `${what}: keys of layer ${l}`);
      assert.deepEqual(host.values[l], js.values[l], `${what}: values of layer ${l}`);
    } else {
      assertClose(host.keys[l]!, js.keys[l]!, tolFor(mode, js.keys[l]!), `${what}: keys of layer ${l}`);
      assertClose(
        host.values[l]!,
        js.values[l]!,
        tolFor(mode, js.values[l]!),
        `${what}: values of layer ${l}`,
      );
    }
  }
}

for (const mode of Object.keys(MODES) as Mode[]) {
  Deno.test(`capi runtime (${mode} cache) equals the node runtime: prefill, decode, rows leaving and joining`, async () => {
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
      sameLogits(a0.logits, b0.logits, "prefill", mode);
      assert.ok(a0.cache instanceof KVCache && b0.cache instanceof NativeKVCache);
      sameCache(a0.cache, b0.cache, "prefill cache", mode);

      // Expand (repeat rows), decode, drop a row, join a new prompt, decode again.
      let ca: AnyKVCache = await selectCacheRows(a0.cache, [0, 1, 1, 2]);
      let cb: AnyKVCache = await selectCacheRows(b0.cache, [0, 1, 1, 2]);
      sameCache(ca as KVCache, cb as NativeKVCache, "expanded", mode);
      const decodeIvs: Intervention[] = [
        { hook: "blocks.1.hook_attn_out", op: "scale", value: 0.5 },
        ivs[1]!,
      ];
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
          assertClose(
            sb.topk![i]![0]!.values,
            r[0]!.values,
            tolFor(mode, r[0]!.values),
            `step ${step} row ${i}`,
          );
        });
        cb.dispose();
        ca = sa.cache!;
        cb = sb.cache!;
      }
      const left = [await selectCacheRows(ca, [3, 0]), await selectCacheRows(cb, [3, 0])] as const;
      sameCache(left[0] as KVCache, left[1] as NativeKVCache, "after rows left", mode);
      const fresh = [
        await node.forward([[7, 7, 8]], { returnCache: true }),
        await capi.forward([[7, 7, 8]], { returnCache: true }),
      ];
      const joined = [
        await joinCaches(left[0], fresh[0]!.cache!),
        await joinCaches(left[1], fresh[1]!.cache!),
      ] as const;
      sameCache(joined[0] as KVCache, joined[1] as NativeKVCache, "joined", mode);
      const last = [
        await node.forward([[1], [2], [3]], { cache: joined[0], logits: "all" }),
        await capi.forward([[1], [2], [3]], { cache: joined[1], logits: "all" }),
      ];
      sameLogits(last[0]!.logits, last[1]!.logits, "after join", mode);
      // Joining with an empty batch returns the other cache itself (callers then must not dispose it twice).
      const empty = await selectCacheRows(joined[1], []);
      assert.equal(await joinCaches(empty, joined[1]), joined[1]);
      joined[1].dispose();
      joined[1].dispose(); // idempotent
    }, mode);
  });
}

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

Deno.test("in-place cache: decode writes into the same tensors, grows by chunks, and a reused cache is copied first", async () => {
  await withModels(async (node, capi) => {
    const rows = [[3, 17, 42], [8, 2, 77, 5, 6]];
    const pa = await node.forward(rows, { returnCache: true });
    const pb = await capi.forward(rows, { returnCache: true });
    const start = pb.cache as NativeKVCache;
    // Prefill of 5 slots in chunks of 4: capacity 8.
    assert.equal(start.length, 5);
    assert.equal(start.capacity, 8);
    let ca: AnyKVCache = pa.cache!, cb: AnyKVCache = start;
    const where = (c: AnyKVCache) => Deno.UnsafePointer.value((c as NativeKVCache).keys[0]!.dataPointer());
    const capacities: number[] = [], moved: boolean[] = [];
    for (let step = 0; step < 5; step++) {
      const next = [[10 + step], [20 + step]];
      const before = where(cb), bytes = transfers.toHost;
      const sa = await node.forward(next, { cache: ca, returnCache: true, topK: 3 });
      const sb = await capi.forward(next, { cache: cb, returnCache: true, topK: 3 });
      // Only the top-k candidates come back: 2 rows × 3 × (float32 + int64).
      assert.equal(transfers.toHost - bytes, 2 * 3 * 12);
      sa.topk!.forEach((r, i) => assert.deepEqual(sb.topk![i]![0]!.ids, r[0]!.ids, `step ${step} row ${i}`));
      capacities.push((sb.cache as NativeKVCache).capacity);
      moved.push(where(sb.cache!) !== before);
      if (cb !== start) cb.dispose();
      ca = sa.cache!;
      cb = sb.cache!;
    }
    // Lengths 6, 7, 8 fit in 8 slots (same tensors); 9 grows to 12 (one copy); 10 fits again.
    assert.deepEqual(capacities, [8, 8, 8, 12, 12]);
    assert.deepEqual(moved, [false, false, false, true, false]);
    sameCache(ca as KVCache, cb as NativeKVCache, "after growth", "in_place");

    ca = pa.cache!; // the node cache after prefill, for the branches below
    cb.dispose();
    start.dispose();
    const fresh = (await capi.forward(rows, { returnCache: true })).cache as NativeKVCache;

    // Two continuations of one cache: the first extends `fresh` in place (its tensors are shared); the
    // second must not write over that, so it is copied first, and the first still continues right.
    const first = await capi.forward([[30], [31]], { cache: fresh, returnCache: true });
    assert.equal(where(first.cache!), where(fresh), "the first continuation is written in place");
    const ra = await node.forward([[90], [91]], { cache: ca, returnCache: true, logits: "all" });
    const rb = await capi.forward([[90], [91]], { cache: fresh, returnCache: true, logits: "all" });
    sameLogits(ra.logits, rb.logits, "second continuation of the prefill", "in_place");
    assert.notEqual(where(rb.cache!), where(fresh), "a reused cache is copied, not written over");
    const firstA = await node.forward([[30], [31]], { cache: ca, returnCache: true });
    const la = await node.forward([[1], [2]], { cache: firstA.cache!, logits: "all" });
    const lb = await capi.forward([[1], [2]], { cache: first.cache!, logits: "all" });
    sameLogits(la.logits, lb.logits, "first continuation after the second", "in_place");
    for (const c of [fresh, first.cache!, rb.cache!]) c.dispose();
  }, "in_place");
});

Deno.test("in-place cache: rows leaving and joining keep the capacity; exact caches stay exact", async () => {
  await withModels(async (_node, capi) => {
    const a = (await capi.forward([[1, 2, 3], [4, 5, 6, 7, 8, 9]], { returnCache: true }))
      .cache as NativeKVCache;
    assert.deepEqual([a.length, a.capacity], [6, 8]);
    const left = await a.selectRows([0]); // row 0 has 3 real tokens: 3 leading pad slots dropped
    assert.deepEqual([left.length, left.capacity], [3, 8]);
    const b = (await capi.forward([[7]], { returnCache: true })).cache as NativeKVCache;
    const joined = await left.concat(b);
    assert.deepEqual([joined.length, joined.capacity], [3, 8]);
    assert.deepEqual(Array.from(joined.mask), [1, 1, 1, 0, 0, 1]);
    const exact = await joined.resize(joined.length);
    assert.deepEqual([exact.length, exact.capacity], [3, 3]);
    assert.deepEqual(exact.toHost().keys, joined.toHost().keys);
    const exactLeft = await exact.selectRows([1]);
    assert.deepEqual([exactLeft.length, exactLeft.capacity], [1, 1]);
    for (const c of [a, left, b, joined, exact, exactLeft]) c.dispose();
  }, "in_place");
});
