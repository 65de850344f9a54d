/**
 * Display helpers for the Deno Jupyter kernel: tables, figures and markdown whose numbers come from
 * variables. Outside a kernel (plain `deno run`, tests) they print a text rendering instead, so the same
 * code runs everywhere.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { ciPct } from "../tables/format.ts";
import type pl from "nodejs-polars";
import { type Figure, figureBundle } from "../figures/plot.ts";
import { toDataFrame } from "../tables/table.ts";
import { kernelJupyter } from "../util/progress.ts";

export { fixed, pct, pp, pValue } from "../tables/format.ts";

/** The kernel's display API, or undefined outside `deno jupyter` (then text goes to stdout). */
const kernel = kernelJupyter;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/**
 * How a table column's numbers print: `"int"` as they are (counts, ids), `"float"` all with the same
 * `digits` decimals (integral values too, so `0` reads `0.000` beside `0.475`; a value that rounds to zero
 * prints without a sign), `"p"` (p-values) like floats except that one that would print as zero prints in
 * scientific notation (`9.1e-13`, not `0.000`).
 */
export type ColumnKind = "int" | "float" | "p";

/** A column holds p-values when its name says so: `p`, `p_value`, `pvalue`, `…_p`, `p_…`. */
export function isPValueColumn(name: string): boolean {
  return /^(p|p_?value|.*_p|p_.*|.*_p_?value)$/i.test(name);
}

/** Column names that hold a share, mean or bound (float even when every value happens to be integral). */
const FLOAT_NAME =
  /(rate|accuracy|share|prob|frac|mean|lower|upper|delta|logprob|logit|specificity|mass|cos)/i;

/**
 * The kind of a table column (see {@linkcode ColumnKind}): `"p"` by name; else `"float"` when any of its
 * finite numbers is not an integer or its name says it holds a rate, share, mean, bound or difference (an
 * `unknown_rate` of all zeros prints `0.000`, like its neighbours); else `"int"`.
 */
export function columnKind(name: string, values: readonly unknown[]): ColumnKind {
  if (isPValueColumn(name)) return "p";
  const numeric = values.some((v) => typeof v === "number");
  if (numeric && FLOAT_NAME.test(name)) return "float";
  return values.some((v) => typeof v === "number" && Number.isFinite(v) && !Number.isInteger(v))
    ? "float"
    : "int";
}

/**
 * A cell's text. Numbers by their column's kind ({@linkcode ColumnKind}; default `"float"`); NaN as
 * `n/a`; huge magnitudes (≥ 1e9, not integers) in scientific notation; `null`/`undefined` empty; objects as
 * JSON.
 */
export function cellText(v: unknown, digits: number, kind: ColumnKind = "float"): string {
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "n/a";
    if (!Number.isFinite(v) || (kind === "int" && Number.isInteger(v))) return String(v);
    if (Number.isInteger(v) && Math.abs(v) >= 1e9) return String(v);
    const a = Math.abs(v);
    if (a >= 1e9 || (kind === "p" && a > 0 && a < 0.5 * 10 ** -digits)) {
      return v.toExponential(2).replace(/\.?0+e/, "e");
    }
    const fixed = v.toFixed(digits);
    return /^-0\.?0*$/.test(fixed) ? fixed.slice(1) : fixed;
  }
  if (v === undefined || v === null) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** A table as HTML and plain text (rows of plain objects; numbers rounded to `digits`). */
export function tableBundle(
  rows: readonly object[],
  options: { digits?: number; title?: string } = {},
) {
  const digits = options.digits ?? 3;
  const recs = rows as readonly Record<string, unknown>[];
  const cols = [...new Set(recs.flatMap((r) => Object.keys(r)))];
  const kinds = new Map(cols.map((c) => [c, columnKind(c, recs.map((r) => r[c]))]));
  const text = (r: Record<string, unknown>, c: string) => cellText(r[c], digits, kinds.get(c));
  // snake_case headers may break after "_" (<wbr>), so wide tables wrap their headers instead of running
  // off the notebook's right edge; anything still too wide scrolls inside its own box.
  const head = cols.map((c) => `<th>${escapeHtml(c).replace(/_/g, "_<wbr>")}</th>`).join("");
  const body = recs.map((r) => `<tr>${cols.map((c) => `<td>${escapeHtml(text(r, c))}</td>`).join("")}</tr>`)
    .join("");
  const caption = options.title ? `<caption>${escapeHtml(options.title)}</caption>` : "";
  const widths = cols.map((c) => Math.max(c.length, ...recs.map((r) => text(r, c).length)));
  const line = (cells: string[]) => cells.map((s, i) => s.padEnd(widths[i]!)).join("  ");
  const plain = [
    ...(options.title ? [options.title] : []),
    line(cols),
    ...recs.map((r) => line(cols.map((c) => text(r, c)))),
  ].join("\n");
  return {
    "text/html": `<div style="overflow-x:auto;max-width:100%"><table>${caption}<thead><tr>${head}</tr>` +
      `</thead><tbody>${body}</tbody></table></div>`,
    "text/plain": plain,
  };
}

