/**
 * Phase 2 on the model organism (one small run shared by every step): the sweeps, the continuation
 * ablation, steering and activation patching, checked against the planted circuit with CIs.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, parseConfig } from "../../experiments/backtracking/config.ts";
import { readOrganismManifest } from "../../lib/engine/organism.ts";
import { localise, type PatchSummaryRow } from "../../lib/interp/activation_patching.ts";
import { subsetInterventions } from "../../experiments/backtracking/phase2/subsets.ts";
import { readCsv } from "../../lib/tables/table.ts";
import {
  disposeContext,
  ensureModel,
  readGenerations,
  runPipeline,
  type StepContext,
} from "../../experiments/backtracking/steps/mod.ts";
import { generateSetting, phase2Setup } from "../../experiments/backtracking/phase2/setup.ts";

const ORGANISM = fileURLToPath(new URL("../../configs/organism.yaml", import.meta.url));

Deno.test("phase 2 on the model organism", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "phase2_test_" });
  try {
    const base = await loadConfig(ORGANISM);
    const cfg = parseConfig({
      ...structuredClone(base),
      run: { ...base.run, output_dir: root },
      dataset: { ...base.dataset, max_examples: 12 },
      prompting: { ...base.prompting, formatting_variants: base.prompting.formatting_variants.slice(0, 1) },
      generation: { ...base.generation, num_samples_per_prompt: 4, max_new_tokens: 150 },
      analysis: { ...base.analysis, max_events: 40, random_ablation_draws: 1 },
      stats: { ...base.stats, bootstrap_samples: 400 },
      // The code defaults (configs/organism.yaml trims them for the pipeline's time budget).
      phase2: {
        ...base.phase2,
        num_samples_per_prompt: 4,
        scale_sweep: { ...base.phase2.scale_sweep, scales: [0.0, 0.25, 0.5, 0.75, 0.9] },
        continuation_ablation: { ...base.phase2.continuation_ablation, scales: [0.0, 0.5, 0.9] },
        steering: { ...base.phase2.steering, coefficients: [-1, -0.5, 0.5, 1] },
      },
    }, "organism (phase 2 test)");
    const t0 = performance.now();
    const { ctx, phase2Timings, reportPath } = await runPipeline(cfg, {
      runId: "p2",
      progress: "silent",
      projectFigures: null,
      log: () => {},
    });
    console.log(`pipeline with phase 2: ${((performance.now() - t0) / 1000).toFixed(1)} s`, phase2Timings);
    const dir = ctx.run.dir;
    const meta = JSON.parse(await Deno.readTextFile(join(dir, "meta.json")));
    const manifest = await readOrganismManifest(meta.model.dir);
    const plantedLayer = (c: "attn" | "mlp") => manifest.planted.find((p) => p.component === c)!.layer;
    const steerHook = () => Math.min(plantedLayer("mlp") + 1, manifest.options.numLayers - 1);
    const table = async (rel: string) => (await readCsv(join(dir, rel))).records;
    const num = (r: Record<string, string>, k: string) => Number(r[k]);

    await t.step("every Phase-2 artifact, generation store and report section exists", async () => {
      assert.deepEqual(phase2Timings.map((x) => x.step), [
        "phase2-sweeps",
        "phase2-steering",
        "phase2-continuation",
        "phase2-patching",
      ]);
      for (
        const f of [
          "analysis/subset_sweep_results.csv",
          "analysis/scale_sweep_results.csv",
          "analysis/phase2_events.csv",
          "analysis/continuation_ablation_results.csv",
          "analysis/continuation_ablation_summary.csv",
          "analysis/steering_directions.json",
          "analysis/steering_results.csv",
          "analysis/patching_results.csv",
          "analysis/patching_summary.csv",
          "generations/baseline_think_newline/phase2_selected_all_s0.jsonl",
          "generations/baseline_think_newline/phase2_selected_all_s0.5.jsonl",
          "figures/phase2_tradeoff.png",
          "figures/steering_dose_response.png",
          "figures/intervention_tradeoff.svg",
          "figures/continuation_onset_prob.png",
          "figures/patching_bt_from_control.png",
        ]
      ) await Deno.stat(join(dir, f));
      const report = await Deno.readTextFile(reportPath);
      for (const s of ["sweeps", "steering along", "continuation ablation", "activation patching"]) {
        assert.match(report, new RegExp(`## Phase 2: .*${s}`), `report section "${s}"`);
      }
    });

    await t.step(
      "subset sweep: baseline first, gold aligned, planted subsets remove their triggers",
      async () => {
        const rows = await table("analysis/subset_sweep_results.csv");
        assert.deepEqual(Object.keys(rows[0]!).slice(0, 7), [
          "total",
          "backtracking_count",
          "backtracking_rate",
          "correct_count",
          "accuracy",
          "subset_name",
          "num_components",
        ]);
        assert.equal(rows[0]!.setting, "baseline");
        // Gold by example id: the baseline row's accuracy is Phase 1's on the same samples.
        const events = await table("analysis/backtracking_events.csv");
        const phase1 = events.filter((r) =>
          r.condition === "baseline" && r.variant === "baseline_think_newline"
        );
        assert.equal(
          num(rows[0]!, "correct_count"),
          phase1.filter((r) => r.answer_status === "correct").length,
        );
        assert.equal(num(rows[0]!, "total"), phase1.length);
        const by = (name: string) => rows.find((r) => r.subset_name === name)!;
        assert.equal(num(by("selected_mlp"), "rate_wait"), 0, "planted MLP off: no Wait");
        assert.equal(num(by("selected_mlp"), "rate_hold_on"), 0, "planted MLP off: no Hold on");
        assert.equal(num(by("selected_attn"), "rate_actually"), 0, "planted attention off: no Actually");
        assert.ok(num(by("selected_all"), "delta_bt_rate_upper") < 0, "both off: BT rate drops (CI)");
      },
    );

    await t.step("scale sweep: BT rate monotone in scale within CIs, scale 1.0 = baseline", async () => {
      const rows = await table("analysis/scale_sweep_results.csv");
      const scales = rows.map((r) => num(r, "scale"));
      assert.deepEqual(scales, [0, 0.25, 0.5, 0.75, 0.9, 1]);
      for (let i = 0; i < rows.length; i++) {
        for (let j = i + 1; j < rows.length; j++) {
          assert.ok(
            num(rows[i]!, "bt_rate_lower") <= num(rows[j]!, "bt_rate_upper"),
            `BT(scale ${scales[i]}) CI lies above BT(scale ${scales[j]}) CI`,
          );
        }
      }
      const one = rows.at(-1)!;
      const baseline = (await table("analysis/subset_sweep_results.csv"))[0]!;
      for (const k of ["total", "backtracking_count", "correct_count", "bt_rate_lower", "bt_rate_upper"]) {
        assert.equal(one[k], baseline[k], `scale 1.0 row ${k}`);
      }
      assert.ok(
        num(rows[0]!, "bt_rate_upper") < num(one, "bt_rate_lower"),
        "scale 0 is clearly below baseline",
      );
      // Scale 1 is the identity: generating it reproduces the baseline token for token.
      const setup = await phase2Setup(ctx);
      const small = { ...setup, problems: setup.problems.slice(0, 2), prompts: setup.prompts.slice(0, 2) };
      const all = setup.subsets.find((s) => s.name === "selected_all")!;
      const recs = await generateSetting(ctx, small, "phase2_selected_all_s1", subsetInterventions(all, 1));
      const baseRecs = await readGenerations(ctx.run, setup.variant, "baseline");
      for (const r of recs) {
        const b = baseRecs.find((x) => x.example_id === r.example_id && x.sample_id === r.sample_id)!;
        assert.deepEqual(r.completion_token_ids, b.completion_token_ids);
      }
    });

    await t.step(
      "continuation ablation: real measurements; planted subset at scale 0 kills the onset token",
      async () => {
        const rows = await table("analysis/continuation_ablation_results.csv");
        assert.ok(rows.length >= 40, `${rows.length} rows`);
        for (const r of rows) {
          assert.ok(num(r, "clean_prob") > 0 && num(r, "clean_prob") <= 1);
          assert.ok(Number.isFinite(num(r, "onset_logit")));
        }
        const summary = await table("analysis/continuation_ablation_summary.csv");
        const s = (subset: string, scale: number, trigger = "all") =>
          summary.find((r) =>
            r.subset_name === subset && num(r, "scale") === scale && r.trigger === trigger
          )!;
        assert.ok(num(s("selected_all", 0), "delta_logprob_upper") < -2);
        assert.ok(num(s("selected_all", 0.9), "delta_logprob_upper") < 0);
        assert.ok(
          num(s("selected_all", 0), "onset_prob_mean") < num(s("selected_all", 0.5), "onset_prob_mean"),
        );
        assert.ok(
          num(s("selected_all", 0.5), "onset_prob_mean") < num(s("selected_all", 0.9), "onset_prob_mean"),
        );
        assert.ok(
          Math.abs(num(s("random_matched", 0), "delta_logprob_mean")) < 0.5,
          "random subset: no effect",
        );
        // The distributed circuit: the planted head and MLP both write " Wait"; the MLP alone is part of it.
        assert.ok(
          num(s("selected_mlp", 0, "Wait"), "delta_logprob_upper") < -0.5,
          "Wait needs the planted MLP (with the planted head)",
        );
        assert.ok(num(s("selected_all", 0, "Wait"), "delta_logprob_upper") < -2, "Wait needs the circuit");
      },
    );

    await t.step(
      "steering along the planted direction: adding raises the trigger rate relative to subtracting",
      async () => {
        const rows = await table("analysis/steering_results.csv");
        const r = (direction: string, coef: number) =>
          rows.find((x) => x.direction === direction && num(x, "coef") === coef)!;
        // Organism v2: the planted direction is one of three writers, so the dose-response is modest (about
        // ±5 points at ±1 on 80 samples): ordered point estimates, not CIs excluding 0.
        assert.ok(
          num(r("planted_wait", 1), "backtracking_rate") > num(r("planted_wait", -1), "backtracking_rate"),
          "adding raises the BT rate relative to subtracting",
        );
        assert.ok(num(r("planted_wait", 1), "rate_wait") > num(r("planted_wait", -1), "rate_wait"));
        const dirs = JSON.parse(await Deno.readTextFile(join(dir, "analysis/steering_directions.json")));
        assert.equal(dirs.layers.length, manifest.options.numLayers + 1);
        // Read after the planted MLP's block, added at the next hook_resid_pre (the block's own for the last).
        assert.equal(dirs.hook_layer, steerHook());
      },
    );

    await t.step("activation patching localises the planted components", async () => {
      const summary = JSON.parse(await Deno.readTextFile(join(dir, "analysis/phase2_patching.json")))
        .summary as PatchSummaryRow[];
      // The planted writers of each trigger (organism v2: attn 2 and mlp 4 write " Wait", attn 6 " Actually").
      const writers = (t: string) =>
        manifest.planted.filter((p) => p.promotes.includes(` ${t}`)).map((p) => `${p.component} ${p.layer}`);
      const at = (x: { component: string; layer: number }) => `${x.component} ${x.layer}`;
      const wait = localise(summary, "bt_from_control", "Wait");
      assert.ok(writers("Wait").includes(at(wait)), `Wait localised at ${at(wait)}, not ${writers("Wait")}`);
      assert.ok(wait.delta_logprob_upper < 0);
      const act = localise(summary, "bt_from_control", "Actually");
      assert.ok(writers("Actually").includes(at(act)), `Actually localised at ${at(act)}`);
      assert.ok(act.delta_logprob_upper < 0);
      const back = localise(summary, "control_from_bt", "Wait");
      assert.ok(writers("Wait").includes(at(back)), `Wait (control from BT) localised at ${at(back)}`);
      assert.ok(back.delta_logprob_lower > 0);
      // Components off the trigger path do nothing at the onset position.
      for (const row of summary.filter((x) => x.direction === "bt_from_control" && x.trigger === "all")) {
        if (row.component === "mlp" && row.layer !== plantedLayer("mlp")) {
          assert.ok(Math.abs(row.delta_logprob_mean) < 0.1, `mlp ${row.layer}: ${row.delta_logprob_mean}`);
        }
      }
    });

    await t.step("re-running Phase 2 reuses every finished output", async () => {
      const { runPhase2 } = await import("../../experiments/backtracking/steps/phase2_run.ts");
      await ensureModel(ctx);
      const again = await runPhase2(ctx);
      assert.deepEqual(
        [again.sweeps?.status, again.steering?.status, again.continuation?.status, again.patching?.status],
        ["reused", "reused", "reused", "reused"],
      );
      await disposeContext(ctx);
    });

    await t.step("phase2.steering / phase2.patching keys take effect (small settings)", async () => {
      const L = manifest.options.numLayers;
      const configured = (phase2: Record<string, unknown>): StepContext => ({
        config: parseConfig({
          ...structuredClone(cfg),
          phase2: { ...structuredClone(cfg.phase2), ...phase2 },
        }, "t"),
        run: ctx.run,
        progress: "silent" as const,
        log: () => {},
      });
      // enabled: false skips the steps; the other analyses are reused.
      const c1 = configured({ steering: { enabled: false }, patching: { enabled: false } });
      const { runPhase2 } = await import("../../experiments/backtracking/steps/phase2_run.ts");
      const off = await runPhase2(c1);
      assert.deepEqual(off.timings.map((x) => x.step), ["phase2-sweeps", "phase2-continuation"]);
      assert.equal(off.steering, undefined);
      assert.equal(off.patching, undefined);
      // A custom coefficient list on 2 problems × 1 sample; patching of one MLP layer on 5 events.
      const c2 = configured({
        steering: { coefficients: [2], max_examples: 2, num_samples_per_prompt: 1 },
        patching: { components: ["mlp"], layers: [L - 1], max_events: 5 },
      });
      try {
        const on = await runPhase2(c2, { sweeps: false, continuation: false });
        assert.equal(on.steering?.status, "ran", "settings changed: recomputed, not reused");
        const rows = await table("analysis/steering_results.csv");
        assert.deepEqual(rows.map((r) => [r.direction, num(r, "coef"), num(r, "total")]), [
          ["meandiff", 0, 2],
          ["meandiff", 2, 2],
          ["planted_wait", 0, 2],
          ["planted_wait", 2, 2],
        ]);
        await Deno.stat(
          // The steering site defaults to the scan's top MLP (the planted one), added at the next block.
          join(
            dir,
            `generations/baseline_think_newline/phase2_steer_meandiff_l${steerHook()}_c2.jsonl`,
          ),
        );
        assert.equal(on.patching?.status, "ran");
        assert.ok(on.patching!.n_pairs > 0 && on.patching!.n_pairs <= 5, `${on.patching!.n_pairs} pairs`);
        const patched = await table("analysis/patching_results.csv");
        assert.equal(patched.length, on.patching!.n_pairs * 2);
        assert.ok(patched.every((r) => r.component === "mlp" && num(r, "layer") === L - 1));
        // The same settings again: reused. Direction "planted": only the planted wait direction.
        assert.equal(
          (await runPhase2(c2, { sweeps: false, continuation: false })).steering?.status,
          "reused",
        );
        const c3 = {
          ...configured({
            steering: { coefficients: [2], max_examples: 2, num_samples_per_prompt: 1, direction: "planted" },
          }),
          model: c2.model!, // the loaded model, shared
        };
        const planted = await runPhase2(c3, { sweeps: false, continuation: false, patching: false });
        assert.deepEqual(planted.steering?.directions_steered.map((d) => d.label), ["planted_wait"]);
        await Deno.stat(join(dir, "figures/steering_dose_response.svg"));
      } finally {
        await disposeContext(c2);
      }
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
