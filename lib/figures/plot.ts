/**
 * Figures as Observable Plot charts rendered in Deno with a linkedom DOM. A figure is a standalone SVG
 * string (xmlns set, white background, a title): {@linkcode render} turns one declarative `Plot.plot`
 * option object into a {@linkcode Figure}; {@linkcode saveFigure} writes the SVG and a PNG rendered by
 * `@resvg/resvg-js` at 2× scale; {@linkcode figureBundle} gives the Jupyter display message (PNG only, so
 * HTML exports keep the figure).
 *
 * Fonts: resvg draws no text without font files. {@linkcode resolveFontFiles} looks, in order, at
 * `BT_FONT_FILES` (paths separated by `:`), the npm package `dejavu-fonts-ttf` (when the import map
 * has it), `node_modules/dejavu-fonts-ttf`, and Debian's `fonts-dejavu-core`
 * (`/usr/share/fonts/truetype/dejavu`). System fonts are never scanned, so the PNG is the same on every
 * machine that has DejaVu Sans.
 *
 * @module
 */

import * as Plot from "@observablehq/plot";
import { Resvg } from "@resvg/resvg-js";
import { parseHTML } from "linkedom";
import { Buffer } from "node:buffer";
import { writeFileAtomic } from "../util/fs.ts";

/** A rendered figure. */
export interface Figure {
  /** File stem, e.g. `bt_rate_by_variant`. */
  readonly name: string;
  /** Standalone SVG (xmlns set, white background). */
  readonly svg: string;
  /** SVG size in CSS pixels. */
  readonly width: number;
  readonly height: number;
}

/** A value with a two-sided interval, e.g. a rate and its bootstrap CI. */
export interface ValueCI {
  readonly value: number;
  readonly lower: number;
  readonly upper: number;
}

// ---------------------------------------------------------------------------------------------------
// Rendering

/** The font family every figure asks for (and resvg's default). */
export const FONT_FAMILY = "DejaVu Sans";
const FONT_STACK = `${FONT_FAMILY}, sans-serif`;
const TITLE_HEIGHT = 30;
const SUBTITLE_HEIGHT = 18;

/** Palette: condition kinds and highlight colours. */
export const COLORS = {
  baseline: "#4682b4",
  targeted: "#e4572e",
  random: "#8c8c8c",
  other: "#6a51a3",
  with: "#e4572e",
  without: "#2e8b57",
  bt: "#e4572e",
  control: "#4682b4",
  highlight: "#d95f02",
  muted: "#9aa5b1",
} as const;

const SVG_NS = "http://www.w3.org/2000/svg";

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Common options of every figure. */
export interface FigureOptions {
  /** Title drawn above the chart (default: the figure's own). `null` = none. */
  readonly title?: string | null;
  /** Smaller line(s) under the title, e.g. the CI method (`\n` starts a new line). `null` = none. */
  readonly subtitle?: string | null;
  /** Chart width in px (default 720). */
  readonly width?: number;
  /** Chart height in px (default depends on the figure). */
  readonly height?: number;
}

function validateSize(v: number | undefined, name: string): void {
  if (v !== undefined && !(Number.isFinite(v) && v >= 100 && v <= 4000)) {
    throw new RangeError(`option "${name}" must be a number of pixels in [100, 4000], got ${v}`);
  }
}

/** One entry of a figure's colour legend (see {@linkcode render}). */
export interface LegendItem {
  readonly label: string;
  /** CSS colour of the swatch. */
  readonly color: string;
  /**
   * Swatch shape: `"dot"` (default, a filled circle: a point or line colour), `"square"` (a filled square: a
   * cell or bar colour) or `"outline"` (an unfilled square stroked in `color`: an outline mark).
   */
  readonly swatch?: "dot" | "square" | "outline";
}

const LEGEND_ROW_HEIGHT = 20;

