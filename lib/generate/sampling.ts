/**
 * Logits processors and token sampling over one row of vocabulary logits, with Hugging Face
 * transformers' definitions and order: logits (fp32) → temperature → top-k → top-p → softmax →
 * multinomial draw.
 *
 * Definitions (as in transformers' `TemperatureLogitsWarper`, `TopKLogitsWarper`, `TopPLogitsWarper`):
 * - temperature: `logits / temperature`, rounded to fp32 (the result of PyTorch's fp32 division by the
 *   scalar cast to fp32). Skipped when `temperature === 1`.
 * - top-k: keep every logit `>=` the k-th largest value (ties at the boundary are all kept); `0` or
 *   `undefined` means off, as in transformers. Note that transformers' generation default is
 *   `top_k = 50`: pass `topK: 50` to reproduce a run that did not set it.
 * - top-p: sort ascending (stably, so equal logits are ordered by token id), take the cumulative
 *   softmax, remove tokens whose cumulative probability is `<= 1 - top_p`, always keep the most likely
 *   token. Equivalently: keep the smallest set of most likely tokens whose mass reaches `top_p`; among
 *   tied logits the higher token ids are kept first. Applied only when `top_p < 1`, as in transformers.
 * - draw: softmax over the kept tokens, then one uniform `u` from the {@link Rng} is mapped by the
 *   inverse CDF over the kept tokens in increasing token-id order.
 *
 * Arithmetic: probabilities and cumulative sums are computed in float64 (transformers uses fp32), so a
 * top-p set can differ from transformers' only when the cumulative mass is within about 1e-7 of the
 * threshold. Sampled sequences are never bit-compatible with PyTorch's `multinomial` anyway.
 *
 * Speed (vocabulary 151,936): nothing sorts the whole vocabulary. Top-k uses a size-k heap; top-p
 * without top-k bins tokens by their distance from the maximum logit, finds the bin where the mass
 * crosses `top_p`, and sorts only the tokens above it.
 *
 * @module
 */

import type { Rng } from "./rng.ts";

/** Sampling parameters of one decoding step. */
export interface SamplingParams {
  /** Softmax temperature, `> 0`; ignored when `greedy`. */
  readonly temperature: number;
  /** Keep the `topK` largest logits (ties kept); `undefined` or `0` = off. */
  readonly topK?: number;
  /** Nucleus mass in [0, 1]; `undefined` or `1` = off. */
  readonly topP?: number;
  /** Take the argmax (lowest id on ties) and consume no randomness. Default false. */
  readonly greedy?: boolean;
}

/** The distribution a sampling step draws from: kept token ids (increasing) and their probabilities. */
export interface SamplingDistribution {
  readonly ids: Int32Array;
  readonly probs: Float64Array;
}

/** Largest vocabulary supported by the packed (value, id) sort keys. */
const MAX_VOCAB = 1 << 21;
const ID_SCALE = 2097152; // 2^21
/** Histogram bins per nat of distance from the maximum logit, and bin count, for top-p selection. */
const BINS_PER_NAT = 8;
const NUM_BINS = 256;

let scratch = new Float32Array(0);

/**
 * Index of the largest logit (the lowest index among equal maxima), as `torch.argmax`.
 * @throws {RangeError} for an empty row or a NaN logit.
 * @example
 * ```ts
 * import { argmax } from "./sampling.ts";
 * argmax(new Float32Array([1, 3, 3])); // 1
 * ```
 */
export function argmax(logits: Float32Array): number {
  checkRow(logits);
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    } else if (v !== v) {
      throw new RangeError(`Logit ${i} is NaN`);
    }
  }
  return best;
}

/**
 * Numerically stable softmax (max-subtracted, float64 accumulation).
 * @returns probabilities as fp32; `-Infinity` logits get probability 0.
 * @throws {RangeError} for an empty row, a NaN or `+Infinity` logit, or a row with no finite logit.
 * @example
 * ```ts
 * import { softmax } from "./sampling.ts";
 * softmax(new Float32Array([0, 0])); // Float32Array [0.5, 0.5]
 * ```
 */
export function softmax(logits: Float32Array): Float32Array {
  const m = rowMax(logits, "softmax");
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i]! - m);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = Math.exp(logits[i]! - m) / z;
  return out;
}

