import assert from "node:assert/strict";
import {
  clusterBootstrap,
  clusteredMeanCI,
  type ClusteredValue,
  clusteredWilsonCI,
  mcnemarExact,
  meanStd,
  normalQuantile,
  pairedClusteredDifferenceCI,
  quantileSorted,
  seededRng,
  shuffleInPlace,
  wilsonFromProportion,
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

// ---------------------------------------------------------------------------------------------------
// Issue 14 fault 6: intervals honest at 0% and 100%

Deno.test("issue 14 fault 6: a 0% or 100% rate gets a non-degenerate interval (percentile bootstrap gave [0, 0])", () => {
  const zeros: ClusteredValue[] = Array.from({ length: 400 }, (_, i) => ({ cluster: i % 100, value: false }));
  const boot = clusteredMeanCI(zeros, { samples: 200 });
  assert.deepEqual([boot.lower, boot.upper], [0, 0]); // the fault: a zero-width interval
  const w = clusteredWilsonCI(zeros, { samples: 200 });
  assert.equal(w.estimate, 0);
  assert.equal(w.lower, 0);
  assert.ok(w.upper > 0.03, `upper ${w.upper}`);
  // 4 samples on each of 100 problems: the clustering cannot be told from an all-zero outcome, so the
  // largest design effect (4) is used: Wilson on 100 (the naive formula), not on 400.
  assert.equal(w.method, "cluster_wilson_max");
  close(w.design_effect, 4, 1e-12, "deff");
  const [lo, hi] = naiveWilson(0, 100, 1.959963984540054);
  close(w.lower, lo, 1e-12, "0/100 lower");
  close(w.upper, hi, 1e-12, "0/100 upper");
  const ones = clusteredWilsonCI(zeros.map((o) => ({ ...o, value: true })));
  close(ones.lower, 1 - hi, 1e-12, "100% lower");
  assert.equal(ones.upper, 1);
  // Unequal cluster sizes: Σm²/Σm.
  const uneven = clusteredWilsonCI([
    { cluster: "a", value: 0 },
    { cluster: "a", value: 0 },
    { cluster: "a", value: 0 },
    { cluster: "b", value: 0 },
  ]);
  close(uneven.design_effect, (9 + 1) / 4, 1e-12, "uneven deff");
});

Deno.test("cluster-adjusted Wilson: plain Wilson for one sample per problem; deff from the bootstrap", () => {
  // One observation per cluster: exactly wilsonInterval.
  const iid: ClusteredValue[] = Array.from({ length: 50 }, (_, i) => ({ cluster: i, value: i % 5 === 0 }));
  const a = clusteredWilsonCI(iid);
  const b = wilsonInterval(10, 50);
  assert.equal(a.method, "wilson");
  assert.equal(a.design_effect, 1);
  assert.deepEqual([a.estimate, a.lower, a.upper], [b.estimate, b.lower, b.upper]);
  // Homogeneous clusters (all samples of a problem alike): deff near the cluster size.
  const homo: ClusteredValue[] = [];
  for (let c = 0; c < 60; c++) for (let j = 0; j < 5; j++) homo.push({ cluster: c, value: c % 3 === 0 });
  const h = clusteredWilsonCI(homo, { samples: 4000, seed: 1 });
  assert.equal(h.method, "cluster_wilson");
  assert.ok(h.design_effect > 4 && h.design_effect <= 5, `deff ${h.design_effect}`);
  // Independent analytic check: the bootstrap variance of a ratio mean over G clusters is about
  // Σ(y_i − p·m_i)² / (G · m̄² · G), y_i = successes of cluster i.
  const mixed: ClusteredValue[] = [];
  const rng = seededRng(7);
  for (let c = 0; c < 80; c++) {
    const pc = rng() < 0.5 ? 0.2 : 0.7;
    for (let j = 0; j < 4; j++) mixed.push({ cluster: c, value: rng() < pc });
  }
  const m = clusteredWilsonCI(mixed, { samples: 6000, seed: 3 });
  const y = new Map<number, number>();
  for (const o of mixed) y.set(o.cluster as number, (y.get(o.cluster as number) ?? 0) + (o.value ? 1 : 0));
  const p = m.k / m.n;
  const G = 80;
  let ss = 0;
  for (const yi of y.values()) ss += (yi - p * 4) ** 2;
  const varAnalytic = ss / (G * 16 * G);
  const deffAnalytic = Math.min(4, Math.max(1, varAnalytic / ((p * (1 - p)) / m.n)));
  close(m.design_effect, deffAnalytic, 0.12 * deffAnalytic, "deff vs analytic");
  const w = wilsonFromProportion(p, m.n / m.design_effect);
  assert.deepEqual([m.lower, m.upper], [w.lower, w.upper]);
  assert.ok(m.upper - m.lower > wilsonInterval(m.k, m.n).upper - wilsonInterval(m.k, m.n).lower);
  // Real-valued n: agrees with the integer formula where both apply.
  const wi = wilsonFromProportion(0.3, 20);
  const [lo, hi] = naiveWilson(6, 20, 1.959963984540054);
  close(wi.lower, lo, 1e-12, "lower");
  close(wi.upper, hi, 1e-12, "upper");
  assert.throws(() => wilsonFromProportion(1.2, 5), /p=1.2/);
  assert.throws(() => clusteredWilsonCI([]), /no observations/);
  assert.throws(() => clusteredWilsonCI([{ cluster: 1, value: 2 }]), /cluster 1 has 2/);
});
