import assert from "node:assert/strict";
import { scoreCompletion } from "../experiments/backtracking/answers.ts";
import {
  answerTrajectory,
  summarizeTrajectories,
  type TrajectoryObservation,
} from "../experiments/backtracking/trajectory.ts";
import { wilsonInterval } from "../lib/stats/stats.ts";

/** Trajectory of the first "Wait" of a closed trace, scored as the pipeline scores it. */
function traj(text: string, gold: number | undefined) {
  const s = scoreCompletion(text, gold);
  return answerTrajectory(text, text.indexOf("Wait"), { status: s.status, value: s.answer.value }, gold);
}

Deno.test("trajectory kinds: fix, break, wrong→wrong, kept right, kept wrong", () => {
  // the issue's trace: 18 before the onset, 24 after the reasoning, gold 24 → a fix
  const issue = "<think>\n3 bags of 6 is 18, so \\boxed{18}.\nWait, there are 4 bags, not 3. 4*6 = 24.\n" +
    "</think>\n\nThere are 24 apples in total.";
  const f = traj(issue, 24);
  assert.equal(f.kind, "fix");
  assert.equal(f.candidate?.value, 18);
  assert.equal(f.final, 24);
  assert.equal(f.changed, true);
  assert.equal(f.candidate_correct, false);
  assert.equal(f.final_correct, true);
  assert.equal(traj(issue, 18).kind, "break");
  assert.equal(traj(issue, 30).kind, "wrong_to_wrong");
  const kept = "<think>\nTotal = 24.\nWait, let me check: 4*6 = 24. Yes.\n</think>\n\\boxed{24}";
  assert.equal(traj(kept, 24).kind, "kept_right");
  assert.equal(traj(kept, 25).kind, "kept_wrong");
  assert.equal(traj(kept, 24).changed, false);
  // values within the scoring tolerance are the same answer
  assert.equal(traj("<think>\n= 0.3333333333\nWait.\n</think>\n\\boxed{\\frac{1}{3}}", 1 / 3).changed, false);
});

Deno.test("undetermined trajectories carry their reason and never count as changes", () => {
  const u = traj("<think>\nTotal = 24.\nWait, 4*6 = 30", 24);
  assert.equal(u.kind, "undetermined");
  assert.equal(u.undetermined, "unfinished");
  assert.equal(u.final, undefined);
  assert.equal(u.changed, undefined);
  assert.equal(traj("<think>\nStart.\nWait, hmm.\n</think>\n\\boxed{5}", 5).undetermined, "no_candidate");
  assert.equal(traj("<think>\n= 5\nWait.\n</think>\n\\boxed{\\text{No}}", 5).undetermined, "no_final_answer");
  assert.equal(traj("<think>\n= 5\nWait.\n</think>\n\\boxed{6}", undefined).undetermined, "no_gold");
  // a hedged number before the onset is not a candidate
  assert.equal(traj("<think>\nMaybe it's 5?\nWait.\n</think>\n\\boxed{6}", 6).undetermined, "no_candidate");
  assert.throws(() => answerTrajectory("ab", 5, { status: "correct", value: 1 }, 1), /onsetChar 5/);
});

Deno.test("per-condition summary: changed share, fixes and breaks among changes, Wilson intervals", () => {
  const fix = traj("<think>\n= 18\nWait, = 24\n</think>\n24", 24);
  const brk = traj("<think>\n= 18\nWait, = 24\n</think>\n24", 18);
  const keep = traj("<think>\n= 24\nWait, = 24\n</think>\n24", 24);
  const und = traj("<think>\nhm\nWait\n</think>\n24", 24);
  const obs: TrajectoryObservation[] = [];
  let id = 0;
  const add = (condition: string, t: typeof fix, n: number) => {
    for (let i = 0; i < n; i++) obs.push({ condition, cluster: id++, trajectory: t });
  };
  add("baseline", fix, 6);
  add("baseline", brk, 2);
  add("baseline", keep, 12);
  add("baseline", und, 3);
  add("ablated", keep, 5);
  const [b, a] = summarizeTrajectories(obs, { samples: 200 });
  assert.equal(b!.condition, "baseline");
  assert.equal(b!.onsets, 23);
  assert.equal(b!.determined, 20);
  assert.deepEqual(b!.undetermined, { no_candidate: 3, no_final_answer: 0, unfinished: 0, no_gold: 0 });
  assert.deepEqual(b!.kinds, { fix: 6, break: 2, wrong_to_wrong: 0, kept_right: 12, kept_wrong: 0 });
  // one onset per problem here: the cluster-adjusted Wilson is the plain Wilson interval
  const want = [[b!.changed, 8, 20], [b!.fixes, 6, 8], [b!.breaks, 2, 8]] as const;
  for (const [got, k, n] of want) {
    const w = wilsonInterval(k, n);
    assert.equal(got.k, k);
    assert.equal(got.n, n);
    assert.equal(got.estimate, k / n);
    assert.ok("lower" in got);
    assert.equal(got.lower, w.lower);
    assert.equal(got.upper, w.upper);
  }
  assert.equal(b!.net_fix_rate, (6 - 2) / 20);
  // no change at all: 0% changed with an honest upper bound, fix/break shares over nothing
  assert.equal(a!.changed.estimate, 0);
  assert.ok("upper" in a!.changed && a!.changed.upper > 0.4);
  assert.equal(a!.fixes.n, 0);
  assert.ok(Number.isNaN(a!.fixes.estimate));
});
