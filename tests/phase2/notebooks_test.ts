import assert from "node:assert/strict";
import { join } from "node:path";
import { generatePhase2Notebooks, NOTEBOOKS_DIR } from "../../tools/make_phase2_notebooks.ts";
import { readNotebook } from "../../lib/notebook/nbformat.ts";

Deno.test("phase-2 notebooks: committed files equal tools/make_phase2_notebooks.ts output", async () => {
  const generated = await generatePhase2Notebooks();
  assert.deepEqual([...generated.keys()], [
    "11_phase2_sweeps.ipynb",
    "12_phase2_steering.ipynb",
    "13_phase2_continuation.ipynb",
    "14_phase2_patching.ipynb",
    "15_phase2_report.ipynb",
  ]);
  for (const [file, text] of generated) {
    const committed = await Deno.readTextFile(join(NOTEBOOKS_DIR, file)).catch(() => undefined);
    assert.equal(
      committed,
      text,
      `notebooks/${file} is missing or stale: run tools/make_phase2_notebooks.ts`,
    );
  }
});

Deno.test("phase-2 notebooks: each runs its step, shows a figure and a reading from variables", async () => {
  for (const file of (await generatePhase2Notebooks()).keys()) {
    const nb = await readNotebook(join(NOTEBOOKS_DIR, file));
    const code = nb.cells.filter((c) => c.cell_type === "code").map((c) => [c.source].flat().join("")).join(
      "\n",
    );
    assert.match(code, /showMarkdown\(/, `${file}: no reading`);
    if (!file.startsWith("15")) {
      assert.match(code, /step: "phase2-[a-z]+", status: /, `${file}: no step status`);
      assert.match(code, /showFigure\(/, `${file}: no figure`);
    }
  }
});
