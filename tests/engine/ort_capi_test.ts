/**
 * The ONNX Runtime C API binding (lib/engine/ort/capi.ts) against onnxruntime-node's JS API on small
 * graphs built with the project's ONNX encoder, plus its error paths and ownership rules.
 */
import assert from "node:assert/strict";
import * as ortNode from "onnxruntime-node";
import { DataType, encodeModel, float32Raw, type Node, type ValueInfo } from "../../lib/engine/onnx_proto.ts";
import { loadOrt, ORT_API_VERSION, OrtError, transfers } from "../../lib/engine/ort/capi.ts";

/** y = MatMul(x, W) + b; z = ReduceSum(y) (int64 shape input exercised via Reshape). */
function matmulModel(): { bytes: Uint8Array; w: Float32Array; b: Float32Array } {
  const w = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
  const b = Float32Array.from({ length: 4 }, (_, i) => i / 7);
  const nodes: Node[] = [
    { opType: "MatMul", inputs: ["x", "W"], outputs: ["xw"] },
    { opType: "Add", inputs: ["xw", "b"], outputs: ["y"] },
    { opType: "ReduceSum", inputs: ["y"], outputs: ["z"], attributes: { keepdims: 0 } },
  ];
  const inputs: ValueInfo[] = [{ name: "x", elemType: DataType.FLOAT, shape: ["n", 3] }];
  const outputs: ValueInfo[] = [
    { name: "y", elemType: DataType.FLOAT, shape: ["n", 4] },
    { name: "z", elemType: DataType.FLOAT, shape: [] },
  ];
  const bytes = encodeModel({
    graphName: "mm",
    nodes,
    initializers: [
      { name: "W", dataType: DataType.FLOAT, dims: [3, 4], raw: float32Raw(w) },
      { name: "b", dataType: DataType.FLOAT, dims: [4], raw: float32Raw(b) },
    ],
    inputs,
    outputs,
    opsets: { "": 23 },
  });
  return { bytes, w, b };
}

/** out = Gather(x, idx, axis 0) + 1 over int64 indices (a second element type). */
function gatherModel(): Uint8Array {
  return encodeModel({
    graphName: "g",
    nodes: [
      { opType: "Gather", inputs: ["x", "idx"], outputs: ["g"], attributes: { axis: 0 } },
      { opType: "Add", inputs: ["g", "one"], outputs: ["out"] },
    ],
    initializers: [{ name: "one", dataType: DataType.FLOAT, dims: [], raw: float32Raw([1]) }],
    inputs: [
      { name: "x", elemType: DataType.FLOAT, shape: ["b", "k"] },
      { name: "idx", elemType: DataType.INT64, shape: ["m"] },
    ],
    outputs: [{ name: "out", elemType: DataType.FLOAT, shape: ["m", "k"] }],
    opsets: { "": 23 },
  });
}

async function writeTemp(bytes: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".onnx" });
  await Deno.writeFile(path, bytes);
  return path;
}

Deno.test("capi: version, API table and the status round trip", () => {
  const ort = loadOrt();
  assert.equal(ort.version, "1.30.0");
  assert.equal(loadOrt(), ort, "loadOrt() is a process-wide singleton");
  assert.ok(ORT_API_VERSION >= 23);
  const err = ort.statusRoundTrip(3, "no such file: hello");
  assert.ok(err instanceof OrtError);
  assert.equal(err.code, 3);
  assert.equal(err.codeName, "ORT_NO_SUCHFILE");
  assert.equal(err.ortMessage, "no such file: hello");
  assert.ok(ort.availableProviders().includes("CPUExecutionProvider"), ort.availableProviders().join());
});

