import assert from "node:assert/strict";
import {
  ablationImportanceByLayer,
  accuracyByBacktracking,
  btRateByCondition,
  btRateByVariant,
  type Figure,
  figureBundle,
  formattingEffect,
  logitLensByLayer,
  placeLabels,
  renderPng,
  resolveFontFiles,
  saveFigure,
  tradeoffScatter,
  valueCI,
} from "../experiments/backtracking/figures.ts";
import { seededRng } from "../lib/stats/stats.ts";
import { dodgeLabels, endLabelMarks } from "../lib/figures/plot.ts";
import { summarizeCondition } from "../experiments/backtracking/metrics.ts";

/** Set UPDATE_SNAPSHOTS=1 to rewrite tests/fixtures/plots/*.svg. */
const UPDATE = Deno.env.get("UPDATE_SNAPSHOTS") === "1";
const SNAP_DIR = new URL("./fixtures/plots/", import.meta.url).pathname;

/** Seeded figure inputs: every figure from deterministic data. */
function figures(): Figure[] {
  const rng = seededRng(42);
  const ci = (v: number, h = 0.03 + 0.02 * rng()) => ({
    value: v,
    lower: Math.max(0, v - h),
    upper: Math.min(1, v + h),
  });
  const layers = Array.from({ length: 13 }, (_, l) => l);
  return [
    btRateByVariant([
      { variant: "baseline_think_newline", ...ci(0.708), n: 1200 },
      { variant: "think_same_line", ...ci(0.682), n: 1200 },
      { variant: "no_think_tags", ...ci(0.653) },
    ]),
    accuracyByBacktracking([
      { group: "chat / baseline", with_bt: { ...ci(0.25), n: 850 }, without_bt: { ...ci(0.14), n: 350 } },
      { group: "legacy / baseline", with_bt: ci(0.24), without_bt: ci(0.11) },
    ]),
    logitLensByLayer(
      layers.flatMap((l) => {
        const bt = -9 + (l > 7 ? (l - 7) * 1.4 : 0) + rng() * 0.3;
        const c = -10 + rng() * 0.3;
        return [
          { layer: l, series: "backtracking" as const, value: bt, lower: bt - 0.8, upper: bt + 0.8 },
          { layer: l, series: "control" as const, value: c, lower: c - 0.6, upper: c + 0.6 },
        ];
      }),
      { markLayers: [9], metric: "logprob" },
    ),
    ablationImportanceByLayer(
      layers.slice(0, 12).flatMap((l) =>
        (["attn", "mlp"] as const).map((component) => {
          const v = component === "mlp" && l === 9 ? -4 : (rng() - 0.5) * 0.6;
          return { layer: l, component, value: v, lower: v - 0.3, upper: v + 0.3, highlight: l === 9 };
        })
      ),
      { highlightLabel: "planted" },
    ),
    btRateByCondition([
      { condition: "baseline", kind: "baseline", ...ci(0.7), n: 600 },
      { condition: "targeted", kind: "targeted", ...ci(0.05) },
      { condition: "random #1", kind: "random", ...ci(0.66) },
      { condition: "random #2", kind: "random", ...ci(0.69), degenerate: true },
    ]),
    formattingEffect([
      { variant: "chat_think", bt_rate: ci(0.7), accuracy: ci(0.6) },
      { variant: "legacy", bt_rate: ci(0.68), accuracy: ci(0.2) },
    ]),
    tradeoffScatter([
      ...[0, 0.5, 1].map((s, i) => ({
        label: `s=${s}`,
        group: s === 1 ? "baseline" : "scaled",
        bt_rate: ci([0.1, 0.4, 0.7][i]!),
        accuracy: ci([0.3, 0.5, 0.6][i]!),
      })),
      // a degenerate setting (e.g. random_matched at EOS collapse): faded, labelled, explained in the subtitle
      { label: "random_matched", group: "scaled", bt_rate: ci(0.9), accuracy: ci(0.05), degenerate: true },
    ]),
  ];
}

/** SVG with every decimal number rounded to 1 place, for snapshots. */
function roundedSvg(svg: string): string {
  return svg.replace(/-?\d+\.\d+/g, (m) => {
    const r = Number(m).toFixed(1);
    return r === "-0.0" ? "0.0" : r;
  }).replaceAll("><", ">\n<") + "\n";
}

function pngSize(png: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  assert.deepEqual([...png.slice(0, 8)], sig, "PNG signature");
  assert.equal(new TextDecoder().decode(png.slice(12, 16)), "IHDR");
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}

