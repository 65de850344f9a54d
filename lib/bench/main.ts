/**
 * `deno task bench`: engine throughput on a random checkpoint shaped like Qwen2.5-0.5B.
 *
 * Prints one JSON object: session creation time, peak RSS, prefill tokens/s (128 tokens), decode
 * tokens/s at batch 1, 8 and 32 (context ~128), the hook overhead ratio (decode step time of the
 * hooked graph with neutral hooks / a graph compiled without hook inputs), and the cost of capturing
 * attention patterns (`hook_pattern`, with hook_z and head results) at 1 and 8 query positions of a
 * 1024-token context, as ratios to the same forward pass without captures.
 *
 * Options: `--layers N` (default 24) to shrink the model for a quick run, `--steps N` decode steps per
 * measurement (default 8), `--keep DIR` to build the checkpoint in DIR and keep it, `--only patterns`
 * to run only the pattern-capture measurement, `--reps N` its rounds (default 3).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeRandomCheckpoint } from "../engine/random_checkpoint.ts";
import { HookedModel } from "../engine/hooked_model.ts";
import type { KVCache } from "../engine/kv_cache.ts";
import { generate } from "../generate/generate.ts";

/** Peak resident set size of this process in MiB (Linux VmHWM). */
export function peakRssMiB(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return Deno.memoryUsage().rss / 2 ** 20;
}

/** CPU time (user + system, all threads) of this process in ms, from /proc/self/stat; NaN elsewhere. */
export function processCpuMs(): number {
  try {
    const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timeIt<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, performance.now() - t0];
}

function promptRows(batch: number, length: number, vocab: number, salt = 0): number[][] {
  return Array.from(
    { length: batch },
    (_, b) => Array.from({ length }, (_, t) => (1 + b * 7919 + t * 104729 + salt * 13) % vocab),
  );
}

/**
 * Decode-step times (ms) for `steps` steps after a prefill of `context` tokens at batch `batch`. Each
 * step is what the generator runs: one token per row in, the KV cache and the top-50 candidates out
 * (whole vocabulary rows are not transferred; at batch 32 that transfer alone costs ~75 ms a step).
 */
async function decodeTimes(
  model: HookedModel,
  batch: number,
  context: number,
  steps: number,
  variant: "hooked" | "plain",
): Promise<number[]> {
  const V = model.config.vocabSize;
  let { cache } = await model.forward(promptRows(batch, context, V), { returnCache: true, variant });
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const next = Array.from({ length: batch }, (_, b) => [(s * 31 + b * 17 + 5) % V]);
    const [r, ms] = await timeIt(() =>
      model.forward(next, { cache: cache as KVCache, returnCache: true, variant, topK: 50 })
    );
    cache = r.cache;
    times.push(ms);
  }
  return times;
}

/**
 * Cost of per-head captures at a long context: one forward pass over `context` tokens (batch 1) with
 * no captures ("hooked" graph), with layer-level captures at the query positions ("analysis" graph:
 * residuals, component outputs, logit lens), and with per-head captures too ("heads" graph: patterns of
 * the query positions over all keys, hook_z, head results), at 1 and at 8 query positions. Conditions
 * run interleaved in rotating order, `reps` rounds, medians; session creation is excluded (one warm-up call each). Wall
 * time and this process's CPU time are both reported: on a shared machine the CPU-time ratios are the
 * steadier measure of the extra work.
 */
