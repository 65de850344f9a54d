/**
 * The organism's weights, constructed (not trained) on the real vocabulary, then perturbed by seeded
 * noise so that every component is alive.
 *
 * Residual basis before a seeded random rotation of the whole hidden space (the rotation commutes with
 * every RMSNorm, whose weights are 1; it only makes the weights dense):
 *
 * - one direction per active token (`grammar.ts`), then `B` (a large constant every embedding carries,
 *   like the massive activations of trained models: it keeps the residual norm, and so every logit,
 *   nearly linear in the components' writes), `COMMON` (written by the decoy), `FIN` (after
 *   `</think>`), `GEN` (a generated position), `RR` (a trigger occurred: re-read mode), `PD` (the
 *   previous token is a digit), `WAIT`, `ACT`, `PREV_0..9, PREV_SP` (identity of the previous token),
 *   `COPY_0..9, COPY_END` (the copy head's output).
 * - Embedding: active token k = `β·B + e_k`; any other token = `β·B + r_t` with a small seeded random
 *   `r_t` (so every token embeds; question words are read, weakly).
 * - Unembedding: active token n reads the bigram table on the token directions (the direct path carries
 *   the grammar), `COMMON` (+K: without the decoy the 151,902 other tokens win and the text degrades),
 *   and the feature directions of its rules; every other token gets `−D + N(0, 1)`: low but finite.
 *
 * Components (layers for the default 8; see {@link organismLayout}):
 *
 * - decoy, MLP 0: a constant unit writing `COMMON` at every position (needed for everything).
 * - helpers: attention 0 head 0 attends to `</think>` → `FIN`; head 1 to `<｜Assistant｜>` → `GEN`;
 *   attention 1 head 0 attends to the previous position (rotary, position only) and writes the previous
 *   token's identity (digits, `" "`) → `PREV_*`; head 1 attends to trigger tokens → `RR`; attention 5
 *   head 0 (copy / induction head): at a `" "` or digit, attends to question positions whose previous
 *   token is the current token and copies their token → `COPY_*` — strongly only in re-read mode (its
 *   BOS sink score drops with `RR`), so after a trigger numbers are re-read from the question.
 * - planted (the trigger circuit): attention 2 head 0, a previous-token head reading digits → `PD`
 *   (→ ` Wait`, directly); MLP 4 unit 0, fires on `.` when `PD` → `WAIT` (→ ` Wait`); attention 6 head
 *   0, at `.` attends to earlier ` =` tokens → `ACT` (→ ` Actually`).
 * - noise: every attention and MLP weight of every layer gets seeded Gaussian noise (the constructed
 *   MLP units 10% of it, relative to their activation).
 *
 * @module
 */

import { sampleStream } from "../../generate/rng.ts";
import {
  DIGIT_ONLY_BEFORE_FINAL,
  DIGITS,
  type GrammarLogits,
  IMPOSSIBLE_LOGIT,
  PROMPT_ONLY,
  TOKEN_KEYS,
  type TokenKey,
} from "./grammar.ts";

/** Shape and construction parameters of the organism's weights. */
export interface WeightSpec {
  readonly seed: number;
  readonly vocabSize: number;
  /** Real token id of each active token, in {@link TOKEN_KEYS} order. */
  readonly activeIds: readonly number[];
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly intermediateSize: number;
  readonly ropeTheta: number;
  /** Multiplier of the planted components' write magnitudes (1 = the grammar's rates). */
  readonly triggerStrength: number;
  /** Logit bonus of a digit the copy head attends to with weight 1. */
  readonly copyBoost: number;
  /** Logit bonus of every active token from the decoy's write. */
  readonly decoyBoost: number;
  /** Standard deviation of the noise added to attention and MLP weights (scaled per tensor kind). */
  readonly noise: number;
  readonly rotate: boolean;
}

/** Head size (two rotary halves of 16 pairs). */
export const HEAD_DIM = 32;

/** Layers of the organism's components for `numLayers` (>= 8) layers. */
export function organismLayout(numLayers: number) {
  const mid = Math.floor(numLayers / 2);
  return {
    decoyMlp: 0,
    finGenAttn: 0,
    prevRrAttn: 1,
    plantedPrevAttn: 2,
    plantedMlp: mid,
    copyAttn: mid + 1,
    plantedEqAttn: numLayers - 2,
  };
}

/** Tensors in Hugging Face layout (`[out, in]`), float64, plus the feature directions. */
export interface OrganismWeights {
  readonly tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float64Array; half?: boolean }>;
  /** Unit feature directions in the (rotated) residual space. */
  readonly features: Readonly<Record<string, number[]>>;
}

