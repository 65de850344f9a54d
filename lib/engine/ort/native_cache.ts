/**
 * A KV cache that never leaves the runtime: per-layer keys and values as native `OrtValue`s
 * ([B, kvh, S, D], in the runtime's cache memory), with the attention mask and next positions on the
 * host (they are small, and every step's inputs are built from them).
 *
 * Row selection (finished rows leaving the batch, a prompt's cache copied for each of its samples) and
 * joining (new prompts entering the batch) run as small helper graphs (Gather / Slice / Pad / Concat)
 * on the same execution provider, so the cache is never copied through JavaScript. The layout after
 * each operation is exactly that of {@link KVCache} (the JS cache), so both give the same logits.
 *
 * Ownership: operations return new caches and leave their inputs alone; the caller disposes what it
 * no longer needs (`dispose()` is idempotent). An operation may return one of its inputs unchanged
 * (joining with an empty batch), so dispose an input only when it is not the result.
 *
 * @module
 */

import { DataType, encodeModel, int64Raw, type Node, type ValueInfo } from "../onnx_proto.ts";
import { KVCache } from "../kv_cache.ts";
import type { OrtValue, Session } from "./capi.ts";
import type { CapiRuntime } from "./runtime.ts";

/** Helper graphs over a model's 2L cache tensors, run on the model's runtime. */
export class CacheOps {
  #select: Session | undefined;
  #join: Session | undefined;
  constructor(readonly runtime: CapiRuntime, readonly numLayers: number) {}

