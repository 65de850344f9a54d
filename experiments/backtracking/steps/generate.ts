/**
 * Step `generate`: sample completions for every problem under one condition into the run's record
 * stores `generations/<variant>/<condition>.jsonl` (resumable: samples already stored are skipped).
 *
 * Conditions:
 *
 * - `baseline`: no intervention; by default every configured variant.
 * - `targeted_ablation`: the layers of `analysis/selected_layers.json` (attention then MLP), each
 *   component's output scaled by `ablation_generation.scale` (0 for `mode: zero`), at the positions of
 *   `generation.intervention_scope`.
 * - `random_ablation`: the draws of `analysis/random_ablation_specs.json`; with one draw the condition is
 *   called `random_ablation` (the reference's name), with K > 1 draws `random_ablation_0 … _{K-1}`;
 *   `random_ablation_<k>` runs one draw.
 * - `reference_selection_ablation` (protocol validation, docs/protocol.md §13): the reference protocol's
 *   selection from the same scan (per component type the `analysis.topk_layers_for_generation` most
 *   negative mean raw Δlogits, `analysis/ablation_importance.csv`), ablated like `targeted_ablation`;
 *   nothing is generated when it equals the targeted selection (e.g. under `protocol: reference`).
 *
 * Ablation conditions default to one variant (`baseline_think_newline` when configured, as the
 * reference). Every sample has its own random stream keyed by (example, sample), shared across variants
 * and conditions (common random numbers), so paired comparisons see the intervention, not sampling noise.
 *
 * Shards (`shard: {index, count}`, the CLI's `--shard K/N`): this process generates only shard K's keys of
 * each store, under shard K's lock (`store_generation.ts`); the next reader merges the finished shards.
 *
 * @module
 */

import type { Config } from "../config.ts";
import type { ShardSpec } from "../../../lib/generate/shards.ts";
import { generateStore } from "../store_generation.ts";
import type { Intervention } from "../../../lib/engine/hooks.ts";
import { buildPrompt } from "../prompts.ts";
import { ablationScale, defaultAnalysisVariant } from "../settings.ts";
import { generationFile } from "../artifacts/generations.ts";
import { readProblems } from "../artifacts/problems.ts";
import { REFERENCE_SELECTION_CONDITION } from "../artifacts/generations.ts";
import { referenceSelection } from "../protocol_validation.ts";
import {
  type LayerSpec,
  type RandomAblationSpecs,
  readImportanceTable,
  readRandomAblationSpecs,
  readSelectedLayers,
} from "../artifacts/scan.ts";
import { ensureModel, lockRun, type ModelContext, recordStep, say, type StepOptions } from "../context.ts";

/** Options of {@linkcode generate}. */
export interface GenerateStepOptions extends StepOptions {
  /**
   * `baseline` (default), `targeted_ablation`, `random_ablation`, `random_ablation_<k>`, or
   * `reference_selection_ablation`.
   */
  readonly condition?: string;
  /** One variant; default every variant for baseline, the analysis variant for ablations. */
  readonly variant?: string;
  /** Generate only shard K of N of every store (K 0-based); default the whole stores. */
  readonly shard?: ShardSpec | undefined;
}

/** One store written by {@linkcode generate}. */
export interface GeneratedStore {
  readonly variant: string;
  readonly condition: string;
  readonly path: string;
  readonly generated: number;
  readonly resumed: number;
  readonly interventions: readonly Intervention[];
}

/** The interventions of a layer spec: attention hooks then MLP hooks, scaled by the configured value. */
export function specInterventions(spec: LayerSpec, config: Config): Intervention[] {
  const value = ablationScale(config);
  return [
    ...spec.attn.map((l) => ({ hook: `blocks.${l}.hook_attn_out` as const, op: "scale" as const, value })),
    ...spec.mlp.map((l) => ({ hook: `blocks.${l}.hook_mlp_out` as const, op: "scale" as const, value })),
  ];
}

/**
 * The reference protocol's selection from the run's scan: per component type the
 * `analysis.topk_layers_for_generation` most negative mean raw Δlogits (signed top-k, docs/protocol.md §13).
 *
 * @throws {MissingArtifactError} when the scan has not run.
 */
export async function referenceSelectedLayers(ctx: Pick<ModelContext, "run" | "config">): Promise<LayerSpec> {
  const rows = (await readImportanceTable(ctx.run)).map((r) => ({
    ...r,
    delta_logit_mean: r.delta_wait_logit_mean,
  }));
  const picked = referenceSelection(rows, ctx.config.analysis.topk_layers_for_generation);
  const of = (c: "attn" | "mlp") => picked.filter((p) => p.component === c).map((p) => p.layer);
  return { attn: of("attn"), mlp: of("mlp") };
}

