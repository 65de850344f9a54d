import assert from "node:assert/strict";
import {
  clusterBootstrap,
  clusteredMeanCI,
  type ClusteredValue,
  mcnemarExact,
  meanStd,
  normalQuantile,
  pairedClusteredDifferenceCI,
  quantileSorted,
  seededRng,
  shuffleInPlace,
  wilsonInterval,
} from "../lib/stats/stats.ts";

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (diff ${Math.abs(a - b)})`);

Deno.test("normalQuantile matches published constants", () => {
  close(normalQuantile(0.975), 1.959963984540054, 1e-13, "z.975");
  close(normalQuantile(0.995), 2.5758293035489004, 1e-13, "z.995");
  close(normalQuantile(0.95), 1.6448536269514722, 1e-13, "z.95");
  close(normalQuantile(0.5), 0, 1e-15, "z.5");
  close(normalQuantile(0.01), -2.3263478740408408, 1e-12, "z.01");
  assert.throws(() => normalQuantile(1), /p must be in \(0, 1\)/);
});

/** Independent Wilson formula: (2k + z² ± z√(z² + 4k(n−k)/n)) / (2(n + z²)). */
function naiveWilson(k: number, n: number, z: number): [number, number] {
  const root = z * Math.sqrt(z * z + (4 * k * (n - k)) / n);
  return [(2 * k + z * z - root) / (2 * (n + z * z)), (2 * k + z * z + root) / (2 * (n + z * z))];
}

Deno.test("Wilson interval vs published values and an independent formula", () => {
  const w0 = wilsonInterval(0, 10);
  close(w0.lower, 0, 1e-15, "0/10 lower");
  close(w0.upper, 0.27753279986288, 1e-10, "0/10 upper");
  const w5 = wilsonInterval(5, 10);
  close(w5.lower, 0.2365930905, 1e-9, "5/10 lower");
  close(w5.upper, 0.7634069095, 1e-9, "5/10 upper");
  const z = 1.959963984540054;
  for (const [k, n] of [[0, 10], [5, 10], [850, 1200], [1, 3], [10, 10], [259, 1200], [1, 1]] as const) {
    const [lo, hi] = naiveWilson(k, n, z);
    const w = wilsonInterval(k, n);
    close(w.lower, lo, 1e-12, `${k}/${n} lower`);
    close(w.upper, hi, 1e-12, `${k}/${n} upper`);
  }
  const w850 = wilsonInterval(850, 1200);
  // Python statistics.NormalDist-based computation: 0.6819840363139859, 0.733353046768208.
  close(w850.lower, 0.6819840363139859, 1e-12, "850/1200 lower");
  close(w850.upper, 0.733353046768208, 1e-12, "850/1200 upper");
  assert.ok(Number.isNaN(wilsonInterval(0, 0).estimate));
  assert.throws(() => wilsonInterval(11, 10), /k=11, n=10/);
});

Deno.test("seeded PRNG is deterministic, uniform-ish, and shuffles are permutations", () => {
  const a = seededRng(42);
  const b = seededRng(42);
  const xs = Array.from({ length: 10000 }, () => a());
  assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => b()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  close(meanStd(xs).mean, 0.5, 0.01, "mean of uniforms");
  assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, seededRng(43)));
  const p = shuffleInPlace([...Array(100).keys()], seededRng(1));
  assert.deepEqual([...p].sort((x, y) => x - y), [...Array(100).keys()]);
  assert.notDeepEqual(p, [...Array(100).keys()]);
});

Deno.test("quantile type 7 and meanStd vs hand values", () => {
  assert.equal(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantileSorted([1, 2, 3, 4], 0.25), 1.75);
  const m = meanStd([2, 4, 4, 4, 5, 5, 7, 9]);
  assert.equal(m.mean, 5);
  close(m.std, Math.sqrt(32 / 7), 1e-12, "std");
  assert.equal(meanStd([3]).std, 0);
});

Deno.test("bootstrap CI of a constant metric is a point", () => {
  const obs: ClusteredValue[] = [];
  for (let p = 0; p < 30; p++) for (let s = 0; s < 6; s++) obs.push({ cluster: p, value: 1 });
  const r = clusteredMeanCI(obs, { samples: 500, seed: 3 });
  assert.deepEqual([r.estimate, r.lower, r.upper], [1, 1, 1]);
  assert.equal(r.clusters, 30);
  assert.equal(r.n, 180);
});

Deno.test("clustered CI is wider than iid when clusters are homogeneous; matches a naive loop", () => {
  // 40 problems × 6 samples; each problem is all-correct or all-wrong.
  const obs: ClusteredValue[] = [];
  for (let p = 0; p < 40; p++) for (let s = 0; s < 6; s++) obs.push({ cluster: p, value: p % 3 === 0 });
  const clustered = clusteredMeanCI(obs, { samples: 2000, seed: 11 });
  const iid = clusteredMeanCI(obs.map((o, i) => ({ cluster: i, value: o.value })), {
    samples: 2000,
    seed: 11,
  });
  close(clustered.estimate, 14 / 40, 1e-12, "estimate");
  assert.ok(
    clustered.upper - clustered.lower > 1.8 * (iid.upper - iid.lower),
    `${clustered.upper - clustered.lower} vs ${iid.upper - iid.lower}`,
  );
  // Naive re-implementation with the same RNG stream.
  const rng = seededRng(11);
  const per = Array.from({ length: 40 }, (_, p) => (p % 3 === 0 ? 6 : 0));
  const stats: number[] = [];
  for (let b = 0; b < 2000; b++) {
    let s = 0;
    for (let i = 0; i < 40; i++) s += per[Math.floor(rng() * 40)]!;
    stats.push(s / 240);
  }
  stats.sort((x, y) => x - y);
  close(clustered.lower, quantileSorted(stats, 0.025), 1e-12, "lower");
  close(clustered.upper, quantileSorted(stats, 0.975), 1e-12, "upper");
  // iid bootstrap ≈ normal approximation p ± 1.96·sqrt(p(1−p)/n)
  const se = Math.sqrt((14 / 40) * (26 / 40) / 240);
  close(iid.upper - iid.lower, 2 * 1.96 * se, 0.015, "iid width");
});

Deno.test("paired clustered difference: same problems, constant shift, errors on unpaired problems", () => {
  const a: ClusteredValue[] = [];
  const b: ClusteredValue[] = [];
  for (let p = 0; p < 20; p++) {
    for (let s = 0; s < 4; s++) {
      const base = (p * 7 + s) % 5;
      a.push({ cluster: `q${p}`, value: base + 1 });
      b.push({ cluster: `q${p}`, value: base });
    }
  }
  const d = pairedClusteredDifferenceCI(a, b, { samples: 300, seed: 5 });
  assert.deepEqual([d.estimate, d.lower, d.upper].map((x) => Math.round(x * 1e12) / 1e12), [1, 1, 1]);
  // Unpaired (independent) resampling would not give a point: check the generic bootstrap gives spread.
  const spread = clusterBootstrap(
    [...Array(20).keys()],
    (rs) => rs.reduce((s, p) => s + (p % 5), 0) / rs.length,
    { samples: 300, seed: 5 },
  );
  assert.ok(spread.upper > spread.lower);
  assert.throws(() => pairedClusteredDifferenceCI(a, b.slice(4)), /problem q0 is in a but not in b/);
});

/** Exact two-sided McNemar p with BigInt binomial coefficients. */
function naiveMcnemar(b: number, c: number): number {
  const n = b + c;
  const k = Math.min(b, c);
  let num = 0n;
  let coef = 1n;
  for (let i = 0; i <= k; i++) {
    if (i > 0) coef = (coef * BigInt(n - i + 1)) / BigInt(i);
    num += coef;
  }
  return Math.min(1, (2 * Number(num)) / 2 ** n);
}

Deno.test("McNemar exact test vs known values and a BigInt oracle", () => {
  const mk = (b: number, c: number, both: number, none: number) => {
    const A: boolean[] = [];
    const B: boolean[] = [];
    for (let i = 0; i < b; i++) (A.push(true), B.push(false));
    for (let i = 0; i < c; i++) (A.push(false), B.push(true));
    for (let i = 0; i < both; i++) (A.push(true), B.push(true));
    for (let i = 0; i < none; i++) (A.push(false), B.push(false));
    return mcnemarExact(A, B);
  };
  close(mk(1, 9, 5, 5).p_value, 0.021484375, 1e-15, "1 vs 9"); // 2·(1 + 10)/1024
  assert.equal(mk(0, 0, 3, 3).p_value, 1);
  assert.equal(mk(5, 5, 0, 0).p_value, 1);
  for (const [b, c] of [[3, 12], [20, 35], [100, 130], [7, 0], [250, 190]] as const) {
    const r = mk(b, c, 10, 10);
    assert.equal(r.a_only, b);
    assert.equal(r.b_only, c);
    close(
      r.p_value,
      naiveMcnemar(b, c),
      1e-12 * Math.max(1, naiveMcnemar(b, c)) + 1e-15,
      `mcnemar ${b},${c}`,
    );
  }
  assert.throws(() => mcnemarExact([true], []), /1 outcomes in a, 0 in b/);
});
