/**
 * The engine's side of the C API: one set of session options for every graph of a model, the memory
 * the KV cache lives in (CPU, or CUDA on a GPU), and a run helper over IO binding that returns small
 * outputs to JavaScript and keeps chosen outputs (the `present.*` cache) as native values.
 *
 * @module
 */

import {
  ELEMENT_TYPES,
  type ElementType,
  loadOrt,
  type MemoryInfo,
  type Ort,
  OrtValue,
  type Session,
  type SessionOptions,
  type TensorData,
} from "./capi.ts";

/** A tensor in JavaScript memory (an onnxruntime-node `Tensor` fits this shape). */
export interface HostTensor {
  readonly type: string;
  readonly data: unknown;
  readonly dims: readonly number[];
}

/** A tensor copied back from ORT. */
export interface HostOutput {
  readonly data: TensorData;
  readonly dims: readonly number[];
}

/** Options of {@link CapiRuntime}. */
export interface CapiRuntimeOptions {
  /** Intra-op threads; default all cores. */
  readonly threads?: number;
  /** Weight prepacking; default true. */
  readonly prepack?: boolean;
  /** Execution provider; default "cpu". */
  readonly device?: "cpu" | "cuda";
  /** CUDA device id; default 0. */
  readonly deviceId?: number;
  /** ORT's CPU memory arena; default true (false: memory returned after each run, slower allocation). */
  readonly memArena?: boolean;
}

function isElementType(t: string): t is ElementType {
  return t in ELEMENT_TYPES;
}

/** Session options, cache memory and the IO-binding run loop shared by a model's graphs. */
export class CapiRuntime {
  readonly ort: Ort;
  readonly options: SessionOptions;
  /** Where native caches live (CPU memory, or CUDA memory on `device: "cuda"`). */
  readonly cacheMemory: MemoryInfo;
  /** CPU memory: outputs that come back to JavaScript are bound here. */
  readonly hostMemory: MemoryInfo;
  readonly device: "cpu" | "cuda";

  /** @throws {OrtError} when the CUDA EP is requested but cannot be appended. */
  constructor(options: CapiRuntimeOptions = {}) {
    this.ort = loadOrt();
    this.device = options.device ?? "cpu";
    const deviceId = options.deviceId ?? 0;
    this.options = this.ort.sessionOptions({
      intraOpThreads: options.threads ?? navigator.hardwareConcurrency,
      interOpThreads: 1,
      cpuMemArena: options.memArena !== false,
      graphOptimization: "all",
      ...(options.prepack === false ? { config: { "session.disable_prepacking": "1" } } : {}),
      executionProviders: this.device === "cuda" ? [{ name: "cuda", deviceId }, "cpu"] : ["cpu"],
    });
    this.hostMemory = this.ort.cpuMemoryInfo();
    this.cacheMemory = this.device === "cuda" ? this.ort.deviceMemoryInfo("Cuda", deviceId) : this.hostMemory;
  }

  /** A session on this runtime's options, from a file or model bytes. @throws {OrtError} */
  session(model: string | Uint8Array): Session {
    return this.ort.session(model, this.options);
  }

  /**
   * Run `session` with IO binding. Host inputs are wrapped without copying (CPU) and native inputs
   * bound as they are; outputs in `host` come back as JS arrays (copied from CPU memory), outputs in
   * `native` stay in {@link cacheMemory} as values the caller owns. Outputs in `bound` are written
   * into the given values (e.g. a `present` cache bound to its own `cache` input: updated in place);
   * they come back in `native` as new owners of the same memory.
   * @throws {OrtError} with ORT's message; {@link TypeError} on an element type this binding lacks.
   */
  async run(
    session: Session,
    inputs: Readonly<Record<string, HostTensor | OrtValue>>,
    outputs: {
      readonly host: readonly string[];
      readonly native: readonly string[];
      readonly bound?: Readonly<Record<string, OrtValue>>;
    },
  ): Promise<{ host: Record<string, HostOutput>; native: Record<string, OrtValue> }> {
    const created: OrtValue[] = [];
    using binding = session.ioBinding();
    try {
      for (const [name, t] of Object.entries(inputs)) {
        let value: OrtValue;
        if (t instanceof OrtValue) value = t;
        else {
          if (!isElementType(t.type)) throw new TypeError(`Input "${name}" has element type ${t.type}`);
          const data = t.data as TensorData;
          // Zero-length tensors have no buffer to wrap: ORT allocates them.
          value = data.length === 0
            ? this.ort.tensor(t.type, null, t.dims)
            : this.ort.tensorWithData(t.type, data, t.dims);
          created.push(value);
        }
        binding.bindInput(name, value);
      }
      for (const name of outputs.host) binding.bindOutputToDevice(name, this.hostMemory);
      for (const name of outputs.native) binding.bindOutputToDevice(name, this.cacheMemory);
      const bound = Object.entries(outputs.bound ?? {});
      for (const [name, value] of bound) binding.bindOutput(name, value);
      await binding.run(); // on a worker thread: the event loop stays free during a step
      const values = binding.outputValues();
      const host: Record<string, HostOutput> = {};
      const native: Record<string, OrtValue> = {};
      outputs.host.forEach((name, i) => {
        const v = values[i]!;
        host[name] = { data: v.toArray(), dims: v.dims };
        v.dispose();
      });
      outputs.native.forEach((name, i) => (native[name] = values[outputs.host.length + i]!));
      const at = outputs.host.length + outputs.native.length;
      bound.forEach(([name], i) => (native[name] = values[at + i]!));
      return { host, native };
    } finally {
      for (const v of created) v.dispose();
    }
  }

  /** Release the session options and memory infos (sessions and values are released by their owners). */
  dispose(): void {
    this.options.dispose();
    if (this.cacheMemory !== this.hostMemory) this.cacheMemory.dispose();
    this.hostMemory.dispose();
  }
}
