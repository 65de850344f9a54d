/**
 * Artifact family "protocol validation" (written by the step `protocol-validation`, read by the report and
 * the notebooks; only on a model with a known circuit, the organism):
 *
 * - `analysis/protocol_validation.json`: the model's description, planted set and decoy; for the
 *   reference's selection (signed top-k by raw Δlogit) and ours (specificity threshold) the selected
 *   components, precision/recall against the planted set, whether the decoy was taken, and what ablating
 *   the selection during generation did to the backtracking rate and to degeneration (EOS rate, length
 *   at the cap, unknown/unfinished answers, with degeneration flags); the expected outcome, checked;
 * - `analysis/protocol_validation.csv`: one row per protocol with the same numbers.
 *
 * @module
 */

import { toCsv } from "../events.ts";
import type { DegenerationVerdict } from "../degeneration.ts";
import type { ComponentRef, ProtocolSelection, ValidationVerdict } from "../protocol_validation.ts";
import { type Run, writeArtifact } from "../run.ts";
import { readArtifactJsonAs } from "./files.ts";

/** The protocol-validation files (run-relative). */
export const PROTOCOL_VALIDATION_FILES = {
  json: "analysis/protocol_validation.json",
  csv: "analysis/protocol_validation.csv",
} as const;

/** Files written by protocol-validation, in the order written. */
export const PROTOCOL_VALIDATION_OUTPUTS = [
  PROTOCOL_VALIDATION_FILES.json,
  PROTOCOL_VALIDATION_FILES.csv,
] as const;

/** Generation figures of one condition (rates in [0, 1]; NaN when the condition was not generated). */
export interface ConditionFigures {
  /** The generation condition (null when none ablates this selection). */
  readonly condition: string | null;
  readonly n: number;
  readonly bt_rate: number;
  readonly bt_rate_lower: number;
  readonly bt_rate_upper: number;
  /** Paired Δ BT rate vs the baseline (condition − baseline) with its bootstrap CI. */
  readonly delta_bt_rate: number;
  readonly delta_bt_rate_lower: number;
  readonly delta_bt_rate_upper: number;
  readonly accuracy: number;
  readonly eos_rate: number;
  /** Share of samples cut by the token budget. */
  readonly truncation_rate: number;
  /** Share of samples without an extractable answer (unknown or unfinished). */
  readonly unknown_rate: number;
  readonly mean_length: number;
  readonly digit_free_rate: number;
  readonly degeneration: DegenerationVerdict;
}

/** One protocol's selection, scored, and what ablating it did. */
export interface ProtocolOutcome {
  readonly selection: ProtocolSelection;
  readonly ablation: ConditionFigures;
}

/** The expected outcome on the organism, checked. */
export interface ExpectedOutcome extends ValidationVerdict {
  /** The reference's ablation is flagged as degenerate (its "backtracking drop" is a broken model). */
  readonly reference_drop_degenerate: boolean;
  /** Our ablation lowers the backtracking rate without a degeneration flag. */
  readonly ours_drop_clean: boolean;
}

/** `analysis/protocol_validation.json`. */
export interface ProtocolValidationArtifact {
  /** What the model is (the organism's description). */
  readonly model_description: string;
  readonly planted: readonly (ComponentRef & { readonly role?: string })[];
  readonly decoy: readonly (ComponentRef & { readonly role?: string })[];
  /** The reference's k per component type; our threshold (nats) and cap. */
  readonly reference_k: number;
  readonly min_specificity_effect: number;
  readonly max_per_type: number;
  readonly variant: string;
  readonly baseline: ConditionFigures;
  readonly reference: ProtocolOutcome;
  readonly ours: ProtocolOutcome;
  readonly expected: ExpectedOutcome;
}

const label = (c: ComponentRef) => `${c.component} ${c.layer}`;

/** One CSV row per protocol. */
export function protocolValidationRows(a: ProtocolValidationArtifact): Record<string, unknown>[] {
  return (["reference", "ours"] as const).map((p) => {
    const o = a[p];
    const s = o.selection;
    const g = o.ablation;
    return {
      protocol: p,
      selected: s.selected.map(label).join("; "),
      precision: s.precision,
      recall: s.recall,
      decoy_selected: s.decoy_selected,
      condition: g.condition ?? "",
      bt_rate: g.bt_rate,
      delta_bt_rate: g.delta_bt_rate,
      delta_bt_rate_lower: g.delta_bt_rate_lower,
      delta_bt_rate_upper: g.delta_bt_rate_upper,
      accuracy: g.accuracy,
      eos_rate: g.eos_rate,
      truncation_rate: g.truncation_rate,
      unknown_rate: g.unknown_rate,
      mean_length: g.mean_length,
      degeneration_flags: g.degeneration.flags.join("; "),
    };
  });
}

/**
 * Write the JSON and the CSV.
 *
 * @param options `overwrite` (default false).
 * @throws {ArtifactExistsError} when a file exists and `overwrite` is not set.
 */
export async function writeProtocolValidation(
  run: Run,
  a: ProtocolValidationArtifact,
  options: { readonly overwrite?: boolean } = {},
): Promise<void> {
  const overwrite = options.overwrite ?? false;
  await writeArtifact(run, PROTOCOL_VALIDATION_FILES.json, a, { overwrite });
  await writeArtifact(run, PROTOCOL_VALIDATION_FILES.csv, toCsv(protocolValidationRows(a)), { overwrite });
}

/**
 * The protocol validation (`analysis/protocol_validation.json`). NaN figures are stored as `null` by
 * JSON and read back as NaN.
 *
 * @throws {MissingArtifactError} when the file cannot be read (run protocol-validation).
 */
export async function readProtocolValidation(run: Run): Promise<ProtocolValidationArtifact> {
  const a = await readArtifactJsonAs<ProtocolValidationArtifact>(
    run,
    PROTOCOL_VALIDATION_FILES.json,
    "protocol-validation",
  );
  const fix = (g: ConditionFigures): ConditionFigures =>
    Object.fromEntries(
      Object.entries(g).map(([k, v]) => [k, v === null && k !== "condition" ? NaN : v]),
    ) as unknown as ConditionFigures;
  const fixSel = (s: ProtocolSelection): ProtocolSelection => ({
    ...s,
    precision: s.precision ?? NaN,
    recall: s.recall ?? NaN,
  });
  return {
    ...a,
    baseline: fix(a.baseline),
    reference: { selection: fixSel(a.reference.selection), ablation: fix(a.reference.ablation) },
    ours: { selection: fixSel(a.ours.selection), ablation: fix(a.ours.ablation) },
  };
}
