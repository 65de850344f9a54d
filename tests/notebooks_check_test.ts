/**
 * The committed step notebooks equal the generator's output (no drift), and every notebook's code
 * type-checks: its code cells joined with ";\n" into a temporary .ts file in `notebooks/` (so the
 * notebooks' relative imports resolve) and checked with `deno check` (DESIGN.md, "Notebooks and headless
 * execution"). The failing-cell behaviour of the runner CLI is tested in tests/notebook/main_test.ts
 * ("CLI: stops at the first failure, exit 1, error details on stderr").
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { generateNotebooks, NOTEBOOKS_DIR } from "../tools/make_notebooks.ts";
import { readNotebook, sourceText } from "../lib/notebook/nbformat.ts";

const PROJECT = new URL("../", import.meta.url).pathname;

Deno.test("notebooks: the committed .ipynb files equal tools/make_notebooks.ts output", async () => {
  const generated = await generateNotebooks();
  assert.ok(generated.size >= 11, `only ${generated.size} notebooks generated`);
  for (const [file, text] of generated) {
    const committed = await Deno.readTextFile(join(NOTEBOOKS_DIR, file)).catch(() => undefined);
    assert.ok(
      committed !== undefined,
      `notebooks/${file} is missing: run deno run -A tools/make_notebooks.ts`,
    );
    assert.equal(
      committed,
      text,
      `notebooks/${file} drifted from the generator: run deno run -A tools/make_notebooks.ts`,
    );
  }
});

Deno.test("notebooks: generator output is deterministic and numbered in run-log order", async () => {
  const a = await generateNotebooks(), b = await generateNotebooks();
  assert.deepEqual([...a.entries()], [...b.entries()]);
  const files = [...a.keys()];
  files.forEach((f, i) => assert.match(f, new RegExp(`^${String(i).padStart(2, "0")}_[a-z0-9_]+\\.ipynb$`)));
});

Deno.test("notebooks: every notebook's code cells type-check (deno check)", async () => {
  const files = [...Deno.readDirSync(NOTEBOOKS_DIR)].map((e) => e.name).filter((f) =>
    /^\d\d_.*\.ipynb$/.test(f)
  )
    .sort();
  assert.ok(files.length >= 11, `found ${files.length} notebooks`);
  const temps: string[] = [];
  try {
    for (const file of files) {
      const nb = await readNotebook(join(NOTEBOOKS_DIR, file));
      const code = nb.cells.filter((c) => c.cell_type === "code").map((c) => sourceText(c.source)).join(
        ";\n",
      );
      const tmp = join(
        NOTEBOOKS_DIR,
        `.check_${file.replace(/\.ipynb$/, "")}_${crypto.randomUUID().slice(0, 8)}.ts`,
      );
      await Deno.writeTextFile(
        tmp,
        `// generated from notebooks/${file} by tests/notebooks_check_test.ts\n${code};\n`,
      );
      temps.push(tmp);
    }
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--frozen", ...temps],
      cwd: PROJECT,
      env: { NO_COLOR: "1" },
    }).output();
    const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, `deno check failed for the notebooks' code:\n${out}`);
  } finally {
    for (const t of temps) await Deno.remove(t).catch(() => {});
  }
});
