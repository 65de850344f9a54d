/**
 * Decode-step cost of the two runtimes, interleaved: onnxruntime-node (`node`, the KV cache copied
 * into JavaScript every step) and the C API (`capi`, the cache kept in native OrtValues).
 *
 * `deno run -A lib/bench/capi_decode.ts [--layers 24] [--batch 8] [--contexts 128,2048] [--steps 6]
 * [--rounds 3] [--leak-steps 5000] [--skip-leak]`
 *
 * On a random Qwen2.5-0.5B-shaped checkpoint (fp32, like `deno task bench`) it prints one JSON object:
 * per context, the median decode step time of each runtime (top-50 candidates out, as the generator
 * runs), their ratio, and the host bytes copied per step (KV and other); then, on a tiny model, RSS
 * after 500 and after `--leak-steps` decode steps of continuous-batching generation on the C API.
 * The context is made by filling a cache with random values instead of a prefill (a step's cost
 * depends only on shapes), which keeps the run short.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeRandomCheckpoint } from "../engine/random_checkpoint.ts";
import { HookedModel } from "../engine/hooked_model.ts";
import { KVCache } from "../engine/kv_cache.ts";
import type { AnyKVCache } from "../engine/ort/native_cache.ts";
import { transfers } from "../engine/ort/capi.ts";
import { generate } from "../generate/generate.ts";

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function rssMiB(): number {
  return Deno.memoryUsage().rss / 2 ** 20;
}

/** A cache of `context` real tokens per row, filled with deterministic pseudo-random values. */
function syntheticCache(model: HookedModel, batch: number, context: number): KVCache {
  const { numLayers: L, numKvHeads: kvh, headDim: D } = model.config;
  let x = 12345;
  const fill = () => {
    const a = new Float32Array(batch * kvh * context * D);
    for (let i = 0; i < a.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) | 0;
      a[i] = ((x >>> 8) / 2 ** 24 - 0.5) * 2;
    }
    return a;
  };
  return new KVCache(
    Array.from({ length: L }, fill),
    Array.from({ length: L }, fill),
    new Uint8Array(batch * context).fill(1),
    new Array(batch).fill(context),
    kvh,
    D,
  );
}

