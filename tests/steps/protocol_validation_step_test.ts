/**
 * The step `protocol-validation` on synthetic run artifacts (no model): which generation condition it reads
 * for each protocol's selection, the degeneration flags of each ablation, the expected-outcome check, and
 * its refusal without a ground truth. The organism end to end is in tests/steps/pipeline_test.ts.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { ScanRow } from "../../lib/interp/ablation_scan.ts";
import { parseConfig } from "../../experiments/backtracking/config.ts";
import type { EventRow } from "../../experiments/backtracking/event_row.ts";
import { eventRow } from "../_event_rows.ts";
import { compareToBaseline, summarizeCondition } from "../../experiments/backtracking/metrics.ts";
import type { Run } from "../../experiments/backtracking/run.ts";
import { writeConditionComparison, writeScanTables } from "../../experiments/backtracking/artifacts/mod.ts";
import { protocolValidation } from "../../experiments/backtracking/steps/protocol_validation.ts";
import { conditionSpecs } from "../../experiments/backtracking/steps/generate.ts";

function scanRow(component: "attn" | "mlp", layer: number, dlogit: number, spec: number): ScanRow {
  return {
    layer,
    component,
    n_events: 20,
    delta_logprob_mean: dlogit,
    delta_logprob_std: 0.5,
    delta_logprob_lower: dlogit - 0.2,
    delta_logprob_upper: dlogit + 0.2,
    delta_logit_mean: dlogit,
    delta_logit_std: 0.3,
    n_controls: 20,
    control_delta_logprob_mean: 0,
    control_delta_logprob_lower: 0,
    control_delta_logprob_upper: 0,
    control_trigger_delta_logprob_mean: 0,
    n_pairs: 20,
    specificity_mean: spec,
    specificity_lower: spec - 0.05,
    specificity_upper: spec + 0.05,
    level: 0.95,
  };
}

/** 10 problems × 4 samples; `broken`: never stops, no answer. */
function rows(condition: string, bt: boolean, broken: boolean): EventRow[] {
  const out: EventRow[] = [];
  for (let e = 0; e < 10; e++) {
    for (let s = 0; s < 4; s++) {
      const b = bt && (e + s) % 2 === 0;
      out.push(eventRow({
        example_id: e,
        sample_id: s,
        variant: "v",
        condition,
        bt: b,
        onset_char: b ? 3 : -1,
        onset_token_in_completion: b ? 1 : -1,
        onset_token_in_full: b ? 9 : -1,
        onset_token_id: b ? 13824 : -1,
        onset_token_text: b ? " Wait" : "",
        pred_pos_in_full: b ? 8 : -1,
        predicted_answer: broken ? "" : "3",
        is_correct: broken ? undefined : false,
        prompt_tokens: 8,
        completion_tokens: broken ? 150 : 50,
        triggers_per_1k: b ? 20 : 0,
        reasoning_closed: !broken,
        finish_reason: broken ? "length" : "eos",
        gold: 5,
        answer_status: broken ? "unfinished" : "incorrect",
        answer_method: broken ? "none" : "final",
        answer_region: broken ? "" : "answer",
        final_answer: broken ? undefined : 3,
        onset_type: b ? "other" : "",
        trajectory: b ? (broken ? "unfinished" : "no_candidate") : "",
        correct_reference: false,
        repetition_4gram: 0,
        distinct_2: 1,
      }));
    }
  }
  return out;
}

const ORGANISM = {
  description: "A constructed model.",
  planted: [{ component: "attn", layer: 2, role: "head" }, { component: "mlp", layer: 4, role: "unit" }],
  decoy: [{ component: "mlp", layer: 0, role: "decoy" }],
};

