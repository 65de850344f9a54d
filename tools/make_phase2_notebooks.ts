/**
 * Generator of the Phase-2 notebooks `notebooks/11_*.ipynb` … `notebooks/15_*.ipynb` (sweeps, steering,
 * continuation ablation, activation patching, report), written deterministically (fixed cell ids, no
 * outputs). They run after the Phase-1 series (00–10) on the same run; each reuses its step's finished
 * outputs (`BT_FORCE=1` recomputes).
 *
 * ```sh
 * deno run --allow-read --allow-write tools/make_phase2_notebooks.ts          # (re)write
 * deno run --allow-read tools/make_phase2_notebooks.ts --check                # exit 1 when stale
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CellSpec,
  formatNotebook,
  formatNotebookText,
  notebookFromSpecs,
} from "../lib/notebook/nbformat.ts";

/** The notebooks folder. */
export const NOTEBOOKS_DIR: string = fileURLToPath(new URL("../notebooks/", import.meta.url));

const PARAMS: CellSpec = {
  md: `
## Parameters

\`BT_CONFIG\` [\`configs/organism.yaml\`], \`BT_RUN_ID\` [the current run], \`BT_RUNS_ROOT\` [\`runs/\`],
\`BT_FORCE=1\` recomputes (and regenerates this step's Phase-2 stores). Needs the Phase-1 baseline, events
and ablation scan (notebooks 01–05): run here when missing (\`BT_PREREQUISITES\`, see notebook 01).`,
};

/** The context cell of notebook \`nn\`: the run and the Phase-1 steps it needs, run or reused. */
const context = (nn: string): CellSpec => ({
  code: `
const params = notebookParams();
const { ctx, prerequisites } = await notebookSetup("${nn}", params);
const runTable = await showTable([{
  run: ctx.run.id,
  config: params.configPath,
  protocol: ctx.config.protocol,
  earlier_steps: earlierSteps(prerequisites),
}], { title: "Run" });`,
});

const IMPORTS = [
  `import { earlierSteps, notebookParams, notebookSetup, plantedCircuit } from "../experiments/backtracking/notebook_params.ts";`,
  `import { pct, pp, showFigure, showMarkdown, showTable } from "../lib/notebook/show.ts";`,
  `import { pick, runFigure } from "../experiments/backtracking/phase2/notebook.ts";`,
];

const setup = (...extra: string[]): CellSpec => ({ code: [...IMPORTS, ...extra].join("\n"), hidden: true });

const NB11: readonly CellSpec[] = [
  {
    md: `
# 11 · Phase 2: subset and scale sweeps

**Question.** Is there a *non-destructive* intervention on backtracking: a component subset, or a partial
scale of its outputs, that lowers the backtracking rate without costing accuracy?

**Reference.** Right question, unusable answer: the gold answer of generation i was \`answers[i mod 120]\`
while generation i belongs to example ⌊i/4⌋, so every Phase-2 accuracy is noise; the system prompt was
dropped, so its baseline differs from Phase 1; no scale-1.0 row, no CIs, generations not saved (spec
docs/protocol.md §19).

**What we changed.** The Phase-1 prompt builder and the Phase-1 baseline (same problems, sample ids and
random streams: every setting is a paired comparison), gold by example id, scale 1.0 = the baseline, CIs
clustered by problem, degeneration metrics, per-trigger rates, every generation saved
(\`generations/<variant>/phase2_<setting>.jsonl\`). Without configured subsets they are derived from the
scan: \`selected_mlp\`, \`selected_attn\`, \`selected_all\` and a random matched draw.`,
  },
  setup(`import { phase2Sweeps } from "../experiments/backtracking/steps/phase2_sweeps.ts";`),
  PARAMS,
  context("11"),
  { md: "## Run the sweeps (reused when finished)" },
  {
    code: `
const sweeps = await phase2Sweeps(ctx, { force: params.force });
({ step: "phase2-sweeps", status: sweeps.status });`,
  },
  { code: `const subsetsTable = await showTable(sweeps.subsets, { title: "Subsets" });` },
  {
    code: `
const COLS = ["setting", "total", "backtracking_rate", "bt_rate_lower", "bt_rate_upper", "accuracy", "accuracy_lower",
  "accuracy_upper", "delta_bt_rate", "delta_bt_rate_lower", "delta_bt_rate_upper", "rate_wait", "rate_actually",
  "rate_hold_on", "unknown_rate", "eos_rate", "repetition_4gram", "distinct_2", "mean_length"];
const subsetTable = await showTable(pick(sweeps.subset_sweep, COLS), { title: "Subset sweep (baseline first)" });`,
  },
  {
    code: `
const scaleTable = await showTable(pick(sweeps.scale_sweep.rows, ["scale", ...COLS]), {
  title: \`Scale sweep of \${sweeps.scale_sweep.subset} (1.0 = baseline)\`,
});`,
  },
  { code: `await showFigure(await runFigure(ctx, "phase2_tradeoff"));` },
  { md: "## Reading" },
  {
    code: `
const base = sweeps.subset_sweep[0]!;
const zero = sweeps.scale_sweep.rows[0];
const rows = sweeps.scale_sweep.rows.map((r) => \`\${pct(Number(r.backtracking_rate))} at scale \${r.scale}\`).join(", ");
await showMarkdown(
  \`Baseline BT rate \${pct(Number(base.backtracking_rate))}, accuracy \${pct(Number(base.accuracy))} (n = \${base.total}). \` +
    (zero
      ? \`Scaling \\\`\${sweeps.scale_sweep.subset}\\\` gives BT rates of \${rows}; at scale 0 the accuracy is \` +
        \`\${pct(Number(zero.accuracy))} (Δ \${pp(Number(zero.delta_accuracy))}), 4-gram repetition \` +
        \`\${Number(zero.repetition_4gram).toFixed(3)} vs \${Number(base.repetition_4gram).toFixed(3)}.\`
      : "The scale sweep is disabled."),
);`,
  },
  {
    md: `
On the model organism the planted components' writes set the trigger's log-probability; with top-p 0.95 a
trigger whose probability falls below the nucleus is never sampled, so even scale 0.9 can remove it: the
scale curve is a step, still monotone. The random matched subset includes the helper attention of layer 0
(the answer copy head), so it ruins answers without touching backtracking, the reference's "random control"
confound made visible.`,
  },
];

