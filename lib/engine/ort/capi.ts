/**
 * A small typed binding to the ONNX Runtime C API over `Deno.dlopen`, on onnxruntime-node's own
 * `libonnxruntime.so.1` (no compiler, no extra native package).
 *
 * `OrtGetApiBase()` → `GetApi(ORT_API_VERSION)` gives the `OrtApi` function table; its entries are read
 * by index. The order is fixed by `onnxruntime_c_api.h` (entries are only ever appended, so an index
 * valid for an old header stays valid): the indices below were counted from the header and are checked
 * at run time by calls whose results are known (status round trip, tensor shape round trip, names).
 *
 * Ownership: every native object has exactly one JS owner with `dispose()` / `[Symbol.dispose]`
 * (idempotent), and a `FinalizationRegistry` releases what a caller forgot. Do not rely on the
 * finalizer for large objects (KV caches): garbage collection does not see native memory.
 *
 * Host traffic: {@link transfers} counts bytes copied between native tensors and JavaScript memory
 * by this module, so callers can assert that e.g. no KV bytes cross per decode step.
 *
 * @example
 * ```ts
 * const ort = loadOrt();
 * using opts = ort.sessionOptions({ intraOpThreads: 2 });
 * using session = ort.session("model.onnx", opts);
 * using x = ort.tensor("float32", new Float32Array([1, 2]), [2]);
 * const out = await session.run({ x }, ["y"]);
 * console.log(out.y!.toArray());
 * ```
 *
 * @module
 */

import { createRequire } from "node:module";

/** The C API version requested from the library: 1.30.x implements API 30. */
export const ORT_API_VERSION = 30;

// ---------------------------------------------------------------------------------------------------
// The function table. Indices into `OrtApi` (0-based), counted from onnxruntime_c_api.h.
// ---------------------------------------------------------------------------------------------------

