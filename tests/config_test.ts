import assert from "node:assert/strict";
import YAML from "yaml";
import {
  ConfigError,
  loadConfig,
  parseConfig,
  parseConfigYaml,
  resolvedConfigYaml,
} from "../experiments/backtracking/config.ts";

const REF = new URL("../../shared/data/reference/configs/", import.meta.url);
const T =
  "Solve the problem carefully.\nUse <think> tags for your reasoning.\nEnd with a single line: Final: <answer>\n\nProblem: {question}\n";

Deno.test("reference phase-1 YAML loads unchanged with the spec's values", async () => {
  const c = await loadConfig(new URL("backtracking_state_transition.yaml", REF));
  assert.equal(c.prompting.template, T);
  assert.equal(c.protocol, "corrected"); // no protocol key → corrected (documented)
  assert.equal(c.run.seed, 42);
  assert.equal(c.run.run_id, null);
  assert.equal(c.model.hf_id, "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B");
  assert.equal(c.model.source, "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B");
  assert.equal(c.model.device, "cuda");
  assert.equal(c.model.attn_implementation, "sdpa");
  assert.equal(c.dataset.max_examples, 200);
  assert.equal(c.dataset.seed, 123);
  assert.deepEqual(c.prompting.formatting_variants.map((v) => v.name), [
    "baseline_think_newline",
    "think_same_line",
    "no_think_tags",
  ]);
  assert.equal(c.prompting.formatting_variants[0]?.think_open, "<think>\n");
  assert.equal(c.generation.temperature, 0.7);
  assert.equal(c.generation.top_k, 50);
  assert.deepEqual(c.detection.triggers_strict, ["Wait", "Actually", "Hold on"]);
  assert.equal(c.detection.triggers_relaxed.length, 7);
  assert.equal(c.detection.answer_regex, null);
  assert.equal(c.analysis.ablation_layers, "all");
  assert.equal(c.ablation_generation.random_control_seed, 999);
  assert.equal(c.stats.bootstrap_samples, 2000);
  assert.equal(c.stats.seed, 42);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.detection.triggers_strict));
  assert.deepEqual(c.phase2.subset_sweep.subsets, {}); // code default when the section is absent
});

Deno.test("reference phase-2 YAML loads unchanged, phase2 section in YAML order", async () => {
  const c = await loadConfig(new URL("backtracking_state_transition_phase2.yaml", REF));
  assert.equal(c.run.name, "backtracking_state_transition_phase2");
  assert.equal(c.prompting.template, T);
  assert.equal(c.phase2.max_examples, 120);
  assert.deepEqual(Object.keys(c.phase2.subset_sweep.subsets), [
    "mlp_27_only",
    "attn_27_only",
    "attn_no_early",
    "mlp_late_cluster",
    "phase1_full",
  ]);
  assert.deepEqual(c.phase2.subset_sweep.subsets["attn_no_early"], [["attn", 15], ["attn", 17], [
    "attn",
    19,
  ], ["attn", 27]]);
  assert.equal(c.phase2.subset_sweep.subsets["phase1_full"]?.length, 12);
  assert.deepEqual(c.phase2.scale_sweep.scales, [0, 0.25, 0.5, 0.75, 0.9]);
  assert.equal(c.phase2.continuation_ablation.max_events, 150);
  assert.equal(c.phase2.report.report_path, "reports/backtracking_phase2_report.md");
  assert.deepEqual(c.phase2.steering, parseConfig({}, "empty").phase2.steering); // extension: defaults
});

Deno.test("phase2.steering / phase2.patching: defaults (today's behaviour) and explicit values", () => {
  const c = parseConfig({}, "empty");
  assert.deepEqual(c.phase2.steering, {
    enabled: true,
    coefficients: [-1, -0.5, 0.5, 1],
    layer: null,
    direction: "mean_difference",
    max_examples: null,
    num_samples_per_prompt: null,
  });
  assert.deepEqual(c.phase2.patching, {
    enabled: true,
    components: ["attn", "mlp"],
    layers: "all",
    max_events: null,
  });
  const x = parseConfig({
    model: { source: "organism" },
    phase2: {
      steering: { enabled: false, coefficients: [2, -3], layer: 3, direction: "planted", max_examples: 5 },
      patching: { components: ["mlp"], layers: [1, 2], max_events: 7 },
    },
  }, "x");
  assert.deepEqual(x.phase2.steering.coefficients, [2, -3]);
  assert.equal(x.phase2.steering.direction, "planted");
  assert.equal(x.phase2.steering.num_samples_per_prompt, null);
  assert.deepEqual(x.phase2.patching, { enabled: true, components: ["mlp"], layers: [1, 2], max_events: 7 });
  // Resolved YAML: schema order, new sections before report, round-trips.
  const y = resolvedConfigYaml(x);
  assert.deepEqual(parseConfigYaml(y, "resolved"), x);
  assert.deepEqual(Object.keys(YAML.parse(y).phase2).slice(-3), ["steering", "patching", "report"]);
});

