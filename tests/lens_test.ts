/**
 * Logit lens against the float64 naive forward pass, event selection, control matching (both modes,
 * the reference's list reproduced from its committed events), and the lens summary.
 */
import { parseCsv } from "../lib/tables/table.ts";
import assert from "node:assert/strict";
import { HookedModel } from "../lib/engine/hooked_model.ts";
import { writeRandomCheckpoint } from "../lib/engine/random_checkpoint.ts";
import {
  type BacktrackEvent,
  completionOffset,
  matchControls,
  matchControlsReport,
  selectEvents,
  type Trace,
} from "../experiments/backtracking/event_selection.ts";
import { type LensItem, type LensRow, logitLens, summarizeLens } from "../lib/interp/logit_lens.ts";
import { referenceLensRows } from "../experiments/backtracking/reference/lens_rows.ts";
import { loadNaiveWeights, naiveForward } from "./naive_forward.ts";
import { seededRng } from "../lib/stats/stats.ts";

const SHARED = new URL("../../shared/data/reference/", import.meta.url);
const TOL = 1e-4;

Deno.test("logitLens equals naiveForward + naiveLens at every layer (batched, left-padded)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-lens-" });
  let model: HookedModel | undefined;
  try {
    const V = 61;
    await writeRandomCheckpoint(dir, {
      modelType: "qwen2",
      hiddenSize: 32,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 48,
      vocabSize: V,
      tieWordEmbeddings: false,
      seed: 21,
    });
    const naive = await loadNaiveWeights(dir);
    model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs` });
    const rng = seededRng(3);
    const items: LensItem[] = [9, 4, 12, 1, 7].map((len, i) => {
      const tokenIds = Array.from({ length: len + 3 }, () => Math.floor(rng() * V));
      return { tokenIds, predPos: len - 1 + (i % 2), targetId: (7 * i + 3) % V, exampleId: i % 2 };
    });
    const rows = await logitLens(model, items, { batchSize: 2 });
    const L = 2;
    assert.equal(rows.length, items.length * (L + 1));
    items.forEach((it, i) => {
      const prefix = it.tokenIds.slice(0, it.predPos + 1);
      const lensIds = prefix.map((_, p) => (p === it.predPos ? [it.targetId] : []));
      const ref = naiveForward(naive, [prefix], { lensTokenIds: [lensIds] });
      for (let l = 0; l <= L; l++) {
        const got = rows[i * (L + 1) + l]!;
        assert.equal(got.item, i);
        assert.equal(got.layer, l);
        assert.equal(got.exampleId, it.exampleId);
        const want = ref.lens[l]![0]![it.predPos]![0]!;
        assert.ok(
          Math.abs(got.logit - want.logit) <= TOL,
          `item ${i} layer ${l}: logit ${got.logit} vs ${want.logit}`,
        );
        assert.ok(Math.abs(got.logprob - want.logprob) <= TOL, `item ${i} layer ${l}: logprob`);
        assert.equal(got.rank, want.rank, `item ${i} layer ${l}: rank`);
      }
      // The last layer is the model's true output, not a second final norm.
      const logit = ref.logits[0]![it.predPos]![it.targetId]!;
      const last = rows[i * (L + 1) + L]!;
      assert.ok(
        Math.abs(last.logit - logit) <= TOL,
        `item ${i}: last layer ${last.logit} vs logits ${logit}`,
      );
    });
    await assert.rejects(
      logitLens(model, [{ tokenIds: [1, 2], predPos: 2, targetId: 0, exampleId: 0 }]),
      /predPos 2 outside its 2 tokens/,
    );
    await assert.rejects(
      logitLens(model, [{ tokenIds: [1, 2], predPos: 1, targetId: V, exampleId: 0 }]),
      /target id 61 outside \[0, 61\)/,
    );
  } finally {
    await model?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

function syntheticEvents(): BacktrackEvent[] {
  // 10 problems with 1..10 events each, in file order.
  const out: BacktrackEvent[] = [];
  for (let p = 0; p < 10; p++) {
    for (let s = 0; s <= p; s++) {
      out.push({
        exampleId: p,
        sampleId: s,
        tokenIds: new Array(40).fill(1),
        promptTokens: 10,
        predPos: 12 + s,
        onsetTokenId: 100 + (s % 3),
        trigger: "Wait",
      });
    }
  }
  return out;
}

Deno.test("selectEvents: file order, and a seeded sample spread over problems", () => {
  const events = syntheticEvents();
  assert.deepEqual(selectEvents(events, { max: 7, mode: "file_order" }), events.slice(0, 7));
  const a = selectEvents(events, { max: 25, seed: 1 });
  assert.deepEqual(a, selectEvents(events, { max: 25, seed: 1, mode: "random_across_problems" }));
  assert.notDeepEqual(a, selectEvents(events, { max: 25, seed: 2 }));
  assert.equal(a.length, 25);
  assert.equal(new Set(a).size, 25, "no event twice");
  // Kept in file order.
  const idx = a.map((e) => events.indexOf(e));
  assert.deepEqual(idx, [...idx].sort((x, y) => x - y));
  // Round-robin: every problem appears; counts per problem differ by at most one unless exhausted.
  const counts = new Map<number, number>();
  for (const e of a) counts.set(e.exampleId, (counts.get(e.exampleId) ?? 0) + 1);
  assert.equal(counts.size, 10);
  const maxCount = Math.max(...counts.values());
  for (const [p, n] of counts) assert.ok(n === p + 1 || n >= maxCount - 1, `problem ${p}: ${n} events`);
  assert.equal(selectEvents(events, { max: 1000, seed: 0 }).length, events.length);
  assert.throws(() => selectEvents(events, { max: -1 }), /max must be a non-negative integer, got -1/);
});

function trace(exampleId: number, sampleId: number, promptTokens: number, completion: number): Trace {
  return { exampleId, sampleId, promptTokens, tokenIds: new Array(promptTokens + completion).fill(2) };
}

Deno.test("matchControls (corrected): position-matched, each trace once, own onset id, true lengths", () => {
  const events = syntheticEvents().filter((_, i) => i % 5 === 0);
  const pool: Trace[] = [];
  for (let i = 0; i < 12; i++) pool.push(trace(100 + i, 0, 8 + (i % 3), 1 + i * 2));
  const { controls, unmatched, poolSize } = matchControlsReport(events, pool, { seed: 4 });
  assert.equal(poolSize, 12);
  assert.equal(controls.length + unmatched.length, events.length);
  assert.deepEqual(matchControls(events, pool, { seed: 4, mode: "corrected" }), controls);
  const usedTraces = new Set<string>();
  for (const c of controls) {
    const e = events[c.matchedTo]!;
    assert.equal(completionOffset(c), completionOffset(e), "same completion offset");
    assert.equal(c.predPos, c.promptTokens + completionOffset(e) - 1);
    assert.ok(c.predPos + 1 < c.tokenIds.length, "the control has a sampled next token");
    assert.equal(c.targetId, e.onsetTokenId, "own onset id");
    const key = `${c.exampleId}/${c.sampleId}`;
    assert.ok(!usedTraces.has(key), `trace ${key} used twice`);
    usedTraces.add(key);
  }
  // Events come back in event order.
  assert.deepEqual(
    controls.map((c) => c.matchedTo),
    [...controls.map((c) => c.matchedTo)].sort((a, b) => a - b),
  );
  // Maximal: an independent two-pointer count (smallest offset with the shortest trace that fits).
  const ks = events.map(completionOffset).sort((a, b) => a - b);
  const lens = pool.map((t) => t.tokenIds.length - t.promptTokens).sort((a, b) => a - b);
  let best = 0;
  for (let j = 0; j < lens.length && best < ks.length; j++) if (lens[j]! >= ks[best]! + 1) best++;
  assert.equal(controls.length, best);
  assert.ok(unmatched.length > 0, "this pool cannot serve every event");
  // Greedy by descending k is maximal: a pool with one long and one short trace serves both events.
  const two = [events[0]!, { ...events[0]!, predPos: events[0]!.promptTokens + 20 }];
  const r = matchControlsReport(two, [trace(1, 0, 5, 25), trace(2, 0, 5, 6)], { seed: 0 });
  assert.equal(r.controls.length, 2);
  assert.deepEqual(r.unmatched, []);
  // A pool too short for an event reports it.
  const none = matchControlsReport(two, [trace(1, 0, 5, 6)], { seed: 0 });
  assert.deepEqual(none.unmatched, [1]);
});

Deno.test("matchControls (corrected): same input token at the nearest completion offset; position fallback", () => {
  // Event: prompt 4 tokens, completion [5, 6, 7, 9], predPos 5 (the "6" before the trigger 9): k = 2.
  const ev = (id: number): BacktrackEvent => ({
    exampleId: id,
    sampleId: 0,
    tokenIds: [1, 1, 1, 1, 5, 6, 7, 9],
    promptTokens: 4,
    predPos: 5,
    onsetTokenId: 9,
    trigger: "Wait",
  });
  const t = (id: number, completion: number[]): Trace => ({
    exampleId: id,
    sampleId: 0,
    promptTokens: 4,
    tokenIds: [1, 1, 1, 1, ...completion],
  });
  // Trace 10 has token 6 at offset 5 only; trace 11 at offsets 1 and 4 (nearest to k = 2:
  // |1-2| = 1 beats |4-2| = 2 and trace 10's |5-2|); trace 12 has no 6; a 6 as the last token has
  // no sampled next token.
  const pool = [t(10, [3, 3, 3, 3, 6, 3]), t(11, [6, 3, 3, 6, 3]), t(12, [3, 3, 3, 3]), t(13, [3, 6])];
  const r = matchControlsReport([ev(0)], pool, { seed: 0 });
  assert.equal(r.controls.length, 1);
  const c = r.controls[0]!;
  assert.equal(c.exampleId, 11);
  assert.equal(c.predPos, 4, "offset 1 in trace 11 (position 4)");
  assert.equal(c.tokenIds[c.predPos], 6, "same input token");
  assert.deepEqual(r.positionOnly, []);
  // Two events: the second takes the other token-matched trace; a third falls back to position only.
  const three = matchControlsReport([ev(0), ev(1), ev(2)], pool, { seed: 0 });
  assert.equal(three.controls.length, 3);
  const tokenMatched = three.controls.filter((x) => x.tokenIds[x.predPos] === 6);
  assert.equal(tokenMatched.length, 2);
  assert.equal(three.positionOnly.length, 1);
  const fallback = three.controls[three.positionOnly[0]!]!;
  assert.equal(completionOffset(fallback), 2, "position fallback keeps the completion offset");
  assert.ok(fallback.predPos + 1 < fallback.tokenIds.length);
  // A token at the last position does not qualify (no sampled next token): trace 13 alone → fallback.
  const last = matchControlsReport([ev(0)], [t(13, [3, 6]), t(14, [3, 3, 3])], { seed: 0 });
  assert.deepEqual(last.positionOnly, [0]);
  // Reference mode stays position-only (no positionOnly bookkeeping).
  const ref = matchControlsReport([ev(0)], pool, { mode: "reference" });
  assert.equal(completionOffset(ref.controls[0]!), 2);
  assert.deepEqual(ref.positionOnly, []);
});

Deno.test("matchControls (reference): reproduces the reference's 120 matched controls", async () => {
  const rows = parseCsv(
    await Deno.readTextFile(new URL("runs/20251223_232541/analysis/backtracking_events.csv", SHARED)),
  ).records.filter((r) => r.variant === "baseline_think_newline" && r.condition === "baseline");
  assert.equal(rows.length, 1200);
  // The reference read padded completion lengths; traces padded to them reproduce its list.
  const asTrace = (r: Record<string, string>): Trace =>
    trace(Number(r.example_id), Number(r.sample_id), Number(r.prompt_tokens), Number(r.completion_tokens));
  const events: BacktrackEvent[] = rows.filter((r) => r.has_backtracking_strict === "True").slice(0, 120).map(
    (r) => ({
      ...asTrace(r),
      predPos: Number(r.pred_pos_in_full),
      onsetTokenId: Number(r.onset_token_id),
      trigger: r.onset_phrase!,
    }),
  );
  const pool = rows.filter((r) => r.has_backtracking_strict !== "True").map(asTrace);
  assert.equal(pool.length, 350);
  const { controls, unmatched } = matchControlsReport(events, pool, { mode: "reference", seed: 123 });
  const want = parseCsv(
    await Deno.readTextFile(new URL("derived/logit_lens_bt_events_and_matched_controls.csv", SHARED)),
  ).records;
  assert.deepEqual(unmatched, []);
  assert.equal(controls.length, want.length);
  controls.forEach((c, i) => {
    const w = want[i]!;
    const e = events[c.matchedTo]!;
    assert.equal(c.matchedTo, i);
    assert.deepEqual(
      [
        e.exampleId,
        e.sampleId,
        e.predPos,
        completionOffset(e),
        c.exampleId,
        c.sampleId,
        c.promptTokens,
        c.predPos,
        c.targetId,
      ],
      [
        w.bt_example_id,
        w.bt_sample_id,
        w.bt_pred_pos_in_full,
        w.k,
        w.ctrl_example_id,
        w.ctrl_sample_id,
        w.ctrl_prompt_tokens,
        w.ctrl_pred_pos,
        w.ctrl_target_token_id,
      ].map(Number),
      `control ${i}`,
    );
  });
  assert.ok(
    controls.every((c) => c.targetId === events[0]!.onsetTokenId),
    "reference: events[0]'s id everywhere",
  );
});

Deno.test("summarizeLens: means, reference columns, clustered CIs", () => {
  const mk = (item: number, layer: number, logit: number, exampleId: number): LensRow => ({
    item,
    layer,
    logit,
    logprob: logit - 10,
    rank: item,
    exampleId,
  });
  const bt = [mk(0, 0, 1, 0), mk(1, 0, 3, 0), mk(2, 0, 5, 1), mk(0, 1, 2, 0), mk(1, 1, 2, 0), mk(2, 1, 2, 1)];
  const ctrl = [mk(0, 0, 0, 2), mk(1, 0, 1, 0), mk(0, 1, 4, 2)];
  const s = summarizeLens(bt, ctrl, { bootstrap: 500, seed: 1 });
  assert.equal(s.length, 2);
  const [l0, l1] = s as [typeof s[0], typeof s[0]];
  assert.equal(l0.layer, 0);
  assert.equal(l0.reference_layer, undefined);
  assert.equal(l1.reference_layer, 0);
  assert.equal(l0.mean_target_logit_bt, 3);
  assert.equal(l0.mean_target_logit_control, 0.5);
  assert.equal(l0.std_bt, 2);
  assert.ok(Math.abs(l0.std_control - Math.SQRT1_2) < 1e-12);
  assert.equal(l1.std_control, 0, "std is 0 when n < 2");
  assert.deepEqual([l0.n_bt, l0.n_control, l1.n_bt, l1.n_control], [3, 2, 3, 1]);
  assert.equal(l0.control_matching, "position_matched");
  assert.equal(l0.diff_logit.estimate, 2.5);
  assert.equal(l0.diff_logprob.estimate, 2.5);
  assert.equal(l0.bt_rank_median, 1);
  assert.equal(l0.clusters, 3);
  assert.ok(l0.diff_logit.lower <= 2.5 && 2.5 <= l0.diff_logit.upper);
  // Layer 1: all BT values equal and the one control is 4: every resample with both groups gives -2.
  assert.deepEqual([l1.diff_logit.lower, l1.diff_logit.upper], [-2, -2]);
  assert.deepEqual(referenceLensRows(s), [{
    layer: 0,
    mean_target_logit_bt: 2,
    mean_target_logit_control: 4,
    std_bt: 0,
    std_control: 0,
    n_bt: 3,
    n_control: 1,
    control_matching: "position_matched",
  }]);
  // Clusters given explicitly override exampleId; missing problems are an error.
  const plain = bt.map(({ exampleId: _, ...r }) => r);
  assert.throws(() => summarizeLens(plain, [], {}), /no problem for bt item 0/);
  const empty = summarizeLens(plain, [], { clusters: { bt: [0, 0, 1], control: [] } });
  assert.equal(empty[0]!.mean_target_logit_control, 0, "reference: mean of an empty list is 0");
  assert.ok(Number.isNaN(empty[0]!.diff_logit.estimate));
});
