/**
 * Hook points and interventions, named as in TransformerLens.
 *
 * Interventions are plain data: a run's interventions can be logged, hashed and replayed. The engine
 * turns them into graph inputs, so one compiled graph serves every condition and nothing lingers on the
 * model between calls.
 *
 * @module
 */

/** A hook point name, e.g. `blocks.3.hook_mlp_out`. */
export type HookName =
  | `blocks.${number}.hook_resid_pre`
  | `blocks.${number}.hook_attn_out`
  | `blocks.${number}.hook_mlp_out`
  | `blocks.${number}.hook_resid_post`
  | `blocks.${number}.attn.hook_z`
  | `blocks.${number}.attn.hook_pattern`
  | `blocks.${number}.attn.hook_result`
  | "ln_final.hook_normalized";

/** Kinds of per-block hook points. */
export const BLOCK_HOOK_KINDS = [
  "hook_resid_pre",
  "hook_attn_out",
  "hook_mlp_out",
  "hook_resid_post",
] as const;
export type BlockHookKind = typeof BLOCK_HOOK_KINDS[number];

/**
 * Kinds of per-head hook points (TransformerLens names, without the `blocks.{l}.` prefix):
 * - `attn.hook_z`: each head's attention output before `o_proj`, `[batch, pos, head, d_head]`
 *   (= softmax pattern · values, including the value bias); interventions `scale` / `add` per head.
 * - `attn.hook_pattern`: attention probabilities `[batch, head, query_pos, key_pos]` (capture only).
 * - `attn.hook_result`: each head's write to the residual stream, `[batch, pos, head, d_model]`
 *   (capture only; see the engine's `Captures.headResult` for the bias convention).
 */
export const HEAD_HOOK_KINDS = ["attn.hook_z", "attn.hook_pattern", "attn.hook_result"] as const;
export type HeadHookKind = typeof HEAD_HOOK_KINDS[number];

/** A parsed hook name. */
export type ParsedHook =
  | { readonly kind: BlockHookKind | HeadHookKind; readonly layer: number }
  | { readonly kind: "ln_final.hook_normalized"; readonly layer?: undefined };

/**
 * Which positions an intervention touches. Positions are absolute token indices within a row's own
 * (unpadded) sequence, the same numbers as the row's position ids, so they stay valid across a prefill
 * and the cached decode steps that follow it.
 *
 * - `"all"`: every position (default).
 * - `number[][]`: per batch row, the positions to touch (an empty list touches none of that row).
 * - `{ from: number[] }`: per batch row, every position `>= from[row]` (e.g. generated tokens only).
 */
export type Positions = "all" | readonly (readonly number[])[] | { readonly from: readonly number[] };

/**
 * Multiply a component's output (attention or MLP, before the residual add) by `value`; 0 = zero-ablation.
 * On `blocks.{l}.attn.hook_z`, `head` picks one head (default: every head of the layer).
 */
export interface ScaleIntervention {
  readonly hook: HookName;
  readonly op: "scale";
  readonly value: number;
  readonly positions?: Positions;
  /** Only on `attn.hook_z`: the head to scale, 0 ≤ head < num_heads. */
  readonly head?: number;
}

/**
 * Add `coef * vector` at `blocks.{l}.hook_resid_pre` (steering) or to a block's attention / MLP
 * output (`hook_attn_out`, `hook_mlp_out`; after any scale, so scale 0 + add = activation patching).
 * `vector` is one vector for every row, or one per batch row.
 *
 * On `blocks.{l}.attn.hook_z` (after any scale on it): with `head`, `vector` has `d_head` entries and is
 * added to that head's output; without, it has `num_heads * d_head` entries (`[head, d_head]`
 * row-major) and is added to every head.
 */
export interface AddIntervention {
  readonly hook: HookName;
  readonly op: "add";
  readonly vector: ArrayLike<number> | readonly ArrayLike<number>[];
  readonly coef?: number;
  readonly positions?: Positions;
  /** Only on `attn.hook_z`: the head to add to, 0 ≤ head < num_heads. */
  readonly head?: number;
}

export type Intervention = ScaleIntervention | AddIntervention;

const HOOK_PATTERN =
  /^blocks\.(\d+)\.(hook_resid_pre|hook_attn_out|hook_mlp_out|hook_resid_post|attn\.hook_z|attn\.hook_pattern|attn\.hook_result)$/;

/** All hook names of a model with `numLayers` blocks, in forward order. */
export function hookNames(numLayers: number): HookName[] {
  const names: HookName[] = [];
  for (let l = 0; l < numLayers; l++) {
    for (const kind of BLOCK_HOOK_KINDS) names.push(`blocks.${l}.${kind}`);
    for (const kind of HEAD_HOOK_KINDS) names.push(`blocks.${l}.${kind}`);
  }
  names.push("ln_final.hook_normalized");
  return names;
}

/**
 * Parse and validate a hook name against a model with `numLayers` blocks.
 * @throws {RangeError} naming the hook and the nearest valid names when it is unknown.
 */
export function parseHookName(name: string, numLayers: number): ParsedHook {
  if (name === "ln_final.hook_normalized") return { kind: name };
  const m = HOOK_PATTERN.exec(name);
  if (m && Number(m[1]) < numLayers) {
    return { kind: m[2] as BlockHookKind | HeadHookKind, layer: Number(m[1]) };
  }
  const near = nearestNames(name, hookNames(numLayers), 3);
  throw new RangeError(
    `Unknown hook "${name}" for a model with ${numLayers} layers; did you mean ${
      near.map((n) => `"${n}"`).join(", ")
    }?`,
  );
}

function nearestNames(name: string, candidates: readonly string[], k: number): string[] {
  return candidates
    .map((c) => ({ c, d: editDistance(name, c) }))
    .sort((a, b) => a.d - b.d || a.c.localeCompare(b.c))
    .slice(0, k)
    .map((x) => x.c);
}

/** Levenshtein distance (small strings only). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * Whether `positions` selects absolute position `pos` of batch row `row`.
 * @throws {RangeError} when a per-row list does not cover `row`.
 */
export function selectsPosition(positions: Positions | undefined, row: number, pos: number): boolean {
  if (positions === undefined || positions === "all") return true;
  if ("from" in positions) {
    const from = positions.from[row];
    if (from === undefined) throw new RangeError(`positions.from has no entry for batch row ${row}`);
    return pos >= from;
  }
  const list = (positions as readonly (readonly number[])[])[row];
  if (list === undefined) throw new RangeError(`positions has no list for batch row ${row}`);
  return list.includes(pos);
}
