/**
 * The model organism, through the same loading path as real checkpoints (HookedModel.load +
 * loadTokenizer on the built folder), on real GSM8K questions (the vendored test set) with the real R1
 * tokenizer: deterministic builds, the manifest, real token ids, the baseline behaviour, the planted
 * circuit and the decoy under ablation during generation, live noise components, the answer rule, the
 * logit lens against token-matched controls, and the protocol-validation outcome of the scan.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HookedModel } from "../../lib/engine/hooked_model.ts";
import type { Intervention } from "../../lib/engine/hooks.ts";
import { loadTokenizer, type Tokenizer } from "../../lib/engine/tokenizer.ts";
import { buildOrganism, type OrganismManifest, readOrganismManifest } from "../../lib/engine/organism.ts";
import { generate, type GeneratedSample } from "../../lib/generate/generate.ts";
import { loadConfig } from "../../experiments/backtracking/config.ts";
import { buildPrompt } from "../../experiments/backtracking/prompts.ts";
import { extractAnswer } from "../../experiments/backtracking/answers.ts";
import { detect } from "../../experiments/backtracking/detect.ts";
import { classifyOnset } from "../../experiments/backtracking/onset_type.ts";
import { scanEffects, summarizeScan } from "../../lib/interp/ablation_scan.ts";
import type { BacktrackEvent, ControlPosition } from "../../experiments/backtracking/event_selection.ts";
import { logitLens } from "../../lib/interp/logit_lens.ts";
import {
  componentLabel,
  validateProtocols,
  validationVerdict,
} from "../../experiments/backtracking/protocol_validation.ts";

const REPO = join(import.meta.dirname!, "..", "..");
const PROMPTS = 10;
const SAMPLES = 10; // baseline: 100 samples
const ABLATION_SAMPLES = 6; // per ablation condition: 60 samples
const MAX_NEW_TOKENS = 200;

interface Fixture {
  dir: string;
  manifest: OrganismManifest;
  tok: Tokenizer;
  model: HookedModel;
  prompts: { id: number; tokenIds: number[] }[];
  questions: string[];
}

let fixture: Promise<Fixture> | undefined;
let tmpRoot: string | undefined;

/** One organism, tokenizer and model for the whole file, and the first GSM8K test questions as prompts. */
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    tmpRoot = await Deno.makeTempDir({ prefix: "organism-test-" });
    const dir = await buildOrganism({ cacheDir: tmpRoot });
    const manifest = await readOrganismManifest(dir);
    const tok = await loadTokenizer(dir);
    const model = await HookedModel.load(dir, { threads: 2, cacheDir: tmpRoot });
    const config = await loadConfig(join(REPO, "configs", "organism.yaml"));
    const lines = (await Deno.readTextFile(join(REPO, "datasets", "gsm8k", "test.jsonl"))).trim().split("\n");
    const questions = lines.slice(0, PROMPTS).map((l) => JSON.parse(l).question as string);
    const prompts = questions.map((q, id) => ({
      id,
      tokenIds: buildPrompt(tok, config.prompting, q, "baseline_think_newline").tokenIds,
    }));
    return { dir, manifest, tok, model, prompts, questions };
  })();
  return fixture;
}

async function sample(
  f: Fixture,
  interventions: readonly Intervention[] = [],
  samplesPerPrompt = ABLATION_SAMPLES,
  maxNewTokens = MAX_NEW_TOKENS,
) {
  return await generate(f.model, f.prompts, {
    samplesPerPrompt,
    maxNewTokens,
    sampling: { temperature: 0.7, topP: 0.95, topK: 50 },
    eosTokenIds: f.tok.eosTokenIds,
    seed: 20240601,
    interventions,
    scope: "generated_only",
    batchSize: 32,
  });
}

const zero = (hook: string): Intervention => ({ hook: hook as Intervention["hook"], op: "scale", value: 0 });

function triggerIds(m: OrganismManifest): Set<number> {
  return new Set([m.trigger_token_ids.Wait, m.trigger_token_ids.Actually]);
}

function triggerRate(samples: readonly GeneratedSample[], ids: Set<number>): number {
  return samples.filter((s) => s.tokenIds.some((t) => ids.has(t))).length / samples.length;
}

function eosRate(samples: readonly GeneratedSample[]): number {
  return samples.filter((s) => s.finishReason === "eos").length / samples.length;
}

