/**
 * The run report: `report.md` in the run folder, built from typed, already-computed parts. Every number
 * in the text comes from the parts (nothing typed by hand); every section is optional and rendered only
 * when its part is present.
 *
 * Sections, in order: title, what the model is (a constructed model organism: its planted circuit, what it
 * can and cannot show, and the verdict table planted vs recovered per protocol), provenance (from
 * `meta.json`), executive summary, baseline metrics, conditions (targeted vs random vs baseline, with paired
 * Δ and degeneration, degenerate conditions flagged), onset types and answer trajectory, logit lens, ablation scan top components, protocol
 * validation (organism), formatting sweep, corrected vs reference-compatible, figures, caveats.
 *
 * p-values are printed only for tested hypotheses (McNemar, paired conditions vs baseline): as decimals
 * (`0.42`), in scientific notation only below 0.001 (`7.3e-12`); see {@linkcode pValue}.
 *
 * Every proportion is shown in percent with its cluster-adjusted Wilson interval (docs/protocol.md §16),
 * `47.5% [36.9%, 58.3%]`; differences of proportions in percentage points with the percentile bootstrap
 * over problems, `-47.5 pp [-57.5, -36.3]`; means with the same bootstrap. Every number goes through
 * {@linkcode fixed} (no `-0.00`; a value and its negation round alike).
 *
 * @module
 */

import { ciPct, ciPp, fixed, pct, pp, pValue } from "../../lib/tables/format.ts";
import {
  type ConditionSummary,
  type MeanEstimate,
  ONSET_TYPES,
  type PairedComparison,
  rateCI,
  type RateEstimate,
} from "./metrics.ts";
import { degenerationFlags, type DegenerationVerdict, figuresOf, flagText } from "./degeneration.ts";
import type { ProtocolValidationArtifact } from "./artifacts/protocol_validation.ts";
import { writeFileAtomic } from "../../lib/util/fs.ts";

/**
 * Provenance as recorded in `meta.json` (the fields this report reads; see `lib/run.ts`). Unknown
 * fields are ignored; missing ones print as "not recorded".
 */
export interface ReportMeta {
  readonly run_id?: string;
  readonly timestamp?: string;
  readonly updated_at?: string;
  readonly git_sha?: string;
  readonly git_sha_full?: string;
  readonly git_dirty?: boolean | "unknown";
  readonly hostname?: string;
  readonly model_id?: string;
  readonly config_path?: string | null;
  readonly protocol?: string;
  readonly versions?: Readonly<Record<string, string>>;
  readonly model?: Readonly<Record<string, unknown>>;
  readonly data?: Readonly<Record<string, unknown>>;
  readonly execution_provider?: {
    readonly requested?: string;
    readonly used?: string;
    readonly reason?: string;
  };
  readonly [key: string]: unknown;
}

/** One summarised group for a table row. */
export interface LabelledSummary {
  /** Row label, e.g. a variant or "random #2". */
  readonly label: string;
  readonly summary: ConditionSummary;
}

/** A non-baseline condition with its paired comparison against the baseline. */
export interface ConditionPart extends LabelledSummary {
  readonly kind: "targeted" | "random" | "other";
  readonly comparison?: PairedComparison;
}

/** One layer of the lens summary (mean of the chosen metric with CIs). */
export interface LensReportRow {
  readonly layer: number;
  readonly bt_mean: number;
  readonly bt_lower: number;
  readonly bt_upper: number;
  readonly control_mean: number;
  readonly control_lower: number;
  readonly control_upper: number;
  readonly diff: number;
  readonly diff_lower: number;
  readonly diff_upper: number;
  readonly n_bt: number;
  readonly n_control: number;
}

/** One component of the ablation scan. */
export interface ScanReportRow {
  readonly layer: number;
  readonly component: "attn" | "mlp";
  /** Mean Δ of the scan metric (e.g. log-prob of the trigger) when ablated. */
  readonly mean: number;
  readonly lower: number;
  readonly upper: number;
  /** Specificity (Δ trigger − Δ control), if computed. */
  readonly specificity?: number;
  readonly n_events?: number;
}

/**
 * One line of the corrected vs reference-compatible table. A number is a share (0–1) and prints as a
 * percentage like every other rate of the report (`0.9125` → `91.3%`); a string prints as given.
 */
export interface ReferenceComparisonRow {
  readonly metric: string;
  /** Corrected protocol (ours, default). */
  readonly corrected: string | number;
  /** Reference-compatible mode (ours, bug-compatible). */
  readonly reference_mode: string | number;
  /** The reference's committed number, where one exists. */
  readonly reference_committed?: string | number;
  readonly note?: string;
}

/** A constructed model with a known circuit (the organism), as the report opens with it. */
export interface OrganismPart {
  /** What the model is, in one paragraph (`organism.json`'s description). */
  readonly description: string;
  readonly planted: readonly { readonly layer: number; readonly component: string; readonly role?: string }[];
  readonly decoy: readonly { readonly layer: number; readonly component: string; readonly role?: string }[];
}

