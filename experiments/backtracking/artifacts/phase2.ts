/**
 * Artifact family "Phase 2" (written by the phase2-* steps; the report reads their sections):
 *
 * - sweeps: `analysis/subset_sweep_results.csv`, `analysis/scale_sweep_results.csv`,
 *   `analysis/phase2_events.csv`, `analysis/phase2_sweeps.json`, `figures/phase2_tradeoff.svg`;
 * - steering: `analysis/steering_directions.json`, `analysis/steering_results.csv`,
 *   `analysis/phase2_steering_events.csv`, `analysis/phase2_steering.json`,
 *   `figures/steering_dose_response.svg`;
 * - continuation ablation: `analysis/continuation_ablation_results.csv`,
 *   `analysis/continuation_ablation_summary.csv`, `analysis/phase2_continuation.json`,
 *   `figures/continuation_onset_prob.svg`;
 * - patching: `analysis/patching_results.csv`, `analysis/patching_summary.csv`,
 *   `analysis/phase2_patching.json`, `figures/patching_bt_from_control.svg`.
 *
 * Each step's `phase2_<name>.json` is its result (the types below) with the report section it wrote;
 * a finished step is reused by reading it back. Phase-2 outputs are replaced when recomputed.
 *
 * @module
 */

import { join } from "node:path";
import type { PatchSummaryRow } from "../../../lib/interp/activation_patching.ts";
import type { ContinuationSummaryRow } from "../phase2/continuation.ts";
import { type Run, writeArtifact } from "../run.ts";
import { readArtifactJsonAs } from "./files.ts";

/** Files written by phase2-sweeps (`[3]` is its result). */
export const SWEEP_OUTPUTS = [
  "analysis/subset_sweep_results.csv",
  "analysis/scale_sweep_results.csv",
  "analysis/phase2_events.csv",
  "analysis/phase2_sweeps.json",
  "figures/phase2_tradeoff.svg",
] as const;

/** Files written by phase2-steering (`[3]` is its result). */
export const STEERING_OUTPUTS = [
  "analysis/steering_directions.json",
  "analysis/steering_results.csv",
  "analysis/phase2_steering_events.csv",
  "analysis/phase2_steering.json",
  "figures/steering_dose_response.svg",
] as const;

/** Files written by phase2-continuation (`[2]` is its result). */
export const CONTINUATION_OUTPUTS = [
  "analysis/continuation_ablation_results.csv",
  "analysis/continuation_ablation_summary.csv",
  "analysis/phase2_continuation.json",
  "figures/continuation_onset_prob.svg",
] as const;

/** Files written by phase2-patching (`[2]` is its result). */
export const PATCHING_OUTPUTS = [
  "analysis/patching_results.csv",
  "analysis/patching_summary.csv",
  "analysis/phase2_patching.json",
  "figures/patching_bt_from_control.svg",
] as const;

/** The result files holding the report sections, in report order. */
export const PHASE2_SECTION_FILES = [
  SWEEP_OUTPUTS[3],
  STEERING_OUTPUTS[3],
  CONTINUATION_OUTPUTS[2],
  PATCHING_OUTPUTS[2],
] as const;

/** A report section written by a Phase-2 step (its result file holds it with the data). */
export interface Phase2Section {
  readonly title: string;
  readonly markdown: string;
}

/** `analysis/phase2_sweeps.json`. */
export interface SweepsResult {
  readonly variant: string;
  readonly examples: number;
  readonly samples: number;
  readonly subsets: readonly { name: string; components: string; origin: string }[];
  /** Rows of `subset_sweep_results.csv` (baseline first). */
  readonly subset_sweep: Record<string, unknown>[];
  /** The scale sweep's subset and rows (ascending scale, 1.0 = baseline). */
  readonly scale_sweep: { readonly subset: string; readonly rows: Record<string, unknown>[] };
  readonly section: Phase2Section;
  readonly status?: "ran" | "reused";
}

/** The settings a steering result was made with (stored; outputs are reused only when they match). */
export interface SteeringSettings {
  /** The configured block; null = derived from the scan. */
  readonly layer: number | null;
  /** Ascending, 0 included. */
  readonly coefficients: number[];
  readonly direction: "mean_difference" | "planted";
  readonly planted_comparison: boolean;
  readonly max_examples: number;
  /** Before the cap at the Phase-1 sample count. */
  readonly num_samples_per_prompt: number;
}

