/**
 * What the Phase-2 steps share: the setup (variant, problems, samples, prompts from the *Phase-1* prompt
 * builder, the subsets), generation of one setting into `generations/<variant>/phase2_<setting>.jsonl`,
 * event rows with the gold aligned by example id, the Phase-1 baseline rows, and the section files the
 * report reads.
 *
 * Fixes of the reference's Phase 2 (docs/protocol.md §19): the same prompt builder and chat template as
 * Phase 1 (no dropped system prompt), the Phase-1 baseline store as the baseline (same problems, sample ids
 * and random streams, so every setting is a paired comparison), gold looked up by example id (not
 * `answers[i mod 120]`), every generation saved.
 *
 * @module
 */

import type { EventRow } from "../event_row.ts";
import { buildEventRows, eventOptionsFromConfig, type ProblemGold } from "../events.ts";
import type { Gsm8kProblem } from "../data.ts";
import { type GenerationRecord, readStore, timingsPathFor } from "../../../lib/generate/records.ts";
import { generateToStore, type PromptRecordInput } from "../../../lib/generate/run_generation.ts";
import type { Intervention } from "../../../lib/engine/hooks.ts";
import { type ComponentSubset, configSubsets, deriveSubsets, type LayerLists } from "../phase2/subsets.ts";
import { buildPrompt, findVariant, reasoningCloseTag } from "../prompts.ts";
import { artifactPath, writeArtifact } from "../run.ts";
import {
  defaultAnalysisVariant,
  ensureModel,
  ensureTokenizer,
  generationFile,
  generationSettings,
  readGenerations,
  readProblems,
  type StepContext,
} from "./context.ts";

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

async function readJson<T>(ctx: StepContext, rel: string, producer: string): Promise<T> {
  const path = artifactPath(ctx.run, rel);
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as Error).message}; run ${producer} first`, { cause: e });
  }
}

/** The scan's selection and random draws (`analysis/selected_layers.json`, `random_ablation_specs.json`). */
export async function readSelection(
  ctx: StepContext,
): Promise<{ selected: LayerLists; draws: readonly LayerLists[] }> {
  const selected = await readJson<LayerLists>(ctx, "analysis/selected_layers.json", "ablation-scan");
  const specs = await readJson<{ draws: LayerLists[] }>(
    ctx,
    "analysis/random_ablation_specs.json",
    "ablation-scan",
  );
  return { selected, draws: specs.draws };
}

/** The Phase-2 variant: `phase2.subset_sweep.variant` when the run has it, else the analysis variant. */
export function phase2Variant(ctx: StepContext, preferred?: string): string {
  const names = ctx.config.prompting.formatting_variants.map((v) => v.name);
  const p = preferred ?? ctx.config.phase2.subset_sweep.variant;
  return names.includes(p) ? p : defaultAnalysisVariant(ctx.config);
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
export async function phase2Setup(ctx: StepContext, options: Phase2SetupOptions = {}): Promise<Phase2Setup> {
  const cfg = ctx.config;
  const { model, tokenizer } = await ensureModel(ctx);
  const variant = phase2Variant(ctx);
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
    const { selected, draws } = await readSelection(ctx);
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
    ablationScale: cfg.ablation_generation.mode === "zero" ? 0 : cfg.ablation_generation.scale,
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
  ctx: StepContext,
  setup: Phase2Setup,
  condition: string,
  interventions: readonly Intervention[],
  force = false,
): Promise<GenerationRecord[]> {
  const loaded = await ensureModel(ctx);
  const path = artifactPath(ctx.run, generationFile(setup.variant, condition));
  await Deno.mkdir(artifactPath(ctx.run, `generations/${setup.variant}`), { recursive: true });
  if (force) { for (const p of [path, timingsPathFor(path)]) await Deno.remove(p).catch(() => {}); }
  await generateToStore(loaded.model, setup.prompts, {
    ...generationSettings(ctx, loaded),
    path,
    variant: setup.variant,
    condition,
    samplesPerPrompt: setup.samples,
    interventions,
  });
  return inSetup(setup, await readStore(path, timingsPathFor(path)));
}

/** Event rows of records (strict/relaxed detection, answers scored against the gold of *their* example). */
export async function eventRowsOf(
  ctx: StepContext,
  records: readonly GenerationRecord[],
): Promise<EventRow[]> {
  const tokenizer = await ensureTokenizer(ctx);
  const problems = new Map<number, ProblemGold>((await readProblems(ctx.run)).map((p) => [p.id, p]));
  const cfg = ctx.config;
  const closeTag = (variant: string) => {
    try {
      return reasoningCloseTag(findVariant(cfg.prompting, variant));
    } catch {
      return "</think>";
    }
  };
  return buildEventRows(records, problems, tokenizer, eventOptionsFromConfig(cfg, closeTag)).rows;
}

/**
 * The Phase-1 baseline records of the setup (the scale-1.0 / coefficient-0 row of every sweep).
 *
 * @throws {Error} when the Phase-1 baseline lacks some (example, sample) of the setup.
 */
export async function baselineRecords(ctx: StepContext, setup: Phase2Setup): Promise<GenerationRecord[]> {
  const recs = inSetup(setup, await readGenerations(ctx.run, setup.variant, "baseline"));
  const want = setup.problems.length * setup.samples;
  if (recs.length !== want) {
    throw new Error(
      `The Phase-1 baseline of "${setup.variant}" has ${recs.length} of the ${want} samples Phase 2 needs ` +
        `(${setup.problems.length} problems × ${setup.samples}); finish \`bt generate\` first`,
    );
  }
  return recs;
}

/** A report section written by a Phase-2 step (`analysis/phase2_<name>.json` holds it with the data). */
export interface Phase2Section {
  readonly title: string;
  readonly markdown: string;
}

/** Whether every run-relative path exists. */
export async function allExist(ctx: StepContext, rels: readonly string[]): Promise<boolean> {
  for (const rel of rels) {
    try {
      await Deno.stat(artifactPath(ctx.run, rel));
    } catch {
      return false;
    }
  }
  return true;
}

/** Read a step's JSON result back (reuse). */
export async function readResult<T>(ctx: StepContext, rel: string): Promise<T> {
  return await readJson<T>(ctx, rel, "the Phase-2 step");
}

/** Write an analysis artifact, replacing an older one. */
export async function writeOutput(ctx: StepContext, rel: string, data: string | object): Promise<string> {
  return await writeArtifact(ctx.run, rel, data, { overwrite: true });
}

/** The statistics options of the config (bootstrap, seed, level). */
export function phase2Stats(ctx: StepContext): { bootstrap: number; seed: number; level: number } {
  const s = ctx.config.stats;
  return { bootstrap: s.bootstrap_samples, seed: s.seed, level: s.ci_level };
}
