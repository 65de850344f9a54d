/**
 * The small organism config of the sharding tests: 5 problems × 2 samples × 3 variants, 60 new tokens,
 * batches of 4 (so the generator streams records one batch at a time), one random draw, a one-setting
 * Phase 2 (sweeps + steering). Run as a script it writes `<root>/config.yaml` (the config's
 * `run.output_dir` is `<root>`).
 */
import { fileURLToPath } from "node:url";
import {
  type Config,
  loadConfig,
  parseConfig,
  resolvedConfigYaml,
} from "../../experiments/backtracking/config.ts";

const ORGANISM = fileURLToPath(new URL("../../configs/organism.yaml", import.meta.url));

/** The config, with `run.output_dir` = `root`. */
export async function smallShardConfig(root: string): Promise<Config> {
  const base = await loadConfig(ORGANISM);
  return parseConfig({
    ...structuredClone(base),
    run: { ...base.run, output_dir: root },
    dataset: { ...base.dataset, max_examples: 5 },
    generation: { ...base.generation, num_samples_per_prompt: 2, max_new_tokens: 60, batch_size: 4 },
    analysis: { ...base.analysis, max_events: 10, random_ablation_draws: 1 },
    stats: { ...base.stats, bootstrap_samples: 50 },
    phase2: {
      ...base.phase2,
      max_examples: 3,
      num_samples_per_prompt: 2,
      subset_sweep: { ...base.phase2.subset_sweep, enabled: true },
      scale_sweep: { ...base.phase2.scale_sweep, enabled: true, scales: [0] },
      continuation_ablation: { ...base.phase2.continuation_ablation, enabled: false },
      steering: { ...base.phase2.steering, enabled: true, coefficients: [1] },
      patching: { ...base.phase2.patching, enabled: false },
    },
  }, "organism (sharding test)");
}

/** Write `<root>/config.yaml`; returns its path. */
export async function writeSmallShardConfig(root: string): Promise<string> {
  const path = `${root}/config.yaml`;
  await Deno.writeTextFile(path, resolvedConfigYaml(await smallShardConfig(root)));
  return path;
}

if (import.meta.main) console.log(await writeSmallShardConfig(Deno.args[0]!));
