/**
 * Protocol validation: the reference's signed top-k and our specificity rule, scored against a known
 * planted set and decoy. Selections are checked against experiments/backtracking/selection.ts's selectComponents (the
 * pipeline's implementation) and hand-computed precision/recall.
 */
import assert from "node:assert/strict";
import type { ScanRow } from "../lib/interp/ablation_scan.ts";
import { selectComponents } from "../experiments/backtracking/selection.ts";
import {
  componentLabel,
  referenceSelection,
  type ScannedComponent,
  scoreSelection,
  specificitySelection,
  validateProtocols,
  validationVerdict,
} from "../experiments/backtracking/protocol_validation.ts";
import { seededRng } from "../lib/stats/stats.ts";

function row(
  component: "attn" | "mlp",
  layer: number,
  dl: number,
  spec: number,
  half = 0.1,
): ScannedComponent {
  return {
    layer,
    component,
    delta_logit_mean: dl,
    specificity_mean: spec,
    specificity_lower: spec - half,
    specificity_upper: spec + half,
  };
}

/** The organism's shape: 8 layers; planted attn 2, mlp 4, attn 6; decoy mlp 0 (huge raw Δlogit, specificity ≈ 0). */
function organismLike(): ScannedComponent[] {
  const rows: ScannedComponent[] = [];
  for (let l = 0; l < 8; l++) {
    for (const c of ["attn", "mlp"] as const) {
      let r = row(c, l, -0.02 * ((l * 7 + (c === "mlp" ? 3 : 0)) % 5), 0.01 * ((l % 3) - 1), 0.05);
      if (c === "mlp" && l === 0) r = row(c, l, -18, 0.05, 0.08); // decoy
      if (c === "attn" && l === 2) r = row(c, l, -3.8, -2.5, 0.4);
      if (c === "mlp" && l === 4) r = row(c, l, -1.7, -1.1, 0.3);
      if (c === "attn" && l === 6) r = row(c, l, -0.9, -0.6, 0.3);
      rows.push(r);
    }
  }
  return rows;
}

const TRUTH = {
  planted: [
    { layer: 2, component: "attn" as const },
    { layer: 4, component: "mlp" as const },
    { layer: 6, component: "attn" as const },
  ],
  decoy: [{ layer: 0, component: "mlp" as const }],
};

function asScanRow(r: ScannedComponent): ScanRow {
  return {
    ...r,
    n_events: 10,
    delta_logprob_mean: r.delta_logit_mean,
    delta_logprob_std: 1,
    delta_logprob_lower: NaN,
    delta_logprob_upper: NaN,
    delta_logit_std: 1,
    n_controls: 10,
    control_delta_logprob_mean: 0,
    control_delta_logprob_lower: 0,
    control_delta_logprob_upper: 0,
    control_trigger_delta_logprob_mean: 0,
    n_pairs: 10,
    level: 0.95,
  };
}

Deno.test("protocol validation: on the organism's shape the reference takes the decoy, ours the planted set", () => {
  const v = validateProtocols(organismLike(), TRUTH, { referenceK: 2 });
  // Reference: attn by Δlogit: attn 2 (−3.8), attn 6 (−0.9); mlp: mlp 0 (−18, decoy), mlp 4 (−1.7).
  assert.deepEqual(v.reference.selected.map(componentLabel), ["attn 2", "attn 6", "mlp 0", "mlp 4"]);
  assert.equal(v.reference.precision, 3 / 4);
  assert.equal(v.reference.recall, 1);
  assert.equal(v.reference.decoy_selected, true);
  assert.deepEqual(v.reference.false_positives.map(componentLabel), ["mlp 0"]);
  // Ours: CIs below −0.1: attn 2, attn 6, mlp 4 (the decoy's CI [−0.03, 0.13] spans zero; noise rows
  // have |specificity| <= 0.01 with CIs of ±0.05).
  assert.deepEqual(v.ours.selected.map(componentLabel), ["attn 2", "attn 6", "mlp 4"]);
  assert.equal(v.ours.precision, 1);
  assert.equal(v.ours.recall, 1);
  assert.equal(v.ours.decoy_selected, false);
  const verdict = validationVerdict(v);
  assert.deepEqual(verdict, {
    ours_recovers_planted: true,
    reference_selects_decoy: true,
    passed: true,
    failures: [],
  });
  assert.match(v.ours.rule, /specificity CI lies below −0.1 nats/);
  // Without the minimum effect, a noise row whose CI just excludes zero is taken too.
  const rows = organismLike().map((r) =>
    r.component === "mlp" && r.layer === 5 ? row("mlp", 5, 0, -0.04, 0.02) : r
  );
  assert.deepEqual(
    validateProtocols(rows, TRUTH, { referenceK: 2, minEffect: 0 }).ours.selected.map(componentLabel),
    ["attn 2", "attn 6", "mlp 4", "mlp 5"],
  );
  assert.deepEqual(
    validateProtocols(rows, TRUTH, { referenceK: 2 }).ours.selected.map(componentLabel),
    ["attn 2", "attn 6", "mlp 4"],
  );
  assert.match(v.reference.rule, /2 most negative mean raw Δlogit/);
});