/** Swatch + label entries laid out left to right from x = 12, wrapping at `width`; returns SVG and height. */
function legendSvg(
  items: readonly LegendItem[],
  top: number,
  width: number,
): { svg: string; height: number } {
  const parts: string[] = [];
  let x = 12, row = 0;
  for (const it of items) {
    const w = 22 + 7 * it.label.length + 16; // swatch, text at ~7 px per character at 12 px, gap
    if (x + w > width - 12 && x > 12) (row++, x = 12);
    const y = top + row * LEGEND_ROW_HEIGHT + 12;
    const color = escapeXml(it.color);
    const swatch = it.swatch === "square"
      ? `<rect x="${x + 1}" y="${y - 9}" width="10" height="10" fill="${color}"/>`
      : it.swatch === "outline"
      ? `<rect x="${x + 1}" y="${
        y - 9
      }" width="10" height="10" fill="none" stroke="${color}" stroke-width="2"/>`
      : `<circle cx="${x + 6}" cy="${y - 4}" r="5" fill="${color}"/>`;
    parts.push(
      swatch +
        `<text x="${x + 16}" y="${y}" font-size="12" text-anchor="start">${escapeXml(it.label)}</text>`,
    );
    x += w;
  }
  return { svg: parts.join(""), height: items.length ? (row + 1) * LEGEND_ROW_HEIGHT + 2 : 0 };
}

/**
 * Run one `Plot.plot` call in a linkedom document and wrap its SVG with a title and a white
 * background: every figure of the project (here and in `experiments/backtracking/phase2/figures.ts`) goes
 * through this. Plot's own legends are HTML (not SVG); `extras.legend` draws a colour legend as swatches
 * under the title instead.
 */
export function render(
  name: string,
  defaults: { title: string; subtitle?: string; height: number },
  options: FigureOptions,
  plot: Plot.PlotOptions,
  extras: { readonly legend?: readonly LegendItem[] } = {},
): Figure {
  validateSize(options.width, "width");
  validateSize(options.height, "height");
  const width = options.width ?? 720;
  const chartHeight = options.height ?? defaults.height;
  const title = options.title === undefined ? defaults.title : options.title;
  const subtitle = options.subtitle === undefined ? defaults.subtitle ?? null : options.subtitle;
  const { document } = parseHTML("<!DOCTYPE html><html><body></body></html>");
  const el = Plot.plot({
    marginBottom: 44,
    ...plot,
    document: document as unknown as Document,
    width,
    height: chartHeight,
    style: { fontFamily: FONT_STACK, fontSize: "12px", background: "white", color: "black" },
  }) as unknown as Element;
  if (el.tagName.toLowerCase() !== "svg") {
    throw new Error(
      `figure "${name}": Plot returned <${el.tagName}>, expected <svg> (no title/caption/legend)`,
    );
  }
  const subtitleLines = subtitle ? subtitle.split("\n") : [];
  const headTop = (title ? TITLE_HEIGHT : 0) + SUBTITLE_HEIGHT * subtitleLines.length +
    (title || subtitle ? 6 : 0);
  const legend = legendSvg(extras.legend ?? [], headTop, width);
  const top = headTop + legend.height;
  el.setAttribute("y", String(top));
  el.setAttribute("font-family", FONT_STACK);
  el.removeAttribute("class");
  const inner = el.outerHTML.replace(/<style>[\s\S]*?<\/style>/, "");
  const height = chartHeight + top;
  const head: string[] = [];
  if (title) {
    head.push(
      `<text x="12" y="22" font-size="16" font-weight="bold" text-anchor="start">${escapeXml(title)}</text>`,
    );
  }
  subtitleLines.forEach((line, i) => {
    const y = (title ? TITLE_HEIGHT : 0) + 14 + i * SUBTITLE_HEIGHT;
    head.push(
      `<text x="12" y="${y}" font-size="12" fill="#555" text-anchor="start">${escapeXml(line)}</text>`,
    );
  });
  head.push(legend.svg);
  const svg = `<svg xmlns="${SVG_NS}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="${FONT_STACK}" font-size="12">` +
    `<rect width="${width}" height="${height}" fill="white"/>${head.join("")}${inner}</svg>`;
  return { name, svg, width, height };
}

/**
 * Check that every finite value lies inside its interval.
 *
 * @throws {RangeError} naming `where` and the row at fault.
 */
