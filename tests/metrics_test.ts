import assert from "node:assert/strict";
import type { EventRow } from "../experiments/backtracking/event_row.ts";
import {
  compareToBaseline,
  conditionComparisonReference,
  degeneration,
  formatReferenceSummaryJson,
  formattingSummaryReference,
  outcomeColumns,
  rowTrajectory,
  summarizeCondition,
  summarizeGroups,
  summaryMetricsReference,
} from "../experiments/backtracking/metrics.ts";
import { seededRng } from "../lib/stats/stats.ts";
import { parseCsv, readCsv, toCsv, toDataFrame, writeCsv, writeParquet } from "../lib/tables/table.ts";

const REF_DIR =
  new URL("../../shared/data/reference/runs/20251223_232541/analysis/", import.meta.url).pathname;

/** A reference CSV row (17 columns, docs/protocol.md §10) as an EventRow; our extra columns get neutral values. */
function rowFromReference(r: Record<string, string>): EventRow {
  const bool = (s: string | undefined, col: string): boolean => {
    if (s === "True") return true;
    if (s === "False") return false;
    throw new Error(`column ${col}: not a Python bool: ${JSON.stringify(s)}`);
  };
  const isCorrect = r.is_correct === "" ? undefined : bool(r.is_correct, "is_correct");
  const bt = bool(r.has_backtracking_strict, "has_backtracking_strict");
  return {
    example_id: Number(r.example_id),
    sample_id: Number(r.sample_id),
    variant: r.variant!,
    condition: r.condition!,
    has_backtracking_strict: bt,
    has_backtracking_relaxed: bool(r.has_backtracking_relaxed, "has_backtracking_relaxed"),
    onset_phrase: r.onset_phrase!,
    onset_char: Number(r.onset_char),
    onset_token_in_completion: Number(r.onset_token_in_completion),
    onset_token_in_full: Number(r.onset_token_in_full),
    onset_token_id: Number(r.onset_token_id),
    onset_token_text: r.onset_token_text!,
    pred_pos_in_full: Number(r.pred_pos_in_full),
    predicted_answer: r.predicted_answer!,
    is_correct: isCorrect,
    prompt_tokens: Number(r.prompt_tokens),
    completion_tokens: Number(r.completion_tokens),
    rule: "reference",
    bt_other_rule: bt,
    triggers_per_1k: 0,
    trigger_counts: {},
    reasoning_closed: false,
    finish_reason: "length",
    gold: undefined,
    answer_status: isCorrect === undefined ? "unknown" : isCorrect ? "correct" : "incorrect",
    answer_method: "reference",
    correct_reference: isCorrect,
    repetition_4gram: 0,
    distinct_2: 1,
    digit_free: false,
    answer_region: "",
    final_answer: undefined,
    onset_type: "",
    onset_rule: "",
    onset_evidence: "",
    candidate_answer: undefined,
    trajectory: "",
  };
}

let refRowsCache: EventRow[] | undefined;
async function referenceRows(): Promise<EventRow[]> {
  refRowsCache ??= (await readCsv(`${REF_DIR}backtracking_events.csv`)).records.map(rowFromReference);
  return refRowsCache;
}

