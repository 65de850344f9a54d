/**
 * Step `init-run`: create the run folder with `config_resolved.yaml`, `meta.json` and
 * `<root>/.current_run_id` (docs/protocol.md §2).
 *
 * @module
 */

import type { Config } from "../config.ts";
import type { ProgressMode } from "../../../lib/util/progress.ts";
import { createRun } from "../run.ts";
import { say, type StepContext, type StepOptions } from "../context.ts";

/** Options of {@linkcode initRun}. */
export interface InitRunOptions extends StepOptions {
  /** Run id; default `run.run_id`, else local time `YYYYMMDD_HHMMSS`. */
  readonly runId?: string | null;
  /** Runs root; default `run.output_dir`. */
  readonly root?: string;
}

/**
 * Create a run and return the context the other steps take.
 *
 * @param ctx The config (and the path it came from, recorded in meta.json).
 * @param options Run id, root, force (re-initialise an existing run folder).
 * @throws {Error} when the run folder exists and `force` is not set.
 * @example
 * ```ts
 * const ctx = await initRun({ config: await loadConfig("configs/organism.yaml") }, { runId: "demo" });
 * ```
 */
export async function initRun(
  ctx: {
    readonly config: Config;
    readonly configPath?: string;
    readonly progress?: "auto" | ProgressMode;
    readonly log?: (l: string) => void;
  },
  options: InitRunOptions = {},
): Promise<StepContext> {
  const run = await createRun(ctx.config, {
    ...(options.runId ? { runId: options.runId } : {}),
    ...(options.root ? { root: options.root } : {}),
    ...(ctx.configPath ? { configPath: ctx.configPath } : {}),
    ...(options.force ? { force: true } : {}),
  });
  say(ctx, `run ${run.id}: ${run.dir}`);
  return { ...ctx, run };
}
