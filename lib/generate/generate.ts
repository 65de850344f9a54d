/**
 * Batched sampling with hooks: N samples per prompt, left-padded batches with a KV cache, rows that
 * finish leave the batch and queued work takes their place (continuous batching).
 *
 * Reproducibility: every (example, sample) pair draws from its own random stream
 * (`sampleStream(seed, exampleId, sampleId, ...streamKeys)`), so a sample's tokens do not depend on batch
 * size, batch composition or where a run resumed. Conditions share streams by default (common random
 * numbers), which makes paired comparisons between conditions less noisy.
 *
 * Intervention scope (where the interventions apply during generation):
 * - `all_positions`: the prompt and every generated token;
 * - `generated_only`: every position whose output is a generated token, i.e. from the last prompt
 *   position on, so the first generated token is produced under the intervention too;
 * - `decode_only`: the reference's behaviour: KV-cached decode steps only, so the prompt and the first
 *   generated token are clean.
 *
 * @module
 */

import type { ForwardResult, HookedModel } from "../engine/hooked_model.ts";
import { type Intervention, parseHookName, type Positions } from "../engine/hooks.ts";
import { type AnyKVCache, joinCaches, releaseCache, selectCacheRows } from "../engine/ort/native_cache.ts";
import { deriveStreamSeed, type Rng, sampleStream, type StreamKey } from "./rng.ts";
import { sampleToken, type SamplingParams } from "./sampling.ts";

/** Where interventions apply during generation. */
export type GenerationScope = "all_positions" | "generated_only" | "decode_only";

/** One prompt to sample from. */
export interface PromptInput {
  /** The example's id (keys the random stream together with the sample id). */
  readonly id: number | string;
  /** Prompt token ids, BOS included when the model expects one. */
  readonly tokenIds: readonly number[];
}

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Default 1. */
  readonly samplesPerPrompt?: number;
  readonly maxNewTokens: number;
  readonly sampling: SamplingParams;
  /** Generation ends after one of these ids (the id is kept in the output). */
  readonly eosTokenIds: readonly number[];
  /** Generation ends once the decoded completion contains one of these; needs `decode`. */
  readonly stopStrings?: readonly string[];
  /** Decoder used for stop strings. */
  readonly decode?: (ids: readonly number[]) => string;
  /** Base seed of every sample's stream. */
  readonly seed: number;
  /** Extra stream keys (e.g. a variant name) appended after (example id, sample id). */
  readonly streamKeys?: readonly StreamKey[];
  /** Interventions without `positions`: where they apply is given by `scope`. */
  readonly interventions?: readonly Intervention[];
  /** Default "generated_only" when there are interventions. */
  readonly scope?: GenerationScope;
  /** Rows decoded together. Default 16. */
  readonly batchSize?: number;
  /** Skip (prompt index, sample id) pairs that are already done (resume). */
  readonly skip?: (promptIndex: number, sampleId: number) => boolean;
  /** Called as each sample finishes (in completion order). Awaited. */
  readonly onSample?: (sample: GeneratedSample) => void | Promise<void>;
  /** Called after every decode step with the number of new tokens in it. */
  readonly onStep?: (tokens: number) => void;
}

/** A finished sample. */
export interface GeneratedSample {
  readonly promptIndex: number;
  readonly exampleId: number | string;
  readonly sampleId: number;
  /** Generated ids, the final EOS included when there was one. */
  readonly tokenIds: number[];
  readonly finishReason: "eos" | "stop" | "length";
  readonly stopString?: string;
  /** This sample's stream seed (decimal string of the 64-bit value). */
  readonly streamSeed: string;
  readonly durationMs: number;
}

interface Row {
  readonly promptIndex: number;
  readonly sampleId: number;
  readonly promptLength: number;
  readonly rng: Rng;
  readonly streamSeed: string;
  readonly tokens: number[];
  readonly startedAt: number;
}

/**
 * Check generation inputs before any work starts.
 * @throws {RangeError} naming the option at fault.
 */