/** Synthetic rows: `problems` × `samples`, BT with probability pBt, correct with pOk. */
function synthRows(
  opts: { problems: number; samples: number; pBt: number; pOk: number; seed: number; condition?: string },
): EventRow[] {
  const rng = seededRng(opts.seed);
  const out: EventRow[] = [];
  for (let e = 0; e < opts.problems; e++) {
    const difficulty = rng();
    for (let s = 0; s < opts.samples; s++) {
      const bt = rng() < opts.pBt;
      const u = rng();
      const status = u < 0.05
        ? "unknown"
        : u < 0.1
        ? "unfinished"
        : rng() < opts.pOk * (1 - difficulty / 2)
        ? "correct"
        : "incorrect";
      const finish = status === "unfinished" || rng() < 0.3 ? "length" : rng() < 0.9 ? "eos" : "stop";
      const type = (["revision", "verification", "other"] as const)[Math.floor(rng() * 3)]!;
      const kinds = ["fix", "break", "wrong_to_wrong", "kept_right", "kept_wrong", "no_candidate"] as const;
      const traj = status === "unfinished" ? "unfinished" : kinds[Math.floor(rng() * kinds.length)]!;
      const len = 50 + Math.floor(rng() * 400);
      out.push({
        ...rowFromReference({
          example_id: String(e),
          sample_id: String(s),
          variant: "v",
          condition: opts.condition ?? "baseline",
          has_backtracking_strict: bt ? "True" : "False",
          has_backtracking_relaxed: bt || rng() < 0.1 ? "True" : "False",
          onset_phrase: "",
          onset_char: "-1",
          onset_token_in_completion: "-1",
          onset_token_in_full: "-1",
          onset_token_id: "-1",
          onset_token_text: "",
          pred_pos_in_full: "-1",
          predicted_answer: "",
          is_correct: status === "unknown" || status === "unfinished"
            ? ""
            : status === "correct"
            ? "True"
            : "False",
          prompt_tokens: "10",
          completion_tokens: String(len),
        }),
        rule: "corrected",
        bt_other_rule: bt || rng() < 0.2,
        answer_status: status,
        finish_reason: finish,
        correct_reference: status === "correct" && rng() < 0.7,
        triggers_per_1k: bt ? rng() * 10 : 0,
        trigger_counts: bt ? { Wait: 1 + Math.floor(rng() * 3), Actually: rng() < 0.3 ? 1 : 0 } : {},
        repetition_4gram: rng() * 0.3,
        distinct_2: 0.5 + rng() * 0.5,
        digit_free: rng() < 0.02,
        reasoning_closed: status !== "unfinished",
        onset_type: bt ? type : "",
        trajectory: bt ? traj : "",
      });
    }
  }
  return out;
}

Deno.test("degeneration: repetition, distinct-2, digit-free, short inputs", () => {
  const d = degeneration([1, 2, 3, 4, 1, 2, 3, 4], "a b c d a b c d");
  // 4-grams: 1234 2341 3412 4123 1234 → 1 repeat of 5
  assert.equal(d.repetition_4gram, 1 / 5);
  // bigrams: 12 23 34 41 12 23 34 → 4 distinct of 7
  assert.equal(d.distinct_2, 4 / 7);
  assert.equal(d.digit_free, true);
  assert.equal(d.length, 8);
  const loop = degeneration(Array(20).fill(7), "Wait Wait Wait 3");
  assert.equal(loop.repetition_4gram, 16 / 17);
  assert.equal(loop.distinct_2, 1 / 19);
  assert.equal(loop.digit_free, false);
  assert.equal(degeneration([], "").distinct_2, 1);
  assert.equal(degeneration([5], "x").repetition_4gram, 0);
  assert.equal(degeneration([1, 2, 3], "").digit_free, true);
  assert.equal(degeneration([], "٣").digit_free, false, "Arabic-Indic digit counts as a digit");
  assert.throws(() => degeneration([1, 2.5], ""), /tokenIds\[1\] is not an integer/);
});