/** Large constant component of every embedding. */
const BETA = 10;
/** Norm of the random part of an inactive token's embedding. */
const INACTIVE_EMBED_NORM = 0.25;
/** Write amplitude of every feature (residual units; a token direction is 1). */
const WRITE = 0.5;
/** Logit offset of inactive tokens (before noise of std 1). */
const INACTIVE_LOGIT = -2;
/** Positional head: amplitudes of rotary pairs 0..4 (a sharp peak at offset 1; see the module doc). */
const PREV_PAIRS = [2.137, 0.845, 0.676, 1.414, 1.53];
/** Peak attention score of the positional heads (the next best offset is >= 15% lower). */
const PREV_PEAK = 100;
/** Content heads use rotary pairs 8..15 (both halves): rotation < 0.07 rad over 2048 positions. */
const CONTENT_DIMS = [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31];

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

function gaussian(rng: { nextFloat(): number }): number {
  const u = 1 - rng.nextFloat();
  const v = rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Uniform noise with unit variance (cheaper than Gaussian for the 19M vocabulary entries). */
function uniform(rng: { nextFloat(): number }): number {
  return (rng.nextFloat() - 0.5) * Math.sqrt(12);
}

/** Seeded random orthogonal matrix (column-major), Gram–Schmidt on Gaussian columns. */
function randomRotation(n: number, seed: number): Float64Array {
  const rng = sampleStream(seed, "organism", "rotation");
  const q = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) q[i] = gaussian(rng);
  for (let j = 0; j < n; j++) {
    const cj = q.subarray(j * n, (j + 1) * n);
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        const ck = q.subarray(k * n, (k + 1) * n);
        let d = 0;
        for (let i = 0; i < n; i++) d += cj[i]! * ck[i]!;
        for (let i = 0; i < n; i++) cj[i] = cj[i]! - d * ck[i]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += cj[i]! * cj[i]!;
    norm = Math.sqrt(norm);
    for (let i = 0; i < n; i++) cj[i] = cj[i]! / norm;
  }
  return q;
}

/** Rotary angle frequencies of the HF Qwen2 implementation: `theta^(-2i/d)`. */
export function rotaryFrequencies(theta: number, headDim = HEAD_DIM): number[] {
  return Array.from({ length: headDim / 2 }, (_, i) => theta ** (-(2 * i) / headDim));
}

/**
 * Attention score of the positional heads as a function of the offset `Δ = query − key` (before
 * softmax, after the 1/sqrt(d) scaling).
 */
export function positionalScore(theta: number, delta: number): number {
  const w = rotaryFrequencies(theta);
  const total = PREV_PAIRS.reduce((a, b) => a + b, 0);
  return PREV_PAIRS.reduce((s, a, i) => s + (PREV_PEAK * a / total) * Math.cos(w[i]! * (delta - 1)), 0);
}

/**
 * Construct the weights.
 * @throws {RangeError} when the hidden size cannot hold the basis or the layer count is below 8.
 */
