import assert from "node:assert/strict";
import type { EventRow } from "../experiments/backtracking/event_row.ts";
import { eventRow } from "./_event_rows.ts";
import { compareToBaseline, summarizeCondition } from "../experiments/backtracking/metrics.ts";
import {
  embeddedFigures,
  fixed,
  markdownTable,
  pct,
  pp,
  pValue,
  renderReport,
  type ReportParts,
  writeReport,
} from "../experiments/backtracking/report.ts";
import { seededRng } from "../lib/stats/stats.ts";
import { validateProtocols, validationVerdict } from "../experiments/backtracking/protocol_validation.ts";
import { degenerationFlags, figuresOf } from "../experiments/backtracking/degeneration.ts";
import type { ProtocolValidationArtifact } from "../experiments/backtracking/artifacts/protocol_validation.ts";
import { reportParts } from "../experiments/backtracking/report_parts.ts";
import { parseConfig } from "../experiments/backtracking/config.ts";

/** Set UPDATE_SNAPSHOTS=1 to rewrite tests/fixtures/plots/report.md. */
const UPDATE = Deno.env.get("UPDATE_SNAPSHOTS") === "1";
const SNAP = new URL("./fixtures/plots/report.md", import.meta.url).pathname;

function rows(condition: string, pBt: number, pOk: number, seed: number, degenerate = false): EventRow[] {
  const rng = seededRng(seed);
  const out: EventRow[] = [];
  for (let e = 0; e < 20; e++) {
    for (let s = 0; s < 4; s++) {
      const bt = rng() < pBt;
      const u = rng();
      const status = u < 0.05 ? "unknown" : u < 0.1 ? "unfinished" : rng() < pOk ? "correct" : "incorrect";
      out.push(eventRow({
        example_id: e,
        sample_id: s,
        condition,
        bt,
        is_correct: status === "unknown" || status === "unfinished" ? undefined : status === "correct",
        completion_tokens: 100 + Math.floor(rng() * 100),
        finish_reason: degenerate ? "length" : rng() < 0.9 ? "eos" : "length",
        answer_status: status,
        correct_reference: status === "correct",
        repetition_4gram: degenerate ? 0.6 : 0.05,
        distinct_2: degenerate ? 0.3 : 0.9,
        digit_free: degenerate && rng() < 0.3,
        final_answer: status === "unfinished" ? undefined : status === "correct" ? 1 : 2,
        onset_type: bt ? (["revision", "verification", "other"] as const)[(e + s) % 3]! : "",
        candidate_answer: bt ? 2 : undefined,
        trajectory: !bt
          ? ""
          : status === "unfinished"
          ? "unfinished"
          : (["fix", "break", "kept_right", "kept_wrong", "wrong_to_wrong", "no_candidate"] as const)[
            (e + s) % 6
          ]!,
      }));
    }
  }
  return out;
}

