/**
 * What every pipeline step receives: the config, the run folder, and (loaded on first use) the model
 * and tokenizer; plus small helpers the steps share (problems, generation stores, traces).
 *
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { loadConfig } from "../config.ts";
import { parseGsm8kGold } from "../answers.ts";
import type { Gsm8kProblem } from "../data.ts";
import { type GenerationRecord, readStore, timingsPathFor } from "../../../lib/generate/records.ts";
import { type LoadedModel, loadModel, resolveModelSource } from "../../../lib/engine/load.ts";
import type { Tokenizer } from "../../../lib/engine/tokenizer.ts";
import { loadTokenizer } from "../../../lib/engine/tokenizer.ts";
import type { ProgressMode } from "../../../lib/util/progress.ts";
import { artifactPath, openRun, type Run, updateMeta } from "../run.ts";
import type { BacktrackEvent, Trace } from "../event_selection.ts";
import type { EventRow } from "../event_row.ts";

/** The state a step works on. Steps fill `model`/`tokenizer` on first use so later steps reuse them. */
export interface StepContext {
  readonly config: Config;
  /** The run folder (set by `initRun` or {@linkcode openContext}). */
  run: Run;
  /** The loaded model (and its tokenizer), once a step needed it. */
  model?: LoadedModel;
  /** The tokenizer alone, when a step needed only that. */
  tokenizer?: Tokenizer;
  /** The config path as given (recorded in meta.json). */
  readonly configPath?: string;
  /** Progress display of long loops. Default `"auto"`. */
  readonly progress?: "auto" | ProgressMode;
  /** One-line status messages (default `console.error`). */
  readonly log?: (line: string) => void;
}

/** Options every step accepts. */
export interface StepOptions {
  /** Replace finished artifacts (the CLI's `--force`). Default false: refuse. */
  readonly force?: boolean;
}

/** Log a line through the context's logger. */
export function say(ctx: Pick<StepContext, "log">, line: string): void {
  (ctx.log ?? ((l: string) => console.error(l)))(line);
}

/**
 * A context for an existing run: load the config (path or object) and open the run folder.
 *
 * @param config A config or the path of a YAML config.
 * @param options `runId` (default: resolution of docs/protocol.md §2), `root` (runs root).
 */
export async function openContext(
  config: Config | string,
  options: {
    readonly runId?: string | null;
    readonly root?: string;
    readonly progress?: "auto" | ProgressMode;
  } = {},
): Promise<StepContext> {
  const cfg = typeof config === "string" ? await loadConfig(config) : config;
  const run = await openRun(cfg, options.runId, options.root ? { root: options.root } : {});
  return {
    config: cfg,
    run,
    ...(typeof config === "string" ? { configPath: config } : {}),
    ...(options.progress ? { progress: options.progress } : {}),
  };
}

function organismSource(config: Config): { organism: Record<string, unknown> } | string {
  return config.model.source === "organism"
    ? { organism: { ...config.model.organism } }
    : config.model.source;
}

/**
 * The model and tokenizer, loading them on first use and recording provenance (model id, revision,
 * commit, weight hashes, execution provider and why) in meta.json.
 */
export async function ensureModel(ctx: StepContext): Promise<LoadedModel> {
  if (ctx.model) return ctx.model;
  const cfg = ctx.config;
  say(ctx, `loading model ${cfg.model.source} (device ${cfg.model.device}) …`);
  const loaded = await loadModel(organismSource(cfg), {
    device: cfg.model.device,
    ...(cfg.model.revision ? { revision: cfg.model.revision } : {}),
  });
  ctx.model = loaded;
  ctx.tokenizer = loaded.tokenizer;
  const dev = loaded.model.device;
  say(ctx, `model on ${dev.used}: ${dev.reason}`);
  let ortVersion: string | undefined;
  try {
    const ort = await import("onnxruntime-node");
    ortVersion = (ort.env.versions as Record<string, string | undefined>).node ??
      (ort.env.versions as Record<string, string | undefined>).common;
  } catch {
    // version unavailable
  }
  await updateMeta(ctx.run, {
    model: {
      model_id: loaded.modelId,
      revision: loaded.revision ?? null,
      commit: loaded.commit ?? null,
      source: loaded.source,
      dir: loaded.dir,
      weight_hashes: loaded.weightHashes ?? null,
      ...(loaded.organism ? { organism: loaded.organism } : {}),
      num_layers: loaded.model.config.numLayers,
      vocab_size: loaded.model.config.vocabSize,
    },
    execution_provider: { requested: dev.requested, used: dev.used, reason: dev.reason },
    ...(ortVersion ? { onnxruntime_runtime_version: ortVersion } : {}),
  });
  return loaded;
}

/** The tokenizer alone (no ONNX session), loading it on first use. */
export async function ensureTokenizer(ctx: StepContext): Promise<Tokenizer> {
  if (ctx.model) return ctx.model.tokenizer;
  if (ctx.tokenizer) return ctx.tokenizer;
  const cfg = ctx.config;
  const resolved = await resolveModelSource(organismSource(cfg), {
    ...(cfg.model.revision ? { revision: cfg.model.revision } : {}),
  });
  ctx.tokenizer = await loadTokenizer(resolved.dir);
  return ctx.tokenizer;
}

