/**
 * Seedable, splittable pseudo-random numbers for sampling.
 *
 * Algorithm: xoshiro256** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/) as the generator, seeded
 * from SplitMix64 (Steele, Lea & Flood; Vigna's `splitmix64.c`) exactly as the xoshiro authors
 * recommend: the four state words are the first four SplitMix64 outputs of a 64-bit seed.
 *
 * Streams: {@link sampleStream} hashes a run seed and a list of keys (e.g. variant, condition,
 * example id, sample id) into that 64-bit seed, so every (prompt, sample) pair gets its own stream that
 * does not depend on how many numbers other samples drew, on batch composition or on resume order.
 * The hash absorbs one 64-bit word at a time with the SplitMix64 finaliser, `h = mix64((h ^ w) +
 * 0x9e3779b97f4a7c15)`. Each key is encoded self-delimitingly: an integer as tag 1 and its 64-bit
 * two's-complement value; a string as tag 2, its UTF-8 byte length and the bytes packed little-endian
 * eight to a word; any other finite number as tag 3 and its IEEE-754 bits. With no keys the seed is
 * used as is, so `sampleStream(s)` is "xoshiro256** seeded by SplitMix64(s)".
 *
 * The generator's hot path uses only 32-bit integer arithmetic on (high, low) halves of the 64-bit
 * words; BigInt is used only when deriving a stream (once per sample) and by {@link
 * Xoshiro256StarStar.nextBigUint64}.
 *
 * @example
 * ```ts
 * import { sampleStream } from "./rng.ts";
 * const rng = sampleStream(42, "baseline_think_newline", "baseline", 17, 3);
 * const u = rng.nextFloat(); // in [0, 1), 53 random bits
 * ```
 *
 * @module
 */

/** A source of uniform random numbers. */
export interface Rng {
  /** The next uniform 32-bit unsigned integer, in [0, 2^32). */
  nextUint32(): number;
  /** The next uniform float in [0, 1) with 53 random bits (a multiple of 2^-53). */
  nextFloat(): number;
}

const MASK64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const TWO32 = 4294967296;
const TWO53 = 9007199254740992;

/** The SplitMix64 output function (a bijection of 64-bit words). */
function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * SplitMix64, the reference 64-bit generator of `splitmix64.c`. Uses BigInt: meant for seeding, not
 * for bulk draws.
 *
 * @example
 * ```ts
 * import { SplitMix64 } from "./rng.ts";
 * new SplitMix64(1234567n).next(); // 6457827717110365317n
 * ```
 */
export class SplitMix64 {
  #state: bigint;

  /**
   * @param seed any 64-bit unsigned value.
   * @throws {RangeError} when `seed` is outside [0, 2^64).
   */
  constructor(seed: bigint) {
    this.#state = checkSeed(seed);
  }

  /** @returns the next 64-bit output. */
  next(): bigint {
    this.#state = (this.#state + GOLDEN) & MASK64;
    return mix64(this.#state);
  }
}

/**
 * xoshiro256** 1.0 with its 256-bit state kept as eight 32-bit halves.
 *
 * `nextUint32` returns the high 32 bits of one 64-bit output; `nextFloat` uses the top 53 bits of one
 * output (`(x >>> 11) * 2^-53`, as recommended by the authors). Each call consumes one 64-bit output.
 */
export class Xoshiro256StarStar implements Rng {
  // s[i] = (h[i] << 32) | l[i], as unsigned 32-bit numbers.
  #h0 = 0;
  #l0 = 0;
  #h1 = 0;
  #l1 = 0;
  #h2 = 0;
  #l2 = 0;
  #h3 = 0;
  #l3 = 0;
  #outHi = 0;
  #outLo = 0;

  private constructor() {}

  /**
   * A generator with the given raw state.
   * @param state four 64-bit words `[s0, s1, s2, s3]`, not all zero.
   * @throws {RangeError} when a word is outside [0, 2^64) or all are zero.
   */
  static fromState(state: readonly [bigint, bigint, bigint, bigint]): Xoshiro256StarStar {
    if (state.map(checkSeed).every((w) => w === 0n)) {
      throw new RangeError("xoshiro256** state must not be all zero");
    }
    const g = new Xoshiro256StarStar();
    const [a, b, c, d] = state;
    g.#h0 = Number(a >> 32n);
    g.#l0 = Number(a & 0xffffffffn);
    g.#h1 = Number(b >> 32n);
    g.#l1 = Number(b & 0xffffffffn);
    g.#h2 = Number(c >> 32n);
    g.#l2 = Number(c & 0xffffffffn);
    g.#h3 = Number(d >> 32n);
    g.#l3 = Number(d & 0xffffffffn);
    return g;
  }

  /**
   * A generator whose state is the first four outputs of `SplitMix64(seed)`.
   * @throws {RangeError} when `seed` is outside [0, 2^64).
   */
  static fromSeed(seed: bigint): Xoshiro256StarStar {
    const sm = new SplitMix64(seed);
    return Xoshiro256StarStar.fromState([sm.next(), sm.next(), sm.next(), sm.next()]);
  }