Deno.test("summarizeCondition matches naive recomputation", () => {
  const rows = synthRows({ problems: 40, samples: 6, pBt: 0.6, pOk: 0.5, seed: 3 });
  const s = summarizeCondition(rows, { bootstrap: 300, seed: 7 });
  const n = rows.length;
  const count = (f: (r: EventRow) => boolean, rs = rows) => rs.filter(f).length;
  const mean = (f: (r: EventRow) => number, rs = rows) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
  assert.equal(s.n, 240);
  assert.equal(s.problems, 40);
  assert.deepEqual(s.variants, ["v"]);
  assert.deepEqual(s.conditions, ["baseline"]);
  assert.equal(s.rule, "corrected");
  assert.equal(s.bt_rate.k, count((r) => r.has_backtracking_strict));
  assert.equal(s.bt_rate.value, s.bt_rate.k / n);
  assert.equal(s.bt_rate_other_rule.value, count((r) => r.bt_other_rule) / n);
  assert.equal(s.bt_rate_relaxed.value, count((r) => r.has_backtracking_relaxed) / n);
  const correct = count((r) => r.answer_status === "correct");
  const unknown = count((r) => r.answer_status === "unknown");
  assert.equal(s.accuracy.value, correct / n, "accuracy = correct / n, unknowns counted");
  assert.equal(s.correct + s.incorrect + s.unknown + s.unfinished, n);
  assert.equal(s.unknown, unknown);
  assert.equal(s.unknown_rate, unknown / n);
  const unfinished = count((r) => r.answer_status === "unfinished");
  assert.ok(unfinished > 0, "the synthetic rows include unfinished ones");
  assert.equal(s.unfinished, unfinished);
  assert.equal(s.unfinished_rate.value, unfinished / n);
  const fin = rows.filter((r) => r.answer_status !== "unfinished");
  assert.equal(s.accuracy_finished.n, fin.length, "finished = reasoning closed (status not unfinished)");
  assert.equal(s.accuracy_finished.value, count((r) => r.answer_status === "correct", fin) / fin.length);
  const eos = rows.filter((r) => r.finish_reason !== "length");
  assert.equal(s.accuracy_eos.n, eos.length);
  assert.equal(s.accuracy_eos.value, count((r) => r.answer_status === "correct", eos) / eos.length);
  const bt = rows.filter((r) => r.has_backtracking_strict);
  assert.equal(s.accuracy_with_bt.value, count((r) => r.answer_status === "correct", bt) / bt.length);
  assert.equal(s.accuracy_reference_extractor.value, count((r) => r.correct_reference === true) / n);
  assert.equal(s.eos_rate.value, count((r) => r.finish_reason === "eos") / n);
  assert.equal(s.truncation_rate.value, count((r) => r.finish_reason === "length") / n);
  assert.ok(Math.abs(s.mean_length.value - mean((r) => r.completion_tokens)) < 1e-9);
  assert.ok(Math.abs(s.repetition_4gram.value - mean((r) => r.repetition_4gram)) < 1e-12);
  assert.ok(Math.abs(s.distinct_2.value - mean((r) => r.distinct_2)) < 1e-12);
  assert.ok(Math.abs(s.triggers_per_1k.value - mean((r) => r.triggers_per_1k)) < 1e-12);
  assert.equal(s.digit_free_rate.value, count((r) => r.digit_free) / n);
  const waits = rows.reduce((a, r) => a + (r.trigger_counts.Wait ?? 0), 0);
  assert.equal(s.trigger_counts.Wait, waits);
  assert.equal(s.trigger_samples.Wait, bt.length);
  assert.deepEqual(Object.keys(s.trigger_counts), ["Wait", "Actually"], "sorted by count");
  // Onset types: naive counts over the strict-BT rows
  for (const t of ["revision", "verification", "other"] as const) {
    const typed = bt.filter((r) => r.onset_type === t);
    assert.equal(s.onset_types[t].rate.k, typed.length);
    assert.equal(s.onset_types[t].rate.value, typed.length / n);
    assert.equal(s.onset_types[t].share.value, typed.length / bt.length);
    assert.equal(
      s.onset_types[t].accuracy.value,
      count((r) => r.answer_status === "correct", typed) / typed.length,
    );
  }
  // Trajectory: naive counts over the strict-BT rows
  const kind = (k: string) => count((r) => r.trajectory === k, bt);
  const changed = kind("fix") + kind("break") + kind("wrong_to_wrong");
  const determined = changed + kind("kept_right") + kind("kept_wrong");
  assert.equal(s.trajectory.onsets, bt.length);
  assert.equal(s.trajectory.determined, determined);
  assert.equal(s.trajectory.undetermined.unfinished, kind("unfinished"));
  assert.equal(s.trajectory.undetermined.no_candidate, kind("no_candidate"));
  assert.equal(s.trajectory.kinds.fix, kind("fix"));
  assert.equal(s.trajectory.changed.k, changed);
  assert.equal(s.trajectory.changed.n, determined);
  assert.equal(s.trajectory.fixes.k, kind("fix"));
  assert.equal(s.trajectory.fixes.n, changed);
  assert.equal(s.trajectory.breaks.k, kind("break"));
  assert.ok(Math.abs(s.trajectory.net_fix_rate - (kind("fix") - kind("break")) / determined) < 1e-12);
  // Intervals contain the estimate; the clustered Wilson interval is at least as wide as plain Wilson
  for (const e of [s.bt_rate, s.accuracy, s.eos_rate, s.unfinished_rate, s.accuracy_finished]) {
    assert.ok(e.wilson.lower <= e.value && e.value <= e.wilson.upper);
    assert.ok(e.bootstrap.lower <= e.value && e.value <= e.bootstrap.upper);
    assert.ok(e.ci.lower <= e.value && e.value <= e.ci.upper);
    assert.ok(e.ci.lower <= e.wilson.lower + 1e-12 && e.ci.upper >= e.wilson.upper - 1e-12);
    assert.ok(e.ci.design_effect >= 1);
  }
  assert.ok(s.mean_length.bootstrap.lower < s.mean_length.value);
  // Deterministic for a seed
  assert.deepEqual(summarizeCondition(rows, { bootstrap: 300, seed: 7 }), s);
});