Deno.test("capi: Run and IO binding match onnxruntime-node on MatMul + Add", async () => {
  const ort = loadOrt();
  const { bytes } = matmulModel();
  const path = await writeTemp(bytes);
  const xData = Float32Array.from({ length: 15 }, (_, i) => Math.cos(i) * 3);
  const ref = await ortNode.InferenceSession.create(path);
  const want = await ref.run({ x: new ortNode.Tensor("float32", xData, [5, 3]) });
  await ref.release();

  using opts = ort.sessionOptions({ intraOpThreads: 1, graphOptimization: "all" });
  using session = ort.session(path, opts);
  assert.deepEqual(session.inputNames, ["x"]);
  assert.deepEqual(session.outputNames, ["y", "z"]);

  // Plain Run.
  {
    using x = ort.tensor("float32", xData, [5, 3]);
    assert.deepEqual(x.dims, [5, 3]);
    assert.equal(x.type, "float32");
    const out = await session.run({ x }, ["y", "z"]);
    using y = out.y!, z = out.z!;
    assert.deepEqual(y.dims, [5, 4]);
    assert.deepEqual(z.dims, []);
    assert.deepEqual(y.toArray(), want.y!.data);
    assert.deepEqual(z.toArray(), want.z!.data);
  }
  // IO binding: a zero-copy input over JS memory, one output to a preallocated value, one to CPU.
  {
    const cpu = ort.cpuMemoryInfo();
    using x = ort.tensorWithData("float32", xData, [5, 3]);
    using yOut = ort.tensor("float32", null, [5, 4]);
    using binding = session.ioBinding();
    binding.bindInput("x", x);
    binding.bindOutput("y", yOut);
    binding.bindOutputToDevice("z", cpu);
    await binding.run();
    assert.deepEqual(binding.outputNames(), ["y", "z"]);
    const values = binding.outputValues();
    assert.deepEqual(values[0]!.toArray(), want.y!.data);
    assert.deepEqual(yOut.toArray(), want.y!.data, "the preallocated output was written in place");
    assert.deepEqual(values[1]!.toArray(), want.z!.data);
    assert.equal(values[1]!.location().name, "Cpu");
    values.forEach((v) => v.dispose());
    // Rebinding after clearing: a changed input is seen (zero copy), outputs rebound to CPU.
    binding.clearOutputs();
    binding.bindOutputToDevice("y", cpu);
    xData[0] = 100;
    await binding.run();
    const { y } = binding.outputs();
    const ref2 = await ortNode.InferenceSession.create(path);
    const want2 = await ref2.run({ x: new ortNode.Tensor("float32", xData, [5, 3]) });
    await ref2.release();
    assert.deepEqual(y!.toArray(), want2.y!.data);
    y!.dispose();
    binding.clearInputs();
    await assert.rejects(binding.run(), (e: unknown) => e instanceof OrtError && /x/.test(e.ortMessage));
    cpu.dispose();
  }
  await Deno.remove(path);
});

Deno.test("capi: int64 inputs and session from bytes; transfers are counted", async () => {
  const ort = loadOrt();
  using opts = ort.sessionOptions({ intraOpThreads: 1, config: { "session.disable_prepacking": "1" } });
  using session = ort.session(gatherModel(), opts);
  const x = Float32Array.from({ length: 12 }, (_, i) => i * 0.5);
  const before = { ...transfers };
  using xv = ort.tensor("float32", x, [4, 3]);
  using idx = ort.tensor("int64", BigInt64Array.of(3n, 0n), [2]);
  assert.equal(transfers.fromHost - before.fromHost, 48 + 16);
  const out = await session.run({ x: xv, idx }, ["out"]);
  using o = out.out!;
  assert.deepEqual(o.dims, [2, 3]);
  assert.deepEqual(Array.from(o.toArray() as Float32Array), [5.5, 6, 6.5, 1, 1.5, 2]);
  assert.equal(transfers.toHost - before.toHost, 24);
});

Deno.test("capi: errors carry ORT's message; dispose twice is safe; use after dispose throws", async () => {
  const ort = loadOrt();
  using opts = ort.sessionOptions();
  assert.throws(
    () => ort.session("/nonexistent/model.onnx", opts),
    (e: unknown) =>
      e instanceof OrtError && e.code !== 0 && /nonexistent\/model\.onnx/.test(e.message) &&
      e.ortMessage.length > 0,
  );
  assert.throws(
    () => ort.session(new Uint8Array([1, 2, 3, 4]), opts),
    (e: unknown) => e instanceof OrtError && e.codeName === "ORT_INVALID_PROTOBUF",
  );
  using session = ort.session(gatherModel(), opts);
  using x = ort.tensor("float32", new Float32Array(6), [2, 3]);
  using idx = ort.tensor("int64", BigInt64Array.of(7n), [1]);
  await assert.rejects(
    session.run({ x, idx }, ["out"]),
    (e: unknown) => e instanceof OrtError && /indices|out of bounds|idx/i.test(e.ortMessage),
  );
  await assert.rejects(
    session.run({ x, wrong: idx }, ["out"]),
    (e: unknown) => e instanceof OrtError && /wrong/.test(e.ortMessage),
  );
  assert.throws(() => ort.tensor("float32", new Float32Array(5), [2, 3]), RangeError);
  const v = ort.tensor("float32", new Float32Array(3), [3]);
  v.dispose();
  v.dispose();
  assert.equal(v.disposed, true);
  assert.throws(() => v.dims, ReferenceError);
  const s2 = ort.session(gatherModel(), opts);
  s2.dispose();
  s2[Symbol.dispose]();
});

