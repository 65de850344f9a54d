/**
 * Display helpers for the Deno Jupyter kernel: tables, figures and markdown whose numbers come from
 * variables. Outside a kernel (plain `deno run`, tests) they print a text rendering instead, so the same
 * code runs everywhere.
 *
 * @module
 */

import type pl from "nodejs-polars";
import { type Figure, figureBundle } from "../figures/plot.ts";
import { toDataFrame } from "../tables/table.ts";
import { kernelJupyter } from "../util/progress.ts";

/** The kernel's display API, or undefined outside `deno jupyter` (then text goes to stdout). */
const kernel = kernelJupyter;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/**
 * A cell's text: integers as is; other numbers with `digits` decimals, except those that would print as
 * zero (|v| < 0.5·10^-digits, e.g. a p-value of 9.1e-13) or are huge, which print in scientific notation
 * with 2 significant decimals (`9.1e-13`), so no small p-value reads `0.000`.
 */
export function cellText(v: unknown, digits: number): string {
  if (typeof v === "number") {
    if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a < 0.5 * 10 ** -digits || a >= 1e9
      ? v.toExponential(2).replace(/\.?0+e/, "e")
      : v.toFixed(digits);
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
  // snake_case headers may break after "_" (<wbr>), so wide tables wrap their headers instead of running
  // off the notebook's right edge; anything still too wide scrolls inside its own box.
  const head = cols.map((c) => `<th>${escapeHtml(c).replace(/_/g, "_<wbr>")}</th>`).join("");
  const body = recs.map((r) =>
    `<tr>${cols.map((c) => `<td>${escapeHtml(cellText(r[c], digits))}</td>`).join("")}</tr>`
  )
    .join("");
  const caption = options.title ? `<caption>${escapeHtml(options.title)}</caption>` : "";
  const widths = cols.map((c) => Math.max(c.length, ...recs.map((r) => cellText(r[c], digits).length)));
  const line = (cells: string[]) => cells.map((s, i) => s.padEnd(widths[i]!)).join("  ");
  const text = [
    ...(options.title ? [options.title] : []),
    line(cols),
    ...recs.map((r) => line(cols.map((c) => cellText(r[c], digits)))),
  ].join("\n");
  return {
    "text/html": `<div style="overflow-x:auto;max-width:100%"><table>${caption}<thead><tr>${head}</tr>` +
      `</thead><tbody>${body}</tbody></table></div>`,
    "text/plain": text,
  };
}

/**
 * Show a table — rows of plain objects, or a polars DataFrame (e.g. a `groupBy(...).agg(...)` result) — and
 * return it as a DataFrame for further work (the DataFrame itself when one was given).
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
  const api = kernel();
  const broadcast = (api as { broadcast?: unknown } | undefined)?.broadcast;
  if (api && typeof broadcast === "function") {
    await (broadcast as (t: string, c: Record<string, unknown>) => Promise<void>).call(api, "display_data", {
      ...figureBundle(fig),
      transient: {},
    });
  } else if (api) await api.display(figureBundle(fig).data, { raw: true });
  else console.log(`[figure ${fig.name}: ${fig.width}x${fig.height}]`);
}

/** Show markdown built from variables (a reading of the result whose numbers are not typed by hand). */
export async function showMarkdown(text: string): Promise<void> {
  const api = kernel();
  if (api) await api.display({ "text/markdown": text, "text/plain": text }, { raw: true });
  else console.log(text);
}

/** Format a proportion as a percentage with one decimal. */
export function pct(x: number | undefined, digits = 1): string {
  return x === undefined || Number.isNaN(x) ? "n/a" : `${(100 * x).toFixed(digits)}%`;
}

/** Format an interval `[lo, hi]` of proportions as percentages. */
export function pctCI(ci: { lower: number; upper: number } | undefined, digits = 1): string {
  return ci ? `[${pct(ci.lower, digits)}, ${pct(ci.upper, digits)}]` : "";
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

/** Format a p-value: 3 decimals, or scientific below 0.001 (`9.1e-13`, never `0.000`). */
export function pValue(p: number | undefined): string {
  if (p === undefined || Number.isNaN(p)) return "n/a";
  return p !== 0 && p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}
