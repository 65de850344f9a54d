/**
 * Logit lens at backtracking onsets and at position-matched controls (docs/protocol.md §11–12 of the
 * backtracking experiment).
 *
 * For each item the residual stream at `predPos` is read after every layer (0 = embedding output,
 * L = the model's true final logits, not normed twice), passed through the final norm and the
 * unembedding, and the target token's logit, log-probability and rank are reported. Everything runs in
 * float32.
 *
 * @example
 * ```ts
 * const bt = await logitLens(model, events.map((e) => ({ ...e, targetId: e.onsetTokenId })));
 * const ctrl = await logitLens(model, controls);
 * const table = summarizeLens(bt, ctrl, { bootstrap: 2000, seed: 0 });
 * ```
 *
 * @module
 */

import type { HookedModel } from "../engine/hooked_model.ts";
import { clusterBootstrap, meanStd, quantileSorted } from "../stats/stats.ts";

/** The part of {@link HookedModel} the analyses use (a structural type, so tests can wrap it). */
export type AnalysisModel = Pick<HookedModel, "forward" | "config">;

/** One position to read with the lens. */
export interface LensItem {
  readonly tokenIds: readonly number[];
  /** The position whose next-token prediction is read. */
  readonly predPos: number;
  /** The token id to read at every layer. */
  readonly targetId: number;
  /** The problem the item belongs to (the bootstrap cluster). */
  readonly exampleId: number;
}

/** Lens value of one item at one layer. */
export interface LensRow {
  /** Index of the item in the array given to {@link logitLens}. */
  readonly item: number;
  /** 0 = embedding output, l = output of block l − 1, L = final logits. */
  readonly layer: number;
  readonly logit: number;
  readonly logprob: number;
  /** Number of vocabulary entries with a strictly larger logit (0 = top-1). */
  readonly rank: number;
  /** The item's problem (copied from the item). */
  readonly exampleId?: number;
}

/** Options of {@link logitLens}. */
export interface LogitLensOptions {
  /** Items per forward pass (default 8). Items are sorted by length so a batch pads little. */
  readonly batchSize?: number;
  /** Called after each batch with the number of items done. */
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * Run the logit lens on each item at its `predPos`, reading its `targetId`.
 *
 * Each item runs on `tokenIds.slice(0, predPos + 1)` only (causality makes later tokens irrelevant),
 * batched with left padding.
 *
 * @returns one row per item and layer 0..L, item-major.
 * @throws {RangeError} when an item's predPos is outside its tokens or its target id outside the vocabulary.
 */
export async function logitLens(
  model: AnalysisModel,
  items: readonly LensItem[],
  options: LogitLensOptions = {},
): Promise<LensRow[]> {
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`logitLens: batchSize must be a positive integer, got ${batchSize}`);
  }
  const { numLayers: L, vocabSize: V } = model.config;
  items.forEach((it, i) => {
    if (!Number.isInteger(it.predPos) || it.predPos < 0 || it.predPos >= it.tokenIds.length) {
      throw new RangeError(
        `logitLens: item ${i} (example ${it.exampleId}) has predPos ${it.predPos} outside its ` +
          `${it.tokenIds.length} tokens`,
      );
    }
    if (!Number.isInteger(it.targetId) || it.targetId < 0 || it.targetId >= V) {
      throw new RangeError(`logitLens: item ${i} has target id ${it.targetId} outside [0, ${V})`);
    }
  });
  const order = items.map((_, i) => i).sort((a, b) => items[a]!.predPos - items[b]!.predPos || a - b);
  const out: LensRow[][] = new Array(items.length);
  for (let start = 0; start < order.length; start += batchSize) {
    const batch = order.slice(start, start + batchSize);
    const rows = batch.map((i) => items[i]!.tokenIds.slice(0, items[i]!.predPos + 1));
    const res = await model.forward(rows, {
      logits: "none",
      capture: {
        positions: batch.map((i) => [items[i]!.predPos]),
        lensTokenIds: batch.map((i) => [[items[i]!.targetId]]),
      },
    });
    const lens = res.captures?.lens;
    if (!lens) throw new Error("logitLens: the engine returned no lens captures");
    batch.forEach((i, b) => {
      const rowsOfItem: LensRow[] = [];
      for (let l = 0; l <= L; l++) {
        const v = lens[l]![b]![0]![0]!;
        rowsOfItem.push({
          item: i,
          layer: l,
          logit: v.logit,
          logprob: v.logprob,
          rank: v.rank,
          exampleId: items[i]!.exampleId,
        });
      }
      out[i] = rowsOfItem;
    });
    options.onProgress?.(Math.min(start + batchSize, order.length), order.length);
  }
  return out.flat();
}

/** A point estimate with a two-sided bootstrap interval. */
export interface Estimate {
  readonly estimate: number;
  readonly lower: number;
  readonly upper: number;
}

