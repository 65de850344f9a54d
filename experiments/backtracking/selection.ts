/**
 * Which components the experiment ablates during generation, chosen from the ablation scan, and the
 * random layer draws of the generation-time control (docs/protocol.md §13–14); plus the
 * reference's `ablation_importance.csv` rows.
 *
 * @example
 * ```ts
 * const picked = selectComponents(rows, { criterion: "specificity", topk: 6 });
 * const random = randomDraws(picked, { numLayers: 28, draws: 5, seed: 0, mode: "matched" });
 * ```
 *
 * @module
 */

import type { Component, ScanRow } from "../../lib/interp/ablation_scan.ts";
import { seededRng, shuffleInPlace } from "../../lib/stats/stats.ts";
import { PyRandom } from "./reference/pyrandom.ts";

/** The reference's `ablation_importance.csv` rows (docs/protocol.md §13): sorted ascending by the mean Δlogit. */
export function referenceImportanceRows(rows: readonly ScanRow[]): {
  layer: number;
  component: Component;
  delta_wait_logit_mean: number;
  delta_wait_logit_std: number;
  n_events: number;
}[] {
  return [...rows]
    .sort((a, b) => a.delta_logit_mean - b.delta_logit_mean)
    .map((r) => ({
      layer: r.layer,
      component: r.component,
      delta_wait_logit_mean: r.delta_logit_mean,
      delta_wait_logit_std: r.delta_logit_std,
      n_events: r.n_events,
    }));
}

/** Selected layers per component type, in importance order. */
export interface SelectedLayers {
  readonly attn: number[];
  readonly mlp: number[];
}

/** Options of {@link selectComponents}. */
export interface SelectComponentsOptions {
  /** `"signed_mean"` = the reference; `"specificity"` = corrected (see {@link selectComponents}). */
  readonly criterion: "signed_mean" | "specificity";
  /** Layers per component type (the reference used 6); an upper bound under `"specificity"`. */
  readonly topk: number;
  /**
   * `"specificity"` only: keep a row only when `specificity_upper < −minEffect` (nats). Default
   * {@link DEFAULT_MIN_SPECIFICITY_EFFECT} (0.1); 0 = "the CI excludes zero".
   */
  readonly minEffect?: number;
}

/**
 * Default minimum specificity effect (nats) of the corrected selection: with many events, single-position
 * effects are nearly deterministic and bootstrap CIs narrow, so "the CI excludes zero" alone admits
 * components whose effect is a few hundredths of a nat (every noise component of the organism); 0.1 nats
 * is a 10% change of the trigger's probability relative to the control token's (docs/protocol.md §13).
 */
export const DEFAULT_MIN_SPECIFICITY_EFFECT = 0.1;

/**
 * Choose the layers to ablate during generation, per component type, most important first.
 *
 * - `"signed_mean"` (docs/protocol.md §13): rows sorted ascending by `delta_logit_mean` (most negative first;
 *   ties keep row order); the first `topk` of each type. Always `topk` layers (if the scan had that many).
 * - `"specificity"` (docs/protocol.md §13): only rows whose specificity CI lies entirely below
 *   `−minEffect` (`specificity_upper < −minEffect`, default 0.1 nats: ablating the component lowers the
 *   trigger's log-probability clearly more than it lowers the sampled token's at matched
 *   non-backtracking positions), sorted ascending by `specificity_mean` (ties by layer); the first
 *   `topk` of each type. How many are kept is decided by the data: it may return fewer than `topk`
 *   (even none); components below the threshold are never padded in.
 *
 * @throws {RangeError} on a bad `topk`, `minEffect` or criterion.
 */
export function selectComponents(rows: readonly ScanRow[], options: SelectComponentsOptions): SelectedLayers {
  const { criterion, topk } = options;
  if (!Number.isInteger(topk) || topk < 0) {
    throw new RangeError(`selectComponents: topk must be a non-negative integer, got ${topk}`);
  }
  const minEffect = options.minEffect ?? DEFAULT_MIN_SPECIFICITY_EFFECT;
  if (!(minEffect >= 0)) {
    throw new RangeError(`selectComponents: minEffect must be a number >= 0 (nats), got ${minEffect}`);
  }
  const pick = (component: Component): number[] => {
    const own = rows.map((r, i) => ({ r, i })).filter(({ r }) => r.component === component);
    if (criterion === "signed_mean") {
      return own
        .sort((a, b) => a.r.delta_logit_mean - b.r.delta_logit_mean || a.i - b.i)
        .slice(0, topk)
        .map(({ r }) => r.layer);
    }
    if (criterion === "specificity") {
      return own
        .filter(({ r }) => r.specificity_upper < -minEffect)
        .sort((a, b) => a.r.specificity_mean - b.r.specificity_mean || a.r.layer - b.r.layer)
        .slice(0, topk)
        .map(({ r }) => r.layer);
    }
    throw new RangeError(
      `selectComponents: unknown criterion "${criterion}"; use "signed_mean" or "specificity"`,
    );
  };
  return { attn: pick("attn"), mlp: pick("mlp") };
}

