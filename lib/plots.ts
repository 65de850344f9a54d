/**
 * Figures of the experiment as Observable Plot charts rendered in Deno with a linkedom DOM, one
 * declarative `Plot.plot` call per figure. Every figure function takes plain typed data (already
 * summarised, with confidence bounds) and returns a {@linkcode Figure}: a standalone SVG string with
 * the xmlns set, a white background and a title. {@linkcode saveFigure} writes the SVG and a PNG
 * rendered by `@resvg/resvg-js` at 2× scale; {@linkcode figureBundle} gives the Jupyter display bundle.
 *
 * Fonts: resvg draws no text without font files. {@linkcode resolveFontFiles} looks, in order, at
 * `BT_FONT_FILES` (paths separated by `:`), the npm package `dejavu-fonts-ttf` (when the import map
 * has it), `node_modules/dejavu-fonts-ttf`, and Debian's `fonts-dejavu-core`
 * (`/usr/share/fonts/truetype/dejavu`). System fonts are never scanned, so the PNG is the same on every
 * machine that has DejaVu Sans.
 *
 * @module
 */

import * as Plot from "@observablehq/plot";
import { Resvg } from "@resvg/resvg-js";
import { parseHTML } from "linkedom";
import { Buffer } from "node:buffer";
import type { MeanEstimate } from "./metrics.ts";
import { writeFileAtomic } from "./fs.ts";

/** A rendered figure. */
export interface Figure {
  /** File stem, e.g. `bt_rate_by_variant`. */
  readonly name: string;
  /** Standalone SVG (xmlns set, white background). */
  readonly svg: string;
  /** SVG size in CSS pixels. */
  readonly width: number;
  readonly height: number;
}

/** A value with a two-sided interval, e.g. a rate and its bootstrap CI. */
export interface ValueCI {
  readonly value: number;
  readonly lower: number;
  readonly upper: number;
}

/**
 * A {@linkcode ValueCI} from a metrics estimate.
 *
 * @param e A `MeanEstimate` / `RateEstimate` from `lib/metrics.ts`.
 * @param interval `"bootstrap"` (default; problem-clustered) or `"wilson"` (rates only).
 * @throws {RangeError} for `"wilson"` on an estimate that has no Wilson interval.
 */
export function valueCI(
  e: MeanEstimate & { readonly wilson?: { lower: number; upper: number } },
  interval: "bootstrap" | "wilson" = "bootstrap",
): ValueCI {
  if (interval === "wilson") {
    if (!e.wilson) throw new RangeError("valueCI: this estimate has no Wilson interval (it is not a rate)");
    return { value: e.value, lower: e.wilson.lower, upper: e.wilson.upper };
  }
  return { value: e.value, lower: e.bootstrap.lower, upper: e.bootstrap.upper };
}

// ---------------------------------------------------------------------------------------------------
// Rendering

/** The font family every figure asks for (and resvg's default). */
export const FONT_FAMILY = "DejaVu Sans";
const FONT_STACK = `${FONT_FAMILY}, sans-serif`;
const TITLE_HEIGHT = 30;
const SUBTITLE_HEIGHT = 18;

/** Palette: condition kinds and highlight colours. */
export const COLORS = {
  baseline: "#4682b4",
  targeted: "#e4572e",
  random: "#8c8c8c",
  other: "#6a51a3",
  with: "#e4572e",
  without: "#2e8b57",
  bt: "#e4572e",
  control: "#4682b4",
  highlight: "#d95f02",
  muted: "#9aa5b1",
} as const;

const SVG_NS = "http://www.w3.org/2000/svg";

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Common options of every figure. */
export interface FigureOptions {
  /** Title drawn above the chart (default: the figure's own). `null` = none. */
  readonly title?: string | null;
  /** Smaller line under the title, e.g. the CI method. `null` = none. */
  readonly subtitle?: string | null;
  /** Chart width in px (default 720). */
  readonly width?: number;
  /** Chart height in px (default depends on the figure). */
  readonly height?: number;
}

function validateSize(v: number | undefined, name: string): void {
  if (v !== undefined && !(Number.isFinite(v) && v >= 100 && v <= 4000)) {
    throw new RangeError(`option "${name}" must be a number of pixels in [100, 4000], got ${v}`);
  }
}

/**
 * Run one `Plot.plot` call in a linkedom document and wrap its SVG with a title and a white
 * background: every figure of the project (here and in `lib/phase2/figures.ts`) goes through this.
 */
