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
 * The config defaults to `configs/organism.yaml` (the embedded default). The run id resolves as in the
 * reference: `--run-id`, then `run.run_id` in the config, then `runs/.current_run_id`.
 *
 * @module
 */

import { parseArgs } from "node:util";
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
import { UsageError } from "./util.ts";
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
  readonly flags: readonly ("variant" | "condition" | "shard")[];
  readonly run: (f: Flags) => Promise<unknown>;
};

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
    flags: [],
    run: async (f) =>
      await initRun({ config: await loadConfig(f.config), configPath: f.config }, {
        ...(f.runId ? { runId: f.runId } : {}),
        force: f.force,
      }),
  },
  "prepare-data": { flags: [], run: (f) => withContext(f, (ctx) => prepareData(ctx, { force: f.force })) },
  generate: {
    flags: ["variant", "condition", "shard"],
    run: (f) => {
      const shard = shardOf(f);
      announce("generate", shard);
      return withContext(
        f,
        (ctx) => generate(ctx, { condition: f.condition ?? "baseline", ...v(f), force: f.force, shard }),
      );
    },
  },
  "detect-events": { flags: [], run: (f) => withContext(f, (ctx) => detectEvents(ctx, { force: f.force })) },
  "logit-lens": {
    flags: ["variant"],
    run: (f) => withContext(f, (ctx) => logitLens(ctx, { ...v(f), force: f.force })),
  },
  "ablation-scan": {
    flags: ["variant", "shard"],
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
    flags: ["variant"],
    run: (f) => withContext(f, (ctx) => headScan(ctx, { ...v(f), force: f.force })),
  },
  "compare-conditions": {
    flags: ["variant"],
    run: (f) => withContext(f, (ctx) => compareConditions(ctx, { ...v(f), force: f.force })),
  },
  "protocol-validation": {
    flags: [],
    run: (f) => withContext(f, (ctx) => protocolValidation(ctx, { force: f.force })),
  },
  "formatting-sweep": {
    flags: [],
    run: (f) => withContext(f, (ctx) => formattingSweep(ctx, { force: f.force })),
  },
  "make-report": { flags: [], run: (f) => withContext(f, (ctx) => makeReport(ctx, { force: f.force })) },
  "phase2-sweeps": {
    flags: ["shard"],
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
    flags: [],
    run: (f) => withContext(f, (ctx) => phase2Continuation(ctx, { force: f.force })),
  },
  "phase2-steering": {
    flags: ["shard"],
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
    flags: [],
    run: (f) => withContext(f, (ctx) => phase2Patching(ctx, { force: f.force })),
  },
  phase2: { flags: [], run: (f) => withContext(f, (ctx) => runPhase2(ctx, { force: f.force })) },
  merge: {
    flags: [],
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
    flags: [],
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

function usage(step: string, spec: Spec): string {
  const extra = spec.flags.map((x) =>
    x === "variant" ? " [--variant V]" : x === "condition" ? " [--condition C]" : " [--shard K/N|none]"
  ).join("");
  return `usage: bt ${step} [--config/-c CONFIG] [--run-id ID]${extra} [--force]`;
}

/**
 * A subcommand function for one step, for the CLI's COMMANDS table.
 *
 * @param step A key of {@linkcode STEP_COMMANDS}.
 */
export function stepCommand(step: string): (args: string[]) => Promise<number> {
  const spec = STEP_COMMANDS[step];
  if (!spec) throw new RangeError(`Unknown step "${step}"; steps: ${Object.keys(STEP_COMMANDS).join(", ")}`);
  return async (args: string[]) => {
    const { values, positionals } = parseArgs({
      args,
      options: {
        config: { type: "string", short: "c" },
        "run-id": { type: "string" },
        variant: { type: "string" },
        condition: { type: "string" },
        shard: { type: "string" },
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: true,
    });
    if (values.help) {
      console.log(usage(step, spec));
      return 0;
    }
    if (positionals.length > 0) {
      throw new UsageError(`unexpected argument "${positionals[0]}"\n${usage(step, spec)}`);
    }
    for (const flag of ["variant", "condition", "shard"] as const) {
      if (values[flag] !== undefined && !spec.flags.includes(flag)) {
        throw new UsageError(`--${flag} does not apply to ${step}\n${usage(step, spec)}`);
      }
    }
    await spec.run({
      config: values.config ?? DEFAULT_CONFIG,
      runId: values["run-id"],
      variant: values.variant,
      condition: values.condition,
      force: values.force ?? false,
      shard: values.shard,
    });
    return 0;
  };
}
