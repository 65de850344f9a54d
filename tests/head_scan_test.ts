/**
 * The head-level scan (experiments/backtracking/head_scan.ts): token classes and class masses against
 * hand-worked values, and the acceptance on the model organism: DLA names the planted components first
 * (with CIs) in far fewer forward passes than the layer ablation scan, the single-head ablation confirms
 * the planted heads, and their patterns at the pre-onset position put most weight on the token class
 * organism.json says they read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HookedModel } from "../lib/engine/hooked_model.ts";
import { loadTokenizer } from "../lib/engine/tokenizer.ts";
import { buildOrganism, readOrganismManifest } from "../lib/engine/organism.ts";
import { generate } from "../lib/generate/generate.ts";
import { scanEffects, scanPositions } from "../lib/interp/ablation_scan.ts";
import { writeRandomCheckpoint } from "../lib/engine/random_checkpoint.ts";
import { loadConfig } from "../experiments/backtracking/config.ts";
import { buildPrompt } from "../experiments/backtracking/prompts.ts";
import type { BacktrackEvent, ControlPosition } from "../experiments/backtracking/event_selection.ts";
import { readHeadScan, writeHeadTables } from "../experiments/backtracking/artifacts/heads.ts";
import { dlaComponentName, headFigures, headReportSection } from "../experiments/backtracking/head_report.ts";
import type { HeadScanFiles } from "../experiments/backtracking/artifacts/heads.ts";
import { headAttentionByClass, headDlaHeatmap } from "../experiments/backtracking/head_figures.ts";
import { directLogitAttribution } from "../lib/interp/direct_logit_attribution.ts";
import {
  classifyKeys,
  classMass,
  dominantClass,
  eventGroups,
  headScan,
  TOKEN_CLASSES,
} from "../experiments/backtracking/head_scan.ts";

const REPO = join(import.meta.dirname!, "..");

Deno.test("headReportSection: MLPs named as in the rest of the report (mlp 4), no -0.00", () => {
  const dla = (name: string, kind: "head" | "mlp", layer: number, head: number, spec: number) => ({
    group: "all",
    name,
    kind,
    layer,
    head,
    rank: 0,
    n_events: 38,
    event_mean: spec - 0.0001,
    event_lower: spec - 0.0003,
    event_upper: spec,
    n_controls: 38,
    control_mean: -0.0002,
    control_lower: -0.0004,
    control_upper: -0.0001,
    control_trigger_mean: 0,
    n_pairs: 38,
    specificity_mean: spec,
    specificity_lower: spec - 0.0004,
    specificity_upper: spec + 0.0001,
    level: 0.95,
  });
  const files = {
    summary: {
      variant: "v",
      n_events: 38,
      n_controls: 38,
      groups: ["all"],
      onset_types: false,
      top_heads: [{ layer: 0, head: 0 }],
      cost: {
        dla: { forward_calls: 1, forward_rows: 2 },
        ablation: { forward_calls: 1, forward_rows: 2 },
        patterns: { forward_calls: 0, forward_rows: 0 },
      },
      settings: { top_heads: 1, scale: 0, bootstrap: 10 },
    },
    dla: [dla("4_mlp_out", "mlp", 4, -1, 1.07), dla("L0H0", "head", 0, 0, -0.0004)],
    ablation: [{
      group: "all",
      layer: 0,
      head: 0,
      n_events: 38,
      delta_logprob_mean: -0.0004,
      delta_logprob_lower: -0.0009,
      delta_logprob_upper: -0.0001,
      specificity_mean: -0.0002,
      specificity_lower: -0.0006,
      specificity_upper: -0.0001,
    }],
    attention: [],
  } as unknown as HeadScanFiles;
  const md = headReportSection(files).markdown;
  // It printed "| 3 | 4_mlp_out |" and "-0.00 [-0.00, -0.00]".
  assert.match(md, /\| 1 \| mlp 4 \| 1\.07 \| 0\.00 \| 1\.07 \[1\.07, 1\.07\] \|/);
  assert.match(md, /\| 2 \| L0H0 \| 0\.00 \| 0\.00 \| 0\.00 \[0\.00, 0\.00\] \|/);
  assert.match(md, /\| all \| L0H0 \| 38 \| 0\.00 \[0\.00, 0\.00\] \| 0\.00 \[0\.00, 0\.00\] \|/);
  assert.doesNotMatch(md, /_mlp_out|-0\.00/);
  assert.equal(dlaComponentName({ kind: "mlp", layer: 4, head: -1, name: "4_mlp_out" }), "mlp 4");
  assert.equal(dlaComponentName({ kind: "head", layer: 6, head: 0, name: "L6H0" }), "L6H0");
  assert.equal(dlaComponentName({ kind: "embed", layer: -1, head: -1, name: "embed" }), "embed");
});

Deno.test("classifyKeys: = / numbers / operators first, then question, previous sentence, other", () => {
  // prompt: [Q, " 12", " +", " 3", "?"] then completion: ["A", " =", " 5", ".", "B", " 7", "."]
  const texts = ["Q", " 12", " +", " 3", "?", "A", " =", " 5", ".", "B", " 7", "."];
  const ids = texts.map((_, i) => i);
  const classes = classifyKeys(ids, 5, 11, (id) => texts[id]!);
  assert.deepEqual(classes, [
    "question",
    "number",
    "operator",
    "number",
    "question",
    "other", // "A": before the last sentence end (".", index 8)
    "equals",
    "number",
    "other", // the "." that ended the earlier sentence
    "previous_sentence",
    "number",
    "previous_sentence", // the query itself
  ]);
  // A query in the first completion sentence: every completion token so far is the previous sentence.
  assert.deepEqual(classifyKeys(ids, 5, 5, (id) => texts[id]!).slice(5), ["previous_sentence"]);
  assert.throws(() => classifyKeys(ids, 5, 12, (id) => texts[id]!), /query position 12/);
});

Deno.test("classMass sums probabilities per class and refuses mass after the query", () => {
  const classes = ["question", "number", "equals", "previous_sentence"] as const;
  const mass = classMass([0.1, 0.2, 0.3, 0.4, 0], classes);
  const expected = TOKEN_CLASSES.map((c) =>
    c === "question" ? 0.1 : c === "number" ? 0.2 : c === "equals" ? 0.3 : c === "previous_sentence" ? 0.4 : 0
  );
  mass.forEach((m, i) => assert.ok(Math.abs(m - expected[i]!) < 1e-12, `${TOKEN_CLASSES[i]}: ${m}`));
  assert.throws(() => classMass([0.5, 0, 0, 0, 0.5], classes), /after the query/);
  assert.deepEqual(eventGroups("Wait"), ["all", "trigger=Wait"]);
  assert.deepEqual(eventGroups("Wait", "revision"), ["all", "trigger=Wait", "onset_type=revision"]);
});

Deno.test("scanPositions with a head condition = a full forward with that head's hook_z zeroed at predPos", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-head-scan-" });
  await writeRandomCheckpoint(dir, {
    modelType: "qwen2",
    hiddenSize: 48,
    numLayers: 3,
    numHeads: 6,
    numKvHeads: 2,
    intermediateSize: 72,
    vocabSize: 101,
    seed: 41,
  });
  const model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs` });
  try {
    const tokens = [[5, 17, 33, 2, 90, 41, 7, 64], [9, 8, 77, 3, 12]];
    const positions = tokens.map((t, i) => ({ tokenIds: t, predPos: t.length - 2 - i, targetIds: [11, 60] }));
    const conditions = [{ layer: 1, component: "attn" as const, head: 4 }, {
      layer: 2,
      component: "attn" as const,
      head: 0,
    }];
    const scores = await scanPositions(model, positions, { conditions, maxRows: 3 });
    for (const [i, p] of positions.entries()) {
      const prefix = [p.tokenIds.slice(0, p.predPos + 1)];
      const logp = async (iv: Parameters<HookedModel["forward"]>[1]) => {
        const row = (await model.forward(prefix, iv)).logits[0]![0]!;
        const max = Math.max(...row);
        const z = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
        return p.targetIds.map((id) => row[id]! - z);
      };
      const clean = await logp({});
      p.targetIds.forEach((_, m) => assert.ok(Math.abs(scores[i]!.clean[m]!.logprob - clean[m]!) < 1e-4));
      for (const [c, cond] of conditions.entries()) {
        const want = await logp({
          interventions: [{
            hook: `blocks.${cond.layer}.attn.hook_z`,
            op: "scale",
            value: 0,
            head: cond.head,
            positions: [[p.predPos]],
          }],
        });
        p.targetIds.forEach((_, m) => {
          const got = scores[i]!.ablated[c]![m]!.logprob;
          assert.ok(
            Math.abs(got - want[m]!) < 1e-4,
            `position ${i} head L${cond.layer}H${cond.head}: ${got} vs ${want[m]}`,
          );
        });
        assert.ok(Math.abs(want[0]! - clean[0]!) > 1e-6, "the ablation changes the output");
      }
    }
    // DLA's onCaptures hands over each batch's captures, rows in the batch's item order.
    const seen: number[] = [];
    await directLogitAttribution(model, positions.map((p) => ({ ...p, targetId: 11 })), {
      batchSize: 1,
      onCaptures: (batch, cap) => {
        const i = batch[0]!, p = positions[i]!;
        seen.push(i);
        assert.deepEqual(cap.positions, [[p.predPos]]);
        const n = p.predPos + 1;
        assert.equal(cap.heads!.pattern[1]![0]!.length, 6 * n, "[head, 1 query, n keys]");
      },
    });
    assert.deepEqual(seen.sort(), [0, 1]);
    await assert.rejects(
      () => scanPositions(model, positions, { conditions: [{ layer: 0, component: "mlp", head: 0 }] }),
      /a head needs component "attn"/,
    );
    await assert.rejects(
      () => scanPositions(model, positions, { conditions: [{ layer: 0, component: "attn", head: 6 }] }),
      /0 <= head < 6/,
    );
  } finally {
    await model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("head figures: DLA heat map (heads + MLP column, outlines) and attention by class render as SVG", () => {
  const cells = [0, 1, 2].flatMap((layer) =>
    [-1, 0, 1].map((head) => ({
      layer,
      head,
      value: layer - head * 0.5,
      highlight: layer === 2 && head === 0,
    }))
  );
  const heat = headDlaHeatmap(cells);
  assert.equal(heat.name, "head_dla_heatmap");
  assert.ok(heat.svg.includes(">MLP<") && heat.svg.includes(">H1<"), "column labels");
  assert.ok(heat.svg.includes(">2.00<"), "cell values printed");
  // the figure review: no "Head →" axis title over the column labels, no "-0.00", an explained outline
  assert.ok(!heat.svg.includes("Head →"), "no axis title colliding with the column labels");
  const tiny = headDlaHeatmap([{ layer: 0, head: 0, value: -0.001 }, { layer: 1, head: 0, value: -0.5 }]).svg;
  assert.ok(!/>[-−]0\.00</.test(tiny), "-0.00 printed");
  assert.ok(tiny.includes(">−0.50<"), "a negative cell uses the legend's minus sign");
  assert.match(heat.svg, /stroke="black" stroke-width="2"\/><text[^>]*>top head: ablated one at a time/);
  // the subtitle is two lines, each short enough for the figure (~6.6 px a character at 12 px)
  const sub = [...heat.svg.matchAll(/<text x="12" y="\d+" font-size="12" fill="#555"[^>]*>([^<]+)</g)];
  assert.equal(sub.length, 2, "two subtitle lines");
  for (const [, line] of sub) assert.ok(12 + 6.6 * line!.length <= heat.width, `subtitle runs off: ${line}`);
  const bars = ["L2H0", "L6H0"].flatMap((head) =>
    TOKEN_CLASSES.flatMap((token_class, i) =>
      (["event", "control"] as const).map((series) => ({
        head,
        token_class,
        series,
        value: i / 10,
        lower: i / 10 - 0.01,
        upper: i / 10 + 0.01,
      }))
    )
  );
  const att = headAttentionByClass(bars);
  assert.equal(att.name, "head_attention_by_class");
  // "previous_sentence" is set on two lines ("previous" / "sentence") so it does not run into "question"
  assert.ok(
    att.svg.includes(">previous<") && att.svg.includes(">sentence<") && att.svg.includes(">L6H0<"),
    "facet labels",
  );
  assert.throws(
    () => headAttentionByClass([{ ...bars[0]!, lower: 0.5, upper: 0.6, value: 0.1 }]),
    RangeError,
  );
  assert.throws(() => headDlaHeatmap([]), RangeError);
});

/** Events (first trigger of each trace) and controls at the same token, nearest offset, in traces without one. */
function eventsAndControls(
  traces: { exampleId: number; sampleId: number; tokenIds: number[]; promptTokens: number }[],
  triggers: ReadonlyMap<number, string>,
) {
  const events: BacktrackEvent[] = [];
  for (const tr of traces) {
    const i = tr.tokenIds.findIndex((t, k) => k >= tr.promptTokens && triggers.has(t));
    if (i > 0) {
      events.push({
        ...tr,
        predPos: i - 1,
        onsetTokenId: tr.tokenIds[i]!,
        trigger: triggers.get(tr.tokenIds[i]!)!,
      });
    }
  }
  const clean = traces.filter((tr) => !tr.tokenIds.slice(tr.promptTokens).some((t) => triggers.has(t)));
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

Deno.test("organism: DLA ranks the planted components first in far fewer passes than the layer scan; ablation and patterns confirm the planted heads", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "head-scan-test-" });
  const dir = await buildOrganism({ cacheDir: tmp });
  const m = await readOrganismManifest(dir);
  const tok = await loadTokenizer(dir);
  const model = await HookedModel.load(dir, { threads: 2, cacheDir: tmp });
  try {
    const config = await loadConfig(join(REPO, "configs", "organism.yaml"));
    const lines = (await Deno.readTextFile(join(REPO, "datasets", "gsm8k", "test.jsonl"))).trim().split("\n");
    const prompts = lines.slice(0, 8).map((l, id) => ({
      id,
      tokenIds: buildPrompt(tok, config.prompting, JSON.parse(l).question, "baseline_think_newline").tokenIds,
    }));
    const samples = await generate(model, prompts, {
      samplesPerPrompt: 8,
      maxNewTokens: 160,
      sampling: { temperature: 0.7, topP: 0.95, topK: 50 },
      eosTokenIds: tok.eosTokenIds,
      seed: 20240601,
      scope: "generated_only",
      batchSize: 32,
    });
    const traces = samples.map((s) => ({
      exampleId: Number(s.exampleId),
      sampleId: s.sampleId,
      tokenIds: [...prompts[s.promptIndex]!.tokenIds, ...s.tokenIds],
      promptTokens: prompts[s.promptIndex]!.tokenIds.length,
    }));
    const triggers = new Map([[m.trigger_token_ids.Wait, "Wait"], [
      m.trigger_token_ids.Actually,
      "Actually",
    ]]);
    const { events, controls } = eventsAndControls(traces, triggers);
    const nWait = events.filter((e) => e.trigger === "Wait").length;
    const nActually = events.length - nWait;
    assert.ok(nWait >= 5 && nActually >= 5, `events: ${nWait} Wait, ${nActually} Actually`);

    const text = new Map<number, string>();
    const tokenText = (id: number) => {
      let t = text.get(id);
      if (t === undefined) text.set(id, t = tok.decodeEach([id])[0]!);
      return t;
    };
    const t0 = performance.now();
    const res = await headScan(model, events, controls, { topHeads: 4, bootstrap: 500, seed: 0, tokenText });
    const headSeconds = (performance.now() - t0) / 1000;

    const [prevHead, mlp, eqHead] = m.planted;
    const label = (c: { component: string; layer: number; head?: number }) =>
      c.component === "mlp" ? `${c.layer}_mlp_out` : `L${c.layer}H${c.head}`;
    const top = (group: string, n: number) =>
      res.dla.filter((r) => r.group === group && (r.kind === "head" || r.kind === "mlp")).slice(0, n);
    const show = (group: string) =>
      top(group, 5).map((r) =>
        `${r.name} ${r.specificity_mean.toFixed(2)} [${r.specificity_lower.toFixed(2)}, ${
          r.specificity_upper.toFixed(2)
        }]`
      ).join("; ");
    // Wait: the planted previous-token head and MLP are the top two, CIs above zero; Actually: the "=" head first.
    const waitTop = top("trigger=Wait", 2);
    assert.deepEqual(
      waitTop.map((r) => r.name).sort(),
      [label(prevHead!), label(mlp!)].sort(),
      show("trigger=Wait"),
    );
    for (const r of waitTop) assert.ok(r.specificity_lower > 0, `${r.name} CI ${show("trigger=Wait")}`);
    const actTop = top("trigger=Actually", 1)[0]!;
    assert.equal(actTop.name, label(eqHead!), show("trigger=Actually"));
    assert.ok(actTop.specificity_lower > 0, show("trigger=Actually"));
    // Over all events, the three planted components are the top three.
    assert.deepEqual(top("all", 3).map((r) => r.name).sort(), m.planted.map(label).sort(), show("all"));
    // The decoy (writes every token alike) is not specific.
    const decoy = res.dla.find((r) => r.group === "all" && r.name === label(m.decoy[0]!))!;
    assert.ok(
      Math.abs(decoy.specificity_mean) < 0.5 * top("all", 3)[2]!.specificity_mean,
      `decoy ${decoy.specificity_mean}`,
    );

    // The planted heads are among the top heads, and ablating each lowers its trigger specifically.
    const names = res.topHeads.map((h) => `L${h.layer}H${h.head}`);
    assert.ok(names.includes(label(prevHead!)) && names.includes(label(eqHead!)), `top heads ${names}`);
    for (const [p, g] of [[prevHead!, "trigger=Wait"], [eqHead!, "trigger=Actually"]] as const) {
      const a = res.ablation.find((r) => r.group === g && r.layer === p.layer && r.head === p.head)!;
      assert.ok(
        a.specificity_upper < 0,
        `ablating ${
          label(p)
        } on ${g}: specificity ${a.specificity_mean} [${a.specificity_lower}, ${a.specificity_upper}]`,
      );
    }

    // Patterns: the previous-token head reads a number (digits), the "=" head reads " =".
    const want = { [label(prevHead!)]: "number", [label(eqHead!)]: "equals" } as const;
    for (const [p, g] of [[prevHead!, "trigger=Wait"], [eqHead!, "trigger=Actually"]] as const) {
      const d = dominantClass(res.attention, p.layer, p.head!, g)!;
      assert.equal(d.token_class, want[label(p)], `${label(p)} on ${g}: ${JSON.stringify(d)}`);
      assert.ok(d.event_mean > 0.5, `${label(p)}: mass ${d.event_mean} on ${d.token_class}`);
      // The class holds the token ids organism.json says the head reads.
      const ids = p.attends!.token_ids;
      assert.ok(ids.every((id) => classifyKeys([id], 0, 0, tokenText)[0] === d.token_class), `${ids}`);
    }

    // The artifact family returns what was written; the figures and the report section come from it.
    const run = { id: "t", root: tmp, dir: join(tmp, "t") };
    const summary = {
      variant: "v",
      n_events: res.n_events,
      n_controls: res.n_controls,
      groups: res.groups,
      onset_types: false,
      top_heads: res.topHeads,
      // As the step writes it: calls and rows only (seconds would make identical runs differ).
      cost: {
        dla: { forward_calls: res.cost.dla.forward_calls, forward_rows: res.cost.dla.forward_rows },
        ablation: {
          forward_calls: res.cost.ablation.forward_calls,
          forward_rows: res.cost.ablation.forward_rows,
        },
        patterns: {
          forward_calls: res.cost.patterns.forward_calls,
          forward_rows: res.cost.patterns.forward_rows,
        },
      },
      settings: { top_heads: 4, scale: 0, bootstrap: 500 },
    };
    await writeHeadTables(run, { result: res, summary });
    await assert.rejects(() => writeHeadTables(run, { result: res, summary }), /exists/);
    const files = await readHeadScan(run);
    assert.deepEqual(files.summary, summary);
    // Identical runs must write identical artifacts: no wall-clock figure in the summary, even when the
    // caller passes the scan's own cost objects (which carry seconds).
    await writeHeadTables(run, { result: res, summary: { ...summary, cost: res.cost } }, { overwrite: true });
    assert.doesNotMatch(await Deno.readTextFile(join(run.dir, "analysis/head_scan.json")), /seconds/);
    assert.deepEqual(files.dla, res.dla);
    assert.deepEqual(files.ablation, res.ablation);
    assert.deepEqual(files.attention, res.attention);
    const figs = headFigures(files);
    assert.deepEqual(figs.map((f) => f.name), ["head_dla_heatmap", "head_attention_by_class"]);
    for (const f of figs) assert.ok(f.svg.startsWith("<svg") && f.svg.includes("</svg>"), f.name);
    const section = headReportSection(files);
    for (const p of [prevHead!, eqHead!]) assert.ok(section.markdown.includes(label(p)), label(p));
    assert.ok(section.markdown.includes(`| mlp ${mlp!.layer} |`), "the planted MLP as the report names it");
    assert.doesNotMatch(section.markdown, /_mlp_out/);
    assert.ok(
      section.markdown.includes(`DLA ${res.cost.dla.forward_calls} forward pass(es)`),
      section.markdown,
    );
    assert.equal(res.cost.patterns.forward_calls, 0, "patterns come from the DLA passes");

    // Warm DLA (graphs compiled): the same items again.
    const t2 = performance.now();
    await directLogitAttribution(model, events.map((e) => ({ ...e, targetId: e.onsetTokenId })));
    const warmDla = (performance.now() - t2) / 1000;

    // Cost: the layer ablation scan on the same events, counted the same way.
    let calls = 0, rows = 0;
    const counted = {
      config: model.config,
      forward: ((tokens: number[][], o?: Parameters<HookedModel["forward"]>[1]) => {
        calls++;
        rows += tokens.length;
        return model.forward(tokens, o);
      }) as HookedModel["forward"],
    };
    const t1 = performance.now();
    await scanEffects(counted, events, controls);
    const layerSeconds = (performance.now() - t1) / 1000;
    const dla = res.cost.dla;
    console.log(
      `head scan on the organism: ${events.length} events (${nWait} Wait, ${nActually} Actually), ` +
        `${res.n_controls} controls\n` +
        `  DLA: ${dla.forward_calls} forward calls, ${dla.forward_rows} rows, ${dla.seconds.toFixed(2)} s\n` +
        `  head ablation (${res.topHeads.length} heads): ${res.cost.ablation.forward_calls} calls, ` +
        `${res.cost.ablation.forward_rows} rows, ${res.cost.ablation.seconds.toFixed(2)} s\n` +
        `  patterns: read from the DLA passes (${res.cost.patterns.forward_calls} calls of their own); ` +
        `whole head scan ${headSeconds.toFixed(2)} s\n` +
        `  layer ablation scan (${2 * model.config.numLayers} components): ${calls} calls, ${rows} rows, ` +
        `${layerSeconds.toFixed(2)} s\n  warm DLA of the ${events.length} events alone: ${
          warmDla.toFixed(2)
        } s\n` +
        `  top all: ${show("all")}\n  top Wait: ${show("trigger=Wait")}\n  top Actually: ${
          show("trigger=Actually")
        }`,
    );
    assert.ok(dla.forward_calls * 2 <= calls, `DLA ${dla.forward_calls} calls vs layer scan ${calls}`);
    assert.ok(dla.forward_rows * 4 <= rows, `DLA ${dla.forward_rows} rows vs layer scan ${rows}`);
  } finally {
    await model.dispose();
    await Deno.remove(tmp, { recursive: true });
  }
});
