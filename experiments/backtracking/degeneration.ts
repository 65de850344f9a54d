/**
 * Degeneration flags: whether a condition's text broke down, so that a drop in backtracking under an
 * intervention is never read as a clean result when the model merely stopped writing sensible text
 * (docs/protocol.md §15). Three signs, each against the condition's baseline (same variant, same
 * problems and samples):
 *
 * - `eos_collapse`: the EOS rate falls by at least `eosDrop` (absolute, default 0.25) or to at most
 *   `eosRatio` (default 0.5) of a baseline EOS rate of at least 0.1: samples stop ending;
 * - `length_at_cap`: at least `capRate` (default 0.5) of the samples hit the token budget, or the
 *   truncated share rises by at least `capRise` (default 0.25): text runs until it is cut;
 * - `unknown_jump`: the share of samples without an extractable answer (unknown or unfinished) rises
 *   by at least `unknownRise` (default 0.2).
 *
 * Without a baseline (the baseline itself), only the absolute `length_at_cap` rule applies.
 *
 * Pure: the compare-conditions tables, the report, the protocol validation and the notebooks call it.
 *
 * @example
 * ```ts
 * const f = degenerationFlags(
 *   { eos_rate: 0, truncation_rate: 1, unknown_rate: 1 },
 *   { eos_rate: 0.9, truncation_rate: 0.1, unknown_rate: 0.05 },
 * );
 * f.flags;       // ["eos_collapse", "length_at_cap", "unknown_jump"]
 * flagText(f);   // "DEGENERATE: EOS 90% → 0%; at length cap 100%; no answer 5% → 100%"
 * ```
 *
 * @module
 */

/** The figures the flags read (rates in [0, 1]; `ConditionSummary` fields map onto them). */
export interface DegenerationFigures {
  /** Share of samples that ended with EOS. */
  readonly eos_rate: number;
  /** Share of samples cut by the token budget (finish_reason "length"). */
  readonly truncation_rate: number;
  /** Share of samples without an extractable answer (unknown or unfinished). */
  readonly unknown_rate: number;
}

/** One sign of degeneration. */
export type DegenerationFlag = "eos_collapse" | "length_at_cap" | "unknown_jump";

/** Thresholds of {@linkcode degenerationFlags} (see the module doc for their meaning). */
export interface DegenerationThresholds {
  readonly eosDrop: number;
  readonly eosRatio: number;
  readonly capRate: number;
  readonly capRise: number;
  readonly unknownRise: number;
}

/** The default thresholds. */
export const DEFAULT_DEGENERATION_THRESHOLDS: DegenerationThresholds = Object.freeze({
  eosDrop: 0.25,
  eosRatio: 0.5,
  capRate: 0.5,
  capRise: 0.25,
  unknownRise: 0.2,
});

/** The flags of one condition, with a reason per flag. */
export interface DegenerationVerdict {
  readonly flags: readonly DegenerationFlag[];
  /** One phrase per flag, with the numbers (e.g. "EOS 90% → 0%"). */
  readonly reasons: readonly string[];
  /** `flags.length > 0`. */
  readonly degenerate: boolean;
}

const pct = (v: number) => `${(v * 100).toFixed(0)}%`;

function check(name: string, v: number): void {
  if (!(v >= 0 && v <= 1)) {
    throw new RangeError(`degenerationFlags: ${name} must be a rate in [0, 1], got ${v}`);
  }
}

/**
 * Flag a condition whose text degenerated, relative to its baseline.
 *
 * @param cond The condition's figures.
 * @param baseline The baseline's figures (omit for the baseline itself).
 * @param thresholds Override some thresholds.
 * @throws {RangeError} when a rate is not in [0, 1] (NaN included).
 */
export function degenerationFlags(
  cond: DegenerationFigures,
  baseline?: DegenerationFigures,
  thresholds: Partial<DegenerationThresholds> = {},
): DegenerationVerdict {
  const t = { ...DEFAULT_DEGENERATION_THRESHOLDS, ...thresholds };
  for (const [k, v] of Object.entries(cond)) check(`condition ${k}`, v);
  for (const [k, v] of Object.entries(baseline ?? {})) check(`baseline ${k}`, v);
  const flags: DegenerationFlag[] = [];
  const reasons: string[] = [];
  if (baseline) {
    const drop = baseline.eos_rate - cond.eos_rate;
    const ratioHit = baseline.eos_rate >= 0.1 && cond.eos_rate <= t.eosRatio * baseline.eos_rate;
    if (drop >= t.eosDrop - 1e-12 || ratioHit) {
      flags.push("eos_collapse");
      reasons.push(`EOS ${pct(baseline.eos_rate)} → ${pct(cond.eos_rate)}`);
    }
  }
  const capRise = baseline ? cond.truncation_rate - baseline.truncation_rate : 0;
  if (cond.truncation_rate >= t.capRate - 1e-12 || (baseline && capRise >= t.capRise - 1e-12)) {
    flags.push("length_at_cap");
    reasons.push(`at length cap ${pct(cond.truncation_rate)}`);
  }
  if (baseline && cond.unknown_rate - baseline.unknown_rate >= t.unknownRise - 1e-12) {
    flags.push("unknown_jump");
    reasons.push(`no answer ${pct(baseline.unknown_rate)} → ${pct(cond.unknown_rate)}`);
  }
  return { flags, reasons, degenerate: flags.length > 0 };
}

/** `"DEGENERATE: EOS 90% → 0%; at length cap 100%"`, or `""` when nothing is flagged. */
export function flagText(v: DegenerationVerdict): string {
  return v.degenerate ? `DEGENERATE: ${v.reasons.join("; ")}` : "";
}

/**
 * The figures of a `ConditionSummary`-shaped object (`eos_rate.value`, `truncation_rate.value`,
 * `unknown_rate`, and `unfinished_rate.value` where the summary has it: samples without an answer are the
 * unknown plus the unfinished ones, which the corrected scoring counts apart).
 */
export function figuresOf(s: {
  readonly eos_rate: { readonly value: number };
  readonly truncation_rate: { readonly value: number };
  readonly unknown_rate: number;
  readonly unfinished_rate?: { readonly value: number };
}): DegenerationFigures {
  return {
    eos_rate: s.eos_rate.value,
    truncation_rate: s.truncation_rate.value,
    unknown_rate: s.unknown_rate + (s.unfinished_rate?.value ?? 0),
  };
}