export async function patternCaptureCost(model: HookedModel, context = 1024, reps = 3) {
  const V = model.config.vocabSize;
  const row = promptRows(1, context, V, 5);
  const queries: Record<string, number[]> = {
    "1": [context - 1],
    "8": Array.from({ length: 8 }, (_, i) => Math.round(((i + 1) * context) / 8) - 1),
  };
  const conditions: Record<string, () => Promise<unknown>> = {
    none: () => model.forward(row),
  };
  for (const [n, qs] of Object.entries(queries)) {
    conditions[`layer_capture_${n}`] = () => model.forward(row, { capture: { positions: [qs] } });
    conditions[`patterns_${n}`] = () => model.forward(row, { capture: { positions: [qs], heads: true } });
  }
  for (const run of Object.values(conditions)) await run(); // sessions created, caches warm
  const wall: Record<string, number[]> = Object.fromEntries(Object.keys(conditions).map((k) => [k, []]));
  const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(conditions).map((k) => [k, []]));
  const entries = Object.entries(conditions);
  for (let rep = 0; rep < reps; rep++) {
    // Each round starts one condition later, so no condition always follows the same one.
    for (let j = 0; j < entries.length; j++) {
      const [name, run] = entries[(rep + j) % entries.length]!;
      const c0 = processCpuMs();
      wall[name]!.push((await timeIt(run))[1]);
      cpu[name]!.push(processCpuMs() - c0);
    }
  }
  const summary = (times: Record<string, number[]>) => {
    const ms = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
    return {
      median_ms: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, round(v)])),
      ratio_to_no_capture: Object.fromEntries(
        Object.entries(ms).filter(([k]) => k !== "none").map(([k, v]) => [k, round(v / ms.none!, 3)]),
      ),
      patterns_vs_layer_capture: {
        "1": round(ms.patterns_1! / ms.layer_capture_1!, 3),
        "8": round(ms.patterns_8! / ms.layer_capture_8!, 3),
      },
    };
  };
  return { context, query_positions_8: queries["8"], reps, wall: summary(wall), cpu: summary(cpu) };
}

async function benchModel(dir: string, layers: number): Promise<number> {
  const [, buildMs] = await timeIt(() =>
    writeRandomCheckpoint(dir, {
      modelType: "qwen2",
      hiddenSize: 896,
      numLayers: layers,
      numHeads: 14,
      numKvHeads: 2,
      intermediateSize: 4864,
      vocabSize: 151936,
      tieWordEmbeddings: true,
      seed: 1,
    })
  );
  return buildMs;
}

