/**
 * `deno task bt <step>`: the pipeline steps on the command line.
 *
 * ```
 * deno task bt init-run           [-c CONFIG] [--run-id ID] [--force]
 * deno task bt prepare-data       [-c CONFIG] [--run-id ID] [--force]
 * deno task bt generate           [-c CONFIG] [--run-id ID] [--condition baseline|targeted_ablation|random_ablation[_k]|reference_selection_ablation] [--variant V] [--shard K/N] [--force]
 * deno task bt detect-events      [-c CONFIG] [--run-id ID] [--force]
 * deno task bt logit-lens         [-c CONFIG] [--run-id ID] [--variant V] [--force]
 * deno task bt ablation-scan      [-c CONFIG] [--run-id ID] [--variant V] [--shard K/N] [--force]
 * deno task bt head-scan          [-c CONFIG] [--run-id ID] [--variant V] [--force]
 * deno task bt compare-conditions [-c CONFIG] [--run-id ID] [--variant V] [--force]
 * deno task bt protocol-validation [-c CONFIG] [--run-id ID] [--force]   (organism only)
 * deno task bt formatting-sweep   [-c CONFIG] [--run-id ID] [--force]
 * deno task bt make-report        [-c CONFIG] [--run-id ID] [--force]
 * deno task bt pipeline           [-c CONFIG] [--run-id ID] [--force]
 * deno task bt phase2-sweeps | phase2-continuation | phase2-steering | phase2-patching | phase2
 *                                 [-c CONFIG] [--run-id ID] [--force]   (sweeps, steering: [--shard K/N])
 * deno task bt merge              [-c CONFIG] [--run-id ID]
 * ```
 *
 * Shards (`generate`, `phase2-sweeps`, `phase2-steering`, `ablation-scan`): `--shard K/N` generates shard K
 * (0-based) of N of every store of the step (scans shard K of the scan's positions); without the flag the
 * shard comes from `BT_SHARD`, else from a SLURM job array (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`
 * of `SLURM_ARRAY_TASK_COUNT`), else from a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of `BT_SHARD_COUNT`); `--shard none` / `BT_SHARD=none`
 * forces an unsharded run (`lib/generate/shards.ts` `resolveShard`). `merge` merges every finished sharded
 * store of the run and names each shard that is missing, unfinished or still running (exit status 1); the
 * steps that read the stores merge them by themselves.
 *
 * Every step takes `--help` (its usage text, generated with the parser's option table by {@linkcode stepCli}).
 * The config defaults to `configs/organism.yaml` (the embedded default). The run id resolves as in the
 * reference: `--run-id`, then `run.run_id` in the config, then `runs/.current_run_id`.
 *
 * @module
 */

import { loadConfig } from "../config.ts";
import {
  ablationScan,
  compareConditions,
  detectEvents,
  disposeContext,
  formattingSweep,
  generate,
  headScan,
  initRun,
  logitLens,
  makeReport,
  openContext,
  phase2Continuation,
  phase2Patching,
  phase2Steering,
  phase2Sweeps,
  prepareData,
  protocolValidation,
  runPhase2,
  runPipeline,
  type StepContext,
} from "../steps/mod.ts";
import {
  type CliIO,
  type CliOption,
  type CliSpec,
  consoleIO,
  defineCli,
  parseOrHelp,
  UsageError,
} from "../../../lib/util/cli.ts";
import { resolveShard, shardLabel, type ShardSpec } from "../../../lib/generate/shards.ts";
import { mergeAllGenerationShards } from "../artifacts/generations.ts";
import { ablationScanShard, phase2SteeringShard, phase2SweepsShard } from "../steps/mod.ts";

/** The config used when `--config` is not given. */
export const DEFAULT_CONFIG = "configs/organism.yaml";

interface Flags {
  readonly config: string;
  readonly runId: string | undefined;
  readonly variant: string | undefined;
  readonly condition: string | undefined;
  readonly force: boolean;
  /** The `--shard` value as given (resolved with the environment by {@linkcode shardOf}). */
  readonly shard: string | undefined;
}

type Spec = {
  /** What the step does: one or two sentences, the first is its line in `bt --help`. */
  readonly summary: string;
  /** The options beyond `--config` and `--run-id` it accepts. */
  readonly flags: readonly ExtraFlag[];
  /** What `--run-id` defaults to, when not the existing run. */
  readonly runIdDefault?: string;
  /** What `--variant` defaults to. */
  readonly variantDefault?: string;
  readonly example: string;
  readonly run: (f: Flags) => Promise<unknown>;
};

type ExtraFlag = "force" | "variant" | "condition" | "shard";

const ANALYSIS_VARIANT = "the analysis variant (`baseline_think_newline` when configured, else the first)";

