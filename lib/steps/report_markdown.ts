/**
 * The markdown of `report.md`: provenance, the corrected numbers with CIs per variant × condition, the
 * reference-compatible numbers beside them, the selected layers, and the figures.
 *
 * @module
 */

import type { EventRow } from "../event_row.ts";
import { summarizeCondition, summaryMetricsReference } from "../metrics.ts";
import { artifactPath, type RunMeta } from "../run.ts";
import type { StepContext } from "./context.ts";
import { statsOptions } from "./logit_lens.ts";

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : `${(x * 100).toFixed(1)}%`;

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

/**
 * Build the report text.
 *
 * @param ctx Run context.
 * @param rows All event rows.
 * @param meta The run's meta.json.
 * @param figureNames Stems of the figures saved under `figures/`.
 */
export async function writeReportMarkdown(
  ctx: StepContext,
  rows: readonly EventRow[],
  meta: RunMeta,
  figureNames: readonly string[],
): Promise<string> {
  const cfg = ctx.config;
  const opts = statsOptions(cfg);
  const lines: string[] = [];
  lines.push(`# Backtracking as a state transition — run ${meta.run_id}`, "");
  const ep = meta.execution_provider;
  const model = meta.model as Record<string, unknown> | undefined;
  lines.push(
    `- Protocol: **${cfg.protocol}** (detection rule ${cfg.detection.rule}, extractor ${cfg.detection.answer_extractor}, ` +
      `chat template ${
        cfg.prompting.use_chat_template ? "on" : "off"
      }, intervention scope ${cfg.generation.intervention_scope})`,
    `- Model: ${meta.model_id}${model?.commit ? ` @ ${model.commit}` : ""}; execution provider ${
      ep ? `${ep.used} (${ep.reason})` : "–"
    }`,
    `- Git ${meta.git_sha}${
      meta.git_dirty === true ? " (dirty)" : ""
    }; host ${meta.hostname}; created ${meta.timestamp}`,
    `- Sampling: T=${cfg.generation.temperature}, top-p ${cfg.generation.top_p}, top-k ${cfg.generation.top_k}, ` +
      `max ${cfg.generation.max_new_tokens} new tokens, ${cfg.generation.num_samples_per_prompt} samples per problem`,
    "",
  );
  lines.push(
    "## Results per variant × condition (corrected definitions)",
    "",
    "Accuracy = correct / n (unknown answers count as wrong; the unknown rate is shown). Intervals: 95% " +
      "percentile bootstrap over problems.",
    "",
    "| variant | condition | n | BT rate [CI] | accuracy [CI] | unknown | truncated | repetition-4g | digit-free |",
    "|---|---|---|---|---|---|---|---|---|",
  );
  const groups = new Map<string, EventRow[]>();
  for (const r of rows) {
    const k = `${r.variant}\u0000${r.condition}`;
    const g = groups.get(k) ?? [];
    g.push(r);
    groups.set(k, g);
  }
  for (const [k, g] of groups) {
    const [v, c] = k.split("\u0000");
    const s = summarizeCondition(g, opts);
    lines.push(
      `| ${v} | ${c} | ${s.n} | ${pct(s.bt_rate.value)} [${pct(s.bt_rate.bootstrap.lower)}, ${
        pct(s.bt_rate.bootstrap.upper)
      }] | ${pct(s.accuracy.value)} [${pct(s.accuracy.bootstrap.lower)}, ${
        pct(s.accuracy.bootstrap.upper)
      }] | ${pct(s.unknown_rate)} | ${pct(s.truncation_rate.value)} | ${
        s.repetition_4gram.value.toFixed(3)
      } | ${pct(s.digit_free_rate.value)} |`,
    );
  }
  const ref = summaryMetricsReference(rows);
  lines.push(
    "",
    "## Reference-compatible summary (all rows pooled, as the reference's summary_metrics.json)",
    "",
    `Strict BT ${pct(ref.backtracking_strict_rate)}, relaxed ${
      pct(ref.backtracking_relaxed_rate)
    }, accuracy ` +
      `(unknowns excluded) ${pct(ref.accuracy)}, with BT ${pct(ref.accuracy_with_backtracking)}, without ` +
      `${
        pct(ref.accuracy_without_backtracking)
      }. These pool conditions (spec §13.5); read the table above instead.`,
    "",
  );
  const cmp = await readText(artifactPath(ctx.run, "analysis/condition_comparison_corrected.csv"));
  if (cmp) lines.push("## Condition comparison (paired with the baseline)", "", "```", cmp.trim(), "```", "");
  const sel = await readText(artifactPath(ctx.run, "analysis/selected_layers.json"));
  const rnd = await readText(artifactPath(ctx.run, "analysis/random_ablation_specs.json"));
  if (sel) {
    lines.push(
      "## Selected layers",
      "",
      `Criterion: ${cfg.analysis.selection_criterion}, top ${cfg.analysis.topk_layers_for_generation} per component.`,
      "",
      "```json",
      sel.trim(),
      "```",
      "",
    );
  }
  if (rnd) lines.push("Random-ablation draws:", "", "```json", rnd.trim(), "```", "");
  if (model?.organism) {
    const planted = (model.organism as { planted?: { hook: string; role: string }[] }).planted ?? [];
    lines.push(
      "## Ground truth (model organism)",
      "",
      ...planted.map((p) => `- planted: \`${p.hook}\` — ${p.role}`),
      "",
    );
  }
  if (figureNames.length > 0) {
    lines.push("## Figures", "", ...figureNames.map((n) => `![${n}](figures/${n}.svg)`), "");
  }
  lines.push(
    "## Artifacts",
    "",
    "`analysis/backtracking_events.csv` (reference's 17 columns, then ours), `summary_metrics.json` " +
      "(reference semantics), `summary_metrics_corrected.json`, `logit_lens*.csv`, `ablation_importance.csv`, " +
      "`selected_layers.json`, `random_ablation_specs.json`, `condition_comparison*.{csv,json}`, " +
      "`formatting_summary*.{csv,json}`; provenance in `meta.json`, config in `config_resolved.yaml`.",
    "",
  );
  return lines.join("\n");
}
