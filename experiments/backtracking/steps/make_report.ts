/**
 * Step `make-report`: the figures (SVG + PNG) from the run's analysis files, saved in
 * `runs/<id>/figures/` and copied to the project's `figures/`, and `runs/<id>/report.md`.
 *
 * Every figure is made only when its inputs exist, so a partial run still gets a partial report. Inputs are
 * read through the artifact readers (`artifacts/`).
 *
 * @module
 */

import { join } from "node:path";
import pl from "nodejs-polars";
import type { EventRow } from "../event_row.ts";
import { summarizeCondition } from "../metrics.ts";
import { degenerationFlags, figuresOf } from "../degeneration.ts";
import {
  type AblationBar,
  ablationImportanceByLayer,
  accuracyByBacktracking,
  btRateByCondition,
  btRateByVariant,
  type ConditionRate,
  type Figure,
  formattingEffect,
  type LensPoint,
  logitLensByLayer,
  saveFigure,
  valueCI,
} from "../figures.ts";
import { artifactPath, copyFiguresToProject, readMeta, writeArtifact } from "../run.ts";
import { embeddedFigures, type LensReportRow, renderReport, type ScanReportRow } from "../report.ts";
import { clusteredMeanCI } from "../../../lib/stats/stats.ts";
import { toDataFrame } from "../../../lib/tables/table.ts";
import { defaultAnalysisVariant, statsOptions } from "../settings.ts";
import { readEvents } from "../artifacts/events.ts";
import { ifPresent } from "../artifacts/files.ts";
import { readLensItems, readLensSummary } from "../artifacts/lens.ts";
import { type LayerSpec, readImportanceTable, readSelectedLayers } from "../artifacts/scan.ts";
import { type HeadScanFiles, readHeadScan } from "../artifacts/heads.ts";
import { headFigures } from "../head_report.ts";
import { lockRun, recordStep, type RunContext, say, type StepOptions } from "../context.ts";
import { type ReportInputs, reportParts } from "../report_parts.ts";
import { readProtocolValidation } from "../artifacts/protocol_validation.ts";

/** Options of {@linkcode makeReport}. */
export interface MakeReportOptions extends StepOptions {
  /** Copy the figures to this project-level folder (default `figures`); `null` = do not copy. */
  readonly projectFigures?: string | null;
}

/** Result of {@linkcode makeReport}. */
export interface MakeReportResult {
  readonly reportPath: string;
  readonly figures: string[];
  readonly copied: string[];
}

/** Condition kind for colouring. */
function conditionKind(c: string): ConditionRate["kind"] {
  if (c === "baseline") return "baseline";
  if (c === "targeted_ablation") return "targeted";
  if (c.startsWith("random_ablation")) return "random";
  return "other";
}

/** Figure data and figures from the run's files (missing inputs → figure skipped). */
export async function buildFigures(ctx: RunContext, rows: readonly EventRow[]): Promise<Figure[]> {
  return (await buildFiguresAndTables(ctx, rows)).figures;
}

/** Figures plus the lens and scan tables of the report. */
export async function buildFiguresAndTables(
  ctx: RunContext,
  rows: readonly EventRow[],
): Promise<
  {
    figures: Figure[];
    lens: LensReportRow[];
    scan: ScanReportRow[];
    selected?: LayerSpec;
    heads?: HeadScanFiles;
  }
