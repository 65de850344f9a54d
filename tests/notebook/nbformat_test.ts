import assert from "node:assert/strict";
import {
  codeCell,
  formatNotebook,
  markdownCell,
  newNotebook,
  NotebookFormatError,
  parseNotebook,
  readNotebook,
  writeNotebook,
} from "../../lib/notebook/nbformat.ts";

Deno.test("parseNotebook: errors name the file and the fault", () => {
  const cases: [string, RegExp][] = [
    ["not json", /"a\.ipynb" is not valid JSON/],
    ['{"nbformat": 3, "worksheets": []}', /"a\.ipynb" has nbformat 3, only nbformat 4/],
    ['{"nbformat": 4, "nbformat_minor": 5}', /"a\.ipynb" has no "cells" array/],
    [
      '{"nbformat": 4, "nbformat_minor": 5, "cells": [{"cell_type": "code", "source": 1}]}',
      /"a\.ipynb", cell 0 has no string/,
    ],
    [
      '{"nbformat": 4, "nbformat_minor": 5, "cells": [{"cell_type": "md", "source": ""}]}',
      /cell 0 has unknown cell_type "md"/,
    ],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(
      () => parseNotebook(text, "a.ipynb"),
      (e: Error) => e instanceof NotebookFormatError && pattern.test(e.message),
    );
  }
});

Deno.test("parseNotebook: fills missing metadata/outputs/execution_count, keeps line-array sources", () => {
  const nb = parseNotebook(
    '{"nbformat": 4, "nbformat_minor": 2, "cells": [{"cell_type": "code", "source": ["a\\n", "b"]}]}',
    "x.ipynb",
  );
  assert.deepEqual(nb.metadata, {});
  assert.deepEqual(nb.cells[0], {
    cell_type: "code",
    source: ["a\n", "b"],
    metadata: {},
    outputs: [],
    execution_count: null,
  });
});

Deno.test("writeNotebook: atomic write round-trips and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  try {
    const nb = newNotebook([markdownCell("# t"), codeCell("1")]);
    const path = `${dir}/sub/n.ipynb`;
    await writeNotebook(path, nb);
    await writeNotebook(path, nb);
    assert.deepEqual(await readNotebook(path), nb);
    assert.equal(await Deno.readTextFile(path), formatNotebook(nb));
    assert.deepEqual([...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name), ["n.ipynb"]);
    await assert.rejects(readNotebook(`${dir}/missing.ipynb`), /missing\.ipynb" does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
