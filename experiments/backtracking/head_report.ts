/**
 * The head scan in the report and the notebooks: its two figures from the "heads" artifacts, and its
 * report section (DLA ranking, per-group top components, single-head ablation, attention by token class,
 * forward passes and rows per stage), each with the numbers it states computed here.
 *
 * @module
 */

import type { HeadScanFiles } from "./artifacts/heads.ts";
import { type ClassMassBar, type DlaCell, headAttentionByClass, headDlaHeatmap } from "./head_figures.ts";
import type { Figure } from "../../lib/figures/plot.ts";
import { fixed, markdownTable } from "./report.ts";

/** Two decimals through the report's one number formatter (`0.00`, never `-0.00`). */
const f2 = (x: number) => fixed(x, 2);
const ci = (m: number, lo: number, hi: number) => `${f2(m)} [${f2(lo)}, ${f2(hi)}]`;
const headName = (h: { layer: number; head: number }) => `L${h.layer}H${h.head}`;

/**
 * A DLA component as the report names components: a head `L6H0` (head 0 of attn 6), an MLP `mlp 4` as in
 * the scan and verdict tables (the artifact's TransformerLens label is `4_mlp_out`), else the label.
 */
export function dlaComponentName(r: { kind: string; layer: number; head: number; name: string }): string {
  return r.kind === "head" ? headName(r) : r.kind === "mlp" ? `mlp ${r.layer}` : r.name;
}

/**
 * The layer × head heat map of DLA specificity (group `all`; MLPs as a column; the ablated heads
 * outlined).
 */
export function headDlaFigure(files: HeadScanFiles, group = "all"): Figure {
  const top = new Set(files.summary.top_heads.map(headName));
  const cells: DlaCell[] = files.dla.filter((r) =>
    r.group === group && (r.kind === "head" || r.kind === "mlp")
  )
    .map((r) => ({
      layer: r.layer,
      head: r.kind === "mlp" ? -1 : r.head,
      value: r.specificity_mean,
      highlight: r.kind === "head" && top.has(r.name),
    }));
  return headDlaHeatmap(cells);
}

/** The top heads' attention mass per token class, events vs controls (group `all`). */
export function headAttentionFigure(files: HeadScanFiles, group = "all"): Figure {
  const clamp = (v: number, lo: number, hi: number) => ({
    value: v,
    lower: Number.isFinite(lo) ? Math.min(lo, v) : v,
    upper: Number.isFinite(hi) ? Math.max(hi, v) : v,
  });
  const bars: ClassMassBar[] = files.attention.filter((r) => r.group === group).flatMap((r) => [
    {
      head: headName(r),
      token_class: r.token_class,
      series: "event" as const,
      ...clamp(r.event_mean, r.event_lower, r.event_upper),
    },
    ...(Number.isFinite(r.control_mean)
      ? [{
        head: headName(r),
        token_class: r.token_class,
        series: "control" as const,
        ...clamp(r.control_mean, r.control_lower, r.control_upper),
      }]
      : []),
  ]);
  return headAttentionByClass(bars);
}

/** Both figures (the attention figure only when patterns were summarised). */
export function headFigures(files: HeadScanFiles): Figure[] {
  const out = [headDlaFigure(files)];
  if (files.attention.some((r) => r.group === "all")) out.push(headAttentionFigure(files));
  return out;
}

