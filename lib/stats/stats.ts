/**
 * Statistics for clustered binary and continuous outcomes: Wilson intervals, a seeded PRNG,
 * percentile bootstrap clustered by problem (rates, means, paired differences between conditions),
 * and McNemar's exact test.
 *
 * Samples of the same problem are correlated (several samples per problem), so every bootstrap here
 * resamples whole problems (clusters) with replacement and keeps all samples of a chosen problem.
 *
 * @module
 */

/** A source of uniform doubles in [0, 1). */
export type Rng = () => number;

/**
 * A seeded PRNG: xoshiro128** (Blackman & Vigna) seeded by SplitMix32 from a 32-bit integer seed.
 * Each double takes two 32-bit outputs (53 random bits). Deterministic across platforms.
 *
 * @param seed Any number; it is reduced to an unsigned 32-bit integer.
 * @returns A function giving uniform doubles in [0, 1).
 */
export function seededRng(seed: number): Rng {
  let sm = seed >>> 0;
  const splitmix = () => {
    sm = (sm + 0x9e3779b9) >>> 0;
    let z = sm;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = new Uint32Array([splitmix(), splitmix(), splitmix(), splitmix()]);
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
  const next = () => {
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  };
  return () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Uniform integer in [0, n) from `rng`. */
export function randInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** In-place Fisher–Yates shuffle driven by `rng` (i from n−1 down to 1, j uniform in [0, i]). */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

// ---------------------------------------------------------------------------------------------------
// Normal distribution

/** Standard normal CDF by its Taylor series (all terms positive; accurate to ~1e-15 for |x| < 8). */
function normalCdf(x: number): number {
  if (x < -8) return 0;
  if (x > 8) return 1;
  let term = x;
  let sum = x;
  const x2 = x * x;
  for (let n = 1; n < 500; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return 0.5 + sum * Math.exp(-x2 / 2 - 0.5 * Math.log(2 * Math.PI));
}

/**
 * Standard normal quantile Φ⁻¹(p): Acklam's rational approximation refined by one Halley step.
 *
 * @throws {RangeError} unless 0 < p < 1.
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p must be in (0, 1), got ${p}`);
  const a = [
    -3.969683028665376e1,
    2.209460984245205e2,
    -2.759285104469687e2,
    1.38357751867269e2,
    -3.066479806614716e1,
    2.506628277459239,
  ];
  const b = [
    -5.447609879822406e1,
    1.615858368580409e2,
    -1.556989798598866e2,
    6.680131188771972e1,
    -1.328068155288572e1,
  ];
  const c = [
    -7.784894002430293e-3,
    -3.223964580411365e-1,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const [a0, a1, a2, a3, a4, a5] = a as [number, number, number, number, number, number];
  const [b0, b1, b2, b3, b4] = b as [number, number, number, number, number];
  const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = d as [number, number, number, number];
  const pl = 0.02425;
  let x: number;
  if (p < pl) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) /
      ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  } else if (p <= 1 - pl) {
    const q = p - 0.5;
    const r = q * q;
    x = (((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q /
      (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) /
      ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  }
  if (Math.abs(x) < 8) {
    const e = normalCdf(x) - p;
    const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
    x = x - u / (1 + (x * u) / 2);
  }
  return x;
}

// ---------------------------------------------------------------------------------------------------
// Intervals

/** A point estimate with a two-sided confidence interval. */
export interface Interval {
  readonly estimate: number;
  readonly lower: number;
  readonly upper: number;
  /** Confidence level, e.g. 0.95. */
  readonly level: number;
}

/**
 * Wilson score interval for a binomial proportion k/n (E. B. Wilson, "Probable inference, the law of
 * succession, and statistical inference", J. Amer. Statist. Assoc. 22:209–212, 1927). Unlike the
 * percentile bootstrap or the Wald interval it stays honest at the boundary: 0/n gives [0, upper > 0].
 *
 * @param k Successes.
 * @param n Trials.
 * @param level Two-sided confidence level (default 0.95).
 * @returns estimate k/n (NaN when n = 0, with the interval [0, 1]).
 * @throws {RangeError} unless 0 ≤ k ≤ n are integers.
 */
export function wilsonInterval(k: number, n: number, level = 0.95): Interval {
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || k > n) {
    throw new RangeError(`wilsonInterval: need integers 0 <= k <= n, got k=${k}, n=${n}`);
  }
  if (n === 0) return { estimate: NaN, lower: 0, upper: 1, level };
  const z = normalQuantile(1 - (1 - level) / 2);
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At p = 0 (p = 1) the lower (upper) bound is exactly 0 (1); rounding would leave ±1e-16.
  const lower = p === 0 ? 0 : Math.max(0, center - half);
  const upper = p === 1 ? 1 : Math.min(1, center + half);
  return { estimate: p, lower, upper, level };
}

/**
 * Wilson score interval (Wilson 1927; see {@linkcode wilsonInterval}) for a proportion `p` observed on an
 * effective sample size `nEff` (any positive real: n divided by a design effect).
 *
 * @param p The observed proportion, in [0, 1].
 * @param nEff Effective sample size (> 0).
 * @param level Two-sided confidence level (default 0.95).
 * @throws {RangeError} unless 0 ≤ p ≤ 1 and nEff > 0.
 */
export function wilsonFromProportion(p: number, nEff: number, level = 0.95): Interval {
  if (!(p >= 0 && p <= 1) || !(nEff > 0)) {
    throw new RangeError(`wilsonFromProportion: need 0 <= p <= 1 and nEff > 0, got p=${p}, nEff=${nEff}`);
  }
  const z = normalQuantile(1 - (1 - level) / 2);
  const z2 = z * z;
  const denom = 1 + z2 / nEff;
  const center = (p + z2 / (2 * nEff)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / nEff + z2 / (4 * nEff * nEff));
  // At p = 0 (p = 1) the lower (upper) bound is exactly 0 (1); rounding would leave ±1e-16.
  const lower = p === 0 ? 0 : Math.max(0, center - half);
  const upper = p === 1 ? 1 : Math.min(1, center + half);
  return { estimate: p, lower, upper, level };
}

/** Linear-interpolation quantile (type 7, numpy's default) of an ascending-sorted array. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** Mean, sample standard deviation (n − 1; 0 when n < 2) and standard error. */
export function meanStd(values: readonly number[]): { mean: number; std: number; sem: number; n: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const ss = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  const std = n < 2 ? 0 : Math.sqrt(ss / (n - 1));
  return { mean, std, sem: n < 1 ? NaN : std / Math.sqrt(n), n };
}

/** Bootstrap options. */
export interface BootstrapOptions {
  /** Number of resamples (default 2000). */
  readonly samples?: number;
  /** Two-sided confidence level (default 0.95). */
  readonly level?: number;
  /** Random source; default `seededRng(seed)`. */
  readonly rng?: Rng;
  /** Seed used when no `rng` is given (default 0). */
  readonly seed?: number;
}

/** A bootstrap interval, plus how many clusters and observations it rests on. */
export interface BootstrapInterval extends Interval {
  readonly clusters: number;
  readonly n: number;
  readonly samples: number;
}

/**
 * Percentile bootstrap over clusters: draws `clusters.length` clusters with replacement, `samples`
 * times, and applies `statistic` to each resample (a list of clusters). The estimate is the statistic
 * of the original data; the interval is the (α/2, 1 − α/2) type-7 quantiles of the resampled
 * statistics (NaN statistics are dropped).
 *
 * @param clusters The data grouped by cluster (e.g. by problem).
 * @param statistic Function of a list of clusters.
 * @throws {RangeError} if there are no clusters.
 */
export function clusterBootstrap<C>(
  clusters: readonly C[],
  statistic: (resample: readonly C[]) => number,
  options: BootstrapOptions = {},
): Interval & { readonly samples: number } {
  if (clusters.length === 0) throw new RangeError("clusterBootstrap: no clusters");
  const B = options.samples ?? 2000;
  const level = options.level ?? 0.95;
  const rng = options.rng ?? seededRng(options.seed ?? 0);
  const stats: number[] = [];
  const draw: C[] = new Array(clusters.length);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < clusters.length; i++) draw[i] = clusters[randInt(rng, clusters.length)]!;
    const s = statistic(draw);
    if (!Number.isNaN(s)) stats.push(s);
  }
  stats.sort((x, y) => x - y);
  const alpha = 1 - level;
  return {
    estimate: statistic(clusters),
    lower: quantileSorted(stats, alpha / 2),
    upper: quantileSorted(stats, 1 - alpha / 2),
    level,
    samples: B,
  };
}