/** Everything the report can show; all parts optional. */
export interface ReportParts {
  /** Report title (default "Backtracking experiment report: run <id>"). */
  readonly title?: string;
  /**
   * The run's model is a constructed organism: the report opens with what it is, what it can and cannot
   * show, and (with `protocolValidation`) the verdict table planted vs recovered.
   */
  readonly organism?: OrganismPart;
  /** Protocol validation (organism): both selections scored and what ablating them did. */
  readonly protocolValidation?: ProtocolValidationArtifact;
  /** Provenance; default: `<runDir>/meta.json` if it exists. `null` = no provenance section. */
  readonly meta?: ReportMeta | null;
  /** Extra sentences appended to the generated executive summary. */
  readonly summaryNotes?: readonly string[];
  /** Baseline metrics, one row per variant (baseline condition). */
  readonly baseline?: readonly LabelledSummary[];
  /** Conditions of one variant: the baseline and the ablations. */
  readonly conditions?: {
    readonly variant?: string;
    readonly baseline: LabelledSummary;
    readonly others: readonly ConditionPart[];
  };
  /** Logit lens summary by layer. */
  readonly lens?: {
    readonly rows: readonly LensReportRow[];
    readonly metric?: "logprob" | "logit" | "rank";
    readonly note?: string;
  };
  /** Ablation scan rows and the selected components. */
  readonly scan?: {
    readonly rows: readonly ScanReportRow[];
    readonly top?: number;
    readonly selected?: { readonly attn: readonly number[]; readonly mlp: readonly number[] };
    readonly criterion?: string;
    /** What is measured, without the Δ (the header adds it): e.g. `log-prob of the trigger`. */
    readonly metric?: string;
  };
  /** Formatting sweep (baseline condition per variant). */
  readonly formatting?: readonly LabelledSummary[];
  /** Corrected vs reference-compatible, side by side. */
  readonly referenceComparison?: readonly ReferenceComparisonRow[];
  /**
   * Further sections (e.g. Phase 2: sweeps, steering, continuation ablation, patching), rendered after
   * the corrected-vs-reference table, each as `## title` then its markdown.
   */
  readonly extraSections?: readonly { readonly title: string; readonly markdown: string }[];
  /**
   * Figures for the Figures section; paths absolute or relative to the run folder (e.g. `figures/x.png`).
   * A figure a section above already embeds (e.g. the head scan's) is not repeated there.
   */
  readonly figures?: readonly { readonly title: string; readonly path: string }[];
  /** Caveats; default: the standard list below when omitted, none when `[]`. */
  readonly caveats?: readonly string[];
  /** Date printed as "report written" (default now); fixed in tests. */
  readonly writtenAt?: string;
}

/** The standard caveats (docs/protocol.md §18). */
export const DEFAULT_CAVEATS: readonly string[] = [
  "Samples of one problem are correlated: rates carry Wilson intervals widened by the design effect of a " +
  "bootstrap over problems (docs/protocol.md §16); differences and means carry the bootstrap over problems.",
  "Onset types are read by phrase and value rules (docs/protocol.md §23): an audit aid, not ground truth; " +
  "the answer trajectory compares the last result stated before the onset with the final answer.",
  "Accuracy with vs without backtracking is correlational: problem difficulty, truncation and answer " +
  "extraction confound it.",
  "A drop in backtracking under ablation is only meaningful next to the degeneration columns (repetition, " +
  'distinct-2, digit-free rate, EOS rate): a broken model also stops saying "Wait".',
  "Logit-lens values at intermediate layers are read through the final norm and unembedding, which those " +
  "layers were not trained for.",
];

// ---------------------------------------------------------------------------------------------------
// Formatting helpers

export { fixed, pct, pp, pValue } from "../../lib/tables/format.ts";

const num = (v: number, digits = 2) => fixed(v, digits);
const ciNum = (lo: number, hi: number, digits = 2) =>
  Number.isFinite(lo) && Number.isFinite(hi) ? `[${fixed(lo, digits)}, ${fixed(hi, digits)}]` : "";

/** A rate as "70.8% [67.0%, 74.4%]" (cluster-adjusted Wilson CI; "n/a" for a rate over nothing). */
function rate(e: RateEstimate | undefined): string {
  if (!e) return "n/a";
  const c = rateCI(e);
  const ci = ciPct(c.lower, c.upper);
  return ci ? `${pct(e.value)} ${ci}` : pct(e.value);
}

/** A trajectory share as "3/12 = 25.0% [8.9%, 53.2%]" ("0/0" when there is nothing to share). */
function share(x: { k: number; n: number; estimate: number; lower?: number; upper?: number } | undefined) {
  if (!x) return "n/a";
  if (x.n === 0) return "0/0";
  const ci = x.lower !== undefined && x.upper !== undefined ? ` ${ciPct(x.lower, x.upper)}` : "";
  return `${x.k}/${x.n} = ${pct(x.estimate)}${ci}`;
}

