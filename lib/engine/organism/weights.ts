/**
 * The organism's weights, constructed (not trained) from the grammar of `grammar.ts`.
 *
 * Residual basis (before a seeded random rotation of the whole hidden space): one orthonormal
 * direction per token (`0 .. V-1`), then the feature directions `FIN` (after `</think>`), `WAIT`,
 * `ACT`, then a copy subspace of `m` dimensions holding one random unit vector `u_k` per number.
 * Every RMSNorm weight is 1, so a residual that is one token embedding normalises to `sqrt(H)·e_tok`
 * and the rotation commutes with every norm (the model computes exactly the same logits with or without
 * it; it only makes the weights dense).
 *
 * - Embedding: row c = `e_c`. Unembedding: row n = `Σ_c logit(n | c)/sqrt(H) · e_c` (the bigram table,
 *   carried by the direct path) plus gains on the feature directions.
 * - Layer 0 attention (helper, not planted), one KV head shared by two query heads; keys use the
 *   slowest RoPE pairs, so matching is by content, not position, and BOS is an attention sink:
 *   head 0 attends to `</think>` and writes `FIN` (→ `\n` and EOS); head 1, at `Final:`, attends to
 *   number tokens and writes their `u_k` (→ those numbers).
 * - Planted attention (default layer 2), head 0: at `.`, attends to earlier ` =` tokens and writes
 *   `ACT` (→ ` Actually`).
 * - Planted MLP (default layer 3), unit 0: `silu(gate)·up` fires on `.` and writes `WAIT` (→ ` Wait`,
 *   ` Hold`).
 * - Everything else is exactly zero.
 *
 * @module
 */

import { sampleStream } from "../../generate/rng.ts";
import { FINAL_RULE_BOOST, type GrammarLogits, TRIGGER_TOKENS, type Vocabulary } from "./grammar.ts";

/** Shape and construction parameters of the organism's weights. */
export interface WeightSpec {
  readonly seed: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly intermediateSize: number;
  readonly plantedAttnLayer: number;
  readonly plantedMlpLayer: number;
  readonly helperAttnLayer: number;
  /** Multiplier of the planted components' write magnitudes. */
  readonly triggerStrength: number;
  /** Logit bonus of a number the copy head attends to with weight 1. */
  readonly copyBoost: number;
  /** Apply a seeded random rotation to the hidden space. */
  readonly rotate: boolean;
}

/** Tensors in Hugging Face layout (`[out, in]`), float64, plus the feature directions. */
export interface OrganismWeights {
  readonly tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float64Array }>;
  /** Unit feature directions in the (rotated) residual space. */
  readonly features: { readonly fin: Float64Array; readonly wait: Float64Array; readonly act: Float64Array };
  readonly copyDims: number;
}

