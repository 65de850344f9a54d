/**
 * Step `protocol-validation` (models with a known circuit: the organism; docs/protocol.md §13): score the
 * reference's selection (per component type the `analysis.topk_layers_for_generation` most negative mean raw
 * Δlogits) and ours (specificity CI below −`analysis.min_specificity_effect`, at most
 * `topk_layers_for_generation` per type) against the planted set and the decoy of `organism.json`, and read
 * what ablating each during generation did: the backtracking rate (paired Δ vs the baseline) and
 * degeneration (EOS rate, share at the length cap, unknown/unfinished answers, degeneration flags).
 *
 * Inputs: `analysis/ablation_importance.csv` (ablation-scan), `analysis/condition_comparison_corrected.json`
 * (compare-conditions, with the conditions `targeted_ablation` = ours and `reference_selection_ablation` =
 * the reference's, when it differs from ours), and the organism's manifest as recorded in `meta.json`.
 * Writes the artifact family `artifacts/protocol_validation.ts`. Needs no model.
 *
 * @module
 */

import { degenerationFlags, figuresOf } from "../degeneration.ts";
import type { ConditionSummary, PairedComparison } from "../metrics.ts";
import {
  componentLabel,
  type ComponentRef,
  DEFAULT_MIN_EFFECT,
  validateProtocols,
  validationVerdict,
} from "../protocol_validation.ts";
import { assertWritable, readMeta } from "../run.ts";
import { readConditionComparison } from "../artifacts/comparisons.ts";
import { REFERENCE_SELECTION_CONDITION } from "../artifacts/generations.ts";
import {
  type ConditionFigures,
  type ExpectedOutcome,
  PROTOCOL_VALIDATION_OUTPUTS,
  type ProtocolValidationArtifact,
  writeProtocolValidation,
} from "../artifacts/protocol_validation.ts";
import { type LayerSpec, readImportanceTable, readSelectedLayers } from "../artifacts/scan.ts";
import { lockRun, recordStep, type RunContext, say, type StepOptions } from "../context.ts";

/** The ground truth as `meta.json` records it (`model.organism`: planted, decoy, description). */
interface RecordedOrganism {
  readonly description?: string;
  readonly planted?: readonly (ComponentRef & { role?: string })[];
  readonly decoy?: readonly (ComponentRef & { role?: string })[];
}

/**
 * The organism's ground truth from the run's `meta.json`, or undefined for a model without one.
 */
export async function recordedGroundTruth(
  ctx: Pick<RunContext, "run">,
): Promise<RecordedOrganism | undefined> {
  const meta = await readMeta(ctx.run) as { model?: { organism?: RecordedOrganism } };
  const o = meta.model?.organism;
  return o && Array.isArray(o.planted) && Array.isArray(o.decoy) ? o : undefined;
}

function figures(
  condition: string | null,
  s: ConditionSummary | undefined,
  cmp: PairedComparison | undefined,
  base: ConditionSummary | undefined,
): ConditionFigures {
  const f = s ? figuresOf(s) : undefined;
  return {
    condition: s ? condition : null,
    n: s?.n ?? 0,
    bt_rate: s?.bt_rate.value ?? NaN,
    bt_rate_lower: s?.bt_rate.bootstrap.lower ?? NaN,
    bt_rate_upper: s?.bt_rate.bootstrap.upper ?? NaN,
    delta_bt_rate: cmp?.delta_bt_rate.difference ?? NaN,
    delta_bt_rate_lower: cmp?.delta_bt_rate.bootstrap.lower ?? NaN,
    delta_bt_rate_upper: cmp?.delta_bt_rate.bootstrap.upper ?? NaN,
    accuracy: s?.accuracy.value ?? NaN,
    eos_rate: f?.eos_rate ?? NaN,
    truncation_rate: f?.truncation_rate ?? NaN,
    unknown_rate: f?.unknown_rate ?? NaN,
    mean_length: s?.mean_length.value ?? NaN,
    digit_free_rate: s?.digit_free_rate.value ?? NaN,
    degeneration: f
      ? degenerationFlags(f, base && s !== base ? figuresOf(base) : undefined)
      : { flags: [], reasons: [], degenerate: false },
  };
}

/**
 * Validate both selection protocols against the planted circuit.
 *
 * @param ctx The config and the run (no model needed).
 * @param options force (replace the outputs).
 * @returns The artifact written.
 * @throws {Error} when the run's model has no recorded ground truth (not the organism), or an input is
 *   missing (run ablation-scan, the ablation generations, detect-events and compare-conditions first).
 */