export function render(
  name: string,
  defaults: { title: string; subtitle?: string; height: number },
  options: FigureOptions,
  plot: Plot.PlotOptions,
): Figure {
  validateSize(options.width, "width");
  validateSize(options.height, "height");
  const width = options.width ?? 720;
  const chartHeight = options.height ?? defaults.height;
  const title = options.title === undefined ? defaults.title : options.title;
  const subtitle = options.subtitle === undefined ? defaults.subtitle ?? null : options.subtitle;
  const { document } = parseHTML("<!DOCTYPE html><html><body></body></html>");
  const el = Plot.plot({
    marginBottom: 44,
    ...plot,
    document: document as unknown as Document,
    width,
    height: chartHeight,
    style: { fontFamily: FONT_STACK, fontSize: "12px", background: "white", color: "black" },
  }) as unknown as Element;
  if (el.tagName.toLowerCase() !== "svg") {
    throw new Error(
      `figure "${name}": Plot returned <${el.tagName}>, expected <svg> (no title/caption/legend)`,
    );
  }
  const top = (title ? TITLE_HEIGHT : 0) + (subtitle ? SUBTITLE_HEIGHT : 0) + (title || subtitle ? 6 : 0);
  el.setAttribute("y", String(top));
  el.setAttribute("font-family", FONT_STACK);
  el.removeAttribute("class");
  const inner = el.outerHTML.replace(/<style>[\s\S]*?<\/style>/, "");
  const height = chartHeight + top;
  const head: string[] = [];
  if (title) {
    head.push(
      `<text x="12" y="22" font-size="16" font-weight="bold" text-anchor="start">${escapeXml(title)}</text>`,
    );
  }
  if (subtitle) {
    const y = (title ? TITLE_HEIGHT : 0) + 14;
    head.push(
      `<text x="12" y="${y}" font-size="12" fill="#555" text-anchor="start">${escapeXml(subtitle)}</text>`,
    );
  }
  const svg = `<svg xmlns="${SVG_NS}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="${FONT_STACK}" font-size="12">` +
    `<rect width="${width}" height="${height}" fill="white"/>${head.join("")}${inner}</svg>`;
  return { name, svg, width, height };
}

const pct = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "n/a");

function checkCI(rows: readonly ValueCI[], where: string): void {
  rows.forEach((r, i) => {
    if (!Number.isFinite(r.value)) return; // drawn as a gap
    if (r.lower > r.value + 1e-12 || r.upper < r.value - 1e-12) {
      throw new RangeError(
        `${where}: row ${i} has value ${r.value} outside its interval [${r.lower}, ${r.upper}]`,
      );
    }
  });
}

function nonEmpty<T>(rows: readonly T[], where: string): void {
  if (rows.length === 0) throw new RangeError(`${where}: no data to plot`);
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
      subtitle: "strict triggers, baseline condition; bars: 95% CI (problem-clustered bootstrap)",
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
 * Correlational: difficulty and truncation confound it (spec §13.14).
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
      subtitle: "accuracy = correct / n (unknown = wrong); bars: 95% CI; correlational, not causal",
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
    logprob: "Log-probability of trigger token",
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
      x: {
        label: "Layer →",
        domain: [0, maxLayer],
        ticks,
        tickFormat: (d: number) => (d === 0 ? "emb" : String(d)),
      },
      y: { label: `↑ ${label}`, grid: true, reverse: metric === "rank" },
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
        Plot.text(
          sorted,
          Plot.selectLast({
            x: "layer",
            y: "value",
            z: "series",
            text: "series",
            fill: "series",
            dx: 8,
            textAnchor: "start",
          }),
        ),
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
      subtitle: `bars: mean over events; error bars: 95% CI${hasHighlight ? `; orange: ${hl}` : ""}`,
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
        label: `↑ ${options.valueLabel ?? "Mean Δ log-prob of trigger when ablated"}`,
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
}

/**
 * (e) Strict BT rate by generation condition (baseline, targeted ablation, each random draw), with CI
 * error bars and a dashed rule at the baseline rate.
 */