Deno.test("summarizeCondition: empty subsets give NaN, bad options and no rows throw", () => {
  const rows = synthRows({ problems: 5, samples: 2, pBt: 0, pOk: 0.5, seed: 1 });
  const s = summarizeCondition(rows, { bootstrap: 50 });
  assert.ok(Number.isNaN(s.accuracy_with_bt.value));
  assert.equal(s.accuracy_with_bt.n, 0);
  assert.ok(Number.isNaN(s.accuracy_with_bt.bootstrap.lower));
  assert.throws(() => summarizeCondition([], {}), /no rows/);
  assert.throws(() => summarizeCondition(rows, { bootstrap: 0 }), /option "bootstrap"/);
  assert.throws(() => summarizeCondition(rows, { level: 1.5 }), /option "level"/);
});

Deno.test("summarizeCondition: a 0% or 100% rate keeps an honest interval (not [0, 0])", () => {
  // 40 problems × 4 samples, no backtracking at all, every answer correct: the percentile bootstrap
  // collapses to [0, 0] / [1, 1]; the clustered Wilson interval uses the largest design effect the
  // cluster sizes allow (Σm²/Σm = 4), i.e. Wilson on 40 effective samples: upper 1.96²/(40 + 1.96²).
  const rows = synthRows({ problems: 40, samples: 4, pBt: 0, pOk: 1, seed: 3 }).map((r) => ({
    ...r,
    answer_status: "correct" as const,
    is_correct: true,
  }));
  const s = summarizeCondition(rows, { bootstrap: 200, seed: 1 });
  assert.equal(s.bt_rate.value, 0);
  assert.deepEqual(
    [s.bt_rate.bootstrap.lower, s.bt_rate.bootstrap.upper],
    [0, 0],
    "the bootstrap degenerates",
  );
  const z = 1.959963984540054;
  assert.equal(s.bt_rate.ci.lower, 0);
  assert.ok(Math.abs(s.bt_rate.ci.upper - z * z / (40 + z * z)) < 1e-9, `${s.bt_rate.ci.upper}`);
  assert.equal(s.bt_rate.ci.method, "cluster_wilson_max");
  assert.equal(s.bt_rate.ci.design_effect, 4);
  assert.equal(s.accuracy.value, 1);
  assert.ok(Math.abs(s.accuracy.ci.lower - 40 / (40 + z * z)) < 1e-9);
  assert.equal(s.unfinished_rate.value, 0);
  assert.ok(s.unfinished_rate.ci.upper > 0.05);
  // The flat columns carry the same bounds
  const cols = outcomeColumns(s);
  assert.equal(cols.unfinished_rate_upper, s.unfinished_rate.ci.upper);
  assert.equal(cols.bt_revision_rate, 0);
  assert.equal(cols.bt_revision_rate_upper, s.onset_types.revision.rate.ci.upper);
  assert.equal(s.trajectory.onsets, 0);
  // A rate over nothing is an empty cell, not "nan" (a CSV reader would then mix strings and numbers)
  assert.equal(cols.answer_changed, undefined);
  assert.equal(cols.accuracy_bt_revision, undefined);
  assert.equal(cols.bt_revision_share, undefined);
  assert.ok(!toCsv([cols], { python: true }).toLowerCase().includes("nan"));
});

