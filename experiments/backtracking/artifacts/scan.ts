/**
 * Artifact family "scan" (written by ablation-scan, read by generation of the ablation conditions, Phase 2,
 * the report and the notebooks):
 *
 * - `analysis/ablation_importance.csv`: the reference's five columns first (`layer, component,
 *   delta_wait_logit_mean, delta_wait_logit_std, n_events`, rows sorted ascending by the mean Δlogit as the
 *   reference sorts), then ours (Δlog-prob with CI, control Δ, specificity with CI);
 * - `analysis/selected_layers.json`: `{attn, mlp}` in importance order;
 * - `analysis/random_ablation_specs.json`: `{mode, seed, selected, draws}`;
 * - `analysis/shards/ablation_scan.shard-K-of-N.json`: the scores of one shard of a sharded scan.
 *
 * @module
 */

import type { PositionScores, ScanRow } from "../../../lib/interp/ablation_scan.ts";
import { parseCsv } from "../../../lib/tables/table.ts";
import { toCsv } from "../events.ts";
import { referenceImportanceRows } from "../selection.ts";
import { artifactPath, type Run, writeArtifact } from "../run.ts";
import { numCell, readArtifactJsonAs, readArtifactText } from "./files.ts";

/** The scan files (run-relative). */
export const SCAN_FILES = {
  importance: "analysis/ablation_importance.csv",
  selected: "analysis/selected_layers.json",
  random: "analysis/random_ablation_specs.json",
} as const;

/** Files written by ablation-scan, in the order written. */
export const SCAN_OUTPUTS = [SCAN_FILES.importance, SCAN_FILES.selected, SCAN_FILES.random] as const;

/** Layer lists per component type (`analysis/selected_layers.json`; one random draw). */
export interface LayerSpec {
  readonly attn: readonly number[];
  readonly mlp: readonly number[];
}

/** `analysis/random_ablation_specs.json`. */
export interface RandomAblationSpecs {
  readonly mode: "reference" | "matched";
  readonly seed: number;
  readonly draws: readonly LayerSpec[];
  readonly selected: LayerSpec;
}

/** Rows of `ablation_importance.csv`: the reference's columns and order, then ours. */
export function importanceTable(rows: readonly ScanRow[]): Record<string, unknown>[] {
  const ours = new Map(rows.map((r) => [`${r.layer}|${r.component}`, r]));
  return referenceImportanceRows(rows).map((ref) => {
    const { layer: _l, component: _c, n_events: _n, delta_logit_mean: _m, delta_logit_std: _s, ...rest } =
      ours.get(
        `${ref.layer}|${ref.component}`,
      )!;
    return { ...ref, ...rest };
  });
}

/** What {@linkcode writeScanTables} writes. */
export interface ScanTables {
  readonly rows: readonly ScanRow[];
  readonly selected: LayerSpec;
  readonly random: RandomAblationSpecs;
}

/**
 * Write the importance table, the selection and the random draws.
 *
 * @param options `overwrite` (default false).
 * @throws {ArtifactExistsError} when a file exists and `overwrite` is not set.
 */
export async function writeScanTables(
  run: Run,
  t: ScanTables,
  options: { readonly overwrite?: boolean } = {},
): Promise<void> {
  const overwrite = options.overwrite ?? false;
  await writeArtifact(
    run,
    SCAN_FILES.importance,
    toCsv(importanceTable(t.rows), undefined, ["delta_wait_logit_mean", "delta_wait_logit_std"]),
    { overwrite },
  );
  await writeArtifact(run, SCAN_FILES.selected, t.selected, { overwrite });
  await writeArtifact(run, SCAN_FILES.random, t.random, { overwrite });
}

/**
 * The selected layers (`analysis/selected_layers.json`).
 *
 * @throws {MissingArtifactError} when the file cannot be read (run ablation-scan).
 */
export async function readSelectedLayers(run: Run): Promise<LayerSpec> {
  return await readArtifactJsonAs<LayerSpec>(run, SCAN_FILES.selected, "ablation-scan");
}

/**
 * The random-control draws (`analysis/random_ablation_specs.json`).
 *
 * @throws {MissingArtifactError} when the file cannot be read (run ablation-scan).
 */
export async function readRandomAblationSpecs(run: Run): Promise<RandomAblationSpecs> {
  return await readArtifactJsonAs<RandomAblationSpecs>(run, SCAN_FILES.random, "ablation-scan");
}

