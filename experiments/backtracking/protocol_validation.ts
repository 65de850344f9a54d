/**
 * Protocol validation on a model with a known circuit (the model organism): which components each
 * selection protocol picks from the same ablation scan, scored against the planted set and the decoy.
 *
 * - **Reference** (docs/protocol.md §13): per component type, the `k` rows with the most negative mean raw Δlogit of
 *   the trigger (signed top-k). Always `k` per type, whatever the data say.
 * - **Ours** (corrected, docs/protocol.md §13): per component type, the rows whose specificity CI lies entirely below
 *   `−minEffect` ({@link DEFAULT_MIN_EFFECT} = 0.1 nats), most negative specificity first, at most
 *   `maxPerType`. How many are kept is decided by the data, not by a number that equals the planted
 *   count. The threshold matters: effects of single positions are nearly deterministic, so bootstrap
 *   CIs are narrow and "the CI excludes zero" alone admits components whose effect is a few hundredths
 *   of a nat (on the organism, every noise component); 0.1 nats is a 10% change of the trigger's
 *   probability relative to the control token's.
 *
 * Specificity (see `experiments/backtracking/selection.ts`) is the mean over events of Δlog-prob of the trigger at the event
 * minus Δlog-prob of the sampled token at its matched control: a component every token needs (the
 * decoy) lowers both alike and scores ≈ 0, however large its raw Δlogit.
 *
 * Pure: no I/O; the pipeline step and the report call it with the scan's rows and `organism.json`.
 *
 * @example
 * ```ts
 * const v = validateProtocols(scanRows, { planted: manifest.planted, decoy: manifest.decoy }, { referenceK: 3 });
 * v.reference.decoy_selected; // true on the organism
 * v.ours.recall;              // 1
 * ```
 *
 * @module
 */

/** A component: the output of attention or MLP of one block. */
export interface ComponentRef {
  readonly layer: number;
  readonly component: "attn" | "mlp";
}

/** One scanned component (a subset of `ScanRow` from `experiments/backtracking/selection.ts`). */
export interface ScannedComponent extends ComponentRef {
  /** Mean raw Δlogit of the trigger at the events when the component is ablated (the reference's statistic). */
  readonly delta_logit_mean: number;
  /** Mean specificity and its CI (Δlog-prob trigger at events − Δlog-prob sampled token at controls). */
  readonly specificity_mean: number;
  readonly specificity_lower: number;
  readonly specificity_upper: number;
}

/** The ground truth: planted components and decoys (e.g. `organism.json`'s `planted` and `decoy`). */
export interface GroundTruth {
  readonly planted: readonly ComponentRef[];
  readonly decoy: readonly ComponentRef[];
}

/** Our default minimum specificity effect (nats): the CI must lie entirely below −0.1. */
export const DEFAULT_MIN_EFFECT = 0.1;

/** Options of {@link validateProtocols}. */
export interface ValidateProtocolsOptions {
  /** The reference's k per component type (the reference used 6). */
  readonly referenceK: number;
  /** Ours: keep rows with `specificity_upper < −minEffect` (nats). Default {@link DEFAULT_MIN_EFFECT}. */
  readonly minEffect?: number;
  /** Ours: at most this many per component type. Default unlimited. */
  readonly maxPerType?: number;
}

/** One protocol's selection, scored. */
export interface ProtocolSelection {
  readonly protocol: "reference" | "ours";
  /** How the set was chosen, in words (for reports). */
  readonly rule: string;
  /** Selected components, per type in selection order (attention first). */
  readonly selected: readonly ComponentRef[];
  readonly true_positives: readonly ComponentRef[];
  readonly false_positives: readonly ComponentRef[];
  readonly missed: readonly ComponentRef[];
  /** |selected ∩ planted| / |selected| (NaN when nothing is selected). */
  readonly precision: number;
  /** |selected ∩ planted| / |planted| (NaN when nothing is planted). */
  readonly recall: number;
  readonly decoy_selected: boolean;
  readonly decoys_selected: readonly ComponentRef[];
}