/** One observation with the cluster (problem) it belongs to. */
export interface ClusteredValue {
  readonly cluster: string | number;
  /** The outcome: 0/1 (or boolean) for a rate, any number for a mean. */
  readonly value: number | boolean;
}

function groupByCluster(obs: readonly ClusteredValue[]): Map<string | number, number[]> {
  const m = new Map<string | number, number[]>();
  for (const o of obs) {
    const v = typeof o.value === "boolean" ? (o.value ? 1 : 0) : o.value;
    const g = m.get(o.cluster);
    if (g) g.push(v);
    else m.set(o.cluster, [v]);
  }
  return m;
}

function pooledMean(groups: readonly (readonly number[])[]): number {
  let s = 0;
  let n = 0;
  for (const g of groups) {
    for (const v of g) s += v;
    n += g.length;
  }
  return s / n;
}

/**
 * Mean (or rate, for 0/1 values) over all observations, with a percentile bootstrap CI clustered by
 * `cluster`: problems are resampled with replacement and each keeps all its samples. With one
 * observation per cluster this is the ordinary iid bootstrap.
 *
 * @throws {RangeError} if `obs` is empty.
 */
export function clusteredMeanCI(
  obs: readonly ClusteredValue[],
  options: BootstrapOptions = {},
): BootstrapInterval {
  const groups = [...groupByCluster(obs).values()];
  const r = clusterBootstrap(groups, pooledMean, options);
  return { ...r, clusters: groups.length, n: obs.length };
}

