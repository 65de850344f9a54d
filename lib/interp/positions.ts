/**
 * Teacher-forced measurements at one position of stored sequences, under per-row interventions: the
 * engine behind the continuation ablation (scale a component subset at the pre-onset position) and
 * activation patching (scale 0 + add a donor's component output there), plus residual / component
 * captures at chosen positions (steering directions, patching donors).
 *
 * Efficient like `lib/ablation.ts` `scanPositions`: an intervention at `predPos` cannot change the keys
 * and values of earlier positions, so each prefix `tokenIds[0 .. predPos)` is prefilled once, its KV
 * cache is replicated (one clean row plus one row per condition), and a single batched one-token forward
 * of `tokenIds[predPos]` evaluates every condition. Sequences are the generated token ids as stored, so
 * nothing is decoded and re-encoded (the reference's double-BOS bug, docs/protocol.md §20, cannot happen).
 *
 * @example
 * ```ts
 * const out = await evalAtPositions(model, [{
 *   tokenIds, predPos,
 *   conditions: [[{ hook: "blocks.3.hook_mlp_out", op: "scale", value: 0 }]],
 * }], { read: (logits) => logits[onsetId] });
 * ```
 *
 * @module
 */

import type { Intervention } from "../engine/hooks.ts";
import { selectCacheRows } from "../engine/ort/native_cache.ts";
import type { AnalysisModel } from "./logit_lens.ts";

/** A component-output hook (the sites of scale and patching edits). */
export type ComponentHook = `blocks.${number}.hook_attn_out` | `blocks.${number}.hook_mlp_out`;

/** One edit of one row at its position: scale a component output, or add a vector to it. */
export type RowEdit =
  | { readonly hook: ComponentHook; readonly op: "scale"; readonly value: number }
  | { readonly hook: ComponentHook; readonly op: "add"; readonly vector: ArrayLike<number> };

/** A position to evaluate under several conditions (each a list of edits applied together). */
export interface PositionCase {
  /** The stored sequence (prompt then completion ids); only `tokenIds[0 ..= predPos]` is used. */
  readonly tokenIds: readonly number[];
  /** Position whose next-token prediction is read and where the edits apply (≥ 1). */
  readonly predPos: number;
  /** Conditions; the clean run is always evaluated as well. */
  readonly conditions: readonly (readonly RowEdit[])[];
}