  /** @returns the current state as four 64-bit words (to checkpoint or clone a stream). */
  state(): [bigint, bigint, bigint, bigint] {
    const w = (h: number, l: number) => (BigInt(h >>> 0) << 32n) | BigInt(l >>> 0);
    return [w(this.#h0, this.#l0), w(this.#h1, this.#l1), w(this.#h2, this.#l2), w(this.#h3, this.#l3)];
  }

  /** @returns an independent copy that will produce the same sequence. */
  clone(): Xoshiro256StarStar {
    return Xoshiro256StarStar.fromState(this.state());
  }

  /** Advance one step; leaves the 64-bit output in #outHi/#outLo. */
  #step(): void {
    const h1 = this.#h1, l1 = this.#l1;
    // r = rotl(s1 * 5, 7) * 9
    let p = (l1 >>> 0) * 5;
    let lo = p >>> 0;
    let hi = (Math.imul(h1, 5) + (p - lo) / TWO32) >>> 0;
    const rh = ((hi << 7) | (lo >>> 25)) >>> 0;
    const rl = ((lo << 7) | (hi >>> 25)) >>> 0;
    p = rl * 9;
    lo = p >>> 0;
    hi = (Math.imul(rh, 9) + (p - lo) / TWO32) >>> 0;
    this.#outHi = hi;
    this.#outLo = lo;
    // t = s1 << 17
    const th = (h1 << 17) | (l1 >>> 15);
    const tl = l1 << 17;
    this.#h2 ^= this.#h0;
    this.#l2 ^= this.#l0;
    this.#h3 ^= h1;
    this.#l3 ^= l1;
    this.#h1 = h1 ^ this.#h2;
    this.#l1 = l1 ^ this.#l2;
    this.#h0 ^= this.#h3;
    this.#l0 ^= this.#l3;
    this.#h2 ^= th;
    this.#l2 ^= tl;
    // s3 = rotl(s3, 45): swap halves, then rotate by 13.
    const h3 = this.#h3, l3 = this.#l3;
    this.#h3 = (l3 << 13) | (h3 >>> 19);
    this.#l3 = (h3 << 13) | (l3 >>> 19);
  }

  /** @returns the next 64-bit output as a BigInt (slow; for tests and reference comparisons). */
  nextBigUint64(): bigint {
    this.#step();
    return (BigInt(this.#outHi) << 32n) | BigInt(this.#outLo);
  }

  /** @returns the high 32 bits of the next 64-bit output, in [0, 2^32). */
  nextUint32(): number {
    this.#step();
    return this.#outHi;
  }

  /** @returns a uniform float in [0, 1) from the top 53 bits of the next 64-bit output. */
  nextFloat(): number {
    this.#step();
    return (this.#outHi * 2097152 + (this.#outLo >>> 11)) / TWO53;
  }
}

/** A key part for {@link sampleStream}. */
export type StreamKey = number | string;

/**
 * The 64-bit seed of the stream for `(seed, ...keys)` (see the module doc for the encoding).
 * @throws {RangeError} for an invalid seed or a key that is not a finite number or a string.
 */
export function deriveStreamSeed(seed: number | bigint, ...keys: readonly StreamKey[]): bigint {
  let h = checkSeed(typeof seed === "bigint" ? seed : numberSeed(seed));
  const absorb = (w: bigint) => {
    h = mix64(((h ^ w) + GOLDEN) & MASK64);
  };
  keys.forEach((key, i) => {
    if (typeof key === "string") {
      const bytes = new TextEncoder().encode(key);
      absorb(2n);
      absorb(BigInt(bytes.length));
      for (let off = 0; off < bytes.length; off += 8) {
        let w = 0n;
        for (let j = Math.min(bytes.length, off + 8) - 1; j >= off; j--) w = (w << 8n) | BigInt(bytes[j]!);
        absorb(w);
      }
    } else if (typeof key === "number" && Number.isSafeInteger(key)) {
      absorb(1n);
      absorb(BigInt.asUintN(64, BigInt(key)));
    } else if (typeof key === "number" && Number.isFinite(key)) {
      const view = new DataView(new ArrayBuffer(8));
      view.setFloat64(0, key);
      absorb(3n);
      absorb(view.getBigUint64(0));
    } else {
      throw new RangeError(
        `Stream key ${i} must be a string or a finite number, got ${
          typeof key === "number" ? key : typeof key
        }`,
      );
    }
  });
  return h;
}

/**
 * The random stream of one (prompt, sample): xoshiro256** seeded from `seed` hashed with `keys`.
 * Same arguments give the same stream; any change of a key gives an unrelated stream.
 *
 * @param seed the run seed: a non-negative safe integer or a BigInt in [0, 2^64).
 * @param keys e.g. `variant, condition, exampleId, sampleId`; integers, other finite numbers and
 *   strings are all distinct (`1` ≠ `"1"`).
 * @returns a fresh generator.
 * @throws {RangeError} for an invalid seed or key.
 * @example
 * ```ts
 * import { sampleStream } from "./rng.ts";
 * const a = sampleStream(42, "baseline", 7, 0).nextUint32();
 * const b = sampleStream(42, "baseline", 7, 0).nextUint32();
 * console.assert(a === b);
 * ```
 */
export function sampleStream(seed: number | bigint, ...keys: readonly StreamKey[]): Xoshiro256StarStar {
  return Xoshiro256StarStar.fromSeed(deriveStreamSeed(seed, ...keys));
}

function numberSeed(seed: number): bigint {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`Seed must be a non-negative safe integer or a BigInt, got ${seed}`);
  }
  return BigInt(seed);
}

function checkSeed(seed: bigint): bigint {
  if (typeof seed !== "bigint" || seed < 0n || seed > MASK64) {
    throw new RangeError(`64-bit seed must be a BigInt in [0, 2^64), got ${String(seed)}`);
  }
  return seed;
}
