/**
 * ONNX Runtime through its C API (Deno FFI): the typed binding and the native KV-cache runtime.
 *
 * @module
 */

export {
  ELEMENT_TYPES,
  type ElementType,
  findOrtLibrary,
  GRAPH_OPTIMIZATION,
  IoBinding,
  loadOrt,
  MemoryInfo,
  Ort,
  ORT_API_VERSION,
  OrtError,
  OrtValue,
  PrepackedWeights,
  Session,
  SessionOptions,
  type SessionOptionsInit,
  type TensorData,
  type TensorInfo,
  transfers,
} from "./capi.ts";
export { CapiRuntime, type CapiRuntimeOptions, type HostOutput, type HostTensor } from "./runtime.ts";
export {
  type AnyKVCache,
  CacheOps,
  CacheStorage,
  joinCaches,
  NativeKVCache,
  releaseCache,
  selectCacheRows,
} from "./native_cache.ts";
