/**
 * Figures for exploring one trace (the exploration notebook, `notebooks/explore.ipynb`): a heat map of a
 * value per token and layer (e.g. the logit lens of a trigger around its onset), and bars of a value per
 * token (e.g. one head's attention pattern from one query position).
 *
 * @module
 */

import * as Plot from "@observablehq/plot";
import { COLORS, type Figure, type FigureOptions, nonEmpty, render } from "./plot.ts";

/** One cell of {@linkcode tokenLayerHeatmap}. */
export interface HeatCell {
  /** Token position (absolute); columns are ordered by it. */
  readonly position: number;
  /** The token's text as shown on the axis (whitespace made visible by the caller if wanted). */
  readonly token: string;
  readonly layer: number;
  readonly value: number;
}

/** Options of {@linkcode tokenLayerHeatmap}. */
export interface HeatmapOptions extends FigureOptions {
  /** What a cell's value is (colour legend label), e.g. "log P(Wait)". */
  readonly valueLabel?: string;
  /** A position to mark with a frame (e.g. the pre-onset position). */
  readonly markPosition?: number;
}

/** `"<position> <token>"`, the unique axis label of a token column. */
export function tokenLabel(position: number, token: string): string {
  return `${position} ${token}`;
}

/**
 * Token × layer heat map: one column per token position (labelled `"<position> <token>"`), one row per
 * layer (0 at the bottom), colour = `value` with a labelled colour legend; `markPosition` gets a black frame.
 *
 * @param data Cells, any order; every (position, layer) at most once.
 * @throws {RangeError} when `data` is empty or a value is not finite.
 */
export function tokenLayerHeatmap(data: readonly HeatCell[], options: HeatmapOptions = {}): Figure {
  nonEmpty(data, "tokenLayerHeatmap");
  const bad = data.find((d) => !Number.isFinite(d.value));
  if (bad) {
    throw new RangeError(
      `tokenLayerHeatmap: value at position ${bad.position}, layer ${bad.layer} is ${bad.value}`,
    );
  }
  const positions = [...new Set(data.map((d) => d.position))].sort((a, b) => a - b);
  const labelOf = new Map(data.map((d) => [d.position, tokenLabel(d.position, d.token)]));
  const layers = [...new Set(data.map((d) => d.layer))].sort((a, b) => b - a);
  const rows = data.map((d) => ({ ...d, label: labelOf.get(d.position)! }));
  const label = options.valueLabel ?? "value";
  const values = rows.map((r) => r.value);
  const mid = (Math.min(...values) + Math.max(...values)) / 2;
  const marked = options.markPosition === undefined
    ? []
    : rows.filter((r) => r.position === options.markPosition);
  return render(
    "token_layer_heatmap",
    {
      title: `${label} by token and layer`,
      subtitle: `colour and number: ${label} (dark = low, yellow = high)` +
        (options.markPosition === undefined ? "" : `; framed: position ${options.markPosition}`),
      height: Math.max(220, 26 * layers.length + 150),
    },
    options,
    {
      marginLeft: 60,
      marginBottom: 110,
      x: { label: null, domain: positions.map((p) => labelOf.get(p)!), tickRotate: -50 },
      y: { label: "Layer", domain: layers },
      color: { type: "linear", scheme: "viridis", label },
      marks: [
        Plot.cell(rows, { x: "label", y: "layer", fill: "value", inset: 0.5 }),
        // the values themselves: Plot's colour legends are HTML, not SVG, so the cells carry their numbers
        Plot.text(rows, {
          x: "label",
          y: "layer",
          text: (d: HeatCell) => d.value.toFixed(1),
          fill: (d: HeatCell) => (d.value > mid ? "black" : "white"),
          fontSize: 10,
        }),
        Plot.cell(marked, { x: "label", y: "layer", stroke: "black", strokeWidth: 2, fill: "none" }),
      ],
    },
  );
}

/** One bar of {@linkcode tokenBars}. */
export interface TokenBar {
  readonly position: number;
  readonly token: string;
  readonly value: number;
  /** Drawn in the highlight colour. */
  readonly highlight?: boolean;
}

/**
 * Bars of a value per token position (e.g. one head's attention weights from one query), labelled
 * `"<position> <token>"`, highlighted bars in orange.
 *
 * @throws {RangeError} when `data` is empty.
 */
export function tokenBars(
  data: readonly TokenBar[],
  options: FigureOptions & {
    readonly valueLabel?: string;
    readonly highlightLabel?: string;
    /** y domain (default: 0 to the largest value), e.g. `[0, 1]` for attention weights. */
    readonly domain?: readonly [number, number];
  } = {},
): Figure {
  nonEmpty(data, "tokenBars");
  const rows = [...data].sort((a, b) => a.position - b.position).map((d) => ({
    ...d,
    label: tokenLabel(d.position, d.token),
    kind: d.highlight ? (options.highlightLabel ?? "highlighted") : "other",
  }));
  return render(
    "token_bars",
    { title: options.valueLabel ?? "value by token", height: 300 },
    options,
    {
      marginLeft: 60,
      marginBottom: 110,
      x: { label: null, domain: rows.map((r) => r.label), tickRotate: -50 },
      y: {
        label: `↑ ${options.valueLabel ?? "value"}`,
        grid: true,
        ...(options.domain ? { domain: [...options.domain] } : {}),
      },
      color: {
        domain: [options.highlightLabel ?? "highlighted", "other"],
        range: [COLORS.highlight, COLORS.muted],
      },
      marks: [Plot.barY(rows, { x: "label", y: "value", fill: "kind" }), Plot.ruleY([0])],
    },
    rows.some((r) => r.highlight)
      ? {
        legend: [{
          label: options.highlightLabel ?? "highlighted",
          color: COLORS.highlight,
          swatch: "square",
        }],
      }
      : {},
  );
}