/** Options of {@link randomDraws}. */
export interface RandomDrawsOptions {
  readonly numLayers: number;
  /** Number of draws (default 1). */
  readonly draws?: number;
  /** Seed of `"matched"` mode (seededRng). Default 0. */
  readonly seed?: number;
  /** Seed of `"reference"` mode (Python random.Random). Default 999, the reference's hard-coded value. */
  readonly referenceSeed?: number;
  /** Default `"matched"`. */
  readonly mode?: "reference" | "matched";
}

/**
 * Random layer sets for the generation-time control ablation.
 *
 * - `"reference"` (docs/protocol.md §14): T = every layer index used by any selected component (attention or
 *   MLP); `available` = layers not in T, ascending; Python `random.Random(999)` shuffles a fresh copy of
 *   `available` per draw (one generator for all draws, so draw 1 is exactly the reference's); the first
 *   `attn.length` become attention layers, the next `mlp.length` MLP layers (disjoint).
 * - `"matched"` (corrected default): per draw and per component type, `n` layers sampled without
 *   replacement from that type's own non-selected layers (`seededRng(seed)`), so attention and MLP
 *   draws are independent and each can reuse layers selected for the other type; returned ascending.
 *   (Matching the draws' destructiveness, e.g. by ablated-output norm, is left to the caller.)
 *
 * @throws {RangeError} when not enough layers are available.
 */
export function randomDraws(
  selected: SelectedLayers,
  options: RandomDrawsOptions,
): { attn: number[]; mlp: number[] }[] {
  const { numLayers } = options;
  const draws = options.draws ?? 1;
  const mode = options.mode ?? "matched";
  if (!Number.isInteger(numLayers) || numLayers < 1) {
    throw new RangeError(`randomDraws: numLayers must be a positive integer, got ${numLayers}`);
  }
  if (!Number.isInteger(draws) || draws < 0) {
    throw new RangeError(`randomDraws: draws must be a non-negative integer, got ${draws}`);
  }
  for (const l of [...selected.attn, ...selected.mlp]) {
    if (!Number.isInteger(l) || l < 0 || l >= numLayers) {
      throw new RangeError(`randomDraws: selected layer ${l} is outside [0, ${numLayers})`);
    }
  }
  const all = Array.from({ length: numLayers }, (_, l) => l);
  const nA = selected.attn.length, nM = selected.mlp.length;
  if (mode === "reference") {
    const used = new Set([...selected.attn, ...selected.mlp]);
    const available = all.filter((l) => !used.has(l));
    if (available.length < nA + nM) {
      throw new RangeError(
        `randomDraws (reference): ${available.length} layers outside the selected ones, need ${nA + nM}`,
      );
    }
    const rng = new PyRandom(options.referenceSeed ?? 999);
    return Array.from({ length: draws }, () => {
      const s = rng.shuffle([...available]);
      return { attn: s.slice(0, nA), mlp: s.slice(nA, nA + nM) };
    });
  }
  if (mode !== "matched") {
    throw new RangeError(`randomDraws: unknown mode "${mode}"; use "reference" or "matched"`);
  }
  const poolA = all.filter((l) => !selected.attn.includes(l));
  const poolM = all.filter((l) => !selected.mlp.includes(l));
  if (poolA.length < nA || poolM.length < nM) {
    throw new RangeError(
      `randomDraws (matched): need ${nA} attention and ${nM} MLP layers outside the selected ones; ` +
        `${poolA.length} and ${poolM.length} are available`,
    );
  }
  const rng = seededRng(options.seed ?? 0);
  const sample = (pool: number[], n: number) =>
    shuffleInPlace([...pool], rng).slice(0, n).sort((a, b) => a - b);
  return Array.from({ length: draws }, () => ({ attn: sample(poolA, nA), mlp: sample(poolM, nM) }));
}
