/**
 * Per-head hooks of the engine: the graph inputs of `blocks.{l}.attn.hook_z` interventions and the
 * per-row views of the per-head captures (`hook_z`, `hook_pattern`, `hook_result`). Kept apart from
 * hooked_model.ts, which only routes to these.
 *
 * @module
 */

import * as ort from "onnxruntime-node";
import type { ModelConfig } from "./config.ts";
import { type Intervention, parseHookName, selectsPosition } from "./hooks.ts";

/** Graph outputs of the per-head captures (fetched only when asked for). */
export const HEAD_OUTPUTS: ReadonlySet<string> = new Set(["z", "pattern", "head_result", "attn_bias"]);

/** Whether a hook name is a per-head hook (`blocks.{l}.attn.*`). */
export function isHeadHook(hook: string): boolean {
  return /^blocks\.\d+\.attn\./.test(hook);
}

/**
 * Check the `head` field of interventions on layer-level hooks (it is only meaningful on hook_z).
 * @throws {RangeError} naming the hook when an intervention on a layer-level hook has a `head`.
 */
export function checkNoHeadOnLayerHooks(interventions: readonly Intervention[]): void {
  for (const iv of interventions) {
    if (iv.head !== undefined && !isHeadHook(iv.hook)) {
      throw new RangeError(
        `Intervention on "${iv.hook}" has head ${iv.head}; heads are chosen only on blocks.{l}.attn.hook_z`,
      );
    }
  }
}

/**
 * The `z_scale`, `z_add` and `z_add_coef` inputs of the heads graph for a call: neutral (scale 1, add 0)
 * except where an intervention on `blocks.{l}.attn.hook_z` applies.
 * @param interventions all of the call's interventions (layer-level ones are skipped).
 * @param absPos `[B * T]` absolute position of each token slot, -1 for padding.
 * @throws {RangeError} for interventions on capture-only head hooks (`hook_pattern`, `hook_result`), a
 *   head out of range, a vector of the wrong length, or two adds on one layer, row and head.
 */
export function headHookFeeds(
  interventions: readonly Intervention[],
  cfg: ModelConfig,
  B: number,
  T: number,
  absPos: Int32Array,
): Record<string, ort.Tensor> {
  const { numLayers: L, numHeads: nh, headDim: D } = cfg;
  const scale = new Float32Array(L * B * T * nh).fill(1);
  const vec = new Float32Array(L * B * nh * D);
  const coef = new Float32Array(L * B * T * nh);
  const used = new Set<string>();
  for (const iv of interventions) {
    if (!isHeadHook(iv.hook)) continue;
    const hook = parseHookName(iv.hook, L);
    if (hook.kind !== "attn.hook_z") {
      throw new RangeError(
        `"${iv.hook}" is capture-only; interventions on heads go on blocks.{l}.attn.hook_z`,
      );
    }
    const l = hook.layer!;
    if (iv.head !== undefined && (!Number.isInteger(iv.head) || iv.head < 0 || iv.head >= nh)) {
      throw new RangeError(`Intervention on "${iv.hook}": head ${iv.head} is outside [0, ${nh})`);
    }
    const heads = iv.head === undefined ? Array.from({ length: nh }, (_, h) => h) : [iv.head];
    const forEachPos = (fn: (i: number, b: number) => void) => {
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const pos = absPos[b * T + t]!;
          if (pos >= 0 && selectsPosition(iv.positions, b, pos)) fn(((l * B + b) * T + t) * nh, b);
        }
      }
    };
    if (iv.op === "scale") {
      if (!Number.isFinite(iv.value)) {
        throw new RangeError(`Scale for "${iv.hook}" must be finite, got ${iv.value}`);
      }
      forEachPos((i) => {
        for (const h of heads) scale[i + h] = scale[i + h]! * iv.value;
      });
      continue;
    }
    const width = heads.length * D;
    const perRow = iv.vector.length > 0 && typeof (iv.vector as ArrayLike<unknown>)[0] === "object";
    const rowVecs = iv.vector as readonly ArrayLike<number>[];
    if (perRow && rowVecs.length !== B) {
      throw new RangeError(`Add on "${iv.hook}": ${rowVecs.length} row vectors for ${B} rows`);
    }
    const c = iv.coef ?? 1;
    const rows = new Set<number>();
    forEachPos((i, b) => {
      for (const h of heads) coef[i + h] = c;
      rows.add(b);
    });
    for (const b of rows) {
      const v = perRow ? rowVecs[b]! : (iv.vector as ArrayLike<number>);
      if (v.length !== width) {
        throw new RangeError(
          `Add vector for "${iv.hook}"${iv.head === undefined ? " (all heads)" : ` head ${iv.head}`} has ` +
            `length ${v.length}; expected ${width}${
              iv.head === undefined ? ` (num_heads ${nh} × d_head ${D})` : ""
            }`,
        );
      }
      for (const [j, h] of heads.entries()) {
        const key = `${l}/${b}/${h}`;
        if (used.has(key)) {
          throw new RangeError(
            `Two add interventions on "${iv.hook}" touch head ${h} of batch row ${b}; combine them`,
          );
        }
        used.add(key);
        for (let d = 0; d < D; d++) vec[((l * B + b) * nh + h) * D + d] = v[j * D + d]!;
      }
    }
  }
  return {
    z_scale: new ort.Tensor("float32", scale, [L, B, T, nh]),
    z_add: new ort.Tensor("float32", vec, [L, B, nh * D]),
    z_add_coef: new ort.Tensor("float32", coef, [L, B, T, nh]),
  };
}