const NB12: readonly CellSpec[] = [
  {
    md: `
# 12 · Phase 2: steering along the backtracking direction

**Question.** Is backtracking a *direction* in the residual stream that can be dialled up and down?

**Method.** Residuals at the selected events' pre-onset positions minus residuals at position-matched
controls (non-backtracking traces at the same completion offset), mean per layer. The direction read right
after the scan's top component is added, times a coefficient, at the next \`hook_resid_pre\` on every generated
position; coefficient 0 is the baseline. On the model organism its planted wait feature direction is steered
as well (scaled to the mean difference's projection on it): the ground-truth check of the method.

**Caveat.** Position-matched controls sit on other tokens, so the mean difference also carries the identity
of the pre-onset token (e.g. "."). The cosine with the organism's planted feature shows how much.`,
  },
  setup(
    `import { phase2Steering } from "../experiments/backtracking/steps/phase2_steering.ts";`,
    `import { degenerationFlags, flagText } from "../experiments/backtracking/degeneration.ts";`,
  ),
  PARAMS,
  context("12"),
  { md: "## Directions and dose-response (reused when finished)" },
  {
    code: `
const steering = await phase2Steering(ctx, { force: params.force });
({ step: "phase2-steering", status: steering.status });`,
  },
  {
    code: `
const dirTable = await showTable(steering.directions.map((d) => ({
  resid_layer: d.layer, norm: d.norm, event_norm: d.event_norm, separation_d: d.separation, ...(d.cos_planted ?? {}),
})), { title: "Mean-difference direction per residual layer" });`,
  },
  {
    code: `
const doseTable = await showTable(pick(steering.rows, ["direction", "coef", "total", "backtracking_rate",
  "bt_rate_lower", "bt_rate_upper", "delta_bt_rate_lower", "delta_bt_rate_upper", "accuracy", "rate_wait",
  "rate_actually", "rate_hold_on", "eos_rate", "repetition_4gram", "mean_length"]), { title: "Dose-response" });`,
  },
  { code: `await showFigure(await runFigure(ctx, "steering_dose_response"));` },
  {
    code: `
const planted = await plantedCircuit(ctx);
if (planted) await showFigure(await runFigure(ctx, "steering_dose_response_planted_wait"));`,
  },
  { code: `await showFigure(await runFigure(ctx, "intervention_tradeoff"));` },
  { md: "## Reading" },
  {
    code: `
const rowAt = (direction: string, coef: number) => steering.rows.find((r) => r.direction === direction && r.coef === coef);
const figs = (r: (typeof steering.rows)[number]) => ({
  eos_rate: Number(r.eos_rate), truncation_rate: Number(r.truncation_rate), unknown_rate: Number(r.unknown_rate),
});
// A steering strength that breaks the model (EOS collapse, length at cap, answers lost) is flagged.
const collapsed = steering.rows.filter((r) => r.coef !== 0).map((r) => {
  const zero = rowAt(String(r.direction), 0);
  return { r, f: degenerationFlags(figs(r), zero ? figs(zero) : undefined) };
}).filter(({ f }) => f.degenerate);
const lines = steering.directions_steered.map((d) => {
  const up = rowAt(d.label, 1), down = rowAt(d.label, -1), zero = rowAt(d.label, 0);
  return \`- \${d.label}: BT rate \${pct(Number(down?.backtracking_rate))} (coef −1), \${pct(Number(zero?.backtracking_rate))} (0), \` +
    \`\${pct(Number(up?.backtracking_rate))} (+1); EOS at +1 \${pct(Number(up?.eos_rate))}.\`;
});
await showMarkdown(
  \`Steering at blocks.\${steering.hook_layer}.hook_resid_pre:\\n\\n\${lines.join("\\n")}\\n\\n\` +
    (collapsed.length > 0
      ? \`**Degenerate settings** (their BT rates are a broken model, not a dose-response): \${
        collapsed.map(({ r, f }) => \`\${r.direction} coef \${r.coef}: \${flagText(f)}\`).join("; ")
      }.\`
      : "No steering strength degenerates the text (EOS, length at cap and answers stay near the baseline)."),
);`,
  },
];

