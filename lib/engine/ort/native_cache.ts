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
 * Capacity: the tensors may hold more slots than the cache's length S (a preallocated cache for the
 * in-place graph, see `GraphVariant.inPlaceCache`): slots [0, S) are the cache, slots [S, capacity)
 * are unused (finite values, masked). Row selection and joining keep the capacity; {@link
 * NativeKVCache.resize} grows it (one copy). Caches that share tensors share a {@link CacheStorage}
 * whose `committed` length says which cache may append in place: only one whose length equals it, so
 * a cache used twice (two continuations of one prefix) never sees the other's writes.
 *
 * Ownership: operations return new caches and leave their inputs alone; the caller disposes what it
 * no longer needs (`dispose()` is idempotent). An operation may return one of its inputs unchanged
 * (joining with an empty batch), so dispose an input only when it is not the result.
 *
 * @module
 */

import { DataType, encodeModel, type Node, type ValueInfo } from "../onnx_proto.ts";
import { CacheLayout, KVCache } from "../kv_cache.ts";
import type { OrtValue, Session } from "./capi.ts";
import type { CapiRuntime } from "./runtime.ts";

/** The tensors of one or more caches updated in place: slots [0, committed) are owned by some cache. */
export class CacheStorage {
  constructor(public committed: number) {}
}

type Feed = OrtValue | { type: string; data: unknown; dims: number[] };

/** Pads on the sequence axis of [B, h, S, d] (negative = crop), as ONNX Pad's `pads` input. */
function seqPads(left: number, right: number): Feed {
  return {
    type: "int64",
    data: BigInt64Array.of(0n, 0n, BigInt(left), 0n, 0n, 0n, BigInt(right), 0n),
    dims: [8],
  };
}

/** Helper graphs over a model's 2L cache tensors, run on the model's runtime. */
export class CacheOps {
  #select: Session | undefined;
  #join: Session | undefined;
  #pad: Session | undefined;
  constructor(readonly runtime: CapiRuntime, readonly numLayers: number) {}

