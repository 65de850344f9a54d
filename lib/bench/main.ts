/**
 * `deno task bench`: the engine's two ONNX Runtime bindings on a random checkpoint shaped like
 * Qwen2.5-0.5B (fp32), interleaved in one run: onnxruntime-node (`node`) and the C API (`capi`, the KV
 * cache native and updated in place).
 *
 * Prints a table and one JSON object (stdout): decode tokens/s of both and their ratio at contexts 128
 * (batch 1, 8, 32), 1024 and 2048 (batch 1, 8); prefill 512 tokens/s; host bytes copied per decode
 * step; peak RSS against the weight bytes per runtime and with prepacking off (the memory-lean
 * setting, with its cost), each in its own process; RSS after 500 and after 5,000 decode steps of
 * continuous-batching generation (leak check, own process).
 *
 * Options: `--parts runtimes,memory,leak` (default all three; `engine` adds the older hook-overhead,
 * generation and pattern-capture figures), `--cells 128x1,2048x8` (decode cells CONTEXTxBATCH),
 * `--steps N` timed decode steps per runtime and round (default 6), `--rounds N` (default 2),
 * `--layers N` (default 24) to shrink the model, `--leak-steps N` (default 5000), `--quick` (cells
 * 128x8,2048x8, 3 steps, 1 round, 1,000 leak steps: a few minutes on 2 cores), `--keep DIR` to build
 * the checkpoint in DIR and keep it; `--only patterns` (with `--reps N`) runs only the pattern-capture
 * measurement. The full run takes about 10 minutes on 2 cores. `--help` lists the options (from the table
 * {@linkcode BENCH_CLI} the parser uses).
 *
 * @module
 */

import { HookedModel } from "../engine/hooked_model.ts";
import type { KVCache } from "../engine/kv_cache.ts";
import { generate } from "../generate/generate.ts";
import {
  type DecodeCell,
  decodeCell,
  parseCells,
  prefillCell,
  rssMiB,
  runProbe,
  weightBytes,
  writeBenchCheckpoint,
} from "./capi_decode.ts";
import { type CliIO, consoleIO, defineCli, parseOrHelp, UsageError, usageError } from "../util/cli.ts";

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

/** The decode cells of the issue: contexts 128 (batch 1, 8, 32), 1024 and 2048 (batch 1, 8). */
export const DEFAULT_CELLS = "128x1,128x8,128x32,1024x1,1024x8,2048x1,2048x8";

/** Options of {@link runBench}. */
export interface BenchOptions {
  readonly parts?: readonly ("runtimes" | "memory" | "leak" | "engine")[];
  readonly cells?: string;
  readonly steps?: number;
  readonly rounds?: number;
  readonly layers?: number;
  readonly leakSteps?: number;
  readonly keep?: string;
}

/**
 * The runtime comparison of `deno task bench` (see the module doc).
 * @returns the figures; `table` is a printable summary.
 */