function mean(e: MeanEstimate, digits = 2): string {
  const ci = ciNum(e.bootstrap.lower, e.bootstrap.upper, digits);
  return ci ? `${num(e.value, digits)} ${ci}` : num(e.value, digits);
}

/**
 * Selected layers named as the report names components everywhere (`attn 2, attn 6, mlp 4`; `none`),
 * not as `attention [2, 6], MLP [4]`.
 */
function selectionText(sel: { readonly attn: readonly number[]; readonly mlp: readonly number[] }): string {
  const names = [...sel.attn.map((l) => `attn ${l}`), ...sel.mlp.map((l) => `mlp ${l}`)];
  return names.length > 0 ? names.join(", ") : "none";
}

/** The degeneration verdict of a condition against the baseline. */
function flagsOf(s: ConditionSummary, base?: ConditionSummary): DegenerationVerdict {
  return degenerationFlags(figuresOf(s), base && base !== s ? figuresOf(base) : undefined);
}

function cell(v: unknown): string {
  const s = v === undefined || v === null ? "" : String(v);
  return s.replaceAll("|", "\\|").replace(/\r?\n/g, " ");
}

/** A markdown table. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const head = `| ${headers.map(cell).join(" | ")} |`;
  const sep = `|${headers.map(() => "---").join("|")}|`;
  return [head, sep, ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`)].join("\n");
}

function scalar(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Sections

function provenance(meta: ReportMeta): string {
  const nr = "not recorded";
  const dirty = meta.git_dirty === true ? " (dirty work tree)" : meta.git_dirty === false ? " (clean)" : "";
  const ep = meta.execution_provider;
  const lines = [
    `- Run id: ${meta.run_id ?? nr}`,
    `- Git: ${meta.git_sha_full ?? meta.git_sha ?? nr}${dirty}`,
    `- Protocol: ${meta.protocol ?? nr}`,
    `- Config: ${meta.config_path ?? nr}`,
    `- Model: ${meta.model_id ?? nr}`,
  ];
  for (const [k, v] of Object.entries(meta.model ?? {})) {
    const s = scalar(v);
    if (s !== undefined) lines.push(`  - ${k}: ${s}`);
    else if (v && typeof v === "object") {
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) {
        const s2 = scalar(v2);
        if (s2 !== undefined) lines.push(`  - ${k}.${k2}: ${s2}`);
      }
    }
  }
  if (meta.data) {
    lines.push(`- Data:`);
    for (const [k, v] of Object.entries(meta.data)) {
      const s = scalar(v);
      if (s !== undefined) lines.push(`  - ${k}: ${s}`);
    }
  } else lines.push(`- Data: ${nr}`);
  lines.push(
    `- Execution provider: ${
      ep ? `${ep.used ?? nr}${ep.requested ? ` (requested ${ep.requested})` : ""}` : nr
    }` +
      (ep?.reason ? `: ${ep.reason}` : ""),
  );
  lines.push(`- Host: ${meta.hostname ?? nr}`);
  lines.push(`- Started: ${meta.timestamp ?? nr}; last updated: ${meta.updated_at ?? nr}`);
  const versions = Object.entries(meta.versions ?? {});
  lines.push(`- Versions: ${versions.length ? versions.map(([k, v]) => `${k} ${v}`).join(", ") : nr}`);
  return `## Provenance\n\n${lines.join("\n")}`;
}

function executiveSummary(parts: ReportParts): string | undefined {
  const out: string[] = [];
  const c = parts.conditions;
  const base = c?.baseline ?? (parts.baseline && parts.baseline[0]);
  if (base) {
    const s = base.summary;
    const name = c?.variant ? `${c.variant} / ${base.label}` : base.label;
    out.push(
      `- Baseline (${name}, n = ${s.n} samples of ${s.problems} problems): backtracking rate ` +
        `${rate(s.bt_rate)}, accuracy ${rate(s.accuracy)} on all rows (unknown answers ` +
        `${pct(s.unknown_rate)} and unfinished reasoning ${pct(s.unfinished_rate?.value ?? NaN)}, counted ` +
        `as wrong), ${rate(s.accuracy_finished)} on finished rows, EOS rate ${pct(s.eos_rate.value)}.`,
    );
    const tr = s.trajectory;
    if (s.onset_types && tr) {
      out.push(
        `- Onset types of the backtracking samples: ${
          ONSET_TYPES.map((t) => `${t} ${pct(s.onset_types[t].share.value)}`).join(", ")
        }. After the onset the answer changed in ${share(tr.changed)} of the determined onsets; ` +
          `of the changes ${share(tr.fixes)} were fixes (wrong → right) and ${share(tr.breaks)} ` +
          `breaks (right → wrong).`,
      );
    }
    if (s.accuracy_with_bt.n > 0 && s.accuracy_without_bt.n > 0) {
      out.push(
        `- Accuracy with backtracking ${rate(s.accuracy_with_bt)} vs without ${
          rate(s.accuracy_without_bt)
        } ` +
          (parts.organism
            ? `(by construction: after a trigger the organism re-reads a number from the question).`
            : `(correlational).`),
      );
    }
  }
  for (const o of c?.others ?? []) {
    const cmp = o.comparison;
    const s = o.summary;
    const flags = flagText(flagsOf(s, c?.baseline.summary));
    const reading = flags
      ? ` **${flags}**: the text broke down, so the backtracking change is not a clean effect.`
      : "";
    if (cmp) {
      const d = cmp.delta_bt_rate;
      out.push(
        `- ${o.label}: backtracking ${pct(d.baseline)} → ${pct(d.other)} (Δ ${pp(d.difference)} ` +
          `${ciPp(d.bootstrap.lower, d.bootstrap.upper)}, McNemar p = ${pValue(cmp.mcnemar_bt.p_value)}; ` +
          `relative ${pct(cmp.relative_bt_change.value)}); accuracy Δ ${pp(cmp.delta_accuracy.difference)} ` +
          `${ciPp(cmp.delta_accuracy.bootstrap.lower, cmp.delta_accuracy.bootstrap.upper)}; ` +
          `digit-free ${pct(s.digit_free_rate.value)}, 4-gram repetition ${num(s.repetition_4gram.value)}, ` +
          `EOS ${pct(s.eos_rate.value)}, at length cap ${pct(s.truncation_rate.value)}.${reading}`,
      );
    } else {
      out.push(`- ${o.label}: backtracking ${rate(s.bt_rate)}, accuracy ${rate(s.accuracy)}.${reading}`);
    }
  }
  const randoms = (c?.others ?? []).filter((o) => o.kind === "random");
  const brokenRandoms = randoms.filter((o) => flagsOf(o.summary, c?.baseline.summary).degenerate);
  if (brokenRandoms.length > 0) {
    out.push(
      `- **The random control is compromised**: ${brokenRandoms.length} of ${randoms.length} random draws ` +
        `(${brokenRandoms.map((o) => o.label).join(", ")}) are flagged degenerate: they hit a component ` +
        `every token needs, so their backtracking rates do not show what a random, non-destructive ablation ` +
        `does. Read the targeted ablation against the clean draws only (docs/protocol.md §14–15).`,
    );
  }
  if (parts.scan?.selected) {
    const sel = parts.scan.selected;
    out.push(`- Selected components: ${selectionText(sel)}.`);
  }
  const pv = parts.protocolValidation;
  if (pv) {
    const names = (xs: readonly { layer: number; component: string }[]) =>
      xs.map((x) => `${x.component} ${x.layer}`).join(", ") || "none";
    out.push(
      `- Protocol validation: ours selects [${names(pv.ours.selection.selected)}] (recall ` +
        `${pct(pv.ours.selection.recall, 0)} of the planted [${names(pv.planted)}], decoy ` +
        `${
          pv.ours.selection.decoy_selected ? "taken" : "not taken"
        }); the reference's signed top-${pv.reference_k} ` +
        `selects [${names(pv.reference.selection.selected)}] (decoy ${
          pv.reference.selection.decoy_selected ? "taken" : "not taken"
        }${pv.reference.ablation.degeneration.degenerate ? "; its ablation degenerates the text" : ""}). ` +
        (pv.expected.passed ? "Expected outcome." : `Unexpected: ${pv.expected.failures.join("; ")}.`),
    );
  }
  if (parts.lens && parts.lens.rows.length > 0) {
    const rows = parts.lens.rows;
    const best = rows.reduce((a, r) => (r.diff > a.diff ? r : a), rows[0]!);
    out.push(
      `- Logit lens: the backtracking − control difference is largest at layer ${best.layer} ` +
        `(${num(best.diff)} ${ciNum(best.diff_lower, best.diff_upper)}, ${parts.lens.metric ?? "logprob"}).`,
    );
  }
  for (const n of parts.summaryNotes ?? []) out.push(`- ${n}`);
  if (out.length === 0) return undefined;
  return `## Executive summary\n\n${out.join("\n")}`;
}

const SUMMARY_HEADERS = [
  "group",
  "n",
  "problems",
  "BT rate [95% CI]",
  "accuracy, all rows [95% CI]",
  "accuracy, finished rows [95% CI]",
  "unfinished [95% CI]",
  "unknown",
  "EOS",
  "mean length",
];

function summaryRow(x: LabelledSummary): unknown[] {
  const s = x.summary;
  return [
    x.label,
    s.n,
    s.problems,
    rate(s.bt_rate),
    rate(s.accuracy),
    rate(s.accuracy_finished),
    rate(s.unfinished_rate),
    pct(s.unknown_rate),
    pct(s.eos_rate.value),
    num(s.mean_length.value, 1),
  ];
}

/**
 * The onset-type breakdown (BT rate per type, its share of the BT samples, the accuracy of those samples)
 * and the answer-trajectory table of a list of groups (docs/protocol.md §23).
 */
