/**
 * Compiles a Hugging Face decoder checkpoint (Qwen2, Llama) into an ONNX graph with hook inputs and
 * capture outputs. Weights are not copied: initializers point into the safetensors files as ONNX
 * external data, which ONNX Runtime memory-maps.
 *
 * Graph contract (B batch, T new tokens, P cached tokens, S = P + T, K logit positions, C capture
 * positions, M lens token ids, L layers, H hidden, V vocab):
 *
 * inputs
 * - `input_ids` int64 [B, T], `attention_mask` int64 [B, S] (1 = real token, 0 = padding),
 *   `position_ids` int64 [B, T], `past.{l}.key|value` float [B, kvh, P, D] (P may be 0),
 *   `logit_positions` int64 [B, K] (indices into the T new tokens whose logits are returned),
 *   `top_k` int64 [1] (how many candidates `topk_*` return).
 * - hooks variant: `attn_scale`, `mlp_scale` float [L, B, T] (multiplier on each block's attention /
 *   MLP output before the residual add; 1 = neutral), `resid_add` float [L, B, H] and `resid_add_coef`
 *   float [L, B, T] (adds `coef * vector[row]` to `blocks.{l}.hook_resid_pre`; 0 = neutral).
 * - component-add variant (analysis): `attn_add`, `mlp_add` [L, B, H] with `attn_add_coef`,
 *   `mlp_add_coef` [L, B, T]: adds `coef * vector[row]` to a block's attention / MLP output after its
 *   scale (scale 0 + add = replace, i.e. activation patching).
 * - captures variant: `capture_positions` int64 [B, C], `lens_token_ids` int64 [B, C, M].
 * - heads variant (needs hooks; nh heads of D dims): `z_scale` float [L, B, T, nh] (multiplier on each
 *   head's output `blocks.{l}.attn.hook_z`; 1 = neutral), `z_add` float [L, B, nh * D] with `z_add_coef`
 *   float [L, B, T, nh] (adds `coef[head] * vector[row][head]` to hook_z after the scale; 0 = neutral).
 *
 * outputs
 * - `logits` float [B, K, V], `present.{l}.key|value` float [B, kvh, S, D], `topk_values` float and
 *   `topk_indices` int64 [B, K, k]: the k largest logits, sorted, lower id first on ties.
 * - captures: `resid` [L + 1, B, C, H] (index l = `blocks.{l}.hook_resid_pre`, index L = the last
 *   block's `hook_resid_post`), `attn_out`, `mlp_out` [L, B, C, H] (after hook scaling),
 *   `lens_logit`, `lens_logprob` float and `lens_rank` int64 [L + 1, B, C, M]: the logit lens of each
 *   residual through the final norm and the LM head (the last entry equals the model's logits).
 * - heads + captures: `z` [L, B, C, nh, D] (hook_z after its interventions), `pattern`
 *   [L, B, nh, C, S] (attention probabilities of the C capture positions as queries over all S keys,
 *   recomputed from the gathered query rows and the layer's present keys: O(C × S) per head, not
 *   O(T × S)), `head_result` [L, B, C, nh, H] (each head's `(z - b_v) · W_O[:, head]ᵀ`) and
 *   `attn_bias` [L, H] (`b_O + W_O · b_v`, the part of attn_out no head is credited with; TransformerLens's
 *   folded `b_O`), so that `attn_out = Σ_head head_result + attn_bias` when attn_out is not scaled.
 *
 * @module
 */

import { type Checkpoint, checkpointTensor, layerBiases, layerTensorNames } from "./checkpoint.ts";
import type { ModelConfig } from "./config.ts";
import { ropeInverseFrequencies } from "./config.ts";
import type { TensorInfo } from "./safetensors.ts";
import {
  DataType,
  type DataTypeCode,
  encodeModel,
  float,
  float32Raw,
  int64Raw,
  type Node,
  type TensorInit,
  type ValueInfo,
} from "./onnx_proto.ts";

/** Which optional parts a compiled graph has. */
export interface GraphVariant {
  /** Intervention inputs (scales, steering). Default true. */
  readonly hooks: boolean;
  /** Additive inputs on attention/MLP outputs (patching). Default false. */
  readonly componentAdd?: boolean;
  /** Additive inputs on the residual stream (steering). Default true when `hooks`. */
  readonly residAdd?: boolean;
  /** Capture outputs (residuals, component outputs, logit lens). Default false. */
  readonly captures: boolean;
  /**
   * Per-head hook inputs on `attn.hook_z` (needs `hooks`) and, with `captures`, per-head outputs
   * (z, patterns, head results). Default false.
   */
  readonly heads?: boolean;
  /**
   * A preallocated KV cache updated in place (opset 24): inputs `cache.{l}.key|value` float
   * [B, kvh, capacity, D] and `cache_position` int64 [1] (= P, the slot where every row's T new tokens
   * are written; all rows are left-padded to the same length) replace `past.*`; `attention_mask` is
   * [B, capacity] (0 on padding and on the unused slots from P + T on). `TensorScatter` writes the new
   * keys and values into slots [P, P + T) and returns the whole cache as `present.{l}.key|value`
   * [B, kvh, capacity, D]: bind each `present` output to its `cache` input's value and nothing of the
   * past is copied. Attention runs over the whole capacity, unused slots masked. Not with `captures`
   * (the patterns are defined over the S real slots). Default false.
   */
  readonly inPlaceCache?: boolean;
}

