/**
 * The key/value cache of a batch: per-layer tensors [B, kvh, S, D] plus the attention mask [B, S] and
 * each row's next position id. Rows can be selected (finished rows leave the batch) and batches joined
 * (new prompts enter it); shorter rows are left-padded with masked slots.
 *
 * @module
 */

/** What every kind of KV cache shares: per-layer keys, the mask [B * S] and each row's next position. */
export abstract class CacheLayout {
  abstract readonly keys: readonly unknown[];
  /** [B * S]: 1 for a real cached token, 0 for padding. */
  abstract readonly mask: Uint8Array;
  /** Next absolute position id of each row. */
  abstract readonly nextPositions: readonly number[];

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
}

/** Per-layer cached keys and values of a batch, in JavaScript memory. */
export class KVCache extends CacheLayout {
  /** @param keys per layer, [B, kvh, S, D] row-major. */
  constructor(
    readonly keys: readonly Float32Array[],
    readonly values: readonly Float32Array[],
    /** [B * S]: 1 for a real cached token, 0 for padding. */
    readonly mask: Uint8Array,
    /** Next absolute position id of each row (= its number of real tokens so far). */
    readonly nextPositions: readonly number[],
    readonly kvHeads: number,
    readonly headDim: number,
  ) {
    super();
    const expected = this.batchSize * kvHeads * this.length * headDim;
    for (const [l, k] of keys.entries()) {
      if (k.length !== expected || values[l]!.length !== expected) {
        throw new RangeError(
          `KVCache layer ${l}: expected ${expected} values, got ${k.length}/${values[l]!.length}`,
        );
      }
    }
  }

  /** An empty cache (S = 0) for `batchSize` rows. */
  static empty(numLayers: number, batchSize: number, kvHeads: number, headDim: number): KVCache {
    const none = Array.from({ length: numLayers }, () => new Float32Array(0));
    return new KVCache(none, none, new Uint8Array(0), new Array(batchSize).fill(0), kvHeads, headDim);
  }

  /** Nothing to release (JavaScript memory); present so that either kind of cache is disposed alike. */
  dispose(): void {}

  /** A cache holding only the given rows, in the given order (copies). */
  selectRows(rows: readonly number[]): KVCache {
    const S = this.length, block = this.kvHeads * S * this.headDim;
    const pick = (src: Float32Array) => {
      const out = new Float32Array(rows.length * block);
      rows.forEach((r, i) => out.set(src.subarray(r * block, (r + 1) * block), i * block));
      return out;
    };
    const mask = new Uint8Array(rows.length * S);
    rows.forEach((r, i) => mask.set(this.mask.subarray(r * S, (r + 1) * S), i * S));
    // Drop leading slots that are padding in every remaining row: they cost attention time for nothing.
    const trimmed = new KVCache(
      this.keys.map(pick),
      this.values.map(pick),
      mask,
      rows.map((r) => this.nextPositions[r]!),
      this.kvHeads,
      this.headDim,
    );
    return trimmed.trimLeft();
  }

  /** Remove leading slots that are padding in every row. */
  trimLeft(): KVCache {
    const S = this.length, B = this.batchSize;
    let drop = 0;
    outer: for (; drop < S; drop++) {
      for (let b = 0; b < B; b++) if (this.mask[b * S + drop]) break outer;
    }
    if (drop === 0 || B === 0) return this;
    return this.#resize(S - drop, -drop);
  }

  /** Left-pad every row to length `S` (>= current length). */
  padTo(S: number): KVCache {
    if (S < this.length) throw new RangeError(`padTo(${S}) is shorter than the cache (${this.length})`);
    return S === this.length ? this : this.#resize(S, S - this.length);
  }

  /** New cache of length `newS` with each row's slots shifted right by `shift` (negative = drop left). */
  #resize(newS: number, shift: number): KVCache {
    const S = this.length, B = this.batchSize, D = this.headDim, kvh = this.kvHeads;
    const move = (src: Float32Array) => {
      const out = new Float32Array(B * kvh * newS * D);
      for (let bh = 0; bh < B * kvh; bh++) {
        const from = Math.max(0, -shift), to = Math.max(0, shift);
        const n = Math.min(S - from, newS - to);
        out.set(src.subarray((bh * S + from) * D, (bh * S + from + n) * D), (bh * newS + to) * D);
      }
      return out;
    };
    const mask = new Uint8Array(B * newS);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < S; s++) {
        const t = s + shift;
        if (t >= 0 && t < newS) mask[b * newS + t] = this.mask[b * S + s]!;
      }
    }
    return new KVCache(this.keys.map(move), this.values.map(move), mask, this.nextPositions, kvh, D);
  }

  /** Rows of `this` followed by rows of `other`, both left-padded to the longer length. */
  concat(other: KVCache): KVCache {
    if (
      other.numLayers !== this.numLayers || other.kvHeads !== this.kvHeads || other.headDim !== this.headDim
    ) {
      throw new RangeError("Cannot join KV caches of different models");
    }
    if (this.batchSize === 0) return other;
    if (other.batchSize === 0) return this;
    const S = Math.max(this.length, other.length);
    const a = this.padTo(S), b = other.padTo(S);
    const join = (x: Float32Array, y: Float32Array) => {
      const out = new Float32Array(x.length + y.length);
      out.set(x);
      out.set(y, x.length);
      return out;
    };
    const mask = new Uint8Array(a.mask.length + b.mask.length);
    mask.set(a.mask);
    mask.set(b.mask, a.mask.length);
    return new KVCache(
      a.keys.map((k, l) => join(k, b.keys[l]!)),
      a.values.map((v, l) => join(v, b.values[l]!)),
      mask,
      [...a.nextPositions, ...b.nextPositions],
      this.kvHeads,
      this.headDim,
    );
  }
}