export function onsetTrajectoryTables(rows: readonly LabelledSummary[]): string {
  const typed = rows.filter((x) => x.summary.onset_types && x.summary.trajectory);
  if (typed.length === 0) return "";
  const types = markdownTable(
    [
      "group",
      "BT rate",
      ...ONSET_TYPES.flatMap((t) => [`${t}: rate [95% CI]`, `${t}: share of BT`, `${t}: accuracy`]),
    ],
    typed.map((x) => [
      x.label,
      pct(x.summary.bt_rate.value),
      ...ONSET_TYPES.flatMap((t) => {
        const o = x.summary.onset_types[t];
        return [rate(o.rate), pct(o.share.value), pct(o.accuracy.value)];
      }),
    ]),
  );
  const traj = markdownTable(
    [
      "group",
      "onsets",
      "determined",
      "answer changed [95% CI]",
      "fixes (wrong → right) / changed",
      "breaks (right → wrong) / changed",
      "wrong → wrong",
      "kept right",
      "kept wrong",
      "net fixes per onset",
      "undetermined (no candidate / no final / unfinished / no gold)",
    ],
    typed.map((x) => {
      const t = x.summary.trajectory;
      const u = t.undetermined;
      return [
        x.label,
        t.onsets,
        t.determined,
        share(t.changed),
        share(t.fixes),
        share(t.breaks),
        t.kinds.wrong_to_wrong,
        t.kinds.kept_right,
        t.kinds.kept_wrong,
        Number.isFinite(t.net_fix_rate) ? pp(t.net_fix_rate) : "n/a",
        `${u.no_candidate} / ${u.no_final_answer} / ${u.unfinished} / ${u.no_gold}`,
      ];
    }),
  );
  return `### Onset types\n\n${types}\n\n### Answer trajectory\n\n${traj}`;
}