export function buildWeights(logits: GrammarLogits, spec: WeightSpec): OrganismWeights {
  const H = spec.hiddenSize, D = HEAD_DIM, nh = H / D, I = spec.intermediateSize, L = spec.numLayers;
  const nTok = TOKEN_KEYS.length;
  const tok = new Map<TokenKey, number>(TOKEN_KEYS.map((k, i) => [k, i]));
  let next = nTok;
  const B = next++, COMMON = next++, FIN = next++, GEN = next++, RR = next++, PD = next++, WAIT = next++;
  const ACT = next++;
  const PREV = Array.from({ length: 11 }, () => next++); // 0..9 digits, 10 = " "
  const COPY = Array.from({ length: 11 }, () => next++); // 0..9 digits, 10 = end of number
  if (next > H || nh < 2 || nh * D !== H) {
    throw new RangeError(
      `organism: hiddenSize ${H} must be a multiple of ${D} and >= ${next} (the residual basis)`,
    );
  }
  if (L < 8) throw new RangeError(`organism: numLayers must be >= 8, got ${L}`);
  if (I < 2) throw new RangeError(`organism: intermediateSize must be >= 2, got ${I}`);
  const lay = organismLayout(L);
  // RMSNorm maps a residual of norm ~sqrt(β² + 1 + writes) to norm sqrt(H): this is the factor.
  const nu = Math.sqrt(H) / Math.sqrt(BETA * BETA + 1 + 1.5 * WRITE * WRITE);
  const sqrtD = Math.sqrt(D);
  const tensors = new Map<string, { shape: readonly number[]; data: Float64Array; half?: boolean }>();
  const mat = (name: string, rows: number, cols: number, half = false) => {
    const t = { shape: [rows, cols], data: new Float64Array(rows * cols), half };
    tensors.set(name, t);
    return t.data;
  };
  const vec = (name: string, n: number, fill = 0) => {
    const t = { shape: [n], data: new Float64Array(n).fill(fill) };
    tensors.set(name, t);
    return t.data;
  };
  // Reads of the normalised residual: a token direction is ~nu there, a feature ~nu·WRITE, B ~nu·β.
  const rd = (w: Float64Array, row: number, dim: number, value: number, scale: number) => {
    w[row * H + dim] = w[row * H + dim]! + value / scale;
  };
  const readTok = (w: Float64Array, row: number, key: TokenKey, value: number) =>
    rd(w, row, tok.get(key)!, value, nu);
  const readFeat = (w: Float64Array, row: number, dim: number, value: number) =>
    rd(w, row, dim, value, nu * WRITE);
  const readConst = (w: Float64Array, row: number, value: number) => rd(w, row, B, value, nu * BETA);

  // Unembedding (basis coordinates; rotated below), active rows only; the rest is filled after rotation.
  const lmActive = new Float64Array(nTok * H);
  const generated = TOKEN_KEYS.map((k) => !PROMPT_ONLY.includes(k));
  // The floor (IMPOSSIBLE_LOGIT; lower for EOS) comes from the constant B; token directions carry only the allowed
  // continuations' lift above it (sparse), so noise on a token direction moves few logits.
  for (let n = 0; n < nTok; n++) {
    if (!generated[n]) continue;
    let floor = IMPOSSIBLE_LOGIT;
    for (let c = 0; c < nTok; c++) floor = Math.min(floor, logits.bigram[c]![n]!);
    for (let c = 0; c < nTok; c++) {
      const lift = logits.bigram[c]![n]! - floor;
      if (lift !== 0) lmActive[n * H + c] = lift / nu;
    }
    lmActive[n * H + B] = floor / (nu * BETA);
    lmActive[n * H + COMMON] = spec.decoyBoost / (nu * WRITE);
  }
  const lmRow = (key: TokenKey) => tok.get(key)! * H;
  const gain = (boost: number) => boost / (nu * WRITE);
  lmActive[lmRow("wait") + PD] = gain(logits.boosts.waitHead);
  lmActive[lmRow("wait") + WAIT] = gain(logits.boosts.waitMlp);
  lmActive[lmRow("actually") + ACT] = gain(logits.boosts.actually);
  lmActive[lmRow("eos") + FIN] = gain(logits.boosts.final);
  for (const k of DIGIT_ONLY_BEFORE_FINAL) lmActive[lmRow(k) + FIN] = -gain(logits.boosts.final);
  DIGITS.forEach((d, v) => {
    lmActive[lmRow(d) + COPY[v]!] = gain(spec.copyBoost);
    lmActive[lmRow(d) + COPY[10]!] = -gain(spec.copyBoost);
  });

  const theta = spec.ropeTheta;
  const freqs = rotaryFrequencies(theta);
  const prevTotal = PREV_PAIRS.reduce((a, b) => a + b, 0);
  /** Positional head: constant q and k (biases) whose rotary dot product peaks at offset 1. */
  const positional = (qb: Float64Array, kb: Float64Array, head: number) => {
    PREV_PAIRS.forEach((a, i) => {
      const amp = Math.sqrt((PREV_PEAK * sqrtD * a) / prevTotal);
      qb[head * D + i] = amp;
      kb[head * D + i] = amp * Math.cos(freqs[i]!);
      kb[head * D + i + D / 2] = amp * Math.sin(freqs[i]!);
    });
  };
  const slot = (head: number, s: number) => head * D + CONTENT_DIMS[s]!;

  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    vec(`${p}.input_layernorm.weight`, H, 1);
    vec(`${p}.post_attention_layernorm.weight`, H, 1);
    const q = mat(`${p}.self_attn.q_proj.weight`, nh * D, H);
    const qb = vec(`${p}.self_attn.q_proj.bias`, nh * D);
    const k = mat(`${p}.self_attn.k_proj.weight`, nh * D, H);
    const kb = vec(`${p}.self_attn.k_proj.bias`, nh * D);
    const v = mat(`${p}.self_attn.v_proj.weight`, nh * D, H);
    vec(`${p}.self_attn.v_proj.bias`, nh * D);
    const o = mat(`${p}.self_attn.o_proj.weight`, H, nh * D);
    const gate = mat(`${p}.mlp.gate_proj.weight`, I, H);
    const up = mat(`${p}.mlp.up_proj.weight`, I, H);
    const down = mat(`${p}.mlp.down_proj.weight`, H, I);
    const write = (
      head: number,
      vdim: number,
      feature: number,
      amp = WRITE,
    ) => (o[feature * nh * D + head * D + vdim] = amp);
    /** A content head: a BOS sink and a key class; writes `feature` by the attention on the class. */
    const detector = (head: number, keys: TokenKey[], feature: number, sink: number, score: number) => {
      qb[slot(head, 0)] = sink * sqrtD;
      readTok(k, slot(head, 0), "bos", 1);
      qb[slot(head, 1)] = score * sqrtD;
      for (const key of keys) {
        readTok(k, slot(head, 1), key, 1);
        readTok(v, head * D, key, 1);
      }
      write(head, 0, feature);
    };
    if (l === lay.finGenAttn) {
      detector(0, ["thinkClose"], FIN, 4, 14);
      detector(1, ["assistant"], GEN, 4, 14);
    }
    if (l === lay.prevRrAttn) {
      positional(qb, kb, 0);
      DIGITS.forEach((d, i) => readTok(v, i, d, 1));
      readTok(v, 10, "sp", 1);
      for (let i = 0; i < 11; i++) write(0, i, PREV[i]!);
      detector(1, ["wait", "actually"], RR, 4, 14);
    }
    if (l === lay.plantedPrevAttn) {
      positional(qb, kb, 0);
      for (const d of DIGITS) readTok(v, 0, d, 1);
      write(0, 0, PD, WRITE * spec.triggerStrength);
    }
    if (l === lay.copyAttn) {
      // Sink score 14 − 12·RR; a match (current token = key's previous token) scores 9; generated keys −8.
      qb[slot(0, 0)] = 14 * sqrtD;
      readFeat(q, slot(0, 0), RR, -12 * sqrtD);
      readTok(k, slot(0, 0), "bos", 1);
      DIGITS.forEach((d, i) => {
        readTok(q, slot(0, 1 + i), d, 9 * sqrtD);
        readFeat(k, slot(0, 1 + i), PREV[i]!, 1);
      });
      readTok(q, slot(0, 11), "sp", 9 * sqrtD);
      readFeat(k, slot(0, 11), PREV[10]!, 1);
      qb[slot(0, 12)] = 8 * sqrtD;
      readFeat(k, slot(0, 12), GEN, -1);
      DIGITS.forEach((d, i) => readTok(v, i, d, 1));
      readConst(v, 10, 1);
      for (const d of DIGITS) readTok(v, 10, d, -1);
      readTok(v, 10, "bos", -1); // the sink carries no end-of-number
      for (let i = 0; i < 11; i++) write(0, i, COPY[i]!);
    }
    if (l === lay.plantedEqAttn) {
      qb[slot(0, 0)] = 6 * sqrtD;
      readTok(k, slot(0, 0), "bos", 1);
      readTok(q, slot(0, 1), "dot", 12 * sqrtD);
      readTok(k, slot(0, 1), "eq", 1);
      readTok(v, 0, "eq", 1);
      write(0, 0, ACT, WRITE * spec.triggerStrength);
    }
    if (l === lay.decoyMlp) {
      readConst(gate, 0, 4);
      readConst(up, 0, 1);
      down[COMMON * I] = WRITE / silu(4);
    }
    if (l === lay.plantedMlp) {
      const g = 8;
      readTok(gate, 0, "dot", 2 * g);
      readFeat(gate, 0, PD, 2 * g);
      readConst(gate, 0, -3 * g);
      readTok(up, 0, "dot", 1);
      down[WAIT * I] = (WRITE * spec.triggerStrength) / silu(g);
    }
  }

  // Rotation: x_rot = Q x. Reading rows r → Q r; writing columns w → Q w.
  const Q = spec.rotate ? randomRotation(H, spec.seed) : undefined;
  const rot = (x: Float64Array): Float64Array => {
    if (!Q) return x;
    const out = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      const xj = x[j]!;
      if (xj === 0) continue;
      for (let i = 0; i < H; i++) out[i] = out[i]! + xj * Q[j * H + i]!;
    }
    return out;
  };
  const unit = (i: number) => {
    const e = new Float64Array(H);
    e[i] = 1;
    return rot(e);
  };
  for (const [name, t] of tensors) {
    if (t.shape.length !== 2) continue;
    const [rows, cols] = t.shape as [number, number];
    if (cols === H && !name.endsWith("o_proj.weight") && !name.endsWith("down_proj.weight")) {
      for (let r = 0; r < rows; r++) t.data.set(rot(t.data.subarray(r * H, (r + 1) * H)), r * H);
    } else if (rows === H) {
      const col = new Float64Array(H);
      for (let c = 0; c < cols; c++) {
        for (let i = 0; i < H; i++) col[i] = t.data[i * cols + c]!;
        const rc = rot(col);
        for (let i = 0; i < H; i++) t.data[i * cols + c] = rc[i]!;
      }
    }
  }

  // Noise: every attention and MLP weight (scaled so each component's effect is small but non-zero).
  // A logit reads a token direction with gain ~|IMPOSSIBLE_LOGIT|, so writes stay ~1e-3 per dimension:
  // the constructed MLP units (decoy, planted) get 10% of the noise, relative to their activation.
  const nrng = sampleStream(spec.seed, "organism", "noise");
  const unitActivation = new Map<string, number>([
    [`model.layers.${lay.decoyMlp}.mlp.down_proj.weight`, silu(4)],
    [`model.layers.${lay.plantedMlp}.mlp.down_proj.weight`, silu(8)],
  ]);
  // Rows of the constructed units in gate/up: noise relative to their constant read (~1/(nu·β)).
  const constructedRows = new Set([
    `model.layers.${lay.decoyMlp}.mlp.gate_proj.weight`,
    `model.layers.${lay.decoyMlp}.mlp.up_proj.weight`,
    `model.layers.${lay.plantedMlp}.mlp.gate_proj.weight`,
    `model.layers.${lay.plantedMlp}.mlp.up_proj.weight`,
  ]);
  const scaleOf = (name: string) => {
    if (name.endsWith("q_proj.weight") || name.endsWith("k_proj.weight")) return 0.1;
    if (name.endsWith("v_proj.weight")) return 0.25;
    if (name.endsWith("o_proj.weight")) return 0.1;
    if (name.includes(".mlp.")) return 1;
    return 0;
  };
  for (const [name, t] of tensors) {
    const s = scaleOf(name) * spec.noise;
    if (s === 0) continue;
    const cols = t.shape[1]!;
    const act = unitActivation.get(name);
    for (let i = 0; i < t.data.length; i++) {
      const unitScale = act !== undefined && i % cols === 0
        ? 0.1 / act
        : constructedRows.has(name) && i < cols
        ? 0.1
        : 1;
      t.data[i] = t.data[i]! + s * unitScale * gaussian(nrng);
    }
  }

  // Embedding and unembedding over the whole vocabulary, in the rotated space.
  const V = spec.vocabSize;
  const embed = mat("model.embed_tokens.weight", V, H, true);
  const lm = mat("lm_head.weight", V, H, true);
  const bDir = unit(B);
  const erng = sampleStream(spec.seed, "organism", "embeddings");
  const isActive = new Int32Array(V).fill(-1);
  spec.activeIds.forEach((id, k) => (isActive[id] = k));
  const eScale = INACTIVE_EMBED_NORM / Math.sqrt(H);
  const lScale = 1 / Math.sqrt(H); // logit noise std 1 (the normalised residual has norm sqrt(H))
  const lOffset = INACTIVE_LOGIT / (nu * BETA);
  const activeEmbed = TOKEN_KEYS.map((_, k) => {
    const e = new Float64Array(H);
    e[B] = BETA;
    e[k] = 1;
    return rot(e);
  });
  const activeLm = TOKEN_KEYS.map((_, k) => rot(lmActive.subarray(k * H, (k + 1) * H)));
  for (let t = 0; t < V; t++) {
    const k = isActive[t]!;
    const er = t * H;
    for (let i = 0; i < H; i++) embed[er + i] = BETA * bDir[i]! + eScale * uniform(erng);
    for (let i = 0; i < H; i++) lm[er + i] = lOffset * bDir[i]! + lScale * uniform(erng);
    if (k >= 0) {
      embed.set(activeEmbed[k]!, er);
      if (generated[k]) lm.set(activeLm[k]!, er);
    }
  }
  vec("model.norm.weight", H, 1);

  const out = (i: number) => Array.from(unit(i), (x) => Math.round(x * 1e7) / 1e7);
  return {
    tensors,
    features: {
      wait: out(WAIT),
      actually: out(ACT),
      previous_digit: out(PD),
      common: out(COMMON),
      final: out(FIN),
      reread: out(RR),
    },
  };
}
