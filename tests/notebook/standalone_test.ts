/**
 * Every notebook runs top to bottom on its own (issue 16 item 1). Each series notebook 00–15 executed alone,
 * headlessly on the real Deno kernel, on its own fresh runs root with no run (as `deno task notebooks NN` on
 * a fresh clone), on a small organism config: it creates the run, runs every earlier step it needs and
 * completes with its own sanity checks passing, no error and no stderr output, and its "Run" table names
 * the steps it ran. Notebooks 04 and 08 also on the default config, twice: run again, they reuse every
 * earlier step. With `BT_PREREQUISITES=stop` a notebook stops with a message naming the notebook to run
 * first.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runNotebookSeries, seriesNotebooks } from "../../experiments/backtracking/pipeline_main.ts";
import {
  earlierSteps,
  NOTEBOOK_PREREQUISITES,
  notebookParams,
  notebookSetup,
  PrerequisiteMissingError,
  SERIES_STAGES,
} from "../../experiments/backtracking/notebook_params.ts";
import { type Config, parseConfig, resolvedConfigYaml } from "../../experiments/backtracking/config.ts";
import { readNotebook, sourceText } from "../../lib/notebook/nbformat.ts";
import { smallShardConfig } from "../steps/_shard_config.ts";
import { assertHtmlExportKeepsFigures, findNbconvert } from "./_helpers.ts";

const CONFIG = fileURLToPath(new URL("../../configs/organism.yaml", import.meta.url));
const notebook = (nn: string) => seriesNotebooks().find((p) => basename(p).startsWith(`${nn}_`))!;
const quiet = { out: () => {}, err: (l: string) => console.error(l) };

/** Asserts that no cell of an executed notebook wrote to stderr (Jupyter shows it red, as an error). */
async function assertNoStderr(path: string): Promise<void> {
  const nb = await readNotebook(path);
  for (const [i, cell] of nb.cells.entries()) {
    if (cell.cell_type !== "code") continue;
    const err = cell.outputs.find((o) => o.output_type === "stream" && o.name === "stderr");
    assert.equal(err, undefined, `${path} cell ${i} wrote to stderr: ${JSON.stringify(err)}`);
  }
}

/**
 * The "Run" table's `earlier_steps` cell of an executed notebook (its text/plain rendering). Also asserts
 * that no cell wrote to stderr (log lines go to stdout).
 */
async function earlierStepsShown(path: string): Promise<string> {
  await assertNoStderr(path);
  const nb = await readNotebook(path);
  for (const cell of nb.cells) {
    if (cell.cell_type !== "code" || !sourceText(cell.source).includes("notebookSetup(")) continue;
    for (const o of cell.outputs) {
      if (o.output_type === "error") assert.fail(`${path}: ${JSON.stringify(o)}`);
      if (o.output_type !== "display_data") continue;
      const text = sourceText(o.data["text/plain"] as string);
      if (text.includes("earlier_steps")) return text; // (generation progress is displayed first)
    }
  }
  assert.fail(`${path}: no notebookSetup cell with a displayed run table`);
}

/** The `earlier_steps` value of a run table's text (its last column, to the end of the row). */
function earlierStepsValue(shown: string): string {
  const m = /(?:ran now: |reused: |none needed)[^\n]*/.exec(shown);
  assert.ok(m, `no earlier_steps value in ${shown}`);
  return m[0].trimEnd();
}

/** The series notebooks by number, 00–15. */
const SERIES = seriesNotebooks().map((p) => basename(p).slice(0, 2));

/**
 * A small organism config for running every notebook alone: the sharding tests' config
 * (tests/steps/_shard_config.ts) with 10 problems × 4 samples × 3 variants, 100 new tokens, batches of 40
 * and at most 30 events for the lens and scan (the scan needs about that many to recover the planted
 * circuit, and the ablation comparison about 40 samples to show its ≥ 80 % cut), one random draw, and a
 * Phase 2 of one setting each over 3 problems × 2 samples, continuation ablation and patching on 6 events.
 * The notebooks' own sanity checks (the scan recovers the planted circuit, the targeted ablation cuts
 * backtracking by ≥ 80 % and no random draw as much, patching localises a planted component) hold on it as
 * on the default config.
 */
async function standaloneConfig(root: string): Promise<Config> {
  const base = await smallShardConfig(root);
  return parseConfig({
    ...structuredClone(base),
    dataset: { ...base.dataset, max_examples: 10 },
    generation: { ...base.generation, num_samples_per_prompt: 4, max_new_tokens: 100, batch_size: 40 },
    analysis: { ...base.analysis, max_events: 30 },
    phase2: {
      ...base.phase2,
      continuation_ablation: {
        ...base.phase2.continuation_ablation,
        enabled: true,
        max_events: 6,
        scales: [0],
      },
      patching: { ...base.phase2.patching, enabled: true, max_events: 6 },
    },
  }, "organism (standalone notebooks test)");
}