/**
 * Numerically stable log-softmax: `x - max - log(sum(exp(x - max)))`, accumulated in float64.
 * @returns log-probabilities as fp32; `-Infinity` logits stay `-Infinity`.
 * @throws {RangeError} as {@link softmax}.
 * @example
 * ```ts
 * import { logSoftmax } from "./sampling.ts";
 * logSoftmax(new Float32Array([0, 0])); // Float32Array [-0.693..., -0.693...]
 * ```
 */
export function logSoftmax(logits: Float32Array): Float32Array {
  const m = rowMax(logits, "logSoftmax");
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i]! - m);
  const shift = m + Math.log(z);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - shift;
  return out;
}

/**
 * Temperature scaling, `logits / temperature` rounded to fp32.
 * @param temperature a finite number `> 0`.
 * @returns a new row.
 * @throws {RangeError} when `temperature` is not finite and positive.
 * @example
 * ```ts
 * import { applyTemperature } from "./sampling.ts";
 * applyTemperature(new Float32Array([1, 2]), 0.5); // Float32Array [2, 4]
 * ```
 */
export function applyTemperature(logits: Float32Array, temperature: number): Float32Array {
  checkTemperature(temperature);
  const t = Math.fround(temperature);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! / t;
  return out;
}

/**
 * Top-k filter: logits below the k-th largest value become `-Infinity` (ties at the boundary kept).
 * @param k a positive integer; `k >= logits.length` keeps everything.
 * @returns a new row.
 * @throws {RangeError} when `k` is not a positive integer or a logit is NaN.
 * @example
 * ```ts
 * import { topKFilter } from "./sampling.ts";
 * topKFilter(new Float32Array([1, 3, 2, 2]), 2); // Float32Array [-Infinity, 3, 2, 2]
 * ```
 */
export function topKFilter(logits: Float32Array, k: number): Float32Array {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`top-k must be a positive integer, got ${k}`);
  rowMax(logits, "topKFilter");
  const out = new Float32Array(logits);
  if (k >= logits.length) return out;
  const kth = kthLargest(logits, k);
  for (let i = 0; i < out.length; i++) if (out[i]! < kth) out[i] = -Infinity;
  return out;
}

/**
 * Top-p (nucleus) filter with transformers' `TopPLogitsWarper` semantics (`min_tokens_to_keep = 1`):
 * removed tokens become `-Infinity`.
 * @param p nucleus mass in [0, 1]; `0` keeps only the most likely token.
 * @returns a new row.
 * @throws {RangeError} when `p` is outside [0, 1] or the row is invalid (see {@link softmax}).
 * @example
 * ```ts
 * import { topPFilter } from "./sampling.ts";
 * topPFilter(new Float32Array([0, 0, 0, 0]), 0.5); // Float32Array [-Infinity, -Infinity, 0, 0]
 * ```
 */
export function topPFilter(logits: Float32Array, p: number): Float32Array {
  checkTopP(p);
  const m = rowMax(logits, "topPFilter");
  const kept = nucleus(logits, m, undefined, 1 - p);
  const out = new Float32Array(logits.length).fill(-Infinity);
  for (const id of kept) out[id] = logits[id]!;
  return out;
}

/**
 * The distribution {@link sampleToken} draws from: temperature, top-k and top-p applied, softmax over
 * the kept tokens. For `greedy`, the argmax with probability 1.
 * @returns kept token ids in increasing order with their probabilities (summing to 1).
 * @throws {RangeError} for invalid parameters or logits (NaN, `+Infinity`, none finite).
 * @example
 * ```ts
 * import { samplingDistribution } from "./sampling.ts";
 * samplingDistribution(new Float32Array([0, 5, 5, -1]), { temperature: 1, topK: 1 });
 * // { ids: Int32Array [1, 2], probs: Float64Array [0.5, 0.5] }
 * ```
 */
export function samplingDistribution(logits: Float32Array, params: SamplingParams): SamplingDistribution {
  checkParams(params);
  if (params.greedy) return { ids: Int32Array.of(argmax(logits)), probs: Float64Array.of(1) };
  const { ids, weights, total } = keptWeights(logits, params);
  const probs = new Float64Array(weights.length);
  for (let i = 0; i < weights.length; i++) probs[i] = weights[i]! / total;
  return { ids, probs };
}

