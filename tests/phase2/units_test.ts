import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadConfig, parseConfig } from "../../experiments/backtracking/config.ts";
import { triggerOfToken } from "../../experiments/backtracking/phase2/continuation.ts";
import { rowInterventions } from "../../lib/interp/positions.ts";
import { cosine, meanDifferenceDirections, steeringSite } from "../../lib/interp/steering.ts";
import {
  ablationCondition,
  configSubsets,
  deriveSubsets,
  steeringCondition,
  subsetInterventions,
} from "../../experiments/backtracking/phase2/subsets.ts";
import {
  pctCI,
  ppCI,
  settingResult,
  settingRow,
  settingsMarkdown,
  triggerColumn,
} from "../../experiments/backtracking/phase2/summaries.ts";
import { tradeoffPoints } from "../../experiments/backtracking/phase2/figures.ts";
import { COLORS } from "../../experiments/backtracking/figures.ts";
import type { EventRow } from "../../experiments/backtracking/event_row.ts";
import { eventRow } from "../_event_rows.ts";
import type { SweepsResult } from "../../experiments/backtracking/artifacts/phase2.ts";
import { seededRng } from "../../lib/stats/stats.ts";
import { pick } from "../../experiments/backtracking/phase2/notebook.ts";
import { patchingSettings } from "../../experiments/backtracking/steps/phase2_patching.ts";
import { phase2Plan } from "../../experiments/backtracking/steps/phase2_run.ts";
import {
  ablationPoints,
  interventionTradeoff,
  steeringSettings,
} from "../../experiments/backtracking/steps/phase2_steering.ts";

Deno.test("subsets: derived from the scan selection and a matched random draw", () => {
  const s = deriveSubsets({ attn: [2], mlp: [3] }, [{ attn: [0], mlp: [1] }, { attn: [1], mlp: [0] }]);
  assert.deepEqual(s.map((x) => x.name), ["selected_mlp", "selected_attn", "selected_all", "random_matched"]);
  assert.deepEqual(subsetInterventions(s[2]!, 0.5), [
    { hook: "blocks.2.hook_attn_out", op: "scale", value: 0.5 },
    { hook: "blocks.3.hook_mlp_out", op: "scale", value: 0.5 },
  ]);
  assert.throws(() => deriveSubsets({ attn: [], mlp: [] }, []), RangeError);
  assert.throws(
    () => configSubsets({ mlp_27_only: [["mlp", 27]] }, 4),
    /mlp_27_only: mlp layer 27 does not exist/,
  );
  assert.equal(ablationCondition("selected_all", 0.25), "phase2_selected_all_s0.25");
  assert.equal(steeringCondition(3, -0.5), "phase2_steer_meandiff_l3_cm0.5");
  assert.equal(triggerColumn("Hold on"), "rate_hold_on");
});

Deno.test("rowInterventions: one scale per (hook, value) and one per-row add per hook", () => {
  const v = new Float32Array([1, 2]);
  const ivs = rowInterventions([
    { edits: [], pos: 5 },
    {
      edits: [{ hook: "blocks.1.hook_mlp_out", op: "scale", value: 0 }, {
        hook: "blocks.1.hook_mlp_out",
        op: "add",
        vector: v,
      }],
      pos: 7,
    },
    { edits: [{ hook: "blocks.1.hook_mlp_out", op: "scale", value: 0 }], pos: 9 },
  ]);
  assert.equal(ivs.length, 2);
  assert.deepEqual(ivs[0], {
    hook: "blocks.1.hook_mlp_out",
    op: "scale",
    value: 0,
    positions: [[], [7], [9]],
  });
  assert.equal(ivs[1]!.op, "add");
  assert.deepEqual(ivs[1]!.positions, [[], [7], []]);
});

Deno.test("triggerOfToken: a token that starts a trigger", () => {
  const t = ["Wait", "Actually", "Hold on"];
  assert.equal(triggerOfToken(" Hold", t), "Hold on");
  assert.equal(triggerOfToken(" Wait", t), "Wait");
  assert.equal(triggerOfToken(" W", t), undefined);
  assert.equal(triggerOfToken(" wait", t), undefined);
});