const FUNCTIONS = {
  CreateStatus: { index: 0, parameters: ["i32", "buffer"], result: "pointer" },
  GetErrorCode: { index: 1, parameters: ["pointer"], result: "i32" },
  GetErrorMessage: { index: 2, parameters: ["pointer"], result: "pointer" },
  CreateEnv: { index: 3, parameters: ["i32", "buffer", "buffer"], result: "pointer" },
  CreateSession: { index: 7, parameters: ["pointer", "buffer", "pointer", "buffer"], result: "pointer" },
  CreateSessionFromArray: {
    index: 8,
    parameters: ["pointer", "buffer", "usize", "pointer", "buffer"],
    result: "pointer",
  },
  Run: {
    index: 9,
    parameters: ["pointer", "pointer", "buffer", "buffer", "usize", "buffer", "usize", "buffer"],
    result: "pointer",
    nonblocking: true,
  },
  CreateSessionOptions: { index: 10, parameters: ["buffer"], result: "pointer" },
  SetSessionExecutionMode: { index: 13, parameters: ["pointer", "i32"], result: "pointer" },
  DisableCpuMemArena: { index: 19, parameters: ["pointer"], result: "pointer" },
  SetSessionGraphOptimizationLevel: { index: 23, parameters: ["pointer", "i32"], result: "pointer" },
  SetIntraOpNumThreads: { index: 24, parameters: ["pointer", "i32"], result: "pointer" },
  SetInterOpNumThreads: { index: 25, parameters: ["pointer", "i32"], result: "pointer" },
  SessionGetInputCount: { index: 30, parameters: ["pointer", "buffer"], result: "pointer" },
  SessionGetOutputCount: { index: 31, parameters: ["pointer", "buffer"], result: "pointer" },
  SessionGetInputName: {
    index: 36,
    parameters: ["pointer", "usize", "pointer", "buffer"],
    result: "pointer",
  },
  SessionGetOutputName: {
    index: 37,
    parameters: ["pointer", "usize", "pointer", "buffer"],
    result: "pointer",
  },
  CreateTensorAsOrtValue: {
    index: 48,
    parameters: ["pointer", "buffer", "usize", "i32", "buffer"],
    result: "pointer",
  },
  CreateTensorWithDataAsOrtValue: {
    index: 49,
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "i32", "buffer"],
    result: "pointer",
  },
  IsTensor: { index: 50, parameters: ["pointer", "buffer"], result: "pointer" },
  GetTensorMutableData: { index: 51, parameters: ["pointer", "buffer"], result: "pointer" },
  GetTensorElementType: { index: 60, parameters: ["pointer", "buffer"], result: "pointer" },
  GetDimensionsCount: { index: 61, parameters: ["pointer", "buffer"], result: "pointer" },
  GetDimensions: { index: 62, parameters: ["pointer", "buffer", "usize"], result: "pointer" },
  GetTensorTypeAndShape: { index: 65, parameters: ["pointer", "buffer"], result: "pointer" },
  CreateMemoryInfo: { index: 68, parameters: ["buffer", "i32", "i32", "i32", "buffer"], result: "pointer" },
  CreateCpuMemoryInfo: { index: 69, parameters: ["i32", "i32", "buffer"], result: "pointer" },
  MemoryInfoGetName: { index: 71, parameters: ["pointer", "buffer"], result: "pointer" },
  MemoryInfoGetId: { index: 72, parameters: ["pointer", "buffer"], result: "pointer" },
  AllocatorFree: { index: 76, parameters: ["pointer", "pointer"], result: "pointer" },
  GetAllocatorWithDefaultOptions: { index: 78, parameters: ["buffer"], result: "pointer" },
  ReleaseEnv: { index: 92, parameters: ["pointer"], result: "void" },
  ReleaseStatus: { index: 93, parameters: ["pointer"], result: "void" },
  ReleaseMemoryInfo: { index: 94, parameters: ["pointer"], result: "void" },
  ReleaseSession: { index: 95, parameters: ["pointer"], result: "void" },
  ReleaseValue: { index: 96, parameters: ["pointer"], result: "void" },
  ReleaseTensorTypeAndShapeInfo: { index: 99, parameters: ["pointer"], result: "void" },
  ReleaseSessionOptions: { index: 100, parameters: ["pointer"], result: "void" },
  GetAvailableProviders: { index: 125, parameters: ["buffer", "buffer"], result: "pointer" },
  ReleaseAvailableProviders: { index: 126, parameters: ["pointer", "i32"], result: "pointer" },
  AddSessionConfigEntry: { index: 130, parameters: ["pointer", "buffer", "buffer"], result: "pointer" },
  RunWithBinding: {
    index: 133,
    parameters: ["pointer", "pointer", "pointer"],
    result: "pointer",
    nonblocking: true,
  },
  /** The same entry, called on the JS thread (no worker-thread hop). */
  RunWithBindingSync: { index: 133, parameters: ["pointer", "pointer", "pointer"], result: "pointer" },
  CreateIoBinding: { index: 134, parameters: ["pointer", "buffer"], result: "pointer" },
  ReleaseIoBinding: { index: 135, parameters: ["pointer"], result: "void" },
  BindInput: { index: 136, parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  BindOutput: { index: 137, parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  BindOutputToDevice: { index: 138, parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  GetBoundOutputNames: {
    index: 139,
    parameters: ["pointer", "pointer", "buffer", "buffer", "buffer"],
    result: "pointer",
  },
  GetBoundOutputValues: {
    index: 140,
    parameters: ["pointer", "pointer", "buffer", "buffer"],
    result: "pointer",
  },
  ClearBoundInputs: { index: 141, parameters: ["pointer"], result: "void" },
  ClearBoundOutputs: { index: 142, parameters: ["pointer"], result: "void" },
  CreatePrepackedWeightsContainer: { index: 166, parameters: ["buffer"], result: "pointer" },
  ReleasePrepackedWeightsContainer: { index: 167, parameters: ["pointer"], result: "void" },
  CreateSessionWithPrepackedWeightsContainer: {
    index: 168,
    parameters: ["pointer", "buffer", "pointer", "pointer", "buffer"],
    result: "pointer",
  },
  CreateSessionFromArrayWithPrepackedWeightsContainer: {
    index: 169,
    parameters: ["pointer", "buffer", "usize", "pointer", "pointer", "buffer"],
    result: "pointer",
  },
  GetTensorMemoryInfo: { index: 194, parameters: ["pointer", "buffer"], result: "pointer" },
  SessionOptionsAppendExecutionProvider_CUDA_V2: {
    index: 204,
    parameters: ["pointer", "pointer"],
    result: "pointer",
  },
  CreateCUDAProviderOptions: { index: 205, parameters: ["buffer"], result: "pointer" },
  UpdateCUDAProviderOptions: {
    index: 206,
    parameters: ["pointer", "buffer", "buffer", "usize"],
    result: "pointer",
  },
  ReleaseCUDAProviderOptions: { index: 208, parameters: ["pointer"], result: "void" },
} as const;

type FunctionName = keyof typeof FUNCTIONS;
type Fn<K extends FunctionName> = Deno.UnsafeFnPointer<
  & { parameters: (typeof FUNCTIONS)[K]["parameters"]; result: (typeof FUNCTIONS)[K]["result"] }
  & (
    (typeof FUNCTIONS)[K] extends { nonblocking: true } ? { nonblocking: true } : { nonblocking?: false }
  )
>;
/** The typed function table. */
export type OrtApiTable = { readonly [K in FunctionName]: Fn<K> };

// ---------------------------------------------------------------------------------------------------
// Errors, element types
// ---------------------------------------------------------------------------------------------------

/** `OrtErrorCode` names by value. */
export const ORT_ERROR_CODES = [
  "ORT_OK",
  "ORT_FAIL",
  "ORT_INVALID_ARGUMENT",
  "ORT_NO_SUCHFILE",
  "ORT_NO_MODEL",
  "ORT_ENGINE_ERROR",
  "ORT_RUNTIME_EXCEPTION",
  "ORT_INVALID_PROTOBUF",
  "ORT_MODEL_LOADED",
  "ORT_NOT_IMPLEMENTED",
  "ORT_INVALID_GRAPH",
  "ORT_EP_FAIL",
  "ORT_MODEL_LOAD_CANCELED",
  "ORT_MODEL_REQUIRES_COMPILATION",
  "ORT_NOT_FOUND",
] as const;

/** A failed ONNX Runtime call: `code` is ORT's `OrtErrorCode`, `ortMessage` ORT's own message. */
export class OrtError extends Error {
  override readonly name = "OrtError";
  constructor(
    /** Which call failed, e.g. `CreateSession("model.onnx")`. */
    readonly call: string,
    readonly code: number,
    readonly ortMessage: string,
  ) {
    super(`${call} failed: [${ORT_ERROR_CODES[code] ?? `code ${code}`}] ${ortMessage}`);
  }
  /** The symbolic error code, e.g. `ORT_NO_SUCHFILE`. */
  get codeName(): string {
    return ORT_ERROR_CODES[this.code] ?? `code ${this.code}`;
  }
}

/** Tensor element types supported by this binding, with their `ONNXTensorElementDataType` codes. */
export const ELEMENT_TYPES = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
} as const;
/** An element type name. */
export type ElementType = keyof typeof ELEMENT_TYPES;

const TYPE_BY_CODE = new Map<number, ElementType>(
  Object.entries(ELEMENT_TYPES).map(([k, v]) => [v, k as ElementType]),
);
const ELEMENT_BYTES: Readonly<Record<ElementType, number>> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  float64: 8,
  bfloat16: 2,
};

