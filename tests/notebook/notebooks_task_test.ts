/**
 * `deno task notebooks PATH.ipynb` (issue 16 item 2): the project's runner executes any notebook given by
 * path, not only the numbered series, on the current run (a new run id when there is none), with the
 * notebook's folder as the kernel's working directory, and reports bad paths as usage errors.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import {
  isSeriesNotebook,
  main,
  selectNotebooks,
  seriesNotebooks,
} from "../../experiments/backtracking/pipeline_main.ts";
import { writeFixture } from "./_helpers.ts";

function collector() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

Deno.test("selectNotebooks: series by number or name, anything else by path from the caller's folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbsel-" });
  try {
    const series = seriesNotebooks();
    const logitLens = series.find((p) => basename(p).startsWith("04_"))!;
    await writeFixture(dir, "mine.ipynb", ["1"]);
    await Deno.mkdir(`${dir}/sub`);
    await writeFixture(`${dir}/sub`, "other.ipynb", ["2"]);
    assert.deepEqual(selectNotebooks(series, ["04", basename(logitLens)], dir), [logitLens, logitLens]);
    assert.deepEqual(selectNotebooks(series, ["mine.ipynb", "sub/other.ipynb", `${dir}/mine.ipynb`], dir), [
      `${dir}/mine.ipynb`,
      `${dir}/sub/other.ipynb`,
      `${dir}/mine.ipynb`,
    ]);
    assert.deepEqual(selectNotebooks(series, [], dir), series);
    assert.throws(
      () => selectNotebooks(series, ["missing.ipynb"], dir),
      /No notebook file ".*missing\.ipynb"/,
    );
    assert.throws(() => selectNotebooks(series, ["sub"], dir), /No notebook "sub"/);
    assert.throws(() => selectNotebooks(series, ["./sub"], dir), /is not a notebook file/);
    assert.equal(isSeriesNotebook(logitLens), true);
    assert.equal(isSeriesNotebook(`${dir}/04_logit_lens.ipynb`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "deno task notebooks PATH.ipynb: runs an own notebook on a new run, cwd = its folder, BT_* set",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "nbtask-" });
    try {
      await Deno.mkdir(`${dir}/work`);
      const nb = await writeFixture(`${dir}/work`, "mine.ipynb", [
        { md: "# my notebook" },
        'console.log(JSON.stringify([Deno.cwd(), Deno.env.get("BT_RUN_ID"), Deno.env.get("BT_RUNS_ROOT")]))',
      ]);
      const c = collector();
      const code = await main(
        [
          "notebooks",
          "--runs-root",
          `${dir}/runs`,
          "--figures-dir",
          "none",
          "--run-id",
          "20260101_000000",
          nb,
        ],
        c.io,
      );
      assert.equal(code, 0, c.err.join("\n"));
      const executed = join(dir, "runs", "20260101_000000", "notebooks", "mine.ipynb");
      const out = JSON.parse(await Deno.readTextFile(executed));
      const [cwd, runId, root] = JSON.parse(out.cells[1].outputs[0].text);
      assert.deepEqual([cwd, runId, root], [`${dir}/work`, "20260101_000000", `${dir}/runs`]);
      // a custom notebook's run has no report or figures: the summary does not point at them (new-user trial)
      assert.match(c.out.join("\n"), /done: 1 of 1 notebook passed/);
      assert.doesNotMatch(c.out.join("\n"), /report:|figures:/);
      assert.match(c.out.join("\n"), /executed notebooks: /);

      // no run id and no current run: a new run id, not "No run id … run init-run first"
      const again = collector();
      const code2 = await main(
        ["notebooks", "--runs-root", `${dir}/runs2`, "--figures-dir", "none", nb],
        again.io,
      );
      assert.equal(code2, 0, again.err.join("\n"));
      const runs = [...Deno.readDirSync(`${dir}/runs2`)].map((e) => e.name);
      assert.equal(runs.length, 1);
      assert.match(runs[0]!, /^\d{8}_\d{6}$/);
      assert.ok(Deno.statSync(join(dir, "runs2", runs[0]!, "notebooks", "mine.ipynb")).isFile);

      // relative paths are resolved from INIT_CWD (where `deno task` was called), bad ones exit 2
      const bad = collector();
      const saved = Deno.env.get("INIT_CWD");
      Deno.env.set("INIT_CWD", `${dir}/work`);
      try {
        assert.equal(await main(["notebooks", "--runs-root", `${dir}/runs3`, "nope.ipynb"], bad.io), 2);
        assert.match(bad.err.join("\n"), new RegExp(`No notebook file "${dir}/work/nope\\.ipynb"`));
      } finally {
        if (saved === undefined) Deno.env.delete("INIT_CWD");
        else Deno.env.set("INIT_CWD", saved);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
