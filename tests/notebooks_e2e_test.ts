/**
 * End to end: the whole notebook series (`notebooks/NN_*.ipynb`) executed on the real Deno Jupyter kernel
 * on the embedded default (the model organism; `BT_E2E_CONFIG` names another config) into a temporary
 * runs root, then checked from the run's artifacts: no cell errored, every display cell has its outputs
 * (figures as PNG), every figure file exists as SVG and PNG, the report exists, the planted circuit
 * was recovered, the targeted ablation cut the backtracking rate by ≥ 80 %, and the protocol validation
 * came out as expected (ours recovers the planted circuit, the reference takes the decoy and degenerates). Then: re-running the series
 * on the same run reuses every finished step and changes no number, and the library pipeline
 * (`runPipeline`) on a second run gives the identical condition comparison (determinism).
 *
 * A notebook with a failing cell making the runner CLI exit non-zero with the error shown is tested in
 * tests/notebook/main_test.ts ("CLI: stops at the first failure, exit 1, error details on stderr").
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, parseConfig } from "../experiments/backtracking/config.ts";
import { readOrganismManifest } from "../lib/engine/organism.ts";
import { type CodeCell, type DisplayDataOutput, readNotebook, sourceText } from "../lib/notebook/nbformat.ts";
import {
  runNotebookSeries,
  seriesNotebooks,
  type SeriesResult,
} from "../experiments/backtracking/pipeline_main.ts";
import { runPipeline } from "../experiments/backtracking/steps/mod.ts";
import { NOTEBOOK_SPECS } from "../tools/make_notebooks.ts";
import { assertHtmlExportKeepsFigures, findNbconvert } from "./notebook/_helpers.ts";

const CONFIG = Deno.env.get("BT_E2E_CONFIG") ??
  fileURLToPath(new URL("../configs/organism.yaml", import.meta.url));

/** Figures make-report renders when every step ran. */
const FIGURES = [
  "bt_rate_by_variant",
  "accuracy_by_backtracking",
  "formatting_effect",
  "bt_rate_by_condition",
  "logit_lens_by_layer",
  "ablation_importance_by_layer",
];

/**
 * The notebooks to run: the Phase-1 series this project's generator writes (00–10, one per step of the
 * run log); `BT_E2E_NOTEBOOKS=all` runs every `notebooks/NN_*.ipynb` (Phase 2 included).
 */
const NOTEBOOKS = Deno.env.get("BT_E2E_NOTEBOOKS") === "all"
  ? seriesNotebooks()
  : seriesNotebooks().filter((p) => NOTEBOOK_SPECS.some((s) => basename(p) === s.file));

const silent = { out: () => {}, err: (l: string) => console.error(l) };

function displays(cell: CodeCell): DisplayDataOutput[] {
  return cell.outputs.filter((o): o is DisplayDataOutput => o.output_type === "display_data");
}