Deno.test("meanDifferenceDirections: difference of means, separation, steering site", () => {
  const cap = (x: number[]) => ({ resid: [Float32Array.from(x)], attnOut: [], mlpOut: [] });
  const [d] = meanDifferenceDirections([cap([2, 0]), cap([4, 0])], [cap([0, 1]), cap([0, -1])]);
  assert.deepEqual(Array.from(d!.vector), [3, 0]);
  assert.equal(d!.norm, 3);
  assert.ok(d!.separation > 1);
  assert.equal(cosine([1, 0], [0, 2]), 0);
  assert.deepEqual(steeringSite(1, 4), { directionLayer: 2, hookLayer: 2 });
  assert.deepEqual(steeringSite(3, 4), { directionLayer: 4, hookLayer: 3 });
  assert.throws(() => steeringSite(4, 4), RangeError);
});

Deno.test("configs: DeepSeek-R1-Distill-Qwen-7B and -Llama-8B", async () => {
  for (
    const [file, id] of [
      ["r1_distill_qwen_7b.yaml", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"],
      ["r1_distill_llama_8b.yaml", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"],
    ] as const
  ) {
    const c = await loadConfig(fileURLToPath(new URL(`../../configs/${file}`, import.meta.url)));
    assert.equal(c.model.source, id);
    assert.equal(c.model.device, "cuda");
    assert.equal(c.protocol, "corrected");
    assert.deepEqual(c.phase2.subset_sweep.subsets, {}, "subsets derived from the scan");
    assert.deepEqual(c.detection.triggers_strict, ["Wait", "Actually", "Hold on"]);
  }
});

Deno.test("phase2Plan and step settings follow phase2.steering / phase2.patching", () => {
  const plan = (phase2: Record<string, unknown>, options = {}) =>
    phase2Plan({ config: parseConfig({ phase2 }, "t") }, options);
  assert.deepEqual(plan({}), { sweeps: true, continuation: true, steering: true, patching: true });
  assert.deepEqual(plan({ steering: { enabled: false }, patching: { enabled: false } }), {
    sweeps: true,
    continuation: true,
    steering: false,
    patching: false,
  });
  // The flags decide on their own, and options still override the config.
  const off = { subset_sweep: { enabled: false }, scale_sweep: { enabled: false } };
  assert.deepEqual(plan({ ...off, continuation_ablation: { enabled: false } }), {
    sweeps: false,
    continuation: false,
    steering: true,
    patching: true,
  });
  assert.equal(plan({ steering: { enabled: false } }, { steering: { coefs: [1] } }).steering, true);
  assert.equal(plan({}, { patching: false }).patching, false);

  const c = parseConfig({ phase2: { max_examples: 30, steering: { coefficients: [2, -3, 2] } } }, "t");
  assert.deepEqual(steeringSettings(c), {
    layer: null,
    coefficients: [-3, 0, 2],
    direction: "mean_difference",
    planted_comparison: true,
    max_examples: 30,
    num_samples_per_prompt: 4,
  });
  assert.deepEqual(steeringSettings(c, { coefs: [1], layer: 2, maxExamples: 3 }).coefficients, [0, 1]);
  assert.deepEqual(patchingSettings(parseConfig({}, "t")), {
    components: ["attn", "mlp"],
    layers: "all",
    max_events: 150,
  });
  const p = parseConfig({
    phase2: { patching: { components: ["mlp", "attn"], layers: [3, 1, 3], max_events: 9 } },
  }, "t");
  assert.deepEqual(patchingSettings(p), { components: ["attn", "mlp"], layers: [1, 3], max_events: 9 });
});

Deno.test("phase-2 figures: end-of-line labels fit inside the figure", async () => {
  const { continuationOnsetProb, patchingByLayer, steeringDoseResponse } = await import(
    "../../experiments/backtracking/phase2/figures.ts"
  );
  const v = (x: number) => ({ value: x, lower: x - 0.05, upper: x + 0.05 });
  const figures = [
    steeringDoseResponse([-1, 0, 1].map((coef) => ({ coef, bt_rate: v(0.5), accuracy: v(0.1) })), 3),
    patchingByLayer(
      [0, 1, 2, 3].flatMap((layer) =>
        (["attn", "mlp"] as const).map((component) => ({ layer, component, ...v(-1) }))
      ),
      "bt_from_control",
    ),
    continuationOnsetProb([0, 0.5, 0.9].map((scale) => ({ subset: "selected_all", scale, ...v(0.3) })), 0.6),
  ];
  for (const fig of figures) {
    // Plot places each label at translate(x, …) inside a group shifted by dx; ~7.5 px per character
    // at 12 px DejaVu Sans is a safe upper bound of the label's width.
    const labels =
      /<g transform="translate\((\d+(?:\.\d+)?),-?[\d.]+\)" text-anchor="start"[^>]*>(.*?)<\/g>/g;
    assert.ok([...fig.svg.matchAll(labels)].length > 0, `${fig.name}: no end-of-line label found`);
    for (const [, dx, body] of fig.svg.matchAll(labels)) {
      for (const [, x, text] of body!.matchAll(/transform="translate\(([\d.]+),[^)]*\)"[^>]*>([^<]+)</g)) {
        const right = Number(dx) + Number(x) + 7.5 * text!.length;
        assert.ok(
          right <= fig.width,
          `${fig.name}: label "${text}" ends at ${right} px, beyond ${fig.width}`,
        );
      }
    }
  }
});

Deno.test("phase-2 figures: titles fit the width, patching CI bars are not clipped, layers are integers", async () => {
  const { patchingByLayer } = await import("../../experiments/backtracking/phase2/figures.ts");
  for (const direction of ["bt_from_control", "control_from_bt"]) {
    // the organism run's control_from_bt: MLP 3's upper bound 8.1 lay above the axis (cut at ~7.3)
    const fig = patchingByLayer(
      [0, 1, 2, 3].flatMap((layer) => [
        { layer, component: "attn" as const, value: 0, lower: 0, upper: 0 },
        {
          layer,
          component: "mlp" as const,
          value: layer === 3 ? 5.6 : 0,
          lower: 0,
          upper: layer === 3 ? 8.1 : 0,
        },
      ]),
      direction,
    );
    const title = /<text x="12" y="22" font-size="16" font-weight="bold"[^>]*>([^<]+)</.exec(fig.svg)![1]!;
    // ~10 px per character of 16 px bold DejaVu Sans; "control prefix ← BT event's output" ran off the edge
    assert.ok(12 + 10 * title.length <= fig.width, `title too long for ${fig.width} px: ${title}`);
    const yTicks = [...fig.svg.matchAll(/aria-label="y-axis tick label"[\s\S]*?<\/g>/g)][0]![0];
    const top = Math.max(
      ...[...yTicks.matchAll(/>(−?[\d.]+)</g)].map((m) => Number(m[1]!.replace("−", "-"))),
    );
    assert.ok(top >= 8.1, `y axis ends at ${top}, below the CI's upper bound 8.1`);
    const xTicks = [...fig.svg.matchAll(/aria-label="x-axis tick label"[\s\S]*?<\/g>/g)][0]![0];
    assert.deepEqual([...xTicks.matchAll(/>([^<]+)</g)].map((m) => m[1]), ["0", "1", "2", "3"]);
  }
});

Deno.test("phase-2 figures (figure review): planted-direction axis, identical curves share a label", async () => {
  const { continuationOnsetProb, steeringDoseResponse } = await import(
    "../../experiments/backtracking/phase2/figures.ts"
  );
  const v = (x: number) => ({ value: x, lower: x, upper: x });
  const planted = steeringDoseResponse(
    [-1, 0, 1].map((coef) => ({ coef, bt_rate: v(0.5), accuracy: v(0.1) })),
    5,
    { title: "the organism's planted wait direction", unit: "planted wait direction" },
  );
  assert.match(planted.svg, /Steering along the organism&#39;s planted wait direction/);
  assert.match(planted.svg, /Steering coefficient \(× planted wait direction\)/);
  assert.doesNotMatch(planted.svg, /mean difference/, "the planted figure's axis said × mean difference");
  const meanDiff = steeringDoseResponse(
    [0, 1].map((coef) => ({ coef, bt_rate: v(0.5), accuracy: v(0.1) })),
    5,
  );
  assert.match(meanDiff.svg, /× mean difference/);
  // the organism run: selected_attn and selected_all are the same components, so their curves coincide
  const curve = (subset: string, at0: number) =>
    [0, 0.5].map((scale) => ({ subset, scale, ...v(at0 + scale / 10) }));
  const fig = continuationOnsetProb(
    [...curve("selected_attn", 0.01), ...curve("selected_all", 0.01), ...curve("mlp", 0.1)],
    0.2,
  );
  assert.match(fig.svg, />selected_attn = selected_all</);
  assert.match(fig.svg, />mlp</);
});

Deno.test("notebook pick: the named columns as a DataFrame, in the order given, absent ones left out", () => {
  const rows = [
    { setting: "baseline", total: 8, backtracking_rate: 0.5, rate_wait: 0.25 },
    { setting: "s=0", total: 8, backtracking_rate: 0.125, rate_wait: 0 },
  ];
  const df = pick(rows, ["backtracking_rate", "setting", "rate_hold_on", "total"]);
  assert.deepEqual(df.columns, ["backtracking_rate", "setting", "total"]);
  assert.deepEqual(df.toRecords(), [
    { backtracking_rate: 0.5, setting: "baseline", total: 8 },
    { backtracking_rate: 0.125, setting: "s=0", total: 8 },
  ]);
});

Deno.test("phase-2 figures: one point per line (one scale, coefficient or layer) draws without a Plot warning", async () => {
  const { continuationOnsetProb, patchingByLayer, steeringDoseResponse } = await import(
    "../../experiments/backtracking/phase2/figures.ts"
  );
  const v = (x: number) => ({ value: x, lower: x - 0.05, upper: x + 0.05 });
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args.join(" "));
  try {
    // `phase2.continuation_ablation.scales: [0]` gave "the implicit z channel has high cardinality" on
    // stderr (red in the notebook) and a ⚠ in the figure; likewise one patched layer or one coefficient.
    const figures = [
      continuationOnsetProb(
        ["selected_all", "selected_mlp", "selected_attn"].map((subset) => ({ subset, scale: 0, ...v(0.3) })),
        0.6,
      ),
      patchingByLayer(
        (["attn", "mlp"] as const).map((component) => ({ layer: 3, component, ...v(-1) })),
        "bt_from_control",
      ),
      steeringDoseResponse([{ coef: 1, bt_rate: v(0.5), accuracy: v(0.1) }], 3),
    ];
    assert.deepEqual(warnings, []);
    for (const fig of figures) assert.ok(!fig.svg.includes("⚠"), `${fig.name} carries Plot's warning sign`);
  } finally {
    console.warn = warn;
  }
});

/** Event rows of one setting: 12 problems × 4 samples; `degenerate`: every sample cut at the length cap, no answer. */
function settingRows(condition: string, pBt: number, seed: number, degenerate = false): EventRow[] {
  const rng = seededRng(seed);
  const out: EventRow[] = [];
  for (let e = 0; e < 12; e++) {
    for (let s = 0; s < 4; s++) {
      // problem-level clustering: some problems backtrack in every sample, others in none
      const bt = rng() < pBt * (e % 3 === 0 ? 1.8 : 0.6);
      const ok = !degenerate && rng() < (e % 2 === 0 ? 0.7 : 0.3);
      out.push(eventRow({
        example_id: e,
        sample_id: s,
        condition,
        bt,
        is_correct: degenerate ? undefined : ok,
        completion_tokens: degenerate ? 512 : 100 + Math.floor(rng() * 100),
        reasoning_closed: !degenerate,
        finish_reason: degenerate ? "length" : "eos",
        answer_status: degenerate ? "unfinished" : ok ? "correct" : "incorrect",
        answer_method: degenerate ? "none" : "final",
        correct_reference: ok,
        repetition_4gram: degenerate ? 0.6 : 0.05,
        distinct_2: degenerate ? 0.3 : 0.9,
        answer_region: degenerate ? "" : "answer",
        final_answer: degenerate ? undefined : ok ? 1 : 2,
        trajectory: bt ? (degenerate ? "unfinished" : "no_candidate") : "",
      }));
    }
  }
  return out;
}

/** A sweep-like set of settings: the baseline, a subset that removes backtracking, a degenerate one, a scale. */
function sweepFixture() {
  const opts = { bootstrap: 200, seed: 3, level: 0.95 };
  const base = settingRows("baseline", 0.45, 1);
  const baseline = settingResult(
    { setting: "baseline", kind: "baseline", num_components: 0 },
    base,
    base,
    opts,
  );
  const sub = (name: string, rows: EventRow[], n = 1) =>
    settingResult(
      { setting: ablationCondition(name, 0), kind: "subset", subset_name: name, num_components: n },
      rows,
      base,
      opts,
    );
  const subsets = [
    baseline,
    sub("selected_attn", settingRows("a", 0, 2)),
    sub("random_matched", settingRows("r", 0.4, 4, true)),
  ];
  const scale = settingResult(
    {
      setting: ablationCondition("selected_all", 0.5),
      kind: "scale",
      subset_name: "selected_all",
      scale: 0.5,
      num_components: 2,
    },
    settingRows("s", 0.2, 5),
    base,
    opts,
  );
  return { opts, base, baseline, subsets, scale };
}

Deno.test("phase-2 interval: trade-off points, CSV rows and tables all show the rates' clustered Wilson ci", () => {
  const { baseline, subsets, scale } = sweepFixture();
  const all = [...subsets, scale];
  const points = tradeoffPoints(all, () => "subset (scale 0)", baseline.summary);
  for (const [i, r] of all.entries()) {
    const p = points[i]!;
    // the bar is the summary's `.ci` (cluster-adjusted Wilson), not the percentile bootstrap
    const { bt_rate: b, accuracy: a } = r.summary;
    assert.deepEqual(p.bt_rate, { value: b.value, lower: b.ci.lower, upper: b.ci.upper }, p.label);
    assert.deepEqual(p.accuracy, { value: a.value, lower: a.ci.lower, upper: a.ci.upper }, p.label);
    // ... which is what the sweep CSVs write
    const row = settingRow(r, ["Wait"]);
    assert.equal(row.bt_rate_lower, p.bt_rate.lower);
    assert.equal(row.bt_rate_upper, p.bt_rate.upper);
    assert.equal(row.accuracy_upper, p.accuracy.upper);
  }
  // the trial's selected_attn: 0% with a degenerate bootstrap [0, 0]; the Wilson bar is not empty
  const attn = all[1]!.summary.bt_rate;
  assert.equal(attn.value, 0);
  assert.equal(attn.bootstrap.upper, 0);
  assert.ok(points[1]!.bt_rate.upper > 0.05, `Wilson upper ${points[1]!.bt_rate.upper}`);

  assert.deepEqual(points.map((p) => p.label), [
    "baseline",
    "selected_attn",
    "random_matched",
    "selected_all ×0.5",
  ]);
  assert.deepEqual(points.map((p) => p.degenerate ?? false), [false, false, true, false]);
  assert.equal(points[0]!.group, "baseline");

  // the ablation points of intervention_tradeoff, read back from the CSV rows, are the same points
  const rows = all.map((r) => settingRow(r, ["Wait"]));
  const fromRows = ablationPoints(rows.slice(1), rows[0]);
  assert.deepEqual(
    fromRows.map((p) => [p.label, p.bt_rate, p.accuracy, p.degenerate ?? false]),
    points.slice(1).map((p) => [p.label, p.bt_rate, p.accuracy, p.degenerate ?? false]),
  );

  // the markdown table prints the same interval, in the Phase-1 report's style, and Δ in pp
  const md = settingsMarkdown(all, ["Wait"]);
  const s = all[1]!.summary;
  assert.ok(md.includes(`| ${pctCI(s.bt_rate.value, s.bt_rate.ci.lower, s.bt_rate.ci.upper)} |`), md);
  assert.match(md, /\| 0\.0% \[0\.0%, \d+\.\d%\] \|/);
  assert.match(md, / pp \[-?\d+\.\d, -?\d+\.\d\] \|/);
  assert.doesNotMatch(md, /pts/); // "pp" for differences, as Phase 1
  assert.match(
    md.split("\n").find((l) => l.startsWith("| phase2_random_matched"))!,
    /DEGENERATE: EOS 100% → 0%/,
  );
});

Deno.test("phase-2 formats: pctCI and ppCI as the Phase-1 report, symmetric rounding, no -0.0", () => {
  assert.equal(pctCI(0.45, 0.284, 0.626), "45.0% [28.4%, 62.6%]"); // as Phase 1 prints a rate
  assert.equal(pctCI(0.5, NaN, NaN), "50.0%");
  assert.equal(ppCI(0.04, 0.012, 0.069), "+4.0 pp [1.2, 6.9]");
  // the same 1/80 change printed "-1.2 pp" one way and "+1.3 pp" the other
  assert.equal(ppCI(0.45 - 0.4625, -0.0375, 0.0125), "-1.3 pp [-3.8, 1.3]");
  assert.equal(ppCI(0.4625 - 0.45, -0.0125, 0.0375), "+1.3 pp [-1.3, 3.8]");
  assert.equal(ppCI(-1e-9, -1e-9, 0), "0.0 pp [0.0, 0.0]"); // as Phase 1: no sign on a zero difference
  assert.equal(ppCI(NaN, 0, 0), "n/a");
});

Deno.test("intervention_tradeoff: baseline label, degenerate ablation faded, no-sweeps subtitle", () => {
  const { opts, base, baseline, subsets, scale } = sweepFixture();
  const steer = [
    settingResult(
      { setting: "baseline", kind: "steering", num_components: 0, layer: 2, coef: 0 },
      base,
      base,
      opts,
    ),
    settingResult(
      { setting: steeringCondition(2, 4), kind: "steering", num_components: 0, layer: 2, coef: 4 },
      settingRows("c", 0.9, 7, true),
      base,
      opts,
    ),
  ];
  const points = tradeoffPoints(steer, () => "steering (meandiff)");
  assert.deepEqual(points.map((p) => [p.label, p.group, p.degenerate ?? false]), [
    ["baseline", "baseline", false],
    ["c=4", "steering (meandiff)", true],
  ]);
  const sweeps: SweepsResult = {
    variant: "chat",
    examples: 12,
    samples: 4,
    subsets: [],
    subset_sweep: subsets.map((r) => settingRow(r, ["Wait"])),
    scale_sweep: {
      subset: "selected_all",
      rows: [scale, { ...baseline, spec: { ...scale.spec, setting: "baseline", scale: 1 } }].map((r) =>
        settingRow(r, ["Wait"])
      ),
    },
    section: { title: "", markdown: "" },
  };
  const fig = interventionTradeoff(points, sweeps);
  assert.equal(fig.name, "intervention_tradeoff");
  assert.match(fig.svg, />baseline</);
  assert.doesNotMatch(fig.svg, />c=0</);
  assert.match(fig.svg, />random_matched \(degenerate\)</);
  assert.match(fig.svg, />c=4 \(degenerate\)</);
  assert.match(fig.svg, />selected_all ×0\.5</);
  assert.match(fig.svg, /bars: 95% CI \(Wilson, clustered by problem\)/);
  assert.match(fig.svg, /faded, &#34;\(degenerate\)&#34;: the text broke/);
  assert.doesNotMatch(fig.svg, /no ablation points/);

  const alone = interventionTradeoff(points, undefined);
  assert.match(alone.svg, /no ablation points: run phase2-sweeps \(notebook 11\) first/);
  assert.doesNotMatch(alone.svg, /random_matched/);
});

Deno.test("continuation_onset_prob: no subset takes the dashed clean line's colour", async () => {
  const { continuationOnsetProb } = await import("../../experiments/backtracking/phase2/figures.ts");
  const names = ["selected_mlp", "selected_attn", "selected_all", "random_matched", "a", "b", "c"];
  const fig = continuationOnsetProb(
    names.flatMap((subset, i) =>
      [0, 0.5].map((scale) => ({ subset, scale, value: 0.1 * i, lower: 0, upper: 0.7 }))
    ),
    0.8,
  );
  // the clean line's blue appears once: on the dashed rule itself
  assert.equal(fig.svg.split(COLORS.baseline).length - 1, 1, "a subset is drawn in the clean line's blue");
});

Deno.test("continuation_onset_prob: nearly coinciding curves (within 1% of the axis) share an '≈' label", async () => {
  const { continuationOnsetProb } = await import("../../experiments/backtracking/phase2/figures.ts");
  const v = (x: number) => ({ value: x, lower: x, upper: x });
  // the organism run: selected_attn 0.0044/0.0201 and selected_all 0.0043/0.0200 (one line hid the other)
  const fig = continuationOnsetProb([
    { subset: "selected_attn", scale: 0, ...v(0.0044) },
    { subset: "selected_attn", scale: 0.5, ...v(0.0201) },
    { subset: "selected_all", scale: 0, ...v(0.0043) },
    { subset: "selected_all", scale: 0.5, ...v(0.02) },
    { subset: "selected_mlp", scale: 0, ...v(0.096) },
    { subset: "selected_mlp", scale: 0.5, ...v(0.119) },
  ], 0.168);
  assert.match(fig.svg, />selected_attn ≈ selected_all</);
  assert.match(fig.svg, />selected_mlp</);
});