/** CPU time (user + system, all threads) of this process in ms, from /proc (10 ms resolution). */
function cpuMs(): number {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

interface Measured {
  wall: number[];
  cpu: number[];
  hostBytes: number[];
}

/**
 * One decode step on `model` from `cache` (which is consumed); records its wall and CPU time and the
 * host bytes copied. Returns the next cache.
 */
async function step(model: HookedModel, cache: AnyKVCache, s: number, m: Measured): Promise<AnyKVCache> {
  const V = model.config.vocabSize, B = cache.batchSize;
  const next = Array.from({ length: B }, (_, b) => [(s * 31 + b * 17 + 5) % V]);
  const before = transfers.toHost + transfers.fromHost;
  const c0 = cpuMs(), t0 = performance.now();
  const r = await model.forward(next, { cache, returnCache: true, variant: "hooked", topK: 50 });
  m.wall.push(performance.now() - t0);
  m.cpu.push(cpuMs() - c0);
  if (model.runtime === "capi") m.hostBytes.push(transfers.toHost + transfers.fromHost - before);
  else {
    // onnxruntime-node copies every fetched output into a new JS buffer: present.* and the top-k.
    const c = r.cache as KVCache;
    const kv = [...c.keys, ...c.values].reduce((a, k) => a + k.byteLength, 0);
    m.hostBytes.push(kv + B * 50 * (4 + 8));
  }
  cache.dispose();
  return r.cache!;
}

/** RSS after 500 and after `total` decode steps of generation (rows finishing and joining). */
async function leakCheck(runtime: "node" | "capi", total: number): Promise<Record<string, number>> {
  const dir = await Deno.makeTempDir({ prefix: "bt-leak-" });
  try {
    await writeRandomCheckpoint(dir, {
      modelType: "qwen2",
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 96,
      vocabSize: 256,
      seed: 3,
    });
    const model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime, threads: 1 });
    const marks: Record<string, number> = {};
    let steps = 0;
    const newTokens = 48, batch = 8;
    const prompts = Array.from(
      { length: Math.ceil((total * batch) / newTokens / 8) + 4 },
      (_, i) => ({ id: i, tokenIds: [1 + (i % 200), 2 + (i % 50), 3, 4 + (i % 7)] }),
    );
    await generate(model, prompts, {
      samplesPerPrompt: 8,
      maxNewTokens: newTokens,
      sampling: { temperature: 1, topK: 20 },
      eosTokenIds: [],
      seed: 1,
      batchSize: batch,
      onStep: () => {
        steps++;
        if (steps === 500 || steps === total || (steps % 2500 === 0 && steps < total)) {
          // With --v8-flags=--expose-gc the JS heap is collected first, so RSS shows native growth.
          (globalThis as { gc?: () => void }).gc?.();
          marks[`rss_mib_at_${steps}`] = Math.round(rssMiB());
        }
      },
    });
    marks.decode_steps = steps;
    await model.dispose();
    return marks;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      layers: { type: "string", default: "24" },
      batch: { type: "string", default: "8" },
      contexts: { type: "string", default: "128,2048" },
      steps: { type: "string", default: "6" },
      rounds: { type: "string", default: "3" },
      "leak-steps": { type: "string", default: "5000" },
      "leak-runtimes": { type: "string", default: "capi" },
      "skip-leak": { type: "boolean", default: false },
      "skip-speed": { type: "boolean", default: false },
    },
  });
  const batch = Number(values.batch), steps = Number(values.steps), rounds = Number(values.rounds);
  const result: Record<string, unknown> = {};
  if (!values["skip-speed"]) {
    const dir = await Deno.makeTempDir({ prefix: "bt-capi-bench-" });
    try {
      await writeRandomCheckpoint(dir, {
        modelType: "qwen2",
        hiddenSize: 896,
        numLayers: Number(values.layers),
        numHeads: 14,
        numKvHeads: 2,
        intermediateSize: 4864,
        vocabSize: 151936,
        tieWordEmbeddings: true,
        seed: 1,
      });
      const models = {
        node: await HookedModel.load(dir, {
          cacheDir: `${dir}/.graphs`,
          runtime: "node",
          variants: ["hooked"],
        }),
        capi: await HookedModel.load(dir, {
          cacheDir: `${dir}/.graphs`,
          runtime: "capi",
          variants: ["hooked"],
        }),
      };
      for (const context of values.contexts.split(",").map(Number)) {
        const m = {
          node: { wall: [], cpu: [], hostBytes: [] } as Measured,
          capi: { wall: [], cpu: [], hostBytes: [] } as Measured,
        };
        const base = syntheticCache(models.node, batch, context);
        for (let r = 0; r < rounds; r++) {
          // Both runtimes start from the same cache; their steps then alternate (order swapped every
          // step) so the load of a shared machine hits both alike. The first step of each is not timed
          // (it wraps the JS cache; on capi the next steps bind native values).
          const warm = { wall: [], cpu: [], hostBytes: [] } as Measured;
          let caches: Record<"node" | "capi", AnyKVCache> = {
            node: await step(models.node, base, 0, warm),
            capi: await step(models.capi, base, 0, warm),
          };
          for (let s = 1; s <= steps; s++) {
            const order = (s + r) % 2 === 0 ? (["node", "capi"] as const) : (["capi", "node"] as const);
            for (const rt of order) {
              caches = { ...caches, [rt]: await step(models[rt], caches[rt], s, m[rt]) };
            }
          }
          caches.node.dispose();
          caches.capi.dispose();
        }
        const ratios = m.capi.wall.map((t, i) => t / m.node.wall[i]!);
        const cpuRatio = median(m.capi.cpu) / median(m.node.cpu);
        const round1 = (x: number) => Math.round(x * 10) / 10;
        result[`context_${context}_batch_${batch}`] = {
          node_step_ms: round1(median(m.node.wall)),
          capi_step_ms: round1(median(m.capi.wall)),
          capi_over_node: Math.round((median(m.capi.wall) / median(m.node.wall)) * 1000) / 1000,
          capi_over_node_median_of_pairs: Math.round(median(ratios) * 1000) / 1000,
          node_cpu_ms: round1(median(m.node.cpu)),
          capi_cpu_ms: round1(median(m.capi.cpu)),
          capi_over_node_cpu: Math.round(cpuRatio * 1000) / 1000,
          node_host_bytes_per_step: median(m.node.hostBytes),
          capi_host_bytes_per_step: median(m.capi.hostBytes),
          node_wall: m.node.wall.map(Math.round),
          capi_wall: m.capi.wall.map(Math.round),
        };
        console.error(JSON.stringify(result[`context_${context}_batch_${batch}`]));
      }
      result.rss_mib_after_speed = Math.round(rssMiB());
      await models.node.dispose();
      await models.capi.dispose();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  if (!values["skip-leak"]) {
    for (const rt of values["leak-runtimes"].split(",") as ("node" | "capi")[]) {
      result[`leak_${rt}`] = await leakCheck(rt, Number(values["leak-steps"]));
      console.error(JSON.stringify(result[`leak_${rt}`]));
    }
  }
  console.log(JSON.stringify(result, null, 2));
}
