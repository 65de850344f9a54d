/**
 * Hugging Face `config.json` of a decoder-only model (Qwen2, Llama), parsed into a typed, validated
 * {@link ModelConfig}, and the rotary-embedding inverse frequencies it implies.
 *
 * @module
 */

import { join } from "node:path";

/** Architectures the engine compiles. */
export const SUPPORTED_MODEL_TYPES = ["qwen2", "llama"] as const;
export type ModelType = typeof SUPPORTED_MODEL_TYPES[number];

/** Llama 3 rotary scaling (`rope_type: "llama3"`). */
export interface Llama3RopeScaling {
  readonly type: "llama3";
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositionEmbeddings: number;
}

/** The parts of a model's config.json that determine its computation. */
export interface ModelConfig {
  readonly modelType: ModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  /** `head_dim`, or `hidden_size / num_attention_heads` when absent. */
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** Undefined for plain RoPE (`rope_scaling` null, absent or `"default"`). */
  readonly ropeScaling?: Llama3RopeScaling;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /**
   * Whether attention projections carry biases. Qwen2: always (q, k, v have biases, o has none).
   * Llama: `attention_bias` (default false); then q, k, v and o all have biases, as in transformers.
   */
  readonly attentionBias: boolean;
  /** Llama `mlp_bias` (default false): gate, up and down have biases. Always false for Qwen2. */
  readonly mlpBias: boolean;
  /** `torch_dtype` (or transformers v5 `dtype`), e.g. "bfloat16", when given. */
  readonly torchDtype?: string;
  readonly bosTokenId?: number;
  /** `eos_token_id` as a list (empty when absent). */
  readonly eosTokenIds: readonly number[];
}

type Json = Record<string, unknown>;

/** Defaults of the transformers config classes for optional keys. */
const DEFAULTS: Readonly<Record<ModelType, { maxPositionEmbeddings: number }>> = {
  qwen2: { maxPositionEmbeddings: 32768 },
  llama: { maxPositionEmbeddings: 2048 },
};

/**
 * Parse a config.json object.
 *
 * Optional keys take the transformers defaults: `num_key_value_heads` = `num_attention_heads`,
 * `rms_norm_eps` 1e-6, `rope_theta` 10000, `tie_word_embeddings` false, `hidden_act` "silu",
 * `max_position_embeddings` 32768 (qwen2) / 2048 (llama). The transformers v5 `rope_parameters`
 * object is read as well as the older `rope_theta` / `rope_scaling` keys.
 *
 * @param json the parsed JSON.
 * @param source where it came from (a path), named in error messages.
 * @throws {TypeError} naming the key and `source` when a required key is missing or ill-typed.
 * @throws {RangeError} naming the value and `source` for an unsupported model type, activation,
 *   rope scaling type, sliding-window attention, or inconsistent sizes.
 * @example
 * ```ts
 * const cfg = parseModelConfig(JSON.parse(text), "model/config.json");
 * cfg.headDim; // 64
 * ```
 */
