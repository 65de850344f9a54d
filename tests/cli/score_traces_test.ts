/**
 * Black-box tests of `deno task bt score-traces`: a real subprocess on a JSONL file as a researcher
 * would write it (vLLM/transformers output), with the R1 tokenizer fixture (real added-token ids).
 */
import assert from "node:assert/strict";
import { loadTokenizer } from "../../lib/engine/tokenizer.ts";
import type { ScoredTrace, TraceSummaryFile } from "../../experiments/backtracking/cli/score_traces.ts";

const MAIN = new URL("../../experiments/backtracking/cli/main.ts", import.meta.url).pathname;
const TOKENIZER = new URL("../fixtures/tokenizer/r1-distill-mini", import.meta.url).pathname;
const THINK_CLOSE = 151649;

async function bt(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", HF_HUB_OFFLINE: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

const ISSUE = "3 bags of 6 is 18, so \\boxed{18}.\nWait, there are 4 bags, not 3. 4*6 = 24.\n</think>\n\n" +
  "There are 24 apples in total.";
const UNFINISHED = "So 4*6 = 24.\nWait, maybe the bags hold 5, so it should be 20 and not 24";

async function readJsonl(path: string): Promise<ScoredTrace[]> {
  return (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l) as ScoredTrace);
}

Deno.test("bt score-traces: answers, statuses, onsets, types and trajectories; bad lines reported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-score-" });
  try {
    const tok = await loadTokenizer(TOKENIZER);
    const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });
    // The tag mentioned in prose (" </" "think" ">.") before the real </think> token.
    const prose = [
      ...enc("I end with"),
      ...enc(" </"),
      ...enc("think"),
      ...enc(">."),
      ...enc(" 3*6 = 18.\n"),
      ...enc("Wait"),
      ...enc(", 4*6 = 24.\n"),
      THINK_CLOSE,
      ...enc("\n\n\\boxed{24}"),
    ];
    const proseText = tok.decode(prose);
    const lines = [
      JSON.stringify({ id: "issue", completion: ISSUE, gold_answer: 24, question: "q1" }),
      JSON.stringify({ id: "cut", completion: UNFINISHED, gold_answer: "#### 24", question: "q1" }),
      "",
      "{not json",
      JSON.stringify({ id: "nocompletion", gold_answer: 3 }),
      JSON.stringify({
        id: "prose",
        completion: proseText,
        gold_answer: "24",
        token_ids: prose,
        question: "q2",
      }),
      JSON.stringify({ id: "latex", completion: "9500.\n</think>\n\\boxed{9{,}500}", gold_answer: "9,500" }),
      JSON.stringify({ id: "badids", completion: "x", gold_answer: 1, token_ids: [1, -2] }),
    ];
    await Deno.writeTextFile(`${dir}/traces.jsonl`, lines.join("\n") + "\n");
    const r = await bt([
      "score-traces",
      "--in",
      `${dir}/traces.jsonl`,
      "--out",
      `${dir}/scored.jsonl`,
      "--tokenizer",
      TOKENIZER,
      "--summary",
      `${dir}/summary.json`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /skipped line 4: not valid JSON/);
    assert.match(r.stderr, /skipped line 5: "completion" must be a string/);
    assert.match(r.stderr, /skipped line 8: "token_ids" must be an array of non-negative integers/);
    assert.match(r.stderr, /accuracy \(finished rows\)/);
    const out = await readJsonl(`${dir}/scored.jsonl`);
    assert.deepEqual(out.map((o) => [o.line, o.id]), [[1, "issue"], [2, "cut"], [6, "prose"], [7, "latex"]]);
    const [issue, cut, pr, latex] = out as [ScoredTrace, ScoredTrace, ScoredTrace, ScoredTrace];

    assert.equal(issue.status, "correct");
    assert.deepEqual(issue.answer, { value: 24, raw: "24", method: "last_number", region: "answer" });
    assert.equal(issue.token_source, "tokenizer");
    assert.equal(issue.onset?.char, ISSUE.indexOf("Wait"));
    // re-tokenised by the tokenizer: the ids of that tokenisation
    assert.equal(issue.onset?.token_id, 259, "the fixture's 'Wait' token");
    const ids = (await loadTokenizer(TOKENIZER)).encode(ISSUE, { addSpecialTokens: false });
    assert.equal(issue.onset?.token_index, ids.indexOf(259));
    assert.equal(issue.onset_type, "revision");
    assert.equal(issue.onset_evidence?.value_before?.value, 18);
    assert.equal(issue.trajectory?.kind, "fix");
    assert.deepEqual(issue.triggers, {
      corrected: { strict: true, relaxed: true },
      reference: { strict: true, relaxed: true },
    });

    assert.equal(cut.status, "unfinished");
    assert.equal(cut.reasoning.closed, false);
    assert.equal(cut.gold, 24);
    assert.equal(cut.trajectory?.kind, "undetermined");
    assert.equal(cut.trajectory?.undetermined, "unfinished");

    // Token ids given: the reasoning ends at the </think> token, the prose tag does not cut it.
    assert.equal(pr.token_source, "token_ids");
    assert.equal(pr.reasoning.end_by, "token_id");
    assert.equal(pr.reasoning.end_token, prose.indexOf(THINK_CLOSE));
    assert.equal(pr.triggers.corrected.strict, true);
    assert.equal(pr.onset?.token_index, prose.indexOf(259));
    assert.equal(pr.onset?.token_id, 259, "the fixture's 'Wait' token");
    assert.equal(pr.status, "correct");
    assert.equal(pr.onset_type, "revision");
    assert.equal(pr.text_from_token_ids, false);

    assert.equal(latex.status, "correct");
    assert.equal(latex.answer.value, 9500);
    assert.equal(latex.onset, null);
    assert.equal(latex.trajectory, null);

    const summary = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`)) as TraceSummaryFile;
    assert.equal(summary.lines_scored, 4);
    assert.deepEqual(summary.lines_skipped.map((s) => s.line), [4, 5, 8]);
    const all = summary.conditions[0]!;
    assert.equal(all.condition, "all");
    assert.equal(all.rows, 4);
    assert.equal(all.problems, 3, "q1 twice, q2, and the id of the last line");
    assert.deepEqual([all.accuracy.k, all.accuracy.n], [3, 4]);
    assert.deepEqual([all.accuracy_finished.k, all.accuracy_finished.n], [3, 3]);
    assert.deepEqual([all.unfinished_rate.k, all.unfinished_rate.n], [1, 4]);
    // 100% on finished rows still has a lower bound below 1 (Wilson, never [100, 100])
    assert.ok(all.accuracy_finished.lower! < 0.6, JSON.stringify(all.accuracy_finished));
    assert.equal(all.accuracy_finished.upper, 1);
    assert.deepEqual([all.onset_types.revision.k, all.onset_types.revision.n], [2, 3]);
    assert.equal(all.trajectory?.onsets, 3);
    assert.equal(all.trajectory?.kinds.fix, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bt score-traces: the reference protocol keeps the reference's scoring; usage errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-score-" });
  try {
    await Deno.writeTextFile(`${dir}/ref.yaml`, "protocol: reference\n");
    await Deno.writeTextFile(
      `${dir}/t.jsonl`,
      JSON.stringify({ id: 1, completion: "So 4*6 = 24. I wait, answer: 24", gold_answer: 24 }) + "\n",
    );
    const r = await bt([
      "score-traces",
      "--in",
      `${dir}/t.jsonl`,
      "--out",
      `${dir}/o.jsonl`,
      "--config",
      `${dir}/ref.yaml`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [o] = await readJsonl(`${dir}/o.jsonl`);
    assert.equal(o!.rule, "reference");
    assert.equal(o!.status, "correct", "no </think>, but the reference mode has no unfinished status");
    assert.equal(o!.answer.method, "reference");
    assert.equal(o!.onset?.text, "wait");
    assert.equal(o!.onset?.token_index, null, "no tokenizer: characters only");
    assert.equal(o!.triggers.corrected.strict, false);
    assert.equal(o!.token_source, "none");

    const missing = await bt(["score-traces", "--out", `${dir}/o.jsonl`]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--in is required/);
    const unread = await bt(["score-traces", "--in", `${dir}/nope.jsonl`, "--out", `${dir}/o.jsonl`]);
    assert.equal(unread.code, 1);
    assert.match(unread.stderr, /Cannot read --in .*nope\.jsonl/);
    await Deno.writeTextFile(`${dir}/bad.jsonl`, "[1]\n");
    const bad = await bt(["score-traces", "--in", `${dir}/bad.jsonl`, "--out", `${dir}/o.jsonl`]);
    assert.equal(bad.code, 1, "every line unreadable");
    assert.match(bad.stderr, /skipped line 1: expected a JSON object, got an array/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bt score-traces --tokenizer <hub id> reads the tokenizer files from the hub cache", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-score-" });
  try {
    // A hub-cache snapshot of the fixture: models--org--r1-mini/{refs/main, snapshots/<commit>/…}.
    const commit = "0123456789abcdef0123456789abcdef01234567";
    const snap = `${dir}/hub/models--org--r1-mini/snapshots/${commit}`;
    await Deno.mkdir(snap, { recursive: true });
    await Deno.mkdir(`${dir}/hub/models--org--r1-mini/refs`, { recursive: true });
    await Deno.writeTextFile(`${dir}/hub/models--org--r1-mini/refs/main`, commit);
    for await (const e of Deno.readDir(TOKENIZER)) {
      await Deno.copyFile(`${TOKENIZER}/${e.name}`, `${snap}/${e.name}`);
    }
    await Deno.writeTextFile(`${dir}/t.jsonl`, JSON.stringify({ completion: ISSUE, gold_answer: 24 }) + "\n");
    const r = await bt(
      ["score-traces", "--in", `${dir}/t.jsonl`, "--out", `${dir}/o.jsonl`, "--tokenizer", "org/r1-mini"],
      { HF_HUB_CACHE: `${dir}/hub` },
    );
    assert.equal(r.code, 0, r.stderr);
    const [o] = await readJsonl(`${dir}/o.jsonl`);
    assert.equal(o!.token_source, "tokenizer");
    assert.equal(o!.onset?.token_id, 259);
    const missing = await bt(
      ["score-traces", "--in", `${dir}/t.jsonl`, "--out", `${dir}/o.jsonl`, "--tokenizer", "org/absent"],
      { HF_HUB_CACHE: `${dir}/hub` },
    );
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /org\/absent/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