/** The JS array type holding a tensor's elements. float16/bfloat16 come as raw `Uint16Array` bits. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Uint16Array;

function viewAs(type: ElementType, buffer: ArrayBuffer, byteOffset = 0, length?: number): TensorData {
  switch (type) {
    case "float32":
      return new Float32Array(buffer, byteOffset, length);
    case "float64":
      return new Float64Array(buffer, byteOffset, length);
    case "int32":
      return new Int32Array(buffer, byteOffset, length);
    case "int64":
      return new BigInt64Array(buffer, byteOffset, length);
    case "int8":
      return new Int8Array(buffer, byteOffset, length);
    case "uint8":
    case "bool":
      return new Uint8Array(buffer, byteOffset, length);
    case "float16":
    case "bfloat16":
      return new Uint16Array(buffer, byteOffset, length);
  }
}

/** Bytes copied between native tensors and JavaScript memory by this module (monotonic counters). */
export const transfers = {
  /** Native → JS (tensor reads). */
  toHost: 0,
  /** JS → native (tensor creation from JS data). */
  fromHost: 0,
};

// ---------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------

const enc = new TextEncoder();
/** A NUL-terminated UTF-8 copy of `s`. */
function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = enc.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

function ptrOut(): BigUint64Array<ArrayBuffer> {
  return new BigUint64Array(1);
}
function readPtr(out: BigUint64Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(out[0]!);
}

/**
 * Where onnxruntime-node 1.30's `libonnxruntime.so.1` lies: `bin/napi-v*\/<os>/<arch>/` of the
 * package as resolved from this module.
 * @throws {Error} naming the folders searched when the library is not there.
 */
export function findOrtLibrary(): string {
  const os = Deno.build.os === "darwin" ? "darwin" : Deno.build.os === "windows" ? "win32" : "linux";
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
  const file = os === "darwin"
    ? "libonnxruntime.1.dylib"
    : os === "win32"
    ? "onnxruntime.dll"
    : "libonnxruntime.so.1";
  let root: string;
  try {
    const main = createRequire(import.meta.url).resolve("onnxruntime-node");
    root = main.slice(0, main.lastIndexOf("/onnxruntime-node/") + "/onnxruntime-node/".length);
  } catch (error) {
    throw new Error(
      `Cannot find the ONNX Runtime library: the package onnxruntime-node does not resolve from ` +
        `${import.meta.url} (run \`deno install\`): ${(error as Error).message}`,
      { cause: error },
    );
  }
  const searched: string[] = [];
  let dirs: string[] = [];
  try {
    dirs = [...Deno.readDirSync(`${root}bin`)].filter((e) => e.name.startsWith("napi-v")).map((e) => e.name)
      .sort().reverse();
  } catch {
    // no bin folder: reported below
  }
  for (const d of dirs) {
    const path = `${root}bin/${d}/${os}/${arch}/${file}`;
    searched.push(path);
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // try the next napi folder
    }
  }
  throw new Error(
    `Cannot find the ONNX Runtime library ${file} of onnxruntime-node; searched ${
      searched.length ? searched.join(", ") : `${root}bin/napi-v*/${os}/${arch}/`
    }. Reinstall the package (\`deno install\`) or pass the library path to loadOrt().`,
  );
}

let loaded: Ort | undefined;

/**
 * The process-wide ONNX Runtime C API (loaded once; later calls return the same object).
 * @param libraryPath default: {@link findOrtLibrary}.
 * @throws {Error} when the library cannot be found or opened, or does not implement {@link ORT_API_VERSION}.
 */
export function loadOrt(libraryPath?: string): Ort {
  if (loaded) return loaded;
  loaded = new Ort(libraryPath ?? findOrtLibrary());
  return loaded;
}

// ---------------------------------------------------------------------------------------------------
// Native ownership
// ---------------------------------------------------------------------------------------------------

interface Held {
  readonly release: (p: Deno.PointerObject) => void;
  readonly ptr: Deno.PointerObject;
  /** Kept alive until the native object is released (user buffers, parents). */
  readonly keep?: unknown;
}
const finalizer = new FinalizationRegistry<Held>((h) => h.release(h.ptr));

