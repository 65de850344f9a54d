/**
 * Every notebook runs top to bottom on its own (issue 16 item 1): notebooks 04 and 08 executed alone,
 * headlessly on the real Deno kernel, on a fresh runs root with no run (as `deno task notebooks 04` on a
 * fresh clone) create the run and run the earlier steps they need; run again, they reuse them. With
 * `BT_PREREQUISITES=stop` a notebook stops with a message naming the notebook to run first.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runNotebookSeries, seriesNotebooks } from "../../experiments/backtracking/pipeline_main.ts";
import {
  earlierSteps,
  notebookParams,
  notebookSetup,
  PrerequisiteMissingError,
} from "../../experiments/backtracking/notebook_params.ts";
import { readNotebook, sourceText } from "../../lib/notebook/nbformat.ts";

const CONFIG = fileURLToPath(new URL("../../configs/organism.yaml", import.meta.url));
const notebook = (nn: string) => seriesNotebooks().find((p) => basename(p).startsWith(`${nn}_`))!;
const quiet = { out: () => {}, err: (l: string) => console.error(l) };

/**
 * The "Run" table's `earlier_steps` cell of an executed notebook (its text/plain rendering). Also asserts
 * that no cell wrote to stderr (Jupyter shows stderr in red, as if it were an error; log lines go to stdout).
 */
async function earlierStepsShown(path: string): Promise<string> {
  const nb = await readNotebook(path);
  for (const [i, cell] of nb.cells.entries()) {
    if (cell.cell_type !== "code") continue;
    const err = cell.outputs.find((o) => o.output_type === "stream" && o.name === "stderr");
    assert.equal(err, undefined, `${path} cell ${i} wrote to stderr: ${JSON.stringify(err)}`);
  }
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
});
