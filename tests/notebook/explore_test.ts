/**
 * The exploration notebook (`notebooks/explore.ipynb`, issue 16 item 7, issue 18 item 4): the committed file
 * equals its generator's output, imports only the two entry modules, and runs headlessly on the organism:
 * every cell without an error, the trace with its onset marked, the logit-lens heat map, the same-seed diff,
 * the patching table, one head's pattern and the single-head ablation table, and a reading without gaps.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { EXPLORE_FILE, generateExploreNotebook, NOTEBOOKS_DIR } from "../../tools/make_explore_notebook.ts";
import { executeNotebook } from "../../lib/notebook/mod.ts";
import { type DisplayDataOutput, readNotebook, sourceText } from "../../lib/notebook/nbformat.ts";

const PATH = join(NOTEBOOKS_DIR, EXPLORE_FILE);
const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("explore notebook: committed file equals the generator; imports only the entry modules", async () => {
  assert.equal(
    await Deno.readTextFile(PATH),
    await generateExploreNotebook(),
    "notebooks/explore.ipynb drifted: run deno run -A tools/make_explore_notebook.ts",
  );
  const nb = await readNotebook(PATH);
  const imports = nb.cells.flatMap((c) =>
    c.cell_type === "code" ? [...sourceText(c.source).matchAll(/from "([^"]+)"/g)].map((m) => m[1]) : []
  );
  assert.deepEqual([...new Set(imports)].sort(), ["../experiments/backtracking/mod.ts", "../lib/mod.ts"]);
});

Deno.test("explore notebook: its code type-checks", async () => {
  const nb = await readNotebook(PATH);
  const code = nb.cells.filter((c) => c.cell_type === "code").map((c) => sourceText(c.source)).join(";\n");
  const tmp = join(NOTEBOOKS_DIR, `.check_explore_${crypto.randomUUID().slice(0, 8)}.ts`);
  await Deno.writeTextFile(
    tmp,
    `// generated from notebooks/explore.ipynb by tests/notebook/explore_test.ts\n${code};\n`,
  );
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--frozen", tmp],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
});

Deno.test({
  name: "explore notebook: runs headlessly on the organism, every display present",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "explore-" });
    try {
      const out = join(dir, EXPLORE_FILE);
      const res = await executeNotebook(PATH, {
        outputPath: out,
        cwd: NOTEBOOKS_DIR,
        env: { BT_CONFIG: "configs/organism.yaml" },
        cellTimeoutMs: 300_000,
      });
      assert.equal(res.failed, undefined, JSON.stringify(res.failed));
      const nb = await readNotebook(out);
      const shown = (mime: string) =>
        nb.cells.flatMap((c) =>
          c.cell_type === "code"
            ? c.outputs.filter((o): o is DisplayDataOutput =>
              o.output_type === "display_data" && mime in o.data
            )
            : []
        );
      for (const c of nb.cells) {
        if (c.cell_type !== "code") continue;
        const err = c.outputs.find((o) => o.output_type === "error");
        assert.equal(err, undefined, JSON.stringify(err));
      }
      const html = shown("text/html").map((o) => sourceText(o.data["text/html"] as string));
      assert.ok(html.some((h) => /onset of &quot;/.test(h)), "no token view with a marked onset");
      assert.ok(html.some((h) => h.includes("shared prefix:")), "no same-seed diff");
      const plain = shown("text/plain").map((o) => sourceText(o.data["text/plain"] as string));
      assert.ok(plain.some((t) => /^log P\(.*\n.*log_p_onset/.test(t)), "no patching table");
      assert.ok(
        plain.some((t) => t.includes("delta_log_p_onset") && t.includes("(whole layer)")),
        "no head table",
      );
      const pngs = shown("image/png");
      assert.equal(pngs.length, 2, "the heat map and the attention pattern");
      const md = shown("text/markdown").map((o) => sourceText(o.data["text/markdown"] as string));
      const reading = md.at(-1)!;
      // the planted head of the sampled onset's trigger: the trace's onset is " Actually", written by L6H0 (the
      // notebook used to inspect L2H0, the "Wait" head, whose single-head table was all ≈ 0)
      assert.match(reading, /onset token "Actually"/);
      assert.match(reading, /Head L6H0 puts \d+% of its attention/);
      assert.match(reading, /zeroing L6H0 changes the onset log-probability most \(-\d\.\d\d\)/);
      // no stray execute_result (a cell's last push() value, "3") among the outputs
      const results = nb.cells.flatMap((c) => (c.cell_type === "code" ? c.outputs : []))
        .filter((o) => o.output_type === "execute_result");
      assert.deepEqual(
        results.map((o) => sourceText((o as { data: Record<string, string> }).data["text/plain"]!)),
        [],
      );
      assert.doesNotMatch(reading, /undefined|NaN/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