function onsetSection(parts: ReportParts): string | undefined {
  const groups: LabelledSummary[] = [];
  const c = parts.conditions;
  if (c) groups.push(c.baseline, ...c.others);
  else groups.push(...(parts.baseline ?? []));
  const tables = onsetTrajectoryTables(groups);
  if (!tables) return undefined;
  const where = c?.variant ? ` (${c.variant})` : "";
  return `## Onset types and answer trajectory${where}\n\n` +
    `Each strict onset is typed by rule (docs/protocol.md §23): \`revision\` = after the trigger the trace ` +
    `admits an error or replaces the value it had stated; \`verification\` = it re-checks and confirms; ` +
    `\`other\` = rereading, an unresolved re-check, conflicting or no evidence. Rate = samples with an ` +
    `onset of that type / all samples; share = of the backtracking samples. The trajectory compares the ` +
    `last result stated before the onset with the final answer: fixes and breaks are shares of the ` +
    `changed answers, with cluster-adjusted Wilson intervals.\n\n${tables}`;
}

function baselineSection(rows: readonly LabelledSummary[]): string {
  const extra = markdownTable(
    ["group", "BT (other rule)", "relaxed BT", "acc. with BT", "acc. without BT", "triggers / 1k tokens"],
    rows.map((x) => [
      x.label,
      rate(x.summary.bt_rate_other_rule),
      rate(x.summary.bt_rate_relaxed),
      rate(x.summary.accuracy_with_bt),
      rate(x.summary.accuracy_without_bt),
      mean(x.summary.triggers_per_1k),
    ]),
  );
  return `## Baseline metrics\n\nIntervals: 95% Wilson intervals widened by the design effect of a ` +
    `bootstrap over problems (docs/protocol.md §16). Accuracy on all rows = correct / n (unknown and ` +
    `unfinished counted as wrong); on finished rows = correct / rows whose reasoning closed.\n\n` +
    `${markdownTable(SUMMARY_HEADERS, rows.map(summaryRow))}\n\n${extra}`;
}

