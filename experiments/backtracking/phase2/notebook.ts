/**
 * Small helpers of the Phase-2 notebooks (`notebooks/11_*` … `15_*`).
 *
 * @module
 */

import type pl from "nodejs-polars";
import type { Figure } from "../figures.ts";
import { toDataFrame } from "../../../lib/tables/table.ts";
import { artifactPath, type Run } from "../run.ts";

/**
 * A figure a Phase-2 step saved in the run (`figures/<name>.svg`), for `showFigure`.
 *
 * @param ctx The run.
 * @param name Figure stem, e.g. `phase2_tradeoff`.
 * @throws {Error} naming the file when the step has not drawn it.
 */
export async function runFigure(ctx: { readonly run: Run }, name: string): Promise<Figure> {
  const path = artifactPath(ctx.run, `figures/${name}.svg`);
  let svg: string;
  try {
    svg = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as Error).message}; run the Phase-2 step first`, { cause: e });
  }
  const size = (attr: string) => Number(new RegExp(`<svg[^>]*\\s${attr}="([\\d.]+)"`).exec(svg)?.[1] ?? 0);
  return { name, svg, width: size("width"), height: size("height") };
}

/**
 * Some columns of table rows as a polars DataFrame for `showTable`, in the order given; a column that no
 * row has (e.g. the rate of a trigger this run does not use) is left out.
 *
 * @throws {TypeError} when a column mixes kinds of values (see `toDataFrame`).
 * @example
 * ```ts
 * await showTable(pick(sweeps.subset_sweep, ["setting", "backtracking_rate"]));
 * ```
 */
export function pick(rows: readonly object[], columns: readonly string[]): pl.DataFrame {
  return toDataFrame(rows, columns.filter((c) => rows.some((r) => c in r)));
}
