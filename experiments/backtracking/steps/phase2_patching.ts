/**
 * Step `phase2-patching`: activation patching of every attention and MLP output at the pre-onset
 * position, per layer, in both directions (BT prefix ← matched control's output; control prefix ← BT
 * event's output), on the lens/scan items (selected BT events and their position-matched controls).
 *
 * Config `phase2.patching`: `components` (default both), `layers` (`"all"` or a list) and `max_events`
 * (the most BT events patched, a seeded sub-selection of the lens/scan items like theirs; null = the
 * continuation ablation's `max_events`). Finished outputs are reused only when they were made with the
 * same settings ({@linkcode patchingSettings}, stored in `phase2_patching.json`).
 *
 * Writes `analysis/patching_results.csv` (one row per item × direction × component × layer),
 * `analysis/patching_summary.csv` (mean Δ log-prob of the onset token with problem-clustered CIs, over
 * all events and per onset trigger), `analysis/phase2_patching.json` (with the localisation: the
 * component with the largest effect per direction and trigger) and `figures/patching_<direction>.{svg,png}`.
 *
 * @module
 */

import { fixed } from "../../../lib/tables/format.ts";
import type { Config } from "../config.ts";
import { toCsv } from "../events.ts";
import { type BacktrackEvent, type ControlPosition, selectEvents } from "../event_selection.ts";
import { patchingByLayer } from "../phase2/figures.ts";
import {
  activationPatching,
  localise,
  type PatchDirection,
  summarizePatching,
} from "../../../lib/interp/activation_patching.ts";
import { saveFigure } from "../figures.ts";
import { artifactPath } from "../run.ts";
import { eventSelectionMode, phase2Variant, statsOptions } from "../settings.ts";
import { analysisItems } from "../analysis_items.ts";
import type { Phase2StepOptions } from "../phase2/setup.ts";
import { allExist } from "../artifacts/files.ts";
import {
  PATCHING_OUTPUTS,
  type PatchingResult,
  type PatchingSettings,
  readPatchingResult,
  writePhase2Output,
} from "../artifacts/phase2.ts";
import { ensureModel, lockRun, type ModelContext, recordStep, say } from "../context.ts";

/** The effective patching settings (`phase2.patching`, `max_events` null = the continuation ablation's). */
export function patchingSettings(config: Config): PatchingSettings {
  const p = config.phase2.patching;
  return {
    components: (["attn", "mlp"] as const).filter((c) => p.components.includes(c)),
    layers: p.layers === "all" ? "all" : [...new Set(p.layers)].sort((a, b) => a - b),
    max_events: p.max_events ?? config.phase2.continuation_ablation.max_events,
  };
}

/**
 * At most `max` of the events (a seeded sub-selection, by the config's event-selection mode) and the
 * controls matched to them, `matchedTo` re-indexed.
 */
function capItems(
  config: Config,
  events: readonly BacktrackEvent[],
  controls: readonly ControlPosition[],
  max: number,
): { events: BacktrackEvent[]; controls: ControlPosition[] } {
  if (events.length <= max) return { events: [...events], controls: [...controls] };
  const kept = selectEvents(events, { max, seed: config.run.seed, mode: eventSelectionMode(config) });
  const index = new Map(kept.map((e, i) => [events.indexOf(e), i]));
  return {
    events: kept,
    controls: controls.flatMap((c) => {
      const i = index.get(c.matchedTo);
      return i === undefined ? [] : [{ ...c, matchedTo: i }];
    }),
  };
}

const DIRECTIONS: readonly PatchDirection[] = ["bt_from_control", "control_from_bt"];
/** Two decimals, no "-0.00" (the report's rule, lib/tables/format.ts). */
const f2 = (x: number) => fixed(x, 2);

/**
 * Run the patching (or reuse its outputs).
 *
 * @param ctx The config, the run, and the model slot (needs detect-events).
 * @param options `force`: recompute.
 * @throws {RangeError} when `phase2.patching.layers` names a layer the model lacks.
 */