/** Release the model's sessions (end of a pipeline). */
export async function disposeContext(ctx: StepContext): Promise<void> {
  await ctx.model?.model.dispose();
  delete ctx.model;
}

/** Path of the run's problem file. */
export const PROBLEMS_FILE = "data/problems.jsonl";

/**
 * The problems of the run (`data/problems.jsonl`, written by prepare-data).
 *
 * @throws {Error} naming the file (and line) when it is missing or bad.
 */
export async function readProblems(run: Run): Promise<Gsm8kProblem[]> {
  const path = artifactPath(run, PROBLEMS_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as Error).message}; run prepare-data first`, { cause: e });
  }
  return text.split("\n").filter((l) => l.trim() !== "").map((l, i) => {
    try {
      const o = JSON.parse(l);
      return { ...o, gold: typeof o.gold === "number" ? o.gold : parseGsm8kGold(o.answer) } as Gsm8kProblem;
    } catch (e) {
      throw new Error(`${path}:${i + 1}: ${(e as Error).message}; re-run prepare-data with --force`, {
        cause: e,
      });
    }
  });
}

/** Condition names in the reference's order; random draws follow as `random_ablation_<k>`. */
export const CONDITION_ORDER = ["baseline", "targeted_ablation", "random_ablation"] as const;

/** Relative path of a generation store. */
export function generationFile(variant: string, condition: string): string {
  return `generations/${variant}/${condition}.jsonl`;
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
 */
export async function listGenerationStores(
  ctx: Pick<StepContext, "config" | "run">,
): Promise<{ variant: string; condition: string; path: string }[]> {
  const root = join(ctx.run.dir, "generations");
  const found: { variant: string; condition: string; path: string }[] = [];
  try {
    for await (const v of Deno.readDir(root)) {
      if (!v.isDirectory) continue;
      for await (const f of Deno.readDir(join(root, v.name))) {
        if (!f.isFile || !f.name.endsWith(".jsonl") || f.name.endsWith(".timings.jsonl")) continue;
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

/** Read one generation store of the run (records in file order). */
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
  return await readStore(path, timingsPathFor(path));
}

/** The full token sequence of a record: prompt ids (stored) then completion ids. */
export function traceOf(r: GenerationRecord): Trace {
  if (!r.prompt_token_ids) {
    throw new Error(
      `record ${r.variant}/${r.condition} example ${r.example_id} sample ${r.sample_id} has no prompt_token_ids; ` +
        `regenerate with storePromptTokenIds on`,
    );
  }
  return {
    exampleId: Number(r.example_id),
    sampleId: r.sample_id,
    tokenIds: [...r.prompt_token_ids, ...r.completion_token_ids],
    promptTokens: r.prompt_tokens,
  };
}

/**
 * Backtracking events and the non-backtracking pool of one (variant, condition), joined from the event
 * rows (detection) and the generation records (token ids), in file order.
 */
export function eventsAndPool(
  rows: readonly EventRow[],
  records: readonly GenerationRecord[],
): { events: BacktrackEvent[]; pool: Trace[] } {
  const byKey = new Map(records.map((r) => [`${r.example_id}|${r.sample_id}`, r]));
  const events: BacktrackEvent[] = [];
  const pool: Trace[] = [];
  for (const row of rows) {
    const rec = byKey.get(`${row.example_id}|${row.sample_id}`);
    if (!rec) continue;
    const trace = traceOf(rec);
    if (row.has_backtracking_strict && row.onset_token_id >= 0) {
      events.push({
        ...trace,
        predPos: row.pred_pos_in_full,
        onsetTokenId: row.onset_token_id,
        trigger: row.onset_phrase,
      });
    } else if (!row.has_backtracking_strict) pool.push(trace);
  }
  return { events, pool };
}

/** The variant the analysis steps default to: `phase2.subset_sweep.variant` if configured, else the first. */
export function defaultAnalysisVariant(config: Config): string {
  const names = config.prompting.formatting_variants.map((v) => v.name);
  if (names.length === 0) {
    throw new Error("prompting.formatting_variants is empty; add at least one variant to the config");
  }
  return names.includes("baseline_think_newline") ? "baseline_think_newline" : names[0]!;
}

/** Per-step record in meta.json. */
export async function recordStep(
  ctx: StepContext,
  step: string,
  info: Record<string, unknown>,
): Promise<void> {
  await updateMeta(ctx.run, { steps: { [step]: { ...info, finished_at: new Date().toISOString() } } });
}

/**
 * The generation settings every generating step shares, from the config and the loaded model: token
 * budget, sampling, EOS ids, seed, intervention scope, batch width, decoding, provenance and progress.
 */
export function generationSettings(ctx: StepContext, loaded: LoadedModel) {
  const g = ctx.config.generation;
  const { tokenizer } = loaded;
  return {
    maxNewTokens: g.max_new_tokens,
    sampling: {
      temperature: g.temperature,
      topP: g.top_p,
      ...(g.top_k > 0 ? { topK: g.top_k } : {}),
      greedy: !g.do_sample,
    },
    eosTokenIds: tokenizer.eosTokenIds,
    seed: ctx.config.run.seed,
    scope: g.intervention_scope,
    batchSize: g.batch_size,
    decodeCompletion: (ids: readonly number[]) => tokenizer.decode(ids, { skipSpecialTokens: true }),
    modelId: loaded.modelId,
    progress: ctx.progress ?? "auto",
  } as const;
}
