/**
 * compare-conditions gives the same numbers however the event rows arrive (issue 15, fault 3): a
 * property test over shuffled row orders, on a run folder, through the real step and CSV reader, with the
 * case of the issue (baseline 25/48 backtracking, targeted 0/48) and its right values.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, parseConfig } from "../../experiments/backtracking/config.ts";
import type { EventRow } from "../../experiments/backtracking/event_row.ts";
import { eventRow } from "../_event_rows.ts";
import { eventsToCsv } from "../../experiments/backtracking/events.ts";
import { compareToBaseline } from "../../experiments/backtracking/metrics.ts";
import { createRun } from "../../experiments/backtracking/run.ts";
import { seededRng, shuffleInPlace } from "../../lib/stats/stats.ts";
import { compareConditions } from "../../experiments/backtracking/steps/compare_conditions.ts";
import type { PairedComparison } from "../../experiments/backtracking/metrics.ts";

const ORGANISM = fileURLToPath(new URL("../../configs/organism.yaml", import.meta.url));

function row(example: number, sample: number, condition: string, bt: boolean, correct: boolean): EventRow {
  return eventRow({
    example_id: example,
    sample_id: sample,
    variant: "baseline_think_newline",
    condition,
    bt,
    onset_token_text: bt ? " Wait" : "",
    predicted_answer: correct ? "5" : "4",
    is_correct: correct,
    completion_tokens: 40 + example + sample,
    triggers_per_1k: bt ? 25 : 0,
    trigger_counts: bt ? { Wait: 1 } : {},
    gold: 5,
    answer_status: correct ? "correct" : "incorrect",
    answer_method: "final_line",
    correct_reference: correct,
    repetition_4gram: 0,
    distinct_2: 1,
    answer_region: "",
    final_answer: undefined,
    onset_type: "",
    onset_rule: "",
  });
}

/** 16 problems × 3 samples: baseline backtracks in 25 of 48, the targeted ablation in none, two random draws. */
function issueRows(): EventRow[] {
  const rng = seededRng(7);
  const out: EventRow[] = [];
  let k = 0;
  for (let e = 0; e < 16; e++) {
    for (let s = 0; s < 3; s++) {
      const bt = k++ < 25 ? (e * 3 + s) % 2 === 0 || e >= 12 : false;
      const ok = rng() < 0.6;
      out.push(row(e, s, "baseline", bt, ok));
      out.push(row(e, s, "targeted_ablation", false, ok));
      out.push(row(e, s, "random_ablation_0", bt !== (rng() < 0.1), ok));
      out.push(row(e, s, "random_ablation_1", bt !== (rng() < 0.1), rng() < 0.6));
    }
  }
  return out;
}

Deno.test("compare-conditions: identical JSON over shuffled row orders; relative change of a full cut is −100%", async () => {
  const root = await Deno.makeTempDir({ prefix: "compare_test_" });
  try {
    const base = await loadConfig(ORGANISM);
    const cfg = parseConfig({
      ...structuredClone(base),
      run: { ...base.run, output_dir: root },
      stats: { ...base.stats, bootstrap_samples: 400 },
    }, "t");
    const rows = issueRows();
    const nBt = rows.filter((r) => r.condition === "baseline" && r.has_backtracking_strict).length;
    const outputs: string[] = [];
    const rng = seededRng(11);
    for (let trial = 0; trial < 6; trial++) {
      const run = await createRun(cfg, { runId: `t${trial}` });
      const order = trial === 0 ? [...rows] : shuffleInPlace([...rows], rng);
      await Deno.mkdir(join(run.dir, "analysis"));
      await Deno.writeTextFile(join(run.dir, "analysis/backtracking_events.csv"), eventsToCsv(order));
      await compareConditions({ config: cfg, run, log: () => {} });
      const files = await Promise.all(
        [
          "condition_comparison_corrected.json",
          "condition_comparison_corrected.csv",
          "condition_comparison.csv",
        ]
          .map((f) => Deno.readTextFile(join(run.dir, "analysis", f))),
      );
      outputs.push(files.join("\n----\n"));
      const json = JSON.parse(files[0]!) as {
        conditions: { condition: string; vs_baseline?: PairedComparison }[];
      };
      assert.deepEqual(json.conditions.map((c) => c.condition), [
        "baseline",
        "targeted_ablation",
        "random_ablation_0",
        "random_ablation_1",
      ]);
      const t = json.conditions[1]!.vs_baseline!;
      assert.equal(t.delta_bt_rate.difference, -nBt / 48);
      assert.equal(t.relative_bt_change.value, -1, `trial ${trial}: relative change of a full cut`);
      assert.deepEqual(t.relative_bt_change.bootstrap, { lower: -1, upper: -1 });
      assert.notDeepEqual(t.relative_bt_change.bootstrap, t.delta_bt_rate.bootstrap);
      for (const c of json.conditions.slice(2)) {
        const v = c.vs_baseline!;
        const g = rows.filter((r) => r.condition === c.condition);
        const so = g.filter((r) => r.has_backtracking_strict).length;
        assert.ok(Math.abs(v.relative_bt_change.value - (so - nBt) / nBt) < 1e-12, c.condition);
      }
    }
    for (let i = 1; i < outputs.length; i++) {
      assert.ok(outputs[i] === outputs[0], `shuffled order ${i} changed the comparison files`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("compareToBaseline does not depend on the order of either side, nor on earlier calls", () => {
  const rows = issueRows();
  const baseline = rows.filter((r) => r.condition === "baseline");
  const other = rows.filter((r) => r.condition === "random_ablation_1");
  const opts = { bootstrap: 300, seed: 3, level: 0.95 };
  const want = JSON.stringify(compareToBaseline(baseline, other, opts));
  const rng = seededRng(5);
  for (let i = 0; i < 20; i++) {
    const b = shuffleInPlace([...baseline], rng);
    const o = shuffleInPlace([...other], rng);
    assert.equal(JSON.stringify(compareToBaseline(b, o, opts)), want, `order ${i}`);
    assert.equal(JSON.stringify(compareToBaseline(b, o, opts)), want, `order ${i}, called again`);
  }
});