export async function protocolValidation(
  ctx: RunContext,
  options: StepOptions = {},
): Promise<ProtocolValidationArtifact> {
  await using _lock = await lockRun(ctx, "protocol-validation");
  const overwrite = options.force ?? false;
  await assertWritable(ctx.run, PROTOCOL_VALIDATION_OUTPUTS, { overwrite });
  const truth = await recordedGroundTruth(ctx);
  if (!truth) {
    throw new Error(
      `protocol-validation needs a model with a known circuit: ${ctx.run.dir}/meta.json has no ` +
        `model.organism.planted / decoy (run it on the organism, model.source: organism)`,
    );
  }
  const cfg = ctx.config;
  const k = cfg.analysis.topk_layers_for_generation;
  const minEffect = cfg.analysis.min_specificity_effect ?? DEFAULT_MIN_EFFECT;
  const rows = (await readImportanceTable(ctx.run)).map((r) => ({
    ...r,
    delta_logit_mean: r.delta_wait_logit_mean,
  }));
  const truthRefs = { planted: truth.planted!, decoy: truth.decoy! };
  const v = validateProtocols(rows, truthRefs, { referenceK: k, minEffect, maxPerType: k });
  const verdict = validationVerdict(v);
  const comparison = await readConditionComparison(ctx.run);
  const entry = (c: string) => comparison.conditions.find((e) => e.condition === c);
  const base = entry("baseline")?.summary;
  // Which generation ablates which selection: targeted_ablation ablates the run's selection
  // (analysis.selection_criterion: ours under the corrected protocol, the reference's under
  // protocol: reference); reference_selection_ablation the reference's when it differs.
  const targeted = await readSelectedLayers(ctx.run);
  const refs = (s: LayerSpec): ComponentRef[] => [
    ...s.attn.map((layer) => ({ layer, component: "attn" as const })),
    ...s.mlp.map((layer) => ({ layer, component: "mlp" as const })),
  ];
  const same = (a: readonly ComponentRef[], b: readonly ComponentRef[]) =>
    a.map(componentLabel).sort().join() === b.map(componentLabel).sort().join();
  const ourCond = same(v.ours.selected, refs(targeted)) ? "targeted_ablation" : "(not generated)";
  const refCond = same(v.reference.selected, refs(targeted))
    ? "targeted_ablation"
    : REFERENCE_SELECTION_CONDITION;
  const fig = (c: string) => figures(c, entry(c)?.summary, entry(c)?.vs_baseline, base);
  const ref = fig(refCond);
  const ours = fig(ourCond);
  const failures = [...verdict.failures];
  const refDegenerate = ref.degeneration.degenerate;
  const oursClean = ours.condition !== null && !ours.degeneration.degenerate && ours.delta_bt_rate < 0;
  if (!refDegenerate) {
    failures.push(
      ref.condition === null
        ? `the reference's selection was not generated (condition ${refCond}: run generate --condition ${refCond})`
        : `the reference's ablation (${refCond}) is not flagged as degenerate`,
    );
  }
  if (!oursClean) {
    failures.push(
      ours.condition === null
        ? `our selection was not ablated during generation (targeted_ablation ablates ${
          refs(targeted).map(componentLabel).join(", ") || "nothing"
        })`
        : `our ablation (${ourCond}) ${
          ours.degeneration.degenerate ? `is degenerate (${ours.degeneration.reasons.join("; ")})` : ""
        }${ours.delta_bt_rate < 0 ? "" : " does not lower the backtracking rate"}`.trim(),
    );
  }
  const expected: ExpectedOutcome = {
    ...verdict,
    reference_drop_degenerate: refDegenerate,
    ours_drop_clean: oursClean,
    passed: failures.length === 0,
    failures,
  };
  const artifact: ProtocolValidationArtifact = {
    model_description: truth.description ?? "",
    planted: truth.planted!.map((c) => ({ layer: c.layer, component: c.component, role: c.role ?? "" })),
    decoy: truth.decoy!.map((c) => ({ layer: c.layer, component: c.component, role: c.role ?? "" })),
    reference_k: k,
    min_specificity_effect: minEffect,
    max_per_type: k,
    variant: comparison.variant,
    baseline: figures("baseline", base, undefined, base),
    reference: { selection: v.reference, ablation: ref },
    ours: { selection: v.ours, ablation: ours },
    expected,
  };
  await writeProtocolValidation(ctx.run, artifact, { overwrite });
  await recordStep(ctx.run, "protocol-validation", {
    reference: v.reference.selected.map(componentLabel),
    ours: v.ours.selected.map(componentLabel),
    passed: expected.passed,
    failures,
  });
  const names = (xs: readonly ComponentRef[]) => xs.map(componentLabel).join(", ") || "none";
  say(
    ctx,
    `protocol-validation: reference [${names(v.reference.selected)}] (decoy ${
      v.reference.decoy_selected ? "taken" : "not taken"
    }${refDegenerate ? ", ablation degenerate" : ""}); ours [${names(v.ours.selected)}] (recall ${
      (v.ours.recall * 100).toFixed(0)
    }%); ${expected.passed ? "expected outcome" : `UNEXPECTED: ${failures.join("; ")}`}`,
  );
  return artifact;
}
