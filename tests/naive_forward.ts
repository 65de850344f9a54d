/**
 * An independent, deliberately simple float64 forward pass of a Qwen2 / Llama checkpoint, written from
 * the Hugging Face modeling code, as ground truth for the ONNX engine's parity tests. It shares no
 * code with the graph builder or the checkpoint loader: config.json is read here, tensor names are
 * spelled here, RoPE frequencies (with Llama 3 scaling) are computed here. Only the safetensors reader
 * is shared.
 *
 * Each row is run on its own with positions 0..len-1, so the results are the truth for left-padded
 * batches too. Plain loops; only for tiny models.
 *
 * @module
 */

import { join } from "node:path";
import { type Intervention, parseHookName, selectsPosition } from "../lib/engine/hooks.ts";
import { readSafetensorsHeader, readTensorF64, type TensorInfo } from "../lib/engine/safetensors.ts";

/** One decoder layer's weights; matrices are `[out, in]` row-major, as stored. */
export interface NaiveLayer {
  readonly inputNorm: Float64Array;
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
  readonly o: Float64Array;
  readonly qBias?: Float64Array;
  readonly kBias?: Float64Array;
  readonly vBias?: Float64Array;
  readonly oBias?: Float64Array;
  readonly postNorm: Float64Array;
  readonly gate: Float64Array;
  readonly up: Float64Array;
  readonly down: Float64Array;
  readonly gateBias?: Float64Array;
  readonly upBias?: Float64Array;
  readonly downBias?: Float64Array;
}

/** All weights and hyperparameters, as float64. */
export interface NaiveWeights {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  /** Rotary inverse frequencies, length headDim/2. */
  readonly invFreq: Float64Array;
  readonly embed: Float64Array;
  readonly layers: readonly NaiveLayer[];
  readonly norm: Float64Array;
  /** The unembedding `[vocab, hidden]` (the embedding itself when tied). */
  readonly lmHead: Float64Array;
}

/** Logit-lens value of one token id. */
export interface LensValue {
  readonly logit: number;
  readonly logprob: number;
  /** Number of vocabulary entries with a strictly greater logit (0 = top). */
  readonly rank: number;
}

/** Options of {@link naiveForward}. */
export interface NaiveForwardOptions {
  /**
   * Scale on `blocks.{l}.hook_attn_out` / `hook_mlp_out` (applied before the residual add) and add on
   * `blocks.{l}.hook_resid_pre` (`coef * vector`, applied before block l runs), scale / add on
   * `blocks.{l}.attn.hook_z` (per head with `head`, before o_proj). Positions are a row's own positions
   * (see `selectsPosition`).
   */
  readonly interventions?: readonly Intervention[];
  /** Per row, per position, token ids whose lens values to report at every residual index. */
  readonly lensTokenIds?: readonly (readonly (readonly number[])[])[];
}

/** Result of {@link naiveForward}; every array covers each row's real positions. */
export interface NaiveForwardResult {
  /** `[row][pos]` over the vocabulary. */
  readonly logits: Float64Array[][];
  /**
   * `[l][row][pos]`, l = 0..L: index l < L is `blocks.l.hook_resid_pre` as block l sees it (after
   * any add intervention at that layer; 0 = embedding output), index L the last block's resid_post
   * (before the final norm).
   */
  readonly resid: Float64Array[][][];
  /** `[l][row][pos]`, l = 0..L-1: attention output after any scale, as added to the residual. */
  readonly attnOut: Float64Array[][][];
  /** `[l][row][pos]`, l = 0..L-1: MLP output after any scale, as added to the residual. */
  readonly mlpOut: Float64Array[][][];
  /** `[l][row][pos][k]` lens values of `lensTokenIds[row][pos][k]` on `resid[l]` (l = 0..L); empty without lensTokenIds. */
  readonly lens: LensValue[][][][];
  /** `[l][row][pos]`: `blocks.l.attn.hook_z` after its interventions, `[head, d_head]` row-major. */
  readonly z: Float64Array[][][];
  /** `[l][row][pos]`: `blocks.l.attn.hook_pattern` of query `pos`, `[head, key]` over keys 0..pos. */
  readonly pattern: Float64Array[][][];
}

