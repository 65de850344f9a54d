/**
 * Step `pipeline`: the whole experiment. Phase 1 in the reference's order (docs/protocol.md §2): init-run →
 * prepare-data → generate baseline (every variant) → detect-events → logit-lens → ablation-scan → head-scan →
 * generate targeted_ablation → generate random_ablation (every draw) → [organism: generate
 * reference_selection_ablation] → detect-events again (now over every condition) → compare-conditions →
 * [organism: protocol-validation] → formatting-sweep; then Phase 2 (sweeps, steering, continuation ablation,
 * patching: `steps/phase2_run.ts`) when the config enables any of its subsections; then make-report.
 *
 * On a model with a known circuit (`model.source: organism`) the pipeline also validates the selection
 * protocols: the reference's selection is ablated during generation (unless it equals ours) and the step
 * `protocol-validation` scores both selections against the planted circuit.
 *
 * @module
 */

import { join } from "node:path";
import { type Config, loadConfig } from "../config.ts";
import { pathExists } from "../../../lib/util/fs.ts";
import { type ReusableStep, runOrReuse } from "../notebook_params.ts";
import { artifactPath, openRun, runsRoot } from "../run.ts";
import type { ProgressMode } from "../../../lib/util/progress.ts";
import { disposeContext, lockRun, say, type StepContext } from "../context.ts";
import { generate } from "./generate.ts";
import { initRun } from "./init_run.ts";
import { REFERENCE_SELECTION_CONDITION } from "../artifacts/generations.ts";
import { hasGroundTruth } from "../settings.ts";

import { phase2Plan, runPhase2 } from "./phase2_run.ts";

/** Options of {@linkcode runPipeline}. */
export interface PipelineOptions {
  /** Run id (default: `run.run_id`, else a new timestamp id). */
  readonly runId?: string | null;
  /** Runs root (default `run.output_dir`). */
  readonly root?: string;
  /** Re-initialise an existing run and replace every artifact (default: resume an existing run). */
  readonly force?: boolean;
  /** Progress display. */
  readonly progress?: "auto" | ProgressMode;
  /** Project-level figures folder (default `figures`; null = do not copy). */
  readonly projectFigures?: string | null;
  readonly log?: (line: string) => void;
  /**
   * Run Phase 2 (sweeps, steering, continuation ablation, patching) before make-report. Default: when
   * the config's `phase2` subsections are enabled (see `experiments/backtracking/steps/phase2_run.ts`).
   */
  readonly phase2?: boolean;
}

/** Result of {@linkcode runPipeline}. */
export interface PipelineResult {
  readonly ctx: StepContext;
  /** Wall time per step in seconds, in order. */
  readonly timings: { step: string; seconds: number }[];
  /** Wall time per Phase-2 analysis (empty when Phase 2 did not run). */
  readonly phase2Timings: { step: string; seconds: number }[];
  readonly reportPath: string;
}

/**
 * Open the run to resume it (its folder has a `config_resolved.yaml` and `force` is not set), else create
 * it: the same semantics as `deno task pipeline --run-id` (notebook 00, `startRun`).
 */
async function openOrInitRun(
  cfg: Config,
  config: Config | string,
  options: PipelineOptions,
  force: boolean,
): Promise<StepContext> {
  const base = {
    config: cfg,
    ...(typeof config === "string" ? { configPath: config } : {}),
    ...(options.progress ? { progress: options.progress } : {}),
    ...(options.log ? { log: options.log } : {}),
  };
  const runId = options.runId ?? cfg.run.run_id ?? null;
  const rootOpt = options.root ? { root: options.root } : {};
  if (runId && !force && await pathExists(join(runsRoot(cfg, rootOpt), runId, "config_resolved.yaml"))) {
    const run = await openRun(cfg, runId, rootOpt);
    say(base, `run ${run.id}: resuming ${run.dir} (finished steps are reused; --force recomputes)`);
    return { ...base, run };
  }
  return await initRun(base, { ...(runId ? { runId } : {}), ...rootOpt, force });
}

/**
 * Run the whole pipeline. On an existing run (`runId` or `run.run_id` naming a run folder) it resumes:
 * record stores continue where they stopped and a finished step is reused when its inputs are unchanged
 * (`runOrReuse`, as the notebook series does); `force` re-initialises the run and recomputes everything.
 *
 * @param config A config or the path of a YAML config.
 * @param options Run id, root, force, progress.
 * @returns The context (run folder, loaded model: already disposed), step timings, the report path.
 */
export async function runPipeline(
  config: Config | string,
  options: PipelineOptions = {},
): Promise<PipelineResult> {
  const cfg = typeof config === "string" ? await loadConfig(config) : config;
  const force = options.force ?? false;
  const timings: { step: string; seconds: number }[] = [];
  const timed = async <T>(step: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    timings.push({ step, seconds: (performance.now() - t0) / 1000 });
    return r;
  };
  const ctx = await timed("init-run", () => openOrInitRun(cfg, config, options, force));
  await using _lock = await lockRun(ctx, "pipeline");
  const figuresDir = options.projectFigures === undefined ? "figures" : options.projectFigures;
  const step = (name: ReusableStep) => runOrReuse(ctx, name, { force, figuresDir });
  try {
    await timed("prepare-data", () => step("prepare-data"));
    await timed("generate baseline", () => generate(ctx, { condition: "baseline", force }));
    await timed("detect-events", () => step("detect-events"));
    await timed("logit-lens", () => step("logit-lens"));
    await timed("ablation-scan", () => step("ablation-scan"));
    await timed("head-scan", () => step("head-scan"));
    await timed("generate targeted_ablation", () => generate(ctx, { condition: "targeted_ablation", force }));
    await timed("generate random_ablation", () => generate(ctx, { condition: "random_ablation", force }));
    const validate = hasGroundTruth(cfg);
    if (validate) {
      await timed(
        `generate ${REFERENCE_SELECTION_CONDITION}`,
        () => generate(ctx, { condition: REFERENCE_SELECTION_CONDITION, force }),
      );
    }
    await timed("detect-events (all conditions)", () => step("detect-events"));
    await timed("compare-conditions", () => step("compare-conditions"));
    if (validate) await timed("protocol-validation", () => step("protocol-validation"));
    await timed("formatting-sweep", () => step("formatting-sweep"));
    const plan = phase2Plan(ctx);
    const phase2 = options.phase2 ?? (plan.sweeps || plan.continuation || plan.steering || plan.patching);
    const phase2Timings = phase2 ? (await runPhase2(ctx, { force })).timings : [];
    await timed("make-report", () => step("make-report"));
    const reportPath = artifactPath(ctx.run, "report.md");
    const total = timings.reduce((a, t) => a + t.seconds, 0);
    say(ctx, `pipeline: run ${ctx.run.id} done in ${total.toFixed(1)} s; report ${reportPath}`);
    return { ctx, timings, phase2Timings, reportPath };
  } finally {
    await disposeContext(ctx);
  }
}