/** The (condition name, layer spec) pairs a condition argument stands for. */
export async function conditionSpecs(
  ctx: Pick<ModelContext, "run" | "config">,
  condition: string,
): Promise<{ condition: string; spec: LayerSpec | undefined }[]> {
  if (condition === "baseline") return [{ condition, spec: undefined }];
  if (condition === "targeted_ablation") {
    const sel = await readSelectedLayers(ctx.run);
    return [{ condition, spec: sel }];
  }
  if (condition === REFERENCE_SELECTION_CONDITION) {
    const ref = await referenceSelectedLayers(ctx);
    const sel = await readSelectedLayers(ctx.run);
    const key = (s: LayerSpec) => JSON.stringify([[...s.attn].sort(), [...s.mlp].sort()]);
    // Under the reference protocol (or when both agree) targeted_ablation already ablates this set.
    return key(ref) === key(sel) ? [] : [{ condition, spec: ref }];
  }
  const m = /^random_ablation(?:_(\d+))?$/.exec(condition);
  if (m) {
    const specs: RandomAblationSpecs = await readRandomAblationSpecs(ctx.run);
    const names = specs.draws.map((
      _,
      k,
    ) => (specs.draws.length === 1 ? "random_ablation" : `random_ablation_${k}`));
    if (m[1] === undefined) return specs.draws.map((d, k) => ({ condition: names[k]!, spec: d }));
    const k = Number(m[1]);
    const d = specs.draws[k];
    if (!d) {
      throw new RangeError(
        `--condition ${condition}: random_ablation_specs.json has ${specs.draws.length} draw(s) (0..${
          specs.draws.length - 1
        })`,
      );
    }
    return [{ condition: names[k]!, spec: d }];
  }
  throw new RangeError(
    `Unknown condition "${condition}": use baseline, targeted_ablation, random_ablation, random_ablation_<k> ` +
      `or ${REFERENCE_SELECTION_CONDITION}`,
  );
}

/**
 * Generate one condition (all its variants / draws) into the run's stores.
 *
 * @param ctx The config, the run, and the model slot (the model is loaded on first use).
 * @param options Condition, variant, force (delete the store and regenerate it from scratch).
 * @returns The stores written, with counts of new and resumed samples.
 * @throws {Error} when an ablation's layer file is missing (run ablation-scan first).
 */
export async function generate(
  ctx: ModelContext,
  options: GenerateStepOptions = {},
): Promise<GeneratedStore[]> {
  const shard = options.shard;
  await using _lock = await lockRun(ctx, "generate", shard);
  const cfg = ctx.config;
  const condition = options.condition ?? "baseline";
  const variants = options.variant
    ? [options.variant]
    : condition === "baseline"
    ? cfg.prompting.formatting_variants.map((v) => v.name)
    : [defaultAnalysisVariant(cfg)];
  if (variants.length === 0) {
    throw new Error("prompting.formatting_variants is empty; add at least one variant to the config");
  }
  const specs = await conditionSpecs(ctx, condition);
  const problems = await readProblems(ctx.run);
  const loaded = await ensureModel(ctx);
  const { tokenizer } = loaded;
  const g = cfg.generation;
  const tag = shard ? ` shard ${shard.index}/${shard.count}` : "";
  const out: GeneratedStore[] = [];
  for (const variant of variants) {
    const prompts = problems.map((p) => {
      const built = buildPrompt(tokenizer, cfg.prompting, p.question, variant);
      return { exampleId: p.id, prompt: built.text, tokenIds: built.tokenIds };
    });
    for (const { condition: cond, spec } of specs) {
      const interventions = spec ? specInterventions(spec, cfg) : [];
      if (spec && interventions.length === 0) {
        say(ctx, `generate ${variant}/${cond}: no components selected, nothing to ablate; skipped`);
        continue;
      }
      const rel = generationFile(variant, cond);
      const res = await generateStore(ctx, loaded, {
        variant,
        condition: cond,
        prompts,
        samplesPerPrompt: g.num_samples_per_prompt,
        interventions,
        force: options.force ?? false,
        shard,
        command: `bt generate --condition ${condition} --variant ${variant} --shard {shard}`,
      });
      say(
        ctx,
        `generate ${variant}/${cond}${tag}: ` +
          (res.generated === 0
            ? `all ${res.resumed} samples already stored (reused)`
            : `${res.generated} new, ${res.resumed} already stored`) +
          ` → ${shard ? res.path.slice(ctx.run.dir.length + 1) : rel}`,
      );
      out.push({
        variant,
        condition: cond,
        path: res.path,
        generated: res.generated,
        resumed: res.resumed,
        interventions,
      });
    }
  }
  // Shards do not write meta.json's step record (N processes would race on it); their `.done.json` files
  // record them, and the merge is recorded by the reader that makes it.
  if (shard) return out;
  await recordStep(ctx.run, `generate:${condition}`, {
    stores: out.map((s) => ({
      variant: s.variant,
      condition: s.condition,
      generated: s.generated,
      resumed: s.resumed,
      interventions: s.interventions.map((i) => `${i.hook}×${i.op === "scale" ? i.value : "add"}`),
      scope: s.interventions.length ? cfg.generation.intervention_scope : "none",
    })),
  });
  return out;
}
