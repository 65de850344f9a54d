/**
 * Named component subsets of the Phase-2 sweeps, and the interventions and setting names built from
 * them.
 *
 * Subsets come from `phase2.subset_sweep.subsets` when the config lists any (the reference's five in
 * its Phase-2 YAML); otherwise they are derived from the run's ablation-scan selection
 * (`analysis/selected_layers.json`) and its random draws (`analysis/random_ablation_specs.json`):
 * `selected_mlp`, `selected_attn`, `selected_all`, and `random_matched` (the first random draw, matched
 * per component type). On the model organism these are planted-MLP-only, planted-attention-only, both,
 * and a random matched pair.
 *
 * @example
 * ```ts
 * const subsets = deriveSubsets({ attn: [2], mlp: [3] }, [{ attn: [0], mlp: [1] }]);
 * subsetInterventions(subsets[0]!, 0.5); // [{ hook: "blocks.3.hook_mlp_out", op: "scale", value: 0.5 }]
 * ```
 *
 * @module
 */

import type { ComponentHook, RowEdit } from "../../../lib/interp/positions.ts";

/** One component of a subset. */
export interface SubsetComponent {
  readonly component: "attn" | "mlp";
  readonly layer: number;
}

/** A named subset of components. */
export interface ComponentSubset {
  readonly name: string;
  readonly components: readonly SubsetComponent[];
  /** Where it came from: the config, the scan selection, or a random draw. */
  readonly origin: "config" | "selected" | "random";
}

/** Layer lists per component type (the shape of `selected_layers.json` and of a random draw). */
export interface LayerLists {
  readonly attn: readonly number[];
  readonly mlp: readonly number[];
}

/** The hook of a component. */
export function componentHook(c: SubsetComponent): ComponentHook {
  return c.component === "attn" ? `blocks.${c.layer}.hook_attn_out` : `blocks.${c.layer}.hook_mlp_out`;
}

/**
 * Subsets from the config's `phase2.subset_sweep.subsets` (YAML order).
 *
 * @param subsets name → list of `[component, layer]`.
 * @param numLayers The model's layer count (every layer must be below it).
 * @throws {RangeError} naming the subset and layer when a layer does not exist in the model.
 */
export function configSubsets(
  subsets: Readonly<Record<string, readonly (readonly ["attn" | "mlp", number])[]>>,
  numLayers: number,
): ComponentSubset[] {
  return Object.entries(subsets).map(([name, list]) => {
    for (const [c, l] of list) {
      if (l >= numLayers) {
        throw new RangeError(
          `phase2.subset_sweep.subsets.${name}: ${c} layer ${l} does not exist (the model has layers 0..${
            numLayers - 1
          }); ` + `remove the section to derive subsets from the ablation scan`,
        );
      }
    }
    return { name, components: list.map(([component, layer]) => ({ component, layer })), origin: "config" };
  });
}

const fromLists = (l: LayerLists): SubsetComponent[] => [
  ...l.attn.map((layer) => ({ component: "attn" as const, layer })),
  ...l.mlp.map((layer) => ({ component: "mlp" as const, layer })),
];

/**
 * Subsets derived from the scan selection: `selected_mlp`, `selected_attn` (each only when non-empty),
 * `selected_all`, and `random_matched` (draw 0; `random_matched_<k>` for further draws when
 * `draws > 1`).
 *
 * @param selected The selected layers.
 * @param randomDraws The random draws (matched per component type under the corrected protocol).
 * @param draws How many random draws to include (default 1).
 * @throws {RangeError} when nothing was selected.
 */
export function deriveSubsets(
  selected: LayerLists,
  randomDraws: readonly LayerLists[],
  draws = 1,
): ComponentSubset[] {
  const out: ComponentSubset[] = [];
  if (selected.mlp.length > 0) {
    out.push({
      name: "selected_mlp",
      components: fromLists({ attn: [], mlp: selected.mlp }),
      origin: "selected",
    });
  }
  if (selected.attn.length > 0) {
    out.push({
      name: "selected_attn",
      components: fromLists({ attn: selected.attn, mlp: [] }),
      origin: "selected",
    });
  }
  if (out.length === 0) throw new RangeError("deriveSubsets: the scan selected no component");
  out.push({ name: "selected_all", components: fromLists(selected), origin: "selected" });
  randomDraws.slice(0, draws).forEach((d, k) => {
    out.push({
      name: k === 0 ? "random_matched" : `random_matched_${k}`,
      components: fromLists(d),
      origin: "random",
    });
  });
  return out;
}

/** Scale interventions of a subset (attention then MLP, as listed), for generation. */
export function subsetInterventions(
  subset: ComponentSubset,
  scale: number,
): { hook: ComponentHook; op: "scale"; value: number }[] {
  if (!Number.isFinite(scale)) {
    throw new RangeError(`subset "${subset.name}": scale must be finite, got ${scale}`);
  }
  return subset.components.map((c) => ({ hook: componentHook(c), op: "scale" as const, value: scale }));
}

/** The same as row edits for {@link evalAtPositions} (one position). */
export function subsetEdits(subset: ComponentSubset, scale: number): RowEdit[] {
  return subsetInterventions(subset, scale);
}

/** `"attn 2, mlp 3"`. */
export function describeSubset(subset: ComponentSubset): string {
  return subset.components.map((c) => `${c.component} ${c.layer}`).join(", ");
}

/** A number as it appears in a setting name: `0.25` → `0.25`, `-1` → `m1`, `2` → `2`. */
export function numberTag(x: number): string {
  const s = String(Number(x.toFixed(4)));
  return s.startsWith("-") ? `m${s.slice(1)}` : s;
}

/** Condition name of an ablation setting: `phase2_<subset>_s<scale>`. */
export function ablationCondition(subset: string, scale: number): string {
  return `phase2_${subset}_s${numberTag(scale)}`;
}

/** Condition name of a steering setting: `phase2_steer_l<layer>_c<coef>`. */
export function steeringCondition(layer: number, coef: number, label = "meandiff"): string {
  return `phase2_steer_${label}_l${layer}_c${numberTag(coef)}`;
}
