/**
 * Phase-2 figures: the steering dose-response, patching effects by layer, and the continuation
 * ablation's onset probability by scale. Same conventions as `lib/plots.ts` (one `Plot.plot` call per
 * figure in a linkedom document, standalone SVG with a title and a white background, {@link Figure}
 * values for `saveFigure` / `figureBundle`); the trade-off scatter comes from `lib/plots.ts` itself.
 *
 * @module
 */

import * as Plot from "@observablehq/plot";
import { COLORS, type Figure, render, type TradeoffPoint, type ValueCI, valueCI } from "../figures.ts";
import { endLabelMarks, niceDomain } from "../../../lib/figures/plot.ts";
import type { ConditionSummary } from "../metrics.ts";
import { settingDegeneration, type SettingResult } from "./summaries.ts";

/**
 * One steering strength of {@linkcode steeringDoseResponse}: rates with their cluster-adjusted Wilson
 * interval (`valueCI(summary.bt_rate)`, as `steering_results.csv`).
 */
export interface DosePoint {
  readonly coef: number;
  readonly bt_rate: ValueCI;
  readonly accuracy: ValueCI;
}

/**
 * BT rate and accuracy (with CI bars) against the steering coefficient (0 = baseline).
 *
 * @param direction A direction other than the mean-difference one: `title` names it in the title (e.g. "the
 *   organism's planted wait direction"), `unit` on the x axis (e.g. "planted direction").
 */
export function steeringDoseResponse(
  points: readonly DosePoint[],
  layer: number,
  direction?: { readonly title: string; readonly unit: string },
): Figure {
  if (points.length === 0) throw new RangeError("steeringDoseResponse: no data to plot");
  const rows = [...points].sort((a, b) => a.coef - b.coef).flatMap((p) => [
    { coef: p.coef, metric: "BT rate", ...p.bt_rate },
    { coef: p.coef, metric: "accuracy", ...p.accuracy },
  ]);
  const height = 400, marginTop = 20, marginBottom = 44;
  const maxCoef = Math.max(...rows.map((x) => x.coef));
  const ends = rows.filter((r) => r.coef === maxCoef).map((r) => ({
    x: r.coef,
    y: r.value,
    text: r.metric,
    color: r.metric === "BT rate" ? COLORS.bt : COLORS.without,
  }));
  return render(
    "steering_dose_response",
    {
      title: `Steering along ${direction?.title ?? "the backtracking direction"}: dose-response`,
      subtitle: `added at blocks.${layer}.hook_resid_pre on every generated position\n` +
        "bars: 95% CI (Wilson, clustered by problem)",
      height: 400,
    },
    {},
    {
      marginLeft: 56,
      marginRight: 80, // room for the end-of-line labels
      marginTop,
      marginBottom,
      x: { label: `Steering coefficient (× ${direction?.unit ?? "mean difference"}) →`, grid: true },
      y: { label: "↑ Rate (%)", percent: true, domain: [0, 100], grid: true },
      color: { domain: ["BT rate", "accuracy"], range: [COLORS.bt, COLORS.without], legend: false },
      marks: [
        Plot.ruleX([0], { stroke: "#999", strokeDasharray: "4,3" }),
        Plot.line(rows, { x: "coef", y: "value", z: "metric", stroke: "metric", strokeWidth: 2 }),
        Plot.ruleX(rows, { x: "coef", y1: "lower", y2: "upper", stroke: "metric", strokeOpacity: 0.7 }),
        Plot.dot(rows, { x: "coef", y: "value", fill: "metric", r: 4, stroke: "white" }),
        ...endLabelMarks(ends, { domain: [0, 1], height, marginTop, marginBottom }),
      ],
    },
  );
}

/** One (component, layer) point of {@linkcode patchingByLayer}. */
export interface PatchPoint extends ValueCI {
  readonly layer: number;
  readonly component: "attn" | "mlp";
}