  get #count(): number {
    return 2 * this.numLayers;
  }

  /** `out_i = Pad(Gather(kv_i, rows, axis 0), pads)` for every cache tensor (negative pads crop). */
  #selectGraph(): Uint8Array {
    const n = this.#count;
    const nodes: Node[] = [];
    const inputs: ValueInfo[] = [
      { name: "rows", elemType: DataType.INT64, shape: ["n"] },
      { name: "pads", elemType: DataType.INT64, shape: [8] },
    ];
    const outputs: ValueInfo[] = [];
    for (let i = 0; i < n; i++) {
      inputs.push({ name: `kv${i}`, elemType: DataType.FLOAT, shape: ["b", "h", "s", "d"] });
      outputs.push({ name: `out${i}`, elemType: DataType.FLOAT, shape: ["n", "h", "t", "d"] });
      nodes.push(
        { opType: "Gather", inputs: [`kv${i}`, "rows"], outputs: [`g${i}`], attributes: { axis: 0 } },
        { opType: "Pad", inputs: [`g${i}`, "pads"], outputs: [`out${i}`] },
      );
    }
    return encodeModel({
      graphName: "kv_select",
      nodes,
      initializers: [],
      inputs,
      outputs,
      opsets: { "": 23 },
    });
  }

  /** `out_i = Pad(kv_i, pads)` for every cache tensor: capacity changes and uploads. */
  #padGraph(): Uint8Array {
    const n = this.#count;
    const nodes: Node[] = [];
    const inputs: ValueInfo[] = [{ name: "pads", elemType: DataType.INT64, shape: [8] }];
    const outputs: ValueInfo[] = [];
    for (let i = 0; i < n; i++) {
      inputs.push({ name: `kv${i}`, elemType: DataType.FLOAT, shape: ["b", "h", "s", "d"] });
      outputs.push({ name: `out${i}`, elemType: DataType.FLOAT, shape: ["b", "h", "t", "d"] });
      nodes.push({ opType: "Pad", inputs: [`kv${i}`, "pads"], outputs: [`out${i}`] });
    }
    return encodeModel({ graphName: "kv_pad", nodes, initializers: [], inputs, outputs, opsets: { "": 23 } });
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

  /**
   * Rows `rows` of every tensor (repeats allowed), sequence slots [start, …) moved to slot 0 and the
   * sequence axis padded with zeros (or cropped) at the end by `padEnd` slots.
   */
  async select(
    values: readonly OrtValue[],
    rows: readonly number[],
    start: number,
    padEnd = 0,
  ): Promise<OrtValue[]> {
    this.#select ??= this.runtime.session(this.#selectGraph());
    const inputs: Record<string, Feed> = {
      rows: { type: "int64", data: BigInt64Array.from(rows, BigInt), dims: [rows.length] },
      pads: seqPads(-start, padEnd),
    };
    values.forEach((v, i) => (inputs[`kv${i}`] = v));
    const names = values.map((_, i) => `out${i}`);
    const { native } = await this.runtime.run(this.#select, inputs, { host: [], native: names });
    return names.map((n) => native[n]!);
  }

  /**
   * Rows of `a` then rows of `b`, each padded on the sequence axis by `padA` / `padB` slots at the start
   * and `endA` / `endB` at the end (negative: cropped).
   */
  async join(
    a: readonly OrtValue[],
    padA: number,
    b: readonly OrtValue[],
    padB: number,
    endA = 0,
    endB = 0,
  ): Promise<OrtValue[]> {
    this.#join ??= this.runtime.session(this.#joinGraph());
    const inputs: Record<string, Feed> = { pads_a: seqPads(padA, endA), pads_b: seqPads(padB, endB) };
    a.forEach((v, i) => (inputs[`a${i}`] = v));
    b.forEach((v, i) => (inputs[`b${i}`] = v));
    const names = a.map((_, i) => `out${i}`);
    const { native } = await this.runtime.run(this.#join, inputs, { host: [], native: names });
    return names.map((n) => native[n]!);
  }

  /**
   * Every tensor padded with zeros (negative: cropped) on the sequence axis by `start` / `end` slots.
   * Tensors may be host tensors (an upload to the cache memory).
   */
  async pad(values: readonly Feed[], start: number, end: number): Promise<OrtValue[]> {
    this.#pad ??= this.runtime.session(this.#padGraph());
    const inputs: Record<string, Feed> = { pads: seqPads(start, end) };
    values.forEach((v, i) => (inputs[`kv${i}`] = v));
    const names = values.map((_, i) => `out${i}`);
    const { native } = await this.runtime.run(this.#pad, inputs, { host: [], native: names });
    return names.map((n) => native[n]!);
  }

  dispose(): void {
    this.#select?.dispose();
    this.#join?.dispose();
    this.#pad?.dispose();
    this.#select = this.#join = this.#pad = undefined;
  }
}

/** Per-layer keys and values of a batch as native values. See the module doc for ownership. */
export class NativeKVCache extends CacheLayout {
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
    /** Shared by caches over the same tensors; see the module doc. */
    readonly storage: CacheStorage = new CacheStorage(
      nextPositions.length === 0 ? 0 : mask.length / nextPositions.length,
    ),
  ) {
    super();
  }

  /**
   * A native copy of a JS cache with `capacity` slots (≥ its length; default its length), uploaded
   * through the pad helper graph so it lands in the runtime's cache memory.
   */
  static async fromHost(ops: CacheOps, cache: KVCache, capacity = cache.length): Promise<NativeKVCache> {
    const dims = [cache.batchSize, cache.kvHeads, cache.length, cache.headDim];
    const host = [...cache.keys, ...cache.values].map((data) => ({ type: "float32", data, dims }));
    const out = await ops.pad(host, 0, capacity - cache.length);
    const L = cache.numLayers;
    return new NativeKVCache(
      ops,
      out.slice(0, L),
      out.slice(L),
      cache.mask.slice(),
      cache.nextPositions,
      cache.kvHeads,
      cache.headDim,
    );
  }

  /** Slots in the tensors (≥ {@link length}). */
  get capacity(): number {
    return this.keys[0]?.dims[2] ?? this.length;
  }
  /** Whether a forward pass may write this cache's next slots in its own tensors. */
  get appendable(): boolean {
    return this.storage.committed === this.length;
  }

  /**
   * A copy with `capacity` slots (≥ the length): a bigger buffer to append into, or the exact layout
   * ([B, kvh, S, D]) the concatenating graphs take.
   * @throws {RangeError} when `capacity` is below the length.
   */
  async resize(capacity: number): Promise<NativeKVCache> {
    if (capacity < this.length) throw new RangeError(`resize: capacity ${capacity} < length ${this.length}`);
    const out = await this.ops.pad([...this.keys, ...this.values], 0, capacity - this.capacity);
    const L = this.numLayers;
    return new NativeKVCache(
      this.ops,
      out.slice(0, L),
      out.slice(L),
      this.mask,
      this.nextPositions,
      this.kvHeads,
      this.headDim,
    );
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
    // A preallocated cache keeps its capacity (the freed slots join the unused ones); an exact one stays exact.
    const C = this.capacity > S ? this.capacity : newS;
    const out = await this.ops.select([...this.keys, ...this.values], rows, drop, C - (this.capacity - drop));
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
    const preallocated = this.capacity > this.length || other.capacity > other.length;
    const C = preallocated ? Math.max(this.capacity, other.capacity, S) : S;
    const out = await this.ops.join(
      [...this.keys, ...this.values],
      padA,
      [...other.keys, ...other.values],
      padB,
      C - padA - this.capacity,
      C - padB - other.capacity,
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

  /** A JS copy of the cache, slots [0, S) (for tests and debugging; CPU memory only). */
  toHost(): KVCache {
    const S = this.length, C = this.capacity, D = this.headDim, rows = this.batchSize * this.kvHeads;
    const exact = (v: OrtValue) => {
      const all = v.toArray() as Float32Array;
      if (C === S) return all;
      const out = new Float32Array(rows * S * D);
      for (let r = 0; r < rows; r++) out.set(all.subarray(r * C * D, (r * C + S) * D), r * S * D);
      return out;
    };
    return new KVCache(
      this.keys.map(exact),
      this.values.map(exact),
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