function conditionsSection(c: NonNullable<ReportParts["conditions"]>): string {
  const all: (LabelledSummary & { kind: string; comparison?: PairedComparison })[] = [
    { ...c.baseline, kind: "baseline" },
    ...c.others,
  ];
  const main = markdownTable(
    [
      "condition",
      "kind",
      "n",
      "BT rate [95% CI]",
      "Δ BT vs baseline",
      "accuracy, all rows [95% CI]",
      "accuracy, finished rows [95% CI]",
      "unfinished [95% CI]",
      "Δ accuracy",
      "McNemar p (BT)",
      "degeneration",
    ],
    all.map((x) => [
      x.label,
      x.kind,
      x.summary.n,
      rate(x.summary.bt_rate),
      x.comparison
        ? `${pp(x.comparison.delta_bt_rate.difference)} ${
          ciPp(x.comparison.delta_bt_rate.bootstrap.lower, x.comparison.delta_bt_rate.bootstrap.upper)
        }`
        : "",
      rate(x.summary.accuracy),
      rate(x.summary.accuracy_finished),
      rate(x.summary.unfinished_rate),
      x.comparison
        ? `${pp(x.comparison.delta_accuracy.difference)} ${
          ciPp(x.comparison.delta_accuracy.bootstrap.lower, x.comparison.delta_accuracy.bootstrap.upper)
        }`
        : "",
      x.comparison ? pValue(x.comparison.mcnemar_bt.p_value) : "",
      flagText(flagsOf(x.summary, c.baseline.summary)) || "none",
    ]),
  );
  const degen = markdownTable(
    [
      "condition",
      "4-gram repetition",
      "distinct-2",
      "digit-free",
      "EOS",
      "truncated",
      "mean length",
      "unknown / unfinished",
      "flags",
    ],
    all.map((x) => [
      x.label,
      mean(x.summary.repetition_4gram, 3),
      mean(x.summary.distinct_2, 3),
      rate(x.summary.digit_free_rate),
      rate(x.summary.eos_rate),
      pct(x.summary.truncation_rate.value),
      mean(x.summary.mean_length, 1),
      // without an answer: unknown + unfinished, the share the "no answer" flag reads (figuresOf)
      pct(figuresOf(x.summary).unknown_rate),
      flagsOf(x.summary, c.baseline.summary).flags.join(", ") || "none",
    ]),
  );
  const title = c.variant ? `## Conditions (${c.variant})` : "## Conditions";
  return `${title}\n\nRates: 95% cluster-adjusted Wilson intervals (docs/protocol.md §16). Δ = condition − ` +
    `baseline on the same (problem, sample) pairs, paired bootstrap over problems; McNemar p tests "the ` +
    `intervention does not change the backtracking rate". A condition is flagged DEGENERATE when its EOS rate ` +
    `collapses, its samples run to the length cap or its unknown/unfinished rate jumps ` +
    `(\`experiments/backtracking/degeneration.ts\`): its backtracking drop is a broken model, not a mechanism.` +
    `\n\n${main}\n\n### Degeneration\n\n${degen}`;
}

const compName = (x: { readonly layer: number; readonly component: string }) => `${x.component} ${x.layer}`;

function organismSection(o: OrganismPart, pv: ProtocolValidationArtifact | undefined): string {
  const lines = [
    `**This run is on a model organism, not on a reasoning model.** ${o.description}`,
    "",
    `- Planted circuit: ${o.planted.map((p) => `${compName(p)}${p.role ? ` (${p.role})` : ""}`).join("; ")}.`,
    `- Decoy (needed by every token, not part of the circuit): ${
      o.decoy.map((p) => `${compName(p)}${p.role ? ` (${p.role})` : ""}`).join("; ")
    }.`,
    "- What it can show: whether the analysis protocols (event selection, matched controls, logit lens, " +
    "ablation scan, component selection, generation-time ablation, degeneration checks) recover a known " +
    "circuit among live, noisy components without taking the decoy for it.",
    "- What it cannot show: anything about how a trained reasoning model backtracks. Its rates, accuracy " +
    "and effects are properties of the construction; no number here is comparable with a real model's, and " +
    "none is printed beside one.",
  ];
  if (pv) {
    const planted = pv.planted.map(compName);
    const row = (name: string, sel: ProtocolValidationArtifact["ours"]["selection"]) => {
      const s = new Set(sel.selected.map(compName));
      return [
        name,
        ...planted.map((p) => (s.has(p) ? "recovered" : "missed")),
        sel.decoy_selected ? "**taken**" : "not taken",
        sel.false_positives.filter((c) => !sel.decoys_selected.some((d) => compName(d) === compName(c)))
          .map(compName).join(", ") || "none",
      ];
    };
    lines.push(
      "",
      "### Verdict: planted vs recovered",
      "",
      markdownTable(
        [
          "protocol",
          ...planted.map((p) => `planted ${p}`),
          `decoy ${pv.decoy.map(compName).join(", ")}`,
          "other false positives",
        ],
        [
          row(`ours (specificity CI below −${pv.min_specificity_effect} nats)`, pv.ours.selection),
          row(`reference (signed top-${pv.reference_k} raw Δlogit)`, pv.reference.selection),
        ],
      ),
      "",
      pv.expected.passed
        ? "Expected outcome: ours recovers the planted circuit without the decoy; the reference takes the decoy, " +
          "and ablating its selection degenerates the text (section Protocol validation)."
        : `**Unexpected outcome**: ${pv.expected.failures.join("; ")}.`,
    );
  }
  return `## What this model is\n\n${lines.join("\n")}`;
}

function figuresCell(g: ProtocolValidationArtifact["ours"]["ablation"]) {
  return g.condition === null ? ["not generated", "", "", "", "", "", "", ""] : [
    g.condition,
    pct(g.bt_rate),
    `${pp(g.delta_bt_rate)} ${ciPp(g.delta_bt_rate_lower, g.delta_bt_rate_upper)}`,
    pct(g.eos_rate),
    pct(g.truncation_rate),
    pct(g.unknown_rate),
    num(g.mean_length, 1),
    flagText(g.degeneration) || "none",
  ];
}