/** Mean Δ log-prob of the onset token per layer, one line per component, CI bars. */
export function patchingByLayer(points: readonly PatchPoint[], direction: string, trigger = "all"): Figure {
  if (points.length === 0) throw new RangeError("patchingByLayer: no data to plot");
  // short enough for the 720 px width (the long form ran off the right edge)
  const recipient = direction === "bt_from_control" ? "BT ← control output" : "control ← BT output";
  const height = 380, marginTop = 20, marginBottom = 44;
  // include the CI bars, so none is clipped
  const domain = niceDomain([
    Math.min(0, ...points.map((p) => Math.min(p.value, p.lower ?? p.value))),
    Math.max(0, ...points.map((p) => Math.max(p.value, p.upper ?? p.value))),
  ]);
  const ends = (["attn", "mlp"] as const).flatMap((c) => {
    const ps = points.filter((p) => p.component === c);
    if (ps.length === 0) return [];
    const p = ps.reduce((a, b) => (b.layer > a.layer ? b : a));
    return [{ x: p.layer, y: p.value, text: c, color: c === "attn" ? COLORS.control : COLORS.bt }];
  });
  return render(
    `patching_${direction}${trigger === "all" ? "" : `_${trigger.replace(/\W+/g, "_")}`}`,
    {
      title: `Activation patching at the pre-onset position (${recipient})`,
      subtitle: `Δ log-prob of the onset token (patched − clean), trigger: ${trigger}\n` +
        "bars: 95% CI (problem-clustered bootstrap)",
      height: 380,
    },
    {},
    {
      marginLeft: 60,
      marginRight: 60, // room for the end-of-line labels
      marginTop,
      marginBottom,
      x: { label: "Layer →", grid: true, ticks: [...new Set(points.map((p) => p.layer))], tickFormat: "d" },
      y: { label: "↑ Δ log-prob (nats)", grid: true, domain },
      color: { domain: ["attn", "mlp"], range: [COLORS.control, COLORS.bt], legend: false },
      marks: [
        Plot.ruleY([0]),
        Plot.line(points, { x: "layer", y: "value", z: "component", stroke: "component", strokeWidth: 2 }),
        Plot.ruleX(points, { x: "layer", y1: "lower", y2: "upper", stroke: "component", strokeOpacity: 0.7 }),
        Plot.dot(points, { x: "layer", y: "value", fill: "component", r: 4, stroke: "white" }),
        ...endLabelMarks(ends, { domain, height, marginTop, marginBottom }),
      ],
    },
  );
}

/** One (subset, scale) point of {@linkcode continuationOnsetProb}. */
export interface ContinuationPoint extends ValueCI {
  readonly subset: string;
  readonly scale: number;
}