export function btRateByCondition(data: readonly ConditionRate[], options: FigureOptions = {}): Figure {
  nonEmpty(data, "btRateByCondition");
  checkCI(data, "btRateByCondition");
  const base = data.find((d) => d.kind === "baseline");
  return render(
    "bt_rate_by_condition",
    {
      title: "Backtracking rate: baseline vs targeted vs random ablation",
      subtitle: "strict triggers; bars: 95% CI (problem-clustered bootstrap); dashed: baseline",
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
        Plot.barX(data, { y: "condition", x: "value", fill: "kind", fillOpacity: 0.85 }),
        Plot.ruleY(data, { y: "condition", x1: "lower", x2: "upper", stroke: "black", strokeWidth: 1.5 }),
        Plot.tickX(data, { y: "condition", x: "lower", stroke: "black", inset: 9 }),
        Plot.tickX(data, { y: "condition", x: "upper", stroke: "black", inset: 9 }),
        Plot.ruleX(base ? [base.value] : [], { stroke: COLORS.baseline, strokeDasharray: "5,4" }),
        Plot.text(data, {
          y: "condition",
          x: "upper",
          text: (d: ConditionRate) => `${pct(d.value)}${d.n === undefined ? "" : ` (n=${d.n})`}`,
          dx: 6,
          textAnchor: "start",
        }),
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
      subtitle: "baseline condition; bars: 95% CI (problem-clustered bootstrap)",
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
  /** Point label, e.g. "s=0.5" or "mlp_late_cluster". */
  readonly label: string;
  readonly bt_rate: ValueCI;
  readonly accuracy: ValueCI;
  /** Optional colour group (e.g. "baseline"). */
  readonly group?: string;
}

/** (g) Trade-off: BT rate (x) against accuracy (y) per condition, both with CI bars, labelled points. */
export function tradeoffScatter(data: readonly TradeoffPoint[], options: FigureOptions = {}): Figure {
  nonEmpty(data, "tradeoffScatter");
  checkCI(data.map((d) => d.bt_rate), "tradeoffScatter (bt_rate)");
  checkCI(data.map((d) => d.accuracy), "tradeoffScatter (accuracy)");
  const rows = data.map((d) => ({
    label: d.label,
    group: d.group ?? "condition",
    x: d.bt_rate.value,
    x1: d.bt_rate.lower,
    x2: d.bt_rate.upper,
    y: d.accuracy.value,
    y1: d.accuracy.lower,
    y2: d.accuracy.upper,
  }));
  const groups = [...new Set(rows.map((r) => r.group))];
  const yMax = Math.min(1, Math.max(0.05, ...rows.map((r) => r.y2).filter(Number.isFinite)) * 1.15);
  return render(
    "tradeoff_scatter",
    {
      title: "Trade-off: backtracking rate vs accuracy",
      subtitle: "points: conditions; bars: 95% CI on both axes",
      height: 440,
    },
    options,
    {
      marginLeft: 60,
      marginRight: 90,
      x: percentAxis("Backtracking rate (%) →"),
      y: { label: "↑ Accuracy (%)", percent: true, domain: [0, yMax * 100], grid: true },
      color: {
        domain: groups,
        range: groups.map((g, i) =>
          g === "baseline"
            ? COLORS.baseline
            : [COLORS.targeted, COLORS.other, COLORS.without, COLORS.random][i % 4]!
        ),
      },
      marks: [
        Plot.ruleY(rows, { y: "y", x1: "x1", x2: "x2", stroke: "group", strokeOpacity: 0.7 }),
        Plot.ruleX(rows, { x: "x", y1: "y1", y2: "y2", stroke: "group", strokeOpacity: 0.7 }),
        Plot.dot(rows, { x: "x", y: "y", fill: "group", r: 4.5, stroke: "white" }),
        Plot.text(rows, {
          x: "x",
          y: "y",
          text: "label",
          dx: 7,
          dy: -8,
          textAnchor: "start",
          stroke: "white",
          strokeWidth: 3,
          paintOrder: "stroke",
          fill: "black",
        }),
      ],
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// Output: fonts, PNG, files, Jupyter

const SYSTEM_FONT_DIRS = [
  "/usr/share/fonts/truetype/dejavu",
  "/usr/share/fonts/TTF",
  "/usr/share/fonts/dejavu",
];
const FONT_FILES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"];

/** The paths that are files, resolved through symlinks and deduplicated, in order. */
function existing(paths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    try {
      if (Deno.statSync(p).isFile) out.add(Deno.realPathSync(p));
    } catch {
      // missing: skip
    }
  }
  return [...out];
}

/** Where the fonts came from, and the files. */
export interface FontSource {
  readonly source: "env" | "npm" | "system" | "none";
  readonly files: readonly string[];
}

let fontCache: FontSource | undefined;

/**
 * Font files for resvg: `BT_FONT_FILES` (":"-separated paths), else DejaVu Sans from the npm package
 * `dejavu-fonts-ttf`, else from Debian's fonts-dejavu-core. Cached after the first call.
 *
 * @throws {Error} if `BT_FONT_FILES` names a file that does not exist.
 */
export function resolveFontFiles(): FontSource {
  if (fontCache) return fontCache;
  const env = Deno.env.get("BT_FONT_FILES");
  if (env) {
    const files = env.split(":").filter((p) => p !== "");
    const missing = files.filter((p) => existing([p]).length === 0);
    if (missing.length > 0) {
      throw new Error(`BT_FONT_FILES names missing font file(s): ${missing.join(", ")}`);
    }
    return (fontCache = { source: "env", files });
  }
  const npm: string[] = [];
  for (const f of FONT_FILES) {
    try {
      const url = import.meta.resolve(`dejavu-fonts-ttf/ttf/${f}`);
      if (url.startsWith("file:")) npm.push(new URL(url).pathname);
    } catch {
      // not in the import map
    }
    npm.push(new URL(`../node_modules/dejavu-fonts-ttf/ttf/${f}`, import.meta.url).pathname);
  }
  const fromNpm = existing(npm);
  if (fromNpm.length > 0) return (fontCache = { source: "npm", files: fromNpm });
  const sys = existing(SYSTEM_FONT_DIRS.flatMap((d) => FONT_FILES.map((f) => `${d}/${f}`)));
  if (sys.length > 0) return (fontCache = { source: "system", files: sys });
  return (fontCache = { source: "none", files: [] });
}

let warnedNoFont = false;

/** Options of {@linkcode renderPng}. */
export interface PngOptions {
  /** Zoom factor (default 2). */
  readonly scale?: number;
  /** Font files (default {@linkcode resolveFontFiles}). */
  readonly fontFiles?: readonly string[];
}

/**
 * Render an SVG to PNG with resvg on a white background.
 *
 * @returns PNG bytes. Without any font file text is not drawn, and a warning is printed once.
 * @throws {RangeError} if `scale` is not in (0, 8].
 */
export function renderPng(svg: string, options: PngOptions = {}): Uint8Array {
  const scale = options.scale ?? 2;
  if (!(scale > 0 && scale <= 8)) throw new RangeError(`option "scale" must be in (0, 8], got ${scale}`);
  const fontFiles = options.fontFiles ?? resolveFontFiles().files;
  if (options.fontFiles === undefined && fontFiles.length === 0 && !warnedNoFont) {
    warnedNoFont = true;
    console.warn(
      "plots: no font file found, PNG text will be missing. Install the npm package dejavu-fonts-ttf " +
        "(deno.json import) or Debian's fonts-dejavu-core, or set BT_FONT_FILES.",
    );
  }
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background: "white",
    font: {
      fontFiles: [...fontFiles],
      loadSystemFonts: false,
      defaultFontFamily: FONT_FAMILY,
      sansSerifFamily: FONT_FAMILY,
    },
  });
  return new Uint8Array(resvg.render().asPng());
}

/**
 * Write `<dir>/<name>.svg` and `<dir>/<name>.png` (2× scale) atomically.
 *
 * @param name File stem (default `fig.name`).
 * @returns The two paths.
 */
export async function saveFigure(
  fig: Figure,
  dir: string,
  name: string = fig.name,
): Promise<{ svgPath: string; pngPath: string }> {
  if (!/^[\w.-]+$/.test(name)) {
    throw new RangeError(`saveFigure: figure name must be a plain file stem, got "${name}"`);
  }
  const svgPath = `${dir}/${name}.svg`;
  const pngPath = `${dir}/${name}.png`;
  await writeFileAtomic(svgPath, fig.svg, { createDir: true });
  await writeFileAtomic(pngPath, renderPng(fig.svg), { createDir: true });
  return { svgPath, pngPath };
}

/** Jupyter display bundle of a figure: SVG text and base64 PNG. */
export interface FigureBundle {
  readonly "image/svg+xml": string;
  readonly "image/png": string;
}

/**
 * Jupyter display bundle `{"image/svg+xml", "image/png"}` (PNG base64, 2× scale), for
 * `await Deno.jupyter.display(figureBundle(fig), { raw: true })`.
 */
export function figureBundle(fig: Figure): FigureBundle {
  return { "image/svg+xml": fig.svg, "image/png": Buffer.from(renderPng(fig.svg)).toString("base64") };
}