Deno.test({
  name:
    "every series notebook 00–15 alone on a fresh runs root (small organism): completes, names what it ran",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    assert.deepEqual(
      SERIES,
      Object.keys(NOTEBOOK_PREREQUISITES).sort(),
      "one prerequisite entry per series notebook",
    );
    const root = await Deno.makeTempDir({ prefix: "nb-alone-" });
    try {
      const configPath = join(root, "config.yaml");
      await Deno.writeTextFile(configPath, resolvedConfigYaml(await standaloneConfig(root)));
      const times: string[] = [];
      const executed: string[] = [];
      for (const nn of SERIES) {
        await t.step(nn, async () => {
          const runsRoot = join(root, `runs_${nn}`);
          const series = await runNotebookSeries({
            configPath,
            runsRoot,
            figuresDir: null,
            notebooks: [notebook(nn)],
            io: quiet,
          });
          times.push(`${nn} ${series.seconds.toFixed(1)} s`);
          assert.equal(series.failed, undefined, `${nn} alone failed: ${JSON.stringify(series.failed)}`);
          executed.push(series.notebooks[0]!.output);
          assert.equal(
            (await Deno.readTextFile(join(runsRoot, ".current_run_id"))).trim(),
            series.runId,
            `${nn} created its run`,
          );
          if (nn === "00") {
            await assertNoStderr(series.notebooks[0]!.output);
            return; // notebook 00 creates the run and needs nothing before it
          }
          // On a fresh runs root every earlier stage the notebook needs runs now, none is reused.
          const needs = NOTEBOOK_PREREQUISITES[nn]!;
          const expected = earlierSteps(
            needs.map((stage) => ({
              stage,
              notebook: SERIES_STAGES[stage].notebook,
              status: "ran",
              seconds: 0,
            })),
          );
          assert.equal(earlierStepsValue(await earlierStepsShown(series.notebooks[0]!.output)), expected);
        });
      }
      console.log(`standalone notebooks (small organism): ${times.join(", ")}`);
      // Every executed series notebook (Phase 2 included) keeps its figures in nbconvert's HTML export.
      const nbconvert = findNbconvert();
      await t.step({
        name: nbconvert
          ? "jupyter nbconvert --to html of the 16 executed notebooks keeps every figure"
          : "html export (nbconvert missing: apt-get install python3-nbconvert)",
        ignore: nbconvert === undefined,
        fn: async () => {
          assert.equal(executed.length, SERIES.length, "a notebook failed above");
          const counts = await assertHtmlExportKeepsFigures(nbconvert!, executed, join(root, "html"));
          const total = Object.values(counts).reduce((a, b) => a + b, 0);
          assert.ok(
            total >= 10,
            `only ${total} figures in the executed notebooks: ${JSON.stringify(counts)}`,
          );
          console.log(`html export: ${total} figures kept across ${executed.length} notebooks`);
        },
      });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "notebooks 04 and 08 alone on a fresh runs root: create the run, run what they need, then reuse it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "nb-standalone-" });
    try {
      for (const nn of ["04", "08"]) {
        const runsRoot = join(root, `runs_${nn}`);
        const options = {
          configPath: CONFIG,
          runsRoot,
          figuresDir: null,
          notebooks: [notebook(nn)],
          io: quiet,
        };
        const first = await runNotebookSeries(options);
        assert.equal(first.failed, undefined, `${nn} alone failed: ${JSON.stringify(first.failed)}`);
        const shown = await earlierStepsShown(first.notebooks[0]!.output);
        assert.match(
          shown,
          /ran now: prepare-data \(01\), generate baseline \(02\), detect-events \(03\)/,
          shown,
        );
        if (nn === "08") {
          assert.match(
            shown,
            /ablation-scan \(05\), generate targeted_ablation \(06\), generate random_ablation/,
          );
          const csv = await Deno.readTextFile(join(first.runDir, "analysis/condition_comparison.csv"));
          assert.match(csv, /targeted_ablation/);
        } else {
          assert.ok((await Deno.stat(join(first.runDir, "analysis/logit_lens.csv"))).isFile);
        }
        // the current run is now set: the same notebook again reuses every earlier step
        const again = await runNotebookSeries(options);
        assert.equal(again.failed, undefined, `${nn} again failed: ${JSON.stringify(again.failed)}`);
        assert.equal(again.runId, first.runId);
        const reused = await earlierStepsShown(again.notebooks[0]!.output);
        assert.doesNotMatch(reused, /ran now/, reused);
        assert.match(reused, /reused: prepare-data \(01\)/);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "notebookSetup with BT_PREREQUISITES=stop: a fresh run stops before generation, naming notebook 02",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "nb-stop-" });
    const cwd = Deno.cwd();
    try {
      const params = notebookParams({
        BT_CONFIG: CONFIG,
        BT_RUNS_ROOT: root,
        BT_RUN_ID: "20260101_000000",
        BT_PREREQUISITES: "stop",
      });
      await assert.rejects(
        () => notebookSetup("04", params),
        (e: unknown) => {
          assert.ok(e instanceof PrerequisiteMissingError);
          assert.equal(e.notebook, "02_generate_baseline");
          assert.match(
            e.message,
            /Notebook 04 needs step "generate baseline".*run notebook 02_generate_baseline first/,
          );
          return true;
        },
      );
      // the run was created and the cheap step before generation ran
      assert.ok((await Deno.stat(join(root, "20260101_000000", "data", "problems.jsonl"))).isFile);
      assert.throws(
        () => notebookParams({ BT_PREREQUISITES: "maybe" }),
        /BT_PREREQUISITES must be "run" or "stop"/,
      );
      await assert.rejects(() => notebookSetup("99", params), /No notebook "99" in the series/);
    } finally {
      Deno.chdir(cwd);
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("earlierSteps: what ran, what was reused, or none needed", () => {
  assert.equal(earlierSteps([]), "none needed");
  assert.equal(
    earlierSteps([
      { stage: "prepare-data", notebook: "01_prepare_data", status: "reused", seconds: 0 },
      { stage: "generate baseline", notebook: "02_generate_baseline", status: "ran", seconds: 3 },
      { stage: "detect-events", notebook: "03_detect_events", status: "ran", seconds: 1 },
    ]),
    "ran now: generate baseline (02), detect-events (03); reused: prepare-data (01)",
  );
  // Phase 2 is run by notebooks 11–14 (it read "phase2 (11)")
  assert.equal(
    earlierSteps([{ stage: "phase2", notebook: SERIES_STAGES.phase2.notebook, status: "ran", seconds: 9 }]),
    "ran now: phase2 (11–14)",
  );
});