export function checkCI(rows: readonly ValueCI[], where: string): void {
  rows.forEach((r, i) => {
    if (!Number.isFinite(r.value)) return; // drawn as a gap
    if (r.lower > r.value + 1e-12 || r.upper < r.value - 1e-12) {
      throw new RangeError(
        `${where}: row ${i} has value ${r.value} outside its interval [${r.lower}, ${r.upper}]`,
      );
    }
  });
}

/**
 * @throws {RangeError} naming `where` when there are no rows to plot.
 */
export function nonEmpty<T>(rows: readonly T[], where: string): void {
  if (rows.length === 0) throw new RangeError(`${where}: no data to plot`);
}

/**
 * Vertical label positions without overlaps (1-D label dodging): each label wants to sit at its target
 * (pixels along one axis); labels closer than `gapPx` are gathered into clusters spaced `gapPx` apart and
 * centred on the mean of their targets (clusters merge until none overlaps), then the positions are kept
 * inside `range` (still `gapPx` apart, when the range is tall enough).
 *
 * @param targets Wanted positions in pixels (one per label; any order).
 * @param gapPx Minimum distance between two labels (about one line of text; default 14).
 * @param range `[min, max]` pixels the positions must stay within (default: unbounded).
 * @returns The positions, in the order of `targets`.
 * @throws {RangeError} if a target is not finite or `gapPx` is not positive.
 * @example
 * ```ts
 * dodgeLabels([100, 102, 300]); // [94, 108, 300]
 * ```
 */
export function dodgeLabels(
  targets: readonly number[],
  gapPx = 14,
  range?: readonly [number, number],
): number[] {
  if (!(gapPx > 0)) throw new RangeError(`dodgeLabels: gapPx must be positive, got ${gapPx}`);
  targets.forEach((t, i) => {
    if (!Number.isFinite(t)) throw new RangeError(`dodgeLabels: target ${i} is not finite (${t})`);
  });
  const order = targets.map((_, i) => i).sort((a, b) => targets[a]! - targets[b]! || a - b);
  const clusters: { members: number[]; start: number }[] = [];
  for (const i of order) {
    clusters.push({ members: [i], start: targets[i]! });
    while (clusters.length >= 2) {
      const top = clusters[clusters.length - 1]!, below = clusters[clusters.length - 2]!;
      if (top.start >= below.start + below.members.length * gapPx - 1e-9) break;
      const members = [...below.members, ...top.members];
      const mean = members.reduce((a, m) => a + targets[m]!, 0) / members.length;
      clusters.splice(-2, 2, { members, start: mean - ((members.length - 1) * gapPx) / 2 });
    }
  }
  const pos = new Array<number>(targets.length);
  const sorted: number[] = [];
  for (const c of clusters) {
    c.members.forEach((m, k) => {
      pos[m] = c.start + k * gapPx;
      sorted.push(m);
    });
  }
  if (range) {
    const [lo, hi] = range;
    for (let k = 0; k < sorted.length; k++) {
      const prev = k > 0 ? pos[sorted[k - 1]!]! + gapPx : -Infinity;
      pos[sorted[k]!] = Math.max(pos[sorted[k]!]!, lo, prev);
    }
    for (let k = sorted.length - 1; k >= 0; k--) {
      const next = k < sorted.length - 1 ? pos[sorted[k + 1]!]! - gapPx : Infinity;
      pos[sorted[k]!] = Math.min(pos[sorted[k]!]!, hi, next);
    }
  }
  return pos;
}

/** A label at the end of a line (see {@linkcode endLabelMarks}). */
export interface EndLabel {
  /** Anchor in data units (the line's last point). */
  readonly x: number;
  readonly y: number;
  readonly text: string;
  /** CSS colour of the text (the line's colour). */
  readonly color: string;
}

/**
 * Text marks that label lines at their last point, moved apart vertically so that no two overlap (lines
 * that end at the same value get stacked labels instead of one over the other; see
 * {@linkcode dodgeLabels}).
 *
 * @param labels One per line.
 * @param y The y scale as drawn: its `domain` (data units, as passed to Plot, not niced by Plot afterwards),
 *   the chart's `height` and its `marginTop` / `marginBottom` in pixels.
 * @param options `dx`: pixels right of the point (default 8); `gapPx`: line spacing (default 14).
 * @throws {RangeError} if the y domain is empty or not finite.
 */