/**
 * Show a table — rows of plain objects, or a polars DataFrame (e.g. a `groupBy(...).agg(...)` result) — and
 * return it as a DataFrame for further work (the DataFrame itself when one was given). Numbers print by
 * column (see {@linkcode columnKind}).
 *
 * Assign the result (`const t = await showTable(df)`) when the call ends a cell: a cell's last expression
 * is displayed by the kernel as well, so a bare `await showTable(df)` shows the table twice (the second time
 * as the kernel's own DataFrame rendering, unrounded).
 */
export async function showTable(
  table: readonly object[] | pl.DataFrame,
  options: { digits?: number; title?: string } = {},
): Promise<pl.DataFrame> {
  const frame = Array.isArray(table) ? undefined : table as pl.DataFrame;
  const rows: readonly object[] = frame ? frame.toRecords() : table as readonly object[];
  const bundle = tableBundle(rows, options);
  const api = kernel();
  if (api) await api.display(bundle, { raw: true });
  else console.log(bundle["text/plain"]);
  return frame ?? toDataFrame(rows as readonly Record<string, unknown>[]);
}

/**
 * Show a figure as a PNG displayed at the figure's size (2× pixels for sharp high-DPI screens). PNG rather
 * than SVG so executed notebooks keep their figures in `jupyter nbconvert --to html`, JupyterLab (untrusted
 * notebooks), VS Code and GitHub; see {@linkcode figureBundle}. Outside a kernel it prints a text line.
 */
export async function showFigure(fig: Figure): Promise<void> {
  if (!kernel()) {
    console.log(`[figure ${fig.name}: ${fig.width}x${fig.height}]`);
    return;
  }
  const bundle = figureBundle(fig);
  await displayRaw(bundle.data, bundle.metadata);
}

/** Options of {@linkcode showMarkdown}. */
export interface MarkdownOptions {
  /**
   * Folder that relative image links (`![alt](figures/x.png)`) are read from. The images are then shown as
   * PNG outputs between the markdown parts, so they render wherever the notebook is opened or exported: a
   * relative link in a markdown output resolves against the notebook's own folder, which is not the folder
   * of the document that holds the links (e.g. a run's `report.md` shown from `runs/<id>/notebooks/`).
   */
  readonly imagesFrom?: string;
}

/** Width and height of a PNG from its IHDR chunk. */
function pngSize(png: Uint8Array): { width: number; height: number } | undefined {
  if (png.length < 24 || png[1] !== 0x50 || png[2] !== 0x4e || png[3] !== 0x47) return undefined;
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

async function displayRaw(
  data: Readonly<Record<string, string>>,
  metadata: Record<string, unknown> = {},
): Promise<void> {
  const api = kernel();
  const broadcast = (api as { broadcast?: unknown } | undefined)?.broadcast;
  if (api && typeof broadcast === "function") {
    await (broadcast as (t: string, c: Record<string, unknown>) => Promise<void>).call(api, "display_data", {
      data,
      metadata,
      transient: {},
    });
  } else if (api) await api.display({ ...data }, { raw: true });
  else console.log(data["text/plain"] ?? "");
}

/**
 * Show markdown built from variables (a reading of the result whose numbers are not typed by hand).
 *
 * With `imagesFrom`, local `.png` image links are shown as PNG outputs (at half their pixel size: the
 * project's figures are rendered at 2×), each where its link was.
 *
 * @throws {Error} naming the image file when `imagesFrom` is given and a linked PNG cannot be read.
 */
export async function showMarkdown(text: string, options: MarkdownOptions = {}): Promise<void> {
  if (options.imagesFrom === undefined) {
    await displayRaw({ "text/markdown": text, "text/plain": text });
    return;
  }
  const link = /!\[([^\]]*)\]\(((?![a-z]+:)[^)\s]+\.png)\)/gi;
  let at = 0;
  const flush = async (part: string) => {
    if (part.trim() !== "") await displayRaw({ "text/markdown": part, "text/plain": part });
  };
  for (const m of text.matchAll(link)) {
    await flush(text.slice(at, m.index));
    at = m.index! + m[0].length;
    const path = `${options.imagesFrom}/${m[2]}`;
    let png: Uint8Array;
    try {
      png = await Deno.readFile(path);
    } catch (e) {
      throw new Error(`showMarkdown: cannot read image ${path} (linked as ${m[2]}): ${(e as Error).message}`);
    }
    const size = pngSize(png);
    await displayRaw(
      { "image/png": Buffer.from(png).toString("base64"), "text/plain": `[figure ${m[1] || m[2]}]` },
      size ? { "image/png": { width: Math.round(size.width / 2), height: Math.round(size.height / 2) } } : {},
    );
  }
  await flush(text.slice(at));
}

