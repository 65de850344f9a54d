import assert from "node:assert/strict";
import { type Rng, sampleStream } from "../../lib/generate/rng.ts";
import {
  applyTemperature,
  argmax,
  logSoftmax,
  sampleToken,
  samplingDistribution,
  type SamplingParams,
  softmax,
  topKFilter,
  topPFilter,
} from "../../lib/generate/sampling.ts";

/**
 * Brute-force transcription of transformers' warpers (full sorts, ascending cumulative sum), the
 * oracle for the fast paths. Returns kept ids (increasing) and their probabilities.
 */
function reference(logits: Float32Array, p: SamplingParams): { ids: number[]; probs: number[] } {
  let s = Array.from(logits);
  if (p.temperature !== 1) s = Array.from(new Float32Array(s.map((x) => x / Math.fround(p.temperature))));
  if (p.topK) {
    const kth = [...s].sort((a, b) => b - a)[Math.min(p.topK, s.length) - 1]!;
    s = s.map((x) => (x < kth ? -Infinity : x));
  }
  if (p.topP !== undefined && p.topP < 1) {
    const order = s.map((_, i) => i).sort((a, b) => s[a]! - s[b]! || a - b); // stable ascending
    const m = s.reduce((a, b) => Math.max(a, b), -Infinity);
    const z = s.reduce((acc, x) => acc + Math.exp(x - m), 0);
    let cum = 0;
    const remove = new Set<number>();
    order.forEach((id, rank) => {
      cum += Math.exp(s[id]! - m) / z;
      if (cum <= 1 - p.topP! && rank < order.length - 1) remove.add(id);
    });
    s = s.map((x, i) => (remove.has(i) ? -Infinity : x));
  }
  const m = s.reduce((a, b) => Math.max(a, b), -Infinity);
  const ids = s.flatMap((x, i) => (x === -Infinity ? [] : [i]));
  const w = ids.map((i) => Math.exp(s[i]! - m));
  const total = w.reduce((a, b) => a + b, 0);
  return { ids, probs: w.map((x) => x / total) };
}

function kept(row: Float32Array): number[] {
  return Array.from(row).flatMap((x, i) => (x === -Infinity ? [] : [i]));
}

/** Deterministic pseudo-normal logits with some exact ties and some -Infinity. */
function randomLogits(n: number, rng: Rng, opts: { scale?: number; ties?: boolean } = {}): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(1 - rng.nextFloat())) * Math.cos(2 * Math.PI * rng.nextFloat());
    let v = g * (opts.scale ?? 3);
    if (opts.ties) v = Math.round(v * 2) / 2;
    out[i] = rng.nextFloat() < 0.02 ? -Infinity : v;
  }
  return out;
}

/** An Rng that counts draws. */
function counting(rng: Rng): Rng & { draws: number } {
  const c = {
    draws: 0,
    nextFloat: () => (c.draws++, rng.nextFloat()),
    nextUint32: () => (c.draws++, rng.nextUint32()),
  };
  return c;
}

Deno.test("top-p on equal probabilities: exact boundaries keep the smallest set reaching top_p", () => {
  const four = new Float32Array(4); // probabilities exactly 0.25
  assert.deepEqual(kept(topPFilter(four, 0.5)), [2, 3]); // cumulative 0.5 reaches 0.5 exactly
  assert.deepEqual(kept(topPFilter(four, 0.5000001)), [1, 2, 3]);
  assert.deepEqual(kept(topPFilter(four, 0.75)), [1, 2, 3]);
  assert.deepEqual(kept(topPFilter(four, 0.25)), [3]);
  assert.deepEqual(kept(topPFilter(four, 1)), [0, 1, 2, 3]);
  assert.deepEqual(kept(topPFilter(four, 0)), [3]); // min_tokens_to_keep = 1; ties: highest id first
  const eight = new Float32Array(8);
  assert.deepEqual(kept(topPFilter(eight, 0.375)), [5, 6, 7]);
});

Deno.test("top-p on a hand-made distribution", () => {
  const logits = new Float32Array([0.15, 0.5, 0.05, 0.3].map(Math.log)); // sorted: 1, 3, 0, 2
  assert.deepEqual(kept(topPFilter(logits, 0.49)), [1]);
  assert.deepEqual(kept(topPFilter(logits, 0.51)), [1, 3]);
  assert.deepEqual(kept(topPFilter(logits, 0.79)), [1, 3]);
  assert.deepEqual(kept(topPFilter(logits, 0.81)), [0, 1, 3]);
  assert.deepEqual(kept(topPFilter(logits, 0.96)), [0, 1, 2, 3]);
  const d = samplingDistribution(logits, { temperature: 1, topP: 0.81 });
  assert.deepEqual(Array.from(d.ids), [0, 1, 3]);
  const z = 0.15 + 0.5 + 0.3;
  [0.15 / z, 0.5 / z, 0.3 / z].forEach((p, i) => assert.ok(Math.abs(d.probs[i]! - p) < 1e-7, `prob ${i}`));
});

