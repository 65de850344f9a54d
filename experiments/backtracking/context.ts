/**
 * The run context of the steps, kept small: a step takes the narrowest of these it needs.
 *
 * - {@linkcode RunContext}: the config and the run folder (plus optional logging and progress display);
 *   enough for the steps that only read and write run files (detect-events' tables, comparisons,
 *   formatting sweep, report).
 * - {@linkcode ModelContext}: a run context with a slot the model (or only its tokenizer) is loaded into on
 *   first use ({@linkcode ensureModel}, {@linkcode ensureTokenizer}), so later steps reuse it.
 * - {@linkcode StepContext}: what `initRun` / {@linkcode openContext} return and notebooks and the CLI pass
 *   around; it is a `ModelContext` (plus the config path), so it can be passed to every step.
 *
 * Artifacts are read and written through `artifacts/` (one module per artifact family), never through the
 * context; settings derived from the config are in `settings.ts`.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { loadConfig } from "./config.ts";
import { type LoadedModel, loadModel, resolveModelSource } from "../../lib/engine/load.ts";
import type { Tokenizer } from "../../lib/engine/tokenizer.ts";
import { loadTokenizer } from "../../lib/engine/tokenizer.ts";
import type { ProgressMode } from "../../lib/util/progress.ts";
import { openRun, type Run, updateMeta } from "./run.ts";
import { acquireRunLock, type RunLock } from "../../lib/util/run_lock.ts";

/** The config and run folder a step works on, with optional logging and progress display. */
export interface RunContext {
  readonly config: Config;
  /** The run folder (set by `initRun` or {@linkcode openContext}). */
  readonly run: Run;
  /** Progress display of long loops. Default `"auto"`. */
  readonly progress?: "auto" | ProgressMode;
  /** One-line status messages (default `console.error`). */
  readonly log?: (line: string) => void;
}

/** A run context with the model slot: filled on first use so later steps reuse the loaded model. */
export interface ModelContext extends RunContext {
  /** The loaded model (and its tokenizer), once a step needed it. */
  model?: LoadedModel;
  /** The tokenizer alone, when a step needed only that. */
  tokenizer?: Tokenizer;
}

/** The context notebooks and the CLI hold: a model context plus the config path (recorded in meta.json). */
export interface StepContext extends ModelContext {
  /** The config path as given (recorded in meta.json). */
  readonly configPath?: string;
}

/** Options every step accepts. */
export interface StepOptions {
  /** Replace finished artifacts (the CLI's `--force`). Default false: refuse. */
  readonly force?: boolean;
}

/** Options of the analysis steps (logit-lens, ablation-scan, compare-conditions). */
export interface AnalysisStepOptions extends StepOptions {
  /** Variant whose baseline samples are analysed; default `baseline_think_newline` or the first. */
  readonly variant?: string;
}

/** Log a line through the context's logger. */
export function say(ctx: Pick<RunContext, "log">, line: string): void {
  (ctx.log ?? ((l: string) => console.error(l)))(line);
}

/**
 * A context for an existing run: load the config (path or object) and open the run folder.
 *
 * @param config A config or the path of a YAML config.
 * @param options `runId` (default: resolution of docs/protocol.md §2), `root` (runs root).
 */
/**
 * Take the run's exclusive lock for a step that writes it (re-entrant within a process; see
 * `lib/util/run_lock.ts`). Use as `await using _lock = await lockRun(ctx, "generate");`. With a shard,
 * take that shard's lock instead: the N shards of a run write at once, two processes of one shard cannot,
 * and shards and exclusive writers exclude each other.
 *
 * @throws {RunLockedError} naming the holder when another live process writes the run (or the shard).
 */
export async function lockRun(
  ctx: Pick<RunContext, "run" | "log">,
  step: string,
  shard?: { readonly index: number; readonly count: number },
): Promise<RunLock> {
  return await acquireRunLock(ctx.run.dir, { step, log: (l) => say(ctx, l), ...(shard ? { shard } : {}) });
}

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
export async function ensureModel(ctx: ModelContext): Promise<LoadedModel> {
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
export async function ensureTokenizer(ctx: ModelContext): Promise<Tokenizer> {
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
export async function disposeContext(ctx: ModelContext): Promise<void> {
  await ctx.model?.model.dispose();
  delete ctx.model;
}

/** Per-step record in meta.json (`steps.<step>`: the info and when it finished). */
export async function recordStep(run: Run, step: string, info: Record<string, unknown>): Promise<void> {
  await updateMeta(run, { steps: { [step]: { ...info, finished_at: new Date().toISOString() } } });
}
