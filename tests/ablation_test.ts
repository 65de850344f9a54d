/**
 * The cached, batched ablation scan against brute-force full-sequence forwards (engine and float64
 * naive), the scan's aggregation, component selection, and the random layer draws.
 */
import assert from "node:assert/strict";
import { type ForwardResult, HookedModel } from "../lib/engine/hooked_model.ts";
import type { Intervention } from "../lib/engine/hooks.ts";
import { writeRandomCheckpoint } from "../lib/engine/random_checkpoint.ts";
import {
  ablationScan,
  conditionHook,
  type EffectRow,
  scanConditions,
  scanEffects,
  type ScanRow,
  summarizeScan,
} from "../lib/interp/ablation_scan.ts";
import {
  randomDraws,
  referenceImportanceRows,
  selectComponents,
} from "../experiments/backtracking/selection.ts";
import {
  type BacktrackEvent,
  matchControls,
  type Trace,
} from "../experiments/backtracking/event_selection.ts";
import { seededRng } from "../lib/stats/stats.ts";
import { loadNaiveWeights, naiveForward } from "./naive_forward.ts";

const SHARED = new URL("../../shared/data/reference/", import.meta.url);
const TOL = 1e-4;

function logSoftmaxAt(logits: ArrayLike<number>, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i]! - max);
  return logits[id]! - max - Math.log(s);
}