function parts(): ReportParts {
  const opts = { bootstrap: 200, seed: 1 };
  const base = rows("baseline", 0.7, 0.6, 1);
  const targeted = rows("targeted_ablation", 0.1, 0.2, 2, true);
  const random = rows("random_ablation", 0.65, 0.55, 3);
  const baseSummary = summarizeCondition(base, opts);
  return {
    writtenAt: "2025-01-01T00:00:00.000Z",
    meta: {
      run_id: "20250101_000000",
      timestamp: "2025-01-01T00:00:00.000+00:00",
      updated_at: "2025-01-01T01:00:00.000+00:00",
      git_sha: "abcdef12",
      git_sha_full: "abcdef1234567890",
      git_dirty: true,
      hostname: "ci-host",
      model_id: "organism/tiny",
      config_path: "configs/default.yaml",
      protocol: "corrected",
      versions: { deno: "2.9.6", "onnxruntime-node": "1.30.0" },
      model: { revision: "r1", hashes: { "model.safetensors": "sha256:00ff" } },
      data: { sha256: "beef", problems: 20 },
      execution_provider: { requested: "auto", used: "cpu", reason: "no CUDA" },
      ignored_field: { deep: [1, 2] },
    },
    summaryNotes: ["Planted components recovered."],
    baseline: [{ label: "chat", summary: baseSummary }],
    conditions: {
      variant: "chat",
      baseline: { label: "baseline", summary: baseSummary },
      others: [
        {
          label: "targeted",
          kind: "targeted",
          summary: summarizeCondition(targeted, opts),
          comparison: compareToBaseline(base, targeted, opts),
        },
        {
          label: "random #1",
          kind: "random",
          summary: summarizeCondition(random, opts),
          comparison: compareToBaseline(base, random, opts),
        },
      ],
    },
    lens: {
      metric: "logprob",
      rows: [0, 1, 2].map((l) => ({
        layer: l,
        bt_mean: -5 + l,
        bt_lower: -5.5 + l,
        bt_upper: -4.5 + l,
        control_mean: -6,
        control_lower: -6.4,
        control_upper: -5.6,
        diff: 1 + l,
        diff_lower: 0.4 + l,
        diff_upper: 1.6 + l,
        n_bt: 50,
        n_control: 50,
      })),
    },
    scan: {
      top: 3,
      metric: "log-prob",
      criterion: "specificity",
      selected: { attn: [1], mlp: [2] },
      rows: [
        { layer: 0, component: "attn", mean: -0.1, lower: -0.2, upper: 0, specificity: 0.01, n_events: 50 },
        { layer: 1, component: "attn", mean: -2, lower: -2.5, upper: -1.5, specificity: -1.8, n_events: 50 },
        { layer: 2, component: "mlp", mean: -3, lower: -3.4, upper: -2.6, specificity: -2.9, n_events: 50 },
        { layer: 1, component: "mlp", mean: 0.2, lower: 0, upper: 0.4, n_events: 50 },
      ],
    },
    formatting: [{ label: "chat | think", summary: baseSummary }],
    referenceComparison: [
      {
        metric: "BT rate (baseline)",
        corrected: "70.0%",
        reference_mode: "72.5%",
        reference_committed: "70.8%",
      },
      { metric: "accuracy", corrected: 0.6, reference_mode: 0.2, note: "reference extractor" },
    ],
    figures: [
      { title: "BT rate by condition", path: "/tmp/runs/20250101_000000/figures/bt_rate_by_condition.png" },
      { title: "Logit lens", path: "figures/logit_lens_by_layer.png" },
    ],
  };
}

