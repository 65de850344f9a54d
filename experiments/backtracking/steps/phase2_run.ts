/**
 * Phase 2 as one call: the analyses the config enables, in order, each reusing finished outputs.
 *
 * Flags (the config's `phase2` subsections; every one defaults to on, options below override):
 *
 * - sweeps: `phase2.subset_sweep.enabled` / `phase2.scale_sweep.enabled`;
 * - continuation ablation: `phase2.continuation_ablation.enabled`;
 * - steering: `phase2.steering.enabled` (its trade-off figure adds the sweeps' points when they exist);
 * - activation patching: `phase2.patching.enabled`.
 *
 * Order: sweeps, steering, continuation, patching.
 *
 * @module
 */

import { lockRun, type ModelContext, type RunContext, say } from "../context.ts";
import type { Phase2StepOptions } from "../phase2/setup.ts";
import type {
  ContinuationResult,
  PatchingResult,
  SteeringResult,
  SweepsResult,
} from "../artifacts/phase2.ts";
import { phase2Continuation } from "./phase2_continuation.ts";
import { phase2Patching } from "./phase2_patching.ts";
import { phase2Steering, type SteeringStepOptions } from "./phase2_steering.ts";
import { phase2Sweeps } from "./phase2_sweeps.ts";

/** Options of {@linkcode runPhase2}. */
export interface RunPhase2Options extends Phase2StepOptions {
  /** Override the config: run (true) or skip (false) an analysis. */
  readonly sweeps?: boolean;
  readonly continuation?: boolean;
  /** An object runs steering with these overrides of `phase2.steering`. */
  readonly steering?: boolean | Omit<SteeringStepOptions, "force">;
  readonly patching?: boolean;
}

/** Which analyses a config enables. */
export function phase2Plan(ctx: Pick<RunContext, "config">, options: RunPhase2Options = {}) {
  const p2 = ctx.config.phase2;
  const sweeps = options.sweeps ?? (p2.subset_sweep.enabled || p2.scale_sweep.enabled);
  const continuation = options.continuation ?? p2.continuation_ablation.enabled;
  return {
    sweeps,
    continuation,
    steering: options.steering === undefined ? p2.steering.enabled : options.steering !== false,
    patching: options.patching ?? p2.patching.enabled,
  };
}

/** Results of {@linkcode runPhase2} (absent = not enabled). */
export interface Phase2Result {
  readonly sweeps?: SweepsResult;
  readonly continuation?: ContinuationResult;
  readonly steering?: SteeringResult;
  readonly patching?: PatchingResult;
  /** Wall time per analysis in seconds. */
  readonly timings: { step: string; seconds: number }[];
}

/**
 * Run the enabled Phase-2 analyses (after Phase 1: baseline, detect-events, ablation-scan).
 *
 * @param ctx The config, the run, and the model slot.
 * @param options `force` and per-analysis overrides.
 */
export async function runPhase2(ctx: ModelContext, options: RunPhase2Options = {}): Promise<Phase2Result> {
  await using _lock = await lockRun(ctx, "phase2");
  const plan = phase2Plan(ctx, options);
  const force = options.force ?? false;
  const timings: { step: string; seconds: number }[] = [];
  const timed = async <T>(step: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    timings.push({ step, seconds: (performance.now() - t0) / 1000 });
    return r;
  };
  const out: { -readonly [K in keyof Phase2Result]: Phase2Result[K] } = { timings };
  if (plan.sweeps) out.sweeps = await timed("phase2-sweeps", () => phase2Sweeps(ctx, { force }));
  if (plan.steering) {
    const extra = typeof options.steering === "object" ? options.steering : {};
    out.steering = await timed("phase2-steering", () => phase2Steering(ctx, { ...extra, force }));
  }
  if (plan.continuation) {
    out.continuation = await timed("phase2-continuation", () => phase2Continuation(ctx, { force }));
  }
  if (plan.patching) out.patching = await timed("phase2-patching", () => phase2Patching(ctx, { force }));
  say(
    ctx,
    `phase2: ${timings.map((t) => `${t.step} ${t.seconds.toFixed(1)} s`).join(", ") || "nothing enabled"}`,
  );
  return out;
}