Deno.test("rowTrajectory rebuilds each trajectory column value", () => {
  const row = (trajectory: EventRow["trajectory"]) => ({ trajectory, final_answer: 24 }) as EventRow;
  assert.equal(rowTrajectory(row("")), undefined);
  assert.deepEqual(
    [
      rowTrajectory(row("fix"))!.kind,
      rowTrajectory(row("fix"))!.changed,
      rowTrajectory(row("fix"))!.final_correct,
    ],
    ["fix", true, true],
  );
  assert.deepEqual(
    [rowTrajectory(row("break"))!.changed, rowTrajectory(row("break"))!.candidate_correct],
    [true, true],
  );
  assert.equal(rowTrajectory(row("kept_wrong"))!.changed, false);
  const u = rowTrajectory(row("no_gold"))!;
  assert.deepEqual([u.kind, u.undetermined, u.changed], ["undetermined", "no_gold", undefined]);
});

Deno.test("summarizeGroups keeps (variant, condition) groups apart", () => {
  const a = synthRows({ problems: 5, samples: 2, pBt: 0.9, pOk: 0.5, seed: 1 });
  const b = synthRows({
    problems: 5,
    samples: 2,
    pBt: 0.1,
    pOk: 0.5,
    seed: 2,
    condition: "targeted_ablation",
  });
  const g = summarizeGroups([...a, ...b], { bootstrap: 20 });
  assert.deepEqual(g.map((x) => [x.variant, x.condition, x.summary.n]), [
    ["v", "baseline", 10],
    ["v", "targeted_ablation", 10],
  ]);
});