export function validateGenerateInputs(
  model: HookedModel,
  prompts: readonly PromptInput[],
  options: GenerateOptions,
): void {
  if (prompts.length === 0) throw new RangeError("generate(): the prompt list is empty");
  prompts.forEach((p, i) => {
    if (p.tokenIds.length === 0) throw new RangeError(`generate(): prompt #${i} (id ${p.id}) has no tokens`);
  });
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens <= 0) {
    throw new RangeError(`generate(): maxNewTokens must be a positive integer, got ${options.maxNewTokens}`);
  }
  const n = options.samplesPerPrompt ?? 1;
  if (!Number.isInteger(n) || n <= 0) {
    throw new RangeError(`generate(): samplesPerPrompt must be >= 1, got ${n}`);
  }
  const bs = options.batchSize ?? 16;
  if (!Number.isInteger(bs) || bs <= 0) throw new RangeError(`generate(): batchSize must be >= 1, got ${bs}`);
  if (!options.sampling.greedy && !(options.sampling.temperature > 0)) {
    throw new RangeError(
      `generate(): temperature must be > 0 (or greedy), got ${options.sampling.temperature}`,
    );
  }
  if (options.stopStrings?.length && !options.decode) {
    throw new RangeError("generate(): stopStrings need a decode function");
  }
  for (const iv of options.interventions ?? []) {
    parseHookName(iv.hook, model.config.numLayers);
    if (iv.positions !== undefined && iv.positions !== "all") {
      throw new RangeError(
        `generate(): intervention on "${iv.hook}" has explicit positions; during generation use \`scope\``,
      );
    }
  }
}

/**
 * Sample `samplesPerPrompt` completions for every prompt.
 * @returns the samples in (prompt, sample) order.
 * @throws {RangeError} on bad input, before any work starts.
 */