/**
 * Difference of means `a − b` between two conditions measured on the same problems, with a paired
 * clustered percentile bootstrap: each resample draws problems with replacement and takes all samples
 * of each drawn problem from both conditions.
 *
 * @throws {RangeError} if a problem appears in only one condition, or there are no problems.
 */
export function pairedClusteredDifferenceCI(
  a: readonly ClusteredValue[],
  b: readonly ClusteredValue[],
  options: BootstrapOptions = {},
): BootstrapInterval {
  const ga = groupByCluster(a);
  const gb = groupByCluster(b);
  for (const k of ga.keys()) {
    if (!gb.has(k)) {
      throw new RangeError(`pairedClusteredDifferenceCI: problem ${String(k)} is in a but not in b`);
    }
  }
  for (const k of gb.keys()) {
    if (!ga.has(k)) {
      throw new RangeError(`pairedClusteredDifferenceCI: problem ${String(k)} is in b but not in a`);
    }
  }
  const pairs = [...ga.keys()].map((k) => [ga.get(k)!, gb.get(k)!] as const);
  const stat = (rs: readonly (readonly [number[], number[]])[]) =>
    pooledMean(rs.map((p) => p[0])) - pooledMean(rs.map((p) => p[1]));
  const r = clusterBootstrap(pairs, stat, options);
  return { ...r, clusters: pairs.length, n: a.length + b.length };
}

/** A proportion with a cluster-adjusted Wilson interval; see {@linkcode clusteredWilsonCI}. */
export interface ProportionInterval extends Interval {
  /** Successes (observations with value 1 / true). */
  readonly k: number;
  /** Observations. */
  readonly n: number;
  /** Clusters (problems). */
  readonly clusters: number;
  /** Design effect used: bootstrap variance / binomial variance, within [1, max_design_effect]. */
  readonly design_effect: number;
  /** The largest design effect the cluster sizes allow (all samples of a problem alike): Σm²/Σm. */
  readonly max_design_effect: number;
  /** n / design_effect: the sample size the Wilson interval is computed on. */
  readonly n_effective: number;
  /**
   * `wilson`: one observation per cluster, plain Wilson; `cluster_wilson`: design effect from the
   * cluster bootstrap; `cluster_wilson_max`: the rate is 0 or 1, so the data cannot tell the clustering
   * and the largest design effect the cluster sizes allow is used (conservative).
   */
  readonly method: "wilson" | "cluster_wilson" | "cluster_wilson_max";
}

/**
 * A proportion over clustered 0/1 observations (several samples per problem) with a cluster-adjusted
 * Wilson interval: the Wilson score interval (Wilson 1927) on the effective sample size n / deff, where
 * the design effect deff is the cluster-bootstrap variance of the pooled rate (problems resampled with
 * replacement, as {@linkcode clusteredMeanCI}) divided by the binomial variance p(1 − p)/n.
 *
 * deff is kept within [1, Σm²/Σm] (m = samples per problem): never narrower than the iid Wilson
 * interval, never wider than treating each problem as one observation. At p = 0 or 1 the bootstrap
 * variance is 0 and says nothing about the clustering, so the upper bound Σm²/Σm is used: the interval
 * stays honest at the boundary (0 of 400 samples on 100 problems, 4 each → Wilson on 100, upper 3.7%)
 * where a percentile bootstrap collapses to [0, 0]. With one observation per problem this is exactly
 * {@linkcode wilsonInterval}.
 *
 * @param obs Observations with their cluster; values 0/1 or booleans.
 * @param options Bootstrap samples, level, seed / rng.
 * @returns Estimate, interval, counts, the design effect and how it was chosen.
 * @throws {RangeError} if `obs` is empty or a value is not 0/1/boolean.
 */