Deno.test("plots: every figure is a standalone SVG with labelled axes, matching its snapshot", async () => {
  const figs = figures();
  assert.deepEqual(figs.map((f) => f.name), [
    "bt_rate_by_variant",
    "accuracy_by_backtracking",
    "logit_lens_by_layer",
    "ablation_importance_by_layer",
    "bt_rate_by_condition",
    "formatting_effect",
    "tradeoff_scatter",
  ]);
  if (UPDATE) await Deno.mkdir(SNAP_DIR, { recursive: true });
  for (const f of figs) {
    assert.ok(f.svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), `${f.name}: xmlns`);
    assert.ok(f.svg.includes('fill="white"'), `${f.name}: white background`);
    assert.ok(!f.svg.includes("<figure"), `${f.name}: no HTML wrapper`);
    assert.ok(
      (f.svg.match(/aria-label="[xy]-axis label"|aria-label="f[xy]-axis/g) ?? []).length >= 1,
      f.name,
    );
    // every title and subtitle line fits the width (~10 px a character of the 16 px bold title, ~6.6 px at 12 px)
    const title = /<text x="12" y="22" font-size="16" font-weight="bold"[^>]*>([^<]+)</.exec(f.svg)?.[1] ??
      "";
    assert.ok(12 + 10 * title.length <= f.width, `${f.name}: title runs off: ${title}`);
    for (const [, line] of f.svg.matchAll(/<text x="12" y="\d+" font-size="12" fill="#555"[^>]*>([^<]+)</g)) {
      assert.ok(12 + 6.6 * line!.length <= f.width, `${f.name}: subtitle line runs off: ${line}`);
    }
    const snap = roundedSvg(f.svg);
    const path = `${SNAP_DIR}${f.name}.svg`;
    if (UPDATE) await Deno.writeTextFile(path, snap);
    else {
      let want: string;
      try {
        want = await Deno.readTextFile(path);
      } catch {
        throw new Error(`missing snapshot ${path}: run with UPDATE_SNAPSHOTS=1`);
      }
      assert.equal(snap, want, `${f.name} differs from its snapshot (UPDATE_SNAPSHOTS=1 to accept)`);
    }
  }
  // Deterministic: the same inputs give the same SVG
  assert.deepEqual(figures().map((f) => f.svg), figs.map((f) => f.svg));
});

Deno.test("plots: axis labels and CI marks are present", () => {
  const [variant, , lens, ablation, cond] = figures();
  assert.match(variant!.svg, /Backtracking rate \(%\)/);
  assert.match(variant!.svg, /70\.8% \(n=1200\)/);
  assert.match(lens!.svg, /Log-probability of trigger token/);
  assert.match(lens!.svg, />emb</, "layer 0 is labelled as the embedding");
  assert.match(lens!.svg, /aria-label="area"/, "CI bands");
  assert.match(ablation!.svg, />Attention</);
  assert.match(ablation!.svg, />MLP</);
  assert.match(ablation!.svg, /#d95f02/, "highlighted component");
  assert.match(cond!.svg, /stroke-dasharray="5,4"/, "baseline reference line");
  assert.ok((cond!.svg.match(/aria-label="rule"/g) ?? []).length >= 2, "CI rules");
  const logit = logitLensByLayer([{ layer: 0, series: "control", value: 1, lower: 0, upper: 2 }], {
    metric: "logit",
  });
  assert.match(logit.svg, /Logit of trigger token/);
});

Deno.test("plots: invalid inputs are named in the error", () => {
  assert.throws(() => btRateByVariant([]), /btRateByVariant: no data/);
  assert.throws(
    () => btRateByVariant([{ variant: "v", value: 0.5, lower: 0.6, upper: 0.7 }]),
    /row 0 has value 0.5 outside its interval \[0.6, 0.7\]/,
  );
  assert.throws(
    () => btRateByVariant([{ variant: "v", value: 0.5, lower: 0.4, upper: 0.7 }], { width: 5 }),
    /option "width"/,
  );
  assert.throws(
    () =>
      logitLensByLayer([{ layer: 0, series: "control", value: 1, lower: 0, upper: 2 }], {
        metric: "x" as unknown as "logit",
      }),
    /option "metric"/,
  );
});

Deno.test("plots: PNG is valid, 2x the SVG size, and text is drawn", () => {
  const fonts = resolveFontFiles();
  assert.notEqual(
    fonts.source,
    "none",
    "a DejaVu Sans font file must be available (npm or fonts-dejavu-core)",
  );
  const f = figures()[0]!;
  const png = renderPng(f.svg);
  const size = pngSize(png);
  assert.equal(size.width, f.width * 2);
  assert.equal(size.height, f.height * 2);
  assert.ok(png.length > 5000, `PNG is ${png.length} bytes`);
  const noText = f.svg.replace(/(<text\b[^>]*>)[^<]*(<\/text>)/g, "$1$2");
  assert.notEqual(noText, f.svg);
  const pngNoText = renderPng(noText);
  assert.notDeepEqual(pngNoText, png, "labels must change the pixels (fonts loaded)");
  const noFont = renderPng(f.svg, { fontFiles: [] });
  assert.deepEqual(noFont, pngNoText, "without fonts the text vanishes, so the check above is meaningful");
  assert.throws(() => renderPng(f.svg, { scale: 0 }), /option "scale"/);
});

Deno.test("plots: saveFigure writes SVG + PNG atomically; figureBundle is a PNG display message at the SVG size", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f = figures()[4]!;
    const { svgPath, pngPath } = await saveFigure(f, `${dir}/figures`);
    assert.equal(svgPath, `${dir}/figures/bt_rate_by_condition.svg`);
    assert.equal(await Deno.readTextFile(svgPath), f.svg);
    pngSize(await Deno.readFile(pngPath));
    const named = await saveFigure(f, dir, "custom");
    assert.equal(named.pngPath, `${dir}/custom.png`);
    assert.deepEqual([...Deno.readDirSync(`${dir}/figures`)].map((e) => e.name).sort(), [
      "bt_rate_by_condition.png",
      "bt_rate_by_condition.svg",
    ]);
    await assert.rejects(() => saveFigure(f, dir, "../x"), /plain file stem/);
    const b = figureBundle(f);
    assert.deepEqual(
      Object.keys(b.data).sort(),
      ["image/png", "text/plain"],
      "no SVG: nbconvert would prefer it",
    );
    const bytes = Uint8Array.from(atob(b.data["image/png"]), (c) => c.charCodeAt(0));
    assert.equal(pngSize(bytes).width, f.width * 2);
    assert.deepEqual(b.metadata["image/png"], { width: f.width, height: f.height });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plots: valueCI reads metrics estimates", () => {
  const rows = Array.from({ length: 20 }, (_, i) => ({ example_id: i % 5, bt: i % 3 === 0 }));
  const s = summarizeCondition(
    rows.map((r, i) => ({
      example_id: r.example_id,
      sample_id: i,
      variant: "v",
      condition: "baseline",
      has_backtracking_strict: r.bt,
      has_backtracking_relaxed: r.bt,
      onset_phrase: "",
      onset_char: -1,
      onset_token_in_completion: -1,
      onset_token_in_full: -1,
      onset_token_id: -1,
      onset_token_text: "",
      pred_pos_in_full: -1,
      predicted_answer: "",
      is_correct: undefined,
      prompt_tokens: 1,
      completion_tokens: 10,
      rule: "corrected",
      bt_other_rule: r.bt,
      triggers_per_1k: 0,
      trigger_counts: {},
      reasoning_closed: true,
      finish_reason: "eos",
      gold: 1,
      answer_status: "unknown",
      answer_method: "none",
      correct_reference: undefined,
      repetition_4gram: 0,
      distinct_2: 1,
      digit_free: false,
      answer_region: "",
      final_answer: undefined,
      onset_type: "",
      onset_rule: "",
      onset_evidence: "",
      candidate_answer: undefined,
      trajectory: "",
    })),
    { bootstrap: 50 },
  );
  const b = valueCI(s.bt_rate);
  assert.equal(b.value, 7 / 20);
  assert.equal(b.lower, s.bt_rate.ci.lower, "rates: the cluster-adjusted Wilson interval by default");
  assert.equal(valueCI(s.bt_rate, "bootstrap").lower, s.bt_rate.bootstrap.lower);
  assert.equal(valueCI(s.mean_length).lower, s.mean_length.bootstrap.lower, "means: the bootstrap");
  assert.equal(valueCI(s.bt_rate, "wilson").upper, s.bt_rate.wilson.upper);
  assert.throws(() => valueCI(s.mean_length, "wilson"), /no Wilson interval/);
});

Deno.test("placeLabels: coinciding points share a label, no two label boxes overlap, all inside the bounds", () => {
  // the intervention_tradeoff case: many settings at (0 %, 1.25 %) and (50 %, 1.25 %), as in the organism run
  const pts = [
    { text: "baseline", px: 300, py: 200 },
    { text: "selected_attn", px: 296, py: 200 },
    { text: "c=0", px: 302, py: 201 },
    { text: "c=-0.5", px: 330, py: 200 },
    { text: "selected_all", px: 60, py: 200 },
    { text: "s=0.25", px: 60, py: 200 },
    { text: "s=0.5", px: 61, py: 200 },
    { text: "c=-1", px: 60, py: 396 },
  ];
  const labels = placeLabels(pts, { top: 20, bottom: 398 });
  assert.deepEqual(labels.map((l) => l.text), [
    "baseline, selected_attn, c=0",
    "c=-0.5",
    "selected_all, s=0.25, s=0.5",
    "c=-1",
  ]);
  const w = (l: { text: string }) => l.text.length * 6.6;
  for (const [i, a] of labels.entries()) {
    assert.ok(a.ly - 14 >= 20 && a.ly <= 398, `${a.text} outside the plot: ${a.ly}`);
    for (const b of labels.slice(i + 1)) {
      const apart = a.lx + w(a) + 4 <= b.lx || b.lx + w(b) + 4 <= a.lx || Math.abs(a.ly - b.ly) >= 14;
      assert.ok(apart, `"${a.text}" overlaps "${b.text}"`);
    }
  }
});

Deno.test("tradeoffScatter: a colour legend names every group", () => {
  const v = (value: number) => ({ value, lower: value, upper: value });
  const fig = tradeoffScatter([
    { label: "baseline", bt_rate: v(0.5), accuracy: v(0.1), group: "baseline" },
    { label: "s=0", bt_rate: v(0.1), accuracy: v(0.1), group: "ablation" },
    { label: "c=1", bt_rate: v(0.9), accuracy: v(0), group: "steering (meandiff)" },
  ]);
  for (const g of ["baseline", "ablation", "steering (meandiff)"]) {
    assert.match(fig.svg, new RegExp(`<circle [^>]*/><text [^>]*>${g.replace(/[()]/g, "\\$&")}</text>`));
  }
});

Deno.test("tradeoffScatter: degenerate points are faded, labelled and explained; others are not", () => {
  const v = (value: number) => ({ value, lower: Math.max(0, value - 0.1), upper: value + 0.1 });
  const data = [
    { label: "baseline", bt_rate: v(0.5), accuracy: v(0.4), group: "baseline" },
    { label: "selected_attn", bt_rate: v(0.1), accuracy: v(0.4), group: "ablation" },
    { label: "random_matched", bt_rate: v(0.3), accuracy: v(0.1), group: "ablation", degenerate: true },
  ];
  const fig = tradeoffScatter(data, {
    subtitle: "Phase-2 sweeps; bars: 95% CI (Wilson, clustered by problem)",
  });
  assert.match(fig.svg, />random_matched \(degenerate\)</);
  assert.match(fig.svg, />selected_attn</);
  assert.doesNotMatch(fig.svg, /selected_attn \(degenerate\)|baseline \(degenerate\)/);
  // the faded dot: one dot group with fill-opacity holding exactly the degenerate point
  const faded = /<g [^>]*fill-opacity="0.3" aria-label="dot">(.*?)<\/g>/.exec(fig.svg);
  assert.ok(faded, "no faded dot group");
  assert.equal((faded[1]!.match(/<circle /g) ?? []).length, 1);
  assert.match(fig.svg, /<g stroke-opacity="0.25" aria-label="rule">/, "its CI bars are faded too");
  // the caller's subtitle is kept, and a second line says what faded means
  const lines = [...fig.svg.matchAll(/<text x="12" y="\d+" font-size="12" fill="#555"[^>]*>([^<]+)</g)].map((
    m,
  ) => m[1]!);
  assert.equal(lines[0], "Phase-2 sweeps; bars: 95% CI (Wilson, clustered by problem)");
  assert.match(lines.slice(1).join(" "), /\(degenerate\).*the text broke.*do not measure backtracking/);
  // a long label near the right edge starts left of its point instead of running off the figure
  const right = tradeoffScatter([...data, { ...data[2]!, label: "steer c=8", bt_rate: v(0.95) }]);
  const [, x, text] = /<text transform="translate\(([\d.]+),[^)]*\)">(steer c=8 \(degenerate\))</.exec(
    right.svg,
  )!;
  assert.ok(Number(x) + 6.6 * text!.length <= right.width, `"${text}" runs off the right edge at x ${x}`);
  // without a degenerate point: no faded marks, no extra line
  const clean = tradeoffScatter(data.slice(0, 2), { subtitle: "x" });
  assert.doesNotMatch(clean.svg, /fill-opacity="0.3"|degenerate/);
});

/**
 * Naive reference for {@linkcode dodgeLabels} without a range: the least-squares placement of sorted labels
 * with gaps ≥ g is p_i = q_i + i·g with q the isotonic (non-decreasing) regression of t_i − i·g; computed
 * here by repeatedly averaging the first adjacent violating pair's whole blocks until none is left.
 */
function naiveDodge(targets: readonly number[], gap: number): number[] {
  const order = targets.map((_, i) => i).sort((a, b) => targets[a]! - targets[b]! || a - b);
  let blocks = order.map((i, k) => ({ sum: targets[i]! - k * gap, n: 1 }));
  for (let changed = true; changed;) {
    changed = false;
    for (let k = 0; k + 1 < blocks.length; k++) {
      const a = blocks[k]!, b = blocks[k + 1]!;
      if (a.sum / a.n > b.sum / b.n + 1e-12) {
        blocks = [...blocks.slice(0, k), { sum: a.sum + b.sum, n: a.n + b.n }, ...blocks.slice(k + 2)];
        changed = true;
        break;
      }
    }
  }
  const q = blocks.flatMap((b) => Array<number>(b.n).fill(b.sum / b.n));
  const out = new Array<number>(targets.length);
  order.forEach((i, k) => (out[i] = q[k]! + k * gap));
  return out;
}

Deno.test("dodgeLabels: the least-squares placement (naive isotonic regression), gaps kept, order kept, range kept", () => {
  assert.deepEqual(dodgeLabels([100, 102, 300]), [94, 108, 300]);
  assert.deepEqual(dodgeLabels([50, 50]), [43, 57], "coinciding labels split symmetrically");
  const rng = seededRng(7);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rng() * 8);
    const t = Array.from({ length: n }, () => Math.round(rng() * 120));
    const got = dodgeLabels(t, 14);
    const want = naiveDodge(t, 14);
    got.forEach((g, i) =>
      assert.ok(Math.abs(g - want[i]!) < 1e-9, `trial ${trial}: ${t} → ${got} vs ${want}`)
    );
    const range = [0, 200] as const;
    const clamped = dodgeLabels(t, 14, range);
    const order = t.map((_, i) => i).sort((a, b) => t[a]! - t[b]! || a - b);
    for (let k = 0; k < n; k++) {
      const p = clamped[order[k]!]!;
      assert.ok(p >= range[0] - 1e-9 && p <= range[1] + 1e-9, `trial ${trial}: ${p} outside ${range}`);
      if (k > 0) {
        assert.ok(p - clamped[order[k - 1]!]! >= 14 - 1e-9, `trial ${trial}: gap < 14 in ${clamped}`);
      }
    }
  }
  assert.throws(() => dodgeLabels([1, NaN]), /target 1 is not finite/);
});