/** Run the benchmark and return its figures. */
export async function runBench(
  options: {
    layers?: number;
    steps?: number;
    keep?: string;
    generationBatches?: readonly number[];
    newTokens?: number;
    /** Run only one part ("patterns": the pattern-capture cost). */
    only?: "patterns";
    /** Rounds of the pattern-capture measurement (default 3). */
    patternReps?: number;
  } = {},
) {
  const layers = options.layers ?? 24, steps = options.steps ?? 8;
  const dir = options.keep ?? await Deno.makeTempDir({ prefix: "bt-bench-" });
  try {
    const buildMs = await benchModel(dir, layers);
    const [model, loadMs] = await timeIt(() => HookedModel.load(dir, { cacheDir: `${dir}/.graphs` }));
    if (options.only === "patterns") {
      const patterns = await patternCaptureCost(model, 1024, options.patternReps ?? 3);
      await model.dispose();
      return {
        model: { shape: "Qwen2.5-0.5B (random weights, fp32)", layers, device: model.device.used },
        pattern_capture: patterns,
        threads: navigator.hardwareConcurrency,
      };
    }
    const [, hookedSessionMs] = await timeIt(() => model.session("hooked"));
    const [, plainSessionMs] = await timeIt(() => model.session("plain"));

    // Prefill: 128 tokens at batch 1 (warm-up first).
    const V = model.config.vocabSize;
    await model.forward(promptRows(1, 16, V, 1));
    const prefillMs = median(
      await Promise.all([0, 1, 2].map((i) => i)).then(async (idx) => {
        const out: number[] = [];
        for (const i of idx) out.push((await timeIt(() => model.forward(promptRows(1, 128, V, i))))[1]);
        return out;
      }),
    );

    const decode: Record<string, { step_ms: number; tokens_per_s: number }> = {};
    // Batches measured in turn, three rounds, medians over all steps: the VM's drift then hits every
    // batch size alike instead of skewing their ratio.
    const stepTimes: Record<number, number[]> = { 1: [], 8: [], 32: [] };
    for (let rep = 0; rep < 3; rep++) {
      for (const batch of [1, 8, 32]) {
        stepTimes[batch]!.push(...await decodeTimes(model, batch, 128, steps, "hooked"));
      }
    }
    for (const batch of [1, 8, 32]) {
      const t = median(stepTimes[batch]!);
      decode[`batch_${batch}`] = { step_ms: round(t), tokens_per_s: round((batch * 1000) / t) };
    }

    // Hook overhead: interleave hooked and plain runs so drift affects both alike.
    const hooked: number[] = [], plain: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      hooked.push(...await decodeTimes(model, 1, 128, steps, "hooked"));
      plain.push(...await decodeTimes(model, 1, 128, steps, "plain"));
    }
    const overhead = median(hooked) / median(plain);

    // End-to-end generation vs the raw decode loop over the same steps (same prompts, same batch).
    const generation: Record<string, unknown> = {};
    for (const batch of options.generationBatches ?? [8, 32]) {
      const newTokens = options.newTokens ?? 128;
      const prompts = promptRows(batch, 16, V, 3).map((tokenIds, i) => ({ id: i, tokenIds }));
      const [, rawMs] = await timeIt(async () => {
        let r = await model.forward(prompts.map((p) => p.tokenIds), { returnCache: true, topK: 50 });
        for (let s = 1; s < newTokens; s++) {
          const next = Array.from({ length: batch }, (_, b) => [(s * 31 + b * 17 + 5) % V]);
          r = await model.forward(next, { cache: r.cache!, returnCache: true, topK: 50 });
        }
      });
      const [samples, genMs] = await timeIt(() =>
        generate(model, prompts, {
          maxNewTokens: newTokens,
          sampling: { temperature: 0.7, topP: 0.95, topK: 50 },
          eosTokenIds: [],
          seed: 1,
          batchSize: batch,
        })
      );
      const tokens = samples.reduce((n, s) => n + s.tokenIds.length, 0);
      generation[`batch_${batch}`] = {
        new_tokens: newTokens,
        generate_tokens_per_s: round((tokens * 1000) / genMs),
        raw_decode_loop_tokens_per_s: round((batch * newTokens * 1000) / rawMs),
        ratio_to_raw: round(rawMs / genMs, 3),
      };
    }
    const patterns = await patternCaptureCost(model, 1024, options.patternReps ?? 3);
    await model.dispose();
    return {
      model: { shape: "Qwen2.5-0.5B (random weights, fp32)", layers, device: model.device.used },
      checkpoint_build_s: round(buildMs / 1000),
      load_s: round(loadMs / 1000),
      session_creation_s: { hooked: round(hookedSessionMs / 1000), plain: round(plainSessionMs / 1000) },
      peak_rss_mib: Math.round(peakRssMiB()),
      prefill_128_tokens_per_s: round((128 * 1000) / prefillMs),
      decode_context_128: decode,
      batch32_vs_batch1_throughput: round(decode.batch_32!.tokens_per_s / decode.batch_1!.tokens_per_s),
      hook_overhead_ratio: round(overhead, 4),
      hook_overhead_detail_ms: { hooked_median: round(median(hooked)), plain_median: round(median(plain)) },
      generation_sampling_t0_7_top_p_0_95_top_k_50: generation,
      pattern_capture: patterns,
      threads: navigator.hardwareConcurrency,
    };
  } finally {
    if (!options.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function parseOnly(value: string): "patterns" {
  if (value !== "patterns") {
    throw new RangeError(`--only ${value}: the only part that runs alone is "patterns"`);
  }
  return value;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      layers: { type: "string" },
      steps: { type: "string" },
      keep: { type: "string" },
      only: { type: "string" },
      reps: { type: "string" },
    },
  });
  const result = await runBench({
    ...(values.layers ? { layers: Number(values.layers) } : {}),
    ...(values.steps ? { steps: Number(values.steps) } : {}),
    ...(values.keep ? { keep: values.keep } : {}),
    ...(values.only ? { only: parseOnly(values.only) } : {}),
    ...(values.reps ? { patternReps: Number(values.reps) } : {}),
  });
  console.log(JSON.stringify(result, null, 2));
}
