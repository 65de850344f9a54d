import assert from "node:assert/strict";
import { join } from "node:path";
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  readSafetensorsHeader,
  readTensorF32,
  readTensorF64,
  SafetensorsError,
  writeSafetensors,
} from "../../lib/engine/safetensors.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("f32ToF16 rounds to nearest even, saturates to Infinity, keeps NaN and subnormals", () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [1 + 2 ** -11, 0x3c00], // tie -> even (down)
    [1 + 3 * 2 ** -11, 0x3c02], // tie -> even (up)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // above the tie
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00], // tie between 65504 and 65536 -> even = Infinity
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie -> even (zero)
    [-(2 ** -25), 0x8000],
    [1.5 * 2 ** -24, 0x0002], // tie -> even (up)
    [2 ** -25 * 1.0001, 0x0001],
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up into the smallest normal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
  ];
  for (const [x, bits] of cases) {
    assert.equal(
      f32ToF16(x),
      bits,
      `f32ToF16(${x}) = 0x${f32ToF16(x).toString(16)}, want 0x${bits.toString(16)}`,
    );
  }
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(NaN))));
  assert.equal(f16ToF32(0x0001), 2 ** -24);
  assert.equal(f16ToF32(0x7bff), 65504);
  assert.equal(f16ToF32(0xfc00), -Infinity);
  assert.ok(Object.is(f16ToF32(0x8000), -0));
});

Deno.test("f32ToF16 agrees with Math.f16round on random float32 values and round-trips every half", () => {
  const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;
  const view = new DataView(new ArrayBuffer(4));
  let s = 12345;
  for (let i = 0; i < 200_000; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    // Bias exponents towards the half range so that subnormals and overflow are well covered.
    const exp = 100 + (s % 60);
    view.setUint32(0, ((s & 0x80000000) | (exp << 23) | (Math.imul(s, 2654435761) & 0x7fffff)) >>> 0);
    const x = view.getFloat32(0);
    const got = f16ToF32(f32ToF16(x));
    if (f16round) assert.ok(Object.is(got, f16round(x)), `x=${x}: got ${got}, f16round ${f16round(x)}`);
  }
  for (let h = 0; h < 0x10000; h++) {
    const v = f16ToF32(h);
    if (!Number.isNaN(v)) assert.equal(f32ToF16(v), h, `half 0x${h.toString(16)} does not round-trip`);
  }
});

Deno.test("f32ToBf16 rounds to nearest even and keeps NaN, Infinity and subnormals", () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-1, 0xbf80],
    [1 + 2 ** -8, 0x3f80], // tie -> even (down)
    [1 + 3 * 2 ** -8, 0x3f82], // tie -> even (up)
    [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [3.4028234663852886e38, 0x7f80], // float32 max rounds up to Infinity
    [2 ** -133, 0x0001], // float32 subnormal kept exactly
    [-0, 0x8000],
  ];
  for (const [x, bits] of cases) {
    assert.equal(
      f32ToBf16(x),
      bits,
      `f32ToBf16(${x}) = 0x${f32ToBf16(x).toString(16)}, want 0x${bits.toString(16)}`,
    );
  }
  assert.equal(f32ToBf16(NaN), 0x7fc0);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  for (let h = 0; h < 0x10000; h++) {
    const v = bf16ToF32(h);
    if (!Number.isNaN(v)) assert.equal(f32ToBf16(v), h);
  }
});