Deno.test("scan effects equal brute-force full-sequence forwards with the intervention at predPos", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-ablation-" });
  let model: HookedModel | undefined;
  try {
    const V = 53, L = 3;
    await writeRandomCheckpoint(dir, {
      modelType: "qwen2",
      hiddenSize: 32,
      numLayers: L,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 48,
      vocabSize: V,
      seed: 31,
    });
    const naive = await loadNaiveWeights(dir);
    model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs` });
    const rng = seededRng(9);
    const tokens = (n: number) => Array.from({ length: n }, () => Math.floor(rng() * V));
    const events: BacktrackEvent[] = [[4, 9, 6], [3, 6, 4], [5, 14, 11]].map(([prompt, len, pred], i) => {
      const tokenIds = tokens(len!);
      return {
        exampleId: i % 2,
        sampleId: i,
        tokenIds,
        promptTokens: prompt!,
        predPos: pred!,
        onsetTokenId: tokenIds[pred! + 1]!,
        trigger: "Wait",
      };
    });
    const pool: Trace[] = [0, 1, 2, 3].map((i) => ({
      exampleId: 5 + i,
      sampleId: 0,
      promptTokens: 3 + i,
      tokenIds: tokens(16 + i),
    }));
    const controls = matchControls(events, pool, { seed: 2 });
    assert.equal(controls.length, 3);
    // Small maxRows/prefillBatch so chunking and grouping are exercised.
    const effects = await scanEffects(model, events, controls, { maxRows: 5, prefillBatch: 2 });
    const conditions = scanConditions(L);
    assert.equal(effects.length, (events.length + controls.length) * conditions.length);

    // Brute force with the engine: the whole sequence, clean and ablated at predPos, logits at predPos.
    const cases: { kind: "event" | "control"; index: number; layer: number; component: "attn" | "mlp" }[] = [
      { kind: "event", index: 0, layer: 0, component: "attn" },
      { kind: "event", index: 2, layer: 2, component: "mlp" },
      { kind: "event", index: 1, layer: 1, component: "mlp" },
      { kind: "control", index: 1, layer: 0, component: "mlp" },
      { kind: "control", index: 2, layer: 2, component: "attn" },
    ];
    let moved = 0;
    for (const c of cases) {
      const pos = c.kind === "event" ? events[c.index]! : controls[c.index]!;
      const target = c.kind === "event" ? events[c.index]!.onsetTokenId : pos.tokenIds[pos.predPos + 1]!;
      const iv: Intervention = {
        hook: conditionHook(c),
        op: "scale",
        value: 0,
        positions: [[pos.predPos]],
      };
      const clean: ForwardResult = await model.forward([pos.tokenIds], { logits: [[pos.predPos]] });
      const abl: ForwardResult = await model.forward([pos.tokenIds], {
        logits: [[pos.predPos]],
        interventions: [iv],
      });
      const row = effects.find((r) =>
        r.kind === c.kind && r.index === c.index && r.layer === c.layer && r.component === c.component
      )!;
      assert.equal(row.target_id, target);
      const cl = clean.logits[0]![0]!, ab = abl.logits[0]![0]!;
      const wantLogit = ab[target]! - cl[target]!;
      const wantLogprob = logSoftmaxAt(ab, target) - logSoftmaxAt(cl, target);
      const what = `${c.kind} ${c.index} ${c.component} ${c.layer}`;
      assert.ok(
        Math.abs(row.delta_logit - wantLogit) <= TOL,
        `${what}: Δlogit ${row.delta_logit} vs ${wantLogit}`,
      );
      assert.ok(Math.abs(row.delta_logprob - wantLogprob) <= TOL, `${what}: Δlogprob ${row.delta_logprob}`);
      assert.ok(Math.abs(row.clean_logit - cl[target]!) <= TOL, `${what}: clean logit`);
      moved = Math.max(moved, Math.abs(wantLogprob));

      // And the float64 naive pass (independent code) on the prefix up to predPos.
      const prefix = [pos.tokenIds.slice(0, pos.predPos + 1)];
      const nClean = naiveForward(naive, prefix).logits[0]![pos.predPos]!;
      const nAbl = naiveForward(naive, prefix, { interventions: [iv] }).logits[0]![pos.predPos]!;
      const naiveDelta = logSoftmaxAt(nAbl, target) - logSoftmaxAt(nClean, target);
      assert.ok(Math.abs(row.delta_logprob - naiveDelta) <= TOL, `${what}: Δlogprob vs naive ${naiveDelta}`);
    }
    assert.ok(moved > 1e-2, `ablations moved log-probs by only ${moved}: the test could not fail`);

    // Controls: target = sampled next token, trigger = the matched event's onset.
    for (const r of effects.filter((r) => r.kind === "control")) {
      const c = controls[r.index]!;
      assert.equal(r.event, c.matchedTo);
      assert.equal(r.target_id, c.tokenIds[c.predPos + 1]);
      assert.equal(r.trigger_id, events[c.matchedTo]!.onsetTokenId);
    }

    // The same scan in one call, any batching, summarised.
    const rows = await ablationScan(model, events, controls, {
      bootstrap: 200,
      layers: [2, 0],
      components: ["mlp"],
    });
    assert.deepEqual(rows.map((r) => [r.layer, r.component]), [[2, "mlp"], [0, "mlp"]]);
    const want = summarizeScan(effects.filter((e) => e.component === "mlp"), { bootstrap: 200 });
    for (const r of rows) {
      const w = want.find((x) => x.layer === r.layer)!;
      assert.ok(Math.abs(r.delta_logprob_mean - w.delta_logprob_mean) <= TOL);
      assert.ok(Math.abs(r.specificity_mean - w.specificity_mean) <= TOL);
      assert.equal(r.n_events, 3);
      assert.equal(r.n_pairs, 3);
    }
    // Scale 1 changes nothing.
    const neutral = await scanEffects(model, events.slice(0, 1), [], { scale: 1, layers: [1] });
    for (const r of neutral) assert.ok(Math.abs(r.delta_logprob) <= 1e-5, `scale 1 moved ${r.delta_logprob}`);
    await assert.rejects(
      scanEffects(model, [{ ...events[0]!, predPos: 0 }], []),
      /predPos 0 must lie in \[1, 8\]/,
    );
    await assert.rejects(scanEffects(model, events, [], { layers: [3] }), /layer 3 is outside \[0, 3\)/);
    await assert.rejects(scanEffects(model, events, [{ ...controls[0]!, matchedTo: 7 }]), /matchedTo 7/);
  } finally {
    await model?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

function effect(
  kind: "event" | "control",
  index: number,
  event: number,
  example: number,
  layer: number,
  dLogprob: number,
  dLogit = dLogprob * 2,
): EffectRow {
  return {
    kind,
    index,
    event,
    example_id: example,
    sample_id: 0,
    pred_pos: 5,
    layer,
    component: "attn",
    target_id: 1,
    clean_logit: 0,
    clean_logprob: -1,
    delta_logit: dLogit,
    delta_logprob: dLogprob,
    trigger_id: 1,
    trigger_delta_logprob: dLogprob / 2,
  };
}

Deno.test("summarizeScan: means, sample std, paired specificity, clustered CIs", () => {
  const effects = [
    effect("event", 0, 0, 0, 0, -1),
    effect("event", 1, 1, 0, 0, -3),
    effect("event", 2, 2, 1, 0, -2),
    // event 0 has two controls, event 1 one, event 2 none.
    effect("control", 0, 0, 5, 0, 1),
    effect("control", 1, 0, 6, 0, 3),
    effect("control", 2, 1, 7, 0, -1),
  ];
  const [row] = summarizeScan(effects, { bootstrap: 300 });
  assert.ok(row);
  assert.equal(row.n_events, 3);
  assert.equal(row.delta_logprob_mean, -2);
  assert.equal(row.delta_logprob_std, 1);
  assert.equal(row.delta_logit_mean, -4);
  assert.equal(row.delta_logit_std, 2);
  assert.equal(row.n_controls, 3);
  assert.equal(row.control_delta_logprob_mean, 1);
  assert.equal(row.control_trigger_delta_logprob_mean, 0.5);
  // Specificity: event 0: -1 - mean(1, 3) = -3; event 1: -3 - (-1) = -2.
  assert.equal(row.n_pairs, 2);
  assert.equal(row.specificity_mean, -2.5);
  // Both paired events belong to problem 0: one cluster, a degenerate interval.
  assert.deepEqual([row.specificity_lower, row.specificity_upper], [-2.5, -2.5]);
  assert.ok(row.delta_logprob_lower <= -2 && -2 <= row.delta_logprob_upper);
  const noCtl = summarizeScan(effects.filter((e) => e.kind === "event"))[0]!;
  assert.ok(Number.isNaN(noCtl.specificity_mean) && Number.isNaN(noCtl.control_delta_logprob_mean));
});

function scanRow(
  layer: number,
  component: "attn" | "mlp",
  dLogit: number,
  spec: number,
  upper: number,
): ScanRow {
  return {
    layer,
    component,
    n_events: 10,
    delta_logprob_mean: dLogit / 2,
    delta_logprob_std: 1,
    delta_logprob_lower: dLogit,
    delta_logprob_upper: 0,
    delta_logit_mean: dLogit,
    delta_logit_std: 1,
    n_controls: 10,
    control_delta_logprob_mean: 0,
    control_delta_logprob_lower: -1,
    control_delta_logprob_upper: 1,
    control_trigger_delta_logprob_mean: 0,
    n_pairs: 10,
    specificity_mean: spec,
    specificity_lower: spec - 1,
    specificity_upper: upper,
    level: 0.95,
  };
}

Deno.test("selectComponents: signed mean (reference) and significant specificity (corrected)", () => {
  const rows = [
    scanRow(0, "attn", -15, -0.1, 0.5), // big but generic: CI of specificity covers 0
    scanRow(0, "mlp", -1, -2, -0.5),
    scanRow(1, "attn", 2, -3, -1),
    scanRow(1, "mlp", -4, -1, -0.2),
    scanRow(2, "attn", -3, -1, -0.1),
    scanRow(2, "mlp", -4, -5, 0.1),
    scanRow(3, "attn", -3, -1, -0.3),
    scanRow(3, "mlp", 0.5, -0.5, -0.01),
  ];
  assert.deepEqual(selectComponents(rows, { criterion: "signed_mean", topk: 3 }), {
    attn: [0, 2, 3],
    mlp: [1, 2, 0],
  });
  // A component whose ablation raises the logit is never chosen by the signed criterion, even at topk 4.
  assert.deepEqual(selectComponents(rows, { criterion: "signed_mean", topk: 4 }).attn, [0, 2, 3, 1]);
  assert.deepEqual(selectComponents(rows, { criterion: "specificity", topk: 2, minEffect: 0 }), {
    attn: [1, 2],
    mlp: [0, 1],
  });
  // Never padded with non-significant components.
  assert.deepEqual(selectComponents(rows, { criterion: "specificity", topk: 6, minEffect: 0 }), {
    attn: [1, 2, 3],
    mlp: [0, 1, 3],
  });
  // The default rule needs the CI below -0.1 nats: "CI upper < 0" alone kept attn 2 (upper -0.1, not
  // < -0.1) and mlp 3 (upper -0.01), components whose effect may be a few hundredths of a nat.
  assert.deepEqual(selectComponents(rows, { criterion: "specificity", topk: 6 }), {
    attn: [1, 3],
    mlp: [0, 1],
  });
  assert.deepEqual(selectComponents(rows, { criterion: "specificity", topk: 6, minEffect: 0.4 }), {
    attn: [1],
    mlp: [0],
  });
  assert.throws(
    () => selectComponents(rows, { criterion: "specificity", topk: 1, minEffect: -1 }),
    /minEffect/,
  );
  assert.deepEqual(referenceImportanceRows(rows).slice(0, 2).map((r) => [r.layer, r.component]), [
    [0, "attn"],
    [1, "mlp"],
  ]);
  assert.throws(() => selectComponents(rows, { criterion: "signed_mean", topk: -1 }), /topk/);
});

Deno.test("randomDraws: reference draw reproduces the recomputed specs; matched draws", async () => {
  const spec = JSON.parse(
    await Deno.readTextFile(new URL("derived/random_ablation_specs_recomputed.json", SHARED)),
  );
  const selected = { attn: [0, 27, 17, 1, 19, 15], mlp: [27, 19, 23, 24, 20, 22] };
  assert.deepEqual(spec.targeted, selected);
  const ref = randomDraws(selected, { numLayers: 28, draws: 3, mode: "reference", seed: 5 });
  assert.deepEqual(ref[0], { attn: [10, 13, 11, 8, 2, 6], mlp: [9, 18, 5, 3, 16, 7] });
  assert.deepEqual(ref[0], spec.random);
  assert.notDeepEqual(ref[1], ref[0]);

  const a = randomDraws(selected, { numLayers: 28, draws: 20, seed: 7, mode: "matched" });
  assert.deepEqual(a, randomDraws(selected, { numLayers: 28, draws: 20, seed: 7 }));
  assert.notDeepEqual(a, randomDraws(selected, { numLayers: 28, draws: 20, seed: 8 }));
  let overlap = 0;
  for (const d of a) {
    assert.equal(d.attn.length, 6);
    assert.equal(d.mlp.length, 6);
    assert.equal(new Set(d.attn).size, 6);
    assert.equal(new Set(d.mlp).size, 6);
    assert.ok(d.attn.every((l) => !selected.attn.includes(l) && l >= 0 && l < 28));
    assert.ok(d.mlp.every((l) => !selected.mlp.includes(l) && l >= 0 && l < 28));
    overlap += d.attn.filter((l) => d.mlp.includes(l)).length;
  }
  assert.ok(overlap > 0, "attention and MLP draws are independent (they may share layers)");
  assert.throws(
    () => randomDraws({ attn: [0, 1, 2], mlp: [] }, { numLayers: 4, mode: "matched" }),
    /need 3 attention and 0 MLP layers.*1 and 4 are available/,
  );
  assert.throws(
    () => randomDraws({ attn: [0, 1], mlp: [2] }, { numLayers: 4, mode: "reference" }),
    /1 layers outside the selected ones, need 3/,
  );
});
