/**
 * Step `phase2-patching`: activation patching of every attention and MLP output at the pre-onset
 * position, per layer, in both directions (BT prefix ← matched control's output; control prefix ← BT
 * event's output), on the lens/scan items (selected BT events and their position-matched controls).
 *
 * Writes `analysis/patching_results.csv` (one row per item × direction × component × layer),
 * `analysis/patching_summary.csv` (mean Δ log-prob of the onset token with problem-clustered CIs, over
 * all events and per onset trigger), `analysis/phase2_patching.json` (with the localisation: the
 * component with the largest effect per direction and trigger) and `figures/patching_<direction>.{svg,png}`.
 *
 * @module
 */

import { toCsv } from "../events.ts";
import { patchingByLayer } from "../phase2/figures.ts";
import {
  activationPatching,
  localise,
  type PatchDirection,
  type PatchSummaryRow,
  summarizePatching,
} from "../phase2/patching.ts";
import { saveFigure } from "../plots.ts";
import { artifactPath } from "../run.ts";
import { ensureModel, recordStep, say, type StepContext } from "./context.ts";
import { analysisItems } from "./logit_lens.ts";
import {
  allExist,
  type Phase2Section,
  phase2Stats,
  type Phase2StepOptions,
  phase2Variant,
  readResult,
  writeOutput,
} from "./phase2_common.ts";

/** Files written by {@linkcode phase2Patching}. */
export const PATCHING_OUTPUTS = [
  "analysis/patching_results.csv",
  "analysis/patching_summary.csv",
  "analysis/phase2_patching.json",
  "figures/patching_bt_from_control.svg",
] as const;

/** Result of {@linkcode phase2Patching} (the content of `phase2_patching.json`). */
export interface PatchingResult {
  readonly variant: string;
  readonly n_pairs: number;
  readonly summary: PatchSummaryRow[];
  /** Per direction and trigger group: the component with the largest effect in the expected sign. */
  readonly localisation: PatchSummaryRow[];
  readonly section: Phase2Section;
  readonly status?: "ran" | "reused";
}

const DIRECTIONS: readonly PatchDirection[] = ["bt_from_control", "control_from_bt"];
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "n/a");

/**
 * Run the patching (or reuse its outputs).
 *
 * @param ctx Run context (needs detect-events).
 * @param options `force`: recompute.
 */
export async function phase2Patching(
  ctx: StepContext,
  options: Phase2StepOptions = {},
): Promise<PatchingResult> {
  if (!options.force && await allExist(ctx, PATCHING_OUTPUTS)) {
    return { ...(await readResult<PatchingResult>(ctx, PATCHING_OUTPUTS[2])), status: "reused" };
  }
  const variant = phase2Variant(ctx);
  const items = await analysisItems(ctx, variant);
  const { model } = await ensureModel(ctx);
  const rows = await activationPatching(model, items.events, items.controls);
  const summary = summarizePatching(rows, phase2Stats(ctx));
  await writeOutput(ctx, PATCHING_OUTPUTS[0], toCsv(rows));
  await writeOutput(ctx, PATCHING_OUTPUTS[1], toCsv(summary));
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
  const L = model.config.numLayers;
  const head = ["direction", "trigger", "component", ...Array.from({ length: L }, (_, l) => `L${l}`)];
  const table = [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...DIRECTIONS.flatMap((d) =>
      triggers.flatMap((t) =>
        (["attn", "mlp"] as const).map((c) => {
          const cells = Array.from({ length: L }, (_, l) => {
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
    `${
      rows.length / (2 * L * DIRECTIONS.length) || 0
    } event/control pairs of \`${variant}\`; each attention and MLP ` +
    `output at the pre-onset position is replaced (scale 0 + add) by the donor's output at its matched ` +
    `position. Cells: mean Δ log-prob of the event's onset token (patched − clean) [95% CI, problem-clustered].`,
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
    n_pairs: rows.length / (2 * L * DIRECTIONS.length),
    summary,
    localisation,
    section: { title: "Phase 2: activation patching at the pre-onset position", markdown: md },
  };
  await writeOutput(ctx, PATCHING_OUTPUTS[2], result);
  await recordStep(ctx, "phase2-patching", {
    variant,
    n_pairs: result.n_pairs,
    localisation: localisation.filter((r) => r.trigger === "all").map((r) =>
      `${r.direction}: ${r.component} ${r.layer}`
    ),
  });
  say(ctx, `phase2-patching: ${result.n_pairs} pairs; ${loc.split("\n")[0] ?? ""}`);
  return { ...result, status: "ran" };
}