export async function runBench(options: BenchOptions = {}) {
  const parts = new Set(options.parts ?? ["runtimes", "memory", "leak"]);
  const layers = options.layers ?? 24;
  const dir = options.keep ?? await Deno.makeTempDir({ prefix: "bt-bench-" });
  const result: Record<string, unknown> = {
    model: { shape: "Qwen2.5-0.5B (random weights, fp32)", layers, weights_mib: 0 },
    threads: navigator.hardwareConcurrency,
  };
  const lines: string[] = [];
  try {
    await writeBenchCheckpoint(dir, layers);
    (result.model as Record<string, unknown>).weights_mib = Math.round(weightBytes(dir) / 2 ** 20);
    if (parts.has("runtimes")) {
      const load = (runtime: "node" | "capi") =>
        HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime, variants: ["hooked"] });
      const models = { node: await load("node"), capi: await load("capi") };
      const cells: DecodeCell[] = [];
      lines.push(
        "decode (tokens/s)      node      capi   capi÷node (wall / cpu)   host bytes/step node → capi",
      );
      for (const c of parseCells(options.cells ?? DEFAULT_CELLS)) {
        const r = await decodeCell(models, c.context, c.batch, options.steps ?? 6, options.rounds ?? 2);
        cells.push(r);
        const line = `ctx ${String(r.context).padStart(4)} batch ${String(r.batch).padStart(2)}  ${
          r.node_tokens_per_s.toFixed(1).padStart(8)
        }  ${r.capi_tokens_per_s.toFixed(1).padStart(8)}   ${r.capi_over_node.toFixed(3)} / ${
          r.capi_over_node_cpu.toFixed(3)
        }            ${r.node_host_bytes_per_step} → ${r.capi_host_bytes_per_step}`;
        lines.push(line);
        console.error(line);
      }
      const prefill = await prefillCell(models, 512, 3);
      lines.push(
        `prefill 512 (batch 1)  ${String(prefill.node_tokens_per_s).padStart(8)}  ${
          String(prefill.capi_tokens_per_s).padStart(8)
        }   ${prefill.capi_over_node}`,
      );
      result.decode = cells;
      result.prefill_512 = prefill;
      result.peak_rss_mib_both_runtimes_and_synthetic_caches = Math.round(rssMiB().peak);
      await models.node.dispose();
      await models.capi.dispose();
    }
    if (parts.has("memory")) {
      const memory = [];
      for (const [runtime, prepack] of [["node", "on"], ["capi", "on"], ["capi", "off"]] as const) {
        const r = await runProbe([
          "--probe",
          "memory",
          "--dir",
          dir,
          "--runtime",
          runtime,
          "--prepack",
          prepack,
        ]);
        memory.push(r);
        const line =
          `memory ${runtime} prepack ${prepack}: peak RSS ${r.peak_rss_mib} MiB = ${r.peak_rss_over_weights}× weights (${r.weights_mib} MiB); prefill 512 ${r.prefill_512_ms} ms, decode step (b8, ctx 512) ${r.decode_step_ms_batch_8_context_512} ms`;
        lines.push(line);
        console.error(line);
      }
      result.memory = memory;
    }
    if (parts.has("leak")) {
      const leak = await runProbe(["--probe", "leak", "--leak-steps", String(options.leakSteps ?? 5000)]);
      result.leak = leak;
      lines.push(
        `leak (capi, ${leak.decode_steps} decode steps, ${leak.weights_mib} MiB model): RSS by step ${
          JSON.stringify(leak.rss_mib_by_step)
        } MiB; last ÷ step 500 = ${leak.rss_last_over_500}`,
      );
    }
    if (parts.has("engine")) result.engine = await runEngineBench({ layers, keep: dir });
  } finally {
    if (!options.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return { ...result, table: lines };
}

/**
 * The engine's other figures (one runtime, the default): session creation, prefill 128, decode at
 * context 128, hook overhead, generation vs the raw decode loop, pattern-capture cost.
 */
export async function runEngineBench(
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
    const buildMs = options.keep && weightBytes(dir) > 0
      ? 0
      : (await timeIt(() => writeBenchCheckpoint(dir, layers)))[1];
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

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** `deno task bench`: the option table its parser uses and its `--help`. */
export const BENCH_CLI = defineCli({
  command: "deno task bench",
  summary: "Benchmark the engine's two ONNX Runtime bindings (onnxruntime-node and the C API) on a random " +
    "checkpoint shaped like Qwen2.5-0.5B (fp32). Prints a table and one JSON object: decode tokens/s per " +
    "context and batch, prefill, host bytes copied per step, peak RSS, RSS growth over long generation.",
  options: {
    parts: {
      type: "string",
      arg: "LIST",
      help: "Comma-separated parts: runtimes (decode/prefill speed), memory (peak RSS, own process), leak " +
        "(RSS over long generation, own process), engine (hook overhead, generation, pattern capture).",
      default: "runtimes,memory,leak",
    },
    cells: {
      type: "string",
      arg: "CxB,...",
      help: "Decode cells as CONTEXTxBATCH, comma-separated.",
      default: `${DEFAULT_CELLS} (--quick: 128x8,2048x8)`,
    },
    steps: {
      type: "string",
      arg: "N",
      help: "Timed decode steps per runtime and round.",
      default: "6 (--quick: 3)",
    },
    rounds: { type: "string", arg: "N", help: "Interleaved rounds per cell.", default: "2 (--quick: 1)" },
    layers: {
      type: "string",
      arg: "N",
      help: "Decoder layers of the model (fewer = faster).",
      default: "24",
    },
    "leak-steps": {
      type: "string",
      arg: "N",
      help: "Decode steps of the leak check.",
      default: "5000 (--quick: 1000)",
    },
    quick: { type: "boolean", help: "The short run: the --quick defaults above (a few minutes on 2 cores)." },
    keep: {
      type: "string",
      arg: "DIR",
      help: "Build the checkpoint in DIR and keep it (reused by the next run).",
      default: "a temporary folder, removed",
    },
    only: {
      type: "string",
      arg: "patterns",
      help: "Run one measurement alone; the only one is patterns (the pattern-capture cost).",
    },
    reps: { type: "string", arg: "N", help: "Rounds of the pattern-capture measurement.", default: "3" },
  },
  details: ["The full run takes about 10 minutes on 2 cores. Exit status: 0 done, 1 failed, 2 bad usage."],
  examples: ["deno task bench --quick", "deno task bench --parts runtimes --cells 2048x8 --layers 4"],
});

/**
 * Run the benchmark from a command line.
 *
 * @param args The options (see {@linkcode BENCH_CLI}).
 * @param io Where the table, the JSON and usage errors go.
 * @returns The exit status: 0 done or help printed, 2 bad usage; a failing benchmark throws.
 */
export async function main(args: readonly string[], io: CliIO = consoleIO): Promise<number> {
  let parsed;
  try {
    parsed = parseOrHelp(BENCH_CLI, args, io);
    if (parsed.help) return 0;
    for (const name of ["steps", "rounds", "layers", "leak-steps", "reps"] as const) {
      const v = parsed.values[name];
      if (v !== undefined && !/^[1-9]\d*$/.test(v)) {
        throw usageError(BENCH_CLI, `--${name} must be a positive integer, got "${v}"`);
      }
    }
    const only = parsed.values.only;
    if (only !== undefined && only !== "patterns") {
      throw usageError(BENCH_CLI, `--only ${only}: the only part that runs alone is "patterns"`);
    }
    for (const p of parsed.values.parts?.split(",") ?? []) {
      if (!["runtimes", "memory", "leak", "engine"].includes(p)) {
        throw usageError(BENCH_CLI, `--parts: unknown part "${p}" (runtimes, memory, leak, engine)`);
      }
    }
    if (parsed.values.cells !== undefined) {
      try {
        parseCells(parsed.values.cells);
      } catch (e) {
        throw usageError(BENCH_CLI, `--cells: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`bench: ${e.message}`);
    return 2;
  }
  const values = parsed.values;
  const num = (v: string | undefined, fallback: number) => (v === undefined ? fallback : Number(v));
  if (values.only) {
    const result = await runEngineBench({
      ...(values.layers ? { layers: Number(values.layers) } : {}),
      ...(values.keep ? { keep: values.keep } : {}),
      only: "patterns",
      ...(values.reps ? { patternReps: Number(values.reps) } : {}),
    });
    io.out(JSON.stringify(result, null, 2));
  } else {
    const quick = values.quick ?? false;
    const parts = values.parts?.split(",") as ("runtimes" | "memory" | "leak" | "engine")[] | undefined;
    const result = await runBench({
      ...(parts ? { parts } : {}),
      cells: values.cells ?? (quick ? "128x8,2048x8" : DEFAULT_CELLS),
      steps: num(values.steps, quick ? 3 : 6),
      rounds: num(values.rounds, quick ? 1 : 2),
      layers: num(values.layers, 24),
      leakSteps: num(values["leak-steps"], quick ? 1000 : 5000),
      ...(values.keep ? { keep: values.keep } : {}),
    });
    io.out(result.table.join("\n"));
    io.out(JSON.stringify(result, null, 2));
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
