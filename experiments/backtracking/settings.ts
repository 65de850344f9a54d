/**
 * What a config means for the steps: settings derived from the config that several steps (and the
 * notebooks and the report) share, so each is computed in one place.
 *
 * @module
 */

import type { Config } from "./config.ts";
import type { LoadedModel } from "../../lib/engine/load.ts";
import type { ProgressMode } from "../../lib/util/progress.ts";
import type { Tokenizer } from "../../lib/engine/tokenizer.ts";
import { type EventOptions, eventOptionsFromConfig } from "./events.ts";
import { findVariant, reasoningCloseTag } from "./prompts.ts";

/** Statistics options of a config: bootstrap resamples, seed, CI level. */
export function statsOptions(config: Config): { bootstrap: number; seed: number; level: number } {
  return { bootstrap: config.stats.bootstrap_samples, seed: config.stats.seed, level: config.stats.ci_level };
}

/**
 * The variant the analysis steps default to: `baseline_think_newline` if configured, else the first.
 *
 * @throws {Error} when the config has no formatting variant.
 */
export function defaultAnalysisVariant(config: Config): string {
  const names = config.prompting.formatting_variants.map((v) => v.name);
  if (names.length === 0) {
    throw new Error("prompting.formatting_variants is empty; add at least one variant to the config");
  }
  return names.includes("baseline_think_newline") ? "baseline_think_newline" : names[0]!;
}

/** The Phase-2 variant: `preferred` (default `phase2.subset_sweep.variant`) when configured, else the analysis variant. */
export function phase2Variant(config: Config, preferred?: string): string {
  const names = config.prompting.formatting_variants.map((v) => v.name);
  const p = preferred ?? config.phase2.subset_sweep.variant;
  return names.includes(p) ? p : defaultAnalysisVariant(config);
}

/** How events are selected (`analysis.event_selection`): a seeded sample across problems, or file order. */
export function eventSelectionMode(config: Config): "random_across_problems" | "file_order" {
  return config.analysis.event_selection === "random" ? "random_across_problems" : "file_order";
}

/** The generation-time ablation scale: 0 for `ablation_generation.mode: zero`, else its `scale`. */
export function ablationScale(config: Config): number {
  return config.ablation_generation.mode === "zero" ? 0 : config.ablation_generation.scale;
}

/**
 * The token id of a reasoning close tag in a tokenizer: the tag's own vocabulary entry (R1: `</think>`
 * is the added token 151649), else the single token it encodes to; `undefined` when the tokenizer has no
 * such token (the reasoning end is then found by text).
 */
export function closeTagTokenId(tokenizer: Pick<Tokenizer, "tokenToId" | "encode">, tag: string) {
  const id = tokenizer.tokenToId(tag);
  if (id !== undefined) return id;
  const ids = tokenizer.encode(tag, { addSpecialTokens: false });
  return ids.length === 1 ? ids[0] : undefined;
}

/**
 * Detection and scoring options of a config: the reasoning close tag per variant (`</think>` for unknown
 * ones) and, with a tokenizer, that tag's token id (`thinkCloseTokenId`, docs/protocol.md §9), so the
 * reasoning ends at the tag *token* the model emitted and not at the tag written out in prose.
 *
 * @param config The run's config.
 * @param tokenizer The run's tokenizer; without one the reasoning end is found by text.
 */
export function detectionOptions(
  config: Config,
  tokenizer?: Pick<Tokenizer, "tokenToId" | "encode">,
): EventOptions {
  const closeTag = (variant: string) => {
    try {
      return reasoningCloseTag(findVariant(config.prompting, variant));
    } catch {
      return "</think>";
    }
  };
  if (!tokenizer) return eventOptionsFromConfig(config, closeTag);
  const ids = new Map<string, number | undefined>();
  const closeId = (variant: string) => {
    const tag = closeTag(variant);
    if (!ids.has(tag)) ids.set(tag, closeTagTokenId(tokenizer, tag));
    return ids.get(tag);
  };
  return eventOptionsFromConfig(config, closeTag, closeId);
}

/** The sampling settings of `generation` (temperature, top-p, top-k when > 0, greedy when not sampling). */
export function samplingOptions(config: Config) {
  const g = config.generation;
  return {
    temperature: g.temperature,
    topP: g.top_p,
    ...(g.top_k > 0 ? { topK: g.top_k } : {}),
    greedy: !g.do_sample,
  };
}

/**
 * The generation settings every generating step shares, from the config and the loaded model: token
 * budget, sampling, EOS ids, seed, intervention scope, batch width, decoding, provenance and progress.
 */
export function generationSettings(
  config: Config,
  loaded: LoadedModel,
  progress: "auto" | ProgressMode = "auto",
) {
  const g = config.generation;
  const { tokenizer } = loaded;
  return {
    maxNewTokens: g.max_new_tokens,
    sampling: samplingOptions(config),
    eosTokenIds: tokenizer.eosTokenIds,
    seed: config.run.seed,
    scope: g.intervention_scope,
    batchSize: g.batch_size,
    decodeCompletion: (ids: readonly number[]) => tokenizer.decode(ids, { skipSpecialTokens: true }),
    modelId: loaded.modelId,
    progress,
  } as const;
}

/** Whether the run's model has a known circuit to validate the selection protocols on (the organism). */
export function hasGroundTruth(cfg: Config): boolean {
  return cfg.model.source === "organism";
}
