/**
 * The experiment's figures: one function per figure, taking plain typed data (already summarised, with
 * confidence bounds) and returning a {@linkcode Figure} rendered by the toolkit's
 * {@linkcode ../../lib/figures/plot.ts} (one declarative `Plot.plot` call each).
 *
 * @module
 */

import * as Plot from "@observablehq/plot";
import type { MeanEstimate } from "./metrics.ts";
import {
  checkCI,
  COLORS,
  endLabelMarks,
  type Figure,
  type FigureOptions,
  nonEmpty,
  render,
  type ValueCI,
} from "../../lib/figures/plot.ts";

const pct = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "n/a");

export {
  COLORS,
  type Figure,
  type FigureBundle,
  figureBundle,
  type FigureOptions,
  FONT_FAMILY,
  type FontSource,
  type PngOptions,
  render,
  renderPng,
  resolveFontFiles,
  saveFigure,
  type ValueCI,
} from "../../lib/figures/plot.ts";

/**
 * A {@linkcode ValueCI} from a metrics estimate.
 *
 * @param e A `MeanEstimate` / `RateEstimate` from `lib/metrics.ts`.
 * @param interval `"ci"` (default): a rate's cluster-adjusted Wilson interval (docs/protocol.md §16; honest
 *   at 0% and 100%), a mean's problem-clustered bootstrap; `"bootstrap"`; or `"wilson"` (rates only).
 * @throws {RangeError} for `"wilson"` on an estimate that has no Wilson interval.
 */
export function valueCI(
  e: MeanEstimate & {
    readonly wilson?: { lower: number; upper: number };
    readonly ci?: { lower: number; upper: number };
  },
  interval: "ci" | "bootstrap" | "wilson" = "ci",
): ValueCI {
  if (interval === "wilson") {
    if (!e.wilson) throw new RangeError("valueCI: this estimate has no Wilson interval (it is not a rate)");
    return { value: e.value, lower: e.wilson.lower, upper: e.wilson.upper };
  }
  if (interval === "ci" && e.ci) return { value: e.value, lower: e.ci.lower, upper: e.ci.upper };
  return { value: e.value, lower: e.bootstrap.lower, upper: e.bootstrap.upper };
}

// ---------------------------------------------------------------------------------------------------
// (a) BT rate by variant

/** One bar of {@linkcode btRateByVariant}. */
export interface VariantRate extends ValueCI {
  /** Variant name (one bar each). */
  readonly variant: string;
  /** Samples behind the rate (shown in the label). */
  readonly n?: number;
}

/** A 0–100 % x axis with its label centred under it (the bar charts' shared axis). */
function percentAxis(label: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    label,
    percent: true,
    domain: [0, 100],
    grid: true,
    labelAnchor: "center",
    labelOffset: 36,
    ...extra,
  };
}

/** Left margin that fits the longest y label (about 7 px a character), capped at `max`. */
function labelMargin(labels: readonly string[], max: number): number {
  return Math.min(max, 30 + 7 * Math.max(...labels.map((l) => l.length)));
}

/**
 * (a) Strict BT rate by prompt variant (one condition, normally baseline), horizontal bars with CI
 * error bars and a percentage label.
 *
 * @throws {RangeError} on empty data or a value outside its interval.
 */