Deno.test("writeSafetensors round-trips F32, F16 and BF16 with an 8-aligned header", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "t.safetensors");
    const values = [0, -0, 1, -2.5, 1 + 2 ** -11, 65520, 1e-8, 3.14159, NaN, Infinity, -Infinity, 2 ** -24];
    await writeSafetensors(path, [
      { name: "f32", dtype: "F32", shape: [3, 4], data: values },
      { name: "f16", dtype: "F16", shape: [12], data: values },
      { name: "bf16", dtype: "BF16", shape: [2, 6], data: Float32Array.from(values) },
      { name: "scalar", dtype: "F32", shape: [], data: () => [7] },
      { name: "empty", dtype: "F16", shape: [0, 3], data: [] },
    ], { metadata: { format: "pt" } });

    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(headerText, /^\{"__metadata__":\{"format":"pt"\},"f32":/);
    assert.match(headerText, / *$/);
    assert.equal(bytes.length, 8 + n + 48 + 24 + 24 + 4 + 0);

    const header = await readSafetensorsHeader(path);
    assert.deepEqual([...header.keys()], ["f32", "f16", "bf16", "scalar", "empty"]);
    const f32 = header.get("f32")!;
    assert.deepEqual(f32.shape, [3, 4]);
    assert.equal(f32.dataOffset, 8 + n);
    assert.equal(f32.byteLength, 48);
    assert.equal(f32.file, path);

    const same = (got: ArrayLike<number>, want: number[]) =>
      want.forEach((w, i) => assert.ok(Object.is(got[i], w), `index ${i}: got ${got[i]}, want ${w}`));
    same(await readTensorF32(f32), values.map(Math.fround));
    same(await readTensorF32(header.get("f16")!), values.map((v) => f16ToF32(f32ToF16(v))));
    same(await readTensorF32(header.get("bf16")!), values.map((v) => bf16ToF32(f32ToBf16(v))));
    same(await readTensorF64(header.get("f16")!), values.map((v) => f16ToF32(f32ToF16(v))));
    assert.deepEqual([...await readTensorF32(header.get("scalar")!)], [7]);
    assert.equal((await readTensorF32(header.get("empty")!)).length, 0);
  });
});

Deno.test("writeSafetensors is deterministic and keeps the given tensor order", async () => {
  await withTempDir(async (dir) => {
    const tensors = [
      { name: "z", dtype: "BF16" as const, shape: [5], data: [1, 2, 3, 4, 5] },
      { name: "a", dtype: "F32" as const, shape: [2], data: [0.1, 0.2] },
    ];
    await writeSafetensors(join(dir, "1.safetensors"), tensors);
    await writeSafetensors(join(dir, "2.safetensors"), tensors);
    assert.deepEqual(
      await Deno.readFile(join(dir, "1.safetensors")),
      await Deno.readFile(join(dir, "2.safetensors")),
    );
    assert.deepEqual([...(await readSafetensorsHeader(join(dir, "1.safetensors"))).keys()], ["z", "a"]);
  });
});

Deno.test("a truncated file names the file and the first tensor that does not fit", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.safetensors");
    await writeSafetensors(path, [
      { name: "first", dtype: "F32", shape: [4], data: [1, 2, 3, 4] },
      { name: "second", dtype: "F32", shape: [4], data: [1, 2, 3, 4] },
      { name: "third", dtype: "F32", shape: [4], data: [1, 2, 3, 4] },
    ]);
    const size = (await Deno.stat(path)).size;
    await Deno.truncate(path, size - 20); // cuts into "second"
    await assert.rejects(readSafetensorsHeader(path), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError);
      assert.match(e.message, /model\.safetensors/);
      assert.match(e.message, /"second"/);
      assert.match(e.message, /truncated/);
      assert.match(e.message, /re-download/);
      return true;
    });
    await Deno.truncate(path, 20); // cuts into the header itself
    await assert.rejects(readSafetensorsHeader(path), /model\.safetensors.*truncated/);
  });
});