export async function phase2Patching(
  ctx: ModelContext,
  options: Phase2StepOptions = {},
): Promise<PatchingResult> {
  await using _lock = await lockRun(ctx, "phase2-patching");
  const settings = patchingSettings(ctx.config);
  if (!options.force && await allExist(ctx.run, PATCHING_OUTPUTS)) {
    const stored = await readPatchingResult(ctx.run);
    if (JSON.stringify(stored.settings) === JSON.stringify(settings)) return { ...stored, status: "reused" };
    say(ctx, "phase2-patching: settings changed since the outputs were made; recomputing");
  }
  const variant = phase2Variant(ctx.config);
  const { model } = await ensureModel(ctx);
  const L = model.config.numLayers;
  const layers = settings.layers === "all" ? Array.from({ length: L }, (_, l) => l) : settings.layers;
  const bad = layers.filter((l) => l >= L);
  if (bad.length > 0) {
    throw new RangeError(`phase2.patching.layers: ${bad.join(", ")} outside the model's layers [0, ${L})`);
  }
  const { components } = settings;
  const all = await analysisItems(ctx, variant);
  const items = capItems(ctx.config, all.events, all.controls, settings.max_events);
  const rows = await activationPatching(model, items.events, items.controls, { layers, components });
  const sitesPerPair = layers.length * components.length * DIRECTIONS.length;
  const nPairs = rows.length / sitesPerPair || 0;
  const summary = summarizePatching(rows, statsOptions(ctx.config));
  await writePhase2Output(ctx.run, PATCHING_OUTPUTS[0], toCsv(rows));
  await writePhase2Output(ctx.run, PATCHING_OUTPUTS[1], toCsv(summary));
  const triggers = [...new Set(summary.map((r) => r.trigger))];
  const localisation = DIRECTIONS.flatMap((d) => triggers.map((t) => localise(summary, d, t)));
  const figDir = artifactPath(ctx.run, "figures");
  for (const d of DIRECTIONS) {
    const pts = summary.filter((r) => r.direction === d && r.trigger === "all").map((r) => ({
      layer: r.layer,
      component: r.component,
      value: r.delta_logprob_mean,
      lower: Math.min(r.delta_logprob_lower, r.delta_logprob_mean),
      upper: Math.max(r.delta_logprob_upper, r.delta_logprob_mean),
    }));
    if (pts.length) await saveFigure(patchingByLayer(pts, d), figDir);
  }
  const head = ["direction", "trigger", "component", ...layers.map((l) => `L${l}`)];
  const table = [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...DIRECTIONS.flatMap((d) =>
      triggers.flatMap((t) =>
        components.map((c) => {
          const cells = layers.map((l) => {
            const r = summary.find((x) =>
              x.direction === d && x.trigger === t && x.component === c && x.layer === l
            );
            return r
              ? `${f2(r.delta_logprob_mean)} [${f2(r.delta_logprob_lower)}, ${f2(r.delta_logprob_upper)}]`
              : "";
          });
          return `| ${d} | ${t} | ${c} | ${cells.join(" | ")} |`;
        })
      )
    ),
  ].join("\n");
  const loc = localisation.map((r) =>
    `- ${r.direction}, trigger ${r.trigger}: **${r.component} ${r.layer}** (Δ log-prob ${
      f2(r.delta_logprob_mean)
    } ` +
    `[${f2(r.delta_logprob_lower)}, ${f2(r.delta_logprob_upper)}], n = ${r.n})`
  ).join("\n");
  const md = [
    `${nPairs} event/control pairs of \`${variant}\`; each ${components.join(" and ")} output ` +
    `(${
      settings.layers === "all" ? "every layer" : `layers ${layers.join(", ")}`
    }) at the pre-onset position ` +
    `is replaced (scale 0 + add) by the donor's output at its matched position. Cells: mean Δ log-prob of ` +
    `the event's onset token (patched − clean) [95% CI, problem-clustered bootstrap].`,
    "",
    "Largest effect in the expected direction:",
    "",
    loc,
    "",
    table,
    "",
    "![Patching: BT prefix ← control](figures/patching_bt_from_control.png)",
    "",
    "![Patching: control prefix ← BT](figures/patching_control_from_bt.png)",
  ].join("\n");
  const result: PatchingResult = {
    variant,
    n_pairs: nPairs,
    settings,
    summary,
    localisation,
    section: { title: "Phase 2: activation patching at the pre-onset position", markdown: md },
  };
  await writePhase2Output(ctx.run, PATCHING_OUTPUTS[2], result);
  await recordStep(ctx.run, "phase2-patching", {
    variant,
    n_pairs: result.n_pairs,
    components,
    layers: settings.layers,
    localisation: localisation.filter((r) => r.trigger === "all").map((r) =>
      `${r.direction}: ${r.component} ${r.layer}`
    ),
  });
  say(ctx, `phase2-patching: ${result.n_pairs} pairs; ${loc.split("\n")[0] ?? ""}`);
  return { ...result, status: "ran" };
}