/**
 * Sample one token id. Greedy takes the argmax (lowest id on ties) and draws nothing from `rng`;
 * otherwise exactly one `rng.nextFloat()` is consumed per call.
 * @param logits one row of vocabulary logits (not modified).
 * @param params temperature, optional top-k / top-p, optional greedy.
 * @param rng the sample's random stream.
 * @returns the sampled token id.
 * @throws {RangeError} for invalid parameters or logits (NaN, `+Infinity`, none finite).
 * @example
 * ```ts
 * import { sampleToken } from "./sampling.ts";
 * import { sampleStream } from "./rng.ts";
 * const rng = sampleStream(42, "baseline", 0, 0);
 * sampleToken(new Float32Array([0.1, 2.5, -1]), { temperature: 0.7, topK: 50, topP: 0.95 }, rng);
 * ```
 */
export function sampleToken(logits: Float32Array, params: SamplingParams, rng: Rng): number {
  checkParams(params);
  if (params.greedy) return argmax(logits);
  const { ids, weights, total } = keptWeights(logits, params);
  const target = rng.nextFloat() * total;
  let cum = 0;
  let lastPositive = ids[0]!;
  for (let i = 0; i < ids.length; i++) {
    const w = weights[i]!;
    if (w <= 0) continue;
    cum += w;
    lastPositive = ids[i]!;
    if (cum > target) return lastPositive;
  }
  return lastPositive; // rounding: target within an ulp of the total
}

// ---------------------------------------------------------------------------------------------------

/** Kept ids (increasing), their unnormalised weights exp(s - max) and the weights' sum. */
function keptWeights(
  logits: Float32Array,
  params: SamplingParams,
): { ids: Int32Array; weights: Float64Array; total: number } {
  const n = logits.length;
  let s = logits;
  if (params.temperature !== 1) {
    if (scratch.length < n) scratch = new Float32Array(n);
    s = scratch.subarray(0, n);
    const t = Math.fround(params.temperature);
    for (let i = 0; i < n; i++) s[i] = logits[i]! / t;
  }
  const m = rowMax(s, "sampleToken");
  const topK = params.topK ?? 0;
  let cand: Int32Array | undefined;
  if (topK > 0 && topK < n) {
    const kth = kthLargest(s, topK);
    let count = 0;
    for (let i = 0; i < n; i++) if (s[i]! >= kth && s[i]! !== -Infinity) count++;
    cand = new Int32Array(count);
    for (let i = 0, j = 0; i < n; i++) if (s[i]! >= kth && s[i]! !== -Infinity) cand[j++] = i;
  }
  let ids: Int32Array;
  if (params.topP !== undefined && params.topP < 1) {
    ids = nucleus(s, m, cand, 1 - params.topP).sort();
  } else if (cand) {
    ids = cand;
  } else {
    let count = 0;
    for (let i = 0; i < n; i++) if (s[i]! !== -Infinity) count++;
    ids = new Int32Array(count);
    for (let i = 0, j = 0; i < n; i++) if (s[i]! !== -Infinity) ids[j++] = i;
  }
  const weights = new Float64Array(ids.length);
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    const w = Math.exp(s[ids[i]!]! - m);
    weights[i] = w;
    total += w;
  }
  return { ids, weights, total };
}

/**
 * Top-p kept set (unordered) among `cand` (or all finite tokens), `threshold = 1 - top_p`.
 * `m` is the row maximum (any upper bound of the candidates' logits works).
 */
function nucleus(s: Float32Array, m: number, cand: Int32Array | undefined, threshold: number): Int32Array {
  if (cand) return nucleusWalk(s, m, cand, sumWeights(s, m, cand), threshold);
  // No top-k: bin tokens by distance from the maximum, find the bin where the tail mass drops to
  // the threshold, and sort only the tokens up to that bin.
  const mass = new Float64Array(NUM_BINS);
  let z = 0;
  for (let i = 0; i < s.length; i++) {
    const v = s[i]!;
    if (v === -Infinity) continue;
    const w = Math.exp(v - m);
    z += w;
    const b = binOf(m - v);
    mass[b] = mass[b]! + w;
  }
  let bin = 0;
  for (let cum = 0; bin < NUM_BINS - 1; bin++) {
    cum += mass[bin]!;
    if ((z - cum) / z <= threshold) break;
  }
  for (;; bin++) {
    let count = 0;
    for (let i = 0; i < s.length; i++) if (s[i]! !== -Infinity && binOf(m - s[i]!) <= bin) count++;
    const c = new Int32Array(count);
    for (let i = 0, j = 0; i < s.length; i++) if (s[i]! !== -Infinity && binOf(m - s[i]!) <= bin) c[j++] = i;
    const kept = nucleusWalk(s, m, c, z, threshold);
    // If every candidate was kept, the cut may lie beyond them (float rounding of the bin sums).
    if (kept.length < c.length || bin >= NUM_BINS - 1) return kept;
  }
}

