/**
 * The parts of `report.md` (for `report.ts`): summaries per variant, the conditions of the analysis
 * variant with paired comparisons, the lens and scan tables, and corrected vs reference-compatible
 * numbers side by side (with the reference's committed Phase-1 numbers of DeepSeek-R1-Distill-Qwen-1.5B for
 * orientation, labelled as that model's, and never on an organism run); on the organism, what the model is
 * and the protocol validation.
 *
 * @module
 */

import pl from "nodejs-polars";
import type { EventRow } from "./event_row.ts";
import { compareToBaseline, summarizeCondition } from "./metrics.ts";
import type { ProtocolValidationArtifact } from "./artifacts/protocol_validation.ts";
import type {
  ConditionPart,
  LabelledSummary,
  LensReportRow,
  OrganismPart,
  ReferenceComparisonRow,
  ReportParts,
  ScanReportRow,
} from "./report.ts";
import type { RunContext } from "./context.ts";
import { defaultAnalysisVariant, statsOptions } from "./settings.ts";
import { phase2ReportSections } from "./artifacts/phase2.ts";
import type { HeadScanFiles } from "./artifacts/heads.ts";
import { headReportSection } from "./head_report.ts";

/** The reference's committed Phase-1 numbers for baseline_think_newline (docs/protocol.md §18). */
const COMMITTED: Readonly<Record<string, number>> = {
  "BT rate, baseline": 0.7083333333333334,
  "accuracy, baseline": 0.21583333333333332,
  "BT rate, targeted_ablation": 0.028333333333333332,
  "BT rate, random_ablation": 0.5491666666666667,
};

/** Shares of one condition's samples (k / n): strict BT, BT by the other rule, correct by either extractor. */
interface ConditionShares {
  readonly strict: number;
  readonly other: number;
  readonly correct: number;
  readonly correctReference: number;
}

/** {@linkcode ConditionShares} per condition of `rows` (a polars group-by over the flags). */
function conditionShares(rows: readonly EventRow[]): Map<string, ConditionShares> {
  const flags = pl.DataFrame([
    pl.Series("condition", rows.map((r) => r.condition), pl.Utf8),
    pl.Series("strict", rows.map((r) => r.has_backtracking_strict), pl.Bool),
    pl.Series("other", rows.map((r) => r.bt_other_rule), pl.Bool),
    pl.Series("correct", rows.map((r) => r.is_correct === true), pl.Bool),
    pl.Series("correct_reference", rows.map((r) => r.correct_reference === true), pl.Bool),
  ]);
  const counts = flags.groupBy("condition").agg(
    pl.len().alias("n"),
    pl.col("strict").sum(),
    pl.col("other").sum(),
    pl.col("correct").sum(),
    pl.col("correct_reference").sum(),
  );
  return new Map(
    counts.toRecords().map((g) => {
      const n = Number(g.n);
      return [String(g.condition), {
        strict: Number(g.strict) / n,
        other: Number(g.other) / n,
        correct: Number(g.correct) / n,
        correctReference: Number(g.correct_reference) / n,
      }];
    }),
  );
}

/** Inputs read from the run's files by `make-report`. */
export interface ReportInputs {
  readonly lens?: readonly LensReportRow[];
  readonly scan?: readonly ScanReportRow[];
  readonly selected?: { readonly attn: readonly number[]; readonly mlp: readonly number[] };
  /** The head scan's files (its section comes before Phase 2's). */
  readonly heads?: HeadScanFiles;
  readonly figures: readonly { readonly title: string; readonly path: string }[];
  /** The organism's manifest as `meta.json` records it (`model.organism`), when the model is the organism. */
  readonly organism?: Readonly<Record<string, unknown>>;
  /** `analysis/protocol_validation.json`, when the step ran. */
  readonly protocolValidation?: ProtocolValidationArtifact;
}

/** The report's organism part from a recorded manifest (undefined when it lacks the fields). */
export function organismPart(m: Readonly<Record<string, unknown>> | undefined): OrganismPart | undefined {
  if (!m || typeof m.description !== "string" || !Array.isArray(m.planted) || !Array.isArray(m.decoy)) {
    return undefined;
  }
  const refs = (xs: unknown[]) =>
    xs.map((x) => x as { layer: number; component: string; role?: string })
      .map((x) => ({ layer: x.layer, component: x.component, ...(x.role ? { role: x.role } : {}) }));
  return { description: m.description, planted: refs(m.planted), decoy: refs(m.decoy) };
}

/**
 * Build the report parts.
 *
 * @param ctx The config and the run.
 * @param rows All event rows.
 * @param inputs Lens/scan tables and figures.
 */
