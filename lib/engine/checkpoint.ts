/**
 * A Hugging Face decoder checkpoint folder (config.json + one or more safetensors files), indexed and
 * validated without reading any weights: every tensor the model needs is located (file, byte offset,
 * dtype) and its shape checked against the config.
 *
 * @module
 */

import { pathExists } from "../util/fs.ts";
import { join } from "node:path";
import { type ModelConfig, readModelConfig } from "./config.ts";
import { numElements, readSafetensorsHeader, type SafetensorsDtype, type TensorInfo } from "./safetensors.ts";

/** Name of the token embedding tensor, `[vocab, hidden]`. */
export const EMBED_TOKENS = "model.embed_tokens.weight";
/** Name of the final RMSNorm weight, `[hidden]`. */
export const FINAL_NORM = "model.norm.weight";
/** Name of the unembedding, `[vocab, hidden]` (absent or ignored when embeddings are tied). */
export const LM_HEAD = "lm_head.weight";
/** Single-file weights. */
export const SINGLE_FILE = "model.safetensors";
/** Index of sharded weights. */
export const INDEX_FILE = "model.safetensors.index.json";

/** Tensor names of one decoder layer (weights are `[out, in]`, as stored by Hugging Face). */
export interface LayerTensorNames {
  readonly inputNorm: string;
  readonly qProj: string;
  readonly qBias: string;
  readonly kProj: string;
  readonly kBias: string;
  readonly vProj: string;
  readonly vBias: string;
  readonly oProj: string;
  readonly oBias: string;
  readonly postNorm: string;
  readonly gateProj: string;
  readonly gateBias: string;
  readonly upProj: string;
  readonly upBias: string;
  readonly downProj: string;
  readonly downBias: string;
}

/**
 * Hugging Face tensor names of decoder layer `layer` (whether or not the model has the biases).
 * @example
 * ```ts
 * layerTensorNames(3).qProj; // "model.layers.3.self_attn.q_proj.weight"
 * ```
 */
export function layerTensorNames(layer: number): LayerTensorNames {
  const p = `model.layers.${layer}`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    qProj: `${p}.self_attn.q_proj.weight`,
    qBias: `${p}.self_attn.q_proj.bias`,
    kProj: `${p}.self_attn.k_proj.weight`,
    kBias: `${p}.self_attn.k_proj.bias`,
    vProj: `${p}.self_attn.v_proj.weight`,
    vBias: `${p}.self_attn.v_proj.bias`,
    oProj: `${p}.self_attn.o_proj.weight`,
    oBias: `${p}.self_attn.o_proj.bias`,
    postNorm: `${p}.post_attention_layernorm.weight`,
    gateProj: `${p}.mlp.gate_proj.weight`,
    gateBias: `${p}.mlp.gate_proj.bias`,
    upProj: `${p}.mlp.up_proj.weight`,
    upBias: `${p}.mlp.up_proj.bias`,
    downProj: `${p}.mlp.down_proj.weight`,
    downBias: `${p}.mlp.down_proj.bias`,
  };
}

/**
 * Every tensor the model needs with its expected shape, in forward order. Biases appear only when
 * the config has them (Qwen2: q, k, v; Llama `attention_bias`: q, k, v, o; `mlp_bias`: gate, up,
 * down); `lm_head.weight` only when embeddings are untied.
 */
export function expectedTensorShapes(cfg: ModelConfig): Map<string, readonly number[]> {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: kvh, headDim: D } = cfg;
  const m = new Map<string, readonly number[]>();
  m.set(EMBED_TOKENS, [V, H]);
  for (let l = 0; l < cfg.numLayers; l++) {
    const n = layerTensorNames(l);
    m.set(n.inputNorm, [H]);
    m.set(n.qProj, [nh * D, H]);
    if (cfg.attentionBias) m.set(n.qBias, [nh * D]);
    m.set(n.kProj, [kvh * D, H]);
    if (cfg.attentionBias) m.set(n.kBias, [kvh * D]);
    m.set(n.vProj, [kvh * D, H]);
    if (cfg.attentionBias) m.set(n.vBias, [kvh * D]);
    m.set(n.oProj, [H, nh * D]);
    if (cfg.attentionBias && cfg.modelType === "llama") m.set(n.oBias, [H]);
    m.set(n.postNorm, [H]);
    m.set(n.gateProj, [I, H]);
    if (cfg.mlpBias) m.set(n.gateBias, [I]);
    m.set(n.upProj, [I, H]);
    if (cfg.mlpBias) m.set(n.upBias, [I]);
    m.set(n.downProj, [H, I]);
    if (cfg.mlpBias) m.set(n.downBias, [H]);
  }
  m.set(FINAL_NORM, [H]);
  if (!cfg.tieWordEmbeddings) m.set(LM_HEAD, [V, H]);
  return m;
}

/** Whether layer biases exist: which of the `*Bias` names of {@link layerTensorNames} to use. */
export function layerBiases(
  cfg: ModelConfig,
): { readonly qkv: boolean; readonly o: boolean; readonly mlp: boolean } {
  return {
    qkv: cfg.attentionBias,
    o: cfg.attentionBias && cfg.modelType === "llama",
    mlp: cfg.mlpBias,
  };
}

/** A checkpoint folder, indexed and validated. */
export interface Checkpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  /** Every tensor in the folder's weight files, by name (including ones the model does not use). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** The dtype holding most of the model's parameters (tensors may mix dtypes). */
  readonly weightDtype: SafetensorsDtype;
  /** The unembedding: `lm_head.weight`, or the token embedding when embeddings are tied. */
  readonly lmHead: TensorInfo;
  /** The weight files, relative to `dir`. */
  readonly files: readonly string[];
}

/** A checkpoint folder lacks a tensor or has one of the wrong shape or dtype. */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