/** Both protocols on the same scan. */
export interface ProtocolValidation {
  readonly reference: ProtocolSelection;
  readonly ours: ProtocolSelection;
  readonly planted: readonly ComponentRef[];
  readonly decoy: readonly ComponentRef[];
}

/** `"attn 2"`, `"mlp 4"`. */
export function componentLabel(c: ComponentRef): string {
  return `${c.component} ${c.layer}`;
}

const key = (c: ComponentRef) => `${c.component}|${c.layer}`;

function uniqueRefs(list: readonly ComponentRef[], what: string): ComponentRef[] {
  const seen = new Set<string>();
  const out: ComponentRef[] = [];
  for (const c of list) {
    if (!Number.isInteger(c.layer) || c.layer < 0 || (c.component !== "attn" && c.component !== "mlp")) {
      throw new RangeError(`validateProtocols: ${what} entry ${JSON.stringify(c)} is not {layer, component}`);
    }
    if (seen.has(key(c))) continue;
    seen.add(key(c));
    out.push({ layer: c.layer, component: c.component });
  }
  return out;
}

/**
 * The reference's selection: per type, the `k` rows with the most negative `delta_logit_mean` (ties in
 * row order; NaN rows last), as `selectComponents(rows, {criterion: "signed_mean", topk: k})`.
 */
export function referenceSelection(rows: readonly ScannedComponent[], k: number): ComponentRef[] {
  if (!Number.isInteger(k) || k < 0) {
    throw new RangeError(`referenceSelection: k must be an integer >= 0, got ${k}`);
  }
  const pick = (type: "attn" | "mlp") =>
    rows.map((r, i) => ({ r, i }))
      .filter(({ r }) => r.component === type)
      .sort((a, b) => nanLast(a.r.delta_logit_mean, b.r.delta_logit_mean) || a.i - b.i)
      .slice(0, k)
      .map(({ r }) => ({ layer: r.layer, component: r.component }));
  return [...pick("attn"), ...pick("mlp")];
}

/**
 * Our selection: per type, rows with `specificity_upper < −minEffect` (default
 * {@link DEFAULT_MIN_EFFECT}), most negative
 * `specificity_mean` first (ties by layer), at most `maxPerType`. With `minEffect` 0 and `maxPerType` k
 * this is `selectComponents(rows, {criterion: "specificity", topk: k})`.
 */
export function specificitySelection(
  rows: readonly ScannedComponent[],
  options: { readonly minEffect?: number; readonly maxPerType?: number } = {},
): ComponentRef[] {
  const minEffect = options.minEffect ?? DEFAULT_MIN_EFFECT;
  const max = options.maxPerType ?? Infinity;
  if (!(minEffect >= 0)) {
    throw new RangeError(`specificitySelection: minEffect must be >= 0, got ${minEffect}`);
  }
  if (!(max >= 0)) throw new RangeError(`specificitySelection: maxPerType must be >= 0, got ${max}`);
  const pick = (type: "attn" | "mlp") =>
    rows.filter((r) => r.component === type && r.specificity_upper < -minEffect)
      .sort((a, b) => a.specificity_mean - b.specificity_mean || a.layer - b.layer)
      .slice(0, max)
      .map((r) => ({ layer: r.layer, component: r.component }));
  return [...pick("attn"), ...pick("mlp")];
}

function nanLast(a: number, b: number): number {
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
  if (Number.isNaN(b)) return -1;
  return a - b;
}

/**
 * Score a selection against the ground truth.
 * @throws {RangeError} for a malformed component.
 */
