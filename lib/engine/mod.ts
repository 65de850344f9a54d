/**
 * The engine: Hugging Face decoder checkpoints compiled to hooked ONNX graphs and run with onnxruntime
 * (checkpoint and safetensors I/O, graph compiler, hook vocabulary, KV cache, tokenizer, hub, model
 * organism builder).
 *
 * @module
 */

export * from "./checkpoint.ts";
export * from "./config.ts";
export * from "./float16.ts";
export * from "./graph.ts";
export * from "./graph_folder.ts";
export * from "./head_hooks.ts";
export * from "./hooked_model.ts";
export * from "./hooks.ts";
export * from "./hub.ts";
export * from "./kv_cache.ts";
export * from "./load.ts";
export * from "./onnx_proto.ts";
export * from "./organism.ts";
export * from "./random_checkpoint.ts";
export * from "./safetensors.ts";
export * from "./tokenizer.ts";
// Both load.ts (a source's loose option bag) and organism.ts (the builder's typed options) name one.
export type { OrganismOptions } from "./organism.ts";