Deno.test("bad header length, bad JSON and inconsistent offsets are rejected with the file named", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.safetensors");
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
    await Deno.writeFile(path, huge);
    await assert.rejects(readSafetensorsHeader(path), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError);
      assert.match(e.message, /bad\.safetensors.*header length/);
      return true;
    });

    await Deno.writeFile(path, new Uint8Array(4));
    await assert.rejects(readSafetensorsHeader(path), SafetensorsError);

    const withHeader = async (json: string) => {
      const body = new TextEncoder().encode(json);
      const out = new Uint8Array(8 + body.length + 64);
      new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
      out.set(body, 8);
      await Deno.writeFile(path, out);
    };
    await withHeader("{not json");
    await assert.rejects(readSafetensorsHeader(path), /bad\.safetensors.*not valid UTF-8 JSON/);
    await withHeader('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}');
    await assert.rejects(readSafetensorsHeader(path), /"w".*needs 12/);
    await withHeader('{"w":{"dtype":"Q4","shape":[3],"data_offsets":[0,8]}}');
    await assert.rejects(readSafetensorsHeader(path), /"w".*unknown dtype "Q4"/);
  });
});

Deno.test("writeSafetensors is atomic: a failure leaves neither a partial file nor a temp file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.safetensors");
    await assert.rejects(
      writeSafetensors(path, [
        { name: "ok", dtype: "F32", shape: [2], data: [1, 2] },
        { name: "short", dtype: "F16", shape: [3], data: [1, 2] },
      ]),
      (e: unknown) => e instanceof RangeError && /"short".*needs 3 values, got 2/.test(e.message),
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);

    await writeSafetensors(path, [{ name: "old", dtype: "F32", shape: [1], data: [1] }]);
    const before = await Deno.readFile(path);
    await assert.rejects(
      writeSafetensors(path, [{
        name: "boom",
        dtype: "F32",
        shape: [1],
        data: () => {
          throw new Error("generator failed");
        },
      }]),
      /generator failed/,
    );
    assert.deepEqual(await Deno.readFile(path), before);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["model.safetensors"]);
  });
});

Deno.test("readTensorF32 rejects non-float tensors with the tensor named", async () => {
  await assert.rejects(
    readTensorF32({
      name: "ids",
      dtype: "I64",
      shape: [1],
      file: "x.safetensors",
      dataOffset: 8,
      byteLength: 8,
    }),
    (e: unknown) => e instanceof TypeError && /"ids".*I64/.test(e.message),
  );
});

Deno.test("overlapping, non-contiguous or incomplete data_offsets are refused as the reference reader does", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "off.safetensors");
    /** A file with `dataBytes` data bytes after the header (the header padded to its declared length). */
    const file = async (tensors: Record<string, [number, number]>, dataBytes: number) => {
      const header = Object.fromEntries(
        Object.entries(tensors).map((
          [n, [b, e]],
        ) => [n, { dtype: "F32", shape: [(e - b) / 4], data_offsets: [b, e] }]),
      );
      const body = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + body.length + dataBytes);
      new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
      out.set(body, 8);
      await Deno.writeFile(path, out);
    };
    // b points at a's bytes: loads "fine" today and gives wrong weights.
    await file({ a: [0, 16], b: [8, 24] }, 24);
    await assert.rejects(readSafetensorsHeader(path), /off\.safetensors.*"b".*\[8, 24\] overlaps tensor "a"/);
    await file({ a: [0, 16], b: [0, 16] }, 16);
    await assert.rejects(readSafetensorsHeader(path), /overlaps tensor "a"/);
    await file({ a: [0, 8], b: [16, 24] }, 24);
    await assert.rejects(readSafetensorsHeader(path), /"b".*leaves a gap of 8 bytes after tensor "a"/);
    await file({ a: [8, 16] }, 16);
    await assert.rejects(readSafetensorsHeader(path), /"a".*leaves a gap of 8 bytes after the header/);
    await file({ a: [0, 8] }, 16);
    await assert.rejects(readSafetensorsHeader(path), /cover 8 data bytes but the file holds 16/);
    // Header order does not matter, only the tiling: b before a in the header is fine.
    await file({ b: [8, 16], a: [0, 8], empty: [16, 16] }, 16);
    assert.deepEqual([...(await readSafetensorsHeader(path)).keys()], ["b", "a", "empty"]);
  });
});