Deno.test("top-k keeps every logit tied with the k-th largest", () => {
  const logits = new Float32Array([1, 3, 2, 2, 0]);
  assert.deepEqual(kept(topKFilter(logits, 1)), [1]);
  assert.deepEqual(kept(topKFilter(logits, 2)), [1, 2, 3]);
  assert.deepEqual(kept(topKFilter(logits, 3)), [1, 2, 3]);
  assert.deepEqual(kept(topKFilter(logits, 4)), [0, 1, 2, 3]);
  assert.deepEqual(kept(topKFilter(logits, 99)), [0, 1, 2, 3, 4]);
  assert.deepEqual(Array.from(topKFilter(logits, 2)), [-Infinity, 3, 2, 2, -Infinity]);
  const d = samplingDistribution(logits, { temperature: 1, topK: 2 });
  assert.deepEqual(Array.from(d.ids), [1, 2, 3]);
});

Deno.test("temperature divides the logits in fp32 and flattens or sharpens the softmax", () => {
  assert.deepEqual(Array.from(applyTemperature(new Float32Array([1, 2, -3]), 0.5)), [2, 4, -6]);
  const x = new Float32Array([0.3, -1.2, 2]);
  assert.deepEqual(applyTemperature(x, 0.7), x.map((v) => v / Math.fround(0.7)));
  const hot = samplingDistribution(x, { temperature: 2 });
  const ratio = hot.probs[2]! / hot.probs[0]!;
  assert.ok(Math.abs(ratio - Math.exp((x[2]! - x[0]!) / 2)) < 1e-6, `ratio ${ratio}`);
  const cold = samplingDistribution(x, { temperature: 0.1 });
  assert.ok(cold.probs[2]! > 0.99999);
});

Deno.test("fast paths agree with the brute-force transformers oracle on random rows", () => {
  const rng = sampleStream(3, "oracle");
  const paramSets: SamplingParams[] = [
    { temperature: 1 },
    { temperature: 0.7, topK: 50 },
    { temperature: 0.7, topP: 0.95 },
    { temperature: 0.7, topK: 50, topP: 0.95 },
    { temperature: 1.3, topK: 7, topP: 0.5 },
    { temperature: 0.2, topP: 0.999 },
    { temperature: 1, topP: 0 },
    { temperature: 5, topP: 0.3 },
    { temperature: 1, topK: 1000 },
  ];
  for (let trial = 0; trial < 60; trial++) {
    const logits = randomLogits(700, rng, { ties: trial % 2 === 0, scale: 1 + (trial % 5) });
    for (const p of paramSets) {
      const want = reference(logits, p);
      const got = samplingDistribution(logits, p);
      assert.deepEqual(Array.from(got.ids), want.ids, `trial ${trial} ${JSON.stringify(p)}`);
      want.probs.forEach((q, i) => assert.ok(Math.abs(got.probs[i]! - q) < 1e-9, `trial ${trial} prob ${i}`));
    }
    assert.deepEqual(kept(topKFilter(logits, 13)), reference(logits, { temperature: 1, topK: 13 }).ids);
    assert.deepEqual(kept(topPFilter(logits, 0.9)), reference(logits, { temperature: 1, topP: 0.9 }).ids);
  }
});

Deno.test("full-vocabulary rows (151936): top-p without top-k matches the oracle, peaked and flat", () => {
  const rng = sampleStream(4, "vocab");
  const peaked = randomLogits(151936, rng, { scale: 4 });
  const flat = new Float32Array(151936).map(() => rng.nextFloat() * 0.01);
  const farTail = randomLogits(151936, rng, { scale: 40 });
  for (const [name, row] of [["peaked", peaked], ["flat", flat], ["far tail", farTail]] as const) {
    for (const p of [{ temperature: 0.7, topP: 0.95 }, { temperature: 1, topK: 50, topP: 0.95 }]) {
      const want = reference(row, p).ids;
      assert.deepEqual(Array.from(samplingDistribution(row, p).ids), want, `${name} ${JSON.stringify(p)}`);
    }
  }
});