/** Per-head captures at the capture positions, per row (no padding). */
export interface HeadCaptures {
  /** `z[layer][row][k]`: `blocks.{layer}.attn.hook_z` at the k-th capture position, `[head, d_head]` row-major. */
  readonly z: Float32Array[][][];
  /**
   * `pattern[layer][row]`: `blocks.{layer}.attn.hook_pattern` of that row, `[head, query, key]` row-major,
   * queries = the row's capture positions in order, keys = the row's positions 0..n-1 (n = its tokens so
   * far, cache included); keys after a query get probability 0.
   */
  readonly pattern: Float32Array[][];
  /**
   * `headResult[layer][row][k]`: each head's direct write to the residual, `[head, d_model]` row-major:
   * `(z_head - b_v) · W_O[:, head]ᵀ`. The value bias (a constant: a head's probabilities sum to 1) and
   * o_proj's bias are left out and summed in `attnBias`, as TransformerLens does when it folds value
   * biases into `b_O`.
   */
  readonly headResult: Float32Array[][][];
  /** `attnBias[layer]`: `b_O + W_O · b_v`, `[d_model]`; attn_out = Σ_head headResult + attnBias. */
  readonly attnBias: Float32Array[];
}

/**
 * Split the heads graph's capture outputs into per-row views.
 * @param counts number of requested capture positions per row (≤ C, the padded count).
 * @param maskBytes `[B * S]` attention mask of the call (1 = real key), cache slots first.
 */
export function splitHeadCaptures(
  out: Record<string, { readonly data: unknown }>,
  cfg: ModelConfig,
  counts: readonly number[],
  C: number,
  S: number,
  maskBytes: Uint8Array,
): HeadCaptures {
  const { numLayers: L, numHeads: nh, headDim: D, hiddenSize: H } = cfg;
  const B = counts.length;
  const z = out.z!.data as Float32Array;
  const pat = out.pattern!.data as Float32Array;
  const res = out.head_result!.data as Float32Array;
  const bias = out.attn_bias!.data as Float32Array;
  const perPos = (data: Float32Array, width: number) =>
    Array.from(
      { length: L },
      (_, l) =>
        counts.map((n, b) =>
          Array.from({ length: n }, (_, c) =>
            data.subarray(((l * B + b) * C + c) * width, ((l * B + b) * C + c + 1) * width))
        ),
    );
  const keys = counts.map((_, b) => {
    const idx: number[] = [];
    for (let s = 0; s < S; s++) if (maskBytes[b * S + s] === 1) idx.push(s);
    return idx;
  });
  const pattern = Array.from({ length: L }, (_, l) =>
    counts.map((n, b) => {
      const ks = keys[b]!;
      const Sb = ks.length;
      const outRow = new Float32Array(nh * n * Sb);
      for (let h = 0; h < nh; h++) {
        for (let c = 0; c < n; c++) {
          const src = (((l * B + b) * nh + h) * C + c) * S;
          const dst = (h * n + c) * Sb;
          for (let j = 0; j < Sb; j++) outRow[dst + j] = pat[src + ks[j]!]!;
        }
      }
      return outRow;
    }));
  return {
    z: perPos(z, nh * D),
    pattern,
    headResult: perPos(res, nh * H),
    attnBias: Array.from({ length: L }, (_, l) => bias.subarray(l * H, (l + 1) * H)),
  };
}
