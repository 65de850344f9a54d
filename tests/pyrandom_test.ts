import { parseCsv } from "../lib/tables/table.ts";
import assert from "node:assert/strict";
import { PyRandom } from "../experiments/backtracking/reference/pyrandom.ts";

const SHARED = new URL("../../shared/data/reference/", import.meta.url);

Deno.test("PyRandom matches CPython outputs (values recorded from CPython 3)", () => {
  const r = new PyRandom(42);
  assert.deepEqual([r.getrandbits(32), r.getrandbits(32), r.getrandbits(32)], [
    2746317213,
    478163327,
    107420369,
  ]);
  assert.equal(r.random(), 0.7415504997598329);
  assert.equal(new PyRandom(0).random(), 0.8444218515250481);
  assert.equal(new PyRandom(2 ** 40 + 5).getrandbits(32), 2166296868);
  assert.equal(new PyRandom(-7).getrandbits(32), 1390851128);
  assert.deepEqual(
    new PyRandom(999).shuffle([...Array(20).keys()]),
    [8, 11, 9, 6, 0, 4, 7, 14, 3, 1, 13, 5, 10, 12, 19, 16, 15, 17, 18, 2],
  );
  assert.throws(() => new PyRandom(1.5), /safe integer/);
});

Deno.test("random-ablation layers: Random(999).shuffle of the 18 available layers", async () => {
  const spec = JSON.parse(
    await Deno.readTextFile(new URL("derived/random_ablation_specs_recomputed.json", SHARED)),
  );
  const targeted = new Set<number>([...spec.targeted.attn, ...spec.targeted.mlp]);
  const available = [...Array(28).keys()].filter((l) => !targeted.has(l));
  assert.equal(available.length, 18);
  const shuffled = new PyRandom(999).shuffle(available);
  assert.deepEqual(shuffled.slice(0, 6), [10, 13, 11, 8, 2, 6]);
  assert.deepEqual(shuffled.slice(6, 12), [9, 18, 5, 3, 16, 7]);
  assert.deepEqual({ attn: shuffled.slice(0, 6), mlp: shuffled.slice(6, 12) }, spec.random);
});

Deno.test("logit-lens matched controls: Random(42) shuffle of the non-BT pool (docs/protocol.md §11)", async () => {
  const events = parseCsv(
    await Deno.readTextFile(new URL("runs/20251223_232541/analysis/backtracking_events.csv", SHARED)),
  ).records.filter((r) => r.variant === "baseline_think_newline" && r.condition === "baseline");
  assert.equal(events.length, 1200);
  const bt = events.filter((r) => r.has_backtracking_strict === "True").slice(0, 120);
  const pool = new PyRandom(42).shuffle(events.filter((r) => r.has_backtracking_strict !== "True"));
  assert.equal(pool.length, 350);
  const used = new Set<number>();
  const got: string[] = [];
  for (const e of bt) {
    const k = Number(e.onset_token_in_completion);
    const idx = pool.findIndex((c, i) => !used.has(i) && Number(c.completion_tokens) >= k);
    const c = pool[idx]!;
    used.add(idx);
    got.push(
      [
        e.example_id,
        e.sample_id,
        e.onset_token_id,
        e.pred_pos_in_full,
        k,
        c.example_id,
        c.sample_id,
        c.prompt_tokens,
        Number(c.prompt_tokens) + k - 1,
        bt[0]!.onset_token_id,
      ].join(","),
    );
  }
  const want =
    (await Deno.readTextFile(new URL("derived/logit_lens_bt_events_and_matched_controls.csv", SHARED)))
      .trim().split("\n").slice(1).map((l) => l.replace(/\r$/, ""));
  assert.deepEqual(got, want);
});
