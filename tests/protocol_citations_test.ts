/**
 * Citations of the protocol document resolve: every `docs/protocol.md §N` (also `§N–M`, `§N, §M`) in the
 * README, configs, code, notebook generators and notebooks names a section heading of `docs/protocol.md`, and
 * nothing cites the unshipped reference specification (`spec §…`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join, relative } from "node:path";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SCANNED = ["README.md", "configs", "docs", "experiments", "lib", "notebooks", "tools", "tests"];

function* files(path: string): Generator<string> {
  const info = Deno.statSync(path);
  if (info.isFile) {
    if (/\.(ts|md|yaml|ipynb)$/.test(path)) yield path;
    return;
  }
  for (const e of Deno.readDirSync(path)) {
    if (e.name === "node_modules" || e.name === "fixtures" || e.name.startsWith(".")) continue;
    yield* files(join(path, e.name));
  }
}

/** Section numbers cited in `text` after `docs/protocol.md`, with their line numbers. */
export function citedSections(text: string): { section: number; line: number }[] {
  const out: { section: number; line: number }[] = [];
  for (const m of text.matchAll(/docs\/protocol\.md`? ((?:§\d+(?:[–-]\d+)?(?:, )?)+)/g)) {
    const line = text.slice(0, m.index).split("\n").length;
    for (const part of m[1]!.matchAll(/§(\d+)(?:[–-](\d+))?/g)) {
      const a = Number(part[1]), b = part[2] === undefined ? a : Number(part[2]);
      for (let s = a; s <= b; s++) out.push({ section: s, line });
    }
  }
  return out;
}

Deno.test("citedSections reads single sections, ranges and lists", () => {
  assert.deepEqual(
    citedSections("a (docs/protocol.md §3) b\nc docs/protocol.md §10, §14–15 d").map((
      c,
    ) => [c.section, c.line]),
    [[3, 1], [10, 2], [14, 2], [15, 2]],
  );
});

Deno.test("every docs/protocol.md §N cited in the project exists; no citation of the unshipped spec", () => {
  const doc = Deno.readTextFileSync(join(ROOT, "docs/protocol.md"));
  const headings = new Set([...doc.matchAll(/^## (\d+)\. /gm)].map((m) => Number(m[1])));
  assert.ok(headings.size >= 20, `docs/protocol.md has only ${headings.size} numbered sections`);
  const bad: string[] = [];
  let cites = 0;
  for (const dir of SCANNED) {
    for (const f of files(join(ROOT, dir))) {
      if (f.endsWith("protocol_citations_test.ts")) continue;
      const text = Deno.readTextFileSync(f);
      for (const c of citedSections(text)) {
        cites++;
        if (!headings.has(c.section)) {
          bad.push(`${relative(ROOT, f)}:${c.line}: §${c.section} is not a section`);
        }
      }
      for (const m of text.matchAll(/spec §\d/g)) {
        bad.push(
          `${relative(ROOT, f)}:${text.slice(0, m.index).split("\n").length}: cites the unshipped spec`,
        );
      }
    }
  }
  assert.ok(cites > 50, `only ${cites} citations found: is the pattern still right?`);
  assert.deepEqual(bad, []);
});