/**
 * Rotary inverse frequencies as in transformers: `1 / theta^(2i/d)`, with `_compute_llama3_parameters`
 * when `scaling` is given; computed in float64 and stored rounded to float32 as transformers' buffer.
 */
export function naiveInverseFrequencies(
  headDim: number,
  theta: number,
  scaling?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMax: number },
): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let j = 0; j < half; j++) {
    let f = 1 / Math.pow(theta, (2 * j) / headDim);
    if (scaling) {
      const wavelen = (2 * Math.PI) / f;
      const lowWavelen = scaling.originalMax / scaling.lowFreqFactor;
      const highWavelen = scaling.originalMax / scaling.highFreqFactor;
      if (wavelen > lowWavelen) {
        f = f / scaling.factor;
      } else if (wavelen >= highWavelen) {
        const smooth = (scaling.originalMax / wavelen - scaling.lowFreqFactor) /
          (scaling.highFreqFactor - scaling.lowFreqFactor);
        f = (1 - smooth) * f / scaling.factor + smooth * f;
      }
    }
    inv[j] = Math.fround(f);
  }
  return inv;
}

/**
 * Load a checkpoint folder (single file or sharded) as float64 weights.
 * @param dir a Hugging Face model folder.
 */
export async function loadNaiveWeights(dir: string): Promise<NaiveWeights> {
  const c = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  const infos = new Map<string, TensorInfo>();
  let files: string[];
  try {
    const index = JSON.parse(await Deno.readTextFile(join(dir, "model.safetensors.index.json")));
    files = [...new Set(Object.values(index.weight_map as Record<string, string>))];
  } catch {
    files = ["model.safetensors"];
  }
  for (const f of files) for (const [k, v] of await readSafetensorsHeader(join(dir, f))) infos.set(k, v);
  const get = async (name: string) => {
    const info = infos.get(name);
    if (!info) throw new Error(`naive: tensor ${name} missing in ${dir}`);
    return await readTensorF64(info);
  };
  const opt = async (name: string) => infos.has(name) ? await get(name) : undefined;

  const H: number = c.hidden_size;
  const nh: number = c.num_attention_heads;
  const rs = c.rope_scaling;
  const ropeType = rs ? (rs.rope_type ?? rs.type) : undefined;
  const invFreq = naiveInverseFrequencies(
    c.head_dim ?? H / nh,
    c.rope_theta ?? 10000,
    ropeType === "llama3"
      ? {
        factor: rs.factor,
        lowFreqFactor: rs.low_freq_factor,
        highFreqFactor: rs.high_freq_factor,
        originalMax: rs.original_max_position_embeddings,
      }
      : undefined,
  );
  const layers: NaiveLayer[] = [];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const layer: Record<string, Float64Array | undefined> = {
      inputNorm: await get(p + "input_layernorm.weight"),
      q: await get(p + "self_attn.q_proj.weight"),
      k: await get(p + "self_attn.k_proj.weight"),
      v: await get(p + "self_attn.v_proj.weight"),
      o: await get(p + "self_attn.o_proj.weight"),
      qBias: await opt(p + "self_attn.q_proj.bias"),
      kBias: await opt(p + "self_attn.k_proj.bias"),
      vBias: await opt(p + "self_attn.v_proj.bias"),
      oBias: await opt(p + "self_attn.o_proj.bias"),
      postNorm: await get(p + "post_attention_layernorm.weight"),
      gate: await get(p + "mlp.gate_proj.weight"),
      up: await get(p + "mlp.up_proj.weight"),
      down: await get(p + "mlp.down_proj.weight"),
      gateBias: await opt(p + "mlp.gate_proj.bias"),
      upBias: await opt(p + "mlp.up_proj.bias"),
      downBias: await opt(p + "mlp.down_proj.bias"),
    };
    for (const k of Object.keys(layer)) if (layer[k] === undefined) delete layer[k];
    layers.push(layer as unknown as NaiveLayer);
  }
  const embed = await get("model.embed_tokens.weight");
  return {
    vocabSize: c.vocab_size,
    hiddenSize: H,
    intermediateSize: c.intermediate_size,
    numHeads: nh,
    numKvHeads: c.num_key_value_heads ?? nh,
    headDim: c.head_dim ?? H / nh,
    rmsNormEps: c.rms_norm_eps ?? 1e-6,
    invFreq,
    embed,
    layers,
    norm: await get("model.norm.weight"),
    lmHead: c.tie_word_embeddings ? embed : await get("lm_head.weight"),
  };
}