export function endLabelMarks(
  labels: readonly EndLabel[],
  y: {
    readonly domain: readonly [number, number];
    readonly height: number;
    readonly marginTop: number;
    readonly marginBottom: number;
    readonly reverse?: boolean;
  },
  options: { readonly dx?: number; readonly gapPx?: number } = {},
): Plot.Markish[] {
  const [lo, hi] = y.domain;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo)) {
    throw new RangeError(`endLabelMarks: y domain must be finite and increasing, got [${lo}, ${hi}]`);
  }
  const inner = y.height - y.marginTop - y.marginBottom;
  // pixels from the top of the SVG, as drawn
  const px = (v: number) => y.marginTop + (y.reverse ? (v - lo) / (hi - lo) : (hi - v) / (hi - lo)) * inner;
  const targets = labels.map((l) => px(l.y));
  const placed = dodgeLabels(targets, options.gapPx ?? 14, [y.marginTop + 6, y.height - y.marginBottom]);
  return labels.map((l, i) =>
    Plot.text([l], {
      x: "x",
      y: "y",
      text: "text",
      fill: l.color,
      dx: options.dx ?? 8,
      dy: placed[i]! - targets[i]!,
      textAnchor: "start",
    })
  );
}

/**
 * The y domain Plot draws for `extent` with `nice: true` (so label positions can be computed before
 * plotting): pass the result as the scale's `domain` without `nice`.
 */
export function niceDomain(extent: readonly [number, number]): [number, number] {
  const d = Plot.scale({ y: { type: "linear", domain: [...extent], nice: true } }).domain as number[];
  return [d[0]!, d[1]!];
}

// ---------------------------------------------------------------------------------------------------
// Output: fonts, PNG, files, Jupyter

const SYSTEM_FONT_DIRS = [
  "/usr/share/fonts/truetype/dejavu",
  "/usr/share/fonts/TTF",
  "/usr/share/fonts/dejavu",
];
const FONT_FILES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"];

/** The paths that are files, resolved through symlinks and deduplicated, in order. */
function existing(paths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    try {
      if (Deno.statSync(p).isFile) out.add(Deno.realPathSync(p));
    } catch {
      // missing: skip
    }
  }
  return [...out];
}

/** Where the fonts came from, and the files. */
export interface FontSource {
  readonly source: "env" | "npm" | "system" | "none";
  readonly files: readonly string[];
}

let fontCache: FontSource | undefined;

/**
 * Font files for resvg: `BT_FONT_FILES` (":"-separated paths), else DejaVu Sans from the npm package
 * `dejavu-fonts-ttf`, else from Debian's fonts-dejavu-core. Cached after the first call.
 *
 * @throws {Error} if `BT_FONT_FILES` names a file that does not exist.
 */
export function resolveFontFiles(): FontSource {
  if (fontCache) return fontCache;
  const env = Deno.env.get("BT_FONT_FILES");
  if (env) {
    const files = env.split(":").filter((p) => p !== "");
    const missing = files.filter((p) => existing([p]).length === 0);
    if (missing.length > 0) {
      throw new Error(`BT_FONT_FILES names missing font file(s): ${missing.join(", ")}`);
    }
    return (fontCache = { source: "env", files });
  }
  const npm: string[] = [];
  for (const f of FONT_FILES) {
    try {
      const url = import.meta.resolve(`dejavu-fonts-ttf/ttf/${f}`);
      if (url.startsWith("file:")) npm.push(new URL(url).pathname);
    } catch {
      // not in the import map
    }
    npm.push(new URL(`../../node_modules/dejavu-fonts-ttf/ttf/${f}`, import.meta.url).pathname);
  }
  const fromNpm = existing(npm);
  if (fromNpm.length > 0) return (fontCache = { source: "npm", files: fromNpm });
  const sys = existing(SYSTEM_FONT_DIRS.flatMap((d) => FONT_FILES.map((f) => `${d}/${f}`)));
  if (sys.length > 0) return (fontCache = { source: "system", files: sys });
  return (fontCache = { source: "none", files: [] });
}