/** Base of every owned native object: one owner, idempotent `dispose()`, finalizer backstop. */
abstract class Native {
  #ptr: Deno.PointerObject | null;
  readonly #release: (p: Deno.PointerObject) => void;
  protected constructor(ptr: Deno.PointerObject, release: (p: Deno.PointerObject) => void, keep?: unknown) {
    this.#ptr = ptr;
    this.#release = release;
    finalizer.register(this, { release, ptr, keep }, this);
  }
  /** The native pointer. @throws {ReferenceError} after `dispose()`. */
  get ptr(): Deno.PointerObject {
    if (this.#ptr === null) throw new ReferenceError(`${this.constructor.name} used after dispose()`);
    return this.#ptr;
  }
  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.#ptr === null;
  }
  /** Release the native object now (safe to call twice). */
  dispose(): void {
    if (this.#ptr === null) return;
    finalizer.unregister(this);
    const p = this.#ptr;
    this.#ptr = null;
    this.#release(p);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------
// The API object
// ---------------------------------------------------------------------------------------------------

/** Graph optimisation levels (`GraphOptimizationLevel`). */
export const GRAPH_OPTIMIZATION = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;

/** Options of {@link Ort.sessionOptions}. */
export interface SessionOptionsInit {
  /** Intra-op threads; default 0 = ORT's choice (all cores). */
  readonly intraOpThreads?: number;
  /** Inter-op threads; default 1 (sequential execution). */
  readonly interOpThreads?: number;
  /** Default "all". */
  readonly graphOptimization?: keyof typeof GRAPH_OPTIMIZATION;
  /** ORT's CPU memory arena (faster allocation, memory kept at its high-water mark); default true. */
  readonly cpuMemArena?: boolean;
  /** Session config entries (onnxruntime_session_options_config_keys.h), e.g. `session.disable_prepacking`. */
  readonly config?: Readonly<Record<string, string>>;
  /**
   * Execution providers in preference order; CPU is always the fallback. `cuda` appends the CUDA EP
   * (V2 options) on `deviceId` (default 0) with optional extra provider options.
   */
  readonly executionProviders?: readonly (
    | "cpu"
    | {
      readonly name: "cuda";
      readonly deviceId?: number;
      readonly options?: Readonly<Record<string, string>>;
    }
  )[];
}

/** The loaded library: function table, environment, default allocator, CPU memory info. */
export class Ort {
  readonly api: OrtApiTable;
  /** The library's version string, e.g. "1.30.0". */
  readonly version: string;
  readonly libraryPath: string;
  readonly #lib: Deno.DynamicLibrary<{ OrtGetApiBase: { parameters: []; result: "pointer" } }>;
  readonly #env: Deno.PointerObject;
  /** ORT's default CPU allocator (not owned: never released). */
  readonly allocator: Deno.PointerObject;
  readonly #cpu: MemoryInfo;

  constructor(libraryPath: string) {
    this.libraryPath = libraryPath;
    try {
      this.#lib = Deno.dlopen(libraryPath, { OrtGetApiBase: { parameters: [], result: "pointer" } });
    } catch (error) {
      throw new Error(`Cannot open the ONNX Runtime library ${libraryPath}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const base = this.#lib.symbols.OrtGetApiBase();
    if (!base) throw new Error(`OrtGetApiBase() returned NULL in ${libraryPath}`);
    const baseView = new Deno.UnsafePointerView(base);
    const getApi = new Deno.UnsafeFnPointer(baseView.getPointer(0)!, {
      parameters: ["u32"],
      result: "pointer",
    });
    const getVersion = new Deno.UnsafeFnPointer(baseView.getPointer(8)!, {
      parameters: [],
      result: "pointer",
    });
    this.version = Deno.UnsafePointerView.getCString(getVersion.call()!);
    const table = getApi.call(ORT_API_VERSION);
    if (!table) {
      throw new Error(
        `${libraryPath} (ONNX Runtime ${this.version}) does not implement C API version ${ORT_API_VERSION}; ` +
          `this binding needs onnxruntime-node 1.30 or newer`,
      );
    }
    const view = new Deno.UnsafePointerView(table);
    const api: Record<string, unknown> = {};
    for (const [name, def] of Object.entries(FUNCTIONS)) {
      const fp = view.getPointer(def.index * 8);
      if (!fp) throw new Error(`OrtApi entry ${def.index} (${name}) is NULL in ONNX Runtime ${this.version}`);
      const { index: _index, ...signature } = def;
      api[name] = new Deno.UnsafeFnPointer(
        fp as Deno.PointerObject<Deno.ForeignFunction>,
        signature as Deno.ForeignFunction,
      );
    }
    this.api = api as OrtApiTable;
    const out = ptrOut();
    // ORT_LOGGING_LEVEL_FATAL = 4: failures reach callers as OrtError, so ORT need not also log them.
    this.check(this.api.CreateEnv.call(4, cstr("deno-ort"), out), "CreateEnv");
    this.#env = readPtr(out)!;
    this.check(this.api.GetAllocatorWithDefaultOptions.call(out), "GetAllocatorWithDefaultOptions");
    this.allocator = readPtr(out)!;
    this.#cpu = this.cpuMemoryInfo();
  }

  /** Throw the {@link OrtError} a returned `OrtStatus*` carries (releasing it); no-op on success. */
  check(status: Deno.PointerValue, call: string): void {
    if (status === null) return;
    const code = this.api.GetErrorCode.call(status);
    const msgPtr = this.api.GetErrorMessage.call(status);
    const message = msgPtr ? Deno.UnsafePointerView.getCString(msgPtr) : "";
    this.api.ReleaseStatus.call(status);
    throw new OrtError(call, code, message);
  }

  /** Create an `OrtStatus` and convert it back (a round trip through ORT's error path; for tests). */
  statusRoundTrip(code: number, message: string): OrtError | undefined {
    try {
      this.check(this.api.CreateStatus.call(code, cstr(message)), "CreateStatus");
    } catch (error) {
      if (error instanceof OrtError) return error;
      throw error;
    }
    return undefined;
  }

  /** The execution providers this library build knows (e.g. `CPUExecutionProvider`). */
  availableProviders(): string[] {
    const out = ptrOut(), n = new Int32Array(1);
    this.check(this.api.GetAvailableProviders.call(out, n), "GetAvailableProviders");
    const arr = readPtr(out)!;
    const view = new Deno.UnsafePointerView(arr);
    const names = Array.from(
      { length: n[0]! },
      (_, i) => Deno.UnsafePointerView.getCString(view.getPointer(i * 8)!),
    );
    this.check(this.api.ReleaseAvailableProviders.call(arr, n[0]!), "ReleaseAvailableProviders");
    return names;
  }

  /** Memory info for CPU memory (arena allocator, default memory type). */
  cpuMemoryInfo(): MemoryInfo {
    const out = ptrOut();
    this.check(this.api.CreateCpuMemoryInfo.call(1, 0, out), "CreateCpuMemoryInfo");
    return new MemoryInfo(this, readPtr(out)!);
  }

  /**
   * Memory info for a device, e.g. `("Cuda", 0)` for CUDA memory on GPU 0 (arena allocator, default
   * memory type). Creating one needs no GPU; binding to it does.
   */
  deviceMemoryInfo(name: string, deviceId = 0): MemoryInfo {
    const out = ptrOut();
    this.check(
      this.api.CreateMemoryInfo.call(cstr(name), 1, deviceId, 0, out),
      `CreateMemoryInfo("${name}")`,
    );
    return new MemoryInfo(this, readPtr(out)!);
  }

  /**
   * Session options.
   * @throws {OrtError} e.g. when the CUDA EP is requested but its provider library cannot be loaded.
   */
  sessionOptions(init: SessionOptionsInit = {}): SessionOptions {
    const out = ptrOut();
    this.check(this.api.CreateSessionOptions.call(out), "CreateSessionOptions");
    const opts = new SessionOptions(this, readPtr(out)!);
    try {
      const p = opts.ptr;
      if (init.intraOpThreads !== undefined) {
        this.check(this.api.SetIntraOpNumThreads.call(p, init.intraOpThreads), "SetIntraOpNumThreads");
      }
      this.check(this.api.SetInterOpNumThreads.call(p, init.interOpThreads ?? 1), "SetInterOpNumThreads");
      this.check(this.api.SetSessionExecutionMode.call(p, 0), "SetSessionExecutionMode");
      const level = GRAPH_OPTIMIZATION[init.graphOptimization ?? "all"];
      this.check(
        this.api.SetSessionGraphOptimizationLevel.call(p, level),
        "SetSessionGraphOptimizationLevel",
      );
      if (init.cpuMemArena === false) this.check(this.api.DisableCpuMemArena.call(p), "DisableCpuMemArena");
      for (const [k, v] of Object.entries(init.config ?? {})) {
        this.check(this.api.AddSessionConfigEntry.call(p, cstr(k), cstr(v)), `AddSessionConfigEntry("${k}")`);
      }
      for (const ep of init.executionProviders ?? []) {
        if (ep === "cpu") continue; // the CPU EP is always registered last by ORT
        this.#appendCuda(p, ep.deviceId ?? 0, ep.options ?? {});
      }
    } catch (error) {
      opts.dispose();
      throw error;
    }
    return opts;
  }

  #appendCuda(options: Deno.PointerObject, deviceId: number, extra: Readonly<Record<string, string>>): void {
    const out = ptrOut();
    this.check(this.api.CreateCUDAProviderOptions.call(out), "CreateCUDAProviderOptions");
    const cuda = readPtr(out)!;
    try {
      const entries = Object.entries({ ...extra, device_id: String(deviceId) });
      const keys = entries.map(([k]) => cstr(k)), values = entries.map(([, v]) => cstr(v));
      const keyPtrs = BigUint64Array.from(
        keys,
        (k) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(k))),
      );
      const valPtrs = BigUint64Array.from(
        values,
        (v) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(v))),
      );
      this.check(
        this.api.UpdateCUDAProviderOptions.call(cuda, keyPtrs, valPtrs, BigInt(entries.length)),
        "UpdateCUDAProviderOptions",
      );
      this.check(
        this.api.SessionOptionsAppendExecutionProvider_CUDA_V2.call(options, cuda),
        `SessionOptionsAppendExecutionProvider_CUDA_V2(device ${deviceId})`,
      );
      void keys, values; // kept alive until here
    } finally {
      this.api.ReleaseCUDAProviderOptions.call(cuda);
    }
  }

  /** A new prepacked-weights container (see {@link PrepackedWeights}). */
  prepackedWeights(): PrepackedWeights {
    const out = ptrOut();
    this.check(this.api.CreatePrepackedWeightsContainer.call(out), "CreatePrepackedWeightsContainer");
    return new PrepackedWeights(this, readPtr(out)!);
  }

  /**
   * A session from an ONNX file or from the model's bytes, optionally sharing prepacked weights.
   * @throws {OrtError} with ORT's message (missing file, invalid model, ...).
   */
  session(model: string | Uint8Array, options: SessionOptions, prepacked?: PrepackedWeights): Session {
    const out = ptrOut();
    if (prepacked && typeof model === "string") {
      this.check(
        this.api.CreateSessionWithPrepackedWeightsContainer.call(
          this.#env,
          cstr(model),
          options.ptr,
          prepacked.ptr,
          out,
        ),
        `CreateSessionWithPrepackedWeightsContainer("${model}")`,
      );
    } else if (prepacked) {
      const bytes = model as Uint8Array<ArrayBuffer>;
      this.check(
        this.api.CreateSessionFromArrayWithPrepackedWeightsContainer.call(
          this.#env,
          bytes,
          BigInt(bytes.byteLength),
          options.ptr,
          prepacked.ptr,
          out,
        ),
        "CreateSessionFromArrayWithPrepackedWeightsContainer",
      );
    } else if (typeof model === "string") {
      this.check(
        this.api.CreateSession.call(this.#env, cstr(model), options.ptr, out),
        `CreateSession("${model}")`,
      );
    } else {
      const bytes = model as Uint8Array<ArrayBuffer>;
      this.check(
        this.api.CreateSessionFromArray.call(this.#env, bytes, BigInt(bytes.byteLength), options.ptr, out),
        "CreateSessionFromArray",
      );
    }
    return new Session(this, readPtr(out)!);
  }

  /**
   * A tensor owned by ORT (default CPU allocator) holding a copy of `data` (counted in
   * {@link transfers}.fromHost). Its lifetime is independent of `data`.
   * @param dims shape; the product must equal `data.length`.
   * @throws {RangeError} on a shape/length mismatch.
   */
  tensor(type: ElementType, data: TensorData | null, dims: readonly number[]): OrtValue {
    const count = dims.reduce((a, b) => a * b, 1);
    if (data !== null && data.length !== count) {
      throw new RangeError(`tensor(${type}, [${dims}]): ${data.length} elements for ${count}`);
    }
    const out = ptrOut();
    const shape = BigInt64Array.from(dims, BigInt);
    this.check(
      this.api.CreateTensorAsOrtValue.call(
        this.allocator,
        shape,
        BigInt(dims.length),
        ELEMENT_TYPES[type],
        out,
      ),
      `CreateTensorAsOrtValue(${type}, [${dims}])`,
    );
    const value = new OrtValue(this, readPtr(out)!);
    if (data !== null && count > 0) {
      const bytes = count * ELEMENT_BYTES[type];
      const dst = Deno.UnsafePointerView.getArrayBuffer(value.dataPointer()!, bytes);
      new Uint8Array(dst).set(new Uint8Array(data.buffer, data.byteOffset, bytes));
      transfers.fromHost += bytes;
    }
    return value;
  }

  /**
   * A tensor over `data` itself (zero copy, CPU memory): writes to `data` are seen by ORT. The value
   * keeps `data` alive until it is released.
   */
  tensorWithData(type: ElementType, data: TensorData, dims: readonly number[]): OrtValue {
    const count = dims.reduce((a, b) => a * b, 1);
    if (data.length !== count) {
      throw new RangeError(`tensorWithData(${type}, [${dims}]): ${data.length} elements for ${count}`);
    }
    const out = ptrOut();
    const shape = BigInt64Array.from(dims, BigInt);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength) as Uint8Array<ArrayBuffer>;
    this.check(
      this.api.CreateTensorWithDataAsOrtValue.call(
        this.#cpu.ptr,
        bytes,
        BigInt(data.byteLength),
        shape,
        BigInt(dims.length),
        ELEMENT_TYPES[type],
        out,
      ),
      `CreateTensorWithDataAsOrtValue(${type}, [${dims}])`,
    );
    return new OrtValue(this, readPtr(out)!, data);
  }
}

/**
 * An `OrtPrepackedWeightsContainer`: sessions created with the same container share the prepacked
 * copies of initializers that ORT knows to be shared. Keep it alive as long as its sessions.
 */
export class PrepackedWeights extends Native {
  constructor(readonly ort: Ort, ptr: Deno.PointerObject) {
    super(ptr, (p) => ort.api.ReleasePrepackedWeightsContainer.call(p));
  }
}

/** An `OrtMemoryInfo`. */
export class MemoryInfo extends Native {
  constructor(readonly ort: Ort, ptr: Deno.PointerObject) {
    super(ptr, (p) => ort.api.ReleaseMemoryInfo.call(p));
  }
}

/** An `OrtSessionOptions`. */
export class SessionOptions extends Native {
  constructor(readonly ort: Ort, ptr: Deno.PointerObject) {
    super(ptr, (p) => ort.api.ReleaseSessionOptions.call(p));
  }
}

/** Description of a native tensor. */
export interface TensorInfo {
  readonly type: ElementType;
  readonly dims: readonly number[];
}

/** An `OrtValue` holding a tensor (on CPU or a device). */
export class OrtValue extends Native {
  #info: TensorInfo | undefined;
  constructor(readonly ort: Ort, ptr: Deno.PointerObject, keep?: unknown) {
    super(ptr, (p) => ort.api.ReleaseValue.call(p), keep);
  }

  /** Element type and shape (read once). */
  get info(): TensorInfo {
    if (this.#info) return this.#info;
    const api = this.ort.api, out = ptrOut();
    this.ort.check(api.GetTensorTypeAndShape.call(this.ptr, out), "GetTensorTypeAndShape");
    const ts = readPtr(out)!;
    try {
      const t = new Int32Array(1);
      this.ort.check(api.GetTensorElementType.call(ts, t), "GetTensorElementType");
      const n = new BigUint64Array(1);
      this.ort.check(api.GetDimensionsCount.call(ts, n), "GetDimensionsCount");
      const dims = new BigInt64Array(Number(n[0]!));
      this.ort.check(api.GetDimensions.call(ts, dims, BigInt(dims.length)), "GetDimensions");
      const type = TYPE_BY_CODE.get(t[0]!);
      if (!type) throw new TypeError(`OrtValue has element type code ${t[0]}, not supported by this binding`);
      this.#info = { type, dims: Array.from(dims, Number) };
    } finally {
      api.ReleaseTensorTypeAndShapeInfo.call(ts);
    }
    return this.#info;
  }
  get dims(): readonly number[] {
    return this.info.dims;
  }
  get type(): ElementType {
    return this.info.type;
  }
  /** Number of elements. */
  get size(): number {
    return this.dims.reduce((a, b) => a * b, 1);
  }
  get byteLength(): number {
    return this.size * ELEMENT_BYTES[this.type];
  }

  /** The memory this tensor lives in: its name ("Cpu", "Cuda", ...) and device id. */
  location(): { name: string; deviceId: number } {
    const out = ptrOut();
    this.ort.check(this.ort.api.GetTensorMemoryInfo.call(this.ptr, out), "GetTensorMemoryInfo");
    const info = readPtr(out)!; // owned by the value
    const name = ptrOut(), id = new Int32Array(1);
    this.ort.check(this.ort.api.MemoryInfoGetName.call(info, name), "MemoryInfoGetName");
    this.ort.check(this.ort.api.MemoryInfoGetId.call(info, id), "MemoryInfoGetId");
    return { name: Deno.UnsafePointerView.getCString(readPtr(name)!), deviceId: id[0]! };
  }

  /** Raw pointer to the tensor's data (device memory for device tensors; NULL for empty tensors). */
  dataPointer(): Deno.PointerValue {
    const out = ptrOut();
    this.ort.check(this.ort.api.GetTensorMutableData.call(this.ptr, out), "GetTensorMutableData");
    return readPtr(out);
  }

  /**
   * A JS copy of the elements (counted in {@link transfers}.toHost).
   * @throws {RangeError} when the tensor is not in CPU memory (bind such outputs to CPU instead).
   */
  toArray(): TensorData {
    const { type } = this.info;
    const bytes = this.byteLength;
    const result = viewAs(type, new ArrayBuffer(bytes));
    if (bytes === 0) return result;
    const where = this.location();
    if (where.name !== "Cpu") {
      throw new RangeError(
        `OrtValue [${this.dims}] lives in ${where.name}:${where.deviceId} memory; bind the output to CPU ` +
          `memory (IoBinding.bindOutputToDevice with ort.cpuMemoryInfo()) to read it`,
      );
    }
    const src = Deno.UnsafePointerView.getArrayBuffer(this.dataPointer()!, bytes);
    new Uint8Array(result.buffer).set(new Uint8Array(src));
    transfers.toHost += bytes;
    return result;
  }
}

/** An `OrtSession`. */
export class Session extends Native {
  #inputs: string[] | undefined;
  #outputs: string[] | undefined;
  constructor(readonly ort: Ort, ptr: Deno.PointerObject) {
    super(ptr, (p) => ort.api.ReleaseSession.call(p));
  }

  #names(kind: "input" | "output"): string[] {
    const api = this.ort.api, n = new BigUint64Array(1);
    const count = kind === "input" ? api.SessionGetInputCount : api.SessionGetOutputCount;
    const get = kind === "input" ? api.SessionGetInputName : api.SessionGetOutputName;
    this.ort.check(count.call(this.ptr, n), `SessionGet${kind}Count`);
    return Array.from({ length: Number(n[0]!) }, (_, i) => {
      const out = ptrOut();
      this.ort.check(get.call(this.ptr, BigInt(i), this.ort.allocator, out), `SessionGet${kind}Name(${i})`);
      const p = readPtr(out)!;
      const name = Deno.UnsafePointerView.getCString(p);
      this.ort.check(api.AllocatorFree.call(this.ort.allocator, p), "AllocatorFree");
      return name;
    });
  }
  get inputNames(): readonly string[] {
    return (this.#inputs ??= this.#names("input"));
  }
  get outputNames(): readonly string[] {
    return (this.#outputs ??= this.#names("output"));
  }

  /**
   * Run with named inputs; the outputs come back as ORT-allocated values (CPU for the CPU EP), each
   * owned by the caller.
   * @throws {OrtError} with ORT's message (unknown input, shape mismatch, kernel failure, ...).
   */
  async run(
    feeds: Readonly<Record<string, OrtValue>>,
    outputNames: readonly string[],
  ): Promise<Record<string, OrtValue>> {
    const inNames = Object.keys(feeds).map(cstr), outNames = outputNames.map(cstr);
    const addr = (p: Deno.PointerValue) => BigInt(Deno.UnsafePointer.value(p));
    const inNamePtrs = BigUint64Array.from(inNames, (s) => addr(Deno.UnsafePointer.of(s)));
    const inValues = BigUint64Array.from(Object.values(feeds), (v) => addr(v.ptr));
    const outNamePtrs = BigUint64Array.from(outNames, (s) => addr(Deno.UnsafePointer.of(s)));
    const outValues = new BigUint64Array(outNames.length);
    const status = await this.ort.api.Run.call(
      this.ptr,
      null,
      inNamePtrs,
      inValues,
      BigInt(inNames.length),
      outNamePtrs,
      BigInt(outNames.length),
      outValues,
    );
    void inNames, outNames; // the name buffers must live until the call returned
    this.ort.check(status, "Run");
    const result: Record<string, OrtValue> = {};
    outputNames.forEach((
      name,
      i,
    ) => (result[name] = new OrtValue(this.ort, Deno.UnsafePointer.create(outValues[i]!)!)));
    return result;
  }

  /** A new IO binding on this session. */
  ioBinding(): IoBinding {
    const out = ptrOut();
    this.ort.check(this.ort.api.CreateIoBinding.call(this.ptr, out), "CreateIoBinding");
    return new IoBinding(this, readPtr(out)!);
  }
}

/**
 * An `OrtIoBinding`: inputs bound to existing values (no copy when they are already where the EP
 * wants them), outputs bound to values or to a device where ORT allocates them.
 */
export class IoBinding extends Native {
  readonly ort: Ort;
  constructor(readonly session: Session, ptr: Deno.PointerObject) {
    const ort = session.ort;
    super(ptr, (p) => ort.api.ReleaseIoBinding.call(p), session);
    this.ort = ort;
  }
  /** Bind `value` as input `name`. The value must stay alive until the run. */
  bindInput(name: string, value: OrtValue): void {
    this.ort.check(this.ort.api.BindInput.call(this.ptr, cstr(name), value.ptr), `BindInput("${name}")`);
  }
  /** Bind a preallocated `value` as output `name`. */
  bindOutput(name: string, value: OrtValue): void {
    this.ort.check(this.ort.api.BindOutput.call(this.ptr, cstr(name), value.ptr), `BindOutput("${name}")`);
  }
  /** Let ORT allocate output `name` in `memory` (e.g. CUDA memory for a cache, CPU for top-k). */
  bindOutputToDevice(name: string, memory: MemoryInfo): void {
    this.ort.check(
      this.ort.api.BindOutputToDevice.call(this.ptr, cstr(name), memory.ptr),
      `BindOutputToDevice("${name}")`,
    );
  }
  clearInputs(): void {
    this.ort.api.ClearBoundInputs.call(this.ptr);
  }
  clearOutputs(): void {
    this.ort.api.ClearBoundOutputs.call(this.ptr);
  }
  /**
   * Run the session on this binding on a worker thread (the event loop stays free).
   * @throws {OrtError} with ORT's message.
   */
  async run(): Promise<void> {
    this.ort.check(
      await this.ort.api.RunWithBinding.call(this.session.ptr, null, this.ptr),
      "RunWithBinding",
    );
  }
  /** Run the session on this binding on the calling thread (blocks the event loop). @throws {OrtError} */
  runSync(): void {
    this.ort.check(this.ort.api.RunWithBindingSync.call(this.session.ptr, null, this.ptr), "RunWithBinding");
  }
  /** Names of the bound outputs, in binding order. */
  outputNames(): string[] {
    const api = this.ort.api, alloc = this.ort.allocator;
    const buf = ptrOut(), lens = ptrOut(), count = new BigUint64Array(1);
    this.ort.check(api.GetBoundOutputNames.call(this.ptr, alloc, buf, lens, count), "GetBoundOutputNames");
    const n = Number(count[0]!);
    if (n === 0) return [];
    const lengths = new Deno.UnsafePointerView(readPtr(lens)!);
    const sizes = Array.from({ length: n }, (_, i) => Number(lengths.getBigUint64(i * 8)));
    const total = sizes.reduce((a, b) => a + b, 0);
    const bytes = new Uint8Array(total);
    new Deno.UnsafePointerView(readPtr(buf)!).copyInto(bytes);
    this.ort.check(api.AllocatorFree.call(alloc, readPtr(buf)), "AllocatorFree");
    this.ort.check(api.AllocatorFree.call(alloc, readPtr(lens)), "AllocatorFree");
    const dec = new TextDecoder();
    let at = 0;
    return sizes.map((s) => dec.decode(bytes.subarray(at, at += s)));
  }
  /**
   * The output values of the last run, in binding order; each is a new owner (the binding keeps its
   * own reference until it is cleared or released).
   */
  outputValues(): OrtValue[] {
    const api = this.ort.api, alloc = this.ort.allocator;
    const arr = ptrOut(), count = new BigUint64Array(1);
    this.ort.check(api.GetBoundOutputValues.call(this.ptr, alloc, arr, count), "GetBoundOutputValues");
    const n = Number(count[0]!);
    if (n === 0) return [];
    const view = new Deno.UnsafePointerView(readPtr(arr)!);
    const values = Array.from({ length: n }, (_, i) => new OrtValue(this.ort, view.getPointer(i * 8)!));
    this.ort.check(api.AllocatorFree.call(alloc, readPtr(arr)), "AllocatorFree");
    return values;
  }
  /** Output values by name. */
  outputs(): Record<string, OrtValue> {
    const names = this.outputNames(), values = this.outputValues();
    return Object.fromEntries(names.map((n, i) => [n, values[i]!]));
  }
}