/** y = W x + b for W `[out, in]`. */
function linear(w: Float64Array, x: Float64Array, out: number, b?: Float64Array): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let i = 0; i < out; i++) {
    let s = b ? b[i]! : 0;
    for (let j = 0; j < n; j++) s += w[i * n + j]! * x[j]!;
    y[i] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = w[i]! * (x[i]! * r);
  return y;
}

/** In place: rotate each head of `x` (numHeads × D) by position `pos`, HF rotate_half layout. */
function rope(x: Float64Array, numHeads: number, D: number, pos: number, invFreq: Float64Array): void {
  const half = D / 2;
  for (let h = 0; h < numHeads; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * invFreq[i]!;
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      const a = x[h * D + i]!;
      const b = x[h * D + i + half]!;
      x[h * D + i] = a * cos - b * sin;
      x[h * D + i + half] = b * cos + a * sin;
    }
  }
}

const silu = (v: number) => v / (1 + Math.exp(-v));

/** The add vector of an intervention for batch row `row` (one shared vector or one per row). */
function addVector(iv: Intervention & { op: "add" }, row: number, H: number): ArrayLike<number> {
  const v = iv.vector as ArrayLike<number> | readonly ArrayLike<number>[];
  const perRow = v.length > 0 && typeof (v as ArrayLike<unknown>)[0] === "object";
  const vec = perRow ? (v as readonly ArrayLike<number>[])[row]! : (v as ArrayLike<number>);
  if (vec.length !== H) throw new RangeError(`add vector on ${iv.hook} must have length ${H}`);
  return vec;
}

/** Apply every scale on `hook` that selects (row, pos), then every add (scale 0 + add = patching). */
function applyScale(
  x: Float64Array,
  hook: string,
  interventions: readonly Intervention[],
  row: number,
  pos: number,
): void {
  for (const iv of interventions) {
    if (iv.op !== "scale" || iv.hook !== hook || !selectsPosition(iv.positions, row, pos)) continue;
    for (let i = 0; i < x.length; i++) x[i] = x[i]! * iv.value;
  }
  for (const iv of interventions) {
    if (iv.op !== "add" || iv.hook !== hook || !selectsPosition(iv.positions, row, pos)) continue;
    const vec = addVector(iv, row, x.length);
    const coef = iv.coef ?? 1;
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + coef * vec[i]!;
  }
}

/**
 * Per-head interventions on hook_z (`[head * D]` concatenated): every scale that selects (row, pos),
 * then every add; `head` picks one head's D entries, none = all heads (vector of nh * D entries).
 */
function applyHeadHooks(
  z: Float64Array,
  hook: string,
  interventions: readonly Intervention[],
  row: number,
  pos: number,
  D: number,
): void {
  const span = (iv: Intervention): [number, number] =>
    iv.head === undefined ? [0, z.length] : [iv.head * D, (iv.head + 1) * D];
  for (const iv of interventions) {
    if (iv.op !== "scale" || iv.hook !== hook || !selectsPosition(iv.positions, row, pos)) continue;
    const [a, b] = span(iv);
    for (let i = a; i < b; i++) z[i] = z[i]! * iv.value;
  }
  for (const iv of interventions) {
    if (iv.op !== "add" || iv.hook !== hook || !selectsPosition(iv.positions, row, pos)) continue;
    const [a, b] = span(iv);
    const vec = addVector(iv, row, b - a);
    const coef = iv.coef ?? 1;
    for (let i = a; i < b; i++) z[i] = z[i]! + coef * vec[i - a]!;
  }
}

