/**
 * The two runtimes side by side, interleaved in one process: onnxruntime-node (`node`, the KV cache
 * copied into JavaScript every step) and the C API (`capi`, the cache kept in native OrtValues,
 * updated in place by default). Used by `deno task bench` (lib/bench/main.ts); also runs alone:
 *
 * `deno run -A lib/bench/capi_decode.ts [--layers 24] [--cells 128x1,2048x8] [--steps 6] [--rounds 2]
 * [--in-place off]` (off: the capi runtime with the concatenating graphs, for comparison)
 *
 * Decode cells start from a synthetic cache of `context` real tokens per row (deterministic
 * pseudo-random values instead of a prefill: a step's cost depends only on shapes), which keeps the
 * run short. Every step is what the generator runs: one token per row in, the top-50 candidates out.
 *
 * Separate processes (`probe*` functions, run through {@link runProbe}) measure memory and leaks, so
 * the synthetic caches of the speed cells do not show in their RSS.
 *
 * @module
 */

import { writeRandomCheckpoint } from "../engine/random_checkpoint.ts";
import { HookedModel } from "../engine/hooked_model.ts";
import { KVCache } from "../engine/kv_cache.ts";
import type { AnyKVCache } from "../engine/ort/native_cache.ts";
import { transfers } from "../engine/ort/capi.ts";
import { generate } from "../generate/generate.ts";
import { type CliIO, consoleIO, defineCli, parseOrHelp, UsageError, usageError } from "../util/cli.ts";

/** The shape of Qwen2.5-0.5B (random weights, fp32): 0.494 B parameters, 1.98 GB. */
export const QWEN_05B_SHAPE = {
  modelType: "qwen2",
  hiddenSize: 896,
  numHeads: 14,
  numKvHeads: 2,
  intermediateSize: 4864,
  vocabSize: 151936,
  tieWordEmbeddings: true,
  seed: 1,
} as const;

/** Write the bench checkpoint (Qwen2.5-0.5B shape with `layers` layers) into `dir`. */
export async function writeBenchCheckpoint(dir: string, layers: number): Promise<void> {
  await writeRandomCheckpoint(dir, { ...QWEN_05B_SHAPE, numLayers: layers });
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Resident set size now, and its peak (Linux VmRSS / VmHWM), in MiB. */
export function rssMiB(): { rss: number; peak: number } {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
    return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
  } catch {
    const rss = Deno.memoryUsage().rss / 2 ** 20;
    return { rss, peak: rss };
  }
}

/** CPU time (user + system, all threads) of this process in ms, from /proc (10 ms resolution). */
export function cpuMs(): number {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

/** Bytes of the checkpoint's weight files in `dir` (*.safetensors). */
export function weightBytes(dir: string): number {
  let total = 0;
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile && e.name.endsWith(".safetensors")) total += Deno.statSync(`${dir}/${e.name}`).size;
  }
  return total;
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

interface Measured {
  wall: number[];
  cpu: number[];
  hostBytes: number[];
}
const measured = (): Measured => ({ wall: [], cpu: [], hostBytes: [] });

/**
 * One decode step on `model` from `cache` (consumed unless it is `keep`); records wall and CPU time and
 * the host bytes copied (both directions). Returns the next cache.
 */
async function step(
  model: HookedModel,
  cache: AnyKVCache,
  s: number,
  m: Measured,
  keep?: AnyKVCache,
): Promise<AnyKVCache> {
  const V = model.config.vocabSize, B = cache.batchSize;
  const next = Array.from({ length: B }, (_, b) => [(s * 31 + b * 17 + 5) % V]);
  const before = transfers.toHost + transfers.fromHost;
  const c0 = cpuMs(), t0 = performance.now();
  const r = await model.forward(next, { cache, returnCache: true, variant: "hooked", topK: 50 });
  m.wall.push(performance.now() - t0);
  m.cpu.push(cpuMs() - c0);
  if (model.runtime === "capi") m.hostBytes.push(transfers.toHost + transfers.fromHost - before);
  else {
    // onnxruntime-node copies every fetched output (present.* and the top-k) into JavaScript.
    const c = r.cache as KVCache, kv = [...c.keys, ...c.values].reduce((a, k) => a + k.byteLength, 0);
    m.hostBytes.push(kv + B * 50 * (4 + 8));
  }
  if (cache !== keep) cache.dispose();
  return r.cache!;
}

