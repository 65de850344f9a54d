/**
 * The head scan's figures (same conventions as `figures.ts`: plain summarised data in, one `Plot.plot`
 * call, a {@linkcode Figure} out):
 *
 * - {@linkcode headDlaHeatmap}: a layer × head heat map of the DLA specificity (event − matched controls),
 *   the MLPs as an extra column;
 * - {@linkcode headAttentionByClass}: the top heads' attention mass per token class at the pre-onset
 *   position, events vs controls, with CIs.
 *
 * @module
 */

import * as Plot from "@observablehq/plot";
import {
  checkCI,
  COLORS,
  type Figure,
  type FigureOptions,
  nonEmpty,
  render,
  type ValueCI,
} from "../../lib/figures/plot.ts";
import { fixed } from "../../lib/tables/format.ts";

/** One cell of {@linkcode headDlaHeatmap}: a head (`head` ≥ 0) or the layer's MLP (`head` = -1). */
export interface DlaCell {
  readonly layer: number;
  readonly head: number;
  /** DLA specificity in logits (or any signed value). */
  readonly value: number;
  /** Outlined (e.g. the heads that were ablated, or planted components). */
  readonly highlight?: boolean;
}

/** Options of {@linkcode headDlaHeatmap}. */
export interface DlaHeatmapOptions extends FigureOptions {
  /** Legend of the colour (default "DLA specificity (logits)"). */
  readonly valueLabel?: string;
  /** What an outline means (default "top head: ablated one at a time, attention captured"). */
  readonly highlightLabel?: string;
}

/**
 * Layer (rows) × head (columns, then "MLP") heat map of a signed value, diverging colours centred at 0,
 * values printed in the cells when there are at most 400 of them.
 *
 * @throws {RangeError} on empty data.
 */
export function headDlaHeatmap(data: readonly DlaCell[], options: DlaHeatmapOptions = {}): Figure {
  nonEmpty(data, "headDlaHeatmap");
  const heads = [...new Set(data.filter((d) => d.head >= 0).map((d) => d.head))].sort((a, b) => a - b);
  const columns = [...heads.map((h) => `H${h}`), ...(data.some((d) => d.head < 0) ? ["MLP"] : [])];
  const layers = [...new Set(data.map((d) => d.layer))].sort((a, b) => a - b);
  const rows = data.map((d) => ({ ...d, column: d.head < 0 ? "MLP" : `H${d.head}` }));
  const maxAbs = Math.max(1e-9, ...rows.map((r) => (Number.isFinite(r.value) ? Math.abs(r.value) : 0)));
  const hl = options.highlightLabel ?? "top head: ablated one at a time, attention captured";
  const label = options.valueLabel ?? "DLA specificity in logits";
  const hasHighlight = rows.some((r) => r.highlight);
  const color = (v: number) =>
    Plot.scale({ color: { type: "diverging", scheme: "RdBu", reverse: true, domain: [-maxAbs, maxAbs] } })
      .apply(v) as string;
  // two decimals, no "-0.00", and the minus sign the legend uses (−, not the hyphen -)
  const cellText = (v: number) => (Number.isFinite(v) ? fixed(v, 2).replace(/^-/, "−") : "");
  const height = Math.min(900, 50 + 26 * layers.length);
  return render(
    "head_dla_heatmap",
    {
      title: "Direct logit attribution to the trigger by head and layer",
      subtitle: `${label}: attribution at onsets − at matched controls\n` +
        "columns: attention heads, then the layer's MLP",
      height,
    },
    { width: Math.max(640, Math.min(1400, 140 + 46 * columns.length)), ...options },
    {
      marginLeft: 60,
      marginTop: 30,
      marginBottom: 10,
      x: { label: null, domain: columns, axis: "top" },
      y: { label: "↓ Layer", domain: layers },
      color: {
        type: "diverging",
        scheme: "RdBu",
        reverse: true,
        domain: [-maxAbs, maxAbs],
        legend: false,
        label,
      },
      marks: [
        Plot.cell(rows, { x: "column", y: "layer", fill: "value", inset: 0.5 }),
        Plot.cell(rows.filter((r) => r.highlight), {
          x: "column",
          y: "layer",
          fill: "none",
          stroke: "black",
          strokeWidth: 2,
        }),
        ...(rows.length <= 400
          ? [Plot.text(rows, {
            x: "column",
            y: "layer",
            text: (d: DlaCell) => cellText(d.value),
            fontSize: 10,
            fill: (d: DlaCell) => (Math.abs(d.value) > 0.6 * maxAbs ? "white" : "black"),
          })]
          : []),
      ],
    },
    {
      legend: [
        { label: `+${maxAbs.toFixed(2)}: writes the trigger`, color: color(maxAbs), swatch: "square" },
        { label: `−${maxAbs.toFixed(2)}: writes against it`, color: color(-maxAbs), swatch: "square" },
        ...(hasHighlight ? [{ label: hl, color: "black", swatch: "outline" as const }] : []),
      ],
    },
  );
}

/** One bar of {@linkcode headAttentionByClass}. */
export interface ClassMassBar extends ValueCI {
  /** e.g. `L6H0`. */
  readonly head: string;
  readonly token_class: string;
  readonly series: "event" | "control";
}

/**
 * Attention mass per token class at the pre-onset position, one panel per head, events vs controls side
 * by side, CI whiskers.
 *
 * @throws {RangeError} on empty data or a CI that does not contain its value.
 */
export function headAttentionByClass(
  data: readonly ClassMassBar[],
  options: FigureOptions = {},
): Figure {
  nonEmpty(data, "headAttentionByClass");
  checkCI(data, "headAttentionByClass");
  const heads = [...new Set(data.map((d) => d.head))];
  const classes = [...new Set(data.map((d) => d.token_class))];
  const rows = data.map((d) => ({ ...d, series: d.series === "event" ? "pre-onset" : "control" }));
  // "previous_sentence" → "previous\nsentence": two short lines, so neighbouring labels do not collide
  const classLabel = (c: string) => c.replaceAll("_", "\n");
  return render(
    "head_attention_by_class",
    {
      title: "Where the top heads look at the pre-onset position",
      subtitle: "attention mass per class of key token; rows: the top heads by DLA; error bars: 95% CI",
      height: 120 + 150 * heads.length,
    },
    options,
    {
      marginLeft: 60,
      marginRight: 70,
      marginBottom: 60,
      fx: { domain: classes, label: "Key token class →", tickFormat: classLabel, labelOffset: 46 },
      x: { domain: ["pre-onset", "control"], axis: null },
      y: { label: "↑ Attention mass", domain: [0, 1], grid: true },
      fy: { domain: heads, label: null },
      color: { domain: ["pre-onset", "control"], range: [COLORS.bt, COLORS.control], legend: false },
      marks: [
        Plot.frame({ stroke: "#ddd" }),
        Plot.barY(rows, { fx: "token_class", fy: "head", x: "series", y: "value", fill: "series" }),
        Plot.ruleX(rows, {
          fx: "token_class",
          fy: "head",
          x: "series",
          y1: "lower",
          y2: "upper",
          stroke: "black",
        }),
        Plot.ruleY([0]),
      ],
    },
    {
      legend: [
        { label: "pre-onset positions", color: COLORS.bt, swatch: "square" },
        { label: "matched controls", color: COLORS.control, swatch: "square" },
      ],
    },
  );
}