/**
 * Run each row independently through the model.
 * @param model weights from {@link loadNaiveWeights}.
 * @param rows token ids per row (no padding; rows may differ in length).
 * @param options interventions and logit-lens token ids.
 * @throws {RangeError} for an intervention other than scale/add on attn_out, mlp_out or attn.hook_z, add on resid_pre.
 */
export function naiveForward(
  model: NaiveWeights,
  rows: readonly (readonly number[])[],
  options: NaiveForwardOptions = {},
): NaiveForwardResult {
  const L = model.layers.length;
  const H = model.hiddenSize;
  const D = model.headDim;
  const nh = model.numHeads;
  const kvh = model.numKvHeads;
  const group = nh / kvh;
  const interventions = options.interventions ?? [];
  for (const iv of interventions) {
    const p = parseHookName(iv.hook, L);
    const ok = iv.op === "scale"
      ? p.kind === "hook_attn_out" || p.kind === "hook_mlp_out" || p.kind === "attn.hook_z"
      : p.kind === "hook_resid_pre" || p.kind === "hook_attn_out" || p.kind === "hook_mlp_out" ||
        p.kind === "attn.hook_z";
    if (!ok) throw new RangeError(`naiveForward does not support op "${iv.op}" on "${iv.hook}"`);
  }

  const logits: Float64Array[][] = [];
  const resid: Float64Array[][][] = Array.from({ length: L + 1 }, () => []);
  const attnOut: Float64Array[][][] = Array.from({ length: L }, () => []);
  const mlpOut: Float64Array[][][] = Array.from({ length: L }, () => []);
  const zs: Float64Array[][][] = Array.from({ length: L }, () => []);
  const patterns: Float64Array[][][] = Array.from({ length: L }, () => []);

  for (let r = 0; r < rows.length; r++) {
    const tokens = rows[r]!;
    const T = tokens.length;
    let h: Float64Array[] = tokens.map((t) => {
      if (!Number.isInteger(t) || t < 0 || t >= model.vocabSize) {
        throw new RangeError(`token id ${t} out of range`);
      }
      return model.embed.slice(t * H, (t + 1) * H);
    });
    for (let l = 0; l < L; l++) {
      const w = model.layers[l]!;
      for (const iv of interventions) {
        if (iv.op !== "add" || iv.hook !== `blocks.${l}.hook_resid_pre`) continue;
        const vec = addVector(iv, r, H);
        const coef = iv.coef ?? 1;
        for (let t = 0; t < T; t++) {
          if (!selectsPosition(iv.positions, r, t)) continue;
          for (let i = 0; i < H; i++) h[t]![i] = h[t]![i]! + coef * vec[i]!;
        }
      }
      resid[l]!.push(h.map((x) => x.slice()));

      // Attention.
      const qs: Float64Array[] = [];
      const ks: Float64Array[] = [];
      const vs: Float64Array[] = [];
      for (let t = 0; t < T; t++) {
        const x = rmsNorm(h[t]!, w.inputNorm, model.rmsNormEps);
        const q = linear(w.q, x, nh * D, w.qBias);
        const k = linear(w.k, x, kvh * D, w.kBias);
        rope(q, nh, D, t, model.invFreq);
        rope(k, kvh, D, t, model.invFreq);
        qs.push(q);
        ks.push(k);
        vs.push(linear(w.v, x, kvh * D, w.vBias));
      }
      const attnRow: Float64Array[] = [];
      const zRow: Float64Array[] = [];
      const patRow: Float64Array[] = [];
      for (let t = 0; t < T; t++) {
        const concat = new Float64Array(nh * D);
        const pat = new Float64Array(nh * (t + 1));
        for (let head = 0; head < nh; head++) {
          const kvHead = Math.floor(head / group);
          const scores = new Float64Array(t + 1);
          let max = -Infinity;
          for (let s = 0; s <= t; s++) {
            let dot = 0;
            for (let i = 0; i < D; i++) dot += qs[t]![head * D + i]! * ks[s]![kvHead * D + i]!;
            scores[s] = dot / Math.sqrt(D);
            max = Math.max(max, scores[s]!);
          }
          let sum = 0;
          for (let s = 0; s <= t; s++) {
            scores[s] = Math.exp(scores[s]! - max);
            sum += scores[s]!;
          }
          for (let s = 0; s <= t; s++) {
            const p = scores[s]! / sum;
            pat[head * (t + 1) + s] = p;
            for (let i = 0; i < D; i++) {
              concat[head * D + i] = concat[head * D + i]! + p * vs[s]![kvHead * D + i]!;
            }
          }
        }
        applyHeadHooks(concat, `blocks.${l}.attn.hook_z`, interventions, r, t, D);
        zRow.push(concat);
        patRow.push(pat);
        const out = linear(w.o, concat, H, w.oBias);
        applyScale(out, `blocks.${l}.hook_attn_out`, interventions, r, t);
        attnRow.push(out);
      }
      attnOut[l]!.push(attnRow);
      zs[l]!.push(zRow);
      patterns[l]!.push(patRow);
      h = h.map((x, t) => x.map((v, i) => v + attnRow[t]![i]!));

      // MLP.
      const mlpRow: Float64Array[] = [];
      for (let t = 0; t < T; t++) {
        const x = rmsNorm(h[t]!, w.postNorm, model.rmsNormEps);
        const g = linear(w.gate, x, model.intermediateSize, w.gateBias);
        const u = linear(w.up, x, model.intermediateSize, w.upBias);
        const act = g.map((v, i) => silu(v) * u[i]!);
        const out = linear(w.down, act, H, w.downBias);
        applyScale(out, `blocks.${l}.hook_mlp_out`, interventions, r, t);
        mlpRow.push(out);
      }
      mlpOut[l]!.push(mlpRow);
      h = h.map((x, t) => x.map((v, i) => v + mlpRow[t]![i]!));
    }
    resid[L]!.push(h.map((x) => x.slice()));
    logits.push(h.map((x) => unembed(model, x)));
  }

  const lens: LensValue[][][][] = [];
  if (options.lensTokenIds) {
    for (let l = 0; l <= L; l++) {
      lens.push(resid[l]!.map((row, r) =>
        row.map((vec, t) => {
          const ids = options.lensTokenIds?.[r]?.[t] ?? [];
          return ids.length === 0 ? [] : naiveLens(model, vec, ids);
        })
      ));
    }
  }
  return { logits, resid, attnOut, mlpOut, lens, z: zs, pattern: patterns };
}

function unembed(model: NaiveWeights, x: Float64Array): Float64Array {
  return linear(model.lmHead, rmsNorm(x, model.norm, model.rmsNormEps), model.vocabSize);
}

/**
 * Logit lens on one residual vector: final norm → unembedding → log-softmax, read at `tokenIds`.
 * @returns one {@link LensValue} per token id, in order.
 */
export function naiveLens(
  model: NaiveWeights,
  residVector: ArrayLike<number>,
  tokenIds: readonly number[],
): LensValue[] {
  const logits = unembed(model, Float64Array.from(residVector));
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  return tokenIds.map((id) => {
    const logit = logits[id];
    if (logit === undefined) throw new RangeError(`lens token id ${id} out of range`);
    let rank = 0;
    for (const v of logits) if (v > logit) rank++;
    return { logit, logprob: logit - logZ, rank };
  });
}
