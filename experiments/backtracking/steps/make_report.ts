/**
 * Step `make-report`: the figures (SVG + PNG) from the run's analysis files, saved in
 * `runs/<id>/figures/` and copied to the project's `figures/`, and `runs/<id>/report.md`.
 *
 * Every figure is made only when its inputs exist, so a partial run still gets a partial report.
 *
 * @module
 */

import { join } from "node:path";
import type { EventRow } from "../event_row.ts";
import { parseCsv } from "../../../lib/tables/table.ts";
import { summarizeCondition } from "../metrics.ts";
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
import type { LensReportRow } from "../report.ts";
import { clusteredMeanCI } from "../../../lib/stats/stats.ts";
import {
  defaultAnalysisVariant,
  lockRun,
  recordStep,
  say,
  type StepContext,
  type StepOptions,
} from "./context.ts";
import { readEvents } from "./detect_events.ts";
import { statsOptions } from "./logit_lens.ts";
import { renderReport, type ScanReportRow } from "../report.ts";
import { type ReportInputs, reportParts } from "./report_parts.ts";

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

async function readCsvRecords(path: string): Promise<Record<string, string>[] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  return parseCsv(text).records;
}

async function readJsonFile<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return undefined;
  }
}

const num = (s: string | undefined) => (s === undefined || s === "" ? NaN : Number(s === "nan" ? NaN : s));

/** Condition kind for colouring. */
function conditionKind(c: string): ConditionRate["kind"] {
  if (c === "baseline") return "baseline";
  if (c === "targeted_ablation") return "targeted";
  if (c.startsWith("random_ablation")) return "random";
  return "other";
}

/** Figure data and figures from the run's files (missing inputs → figure skipped). */
export async function buildFigures(ctx: StepContext, rows: readonly EventRow[]): Promise<Figure[]> {
  return (await buildFiguresAndTables(ctx, rows)).figures;
}

/** Figures plus the lens and scan tables of the report. */
export async function buildFiguresAndTables(
  ctx: StepContext,
  rows: readonly EventRow[],
): Promise<
  {
    figures: Figure[];
    lens: LensReportRow[];
    scan: ScanReportRow[];
    selected?: { attn: number[]; mlp: number[] };
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
    figs.push(btRateByCondition(conds.map((c) => {
      const s = summarizeCondition(rows.filter((r) => r.variant === av && r.condition === c), opts);
      return { condition: c, kind: conditionKind(c), n: s.n, ...valueCI(s.bt_rate) };
    })));
  }
  const items = await readCsvRecords(artifactPath(ctx.run, "analysis/logit_lens_items.csv"));
  if (items && items.length > 0) {
    const groups = new Map<string, { cluster: number; value: number }[]>();
    for (const r of items) {
      const key = `${r.group}|${r.layer}`;
      const list = groups.get(key) ?? [];
      list.push({ cluster: num(r.example_id), value: num(r.logprob) });
      groups.set(key, list);
    }
    const points: LensPoint[] = [...groups.entries()].map(([k, obs]) => {
      const [group, layer] = k.split("|");
      const ci = clusteredMeanCI(obs, { samples: opts.bootstrap, seed: opts.seed, level: opts.level });
      return {
        layer: Number(layer),
        series: group === "bt" ? "backtracking" as const : "control" as const,
        value: ci.estimate,
        lower: Math.min(ci.lower, ci.estimate),
        upper: Math.max(ci.upper, ci.estimate),
      };
    });
    figs.push(logitLensByLayer(points, { metric: "logprob" }));
    const summary = await readCsvRecords(artifactPath(ctx.run, "analysis/logit_lens.csv")) ?? [];
    for (const s of summary) {
      const layer = num(s.layer);
      const b = points.find((p) => p.layer === layer && p.series === "backtracking");
      const c = points.find((p) => p.layer === layer && p.series === "control");
      lens.push({
        layer,
        bt_mean: b?.value ?? NaN,
        bt_lower: b?.lower ?? NaN,
        bt_upper: b?.upper ?? NaN,
        control_mean: c?.value ?? NaN,
        control_lower: c?.lower ?? NaN,
        control_upper: c?.upper ?? NaN,
        diff: num(s.diff_logprob_estimate),
        diff_lower: num(s.diff_logprob_lower),
        diff_upper: num(s.diff_logprob_upper),
        n_bt: num(s.n_bt),
        n_control: num(s.n_control),
      });
    }
  }
  const imp = await readCsvRecords(artifactPath(ctx.run, "analysis/ablation_importance.csv"));
  const selected = await readJsonFile<{ attn: number[]; mlp: number[] }>(
    artifactPath(ctx.run, "analysis/selected_layers.json"),
  );
  if (imp && imp.length > 0) {
    const spec = cfg.analysis.selection_criterion === "specificity";
    const bars: AblationBar[] = imp.map((r) => {
      const component = r.component === "attn" ? "attn" as const : "mlp" as const;
      const value = num(spec ? r.specificity_mean : r.delta_logprob_mean);
      const lower = num(spec ? r.specificity_lower : r.delta_logprob_lower);
      const upper = num(spec ? r.specificity_upper : r.delta_logprob_upper);
      return {
        layer: num(r.layer),
        component,
        value,
        lower: Number.isFinite(lower) ? Math.min(lower, value) : value,
        upper: Number.isFinite(upper) ? Math.max(upper, value) : value,
        highlight: selected?.[component].includes(num(r.layer)) ?? false,
      };
    });
    for (const r of imp) {
      scan.push({
        layer: num(r.layer),
        component: r.component === "attn" ? "attn" : "mlp",
        mean: num(r.delta_logprob_mean),
        lower: num(r.delta_logprob_lower),
        upper: num(r.delta_logprob_upper),
        specificity: num(r.specificity_mean),
        n_events: num(r.n_events),
      });
    }
    figs.push(ablationImportanceByLayer(bars, {
      valueLabel: spec
        ? "Specificity (Δ log-prob trigger − control)"
        : "Mean Δ log-prob of trigger when ablated",
    }));
  }
  return { figures: figs, lens, scan, ...(selected ? { selected } : {}) };
}

/**
 * Make the figures and the report.
 *
 * @param ctx Run context (no model needed).
 * @param options force (replace report.md), projectFigures.
 */
export async function makeReport(
  ctx: StepContext,
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
  const rows = await readEvents(ctx);
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
  const inputs: ReportInputs = {
    lens: built.lens,
    scan: built.scan,
    ...(built.selected ? { selected: built.selected } : {}),
    figures: figs.map((f) => ({ title: f.name.replaceAll("_", " "), path: `figures/${f.name}.png` })),
  };
  const text = renderReport(ctx.run.dir, { ...reportParts(ctx, rows, inputs), meta });
  const reportPath = await writeArtifact(ctx.run, rel, text, { overwrite });
  await recordStep(ctx, "make-report", { figures: figs.map((f) => f.name), copied: copied.length });
  say(ctx, `make-report: ${figs.length} figure(s), report at ${join(ctx.run.dir, rel)}`);
  return { reportPath, figures, copied };
}