> {
  const cfg = ctx.config;
  const opts = statsOptions(cfg);
  const figs: Figure[] = [];
  const lens: LensReportRow[] = [];
  const scan: ScanReportRow[] = [];
  const variants = cfg.prompting.formatting_variants.map((v) => v.name);
  const base = (v: string) => rows.filter((r) => r.variant === v && r.condition === "baseline");
  const perVariant = variants.filter((v) => base(v).length > 0).map((v) => ({
    v,
    s: summarizeCondition(base(v), opts),
  }));
  if (perVariant.length > 0) {
    figs.push(btRateByVariant(perVariant.map(({ v, s }) => ({ variant: v, n: s.n, ...valueCI(s.bt_rate) }))));
    figs.push(accuracyByBacktracking(perVariant.map(({ v, s }) => ({
      group: v,
      with_bt: { ...valueCI(s.accuracy_with_bt), n: s.accuracy_with_bt.n },
      without_bt: { ...valueCI(s.accuracy_without_bt), n: s.accuracy_without_bt.n },
    }))));
    figs.push(formattingEffect(perVariant.map(({ v, s }) => ({
      variant: v,
      bt_rate: valueCI(s.bt_rate),
      accuracy: valueCI(s.accuracy),
    }))));
  }
  const av = defaultAnalysisVariant(cfg);
  const conds = [...new Set(rows.filter((r) => r.variant === av).map((r) => r.condition))];
  if (conds.length > 1) {
    const summaries = conds.map((c) => ({
      c,
      s: summarizeCondition(rows.filter((r) => r.variant === av && r.condition === c), opts),
    }));
    const base = summaries.find(({ c }) => c === "baseline")?.s;
    figs.push(btRateByCondition(summaries.map(({ c, s }) => ({
      condition: c,
      kind: conditionKind(c),
      n: s.n,
      // the same verdict as the report's condition table (docs/protocol.md §15)
      degenerate: base !== undefined && s !== base &&
        degenerationFlags(figuresOf(s), figuresOf(base)).degenerate,
      ...valueCI(s.bt_rate),
    }))));
  }
  const items = await ifPresent(() => readLensItems(ctx.run));
  if (items && items.length > 0) {
    // One mean with a problem-clustered CI per (group, layer), groups in first-appearance order.
    const groups = toDataFrame(items, ["group", "layer", "example_id", "logprob"]).lazy()
      .groupBy(["group", "layer"], { maintainOrder: true })
      .agg(pl.col("example_id"), pl.col("logprob"))
      .collectSync();
    const points: LensPoint[] = groups.toRecords().map((g) => {
      const clusters = g.example_id as unknown as number[];
      const obs = (g.logprob as unknown as number[]).map((value, i) => ({ cluster: clusters[i]!, value }));
      const ci = clusteredMeanCI(obs, { samples: opts.bootstrap, seed: opts.seed, level: opts.level });
      return {
        layer: Number(g.layer),
        series: g.group === "bt" ? "backtracking" as const : "control" as const,
        value: ci.estimate,
        lower: Math.min(ci.lower, ci.estimate),
        upper: Math.max(ci.upper, ci.estimate),
      };
    });
    figs.push(logitLensByLayer(points, { metric: "logprob" }));
    const summary = await ifPresent(() => readLensSummary(ctx.run)) ?? [];
    if (summary.length > 0) {
      // The per-layer summary (file order) joined with the two series' means and CIs by layer.
      const series = (name: LensPoint["series"], prefix: string) =>
        toDataFrame(points, ["layer", "series", "value", "lower", "upper"])
          .filter(pl.col("series").eq(pl.lit(name)))
          .select(
            "layer",
            pl.col("value").alias(`${prefix}_mean`),
            pl.col("lower").alias(`${prefix}_lower`),
            pl.col("upper").alias(`${prefix}_upper`),
          );
      const joined = toDataFrame(summary)
        .join(series("backtracking", "bt"), { on: "layer", how: "left" })
        .join(series("control", "control"), { on: "layer", how: "left" });
      const num = (v: unknown) => (v === null || v === undefined ? NaN : Number(v));
      for (const r of joined.toRecords()) {
        lens.push({
          layer: num(r.layer),
          bt_mean: num(r.bt_mean),
          bt_lower: num(r.bt_lower),
          bt_upper: num(r.bt_upper),
          control_mean: num(r.control_mean),
          control_lower: num(r.control_lower),
          control_upper: num(r.control_upper),
          diff: num(r.diff_logprob_estimate),
          diff_lower: num(r.diff_logprob_lower),
          diff_upper: num(r.diff_logprob_upper),
          n_bt: num(r.n_bt),
          n_control: num(r.n_control),
        });
      }
    }
  }
  const imp = await ifPresent(() => readImportanceTable(ctx.run));
  const selected = await ifPresent(() => readSelectedLayers(ctx.run));
  if (imp && imp.length > 0) {
    const spec = cfg.analysis.selection_criterion === "specificity";
    const bars: AblationBar[] = imp.map((r) => {
      const component = r.component;
      const value = spec ? r.specificity_mean : r.delta_logprob_mean;
      const lower = spec ? r.specificity_lower : r.delta_logprob_lower;
      const upper = spec ? r.specificity_upper : r.delta_logprob_upper;
      return {
        layer: r.layer,
        component,
        value,
        lower: Number.isFinite(lower) ? Math.min(lower, value) : value,
        upper: Number.isFinite(upper) ? Math.max(upper, value) : value,
        highlight: selected?.[component].includes(r.layer) ?? false,
      };
    });
    for (const r of imp) {
      scan.push({
        layer: r.layer,
        component: r.component,
        mean: r.delta_logprob_mean,
        lower: r.delta_logprob_lower,
        upper: r.delta_logprob_upper,
        specificity: r.specificity_mean,
        n_events: r.n_events,
      });
    }
    figs.push(ablationImportanceByLayer(bars, {
      valueLabel: spec
        ? "Specificity (Δ log-prob trigger − control, nats)"
        : "Mean Δ log-prob of trigger when ablated (nats)",
    }));
  }
  const heads = await ifPresent(() => readHeadScan(ctx.run));
  if (heads) figs.push(...headFigures(heads));
  return { figures: figs, lens, scan, ...(selected ? { selected } : {}), ...(heads ? { heads } : {}) };
}

