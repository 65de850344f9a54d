/**
 * The experiment's side of the exploration notebook (`notebooks/explore.ipynb`): sample one trace of one
 * question with the config's prompt and sampling, and find its trigger onsets with the config's detection
 * rule, so the notebook can mark them and intervene around them. Everything else the notebook does goes
 * through the toolkit (`lib/mod.ts`).
 *
 * @module
 */

import type { Config } from "./config.ts";
import { detect, type DetectionResult, type TriggerMatch } from "./detect.ts";
import { buildPrompt } from "./prompts.ts";
import { defaultAnalysisVariant, detectionOptions, samplingOptions } from "./settings.ts";
import { generate } from "../../lib/generate/generate.ts";
import type { Intervention } from "../../lib/engine/hooks.ts";
import type { LoadedModel } from "../../lib/engine/load.ts";

/** One sampled trace: prompt and completion ids, per-token texts, and its trigger matches. */
export interface ExploreTrace {
  /** Prompt ids (BOS included), then completion ids: the full sequence is `[...promptIds, ...completionIds]`. */
  readonly promptIds: readonly number[];
  readonly completionIds: readonly number[];
  /** Decoded text of each completion token (their concatenation is the completion text). */
  readonly tokenTexts: readonly string[];
  /** The sample id whose random stream produced it (same id + seed = same stream). */
  readonly sampleId: number;
  readonly finishReason: "eos" | "stop" | "length";
  /** Detection under the config's rule: `onset` is the first trigger, `strict.matches` every strict one. */
  readonly detection: DetectionResult;
  /** Every strict-list match (the onsets to mark), in text order. */
  readonly matches: readonly TriggerMatch[];
}

/** Options of {@linkcode sampleTrace}. */
export interface SampleTraceOptions {
  /** Prompt variant (default: the config's analysis variant). */
  readonly variant?: string;
  /** Sample ids tried in order until one has a trigger (default `[0]`: just sample 0). */
  readonly sampleIds?: readonly number[];
  /** Interventions during generation (scope: generated tokens only). */
  readonly interventions?: readonly Intervention[];
  /** Example id keying the random streams with the sample id (default 0; the pipeline uses the problem id). */
  readonly exampleId?: number;
  /** Token budget (default `generation.max_new_tokens`). */
  readonly maxNewTokens?: number;
}

/**
 * Sample a trace of `question` with the config's prompt, sampling and seed (per-sample random streams
 * keyed by (seed, example id, sample id) as the pipeline keys them), and detect its triggers. With
 * several `sampleIds`, the first trace with a trigger is returned (else the last one).
 *
 * @param config The experiment config (prompting, generation, detection).
 * @param loaded The loaded model and tokenizer.
 * @param question The problem text.
 * @throws {RangeError} for an unknown variant or an empty `sampleIds`.
 */
export async function sampleTrace(
  config: Config,
  loaded: Pick<LoadedModel, "model" | "tokenizer">,
  question: string,
  options: SampleTraceOptions = {},
): Promise<ExploreTrace> {
  const ids = options.sampleIds ?? [0];
  if (ids.length === 0) throw new RangeError("sampleTrace: sampleIds is empty");
  const variant = options.variant ?? defaultAnalysisVariant(config);
  const { tokenizer, model } = loaded;
  const prompt = buildPrompt(tokenizer, config.prompting, question, variant);
  const det = detectionOptions(config);
  let last: ExploreTrace | undefined;
  for (const sampleId of ids) {
    const [sample] = await generate(model, [{ id: options.exampleId ?? 0, tokenIds: prompt.tokenIds }], {
      samplesPerPrompt: sampleId + 1,
      maxNewTokens: options.maxNewTokens ?? config.generation.max_new_tokens,
      sampling: samplingOptions(config),
      eosTokenIds: tokenizer.eosTokenIds,
      seed: config.run.seed,
      skip: (_p, s) => s !== sampleId, // only this sample's stream
      interventions: options.interventions ?? [],
      ...(options.interventions?.length ? { scope: "generated_only" as const } : {}),
    });
    const completionIds = sample!.tokenIds;
    const tokenTexts = tokenizer.decodeEach(completionIds);
    const detection = detect(
      { tokenTexts, tokenIds: completionIds, promptTokens: prompt.tokenIds.length },
      {
        rule: det.rule,
        triggersStrict: det.triggersStrict,
        triggersRelaxed: det.triggersRelaxed ?? det.triggersStrict,
        thinkClose: det.thinkClose?.(variant) ?? "</think>",
      },
    );
    last = {
      promptIds: prompt.tokenIds,
      completionIds,
      tokenTexts,
      sampleId,
      finishReason: sample!.finishReason,
      detection,
      matches: detection.strict.matches,
    };
    if (detection.onset) return last;
  }
  return last!;
}