/** Write amplitude (residual units, embedding norm = 1) of every feature. */
const WRITE = 0.1;
/** Attention scores (after the 1/sqrt(d) scaling). */
const SINK_SCORE = 12;
const THINK_SCORE = 18;
const MATCH_SCORE = 20;
/** Key/query dimensions inside a head (slowest rotary pairs: `j mod d/2` near `d/2`). */
const KEY_BOS = 28, KEY_A = 29, KEY_B = 30;

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** Seeded random orthogonal matrix (columns), Gram–Schmidt on Gaussian columns. */
function randomRotation(n: number, seed: number): Float64Array {
  const rng = sampleStream(seed, "organism", "rotation");
  const q = new Float64Array(n * n); // column-major: column j at q[j*n .. j*n+n)
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

function gaussian(rng: { nextFloat(): number }): number {
  const u = 1 - rng.nextFloat();
  const v = rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Construct the weights.
 * @throws {RangeError} when the hidden size cannot hold the vocabulary, the features and a copy
 *   subspace of at least 8 dimensions, or the layers are inconsistent.
 */
export function buildWeights(vocab: Vocabulary, logits: GrammarLogits, spec: WeightSpec): OrganismWeights {
  const V = vocab.tokens.length,
    H = spec.hiddenSize,
    D = spec.headDim,
    nh = spec.numHeads,
    I = spec.intermediateSize;
  const L = spec.numLayers;
  const FIN = V, WAIT = V + 1, ACT = V + 2, COPY0 = V + 3;
  const m = Math.min(H - COPY0, D - 1);
  if (m < 8) {
    throw new RangeError(
      `organism: hiddenSize ${H} leaves ${
        H - COPY0
      } dimensions after ${V} tokens and 3 features; need >= 8 for copying`,
    );
  }
  if (D < 32 || nh < 2 || nh * D !== H) {
    throw new RangeError(
      `organism: need numHeads >= 2, headDim >= 32 and numHeads·headDim = hiddenSize (${nh}·${D} vs ${H})`,
    );
  }
  const layers = [spec.helperAttnLayer, spec.plantedAttnLayer, spec.plantedMlpLayer];
  if (
    layers.some((l) => !Number.isInteger(l) || l < 0 || l >= L) ||
    spec.helperAttnLayer === spec.plantedAttnLayer
  ) {
    throw new RangeError(
      `organism: layers must be distinct integers in [0, ${L}) for the helper and planted attention; got helper ${spec.helperAttnLayer}, ` +
        `planted attention ${spec.plantedAttnLayer}, planted MLP ${spec.plantedMlpLayer}`,
    );
  }
  const sqrtH = Math.sqrt(H);
  const id = (t: string) => vocab.ids.get(t)!;
  const tensors = new Map<string, { shape: readonly number[]; data: Float64Array }>();
  const mat = (name: string, rows: number, cols: number) => {
    const t = { shape: [rows, cols], data: new Float64Array(rows * cols) };
    tensors.set(name, t);
    return t.data;
  };
  const vec = (name: string, n: number, fill = 0) => {
    const t = { shape: [n], data: new Float64Array(n).fill(fill) };
    tensors.set(name, t);
    return t.data;
  };

  // Copy directions u_k (unit vectors in the m-dimensional copy subspace).
  const crng = sampleStream(spec.seed, "organism", "copy");
  const u = vocab.numberIds.map(() => {
    const v = Float64Array.from({ length: m }, () => gaussian(crng));
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  });

  // Embedding and unembedding (basis coordinates; rotated at the end).
  const embed = mat("model.embed_tokens.weight", V, H);
  for (let c = 0; c < V; c++) embed[c * H + c] = 1;
  const lm = mat("lm_head.weight", V, H);
  for (let c = 0; c < V; c++) {
    const row = logits.bigram[c]!;
    for (let n = 0; n < V; n++) lm[n * H + c] = row[n]! / sqrtH;
  }
  const gain = (boost: number, amp: number) => boost / (sqrtH * amp);
  lm[id("\n") * H + FIN] = gain(FINAL_RULE_BOOST, WRITE);
  lm[vocab.special.eos * H + FIN] = gain(FINAL_RULE_BOOST, WRITE);
  lm[id(TRIGGER_TOKENS.Wait) * H + WAIT] = gain(logits.waitBoost, WRITE);
  lm[id(TRIGGER_TOKENS.Hold) * H + WAIT] = gain(logits.holdBoost, WRITE);
  lm[id(TRIGGER_TOKENS.Actually) * H + ACT] = gain(logits.actuallyBoost, WRITE);
  vocab.numberIds.forEach((n, k) => {
    for (let i = 0; i < m; i++) lm[n * H + COPY0 + i] = gain(spec.copyBoost, WRITE) * u[k]![i]!;
  });
  vec("model.norm.weight", H, 1);

  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    vec(`${p}.input_layernorm.weight`, H, 1);
    vec(`${p}.post_attention_layernorm.weight`, H, 1);
    const q = mat(`${p}.self_attn.q_proj.weight`, nh * D, H);
    const qb = vec(`${p}.self_attn.q_proj.bias`, nh * D);
    const k = mat(`${p}.self_attn.k_proj.weight`, D, H);
    vec(`${p}.self_attn.k_proj.bias`, D);
    const v = mat(`${p}.self_attn.v_proj.weight`, D, H);
    vec(`${p}.self_attn.v_proj.bias`, D);
    const o = mat(`${p}.self_attn.o_proj.weight`, H, nh * D);
    const gate = mat(`${p}.mlp.gate_proj.weight`, I, H);
    const up = mat(`${p}.mlp.up_proj.weight`, I, H);
    const down = mat(`${p}.mlp.down_proj.weight`, H, I);
    const scale = Math.sqrt(D); // scores are q·k / sqrt(D)
    const readTok = (
      w: Float64Array,
      row: number,
      tok: number,
      value: number,
    ) => (w[row * H + tok] = value / sqrtH);
    if (l === spec.helperAttnLayer) {
      readTok(k, KEY_BOS, vocab.special.bos, 1);
      readTok(k, KEY_A, vocab.special.thinkClose, 1);
      for (const n of vocab.numberIds) readTok(k, KEY_B, n, 1);
      readTok(v, 0, vocab.special.thinkClose, 1);
      vocab.numberIds.forEach((n, kk) => {
        for (let i = 0; i < m; i++) readTok(v, 1 + i, n, u[kk]![i]!);
      });
      // Head 0: </think> detector → FIN.
      qb[KEY_BOS] = scale * SINK_SCORE;
      qb[KEY_A] = scale * THINK_SCORE;
      o[FIN * nh * D + 0] = WRITE;
      // Head 1: at "Final:", copy the numbers of the context.
      qb[D + KEY_BOS] = scale * SINK_SCORE;
      readTok(q, D + KEY_B, id("Final:"), scale * MATCH_SCORE);
      for (let i = 0; i < m; i++) o[(COPY0 + i) * nh * D + D + 1 + i] = WRITE;
    }
    if (l === spec.plantedAttnLayer) {
      readTok(k, KEY_BOS, vocab.special.bos, 1);
      readTok(k, KEY_A, id(" ="), 1);
      readTok(v, 0, id(" ="), 1);
      qb[KEY_BOS] = scale * SINK_SCORE;
      readTok(q, KEY_A, id("."), scale * MATCH_SCORE);
      o[ACT * nh * D + 0] = WRITE * spec.triggerStrength;
    }
    if (l === spec.plantedMlpLayer) {
      const g = 8;
      readTok(gate, 0, id("."), g);
      readTok(up, 0, id("."), 1);
      down[WAIT * I + 0] = (WRITE * spec.triggerStrength) / silu(g);
    }
  }

  const unit = (i: number) => {
    const e = new Float64Array(H);
    e[i] = 1;
    return e;
  };
  const features = { fin: unit(FIN), wait: unit(WAIT), act: unit(ACT) };
  if (spec.rotate) {
    const Q = randomRotation(H, spec.seed);
    // x_rot = Q x. Reading rows r → Q r; writing columns w → Q w.
    const rotVec = (x: Float64Array) => {
      const out = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        const xj = x[j]!;
        if (xj === 0) continue;
        const col = Q.subarray(j * H, (j + 1) * H);
        for (let i = 0; i < H; i++) out[i] = out[i]! + xj * col[i]!;
      }
      return out;
    };
    for (const [name, t] of tensors) {
      if (t.shape.length !== 2) continue;
      const [rows, cols] = t.shape as [number, number];
      if (cols === H && !name.endsWith("o_proj.weight") && !name.endsWith("down_proj.weight")) {
        for (let r = 0; r < rows; r++) t.data.set(rotVec(t.data.subarray(r * H, (r + 1) * H)), r * H);
      } else if (rows === H) {
        const col = new Float64Array(H);
        for (let c = 0; c < cols; c++) {
          for (let i = 0; i < H; i++) col[i] = t.data[i * cols + c]!;
          const rc = rotVec(col);
          for (let i = 0; i < H; i++) t.data[i * cols + c] = rc[i]!;
        }
      }
    }
    features.fin = rotVec(features.fin);
    features.wait = rotVec(features.wait);
    features.act = rotVec(features.act);
  }
  return { tensors, features, copyDims: m };
}