/**
 * Precision of the compiled graph. `fp32`: everything in float32. `bf16` (for GPUs): the matmul weights
 * (projections, MLP, embedding, LM head) stored in bfloat16 and the matmuls run in bfloat16 with
 * float32 outputs; norms, rotary, attention (its softmax), the residual stream, biases and the KV cache
 * stay float32. Never fp16 for Qwen models (activations overflow). ONNX Runtime's CPU provider has no
 * bfloat16 Gemm kernel, so a bf16 graph runs on CUDA only.
 */
export type ComputeDtype = "fp32" | "bf16";

/** Where the graph finds a tensor's bytes: a path relative to the .onnx file and a byte offset. */
export type LocateTensor = (info: TensorInfo) => { readonly location: string; readonly offset: number };

const DTYPE_CODES: Readonly<Record<string, DataTypeCode>> = {
  F32: DataType.FLOAT,
  F16: DataType.FLOAT16,
  BF16: DataType.BFLOAT16,
};

/** Attention masking value: large and finite, so a fully padded query row can never produce NaN. */
const MASK_VALUE = -1e30;

class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers: TensorInit[] = [];
  #counter = 0;
  #consts = new Map<string, string>();

  op(opType: string, inputs: readonly string[], attributes?: Node["attributes"], outputs = 1): string {
    const base = `${opType}_${this.#counter++}`;
    const names = Array.from({ length: outputs }, (_, i) => (outputs === 1 ? base : `${base}:${i}`));
    this.nodes.push({ opType, inputs, outputs: names, name: base, ...(attributes ? { attributes } : {}) });
    return names[0]!;
  }
  opMulti(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attributes?: Node["attributes"],
  ) {
    this.nodes.push({
      opType,
      inputs,
      outputs,
      name: `${opType}_${this.#counter++}`,
      ...(attributes ? { attributes } : {}),
    });
  }
  named(opType: string, inputs: readonly string[], output: string, attributes?: Node["attributes"]): string {
    this.opMulti(opType, inputs, [output], attributes);
    return output;
  }
  ints(values: readonly number[]): string {
    const key = `i:${values.join(",")}`;
    let name = this.#consts.get(key);
    if (!name) {
      name = `const_i64_${this.#consts.size}`;
      this.initializers.push({
        name,
        dataType: DataType.INT64,
        dims: [values.length],
        raw: int64Raw(values),
      });
      this.#consts.set(key, name);
    }
    return name;
  }
  scalarInt(value: number): string {
    const key = `si:${value}`;
    let name = this.#consts.get(key);
    if (!name) {
      name = `const_si64_${this.#consts.size}`;
      this.initializers.push({ name, dataType: DataType.INT64, dims: [], raw: int64Raw([value]) });
      this.#consts.set(key, name);
    }
    return name;
  }
  floats(values: ArrayLike<number>, dims: readonly number[]): string {
    const name = `const_f32_${this.#consts.size}`;
    this.#consts.set(name, name);
    this.initializers.push({ name, dataType: DataType.FLOAT, dims, raw: float32Raw(values) });
    return name;
  }
  scalarFloat(value: number): string {
    const key = `sf:${value}`;
    let name = this.#consts.get(key);
    if (!name) {
      name = `const_sf32_${this.#consts.size}`;
      this.initializers.push({ name, dataType: DataType.FLOAT, dims: [], raw: float32Raw([value]) });
      this.#consts.set(key, name);
    }
    return name;
  }
}

/**
 * Build the ONNX model bytes for a checkpoint.
 * @param checkpoint the loaded (validated) checkpoint.
 * @param options `locate` maps each tensor to its external-data location; `variant` picks optional parts.
 * @returns serialized ONNX ModelProto.
 */