/** The scan's selection and its random draws. */
export async function readSelection(run: Run): Promise<{ selected: LayerSpec; draws: readonly LayerSpec[] }> {
  const selected = await readSelectedLayers(run);
  const specs = await readRandomAblationSpecs(run);
  return { selected, draws: specs.draws };
}

/** The columns of `ablation_importance.csv` the report and notebooks read (one row per component). */
export interface ImportanceRow {
  readonly layer: number;
  readonly component: "attn" | "mlp";
  readonly delta_wait_logit_mean: number;
  readonly n_events: number;
  /** Mean Δ log-prob of the trigger when the component is ablated, with its CI. */
  readonly delta_logprob_mean: number;
  readonly delta_logprob_lower: number;
  readonly delta_logprob_upper: number;
  /** Δ at the trigger − Δ at the matched control, with its CI. */
  readonly specificity_mean: number;
  readonly specificity_lower: number;
  readonly specificity_upper: number;
}

/**
 * The rows of `ablation_importance.csv`, in file order (the reference's sort).
 *
 * @throws {MissingArtifactError} when the file cannot be read (run ablation-scan).
 */
export async function readImportanceTable(run: Run): Promise<ImportanceRow[]> {
  const { records } = parseCsv(await readArtifactText(run, SCAN_FILES.importance, "ablation-scan"));
  return records.map((r) => ({
    layer: numCell(r.layer),
    component: r.component === "attn" ? "attn" : "mlp",
    delta_wait_logit_mean: numCell(r.delta_wait_logit_mean),
    n_events: numCell(r.n_events),
    delta_logprob_mean: numCell(r.delta_logprob_mean),
    delta_logprob_lower: numCell(r.delta_logprob_lower),
    delta_logprob_upper: numCell(r.delta_logprob_upper),
    specificity_mean: numCell(r.specificity_mean),
    specificity_lower: numCell(r.specificity_lower),
    specificity_upper: numCell(r.specificity_upper),
  }));
}

/**
 * One shard of a sharded ablation scan (`bt ablation-scan --shard K/N`): the scores of its positions, in
 * `analysis/shards/ablation_scan.shard-K-of-N.json`. The unsharded ablation-scan assembles every shard's
 * scores ({@linkcode readScanShards}) instead of scanning.
 */
export interface ScanShard {
  readonly shard: number;
  readonly count: number;
  /** The config hash (without run id and output folder) the scan was made with. */
  readonly config_hash: string;
  /** sha256 of the scanned positions (token ids, position, targets) and conditions: the same items. */
  readonly positions_hash: string;
  readonly n_positions: number;
  /** Indices of this shard's positions (into the scan's position list), ascending. */
  readonly indices: readonly number[];
  /** Their scores, in the order of `indices`. */
  readonly scores: readonly PositionScores[];
}

/** The file of scan shard K of N (run-relative). */
export function scanShardFile(shard: { readonly index: number; readonly count: number }): string {
  return `analysis/shards/ablation_scan.shard-${shard.index}-of-${shard.count}.json`;
}

/** Write a scan shard (atomically; replaces an earlier try of the same shard). */
export async function writeScanShard(run: Run, data: ScanShard): Promise<string> {
  const rel = scanShardFile({ index: data.shard, count: data.count });
  await Deno.mkdir(artifactPath(run, "analysis/shards"), { recursive: true });
  await writeArtifact(run, rel, data, { overwrite: true });
  return rel;
}

/**
 * The scan shards present, as `count → (shard → data)`; empty when the scan was not sharded.
 */
export async function readScanShards(run: Run): Promise<Map<number, Map<number, ScanShard>>> {
  const out = new Map<number, Map<number, ScanShard>>();
  let names: string[] = [];
  try {
    names = (await Array.fromAsync(Deno.readDir(artifactPath(run, "analysis/shards")))).map((e) => e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const n of names.sort()) {
    const m = /^ablation_scan\.shard-(\d+)-of-(\d+)\.json$/.exec(n);
    if (!m) continue;
    const data = JSON.parse(await Deno.readTextFile(artifactPath(run, `analysis/shards/${n}`))) as ScanShard;
    const byCount = out.get(Number(m[2])) ?? new Map<number, ScanShard>();
    byCount.set(Number(m[1]), data);
    out.set(Number(m[2]), byCount);
  }
  return out;
}

/** Remove every scan shard file (before an unsharded `--force` scan). */
export async function removeScanShards(run: Run): Promise<void> {
  for (const [count, shards] of await readScanShards(run)) {
    for (const index of shards.keys()) {
      await Deno.remove(artifactPath(run, scanShardFile({ index, count }))).catch(() => {});
    }
  }
}
