/**
 * Seeded random checkpoints in the exact Hugging Face folder format (config.json + safetensors,
 * single file or sharded with an index), for tests and benchmarks of the loading and compiling path.
 *
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic } from "../util/fs.ts";
import { type ModelConfig, parseModelConfig } from "./config.ts";
import { expectedTensorShapes, FINAL_NORM, INDEX_FILE, LM_HEAD, SINGLE_FILE } from "./checkpoint.ts";
import {
  DTYPE_BYTES,
  numElements,
  type TensorToWrite,
  type WritableDtype,
  writeSafetensors,
} from "./safetensors.ts";

/** Options of {@link writeRandomCheckpoint}. */
export interface RandomCheckpointOptions {
  readonly modelType: "qwen2" | "llama";
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  /** Default `hiddenSize / numHeads` (then no `head_dim` key is written). */
  readonly headDim?: number;
  readonly intermediateSize: number;
  readonly vocabSize: number;
  /** Default false. */
  readonly tieWordEmbeddings?: boolean;
  /** Llama only (default false); Qwen2 always has q/k/v biases and rejects `false`. */
  readonly attentionBias?: boolean;
  /** Llama only (default false). */
  readonly mlpBias?: boolean;
  /** Weight dtype (default "F32"). */
  readonly dtype?: WritableDtype;
  /** PRNG seed, an unsigned 32-bit integer (default 0). */
  readonly seed?: number;
  /** Number of weight files (default 1: `model.safetensors`; more: `model-0000k-of-0000n.safetensors` + index). */
  readonly shards?: number;
  /** Default 10000. */
  readonly ropeTheta?: number;
  /** Llama 3 rotary scaling (default none). */
  readonly ropeScaling?: {
    readonly factor: number;
    readonly lowFreqFactor: number;
    readonly highFreqFactor: number;
    readonly originalMaxPositionEmbeddings: number;
  };
  /** Default 4096. */
  readonly maxPositionEmbeddings?: number;
  /** Default 1e-6. */
  readonly rmsNormEps?: number;
  /** Default none. */
  readonly bosTokenId?: number;
  /** Default `vocabSize - 1`. */
  readonly eosTokenId?: number;
}

/** What {@link writeRandomCheckpoint} wrote. */
export interface RandomCheckpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  /** Files written, relative to `dir`. */
  readonly files: readonly string[];
}

const TORCH_DTYPE: Readonly<Record<WritableDtype, string>> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

/**
 * Write a complete Hugging Face model folder with seeded random weights.
 *
 * Weights are uniform with a chosen standard deviation: projections `1/sqrt(fan_in)` (activations keep
 * unit scale, attention patterns and logits are far from uniform); RMSNorm weights `1 ± 0.17`
 * (std 0.1); biases std 0.1; the embedding std 1 (untied) or `hidden^-1/4` (tied, so that logits
 * have std about `hidden^1/4`); an untied `lm_head` `1/sqrt(hidden)`. Each tensor has its own PRNG
 * stream (xoshiro128** seeded from the seed and the tensor name), and tensors are generated and
 * written one at a time, so a 2 GB checkpoint needs memory for one tensor only. The same options
 * always give byte-identical files.
 *
 * @param dir the folder (created if needed; files in it are replaced atomically).
 * @param options model shape and format; see {@link RandomCheckpointOptions} for defaults.
 * @returns the parsed config and the files written.
 * @throws {RangeError} for inconsistent options (e.g. heads not divisible by KV heads, more shards
 *   than tensors, `attentionBias: false` for Qwen2).
 * @example
 * ```ts
 * await writeRandomCheckpoint(dir, {
 *   modelType: "qwen2", hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2,
 *   intermediateSize: 128, vocabSize: 100, seed: 1,
 * });
 * ```
 */
export async function writeRandomCheckpoint(
  dir: string,
  options: RandomCheckpointOptions,
): Promise<RandomCheckpoint> {
  const json = randomCheckpointConfigJson(options);
  const config = parseModelConfig(json, `writeRandomCheckpoint options for "${dir}"`);
  const dtype = options.dtype ?? "F32";
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`writeRandomCheckpoint: seed must be an unsigned 32-bit integer, got ${seed}`);
  }
  const shapes = expectedTensorShapes(config);
  const tensors: TensorToWrite[] = [...shapes].map(([name, shape]) => ({
    name,
    dtype,
    shape,
    data: () => randomValues(name, shape, { seed, config }),
  }));
  const shards = options.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > tensors.length) {
    throw new RangeError(
      `writeRandomCheckpoint: shards must be an integer from 1 to ${tensors.length} (the number of tensors), got ${shards}`,
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  const metadata = { format: "pt" };
  const files: string[] = [];
  if (shards === 1) {
    await writeSafetensors(join(dir, SINGLE_FILE), tensors, { metadata });
    files.push(SINGLE_FILE);
  } else {
    const groups = splitByBytes(tensors, shards);
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    for (let k = 0; k < groups.length; k++) {
      const file = `model-${pad5(k + 1)}-of-${pad5(shards)}.safetensors`;
      const group = groups[k]!;
      await writeSafetensors(join(dir, file), group, { metadata });
      for (const t of group) {
        weightMap[t.name] = file;
        totalSize += numElements(t.shape) * DTYPE_BYTES[t.dtype];
      }
      files.push(file);
    }
    const sorted = Object.fromEntries(
      Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    await writeFileAtomic(
      join(dir, INDEX_FILE),
      JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sorted }, null, 2) + "\n",
    );
    files.push(INDEX_FILE);
  }
  await writeFileAtomic(join(dir, "config.json"), JSON.stringify(json, null, 2) + "\n");
  files.push("config.json");
  return { dir, config, files };
}

