import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../experiments/backtracking/config.ts";
import { resolveDatasetPath, selectProblems } from "../../experiments/backtracking/steps/prepare_data.ts";

const dir = (name: string) => fileURLToPath(new URL(`../../configs/${name}`, import.meta.url));

Deno.test("configs/organism.yaml: embedded default, corrected protocol, small", async () => {
  const c = await loadConfig(dir("organism.yaml"));
  assert.equal(c.protocol, "corrected");
  assert.equal(c.model.source, "organism");
  assert.equal(c.model.device, "cpu");
  assert.equal(c.analysis.topk_layers_for_generation, 3, "a cap, not the planted count");
  assert.equal(c.analysis.min_specificity_effect, 0.1);
  assert.equal(c.dataset.path, "datasets/gsm8k/test.jsonl");
  assert.equal(c.analysis.random_ablation_draws, 2);
  assert.equal(c.stats.bootstrap_samples, 1000);
  assert.equal(c.prompting.formatting_variants.length, 3);
});

Deno.test("configs/organism.yaml: dataset.path resolves from the project root when run from another folder", async () => {
  const c = await loadConfig(dir("organism.yaml"));
  const here = Deno.cwd();
  const tmp = await Deno.makeTempDir({ prefix: "cwd_" });
  try {
    Deno.chdir(tmp);
    const p = await resolveDatasetPath("datasets/gsm8k/test.jsonl");
    assert.equal(p, fileURLToPath(new URL("../../datasets/gsm8k/test.jsonl", import.meta.url)));
    const { problems } = await selectProblems(c);
    assert.equal(problems.length, c.dataset.max_examples);
    assert.equal(await resolveDatasetPath("/abs/missing.jsonl"), "/abs/missing.jsonl");
    assert.equal(await resolveDatasetPath("no/such/file.jsonl"), "no/such/file.jsonl", "kept for the error");
  } finally {
    Deno.chdir(here);
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("configs/r1_distill_qwen_1p5b.yaml: the seed's real-model run", async () => {
  const c = await loadConfig(dir("r1_distill_qwen_1p5b.yaml"));
  assert.equal(c.protocol, "corrected");
  assert.equal(c.model.source, "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B");
  assert.equal(c.model.device, "auto");
  assert.equal(c.dataset.max_examples, 200);
  assert.equal(c.generation.num_samples_per_prompt, 6);
  assert.equal(c.generation.max_new_tokens, 4096);
  assert.equal(c.prompting.use_chat_template, true);
  assert.equal(c.detection.rule, "corrected");
});

Deno.test("configs/r1_distill_qwen_1p5b_reference.yaml: the reference's numbers and choices", async () => {
  const c = await loadConfig(dir("r1_distill_qwen_1p5b_reference.yaml"));
  const ref = await loadConfig(
    fileURLToPath(
      new URL("../../../shared/data/reference/configs/backtracking_state_transition.yaml", import.meta.url),
    ),
  ).catch(() => undefined);
  assert.equal(c.protocol, "reference");
  assert.equal(c.prompting.use_chat_template, false);
  assert.equal(c.detection.rule, "reference");
  assert.equal(c.detection.answer_extractor, "reference");
  assert.equal(c.generation.intervention_scope, "decode_only");
  assert.equal(c.analysis.selection_criterion, "signed_mean");
  assert.equal(c.analysis.random_ablation_draws, 1);
  if (ref) {
    assert.deepEqual(c.generation.max_new_tokens, ref.generation.max_new_tokens);
    assert.deepEqual(c.prompting.template, ref.prompting.template);
    assert.deepEqual(c.prompting.formatting_variants, ref.prompting.formatting_variants);
    assert.deepEqual(c.detection.triggers_relaxed, ref.detection.triggers_relaxed);
    for (const k of ["num_samples_per_prompt", "temperature", "top_p", "do_sample", "batch_size"] as const) {
      assert.equal(c.generation[k], ref.generation[k], k);
    }
    assert.deepEqual(c.analysis.max_events, ref.analysis.max_events);
    assert.deepEqual(c.ablation_generation, ref.ablation_generation);
    assert.equal(c.run.seed, ref.run.seed);
    assert.equal(c.dataset.seed, ref.dataset.seed);
  }
});