export function compileGraph(
  checkpoint: Checkpoint,
  options: {
    readonly locate: LocateTensor;
    readonly variant?: Partial<GraphVariant>;
    /** See {@link ComputeDtype}. Default "fp32". */
    readonly computeDtype?: ComputeDtype;
  },
): Uint8Array {
  const bf16 = options.computeDtype === "bf16";
  const variant: GraphVariant = { hooks: true, captures: false, ...options.variant };
  const inPlace = variant.inPlaceCache === true;
  if (inPlace && variant.captures) {
    throw new RangeError("compileGraph: the in-place cache variant (inPlaceCache) cannot have captures");
  }
  const cfg = checkpoint.config;
  const g = new GraphBuilder();
  const { hiddenSize: H, numHeads: nh, numKvHeads: kvh, headDim: D, numLayers: L } = cfg;

  const weightCache = new Map<string, string>();
  const initialized = new Set<string>();
  /** A checkpoint tensor as `to` (FLOAT or BFLOAT16); a Cast that ORT folds into a constant at load. */
  const weightAs = (name: string, to: DataTypeCode): string => {
    const key = `${name}|${to}`;
    const cached = weightCache.get(key);
    if (cached) return cached;
    const info = checkpointTensor(checkpoint, name);
    const code = DTYPE_CODES[info.dtype];
    if (code === undefined) {
      throw new TypeError(
        `Cannot compile checkpoint "${checkpoint.dir}": tensor "${name}" has dtype ${info.dtype}; ` +
          `supported: F32, F16, BF16`,
      );
    }
    const initName = `w:${name}`;
    if (!initialized.has(initName)) {
      const { location, offset } = options.locate(info);
      g.initializers.push({
        name: initName,
        dataType: code,
        dims: info.shape,
        external: { location, offset, length: info.byteLength },
      });
      initialized.add(initName);
    }
    // Weights of another precision are cast once; ORT folds the Cast into a constant at load.
    const out = code === to ? initName : g.op("Cast", [initName], { to });
    weightCache.set(key, out);
    return out;
  };
  const weight = (name: string): string => weightAs(name, DataType.FLOAT);
  /** `x · Wᵀ` for the checkpoint matrix `name` ([out, in]); in bf16 mode in bfloat16, float32 out. */
  const matmulT = (x: string, name: string): string =>
    bf16
      ? g.op("Cast", [
        g.op("Gemm", [g.op("Cast", [x], { to: DataType.BFLOAT16 }), weightAs(name, DataType.BFLOAT16)], {
          transB: 1,
        }),
      ], { to: DataType.FLOAT })
      : g.op("Gemm", [x, weight(name)], { transB: 1 });

  const inputs: ValueInfo[] = [
    { name: "input_ids", elemType: DataType.INT64, shape: ["batch", "seq"] },
    {
      name: "attention_mask",
      elemType: DataType.INT64,
      shape: ["batch", inPlace ? "capacity" : "total_seq"],
    },
    { name: "position_ids", elemType: DataType.INT64, shape: ["batch", "seq"] },
    { name: "logit_positions", elemType: DataType.INT64, shape: ["batch", "num_logits"] },
    { name: "top_k", elemType: DataType.INT64, shape: [1] },
  ];
  for (let l = 0; l < L; l++) {
    for (const kind of ["key", "value"]) {
      inputs.push({
        name: inPlace ? `cache.${l}.${kind}` : `past.${l}.${kind}`,
        elemType: DataType.FLOAT,
        shape: ["batch", kvh, inPlace ? "capacity" : "past_seq", D],
      });
    }
  }
  if (inPlace) inputs.push({ name: "cache_position", elemType: DataType.INT64, shape: [1] });
  if (variant.hooks) {
    inputs.push(
      { name: "attn_scale", elemType: DataType.FLOAT, shape: [L, "batch", "seq"] },
      { name: "mlp_scale", elemType: DataType.FLOAT, shape: [L, "batch", "seq"] },
    );
  }
  const withResidAdd = variant.hooks && variant.residAdd !== false;
  if (withResidAdd) {
    inputs.push(
      { name: "resid_add", elemType: DataType.FLOAT, shape: [L, "batch", H] },
      { name: "resid_add_coef", elemType: DataType.FLOAT, shape: [L, "batch", "seq"] },
    );
  }
  if (variant.hooks && variant.componentAdd) {
    inputs.push(
      { name: "attn_add", elemType: DataType.FLOAT, shape: [L, "batch", H] },
      { name: "attn_add_coef", elemType: DataType.FLOAT, shape: [L, "batch", "seq"] },
      { name: "mlp_add", elemType: DataType.FLOAT, shape: [L, "batch", H] },
      { name: "mlp_add_coef", elemType: DataType.FLOAT, shape: [L, "batch", "seq"] },
    );
  }
  const withHeads = variant.hooks && variant.heads === true;
  if (withHeads) {
    inputs.push(
      { name: "z_scale", elemType: DataType.FLOAT, shape: [L, "batch", "seq", nh] },
      { name: "z_add", elemType: DataType.FLOAT, shape: [L, "batch", nh * D] },
      { name: "z_add_coef", elemType: DataType.FLOAT, shape: [L, "batch", "seq", nh] },
    );
  }
  if (variant.captures) {
    inputs.push(
      { name: "capture_positions", elemType: DataType.INT64, shape: ["batch", "num_captures"] },
      { name: "lens_token_ids", elemType: DataType.INT64, shape: ["batch", "num_captures", "num_lens_ids"] },
    );
  }

  // Shapes.
  const idsShape = g.op("Shape", ["input_ids"]);
  const batch = g.op("Gather", [idsShape, g.ints([0])], { axis: 0 }); // [1]
  const seq = g.op("Gather", [idsShape, g.ints([1])], { axis: 0 }); // [1]
  const tokens = g.op("Mul", [batch, seq]); // [1] = N
  const shapeNH = g.op("Concat", [tokens, g.ints([H])], { axis: 0 }); // [N, H]
  const shapeBTH = g.op("Concat", [batch, seq, g.ints([H])], { axis: 0 });
  const shapeN1 = g.op("Concat", [tokens, g.ints([1])], { axis: 0 });

  // Attention mask [B, 1, T, S]: causal within the row, padding keys masked, each query sees itself.
  const totalSeq = g.op("Gather", [g.op("Shape", ["attention_mask"]), g.ints([0 + 1])], { axis: 0 });
  // In place: keys span the capacity, the new tokens sit at cache_position (P) in every row.
  const pastLen = inPlace ? "cache_position" : g.op("Sub", [totalSeq, seq]);
  const writeAt = inPlace ? g.op("Expand", ["cache_position", batch]) : ""; // [B]
  const kpos = g.op("Range", [g.scalarInt(0), g.op("Squeeze", [totalSeq]), g.scalarInt(1)]); // [S]
  const qposRel = g.op("Range", [g.scalarInt(0), g.op("Squeeze", [seq]), g.scalarInt(1)]); // [T]
  const qpos = g.op("Add", [qposRel, pastLen]); // [T]
  const qcol = g.op("Unsqueeze", [qpos, g.ints([1])]); // [T, 1]
  const krow = g.op("Unsqueeze", [kpos, g.ints([0])]); // [1, S]
  const causal = g.op("LessOrEqual", [krow, qcol]); // [T, S]
  const self = g.op("Equal", [krow, qcol]); // [T, S]
  const keyReal = g.op("Unsqueeze", [g.op("Equal", ["attention_mask", g.scalarInt(1)]), g.ints([1])]); // [B,1,S]
  const allowed = g.op("Or", [g.op("And", [causal, keyReal]), self]); // [B, T, S]
  const maskBTS = g.op("Where", [allowed, g.scalarFloat(0), g.scalarFloat(MASK_VALUE)]);
  const attnMask = g.op("Unsqueeze", [maskBTS, g.ints([1])]); // [B, 1, T, S]

  // Rotary cos/sin [B, T, D/2] from position ids, in float32 as transformers computes them.
  const invFreq = ropeInverseFrequencies(cfg);
  const invFreqName = g.floats(Array.from(invFreq, (x) => Math.fround(x)), [invFreq.length]);
  const posF = g.op("Unsqueeze", [g.op("Cast", ["position_ids"], { to: DataType.FLOAT }), g.ints([2])]);
  const freqs = g.op("Mul", [posF, invFreqName]);
  const cos = g.op("Cos", [freqs]);
  const sin = g.op("Sin", [freqs]);

  // Hook inputs split per layer once.
  const perLayer = (input: string): string[] => {
    if (L === 1) return [g.op("Squeeze", [input, g.ints([0])])];
    const parts = Array.from({ length: L }, (_, l) => `${input}:layer${l}`);
    g.opMulti("Split", [input], parts, { axis: 0, num_outputs: L });
    return parts.map((p) => g.op("Reshape", [p, shapeN1])); // [N, 1]
  };
  const attnScale = variant.hooks ? perLayer("attn_scale") : [];
  const mlpScale = variant.hooks ? perLayer("mlp_scale") : [];
  const fixN1 = (name: string) => (L === 1 ? g.op("Reshape", [name, shapeN1]) : name);
  // Additive hooks: per layer, coef [B, T, 1] * vector [B, 1, H] -> [N, H].
  const shapeBT1 = g.op("Concat", [batch, seq, g.ints([1])], { axis: 0 });
  const shapeB1H = g.op("Concat", [batch, g.ints([1, H])], { axis: 0 });
  const additive = (vectors: string, coefs: string): (l: number) => string => {
    const vecParts = Array.from({ length: L }, (_, l) => `${vectors}:layer${l}`);
    const coefParts = Array.from({ length: L }, (_, l) => `${coefs}:layer${l}`);
    if (L === 1) {
      g.opMulti("Identity", [vectors], vecParts);
      g.opMulti("Identity", [coefs], coefParts);
    } else {
      g.opMulti("Split", [vectors], vecParts, { axis: 0, num_outputs: L });
      g.opMulti("Split", [coefs], coefParts, { axis: 0, num_outputs: L });
    }
    return (l) =>
      g.op("Reshape", [
        g.op("Mul", [g.op("Reshape", [coefParts[l]!, shapeBT1]), g.op("Reshape", [vecParts[l]!, shapeB1H])]),
        shapeNH,
      ]);
  };
  const residAdd = withResidAdd ? additive("resid_add", "resid_add_coef") : undefined;
  const attnAdd = variant.hooks && variant.componentAdd ? additive("attn_add", "attn_add_coef") : undefined;
  const mlpAdd = variant.hooks && variant.componentAdd ? additive("mlp_add", "mlp_add_coef") : undefined;

  // Capture gather indices [B, C, 1].
  const capIdx = variant.captures ? g.op("Unsqueeze", ["capture_positions", g.ints([2])]) : "";
  const capture = (flat: string): string => {
    const bth = g.op("Reshape", [flat, shapeBTH]);
    return g.op("Unsqueeze", [g.op("GatherND", [bth, capIdx], { batch_dims: 1 }), g.ints([0])]); // [1,B,C,H]
  };
  const residCaps: string[] = [];
  const attnCaps: string[] = [];
  const mlpCaps: string[] = [];

  // Per-head hooks: layer slices [1, ...] of the z inputs, and the head outputs' captures.
  const layerParts = (input: string): string[] => {
    const parts = Array.from({ length: L }, (_, l) => `${input}:layer${l}`);
    if (L === 1) g.opMulti("Identity", [input], parts);
    else g.opMulti("Split", [input], parts, { axis: 0, num_outputs: L });
    return parts;
  };
  const zScale = withHeads ? layerParts("z_scale") : [];
  const zAdd = withHeads ? layerParts("z_add") : [];
  const zAddCoef = withHeads ? layerParts("z_add_coef") : [];
  const headCaps = withHeads && variant.captures;
  const zCaps: string[] = [];
  const patternCaps: string[] = [];
  const resultCaps: string[] = [];
  const attnBiases: string[] = [];
  // headMask[h, j] = 1 where column j of the concatenated heads belongs to head h: spreads a position's
  // z over nh rows so one Gemm with o_proj gives every head's result without copying W_O per head.
  const headMask = headCaps
    ? g.floats(
      Array.from(
        { length: nh * nh * D },
        (_, i) => (Math.floor((i % (nh * D)) / D) === Math.floor(i / (nh * D)) ? 1 : 0),
      ),
      [nh, nh * D],
    )
    : "";
  // Mask rows of the capture positions [B, 1, C, S], for the patterns.
  const capMask = headCaps
    ? g.op("Unsqueeze", [g.op("GatherND", [maskBTS, capIdx], { batch_dims: 1 }), g.ints([1])])
    : "";

  const emb = bf16
    ? g.op("Cast", [
      g.op("Gather", [weightAs("model.embed_tokens.weight", DataType.BFLOAT16), "input_ids"], { axis: 0 }),
    ], { to: DataType.FLOAT })
    : g.op("Gather", [weight("model.embed_tokens.weight"), "input_ids"], { axis: 0 }); // [B,T,H]
  let x = g.op("Reshape", [emb, shapeNH]); // residual stream [N, H]
  const eps = float(cfg.rmsNormEps);
  const biases = layerBiases(cfg);
  const gemm = (input: string, w: string, bias?: string) =>
    bf16
      ? (bias ? g.op("Add", [matmulT(input, w), weight(bias)]) : matmulT(input, w))
      : g.op("Gemm", bias ? [input, weight(w), weight(bias)] : [input, weight(w)], { transB: 1 });

  const outputs: ValueInfo[] = [
    { name: "logits", elemType: DataType.FLOAT, shape: ["batch", "num_logits", cfg.vocabSize] },
  ];

  for (let l = 0; l < L; l++) {
    const n = layerTensorNames(l);
    if (residAdd) x = g.op("Add", [x, residAdd(l)]);
    if (variant.captures) residCaps.push(capture(x));

    // Attention.
    const h = g.op("RMSNormalization", [x, weight(n.inputNorm)], { axis: -1, epsilon: eps });
    const q = gemm(h, n.qProj, biases.qkv ? n.qBias : undefined);
    const k = gemm(h, n.kProj, biases.qkv ? n.kBias : undefined);
    const v = gemm(h, n.vProj, biases.qkv ? n.vBias : undefined);
    const shapeQ = g.op("Concat", [batch, seq, g.ints([nh * D])], { axis: 0 });
    const shapeKV = g.op("Concat", [batch, seq, g.ints([kvh * D])], { axis: 0 });
    const q3 = g.op("RotaryEmbedding", [g.op("Reshape", [q, shapeQ]), cos, sin], { num_heads: nh });
    const k3 = g.op("RotaryEmbedding", [g.op("Reshape", [k, shapeKV]), cos, sin], { num_heads: kvh });
    const v3 = g.op("Reshape", [v, shapeKV]);
    const y = `attn:${l}:y`;
    if (inPlace) {
      // [B, T, heads * D] -> [B, heads, T, D]; the cache is written in place, attention reads all of it.
      const heads4 = (x3: string, heads: number) =>
        g.op("Transpose", [g.op("Reshape", [x3, g.ints([0, 0, heads, D])])], {
          perm: { ints: [0, 2, 1, 3] },
        });
      g.named("TensorScatter", [`cache.${l}.key`, heads4(k3, kvh), writeAt], `present.${l}.key`, { axis: 2 });
      g.named("TensorScatter", [`cache.${l}.value`, heads4(v3, kvh), writeAt], `present.${l}.value`, {
        axis: 2,
      });
      const y4 = g.op("Attention", [heads4(q3, nh), `present.${l}.key`, `present.${l}.value`, attnMask], {
        scale: float(1 / Math.sqrt(D)),
      }); // [B, nh, T, D]
      g.named(
        "Reshape",
        [g.op("Transpose", [y4], { perm: { ints: [0, 2, 1, 3] } }), g.ints([0, 0, nh * D])],
        y,
      );
    } else {
      g.opMulti("Attention", [q3, k3, v3, attnMask, `past.${l}.key`, `past.${l}.value`], [
        y,
        `present.${l}.key`,
        `present.${l}.value`,
      ], { q_num_heads: nh, kv_num_heads: kvh, scale: float(1 / Math.sqrt(D)) });
    }
    let z = y; // [B, T, nh * D]
    if (withHeads) {
      // blocks.{l}.attn.hook_z: [B, T, nh, D], scaled then added per head.
      let z4 = g.op("Reshape", [y, g.ints([0, 0, nh, D])]);
      const perHead = (part: string) =>
        g.op("Unsqueeze", [g.op("Squeeze", [part, g.ints([0])]), g.ints([3])]);
      z4 = g.op("Mul", [z4, perHead(zScale[l]!)]); // [B, T, nh, 1]
      const addVec = g.op("Reshape", [zAdd[l]!, g.ints([-1, 1, nh, D])]); // [B, 1, nh, D]
      z4 = g.op("Add", [z4, g.op("Mul", [perHead(zAddCoef[l]!), addVec])]);
      if (headCaps) {
        const zc = g.op("GatherND", [z4, capIdx], { batch_dims: 1 }); // [B, C, nh, D]
        zCaps.push(g.op("Unsqueeze", [zc, g.ints([0])]));
        // Head results: (z - b_v) spread per head, times W_O.
        let zr = g.op("Reshape", [zc, g.ints([-1, 1, nh * D])]); // [B*C, 1, nh*D]
        let vBiasFull = "";
        if (biases.qkv) {
          // b_v per query head [nh * D]: each KV head's bias repeated for its group of query heads.
          const bv = g.op("Reshape", [weight(n.vBias), g.ints([kvh, 1, D])]);
          vBiasFull = g.op("Reshape", [
            g.op("Expand", [bv, g.ints([kvh, nh / kvh, D])]),
            g.ints([1, nh * D]),
          ]);
          zr = g.op("Sub", [zr, vBiasFull]);
        }
        const spread = g.op("Reshape", [g.op("Mul", [zr, headMask]), g.ints([-1, nh * D])]); // [B*C*nh, nh*D]
        const res = matmulT(spread, n.oProj); // [B*C*nh, H]
        const bc = g.op("Slice", [g.op("Shape", [zc]), g.ints([0]), g.ints([2])]); // [B, C]
        const resShape = g.op("Concat", [bc, g.ints([nh, H])], { axis: 0 });
        resultCaps.push(g.op("Unsqueeze", [g.op("Reshape", [res, resShape]), g.ints([0])]));
        // The bias no head is credited with: b_O + W_O · b_v (zeros when the model has neither).
        let bias = biases.qkv ? matmulT(vBiasFull, n.oProj) : g.floats(new Float32Array(H), [1, H]);
        if (biases.o) bias = g.op("Add", [bias, g.op("Unsqueeze", [weight(n.oBias), g.ints([0])])]);
        attnBiases.push(bias); // [1, H]
        // Patterns at the capture positions: softmax(q_c · Kᵀ / √D + mask_c) over the present keys.
        const qc = g.op("GatherND", [g.op("Reshape", [q3, g.ints([0, 0, nh, D])]), capIdx], {
          batch_dims: 1,
        });
        const qg = g.op("Reshape", [
          g.op("Transpose", [qc], { perm: { ints: [0, 2, 1, 3] } }),
          g.ints([0, kvh, nh / kvh, -1, D]),
        ]);
        const kT = g.op("Unsqueeze", [
          g.op("Transpose", [`present.${l}.key`], { perm: { ints: [0, 1, 3, 2] } }),
          g.ints([2]),
        ]);
        const scores = g.op("Mul", [g.op("MatMul", [qg, kT]), g.scalarFloat(Math.fround(1 / Math.sqrt(D)))]);
        const scoresShape = g.op("Shape", [scores]); // [B, kvh, group, C, S]
        const shape4 = g.op("Concat", [
          g.op("Slice", [scoresShape, g.ints([0]), g.ints([1])]),
          g.ints([nh]),
          g.op("Slice", [scoresShape, g.ints([3]), g.ints([5])]),
        ], { axis: 0 });
        const scores4 = g.op("Reshape", [scores, shape4]); // [B, nh, C, S]
        const probs = g.op("Softmax", [g.op("Add", [scores4, capMask])], { axis: -1 });
        patternCaps.push(g.op("Unsqueeze", [probs, g.ints([0])]));
      }
      z = g.op("Reshape", [z4, g.ints([0, 0, nh * D])]);
    }
    const yFlat = g.op("Reshape", [z, g.op("Concat", [tokens, g.ints([nh * D])], { axis: 0 })]);
    let attnOut = gemm(yFlat, n.oProj, biases.o ? n.oBias : undefined);
    if (variant.hooks) attnOut = g.op("Mul", [attnOut, fixN1(attnScale[l]!)]);
    if (attnAdd) attnOut = g.op("Add", [attnOut, attnAdd(l)]);
    if (variant.captures) attnCaps.push(capture(attnOut));
    x = g.op("Add", [x, attnOut]);

    // MLP.
    const h2 = g.op("RMSNormalization", [x, weight(n.postNorm)], { axis: -1, epsilon: eps });
    const gate = gemm(h2, n.gateProj, biases.mlp ? n.gateBias : undefined);
    const up = gemm(h2, n.upProj, biases.mlp ? n.upBias : undefined);
    const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
    let mlpOut = gemm(act, n.downProj, biases.mlp ? n.downBias : undefined);
    if (variant.hooks) mlpOut = g.op("Mul", [mlpOut, fixN1(mlpScale[l]!)]);
    if (mlpAdd) mlpOut = g.op("Add", [mlpOut, mlpAdd(l)]);
    if (variant.captures) mlpCaps.push(capture(mlpOut));
    x = g.op("Add", [x, mlpOut]);

    const presentSeq = inPlace ? "capacity" : "total_seq";
    outputs.push(
      { name: `present.${l}.key`, elemType: DataType.FLOAT, shape: ["batch", kvh, presentSeq, D] },
      { name: `present.${l}.value`, elemType: DataType.FLOAT, shape: ["batch", kvh, presentSeq, D] },
    );
  }
  if (variant.captures) residCaps.push(capture(x));

  const normW = weight("model.norm.weight");
  const unembed = cfg.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";

  // Logits at the requested positions only: gathering before the LM head keeps prefill cheap.
  const xBTH = g.op("Reshape", [x, shapeBTH]);
  const picked = g.op("GatherND", [xBTH, g.op("Unsqueeze", ["logit_positions", g.ints([2])])], {
    batch_dims: 1,
  });
  const pickedShape = g.op("Shape", [picked]); // [B, K, H]
  const pickedFlat = g.op("Reshape", [picked, g.ints([-1, H])]);
  const normed = g.op("RMSNormalization", [pickedFlat, normW], { axis: -1, epsilon: eps });
  const logitsFlat = matmulT(normed, unembed);
  const logitsShape = g.op("Concat", [
    g.op("Slice", [pickedShape, g.ints([0]), g.ints([2])]),
    g.ints([cfg.vocabSize]),
  ], { axis: 0 });
  g.named("Reshape", [logitsFlat, logitsShape], "logits");
  // Top-k candidates for sampling: fetching k values instead of the whole vocabulary row per token.
  g.opMulti("TopK", ["logits", "top_k"], ["topk_values", "topk_indices"], {
    axis: -1,
    largest: 1,
    sorted: 1,
  });
  outputs.push(
    { name: "topk_values", elemType: DataType.FLOAT, shape: ["batch", "num_logits", "k"] },
    { name: "topk_indices", elemType: DataType.INT64, shape: ["batch", "num_logits", "k"] },
  );

  if (variant.captures) {
    g.named("Concat", residCaps, "resid", { axis: 0 }); // [L+1, B, C, H]
    g.named("Concat", attnCaps, "attn_out", { axis: 0 });
    g.named("Concat", mlpCaps, "mlp_out", { axis: 0 });
    // Logit lens over every captured residual at once.
    const residShape = g.op("Shape", ["resid"]); // [L+1, B, C, H]
    const lensIn = g.op("Reshape", ["resid", g.ints([-1, H])]);
    const lensNormed = g.op("RMSNormalization", [lensIn, normW], { axis: -1, epsilon: eps });
    const lensLogits = matmulT(lensNormed, unembed); // [R, V]
    const lse = g.op("ReduceLogSumExp", [lensLogits, g.ints([-1])], { keepdims: 1 }); // [R, 1]
    // Token ids [B, C, M] broadcast over layers -> [R, M].
    const idsShape3 = g.op("Shape", ["lens_token_ids"]);
    const numIds = g.op("Gather", [idsShape3, g.ints([2])], { axis: 0 });
    const layersDim = g.op("Slice", [residShape, g.ints([0]), g.ints([1])]);
    const expandShape = g.op("Concat", [layersDim, idsShape3], { axis: 0 }); // [L+1, B, C, M]
    const idsExpanded = g.op("Expand", [g.op("Unsqueeze", ["lens_token_ids", g.ints([0])]), expandShape]);
    const idsFlat = g.op("Reshape", [idsExpanded, g.op("Concat", [g.ints([-1]), numIds], { axis: 0 })]);
    const target = g.op("GatherElements", [lensLogits, idsFlat], { axis: 1 }); // [R, M]
    const logprob = g.op("Sub", [target, lse]);
    // rank = number of vocabulary entries with a strictly larger logit.
    const greater = g.op("Greater", [
      g.op("Unsqueeze", [lensLogits, g.ints([1])]), // [R, 1, V]
      g.op("Unsqueeze", [target, g.ints([2])]), // [R, M, 1]
    ]);
    const rank = g.op("ReduceSum", [g.op("Cast", [greater], { to: DataType.INT64 }), g.ints([2])], {
      keepdims: 0,
    });
    g.named("Reshape", [target, expandShape], "lens_logit");
    g.named("Reshape", [logprob, expandShape], "lens_logprob");
    g.named("Reshape", [rank, expandShape], "lens_rank");
    outputs.push(
      { name: "resid", elemType: DataType.FLOAT, shape: [L + 1, "batch", "num_captures", H] },
      { name: "attn_out", elemType: DataType.FLOAT, shape: [L, "batch", "num_captures", H] },
      { name: "mlp_out", elemType: DataType.FLOAT, shape: [L, "batch", "num_captures", H] },
      {
        name: "lens_logit",
        elemType: DataType.FLOAT,
        shape: [L + 1, "batch", "num_captures", "num_lens_ids"],
      },
      {
        name: "lens_logprob",
        elemType: DataType.FLOAT,
        shape: [L + 1, "batch", "num_captures", "num_lens_ids"],
      },
      {
        name: "lens_rank",
        elemType: DataType.INT64,
        shape: [L + 1, "batch", "num_captures", "num_lens_ids"],
      },
    );
  }

  if (headCaps) {
    g.named("Concat", zCaps, "z", { axis: 0 }); // [L, B, C, nh, D]
    g.named("Concat", patternCaps, "pattern", { axis: 0 }); // [L, B, nh, C, S]
    g.named("Concat", resultCaps, "head_result", { axis: 0 }); // [L, B, C, nh, H]
    g.named("Concat", attnBiases, "attn_bias", { axis: 0 }); // [L, H]
    outputs.push(
      { name: "z", elemType: DataType.FLOAT, shape: [L, "batch", "num_captures", nh, D] },
      { name: "pattern", elemType: DataType.FLOAT, shape: [L, "batch", nh, "num_captures", "total_seq"] },
      { name: "head_result", elemType: DataType.FLOAT, shape: [L, "batch", "num_captures", nh, H] },
      { name: "attn_bias", elemType: DataType.FLOAT, shape: [L, H] },
    );
  }

  return encodeModel({
    graphName: `${cfg.modelType}_${variant.hooks ? "hooked" : "plain"}${variant.captures ? "_captures" : ""}${
      withHeads ? "_heads" : ""
    }${inPlace ? "_inplace" : ""}${bf16 ? "_bf16" : ""}`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs,
    outputs,
    opsets: { "": inPlace ? 24 : 23 },
    docString: `Compiled from ${checkpoint.dir}`,
  });
}

/** Re-exported so callers can type a compiled config without importing config.ts. */
export type { ModelConfig };