export function btRateByVariant(data: readonly VariantRate[], options: FigureOptions = {}): Figure {
  nonEmpty(data, "btRateByVariant");
  checkCI(data, "btRateByVariant");
  return render(
    "bt_rate_by_variant",
    {
      title: "Backtracking rate by prompt variant",
      subtitle: "strict triggers, baseline condition; bars: 95% CI (Wilson, clustered by problem)",
      height: 60 + 44 * data.length,
    },
    options,
    {
      marginLeft: 190,
      marginRight: 70,
      x: percentAxis("Backtracking rate (%) →"),
      y: { label: null, domain: data.map((d) => d.variant) },
      marks: [
        Plot.barX(data, { y: "variant", x: "value", fill: COLORS.baseline, fillOpacity: 0.85 }),
        Plot.ruleY(data, { y: "variant", x1: "lower", x2: "upper", stroke: "black", strokeWidth: 1.5 }),
        Plot.tickX(data, { y: "variant", x: "lower", stroke: "black", inset: 10 }),
        Plot.tickX(data, { y: "variant", x: "upper", stroke: "black", inset: 10 }),
        Plot.text(data, {
          y: "variant",
          x: "upper",
          text: (d: VariantRate) => `${pct(d.value)}${d.n === undefined ? "" : ` (n=${d.n})`}`,
          dx: 6,
          textAnchor: "start",
        }),
        Plot.ruleX([0]),
      ],
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// (b) Accuracy with vs without backtracking

/** Accuracy of the samples with and without backtracking, for one group. */
export interface AccuracyByBacktracking {
  /** Group label (e.g. "baseline_think_newline / baseline"); may be "" for a single group. */
  readonly group: string;
  readonly with_bt: ValueCI & { readonly n?: number };
  readonly without_bt: ValueCI & { readonly n?: number };
}

/**
 * (b) Accuracy of samples with vs without a strict trigger, per group, with CI error bars.
 * Correlational: difficulty and truncation confound it (docs/protocol.md §18).
 */
export function accuracyByBacktracking(
  data: readonly AccuracyByBacktracking[],
  options: FigureOptions = {},
): Figure {
  nonEmpty(data, "accuracyByBacktracking");
  const rows = data.flatMap((g) =>
    ([["with backtracking", g.with_bt], ["without backtracking", g.without_bt]] as const).map(([k, v]) => ({
      label: g.group ? `${g.group} · ${k}` : k[0]!.toUpperCase() + k.slice(1),
      kind: k,
      value: v.value,
      lower: v.lower,
      upper: v.upper,
      n: v.n,
    }))
  );
  checkCI(rows, "accuracyByBacktracking");
  return render(
    "accuracy_by_backtracking",
    {
      title: "Accuracy with vs without backtracking",
      subtitle:
        "accuracy = correct / n (unknown, unfinished = wrong); bars: 95% clustered Wilson CI; correlational",
      height: 60 + 40 * rows.length,
    },
    options,
    {
      marginLeft: labelMargin(rows.map((r) => r.label), 360),
      marginRight: 90,
      x: percentAxis("Accuracy (%) →"),
      y: { label: null, domain: rows.map((r) => r.label) },
      color: { domain: ["with backtracking", "without backtracking"], range: [COLORS.with, COLORS.without] },
      marks: [
        Plot.barX(rows, { y: "label", x: "value", fill: "kind", fillOpacity: 0.85 }),
        Plot.ruleY(rows, { y: "label", x1: "lower", x2: "upper", stroke: "black", strokeWidth: 1.5 }),
        Plot.tickX(rows, { y: "label", x: "lower", stroke: "black", inset: 9 }),
        Plot.tickX(rows, { y: "label", x: "upper", stroke: "black", inset: 9 }),
        Plot.text(rows, {
          y: "label",
          x: "upper",
          text: (d: { value: number; n?: number }) =>
            `${pct(d.value)}${d.n === undefined ? "" : ` (n=${d.n})`}`,
          dx: 6,
          textAnchor: "start",
        }),
        Plot.ruleX([0]),
      ],
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// (c) Logit lens by layer

/** One point of a lens curve. */
export interface LensPoint extends ValueCI {
  /** Layer index: 0 = embedding output, L = final logits. */
  readonly layer: number;
  /** Which curve. */
  readonly series: "backtracking" | "control";
}

/** Options of {@linkcode logitLensByLayer}. */
export interface LensFigureOptions extends FigureOptions {
  /** What `value` holds (axis label only; default `"logprob"`). */
  readonly metric?: "logprob" | "logit" | "rank";
  /** Layers to mark with a dashed rule (e.g. planted components). */
  readonly markLayers?: readonly number[];
}

/**
 * (c) Logit lens: mean log-prob (or logit / rank) of the onset token by layer, backtracking positions
 * vs matched controls, lines with CI bands; layer 0 is the embedding output.
 */
export function logitLensByLayer(data: readonly LensPoint[], options: LensFigureOptions = {}): Figure {
  nonEmpty(data, "logitLensByLayer");
  checkCI(data, "logitLensByLayer");
  const metric = options.metric ?? "logprob";
  const label = {
    logprob: "Log-probability of trigger token (nats)",
    logit: "Logit of trigger token",
    rank: "Rank of trigger token",
  }[
    metric
  ];
  if (!label) {
    throw new RangeError(`option "metric" must be "logprob", "logit" or "rank", got ${String(metric)}`);
  }
  const sorted = [...data].sort((a, b) => a.layer - b.layer || (a.series < b.series ? -1 : 1));
  const maxLayer = Math.max(...sorted.map((d) => d.layer));
  const step = maxLayer > 16 ? 4 : maxLayer > 8 ? 2 : 1;
  const ticks = Array.from({ length: Math.floor(maxLayer / step) + 1 }, (_, i) => i * step);
  const height = options.height ?? 400, marginTop = 20, marginBottom = 44;
  const domain: [number, number] = [
    Math.min(...sorted.map((d) => Math.min(d.value, d.lower))),
    Math.max(...sorted.map((d) => Math.max(d.value, d.upper))),
  ];
  if (!(domain[1] > domain[0])) domain[1] = domain[0] + 1;
  const last = (series: LensPoint["series"]) => sorted.filter((d) => d.series === series).at(-1);
  const ends = (["backtracking", "control"] as const).flatMap((series) => {
    const p = last(series);
    return p
      ? [{ x: p.layer, y: p.value, text: series, color: series === "control" ? COLORS.control : COLORS.bt }]
      : [];
  });
  return render(
    "logit_lens_by_layer",
    {
      title: "Logit lens: trigger token by layer, backtracking vs control",
      subtitle: "lines: mean; bands: 95% CI (problem-clustered bootstrap); layer 0 = embedding output",
      height: 400,
    },
    options,
    {
      marginLeft: 60,
      marginRight: 110,
      marginTop,
      marginBottom,
      x: {
        label: "Layer →",
        domain: [0, maxLayer],
        ticks,
        // layer 0 is the embedding output, the last the final residual stream (what the model outputs)
        tickFormat: (d: number) => (d === 0 ? "emb" : d === maxLayer ? `${d} (final)` : String(d)),
      },
      y: { label: `↑ ${label}`, grid: true, reverse: metric === "rank", domain },
      color: { domain: ["backtracking", "control"], range: [COLORS.bt, COLORS.control] },
      marks: [
        Plot.ruleX(options.markLayers ?? [], { stroke: COLORS.highlight, strokeDasharray: "4,3" }),
        Plot.areaY(sorted, {
          x: "layer",
          y1: "lower",
          y2: "upper",
          fill: "series",
          fillOpacity: 0.2,
          z: "series",
        }),
        Plot.lineY(sorted, { x: "layer", y: "value", stroke: "series", strokeWidth: 2, z: "series" }),
        Plot.dot(sorted, { x: "layer", y: "value", fill: "series", r: 2.5 }),
        ...endLabelMarks(ends, { domain, height, marginTop, marginBottom, reverse: metric === "rank" }),
      ],
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// (d) Ablation importance by layer

/** One component of the ablation scan. */
export interface AblationBar extends ValueCI {
  readonly layer: number;
  readonly component: "attn" | "mlp";
  /** Drawn in the highlight colour (e.g. selected or planted components). */
  readonly highlight?: boolean;
}

/** Options of {@linkcode ablationImportanceByLayer}. */
export interface AblationFigureOptions extends FigureOptions {
  /** What `value` is (y-axis label; default "Mean Δ log-prob of trigger when ablated"). */
  readonly valueLabel?: string;
  /** Legend text of highlighted bars (default "selected"). */
  readonly highlightLabel?: string;
}

/**
 * (d) Ablation scan: mean effect of zero-ablating each attention / MLP layer on the trigger, two facets,
 * bars with CI error bars; highlighted components in orange.
 */
export function ablationImportanceByLayer(
  data: readonly AblationBar[],
  options: AblationFigureOptions = {},
): Figure {
  nonEmpty(data, "ablationImportanceByLayer");
  checkCI(data, "ablationImportanceByLayer");
  const hl = options.highlightLabel ?? "selected";
  const rows = data.map((d) => ({
    ...d,
    facet: d.component === "attn" ? "Attention" : "MLP",
    kind: d.highlight ? hl : "other",
  }));
  const layers = [...new Set(data.map((d) => d.layer))].sort((a, b) => a - b);
  const hasHighlight = rows.some((r) => r.kind === hl);
  return render(
    "ablation_importance_by_layer",
    {
      title: "Ablation scan: effect on the trigger by layer",
      subtitle: `bars: mean over events of the value on the axis; error bars: 95% CI` +
        (hasHighlight ? `; orange: ${hl}` : ""),
      height: 460,
    },
    options,
    {
      marginLeft: 60,
      marginRight: 70,
      x: {
        label: "Layer →",
        domain: layers,
        tickFormat: (d: number) => (layers.length > 20 && d % 2 ? "" : String(d)),
      },
      y: {
        label: `↑ ${options.valueLabel ?? "Mean Δ log-prob of trigger when ablated (nats)"}`,
        grid: true,
        // Include the CI whiskers, so no error bar is clipped.
        domain: [
          Math.min(0, ...rows.map((r) => Math.min(r.value, r.lower ?? r.value))),
          Math.max(0, ...rows.map((r) => Math.max(r.value, r.upper ?? r.value))),
        ],
        nice: true,
      },
      fy: { label: null, domain: ["Attention", "MLP"] },
      color: { domain: [hl, "other"], range: [COLORS.highlight, COLORS.muted] },
      marks: [
        Plot.frame({ stroke: "#ddd" }),
        Plot.barY(rows, { x: "layer", y: "value", fy: "facet", fill: "kind" }),
        Plot.ruleX(rows, { x: "layer", y1: "lower", y2: "upper", fy: "facet", stroke: "black" }),
        Plot.ruleY([0]),
      ],
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// (e) BT rate by condition

/** One bar of {@linkcode btRateByCondition}. */
export interface ConditionRate extends ValueCI {
  /** Bar label, e.g. "baseline", "targeted", "random #1". */
  readonly condition: string;
  /** Colour group. */
  readonly kind: "baseline" | "targeted" | "random" | "other";
  readonly n?: number;
  /**
   * Set when the condition's text degenerated (`experiments/backtracking/degeneration.ts`): its bar is drawn
   * faded and its label says so, since its rate is not a backtracking effect.
   */
  readonly degenerate?: boolean;
}

/**
 * (e) Strict BT rate by generation condition (baseline, targeted ablation, each random draw), with CI
 * error bars and a dashed rule at the baseline rate; degenerate conditions faded and labelled.
 */
export function btRateByCondition(data: readonly ConditionRate[], options: FigureOptions = {}): Figure {
  nonEmpty(data, "btRateByCondition");
  checkCI(data, "btRateByCondition");
  const base = data.find((d) => d.kind === "baseline");
  const anyDegenerate = data.some((d) => d.degenerate);
  return render(
    "bt_rate_by_condition",
    {
      title: "Backtracking rate by condition: baseline vs ablations",
      subtitle: "strict triggers; bars: 95% CI (Wilson, clustered by problem); dashed: baseline" +
        (anyDegenerate
          ? "\nfaded, DEGENERATE: the text broke (EOS collapse, length cap or lost answers), so its rate does " +
            "not\nmeasure backtracking (report: conditions table)"
          : ""),
      height: 60 + 40 * data.length,
    },
    options,
    {
      marginLeft: labelMargin(data.map((d) => d.condition), 300),
      marginRight: 90,
      x: percentAxis("Backtracking rate (%) →"),
      y: { label: null, domain: data.map((d) => d.condition) },
      color: {
        domain: ["baseline", "targeted", "random", "other"],
        range: [COLORS.baseline, COLORS.targeted, COLORS.random, COLORS.other],
      },
      marks: [
        Plot.barX(data.filter((d) => !d.degenerate), {
          y: "condition",
          x: "value",
          fill: "kind",
          fillOpacity: 0.85,
        }),
        Plot.barX(data.filter((d) => d.degenerate), {
          y: "condition",
          x: "value",
          fill: "kind",
          fillOpacity: 0.3,
        }),
        Plot.ruleY(data, { y: "condition", x1: "lower", x2: "upper", stroke: "black", strokeWidth: 1.5 }),
        Plot.tickX(data, { y: "condition", x: "lower", stroke: "black", inset: 9 }),
        Plot.tickX(data, { y: "condition", x: "upper", stroke: "black", inset: 9 }),
        Plot.ruleX(base ? [base.value] : [], { stroke: COLORS.baseline, strokeDasharray: "5,4" }),
        ...[false, true].map((degenerate) =>
          Plot.text(data.filter((d) => Boolean(d.degenerate) === degenerate), {
            y: "condition",
            x: "upper",
            text: (d: ConditionRate) =>
              `${pct(d.value)}${d.n === undefined ? "" : ` (n=${d.n})`}${degenerate ? "  DEGENERATE" : ""}`,
            fill: degenerate ? "#b00020" : "black",
            dx: 6,
            textAnchor: "start",
          })
        ),
        Plot.ruleX([0]),
      ],
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// (f) Formatting effect

/** One variant of {@linkcode formattingEffect}. */
export interface FormattingPoint {
  readonly variant: string;
  readonly bt_rate: ValueCI;
  readonly accuracy: ValueCI;
}

/** (f) Formatting sweep: BT rate and accuracy by prompt variant, two facets, CI error bars. */
export function formattingEffect(data: readonly FormattingPoint[], options: FigureOptions = {}): Figure {
  nonEmpty(data, "formattingEffect");
  const rows = data.flatMap((d) => [
    { variant: d.variant, metric: "Backtracking rate", ...d.bt_rate },
    { variant: d.variant, metric: "Accuracy", ...d.accuracy },
  ]);
  checkCI(rows, "formattingEffect");
  return render(
    "formatting_effect",
    {
      title: "Effect of prompt formatting on backtracking and accuracy",
      subtitle: "baseline condition; bars: 95% CI (Wilson, clustered by problem)",
      height: 80 + 36 * data.length,
    },
    options,
    {
      marginLeft: labelMargin(data.map((d) => d.variant), 300),
      marginRight: 30,
      x: percentAxis("Percent →", { ticks: 5 }),
      y: { label: null, domain: data.map((d) => d.variant) },
      fx: { label: null, domain: ["Backtracking rate", "Accuracy"] },
      color: { domain: ["Backtracking rate", "Accuracy"], range: [COLORS.targeted, COLORS.baseline] },
      marks: [
        Plot.frame({ stroke: "#ddd" }),
        Plot.barX(rows, { y: "variant", x: "value", fx: "metric", fill: "metric", fillOpacity: 0.85 }),
        Plot.ruleY(rows, {
          y: "variant",
          x1: "lower",
          x2: "upper",
          fx: "metric",
          stroke: "black",
          strokeWidth: 1.5,
        }),
        Plot.tickX(rows, { y: "variant", x: "lower", fx: "metric", stroke: "black", inset: 9 }),
        Plot.tickX(rows, { y: "variant", x: "upper", fx: "metric", stroke: "black", inset: 9 }),
        Plot.text(rows, {
          y: "variant",
          x: "upper",
          fx: "metric",
          text: (d: ValueCI) => pct(d.value),
          dx: 5,
          textAnchor: "start",
        }),
      ],
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// (g) Trade-off scatter

/** One condition of the trade-off scatter (e.g. one scale or subset of a phase 2 sweep). */
export interface TradeoffPoint {
  /** Point label, e.g. "baseline", "selected_all ×0.5", "c=-1" or "mlp_late_cluster". */
  readonly label: string;
  readonly bt_rate: ValueCI;
  readonly accuracy: ValueCI;
  /** Optional colour group (e.g. "baseline"). */
  readonly group?: string;
  /**
   * Set when the setting's text degenerated (`experiments/backtracking/degeneration.ts`): the point and its
   * bars are drawn faded and its label ends in " (degenerate)", since its rates do not measure backtracking.
   */
  readonly degenerate?: boolean;
}

/** A label of {@linkcode placeLabels}: the text, its anchor point and where it ended up (pixels). */
export interface PlacedLabel {
  readonly text: string;
  /** The `group` of each merged point, in order (points without one are left out). */
  readonly groups: readonly string[];
  /** Anchor point (the dot), pixels from the plot's top-left. */
  readonly px: number;
  readonly py: number;
  /** Text start (left, baseline), pixels. */
  readonly lx: number;
  readonly ly: number;
}

/**
 * Place point labels without overlaps: points closer than `mergePx` share one label (texts joined with
 * ", "); each label starts right of its point and, if its box overlaps a label already placed (or leaves
 * `top`..`bottom`), moves up or down in steps of one line until it is free (at most 12 lines away); a label
 * that would run past `right` starts left of its point. Boxes are estimated at `charPx` per character and
 * `linePx` high.
 *
 * @param points Anchor points in pixels with their texts, in priority order (earlier ones stay closer).
 * @returns One label per group of merged points.
 */
export function placeLabels(
  points: readonly {
    readonly text: string;
    readonly px: number;
    readonly py: number;
    readonly group?: string;
  }[],
  options: {
    readonly mergePx?: number;
    readonly charPx?: number;
    readonly linePx?: number;
    /** Pixel range a label's box must stay inside (its top ≥ `top`, its baseline ≤ `bottom`). */
    readonly top?: number;
    readonly bottom?: number;
    /** Right edge (pixels): a label that would run past it starts left of its point instead (default: none). */
    readonly right?: number;
  } = {},
): PlacedLabel[] {
  const merge = options.mergePx ?? 6, charPx = options.charPx ?? 6.6, line = options.linePx ?? 14;
  const groups: { text: string[]; groups: string[]; px: number; py: number }[] = [];
  for (const p of points) {
    const g = groups.find((q) => Math.hypot(q.px - p.px, q.py - p.py) < merge);
    if (g) (g.text.push(p.text), p.group !== undefined && g.groups.push(p.group));
    else groups.push({ text: [p.text], groups: p.group === undefined ? [] : [p.group], px: p.px, py: p.py });
  }
  const placed: PlacedLabel[] = [];
  const overlaps = (x: number, y: number, w: number) =>
    placed.some((b) => {
      const bw = b.text.length * charPx;
      return x < b.lx + bw + 4 && b.lx < x + w + 4 && Math.abs(y - b.ly) < line;
    });
  for (const g of groups) {
    const text = g.text.join(", ");
    const w = text.length * charPx;
    const x = g.px + 7 + w > (options.right ?? Infinity) ? g.px - 7 - w : g.px + 7;
    const [top, bottom] = [options.top ?? -Infinity, options.bottom ?? Infinity];
    const free = (yy: number) => yy - line >= top && yy <= bottom && !overlaps(x, yy, w);
    let y = g.py - 6;
    for (let k = 1; k <= 24 && !free(y); k++) {
      const cand = g.py - 6 + (k % 2 === 1 ? -1 : 1) * Math.ceil(k / 2) * line; // up first, then down
      if (free(cand)) y = cand;
    }
    placed.push({ text, groups: g.groups, px: g.px, py: g.py, lx: x, ly: y });
  }
  return placed;
}

/**
 * (g) Trade-off: BT rate (x) against accuracy (y) per condition, both with CI bars, labelled points; a
 * colour legend of the groups; labels of coinciding points merged and moved apart so none overlap (a
 * moved label gets a thin leader line to its point). Degenerate points (`degenerate: true`) are faded,
 * labelled "<label> (degenerate)", and a subtitle line (added to `options.subtitle` too) says why.
 */
export function tradeoffScatter(data: readonly TradeoffPoint[], options: FigureOptions = {}): Figure {
  nonEmpty(data, "tradeoffScatter");
  checkCI(data.map((d) => d.bt_rate), "tradeoffScatter (bt_rate)");
  checkCI(data.map((d) => d.accuracy), "tradeoffScatter (accuracy)");
  const rows = data.map((d) => ({
    label: d.degenerate ? `${d.label} (degenerate)` : d.label,
    group: d.group ?? "condition",
    degenerate: Boolean(d.degenerate),
    x: d.bt_rate.value,
    x1: d.bt_rate.lower,
    x2: d.bt_rate.upper,
    y: d.accuracy.value,
    y1: d.accuracy.lower,
    y2: d.accuracy.upper,
  }));
  const groups = [...new Set(rows.map((r) => r.group))];
  const colors = groups.map((g, i) =>
    g === "baseline"
      ? COLORS.baseline
      : [COLORS.targeted, COLORS.other, COLORS.without, COLORS.random][i % 4]!
  );
  const yMax = Math.min(1, Math.max(0.05, ...rows.map((r) => r.y2).filter(Number.isFinite)) * 1.15);
  // the x axis ends at the next 10% above the largest bound (not always at 100%), so settings that lie close
  // together are drawn further apart
  const xMax = Math.min(
    1,
    Math.ceil(Math.max(0.1, ...rows.map((r) => r.x2).filter(Number.isFinite)) * 10) / 10,
  );
  // Label placement in pixels of the plot area (the margins below, Plot's default top margin of 20).
  const width = options.width ?? 720, height = options.height ?? 440;
  const [ml, mr, mt, mb] = [60, 90, 20, 44];
  const toPx = (x: number, y: number) => ({
    px: ml + (x / xMax) * (width - ml - mr),
    py: mt + (1 - y / yMax) * (height - mt - mb),
  });
  const order = rows.map((r, i) => ({ r, i })).sort((a, b) =>
    (a.r.group === "baseline" ? 0 : 1) - (b.r.group === "baseline" ? 0 : 1) || a.i - b.i
  );
  const labels = placeLabels(order.map(({ r }) => ({ text: r.label, group: r.group, ...toPx(r.x, r.y) })), {
    top: mt,
    bottom: height - mb - 2,
    right: width - 4,
  });
  const fromPx = (lx: number, ly: number) => ({
    x: ((lx - ml) / (width - ml - mr)) * xMax,
    y: (1 - (ly - mt) / (height - mt - mb)) * yMax,
  });
  // a label takes its points' colour (black when it merges points of different groups)
  const labelColor = (l: PlacedLabel) =>
    new Set(l.groups).size === 1 ? colors[groups.indexOf(l.groups[0]!)]! : "black";
  const labelRows = labels.map((l) => ({
    text: l.text,
    color: labelColor(l),
    ...fromPx(l.lx, l.ly),
    moved: Math.abs(l.ly - (l.py - 6)) > 1,
    ...{ ax: fromPx(l.px, l.py) },
  }));
  const leaders = labelRows.filter((l) => l.moved).map((l) => ({ x1: l.ax.x, y1: l.ax.y, x2: l.x, y2: l.y }));
  const subtitle = [
    options.subtitle === undefined ? "points: conditions; bars: 95% CI on both axes" : options.subtitle,
    rows.some((r) => r.degenerate)
      ? 'faded, "(degenerate)": the text broke (EOS collapse, length cap or lost answers), so its\n' +
        "rates do not measure backtracking (report: the degeneration column of its table)"
      : null,
  ].filter((x) => x).join("\n");
  const faded = rows.filter((r) => r.degenerate), solid = rows.filter((r) => !r.degenerate);
  return render(
    "tradeoff_scatter",
    { title: "Trade-off: backtracking rate vs accuracy", height: 440 },
    { ...options, subtitle: subtitle || null },
    {
      marginLeft: ml,
      marginRight: mr,
      marginTop: mt,
      marginBottom: mb,
      x: percentAxis("Backtracking rate (%) →", { domain: [0, xMax * 100] }),
      y: { label: "↑ Accuracy (%)", percent: true, domain: [0, yMax * 100], grid: true },
      color: { domain: groups, range: colors },
      marks: [
        ...([[solid, 0.7], [faded, 0.25]] as const).flatMap(([rs, opacity]) => [
          Plot.ruleY(rs, { y: "y", x1: "x1", x2: "x2", stroke: "group", strokeOpacity: opacity }),
          Plot.ruleX(rs, { x: "x", y1: "y1", y2: "y2", stroke: "group", strokeOpacity: opacity }),
        ]),
        Plot.link(leaders, { x1: "x1", y1: "y1", x2: "x2", y2: "y2", stroke: "#999", strokeWidth: 0.75 }),
        Plot.dot(solid, { x: "x", y: "y", fill: "group", r: 4.5, stroke: "white" }),
        Plot.dot(faded, { x: "x", y: "y", fill: "group", fillOpacity: 0.3, r: 4.5, stroke: "white" }),
        // one mark per colour: a colour string in a channel would go through the colour scale
        ...[...new Set(labelRows.map((l) => l.color))].map((color) =>
          Plot.text(labelRows.filter((l) => l.color === color), {
            x: "x",
            y: "y",
            text: "text",
            textAnchor: "start",
            lineAnchor: "bottom",
            stroke: "white",
            strokeWidth: 3,
            paintOrder: "stroke",
            fill: color,
          })
        ),
      ],
    },
    { legend: groups.map((g, i) => ({ label: g, color: colors[i]! })) },
  );
}