/**
 * Make the figures and the report.
 *
 * @param ctx The config and the run (no model needed).
 * @param options force (replace report.md), projectFigures.
 */
export async function makeReport(
  ctx: RunContext,
  options: MakeReportOptions = {},
): Promise<MakeReportResult> {
  await using _lock = await lockRun(ctx, "make-report");
  const overwrite = options.force ?? false;
  const rel = "report.md";
  if (!overwrite) {
    try {
      await Deno.stat(artifactPath(ctx.run, rel));
      throw new Error(`${artifactPath(ctx.run, rel)} already exists; pass --force to rebuild the report`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const rows = await readEvents(ctx.run);
  const built = await buildFiguresAndTables(ctx, rows);
  const figs = built.figures;
  const figDir = artifactPath(ctx.run, "figures");
  await Deno.mkdir(figDir, { recursive: true });
  const figures: string[] = [];
  for (const f of figs) {
    const { svgPath, pngPath } = await saveFigure(f, figDir);
    figures.push(svgPath, pngPath);
  }
  const copied = options.projectFigures === null
    ? []
    : await copyFiguresToProject(ctx.run, options.projectFigures);
  const meta = await readMeta(ctx.run);
  const organism = (meta as { model?: { organism?: Record<string, unknown> } }).model?.organism;
  const protocolValidation = await ifPresent(() => readProtocolValidation(ctx.run));
  const inputs: ReportInputs = {
    ...(organism ? { organism } : {}),
    ...(protocolValidation ? { protocolValidation } : {}),
    lens: built.lens,
    scan: built.scan,
    ...(built.selected ? { selected: built.selected } : {}),
    ...(built.heads ? { heads: built.heads } : {}),
    figures: figs.map((f) => ({ title: f.name.replaceAll("_", " "), path: `figures/${f.name}.png` })),
  };
  const text = renderReport(ctx.run.dir, { ...reportParts(ctx, rows, inputs), meta });
  const reportPath = await writeArtifact(ctx.run, rel, text, { overwrite });
  await recordStep(ctx.run, "make-report", { figures: figs.map((f) => f.name), copied: copied.length });
  // The report also embeds the figures of earlier steps (Phase 2's): say both counts.
  say(
    ctx,
    `make-report: ${figs.length} figure(s) made, ${embeddedFigures(text).length} embedded in the report at ` +
      join(ctx.run.dir, rel),
  );
  return { reportPath, figures, copied };
}