async function withContext<T>(f: Flags, body: (ctx: StepContext) => Promise<T>): Promise<T> {
  const ctx = await openContext(f.config, { runId: f.runId ?? null });
  try {
    return await body(ctx);
  } finally {
    await disposeContext(ctx);
  }
}

const v = (f: Flags) => (f.variant ? { variant: f.variant } : {});

/** The shard of a sharded step: `--shard`, else the environment (`resolveShard`). */
function shardOf(f: Flags): ShardSpec | undefined {
  try {
    return resolveShard(f.shard);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function announce(step: string, shard: ShardSpec | undefined): void {
  if (shard) console.error(`bt ${step}: shard ${shardLabel(shard)}`);
}

/** Step name → allowed extra flags and the action. */
export const STEP_COMMANDS: Readonly<Record<string, Spec>> = {
  "init-run": {
    summary:
      "Create a new run folder and make it the current run. Writes config_resolved.yaml and meta.json (docs/protocol.md §2).",
    flags: ["force"],
    example: "deno task bt init-run --run-id demo",
    runIdDefault: "a new id from the local time (YYYYMMDD_HHMMSS) unless the config sets run.run_id",
    run: async (f) =>
      await initRun({ config: await loadConfig(f.config), configPath: f.config }, {
        ...(f.runId ? { runId: f.runId } : {}),
        force: f.force,
      }),
  },
  "prepare-data": {
    summary:
      "Choose the run's problems. GSM8K, a local JSONL file, or synthetic problems for the organism, into data/problems.jsonl.",
    flags: ["force"],
    example: "deno task bt prepare-data",
    run: (f) => withContext(f, (ctx) => prepareData(ctx, { force: f.force })),
  },
  generate: {
    summary:
      "Sample completions under one condition. Into generations/<variant>/<condition>.jsonl; resumable (stored samples are skipped).",
    flags: ["force", "variant", "condition", "shard"],
    example: "deno task bt generate --condition targeted_ablation --shard 0/4",
    run: (f) => {
      const shard = shardOf(f);
      announce("generate", shard);
      return withContext(
        f,
        (ctx) => generate(ctx, { condition: f.condition ?? "baseline", ...v(f), force: f.force, shard }),
      );
    },
  },
  "detect-events": {
    summary:
      "Find backtracking events in every generation store. Writes the events table and the summary metrics to analysis/.",
    flags: ["force"],
    example: "deno task bt detect-events",
    run: (f) => withContext(f, (ctx) => detectEvents(ctx, { force: f.force })),
  },
  "logit-lens": {
    summary:
      "Logit lens at backtracking onsets vs matched controls. Per layer, with problem-clustered CIs (docs/protocol.md §11–12).",
    flags: ["force", "variant"],
    example: "deno task bt logit-lens --variant baseline_think_newline",
    run: (f) => withContext(f, (ctx) => logitLens(ctx, { ...v(f), force: f.force })),
  },
  "ablation-scan": {
    summary:
      "Ablate each layer's attention and MLP at the pre-onset position. Events vs matched controls; selects the layers ablated during generation (docs/protocol.md §13).",
    flags: ["force", "variant", "shard"],
    example: "deno task bt ablation-scan --shard 1/2",
    run: (f) => {
      const shard = shardOf(f);
      announce("ablation-scan", shard);
      return withContext(
        f,
        (ctx): Promise<unknown> =>
          shard ? ablationScanShard(ctx, shard, v(f)) : ablationScan(ctx, { ...v(f), force: f.force }),
      );
    },
  },
  "head-scan": {
    summary:
      "Find the attention heads that write the trigger. Direct logit attribution of every head, single-head ablation of the top heads, and what they attend to.",
    flags: ["force", "variant"],
    example: "deno task bt head-scan",
    run: (f) => withContext(f, (ctx) => headScan(ctx, { ...v(f), force: f.force })),
  },
  "compare-conditions": {
    summary:
      "Compare the baseline with the ablation conditions. For one variant: rates, paired differences with CIs, McNemar p-values.",
    flags: ["force", "variant"],
    example: "deno task bt compare-conditions",
    run: (f) => withContext(f, (ctx) => compareConditions(ctx, { ...v(f), force: f.force })),
  },
  "protocol-validation": {
    summary:
      "Score both layer selections against the planted circuit. The reference's and this project's selection (model organism only).",
    flags: ["force"],
    example: "deno task bt protocol-validation",
    run: (f) => withContext(f, (ctx) => protocolValidation(ctx, { force: f.force })),
  },
  "formatting-sweep": {
    summary:
      "Compare the prompt variants on their baseline samples. Paired with the first variant (samples share random streams).",
    flags: ["force"],
    example: "deno task bt formatting-sweep",
    run: (f) => withContext(f, (ctx) => formattingSweep(ctx, { force: f.force })),
  },
  "make-report": {
    summary:
      "Draw the figures and write report.md. SVG + PNG in the run's figures/ (copied to the project's figures/), from its analysis files.",
    flags: ["force"],
    example: "deno task bt make-report --run-id 20261130_021500",
    run: (f) => withContext(f, (ctx) => makeReport(ctx, { force: f.force })),
  },
  "phase2-sweeps": {
    summary:
      "Phase-2 subset and scale sweeps of ablations. Each setting is generated into its own store (docs/protocol.md §19).",
    flags: ["force", "shard"],
    example: "deno task bt phase2-sweeps --shard 0/2",
    run: (f) => {
      const shard = shardOf(f);
      announce("phase2-sweeps", shard);
      return withContext(
        f,
        (ctx): Promise<unknown> =>
          shard ? phase2SweepsShard(ctx, shard, { force: f.force }) : phase2Sweeps(ctx, { force: f.force }),
      );
    },
  },
  "phase2-continuation": {
    summary:
      "Phase-2 continuation ablation. The onset token's probability with component subsets scaled at the pre-onset position (docs/protocol.md §20).",
    flags: ["force"],
    example: "deno task bt phase2-continuation",
    run: (f) => withContext(f, (ctx) => phase2Continuation(ctx, { force: f.force })),
  },
  "phase2-steering": {
    summary:
      "Phase-2 steering along the backtracking direction. Dose-response over coefficients, compared with ablation.",
    flags: ["force", "shard"],
    example: "deno task bt phase2-steering",
    run: (f) => {
      const shard = shardOf(f);
      announce("phase2-steering", shard);
      return withContext(
        f,
        (ctx): Promise<unknown> =>
          shard
            ? phase2SteeringShard(ctx, shard, { force: f.force })
            : phase2Steering(ctx, { force: f.force }),
      );
    },
  },
  "phase2-patching": {
    summary:
      "Phase-2 activation patching. Every attention and MLP output at the pre-onset position, in both directions.",
    flags: ["force"],
    example: "deno task bt phase2-patching",
    run: (f) => withContext(f, (ctx) => phase2Patching(ctx, { force: f.force })),
  },
  phase2: {
    summary:
      "All of Phase 2 that the config enables. Sweeps, steering, continuation, patching, in that order, each reusing finished outputs.",
    flags: ["force"],
    example: "deno task bt phase2",
    run: (f) => withContext(f, (ctx) => runPhase2(ctx, { force: f.force })),
  },
  merge: {
    summary:
      "Merge the finished shards of the run's generation stores. Names each shard that is missing, unfinished or still running (exit status 1).",
    flags: [],
    example: "deno task bt merge --run-id 20261130_021500",
    run: (f) =>
      withContext(f, async (ctx) => {
        const res = await mergeAllGenerationShards(ctx);
        for (const r of res) {
          if (r.status === "present") console.error(`merge ${r.variant}/${r.condition}: merged already`);
          if (r.status === "failed") console.error(r.error!.message);
        }
        if (res.length === 0) console.error("merge: no sharded stores in this run");
        const failed = res.filter((r) => r.status === "failed");
        if (failed.length) {
          throw new MergeFailed(
            `${failed.length} of ${res.length} sharded store(s) cannot be merged (see above)`,
          );
        }
        return res;
      }),
  },
  pipeline: {
    summary:
      "The whole experiment, init-run to make-report: Phase 1, then Phase 2 when the config enables any of " +
      "phase2.subset_sweep, scale_sweep, continuation_ablation, steering or patching. Resumes an existing " +
      "run, reusing its finished steps.",
    flags: ["force"],
    example: "deno task bt pipeline -c configs/organism.yaml",
    runIdDefault: "run.run_id in the config, else a new id (YYYYMMDD_HHMMSS); an existing run is resumed",
    run: async (f) => {
      const r = await runPipeline(f.config, { ...(f.runId ? { runId: f.runId } : {}), force: f.force });
      for (const t of r.timings) console.error(`  ${t.step.padEnd(32)} ${t.seconds.toFixed(1)} s`);
      return r;
    },
  },
};

/** `bt merge` found shards it cannot merge (already printed). */
class MergeFailed extends Error {
  override name = "MergeFailed";
}

/** The options every step shares, and those some take (`Spec.flags`). */
const STEP_OPTIONS = {
  config: {
    type: "string",
    short: "c",
    arg: "FILE",
    help: "The experiment config (YAML).",
    default: `${DEFAULT_CONFIG} (the model organism, embedded)`,
  },
  "run-id": {
    type: "string",
    arg: "ID",
    help: "The run to work on (a folder under the config's run.output_dir, default runs/).",
    default: "run.run_id in the config, else the current run (<runs root>/.current_run_id)",
  },
  force: { type: "boolean", help: "Recompute outputs that are already finished instead of reusing them." },
  variant: {
    type: "string",
    arg: "NAME",
    help: "The prompt variant (a name in prompting.formatting_variants).",
  },
  condition: {
    type: "string",
    arg: "COND",
    help:
      "What to generate: baseline, targeted_ablation, random_ablation (every draw), random_ablation_<k> " +
      "(one draw) or reference_selection_ablation (organism).",
    default: "baseline",
  },
  shard: {
    type: "string",
    arg: "K/N|none",
    help: "Do shard K (0-based) of N of the step's work; `none` forces an unsharded run. Shards of a " +
      "run can run at once on several machines; `bt merge` (or the next step) merges them.",
    default: "from the environment, else unsharded",
    env: "BT_SHARD, else a SLURM job array (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of " +
      "SLURM_ARRAY_TASK_COUNT), else a Kubernetes Indexed Job (JOB_COMPLETION_INDEX of BT_SHARD_COUNT)",
  },
} as const satisfies Record<string, CliOption>;

/** Environment variables every step may read (model loading, caches, figures). */
export const STEP_ENVIRONMENT: Readonly<Record<string, string>> = {
  BT_CACHE_DIR:
    "Cache of built model organisms and exported ONNX graphs (default ~/.cache/backtracking-interp).",
  HF_HUB_OFFLINE: "1 = never contact the Hugging Face Hub; use the local cache only.",
  "HF_HUB_CACHE / HF_HOME": "Where hub downloads are cached (default ~/.cache/huggingface/hub).",
  BT_FONT_FILES: "':'-separated font files for the PNG figures (default DejaVu Sans from npm).",
  BT_DEBUG: "1 = print the stack trace of an error.",
};

/** The options of one step: the shared ones and its extra flags, in table order. */
function stepOptions(step: string, spec: Spec): Record<string, CliOption> {
  const options: Record<string, CliOption> = {};
  for (const [name, o] of Object.entries(STEP_OPTIONS)) {
    if (name === "config" || name === "run-id" || spec.flags.includes(name as ExtraFlag)) {
      options[name] = name === "run-id" && spec.runIdDefault
        ? { ...o, default: spec.runIdDefault }
        : name === "variant"
        ? {
          ...o,
          default: step === "generate"
            ? `every configured variant for baseline, ${ANALYSIS_VARIANT} for the ablations`
            : ANALYSIS_VARIANT,
        }
        : o;
    }
  }
  return options;
}

/**
 * The command-line description of a step: its option table (which the parser uses) and usage text.
 *
 * @param step A key of {@linkcode STEP_COMMANDS}.
 * @throws {RangeError} for an unknown step.
 */
export function stepCli(step: string): CliSpec {
  const spec = STEP_COMMANDS[step];
  if (!spec) throw new RangeError(`Unknown step "${step}"; steps: ${Object.keys(STEP_COMMANDS).join(", ")}`);
  const sharded = spec.flags.includes("shard");
  return defineCli({
    command: `deno task bt ${step}`,
    summary: spec.summary,
    options: stepOptions(step, spec),
    details: [
      "The run folder is <runs root>/<run id>/ (runs root: run.output_dir of the config, default runs/ " +
      "relative to the working directory). Exit status: 0 done, 1 the step failed, 2 bad usage.",
      ...(sharded
        ? [
          "Sharded: each shard writes its own part of every store; the steps that read the stores merge " +
          "finished shards by themselves.",
        ]
        : []),
    ],
    environment: STEP_ENVIRONMENT,
    examples: [spec.example],
    unknownHint: (name) => {
      if (!(name in STEP_OPTIONS)) return undefined;
      const takers = Object.entries(STEP_COMMANDS).filter(([, s]) => s.flags.includes(name as ExtraFlag))
        .map(([n]) => n);
      return `${step} takes no --${name}; it applies to ${takers.join(", ")}`;
    },
  });
}

/**
 * A subcommand function for one step, for the CLI's COMMANDS table.
 *
 * @param step A key of {@linkcode STEP_COMMANDS}.
 * @returns `(args, io) → exit status`; throws {@linkcode UsageError} on bad usage.
 * @throws {RangeError} for an unknown step.
 */
export function stepCommand(step: string): (args: string[], io?: CliIO) => Promise<number> {
  const cli = stepCli(step);
  const spec = STEP_COMMANDS[step]!;
  return async (args: string[], io: CliIO = consoleIO) => {
    const parsed = parseOrHelp(cli, args, io);
    if (parsed.help) return 0;
    const values = parsed.values as Record<string, string | boolean | undefined>;
    const str = (name: string) => values[name] as string | undefined;
    await spec.run({
      config: str("config") ?? DEFAULT_CONFIG,
      runId: str("run-id"),
      variant: str("variant"),
      condition: str("condition"),
      force: values.force === true,
      shard: str("shard"),
    });
    return 0;
  };
}