let baseline: Promise<GeneratedSample[]> | undefined;
function baselineSamples(f: Fixture): Promise<GeneratedSample[]> {
  baseline ??= sample(f, [], SAMPLES);
  return baseline;
}

Deno.test("organism: same options give byte-identical files; the cache is reused; another seed changes the weights", async () => {
  const root = await Deno.makeTempDir({ prefix: "organism-det-" });
  try {
    const t0 = performance.now();
    const a = await buildOrganism({ dir: join(root, "a"), seed: 3 });
    const buildMs = performance.now() - t0;
    const b = await buildOrganism({ dir: join(root, "b"), seed: 3 });
    const files = [
      "config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
      "generation_config.json",
      "organism.json",
    ];
    for (const f of files) {
      assert.deepEqual(
        await Deno.readFile(join(a, f)),
        await Deno.readFile(join(b, f)),
        `${f} differs between builds`,
      );
    }
    assert.ok(buildMs < 20_000, `build took ${buildMs.toFixed(0)} ms`);
    const size = (await Deno.stat(join(a, "model.safetensors"))).size;
    assert.ok(size < 45e6, `model.safetensors is ${size} bytes`);
    const c1 = await buildOrganism({ cacheDir: root, seed: 3 });
    const stat1 = await Deno.stat(join(c1, "model.safetensors"));
    const c2 = await buildOrganism({ cacheDir: root, seed: 3 });
    assert.equal(c2, c1);
    assert.equal(
      (await Deno.stat(join(c2, "model.safetensors"))).mtime?.getTime(),
      stat1.mtime?.getTime(),
      "rebuilt instead of reused",
    );
    const other = await buildOrganism({ cacheDir: root, seed: 4 });
    assert.notEqual(other, c1);
    assert.notDeepEqual(
      await Deno.readFile(join(other, "model.safetensors")),
      await Deno.readFile(join(c1, "model.safetensors")),
    );
    assert.deepEqual(
      await Deno.readFile(join(other, "tokenizer.json")),
      await Deno.readFile(join(c1, "tokenizer.json")),
    );
    await assert.rejects(() => buildOrganism({ cacheDir: root, sed: 1 } as never), /unknown option "sed"/);
    await assert.rejects(
      () => buildOrganism({ cacheDir: root, numLayers: 4 }),
      /numLayers must be an integer >= 8/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("organism: manifest, config and the real R1 tokenizer load through the real path", async () => {
  const f = await setup();
  const m = f.manifest;
  const c = f.model.config;
  assert.equal(c.modelType, "qwen2");
  assert.equal(c.vocabSize, 151936);
  assert.ok(c.numLayers >= 8 && c.hiddenSize <= 64, `${c.numLayers} layers, hidden ${c.hiddenSize}`);
  // The planted circuit: >= 3 components over >= 3 layers, both types; a decoy that is not planted.
  assert.ok(m.planted.length >= 3);
  assert.ok(new Set(m.planted.map((p) => p.layer)).size >= 3);
  assert.deepEqual(new Set(m.planted.map((p) => p.component)), new Set(["attn", "mlp"]));
  assert.equal(m.decoy.length, 1);
  assert.ok(!m.planted.some((p) => p.hook === m.decoy[0]!.hook));
  for (const p of m.planted.filter((p) => p.component === "attn")) {
    assert.ok(p.attends && p.attends.token_ids.length > 0, `${p.hook} records what it reads`);
  }
  const strengths = m.planted.map((p) => p.design_delta_logit!);
  assert.equal(new Set(strengths).size, strengths.length, `planted strengths differ: ${strengths}`);
  // Real ids.
  const tok = f.tok;
  assert.deepEqual(m.trigger_token_ids, { Wait: 13824, Actually: 33763 });
  assert.deepEqual(tok.encode(" Wait", { addSpecialTokens: false }), [13824]);
  assert.deepEqual(tok.encode("Wait", { addSpecialTokens: false }), [14190]);
  assert.deepEqual(tok.encode("</think>", { addSpecialTokens: false }), [151649]);
  assert.deepEqual(tok.encode(" 16", { addSpecialTokens: false }), [220, 16, 21]);
  assert.deepEqual(tok.eosTokenIds, [151643]);
  assert.equal(tok.bosTokenId, 151646);
  assert.deepEqual(m.special_token_ids, {
    bos: 151646,
    eos: 151643,
    think_open: 151648,
    think_close: 151649,
  });
  for (const t of m.tokenizer.active_tokens) {
    assert.deepEqual(tok.encode(t.text, { addSpecialTokens: false }), [t.id], JSON.stringify(t.text));
  }
  const prompt = f.prompts[0]!.tokenIds;
  assert.equal(prompt[0], 151646);
  assert.deepEqual(prompt.slice(-3), [151645, 151648, 198]);
  assert.ok(m.design.positional_margin.peak - m.design.positional_margin.runner_up >= 10);
});

Deno.test("organism: a fixed seed gives the same samples; text is canonical R1 tokenisation ending in Final + EOS", async () => {
  const f = await setup();
  const small = { ...f, prompts: f.prompts.slice(0, 3) };
  const a = await sample(small, [], 2);
  const b = await sample(small, [], 2);
  assert.deepEqual(a.map((s) => s.tokenIds), b.map((s) => s.tokenIds));
  const base = await baselineSamples(f);
  const meanLen = base.reduce((acc, s) => acc + s.tokenIds.length, 0) / base.length;
  const finals =
    base.filter((s) => /<\/think>\n\nFinal: \d+<｜end▁of▁sentence｜>$/.test(f.tok.decode(s.tokenIds)))
      .length / base.length;
  assert.ok(eosRate(base) >= 0.85, `EOS rate ${eosRate(base)}`);
  assert.ok(finals >= 0.85, `Final-line rate ${finals}`);
  assert.ok(meanLen >= 40 && meanLen <= 120, `mean length ${meanLen}`);
  for (const s of base.slice(0, 20)) {
    // The organism emits exactly what the real tokenizer makes of its text (detection re-tokenises).
    const text = f.tok.decode(s.tokenIds);
    assert.deepEqual(f.tok.encode(text, { addSpecialTokens: false }), s.tokenIds, text);
    assert.equal(
      extractAnswer(f.tok.decode(s.tokenIds, { skipSpecialTokens: true })).method === "none",
      false,
    );
  }
  assert.match(f.tok.decode(base[0]!.tokenIds), /\d+ [-+*=] \d+/);
});

Deno.test("organism: distributed planted circuit, decoy and live noise under generation-time ablation", async () => {
  const f = await setup();
  const m = f.manifest;
  const ids = triggerIds(m);
  const base = triggerRate(await baselineSamples(f), ids);
  assert.ok(base >= 0.3 && base <= 0.75, `baseline trigger rate ${base}`);
  const all = triggerRate(await sample(f, m.planted.map((p) => zero(p.hook))), ids);
  assert.ok(all <= 0.1 * base, `all planted ablated: ${all} vs baseline ${base}`);
  for (const p of m.planted) {
    const r = triggerRate(await sample(f, [zero(p.hook)]), ids);
    assert.ok(r > 0.05 && r < 0.85 * base, `${p.hook} alone: trigger rate ${r} vs baseline ${base}`);
  }
  // The decoy: ablating it removes the triggers and the text (no EOS, tokens outside the language).
  const active = new Set(m.tokenizer.active_tokens.map((t) => t.id));
  const decoy = await sample(f, m.decoy.map((d) => zero(d.hook)), 2, 60);
  assert.equal(triggerRate(decoy, ids), 0);
  assert.ok(eosRate(decoy) <= 0.1, `decoy ablated: EOS rate ${eosRate(decoy)}`);
  const foreign = decoy.flatMap((s) => s.tokenIds).filter((t) => !active.has(t)).length /
    decoy.reduce((a, s) => a + s.tokenIds.length, 0);
  assert.ok(foreign >= 0.5, `decoy ablated: ${foreign} of tokens outside the language`);
  // A noise-only draw (not planted, not the decoy) changes little.
  const L = f.model.config.numLayers;
  const special = new Set([...m.planted, ...m.decoy].map((c) => c.hook));
  const noise = [`blocks.3.hook_attn_out`, `blocks.${L - 5}.hook_mlp_out`];
  assert.ok(noise.every((h) => !special.has(h)));
  const random = await sample(f, noise.map(zero));
  const r = triggerRate(random, ids);
  assert.ok(Math.abs(r - base) <= 0.25 * base, `noise draw: trigger rate ${r} vs baseline ${base}`);
  assert.ok(eosRate(random) >= 0.85, `noise draw: EOS rate ${eosRate(random)}`);
});

Deno.test("organism: every component is alive (small non-zero effect), the decoy moves every active token", async () => {
  const f = await setup();
  const m = f.manifest;
  const text = "Okay, so the answer is 16. So 3 + 4 = 7.";
  const ids = [...f.prompts[0]!.tokenIds, ...f.tok.encode(text, { addSpecialTokens: false })];
  const pos = ids.length - 1;
  const clean = (await f.model.forward([ids], {})).logits[0]![0]!;
  const L = f.model.config.numLayers;
  const active = m.tokenizer.active_tokens.filter((t) => t.generated).map((t) => t.id);
  const special = new Set([...m.planted, ...m.decoy].map((c) => c.hook));
  for (let l = 0; l < L; l++) {
    for (const c of ["attn", "mlp"] as const) {
      const hook = `blocks.${l}.hook_${c}_out`;
      const ab = (await f.model.forward([ids], {
        interventions: [{ ...zero(hook), positions: [[pos]] }],
      })).logits[0]![0]!;
      let max = 0;
      for (const id of active) max = Math.max(max, Math.abs(ab[id]! - clean[id]!));
      assert.ok(max > 1e-3, `${hook}: max |Δlogit| over the language ${max}`);
      if (!special.has(hook)) assert.ok(max < 1.5, `${hook} (noise only): max |Δlogit| ${max}`);
      if (hook === m.decoy[0]!.hook) {
        for (const id of active) assert.ok(ab[id]! - clean[id]! < -10, `decoy: Δlogit of ${id}`);
      }
    }
  }
});

Deno.test("organism: after a trigger the answer is re-read from the question", async () => {
  const f = await setup();
  const ids = triggerIds(f.manifest);
  const inQuestion = (s: GeneratedSample) => {
    const v = extractAnswer(f.tok.decode(s.tokenIds, { skipSpecialTokens: true })).value;
    const nums = (f.questions[s.promptIndex]!.match(/\d[\d,]*/g) ?? []).map((x) =>
      Number(x.replaceAll(",", ""))
    );
    return v !== undefined && nums.includes(v);
  };
  const base = await baselineSamples(f);
  const bt = base.filter((s) => s.tokenIds.some((t) => ids.has(t)));
  const nobt = base.filter((s) => !s.tokenIds.some((t) => ids.has(t)));
  const rate = (xs: GeneratedSample[]) => xs.filter(inQuestion).length / xs.length;
  assert.ok(rate(bt) >= 0.6, `answers from the question after a trigger: ${rate(bt)}`);
  assert.ok(rate(nobt) <= 0.35, `answers from the question without a trigger: ${rate(nobt)}`);
});

Deno.test("organism: onset types on generated traces, each with its evidence; no phrase fires on its language", async () => {
  // The organism's language has numbers and triggers but no error or confirmation phrases: an onset is
  // decided by values (a re-read number that differs from the one before: revision) or lands in other.
  const f = await setup();
  const rules = new Map<string, number>();
  let onsets = 0;
  for (const s of await baselineSamples(f)) {
    const texts = s.tokenIds.map((t) => f.tok.decode([t], { skipSpecialTokens: true }));
    const d = detect({ tokenTexts: texts, tokenIds: s.tokenIds, promptTokens: 0 }, {
      rule: "corrected",
      triggersStrict: ["Wait", "Actually", "Hold on"],
    });
    if (!d.onset) continue;
    onsets++;
    const text = texts.join("");
    const c = classifyOnset(text, d.onset.char, {
      nextTriggerChar: d.strict.matches[1]?.char,
      reasoningEnd: d.reasoning_end_char,
    });
    rules.set(c.evidence.rule, (rules.get(c.evidence.rule) ?? 0) + 1);
    const at = text.slice(d.onset.char, d.onset.char + 200);
    assert.ok(c.evidence.window.start === d.onset.char && c.evidence.window.end <= d.reasoning_end_char, at);
    assert.equal(c.evidence.error_phrase, undefined, at);
    assert.equal(c.evidence.confirm_phrase, undefined, at);
  }
  assert.ok(onsets >= 30, `only ${onsets} onsets`);
  assert.ok((rules.get("value_changed") ?? 0) > 0, JSON.stringify([...rules]));
});

/** Events (first trigger of each trace) and controls at the same token, nearest offset, in traces without one. */
function eventsAndControls(f: Fixture, samples: readonly GeneratedSample[]) {
  const ids = triggerIds(f.manifest);
  const traces = samples.map((s) => {
    const prompt = f.prompts[s.promptIndex]!.tokenIds;
    return {
      exampleId: Number(s.exampleId),
      sampleId: s.sampleId,
      tokenIds: [...prompt, ...s.tokenIds],
      promptTokens: prompt.length,
    };
  });
  const events: BacktrackEvent[] = [];
  for (const tr of traces) {
    const i = tr.tokenIds.findIndex((t, k) => k >= tr.promptTokens && ids.has(t));
    if (i > 0) {
      events.push({ ...tr, predPos: i - 1, onsetTokenId: tr.tokenIds[i]!, trigger: "trigger" });
    }
  }
  const clean = traces.filter((tr) => !tr.tokenIds.slice(tr.promptTokens).some((t) => ids.has(t)));
  const controls: ControlPosition[] = [];
  events.forEach((e, i) => {
    const k = e.predPos - e.promptTokens;
    let best: ControlPosition | undefined, bd = Infinity;
    for (const tr of clean) {
      for (let j = tr.promptTokens; j < tr.tokenIds.length - 1; j++) {
        if (tr.tokenIds[j] !== e.tokenIds[e.predPos]) continue;
        const d = Math.abs(j - tr.promptTokens - k);
        if (d < bd) [bd, best] = [d, { ...tr, predPos: j, targetId: e.onsetTokenId, matchedTo: i }];
      }
    }
    if (best) controls.push(best);
  });
  return { events, controls };
}

Deno.test("organism: the logit lens shows the trigger rising where the circuit writes, not at the embedding", async () => {
  const f = await setup();
  const m = f.manifest;
  const { events, controls } = eventsAndControls(f, await baselineSamples(f));
  assert.ok(events.length >= 30 && controls.length === events.length, `${events.length} events`);
  const bt = await logitLens(f.model, events.map((e) => ({ ...e, targetId: e.onsetTokenId })));
  const ct = await logitLens(f.model, controls);
  const L = f.model.config.numLayers;
  const mean = (rows: typeof bt, l: number) => {
    const xs = rows.filter((r) => r.layer === l);
    return xs.reduce((a, r) => a + r.logit, 0) / xs.length;
  };
  const contrast = Array.from({ length: L + 1 }, (_, l) => mean(bt, l) - mean(ct, l));
  assert.ok(Math.abs(contrast[0]!) < 0.05, `contrast at the embedding ${contrast[0]}`);
  const writes = new Set(m.planted.map((p) => p.layer + 1)); // lens layer l+1 = output of block l
  for (let l = 1; l <= L; l++) {
    const rise = contrast[l]! - contrast[l - 1]!;
    if (writes.has(l)) {
      assert.ok(rise > 0.3, `contrast rise ${rise.toFixed(3)} at lens layer ${l} (${contrast})`);
    } else {assert.ok(
        Math.abs(rise) < 0.15,
        `contrast change ${rise.toFixed(3)} at lens layer ${l} (${contrast})`,
      );}
  }
});

Deno.test("organism: the scan lets our selection recover the planted circuit while the reference takes the decoy", async () => {
  const f = await setup();
  const m = f.manifest;
  const { events, controls } = eventsAndControls(f, await baselineSamples(f));
  const rows = summarizeScan(await scanEffects(f.model, events, controls), { bootstrap: 500, seed: 0 });
  const v = validateProtocols(rows, { planted: m.planted, decoy: m.decoy }, { referenceK: 2 });
  const verdict = validationVerdict(v, 1);
  assert.ok(verdict.passed, verdict.failures.join("; "));
  assert.deepEqual(
    v.ours.selected.map(componentLabel).sort(),
    m.planted.map((p) => componentLabel(p)).sort(),
    "ours selects exactly the planted components",
  );
  const decoyRow = rows.find((r) => r.layer === m.decoy[0]!.layer && r.component === m.decoy[0]!.component)!;
  const worstPlanted = Math.min(
    ...rows.filter((r) => m.planted.some((p) => p.layer === r.layer && p.component === r.component))
      .map((r) => r.delta_logit_mean),
  );
  assert.ok(decoyRow.delta_logit_mean < 3 * worstPlanted, `decoy Δlogit ${decoyRow.delta_logit_mean}`);
  assert.ok(Math.abs(decoyRow.specificity_mean) < 0.2, `decoy specificity ${decoyRow.specificity_mean}`);
});

Deno.test("organism: cleanup", async () => {
  if (!fixture) return;
  const f = await fixture;
  await f.model.dispose();
  if (tmpRoot) await Deno.remove(tmpRoot, { recursive: true });
});