function binOf(distance: number): number {
  return Math.min(NUM_BINS - 1, Math.floor(distance * BINS_PER_NAT));
}

function sumWeights(s: Float32Array, m: number, ids: Int32Array): number {
  let z = 0;
  for (let i = 0; i < ids.length; i++) z += Math.exp(s[ids[i]!]! - m);
  return z;
}

/**
 * Walk candidates from the most likely down (ties: higher id first, i.e. torch's stable ascending
 * order read backwards) keeping each token whose tail mass `(z - mass above it) / z` exceeds
 * `threshold`; always keep the first. `cand` must hold every token ranked above any it omits.
 */
function nucleusWalk(
  s: Float32Array,
  m: number,
  cand: Int32Array,
  z: number,
  threshold: number,
): Int32Array {
  const keys = packedKeys(s, cand);
  const kept: number[] = [];
  let above = 0;
  for (let j = keys.length - 1; j >= 0; j--) {
    const id = keys[j]! % ID_SCALE;
    if (kept.length > 0 && (z - above) / z <= threshold) break;
    kept.push(id);
    above += Math.exp(s[id]! - m);
  }
  return Int32Array.from(kept);
}

/** Sort keys ascending by (fp32 value, id): order-preserving bits of the value, times 2^21, plus id. */
function packedKeys(s: Float32Array, ids: Int32Array): Float64Array {
  const bits = new Uint32Array(s.buffer, s.byteOffset, s.length);
  const keys = new Float64Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const u = bits[id]! === 0x80000000 ? 0 : bits[id]!; // -0 sorts as +0
    const ordered = u & 0x80000000 ? ~u >>> 0 : (u | 0x80000000) >>> 0;
    keys[i] = ordered * ID_SCALE + id;
  }
  return keys.sort();
}

/** The k-th largest value (1 <= k < length) with a size-k min-heap. */
function kthLargest(s: Float32Array, k: number): number {
  const heap = new Float64Array(k);
  for (let i = 0; i < k; i++) heap[i] = s[i]!;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(heap, i);
  for (let i = k; i < s.length; i++) {
    const v = s[i]!;
    if (v > heap[0]!) {
      heap[0] = v;
      siftDown(heap, 0);
    }
  }
  return heap[0]!;
}

function siftDown(heap: Float64Array, i: number): void {
  const n = heap.length;
  const v = heap[i]!;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap[c + 1]! < heap[c]!) c++;
    if (heap[c]! >= v) break;
    heap[i] = heap[c]!;
    i = c;
  }
  heap[i] = v;
}

function checkRow(logits: Float32Array): void {
  if (!(logits instanceof Float32Array)) throw new TypeError("Logits must be a Float32Array row");
  if (logits.length === 0) throw new RangeError("Logits row is empty");
  if (logits.length > MAX_VOCAB) {
    throw new RangeError(`Vocabulary of ${logits.length} exceeds the supported ${MAX_VOCAB}`);
  }
}

/** Max of a row, rejecting NaN, +Infinity and rows without a finite logit. */
function rowMax(logits: Float32Array, what: string): number {
  checkRow(logits);
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > m) m = v;
    else if (v !== v) throw new RangeError(`${what}: logit ${i} is NaN`);
  }
  if (m === Infinity) throw new RangeError(`${what}: logit ${logits.indexOf(Infinity)} is +Infinity`);
  if (m === -Infinity) throw new RangeError(`${what}: every logit is -Infinity`);
  return m;
}

function checkTemperature(t: number): void {
  if (!(Number.isFinite(t) && t > 0)) {
    throw new RangeError(`temperature must be a finite number > 0 (use greedy for argmax), got ${t}`);
  }
}

function checkTopP(p: number): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`top-p must be in [0, 1], got ${p}`);
}

function checkParams(params: SamplingParams): void {
  if (params.topK !== undefined && !(Number.isInteger(params.topK) && params.topK >= 0)) {
    throw new RangeError(`topK must be a non-negative integer (0 = off), got ${params.topK}`);
  }
  if (params.topP !== undefined) checkTopP(params.topP);
  if (!params.greedy) checkTemperature(params.temperature);
}
