/**
 * Direct logit attribution (DLA): at a chosen position, split a target token's logit, and its
 * log-probability difference against a contrast token, into the direct contributions of the token
 * embedding, every attention head and every MLP, plus the attention bias term. One forward pass per
 * batch of items, instead of one per ablated component.
 *
 * The final residual x (the last block's `hook_resid_post`) is the exact sum of its writers:
 * `x = embed + Σ_l Σ_h result[l][h] + Σ_l mlp_out[l] + Σ_l attn_bias[l]`, where `result[l][h] =
 * (z_h − b_v) · W_O[:, h]ᵀ` and `attn_bias[l] = b_O + W_O · b_v` (value biases are constant per head since
 * its probabilities sum to 1, so they are folded into the bias as TransformerLens's `fold_value_biases`
 * does; q/k biases only shape the patterns and have no direct effect). The final RMSNorm
 * `y = g ⊙ x / s`, `s = sqrt(mean(x²) + ε)`, is linearised by freezing `s` at the actual residual's
 * value, as TransformerLens's `ActivationCache.apply_ln_to_stack` does with the cached
 * `ln_final.hook_scale` (transformer_lens/ActivationCache.py, used by `logit_attrs`). Each component c then
 * contributes `(g ⊙ c / s) · W_U[target]`, and the contributions add up to the model's logit exactly
 * (the LM head has no bias). The log-probability difference `log p(t) − log p(c) = logit(t) − logit(c)`
 * (the log-partition cancels) is split the same way along `W_U[t] − W_U[c]`.
 *
 * Everything is read in float32 from the engine and summed in float64.
 *
 * @example
 * ```ts
 * const rows = await directLogitAttribution(model, [{ tokenIds, predPos, targetId: wait, contrastId: so }]);
 * const top = attributionEntries(rows[0]!.diff!, model.config.numHeads).sort((a, b) => b.value - a.value);
 * ```
 *
 * @module
 */

import type { Captures, HookedModel } from "../engine/hooked_model.ts";
import { checkpointTensor, FINAL_NORM } from "../engine/checkpoint.ts";
import { readTensorF32, readTensorRowsF32 } from "../engine/safetensors.ts";

/** The part of {@link HookedModel} DLA uses: forward passes, the config and the weights' location. */
export type DlaModel = Pick<HookedModel, "forward" | "config" | "checkpoint">;

/** One position to attribute. */
export interface DlaItem {
  readonly tokenIds: readonly number[];
  /** The position whose next-token logits are split. */
  readonly predPos: number;
  /** The token whose logit is split. */
  readonly targetId: number;
  /** Optional contrast token: the log-probability difference target − contrast is split too. */
  readonly contrastId?: number;
  /** The problem the item belongs to (copied to the result). */
  readonly exampleId?: number;
}

/** Direct contributions to one scalar (a logit or a logit difference), in logit units. */
export interface Attribution {
  /** The token embedding (`blocks.0.hook_resid_pre`). */
  readonly embed: number;
  /** `heads[layer * numHeads + head]`: each head's `hook_result` (value bias excluded). */
  readonly heads: Float64Array;
  /** `mlp[layer]`: each block's `hook_mlp_out`. */
  readonly mlp: Float64Array;
  /** Σ over layers of `b_O + W_O · b_v` (the folded attention bias; 0 for a model without biases). */
  readonly bias: number;
  /** `embed + Σ heads + Σ mlp + bias`: equals the attributed scalar up to float32 rounding. */
  readonly total: number;
}

/** DLA of one item. */
export interface DlaRow {
  /** Index of the item in the array given to {@link directLogitAttribution}. */
  readonly item: number;
  readonly exampleId?: number;
  /** The model's logit of the target at predPos (its own output, not the sum). */
  readonly logit: number;
  /** The model's log-probability of the target. */
  readonly logprob: number;
  /** The frozen final-norm scale `sqrt(mean(x²) + ε)` of the actual final residual. */
  readonly scale: number;
  /** Split of the target's logit. */
  readonly target: Attribution;
  /** With a contrast: the model's `log p(target) − log p(contrast)`. */
  readonly logprobDiff?: number;
  /** With a contrast: split of `logit(target) − logit(contrast)` (= logprobDiff). */
  readonly diff?: Attribution;
}

/** Options of {@link directLogitAttribution}. */
export interface DlaOptions {
  /** Items per forward pass (default 8). Items are sorted by length so a batch pads little. */
  readonly batchSize?: number;
  /** Called after each batch with the number of items done. */
  readonly onProgress?: (done: number, total: number) => void;
  /**
   * Called with each batch's captures (row b = item `items[b]`, capture position = its `predPos`), e.g. to
   * read the attention patterns (`captures.heads.pattern`) from the same forward pass.
   */
  readonly onCaptures?: (items: readonly number[], captures: Captures) => void;
}

/**
 * Direct logit attribution of each item's target (and target − contrast) at its `predPos`. Each item
 * runs on `tokenIds.slice(0, predPos + 1)`, batched with left padding, without interventions.
 * @returns one row per item, in the order of `items`.
 * @throws {RangeError} when a predPos is outside its tokens or a token id outside the vocabulary.
 */
