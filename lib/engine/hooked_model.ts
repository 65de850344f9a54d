/**
 * The hooked model: a Hugging Face decoder checkpoint compiled to ONNX and run with onnxruntime-node,
 * with TransformerLens-style hook points as graph inputs (interventions) and outputs (captures).
 *
 * @example
 * ```ts
 * const model = await HookedModel.load("path/to/checkpoint");
 * const { logits } = await model.forward([[1, 2, 3]], {
 *   interventions: [{ hook: "blocks.0.hook_mlp_out", op: "scale", value: 0 }],
 * });
 * await model.dispose();
 * ```
 *
 * @module
 */

import * as ort from "onnxruntime-node";
import { type Checkpoint, loadCheckpoint } from "./checkpoint.ts";
import type { ModelConfig } from "./config.ts";
import { compileGraph, type ComputeDtype, type GraphVariant } from "./graph.ts";
import { type Intervention, parseHookName, selectsPosition } from "./hooks.ts";
import { KVCache } from "./kv_cache.ts";
import {
  checkNoHeadOnLayerHooks,
  HEAD_OUTPUTS,
  type HeadCaptures,
  headHookFeeds,
  isHeadHook,
  splitHeadCaptures,
} from "./head_hooks.ts";
import { prepareGraphFolder } from "./graph_folder.ts";
import { loadOrt, type OrtValue, type Session as CapiSession } from "../engine/ort/capi.ts";
import { cudaPreflight, type Preflight } from "../engine/ort/doctor.ts";
import { CapiRuntime, type HostOutput } from "../engine/ort/runtime.ts";
import { type AnyKVCache, CacheOps, type CacheStorage, NativeKVCache } from "../engine/ort/native_cache.ts";

/** Execution provider choice. `auto` = CUDA when available, else CPU. */
export type DeviceRequest = "cpu" | "cuda" | "auto";

/** Which execution provider a model got, and why. */
export interface DeviceInfo {
  readonly requested: DeviceRequest;
  readonly used: "cpu" | "cuda";
  readonly reason: string;
}

/** Options of {@link HookedModel.load}. */
export interface LoadOptions {
  /** Default "cpu". */
  readonly device?: DeviceRequest;
  /** Intra-op threads; default: all cores. */
  readonly threads?: number;
  /** Weight prepacking (faster batched matmuls, slower session creation, more memory). Default true. */
  readonly prepack?: boolean;
  /** Where compiled graphs are kept; default `$BT_CACHE_DIR` or `~/.cache/backtracking-interp`. */
  readonly cacheDir?: string;
  /** Graph variants to compile eagerly; others compile on first use. */
  readonly variants?: readonly GraphVariantName[];
  /**
   * Which ONNX Runtime binding runs the graphs. `capi`: the C API through Deno FFI (lib/engine/ort),
   * where the KV cache stays in native memory between steps ({@link NativeKVCache}) and only the
   * requested outputs (top-k candidates, logits, captures) come back to JavaScript. `node`:
   * onnxruntime-node, which copies every output (the whole cache included) into JavaScript; kept as the
   * fallback and as the oracle in tests. Default "capi" when the C API loads (onnxruntime-node's
   * `libonnxruntime` found and opened), else "node". Measured on a Qwen2.5-0.5B-shaped model, batch 8,
   * 2 threads, with the in-place cache: the capi step is 0.64× (wall; 0.74× CPU) the node step at context
   * 2048 and 0.82× at context 128 (README "Benchmarks").
   */
  readonly runtime?: EngineRuntime;
  /**
   * On the `capi` runtime, keep the KV cache preallocated and write each step's keys and values into it
   * in place (opset-24 `TensorScatter`; attention over the capacity with unused slots masked) for the
   * graph variants without captures, instead of a fresh `present` holding the whole past every step.
   * Default true.
   */
  readonly inPlaceCache?: boolean;
  /**
   * Graph precision: "fp32" (default) or "bf16" (weights and matmuls in bfloat16; norms, softmax,
   * residual stream and KV cache in float32; for GPUs: ORT's CPU provider has no bf16 Gemm). Never fp16
   * for Qwen models.
   */
  readonly computeDtype?: ComputeDtype;
  /** Capacity of an in-place cache grows in multiples of this many slots (one copy each time). Default 256. */
  readonly cacheChunk?: number;
}

/** The ONNX Runtime binding a model runs on; see {@link LoadOptions.runtime}. */
export type EngineRuntime = "capi" | "node";

/** "capi" when the ONNX Runtime C API can be loaded here, else "node" (the fallback). */
export function defaultRuntime(): EngineRuntime {
  try {
    loadOrt();
    return "capi";
  } catch {
    return "node";
  }
}

