/**
 * What the Phase-2 steps share: the setup (variant, problems, samples, prompts from the *Phase-1* prompt
 * builder, the subsets), generation of one setting into `generations/<variant>/phase2_<setting>.jsonl`,
 * event rows with the gold aligned by example id, and the Phase-1 baseline rows. (Their output files are
 * `artifacts/phase2.ts`.)
 *
 * Fixes of the reference's Phase 2 (docs/protocol.md §19): the same prompt builder and chat template as
 * Phase 1 (no dropped system prompt), the Phase-1 baseline store as the baseline (same problems, sample ids
 * and random streams, so every setting is a paired comparison), gold looked up by example id (not
 * `answers[i mod 120]`), every generation saved.
 *
 * @module
 */

import type { EventRow } from "../event_row.ts";
import { buildEventRows, type ProblemGold } from "../events.ts";
import type { Gsm8kProblem } from "../data.ts";
import type { GenerationRecord } from "../../../lib/generate/records.ts";
import { generateToStore, type PromptRecordInput } from "../../../lib/generate/run_generation.ts";
import type { Intervention } from "../../../lib/engine/hooks.ts";
import { type ComponentSubset, configSubsets, deriveSubsets } from "./subsets.ts";
import { buildPrompt } from "../prompts.ts";
import type { Run } from "../run.ts";
import { ablationScale, detectionOptions, generationSettings, phase2Variant } from "../settings.ts";
import { prepareGenerationStore, readGenerations, readGenerationStore } from "../artifacts/generations.ts";
import { readProblems } from "../artifacts/problems.ts";
import { readSelection } from "../artifacts/scan.ts";
import { ensureModel, ensureTokenizer, type ModelContext } from "../context.ts";

/** Options every Phase-2 step accepts. */
export interface Phase2StepOptions {
  /**
   * Recompute: delete this step's Phase-2 generation stores and outputs first. Default false: finished
   * outputs are reused (read back), and generation stores resume where they stopped.
   */
  readonly force?: boolean;
}

/** The shared setup of the Phase-2 steps. */
export interface Phase2Setup {
  readonly variant: string;
  /** The first `phase2.max_examples` problems of the run (or the step's own count), in file order. */
  readonly problems: readonly Gsm8kProblem[];
  /** Samples per problem: min(`phase2.num_samples_per_prompt`, the Phase-1 count). */
  readonly samples: number;
  readonly prompts: readonly PromptRecordInput[];
  readonly subsets: readonly ComponentSubset[];
  readonly numLayers: number;
  readonly triggers: readonly string[];
  /** The generation-time ablation scale of the subset sweep (0 for `mode: zero`). */
  readonly ablationScale: number;
}

/** Overrides of {@linkcode phase2Setup}'s problem and sample counts (e.g. `phase2.steering`'s). */
export interface Phase2SetupOptions {
  /** Problems (default `phase2.max_examples`). */
  readonly maxExamples?: number | null;
  /** Samples per problem before the Phase-1 cap (default `phase2.num_samples_per_prompt`). */
  readonly samplesPerPrompt?: number | null;
}

/**
 * Build the setup (loads the model for the layer count and tokenizer).
 *
 * @param options Problem / sample counts other than the sweeps' (null or absent = the sweeps').
 * @throws {Error} when the scan outputs are missing (and no subsets are configured).
 */
export async function phase2Setup(ctx: ModelContext, options: Phase2SetupOptions = {}): Promise<Phase2Setup> {
  const cfg = ctx.config;
  const { model, tokenizer } = await ensureModel(ctx);
  const variant = phase2Variant(cfg);
  const problems = (await readProblems(ctx.run)).slice(0, options.maxExamples ?? cfg.phase2.max_examples);
  const samples = Math.min(
    options.samplesPerPrompt ?? cfg.phase2.num_samples_per_prompt,
    cfg.generation.num_samples_per_prompt,
  );
  const prompts = problems.map((p) => {
    const built = buildPrompt(tokenizer, cfg.prompting, p.question, variant);
    return { exampleId: p.id, prompt: built.text, tokenIds: built.tokenIds };
  });
  const numLayers = model.config.numLayers;
  let subsets: ComponentSubset[];
  const configured = cfg.phase2.subset_sweep.subsets as Readonly<
    Record<string, readonly (readonly ["attn" | "mlp", number])[]>
  >;
  if (Object.keys(configured).length > 0) subsets = configSubsets(configured, numLayers);
  else {
    const { selected, draws } = await readSelection(ctx.run);
    subsets = deriveSubsets(selected, draws);
  }
  return {
    variant,
    problems,
    samples,
    prompts,
    subsets,
    numLayers,
    triggers: [...cfg.detection.triggers_strict],
    ablationScale: ablationScale(cfg),
  };
}

/** Keep the records of the setup's problems and sample ids, in (example, sample) order. */
function inSetup(setup: Phase2Setup, records: readonly GenerationRecord[]): GenerationRecord[] {
  const ids = new Set(setup.problems.map((p) => p.id));
  return records.filter((r) => ids.has(Number(r.example_id)) && r.sample_id < setup.samples)
    .sort((a, b) => Number(a.example_id) - Number(b.example_id) || a.sample_id - b.sample_id);
}

/**
 * Generate one setting of the setup into `generations/<variant>/<condition>.jsonl` (resumable) and
 * return its records. Sampling, seed, token budget, batch size and intervention scope are Phase 1's,
 * so sample (e, s) shares its random stream with the Phase-1 baseline sample (e, s).
 *
 * @param force Delete the store first.
 */
export async function generateSetting(
  ctx: ModelContext,
  setup: Phase2Setup,
  condition: string,
  interventions: readonly Intervention[],
  force = false,
): Promise<GenerationRecord[]> {
  const loaded = await ensureModel(ctx);
  const path = await prepareGenerationStore(ctx.run, setup.variant, condition, { fresh: force });
  await generateToStore(loaded.model, setup.prompts, {
    ...generationSettings(ctx.config, loaded, ctx.progress),
    path,
    variant: setup.variant,
    condition,
    samplesPerPrompt: setup.samples,
    interventions,
  });
  return inSetup(setup, await readGenerationStore(path));
}

/** Event rows of records (strict/relaxed detection, answers scored against the gold of *their* example). */
export async function eventRowsOf(
  ctx: ModelContext,
  records: readonly GenerationRecord[],
): Promise<EventRow[]> {
  const tokenizer = await ensureTokenizer(ctx);
  const problems = new Map<number, ProblemGold>((await readProblems(ctx.run)).map((p) => [p.id, p]));
  return buildEventRows(records, problems, tokenizer, detectionOptions(ctx.config, tokenizer)).rows;
}

/**
 * The Phase-1 baseline records of the setup (the scale-1.0 / coefficient-0 row of every sweep).
 *
 * @throws {Error} when the Phase-1 baseline lacks some (example, sample) of the setup.
 */
export async function baselineRecords(run: Run, setup: Phase2Setup): Promise<GenerationRecord[]> {
  const recs = inSetup(setup, await readGenerations(run, setup.variant, "baseline"));
  const want = setup.problems.length * setup.samples;
  if (recs.length !== want) {
    throw new Error(
      `The Phase-1 baseline of "${setup.variant}" has ${recs.length} of the ${want} samples Phase 2 needs ` +
        `(${setup.problems.length} problems × ${setup.samples}); finish \`bt generate\` first`,
    );
  }
  return recs;
}