export async function directLogitAttribution(
  model: DlaModel,
  items: readonly DlaItem[],
  options: DlaOptions = {},
): Promise<DlaRow[]> {
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`directLogitAttribution: batchSize must be a positive integer, got ${batchSize}`);
  }
  const cfg = model.config;
  const { numLayers: L, numHeads: nh, hiddenSize: H, vocabSize: V } = cfg;
  items.forEach((it, i) => {
    if (!Number.isInteger(it.predPos) || it.predPos < 0 || it.predPos >= it.tokenIds.length) {
      throw new RangeError(
        `directLogitAttribution: item ${i} has predPos ${it.predPos} outside its ${it.tokenIds.length} tokens`,
      );
    }
    for (const [what, id] of [["target", it.targetId], ["contrast", it.contrastId]] as const) {
      if (id !== undefined && (!Number.isInteger(id) || id < 0 || id >= V)) {
        throw new RangeError(`directLogitAttribution: item ${i} has ${what} id ${id} outside [0, ${V})`);
      }
    }
  });

  // g ⊙ W_U[id] for every token id needed (a few rows of the unembedding, not the whole matrix).
  const ids = [
    ...new Set(
      items.flatMap((it) => it.contrastId === undefined ? [it.targetId] : [it.targetId, it.contrastId]),
    ),
  ];
  const g = await readTensorF32(checkpointTensor(model.checkpoint, FINAL_NORM));
  const rowsU = await readTensorRowsF32(model.checkpoint.lmHead, ids);
  const unembed = new Map<number, Float64Array>();
  ids.forEach((id, k) =>
    unembed.set(id, Float64Array.from(rowsU.subarray(k * H, (k + 1) * H), (w, i) => w * g[i]!))
  );

  const order = items.map((_, i) => i).sort((a, b) => items[a]!.predPos - items[b]!.predPos || a - b);
  const out: DlaRow[] = new Array(items.length);
  for (let start = 0; start < order.length; start += batchSize) {
    const batch = order.slice(start, start + batchSize);
    const res = await model.forward(batch.map((i) => items[i]!.tokenIds.slice(0, items[i]!.predPos + 1)), {
      logits: "none",
      capture: {
        positions: batch.map((i) => [items[i]!.predPos]),
        lensTokenIds: batch.map((i) => [[items[i]!.targetId, items[i]!.contrastId ?? items[i]!.targetId]]),
        heads: true,
      },
    });
    const cap = res.captures;
    if (!cap?.heads || !cap.lens) {
      throw new Error("directLogitAttribution: the engine returned no head captures");
    }
    const heads = cap.heads;
    options.onCaptures?.(batch, cap);
    batch.forEach((i, b) => {
      const it = items[i]!;
      const x = cap.resid[L]![b]![0]!;
      let ss = 0;
      for (let j = 0; j < H; j++) ss += x[j]! * x[j]!;
      const scale = Math.sqrt(ss / H + cfg.rmsNormEps);
      const split = (dir: Float64Array): Attribution => {
        const dot = (v: ArrayLike<number>, offset = 0) => {
          let s = 0;
          for (let j = 0; j < H; j++) s += v[offset + j]! * dir[j]!;
          return s / scale;
        };
        const embed = dot(cap.resid[0]![b]![0]!);
        const headsOut = new Float64Array(L * nh);
        const mlp = new Float64Array(L);
        let bias = 0;
        for (let l = 0; l < L; l++) {
          const r = heads.headResult[l]![b]![0]!;
          for (let h = 0; h < nh; h++) headsOut[l * nh + h] = dot(r, h * H);
          mlp[l] = dot(cap.mlpOut[l]![b]![0]!);
          bias += dot(heads.attnBias[l]!);
        }
        let total = embed + bias;
        for (const v of headsOut) total += v;
        for (const v of mlp) total += v;
        return { embed, heads: headsOut, mlp, bias, total };
      };
      const lens = cap.lens![L]![b]![0]!;
      const target = split(unembed.get(it.targetId)!);
      let diffPart: Pick<DlaRow, "logprobDiff" | "diff"> = {};
      if (it.contrastId !== undefined) {
        const t = unembed.get(it.targetId)!, c = unembed.get(it.contrastId)!;
        diffPart = {
          logprobDiff: lens[0]!.logprob - lens[1]!.logprob,
          diff: split(t.map((v, j) => v - c[j]!)),
        };
      }
      out[i] = {
        item: i,
        ...(it.exampleId !== undefined ? { exampleId: it.exampleId } : {}),
        logit: lens[0]!.logit,
        logprob: lens[0]!.logprob,
        scale,
        target,
        ...diffPart,
      };
    });
    options.onProgress?.(Math.min(start + batchSize, order.length), order.length);
  }
  return out;
}

/** One named component of an {@link Attribution}. */
export interface AttributionEntry {
  /** TransformerLens labels: `embed`, `L{l}H{h}`, `{l}_mlp_out`, `bias`. */
  readonly name: string;
  /** `embed`, `head`, `mlp` or `bias`. */
  readonly kind: "embed" | "head" | "mlp" | "bias";
  readonly layer?: number;
  readonly head?: number;
  readonly value: number;
}

/**
 * The components of an attribution as a flat list in forward order (embed, then per layer its heads and
 * its MLP, then the bias), e.g. to rank them.
 */
export function attributionEntries(a: Attribution, numHeads: number): AttributionEntry[] {
  const entries: AttributionEntry[] = [{ name: "embed", kind: "embed", value: a.embed }];
  for (let l = 0; l < a.mlp.length; l++) {
    for (let h = 0; h < numHeads; h++) {
      entries.push({
        name: `L${l}H${h}`,
        kind: "head",
        layer: l,
        head: h,
        value: a.heads[l * numHeads + h]!,
      });
    }
    entries.push({ name: `${l}_mlp_out`, kind: "mlp", layer: l, value: a.mlp[l]! });
  }
  entries.push({ name: "bias", kind: "bias", value: a.bias });
  return entries;
}