Deno.test("code defaults of an empty config and protocol-dependent defaults", () => {
  const c = parseConfig({}, "empty");
  assert.equal(c.protocol, "corrected");
  assert.equal(c.model.attn_implementation, "flash_attention_2");
  assert.equal(c.prompting.template, "");
  assert.deepEqual(c.prompting.formatting_variants, []);
  assert.deepEqual(c.detection.triggers_relaxed, []);
  assert.equal(c.detection.rule, "corrected");
  assert.equal(c.generation.intervention_scope, "generated_only");
  assert.equal(c.analysis.random_ablation_draws, 5);
  assert.equal(c.analysis.selection_criterion, "specificity");
  assert.equal(c.prompting.use_chat_template, true);
  const r = parseConfig({ protocol: "reference", analysis: { selection_criterion: "specificity" } }, "x");
  assert.equal(r.detection.rule, "reference");
  assert.equal(r.detection.answer_extractor, "reference");
  assert.equal(r.generation.intervention_scope, "decode_only");
  assert.equal(r.analysis.random_ablation_draws, 1);
  assert.equal(r.analysis.selection_criterion, "specificity"); // explicit value wins
  assert.equal(r.prompting.use_chat_template, false);
  assert.equal(parseConfig({ model: { torch_dtype: "bf16" } }, "x").model.torch_dtype, "bfloat16");
});