function protocolValidationSection(pv: ProtocolValidationArtifact): string {
  const b = pv.baseline;
  const sel = (s: ProtocolValidationArtifact["ours"]["selection"]) => [
    s.selected.map(compName).join(", ") || "none",
    pct(s.precision, 0),
    pct(s.recall, 0),
    s.decoy_selected ? "yes" : "no",
  ];
  const table = markdownTable(
    [
      "protocol",
      "selected",
      "precision",
      "recall",
      "decoy",
      "ablation condition",
      "BT rate",
      "Δ BT vs baseline [95% CI]",
      "EOS",
      "at length cap",
      "unknown / unfinished",
      "mean length",
      "degeneration",
    ],
    [
      ["baseline", "", "", "", "", ...figuresCell(b).map((v, i) => (i === 2 ? "" : v))],
      ["ours", ...sel(pv.ours.selection), ...figuresCell(pv.ours.ablation)],
      ["reference", ...sel(pv.reference.selection), ...figuresCell(pv.reference.ablation)],
    ],
  );
  return `## Protocol validation (selection protocols vs the planted circuit)\n\n` +
    `Both selections come from the same ablation scan (variant ${pv.variant}). Reference: ${pv.reference.selection.rule}. ` +
    `Ours: ${pv.ours.selection.rule} (docs/protocol.md §13). Precision and recall are against the planted set ` +
    `(${
      pv.planted.map(compName).join(", ")
    }); each selection is then ablated during generation on the same ` +
    `samples as the baseline.\n\n${table}\n\n` +
    (pv.expected.passed
      ? "Reading: the reference's backtracking drop comes with degeneration (flagged above), so it measures a " +
        "broken model; ours lowers backtracking with the text intact."
      : `Unexpected outcome: ${pv.expected.failures.join("; ")}.`);
}

function lensSection(lens: NonNullable<ReportParts["lens"]>): string {
  const m = lens.metric ?? "logprob";
  const table = markdownTable(
    ["layer", `BT ${m} [95% CI]`, `control ${m} [95% CI]`, "BT − control [95% CI]", "n BT", "n control"],
    [...lens.rows].sort((a, b) => a.layer - b.layer).map((r) => [
      r.layer === 0 ? "0 (emb)" : r.layer,
      `${num(r.bt_mean)} ${ciNum(r.bt_lower, r.bt_upper)}`,
      `${num(r.control_mean)} ${ciNum(r.control_lower, r.control_upper)}`,
      `${num(r.diff)} ${ciNum(r.diff_lower, r.diff_upper)}`,
      r.n_bt,
      r.n_control,
    ]),
  );
  return `## Logit lens\n\n${lens.note ? `${lens.note}\n\n` : ""}${table}`;
}

function scanSection(scan: NonNullable<ReportParts["scan"]>): string {
  const top = scan.top ?? 10;
  const sorted = [...scan.rows].sort((a, b) => a.mean - b.mean || a.layer - b.layer);
  const hasSpec = sorted.some((r) => r.specificity !== undefined);
  const headers = ["rank", "component", "layer", `mean Δ${scan.metric ? ` ${scan.metric}` : ""} [95% CI]`];
  if (hasSpec) headers.push("specificity");
  headers.push("n events");
  const rows = sorted.slice(0, top).map((r, i) => {
    const row: unknown[] = [i + 1, r.component, r.layer, `${num(r.mean, 3)} ${ciNum(r.lower, r.upper, 3)}`];
    if (hasSpec) row.push(r.specificity === undefined ? "" : num(r.specificity, 3));
    row.push(r.n_events ?? "");
    return row;
  });
  const sel = scan.selected
    ? `\n\nSelected${scan.criterion ? ` (${scan.criterion})` : ""}: ${selectionText(scan.selected)}.`
    : "";
  return `## Ablation scan: top ${Math.min(top, sorted.length)} components (most negative mean Δ)\n\n` +
    `${markdownTable(headers, rows)}${sel}`;
}

function formattingSection(rows: readonly LabelledSummary[]): string {
  return `## Formatting sweep (baseline condition)\n\n${
    markdownTable(
      [
        "variant",
        "n",
        "BT rate [95% CI]",
        "accuracy, all rows [95% CI]",
        "accuracy, finished rows [95% CI]",
        "unfinished",
        ...ONSET_TYPES.map((t) => `BT ${t}`),
        "unknown",
        "EOS",
        "mean length",
      ],
      rows.map((x) => [
        x.label,
        x.summary.n,
        rate(x.summary.bt_rate),
        rate(x.summary.accuracy),
        rate(x.summary.accuracy_finished),
        pct(x.summary.unfinished_rate?.value ?? NaN),
        ...ONSET_TYPES.map((t) => pct(x.summary.onset_types?.[t]?.rate.value ?? NaN)),
        pct(x.summary.unknown_rate),
        pct(x.summary.eos_rate.value),
        num(x.summary.mean_length.value, 1),
      ]),
    )
  }`;
}

function referenceSection(rows: readonly ReferenceComparisonRow[]): string {
  const hasCommitted = rows.some((r) => r.reference_committed !== undefined);
  const headers = ["metric", "corrected (default)", "reference-compatible"];
  if (hasCommitted) {
    headers.push("reference's committed numbers (another model: DeepSeek-R1-Distill-Qwen-1.5B)");
  }
  headers.push("note");
  return `## Corrected vs reference-compatible\n\n${
    markdownTable(
      headers,
      rows.map((r) => {
        const share = (v: string | number | undefined) => (typeof v === "number" ? pct(v) : v ?? "");
        const row: unknown[] = [r.metric, share(r.corrected), share(r.reference_mode)];
        if (hasCommitted) row.push(share(r.reference_committed));
        row.push(r.note ?? "");
        return row;
      }),
    )
  }`;
}