/**
 * Named graph variants: `hooked` (generation: component scales), `steering` (plus residual adds),
 * `analysis` (everything: captures, lens, patching), `heads` (analysis plus per-head hooks: hook_z
 * interventions, patterns, z and head results), `head_hooks` (steering plus hook_z interventions, no
 * captures: e.g. generation with a head ablated), `plain` (no hook inputs, for benchmarks). Each call picks
 * the cheapest one that serves its interventions, so unused hooks cost nothing.
 */
export type GraphVariantName = "hooked" | "steering" | "analysis" | "heads" | "head_hooks" | "plain";

const VARIANTS: Readonly<Record<GraphVariantName, GraphVariant>> = {
  hooked: { hooks: true, captures: false, residAdd: false },
  steering: { hooks: true, captures: false, residAdd: true },
  analysis: { hooks: true, captures: true, componentAdd: true, residAdd: true },
  heads: { hooks: true, captures: true, componentAdd: true, residAdd: true, heads: true },
  head_hooks: { hooks: true, captures: false, residAdd: true, heads: true },
  plain: { hooks: false, captures: false },
};

/** What logits a forward pass returns, per row. */
export type LogitPositions = "last" | "all" | "none" | readonly (readonly number[])[];

/** Options of {@link HookedModel.forward}. */
export interface ForwardOptions {
  readonly interventions?: readonly Intervention[];
  /** Default "last": the last token of each row. Explicit lists hold absolute positions per row. */
  readonly logits?: LogitPositions;
  /**
   * Continue from this cache (rows must match); the rows then hold only the new tokens. A
   * {@link NativeKVCache} needs the `capi` runtime; a {@link KVCache} works on both.
   */
  readonly cache?: AnyKVCache;
  /** Return the updated cache. Default false. */
  readonly returnCache?: boolean;
  /** Capture residuals, component outputs and the logit lens at these absolute positions per row. */
  readonly capture?: {
    readonly positions: readonly (readonly number[])[];
    /** Per row, per capture position, the token ids to read in the lens (same count everywhere). */
    readonly lensTokenIds?: readonly (readonly (readonly number[])[])[];
    /**
     * Also capture per-head values at the same positions: `hook_z`, `hook_pattern` (these positions as
     * queries), `hook_result` (see {@link Captures.heads}). Uses the "heads" graph variant.
     */
    readonly heads?: boolean;
  };
  /**
   * Return only the `topK` largest logits (sorted, lower id first on ties) per requested position
   * instead of whole vocabulary rows: much less data per step for top-k sampling.
   */
  readonly topK?: number;
  /** Force a graph variant (e.g. "plain" for benchmarks); default picks the cheapest that serves. */
  readonly variant?: GraphVariantName;
}

/** Captured activations at the requested positions. */
export interface Captures {
  readonly positions: readonly (readonly number[])[];
  /** `resid[layer][row][k]`: layer l = `blocks.l.hook_resid_pre`, layer L = last `hook_resid_post`. */
  readonly resid: Float32Array[][][];
  readonly attnOut: Float32Array[][][];
  readonly mlpOut: Float32Array[][][];
  /** `lens[layer][row][k][m]` for layer 0..L (0 = embedding output, L = final logits). */
  readonly lens?: { logit: number; logprob: number; rank: number }[][][][];
  /** With `capture.heads`: per-head z, patterns, head results and the attention bias. */
  readonly heads?: HeadCaptures;
}

/** Result of {@link HookedModel.forward}. */
export interface ForwardResult {
  /** `logits[row][k]`: vocabulary logits at the k-th requested position of the row (empty with `topK`). */
  readonly logits: Float32Array[][];
  /** With `topK`: `topk[row][k]` = the candidates' ids and logits, largest first. */
  readonly topk?: { ids: Int32Array; values: Float32Array }[][];
  /** Absolute positions the logits belong to, per row. */
  readonly logitPositions: number[][];
  /** With `returnCache`: a {@link KVCache} on the `node` runtime, a {@link NativeKVCache} on `capi`. */
  readonly cache?: AnyKVCache;
  readonly captures?: Captures;
}

/** A loaded, compiled model. Call {@link HookedModel.dispose} when done. */
export class HookedModel {
  readonly #sessions = new Map<GraphVariantName, Promise<ort.InferenceSession>>();
  readonly #capiSessions = new Map<string, Promise<CapiSession>>();
  readonly #graphFolder: Awaited<ReturnType<typeof prepareGraphFolder>>;
  readonly #sessionOptions: ort.InferenceSession.SessionOptions;
  /** The C API runtime and its cache helper graphs (runtime "capi" only). */
  readonly #capi:
    | {
      readonly runtime: CapiRuntime;
      readonly ops: CacheOps;
      readonly inPlace: boolean;
      readonly chunk: number;
    }
    | undefined;