function errorOf(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

Deno.test("typo key names the full path, the file, and the valid keys", () => {
  const e = errorOf(() => parseConfigYaml("generation:\n  temprature: 0.5\n", "configs/x.yaml"));
  assert.match(e.message, /configs\/x\.yaml/);
  assert.match(e.message, /generation\.temprature: unknown key \(did you mean "temperature"\?\)/);
  assert.match(e.message, /valid keys under generation: num_samples_per_prompt, max_new_tokens, temperature/);
  const top = errorOf(() => parseConfig({ modle: {} }, "t"));
  assert.match(
    top.message,
    /modle: unknown key \(did you mean "model"\?\); valid keys at top level: protocol, run/,
  );
  const deep = errorOf(() =>
    parseConfig({ prompting: { formatting_variants: [{ name: "a", think_opn: "" }] } }, "t")
  );
  assert.match(deep.message, /prompting\.formatting_variants\[0\]\.think_opn: unknown key/);
  const p2 = errorOf(() => parseConfig({ phase2: { scale_sweep: { scale: [1] } } }, "t"));
  assert.match(p2.message, /phase2\.scale_sweep\.scale: unknown key \(did you mean "scales"\?\)/);
  const st = errorOf(() => parseConfigYaml("phase2:\n  steering:\n    coefficents: [1]\n", "s.yaml"));
  assert.match(st.message, /phase2\.steering\.coefficents: unknown key \(did you mean "coefficients"\?\)/);
  assert.match(st.message, /valid keys under phase2\.steering: enabled, coefficients, layer, direction/);
  const pt = errorOf(() => parseConfig({ phase2: { patching: { layer: [1] } } }, "t"));
  assert.match(pt.message, /phase2\.patching\.layer: unknown key \(did you mean "layers"\?\)/);
});

Deno.test("wrong types name the key path, the expected type and the value found", () => {
  const e = errorOf(() => parseConfig({ generation: { temperature: "hot" }, run: { seed: 1.5 } }, "t"));
  assert.match(e.message, /generation\.temperature: expected number, got string "hot"/);
  assert.match(e.message, /run\.seed: .*got number 1\.5/);
  const en = errorOf(() => parseConfig({ model: { device: "tpu" } }, "t"));
  assert.match(en.message, /model\.device: expected one of "cpu", "cuda", "auto", got string "tpu"/);
  const sub = errorOf(() =>
    parseConfig({ phase2: { subset_sweep: { subsets: { a: [["mlp", "x"]] } } } }, "t")
  );
  assert.match(sub.message, /phase2\.subset_sweep\.subsets\.a\[0\]\[1\]: expected number, got string "x"/);
  const st = errorOf(() =>
    parseConfig({ phase2: { steering: { coefficients: 1, direction: "pca", enabled: "yes" } } }, "t")
  );
  assert.match(st.message, /phase2\.steering\.coefficients: expected array, got number 1/);
  assert.match(
    st.message,
    /phase2\.steering\.direction: expected one of "mean_difference", "planted", got string "pca"/,
  );
  assert.match(st.message, /phase2\.steering\.enabled: expected boolean, got string "yes"/);
  const pt = errorOf(() =>
    parseConfig({ phase2: { patching: { components: ["ffn"], layers: "some" } } }, "t")
  );
  assert.match(
    pt.message,
    /phase2\.patching\.components\[0\]: expected one of "attn", "mlp", got string "ffn"/,
  );
  assert.match(pt.message, /phase2\.patching\.layers: .*got string "some"/);
  // The planted direction exists only on the model organism.
  const planted = errorOf(() => parseConfig({ phase2: { steering: { direction: "planted" } } }, "t"));
  assert.match(planted.message, /phase2\.steering\.direction: "planted" needs the model organism/);
});

Deno.test("YAML syntax errors name the file and line", () => {
  const e = errorOf(() => parseConfigYaml("run:\n  seed: 1\n  seed: 2\n", "bad.yaml"));
  assert.match(e.message, /bad\.yaml/);
  assert.match(e.message, /line 3/);
});

Deno.test("missing file is a ConfigError naming the file", async () => {
  await assert.rejects(() => loadConfig("/nonexistent/cfg.yaml"), /\/nonexistent\/cfg\.yaml/);
});

Deno.test("resolvedConfigYaml is deterministic and round-trips", async () => {
  const c = await loadConfig(new URL("backtracking_state_transition_phase2.yaml", REF));
  const y = resolvedConfigYaml(c);
  assert.deepEqual(parseConfigYaml(y, "resolved"), c);
  assert.deepEqual(Object.keys(YAML.parse(y)), [
    "protocol",
    "run",
    "model",
    "dataset",
    "prompting",
    "generation",
    "detection",
    "analysis",
    "ablation_generation",
    "report",
    "stats",
    "phase2",
  ]);
  // Key order follows the schema, not the input.
  const a = parseConfig({ run: { seed: 1, name: "n" }, generation: { top_p: 0.9, temperature: 1 } }, "a");
  const b = parseConfig({ generation: { temperature: 1, top_p: 0.9 }, run: { name: "n", seed: 1 } }, "b");
  assert.equal(resolvedConfigYaml(a), resolvedConfigYaml(b));
  assert.ok(y.endsWith("\n"));
});

Deno.test("refused at load, naming the key: temperature 0 with do_sample, unknown or bad organism options", () => {
  const t0 = errorOf(() =>
    parseConfigYaml("generation:\n  temperature: 0\n  do_sample: true\n", "configs/x.yaml")
  );
  assert.ok(t0 instanceof ConfigError);
  assert.match(t0.message, /configs\/x\.yaml/);
  assert.match(
    t0.message,
    /generation\.temperature: 0 with generation\.do_sample: true; sampling needs a temperature > 0/,
  );
  // Greedy decoding with temperature 0 is fine, and so is sampling with a positive temperature.
  assert.equal(
    parseConfig({ generation: { temperature: 0, do_sample: false } }, "t").generation.temperature,
    0,
  );
  const typo = errorOf(() =>
    parseConfigYaml("model:\n  source: organism\n  organism:\n    sead: 3\n", "c.yaml")
  );
  assert.match(typo.message, /model\.organism\.sead: unknown option "sead"; known options: seed, numLayers/);
  const bad = errorOf(() => parseConfig({ model: { source: "organism", organism: { numLayers: 2 } } }, "t"));
  assert.match(bad.message, /model\.organism\.numLayers: numLayers must be an integer >= 8, got 2/);
  assert.equal(
    parseConfig({ model: { source: "organism", organism: { seed: 3 } } }, "t").model.organism.seed,
    3,
  );
});
