import assert from "node:assert/strict";
import { deriveStreamSeed, sampleStream, SplitMix64, Xoshiro256StarStar } from "../../lib/generate/rng.ts";

const MASK = (1n << 64n) - 1n;

/** Straightforward BigInt transcription of xoshiro256starstar.c, the oracle for the 32-bit version. */
function referenceXoshiro(state: bigint[]): () => bigint {
  const s = [...state];
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (64n - k))) & MASK;
  return () => {
    const result = (rotl((s[1]! * 5n) & MASK, 7n) * 9n) & MASK;
    const t = (s[1]! << 17n) & MASK;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 45n);
    return result;
  };
}

Deno.test("SplitMix64 matches the published reference outputs", () => {
  const g = new SplitMix64(1234567n);
  assert.deepEqual([g.next(), g.next(), g.next(), g.next(), g.next()], [
    6457827717110365317n,
    3203168211198807973n,
    9817491932198370423n,
    4593380528125082431n,
    16408922859458223821n,
  ]);
  assert.equal(new SplitMix64(0n).next(), 0xe220a8397b1dcdafn);
});

Deno.test("xoshiro256** matches the reference outputs for state {1, 2, 3, 4}", () => {
  const g = Xoshiro256StarStar.fromState([1n, 2n, 3n, 4n]);
  const got = Array.from({ length: 10 }, () => g.nextBigUint64());
  assert.deepEqual(got, [
    11520n,
    0n,
    1509978240n,
    1215971899390074240n,
    1216172134540287360n,
    607988272756665600n,
    16172922978634559625n,
    8476171486693032832n,
    10595114339597558777n,
    2904607092377533576n,
  ]);
});

Deno.test("32-bit xoshiro256** agrees with a BigInt oracle on seeded states, all output forms", () => {
  for (const seed of [0n, 1n, 42n, MASK, 0x8000000000000000n]) {
    const sm = new SplitMix64(seed);
    const state: [bigint, bigint, bigint, bigint] = [sm.next(), sm.next(), sm.next(), sm.next()];
    const oracle = referenceXoshiro(state);
    const g = Xoshiro256StarStar.fromState(state);
    assert.deepEqual(g.state(), state);
    for (let i = 0; i < 3000; i++) {
      const want = oracle();
      const kind = i % 3;
      if (kind === 0) assert.equal(g.nextBigUint64(), want, `seed ${seed} step ${i}`);
      else if (kind === 1) assert.equal(g.nextUint32(), Number(want >> 32n), `seed ${seed} step ${i}`);
      else assert.equal(g.nextFloat(), Number(want >> 11n) / 2 ** 53, `seed ${seed} step ${i}`);
    }
  }
});

Deno.test("fromSeed seeds with four SplitMix64 outputs", () => {
  const sm = new SplitMix64(99n);
  assert.deepEqual(Xoshiro256StarStar.fromSeed(99n).state(), [sm.next(), sm.next(), sm.next(), sm.next()]);
  assert.deepEqual(sampleStream(99).state(), Xoshiro256StarStar.fromSeed(99n).state());
});

Deno.test("sampleStream: same keys reproduce, different keys differ", () => {
  const draw = (...k: (number | string)[]) => {
    const g = sampleStream(42, ...k);
    return Array.from({ length: 8 }, () => g.nextUint32());
  };
  assert.deepEqual(draw("baseline", 3, 1), draw("baseline", 3, 1));
  const variants: (number | string)[][] = [
    ["baseline", 3, 1],
    ["baseline", 3, 2],
    ["baseline", 4, 1],
    ["targeted", 3, 1],
    ["baseline", "3", 1],
    ["baseline", 1, 3],
    ["baselin", "e", 3, 1],
    ["baseline", 3, 1, 0],
    ["baseline", 3.5, 1],
    [],
  ];
  const seen = new Set(variants.map((k) => draw(...k).join(",")));
  assert.equal(seen.size, variants.length);
  assert.notEqual(deriveStreamSeed(42, 1), deriveStreamSeed(43, 1));
  assert.equal(deriveStreamSeed(42n, "x", -1), deriveStreamSeed(42, "x", -1));
});

Deno.test("clone continues the same sequence", () => {
  const a = sampleStream(7, "x");
  a.nextFloat();
  const b = a.clone();
  assert.deepEqual([a.nextUint32(), a.nextFloat()], [b.nextUint32(), b.nextFloat()]);
});

Deno.test("nextFloat is in [0, 1) with a plausible mean and spread", () => {
  const g = sampleStream(1, "uniformity");
  const n = 200_000;
  let sum = 0;
  const bins = new Array<number>(10).fill(0);
  for (let i = 0; i < n; i++) {
    const u = g.nextFloat();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    bins[Math.floor(u * 10)]!++;
  }
  // mean sd = sqrt(1/12 / n) ≈ 6.5e-4: 6 sd tolerance.
  assert.ok(Math.abs(sum / n - 0.5) < 0.004, `mean ${sum / n}`);
  const chi2 = bins.reduce((acc, c) => acc + (c - n / 10) ** 2 / (n / 10), 0);
  assert.ok(chi2 < 35, `chi-square ${chi2} over 9 dof`);
});

Deno.test("invalid seeds and keys are rejected by name", () => {
  assert.throws(() => sampleStream(-1), /Seed must be a non-negative safe integer.*-1/);
  assert.throws(() => sampleStream(1.5), RangeError);
  assert.throws(() => sampleStream(1n << 64n), /\[0, 2\^64\)/);
  assert.throws(() => sampleStream(1, "a", Number.NaN), /Stream key 1 .*NaN/);
  assert.throws(() => Xoshiro256StarStar.fromState([0n, 0n, 0n, 0n]), /all zero/);
});