/**
 * Index and validate a checkpoint folder: config.json plus `model.safetensors` or sharded files
 * listed by `model.safetensors.index.json` (the single file wins when both exist, as in
 * transformers). Only headers are read. Weight files may be symlinks (Hugging Face hub cache).
 *
 * @param dir the folder.
 * @throws {Deno.errors.NotFound} naming the folder when config.json or all weight files are missing,
 *   or naming the shard when a file listed by the index is missing.
 * @throws {CheckpointError} naming the tensor and file when a tensor is missing, has the wrong shape,
 *   or is not a float tensor.
 * @throws {SafetensorsError} when a weight file is malformed or truncated.
 * @example
 * ```ts
 * const ckpt = await loadCheckpoint("models/tiny");
 * ckpt.tensors.get(layerTensorNames(0).qProj)?.dataOffset;
 * ```
 */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const config = await readModelConfig(dir);
  const at = `Cannot load checkpoint "${dir}"`;
  const tensors = new Map<string, TensorInfo>();
  /** Where a missing tensor should have been, for error messages. */
  let expectedIn: (name: string) => string;
  let files: string[];

  if (await pathExists(join(dir, SINGLE_FILE))) {
    files = [SINGLE_FILE];
    for (const [name, info] of await readSafetensorsHeader(join(dir, SINGLE_FILE))) tensors.set(name, info);
    expectedIn = () => SINGLE_FILE;
  } else if (await pathExists(join(dir, INDEX_FILE))) {
    const weightMap = await readWeightMap(dir, at);
    files = [...new Set(weightMap.values())];
    const headers = new Map<string, Map<string, TensorInfo>>();
    for (const shard of files) {
      try {
        headers.set(shard, await readSafetensorsHeader(join(dir, shard)));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new Deno.errors.NotFound(
            `${at}: shard "${shard}" listed in ${INDEX_FILE} is missing; download it again`,
            { cause: e },
          );
        }
        throw e;
      }
    }
    for (const [name, shard] of weightMap) {
      const info = headers.get(shard)!.get(name);
      if (info === undefined) {
        throw new CheckpointError(
          `${at}: tensor "${name}" missing from ${shard} (where ${INDEX_FILE} says it is); the shard may be ` +
            `from another revision, download the folder again`,
        );
      }
      tensors.set(name, info);
    }
    for (const header of headers.values()) {
      for (const [name, info] of header) if (!tensors.has(name)) tensors.set(name, info);
    }
    expectedIn = (name) => weightMap.has(name) ? weightMap.get(name)! : `the weight_map of ${INDEX_FILE}`;
  } else {
    let names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) names.push(e.name);
    } catch { /* folder unreadable: the message below still applies */ }
    names = names.sort();
    const bin = names.some((n) => n.endsWith(".bin") || n.endsWith(".pt"));
    throw new Deno.errors.NotFound(
      `${at}: it has neither ${SINGLE_FILE} nor ${INDEX_FILE}` +
        (bin ? "; PyTorch .bin weights are not supported, convert them to safetensors" : "") +
        ` (found: ${names.join(", ") || "nothing"})`,
    );
  }

  const counts = new Map<SafetensorsDtype, number>();
  for (const [name, shape] of expectedTensorShapes(config)) {
    const info = tensors.get(name);
    if (info === undefined) {
      const hint = name === LM_HEAD ? " (set tie_word_embeddings in config.json if the model ties it)" : "";
      throw new CheckpointError(`${at}: tensor "${name}" missing from ${expectedIn(name)}${hint}`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `${at}: tensor "${name}" in ${relative(dir, info.file)} has shape [${info.shape.join(", ")}], ` +
          `expected [${shape.join(", ")}] from config.json`,
      );
    }
    if (!["F32", "F16", "BF16", "F64"].includes(info.dtype)) {
      throw new CheckpointError(
        `${at}: tensor "${name}" in ${relative(dir, info.file)} has dtype ${info.dtype}; ` +
          `only float weights (F32, F16, BF16, F64) are supported (quantized checkpoints are not)`,
      );
    }
    counts.set(info.dtype, (counts.get(info.dtype) ?? 0) + numElements(info.shape));
  }
  const weightDtype = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
  const lmHead = config.tieWordEmbeddings ? tensors.get(EMBED_TOKENS)! : tensors.get(LM_HEAD)!;
  return { dir, config, tensors, weightDtype, lmHead, files };
}

/**
 * A tensor of a loaded checkpoint.
 * @throws {CheckpointError} naming the tensor when the checkpoint has none of that name.
 */
export function checkpointTensor(ckpt: Checkpoint, name: string): TensorInfo {
  const info = ckpt.tensors.get(name);
  if (info === undefined) {
    throw new CheckpointError(
      `Checkpoint "${ckpt.dir}" has no tensor "${name}" (files: ${ckpt.files.join(", ")})`,
    );
  }
  return info;
}

function relative(dir: string, file: string): string {
  const prefix = join(dir, "/");
  return file.startsWith(prefix) ? file.slice(prefix.length) : file;
}

async function readWeightMap(dir: string, at: string): Promise<Map<string, string>> {
  const path = join(dir, INDEX_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new CheckpointError(`${at}: ${INDEX_FILE} is not valid JSON; download it again`, { cause: e });
  }
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(`${at}: ${INDEX_FILE} has no "weight_map" object`);
  }
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(wm)) {
    if (
      typeof file !== "string" || file === "" || file.startsWith("/") || file.split(/[\\/]/).includes("..")
    ) {
      throw new CheckpointError(
        `${at}: ${INDEX_FILE} maps tensor "${name}" to ${JSON.stringify(file)}, not a file inside the folder`,
      );
    }
    out.set(name, file);
  }
  return out;
}