let warnedNoFont = false;

/** Options of {@linkcode renderPng}. */
export interface PngOptions {
  /** Zoom factor (default 2). */
  readonly scale?: number;
  /** Font files (default {@linkcode resolveFontFiles}). */
  readonly fontFiles?: readonly string[];
}

/**
 * Render an SVG to PNG with resvg on a white background.
 *
 * @returns PNG bytes. Without any font file text is not drawn, and a warning is printed once.
 * @throws {RangeError} if `scale` is not in (0, 8].
 */
export function renderPng(svg: string, options: PngOptions = {}): Uint8Array {
  const scale = options.scale ?? 2;
  if (!(scale > 0 && scale <= 8)) throw new RangeError(`option "scale" must be in (0, 8], got ${scale}`);
  const fontFiles = options.fontFiles ?? resolveFontFiles().files;
  if (options.fontFiles === undefined && fontFiles.length === 0 && !warnedNoFont) {
    warnedNoFont = true;
    console.warn(
      "plots: no font file found, PNG text will be missing. Install the npm package dejavu-fonts-ttf " +
        "(deno.json import) or Debian's fonts-dejavu-core, or set BT_FONT_FILES.",
    );
  }
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background: "white",
    font: {
      fontFiles: [...fontFiles],
      loadSystemFonts: false,
      defaultFontFamily: FONT_FAMILY,
      sansSerifFamily: FONT_FAMILY,
    },
  });
  return new Uint8Array(resvg.render().asPng());
}

/**
 * Write `<dir>/<name>.svg` and `<dir>/<name>.png` (2× scale) atomically.
 *
 * @param name File stem (default `fig.name`).
 * @returns The two paths.
 */
export async function saveFigure(
  fig: Figure,
  dir: string,
  name: string = fig.name,
): Promise<{ svgPath: string; pngPath: string }> {
  if (!/^[\w.-]+$/.test(name)) {
    throw new RangeError(`saveFigure: figure name must be a plain file stem, got "${name}"`);
  }
  const svgPath = `${dir}/${name}.svg`;
  const pngPath = `${dir}/${name}.png`;
  await writeFileAtomic(svgPath, fig.svg, { createDir: true });
  await writeFileAtomic(pngPath, renderPng(fig.svg), { createDir: true });
  return { svgPath, pngPath };
}

/**
 * Jupyter display message of a figure (the `data` and `metadata` of a `display_data` output): a base64 PNG
 * rendered at 2× scale, shown at the SVG's size (`metadata["image/png"]` width/height in CSS pixels), and a
 * text fallback.
 *
 * There is deliberately no `image/svg+xml` entry: `jupyter nbconvert --to html` prefers SVG over PNG and its
 * HTML templates pass the SVG through `clean_html`, which keeps only the text of the drawing (Debian
 * bookworm's nbconvert 6.5.3 and nbconvert 7.0–7.2; later 7.x still strip `style`); JupyterLab does not render
 * SVG outputs of untrusted notebooks (every executed notebook opened fresh). A PNG renders in nbconvert,
 * JupyterLab, VS Code and GitHub alike. The vector SVG is saved next to the PNG by {@linkcode saveFigure}.
 */
export interface FigureBundle {
  readonly data: { readonly "image/png": string; readonly "text/plain": string };
  readonly metadata: { readonly "image/png": { readonly width: number; readonly height: number } };
}

/**
 * The display message of a figure (see {@linkcode FigureBundle}), for
 * `await Deno.jupyter.broadcast("display_data", { ...figureBundle(fig), transient: {} })`.
 */
export function figureBundle(fig: Figure): FigureBundle {
  return {
    data: {
      "image/png": Buffer.from(renderPng(fig.svg)).toString("base64"),
      "text/plain": `[figure ${fig.name}: ${fig.width}x${fig.height}]`,
    },
    metadata: { "image/png": { width: fig.width, height: fig.height } },
  };
}