Deno.test("endLabelMarks: lines ending at the same value get labels at least a line apart", () => {
  const marks = endLabelMarks(
    [
      { x: 1, y: 0, text: "attn", color: "red" },
      { x: 1, y: 0, text: "mlp", color: "blue" },
      { x: 1, y: -1, text: "far", color: "green" },
    ],
    { domain: [-1.4, 0.2], height: 380, marginTop: 20, marginBottom: 44 },
  );
  const dy = marks.map((m) => (m as unknown as { dy: number }).dy);
  assert.ok(Math.abs(dy[0]! - dy[1]!) >= 14 - 1e-9, `labels 1 px apart: ${dy}`);
  assert.equal(dy[2], 0, "a label with room stays at its point");
});

Deno.test("btRateByCondition: degenerate conditions are faded and labelled, and the subtitle says why", () => {
  const v = (value: number) => ({ value, lower: value, upper: value });
  const fig = btRateByCondition([
    { condition: "baseline", kind: "baseline", ...v(0.5) },
    { condition: "random_ablation_0", kind: "random", ...v(0.45), n: 80, degenerate: true },
  ]);
  assert.ok(fig.svg.includes(">45.0% (n=80)  DEGENERATE<"), "the degenerate label");
  assert.match(fig.svg, /faded, DEGENERATE: the text broke/);
  assert.match(fig.svg, /fill-opacity="0.3"/);
  const clean = btRateByCondition([{ condition: "baseline", kind: "baseline", ...v(0.5) }]);
  assert.doesNotMatch(clean.svg, /DEGENERATE/);
});