async function fixture(protocol: "corrected" | "reference", withOrganism = true) {
  const root = await Deno.makeTempDir({ prefix: "pv_step_" });
  const run: Run = { id: "t", root, dir: join(root, "t") };
  await Deno.mkdir(run.dir, { recursive: true });
  await Deno.writeTextFile(
    join(run.dir, "meta.json"),
    JSON.stringify({ run_id: "t", model: withOrganism ? { organism: ORGANISM } : { model_id: "x" } }),
  );
  const config = parseConfig({
    protocol,
    prompting: { formatting_variants: [{ name: "v", think_open: "<think>\n", think_close: "\n</think>\n" }] },
    analysis: { topk_layers_for_generation: 2 },
    stats: { bootstrap_samples: 50 },
  }, "test");
  const scan = [
    scanRow("mlp", 0, -17, 0.05), // the decoy: huge raw Δlogit, no specificity
    scanRow("attn", 2, -2.4, -2),
    scanRow("mlp", 4, -1, -1),
    scanRow("attn", 1, -0.05, -0.02), // noise: CI below 0 but above -0.1
    scanRow("mlp", 3, 0.1, 0.01),
  ];
  const selected = protocol === "corrected" ? { attn: [2], mlp: [4] } : { attn: [2, 1], mlp: [0, 4] };
  await writeScanTables(run, {
    rows: scan,
    selected,
    random: { mode: "matched", seed: 0, selected, draws: [] },
  });
  const base = rows("baseline", true, false);
  const conds = new Map([["baseline", base], ["targeted_ablation", rows("targeted_ablation", false, false)]]);
  if (protocol === "corrected") {
    conds.set("reference_selection_ablation", rows("reference_selection_ablation", false, true));
  } else conds.set("targeted_ablation", rows("targeted_ablation", false, true));
  const opts = { bootstrap: 50, seed: 0 };
  await writeConditionComparison(run, [], {
    variant: "v",
    conditions: [...conds].map(([condition, g]) => ({
      condition,
      summary: summarizeCondition(g, opts),
      vs_baseline: condition === "baseline" ? undefined : compareToBaseline(base, g, opts),
    })),
  });
  return { ctx: { config, run, log: () => {} }, root };
}

Deno.test("protocol-validation: ours = the planted set, clean; the reference takes the decoy and degenerates", async () => {
  const { ctx, root } = await fixture("corrected");
  try {
    const a = await protocolValidation(ctx);
    assert.deepEqual(a.ours.selection.selected, [{ layer: 2, component: "attn" }, {
      layer: 4,
      component: "mlp",
    }]);
    assert.equal(a.ours.selection.recall, 1);
    assert.deepEqual(a.reference.selection.decoys_selected, [{ layer: 0, component: "mlp" }]);
    assert.equal(a.ours.ablation.condition, "targeted_ablation");
    assert.equal(a.ours.ablation.degeneration.degenerate, false);
    assert.equal(a.reference.ablation.condition, "reference_selection_ablation");
    assert.deepEqual(a.reference.ablation.degeneration.flags, [
      "eos_collapse",
      "length_at_cap",
      "unknown_jump",
    ]);
    assert.equal(a.baseline.bt_rate, 0.5);
    assert.equal(a.reference.ablation.delta_bt_rate, -0.5);
    assert.ok(a.expected.passed, a.expected.failures.join("; "));
    assert.equal(a.model_description, "A constructed model.");
    // Finished outputs are not overwritten without force.
    await assert.rejects(() => protocolValidation(ctx), /exists/);
    assert.ok((await protocolValidation(ctx, { force: true })).expected.passed);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("protocol-validation under protocol: reference: targeted_ablation is the reference's; ours not generated", async () => {
  const { ctx, root } = await fixture("reference");
  try {
    const a = await protocolValidation(ctx);
    assert.equal(a.reference.ablation.condition, "targeted_ablation");
    assert.ok(a.reference.ablation.degeneration.degenerate);
    assert.equal(a.ours.ablation.condition, null);
    assert.ok(Number.isNaN(a.ours.ablation.bt_rate));
    assert.equal(a.expected.passed, false);
    assert.deepEqual(a.expected.failures, [
      "our selection was not ablated during generation (targeted_ablation ablates attn 2, attn 1, mlp 0, mlp 4)",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("protocol-validation refuses a run without a ground truth, naming meta.json", async () => {
  const { ctx, root } = await fixture("corrected", false);
  try {
    await assert.rejects(() => protocolValidation(ctx), /meta\.json has no model\.organism/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("generate reference_selection_ablation: the reference's signed top-k, nothing when it is the targeted set", async () => {
  const corrected = await fixture("corrected");
  const reference = await fixture("reference");
  try {
    assert.deepEqual(await conditionSpecs(corrected.ctx, "reference_selection_ablation"), [
      { condition: "reference_selection_ablation", spec: { attn: [2, 1], mlp: [0, 4] } },
    ]);
    assert.deepEqual(await conditionSpecs(reference.ctx, "reference_selection_ablation"), []);
    await assert.rejects(() => conditionSpecs(corrected.ctx, "bogus"), /reference_selection_ablation/);
  } finally {
    await Deno.remove(corrected.root, { recursive: true });
    await Deno.remove(reference.root, { recursive: true });
  }
});