export function scoreSelection(
  protocol: "reference" | "ours",
  rule: string,
  selected: readonly ComponentRef[],
  truth: GroundTruth,
): ProtocolSelection {
  const sel = uniqueRefs(selected, "selected");
  const planted = uniqueRefs(truth.planted, "planted");
  const decoy = uniqueRefs(truth.decoy, "decoy");
  const plantedKeys = new Set(planted.map(key));
  const decoyKeys = new Set(decoy.map(key));
  const selKeys = new Set(sel.map(key));
  const tp = sel.filter((c) => plantedKeys.has(key(c)));
  const decoys = sel.filter((c) => decoyKeys.has(key(c)));
  return {
    protocol,
    rule,
    selected: sel,
    true_positives: tp,
    false_positives: sel.filter((c) => !plantedKeys.has(key(c))),
    missed: planted.filter((c) => !selKeys.has(key(c))),
    precision: sel.length ? tp.length / sel.length : NaN,
    recall: planted.length ? tp.length / planted.length : NaN,
    decoy_selected: decoys.length > 0,
    decoys_selected: decoys,
  };
}

/**
 * Both protocols' selections from one scan, scored against the planted set and the decoy.
 *
 * @param rows one row per scanned component (`ScanRow`s from `summarizeScan` fit).
 * @param truth planted components and decoys (from `organism.json`: `planted`, `decoy`; extra fields
 *   are ignored, duplicates such as two heads of one layer count once).
 * @param options the reference's k; our threshold and cap.
 * @throws {RangeError} for a bad k, threshold, cap or component.
 */
export function validateProtocols(
  rows: readonly ScannedComponent[],
  truth: GroundTruth,
  options: ValidateProtocolsOptions,
): ProtocolValidation {
  const k = options.referenceK;
  const minEffect = options.minEffect ?? DEFAULT_MIN_EFFECT;
  const max = options.maxPerType ?? Infinity;
  const ref = referenceSelection(rows, k);
  const ours = specificitySelection(rows, { minEffect, maxPerType: max });
  const capText = Number.isFinite(max) ? `, at most ${max} per type` : "";
  return {
    reference: scoreSelection(
      "reference",
      `per component type, the ${k} most negative mean raw Δlogit of the trigger (signed top-k)`,
      ref,
      truth,
    ),
    ours: scoreSelection(
      "ours",
      `per component type, every component whose specificity CI lies below ${
        minEffect > 0 ? `−${minEffect} nats` : "zero"
      }${capText}, most specific first`,
      ours,
      truth,
    ),
    planted: uniqueRefs(truth.planted, "planted"),
    decoy: uniqueRefs(truth.decoy, "decoy"),
  };
}

/** The outcome the organism is built for, checked. */
export interface ValidationVerdict {
  /** Ours recovers at least `minRecall` of the planted set and no decoy. */
  readonly ours_recovers_planted: boolean;
  /** The reference selects a decoy. */
  readonly reference_selects_decoy: boolean;
  /** Both hold. */
  readonly passed: boolean;
  /** One line per failed expectation (empty when passed). */
  readonly failures: readonly string[];
}

/**
 * Check the expected outcome: ours recalls ≥ `minRecall` (default 2/3) of the planted components and
 * selects no decoy; the reference selects a decoy.
 */
export function validationVerdict(v: ProtocolValidation, minRecall = 2 / 3): ValidationVerdict {
  const failures: string[] = [];
  const names = (xs: readonly ComponentRef[]) => xs.map(componentLabel).join(", ") || "none";
  const oursOk = v.ours.recall >= minRecall - 1e-12 && !v.ours.decoy_selected;
  if (!(v.ours.recall >= minRecall - 1e-12)) {
    failures.push(
      `ours recalls ${v.ours.true_positives.length}/${v.planted.length} planted components ` +
        `(need >= ${(minRecall * 100).toFixed(0)}%); missed: ${names(v.ours.missed)}`,
    );
  }
  if (v.ours.decoy_selected) failures.push(`ours selects the decoy: ${names(v.ours.decoys_selected)}`);
  if (!v.reference.decoy_selected) {
    failures.push(
      `the reference does not select the decoy (${names(v.decoy)}); it selected ${
        names(v.reference.selected)
      }`,
    );
  }
  return {
    ours_recovers_planted: oursOk,
    reference_selects_decoy: v.reference.decoy_selected,
    passed: failures.length === 0,
    failures,
  };
}