export function clusteredWilsonCI(
  obs: readonly ClusteredValue[],
  options: BootstrapOptions = {},
): ProportionInterval {
  if (obs.length === 0) throw new RangeError("clusteredWilsonCI: no observations");
  for (const o of obs) {
    if (o.value !== 0 && o.value !== 1 && typeof o.value !== "boolean") {
      throw new RangeError(
        `clusteredWilsonCI: values must be 0, 1 or booleans; cluster ${String(o.cluster)} has ${o.value}`,
      );
    }
  }
  const level = options.level ?? 0.95;
  const groups = [...groupByCluster(obs).values()];
  const n = obs.length;
  const k = groups.reduce((a, g) => a + g.reduce((x, y) => x + y, 0), 0);
  const p = k / n;
  const maxDeff = groups.reduce((a, g) => a + g.length * g.length, 0) / n;
  let deff: number;
  let method: ProportionInterval["method"];
  if (groups.length === n) {
    deff = 1;
    method = "wilson";
  } else if (k === 0 || k === n) {
    deff = maxDeff;
    method = "cluster_wilson_max";
  } else {
    const B = options.samples ?? 2000;
    const rng = options.rng ?? seededRng(options.seed ?? 0);
    let sum = 0;
    let sum2 = 0;
    const G = groups.length;
    for (let b = 0; b < B; b++) {
      let s = 0;
      let m = 0;
      for (let i = 0; i < G; i++) {
        const g = groups[randInt(rng, G)]!;
        for (const v of g) s += v;
        m += g.length;
      }
      const r = s / m;
      sum += r;
      sum2 += r * r;
    }
    const varBoot = B > 1 ? (sum2 - (sum * sum) / B) / (B - 1) : 0;
    deff = Math.min(maxDeff, Math.max(1, varBoot / ((p * (1 - p)) / n)));
    method = "cluster_wilson";
  }
  const w = wilsonFromProportion(p, n / deff, level);
  return {
    ...w,
    k,
    n,
    clusters: groups.length,
    design_effect: deff,
    max_design_effect: maxDeff,
    n_effective: n / deff,
    method,
  };
}

// ---------------------------------------------------------------------------------------------------
// McNemar

/** Result of {@linkcode mcnemarExact}. */
export interface McNemarResult {
  /** Pairs where a is true and b is false. */
  readonly a_only: number;
  /** Pairs where b is true and a is false. */
  readonly b_only: number;
  /** Exact two-sided p-value: min(1, 2 · P[Binom(a_only + b_only, ½) ≤ min(a_only, b_only)]). */
  readonly p_value: number;
}

/** log(i!) for i = 0..n. */
function logFactorials(n: number): Float64Array {
  const out = new Float64Array(n + 1);
  for (let i = 2; i <= n; i++) out[i] = out[i - 1]! + Math.log(i);
  return out;
}

/**
 * McNemar's exact test for paired binary outcomes (e.g. correct under two conditions on the same
 * samples or problems): a two-sided binomial test on the discordant pairs.
 *
 * @param a Outcomes under condition A.
 * @param b Outcomes under condition B, paired by index.
 * @throws {RangeError} if the lengths differ.
 */
export function mcnemarExact(a: readonly boolean[], b: readonly boolean[]): McNemarResult {
  if (a.length !== b.length) {
    throw new RangeError(`mcnemarExact: ${a.length} outcomes in a, ${b.length} in b`);
  }
  let aOnly = 0;
  let bOnly = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && !b[i]) aOnly++;
    else if (!a[i] && b[i]) bOnly++;
  }
  const n = aOnly + bOnly;
  const k = Math.min(aOnly, bOnly);
  if (n === 0) return { a_only: 0, b_only: 0, p_value: 1 };
  const lf = logFactorials(n);
  let cdf = 0;
  for (let i = 0; i <= k; i++) cdf += Math.exp(lf[n]! - lf[i]! - lf[n - i]! - n * Math.LN2);
  return { a_only: aOnly, b_only: bOnly, p_value: Math.min(1, 2 * cdf) };
}