  private constructor(
    readonly checkpoint: Checkpoint,
    readonly device: DeviceInfo,
    graphFolder: Awaited<ReturnType<typeof prepareGraphFolder>>,
    sessionOptions: ort.InferenceSession.SessionOptions,
    /** Which binding runs the graphs. */
    readonly runtime: EngineRuntime = "node",
    prepack = true,
    inPlace = true,
    chunk = 256,
    /** The graphs' precision. */
    readonly computeDtype: ComputeDtype = "fp32",
  ) {
    this.#graphFolder = graphFolder;
    this.#sessionOptions = sessionOptions;
    if (runtime === "capi") {
      const rt = new CapiRuntime({
        threads: sessionOptions.intraOpNumThreads ?? navigator.hardwareConcurrency,
        prepack,
        device: device.used,
      });
      this.#capi = { runtime: rt, ops: new CacheOps(rt, checkpoint.config.numLayers), inPlace, chunk };
    }
  }

  /** The model's architecture parameters. */
  get config(): ModelConfig {
    return this.checkpoint.config;
  }

  /**
   * Load a checkpoint folder and prepare its graphs.
   * @param dir a Hugging Face model folder (config.json + safetensors), possibly a hub-cache snapshot.
   * @throws when the folder is not a valid checkpoint (the error names the file or tensor at fault).
   */
  static async load(dir: string, options: LoadOptions = {}): Promise<HookedModel> {
    const checkpoint = await loadCheckpoint(dir);
    const device = pickDevice(options.device ?? "cpu");
    const threads = options.threads ?? navigator.hardwareConcurrency;
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [device.used],
      graphOptimizationLevel: "all",
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      ...(options.prepack === false ? { extra: { session: { disable_prepacking: "1" } } } : {}),
    };
    const folder = await prepareGraphFolder(checkpoint, options.cacheDir);
    const runtime = options.runtime ?? defaultRuntime();
    const prepack = options.prepack !== false;
    const make = (dev: DeviceInfo) =>
      new HookedModel(
        checkpoint,
        dev,
        folder,
        { ...sessionOptions, executionProviders: [dev.used] },
        runtime,
        prepack,
        options.inPlaceCache !== false,
        options.cacheChunk ?? 256,
        options.computeDtype ?? "fp32",
      );
    // CUDA passed the preflight but could not start (driver mismatch, out of memory, ...): `auto` falls
    // back to the CPU, an explicit `cuda` request fails.
    const fallback = (error: unknown): DeviceInfo => ({
      requested: device.requested,
      used: "cpu",
      reason: `CUDA session creation failed (${(error as Error).message.split("\n")[0]}); using CPU`,
    });
    let model: HookedModel;
    try {
      model = make(device); // the capi runtime appends the CUDA EP here
    } catch (error) {
      if (device.used !== "cuda" || device.requested !== "auto") throw error;
      model = make(fallback(error));
    }
    // A CUDA request is verified by starting a session now, so a missing GPU falls back at load time.
    const eager = options.variants ?? (model.device.used === "cuda" ? ["hooked" as const] : []);
    for (const v of eager) {
      try {
        await model.session(v);
      } catch (error) {
        if (model.device.used !== "cuda" || device.requested !== "auto") throw error;
        await model.dispose();
        model = make(fallback(error));
        await model.session(v);
      }
    }
    return model;
  }

  /** The compiled graph file of a variant (written on first use). */
  #graphPath(variant: GraphVariantName, inPlace = false): Promise<string> {
    const bytes = compileGraph(this.checkpoint, {
      locate: this.#graphFolder.locate,
      variant: { ...VARIANTS[variant], inPlaceCache: inPlace },
      computeDtype: this.computeDtype,
    });
    const name = `${variant}${inPlace ? "_inplace" : ""}${this.computeDtype === "bf16" ? "_bf16" : ""}`;
    return this.#graphFolder.writeGraph(name, bytes);
  }

  /** Whether calls on `variant` use the in-place cache graph (capi runtime, no captures). */
  #inPlace(variant: GraphVariantName): boolean {
    return this.#capi?.inPlace === true && !VARIANTS[variant].captures;
  }

  /**
   * The onnxruntime-node session of a graph variant (compiled and created on first use). On the
   * `capi` runtime this starts the C API session instead and resolves to undefined.
   */
  session(variant: GraphVariantName): Promise<ort.InferenceSession | undefined> {
    if (this.#capi) return this.#capiSession(variant, this.#inPlace(variant)).then(() => undefined);
    return this.#nodeSession(variant);
  }

  #nodeSession(variant: GraphVariantName): Promise<ort.InferenceSession> {
    let s = this.#sessions.get(variant);
    if (!s) {
      s = (async () =>
        await ort.InferenceSession.create(await this.#graphPath(variant), this.#sessionOptions))();
      this.#sessions.set(variant, s);
      s.catch(() =>
        this.#sessions.delete(variant)
      );
    }
    return s;
  }

  #capiSession(variant: GraphVariantName, inPlace: boolean): Promise<CapiSession> {
    const key = inPlace ? `${variant}_inplace` : variant;
    let s = this.#capiSessions.get(key);
    if (!s) {
      s = (async () => this.#capi!.runtime.session(await this.#graphPath(variant, inPlace)))();
      this.#capiSessions.set(key, s);
      s.catch(() => this.#capiSessions.delete(key));
    }
    return s;
  }

  /** Release the ONNX Runtime sessions (native caches still alive stay valid; dispose them yourself). */
  async dispose(): Promise<void> {
    for (const s of this.#sessions.values()) {
      try {
        await (await s).release();
      } catch {
        // A session that failed to start has nothing to release.
      }
    }
    this.#sessions.clear();
    for (const s of this.#capiSessions.values()) {
      try {
        (await s).dispose();
      } catch {
        // as above
      }
    }
    this.#capiSessions.clear();
    this.#capi?.ops.dispose();
  }

  /**
   * Run the model on a batch of token rows (left-padded internally), optionally continuing a cache.
   * @param rows token ids per row; with `cache`, only the new tokens of each row.
   * @throws {RangeError} on empty input, unknown hooks, positions outside a row, or a cache mismatch.
   */
  async forward(rows: readonly (readonly number[])[], options: ForwardOptions = {}): Promise<ForwardResult> {
    const cfg = this.config;
    const B = rows.length;
    if (B === 0) throw new RangeError("forward() needs at least one row of token ids");
    const cache = options.cache ?? KVCache.empty(cfg.numLayers, B, cfg.numKvHeads, cfg.headDim);
    if (cache.batchSize !== B) {
      throw new RangeError(`forward(): ${B} rows but the cache holds ${cache.batchSize}`);
    }
    const T = Math.max(...rows.map((r) => r.length));
    if (T === 0) throw new RangeError("forward(): every row is empty; give at least one token per call");
    const P = cache.length, S = P + T;
    const { numLayers: L, vocabSize: V } = cfg;

    const inputIds = new BigInt64Array(B * T);
    const mask = new BigInt64Array(B * S);
    const maskBytes = new Uint8Array(B * S); // the same mask, kept for the returned cache
    const positionIds = new BigInt64Array(B * T);
    const absPos = new Int32Array(B * T).fill(-1); // -1 = padding
    for (let b = 0; b < B; b++) {
      const row = rows[b]!;
      const pad = T - row.length;
      for (let s = 0; s < P; s++) {
        maskBytes[b * S + s] = cache.mask[b * P + s]!;
        mask[b * S + s] = BigInt(maskBytes[b * S + s]!);
      }
      for (let t = 0; t < T; t++) {
        if (t < pad) continue;
        const id = row[t - pad]!;
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new RangeError(
            `forward(): token id ${id} at row ${b}, index ${t - pad} is outside [0, ${V})`,
          );
        }
        const pos = cache.nextPositions[b]! + t - pad;
        inputIds[b * T + t] = BigInt(id);
        mask[b * S + P + t] = 1n;
        maskBytes[b * S + P + t] = 1;
        positionIds[b * T + t] = BigInt(pos);
        absPos[b * T + t] = pos;
      }
    }
    const chunkIndex = (b: number, pos: number): number => {
      const t = pos - cache.nextPositions[b]! + (T - rows[b]!.length);
      if (t < T - rows[b]!.length || t >= T) {
        throw new RangeError(
          `Position ${pos} of row ${b} is not among this call's tokens (positions ${
            cache.nextPositions[b]
          }..${cache.nextPositions[b]! + rows[b]!.length - 1})`,
        );
      }
      return t;
    };

    // Which logits.
    const want = options.logits ?? "last";
    let logitIdx: number[][];
    if (want === "last") logitIdx = rows.map(() => [T - 1]);
    else if (want === "none") logitIdx = rows.map(() => [T - 1]);
    else if (want === "all") {
      logitIdx = rows.map((r) => Array.from({ length: r.length }, (_, i) => T - r.length + i));
    } else {
      if (want.length !== B) throw new RangeError(`logits: ${want.length} position lists for ${B} rows`);
      logitIdx = want.map((list, b) => list.map((p) => chunkIndex(b, p)));
    }
    const K = Math.max(1, ...logitIdx.map((l) => l.length));
    const logitPositions = new BigInt64Array(B * K);
    for (let b = 0; b < B; b++) {
      for (let k = 0; k < K; k++) {
        logitPositions[b * K + k] = BigInt(logitIdx[b]![k] ?? logitIdx[b]![0] ?? T - 1);
      }
    }

    const topK = options.topK;
    if (topK !== undefined && (!Number.isInteger(topK) || topK < 1 || topK > V)) {
      throw new RangeError(`topK must be an integer in [1, ${V}], got ${topK}`);
    }
    // Patching (add on a component output) lives in the analysis graph, like captures.
    const patches = (options.interventions ?? []).some((iv) =>
      iv.op === "add" && !iv.hook.endsWith("hook_resid_pre") && !isHeadHook(iv.hook)
    );
    const steers = (options.interventions ?? []).some((iv) =>
      iv.op === "add" && iv.hook.endsWith("hook_resid_pre")
    );
    const headHooks = (options.interventions ?? []).some((iv) => isHeadHook(iv.hook));
    const variant: GraphVariantName = options.variant ??
      (options.capture?.heads || (headHooks && (options.capture || patches))
        ? "heads"
        : headHooks
        ? "head_hooks"
        : options.capture || patches
        ? "analysis"
        : steers
        ? "steering"
        : "hooked");
    if (options.capture && !VARIANTS[variant].captures) {
      throw new RangeError(`capture needs the "analysis" graph variant, not "${variant}"`);
    }
    if ((options.capture?.heads || headHooks) && !VARIANTS[variant].heads) {
      throw new RangeError(
        `Per-head hooks (blocks.{l}.attn.*) need the "heads" graph variant, not "${variant}"`,
      );
    }
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", inputIds, [B, T]),
      attention_mask: new ort.Tensor("int64", mask, [B, S]),
      position_ids: new ort.Tensor("int64", positionIds, [B, T]),
      logit_positions: new ort.Tensor("int64", logitPositions, [B, K]),
      top_k: new ort.Tensor("int64", BigInt64Array.of(BigInt(topK ?? 1)), [1]),
    };
    if (cache instanceof KVCache) {
      for (let l = 0; l < L; l++) {
        const dims = [B, cfg.numKvHeads, P, cfg.headDim];
        feeds[`past.${l}.key`] = new ort.Tensor("float32", cache.keys[l]!, dims);
        feeds[`past.${l}.value`] = new ort.Tensor("float32", cache.values[l]!, dims);
      }
    } else if (!this.#capi) {
      throw new TypeError('forward(): a NativeKVCache needs a model loaded with runtime: "capi"');
    }
    if (VARIANTS[variant].hooks) {
      const ivs = options.interventions ?? [];
      checkNoHeadOnLayerHooks(ivs);
      Object.assign(
        feeds,
        this.#hookFeeds(ivs.filter((iv) => !isHeadHook(iv.hook)), B, T, absPos, VARIANTS[variant]),
      );
      if (VARIANTS[variant].heads) Object.assign(feeds, headHookFeeds(ivs, cfg, B, T, absPos));
    } else if (options.interventions?.length) {
      throw new RangeError(`The "${variant}" graph variant has no hook inputs; interventions need "hooked"`);
    }
    let C = 0, M = 0;
    if (options.capture) {
      const cap = options.capture;
      if (cap.positions.length !== B) {
        throw new RangeError(`capture.positions: ${cap.positions.length} lists for ${B} rows`);
      }
      C = Math.max(1, ...cap.positions.map((p) => p.length));
      M = Math.max(1, ...(cap.lensTokenIds ?? []).flatMap((r) => r.map((ids) => ids.length)));
      const capIdx = new BigInt64Array(B * C);
      const lensIds = new BigInt64Array(B * C * M);
      for (let b = 0; b < B; b++) {
        const idx = cap.positions[b]!.map((p) => chunkIndex(b, p));
        for (let c = 0; c < C; c++) {
          capIdx[b * C + c] = BigInt(idx[c] ?? idx[0] ?? T - 1);
          const ids = cap.lensTokenIds?.[b]?.[c] ?? [];
          for (let m = 0; m < M; m++) lensIds[(b * C + c) * M + m] = BigInt(ids[m] ?? ids[0] ?? 0);
        }
      }
      feeds.capture_positions = new ort.Tensor("int64", capIdx, [B, C]);
      feeds.lens_token_ids = new ort.Tensor("int64", lensIds, [B, C, M]);
    } else if (VARIANTS[variant].captures) {
      // The analysis graph used only for patching: minimal capture inputs, outputs not fetched.
      feeds.capture_positions = new ort.Tensor("int64", new BigInt64Array(B).fill(BigInt(T - 1)), [B, 1]);
      feeds.lens_token_ids = new ort.Tensor("int64", new BigInt64Array(B), [B, 1, 1]);
    }

    // Fetch only what the caller needs: whole logits rows are the largest transfer per step.
    const wanted = (name: string) => {
      if (name === "logits") return want !== "none" && topK === undefined;
      if (name === "topk_values" || name === "topk_indices") return topK !== undefined;
      if (name.startsWith("present.")) return options.returnCache === true;
      if (HEAD_OUTPUTS.has(name)) return options.capture?.heads === true;
      return options.capture !== undefined; // captures and lens
    };
    let out: Record<string, { readonly data: unknown }>;
    let present: Record<string, OrtValue> = {};
    let storage: CacheStorage | undefined;
    if (this.#capi) {
      // C API: last step's native cache is bound as `past.*` (or, in place, as `cache.*` with `present.*`
      // bound to the same values), `present.*` stay native, the rest (top-k, logits, captures) is copied
      // back. The variant is resolved through `session()` on both runtimes, so wrappers of it (tests,
      // tracing) see every graph a call uses.
      await this.session(variant);
      const inPlace = this.#inPlace(variant);
      const session = await this.#capiSession(variant, inPlace);
      const fetches = session.outputNames.filter(wanted);
      const host = fetches.filter((n) => !n.startsWith("present."));
      const inputs: Record<string, ort.Tensor | OrtValue> = { ...feeds };
      // A cache of the wrong kind or shape for this graph is copied once into one that fits.
      let work: NativeKVCache | undefined;
      let temporary = false;
      if (inPlace) {
        if (cache instanceof NativeKVCache && cache.appendable && cache.capacity >= S) work = cache;
        else {
          const chunk = this.#capi.chunk, capacity = Math.ceil(S / chunk) * chunk;
          work = cache instanceof NativeKVCache
            ? await cache.resize(capacity)
            : await NativeKVCache.fromHost(this.#capi.ops, cache, capacity);
          temporary = true;
        }
        for (let l = 0; l < L; l++) delete inputs[`past.${l}.key`], delete inputs[`past.${l}.value`];
        const C = work.capacity, capMask = new BigInt64Array(B * C);
        for (let b = 0; b < B; b++) {
          for (let s = 0; s < S; s++) capMask[b * C + s] = mask[b * S + s]!;
        }
        inputs.attention_mask = new ort.Tensor("int64", capMask, [B, C]);
        inputs.cache_position = new ort.Tensor("int64", BigInt64Array.of(BigInt(P)), [1]);
        const bound: Record<string, OrtValue> = {};
        for (let l = 0; l < L; l++) {
          bound[`present.${l}.key`] = inputs[`cache.${l}.key`] = work.keys[l]!;
          bound[`present.${l}.value`] = inputs[`cache.${l}.value`] = work.values[l]!;
        }
        const r = await this.#capi.runtime.run(session, inputs, { host, native: [], bound });
        out = r.host as Record<string, HostOutput>;
        present = r.native; // new owners of the same tensors
        if (options.returnCache) work.storage.committed = S;
        else for (const v of Object.values(present)) v.dispose();
      } else {
        if (cache instanceof NativeKVCache) {
          if (cache.capacity !== cache.length) {
            work = await cache.resize(cache.length);
            temporary = true;
          }
          for (let l = 0; l < L; l++) {
            inputs[`past.${l}.key`] = (work ?? cache).keys[l]!;
            inputs[`past.${l}.value`] = (work ?? cache).values[l]!;
          }
        }
        const r = await this.#capi.runtime.run(session, inputs, {
          host,
          native: fetches.filter((n) => n.startsWith("present.")),
        });
        out = r.host as Record<string, HostOutput>;
        present = r.native;
        work = undefined; // the result does not share its tensors
      }
      if (temporary) work?.dispose();
      storage = work?.storage;
    } else {
      const session = await this.#nodeSession(variant);
      out = await session.run(feeds, session.outputNames.filter(wanted));
    }

    let logits: Float32Array[][] = rows.map(() => []);
    let topk: ForwardResult["topk"];
    if (want !== "none" && topK === undefined) {
      const logitsData = out.logits!.data as Float32Array;
      logits = logitIdx.map((list, b) =>
        list.map((_, k) => logitsData.subarray((b * K + k) * V, (b * K + k + 1) * V))
      );
    } else if (topK !== undefined) {
      const values = out.topk_values!.data as Float32Array;
      const indices = out.topk_indices!.data as BigInt64Array;
      topk = logitIdx.map((list, b) =>
        list.map((_, k) => {
          const at = (b * K + k) * topK;
          return {
            ids: Int32Array.from(indices.subarray(at, at + topK), Number),
            values: values.subarray(at, at + topK),
          };
        })
      );
    }
    const logitAbs = want === "none"
      ? rows.map(() => [])
      : logitIdx.map((list, b) => list.map((t) => absPos[b * T + t]!));

    let newCache: AnyKVCache | undefined;
    if (options.returnCache && this.#capi) {
      newCache = new NativeKVCache(
        this.#capi.ops,
        Array.from({ length: L }, (_, l) => present[`present.${l}.key`]!),
        Array.from({ length: L }, (_, l) => present[`present.${l}.value`]!),
        maskBytes,
        rows.map((r, b) => cache.nextPositions[b]! + r.length),
        cfg.numKvHeads,
        cfg.headDim,
        storage,
      );
    } else if (options.returnCache) {
      newCache = new KVCache(
        Array.from({ length: L }, (_, l) => out[`present.${l}.key`]!.data as Float32Array),
        Array.from({ length: L }, (_, l) => out[`present.${l}.value`]!.data as Float32Array),
        maskBytes,
        rows.map((r, b) => cache.nextPositions[b]! + r.length),
        cfg.numKvHeads,
        cfg.headDim,
      );
    }

    let captures: Captures | undefined;
    if (options.capture) {
      const H = cfg.hiddenSize;
      const counts = options.capture.positions.map((p) => p.length);
      const split = (data: Float32Array, layers: number) =>
        Array.from(
          { length: layers },
          (_, l) =>
            counts.map((n, b) =>
              Array.from({ length: n }, (_, c) =>
                data.subarray(((l * B + b) * C + c) * H, ((l * B + b) * C + c + 1) * H))
            ),
        );
      const lensCounts = options.capture.lensTokenIds;
      let lens: Captures["lens"];
      if (lensCounts) {
        const lg = out.lens_logit!.data as Float32Array;
        const lp = out.lens_logprob!.data as Float32Array;
        const rk = out.lens_rank!.data as BigInt64Array;
        lens = Array.from(
          { length: L + 1 },
          (_, l) =>
            counts.map((n, b) =>
              Array.from(
                { length: n },
                (_, c) =>
                  Array.from({ length: lensCounts[b]?.[c]?.length ?? 0 }, (_, m) => {
                    const i = ((l * B + b) * C + c) * M + m;
                    return { logit: lg[i]!, logprob: lp[i]!, rank: Number(rk[i]!) };
                  }),
              )
            ),
        );
      }
      captures = {
        positions: options.capture.positions,
        resid: split(out.resid!.data as Float32Array, L + 1),
        attnOut: split(out.attn_out!.data as Float32Array, L),
        mlpOut: split(out.mlp_out!.data as Float32Array, L),
        ...(lens ? { lens } : {}),
        ...(options.capture.heads ? { heads: splitHeadCaptures(out, cfg, counts, C, S, maskBytes) } : {}),
      };
    }
    return {
      logits,
      ...(topk ? { topk } : {}),
      logitPositions: logitAbs,
      ...(newCache ? { cache: newCache } : {}),
      ...(captures ? { captures } : {}),
    };
  }

  /** Hook input tensors for a call; neutral everywhere except where an intervention applies. */
  #hookFeeds(
    interventions: readonly Intervention[],
    B: number,
    T: number,
    absPos: Int32Array,
    graph: GraphVariant,
  ): Record<string, ort.Tensor> {
    const componentAdd = graph.componentAdd === true;
    const residAdd = graph.residAdd !== false;
    const cfg = this.config;
    const L = cfg.numLayers, H = cfg.hiddenSize;
    const attnScale = new Float32Array(L * B * T).fill(1);
    const mlpScale = new Float32Array(L * B * T).fill(1);
    // Additive sites: vectors [L, B, H] and coefficients [L, B, T] per site.
    const sites = {
      hook_resid_pre: {
        vec: new Float32Array(L * B * H),
        coef: new Float32Array(L * B * T),
        used: new Set<number>(),
      },
      hook_attn_out: {
        vec: new Float32Array(L * B * H),
        coef: new Float32Array(L * B * T),
        used: new Set<number>(),
      },
      hook_mlp_out: {
        vec: new Float32Array(L * B * H),
        coef: new Float32Array(L * B * T),
        used: new Set<number>(),
      },
    };
    for (const iv of interventions) {
      const hook = parseHookName(iv.hook, L);
      if (hook.layer === undefined) throw new RangeError(`Interventions on "${iv.hook}" are not supported`);
      const l = hook.layer;
      const forEachPos = (fn: (i: number, b: number) => void) => {
        for (let b = 0; b < B; b++) {
          for (let t = 0; t < T; t++) {
            const pos = absPos[b * T + t]!;
            if (pos >= 0 && selectsPosition(iv.positions, b, pos)) fn((l * B + b) * T + t, b);
          }
        }
      };
      if (iv.op === "scale") {
        if (!Number.isFinite(iv.value)) {
          throw new RangeError(`Scale for "${iv.hook}" must be finite, got ${iv.value}`);
        }
        if (hook.kind === "hook_attn_out") forEachPos((i) => (attnScale[i] = attnScale[i]! * iv.value));
        else if (hook.kind === "hook_mlp_out") forEachPos((i) => (mlpScale[i] = mlpScale[i]! * iv.value));
        else {throw new RangeError(
            `Scale interventions apply to hook_attn_out or hook_mlp_out, not "${iv.hook}"`,
          );}
        continue;
      }
      if (hook.kind === "hook_resid_post") {
        throw new RangeError(
          `Add interventions apply to hook_resid_pre, hook_attn_out or hook_mlp_out, not "${iv.hook}" ` +
            `(use blocks.${l + 1}.hook_resid_pre for the same point)`,
        );
      }
      if (hook.kind === "hook_resid_pre" && !residAdd) {
        throw new RangeError(
          `Add on "${iv.hook}" (steering) needs the "steering" or "analysis" graph variant`,
        );
      }
      if (hook.kind !== "hook_resid_pre" && !componentAdd) {
        throw new RangeError(
          `Add on "${iv.hook}" (patching) needs the "analysis" graph variant; pass capture or variant: "analysis"`,
        );
      }
      const site = sites[hook.kind as keyof typeof sites]; // head hooks are routed to head_hooks.ts
      const perRow = isRowVectors(iv.vector);
      if (perRow && (iv.vector as readonly ArrayLike<number>[]).length !== B) {
        throw new RangeError(
          `Add on "${iv.hook}": ${(iv.vector as unknown[]).length} row vectors for ${B} rows`,
        );
      }
      const coef = iv.coef ?? 1;
      const rowsTouched = new Set<number>();
      forEachPos((i, b) => {
        site.coef[i] = coef;
        rowsTouched.add(b);
      });
      for (const b of rowsTouched) {
        const key = l * B + b;
        if (site.used.has(key)) {
          throw new RangeError(
            `Two add interventions on "${iv.hook}" touch batch row ${b}; combine their vectors`,
          );
        }
        site.used.add(key);
        const v = perRow ? (iv.vector as readonly ArrayLike<number>[])[b]! : (iv.vector as ArrayLike<number>);
        if (v.length !== H) {
          throw new RangeError(`Add vector for "${iv.hook}" has length ${v.length}; expected ${H}`);
        }
        site.vec.set(Float32Array.from(v), key * H);
      }
    }
    const feeds: Record<string, ort.Tensor> = {
      attn_scale: new ort.Tensor("float32", attnScale, [L, B, T]),
      mlp_scale: new ort.Tensor("float32", mlpScale, [L, B, T]),
    };
    if (residAdd) {
      feeds.resid_add = new ort.Tensor("float32", sites.hook_resid_pre.vec, [L, B, H]);
      feeds.resid_add_coef = new ort.Tensor("float32", sites.hook_resid_pre.coef, [L, B, T]);
    }
    if (componentAdd) {
      feeds.attn_add = new ort.Tensor("float32", sites.hook_attn_out.vec, [L, B, H]);
      feeds.attn_add_coef = new ort.Tensor("float32", sites.hook_attn_out.coef, [L, B, T]);
      feeds.mlp_add = new ort.Tensor("float32", sites.hook_mlp_out.vec, [L, B, H]);
      feeds.mlp_add_coef = new ort.Tensor("float32", sites.hook_mlp_out.coef, [L, B, T]);
    }
    return feeds;
  }
}

