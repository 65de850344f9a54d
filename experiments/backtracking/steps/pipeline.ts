/**
 * Step `pipeline`: the whole Phase-1 experiment in the reference's order (docs/protocol.md §2): init-run →
 * prepare-data → generate baseline (every variant) → detect-events → logit-lens → ablation-scan →
 * generate targeted_ablation → generate random_ablation (every draw) → detect-events again (now over
 * every condition) → compare-conditions → formatting-sweep → make-report.
 *
 * @module
 */

import { type Config, loadConfig } from "../config.ts";
import type { ProgressMode } from "../../../lib/util/progress.ts";
import { ablationScan } from "./ablation_scan.ts";
import { compareConditions } from "./compare_conditions.ts";
import { disposeContext, say, type StepContext } from "./context.ts";
import { detectEvents } from "./detect_events.ts";
import { formattingSweep } from "./formatting_sweep.ts";
import { generate } from "./generate.ts";
import { initRun } from "./init_run.ts";
import { logitLens } from "./logit_lens.ts";
import { makeReport } from "./make_report.ts";
import { prepareData } from "./prepare_data.ts";
import { phase2Plan, runPhase2 } from "./phase2_run.ts";

/** Options of {@linkcode runPipeline}. */
export interface PipelineOptions {
  /** Run id (default: `run.run_id`, else a new timestamp id). */
  readonly runId?: string | null;
  /** Runs root (default `run.output_dir`). */
  readonly root?: string;
  /** Re-initialise an existing run and replace every artifact. */
  readonly force?: boolean;
  /** Progress display. */
  readonly progress?: "auto" | ProgressMode;
  /** Project-level figures folder (default `figures`; null = do not copy). */
  readonly projectFigures?: string | null;
  readonly log?: (line: string) => void;
  /**
   * Run Phase 2 (sweeps, steering, continuation ablation, patching) before make-report. Default: when
   * the config's `phase2` subsections are enabled (see `lib/steps/phase2_run.ts`).
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
 * Run the whole pipeline.
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
  const ctx = await timed("init-run", () =>
    initRun({
      config: cfg,
      ...(typeof config === "string" ? { configPath: config } : {}),
      ...(options.progress ? { progress: options.progress } : {}),
      ...(options.log ? { log: options.log } : {}),
    }, {
      ...(options.runId ? { runId: options.runId } : {}),
      ...(options.root ? { root: options.root } : {}),
      force,
    }));
  try {
    await timed("prepare-data", () => prepareData(ctx, { force }));
    await timed("generate baseline", () => generate(ctx, { condition: "baseline", force }));
    await timed("detect-events", () => detectEvents(ctx, { force }));
    await timed("logit-lens", () => logitLens(ctx, { force }));
    await timed("ablation-scan", () => ablationScan(ctx, { force }));
    await timed("generate targeted_ablation", () => generate(ctx, { condition: "targeted_ablation", force }));
    await timed("generate random_ablation", () => generate(ctx, { condition: "random_ablation", force }));
    await timed("detect-events (all conditions)", () => detectEvents(ctx, { force: true }));
    await timed("compare-conditions", () => compareConditions(ctx, { force }));
    await timed("formatting-sweep", () => formattingSweep(ctx, { force }));
    const plan = phase2Plan(ctx);
    const phase2 = options.phase2 ?? (plan.sweeps || plan.continuation || plan.steering || plan.patching);
    const phase2Timings = phase2 ? (await runPhase2(ctx, { force })).timings : [];
    const report = await timed("make-report", () =>
      makeReport(ctx, {
        force,
        ...(options.projectFigures !== undefined ? { projectFigures: options.projectFigures } : {}),
      }));
    const total = timings.reduce((a, t) => a + t.seconds, 0);
    say(ctx, `pipeline: run ${ctx.run.id} done in ${total.toFixed(1)} s; report ${report.reportPath}`);
    return { ctx, timings, phase2Timings, reportPath: report.reportPath };
  } finally {
    await disposeContext(ctx);
  }
}