/** Mean P(onset token) at the pre-onset position against the scale, one line per subset; dashed: clean. */
export function continuationOnsetProb(points: readonly ContinuationPoint[], clean: number): Figure {
  if (points.length === 0) throw new RangeError("continuationOnsetProb: no data to plot");
  const subsets = [...new Set(points.map((p) => p.subset))];
  // never the clean line's blue (COLORS.baseline, = COLORS.control): a subset in it read as the clean line
  const palette = [COLORS.bt, COLORS.other, COLORS.without, COLORS.random, COLORS.highlight];
  const colorOf = (s: string) => palette[subsets.indexOf(s) % palette.length]!;
  const height = 380, marginTop = 20, marginBottom = 44;
  const domain: [number, number] = [0, Math.max(clean, ...points.map((p) => p.upper)) * 1.1 || 1];
  // Subsets whose curves coincide (equal, or within 1% of the axis at every scale: e.g. a selection whose
  // MLP part changes nothing) share one label, "a = b" or "a ≈ b": one line hides the other.
  const curveOf = (s: string) => new Map(points.filter((q) => q.subset === s).map((q) => [q.scale, q.value]));
  const tolerance = 0.01 * domain[1];
  const groups: { members: string[]; exact: boolean }[] = [];
  for (const s of subsets) {
    const c = curveOf(s);
    const close = (g: { members: string[] }) => {
      const o = curveOf(g.members[0]!);
      return o.size === c.size && [...c].every(([k, v]) => o.has(k) && Math.abs(o.get(k)! - v) <= tolerance);
    };
    const g = groups.find(close);
    if (!g) groups.push({ members: [s], exact: true });
    else {
      const o = curveOf(g.members[0]!);
      g.exact &&= [...c].every(([k, v]) => o.get(k) === v);
      g.members.push(s);
    }
  }
  const ends = groups.map(({ members, exact }) => {
    const p = points.filter((q) => q.subset === members[0]).reduce((a, b) => (b.scale > a.scale ? b : a));
    // the last member's line is drawn on top: its colour is the one seen
    return {
      x: p.scale,
      y: p.value,
      text: members.join(exact ? " = " : " ≈ "),
      color: colorOf(members.at(-1)!),
    };
  });
  return render(
    "continuation_onset_prob",
    {
      title: "Continuation ablation: P(onset token) at the pre-onset position",
      subtitle:
        "subset scaled at the pre-onset position only; dashed: clean; bars: 95% CI (problem-clustered bootstrap)",
      height: 380,
    },
    {},
    {
      marginLeft: 60,
      marginRight: Math.min(280, 30 + 7 * Math.max(...ends.map((e) => e.text.length))),
      marginTop,
      marginBottom,
      x: { label: "Scale of the subset's outputs →", grid: true },
      y: { label: "↑ P(onset token)", grid: true, domain },
      color: { domain: subsets, range: subsets.map(colorOf), legend: false },
      marks: [
        Plot.ruleY([clean], { stroke: COLORS.baseline, strokeDasharray: "5,4" }),
        Plot.line(points, { x: "scale", y: "value", z: "subset", stroke: "subset", strokeWidth: 2 }),
        Plot.ruleX(points, { x: "scale", y1: "lower", y2: "upper", stroke: "subset", strokeOpacity: 0.7 }),
        Plot.dot(points, { x: "scale", y: "value", fill: "subset", r: 3.5 }),
        ...endLabelMarks(ends, { domain, height, marginTop, marginBottom }),
      ],
    },
  );
}

/**
 * Trade-off points from settings (for `tradeoffScatter`): BT rate and accuracy with their cluster-adjusted
 * Wilson interval (`valueCI`, the `bt_rate_lower` / `_upper` of the sweep and steering CSVs), labelled
 * "baseline" (the baseline setting, a steering coefficient of 0 included: group "baseline" too),
 * `<subset> ×<scale>` for a scale, `c=<coef>` for a steering strength, else the subset's name; `degenerate`
 * set when the setting's text broke down against the baseline (`settingDegeneration`, the report's verdict).
 *
 * @param results The settings.
 * @param group The colour group of a non-baseline setting.
 * @param baseline The baseline's summary the degeneration verdict compares with (default: the summary of
 *   the setting without a comparison in `results`; none: only the absolute length-cap rule applies).
 */
export function tradeoffPoints(
  results: readonly SettingResult[],
  group: (r: SettingResult) => string,
  baseline: ConditionSummary | undefined = results.find((r) => r.comparison === undefined)?.summary,
): TradeoffPoint[] {
  return results.map((r) => {
    const isBaseline = r.spec.kind === "baseline" || r.spec.setting === "baseline";
    return {
      label: isBaseline
        ? "baseline"
        : r.spec.kind === "scale"
        ? `${r.spec.subset_name ?? r.spec.setting} ×${r.spec.scale}`
        : r.spec.kind === "steering"
        ? `c=${r.spec.coef}`
        : r.spec.subset_name ?? r.spec.setting,
      group: isBaseline ? "baseline" : group(r),
      bt_rate: valueCI(r.summary.bt_rate),
      accuracy: valueCI(r.summary.accuracy),
      ...(settingDegeneration(r, baseline).degenerate ? { degenerate: true } : {}),
    };
  });
}