  get #count(): number {
    return 2 * this.numLayers;
  }

  /** `out_i = Slice(Gather(kv_i, rows, axis 0), start, ∞, axis 2)` for every cache tensor. */
  #selectGraph(): Uint8Array {
    const n = this.#count;
    const nodes: Node[] = [];
    const inputs: ValueInfo[] = [
      { name: "rows", elemType: DataType.INT64, shape: ["n"] },
      { name: "start", elemType: DataType.INT64, shape: [1] },
    ];
    const outputs: ValueInfo[] = [];
    for (let i = 0; i < n; i++) {
      inputs.push({ name: `kv${i}`, elemType: DataType.FLOAT, shape: ["b", "h", "s", "d"] });
      outputs.push({ name: `out${i}`, elemType: DataType.FLOAT, shape: ["n", "h", "t", "d"] });
      nodes.push(
        { opType: "Gather", inputs: [`kv${i}`, "rows"], outputs: [`g${i}`], attributes: { axis: 0 } },
        { opType: "Slice", inputs: [`g${i}`, "start", "end", "axes"], outputs: [`out${i}`] },
      );
    }
    return encodeModel({
      graphName: "kv_select",
      nodes,
      initializers: [
        { name: "end", dataType: DataType.INT64, dims: [1], raw: int64Raw([Number.MAX_SAFE_INTEGER]) },
        { name: "axes", dataType: DataType.INT64, dims: [1], raw: int64Raw([2]) },
      ],
      inputs,
      outputs,
      opsets: { "": 23 },
    });
  }

  /** `out_i = Concat(Pad(a_i, pads_a), Pad(b_i, pads_b), axis 0)` (left padding on the sequence axis). */
  #joinGraph(): Uint8Array {
    const n = this.#count;
    const nodes: Node[] = [];
    const inputs: ValueInfo[] = [
      { name: "pads_a", elemType: DataType.INT64, shape: [8] },
      { name: "pads_b", elemType: DataType.INT64, shape: [8] },
    ];
    const outputs: ValueInfo[] = [];
    for (let i = 0; i < n; i++) {
      inputs.push(
        { name: `a${i}`, elemType: DataType.FLOAT, shape: ["ba", "h", "sa", "d"] },
        { name: `b${i}`, elemType: DataType.FLOAT, shape: ["bb", "h", "sb", "d"] },
      );
      outputs.push({ name: `out${i}`, elemType: DataType.FLOAT, shape: ["n", "h", "s", "d"] });
      nodes.push(
        { opType: "Pad", inputs: [`a${i}`, "pads_a"], outputs: [`pa${i}`] },
        { opType: "Pad", inputs: [`b${i}`, "pads_b"], outputs: [`pb${i}`] },
        { opType: "Concat", inputs: [`pa${i}`, `pb${i}`], outputs: [`out${i}`], attributes: { axis: 0 } },
      );
    }
    return encodeModel({
      graphName: "kv_join",
      nodes,
      initializers: [],
      inputs,
      outputs,
      opsets: { "": 23 },
    });
  }

  /** Rows `rows` of every tensor (repeats allowed), from sequence slot `start` on. */
  async select(values: readonly OrtValue[], rows: readonly number[], start: number): Promise<OrtValue[]> {
    this.#select ??= this.runtime.session(this.#selectGraph());
    const inputs: Record<string, OrtValue | { type: string; data: unknown; dims: number[] }> = {
      rows: { type: "int64", data: BigInt64Array.from(rows, BigInt), dims: [rows.length] },
      start: { type: "int64", data: BigInt64Array.of(BigInt(start)), dims: [1] },
    };
    values.forEach((v, i) => (inputs[`kv${i}`] = v));
    const names = values.map((_, i) => `out${i}`);
    const { native } = await this.runtime.run(this.#select, inputs, { host: [], native: names });
    return names.map((n) => native[n]!);
  }

  /** Rows of `a` then rows of `b`, each left-padded on the sequence axis by `padA` / `padB` slots. */
  async join(
    a: readonly OrtValue[],
    padA: number,
    b: readonly OrtValue[],
    padB: number,
  ): Promise<OrtValue[]> {
    this.#join ??= this.runtime.session(this.#joinGraph());
    const pads = (p: number) => ({
      type: "int64",
      data: BigInt64Array.of(0n, 0n, BigInt(p), 0n, 0n, 0n, 0n, 0n),
      dims: [8],
    });
    const inputs: Record<string, OrtValue | { type: string; data: unknown; dims: number[] }> = {
      pads_a: pads(padA),
      pads_b: pads(padB),
    };
    a.forEach((v, i) => (inputs[`a${i}`] = v));
    b.forEach((v, i) => (inputs[`b${i}`] = v));
    const names = a.map((_, i) => `out${i}`);
    const { native } = await this.runtime.run(this.#join, inputs, { host: [], native: names });
    return names.map((n) => native[n]!);
  }

  dispose(): void {
    this.#select?.dispose();
    this.#join?.dispose();
    this.#select = this.#join = undefined;
  }
}

/** Per-layer keys and values of a batch as native values. See the module doc for ownership. */
export class NativeKVCache {
  constructor(
    readonly ops: CacheOps,
    /** Per layer, [B, kvh, S, D]; owned by this cache. */
    readonly keys: readonly OrtValue[],
    readonly values: readonly OrtValue[],
    /** [B * S]: 1 for a real cached token, 0 for padding. */
    readonly mask: Uint8Array,
    /** Next absolute position id of each row. */
    readonly nextPositions: readonly number[],
    readonly kvHeads: number,
    readonly headDim: number,
  ) {}

  get batchSize(): number {
    return this.nextPositions.length;
  }
  get numLayers(): number {
    return this.keys.length;
  }
  /** Cached sequence length S (including padding slots). */
  get length(): number {
    return this.batchSize === 0 ? 0 : this.mask.length / this.batchSize;
  }

  /**
   * A new cache holding only the given rows, in the given order (repeats allowed), without the leading
   * slots that are padding in every kept row: the same layout as {@link KVCache.selectRows}.
   * @throws {RangeError} on a row index outside the batch.
   */
  async selectRows(rows: readonly number[]): Promise<NativeKVCache> {
    const S = this.length, B = this.batchSize;
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= B) {
        throw new RangeError(`selectRows: row ${r} outside [0, ${B})`);
      }
    }
    let drop = 0;
    outer: for (; drop < S; drop++) {
      for (const r of rows) if (this.mask[r * S + drop]) break outer;
    }
    if (rows.length === 0) drop = S;
    const newS = S - drop;
    const mask = new Uint8Array(rows.length * newS);
    rows.forEach((r, i) => mask.set(this.mask.subarray(r * S + drop, (r + 1) * S), i * newS));
    const L = this.numLayers;
    const out = await this.ops.select([...this.keys, ...this.values], rows, drop);
    return new NativeKVCache(
      this.ops,
      out.slice(0, L),
      out.slice(L),
      mask,
      rows.map((r) => this.nextPositions[r]!),
      this.kvHeads,
      this.headDim,
    );
  }

  /**
   * Rows of `this` followed by rows of `other`, both left-padded to the longer length (the layout of
   * {@link KVCache.concat}). Returns `other` or `this` itself when the other batch is empty.
   */
  async concat(other: NativeKVCache): Promise<NativeKVCache> {
    if (
      other.numLayers !== this.numLayers || other.kvHeads !== this.kvHeads || other.headDim !== this.headDim
    ) {
      throw new RangeError("Cannot join KV caches of different models");
    }
    if (this.batchSize === 0) return other;
    if (other.batchSize === 0) return this;
    const S = Math.max(this.length, other.length);
    const padA = S - this.length, padB = S - other.length;
    const mask = new Uint8Array((this.batchSize + other.batchSize) * S);
    const put = (src: NativeKVCache, pad: number, rowOffset: number) => {
      const s = src.length;
      for (let b = 0; b < src.batchSize; b++) {
        mask.set(src.mask.subarray(b * s, (b + 1) * s), (rowOffset + b) * S + pad);
      }
    };
    put(this, padA, 0);
    put(other, padB, this.batchSize);
    const L = this.numLayers;
    const out = await this.ops.join(
      [...this.keys, ...this.values],
      padA,
      [...other.keys, ...other.values],
      padB,
    );
    return new NativeKVCache(
      this.ops,
      out.slice(0, L),
      out.slice(L),
      mask,
      [...this.nextPositions, ...other.nextPositions],
      this.kvHeads,
      this.headDim,
    );
  }

  /** A JS copy of the cache (for tests and debugging; CPU memory only). */
  toHost(): KVCache {
    return new KVCache(
      this.keys.map((v) => v.toArray() as Float32Array),
      this.values.map((v) => v.toArray() as Float32Array),
      this.mask.slice(),
      this.nextPositions,
      this.kvHeads,
      this.headDim,
    );
  }

  /** Release the native tensors now (idempotent). */
  dispose(): void {
    for (const v of this.keys) v.dispose();
    for (const v of this.values) v.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** A KV cache of either runtime. */
export type AnyKVCache = KVCache | NativeKVCache;

/** `cache.selectRows(rows)` for either kind of cache. */
export async function selectCacheRows<C extends AnyKVCache>(cache: C, rows: readonly number[]): Promise<C> {
  return await (cache.selectRows(rows) as C | Promise<C>);
}

/**
 * `a.concat(b)` for two caches of the same kind.
 * @throws {TypeError} when one is native and the other not.
 */
export async function joinCaches<C extends AnyKVCache>(a: C, b: C): Promise<C> {
  if (a instanceof NativeKVCache && b instanceof NativeKVCache) return await a.concat(b) as C;
  if (a instanceof KVCache && b instanceof KVCache) return a.concat(b) as C;
  throw new TypeError("Cannot join a native KV cache with a JavaScript one; use one runtime per model");
}

/** Dispose `old` unless it is `kept` (operations may return an input unchanged). */
export function releaseCache(old: AnyKVCache | undefined, kept?: AnyKVCache): void {
  if (old && old !== kept) old.dispose();
}