/** Asserts every executed notebook of a series: no error output, each display call has its output. */
async function assertExecuted(
  series: SeriesResult,
): Promise<{ cells: number; outputs: number; figures: number }> {
  let cells = 0, outputs = 0, figures = 0;
  for (const nbInfo of series.notebooks) {
    const name = basename(nbInfo.output);
    const nb = await readNotebook(nbInfo.output);
    let readings = 0;
    for (const [i, cell] of nb.cells.entries()) {
      if (cell.cell_type !== "code") continue;
      cells++;
      outputs += cell.outputs.length;
      const where = `${name} cell ${i}`;
      const src = sourceText(cell.source);
      const error = cell.outputs.find((o) => o.output_type === "error");
      assert.equal(error, undefined, `${where} has an error output: ${JSON.stringify(error)}`);
      assert.ok(cell.execution_count !== null || src.trim() === "", `${where} was not executed`);
      const shown = displays(cell);
      if (src.includes("showFigure(")) {
        // Figures are shown as PNG alone (an SVG beside it is what nbconvert's HTML export prefers and
        // its sanitiser empties; the SVG is saved under runs/<id>/figures/).
        const fig = shown.find((d) => "image/png" in d.data);
        assert.ok(fig, `${where}: figure cell without an image/png output`);
        assert.ok(
          !("image/svg+xml" in fig.data),
          `${where}: figure display carries an SVG nbconvert would empty`,
        );
        assert.match(sourceText(fig.data["image/png"] as string), /^iVBORw0KGgo/, `${where}: PNG (base64)`);
        figures++;
      }
      if (src.includes("showTable(")) {
        assert.ok(shown.some((d) => "text/html" in d.data), `${where}: table cell without an HTML table`);
      }
      if (src.includes("showMarkdown(")) {
        const md = shown.find((d) => "text/markdown" in d.data);
        assert.ok(md, `${where}: markdown cell without text/markdown output`);
        assert.doesNotMatch(
          sourceText(md.data["text/markdown"] as string),
          /undefined|NaN/,
          `${where}: reading`,
        );
        readings++;
      }
      if (/\n?step;\s*$|^\s*`ok: /m.test(src)) {
        assert.ok(cell.outputs.some((o) => o.output_type === "execute_result"), `${where}: no result shown`);
      }
    }
    assert.ok(readings >= 1, `${name} has no reading (showMarkdown) output`);
  }
  return { cells, outputs, figures };
}

/** Statuses `runOrReuse` reported in the executed notebooks (`status: "ran" | "reused"`). */
async function stepStatuses(series: SeriesResult): Promise<string[]> {
  const out: string[] = [];
  for (const n of series.notebooks) {
    const nb = await readNotebook(n.output);
    for (const cell of nb.cells) {
      if (cell.cell_type !== "code") continue;
      for (const o of cell.outputs) {
        if (o.output_type !== "execute_result") continue;
        const m = /step: "([^"]+)",\s*status: "(ran|reused)"/.exec(
          sourceText(o.data["text/plain"] as string),
        );
        if (m) out.push(`${basename(n.output).slice(0, 2)} ${m[1]}: ${m[2]}`);
      }
    }
  }
  return out;
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "notebooks e2e: the series runs on the kernel, recovers the planted circuit, re-runs and is deterministic",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const root = await Deno.makeTempDir({ prefix: "notebooks_e2e_" });
    const runsRoot = join(root, "runs");
    const figuresDir = join(root, "figures");
    try {
      const options = {
        configPath: CONFIG,
        runsRoot,
        figuresDir,
        runId: "nb",
        notebooks: NOTEBOOKS,
        io: silent,
      };
      const t0 = performance.now();
      const series = await runNotebookSeries(options);
      const firstSeconds = (performance.now() - t0) / 1000;
      const dir = series.runDir;
      const comparison = () => Deno.readTextFile(join(dir, "analysis/condition_comparison.csv"));

      await t.step(
        "every notebook ran without an error output; figures, tables, readings shown",
        async () => {
          assert.equal(series.failed, undefined, `failed: ${JSON.stringify(series.failed)}`);
          assert.equal(series.notebooks.length, NOTEBOOKS.length);
          assert.ok(NOTEBOOKS.length >= NOTEBOOK_SPECS.length, `${NOTEBOOKS.length} notebooks`);
          const counts = await assertExecuted(series);
          assert.ok(counts.figures >= FIGURES.length, `only ${counts.figures} figure outputs`);
          console.error(
            `notebooks e2e: ${series.notebooks.length} notebooks, ${counts.cells} code cells, ${counts.outputs} ` +
              `outputs, ${counts.figures} figures in ${firstSeconds.toFixed(1)} s`,
          );
        },
      );

      await t.step("artifacts: figures as SVG and PNG, report, executed notebooks", async () => {
        for (const f of FIGURES) {
          for (const ext of ["svg", "png"]) {
            assert.ok(await exists(join(dir, "figures", `${f}.${ext}`)), `missing figures/${f}.${ext}`);
            assert.ok(
              await exists(join(figuresDir, `${f}.${ext}`)),
              `not copied to the figures folder: ${f}.${ext}`,
            );
          }
        }
        const figs = [...Deno.readDirSync(join(dir, "figures"))].map((e) => e.name);
        for (const f of figs) {
          const twin = f.endsWith(".svg") ? f.replace(/\.svg$/, ".png") : f.replace(/\.png$/, ".svg");
          assert.ok(figs.includes(twin), `${f} has no ${twin}`);
        }
        const report = await Deno.readTextFile(join(dir, "report.md"));
        assert.match(report, /^# Backtracking as a state transition/);
        for (const n of series.notebooks) assert.ok(n.output.startsWith(join(dir, "notebooks")), n.output);
      });

      // The executed notebooks themselves (not a fixture) keep every figure in nbconvert's HTML export.
      const nbconvert = findNbconvert();
      await t.step({
        name: nbconvert
          ? "jupyter nbconvert --to html of every executed notebook keeps every figure"
          : "html export of the executed notebooks (nbconvert missing: apt-get install python3-nbconvert)",
        ignore: nbconvert === undefined,
        fn: async () => {
          const counts = await assertHtmlExportKeepsFigures(
            nbconvert!,
            series.notebooks.map((n) => n.output),
            join(root, "html"),
          );
          const total = Object.values(counts).reduce((a, b) => a + b, 0);
          assert.ok(total >= FIGURES.length, `only ${total} figures exported: ${JSON.stringify(counts)}`);
        },
      });

      await t.step("the planted circuit was recovered and its ablation cuts backtracking ≥ 80%", async () => {
        const meta = JSON.parse(await Deno.readTextFile(join(dir, "meta.json")));
        const manifest = await readOrganismManifest(meta.model.dir);
        const selected = JSON.parse(await Deno.readTextFile(join(dir, "analysis/selected_layers.json")));
        for (const p of manifest.planted) {
          assert.ok(
            selected[p.component].includes(p.layer),
            `planted ${p.component} ${p.layer} not selected`,
          );
        }
        const rows = (await comparison()).trim().split("\n").slice(1).map((l) => l.split(","));
        const rate = (c: string) => Number(rows.find((r) => r[1] === c)?.[4]);
        const cut = 1 - rate("targeted_ablation") / rate("baseline");
        assert.ok(rate("baseline") > 0, `baseline BT rate ${rate("baseline")}`);
        assert.ok(cut >= 0.8, `targeted ablation cut the BT rate by ${(100 * cut).toFixed(1)}% only`);
      });

      await t.step(
        "protocol validation: ours recovers the planted circuit, the reference takes the decoy",
        async () => {
          const pv = JSON.parse(await Deno.readTextFile(join(dir, "analysis/protocol_validation.json")));
          assert.ok(pv.expected.passed, `protocol validation: ${pv.expected.failures.join("; ")}`);
          assert.ok(pv.ours.selection.recall >= 2 / 3 - 1e-9, `ours recall ${pv.ours.selection.recall}`);
          assert.equal(pv.ours.selection.decoy_selected, false);
          assert.equal(pv.reference.selection.decoy_selected, true);
          assert.ok(pv.reference.ablation.degeneration.degenerate, "the reference's ablation is flagged");
          const report = await Deno.readTextFile(join(dir, "report.md"));
          assert.match(report, /### Verdict: planted vs recovered/);
          assert.match(report, /\| reference_selection_ablation \|.*DEGENERATE/);
        },
      );

      const before = await comparison();
      const report = await Deno.readTextFile(join(dir, "report.md"));

      await t.step("re-running the series reuses finished steps and changes no number", async () => {
        const again = await runNotebookSeries(options);
        assert.equal(again.failed, undefined, `re-run failed: ${JSON.stringify(again.failed)}`);
        await assertExecuted(again);
        const statuses = await stepStatuses(again);
        let calls = 0;
        for (const n of again.notebooks) {
          for (const c of (await readNotebook(n.input)).cells) {
            if (c.cell_type === "code") calls += sourceText(c.source).split("await runOrReuse(").length - 1;
          }
        }
        assert.ok(calls >= 8, `only ${calls} runOrReuse calls in the series`);
        assert.equal(statuses.length, calls, statuses.join("; "));
        assert.deepEqual(statuses.filter((s) => !s.endsWith("reused")), [], statuses.join("; "));
        assert.equal(await comparison(), before);
        assert.equal(await Deno.readTextFile(join(dir, "report.md")), report);
      });

      await t.step(
        "determinism: runPipeline on a second run gives identical condition comparisons",
        async () => {
          const base = await loadConfig(CONFIG);
          const cfg = parseConfig(
            { ...structuredClone(base), run: { ...base.run, output_dir: runsRoot } },
            "e2e",
          );
          // Phase 1 only (the Phase-2 analyses, when this runPipeline has them, are not compared here).
          const pipelineOptions = {
            runId: "lib",
            progress: "silent",
            projectFigures: null,
            log: () => {},
            phase2: false,
          };
          const { ctx } = await runPipeline(cfg, pipelineOptions as Parameters<typeof runPipeline>[1]);
          // Phase-1 conditions only: Phase-2 analyses may add conditions of their own to a run.
          const phase1 = async (path: string) =>
            (await Deno.readTextFile(path)).split(/\r?\n/).filter((l) => !/^[^,]*,phase2_/.test(l)).join(
              "\n",
            );
          for (
            const f of [
              "condition_comparison.csv",
              "condition_comparison_corrected.csv",
              "selected_layers.json",
            ]
          ) {
            assert.equal(
              await phase1(join(ctx.run.dir, "analysis", f)),
              await phase1(join(dir, "analysis", f)),
              `${f} differs between the notebook run and the library pipeline run`,
            );
          }
        },
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