Deno.test("report: full synthetic report matches its snapshot", async () => {
  const md = renderReport("/tmp/runs/20250101_000000", parts());
  if (UPDATE) await Deno.writeTextFile(SNAP, md);
  else {assert.equal(
      md,
      await Deno.readTextFile(SNAP),
      "report differs from snapshot (UPDATE_SNAPSHOTS=1 to accept)",
    );}
  assert.match(md, /^# Backtracking experiment report: run 20250101_000000\n/);
  assert.match(md, /- Git: abcdef1234567890 \(dirty work tree\)/);
  assert.match(md, / {2}- hashes\.model\.safetensors: sha256:00ff/);
  assert.match(md, /- Execution provider: cpu \(requested auto\): no CUDA/);
  assert.match(md, /\]\(figures\/bt_rate_by_condition\.png\)/, "absolute figure path made relative");
  assert.match(md, /chat \\\| think/, "pipes escaped in cells");
  assert.match(md, /## Caveats/);
  // Issue 14: unfinished rate, accuracy on all and on finished rows, onset types and the trajectory table
  assert.match(
    md,
    /\| accuracy, all rows \[95% CI\] \| accuracy, finished rows \[95% CI\] \| unfinished \[95% CI\] \|/,
  );
  assert.match(md, /## Onset types and answer trajectory \(chat\)/);
  assert.match(
    md,
    /### Answer trajectory\n\n\| group \| onsets \| determined \| answer changed \[95% CI\] \|/,
  );
  const tr = parts().conditions!.baseline.summary.trajectory;
  assert.ok(
    md.includes(`| baseline | ${tr.onsets} | ${tr.determined} | ${tr.changed.k}/${tr.changed.n} = `),
    "the trajectory row comes from the data",
  );
  assert.ok(!/\[0\.0%?, 0\.0%?\]/.test(md), "no zero-width interval anywhere");
  // numbers in the summary come from the data
  const s = parts().conditions!.baseline.summary;
  assert.ok(md.includes(`backtracking rate ${(s.bt_rate.value * 100).toFixed(1)}%`));
});

Deno.test("report: a deliberately destructive condition is flagged DEGENERATE, a clean one is not", () => {
  const p = parts();
  const md = renderReport("/tmp/runs/x", { ...p, meta: null });
  // The synthetic "targeted" condition never stops (every sample at the length cap, EOS 0%).
  const line = (label: string) =>
    md.split("\n").find((l) => l.startsWith(`| ${label} |`) && l.includes("%"))!;
  assert.match(line("targeted"), /DEGENERATE: EOS \d+% → 0%; at length cap 100%/);
  assert.doesNotMatch(line("random #1"), /DEGENERATE/);
  assert.match(
    md,
    /- targeted: .*\*\*DEGENERATE: EOS \d+% → 0%; at length cap 100%\*\*: the text broke down/,
  );
  assert.doesNotMatch(md.split("\n").find((l) => l.startsWith("- random #1:"))!, /DEGENERATE/);
  // p-values: decimals, scientific notation only below 0.001 (the report printed "7.4e-1" before).
  assert.match(md, /- targeted: .*McNemar p = 3\.5e-13;/);
  assert.match(md, /- random #1: .*McNemar p = 0\.74;/);
  assert.match(line("random #1"), /\| 0\.74 \| none \|$/);
  assert.doesNotMatch(md, /McNemar p = \d\.\de[+-][0-2];|\| \d\.\de[+-][0-2] \|/, "no 4.2e-1 or 1.0e+0");
});

Deno.test("report: random draws that degenerate are called out as a compromised control", () => {
  const p = parts();
  assert.doesNotMatch(renderReport("/tmp/runs/x", { ...p, meta: null }), /random control is compromised/);
  const opts = { bootstrap: 200, seed: 1 };
  const base = rows("baseline", 0.7, 0.6, 1);
  const broken = rows("random_ablation_1", 0.6, 0.2, 4, true);
  const c = p.conditions!;
  const md = renderReport("/tmp/runs/x", {
    ...p,
    meta: null,
    conditions: {
      ...c,
      others: [...c.others, {
        label: "random #2",
        kind: "random",
        summary: summarizeCondition(broken, opts),
        comparison: compareToBaseline(base, broken, opts),
      }],
    },
  });
  assert.match(md, /\*\*The random control is compromised\*\*: 1 of 2 random draws \(random #2\)/);
});

/** A protocol validation shaped like the organism's: ours = planted, the reference takes the decoy mlp 0. */
function organismValidation(): ProtocolValidationArtifact {
  const row = (component: "attn" | "mlp", layer: number, dl: number, sp: number) => ({
    component,
    layer,
    delta_logit_mean: dl,
    specificity_mean: sp,
    specificity_lower: sp - 0.3,
    specificity_upper: sp + 0.3,
  });
  const rows = [
    row("mlp", 0, -17.6, 0.07),
    row("attn", 2, -2.4, -1.5),
    row("attn", 6, -1.5, -2.4),
    row("mlp", 4, -1, -0.7),
    row("attn", 7, -0.05, 0),
    row("mlp", 3, 0.01, 0),
  ];
  const truth = {
    planted: [{ component: "attn" as const, layer: 2 }, { component: "mlp" as const, layer: 4 }, {
      component: "attn" as const,
      layer: 6,
    }],
    decoy: [{ component: "mlp" as const, layer: 0 }],
  };
  const v = validateProtocols(rows, truth, { referenceK: 3, maxPerType: 3 });
  const fig = (condition: string, bt: number, eos: number, cap: number, unknown: number) => ({
    condition,
    n: 80,
    bt_rate: bt,
    bt_rate_lower: bt - 0.05,
    bt_rate_upper: bt + 0.05,
    delta_bt_rate: bt - 0.45,
    delta_bt_rate_lower: bt - 0.55,
    delta_bt_rate_upper: bt - 0.35,
    accuracy: 0.02,
    eos_rate: eos,
    truncation_rate: cap,
    unknown_rate: unknown,
    mean_length: cap === 1 ? 200 : 60,
    digit_free_rate: 0,
    degeneration: degenerationFlags(
      { eos_rate: eos, truncation_rate: cap, unknown_rate: unknown },
      condition === "baseline" ? undefined : { eos_rate: 0.95, truncation_rate: 0.05, unknown_rate: 0.05 },
    ),
  });
  const verdict = validationVerdict(v);
  return {
    model_description: "A constructed (not trained) 8-layer model.",
    planted: truth.planted,
    decoy: truth.decoy,
    reference_k: 3,
    min_specificity_effect: 0.1,
    max_per_type: 3,
    variant: "chat",
    baseline: fig("baseline", 0.45, 0.95, 0.05, 0.05),
    ours: { selection: v.ours, ablation: fig("targeted_ablation", 0, 1, 0, 0.05) },
    reference: { selection: v.reference, ablation: fig("reference_selection_ablation", 0, 0, 1, 1) },
    expected: { ...verdict, reference_drop_degenerate: true, ours_drop_clean: true },
  };
}

Deno.test("report: an organism run opens with what the model is and the verdict table; no real-model numbers", () => {
  const pv = organismValidation();
  assert.ok(pv.expected.passed, pv.expected.failures.join("; "));
  const prompting = {
    formatting_variants: [{ name: "chat", think_open: "<think>\n", think_close: "\n</think>\n" }],
  };
  const cfg = parseConfig({ model: { source: "organism", hf_id: "organism" }, prompting }, "test");
  const base = rows("baseline", 0.5, 0.1, 1);
  const parts = reportParts({ config: cfg, run: { id: "r", dir: "/tmp/r" } as never }, base, {
    figures: [],
    organism: {
      description: "A constructed (not trained) 8-layer model.",
      planted: pv.planted,
      decoy: pv.decoy,
    },
    protocolValidation: pv,
  });
  const md = renderReport("/tmp/r", { ...parts, meta: null, writtenAt: "x" });
  const sections = md.split("\n").filter((l) => l.startsWith("## "));
  assert.equal(sections[0], "## What this model is", sections.join(" / "));
  assert.match(md, /\*\*This run is on a model organism, not on a reasoning model\.\*\* A constructed/);
  assert.match(md, /What it cannot show/);
  assert.match(
    md,
    /\| ours \(specificity CI below −0\.1 nats\) \| recovered \| recovered \| recovered \| not taken \| none \|/,
  );
  assert.match(
    md,
    /\| reference \(signed top-3 raw Δlogit\) \| recovered \| recovered \| recovered \| \*\*taken\*\* \| attn 7, mlp 3 \|/,
  );
  assert.match(
    md,
    /\| reference \| attn 2, attn 6, attn 7, mlp 0, mlp 4, mlp 3 \| 50% \| 100% \| yes \| reference_selection_ablation \|.*DEGENERATE: EOS 95% → 0%; at length cap 100%; no answer 5% → 100% \|/,
  );
  assert.match(
    md,
    /\| ours \| attn 6, attn 2, mlp 4 \| 100% \| 100% \| no \| targeted_ablation \|.*\| none \|/,
  );
  assert.doesNotMatch(md, /committed/, "no reference (real-model) numbers beside the organism's");
  assert.match(md, /by construction: after a trigger the organism re-reads/);
  // A real-model run keeps the reference's committed numbers, labelled as another model's.
  const real = parseConfig({ prompting }, "test");
  const realMd = renderReport(
    "/tmp/r",
    {
      ...reportParts({ config: real, run: { id: "r", dir: "/tmp/r" } as never }, base, { figures: [] }),
      meta: null,
    },
  );
  assert.match(realMd, /reference's committed numbers \(another model: DeepSeek-R1-Distill-Qwen-1\.5B\)/);
  assert.doesNotMatch(realMd, /What this model is/);
});

Deno.test("report: every section is optional", () => {
  const md = renderReport("runs/x", { writtenAt: "t", caveats: [] });
  assert.equal(md, "# Backtracking experiment report: run x\n\nReport written t.\n");
  const onlyRef = renderReport("runs/x", {
    writtenAt: "t",
    caveats: [],
    referenceComparison: [{ metric: "m", corrected: 1, reference_mode: 2 }],
  });
  assert.ok(onlyRef.includes("| metric | corrected (default) | reference-compatible | note |"));
  assert.ok(!onlyRef.includes("Executive summary"));
});

Deno.test("report: writeReport reads meta.json, writes atomically, names a bad meta.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/meta.json`,
      JSON.stringify({ run_id: "r42", git_sha: "1234abcd", git_dirty: false }),
    );
    const path = await writeReport(dir, { writtenAt: "t" });
    assert.equal(path, `${dir}/report.md`);
    const md = await Deno.readTextFile(path);
    assert.match(md, /run r42/);
    assert.match(md, /- Git: 1234abcd \(clean\)/);
    assert.match(md, /- Host: not recorded/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["meta.json", "report.md"]);
    await Deno.writeTextFile(`${dir}/meta.json`, "{oops");
    await assert.rejects(() => writeReport(dir, {}), /meta\.json" is not valid JSON/);
    const noMeta = await Deno.makeTempDir();
    await writeReport(noMeta, { meta: null, writtenAt: "t" });
    assert.ok(!(await Deno.readTextFile(`${noMeta}/report.md`)).includes("## Provenance"));
    await Deno.remove(noMeta, { recursive: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report: markdownTable", () => {
  assert.equal(
    markdownTable(["a", "b"], [[1, "x|y"], [undefined, "l1\nl2"]]),
    "| a | b |\n|---|---|\n| 1 | x\\|y |\n|  | l1 l2 |",
  );
});

Deno.test("report: corrected vs reference rows are the per-condition shares, counted naively", () => {
  const prompting = {
    formatting_variants: [{ name: "chat", think_open: "<think>\n", think_close: "\n</think>\n" }],
  };
  const cfg = parseConfig({ prompting }, "test");
  // Three conditions interleaved, the other rule and the reference extractor disagreeing on some rows, and
  // rows of another variant that must not count.
  const all = [
    ...rows("baseline", 0.6, 0.5, 3),
    ...rows("targeted_ablation", 0.1, 0.4, 4),
    ...rows("random_ablation_0", 0.5, 0.5, 5),
  ].map((r, i) => ({
    ...r,
    bt_other_rule: i % 7 === 0 ? !r.has_backtracking_strict : r.has_backtracking_strict,
    correct_reference: i % 5 === 0 ? undefined : r.is_correct,
  }));
  const mixed = [...all.filter((_, i) => i % 2 === 0), ...all.filter((_, i) => i % 2 === 1)];
  const other = rows("baseline", 0.9, 0.9, 6).map((r) => ({ ...r, variant: "plain" }));
  const parts = reportParts({ config: cfg, run: { id: "r", dir: "/tmp/r" } as never }, [...mixed, ...other], {
    figures: [],
  });
  const share = (c: string, f: (r: EventRow) => boolean) => {
    const g = all.filter((r) => r.condition === c);
    return Number((g.filter(f).length / g.length).toFixed(4));
  };
  const byMetric = new Map(parts.referenceComparison!.map((r) => [r.metric, r]));
  for (const c of ["baseline", "targeted_ablation", "random_ablation_0"]) {
    const r = byMetric.get(`BT rate, ${c}`);
    assert.ok(r, `no row for ${c}`);
    assert.equal(r.corrected, share(c, (x) => x.has_backtracking_strict));
    assert.equal(r.reference_mode, share(c, (x) => x.bt_other_rule));
  }
  const acc = byMetric.get("accuracy, baseline (correct / n)")!;
  assert.equal(acc.corrected, share("baseline", (x) => x.is_correct === true));
  assert.equal(acc.reference_mode, share("baseline", (x) => x.correct_reference === true));
  assert.deepEqual(
    parts.referenceComparison!.map((r) => r.metric),
    [
      "BT rate, baseline",
      "BT rate, targeted_ablation",
      "BT rate, random_ablation_0",
      "accuracy, baseline (correct / n)",
    ],
  );
});

Deno.test("fixed: no -0.00, and a value and its negation round alike (half away from zero)", () => {
  // The head and patching tables printed "-0.00 [-0.00, -0.00]".
  assert.equal(fixed(-0.0004, 2), "0.00");
  assert.equal(fixed(-0, 2), "0.00");
  assert.equal(fixed(-0.004999, 2), "0.00");
  assert.equal(fixed(-0.005, 2), "-0.01");
  assert.equal(fixed(0.0004, 3), "0.000");
  // 1/80 as floating point makes it: 0.025 − 0.0375 and 0.05 − 0.0375 (toFixed gave 1.2 and 1.3).
  assert.equal(Math.abs((0.025 - 0.0375) * 100).toFixed(1), "1.2"); // what the report printed
  assert.equal(Math.abs((0.05 - 0.0375) * 100).toFixed(1), "1.3");
  assert.equal(fixed((0.025 - 0.0375) * 100, 1), "-1.3");
  assert.equal(fixed((0.05 - 0.0375) * 100, 1), "1.3");
  assert.equal(fixed(1.45, 1), "1.5");
  assert.equal(fixed(-10.4385, 3), "-10.439");
  assert.equal(fixed(2, 0), "2");
  assert.equal(fixed(Number.NaN, 2), "n/a");
  assert.equal(fixed(Infinity, 2), "n/a");
  // Against a naive implementation on exact decimals: k/1000 at one decimal of percent.
  for (let k = -1000; k <= 1000; k++) {
    const tenths = Math.abs(k); // k/1000 = k/10 percent; one decimal keeps it exactly
    const want = `${k < 0 ? "-" : ""}${Math.floor(tenths / 10)}.${tenths % 10}`;
    assert.equal(fixed((k / 1000) * 100, 1), want, `k = ${k}`);
    // Half a tenth: (2j+1)/2000 rounds away from zero, the same for ±.
    const half = (2 * k + 1) / 2000;
    const up = Math.abs(2 * k + 1) / 2 + 0.5; // in tenths of a percent, half away from zero
    const m = Math.floor(up);
    assert.equal(
      fixed(half * 100, 1),
      `${half < 0 ? "-" : ""}${Math.floor(m / 10)}.${m % 10}`,
      `half ${half}`,
    );
  }
});

Deno.test("pct and pp: percent for rates, signed percentage points for differences, both from fixed", () => {
  assert.equal(pct(0.475), "47.5%");
  assert.equal(pct(0.9125), "91.3%");
  assert.equal(pct(-0.00001), "0.0%");
  assert.equal(pct(Number.NaN), "n/a");
  // The issue: the same 1/80 accuracy change printed "-1.2 pp" and "+1.3 pp".
  assert.equal(pp(0.025 - 0.0375), "-1.3 pp");
  assert.equal(pp(0.05 - 0.0375), "+1.3 pp");
  assert.equal(pp(0), "0.0 pp");
  assert.equal(pp(-0.00001), "0.0 pp");
  assert.equal(pp(-0.475), "-47.5 pp");
});

Deno.test("pValue: decimals from 0.001 on, scientific notation only below", () => {
  assert.equal(pValue(0.42), "0.42"); // printed "4.2e-1"
  assert.equal(pValue(1), "1.00"); // printed "1.0e+0"
  assert.equal(pValue(0.7413), "0.74");
  assert.equal(pValue(0.1), "0.10");
  assert.equal(pValue(0.0312), "0.031");
  assert.equal(pValue(0.001), "0.0010");
  assert.equal(pValue(0.000999), "1.0e-3");
  assert.equal(pValue(7.3e-12), "7.3e-12");
  assert.equal(pValue(0), "< 1e-300");
  assert.equal(pValue(Number.NaN), "n/a");
});

Deno.test("report: Phase-1 tables print rates in %, differences in pp, and no -0.00", () => {
  const p = parts();
  const lens = p.lens!;
  const md = renderReport("/tmp/runs/x", {
    ...p,
    meta: null,
    lens: { ...lens, rows: [{ ...lens.rows[0]!, diff: -0.0004, diff_lower: -0.0049, diff_upper: -0.0001 }] },
    scan: {
      ...p.scan!,
      rows: [{ layer: 0, component: "attn", mean: -0.0002, lower: -0.0004, upper: -0.0001, n_events: 5 }],
    },
  });
  assert.doesNotMatch(md, /-0\.0+(?![0-9])/, "no number rounds to a signed zero");
  assert.match(md, /\| 0 \(emb\) \| .* \| 0\.00 \[0\.00, 0\.00\] \| 50 \| 50 \|/);
  // Rates with their interval in percent; differences of rates in pp with the interval in the same unit.
  assert.match(md, /\| baseline \| baseline \| 80 \| \d+\.\d% \[\d+\.\d%, \d+\.\d%\] \|/);
  assert.match(md, /\| targeted \| targeted \| 80 \| [^|]+ \| -\d+\.\d pp \[-?\d+\.\d, -?\d+\.\d\] \|/);
  assert.doesNotMatch(md, /\d pts|Δ [-+]?\d+\.\d%/, "no pts, no difference of rates in %");
  // Components named one way throughout ("attn 2", "mlp 4"); it said "attention [1], MLP [2]".
  assert.match(md, /- Selected components: attn 1, mlp 2\.\n/);
  assert.match(md, /\nSelected \(specificity\): attn 1, mlp 2\.\n/);
  assert.doesNotMatch(md, /attention \[|MLP \[|_mlp_out/);
});

Deno.test("report: the scan header says Δ once (it printed 'mean Δ Δ log-prob')", () => {
  const prompting = {
    formatting_variants: [{ name: "chat", think_open: "<think>\n", think_close: "\n</think>\n" }],
  };
  const cfg = parseConfig({ prompting }, "test");
  const parts = reportParts(
    { config: cfg, run: { id: "r", dir: "/tmp/r" } as never },
    rows("baseline", 0.5, 0.5, 1),
    {
      figures: [],
      scan: [{
        layer: 2,
        component: "mlp",
        mean: -1,
        lower: -1.2,
        upper: -0.8,
        specificity: -0.9,
        n_events: 9,
      }],
    },
  );
  const md = renderReport("/tmp/r", { ...parts, meta: null, writtenAt: "t" });
  assert.match(md, /\| rank \| component \| layer \| mean Δ log-prob of the trigger \[95% CI\] \|/);
  assert.doesNotMatch(md, /Δ Δ/);
});

Deno.test("report: corrected vs reference-compatible prints shares in percent like every other table", () => {
  const md = renderReport("runs/x", {
    writtenAt: "t",
    caveats: [],
    referenceComparison: [
      { metric: "BT rate, baseline", corrected: 0.475, reference_mode: 0.475 },
      { metric: "BT rate, random_ablation_0", corrected: 0.425, reference_mode: 0.9125 },
      { metric: "BT rate, targeted_ablation", corrected: 0, reference_mode: 0, reference_committed: 0.0283 },
      { metric: "given as text", corrected: "–", reference_mode: "n/a" },
    ],
  });
  // It printed 0.475, 0.9125 and 0.
  assert.ok(md.includes("| BT rate, baseline | 47.5% | 47.5% |  |  |"), md);
  assert.ok(md.includes("| BT rate, random_ablation_0 | 42.5% | 91.3% |  |  |"), md);
  assert.ok(md.includes("| BT rate, targeted_ablation | 0.0% | 0.0% | 2.8% |  |"), md);
  assert.match(md, /\| given as text \| – \| n\/a \|/);
});

Deno.test("report: a figure a section embeds is not repeated in Figures; embeddedFigures counts it once", () => {
  const head = "![DLA by head and layer](figures/head_dla_heatmap.png)\n\n" +
    "![Attention by token class](figures/head_attention_by_class.png)";
  const md = renderReport("/tmp/runs/x", {
    writtenAt: "t",
    caveats: [],
    extraSections: [{ title: "Heads", markdown: head }, {
      title: "Phase 2",
      markdown: "![Phase-2 trade-off](figures/phase2_tradeoff.png)",
    }],
    figures: [
      { title: "bt rate by variant", path: "figures/bt_rate_by_variant.png" },
      { title: "head dla heatmap", path: "/tmp/runs/x/figures/head_dla_heatmap.png" },
      { title: "head attention by class", path: "figures/head_attention_by_class.png" },
    ],
  });
  // Both head figures were embedded twice (their section and Figures).
  for (const f of ["head_dla_heatmap", "head_attention_by_class", "bt_rate_by_variant", "phase2_tradeoff"]) {
    assert.equal(md.split(`(figures/${f}.png)`).length - 1, 1, f);
  }
  assert.match(
    md,
    /## Figures\n\n### bt rate by variant\n\n!\[bt rate by variant\]\(figures\/bt_rate_by_variant\.png\)\n/,
  );
  assert.deepEqual(embeddedFigures(md), [
    "figures/head_dla_heatmap.png",
    "figures/head_attention_by_class.png",
    "figures/phase2_tradeoff.png",
    "figures/bt_rate_by_variant.png",
  ]);
  assert.deepEqual(embeddedFigures("![a](x.png) ![b \\] c](y.png) ![a again](x.png) [not](z.png)"), [
    "x.png",
    "y.png",
  ]);
  // Every figure already shown above: no empty Figures section.
  const none = renderReport("/tmp/runs/x", {
    writtenAt: "t",
    caveats: [],
    extraSections: [{ title: "Heads", markdown: head }],
    figures: [{ title: "h", path: "figures/head_dla_heatmap.png" }],
  });
  assert.doesNotMatch(none, /## Figures/);
});

Deno.test("report: the degeneration table's 'unknown / unfinished' is their sum, the share the flag reads", () => {
  // the second new-user trial: reference_selection_ablation showed 0.0% there (unknown only) while the same
  // row was flagged "no answer 11% → 100%"
  const p = parts();
  const md = renderReport("/tmp/runs/x", { ...p, meta: null });
  const table = md.split("### Degeneration")[1]!.split("\n").filter((l) => l.startsWith("|"));
  const header = table[0]!.split("|").map((c) => c.trim());
  const col = header.indexOf("unknown / unfinished");
  assert.ok(col > 0, table[0] ?? "no degeneration table");
  const c = p.conditions!;
  for (const x of [c.baseline, ...c.others]) {
    const line = table.find((l) => l.startsWith(`| ${x.label} |`));
    assert.ok(line, `no degeneration row for ${x.label}`);
    const want = pct(figuresOf(x.summary).unknown_rate);
    assert.equal(line.split("|").map((s) => s.trim())[col], want, `${x.label}: ${line}`);
    assert.notEqual(
      figuresOf(x.summary).unknown_rate,
      x.summary.unknown_rate,
      "the fixture has unfinished rows",
    );
  }
});
