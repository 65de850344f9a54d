import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, parseConfig, resolvedConfigYaml } from "../../experiments/backtracking/config.ts";
import { ArtifactExistsError } from "../../experiments/backtracking/run.ts";
import { readOrganismManifest } from "../../lib/engine/organism.ts";
import { readEventsCsv } from "../../experiments/backtracking/events.ts";
import { detectEvents, runPipeline } from "../../experiments/backtracking/steps/mod.ts";
import { main } from "../../experiments/backtracking/cli/main.ts";

const ORGANISM = fileURLToPath(new URL("../../configs/organism.yaml", import.meta.url));

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The organism config, shrunk for a test. */
async function smallConfig(root: string) {
  const base = await loadConfig(ORGANISM);
  return parseConfig({
    ...structuredClone(base),
    run: { ...base.run, output_dir: root },
    dataset: { ...base.dataset, max_examples: 8 },
    generation: { ...base.generation, num_samples_per_prompt: 3, max_new_tokens: 120 },
    analysis: { ...base.analysis, max_events: 30, random_ablation_draws: 2 },
    stats: { ...base.stats, bootstrap_samples: 200 },
  }, "organism (test)");
}

Deno.test("pipeline on the model organism: every artifact, planted components selected", async () => {
  const root = await Deno.makeTempDir({ prefix: "pipeline_test_" });
  try {
    const cfg = await smallConfig(root);
    const logs: string[] = [];
    const { ctx, reportPath, timings } = await runPipeline(cfg, {
      runId: "e2e",
      progress: "silent",
      projectFigures: join(root, "figures"),
      log: (l) => logs.push(l),
    });
    const dir = ctx.run.dir;
    for (
      const f of [
        "config_resolved.yaml",
        "meta.json",
        "data/problems.jsonl",
        "generations/baseline_think_newline/baseline.jsonl",
        "generations/think_same_line/baseline.jsonl",
        "generations/no_think_tags/baseline.jsonl",
        "generations/baseline_think_newline/targeted_ablation.jsonl",
        "generations/baseline_think_newline/random_ablation_0.jsonl",
        "generations/baseline_think_newline/random_ablation_1.jsonl",
        "generations/baseline_think_newline/reference_selection_ablation.jsonl",
        "analysis/backtracking_events.csv",
        "analysis/summary_metrics.json",
        "analysis/summary_metrics_corrected.json",
        "analysis/logit_lens.csv",
        "analysis/logit_lens_reference.csv",
        "analysis/ablation_importance.csv",
        "analysis/selected_layers.json",
        "analysis/random_ablation_specs.json",
        "analysis/head_dla.csv",
        "analysis/head_ablation.csv",
        "analysis/head_attention.csv",
        "analysis/head_scan.json",
        "figures/head_dla_heatmap.png",
        "figures/head_attention_by_class.png",
        "analysis/condition_comparison.csv",
        "analysis/condition_comparison_corrected.json",
        "analysis/formatting_summary.csv",
        "analysis/formatting_summary_corrected.json",
        "analysis/protocol_validation.json",
        "analysis/protocol_validation.csv",
        "figures/bt_rate_by_condition.svg",
        "figures/logit_lens_by_layer.png",
        "report.md",
      ]
    ) assert.ok(await exists(join(dir, f)), `missing ${f}`);
    assert.equal(reportPath, join(dir, "report.md"));
    assert.ok(await exists(join(root, "figures", "bt_rate_by_condition.svg")), "figures copied");
    assert.deepEqual(timings.map((t) => t.step), [
      "init-run",
      "prepare-data",
      "generate baseline",
      "detect-events",
      "logit-lens",
      "ablation-scan",
      "head-scan",
      "generate targeted_ablation",
      "generate random_ablation",
      "generate reference_selection_ablation",
      "detect-events (all conditions)",
      "compare-conditions",
      "protocol-validation",
      "formatting-sweep",
      "make-report",
    ]);

    const meta = JSON.parse(await Deno.readTextFile(join(dir, "meta.json")));
    assert.equal(meta.execution_provider.used, "cpu");
    assert.equal(meta.model.source, "organism");
    assert.match(Object.values(meta.model.weight_hashes)[0] as string, /^[0-9a-f]{64}$/);

    const manifest = await readOrganismManifest(meta.model.dir);
    // The head scan names the planted heads among its top heads, and the report has its section.
    const heads = JSON.parse(await Deno.readTextFile(join(dir, "analysis/head_scan.json")));
    const topHeads = heads.top_heads.map((h: { layer: number; head: number }) => `L${h.layer}H${h.head}`);
    for (const p of manifest.planted.filter((p) => p.head !== undefined)) {
      assert.ok(topHeads.includes(`L${p.layer}H${p.head}`), `planted L${p.layer}H${p.head} in ${topHeads}`);
    }
    assert.match(await Deno.readTextFile(reportPath), /## Heads: direct logit attribution/);
    const selected = JSON.parse(await Deno.readTextFile(join(dir, "analysis/selected_layers.json")));
    const planted = (c: string) => manifest.planted.filter((p) => p.component === c).map((p) => p.layer);
    assert.deepEqual(selected, { attn: planted("attn"), mlp: planted("mlp") });

    const rows = await readEventsCsv(join(dir, "analysis/backtracking_events.csv"));
    const rate = (cond: string) => {
      const g = rows.filter((r) => r.variant === "baseline_think_newline" && r.condition === cond);
      return g.filter((r) => r.has_backtracking_strict).length / g.length;
    };
    assert.ok(rate("baseline") > 0.2, `baseline BT rate ${rate("baseline")}`);
    assert.ok(rate("targeted_ablation") < rate("baseline") / 4, `targeted ${rate("targeted_ablation")}`);

    // Issue 5 acceptance, read from the run's own artifacts (the corrected comparison).
    type Comparison = {
      condition: string;
      vs_baseline?: {
        relative_bt_change: { value: number };
        delta_bt_rate: { difference: number; bootstrap: { lower: number; upper: number } };
      };
    };
    const comparison = JSON.parse(
      await Deno.readTextFile(join(dir, "analysis/condition_comparison_corrected.json")),
    ) as { conditions: Comparison[] };
    const targeted = comparison.conditions.find((c) => c.condition === "targeted_ablation")!.vs_baseline!;
    assert.ok(
      targeted.relative_bt_change.value <= -0.8,
      `targeted relative change ${targeted.relative_bt_change.value}`,
    );
    assert.ok(targeted.delta_bt_rate.bootstrap.upper < 0, "targeted Δ BT CI must exclude 0");
    const randoms = comparison.conditions.filter((c) => c.condition.startsWith("random_ablation"));
    assert.ok(randoms.length >= 2, `expected several random draws, got ${randoms.length}`);
    // Random draws have real, CI-bounded effects (every component carries noise): not a [0, 0] interval.
    for (const r of randoms) {
      const d = r.vs_baseline!.delta_bt_rate;
      assert.ok(Number.isFinite(d.bootstrap.lower) && Number.isFinite(d.bootstrap.upper), r.condition);
      assert.ok(d.bootstrap.upper > d.bootstrap.lower, `${r.condition}: degenerate CI ${JSON.stringify(d)}`);
    }

    // Protocol validation (issue 13): ours recovers >= 2/3 of the planted circuit and no decoy; the
    // reference's signed top-k takes the decoy, and its ablation is flagged as degenerate.
    const pv = JSON.parse(await Deno.readTextFile(join(dir, "analysis/protocol_validation.json")));
    assert.ok(pv.expected.passed, `protocol validation: ${pv.expected.failures.join("; ")}`);
    assert.ok(pv.ours.selection.recall >= 2 / 3 - 1e-9, `ours recall ${pv.ours.selection.recall}`);
    assert.equal(pv.ours.selection.decoy_selected, false);
    assert.equal(pv.reference.selection.decoy_selected, true);
    assert.equal(pv.reference.ablation.condition, "reference_selection_ablation");
    assert.ok(pv.reference.ablation.degeneration.degenerate, JSON.stringify(pv.reference.ablation));
    assert.ok(pv.reference.ablation.delta_bt_rate < 0, "the reference's 'backtracking drop'");
    assert.equal(pv.ours.ablation.degeneration.degenerate, false, JSON.stringify(pv.ours.ablation));
    const report = await Deno.readTextFile(reportPath);
    assert.match(report, /## What this model is\n\n\*\*This run is on a model organism/);
    assert.match(report, /### Verdict: planted vs recovered/);
    assert.match(report, /## Protocol validation/);
    assert.doesNotMatch(report, /committed numbers/, "no real-model numbers beside the organism's");
    assert.match(report, /\| reference_selection_ablation \|.*DEGENERATE/);

    // The logit lens against token- and position-matched controls: no contrast at the embedding; the
    // contrast rises where the planted components write (resid index l + 1), and little elsewhere.
    const lens = (await Deno.readTextFile(join(dir, "analysis/logit_lens.csv"))).trim().split("\n");
    const header = lens[0]!.split(",");
    const col = header.indexOf("diff_logprob_estimate");
    assert.ok(col >= 0, header.join(","));
    const diff = lens.slice(1).map((line) => Number(line.split(",")[col]));
    assert.ok(Math.abs(diff[0]!) < 0.05, `contrast at the embedding ${diff[0]}`);
    const plantedOutputs = new Set(manifest.planted.map((p) => p.layer + 1));
    diff.slice(1).forEach((v, i) => {
      const layer = i + 1, rise = v - diff[i]!;
      if (plantedOutputs.has(layer)) {
        assert.ok(rise > 0.2, `contrast rise ${rise} at layer ${layer} (${diff})`);
      } else {assert.ok(
          Math.abs(rise) < 0.3,
          `contrast moves ${rise} at non-planted layer ${layer} (${diff})`,
        );}
    });

    // Finished artifacts are not silently overwritten; --force replaces them.
    await assert.rejects(() => detectEvents(ctx), ArtifactExistsError);
    const cfgFile = join(root, "config.yaml");
    await Deno.writeTextFile(cfgFile, resolvedConfigYaml(cfg));
    assert.equal(await main(["detect-events", "-c", cfgFile, "--run-id", "e2e"]), 1);
    assert.equal(await main(["detect-events", "-c", cfgFile, "--run-id", "e2e", "--force"]), 0);
    assert.equal(await main(["init-run", "-c", cfgFile]), 0, "init-run from the CLI");
    assert.notEqual((await Deno.readTextFile(join(root, ".current_run_id"))).trim(), "e2e");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("CLI: unknown flag for a step is a usage error", async () => {
  assert.equal(await main(["prepare-data", "--variant", "x"]), 2);
  assert.equal(await main(["generate", "--bogus"]), 2);
});
