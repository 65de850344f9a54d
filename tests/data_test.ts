import assert from "node:assert/strict";
import {
  DataFileError,
  loadGsm8kJsonl,
  loadReferenceSample,
  parseGsm8kJsonl,
  seededSample,
} from "../experiments/backtracking/data.ts";
import { parseConfig } from "../experiments/backtracking/config.ts";
import { createRun } from "../experiments/backtracking/run.ts";
import { prepareData } from "../experiments/backtracking/steps/prepare_data.ts";

const SHARED = new URL("../../shared/data/", import.meta.url);

Deno.test("reference sample: 200 problems, ids 0..199, golds parsed, all in the GSM8K test split", async () => {
  const ref = await loadReferenceSample(new URL("reference/gsm8k_200.jsonl", SHARED));
  assert.equal(ref.length, 200);
  assert.deepEqual(ref.map((p) => p.id), [...Array(200).keys()]);
  assert.equal(ref.filter((p) => p.answer_value.includes(",")).length, 2);
  assert.equal(ref.find((p) => p.answer_value === "276,000")?.gold, 276000);
  const test = await loadGsm8kJsonl(new URL("gsm8k/test.jsonl", SHARED));
  assert.equal(test.length, 1319);
  const byQuestion = new Map(test.map((p) => [p.question, p]));
  for (const p of ref) {
    const t = byQuestion.get(p.question);
    assert.ok(t, `reference problem ${p.id} not in test.jsonl`);
    assert.equal(t.gold, p.gold);
  }
  // The reference's shuffled order starts at GSM8K test indices 478, 191, 199, 1047, 50 (docs/protocol.md
  // §3).
  assert.deepEqual(ref.slice(0, 5).map((p) => byQuestion.get(p.question)!.id), [478, 191, 199, 1047, 50]);
});

Deno.test("GSM8K JSONL errors name file and line", () => {
  const good = JSON.stringify({ question: "q", answer: "a\n#### 5" });
  assert.deepEqual(parseGsm8kJsonl(`${good}\n\n${good}\n`, "f.jsonl").map((p) => [p.id, p.gold]), [[0, 5], [
    1,
    5,
  ]]);
  assert.throws(
    () => parseGsm8kJsonl(`${good}\n{bad`, "f.jsonl"),
    (e: unknown) => e instanceof DataFileError && e.line === 2 && /^f\.jsonl:2: invalid JSON/.test(e.message),
  );
  assert.throws(
    () => parseGsm8kJsonl(JSON.stringify({ question: "q" }), "g.jsonl"),
    /g\.jsonl:1: field "answer" missing/,
  );
  assert.throws(
    () => parseGsm8kJsonl(JSON.stringify({ question: "q", answer: "no gold" }), "h.jsonl"),
    /h\.jsonl:1: .*####/,
  );
  assert.throws(() => parseGsm8kJsonl("[1]", "i.jsonl"), /i\.jsonl:1: expected a JSON object/);
});

Deno.test("reference sample loader checks ids", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f = `${dir}/s.jsonl`;
    await Deno.writeTextFile(
      f,
      JSON.stringify({ id: 1, question: "q", answer: "#### 2", answer_value: "2" }) + "\n",
    );
    await assert.rejects(() => loadReferenceSample(f), /s\.jsonl:1: expected "id" 0, got 1/);
    await assert.rejects(() => loadReferenceSample(`${dir}/missing.jsonl`), /missing\.jsonl:0: cannot read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("seededSample is deterministic, without replacement, and seed-dependent", () => {
  const items = [...Array(1319).keys()];
  const a = seededSample(items, 200, 123);
  assert.deepEqual(a, seededSample(items, 200, 123));
  assert.equal(new Set(a).size, 200);
  assert.notDeepEqual(a, seededSample(items, 200, 124));
  assert.equal(seededSample(items, 5000, 1).length, 1319);
  assert.deepEqual(items, [...Array(1319).keys()]);
});

Deno.test("a UTF-8 BOM at the start of a JSONL file is accepted; an empty file is refused naming it", async () => {
  const line = JSON.stringify({ question: "What is 2 + 3?", answer: "2 + 3 = 5\n#### 5" });
  const withBom = parseGsm8kJsonl(`\uFEFF${line}\r\n${line}\n`, "bom.jsonl");
  assert.equal(withBom.length, 2);
  assert.equal(withBom[0]!.question, "What is 2 + 3?");
  assert.equal(withBom[0]!.gold, 5);
  const ref = JSON.stringify({ id: 0, question: "q", answer: "a\n#### 7", answer_value: "7" });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ref.jsonl`, `\uFEFF${ref}\n`);
    assert.equal((await loadReferenceSample(`${dir}/ref.jsonl`))[0]!.gold, 7);
    for (
      const [name, text, what] of [["empty.jsonl", "", "empty"], [
        "blank.jsonl",
        "\n  \n",
        "only blank lines",
      ]]
    ) {
      await Deno.writeTextFile(`${dir}/${name}`, text!);
      await assert.rejects(
        () => loadGsm8kJsonl(`${dir}/${name}`),
        (e: unknown) => {
          assert.ok(e instanceof DataFileError);
          assert.match(e.message, new RegExp(`${name}:0: no problems: the file is ${what}`));
          return true;
        },
      );
    }
    await Deno.writeTextFile(`${dir}/empty_ref.jsonl`, "\uFEFF");
    await assert.rejects(
      () => loadReferenceSample(`${dir}/empty_ref.jsonl`),
      /empty_ref\.jsonl:0: no problems/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prepare-data refuses an empty dataset file, naming it, and leaves no problems file", async () => {
  const root = await Deno.makeTempDir({ prefix: "prepare_empty_" });
  try {
    await Deno.writeTextFile(`${root}/empty.jsonl`, "");
    const cfg = parseConfig({
      run: { output_dir: root },
      dataset: { name: "gsm8k", path: `${root}/empty.jsonl`, max_examples: 4 },
    }, "t");
    const run = await createRun(cfg, { runId: "r" });
    await assert.rejects(
      () => prepareData({ config: cfg, run, log: () => {} }),
      new RegExp(`${root}/empty\\.jsonl:0: no problems: the file is empty`),
    );
    await assert.rejects(Deno.stat(`${run.dir}/data/problems.jsonl`), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(`${run.dir}/generations`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
