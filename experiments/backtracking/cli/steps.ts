/**
 * `deno task bt <step>`: the pipeline steps on the command line.
 *
 * ```
 * deno task bt init-run           [-c CONFIG] [--run-id ID] [--force]
 * deno task bt prepare-data       [-c CONFIG] [--run-id ID] [--force]
 * deno task bt generate           [-c CONFIG] [--run-id ID] [--condition baseline|targeted_ablation|random_ablation[_k]|reference_selection_ablation] [--variant V] [--force]
 * deno task bt detect-events      [-c CONFIG] [--run-id ID] [--force]
 * deno task bt logit-lens         [-c CONFIG] [--run-id ID] [--variant V] [--force]
 * deno task bt ablation-scan      [-c CONFIG] [--run-id ID] [--variant V] [--force]
 * deno task bt compare-conditions [-c CONFIG] [--run-id ID] [--variant V] [--force]
 * deno task bt protocol-validation [-c CONFIG] [--run-id ID] [--force]   (organism only)
 * deno task bt formatting-sweep   [-c CONFIG] [--run-id ID] [--force]
 * deno task bt make-report        [-c CONFIG] [--run-id ID] [--force]
 * deno task bt pipeline           [-c CONFIG] [--run-id ID] [--force]
 * deno task bt phase2-sweeps | phase2-continuation | phase2-steering | phase2-patching | phase2
 *                                 [-c CONFIG] [--run-id ID] [--force]
 * ```
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

/** The config used when `--config` is not given. */
export const DEFAULT_CONFIG = "configs/organism.yaml";

interface Flags {
  readonly config: string;
  readonly runId: string | undefined;
  readonly variant: string | undefined;
  readonly condition: string | undefined;
  readonly force: boolean;
}

type Spec = {
  readonly flags: readonly ("variant" | "condition")[];
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
    flags: ["variant", "condition"],
    run: (f) =>
      withContext(
        f,
        (ctx) => generate(ctx, { condition: f.condition ?? "baseline", ...v(f), force: f.force }),
      ),
  },
  "detect-events": { flags: [], run: (f) => withContext(f, (ctx) => detectEvents(ctx, { force: f.force })) },
  "logit-lens": {
    flags: ["variant"],
    run: (f) => withContext(f, (ctx) => logitLens(ctx, { ...v(f), force: f.force })),
  },
  "ablation-scan": {
    flags: ["variant"],
    run: (f) => withContext(f, (ctx) => ablationScan(ctx, { ...v(f), force: f.force })),
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
  "phase2-sweeps": { flags: [], run: (f) => withContext(f, (ctx) => phase2Sweeps(ctx, { force: f.force })) },
  "phase2-continuation": {
    flags: [],
    run: (f) => withContext(f, (ctx) => phase2Continuation(ctx, { force: f.force })),
  },
  "phase2-steering": {
    flags: [],
    run: (f) => withContext(f, (ctx) => phase2Steering(ctx, { force: f.force })),
  },
  "phase2-patching": {
    flags: [],
    run: (f) => withContext(f, (ctx) => phase2Patching(ctx, { force: f.force })),
  },
  phase2: { flags: [], run: (f) => withContext(f, (ctx) => runPhase2(ctx, { force: f.force })) },
  pipeline: {
    flags: [],
    run: async (f) => {
      const r = await runPipeline(f.config, { ...(f.runId ? { runId: f.runId } : {}), force: f.force });
      for (const t of r.timings) console.error(`  ${t.step.padEnd(32)} ${t.seconds.toFixed(1)} s`);
      return r;
    },
  },
};

function usage(step: string, spec: Spec): string {
  const extra = spec.flags.map((x) => (x === "variant" ? " [--variant V]" : " [--condition C]")).join("");
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
    for (const flag of ["variant", "condition"] as const) {
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
    });
    return 0;
  };
}
