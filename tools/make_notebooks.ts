/**
 * Generator of the step notebooks `notebooks/00_*.ipynb` … `notebooks/10_*.ipynb`: one notebook per step of
 * the Phase-1 run log (docs/protocol.md §2), cells defined here in TypeScript, written deterministically
 * (fixed cell ids, sources as line lists, no outputs). Commit the generator and its output together;
 * `tests/notebooks_check_test.ts` fails when they drift apart.
 *
 * ```sh
 * deno run --allow-read --allow-write tools/make_notebooks.ts          # (re)write the notebooks
 * deno run --allow-read tools/make_notebooks.ts --check                # exit 1 when a notebook is stale
 * ```
 *
 * Cells follow docs/STYLE.md ("From the best interpretability notebooks"): a markdown introduction (what
 * the step does and why, what the reference did and what we changed, docs/protocol.md), one library call per
 * code cell, tables and figures inline, a sanity check, and a reading whose numbers come from variables.
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

/** The notebooks folder of the project. */
export const NOTEBOOKS_DIR: string = fileURLToPath(new URL("../notebooks/", import.meta.url));

interface NotebookSpec {
  /** File name, e.g. `04_logit_lens.ipynb`. */
  readonly file: string;
  readonly cells: readonly CellSpec[];
}

// ---------------------------------------------------------------------------------------------------
// Shared cells

const PARAMS_MD = `
## Parameters

From environment variables (defaults in brackets): \`BT_CONFIG\` [\`configs/organism.yaml\`, the embedded
default], \`BT_RUN_ID\` [the current run, \`runs/.current_run_id\`], \`BT_RUNS_ROOT\` [\`runs/\`],
\`BT_FIGURES_DIR\` [\`figures/\`], \`BT_FORCE=1\` to recompute finished steps, \`BT_PREREQUISITES\`
[\`run\` for the organism, \`stop\` for a real model]: the earlier steps this notebook needs are run here when
missing (finished ones are reused), or, with \`stop\`, an unfinished generation or model pass stops the
notebook with the number of the notebook to run first. Relative paths are resolved from the project root (the
kernel starts in \`notebooks/\`).`;

/**
 * The context cell of notebook \`nn\`: the run (created when there is none) and every earlier step this
 * notebook needs, run or reused (\`notebookSetup\`), so the notebook runs top to bottom on its own.
 */
const context = (nn: string) => `
const params = notebookParams();
const { ctx, prerequisites } = await notebookSetup("${nn}", params);
const runTable = await showTable([{
  run: ctx.run.id,
  config: params.configPath,
  run_dir: ctx.run.dir,
  protocol: ctx.config.protocol,
  earlier_steps: earlierSteps(prerequisites),
}], { title: "Run" });`;

/** The setup cell: imports, collapsed. */
function setup(...imports: string[]): CellSpec {
  return { code: imports.join("\n"), hidden: true };
}

const IMPORT_SHOW =
  `import { pct, pctCI, pp, pValue, showFigure, showMarkdown, showTable } from "../lib/notebook/show.ts";\n` +
  `import { ciPp } from "../lib/tables/format.ts";`;

/** polars (the notebooks' table type) and rows → DataFrame, for artifacts read with a typed reader. */
const IMPORT_TABLES = [
  `import pl from "nodejs-polars";`,
  `import { toDataFrame } from "../lib/tables/table.ts";`,
].join("\n");

/**
 * A cell line defining \`clip(c, n)\`: a polars expression cutting string column \`c\` to \`n\` characters, with
 * " …" appended when longer (so long completions fit a table cell).
 */
const CLIP = `
const clip = (c: string, n: number) =>
  pl.when(pl.col(c).str.lengths().gt(n)).then(pl.format("{} …", pl.col(c).str.slice(0, n))).otherwise(pl.col(c)).alias(c);`;

// ---------------------------------------------------------------------------------------------------
// 00 init-run