/** Figures of one decode cell. */
export interface DecodeCell {
  readonly context: number;
  readonly batch: number;
  readonly node_tokens_per_s: number;
  readonly capi_tokens_per_s: number;
  /** Median step time of capi ÷ node (wall), and the median of the per-pair ratios. */
  readonly capi_over_node: number;
  readonly capi_over_node_pairs: number;
  /** The same ratio on process CPU time (steadier on a shared machine). */
  readonly capi_over_node_cpu: number;
  readonly node_step_ms: number;
  readonly capi_step_ms: number;
  /** Host bytes copied per decode step (KV, tokens, masks, top-k). */
  readonly node_host_bytes_per_step: number;
  readonly capi_host_bytes_per_step: number;
}

/**
 * Decode steps of both runtimes from the same context, interleaved step by step (order swapped every
 * step and round), `rounds` × `steps` timed steps each. The first step of a round is not timed (it
 * copies the synthetic JS cache into the runtime's form).
 */
export async function decodeCell(
  models: { node: HookedModel; capi: HookedModel },
  context: number,
  batch: number,
  steps: number,
  rounds: number,
): Promise<DecodeCell> {
  const m = { node: measured(), capi: measured() };
  const base = syntheticCache(models.node, batch, context);
  for (let r = 0; r < rounds; r++) {
    const warm = measured();
    let caches: Record<"node" | "capi", AnyKVCache> = {
      node: await step(models.node, base, 0, warm, base),
      capi: await step(models.capi, base, 0, warm, base),
    };
    for (let s = 1; s <= steps; s++) {
      const order = (s + r) % 2 === 0 ? (["node", "capi"] as const) : (["capi", "node"] as const);
      for (const rt of order) caches = { ...caches, [rt]: await step(models[rt], caches[rt], s, m[rt]) };
    }
    caches.node.dispose();
    caches.capi.dispose();
  }
  const pairs = m.capi.wall.map((t, i) => t / m.node.wall[i]!);
  const node = median(m.node.wall), capi = median(m.capi.wall);
  return {
    context,
    batch,
    node_tokens_per_s: round((batch * 1000) / node),
    capi_tokens_per_s: round((batch * 1000) / capi),
    capi_over_node: round(capi / node, 3),
    capi_over_node_pairs: round(median(pairs), 3),
    capi_over_node_cpu: round(median(m.capi.cpu) / median(m.node.cpu), 3),
    node_step_ms: round(node),
    capi_step_ms: round(capi),
    node_host_bytes_per_step: median(m.node.hostBytes),
    capi_host_bytes_per_step: median(m.capi.hostBytes),
  };
}

/** Prefill of `length` tokens at batch 1 on both runtimes, interleaved, `reps` rounds: tokens/s. */
export async function prefillCell(
  models: { node: HookedModel; capi: HookedModel },
  length: number,
  reps: number,
): Promise<Record<string, number>> {
  const V = models.node.config.vocabSize;
  const row = [Array.from({ length }, (_, t) => (1 + t * 104729) % V)];
  const wall = { node: [] as number[], capi: [] as number[] };
  for (const rt of ["node", "capi"] as const) await models[rt].forward(row.map((r) => r.slice(0, 16)));
  for (let rep = 0; rep < reps; rep++) {
    for (const rt of rep % 2 === 0 ? (["node", "capi"] as const) : (["capi", "node"] as const)) {
      const t0 = performance.now();
      await models[rt].forward(row, { topK: 50 });
      wall[rt].push(performance.now() - t0);
    }
  }
  const node = median(wall.node), capi = median(wall.capi);
  return {
    length,
    node_tokens_per_s: round((length * 1000) / node),
    capi_tokens_per_s: round((length * 1000) / capi),
    capi_over_node: round(capi / node, 3),
  };
}

/**
 * Memory probe (run in its own process): load the model on one runtime, prefill 512 tokens, then 16
 * decode steps at batch 8 from a 512-token prompt; report the weight bytes, RSS after loading and the
 * peak RSS, and the time of the prefill and of a decode step (the cost side of a memory-lean setting).
 */