Deno.test("capi: CUDA memory info and EP binding exist; without a provider the EP append fails cleanly", () => {
  const ort = loadOrt();
  using cudaMem = ort.deviceMemoryInfo("Cuda", 0);
  assert.ok(cudaMem.ptr);
  let opts;
  try {
    opts = ort.sessionOptions({ executionProviders: [{ name: "cuda", deviceId: 0 }, "cpu"] });
  } catch (e) {
    // No CUDA provider library here: ORT's own message says what failed to load.
    assert.ok(e instanceof OrtError, String(e));
    assert.match(e.message, /CUDA/i);
    return;
  }
  opts.dispose(); // a machine with the CUDA provider installed
});

Deno.test("capi: runSync on the JS thread and a session without the CPU arena give the same result", async () => {
  const ort = loadOrt();
  using opts = ort.sessionOptions({ intraOpThreads: 1, cpuMemArena: false });
  using session = ort.session(gatherModel(), opts);
  using cpu = ort.cpuMemoryInfo();
  using x = ort.tensor("float32", Float32Array.from({ length: 6 }, (_, i) => i), [3, 2]);
  using idx = ort.tensor("int64", BigInt64Array.of(2n, 2n, 0n), [3]);
  const results: number[][] = [];
  for (const sync of [true, false]) {
    using binding = session.ioBinding();
    binding.bindInput("x", x);
    binding.bindInput("idx", idx);
    binding.bindOutputToDevice("out", cpu);
    if (sync) binding.runSync();
    else await binding.run();
    using out = binding.outputValues()[0]!;
    results.push(Array.from(out.toArray() as Float32Array));
  }
  assert.deepEqual(results[0], [5, 6, 5, 6, 1, 2]);
  assert.deepEqual(results[1], results[0]);
});

Deno.test("capi: TensorScatter-24 with its output bound to its input updates a cache in place", async () => {
  // The building block of a preallocated KV cache (issue 12, item 3): the new token's K/V written into
  // the cache's own buffer, no copy of the past.
  const ort = loadOrt();
  const bytes = encodeModel({
    graphName: "scatter",
    nodes: [{
      opType: "TensorScatter",
      inputs: ["cache", "upd", "idx"],
      outputs: ["out"],
      attributes: { axis: 2 },
    }],
    initializers: [],
    inputs: [
      { name: "cache", elemType: DataType.FLOAT, shape: ["b", "h", "s", "d"] },
      { name: "upd", elemType: DataType.FLOAT, shape: ["b", "h", "t", "d"] },
      { name: "idx", elemType: DataType.INT64, shape: ["b"] },
    ],
    outputs: [{ name: "out", elemType: DataType.FLOAT, shape: ["b", "h", "s", "d"] }],
    opsets: { "": 24 },
  });
  using opts = ort.sessionOptions({ intraOpThreads: 1 });
  using session = ort.session(bytes, opts);
  const [B, H, S, D] = [2, 1, 5, 2];
  using cache = ort.tensor("float32", new Float32Array(B * H * S * D), [B, H, S, D]);
  using upd = ort.tensor("float32", Float32Array.of(1, 2, 3, 4), [B, H, 1, D]);
  using idx = ort.tensor("int64", BigInt64Array.of(3n, 0n), [B]);
  using binding = session.ioBinding();
  binding.bindInput("cache", cache);
  binding.bindInput("upd", upd);
  binding.bindInput("idx", idx);
  binding.bindOutput("out", cache);
  await binding.run();
  // Row 0 got [1, 2] at slot 3, row 1 got [3, 4] at slot 0, in the bound value itself.
  assert.deepEqual(Array.from(cache.toArray() as Float32Array), [
    0,
    0,
    0,
    0,
    0,
    0,
    1,
    2,
    0,
    0,
    3,
    4,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
});

Deno.test("capi: sessions from a file and from bytes with a prepacked-weights container", async () => {
  // Indices 166–169 of the API table: a wrong index would crash or fail here.
  const ort = loadOrt();
  const { bytes } = matmulModel();
  const path = await writeTemp(bytes);
  const xData = Float32Array.from({ length: 15 }, (_, i) => Math.sin(i));
  using opts = ort.sessionOptions({ intraOpThreads: 1 });
  using plain = ort.session(path, opts);
  using x = ort.tensor("float32", xData, [5, 3]);
  const want = (await plain.run({ x }, ["y"])).y!;
  using container = ort.prepackedWeights();
  for (const model of [path, bytes]) {
    using session = ort.session(model, opts, container);
    assert.deepEqual(session.outputNames, ["y", "z"]);
    using y = (await session.run({ x }, ["y"])).y!;
    assert.deepEqual(y.toArray(), want.toArray());
  }
  want.dispose();
  await Deno.remove(path);
});
