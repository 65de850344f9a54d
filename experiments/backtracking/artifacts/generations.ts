/**
 * Artifact family `generations/<variant>/<condition>.jsonl` (+ `.timings.jsonl`): the record stores the
 * generating steps write (Phase 1: `baseline`, `targeted_ablation`, `random_ablation[_k]`; Phase 2:
 * `phase2_*`), and their index in the reference's detection order.
 *
 * The record format itself (append-only JSONL with resume) is the toolkit's `lib/generate/records.ts`;
 * this module owns where a run keeps its stores and how they are listed.
 *
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { type GenerationRecord, readStore, timingsPathFor } from "../../../lib/generate/records.ts";
import { artifactPath, type Run } from "../run.ts";

/** Condition names in the reference's order; random draws follow as `random_ablation_<k>`. */
export const CONDITION_ORDER = ["baseline", "targeted_ablation", "random_ablation"] as const;

/** Relative path of a generation store. */
export function generationFile(variant: string, condition: string): string {
  return `generations/${variant}/${condition}.jsonl`;
}

/** One store of the index. */
export interface GenerationStore {
  readonly variant: string;
  readonly condition: string;
  /** Absolute path of the `.jsonl` store. */
  readonly path: string;
}

/**
 * Whether a condition belongs to Phase 1 (baseline, targeted_ablation, random_ablation[_k],
 * reference_selection_ablation): the
 * conditions of `backtracking_events.csv` and of the Phase-1 tables. Phase-2 settings (`phase2_*`) have
 * their own tables and never enter these.
 */
export function isPhase1Condition(condition: string): boolean {
  return condition === "baseline" || condition === "targeted_ablation" ||
    condition.startsWith("random_ablation") || condition === REFERENCE_SELECTION_CONDITION;
}

/**
 * The protocol-validation condition: the reference protocol's selection (signed top-k by raw Δlogit)
 * ablated during generation, generated on models with a known circuit (the organism) so that what the
 * reference's "backtracking drop" costs in degeneration can be read beside ours (docs/protocol.md §13).
 */
export const REFERENCE_SELECTION_CONDITION = "reference_selection_ablation";

/**
 * Order of condition names: baseline, targeted_ablation, random_ablation[, _0, _1, …], then others by name
 * (reference_selection_ablation among them).
 */
export function compareConditionNames(a: string, b: string): number {
  const [x, y] = [conditionRank(a), conditionRank(b)];
  return x[0] - y[0] || x[1] - y[1] || (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0);
}

function conditionRank(c: string): [number, number, string] {
  const i = (CONDITION_ORDER as readonly string[]).indexOf(c);
  if (i >= 0) return [i, 0, c];
  const m = /^random_ablation_(\d+)$/.exec(c);
  if (m) return [2, Number(m[1]) + 1, c];
  return [9, 0, c];
}

/**
 * The generation stores of a run, in the reference's detection order: variants in config order (then
 * any others by name) × conditions baseline, targeted_ablation, random_ablation[, _0, _1, …], others.
 * `phase1Only`: leave out Phase-2 stores (see {@linkcode isPhase1Condition}).
 */
export async function listGenerationStores(
  ctx: { readonly config: Config; readonly run: Run },
  options: { readonly phase1Only?: boolean } = {},
): Promise<GenerationStore[]> {
  const root = join(ctx.run.dir, "generations");
  const found: GenerationStore[] = [];
  try {
    for await (const v of Deno.readDir(root)) {
      if (!v.isDirectory) continue;
      for await (const f of Deno.readDir(join(root, v.name))) {
        if (!f.isFile || !f.name.endsWith(".jsonl") || f.name.endsWith(".timings.jsonl")) continue;
        if (options.phase1Only && !isPhase1Condition(f.name.slice(0, -6))) continue;
        found.push({ variant: v.name, condition: f.name.slice(0, -6), path: join(root, v.name, f.name) });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const vOrder = ctx.config.prompting.formatting_variants.map((v) => v.name);
  const vr = (v: string) => {
    const i = vOrder.indexOf(v);
    return i < 0 ? vOrder.length : i;
  };
  return found.sort((a, b) => {
    const [ca, cb] = [conditionRank(a.condition), conditionRank(b.condition)];
    return vr(a.variant) - vr(b.variant) || a.variant.localeCompare(b.variant) || ca[0] - cb[0] ||
      ca[1] - cb[1] || ca[2].localeCompare(cb[2]);
  });
}

/** The records of a store at an absolute path (with its timings), in file order. */
export async function readGenerationStore(path: string): Promise<GenerationRecord[]> {
  return await readStore(path, timingsPathFor(path));
}

/**
 * Read one generation store of the run (records in file order).
 *
 * @throws {Error} naming the store and the command that makes it when it does not exist.
 */
export async function readGenerations(
  run: Run,
  variant: string,
  condition: string,
): Promise<GenerationRecord[]> {
  const path = artifactPath(run, generationFile(variant, condition));
  try {
    await Deno.stat(path);
  } catch {
    throw new Error(
      `${path} does not exist; run \`bt generate --condition ${condition} --variant ${variant}\` first`,
    );
  }
  return await readGenerationStore(path);
}

/**
 * Make a store ready for the generator (which appends and resumes): create its folder, and with `fresh`
 * delete the store and its timings so it is regenerated from scratch.
 *
 * @returns The absolute path of the store.
 */
export async function prepareGenerationStore(
  run: Run,
  variant: string,
  condition: string,
  options: { readonly fresh?: boolean } = {},
): Promise<string> {
  const path = artifactPath(run, generationFile(variant, condition));
  await Deno.mkdir(artifactPath(run, `generations/${variant}`), { recursive: true });
  if (options.fresh) {
    for (const p of [path, timingsPathFor(path)]) await Deno.remove(p).catch(() => {});
  }
  return path;
}