Deno.test("compareToBaseline: paired deltas, relative change and McNemar", () => {
  const base = synthRows({ problems: 30, samples: 4, pBt: 0.7, pOk: 0.5, seed: 11 });
  const other = synthRows({ problems: 30, samples: 4, pBt: 0.2, pOk: 0.3, seed: 12, condition: "targeted" })
    .filter((r) => !(r.example_id === 0 && r.sample_id === 0)); // one unpaired baseline row
  const c = compareToBaseline(base, other, { bootstrap: 500, seed: 3 });
  assert.equal(c.pairs, 119);
  assert.equal(c.unpaired_baseline, 1);
  assert.equal(c.unpaired_other, 0);
  assert.equal(c.problems, 30);
  const paired = base.filter((r) => !(r.example_id === 0 && r.sample_id === 0));
  const rate = (rs: EventRow[]) => rs.filter((r) => r.has_backtracking_strict).length / rs.length;
  assert.ok(Math.abs(c.delta_bt_rate.baseline - rate(paired)) < 1e-12);
  assert.ok(Math.abs(c.delta_bt_rate.other - rate(other)) < 1e-12);
  assert.ok(Math.abs(c.delta_bt_rate.difference - (rate(other) - rate(paired))) < 1e-12);
  assert.ok(c.delta_bt_rate.bootstrap.upper < 0, "a large drop has a CI below zero");
  assert.ok(Math.abs(c.relative_bt_change.value - (rate(other) - rate(paired)) / rate(paired)) < 1e-12);
  assert.ok(c.relative_bt_change.bootstrap.lower <= c.relative_bt_change.value);
  assert.ok(c.relative_bt_change.value <= c.relative_bt_change.bootstrap.upper);
  // McNemar counts by hand
  const byKey = new Map(other.map((r) => [`${r.example_id}/${r.sample_id}`, r]));
  let otherOnly = 0;
  let baseOnly = 0;
  for (const b of paired) {
    const o = byKey.get(`${b.example_id}/${b.sample_id}`)!;
    if (o.has_backtracking_strict && !b.has_backtracking_strict) otherOnly++;
    if (!o.has_backtracking_strict && b.has_backtracking_strict) baseOnly++;
  }
  assert.equal(c.mcnemar_bt.other_only, otherOnly);
  assert.equal(c.mcnemar_bt.baseline_only, baseOnly);
  assert.ok(c.mcnemar_bt.p_value < 1e-6);
  assert.ok(c.mcnemar_accuracy.p_value > 0 && c.mcnemar_accuracy.p_value <= 1);
  // Identical conditions: zero difference with a CI of exactly zero, McNemar p = 1
  const same = compareToBaseline(base, base, { bootstrap: 100 });
  assert.equal(same.delta_bt_rate.difference, 0);
  assert.deepEqual(same.delta_bt_rate.bootstrap, { lower: 0, upper: 0 });
  assert.equal(same.mcnemar_bt.p_value, 1);
  assert.throws(() => compareToBaseline(base, [...base, base[0]!]), /other has two rows for example_id=0/);
  assert.throws(
    () => compareToBaseline(base, other.map((r) => ({ ...r, example_id: r.example_id + 1000 }))),
    /no \(example_id, sample_id\) pair/,
  );
});

Deno.test("reference: summary_metrics.json recomputed exactly from backtracking_events.csv", async () => {
  const rows = await referenceRows();
  assert.equal(rows.length, 6000);
  const s = summaryMetricsReference(rows);
  const committed = JSON.parse(await Deno.readTextFile(`${REF_DIR}summary_metrics.json`));
  assert.deepEqual(s, committed);
  // key order happens to match the committed file, so the text matches byte for byte
  assert.equal(formatReferenceSummaryJson(s), await Deno.readTextFile(`${REF_DIR}summary_metrics.json`));
  assert.equal(s.accuracy, 0.12710566615620214);
  assert.equal(s.accuracy_with_backtracking, 0.18855325914149443);
});

Deno.test("reference: condition_comparison.csv and formatting_summary.csv values exactly", async () => {
  const rows = await referenceRows();
  const cmp = conditionComparisonReference(rows, "baseline_think_newline");
  const committedCmp = (await readCsv(`${REF_DIR}condition_comparison.csv`)).records;
  const floats = ["backtracking_rate", "accuracy"];
  const ours = parseCsv(toCsv(cmp, { python: true, floatColumns: floats })).records;
  // The reference's row order is set order: compare keyed by condition, text for text
  const key = (r: Record<string, string>) => r.condition!;
  assert.deepEqual(
    new Map(ours.map((r) => [key(r), r])),
    new Map(committedCmp.map((r) => [key(r), r])),
  );
  const fmt = formattingSummaryReference(rows);
  const text = toCsv(fmt, { python: true, floatColumns: floats });
  assert.equal(text, await Deno.readTextFile(`${REF_DIR}formatting_summary.csv`));
  assert.throws(() => conditionComparisonReference(rows, "nope"), /no rows for variant "nope"/);
});