export async function generate(
  model: HookedModel,
  prompts: readonly PromptInput[],
  options: GenerateOptions,
): Promise<GeneratedSample[]> {
  validateGenerateInputs(model, prompts, options);
  const samplesPerPrompt = options.samplesPerPrompt ?? 1;
  const batchSize = options.batchSize ?? 16;
  const scope = options.scope ?? "generated_only";
  const eos = new Set(options.eosTokenIds);
  const stops = options.stopStrings ?? [];
  const maxStop = Math.max(0, ...stops.map((s) => s.length));

  const queue: { promptIndex: number; sampleId: number }[] = [];
  prompts.forEach((_, p) => {
    for (let s = 0; s < samplesPerPrompt; s++) {
      if (!options.skip?.(p, s)) queue.push({ promptIndex: p, sampleId: s });
    }
  });
  const results: GeneratedSample[] = [];

  const interventionsFor = (rows: readonly Row[]): Intervention[] => {
    if (!options.interventions?.length) return [];
    let positions: Positions;
    if (scope === "all_positions") positions = "all";
    else {
      const offset = scope === "generated_only" ? 1 : 0;
      positions = { from: rows.map((r) => r.promptLength - offset) };
    }
    return options.interventions.map((iv) => ({ ...iv, positions }));
  };

  // With top-k (or greedy) only the k best logits per row leave the engine: far less data per step.
  const k = options.sampling.greedy ? 1 : options.sampling.topK;
  const candidates = k && k > 0 ? Math.min(k, model.config.vocabSize) : undefined;

  let active: Row[] = [];
  // A native cache (runtime "capi") holds native memory: every cache replaced below is disposed at once
  // (after an exception, the finalizer releases the last one).
  let cache: AnyKVCache | undefined;

  /** Sample the next token of every row from its logits; returns indices of rows that finished. */
  const advance = async (rows: Row[], step: Pick<ForwardResult, "logits" | "topk">): Promise<Set<number>> => {
    const finished = new Set<number>();
    for (const [i, row] of rows.entries()) {
      const token = step.topk
        ? sampleFromCandidates(step.topk[i]![0]!, options.sampling, row.rng)
        : sampleToken(step.logits[i]![0]!, options.sampling, row.rng);
      row.tokens.push(token);
      let reason: GeneratedSample["finishReason"] | undefined;
      let stopString: string | undefined;
      if (eos.has(token)) reason = "eos";
      else if (stops.length) {
        // Decode only a tail long enough to contain any stop string (tokens are >= 1 char).
        const tail = options.decode!(row.tokens.slice(-(maxStop + 2)));
        stopString = stops.find((s) => tail.includes(s));
        if (stopString !== undefined) reason = "stop";
      }
      if (!reason && row.tokens.length >= options.maxNewTokens) reason = "length";
      if (reason) {
        finished.add(i);
        const sample: GeneratedSample = {
          promptIndex: row.promptIndex,
          exampleId: prompts[row.promptIndex]!.id,
          sampleId: row.sampleId,
          tokenIds: row.tokens,
          finishReason: reason,
          ...(stopString !== undefined ? { stopString } : {}),
          streamSeed: row.streamSeed,
          durationMs: performance.now() - row.startedAt,
        };
        results.push(sample);
        await options.onSample?.(sample);
      }
    }
    options.onStep?.(rows.length);
    return finished;
  };

  while (queue.length > 0 || active.length > 0) {
    // Refill when enough slots are free that a prefill is worth it (or when idle).
    const free = batchSize - active.length;
    if (queue.length > 0 && (active.length === 0 || free >= Math.max(1, Math.floor(batchSize / 4)))) {
      const jobs = queue.splice(0, free);
      // Prefill each distinct prompt once, then copy its cache row for every sample of it.
      const distinct = [...new Set(jobs.map((j) => j.promptIndex))];
      const newRows: Row[] = jobs.map((j) => {
        const key = [prompts[j.promptIndex]!.id, j.sampleId, ...(options.streamKeys ?? [])];
        return {
          promptIndex: j.promptIndex,
          sampleId: j.sampleId,
          promptLength: prompts[j.promptIndex]!.tokenIds.length,
          rng: sampleStream(options.seed, ...key),
          streamSeed: deriveStreamSeed(options.seed, ...key).toString(),
          tokens: [],
          startedAt: performance.now(),
        };
      });
      const prefillRows = distinct.map((p) => newRows.find((r) => r.promptIndex === p)!);
      const pre = await model.forward(distinct.map((p) => prompts[p]!.tokenIds), {
        returnCache: true,
        interventions: interventionsFor(prefillRows),
        ...(candidates ? { topK: candidates } : {}),
      });
      const rowOf = jobs.map((j) => distinct.indexOf(j.promptIndex));
      const expanded = await selectCacheRows(pre.cache!, rowOf);
      releaseCache(pre.cache, expanded);
      const finished = await advance(newRows, {
        logits: rowOf.map((r) => pre.logits[r] ?? []),
        ...(pre.topk ? { topk: rowOf.map((r) => pre.topk![r]!) } : {}),
      });
      const keep = newRows.map((_, i) => i).filter((i) => !finished.has(i));
      const kept = await selectCacheRows(expanded, keep);
      releaseCache(expanded, kept);
      const joined = cache ? await joinCaches(cache, kept) : kept;
      releaseCache(cache, joined);
      releaseCache(kept, joined);
      cache = joined;
      active = [...active, ...keep.map((i) => newRows[i]!)];
      if (active.length === 0) {
        cache.dispose();
        cache = undefined;
      }
      continue;
    }
    // One decode step for every active row.
    const step = await model.forward(active.map((r) => [r.tokens[r.tokens.length - 1]!]), {
      cache: cache!,
      returnCache: true,
      interventions: interventionsFor(active),
      ...(candidates ? { topK: candidates } : {}),
    });
    releaseCache(cache, step.cache);
    cache = step.cache!;
    const finished = await advance(active, step);
    if (finished.size > 0) {
      const keep = active.map((_, i) => i).filter((i) => !finished.has(i));
      active = keep.map((i) => active[i]!);
      const next = active.length ? await selectCacheRows(cache, keep) : undefined;
      releaseCache(cache, next);
      cache = next;
    }
  }
  return results.sort((a, b) => a.promptIndex - b.promptIndex || a.sampleId - b.sampleId);
}

/**
 * Sample from top-k candidates exactly as {@link sampleToken} would from the whole row with the same
 * `topK`: temperature is monotonic, so the kept set is the same; the candidates are put in id order so
 * the draw walks them in the same order. (Only logits tied with the k-th value could differ: HF keeps
 * all of them, the engine's TopK exactly k.)
 */
export function sampleFromCandidates(
  candidates: { readonly ids: Int32Array; readonly values: Float32Array },
  params: SamplingParams,
  rng: Rng,
): number {
  if (params.greedy) return candidates.ids[0]!;
  const order = Array.from(candidates.ids.keys()).sort((a, b) => candidates.ids[a]! - candidates.ids[b]!);
  const values = Float32Array.from(order, (i) => candidates.values[i]!);
  const pick = sampleToken(values, {
    temperature: params.temperature,
    ...(params.topP !== undefined ? { topP: params.topP } : {}),
  }, rng);
  return candidates.ids[order[pick]!]!;
}