function isRowVectors(v: ArrayLike<number> | readonly ArrayLike<number>[]): boolean {
  return v.length > 0 && typeof (v as ArrayLike<unknown>)[0] === "object";
}

/**
 * Decide the execution provider. `cuda` and `auto` run the CUDA preflight ({@link cudaPreflight}, also
 * `deno task doctor`): `auto` falls back to the CPU and says which pieces are missing in `reason`
 * (recorded in a run's meta.json); `cuda` refuses.
 * @param preflight the check to run (tests pass a fake one).
 * @throws {Error} for `cuda` when the preflight fails, with its message naming every missing piece.
 */
export function pickDevice(requested: DeviceRequest, preflight: () => Preflight = cudaPreflight): DeviceInfo {
  if (requested === "cpu") return { requested, used: "cpu", reason: "CPU requested" };
  const p = preflight();
  if (p.ok) return { requested, used: "cuda", reason: `${requested}: ${p.message}` };
  if (requested === "cuda") throw new Error(`device "cuda" requested: ${p.message}`);
  const missing = p.checks.filter((c) => !c.ok).map((c) => c.name);
  return {
    requested,
    used: "cpu",
    reason: `auto: CUDA unavailable (missing: ${missing.join("; ")}; see \`deno task doctor\`); using CPU`,
  };
}