Deno.test("protocol validation: k = 1 reference misses planted components; a threshold and a cap change ours", () => {
  const v = validateProtocols(organismLike(), TRUTH, { referenceK: 1, minEffect: 0.5, maxPerType: 1 });
  assert.deepEqual(v.reference.selected.map(componentLabel), ["attn 2", "mlp 0"]);
  assert.equal(v.reference.recall, 1 / 3);
  assert.equal(v.reference.precision, 1 / 2);
  // minEffect 0.5: attn 6's CI upper is −0.3 > −0.5, so it drops; cap 1 per type.
  assert.deepEqual(v.ours.selected.map(componentLabel), ["attn 2", "mlp 4"]);
  assert.equal(v.ours.recall, 2 / 3);
  assert.equal(validationVerdict(v).passed, true);
  // Recall 2/3 is not enough when 100% is required.
  const strict = validationVerdict(v, 1);
  assert.equal(strict.passed, false);
  assert.deepEqual(strict.failures, ["ours recalls 2/3 planted components (need >= 100%); missed: attn 6"]);
});

Deno.test("protocol validation: the verdict names every failed expectation", () => {
  // A scan where the decoy is specific (it would be if controls were not matched) and the planted MLP is not.
  const rows = organismLike().map((r) =>
    r.component === "mlp" && r.layer === 0
      ? row("mlp", 0, -18, -3, 0.2)
      : r.component === "mlp" && r.layer === 4
      ? row("mlp", 4, -0.01, 0.02, 0.1)
      : r.component === "attn" && r.layer === 6
      ? row("attn", 6, -0.01, 0.02, 0.1)
      : r
  );
  const v = validateProtocols(rows, TRUTH, { referenceK: 0 });
  assert.deepEqual(v.reference.selected, []);
  assert.ok(Number.isNaN(v.reference.precision));
  assert.equal(v.reference.recall, 0);
  const verdict = validationVerdict(v);
  assert.equal(verdict.passed, false);
  assert.deepEqual(verdict.failures, [
    "ours recalls 1/3 planted components (need >= 67%); missed: mlp 4, attn 6",
    "ours selects the decoy: mlp 0",
    "the reference does not select the decoy (mlp 0); it selected none",
  ]);
});

Deno.test("protocol validation: selections equal selectComponents (experiments/backtracking/selection.ts) on random scans", () => {
  const rng = seededRng(7);
  for (let trial = 0; trial < 50; trial++) {
    const rows: ScannedComponent[] = [];
    const L = 2 + Math.floor(rng() * 10);
    for (let l = 0; l < L; l++) {
      for (const c of ["attn", "mlp"] as const) {
        // Coarse values so ties occur.
        const dl = Math.round((rng() - 0.7) * 6) / 2;
        const sp = Math.round((rng() - 0.6) * 4) / 2;
        rows.push(row(c, l, rng() < 0.05 ? NaN : dl, sp, Math.round(rng() * 4) / 4));
      }
    }
    const k = Math.floor(rng() * 4);
    const scan = rows.map(asScanRow);
    const sm = selectComponents(scan, { criterion: "signed_mean", topk: k });
    const sp = selectComponents(scan, { criterion: "specificity", topk: k, minEffect: 0 });
    const sp2 = selectComponents(scan, { criterion: "specificity", topk: k });
    const ref = referenceSelection(rows, k);
    const ours = specificitySelection(rows, { minEffect: 0, maxPerType: k });
    const split = (xs: { layer: number; component: string }[]) => ({
      attn: xs.filter((x) => x.component === "attn").map((x) => x.layer),
      mlp: xs.filter((x) => x.component === "mlp").map((x) => x.layer),
    });
    if (!rows.some((r) => Number.isNaN(r.delta_logit_mean))) {
      assert.deepEqual(split(ref), sm, `trial ${trial}: reference`);
    }
    assert.deepEqual(split(ours), sp, `trial ${trial}: specificity`);
    assert.deepEqual(split(specificitySelection(rows, { maxPerType: k })), sp2, `trial ${trial}: default`);
  }
});

Deno.test("protocol validation: NaN Δlogits sort last; duplicates count once; bad input is named", () => {
  const rows = [row("mlp", 0, NaN, 0), row("mlp", 1, -1, 0), row("mlp", 2, -0.5, 0)];
  assert.deepEqual(referenceSelection(rows, 2).map(componentLabel), ["mlp 1", "mlp 2"]);
  const s = scoreSelection("ours", "x", [{ layer: 2, component: "attn" }, { layer: 2, component: "attn" }], {
    planted: [{ layer: 2, component: "attn" }, { layer: 2, component: "attn" }, {
      layer: 4,
      component: "mlp",
    }],
    decoy: [],
  });
  assert.equal(s.selected.length, 1);
  assert.equal(s.precision, 1);
  assert.equal(s.recall, 1 / 2);
  assert.throws(() => referenceSelection(rows, -1), /k must be an integer >= 0, got -1/);
  assert.throws(() => specificitySelection(rows, { minEffect: -1 }), /minEffect must be >= 0/);
  assert.throws(
    () => scoreSelection("ours", "x", [{ layer: 1.5, component: "attn" }], { planted: [], decoy: [] }),
    /selected entry .* is not \{layer, component\}/,
  );
});
