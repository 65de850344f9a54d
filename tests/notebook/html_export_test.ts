/**
 * Figures survive HTML export (issue 16 item 3): a small notebook that shows two figures with
 * `showFigure` is executed by the project's runner, then
 *
 * 1. every figure output is a PNG with display size metadata and no `image/svg+xml` entry (nbconvert
 *    prefers SVG over PNG and its `clean_html` empties it; JupyterLab does not render SVG outputs of
 *    untrusted notebooks), checked against nbconvert's display priority written out here;
 * 2. when `jupyter nbconvert` is installed (Debian: `apt-get install python3-nbconvert`), the notebook is
 *    exported with `--to html` and the HTML must hold one `<img src="data:image/png;base64,…">` per figure
 *    at the figure's width, and no `<svg>` whose drawing was stripped. Without nbconvert this part is
 *    registered as ignored, with the install line in its name.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { executeNotebook } from "../../lib/notebook/runner.ts";
import { findNbconvert, writeFixture } from "./_helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const lib = (p: string) => new URL(`../../lib/${p}`, import.meta.url).href;

/** nbconvert's HTMLExporter `display_data_priority` (nbconvert 6.5 and 7.x), most preferred first. */
const NBCONVERT_HTML_PRIORITY = [
  "application/vnd.jupyter.widget-view+json",
  "application/javascript",
  "text/html",
  "text/markdown",
  "image/svg+xml",
  "text/latex",
  "image/png",
  "image/jpeg",
  "text/plain",
];

/** The MIME type nbconvert's HTML exporter renders for an output bundle. */
function nbconvertChoice(mimeTypes: readonly string[]): string | undefined {
  return NBCONVERT_HTML_PRIORITY.find((m) => mimeTypes.includes(m));
}

const FIGURES = [
  { name: "fig_bars", width: 640, height: 300 },
  { name: "fig_dots", width: 480, height: 260 },
];

/** Executes the fixture notebook once (shared by both tests). */
async function executedFixture(dir: string): Promise<string> {
  const cells = [
    `import { render } from "${lib("figures/plot.ts")}";\n` +
    `import { showFigure } from "${lib("notebook/show.ts")}";\n` +
    `import * as Plot from "@observablehq/plot";`,
    ...FIGURES.map((f, i) =>
      `await showFigure(render("${f.name}", { title: "figure ${i}", height: ${f.height} }, ` +
      `{ width: ${f.width} }, { marks: [Plot.${i === 0 ? "barY" : "dot"}([1, 3, 2], ` +
      `${i === 0 ? "{ x: (_, j) => j, y: (d) => d }" : "{ x: (d) => d, y: (d) => d * d }"})] }));`
    ),
    'console.log("done")',
  ];
  const input = await writeFixture(dir, "figures.ipynb", cells);
  const outputPath = `${dir}/out/figures.ipynb`;
  // The project root as working directory, so the kernel uses deno.json's import map.
  const result = await executeNotebook(input, { outputPath, cwd: ROOT, cellTimeoutMs: 240_000 });
  assert.equal(result.failed, undefined, JSON.stringify(result.failed));
  return outputPath;
}

interface Output {
  output_type: string;
  data?: Record<string, unknown>;
  metadata?: Record<string, Record<string, unknown>>;
}

function figureOutputs(nb: { cells: { outputs?: Output[] }[] }): Output[] {
  return nb.cells.flatMap((c) => c.outputs ?? []).filter((o) =>
    o.output_type === "display_data" && /^\[figure /.test(String(o.data?.["text/plain"] ?? ""))
  );
}

const nbconvert = findNbconvert();
let executed: Promise<string> | undefined;
const dir = Deno.makeTempDirSync({ prefix: "nbhtml-" });
const once = () => (executed ??= executedFixture(dir));

Deno.test({
  name:
    "html export: figures are PNG displays at the SVG size, the first choice of nbconvert's HTML exporter",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const nb = JSON.parse(await Deno.readTextFile(await once()));
    const outs = figureOutputs(nb);
    assert.equal(
      outs.length,
      FIGURES.length,
      JSON.stringify(nb.cells.map((c: { outputs?: Output[] }) => c.outputs)),
    );
    for (const [i, o] of outs.entries()) {
      const types = Object.keys(o.data ?? {});
      assert.equal(nbconvertChoice(types), "image/png", `figure ${i}: nbconvert would render ${types}`);
      assert.ok(
        !types.includes("image/svg+xml"),
        `figure ${i} carries SVG, which nbconvert prefers and empties`,
      );
      const meta = o.metadata?.["image/png"] as { width: number; height: number } | undefined;
      assert.equal(meta?.width, FIGURES[i]!.width, `figure ${i}: display width`);
      assert.ok(meta.height > FIGURES[i]!.height, `figure ${i}: display height (plot + title)`);
      const png = Uint8Array.from(atob(String(o.data!["image/png"])), (c) => c.charCodeAt(0));
      assert.deepEqual([...png.slice(1, 4)], [0x50, 0x4e, 0x47], `figure ${i}: not a PNG`);
      const view = new DataView(png.buffer);
      assert.deepEqual(
        [view.getUint32(16), view.getUint32(20)],
        [2 * meta.width, 2 * meta.height],
        `figure ${i}: the PNG is not the displayed size at 2× scale`,
      );
    }
  },
});

Deno.test({
  name: nbconvert
    ? "html export: `jupyter nbconvert --to html` keeps every figure as an <img>"
    : "html export: `jupyter nbconvert --to html` keeps every figure (nbconvert missing: apt-get install python3-nbconvert)",
  ignore: nbconvert === undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const path = await once();
    const r = await new Deno.Command(nbconvert![0]!, {
      args: [...nbconvert!.slice(1), "--to", "html", "--output-dir", `${dir}/html`, path],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const log = new TextDecoder().decode(r.stderr);
    assert.ok(r.success, `nbconvert failed: ${log}`);
    const html = await Deno.readTextFile(`${dir}/html/figures.html`);
    const imgs = [...html.matchAll(/<img\s+src="data:image\/png;base64,([A-Za-z0-9+/=]+)"([^>]*)>/g)];
    assert.equal(imgs.length, FIGURES.length, `expected ${FIGURES.length} PNG <img> in the HTML export`);
    for (const [i, m] of imgs.entries()) {
      assert.ok(m[1]!.length > 1000, `figure ${i}: empty image data`);
      assert.match(m[2]!, new RegExp(`width="?${FIGURES[i]!.width}"?`), `figure ${i}: no display width`);
    }
    for (const m of html.matchAll(/<svg\b[^>]*>([\s\S]*?)<\/svg>/g)) {
      assert.match(
        m[1]!,
        /<(path|rect|g|line|circle|use|polygon|polyline)\b/,
        `an <svg> lost its drawing: ${m[0]}`,
      );
    }
    assert.ok(html.includes("done"), "the stream output after the figures is missing");
  },
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* already gone */ }
});