export function parseModelConfig(json: unknown, source: string): ModelConfig {
  const where = `model config "${source}"`;
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new TypeError(`Cannot read ${where}: expected a JSON object, got ${describe(json)}`);
  }
  const o = json as Json;
  const modelType = o.model_type;
  if (typeof modelType !== "string" || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    const got = modelType === undefined ? "no model_type" : `model_type ${JSON.stringify(modelType)}`;
    throw new RangeError(
      `Cannot load ${where}: ${got} is not supported; supported model types: ${
        SUPPORTED_MODEL_TYPES.map((t) => `"${t}"`).join(", ")
      }`,
    );
  }
  const type = modelType as ModelType;
  const int = (key: string, fallback?: number): number => {
    const v = o[key] ?? fallback;
    if (v === undefined) throw new TypeError(`Cannot load ${where}: required key "${key}" is missing`);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new TypeError(`Cannot load ${where}: "${key}" must be a positive integer, got ${describe(v)}`);
    }
    return v;
  };
  const num = (key: string, fallback: number, from: Json = o): number => {
    const v = from[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new TypeError(`Cannot load ${where}: "${key}" must be a positive number, got ${describe(v)}`);
    }
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = o[key] ?? fallback;
    if (typeof v !== "boolean") {
      throw new TypeError(`Cannot load ${where}: "${key}" must be true or false, got ${describe(v)}`);
    }
    return v;
  };

  const hiddenAct = o.hidden_act ?? "silu";
  if (hiddenAct !== "silu") {
    throw new RangeError(
      `Cannot load ${where}: hidden_act ${JSON.stringify(hiddenAct)} is not supported; only "silu"`,
    );
  }
  if (type === "qwen2" && o.use_sliding_window === true) {
    throw new RangeError(
      `Cannot load ${where}: use_sliding_window is true; sliding-window attention is not supported yet`,
    );
  }

  const vocabSize = int("vocab_size");
  const hiddenSize = int("hidden_size");
  const intermediateSize = int("intermediate_size");
  const numLayers = int("num_hidden_layers");
  const numHeads = int("num_attention_heads");
  const numKvHeads = int("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new RangeError(
      `Cannot load ${where}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`,
    );
  }
  if (o.head_dim == null && hiddenSize % numHeads !== 0) {
    throw new RangeError(
      `Cannot load ${where}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads} ` +
        `and no head_dim is given`,
    );
  }
  const headDim = int("head_dim", hiddenSize / numHeads);
  if (headDim % 2 !== 0) {
    throw new RangeError(`Cannot load ${where}: head_dim ${headDim} must be even for RoPE`);
  }

  const ropeParams = o.rope_parameters;
  const rope: Json = typeof ropeParams === "object" && ropeParams !== null ? ropeParams as Json : {};
  const ropeTheta = num("rope_theta", num("rope_theta", 10000), rope);
  const ropeScaling = parseRopeScaling(o.rope_scaling ?? (ropeParams == null ? undefined : rope), where);

  const attentionBias = type === "qwen2" ? true : bool("attention_bias", false);
  const mlpBias = type === "qwen2" ? false : bool("mlp_bias", false);

  const torchDtype = o.torch_dtype ?? o.dtype;
  const bos = o.bos_token_id;
  if (bos != null && !isTokenId(bos)) {
    throw new TypeError(`Cannot load ${where}: "bos_token_id" must be a token id, got ${describe(bos)}`);
  }
  const eos = o.eos_token_id;
  const eosTokenIds = eos == null ? [] : Array.isArray(eos) ? eos : [eos];
  if (!eosTokenIds.every(isTokenId)) {
    throw new TypeError(
      `Cannot load ${where}: "eos_token_id" must be a token id or a list of them, got ${describe(eos)}`,
    );
  }

  return {
    modelType: type,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num("rms_norm_eps", 1e-6),
    ropeTheta,
    ...(ropeScaling === undefined ? {} : { ropeScaling }),
    maxPositionEmbeddings: int("max_position_embeddings", DEFAULTS[type].maxPositionEmbeddings),
    tieWordEmbeddings: bool("tie_word_embeddings", false),
    attentionBias,
    mlpBias,
    ...(typeof torchDtype === "string" ? { torchDtype } : {}),
    ...(bos == null ? {} : { bosTokenId: bos as number }),
    eosTokenIds: Object.freeze([...eosTokenIds as number[]]),
  };
}