const NB00: NotebookSpec = {
  file: "00_init_run.ipynb",
  cells: [
    {
      md: `
# 00 · Init run

**Step \`init-run\`** creates the run folder \`runs/<run_id>/\` with \`config_resolved.yaml\` (the config with
every default filled in), \`meta.json\` (provenance: git state, host, library versions; later the model's
weight hashes and the execution provider actually used) and \`runs/.current_run_id\`, which the later
notebooks read when \`BT_RUN_ID\` is unset. Everything a figure or number depends on is then traceable to
one folder.

**Reference.** The same step with a \`YYYYMMDD_HHMMSS\` id. Its \`config_resolved.yaml\` recorded
\`flash_attention_2\` although \`sdpa\` ran, generation files were appended to on re-runs (duplicates) and
one global seed drove all sampling (docs/protocol.md §7).

**What we changed.** \`meta.json\` records what actually ran (execution provider and why, onnxruntime and
library versions, weight hashes); finished artifacts are never silently overwritten (steps refuse, or
these notebooks reuse them when up to date); every sample has its own seeded random stream.

With the embedded default the model is the **model organism**: a tiny Qwen2 checkpoint built in code whose
backtracking is driven by *planted* components, so the pipeline can check itself against ground truth.`,
    },
    setup(
      `import { notebookParams, plantedCircuit, startRun } from "../experiments/backtracking/notebook_params.ts";`,
      `import { readMeta } from "../experiments/backtracking/run.ts";`,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    {
      code: `
const params = notebookParams();
const paramsTable = await showTable([{
  BT_CONFIG: params.configPath,
  BT_RUN_ID: params.runId ?? "(new run)",
  BT_RUNS_ROOT: params.runsRoot,
  BT_FIGURES_DIR: params.figuresDir ?? "none",
  BT_FORCE: String(params.force),
}], { title: "Notebook parameters" });`,
    },
    {
      md: `
## Create the run

With \`BT_RUN_ID\` naming an existing run, the run is reopened (re-running this notebook changes nothing);
otherwise it is created.`,
    },
    { code: `const { ctx, created } = await startRun(params);` },
    {
      code: `
const cfg = ctx.config;
const configTable = await showTable([
  { setting: "protocol", value: cfg.protocol },
  { setting: "model", value: cfg.model.source },
  { setting: "device", value: cfg.model.device },
  { setting: "dataset", value: \`\${cfg.dataset.name} (\${cfg.dataset.max_examples} problems)\` },
  { setting: "samples per prompt", value: String(cfg.generation.num_samples_per_prompt) },
  { setting: "max new tokens", value: String(cfg.generation.max_new_tokens) },
  { setting: "prompt variants", value: cfg.prompting.formatting_variants.map((v) => v.name).join(", ") },
  { setting: "detection rule", value: cfg.detection.rule },
  { setting: "answer extractor", value: cfg.detection.answer_extractor },
  { setting: "scan selection", value: \`\${cfg.analysis.selection_criterion}, top \${cfg.analysis.topk_layers_for_generation}\` },
  { setting: "random ablation draws", value: String(cfg.analysis.random_ablation_draws) },
  { setting: "seed", value: String(cfg.run.seed) },
], { title: "Resolved config (config_resolved.yaml)" });`,
    },
    { code: `const meta = await readMeta(ctx.run);` },
    {
      code: `
const versionsTable = await showTable(
  Object.entries(meta.versions).map(([name, version]) => ({ name, version })),
  { title: \`Versions (meta.json; git \${String(meta.git_sha ?? "n/a")}\${meta.git_dirty ? ", dirty" : ""})\` },
);`,
    },
    {
      md: `
## Sanity check: the organism's planted circuit

The organism's \`organism.json\` lists the components that write the backtracking triggers. Notebook 05 must
recover exactly these layers from the ablation scan; a real model has no such ground truth.`,
    },
    { code: `const planted = await plantedCircuit(ctx);` },
    {
      code: `
const plantedTable = await showTable(
  planted
    ? planted.components.map((c) => ({ hook: c.hook, role: c.role, promotes: c.promotes.join(" | ") }))
    : [{ note: "not the model organism: no planted ground truth" }],
  { title: "Planted components" },
);`,
    },
    { md: `## Reading` },
    {
      code: `
await showMarkdown(
  \`Run **\${ctx.run.id}** was \${created ? "created" : "reopened (it already existed)"} in \\\`\${ctx.run.dir}\\\`, \` +
    \`under the **\${cfg.protocol}** protocol with model \\\`\${cfg.model.source}\\\` on \${cfg.model.device}. \` +
    (planted
      ? \`The organism plants attention layer(s) \${planted.attn.join(", ")} and MLP layer(s) \${planted.mlp.join(", ")}: \` +
        \`the ablation scan (notebook 05) has to find them.\`
      : "This is a real model: the scan's selection is a finding, not a check."),
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 01 prepare-data

const NB01: NotebookSpec = {
  file: "01_prepare_data.ipynb",
  cells: [
    {
      md: `
# 01 · Prepare data

**Step \`prepare-data\`** fixes the problems of the run in \`data/problems.jsonl\` (\`id, question, answer,
answer_value, gold\`), so every later step reads the same list, and records the source and its sha256 in
\`meta.json\`.

**Reference.** 200 GSM8K test problems, shuffled with seed 123, saved to \`data/processed/gsm8k_200.jsonl\`
(docs/protocol.md §3).

**What we changed.** The reference's committed sample is read in file order and never re-shuffled, so
example ids match its analysis files; a local GSM8K file gives a seeded sample; the embedded default uses
seeded *synthetic* GSM8K-style problems (the organism's vocabulary is small, and no download is needed). No
dataset is downloaded. Gold answers are parsed once here (\`#### <gold>\`).`,
    },
    setup(
      `import { earlierSteps, notebookParams, notebookSetup, runOrReuse } from "../experiments/backtracking/notebook_params.ts";`,
      `import { readProblems } from "../experiments/backtracking/artifacts/mod.ts";`,
      `import { readMeta } from "../experiments/backtracking/run.ts";`,
      IMPORT_TABLES,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("01") },
    { md: `## Run the step (reused when \`data/problems.jsonl\` exists)` },
    { code: `const step = await runOrReuse(ctx, "prepare-data");\nstep;` },
    { code: `const problems = toDataFrame(await readProblems(ctx.run), ["id", "question", "gold"]);` },
    {
      code: `
const problemsTable = await showTable(problems.head(6), { title: \`First problems of \${problems.height}\` });`,
    },
    {
      md: `
## Sanity check

Every problem has a numeric gold answer and a unique id, and there are at most \`dataset.max_examples\`.`,
    },
    {
      code: `
const badGold = problems.filter(pl.col("gold").cast(pl.Float64).isFinite().fillNull(false).not()).getColumn("id").toArray();
const uniqueIds = problems.getColumn("id").nUnique();
if (problems.height === 0 || problems.height > ctx.config.dataset.max_examples || badGold.length > 0 || uniqueIds !== problems.height) {
  throw new Error(\`prepare-data: \${problems.height} problems (max \${ctx.config.dataset.max_examples}), \${uniqueIds} unique ids, non-numeric gold for [\${badGold}]\`);
}
\`ok: \${problems.height} problems, all with numeric gold answers\`;`,
    },
    { code: `const meta = await readMeta(ctx.run);` },
    { md: `## Reading` },
    {
      code: `
const data = (meta.data ?? {}) as Record<string, unknown>;
const gold = problems.getColumn("gold");
await showMarkdown(
  \`The run has **\${problems.height} problems** from \\\`\${String(data.source ?? "?")}\\\`\` +
    (data.source_sha256 ? \` (sha256 \${String(data.source_sha256).slice(0, 12)}…)\` : "") +
    \`; gold answers range from \${gold.min()} to \${gold.max()}. \` +
    \`Each will be sampled \${ctx.config.generation.num_samples_per_prompt} times per prompt variant.\`,
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 02 generate baseline

const NB02: NotebookSpec = {
  file: "02_generate_baseline.ipynb",
  cells: [
    {
      md: `
# 02 · Baseline generation (every prompt variant)

**Step \`generate --condition baseline\`** samples \`generation.num_samples_per_prompt\` completions per
problem for each prompt variant, with no intervention, into \`generations/<variant>/baseline.jsonl\`.

**Reference.** Raw text prompts with no chat template and no \`<think>\` prefill; the three "formatting
variants" differ by one line only, because \`think_open\`/\`think_close\` were never read (two prompts are
identical); 512-token cap; \`completion_tokens\` was the padded group maximum and \`finish_reason\` was always
"stop" (docs/protocol.md §4–6).

**What we changed.** The model's chat template, with each variant built from its think strings; every
sample's own token count, EOS vs length, its token ids and its own random stream keyed by (example,
sample), shared across variants and conditions (common random numbers: later paired comparisons see the
intervention, not sampling noise). Stores are append-only and resumable: re-running this notebook only
generates what is missing.`,
    },
    setup(
      `import { relative } from "node:path";`,
      `import { earlierSteps, notebookParams, notebookSetup } from "../experiments/backtracking/notebook_params.ts";`,
      `import { defaultAnalysisVariant, ensureTokenizer, generate } from "../experiments/backtracking/steps/mod.ts";`,
      `import { readGenerations, readProblems } from "../experiments/backtracking/artifacts/mod.ts";`,
      `import { buildPrompt } from "../experiments/backtracking/prompts.ts";`,
      IMPORT_TABLES,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("02") },
    { md: `## What the model sees` },
    { code: `const variant = defaultAnalysisVariant(ctx.config);` },
    { code: `const problems = await readProblems(ctx.run);` },
    { code: `const tokenizer = await ensureTokenizer(ctx);` },
    { code: `const prompt = buildPrompt(tokenizer, ctx.config.prompting, problems[0]!.question, variant);` },
    {
      code: `
await showMarkdown(
  \`Prompt of problem \${problems[0]!.id}, variant \\\`\${variant}\\\` (\${prompt.form}, \${prompt.tokenIds.length} tokens):\\n\\n\` +
    "\`\`\`text\\n" + prompt.text + "\\n\`\`\`",
);`,
    },
    { md: `## Generate (resumes: samples already stored are skipped)` },
    { code: `const stores = await generate(ctx, { condition: "baseline" });` },
    {
      code: `
const storesTable = await showTable(stores.map((s) => ({
  variant: s.variant,
  new_samples: s.generated,
  already_stored: s.resumed,
  file: relative(ctx.run.dir, s.path),
})), { title: "Baseline stores" });`,
    },
    {
      code: `
const records = toDataFrame(await readGenerations(ctx.run, variant, "baseline"), [
  "example_id", "sample_id", "completion_tokens", "finish_reason", "completion",
]);`,
    },
    {
      code: CLIP + `
const samplesTable = await showTable(
  records.head(6).select(
    pl.col("example_id").alias("example"),
    pl.col("sample_id").alias("sample"),
    pl.col("completion_tokens").alias("tokens"),
    pl.col("finish_reason").alias("finish"),
    clip("completion", 240),
  ),
  { title: \`First samples of \${variant}\` },
);`,
    },
    {
      md: `
## Sanity check

Every variant's store holds exactly problems × samples-per-prompt records.`,
    },
    {
      code: `
const expected = problems.length * ctx.config.generation.num_samples_per_prompt;
const wrong = stores.filter((s) => s.generated + s.resumed !== expected);
if (wrong.length > 0) {
  throw new Error(\`stores with a wrong sample count (expected \${expected}): \${wrong.map((s) => \`\${s.variant}: \${s.generated + s.resumed}\`).join(", ")}\`);
}
\`ok: \${stores.length} stores × \${expected} samples\`;`,
    },
    { md: `## Reading` },
    {
      code: `
const truncated = records.filter(pl.col("finish_reason").eq(pl.lit("length"))).height / records.height;
const meanTokens = records.getColumn("completion_tokens").mean();
const generatedNow = stores.reduce((a, s) => a + s.generated, 0);
await showMarkdown(
  \`\${stores.length} variant(s) × \${expected} samples are stored (\${generatedNow} generated in this session). \` +
    \`For \\\`\${variant}\\\` completions average **\${meanTokens.toFixed(1)} tokens** and **\${pct(truncated)}** hit the \` +
    \`\${ctx.config.generation.max_new_tokens}-token budget (the reference could not tell: docs/protocol.md §6).\`,
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 03 detect-events

const NB03: NotebookSpec = {
  file: "03_detect_events.ipynb",
  cells: [
    {
      md: `
# 03 · Detect backtracking events and score answers

**Step \`detect-events\`** reads every generation store and writes one row per sample to
\`analysis/backtracking_events.csv\`: whether it backtracks, the onset trigger and the token position
*predicting* it (\`pred_pos_in_full\`, used by the lens and the scan), the extracted answer and its
correctness, and degeneration measures. \`summary_metrics.json\` keeps the reference's pooled semantics;
\`summary_metrics_corrected.json\` summarises each (variant, condition) with problem-clustered bootstrap CIs.

**Reference.** Case-insensitive trigger regex over the whole completion ("actually" in prose and "Wait" after
the answer count); the *first* \`Final:\` (often the echoed instruction); no markdown/\`\\boxed{}\` clean-up;
accuracy defined two ways; ablated and baseline runs pooled in the summary (docs/protocol.md §8–10).

**What we changed.** Primary rule: case-sensitive, sentence-initial triggers inside the reasoning span;
robust extraction (last \`Final:\`/\`\\boxed{}\`/number, markdown stripped, tolerance); one accuracy
(correct / n) with the unknown rate beside it; never pooled across conditions. The reference's rule and
extractor are kept as columns (\`bt_other_rule\`, \`correct_reference\`) on the same samples.

**Issue 14.** A completion whose reasoning never closed (no \`</think>\` *token*: the token budget ran out) is
\`unfinished\`: no answer is read from a number written mid-thought; it counts as not correct, and
accuracy is given on all rows and on finished rows with the unfinished rate beside it (docs/protocol.md
§9–10). Each onset gets a type (\`revision\` / \`verification\` / \`other\`, with the evidence that decided it)
and an answer trajectory (the last result stated before the onset vs the final answer: fix, break, …;
docs/protocol.md §23). Every rate carries a Wilson interval widened by the design effect of a bootstrap over
problems, so a 0 % rate is not reported as [0, 0] (docs/protocol.md §16).`,
    },
    setup(
      `import pl from "nodejs-polars";`,
      `import { earlierSteps, notebookParams, notebookSetup, readArtifactFrame, reportFigure, runOrReuse } from "../experiments/backtracking/notebook_params.ts";`,
      `import { defaultAnalysisVariant } from "../experiments/backtracking/steps/mod.ts";`,
      `import { DETECT_OUTPUTS, readCorrectedSummary } from "../experiments/backtracking/artifacts/mod.ts";`,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("03") },
    { md: `## Run the step (reused when its outputs are newer than every generation store)` },
    { code: `const step = await runOrReuse(ctx, "detect-events");\nstep;` },
    { code: `const events = await readArtifactFrame(ctx, DETECT_OUTPUTS[0]);` },
    {
      code: `
const onsetsTable = await showTable(
  events.filter(pl.col("has_backtracking_strict")).head(8).select(
    "variant",
    pl.col("example_id").alias("example"),
    pl.col("sample_id").alias("sample"),
    pl.col("onset_phrase").alias("onset"),
    pl.format('"{}"', pl.col("onset_token_text")).alias("onset_token"), // quoted: a leading space shows
    pl.col("pred_pos_in_full").alias("pred_pos"),
    pl.col("predicted_answer").alias("answer"),
    "gold",
    pl.col("answer_status").alias("status"),
    "onset_type",
    pl.col("onset_evidence").alias("evidence"),
    pl.col("candidate_answer").alias("candidate"),
    "trajectory",
  ),
  { title: "Backtracking samples (first 8)" },
);`,
    },
    {
      code: `
const byTrigger = await showTable(
  events.filter(pl.col("has_backtracking_strict"))
    .groupBy(["variant", "condition", "onset_phrase"])
    .agg(pl.len().alias("samples"), pl.col("completion_tokens").mean().alias("mean_tokens"))
    .sort(["variant", "condition", "onset_phrase"]),
  { digits: 1, title: "Backtracking samples by onset trigger (a polars group-by over backtracking_events.csv)" },
);`,
    },
    {
      code: `const corrected = await readCorrectedSummary(ctx.run);`,
    },
    {
      code: `
const summaryTable = await showTable(corrected.groups.map(({ variant, condition, summary: s }) => ({
  variant,
  condition,
  n: s.n,
  problems: s.problems,
  bt_rate: s.bt_rate.value,
  bt_rate_lower: s.bt_rate.ci.lower,
  bt_rate_upper: s.bt_rate.ci.upper,
  bt_reference_rule: s.bt_rate_other_rule.value,
  accuracy_all: s.accuracy.value,
  accuracy_lower: s.accuracy.ci.lower,
  accuracy_upper: s.accuracy.ci.upper,
  accuracy_finished: s.accuracy_finished.value,
  unfinished_rate: s.unfinished_rate.value,
  unfinished_lower: s.unfinished_rate.ci.lower,
  unfinished_upper: s.unfinished_rate.ci.upper,
  unknown_rate: s.unknown_rate,
  bt_revision: s.onset_types.revision.rate.value,
  bt_verification: s.onset_types.verification.rate.value,
  bt_other: s.onset_types.other.rate.value,
  eos_rate: s.eos_rate.value,
})), { title: \`Per variant × condition (\${corrected.rule} rule, \${corrected.extractor} extractor; CIs: clustered Wilson)\` });`,
    },
    {
      code: `
const trajectoryTable = await showTable(corrected.groups.map(({ variant, condition, summary: s }) => ({
  variant,
  condition,
  onsets: s.trajectory.onsets,
  determined: s.trajectory.determined,
  changed: s.trajectory.changed.estimate,
  changed_lower: "lower" in s.trajectory.changed ? s.trajectory.changed.lower : undefined,
  changed_upper: "upper" in s.trajectory.changed ? s.trajectory.changed.upper : undefined,
  fixes: s.trajectory.kinds.fix,
  fix_share_lower: "lower" in s.trajectory.fixes ? s.trajectory.fixes.lower : undefined,
  fix_share_upper: "upper" in s.trajectory.fixes ? s.trajectory.fixes.upper : undefined,
  breaks: s.trajectory.kinds.break,
  break_share_lower: "lower" in s.trajectory.breaks ? s.trajectory.breaks.lower : undefined,
  break_share_upper: "upper" in s.trajectory.breaks ? s.trajectory.breaks.upper : undefined,
  kept_right: s.trajectory.kinds.kept_right,
  kept_wrong: s.trajectory.kinds.kept_wrong,
  no_candidate: s.trajectory.undetermined.no_candidate,
  unfinished: s.trajectory.undetermined.unfinished,
})), { digits: 3, title: "Answer trajectory across the onset (fix = wrong → right, break = right → wrong; shares of the changed answers)" });`,
    },
    { code: `await showFigure(await reportFigure(ctx, "bt_rate_by_variant"));` },
    { code: `await showFigure(await reportFigure(ctx, "accuracy_by_backtracking"));` },
    {
      md: `
## Sanity check

Every backtracking row has an onset token and a predicting position inside its sequence (prompt +
completion); every stored sample has a row.`,
    },
    {
      code: `
const bt = events.filter(pl.col("has_backtracking_strict"));
const badOnset = bt.filter(
  pl.col("onset_token_id").lt(0)
    .or(pl.col("pred_pos_in_full").lt(pl.col("prompt_tokens").minus(1)))
    .or(pl.col("pred_pos_in_full").gtEq(pl.col("prompt_tokens").plus(pl.col("completion_tokens")))),
);
if (badOnset.height > 0) throw new Error(\`\${badOnset.height} BT rows with an onset outside their sequence\`);
const nSamples = corrected.groups.reduce((a, g) => a + g.summary.n, 0);
if (nSamples !== events.height) throw new Error(\`summary counts \${nSamples} samples, events CSV has \${events.height}\`);
\`ok: \${events.height} rows, \${bt.height} with a backtracking onset\`;`,
    },
    { md: `## Reading` },
    {
      code: `
const variant = defaultAnalysisVariant(ctx.config);
const main = corrected.groups.find((g) => g.variant === variant && g.condition === "baseline")!.summary;
const tr = main.trajectory;
await showMarkdown(
  \`On \\\`\${variant}\\\` baseline samples the backtracking rate is **\${pct(main.bt_rate.value)}** \` +
    \`(95% CI \${pctCI(main.bt_rate.ci)}, clustered Wilson; \${main.n} samples of \${main.problems} problems); \` +
    \`the reference's rule gives \${pct(main.bt_rate_other_rule.value)} on the same samples. \` +
    \`Accuracy is \${pct(main.accuracy.value)} on all rows and \${pct(main.accuracy_finished.value)} on finished rows, \` +
    \`with \${pct(main.unfinished_rate.value)} unfinished (\${pctCI(main.unfinished_rate.ci)}) and \${pct(main.unknown_rate)} \` +
    \`unknown answers; with backtracking \` +
    \`\${pct(main.accuracy_with_bt.value)} vs \${pct(main.accuracy_without_bt.value)} without (correlational: \` +
    \`problem difficulty and truncation confound it, docs/protocol.md §18). \` +
    \`Of the backtracking samples \${pct(main.onset_types.revision.share.value)} open a revision, \` +
    \`\${pct(main.onset_types.verification.share.value)} a verification and \${pct(main.onset_types.other.share.value)} \` +
    \`something else; the answer changed after \${tr.changed.k} of \${tr.changed.n} determined onsets, \` +
    \`\${tr.kinds.fix} of them fixes and \${tr.kinds.break} breaks (docs/protocol.md §23).\`,
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 04 logit lens

const NB04: NotebookSpec = {
  file: "04_logit_lens.ipynb",
  cells: [
    {
      md: `
# 04 · Logit lens at backtracking onsets

**Step \`logit-lens\`**: for a sample of backtracking events of the analysis variant, read the residual
stream at the position that predicts the trigger, project it through the final norm and unembedding at
every layer, and compare the trigger's log-prob and rank with position-matched controls from
non-backtracking samples. The question: from which layer on is "the model is about to backtrack" linearly
readable?

**Reference.** The first 120 events in file order (30 problems); one fixed control token (\` wait\`) while
events mostly target \`Wait\`; raw logits compared across contexts; the last layer double-normalised; 32
controls silently dropped (docs/protocol.md §11–12).

**What we changed.** Events sampled at random across problems (seeded); each control reads *its own event's*
onset token; log-prob and rank beside the logit; layer 0 = embedding output and the last layer = the true
final logits; problem-clustered bootstrap CIs; unmatched events reported, not dropped silently. The
reference's layout is kept in \`logit_lens_reference.csv\`.`,
    },
    setup(
      `import pl from "nodejs-polars";`,
      `import { earlierSteps, notebookParams, notebookSetup, readArtifactFrame, reportFigure, runOrReuse } from "../experiments/backtracking/notebook_params.ts";`,
      `import { LENS_FILES } from "../experiments/backtracking/artifacts/mod.ts";`,
      `import { readMeta } from "../experiments/backtracking/run.ts";`,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("04") },
    { md: `## Run the step (reused when newer than the baseline store)` },
    { code: `const step = await runOrReuse(ctx, "logit-lens");\nstep;` },
    {
      code: `
const lens = await readArtifactFrame(ctx, LENS_FILES.summary, {
  columns: [
    "layer", "n_bt", "n_control", "bt_logprob_mean", "control_logprob_mean", "diff_logprob_estimate",
    "diff_logprob_lower", "diff_logprob_upper", "bt_rank_median", "control_rank_median",
  ],
});`,
    },
    {
      code:
        `const lensTable = await showTable(lens, { digits: 2, title: "Trigger log-prob by layer: backtracking vs control" });`,
    },
    { code: `await showFigure(await reportFigure(ctx, "logit_lens_by_layer"));` },
    {
      md: `
## Sanity check

One row per layer (embedding output, every block, final logits) and some events and controls.`,
    },
    { code: `const meta = await readMeta(ctx.run);` },
    {
      code: `
const numLayers = Number((meta.model as Record<string, unknown> | undefined)?.num_layers);
const nBt = Number(lens.getColumn("n_bt").get(0) ?? 0), nControl = Number(lens.getColumn("n_control").get(0) ?? 0);
if (lens.height !== numLayers + 1) throw new Error(\`logit_lens.csv has \${lens.height} rows, expected \${numLayers + 1}\`);
if (nBt === 0 || nControl === 0 || nBt > ctx.config.analysis.max_events) {
  throw new Error(\`logit lens over \${nBt} events and \${nControl} controls (max_events \${ctx.config.analysis.max_events})\`);
}
\`ok: \${lens.height} layers, \${nBt} events, \${nControl} controls\`;`,
    },
    { md: `## Reading` },
    {
      code: `
const last = lens.tail(1).toRecords()[0]!;
const [firstSeparated] = lens.filter(pl.col("diff_logprob_lower").gt(0)).head(1).toRecords();
await showMarkdown(
  \`Over \${nBt} backtracking events and \${nControl} matched controls, the trigger's log-prob at the final \` +
    \`logits is \${Number(last.bt_logprob_mean).toFixed(2)} at onsets vs \${Number(last.control_logprob_mean).toFixed(2)} \` +
    \`at controls (difference \${Number(last.diff_logprob_estimate).toFixed(2)}, 95% CI \` +
    \`[\${Number(last.diff_logprob_lower).toFixed(2)}, \${Number(last.diff_logprob_upper).toFixed(2)}]). \` +
    (firstSeparated
      ? \`The difference is positive with its CI excluding 0 from layer **\${firstSeparated.layer}** on (0 = embedding output). \`
      : "No layer separates the two with a CI excluding 0. ") +
    \`At the last layer this is close to tautological: at an onset the model is about to emit the trigger (docs/protocol.md §12); \` +
    \`the informative part is how early the separation appears.\`,
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 05 ablation scan

const NB05: NotebookSpec = {
  file: "05_ablation_scan.ipynb",
  cells: [
    {
      md: `
# 05 · Ablation scan: which components write the trigger?

**Step \`ablation-scan\`**: zero-ablate each (layer, component) output at the onset-predicting position of
the selected events, measure the change in the trigger's log-prob, and do the same at the matched controls
(for the token actually sampled there). The most *specific* components (large drop at onsets, none at
controls) are selected for ablation during generation, with random control draws.

**Reference.** Single-position zero-ablation effect on a raw logit in bf16 (deltas quantised to ~1/16);
signed top-6 per component with no test; attention 0 and the last MLP matter for *every* prediction, and
nothing corrects for that (docs/protocol.md §13).

**What we changed.** Δ log-prob in fp32 with problem-clustered CIs; a specificity score (Δ at onsets minus Δ
at matched controls); selection by specificity (\`analysis.selection_criterion\`); random draws matched per
component type and disjoint from the selection. The reference's five columns stay first in
\`ablation_importance.csv\`.`,
    },
    setup(
      `import { earlierSteps, notebookParams, notebookSetup, plantedCircuit, readArtifactFrame, reportFigure, runOrReuse } from "../experiments/backtracking/notebook_params.ts";`,
      `import { readHeadScan, readRandomAblationSpecs, readSelectedLayers, SCAN_FILES } from "../experiments/backtracking/artifacts/mod.ts";`,
      IMPORT_TABLES,
      `import { classifyKeys, dominantClass } from "../experiments/backtracking/head_scan.ts";`,
      `import { dlaComponentName } from "../experiments/backtracking/head_report.ts";`,
      `import { ensureTokenizer } from "../experiments/backtracking/context.ts";`,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("05") },
    { md: `## Run the step (reused when newer than the baseline store)` },
    { code: `const step = await runOrReuse(ctx, "ablation-scan");\nstep;` },
    {
      code: `
const importance = await readArtifactFrame(ctx, SCAN_FILES.importance, {
  columns: [
    "layer", "component", "n_events", "delta_logprob_mean", "delta_logprob_lower", "delta_logprob_upper",
    "control_delta_logprob_mean", "specificity_mean", "specificity_lower", "specificity_upper",
  ],
});`,
    },
    {
      code: `
const mostSpecific = importance.sort({ by: "specificity_mean", maintainOrder: true });
const specificTable = await showTable(mostSpecific.head(8), {
  digits: 3,
  title: "Most specific components (most negative specificity first)",
});`,
    },
    { code: `await showFigure(await reportFigure(ctx, "ablation_importance_by_layer"));` },
    { code: `const selected = await readSelectedLayers(ctx.run);` },
    {
      code: `const random = await readRandomAblationSpecs(ctx.run);`,
    },
    {
      code: `
const layersTable = await showTable([
  { set: "selected (targeted)", attn: selected.attn.join(", "), mlp: selected.mlp.join(", ") },
  ...random.draws.map((d, k) => ({ set: \`random draw \${k} (\${random.mode})\`, attn: d.attn.join(", "), mlp: d.mlp.join(", ") })),
], { title: "Layers ablated during generation" });`,
    },
    {
      md: `
## Sanity check: planted vs found

For the model organism the selection must contain every planted component (notebook 00).`,
    },
    { code: `const planted = await plantedCircuit(ctx);` },
    {
      code: `
const missed = planted
  ? [
    ...planted.attn.filter((l) => !selected.attn.includes(l)).map((l) => \`attn \${l}\`),
    ...planted.mlp.filter((l) => !selected.mlp.includes(l)).map((l) => \`mlp \${l}\`),
  ]
  : [];
if (missed.length > 0) {
  throw new Error(\`The scan missed planted component(s) \${missed.join(", ")}: selected attn [\${selected.attn}] mlp [\${selected.mlp}]\`);
}
const recoveredTable = await showTable([
  { component: "attn", planted: planted ? planted.attn.join(", ") : "n/a", selected: selected.attn.join(", ") },
  { component: "mlp", planted: planted ? planted.mlp.join(", ") : "n/a", selected: selected.mlp.join(", ") },
], { title: planted ? "Planted vs selected: recovered" : "Selected (real model: no ground truth)" });`,
    },
    { md: `## Reading` },
    {
      code: `
const top = mostSpecific.head(1).toRecords()[0]!;
await showMarkdown(
  \`The most specific component is **\${top.component} \${top.layer}**: ablating it changes the trigger's log-prob \` +
    \`by \${Number(top.delta_logprob_mean).toFixed(2)} at onsets (95% CI [\${Number(top.delta_logprob_lower).toFixed(2)}, \` +
    \`\${Number(top.delta_logprob_upper).toFixed(2)}]) and by \${Number(top.control_delta_logprob_mean).toFixed(3)} at controls \` +
    \`(specificity \${Number(top.specificity_mean).toFixed(2)}). Selected for generation: attention [\${selected.attn.join(", ")}], \` +
    \`MLP [\${selected.mlp.join(", ")}]\` +
    (planted ? \`, which recovers the planted circuit (attention [\${planted.attn}], MLP [\${planted.mlp}]).\` : ".") ,
);`,
    },
    {
      md: `
## Heads: direct logit attribution, single-head ablation, attention

**Step \`head-scan\`** goes below the layer: which *heads* write the trigger, and what do they read? First
direct logit attribution (DLA): one forward pass per batch of positions splits the trigger's logit into the
direct contributions of every head and MLP (the final norm linearised at the actual residual's scale, as
TransformerLens does). A component's *DLA specificity* is its contribution to the onset token at the event
minus its contribution to the sampled token at the event's matched controls, so a component that writes
every token alike cancels. The top heads are then zero-ablated one at a time through
\`blocks.{l}.attn.hook_z\` (the causal check, scored as the layer scan), and their attention at the
pre-onset position is summed by token class (numbers, operators, \`=\`, the question, the previous
sentence), against the matched controls. Everything is broken down per trigger word (and per onset type
when the events table has one).

**Reference.** No head-level analysis: the layer scan was the finest grain, one forward pass per component
per event (docs/protocol.md §13).`,
    },
    { code: `const headStep = await runOrReuse(ctx, "head-scan");\nheadStep;` },
    { code: `const headFiles = await readHeadScan(ctx.run);` },
    {
      code: `
// Columns picked first: nodejs-polars exposes columns as properties, so a "head" column hides DataFrame.head.
// names as the report writes them: "L6H0", "mlp 4" (the artifact's own names are "4_mlp_out" for MLPs)
const dla = toDataFrame(headFiles.dla.map((r) => ({ ...r, name: dlaComponentName(r) })))
  .filter(pl.col("group").eq(pl.lit("all")).and(pl.col("kind").isIn(["head", "mlp"])))
  .select("rank", "name", "event_mean", "control_mean", "specificity_mean", "specificity_lower", "specificity_upper");
const dlaTable = await showTable(
  dla.head(8).select(
    "rank",
    pl.col("name").alias("component"),
    pl.col("event_mean").alias("at_events"),
    pl.col("control_mean").alias("at_controls"),
    pl.col("specificity_mean").alias("specificity"),
    pl.col("specificity_lower").alias("lower"),
    pl.col("specificity_upper").alias("upper"),
  ),
  { digits: 3, title: "DLA ranking, all events (logits; 95% CI)" },
);`,
    },
    { code: `await showFigure(await reportFigure(ctx, "head_dla_heatmap"));` },
    {
      code: `
const ablationTable = await showTable(
  toDataFrame(headFiles.ablation).select(
    "group",
    pl.format("L{}H{}", pl.col("layer"), pl.col("head")).alias("head"),
    "n_events",
    pl.col("delta_logprob_mean").alias("delta_logprob"),
    pl.col("specificity_mean").alias("specificity"),
    pl.col("specificity_lower").alias("lower"),
    pl.col("specificity_upper").alias("upper"),
  ),
  { digits: 3, title: "Single-head zero-ablation of the top heads (negative specificity = drives the trigger)" },
);`,
    },
    { code: `await showFigure(await reportFigure(ctx, "head_attention_by_class"));` },
    {
      md: `
### Sanity check: the planted heads

For the model organism, every planted attention head must be among the top heads, and at the pre-onset
positions of its trigger it must put most of its attention on the token class \`organism.json\` says it
reads.`,
    },
    {
      code: `
const tokenizer = await ensureTokenizer(ctx);
const tokenText = (id: number) => tokenizer.decodeEach([id])[0]!;
const plantedHeads = (planted?.components ?? []).filter((c) => c.component === "attn" && c.head !== undefined);
const headChecks = plantedHeads.map((p) => {
  const trigger = \`trigger=\${p.promotes[0]!.trim()}\`;
  const group = headFiles.summary.groups.includes(trigger) ? trigger : "all";
  const found = dominantClass(headFiles.attention, p.layer, p.head!, group);
  const expected = classifyKeys([p.attends!.token_ids[0]!], 0, 0, tokenText)[0]!;
  return {
    head: \`L\${p.layer}H\${p.head}\`,
    among_top_heads: headFiles.summary.top_heads.some((h) => h.layer === p.layer && h.head === p.head),
    group,
    reads: \`\${p.attends!.token_class} (\${expected})\`,
    most_attended: found?.token_class ?? "n/a",
    mass: found?.event_mean ?? NaN,
  };
});
const headProblems = headChecks.filter((c) => !c.among_top_heads || c.most_attended !== c.reads.split("(")[1]!.slice(0, -1));
if (headProblems.length > 0) {
  throw new Error(\`Planted head(s) not recovered: \${JSON.stringify(headProblems)}\`);
}
const headCheckTable = await showTable(headChecks, {
  digits: 2,
  title: planted ? "Planted heads: among the top heads, reading their class" : "Real model: no ground truth",
});`,
    },
    {
      code: `
const cost = headFiles.summary.cost;
const layerRows = (headFiles.summary.n_events + headFiles.summary.n_controls) * (importance.height + 2);
const topDla = dla.head(3).toRecords();
await showMarkdown(
  \`DLA ranks **\${topDla.map((r) => \`\${r.name} (\${Number(r.specificity_mean).toFixed(2)} [\${Number(r.specificity_lower).toFixed(2)}, \` +
    \`\${Number(r.specificity_upper).toFixed(2)}])\`).join(", ")}** first, in \${cost.dla.forward_calls} forward passes \` +
    \`(\${cost.dla.forward_rows} rows) for every head and MLP at once; the layer scan \` +
    \`evaluated \${layerRows} rows for \${importance.height} components. Ablating the top heads one at a time took \` +
    \`\${cost.ablation.forward_calls} passes (\${cost.ablation.forward_rows} rows).\`,
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 06 targeted ablation generation

const NB06: NotebookSpec = {
  file: "06_generate_targeted_ablation.ipynb",
  cells: [
    {
      md: `
# 06 · Generation with the selected components ablated

**Step \`generate --condition targeted_ablation\`**: sample the analysis variant again with the selected
components' outputs scaled by \`ablation_generation.scale\` (0 = zero-ablation) at every generated position.
If these components carry the backtracking transition, the trigger rate should fall, without the model
falling apart.

**Reference.** Zeroed 12 components (top 6 attention + top 6 MLP, including attention 0 and the last MLP) at
every decode step; the first generated token was never ablated; accuracy collapsed (1.2 %), so the "BT
reduction" was confounded with degeneration (docs/protocol.md §14–15).

**What we changed.** Only the selected (specific) components; \`generation.intervention_scope\` says where
(here every generated token, the first one included); the same per-sample random streams as the baseline,
so each ablated sample is paired with its baseline twin; degeneration metrics (EOS rate, repetition,
distinct-2, digit-free outputs) are measured in notebook 08.`,
    },
    setup(
      `import { relative } from "node:path";`,
      `import { earlierSteps, notebookParams, notebookSetup } from "../experiments/backtracking/notebook_params.ts";`,
      `import { defaultAnalysisVariant, generate, specInterventions } from "../experiments/backtracking/steps/mod.ts";`,
      `import { readGenerations, readSelectedLayers } from "../experiments/backtracking/artifacts/mod.ts";`,
      IMPORT_TABLES,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("06") },
    { md: `## The intervention` },
    { code: `const selected = await readSelectedLayers(ctx.run);` },
    { code: `const interventions = specInterventions(selected, ctx.config);` },
    {
      code: `
const interventionsTable = await showTable(interventions.map((i) => ({ hook: i.hook, op: i.op, value: i.op === "scale" ? i.value : undefined })), {
  title: \`Interventions (scope: \${ctx.config.generation.intervention_scope})\`,
});`,
    },
    { md: `## Generate (resumes: samples already stored are skipped)` },
    { code: `const stores = await generate(ctx, { condition: "targeted_ablation" });` },
    {
      code: `
const storesTable = await showTable(stores.map((s) => ({
  variant: s.variant,
  condition: s.condition,
  new_samples: s.generated,
  already_stored: s.resumed,
  file: relative(ctx.run.dir, s.path),
})), { title: "Targeted-ablation store" });`,
    },
    { code: `const variant = defaultAnalysisVariant(ctx.config);` },
    { code: `const baseline = await readGenerations(ctx.run, variant, "baseline");` },
    { code: `const targeted = await readGenerations(ctx.run, variant, "targeted_ablation");` },
    {
      code: `
const COLUMNS = ["example_id", "sample_id", "finish_reason", "completion_tokens", "completion"];
const baselineFrame = toDataFrame(baseline, COLUMNS), targetedFrame = toDataFrame(targeted, COLUMNS);`,
    },
    {
      code: CLIP + `
const pairsTable = await showTable(
  targetedFrame.head(4)
    .join(baselineFrame, { on: ["example_id", "sample_id"], how: "left", suffix: "_baseline" })
    .select(
      pl.col("example_id").alias("example"),
      pl.col("sample_id").alias("sample"),
      clip("completion_baseline", 160).fillNull("").alias("baseline"),
      clip("completion", 160).alias("targeted"),
    ),
  { title: "Same sample, same random stream: baseline vs ablated" },
);`,
    },
    {
      md: `
## Sanity check

Every stored sample records exactly the intended interventions, and the store pairs one-to-one with the
baseline.`,
    },
    {
      code: `
const want = JSON.stringify(interventions);
const off = targeted.filter((r) => JSON.stringify(r.interventions) !== want).length;
if (off > 0) throw new Error(\`\${off} targeted samples record interventions other than \${want}\`);
if (targeted.length !== baseline.length) throw new Error(\`\${targeted.length} targeted vs \${baseline.length} baseline samples\`);
\`ok: \${targeted.length} samples, each with \${interventions.length} intervention(s)\`;`,
    },
    { md: `## Reading` },
    {
      code: `
const eos = (df: pl.DataFrame) => df.filter(pl.col("finish_reason").eq(pl.lit("eos"))).height / df.height;
const meanLen = (df: pl.DataFrame) => df.getColumn("completion_tokens").mean();
await showMarkdown(
  \`\${targetedFrame.height} samples were generated with \${interventions.map((i) => "\`" + i.hook + "\`").join(", ")} ablated. \` +
    \`They end with EOS \${pct(eos(targetedFrame))} of the time (baseline \${pct(eos(baselineFrame))}) and average \` +
    \`\${meanLen(targetedFrame).toFixed(1)} tokens (baseline \${meanLen(baselineFrame).toFixed(1)}). Backtracking rates and paired \` +
    \`comparisons follow in notebook 08, after detection over every condition.\`,
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 07 random ablation generation

const NB07: NotebookSpec = {
  file: "07_generate_random_ablation.ipynb",
  cells: [
    {
      md: `
# 07 · Generation with random components ablated (controls)

**Step \`generate --condition random_ablation\`**: the same generation with randomly drawn components
ablated, one store per draw (\`random_ablation_<k>\`). If ablating *any* components of the same kind and
number cut backtracking as much, the targeted result would say nothing about a mechanism.

**Reference.** One draw (Python \`Random(999)\`) of layers disjoint from every selected index, not matched
for destructiveness (targeted included attention 0 and the last MLP; random had early layers); 100
digit-free outputs (docs/protocol.md §14–15).

**What we changed.** \`analysis.random_ablation_draws\` draws, each matched to the selection per component
type (same number of attention and MLP layers) and disjoint from it; every draw uses the same per-sample
random streams as the baseline. The reference's draw is kept under \`protocol: reference\`.`,
    },
    setup(
      `import { relative } from "node:path";`,
      `import { earlierSteps, notebookParams, notebookSetup, plantedCircuit } from "../experiments/backtracking/notebook_params.ts";`,
      `import { generate, referenceSelectedLayers } from "../experiments/backtracking/steps/mod.ts";`,
      `import { readRandomAblationSpecs, REFERENCE_SELECTION_CONDITION } from "../experiments/backtracking/artifacts/mod.ts";`,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("07") },
    { md: `## The draws` },
    {
      code: `const specs = await readRandomAblationSpecs(ctx.run);`,
    },
    {
      code: `
const drawsTable = await showTable([
  { set: "selected", attn: specs.selected.attn.join(", "), mlp: specs.selected.mlp.join(", ") },
  ...specs.draws.map((d, k) => ({ set: \`draw \${k}\`, attn: d.attn.join(", "), mlp: d.mlp.join(", ") })),
], { title: \`Random draws (\${specs.mode}, seed \${specs.seed})\` });`,
    },
    {
      md: `
## Sanity check

Each draw ablates as many attention and MLP layers as the selection, none of them selected.`,
    },
    {
      code: `
const problems: string[] = [];
specs.draws.forEach((d, k) => {
  for (const c of ["attn", "mlp"] as const) {
    if (d[c].length !== specs.selected[c].length) problems.push(\`draw \${k}: \${d[c].length} \${c} layers vs \${specs.selected[c].length} selected\`);
    const overlap = d[c].filter((l) => specs.selected[c].includes(l));
    if (overlap.length > 0) problems.push(\`draw \${k}: \${c} [\${overlap}] is selected\`);
  }
});
if (problems.length > 0) throw new Error(problems.join("; "));
\`ok: \${specs.draws.length} draw(s) matched per component type and disjoint from the selection\`;`,
    },
    { md: `## Generate every draw (resumes)` },
    { code: `const stores = await generate(ctx, { condition: "random_ablation" });` },
    {
      code: `
const storesTable = await showTable(stores.map((s) => ({
  condition: s.condition,
  hooks: s.interventions.map((i) => i.hook).join(", "),
  new_samples: s.generated,
  already_stored: s.resumed,
  file: relative(ctx.run.dir, s.path),
})), { title: "Random-ablation stores" });`,
    },
    { md: `## Reading` },
    {
      code: `
await showMarkdown(
  \`\${stores.length} random-ablation store(s) of \${stores[0] ? stores[0].generated + stores[0].resumed : 0} samples each are in place \` +
    \`(\${stores.reduce((a, s) => a + s.generated, 0)} generated in this session). Notebook 08 compares them with the \` +
    \`baseline and the targeted ablation.\`,
);`,
    },
    {
      md: `
## Protocol validation: the reference's selection, ablated (organism only)

On a model with a known circuit (the organism) the reference protocol's selection from the same scan (per
component type the \`topk_layers_for_generation\` most negative mean raw Δlogits, docs/protocol.md §13) is
ablated as well, in the condition \`reference_selection_ablation\`, so that notebook 08 can show what its
"backtracking drop" costs in degeneration next to ours.`,
    },
    { code: `const planted = await plantedCircuit(ctx);` },
    { code: `const referenceSelection = planted ? await referenceSelectedLayers(ctx) : undefined;` },
    {
      code: `
const referenceStores = referenceSelection
  ? await generate(ctx, { condition: REFERENCE_SELECTION_CONDITION })
  : [];`,
    },
    {
      code: `
await showMarkdown(
  referenceSelection
    ? \`The reference's selection is attention [\${referenceSelection.attn.join(", ")}], MLP [\${referenceSelection.mlp.join(", ")}] \` +
      \`(ours: attention [\${specs.selected.attn.join(", ")}], MLP [\${specs.selected.mlp.join(", ")}]); \` +
      \`\${referenceStores.reduce((a, s) => a + s.generated + s.resumed, 0)} samples with it ablated are stored.\`
    : "Not the organism: there is no ground truth to validate the selection protocols against.",
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 08 compare conditions

const NB08: NotebookSpec = {
  file: "08_compare_conditions.ipynb",
  cells: [
    {
      md: `
# 08 · Compare conditions: baseline vs targeted vs random ablation

First **\`detect-events\` again**, now over every condition's store (the run log does the same), then
**step \`compare-conditions\`**: per condition the backtracking rate, accuracy and degeneration, each with a
problem-clustered bootstrap CI, and for each ablation the *paired* comparison with the baseline (same
problems, same samples, same random streams): Δ BT rate and Δ accuracy with CIs and McNemar p-values.

**Reference.** \`condition_comparison.csv\` with accuracy = correct/total, no CIs, no test, no degeneration
measure, one random draw: targeted BT 2.8 % vs random 54.9 % vs baseline 70.8 %, with accuracy collapsed
to ~1 % under both ablations (docs/protocol.md §14–15, §18).

**What we changed.** Everything above plus the reference's table unchanged (\`condition_comparison.csv\`),
so both readings stand side by side.`,
    },
    setup(
      `import { earlierSteps, notebookParams, notebookSetup, plantedCircuit, readArtifactFrame, reportFigure, runOrReuse } from "../experiments/backtracking/notebook_params.ts";`,
      `import { COMPARISON_FILES, protocolValidationRows, readConditionComparison, readProtocolValidation } from "../experiments/backtracking/artifacts/mod.ts";`,
      `import { degenerationFlags, figuresOf, flagText } from "../experiments/backtracking/degeneration.ts";`,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("08") },
    { md: `## Detect events over every condition, then compare` },
    { code: `const detect = await runOrReuse(ctx, "detect-events");\ndetect;` },
    { code: `const compare = await runOrReuse(ctx, "compare-conditions");\ncompare;` },
    {
      code: `
const comparison = await readConditionComparison(ctx.run);`,
    },
    { code: `const conditions = await readArtifactFrame(ctx, COMPARISON_FILES.correctedCsv);` },
    {
      code: `
const conditionsTable = await showTable(conditions.select(
    "condition", "n", "bt_rate", "bt_rate_lower", "bt_rate_upper", "delta_bt_rate", "delta_bt_rate_lower",
    "delta_bt_rate_upper", "mcnemar_bt_p", "accuracy", "accuracy_lower", "accuracy_upper", "accuracy_finished",
    "unfinished_rate", "delta_accuracy", "eos_rate", "mean_length", "repetition_4gram", "distinct_2",
    "digit_free_rate",
), { digits: 3, title: \`Conditions of \${comparison.variant} (paired with the baseline; rate CIs: clustered Wilson)\` });`,
    },
    {
      code: `
const onsetTable = await showTable(conditions.select(
    "condition", "bt_rate", "bt_revision_rate", "bt_revision_rate_lower", "bt_revision_rate_upper",
    "bt_verification_rate", "bt_verification_rate_lower", "bt_verification_rate_upper", "bt_other_rate",
    "bt_other_rate_lower", "bt_other_rate_upper", "accuracy_bt_revision", "accuracy_bt_verification",
    "accuracy_bt_other",
), { digits: 3, title: "Backtracking rate by onset type (docs/protocol.md §23)" });`,
    },
    {
      code: `
const trajectoryTable = await showTable(conditions.select(
    "condition", "onsets_determined", "answer_changed", "answer_changed_lower", "answer_changed_upper", "fixes",
    "fix_share", "fix_share_lower", "fix_share_upper", "breaks", "break_share", "break_share_lower",
    "break_share_upper",
), { digits: 3, title: "Answer trajectory across the onset (fix / break shares of the changed answers)" });`,
    },
    {
      code: `
const referenceTable = await showTable(await readArtifactFrame(ctx, COMPARISON_FILES.reference), {
  digits: 4,
  title: "Reference layout (condition_comparison.csv: accuracy = correct / total)",
});`,
    },
    { code: `await showFigure(await reportFigure(ctx, "bt_rate_by_condition"));` },
    {
      md: `
## Degeneration flags

A drop in backtracking means nothing if the text broke down: a condition is flagged when its EOS rate
collapses, its samples run to the length cap, or its unknown/unfinished-answer rate jumps, each against
the baseline (\`experiments/backtracking/degeneration.ts\`).`,
    },
    {
      code: `
const baseFigures = figuresOf(comparison.conditions.find((e) => e.condition === "baseline")!.summary);
const flagged = comparison.conditions.map((e) => {
  const f = degenerationFlags(figuresOf(e.summary), e.condition === "baseline" ? undefined : baseFigures);
  return { condition: e.condition, eos_rate: e.summary.eos_rate.value, at_length_cap: e.summary.truncation_rate.value, unknown_or_unfinished: figuresOf(e.summary).unknown_rate, flags: flagText(f) || "none", degenerate: f.degenerate };
});
const flagsTable = await showTable(flagged.map(({ degenerate: _d, ...r }) => r), { digits: 3, title: "Degeneration per condition" });`,
    },
    {
      md: `
## Sanity check

Every ablation condition is paired with the baseline on the same samples. For the model organism, ablating
the recovered circuit must cut the backtracking rate by at least 80 % (relative) without degenerating the
text, and no random draw may cut it as much.`,
    },
    { code: `const planted = await plantedCircuit(ctx);` },
    {
      code: `
const rate = (c: string) => comparison.conditions.find((e) => e.condition === c)?.summary.bt_rate.value ?? NaN;
const baseRate = rate("baseline");
const cut = (c: string) => 1 - rate(c) / baseRate;
const randoms = comparison.conditions.filter((e) => e.condition.startsWith("random_ablation")).map((e) => e.condition);
const unpaired = comparison.conditions.filter((e) => e.condition !== "baseline" && e.vs_baseline?.pairs !== e.summary.n);
if (unpaired.length > 0) throw new Error(\`not fully paired with the baseline: \${unpaired.map((e) => e.condition).join(", ")}\`);
if (planted && !(cut("targeted_ablation") >= 0.8)) {
  throw new Error(\`targeted ablation cut the BT rate by only \${pct(cut("targeted_ablation"))} (\${pct(baseRate)} → \${pct(rate("targeted_ablation"))})\`);
}
if (planted && flagged.find((f) => f.condition === "targeted_ablation")?.degenerate) {
  throw new Error(\`the targeted ablation degenerates the text: \${flagged.find((f) => f.condition === "targeted_ablation")!.flags}\`);
}
if (planted && randoms.some((c) => cut(c) >= cut("targeted_ablation"))) {
  throw new Error(\`a random draw cut the BT rate as much as the targeted ablation: \${randoms.map((c) => \`\${c} \${pct(cut(c))}\`).join(", ")}\`);
}
// a degenerate random draw is no control: its text broke, so its cut says nothing (the report says so too)
const drawText = (c: string) => \`\${pct(cut(c))}\${flagged.find((f) => f.condition === c)?.degenerate ? " (DEGENERATE)" : ""}\`;
\`ok: targeted cut \${pct(cut("targeted_ablation"))}; random draws \${randoms.map(drawText).join(", ")}\`;`,
    },
    { md: `## Reading` },
    {
      code: `
const targeted = comparison.conditions.find((e) => e.condition === "targeted_ablation");
const t = targeted?.vs_baseline;
const base = comparison.conditions.find((e) => e.condition === "baseline")!.summary;
await showMarkdown(
  targeted && t
    ? \`Ablating the selected components moves the backtracking rate from **\${pct(baseRate)}** to \` +
      \`**\${pct(rate("targeted_ablation"))}** (relative change \${pct(t.relative_bt_change.value)}, 95% CI \` +
      \`\${pctCI(t.relative_bt_change.bootstrap)}; paired Δ \` +
      \`\${pp(t.delta_bt_rate.difference)}, 95% CI \${ciPp(t.delta_bt_rate.bootstrap.lower, t.delta_bt_rate.bootstrap.upper)}, McNemar p = \` +
      \`\${pValue(t.mcnemar_bt.p_value)}). The random draws cut it by \${randoms.map(drawText).join(", ")}\` +
      (randoms.some((c) => flagged.find((f) => f.condition === c)?.degenerate)
        ? \` (a DEGENERATE draw broke the text, so it is no control: the random control is compromised). \`
        : ". ") +
      \`Degeneration check: EOS rate \${pct(targeted.summary.eos_rate.value)} vs \${pct(base.eos_rate.value)} at baseline, \` +
      \`4-gram repetition \${targeted.summary.repetition_4gram.value.toFixed(3)} vs \${base.repetition_4gram.value.toFixed(3)}, \` +
      \`accuracy \${pct(targeted.summary.accuracy.value)} vs \${pct(base.accuracy.value)} on all rows \` +
      \`(\${pct(targeted.summary.accuracy_finished.value)} vs \${pct(base.accuracy_finished.value)} on finished rows; \` +
      \`unfinished \${pct(targeted.summary.unfinished_rate.value)} vs \${pct(base.unfinished_rate.value)})\` +
      (flagged.find((f) => f.condition === "targeted_ablation")?.degenerate
        ? \`. **Flagged: \${flagged.find((f) => f.condition === "targeted_ablation")!.flags}**: the drop comes with a broken model.\`
        : "; no degeneration flag, so the drop is not a broken model.") +
      (flagged.some((f) => f.degenerate)
        ? \` Flagged conditions: \${flagged.filter((f) => f.degenerate).map((f) => \`\${f.condition} (\${f.flags})\`).join("; ")}.\`
        : " No condition is flagged as degenerate.") +
      \` By onset type the baseline's revisions go \${pct(base.onset_types.revision.rate.value)} → \` +
      \`\${pct(targeted.summary.onset_types.revision.rate.value)} and its verifications \` +
      \`\${pct(base.onset_types.verification.rate.value)} → \${pct(targeted.summary.onset_types.verification.rate.value)}; \` +
      \`at baseline \${base.trajectory.kinds.fix} onset\${base.trajectory.kinds.fix === 1 ? "" : "s"} fixed the answer and \` +
      \`\${base.trajectory.kinds.break} broke it \` +
      \`(of \${base.trajectory.determined} determined).\`
    : "No targeted-ablation condition in this run (run notebooks 05 and 06).",
);`,
    },
    {
      md: `
## Protocol validation (organism): planted vs recovered, per protocol

**Step \`protocol-validation\`** (only on a model with a known circuit): both selections from the same
scan, the reference's (signed top-k by raw Δlogit) and ours (specificity CI below
−\`analysis.min_specificity_effect\`), scored against the planted set and the decoy of \`organism.json\`,
and what ablating each during generation does to the backtracking rate *and* to degeneration
(docs/protocol.md §13).`,
    },
    {
      code:
        `const validationStep = planted ? await runOrReuse(ctx, "protocol-validation") : "skipped: no ground truth";\nvalidationStep;`,
    },
    { code: `const validation = planted ? await readProtocolValidation(ctx.run) : undefined;` },
    {
      code: `
const validationTable = validation
  ? await showTable(protocolValidationRows(validation), { digits: 3, title: "Selections scored against the planted circuit, and their ablations" })
  : "not the organism: no ground truth";`,
    },
    {
      md: `
## Sanity check: ours recovers the planted circuit, the reference takes the decoy

Expected on the organism: ours recalls at least 2/3 of the planted components and no decoy; the reference
selects the decoy and its ablation is flagged as degenerate.`,
    },
    {
      code: `
if (validation && !validation.expected.passed) throw new Error(\`protocol validation: \${validation.expected.failures.join("; ")}\`);
validation ? "ok: expected outcome" : "skipped (no ground truth)";`,
    },
    { md: `## Reading: protocol validation` },
    {
      code: `
const label = (xs: readonly { layer: number; component: string }[]) => xs.map((x) => \`\${x.component} \${x.layer}\`).join(", ") || "none";
await showMarkdown(
  validation
    ? \`Ours selects **\${label(validation.ours.selection.selected)}** (precision \${pct(validation.ours.selection.precision)}, recall \` +
      \`\${pct(validation.ours.selection.recall)} of the planted \${label(validation.planted)}); ablating it moves backtracking \` +
      \`\${pct(validation.baseline.bt_rate)} → \${pct(validation.ours.ablation.bt_rate)} with EOS \${pct(validation.ours.ablation.eos_rate)} \` +
      \`(baseline \${pct(validation.baseline.eos_rate)})\${validation.ours.ablation.degeneration.degenerate ? \`, **\${flagText(validation.ours.ablation.degeneration)}**\` : ", no degeneration flag"}. \` +
      \`The reference's signed top-\${validation.reference_k} selects **\${label(validation.reference.selection.selected)}**\` +
      \`\${validation.reference.selection.decoy_selected ? \` — the decoy \${label(validation.decoy)} included\` : ""}; its ablation moves \` +
      \`backtracking to \${pct(validation.reference.ablation.bt_rate)}, but \` +
      (validation.reference.ablation.degeneration.degenerate
        ? \`**\${flagText(validation.reference.ablation.degeneration)}**: that "drop" is a broken model.\`
        : "without a degeneration flag.")
    : "Not the organism: no ground truth, no protocol validation.",
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 09 formatting sweep

const NB09: NotebookSpec = {
  file: "09_formatting_sweep.ipynb",
  cells: [
    {
      md: `
# 09 · Formatting sweep: does the prompt format change backtracking?

**Step \`formatting-sweep\`**: the baseline samples of every prompt variant, summarised with CIs, each
compared (paired: same problems, same random streams) with the first variant.

**Reference.** \`formatting_summary.csv\` with accuracy = correct/(correct+incorrect). Because
\`think_open\`/\`think_close\` were never read, two of the three "variants" were the *same prompt*: their
70.8 % vs 68.2 % BT difference is pure sampling noise (docs/protocol.md §5).

**What we changed.** The variants are built from their think strings, so they really differ (checked below);
paired differences with CIs rather than two rates side by side. The reference's table is kept.`,
    },
    setup(
      `import { earlierSteps, notebookParams, notebookSetup, readArtifactFrame, reportFigure, runOrReuse } from "../experiments/backtracking/notebook_params.ts";`,
      `import { ensureTokenizer } from "../experiments/backtracking/steps/mod.ts";`,
      `import { FORMATTING_FILES, readProblems } from "../experiments/backtracking/artifacts/mod.ts";`,
      `import { buildPrompt } from "../experiments/backtracking/prompts.ts";`,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("09") },
    { md: `## Run the step (reused when newer than the events file)` },
    { code: `const step = await runOrReuse(ctx, "formatting-sweep");\nstep;` },
    {
      code: `
const sweep = await readArtifactFrame(ctx, FORMATTING_FILES.correctedCsv, {
  columns: [
    "variant", "n", "bt_rate", "bt_rate_lower", "bt_rate_upper", "delta_bt_rate", "delta_bt_rate_lower",
    "delta_bt_rate_upper", "mcnemar_bt_p", "accuracy", "accuracy_lower", "accuracy_upper", "accuracy_finished",
    "unfinished_rate", "unknown_rate", "bt_revision_rate", "bt_verification_rate", "bt_other_rate",
    "answer_changed", "fixes", "breaks", "eos_rate", "mean_length",
  ],
});`,
    },
    {
      code:
        `const sweepTable = await showTable(sweep, { digits: 3, title: "Prompt variants (paired with the first; rate CIs: clustered Wilson)" });`,
    },
    {
      code: `
const referenceTable = await showTable(await readArtifactFrame(ctx, FORMATTING_FILES.reference), {
  digits: 4,
  title: "Reference layout (formatting_summary.csv: accuracy = correct / (correct + incorrect))",
});`,
    },
    { code: `await showFigure(await reportFigure(ctx, "formatting_effect"));` },
    {
      md: `
## Sanity check: the variants are different prompts

The reference's bug was two identical prompts; here every variant's prompt for the same problem must differ.`,
    },
    { code: `const tokenizer = await ensureTokenizer(ctx);` },
    { code: `const problem = (await readProblems(ctx.run))[0]!;` },
    {
      code: `
const prompts = ctx.config.prompting.formatting_variants.map((v) => buildPrompt(tokenizer, ctx.config.prompting, problem.question, v.name));
if (new Set(prompts.map((p) => p.text)).size !== prompts.length) {
  throw new Error(\`prompt variants \${prompts.map((p) => p.variant).join(", ")} are not all different\`);
}
const promptsTable = await showTable(prompts.map((p) => ({ variant: p.variant, tokens: p.tokenIds.length, ending: JSON.stringify(p.text.slice(-40)) })), {
  title: "Each variant's prompt for the same problem (last 40 characters)",
});`,
    },
    { md: `## Reading` },
    {
      code: `
const [first, ...others] = sweep.toRecords();
if (!first) throw new Error(\`\${FORMATTING_FILES.correctedCsv} has no rows\`);
await showMarkdown(
  \`\\\`\${first.variant}\\\` backtracks in \${pct(Number(first.bt_rate))} of samples \` +
    \`(revision \${pct(Number(first.bt_revision_rate))}, verification \${pct(Number(first.bt_verification_rate))}, \` +
    \`other \${pct(Number(first.bt_other_rate))}); accuracy \${pct(Number(first.accuracy))} on all rows, \` +
    \`\${pct(Number(first.accuracy_finished))} on finished rows, \${pct(Number(first.unfinished_rate))} unfinished. \` +
    others.map((r) =>
      \`\\\`\${r.variant}\\\`: \${pct(Number(r.bt_rate))} (paired Δ \${pp(Number(r.delta_bt_rate))}, 95% CI \` +
      \`\${ciPp(Number(r.delta_bt_rate_lower), Number(r.delta_bt_rate_upper))}, McNemar p = \${pValue(Number(r.mcnemar_bt_p))})\`
    ).join("; ") +
    \`. A CI that contains 0 means this run cannot tell the format's effect from sampling noise.\`,
);`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------
// 10 report

const NB10: NotebookSpec = {
  file: "10_report.ipynb",
  cells: [
    {
      md: `
# 10 · Report

**Step \`make-report\`** renders every figure (SVG + PNG) from the run's analysis files into
\`runs/<id>/figures/\`, copies them to the project's \`figures/\` (\`BT_FIGURES_DIR\`), and writes
\`runs/<id>/report.md\`: summaries per variant and condition with CIs, paired comparisons, the lens and scan
tables, and the corrected numbers beside the reference-compatible ones and the reference's committed
Phase-1 numbers.

**Reference.** An executive summary that pooled ablated and baseline runs, two figures that did the same,
and claims beyond the data ("MLP 27 accounts for 55 % of backtracking") (docs/protocol.md §10, §18).

**What we changed.** Nothing pooled across conditions; every number with its CI and n; the caveats
(truncation, extraction, clustering, degeneration) stated in the report. Every table gives accuracy on all
rows and on finished rows with the unfinished rate; a section breaks backtracking down by onset type and
gives the answer trajectory (fixes and breaks with CIs; docs/protocol.md §23).`,
    },
    setup(
      `import { earlierSteps, notebookParams, notebookSetup, runOrReuse } from "../experiments/backtracking/notebook_params.ts";`,
      `import { artifactPath } from "../experiments/backtracking/run.ts";`,
      IMPORT_SHOW,
    ),
    { md: PARAMS_MD },
    { code: context("10") },
    { md: `## Make the report (reused when newer than every analysis file)` },
    { code: `const step = await runOrReuse(ctx, "make-report");\nstep;` },
    { code: `const report = await Deno.readTextFile(artifactPath(ctx.run, "report.md"));` },
    // the report's figure links are relative to the run folder, not to the notebook: shown as PNG outputs
    { code: `await showMarkdown(report, { imagesFrom: ctx.run.dir });` },
    {
      md: `
## Sanity check

Every figure exists as SVG and PNG.`,
    },
    {
      code: `
const figureFiles = [...Deno.readDirSync(artifactPath(ctx.run, "figures"))].map((e) => e.name).sort();
const stems = [...new Set(figureFiles.map((f) => f.replace(/\\.(svg|png)$/, "")))];
for (const heading of ["accuracy, finished rows", "## Onset types and answer trajectory", "### Answer trajectory"]) {
  if (!report.includes(heading)) throw new Error(\`report.md has no "\${heading}"; re-run make-report with --force\`);
}
const incomplete = stems.filter((s) => !figureFiles.includes(\`\${s}.svg\`) || !figureFiles.includes(\`\${s}.png\`));
if (stems.length === 0 || incomplete.length > 0) throw new Error(\`figures without both SVG and PNG: \${incomplete.join(", ") || "(none at all)"}\`);
const figuresTable = await showTable(stems.map((s) => ({
  figure: s,
  svg_bytes: Deno.statSync(artifactPath(ctx.run, \`figures/\${s}.svg\`)).size,
  png_bytes: Deno.statSync(artifactPath(ctx.run, \`figures/\${s}.png\`)).size,
})), { title: "Figures" });`,
    },
    { md: `## Reading` },
    {
      code: `
const trajectoryLine = report.split("\\n").find((l) => l.startsWith("- Onset types of the backtracking samples"));
if (trajectoryLine) await showMarkdown(trajectoryLine);
await showMarkdown(
  \`The report of run **\${ctx.run.id}** is \\\`\${artifactPath(ctx.run, "report.md")}\\\` with \${stems.length} figures in \` +
    \`\\\`\${artifactPath(ctx.run, "figures")}\\\`\` +
    (params.figuresDir ? \` (latest copies in \\\`\${params.figuresDir}\\\`)\` : "") +
    \`. Executed copies of these notebooks go to \\\`\${artifactPath(ctx.run, "notebooks")}\\\` when run with \` +
    \`\\\`deno task notebooks\\\` or \\\`deno task pipeline\\\`.\`,
);`,
    },
  ],
};

/** Every generated notebook, in run-log order. */
export const NOTEBOOK_SPECS: readonly NotebookSpec[] = [
  NB00,
  NB01,
  NB02,
  NB03,
  NB04,
  NB05,
  NB06,
  NB07,
  NB08,
  NB09,
  NB10,
];

const PROJECT_ROOT = fileURLToPath(new URL("../", import.meta.url));

const denoFmt = (text: string, file: string) => formatNotebookText(text, file, PROJECT_ROOT);

/**
 * The generated notebooks as file name → exact file text (formatted with `deno fmt`).
 *
 * @returns One entry per notebook, in order.
 */
export async function generateNotebooks(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const s of NOTEBOOK_SPECS) {
    out.set(s.file, await denoFmt(formatNotebook(notebookFromSpecs(s.file, s.cells)), s.file));
  }
  return out;
}

/**
 * Write the notebooks (or, with `check`, compare them with the files on disk).
 *
 * @param options `dir` (default `notebooks/`), `check`: write nothing, return the stale file names.
 * @returns The files written, or the stale ones in check mode.
 */
export async function writeNotebooks(
  options: { readonly dir?: string; readonly check?: boolean } = {},
): Promise<string[]> {
  const dir = options.dir ?? NOTEBOOKS_DIR;
  const out: string[] = [];
  for (const [file, text] of await generateNotebooks()) {
    const path = join(dir, file);
    if (options.check) {
      const current = await Deno.readTextFile(path).catch(() => undefined);
      if (current !== text) out.push(file);
      continue;
    }
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(path, text);
    out.push(file);
  }
  return out;
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  const files = await writeNotebooks({ check });
  if (check) {
    if (files.length > 0) {
      console.error(`Stale notebooks (run tools/make_notebooks.ts): ${files.join(", ")}`);
      Deno.exit(1);
    }
    console.log("notebooks are up to date");
  } else console.log(`wrote ${files.length} notebooks to ${NOTEBOOKS_DIR}`);
}