/** The config.json object {@link writeRandomCheckpoint} writes for `options`. */
export function randomCheckpointConfigJson(options: RandomCheckpointOptions): Record<string, unknown> {
  const o = options;
  if (o.modelType === "qwen2" && (o.attentionBias === false || o.mlpBias === true)) {
    throw new RangeError(
      "writeRandomCheckpoint: qwen2 always has q/k/v biases and no MLP biases; leave attentionBias/mlpBias unset",
    );
  }
  const scaling = o.ropeScaling;
  return {
    architectures: [o.modelType === "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
    model_type: o.modelType,
    vocab_size: o.vocabSize,
    hidden_size: o.hiddenSize,
    intermediate_size: o.intermediateSize,
    num_hidden_layers: o.numLayers,
    num_attention_heads: o.numHeads,
    num_key_value_heads: o.numKvHeads,
    ...(o.headDim === undefined ? {} : { head_dim: o.headDim }),
    hidden_act: "silu",
    max_position_embeddings: o.maxPositionEmbeddings ?? 4096,
    rms_norm_eps: o.rmsNormEps ?? 1e-6,
    rope_theta: o.ropeTheta ?? 10000,
    rope_scaling: scaling === undefined ? null : {
      rope_type: "llama3",
      factor: scaling.factor,
      low_freq_factor: scaling.lowFreqFactor,
      high_freq_factor: scaling.highFreqFactor,
      original_max_position_embeddings: scaling.originalMaxPositionEmbeddings,
    },
    tie_word_embeddings: o.tieWordEmbeddings ?? false,
    ...(o.modelType === "llama"
      ? { attention_bias: o.attentionBias ?? false, mlp_bias: o.mlpBias ?? false }
      : { use_sliding_window: false, sliding_window: null }),
    torch_dtype: TORCH_DTYPE[o.dtype ?? "F32"],
    bos_token_id: o.bosTokenId ?? null,
    eos_token_id: o.eosTokenId ?? o.vocabSize - 1,
    use_cache: true,
  };
}

function pad5(n: number): string {
  return String(n).padStart(5, "0");
}

/** Split tensors, in order, into `n` non-empty groups of roughly equal size. */
function splitByBytes(tensors: readonly TensorToWrite[], n: number): TensorToWrite[][] {
  const sizes = tensors.map((t) => numElements(t.shape));
  const total = sizes.reduce((a, b) => a + b, 0);
  const groups: TensorToWrite[][] = [[]];
  let before = 0;
  for (let i = 0; i < tensors.length; i++) {
    const size = sizes[i]!;
    const mustStart = tensors.length - i <= n - groups.length;
    const pastTarget = before + size / 2 >= (total * groups.length) / n;
    if (groups.at(-1)!.length > 0 && groups.length < n && (mustStart || pastTarget)) groups.push([]);
    groups.at(-1)!.push(tensors[i]!);
    before += size;
  }
  return groups;
}

/** FNV-1a hash of a string, mixed with the seed. */
function streamSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function randomValues(
  name: string,
  shape: readonly number[],
  ctx: { readonly seed: number; readonly config: ModelConfig },
): Float32Array {
  const n = numElements(shape);
  const out = new Float32Array(n);
  const cfg = ctx.config;
  let mean = 0;
  let std: number;
  if (name === "model.embed_tokens.weight") std = cfg.tieWordEmbeddings ? cfg.hiddenSize ** -0.25 : 1;
  else if (name === LM_HEAD) std = 1 / Math.sqrt(cfg.hiddenSize);
  else if (name === FINAL_NORM || name.endsWith("layernorm.weight")) (mean = 1), (std = 0.1);
  else if (name.endsWith(".bias")) std = 0.1;
  else std = 1 / Math.sqrt(shape[1] ?? 1);
  const half = std * Math.sqrt(3);

  // xoshiro128**, state from splitmix32 of the stream seed.
  let x = streamSeed(ctx.seed, name);
  const split = () => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) | 0;
  };
  let s0 = split(), s1 = split(), s2 = split(), s3 = split();
  const scale = (2 * half) / 4294967296;
  const offset = mean - half;
  for (let i = 0; i < n; i++) {
    const r = Math.imul((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25), 9);
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    out[i] = offset + (r >>> 0) * scale;
  }
  return out;
}