export async function probeMemory(
  dir: string,
  runtime: "node" | "capi",
  prepack: boolean,
): Promise<Record<string, number | string | boolean>> {
  const before = rssMiB().rss;
  const model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime, prepack });
  await model.session("hooked");
  const loaded = rssMiB().rss;
  const V = model.config.vocabSize;
  const prompt = (b: number) => Array.from({ length: 512 }, (_, t) => (1 + b * 7919 + t * 104729) % V);
  const t0 = performance.now();
  await model.forward([prompt(0)], { topK: 50 });
  const prefillMs = performance.now() - t0;
  let { cache } = await model.forward(Array.from({ length: 8 }, (_, b) => prompt(b)), {
    returnCache: true,
    topK: 50,
  });
  const times: number[] = [];
  for (let s = 0; s < 16; s++) {
    const next = Array.from({ length: 8 }, (_, b) => [(s * 31 + b * 17 + 5) % V]);
    const t = performance.now();
    const r = await model.forward(next, { cache: cache!, returnCache: true, topK: 50 });
    times.push(performance.now() - t);
    cache!.dispose();
    cache = r.cache;
  }
  cache!.dispose();
  const weights = weightBytes(dir) / 2 ** 20;
  const { peak } = rssMiB();
  await model.dispose();
  return {
    runtime,
    prepack,
    weights_mib: Math.round(weights),
    rss_before_load_mib: Math.round(before),
    rss_after_load_mib: Math.round(loaded),
    peak_rss_mib: Math.round(peak),
    peak_rss_over_weights: round(peak / weights, 2),
    prefill_512_ms: Math.round(prefillMs),
    decode_step_ms_batch_8_context_512: round(median(times)),
  };
}

/**
 * Leak probe (run in its own process): continuous-batching generation (rows finishing and joining,
 * sampling) on the capi runtime for `total` decode steps on a model of ~120 MB of weights (big enough
 * that the JS heap's warm-up is not the signal), RSS recorded after 500 steps and then every 500.
 * With `--v8-flags=--expose-gc` the JS heap is collected before each reading.
 */
export async function probeLeak(total: number, runtime: "node" | "capi" = "capi") {
  const dir = await Deno.makeTempDir({ prefix: "bt-leak-" });
  try {
    await writeRandomCheckpoint(dir, {
      modelType: "qwen2",
      hiddenSize: 512,
      numLayers: 4,
      numHeads: 8,
      numKvHeads: 2,
      intermediateSize: 1024,
      vocabSize: 40000,
      tieWordEmbeddings: true,
      seed: 3,
    });
    const model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime, threads: 1 });
    const marks: Record<string, number> = {};
    const heap: Record<string, number> = {};
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
        if (steps % 500 === 0 && steps <= total) {
          (globalThis as { gc?: () => void }).gc?.();
          marks[steps] = Math.round(rssMiB().rss);
          heap[steps] = Math.round(Deno.memoryUsage().heapUsed / 2 ** 20);
        }
      },
    });
    await model.dispose();
    const first = marks[500]!, last = marks[total] ?? marks[Math.floor(steps / 500) * 500]!;
    return {
      runtime,
      weights_mib: Math.round(weightBytes(dir) / 2 ** 20),
      decode_steps: steps,
      rss_mib_by_step: marks,
      js_heap_used_mib_by_step: heap,
      rss_last_over_500: round(last / first, 3),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Run a probe of this module in a fresh process (so earlier allocations do not show in its RSS) and
 * return the JSON it prints.
 * @throws {Error} with the probe's stderr when it fails.
 */
export async function runProbe(args: readonly string[]): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--v8-flags=--expose-gc", new URL(import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`Probe ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return JSON.parse(text);
}

/** Parse "128x1,2048x8" into cells. @throws {RangeError} naming the bad cell. */
export function parseCells(spec: string): { context: number; batch: number }[] {
  return spec.split(",").map((c) => {
    const m = /^(\d+)x(\d+)$/.exec(c.trim());
    if (!m) throw new RangeError(`Decode cell "${c}": write CONTEXTxBATCH, e.g. 2048x8`);
    return { context: Number(m[1]), batch: Number(m[2]) };
  });
}