Deno.test("reference: metrics_v2 baseline-only numbers (docs/protocol.md §19) and the corrected accuracy beside", async () => {
  const rows = (await referenceRows()).filter((r) => r.condition === "baseline");
  const s = summaryMetricsReference(rows);
  assert.equal(s.total_samples, 3600);
  assert.equal(s.backtracking_strict_count, 2452);
  assert.equal(s.unknown_count, 18);
  assert.equal(s.accuracy, 0.19932998324958123);
  assert.equal(s.accuracy_with_backtracking, 0.23735725938009788);
  assert.equal(s.accuracy_without_backtracking, 0.11498257839721254);
  const ours = summarizeCondition(rows.filter((r) => r.variant === "baseline_think_newline"), {
    bootstrap: 200,
  });
  assert.equal(ours.accuracy.value, 259 / 1200);
  assert.equal(ours.bt_rate.value, 850 / 1200);
  assert.equal(ours.problems, 200);
  // 6 samples per problem: the problem-clustered CI is wider than the sample-level Wilson CI
  const w = ours.bt_rate.wilson.upper - ours.bt_rate.wilson.lower;
  const b = ours.bt_rate.bootstrap.upper - ours.bt_rate.bootstrap.lower;
  assert.ok(b > w, `bootstrap width ${b} should exceed Wilson width ${w}`);
});

Deno.test("table: CSV round trip, atomic writes, DataFrame types, Parquet", async () => {
  const rows = [
    { a: 1, b: 'x,"y"', c: true, d: undefined, e: { k: 1 }, f: 0.5 },
    { a: 2, b: "line\nbreak", c: false, d: "z", e: [1, 2], f: 1 },
  ];
  const text = toCsv(rows);
  assert.equal(text.split("\n")[0], "a,b,c,d,e,f");
  const back = parseCsv(text);
  assert.equal(back.records[0]!.b, 'x,"y"');
  assert.equal(back.records[1]!.b, "line\nbreak");
  assert.equal(back.records[0]!.d, "");
  assert.equal(back.records[0]!.e, '{"k":1}');
  const py = toCsv(rows, { python: true, floatColumns: ["f"] });
  assert.equal(py.split("\r\n")[1], '1,"x,""y""",True,,"{""k"":1}",0.5');
  assert.ok(py.endsWith(',False,z,"[1,2]",1.0\r\n'));
  assert.equal(parseCsv(py).records[1]!.b, "line\nbreak");
  assert.equal(toCsv(rows, { columns: ["f", "a"] }), "f,a\n0.5,1\n1,2\n");
  assert.throws(() => toCsv(rows, { columns: ["a", "a"] }), /repeats a name/);
  assert.throws(() => parseCsv('a,b\n"x,1\n'), /unterminated/);
  assert.throws(() => parseCsv("a,b\n1\n"), /record 1 has 1 fields/);

  const dir = await Deno.makeTempDir();
  try {
    await writeCsv(`${dir}/sub/t.csv`, rows);
    assert.equal(await Deno.readTextFile(`${dir}/sub/t.csv`), text);
    assert.deepEqual([...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name), ["t.csv"], "no temp file left");
    const df = toDataFrame(rows);
    assert.deepEqual(df.columns, ["a", "b", "c", "d", "e", "f"]);
    assert.equal(String(df.getColumn("a").dtype), "DataType(Int64)");
    assert.equal(String(df.getColumn("f").dtype), "DataType(Float64)");
    assert.equal(String(df.getColumn("c").dtype), "DataType(Bool)");
    assert.equal(df.getColumn("d").nullCount(), 1);
    assert.throws(() => toDataFrame([{ a: 1 }, { a: "x" }]), /column "a" mixes number and string/);
    await writeParquet(`${dir}/t.parquet`, rows);
    const { default: pl } = await import("nodejs-polars");
    const read = pl.readParquet(`${dir}/t.parquet`);
    assert.equal(read.height, 2);
    assert.deepEqual(read.getColumn("a").toArray().map(Number), [1, 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
