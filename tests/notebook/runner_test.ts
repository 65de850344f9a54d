import assert from "node:assert/strict";
import { executeNotebook } from "../../lib/notebook/runner.ts";
import {
  type CodeCell,
  type ErrorOutput,
  type Notebook,
  parseNotebook,
  sourceText,
} from "../../lib/notebook/nbformat.ts";
import { kernelChildren, KernelWatch, writeFixture } from "./_helpers.ts";

async function readOut(path: string): Promise<Notebook> {
  const nb = parseNotebook(await Deno.readTextFile(path), path);
  assert.equal(nb.nbformat, 4);
  assert.ok(nb.nbformat_minor >= 5);
  for (const c of nb.cells) assert.match(c.id ?? "", /^[a-zA-Z0-9-_]{1,64}$/);
  return nb;
}

function code(nb: Notebook, index: number): CodeCell {
  const c = nb.cells[index];
  assert.ok(c?.cell_type === "code", `cell ${index} is not a code cell`);
  return c;
}

Deno.test("executeNotebook: streams, results, raw displays, markdown, cwd and env", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  const watch = new KernelWatch();
  try {
    const input = await writeFixture(dir, "basic.ipynb", [
      { md: "# Title\n\nSome *markdown*." },
      'console.log("to stdout"); console.log("more stdout"); console.error("to stderr");',
      "const answer = 40 + 2;\nanswer",
      'await Deno.jupyter.display({ "text/plain": "x", "text/html": "<b>x</b>" }, { raw: true });',
      "",
      "[Deno.cwd(), Deno.env.get('NB_PARAM'), Deno.env.get('NO_COLOR')]",
      'await Deno.jupyter.broadcast("display_data", { data: { "text/plain": "v1" }, metadata: {}, ' +
      'transient: { display_id: "d1" } });',
      'await Deno.jupyter.broadcast("update_display_data", { data: { "text/plain": "v2" }, metadata: {}, ' +
      'transient: { display_id: "d1" } });\nconsole.log("gone");\n' +
      'await Deno.jupyter.broadcast("clear_output", { wait: true });\nconsole.log("kept");',
    ]);
    const outputPath = `${dir}/out/basic.ipynb`;
    const statuses: string[] = [];
    const result = await executeNotebook(input, {
      outputPath,
      env: { NB_PARAM: "p-value" },
      onCell: (i, s) => {
        watch.onCell();
        statuses.push(`${i}:${s}`);
      },
    });
    assert.equal(result.failed, undefined);
    assert.equal(result.cells, 8);
    assert.equal(result.executed, 6);
    assert.deepEqual(statuses.slice(0, 2), ["1:running", "1:ok"]);

    const raw = JSON.parse(await Deno.readTextFile(outputPath));
    assert.equal(raw.nbformat, 4);
    assert.deepEqual(raw.metadata.kernelspec, { name: "deno", display_name: "Deno", language: "typescript" });
    assert.equal(raw.metadata.language_info.name, "typescript");
    const nb = await readOut(outputPath);

    assert.equal(nb.cells[0]?.cell_type, "markdown");
    assert.equal(sourceText(nb.cells[0]!.source), "# Title\n\nSome *markdown*.");
    assert.equal("outputs" in nb.cells[0]!, false);

    assert.deepEqual(code(nb, 1).outputs, [
      { output_type: "stream", name: "stdout", text: "to stdout\nmore stdout\n" },
      { output_type: "stream", name: "stderr", text: "to stderr\n" },
    ]);
    assert.equal(code(nb, 1).execution_count, 1);
    assert.deepEqual(code(nb, 2).outputs, [
      { output_type: "execute_result", data: { "text/plain": "42" }, metadata: {}, execution_count: 2 },
    ]);
    assert.deepEqual(code(nb, 3).outputs, [
      { output_type: "display_data", data: { "text/plain": "x", "text/html": "<b>x</b>" }, metadata: {} },
    ]);
    assert.deepEqual(code(nb, 4).outputs, []);
    assert.equal(code(nb, 4).execution_count, null);
    const env = code(nb, 5).outputs[0];
    assert.equal(env?.output_type, "execute_result");
    const text = String(env.data["text/plain"]);
    assert.ok(
      text.includes(JSON.stringify(await Deno.realPath(dir))),
      `cwd not the notebook folder: ${text}`,
    );
    assert.ok(text.includes('"p-value"') && text.includes('"1"'), `env not passed: ${text}`);
    assert.deepEqual(code(nb, 6).outputs, [
      { output_type: "display_data", data: { "text/plain": "v2" }, metadata: {} },
    ]);
    assert.deepEqual(code(nb, 7).outputs, [{ output_type: "stream", name: "stdout", text: "kept\n" }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  watch.assertAllGone();
});

Deno.test("executeNotebook: stress, 120 cells x 3 concurrent runs lose no output", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  const watch = new KernelWatch();
  const CELLS = 120;
  const RUNS = 3;
  try {
    const cells = Array.from(
      { length: CELLS },
      (_, i) =>
        `console.log("log-${i}");\nawait Deno.jupyter.display({ "text/plain": "disp-${i}" }, { raw: true });`,
    );
    const input = await writeFixture(dir, "stress.ipynb", cells);
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from(
        { length: RUNS },
        (_, r) =>
          executeNotebook(input, { outputPath: `${dir}/out/stress-${r}.ipynb`, onCell: watch.onCell }),
      ),
    );
    const seconds = (performance.now() - t0) / 1000;
    let got = 0;
    const missing: string[] = [];
    for (const [r, result] of results.entries()) {
      assert.equal(result.failed, undefined);
      assert.equal(result.executed, CELLS);
      const nb = await readOut(result.outputPath);
      for (let i = 0; i < CELLS; i++) {
        const outs = code(nb, i).outputs;
        const expected = [
          { output_type: "stream", name: "stdout", text: `log-${i}\n` },
          { output_type: "display_data", data: { "text/plain": `disp-${i}` }, metadata: {} },
        ];
        for (const e of expected) {
          if (outs.some((o) => JSON.stringify(o) === JSON.stringify(e))) got++;
          else missing.push(`run ${r} cell ${i}: ${JSON.stringify(e)}`);
        }
        assert.equal(outs.length, 2, `run ${r} cell ${i} outputs: ${JSON.stringify(outs)}`);
        assert.equal(code(nb, i).execution_count, i + 1);
      }
    }
    const expectedCount = CELLS * RUNS * 2;
    console.log(
      `stress: ${CELLS} cells x ${RUNS} concurrent runs, outputs expected ${expectedCount}, got ${got}, ` +
        `${seconds.toFixed(1)} s`,
    );
    assert.deepEqual(missing, []);
    assert.equal(got, expectedCount);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  watch.assertAllGone();
});

async function runFailing(
  cells: string[],
  options: { cellTimeoutMs?: number } = {},
): Promise<{ result: Awaited<ReturnType<typeof executeNotebook>>; nb: Notebook; input: string }> {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  const watch = new KernelWatch();
  try {
    const input = await writeFixture(dir, "failing.ipynb", cells);
    const result = await executeNotebook(input, {
      outputPath: `${dir}/out.ipynb`,
      onCell: watch.onCell,
      ...options,
    });
    const nb = await readOut(result.outputPath);
    return { result, nb, input };
  } finally {
    await Deno.remove(dir, { recursive: true });
    watch.assertAllGone();
  }
}

function errorOutput(cell: CodeCell): ErrorOutput {
  const e = cell.outputs.find((o): o is ErrorOutput => o.output_type === "error");
  assert.ok(e, `no error output in ${JSON.stringify(cell.outputs)}`);
  return e;
}

Deno.test("executeNotebook: a throwing cell fails the run, partial notebook written", async () => {
  const { result, nb } = await runFailing([
    'console.log("before")',
    'console.log("partial"); throw new TypeError("boom in cell 1")',
    'console.log("never")',
  ]);
  assert.ok(result.failed);
  assert.equal(result.failed.cellIndex, 1);
  assert.equal(result.failed.ename, "TypeError");
  assert.equal(result.failed.evalue, "boom in cell 1");
  assert.ok(result.failed.traceback.length > 0);
  assert.equal(result.executed, 2);
  assert.deepEqual(code(nb, 0).outputs, [{ output_type: "stream", name: "stdout", text: "before\n" }]);
  // The kernel may publish the error before the last stdout chunk (stdout is flushed asynchronously), so
  // only the presence of the partial output is asserted, not its order.
  assert.deepEqual(
    code(nb, 1).outputs.filter((o) => o.output_type === "stream"),
    [{ output_type: "stream", name: "stdout", text: "partial\n" }],
  );
  assert.equal(code(nb, 1).outputs.filter((o) => o.output_type === "error").length, 1);
  assert.equal(errorOutput(code(nb, 1)).evalue, "boom in cell 1");
  assert.deepEqual(code(nb, 2).outputs, []);
  assert.equal(code(nb, 2).execution_count, null);
});

Deno.test("executeNotebook: a syntax error (no kernel error output) is surfaced", async () => {
  const { result, nb } = await runFailing(["1", "const x: number = ;", "2"]);
  assert.ok(result.failed);
  assert.equal(result.failed.cellIndex, 1);
  assert.equal(result.failed.ename, "SyntaxError");
  assert.match(result.failed.evalue, /Expression expected/);
  assert.ok(
    result.failed.traceback.some((l) => l.includes("cell 1, line 1, column 19")),
    result.failed.traceback.join("\n"),
  );
  assert.equal(errorOutput(code(nb, 1)).ename, "SyntaxError");
  assert.deepEqual(code(nb, 2).outputs, []);
});

Deno.test("executeNotebook: importing a nonexistent module is surfaced", async () => {
  for (const spec of ["./does-not-exist.ts", "nonexistent-bare-specifier"]) {
    const { result, nb } = await runFailing(['console.log("ok")', `import * as m from "${spec}";\nm`]);
    assert.ok(result.failed, spec);
    assert.equal(result.failed.cellIndex, 1);
    assert.ok(result.failed.evalue.includes(spec.replace("./", "")), result.failed.evalue);
    assert.ok(errorOutput(code(nb, 1)).evalue.includes(spec.replace("./", "")));
  }
});

Deno.test("executeNotebook: a cell over its time limit fails naming the timeout", async () => {
  const t0 = performance.now();
  const { result, nb } = await runFailing(
    ['console.log("fine")', 'console.log("waiting");\nawait new Promise((r) => setTimeout(r, 60000));', "3"],
    { cellTimeoutMs: 2000 },
  );
  assert.ok(performance.now() - t0 < 20_000);
  assert.ok(result.failed);
  assert.equal(result.failed.cellIndex, 1);
  assert.equal(result.failed.ename, "CellTimeoutError");
  assert.equal(result.failed.evalue, "Cell 1 timed out after 2 s");
  assert.deepEqual(code(nb, 1).outputs, [
    { output_type: "stream", name: "stdout", text: "waiting\n" },
    {
      output_type: "error",
      ename: "CellTimeoutError",
      evalue: "Cell 1 timed out after 2 s",
      traceback: ["CellTimeoutError: Cell 1 timed out after 2 s"],
    },
  ]);
  assert.deepEqual(code(nb, 2).outputs, []);
});

Deno.test("executeNotebook: a kernel that exits mid-cell fails the run", async () => {
  const { result, nb } = await runFailing(['console.log("a")', "Deno.exit(3)", "1"]);
  assert.ok(result.failed);
  assert.equal(result.failed.ename, "KernelDiedError");
  assert.match(result.failed.evalue, /Kernel exited \(code 3\) while running cell 1/);
  assert.equal(errorOutput(code(nb, 1)).ename, "KernelDiedError");
});

Deno.test("executeNotebook: a non-nbformat-4 input is rejected naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  try {
    const path = `${dir}/old.ipynb`;
    await Deno.writeTextFile(path, JSON.stringify({ nbformat: 3, worksheets: [] }));
    await assert.rejects(
      executeNotebook(path, { outputPath: `${dir}/out.ipynb` }),
      (err: Error) =>
        err.name === "NotebookFormatError" && err.message.includes(path) && err.message.includes("3"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no deno jupyter --kernel child process is left behind", () => {
  assert.deepEqual(kernelChildren(), []);
});