function relativePath(from: string, to: string): string {
  if (!to.startsWith("/")) return to;
  const a = from.replace(/\/+$/, "").split("/");
  const b = to.split("/");
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...Array(a.length - i).fill(".."), ...b.slice(i)].join("/");
}

/**
 * The distinct image paths a markdown text embeds (`![alt](path)`), in order of first appearance: what
 * `make-report` counts as the report's figures.
 */
export function embeddedFigures(markdown: string): string[] {
  return [...new Set([...markdown.matchAll(/!\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)/g)].map((m) => m[1]!))];
}

/** The Figures section: every figure not already embedded in `shown` (a section above embeds it). */
function figuresSection(
  runDir: string,
  figs: NonNullable<ReportParts["figures"]>,
  shown: ReadonlySet<string>,
): string | undefined {
  const abs = runDir.startsWith("/") ? runDir : `${Deno.cwd()}/${runDir}`;
  const rest = figs.map((f) => ({ ...f, rel: relativePath(abs, f.path) })).filter((f) => !shown.has(f.rel));
  if (rest.length === 0) return undefined;
  return `## Figures\n\n${
    rest.map((f) => `### ${f.title}\n\n![${f.title.replaceAll("]", "\\]")}](${f.rel})`).join("\n\n")
  }`;
}

// ---------------------------------------------------------------------------------------------------
// Entry points

/**
 * Render the report markdown from its parts (no file access; `meta` is used as given).
 *
 * @param runDir The run folder (figure links are made relative to it).
 */
export function renderReport(runDir: string, parts: ReportParts): string {
  const meta = parts.meta ?? undefined;
  const id = meta?.run_id ?? runDir.replace(/\/+$/, "").split("/").pop() ?? "";
  const out: string[] = [`# ${parts.title ?? `Backtracking experiment report: run ${id}`}`];
  out.push(`Report written ${parts.writtenAt ?? new Date().toISOString()}.`);
  if (parts.organism) out.push(organismSection(parts.organism, parts.protocolValidation));
  if (meta) out.push(provenance(meta));
  const exec = executiveSummary(parts);
  if (exec) out.push(exec);
  if (parts.baseline && parts.baseline.length > 0) out.push(baselineSection(parts.baseline));
  if (parts.conditions) out.push(conditionsSection(parts.conditions));
  const onsets = onsetSection(parts);
  if (onsets) out.push(onsets);
  if (parts.lens && parts.lens.rows.length > 0) out.push(lensSection(parts.lens));
  if (parts.scan && parts.scan.rows.length > 0) out.push(scanSection(parts.scan));
  if (parts.protocolValidation) out.push(protocolValidationSection(parts.protocolValidation));
  if (parts.formatting && parts.formatting.length > 0) out.push(formattingSection(parts.formatting));
  if (parts.referenceComparison && parts.referenceComparison.length > 0) {
    out.push(referenceSection(parts.referenceComparison));
  }
  for (const sec of parts.extraSections ?? []) out.push(`## ${sec.title}\n\n${sec.markdown.trim()}`);
  if (parts.figures && parts.figures.length > 0) {
    const figs = figuresSection(runDir, parts.figures, new Set(embeddedFigures(out.join("\n\n"))));
    if (figs) out.push(figs);
  }
  const caveats = parts.caveats ?? DEFAULT_CAVEATS;
  if (caveats.length > 0) out.push(`## Caveats\n\n${caveats.map((c) => `- ${c}`).join("\n")}`);
  return out.join("\n\n") + "\n";
}

/**
 * Build `report.md` in the run folder, atomically. Provenance comes from `parts.meta`, else from
 * `<runDir>/meta.json` when it exists.
 *
 * @returns The path of the report.
 * @throws {SyntaxError} if `meta.json` exists but is not valid JSON.
 * @example
 * ```ts
 * await writeReport("runs/20250101_120000", { conditions: { baseline, others }, figures });
 * ```
 */
export async function writeReport(runDir: string, parts: ReportParts): Promise<string> {
  let meta = parts.meta;
  if (meta === undefined) {
    const path = `${runDir}/meta.json`;
    let text: string | undefined;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw new Error(`Cannot read "${path}"`, { cause: e });
    }
    if (text !== undefined) {
      try {
        meta = JSON.parse(text) as ReportMeta;
      } catch (e) {
        throw new SyntaxError(`"${path}" is not valid JSON: ${(e as Error).message}`, { cause: e });
      }
    }
  }
  const path = `${runDir}/report.md`;
  await writeFileAtomic(path, renderReport(runDir, { ...parts, meta: meta ?? null }), { createDir: true });
  return path;
}
