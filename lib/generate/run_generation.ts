/**
 * Generation into a record store: each finished sample becomes one complete JSONL record, samples
 * already in the store are skipped (resume after a crash), and the file is finalised in canonical
 * order so an interrupted-and-resumed run ends byte-identical to an uninterrupted one.
 *
 * @module
 */

import type { HookedModel } from "../engine/hooked_model.ts";
import { generate, type GeneratedSample, type GenerateOptions, validateGenerateInputs } from "./generate.ts";
import { type GenerationRecord, openRecordStore } from "./records.ts";
import { createProgress, type ProgressMode } from "../util/progress.ts";

/** A prompt with its text, as recorded. */
export interface PromptRecordInput {
  readonly exampleId: number | string;
  readonly prompt: string;
  readonly tokenIds: readonly number[];
}

/** Options of {@link generateToStore}. */
export interface GenerateToStoreOptions extends Omit<GenerateOptions, "skip" | "onSample"> {
  /** The JSONL file (its folder must exist and be writable). */
  readonly path: string;
  readonly variant: string;
  readonly condition: string;
  /** Decodes completion ids to text (special tokens skipped). */
  readonly decodeCompletion: (ids: readonly number[]) => string;
  readonly modelId?: string;
  /** Called after each stored record (e.g. a progress bar). */
  readonly onRecord?: (record: GenerationRecord) => void;
  /** Keep prompt token ids in each record. Default true. */
  readonly storePromptTokenIds?: boolean;
  /** Progress display (samples, tokens/s, ETA): terminal, notebook cell or log lines. Default "auto". */
  readonly progress?: "auto" | ProgressMode;
  /**
   * Only these (prompt index, sample id) pairs belong to this store (a shard's keys, see `shards.ts`);
   * default all. A sample's tokens do not depend on which pairs are generated together.
   */
  readonly include?: (promptIndex: number, sampleId: number) => boolean;
}

/**
 * Generate every missing (example, sample) of `prompts` into the store at `options.path`.
 * @returns counts of samples generated now and already present.
 * @throws {RangeError} on bad input and an Error when the output folder is not writable, both before
 *   any model work starts.
 */
export async function generateToStore(
  model: HookedModel,
  prompts: readonly PromptRecordInput[],
  options: GenerateToStoreOptions,
): Promise<{ generated: number; resumed: number; path: string }> {
  const inputs = prompts.map((p) => ({ id: p.exampleId, tokenIds: p.tokenIds }));
  validateGenerateInputs(model, inputs, options);
  const store = await openRecordStore(options.path);
  const samples = options.samplesPerPrompt ?? 1;
  const key = (exampleId: number | string, sampleId: number) => ({
    variant: options.variant,
    condition: options.condition,
    example_id: exampleId,
    sample_id: sampleId,
  });
  const include = options.include ?? (() => true);
  let resumed = 0;
  let total = 0;
  prompts.forEach((p, i) => {
    for (let s = 0; s < samples; s++) {
      if (!include(i, s)) continue;
      total++;
      if (store.has(key(p.exampleId, s))) resumed++;
    }
  });
  let generated = 0;
  // A store that is already complete shows no progress bar (a re-run or a notebook reusing a finished step
  // would print "80/80 … 0 samples/s … done" for nothing); the caller's summary line says it was reused.
  const progress = total === resumed ? undefined : createProgress({
    total,
    initial: resumed,
    label: `generate ${options.variant}/${options.condition}`,
    unit: "samples",
    stream: options.progress ?? "auto",
  });
  const genParams = {
    temperature: options.sampling.temperature,
    ...(options.sampling.topP !== undefined ? { top_p: options.sampling.topP } : {}),
    ...(options.sampling.topK !== undefined ? { top_k: options.sampling.topK } : {}),
    max_new_tokens: options.maxNewTokens,
    do_sample: !options.sampling.greedy,
  };
  const interventions = (options.interventions ?? []).map((iv) =>
    iv.op === "add" ? { ...iv, vector: plainVectors(iv.vector) } : { ...iv }
  );
  try {
    await generate(model, inputs, {
      ...options,
      skip: (p, s) => !include(p, s) || store.has(key(prompts[p]!.exampleId, s)),
      onSample: async (sample: GeneratedSample) => {
        const p = prompts[sample.promptIndex]!;
        const record: GenerationRecord = {
          ...key(p.exampleId, sample.sampleId),
          prompt: p.prompt,
          prompt_tokens: p.tokenIds.length,
          ...(options.storePromptTokenIds === false ? {} : { prompt_token_ids: [...p.tokenIds] }),
          completion: options.decodeCompletion(sample.tokenIds),
          completion_token_ids: sample.tokenIds,
          completion_tokens: sample.tokenIds.length,
          finish_reason: sample.finishReason,
          ...(sample.stopString !== undefined ? { stop_string: sample.stopString } : {}),
          interventions,
          intervention_scope: interventions.length ? (options.scope ?? "generated_only") : "none",
          seed: options.seed,
          gen_params: { ...genParams, stream_seed: sample.streamSeed },
          timings: { started_at: new Date().toISOString(), duration_ms: Math.round(sample.durationMs) },
          ...(options.modelId ? { model_id: options.modelId } : {}),
        };
        await store.append(record);
        generated++;
        progress?.tick(1, { tokens: sample.tokenIds.length });
        options.onRecord?.(record);
      },
    });
    await store.finalize();
  } finally {
    await progress?.done();
    await store.close();
  }
  return { generated, resumed, path: options.path };
}

/** Vectors as plain arrays (records are JSON). */
function plainVectors(v: ArrayLike<number> | readonly ArrayLike<number>[]): number[] | number[][] {
  const perRow = v.length > 0 && typeof (v as ArrayLike<unknown>)[0] === "object";
  return perRow
    ? (v as readonly ArrayLike<number>[]).map((x) => Array.from(x))
    : Array.from(v as ArrayLike<number>);
}