function isTokenId(x: unknown): boolean {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function parseRopeScaling(v: unknown, where: string): Llama3RopeScaling | undefined {
  if (v == null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new TypeError(`Cannot load ${where}: "rope_scaling" must be an object or null, got ${describe(v)}`);
  }
  const s = v as Json;
  const kind = s.rope_type ?? s.type ?? "default";
  if (kind === "default") return undefined;
  if (kind !== "llama3") {
    throw new RangeError(
      `Cannot load ${where}: rope_scaling type ${
        JSON.stringify(kind)
      } is not supported yet; supported: "llama3" (or none)`,
    );
  }
  const pos = (key: string): number => {
    const x = s[key];
    if (typeof x !== "number" || !Number.isFinite(x) || x <= 0) {
      throw new TypeError(
        `Cannot load ${where}: llama3 rope_scaling needs a positive number "${key}", got ${describe(x)}`,
      );
    }
    return x;
  };
  const scaling: Llama3RopeScaling = {
    type: "llama3",
    factor: pos("factor"),
    lowFreqFactor: pos("low_freq_factor"),
    highFreqFactor: pos("high_freq_factor"),
    originalMaxPositionEmbeddings: pos("original_max_position_embeddings"),
  };
  if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
    throw new RangeError(
      `Cannot load ${where}: llama3 rope_scaling high_freq_factor ${scaling.highFreqFactor} must exceed ` +
        `low_freq_factor ${scaling.lowFreqFactor}`,
    );
  }
  return scaling;
}

/**
 * Read and parse `config.json` from a model folder.
 * @param dir a Hugging Face model folder (or hub-cache snapshot).
 * @throws {Deno.errors.NotFound} naming the folder when it has no config.json.
 * @throws {TypeError} when config.json is not valid JSON, and the errors of {@link parseModelConfig}.
 * @example
 * ```ts
 * const cfg = await readModelConfig("models/tiny");
 * ```
 */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot load model folder "${dir}": it has no config.json; it must be a Hugging Face model folder ` +
          `(config.json + *.safetensors)`,
        { cause: e },
      );
    }
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TypeError(
      `Cannot load model config "${path}": it is not valid JSON (${(e as Error).message})`,
      {
        cause: e,
      },
    );
  }
  return parseModelConfig(json, path);
}

/**
 * Rotary inverse frequencies, length `headDim / 2`, with Hugging Face semantics:
 * `inv_freq[i] = 1 / theta^(2i / headDim)`, then Llama 3 scaling (transformers
 * `_compute_llama3_parameters`) when configured.
 *
 * transformers computes these in float32; the values are rounded with `Math.fround` after each
 * float32 operation it performs (the exponent `2i/d`, the power, the reciprocal, and each step of
 * the llama3 wavelength / smoothing arithmetic, with Python scalars rounded to float32), so they
 * match its `inv_freq` buffer up to the last-ulp differences of torch's `pow` kernel.
 *
 * @param cfg the model config (`headDim`, `ropeTheta`, `ropeScaling`).
 * @returns float32-representable values in a Float64Array.
 * @example
 * ```ts
 * ropeInverseFrequencies(cfg)[0]; // 1
 * ```
 */
export function ropeInverseFrequencies(
  cfg: Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">,
): Float64Array {
  const f = Math.fround;
  const d = cfg.headDim;
  const base = f(cfg.ropeTheta);
  const out = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) {
    const exponent = f((2 * i) / d);
    out[i] = f(1 / f(base ** exponent));
  }
  const s = cfg.ropeScaling;
  if (s === undefined) return out;
  const factor = f(s.factor);
  const low = s.lowFreqFactor;
  const high = s.highFreqFactor;
  const old = s.originalMaxPositionEmbeddings;
  // Python floats, cast to float32 when compared with the float32 wavelengths.
  const lowFreqWavelen = f(old / low);
  const highFreqWavelen = f(old / high);
  const twoPi = f(2 * Math.PI);
  for (let i = 0; i < out.length; i++) {
    const inv = out[i]!;
    // `2 * math.pi / inv_freq` is evaluated by torch as `inv_freq.reciprocal() * (2 * math.pi)`.
    const wavelen = f(f(1 / inv) * twoPi);
    const scaled = wavelen > lowFreqWavelen ? f(inv / factor) : inv;
    if (wavelen < highFreqWavelen || wavelen > lowFreqWavelen) {
      out[i] = scaled;
      continue;
    }
    const smooth = f(f(f(f(1 / wavelen) * f(old)) - f(low)) / f(high - low));
    out[i] = f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
  }
  return out;
}