/** Per-layer direction statistics (without the vector). */
export interface DirectionInfo {
  readonly layer: number;
  readonly norm: number;
  readonly event_norm: number;
  readonly separation: number;
  readonly n_events: number;
  readonly n_controls: number;
  /** Organism only: cosine with its planted feature directions. */
  readonly cos_planted?: Readonly<Record<string, number>>;
}

/** `analysis/phase2_steering.json`. */
export interface SteeringResult {
  readonly variant: string;
  readonly block: number;
  readonly direction_layer: number;
  readonly hook_layer: number;
  readonly directions: DirectionInfo[];
  /** Rows of `steering_results.csv` per direction (`meandiff`, `planted_wait`), ascending coefficient. */
  readonly rows: Record<string, unknown>[];
  readonly directions_steered: { label: string; description: string }[];
  /** What it was made with. */
  readonly settings: SteeringSettings;
  readonly section: Phase2Section;
  readonly status?: "ran" | "reused";
}

/** `analysis/phase2_continuation.json`. */
export interface ContinuationResult {
  readonly variant: string;
  readonly n_events: number;
  readonly available_events: number;
  readonly summary: ContinuationSummaryRow[];
  readonly section: Phase2Section;
  readonly status?: "ran" | "reused";
}

/** The settings a patching result was made with (stored; outputs are reused only when they match). */
export interface PatchingSettings {
  readonly components: ("attn" | "mlp")[];
  /** `"all"` or ascending layers. */
  readonly layers: "all" | number[];
  readonly max_events: number;
}

/** `analysis/phase2_patching.json`. */
export interface PatchingResult {
  readonly variant: string;
  readonly n_pairs: number;
  /** What it was made with. */
  readonly settings: PatchingSettings;
  readonly summary: PatchSummaryRow[];
  /** Per direction and trigger group: the component with the largest effect in the expected sign. */
  readonly localisation: PatchSummaryRow[];
  readonly section: Phase2Section;
  readonly status?: "ran" | "reused";
}

/**
 * Write a Phase-2 output, replacing an older one (strings as text, other values as indented JSON).
 *
 * @returns The absolute path written.
 */
export async function writePhase2Output(run: Run, rel: string, data: string | object): Promise<string> {
  return await writeArtifact(run, rel, data, { overwrite: true });
}

/**
 * A Phase-2 step's stored result (its `phase2_<name>.json`).
 *
 * @throws {MissingArtifactError} when the file cannot be read.
 */
export async function readPhase2Result<T extends { section: Phase2Section }>(
  run: Run,
  rel: string,
): Promise<T> {
  return await readArtifactJsonAs<T>(run, rel, "the Phase-2 step");
}

/** `analysis/phase2_sweeps.json`. */
export async function readSweepsResult(run: Run): Promise<SweepsResult> {
  return await readPhase2Result<SweepsResult>(run, SWEEP_OUTPUTS[3]);
}

/** `analysis/phase2_steering.json`. */
export async function readSteeringResult(run: Run): Promise<SteeringResult> {
  return await readPhase2Result<SteeringResult>(run, STEERING_OUTPUTS[3]);
}

/** `analysis/phase2_continuation.json`. */
export async function readContinuationResult(run: Run): Promise<ContinuationResult> {
  return await readPhase2Result<ContinuationResult>(run, CONTINUATION_OUTPUTS[2]);
}

/** `analysis/phase2_patching.json`. */
export async function readPatchingResult(run: Run): Promise<PatchingResult> {
  return await readPhase2Result<PatchingResult>(run, PATCHING_OUTPUTS[2]);
}

/**
 * The Phase-2 sections of a run folder (synchronous: the report builder is).
 *
 * @param runDir The run folder.
 * @returns The sections of the Phase-2 outputs that exist (none for a Phase-1-only run).
 * @throws {SyntaxError} naming the file when one exists but is not valid JSON.
 */
export function phase2ReportSections(runDir: string): Phase2Section[] {
  const out: Phase2Section[] = [];
  for (const rel of PHASE2_SECTION_FILES) {
    let text: string;
    try {
      text = Deno.readTextFileSync(join(runDir, rel));
    } catch {
      continue;
    }
    try {
      const s = (JSON.parse(text) as { section?: Phase2Section }).section;
      if (s && typeof s.title === "string" && typeof s.markdown === "string") out.push(s);
    } catch (e) {
      throw new SyntaxError(`${join(runDir, rel)} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  return out;
}