Deno.test("empirical frequencies of 20k draws match the filtered softmax (chi-square)", () => {
  const logits = new Float32Array([2.0, 1.5, 1.4, 0.3, -0.5, -1, 1.5, -3]);
  const params = { temperature: 0.7, topK: 6, topP: 0.9 };
  const { ids, probs } = samplingDistribution(logits, params);
  assert.ok(ids.length >= 3 && ids.length < 6, `kept ${ids}`);
  const rng = sampleStream(42, "chi-square");
  const counts = new Map<number, number>();
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const t = sampleToken(logits, params, rng);
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  for (const t of counts.keys()) assert.ok(ids.includes(t), `drew filtered-out token ${t}`);
  let chi2 = 0;
  ids.forEach((id, i) => (chi2 += ((counts.get(id) ?? 0) - n * probs[i]!) ** 2 / (n * probs[i]!)));
  // dof <= 4: the 99.99th percentile of chi-square(4) is 23.5.
  assert.ok(chi2 < 23.5, `chi-square ${chi2.toFixed(2)} for ${ids.length - 1} dof`);
  // A 10 % error in one probability must be detectable at this n: the statistic is not vacuous.
  const skewed = [...probs].map((p, i) => (i === 0 ? p * 1.1 : p));
  let chi2Skewed = 0;
  ids.forEach((id, i) => (chi2Skewed += ((counts.get(id) ?? 0) - n * skewed[i]!) ** 2 / (n * skewed[i]!)));
  assert.ok(chi2Skewed > 23.5, `a 10 % skew went unnoticed (${chi2Skewed.toFixed(2)})`);
});

Deno.test("greedy is the argmax (lowest id on ties) and draws nothing", () => {
  const rng = counting(sampleStream(1));
  const logits = new Float32Array([0.5, 4, -2, 4, 1]);
  assert.equal(sampleToken(logits, { temperature: 0.7, topP: 0.1, greedy: true }, rng), 1);
  assert.equal(sampleToken(logits, { temperature: 0, greedy: true }, rng), 1);
  assert.equal(rng.draws, 0);
  assert.equal(argmax(logits), 1);
  sampleToken(logits, { temperature: 1 }, rng);
  assert.equal(rng.draws, 1, "sampling consumes exactly one draw");
});

Deno.test("the same stream gives the same tokens; another stream differs", () => {
  const logits = randomLogits(5000, sampleStream(9, "row"), { scale: 2 });
  const params = { temperature: 0.7, topK: 50, topP: 0.95 };
  const run = (sample: number) => {
    const rng = sampleStream(42, "baseline", 3, sample);
    return Array.from({ length: 64 }, () => sampleToken(logits, params, rng));
  };
  assert.deepEqual(run(0), run(0));
  assert.notDeepEqual(run(0), run(1));
});

Deno.test("softmax and logSoftmax are stable and consistent", () => {
  assert.deepEqual(Array.from(softmax(new Float32Array([1000, 1000]))), [0.5, 0.5]);
  const x = new Float32Array([-1e4, 3, 1, -Infinity, 88]);
  const p = softmax(x);
  const lp = logSoftmax(x);
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-6);
  assert.equal(p[3], 0);
  assert.equal(lp[3], -Infinity);
  for (let i = 0; i < x.length; i++) {
    if (p[i]! > 0) assert.ok(Math.abs(Math.exp(lp[i]!) - p[i]!) < 1e-7, `index ${i}`);
  }
  assert.ok(Math.abs(lp[0]! - (-1e4 - 88)) < 1e-2);
});

Deno.test("invalid logits and parameters are rejected by name", () => {
  const rng = sampleStream(0);
  const ok = new Float32Array([0, 1]);
  assert.throws(
    () => sampleToken(new Float32Array([0, Number.NaN]), { temperature: 1 }, rng),
    /logit 1 is NaN/,
  );
  assert.throws(() => softmax(new Float32Array([0, Infinity])), /logit 1 is \+Infinity/);
  assert.throws(() => softmax(new Float32Array([-Infinity, -Infinity])), /every logit is -Infinity/);
  assert.throws(() => softmax(new Float32Array(0)), /empty/);
  assert.throws(() => sampleToken(ok, { temperature: 0 }, rng), /temperature must be .*greedy.*got 0/);
  assert.throws(() => sampleToken(ok, { temperature: 1, topK: -1 }, rng), /topK .*got -1/);
  assert.throws(
    () => sampleToken(ok, { temperature: 1, topP: 1.5 }, rng),
    /top-p must be in \[0, 1\], got 1.5/,
  );
  assert.throws(() => topKFilter(ok, 0), /top-k must be a positive integer, got 0/);
});