/** One layer of the lens summary: ours first, then the reference's `logit_lens.csv` columns. */
export interface LensSummaryRow {
  /** 0 = embedding output, L = final logits. */
  readonly layer: number;
  /** The reference's layer label for the same residual (output of block `layer − 1`); undefined at 0. */
  readonly reference_layer: number | undefined;
  readonly bt_logit_mean: number;
  readonly control_logit_mean: number;
  /** BT − control mean logit, bootstrap CI clustered by problem. */
  readonly diff_logit: Estimate;
  readonly bt_logprob_mean: number;
  readonly control_logprob_mean: number;
  readonly diff_logprob: Estimate;
  /** Mean 0-based rank (heavy-tailed: see the medians too). */
  readonly bt_rank_mean: number;
  readonly control_rank_mean: number;
  readonly diff_rank: Estimate;
  readonly bt_rank_median: number;
  readonly control_rank_median: number;
  /** Number of problems behind the CIs. */
  readonly clusters: number;
  readonly level: number;
  // Reference-compatible columns (docs/protocol.md §12): means are 0 on an empty list, std is n−1
  // (0 when n < 2).
  readonly mean_target_logit_bt: number;
  readonly mean_target_logit_control: number;
  readonly std_bt: number;
  readonly std_control: number;
  readonly n_bt: number;
  readonly n_control: number;
  readonly control_matching: "position_matched";
}

/** Options of {@link summarizeLens}. */
export interface SummarizeLensOptions {
  /**
   * Problem of each item, indexed by `LensRow.item`; default: the rows' `exampleId`.
   * @throws when neither is given.
   */
  readonly clusters?: {
    readonly bt: readonly (string | number)[];
    readonly control: readonly (string | number)[];
  };
  /** Bootstrap resamples (default 2000). */
  readonly bootstrap?: number;
  /** Bootstrap seed (default 0). */
  readonly seed?: number;
  /** Confidence level (default 0.95). */
  readonly level?: number;
}

type Metric = "logit" | "logprob" | "rank";

/**
 * Per-layer comparison of the lens at BT events vs controls.
 *
 * The difference CI is a percentile bootstrap over problems: the problems appearing in either group
 * are resampled with replacement, each bringing all its BT and all its control rows (a problem often
 * has both backtracking and non-backtracking samples, so the two means are not independent); the
 * statistic is mean(BT) − mean(control) over the resample (resamples lacking either group are
 * dropped).
 *
 * @param bt lens rows of the BT events (from {@link logitLens}).
 * @param ctrl lens rows of the controls.
 * @returns one row per layer present in either input, ascending.
 * @throws {RangeError} when a row's problem is unknown.
 */
export function summarizeLens(
  bt: readonly LensRow[],
  ctrl: readonly LensRow[],
  options: SummarizeLensOptions = {},
): LensSummaryRow[] {
  const level = options.level ?? 0.95;
  const clusterOf = (row: LensRow, group: "bt" | "control"): string | number => {
    const c = options.clusters ? options.clusters[group][row.item] : row.exampleId;
    if (c === undefined) {
      throw new RangeError(
        `summarizeLens: no problem for ${group} item ${row.item}; give options.clusters or LensRow.exampleId`,
      );
    }
    return c;
  };
  const layers = [...new Set([...bt, ...ctrl].map((r) => r.layer))].sort((a, b) => a - b);
  return layers.map((layer) => {
    const b = bt.filter((r) => r.layer === layer);
    const c = ctrl.filter((r) => r.layer === layer);
    const groups = new Map<string | number, { bt: LensRow[]; control: LensRow[] }>();
    const add = (r: LensRow, g: "bt" | "control") => {
      const key = clusterOf(r, g);
      let entry = groups.get(key);
      if (!entry) groups.set(key, entry = { bt: [], control: [] });
      entry[g].push(r);
    };
    b.forEach((r) => add(r, "bt"));
    c.forEach((r) => add(r, "control"));
    const clusters = [...groups.values()];
    const diff = (metric: Metric): Estimate => {
      if (b.length === 0 || c.length === 0) return { estimate: NaN, lower: NaN, upper: NaN };
      const stat = (rs: readonly { bt: LensRow[]; control: LensRow[] }[]) => {
        let sb = 0, nb = 0, sc = 0, nc = 0;
        for (const g of rs) {
          for (const r of g.bt) (sb += r[metric], nb++);
          for (const r of g.control) (sc += r[metric], nc++);
        }
        return nb === 0 || nc === 0 ? NaN : sb / nb - sc / nc;
      };
      const r = clusterBootstrap(clusters, stat, {
        samples: options.bootstrap ?? 2000,
        level,
        seed: options.seed ?? 0,
      });
      return { estimate: r.estimate, lower: r.lower, upper: r.upper };
    };
    const mean = (rows: LensRow[], m: Metric) => rows.length ? meanStd(rows.map((r) => r[m])).mean : NaN;
    const median = (rows: LensRow[]) =>
      rows.length ? quantileSorted(rows.map((r) => r.rank).sort((x, y) => x - y), 0.5) : NaN;
    const bLogit = b.map((r) => r.logit), cLogit = c.map((r) => r.logit);
    return {
      layer,
      reference_layer: layer === 0 ? undefined : layer - 1,
      bt_logit_mean: mean(b, "logit"),
      control_logit_mean: mean(c, "logit"),
      diff_logit: diff("logit"),
      bt_logprob_mean: mean(b, "logprob"),
      control_logprob_mean: mean(c, "logprob"),
      diff_logprob: diff("logprob"),
      bt_rank_mean: mean(b, "rank"),
      control_rank_mean: mean(c, "rank"),
      diff_rank: diff("rank"),
      bt_rank_median: median(b),
      control_rank_median: median(c),
      clusters: clusters.length,
      level,
      mean_target_logit_bt: bLogit.length ? meanStd(bLogit).mean : 0,
      mean_target_logit_control: cLogit.length ? meanStd(cLogit).mean : 0,
      std_bt: meanStd(bLogit).std,
      std_control: meanStd(cLogit).std,
      n_bt: b.length,
      n_control: c.length,
      control_matching: "position_matched",
    };
  });
}