/** The command line of this module: the option table its parser uses and its `--help`. */
export const CAPI_DECODE_CLI = defineCli({
  command: "deno run -A lib/bench/capi_decode.ts",
  summary: "Decode speed of the two runtimes side by side (onnxruntime-node and the C API), interleaved " +
    "in one process, on a random Qwen2.5-0.5B-shaped checkpoint; one JSON line per cell. Also the memory " +
    "and leak probes that `deno task bench` runs in their own processes.",
  options: {
    layers: { type: "string", arg: "N", help: "Decoder layers of the model.", default: "24" },
    cells: {
      type: "string",
      arg: "CxB,...",
      help: "Decode cells as CONTEXTxBATCH, comma-separated.",
      default: "128x8,2048x8",
    },
    steps: { type: "string", arg: "N", help: "Timed decode steps per runtime and round.", default: "6" },
    rounds: { type: "string", arg: "N", help: "Interleaved rounds per cell.", default: "2" },
    "in-place": {
      type: "string",
      arg: "on|off",
      help:
        "off: the capi runtime with the concatenating graphs (KV cache not updated in place), for comparison.",
      default: "on",
    },
    probe: {
      type: "string",
      arg: "memory|leak",
      help: "Run one probe instead and print its JSON (used by deno task bench).",
    },
    dir: {
      type: "string",
      arg: "DIR",
      help: "The checkpoint of the memory probe (required with --probe memory).",
    },
    runtime: { type: "string", arg: "node|capi", help: "The runtime of a probe.", default: "capi" },
    prepack: { type: "string", arg: "on|off", help: "Weight prepacking in the memory probe.", default: "on" },
    "leak-steps": { type: "string", arg: "N", help: "Decode steps of the leak probe.", default: "5000" },
  },
  details: ["Exit status: 0 done, 1 failed, 2 bad usage."],
  examples: ["deno run -A lib/bench/capi_decode.ts --layers 4 --cells 128x1,2048x8 --in-place off"],
});

/**
 * Run from a command line (see {@linkcode CAPI_DECODE_CLI}).
 *
 * @returns The exit status: 0 done or help printed, 2 bad usage; a failing measurement throws.
 */
export async function main(args: readonly string[], io: CliIO = consoleIO): Promise<number> {
  let parsed;
  try {
    parsed = parseOrHelp(CAPI_DECODE_CLI, args, io);
    if (parsed.help) return 0;
    const v = parsed.values;
    for (const name of ["layers", "steps", "rounds", "leak-steps"] as const) {
      if (v[name] !== undefined && !/^[1-9]\d*$/.test(v[name])) {
        throw usageError(CAPI_DECODE_CLI, `--${name} must be a positive integer, got "${v[name]}"`);
      }
    }
    const choices = {
      probe: ["memory", "leak"],
      runtime: ["node", "capi"],
      prepack: ["on", "off"],
      "in-place": ["on", "off"],
    };
    for (const [name, allowed] of Object.entries(choices)) {
      const given = v[name as keyof typeof choices];
      if (given !== undefined && !allowed.includes(given)) {
        throw usageError(CAPI_DECODE_CLI, `--${name} must be ${allowed.join(" or ")}, got "${given}"`);
      }
    }
    if (v.probe === "memory" && v.dir === undefined) {
      throw usageError(CAPI_DECODE_CLI, "--probe memory needs --dir");
    }
    if (v.cells !== undefined) {
      try {
        parseCells(v.cells);
      } catch (e) {
        throw usageError(CAPI_DECODE_CLI, `--cells: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`capi_decode: ${e.message}`);
    return 2;
  }
  const given = parsed.values;
  const values = {
    layers: given.layers ?? "24",
    cells: given.cells ?? "128x8,2048x8",
    steps: given.steps ?? "6",
    rounds: given.rounds ?? "2",
    probe: given.probe,
    dir: given.dir,
    runtime: given.runtime ?? "capi",
    prepack: given.prepack ?? "on",
    "leak-steps": given["leak-steps"] ?? "5000",
    "in-place": given["in-place"] ?? "on",
  };
  const runtime = values.runtime === "node" ? "node" : "capi";
  if (values.probe === "memory") {
    io.out(JSON.stringify(await probeMemory(values.dir!, runtime, values.prepack !== "off")));
  } else if (values.probe === "leak") {
    io.out(JSON.stringify(await probeLeak(Number(values["leak-steps"]), runtime)));
  } else {
    const dir = await Deno.makeTempDir({ prefix: "bt-capi-bench-" });
    try {
      await writeBenchCheckpoint(dir, Number(values.layers));
      const load = (rt: "node" | "capi") =>
        HookedModel.load(dir, {
          cacheDir: `${dir}/.graphs`,
          runtime: rt,
          variants: ["hooked"],
          inPlaceCache: values["in-place"] !== "off",
        });
      const models = { node: await load("node"), capi: await load("capi") };
      for (const c of parseCells(values.cells)) {
        const r = await decodeCell(models, c.context, c.batch, Number(values.steps), Number(values.rounds));
        io.out(JSON.stringify(r));
      }
      await models.node.dispose();
      await models.capi.dispose();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