export function reportParts(
  ctx: Pick<RunContext, "config" | "run">,
  rows: readonly EventRow[],
  inputs: ReportInputs,
): ReportParts {
  const cfg = ctx.config;
  const opts = statsOptions(cfg);
  const variants = cfg.prompting.formatting_variants.map((v) => v.name);
  const base = (v: string) => rows.filter((r) => r.variant === v && r.condition === "baseline");
  const baseline: LabelledSummary[] = variants.filter((v) => base(v).length > 0).map((v) => ({
    label: v,
    summary: summarizeCondition(base(v), opts),
  }));
  const av = defaultAnalysisVariant(cfg);
  const avBase = base(av);
  const conds = [
    ...new Set(rows.filter((r) => r.variant === av && r.condition !== "baseline").map((r) => r.condition)),
  ];
  const others: ConditionPart[] = avBase.length === 0 ? [] : conds.map((c) => {
    const g = rows.filter((r) => r.variant === av && r.condition === c);
    return {
      label: c,
      kind: c === "targeted_ablation" ? "targeted" : c.startsWith("random_ablation") ? "random" : "other",
      summary: summarizeCondition(g, opts),
      comparison: compareToBaseline(avBase, g, opts),
    };
  });
  const primaryIsCorrected = cfg.detection.rule === "corrected";
  const organism = organismPart(inputs.organism);
  // The reference's committed numbers are another model's (R1-Distill-Qwen-1.5B): never beside an organism's.
  const committedOf = (key: string) => (organism ? undefined : COMMITTED[key]);
  const refRows: ReferenceComparisonRow[] = [];
  const shares = conditionShares(rows.filter((r) => r.variant === av));
  const fmt = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(4)) : "–");
  for (const c of ["baseline", ...conds]) {
    const g = shares.get(c);
    if (!g) continue;
    const [primary, other] = [g.strict, g.other];
    const committed = committedOf(`BT rate, ${c}`);
    refRows.push({
      metric: `BT rate, ${c}`,
      corrected: fmt(primaryIsCorrected ? primary : other),
      reference_mode: fmt(primaryIsCorrected ? other : primary),
      ...(committed !== undefined ? { reference_committed: fmt(committed) } : {}),
      note: "detection rule only (same samples)",
    });
  }
  const baseShares = shares.get("baseline"); // present exactly when avBase is not empty
  if (baseShares) {
    const [ours, theirs] = [baseShares.correct, baseShares.correctReference];
    const robust = cfg.detection.answer_extractor === "robust";
    refRows.push({
      metric: "accuracy, baseline (correct / n)",
      corrected: fmt(robust ? ours : theirs),
      reference_mode: fmt(robust ? theirs : ours),
      ...(organism ? {} : { reference_committed: fmt(COMMITTED["accuracy, baseline"]!) }),
      note: "answer extractor only (same samples)",
    });
  }
  return {
    title: `Backtracking as a state transition: run ${ctx.run.id} (${cfg.protocol} protocol${
      organism ? ", model organism" : ""
    })`,
    ...(organism ? { organism } : {}),
    ...(inputs.protocolValidation ? { protocolValidation: inputs.protocolValidation } : {}),
    ...(baseline.length > 0 ? { baseline, formatting: baseline } : {}),
    ...(avBase.length > 0
      ? {
        conditions: {
          variant: av,
          baseline: { label: "baseline", summary: summarizeCondition(avBase, opts) },
          others,
        },
      }
      : {}),
    ...(inputs.lens && inputs.lens.length > 0
      ? {
        lens: {
          rows: inputs.lens,
          metric: "logprob" as const,
          ...(cfg.analysis.onset_type !== "all"
            ? {
              note: `Events restricted to onset type \`${cfg.analysis.onset_type}\` (analysis.onset_type).`,
            }
            : {}),
        },
      }
      : {}),
    ...(inputs.scan && inputs.scan.length > 0
      ? {
        scan: {
          rows: inputs.scan,
          top: 6,
          ...(inputs.selected ? { selected: inputs.selected } : {}),
          criterion: cfg.analysis.selection_criterion +
            (cfg.analysis.onset_type !== "all" ? `, ${cfg.analysis.onset_type} onsets only` : ""),
          metric: "log-prob of the trigger", // the header adds the Δ: "mean Δ log-prob of the trigger"
        },
      }
      : {}),
    referenceComparison: refRows,
    ...extraSections(ctx, inputs.heads),
    figures: inputs.figures,
  };
}

/** The head scan's section (when it ran), then the Phase-2 sections (when Phase 2 ran). */
function extraSections(
  ctx: Pick<RunContext, "run">,
  heads: HeadScanFiles | undefined,
): Pick<ReportParts, "extraSections"> {
  const sections = [...(heads ? [headReportSection(heads)] : []), ...phase2ReportSections(ctx.run.dir)];
  return sections.length > 0 ? { extraSections: sections } : {};
}