const NB13: readonly CellSpec[] = [
  {
    md: `
# 13 · Phase 2: continuation ablation at the onset

**Question.** Does ablating a subset *only at the position that predicts the trigger* remove the trigger, and
does something else (a synonym, another trigger) take its place?

**Reference.** Reported "450 measurements" but ran no forward pass: the CSV holds ids only; the intended
code would have decoded and re-tokenised the prefix (a second BOS, every position shifted) (docs/protocol.md §20).

**What we do.** The prefix is the *generated* token ids up to and including the pre-onset position; P, logit
and log-prob of the onset token clean and with each subset at each scale (\`phase2.continuation_ablation.scales\`),
and one seeded sampled next token per condition (the same random stream for every condition of an event).`,
  },
  setup(`import { phase2Continuation } from "../experiments/backtracking/steps/phase2_continuation.ts";`),
  PARAMS,
  context("13"),
  { md: "## Measure (reused when finished)" },
  {
    code: `
const cont = await phase2Continuation(ctx, { force: params.force });
({ step: "phase2-continuation", status: cont.status });`,
  },
  {
    code: `
const contTable = await showTable(pick(cont.summary, ["subset_name", "scale", "trigger", "n_events", "clean_prob_mean",
  "onset_prob_mean", "onset_prob_lower", "onset_prob_upper", "delta_logprob_mean", "delta_logprob_lower",
  "delta_logprob_upper", "sampled_onset_rate", "sampled_other_trigger_rate", "sampled_no_trigger_rate"]), {
  title: "P(onset token) by subset, scale and onset trigger",
});`,
  },
  { code: `await showFigure(await runFigure(ctx, "continuation_onset_prob"));` },
  { md: "## Reading" },
  {
    code: `
const zeroAll = cont.summary.filter((r) => r.trigger === "all" && r.scale === 0);
await showMarkdown(
  \`\${cont.n_events} events (of \${cont.available_events}). At scale 0, mean Δ log-prob of the onset token: \` +
    zeroAll.map((r) => \`\\\`\${r.subset_name}\\\` \${r.delta_logprob_mean.toFixed(2)} [\${r.delta_logprob_lower.toFixed(2)}, \` +
      \`\${r.delta_logprob_upper.toFixed(2)}], another trigger sampled instead \${pct(r.sampled_other_trigger_rate)}\`).join("; ") + ".",
);`,
  },
];