/** Options of {@linkcode evalAtPositions}. */
export interface EvalAtPositionsOptions<T> {
  /**
   * Reduce one row's next-token logits (a view valid only during the call) to what the caller keeps.
   * `condition` is -1 for the clean row.
   */
  readonly read: (logits: Float32Array, caseIndex: number, condition: number) => T;
  /** Rows per one-token forward (default 64). */
  readonly maxRows?: number;
  /** Prefixes prefilled together (default 4). */
  readonly prefillBatch?: number;
  /** Called after each prefill group. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Result per case: the clean reading and one per condition, in order. */
export interface CaseResult<T> {
  readonly clean: T;
  readonly conditions: T[];
}

function checkCase(c: PositionCase, i: number, numLayers: number, hidden: number): void {
  if (!Number.isInteger(c.predPos) || c.predPos < 1 || c.predPos >= c.tokenIds.length) {
    throw new RangeError(
      `evalAtPositions: case ${i} has predPos ${c.predPos}; it must lie in [1, ${c.tokenIds.length - 1}]`,
    );
  }
  for (const cond of c.conditions) {
    for (const e of cond) {
      const m = /^blocks\.(\d+)\.hook_(attn|mlp)_out$/.exec(e.hook);
      if (!m || Number(m[1]) >= numLayers) {
        throw new RangeError(`evalAtPositions: case ${i} edits "${e.hook}", not a component output hook`);
      }
      if (e.op === "add" && e.vector.length !== hidden) {
        throw new RangeError(
          `evalAtPositions: case ${i} adds a vector of length ${e.vector.length} on "${e.hook}"; expected ${hidden}`,
        );
      }
    }
  }
}

/**
 * Evaluate every case's clean run and its conditions at `predPos` (see the module doc).
 *
 * @param model The hooked model (or anything with its `forward` and `config`).
 * @param cases Positions and their conditions.
 * @param options `read` (what to keep of each row's logits), batching, progress.
 * @returns One {@linkcode CaseResult} per case, in input order.
 * @throws {RangeError} on a position outside its tokens, a hook that is not a component output, or a
 *   vector of the wrong length.
 */
export async function evalAtPositions<T>(
  model: AnalysisModel,
  cases: readonly PositionCase[],
  options: EvalAtPositionsOptions<T>,
): Promise<CaseResult<T>[]> {
  const { numLayers, hiddenSize } = model.config;
  cases.forEach((c, i) => checkCase(c, i, numLayers, hiddenSize));
  const maxRows = options.maxRows ?? 64;
  const prefillBatch = options.prefillBatch ?? 4;
  const results: CaseResult<T>[] = new Array(cases.length);
  const order = cases.map((_, i) => i).sort((a, b) => cases[a]!.predPos - cases[b]!.predPos || a - b);
  for (let start = 0; start < order.length; start += prefillBatch) {
    const group = order.slice(start, start + prefillBatch);
    const pre = await model.forward(group.map((i) => cases[i]!.tokenIds.slice(0, cases[i]!.predPos)), {
      logits: "none",
      returnCache: true,
    });
    const cache = pre.cache!;
    const partial = group.map((i) => ({
      clean: undefined as T | undefined,
      conditions: new Array<T>(cases[i]!.conditions.length),
    }));
    const jobs = group.flatMap((i, g) =>
      Array.from({ length: cases[i]!.conditions.length + 1 }, (_, c) => ({ g, c: c - 1 }))
    );
    for (let j0 = 0; j0 < jobs.length; j0 += maxRows) {
      const chunk = jobs.slice(j0, j0 + maxRows);
      const rowCase = chunk.map((j) => cases[group[j.g]!]!);
      // Either kind of cache (a native one on the C API runtime is released right after use).
      const rowsCache = await selectCacheRows(cache, chunk.map((j) => j.g));
      const res = await model.forward(rowCase.map((c) => [c.tokenIds[c.predPos]!]), {
        cache: rowsCache,
        interventions: rowInterventions(chunk.map((j, r) => ({
          edits: j.c < 0 ? [] : rowCase[r]!.conditions[j.c]!,
          pos: rowCase[r]!.predPos,
        }))),
      });
      rowsCache.dispose();
      chunk.forEach((j, r) => {
        const value = options.read(res.logits[r]![0]!, group[j.g]!, j.c);
        if (j.c < 0) partial[j.g]!.clean = value;
        else partial[j.g]!.conditions[j.c] = value;
      });
    }
    group.forEach((i, g) => {
      results[i] = { clean: partial[g]!.clean as T, conditions: partial[g]!.conditions };
    });
    options.onProgress?.(Math.min(start + prefillBatch, order.length), order.length);
  }
  return results;
}

/**
 * The engine interventions of a batch whose row r carries `rows[r].edits` at `rows[r].pos`: one scale
 * intervention per (hook, value) and one add intervention per hook with a vector per row.
 */
export function rowInterventions(
  rows: readonly { edits: readonly RowEdit[]; pos: number }[],
): Intervention[] {
  const scales = new Map<string, { hook: ComponentHook; value: number; rows: Set<number> }>();
  const adds = new Map<ComponentHook, Map<number, ArrayLike<number>>>();
  rows.forEach((row, r) => {
    for (const e of row.edits) {
      if (e.op === "scale") {
        const key = `${e.hook}|${e.value}`;
        const s = scales.get(key) ?? { hook: e.hook, value: e.value, rows: new Set<number>() };
        s.rows.add(r);
        scales.set(key, s);
      } else {
        const m = adds.get(e.hook) ?? new Map<number, ArrayLike<number>>();
        if (m.has(r)) throw new RangeError(`row ${r} has two add edits on "${e.hook}"; combine them`);
        m.set(r, e.vector);
        adds.set(e.hook, m);
      }
    }
  });
  const out: Intervention[] = [];
  for (const s of scales.values()) {
    out.push({
      hook: s.hook,
      op: "scale",
      value: s.value,
      positions: rows.map((row, r) => (s.rows.has(r) ? [row.pos] : [])),
    });
  }
  const empty = new Float32Array(0);
  for (const [hook, m] of adds) {
    out.push({
      hook,
      op: "add",
      vector: rows.map((_, r) => m.get(r) ?? empty),
      positions: rows.map((row, r) => (m.has(r) ? [row.pos] : [])),
    });
  }
  return out;
}

/** A position to capture activations at. */
export interface CaptureItem {
  readonly tokenIds: readonly number[];
  readonly pos: number;
}

/** Activations of one item at its position (copies, safe to keep). */
export interface CapturedAt {
  /** `resid[l]`, l = 0..L: `blocks.l.hook_resid_pre`, L = the last `hook_resid_post`. */
  readonly resid: Float32Array[];
  /** `attnOut[l]`, `mlpOut[l]`, l = 0..L−1. */
  readonly attnOut: Float32Array[];
  readonly mlpOut: Float32Array[];
}

/**
 * Residual stream and component outputs of each item at its position (clean runs of
 * `tokenIds[0 ..= pos]`, batched).
 *
 * @param batchSize Items per forward (default 8).
 * @throws {RangeError} when a position lies outside its tokens.
 */
export async function captureAt(
  model: AnalysisModel,
  items: readonly CaptureItem[],
  options: { readonly batchSize?: number } = {},
): Promise<CapturedAt[]> {
  const bs = options.batchSize ?? 8;
  items.forEach((it, i) => {
    if (!Number.isInteger(it.pos) || it.pos < 0 || it.pos >= it.tokenIds.length) {
      throw new RangeError(
        `captureAt: item ${i} position ${it.pos} is outside [0, ${it.tokenIds.length - 1}]`,
      );
    }
  });
  const out: CapturedAt[] = new Array(items.length);
  const order = items.map((_, i) => i).sort((a, b) => items[a]!.pos - items[b]!.pos || a - b);
  for (let s = 0; s < order.length; s += bs) {
    const group = order.slice(s, s + bs);
    const res = await model.forward(group.map((i) => items[i]!.tokenIds.slice(0, items[i]!.pos + 1)), {
      logits: "none",
      capture: { positions: group.map((i) => [items[i]!.pos]) },
    });
    const cap = res.captures!;
    group.forEach((i, r) => {
      out[i] = {
        resid: cap.resid.map((l) => Float32Array.from(l[r]![0]!)),
        attnOut: cap.attnOut.map((l) => Float32Array.from(l[r]![0]!)),
        mlpOut: cap.mlpOut.map((l) => Float32Array.from(l[r]![0]!)),
      };
    });
  }
  return out;
}

/** log Σ exp(x) in float64. */
export function logSumExp(x: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > max) max = x[i]!;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i]! - max);
  return max + Math.log(s);
}