/** Format an interval `[lo, hi]` of proportions as percentages, `[36.9%, 58.3%]` ("" when absent). */
export function pctCI(ci: { lower: number; upper: number } | undefined, digits = 1): string {
  return ci ? ciPct(ci.lower, ci.upper, digits) : "";
}

/** Show HTML (with a plain-text fallback for viewers without HTML and for runs outside a kernel). */
export async function showHtml(html: string, text: string): Promise<void> {
  const api = kernel();
  if (api) await api.display({ "text/html": html, "text/plain": text }, { raw: true });
  else console.log(text);
}

/** A token to show with {@linkcode tokensBundle}: its text and an optional mark (shown as a tooltip). */
export interface ShownToken {
  readonly text: string;
  /** E.g. `"onset: Wait"`; marked tokens are highlighted. */
  readonly mark?: string;
}

/**
 * Tokens as HTML (each token a box, whitespace made visible, marked tokens highlighted with their mark as
 * tooltip and a caption listing them) and as text (marked tokens in `⟦…⟧`).
 */
export function tokensBundle(tokens: readonly ShownToken[]): { "text/html": string; "text/plain": string } {
  const visible = (t: string) => t.replace(/ /g, "·").replace(/\n/g, "↵");
  const spans = tokens.map((t, i) => {
    const style = t.mark
      ? "background:#fdd0a2;border:1px solid #d95f02;font-weight:bold"
      : "background:#f3f3f3;border:1px solid #ddd";
    const title = escapeHtml(`${i}${t.mark ? `: ${t.mark}` : ""}`);
    return `<span title="${title}" style="${style};margin:1px;padding:0 2px;display:inline-block;` +
      `font-family:monospace;white-space:pre">${escapeHtml(visible(t.text))}</span>`;
  });
  const marked = tokens.flatMap((t, i) => (t.mark ? [`${i}: ${t.mark}`] : []));
  const caption = marked.length ? `<div><b>marked:</b> ${escapeHtml(marked.join("; "))}</div>` : "";
  return {
    "text/html": `<div style="line-height:1.9">${spans.join("")}</div>${caption}`,
    "text/plain": tokens.map((t) => (t.mark ? `⟦${t.text}⟧` : t.text)).join(""),
  };
}

/** Show tokens with marks (e.g. trigger onsets): see {@linkcode tokensBundle}. */
export async function showTokens(tokens: readonly ShownToken[]): Promise<void> {
  const b = tokensBundle(tokens);
  await showHtml(b["text/html"], b["text/plain"]);
}

/**
 * Two token sequences side by side (e.g. a trace and its regeneration under an intervention with the same
 * seed): the shared prefix once, then where they diverge, each continuation in its own column.
 *
 * @returns The shared prefix length in tokens.
 */
export async function showTokenDiff(
  a: readonly ShownToken[],
  b: readonly ShownToken[],
  labels: readonly [string, string],
): Promise<number> {
  let common = 0;
  while (common < a.length && common < b.length && a[common]!.text === b[common]!.text) common++;
  const prefix = tokensBundle(a.slice(0, common));
  const [ra, rb] = [tokensBundle(a.slice(common)), tokensBundle(b.slice(common))];
  const head = `<div><b>shared prefix: ${common} tokens</b></div>${prefix["text/html"]}`;
  const cols = `<table style="table-layout:fixed;width:100%"><thead><tr><th style="text-align:left">` +
    `${escapeHtml(labels[0])} (${a.length - common} more tokens)</th><th style="text-align:left">` +
    `${escapeHtml(labels[1])} (${b.length - common} more tokens)</th></tr></thead><tbody><tr>` +
    `<td style="vertical-align:top;text-align:left">${ra["text/html"]}</td>` +
    `<td style="vertical-align:top;text-align:left">${rb["text/html"]}</td></tr></tbody></table>`;
  const text = `shared prefix (${common} tokens): ${prefix["text/plain"]}\n--- ${labels[0]}:\n` +
    `${ra["text/plain"]}\n--- ${labels[1]}:\n${rb["text/plain"]}`;
  await showHtml(head + cols, text);
  return common;
}