/** The report section of the head scan. */
export function headReportSection(files: HeadScanFiles): { title: string; markdown: string } {
  const s = files.summary;
  const c = s.cost;
  const out: string[] = [];
  out.push(
    `Which attention heads write the trigger at the pre-onset position (variant \`${s.variant}\`, ` +
      `${s.n_events} events, ${s.n_controls} matched controls). Direct logit attribution (DLA) splits the ` +
      "trigger's logit into the direct contributions of every head and MLP, linearising the final norm at " +
      "the actual residual's scale (as TransformerLens does); the *DLA specificity* is a component's " +
      "contribution to the onset token at the event minus its contribution to the sampled token at the " +
      "event's matched controls, so a component that writes every token alike cancels. The top heads are " +
      "then zero-ablated one at a time (`blocks.{l}.attn.hook_z`, that head only, at the pre-onset " +
      "position) and scored exactly as the layer scan; their attention at the pre-onset position is " +
      "summarised by token class. Heads are named L<layer>H<head> (L6H0 = head 0 of attn 6), MLPs as in " +
      "the rest of the report (mlp 4). CIs: 95% problem-clustered bootstrap.",
  );
  out.push(
    `Cost: DLA ${c.dla.forward_calls} forward pass(es) (${c.dla.forward_rows} rows) for every component ` +
      `at once; single-head ablation of ${s.top_heads.length} head(s) ${c.ablation.forward_calls} pass(es) ` +
      `(${c.ablation.forward_rows} rows); ` +
      (c.patterns.forward_calls === 0
        ? "the attention patterns come from the DLA passes."
        : `patterns ${c.patterns.forward_calls} pass(es).`) +
      " Seconds per stage are in the step record of `meta.json`.",
  );
  const all = files.dla.filter((r) => r.group === "all" && (r.kind === "head" || r.kind === "mlp"));
  out.push("**DLA ranking, all events** (logits):");
  out.push(markdownTable(
    ["rank", "component", "at events", "at controls (sampled token)", "specificity [95% CI]"],
    all.slice(0, 8).map((r, i) => [
      i + 1,
      dlaComponentName(r),
      f2(r.event_mean),
      f2(r.control_mean),
      ci(r.specificity_mean, r.specificity_lower, r.specificity_upper),
    ]),
  ));
  const groups = s.groups.filter((g) => g !== "all");
  if (groups.length > 0) {
    out.push("**Per trigger word and onset type**: the three most specific components of each group.");
    out.push(markdownTable(
      ["group", "events", "1st", "2nd", "3rd"],
      groups.map((g) => {
        const rows = files.dla.filter((r) => r.group === g && (r.kind === "head" || r.kind === "mlp"));
        return [
          g,
          rows[0]?.n_events ?? 0,
          ...[0, 1, 2].map((k) =>
            rows[k] ? `${dlaComponentName(rows[k]!)} ${f2(rows[k]!.specificity_mean)}` : "–"
          ),
        ];
      }),
    ));
  }
  if (files.ablation.length > 0) {
    out.push(
      "**Single-head zero-ablation** (Δ log-prob of the trigger; specificity = Δ at the event − Δ of the " +
        "sampled token at its controls; negative = the head drives the trigger):",
    );
    out.push(markdownTable(
      ["group", "head", "events", "Δ log-prob [95% CI]", "specificity [95% CI]"],
      files.ablation.map((r) => [
        r.group,
        headName(r),
        r.n_events,
        ci(r.delta_logprob_mean, r.delta_logprob_lower, r.delta_logprob_upper),
        ci(r.specificity_mean, r.specificity_lower, r.specificity_upper),
      ]),
    ));
  }
  const att = files.attention.filter((r) => r.group === "all");
  if (att.length > 0) {
    out.push("**Attention at the pre-onset position** (all events): each top head's most-attended class.");
    out.push(markdownTable(
      ["head", "class", "mass at events [95% CI]", "at controls", "largest event − control difference"],
      s.top_heads.map((h) => {
        const mine = att.filter((r) => r.layer === h.layer && r.head === h.head);
        const best = mine.reduce((a, b) => (b.event_mean > a.event_mean ? b : a));
        const diff = mine.reduce((a, b) => (Math.abs(b.diff_mean) > Math.abs(a.diff_mean) ? b : a));
        return [
          headName(h),
          best.token_class,
          ci(best.event_mean, best.event_lower, best.event_upper),
          f2(best.control_mean),
          `${diff.token_class} ${ci(diff.diff_mean, diff.diff_lower, diff.diff_upper)}`,
        ];
      }),
    ));
  }
  out.push("![DLA by head and layer](figures/head_dla_heatmap.png)");
  if (att.length > 0) out.push("![Attention by token class](figures/head_attention_by_class.png)");
  return {
    title: "Heads: direct logit attribution, single-head ablation, attention",
    markdown: out.join("\n\n"),
  };
}