const NB14: readonly CellSpec[] = [
  {
    md: `
# 14 · Phase 2: activation patching at the pre-onset position

**Question.** Which layer and component *carries* the trigger at the moment it is predicted?

**Method.** For every selected event and its position-matched control, each attention and MLP output at the
pre-onset position is replaced (scale 0 + add, in one forward pass) by the other run's output at its matched
position: BT prefix ← control (the component's share of the trigger is removed) and control prefix ← BT
(it is written in). Effect: Δ log-prob of the event's onset token, mean with problem-clustered CIs, per
layer, component and onset trigger.`,
  },
  setup(`import { phase2Patching } from "../experiments/backtracking/steps/phase2_patching.ts";`),
  PARAMS,
  context("14"),
  { md: "## Patch (reused when finished)" },
  {
    code: `
const patching = await phase2Patching(ctx, { force: params.force });
({ step: "phase2-patching", status: patching.status });`,
  },
  {
    code: `
const locTable = await showTable(pick(patching.localisation, ["direction", "trigger", "component", "layer", "n",
  "delta_logprob_mean", "delta_logprob_lower", "delta_logprob_upper"]), { title: "Largest effect per direction and trigger" });`,
  },
  { code: `await showFigure(await runFigure(ctx, "patching_bt_from_control"));` },
  { code: `await showFigure(await runFigure(ctx, "patching_control_from_bt"));` },
  { md: "## Sanity check and reading" },
  {
    code: `
const circuit = await plantedCircuit(ctx);
const top = patching.localisation.filter((r) => r.trigger === "all");
if (circuit) {
  const planted = [...circuit.attn.map((l) => \`attn \${l}\`), ...circuit.mlp.map((l) => \`mlp \${l}\`)];
  for (const r of top) {
    if (!planted.includes(\`\${r.component} \${r.layer}\`)) {
      throw new Error(\`Patching localised \${r.component} \${r.layer}, not a planted component (\${planted.join(", ")})\`);
    }
  }
}
await showMarkdown(top.map((r) => \`\${r.direction}: **\${r.component} \${r.layer}**, Δ log-prob \${r.delta_logprob_mean.toFixed(2)} \` +
  \`[\${r.delta_logprob_lower.toFixed(2)}, \${r.delta_logprob_upper.toFixed(2)}] over \${r.n} events\` +
  (circuit ? " (a planted component)" : "")).join("\\n\\n"));`,
  },
];

const NB15: readonly CellSpec[] = [
  {
    md: `
# 15 · Phase 2 in the report

Rebuild \`report.md\` so it includes the Phase-2 sections (reused when the report is newer than every
analysis file).`,
  },
  {
    code: [
      `import { earlierSteps, notebookParams, notebookSetup, runOrReuse } from "../experiments/backtracking/notebook_params.ts";`,
      `import { showMarkdown, showTable } from "../lib/notebook/show.ts";`,
      `import { phase2ReportSections } from "../experiments/backtracking/artifacts/mod.ts";`,
    ].join("\n"),
    hidden: true,
  },
  {
    code: `
const { ctx, prerequisites } = await notebookSetup("15", notebookParams());
const runTable = await showTable([{ run: ctx.run.id, earlier_steps: earlierSteps(prerequisites) }], { title: "Run" });`,
  },
  {
    code: `
const report = await runOrReuse(ctx, "make-report");
report;`,
  },
  {
    code: `
const sections = phase2ReportSections(ctx.run.dir);
await showMarkdown(\`report.md has \${sections.length} Phase-2 section(s): \${sections.map((s) => s.title).join("; ")}.\`);`,
  },
  {
    code: `
// the Phase-2 sections as report.md has them, figures included (shown as PNG outputs)
for (const s of sections) await showMarkdown(\`## \${s.title}\\n\\n\${s.markdown}\`, { imagesFrom: ctx.run.dir });`,
  },
];

const denoFmt = (text: string, file: string) =>
  formatNotebookText(text, file, fileURLToPath(new URL("../", import.meta.url)));

/** The Phase-2 notebooks as file name → formatted text. */
export async function generatePhase2Notebooks(): Promise<Map<string, string>> {
  const specs: [string, readonly CellSpec[]][] = [
    ["11_phase2_sweeps.ipynb", NB11],
    ["12_phase2_steering.ipynb", NB12],
    ["13_phase2_continuation.ipynb", NB13],
    ["14_phase2_patching.ipynb", NB14],
    ["15_phase2_report.ipynb", NB15],
  ];
  const out = new Map<string, string>();
  for (const [file, cells] of specs) {
    out.set(file, await denoFmt(formatNotebook(notebookFromSpecs(file, cells)), file));
  }
  return out;
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  const stale: string[] = [];
  for (const [file, text] of await generatePhase2Notebooks()) {
    const path = join(NOTEBOOKS_DIR, file);
    if (check) {
      if ((await Deno.readTextFile(path).catch(() => undefined)) !== text) stale.push(file);
    } else await Deno.writeTextFile(path, text);
  }
  if (check && stale.length) {
    console.error(`Stale notebooks (run tools/make_phase2_notebooks.ts): ${stale.join(", ")}`);
    Deno.exit(1);
  }
  console.log(check ? "phase-2 notebooks are up to date" : "wrote notebooks 11-15");
}
