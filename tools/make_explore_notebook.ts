/**
 * Generator of the exploration notebook `notebooks/explore.ipynb` (not part of the numbered pipeline
 * series): the researcher's loop on one trace — load a model, sample one trace of one question, mark its
 * trigger onsets, a token × layer logit-lens heat map around the onset, regenerate with components ablated
 * under the same seed (side by side), patch one activation, one head's attention pattern and single-head
 * ablations. Every cell uses only the entry modules `lib/mod.ts` and `experiments/backtracking/mod.ts`, so
 * the notebook documents the public API by example. `tests/notebook/explore_test.ts` checks drift,
 * type-checks it and executes it on the organism.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run tools/make_explore_notebook.ts          # (re)write it
 * deno run --allow-read --allow-run tools/make_explore_notebook.ts --check                # exit 1 when stale
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CellSpec,
  formatNotebook,
  formatNotebookText,
  notebookFromSpecs,
} from "../lib/notebook/nbformat.ts";

/** The notebooks folder of the project. */
export const NOTEBOOKS_DIR: string = fileURLToPath(new URL("../notebooks/", import.meta.url));

/** The notebook's file name. */
export const EXPLORE_FILE = "explore.ipynb";

const CELLS: readonly CellSpec[] = [
  {
    md: `
# Explore one trace

The researcher's loop that the pipeline notebooks (00–15) do not cover: one model, one question, one trace,
and interventions you can change and re-run in seconds. Every cell uses the public API, from two entry
modules: the toolkit \`lib/mod.ts\` (load, forward with hooks, generate, figures, display) and the
experiment \`experiments/backtracking/mod.ts\` (config, prompts, trigger detection).

**Parameters** (environment variables of the kernel; defaults in brackets): \`BT_MODEL\` [the config's model:
the model organism] a hub id (e.g. \`deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B\`) or a local checkpoint folder;
\`BT_CONFIG\` [\`configs/organism.yaml\`] prompt, sampling and trigger lists; \`BT_EXAMPLE\` [0] which seeded
synthetic problem, or \`BT_QUESTION\` a question of your own; \`BT_ABLATE\` [the organism's planted components;
for another model the last layer's MLP] comma-separated hooks to zero, e.g. \`blocks.20.hook_mlp_out\`;
\`BT_HEAD\` [the organism's planted attention head; else \`0.0\`] \`layer.head\` to inspect.`,
  },
  {
    code: [
      `import {`,
      `  type Intervention, loadModel, logSoftmax, type OrganismManifest, parseHookName, showFigure, showMarkdown,`,
      `  type ShownToken, showTable, showTokenDiff, showTokens, tokenBars, tokenLayerHeatmap,`,
      `} from "../lib/mod.ts";`,
      `import { type ExploreTrace, loadConfig, notebookParams, sampleTrace, syntheticProblems } from "../experiments/backtracking/mod.ts";`,
    ].join("\n"),
    hidden: true,
  },
  { md: `## Load the model` },
  {
    code: `
const params = notebookParams();
const env = Deno.env.toObject();
const config = await loadConfig(params.configPath);
const source = env.BT_MODEL ||
  (config.model.source === "organism" ? { organism: { ...config.model.organism } } : config.model.source);
const loaded = await loadModel(source, { device: config.model.device, hashWeights: false });
const { model, tokenizer } = loaded;
const cfg = model.config;
const manifest = loaded.organism as OrganismManifest | undefined;
const modelTable = await showTable([{
  model: loaded.modelId, from: loaded.source, layers: cfg.numLayers, heads: cfg.numHeads, d_model: cfg.hiddenSize,
  vocab: cfg.vocabSize, device: model.device.used,
}], { title: "Model" });`,
  },
  {
    md: `
## One question, one trace

\`sampleTrace\` builds the prompt the pipeline builds, samples with the config's temperature, top-p and seed
(each sample has its own random stream, keyed by seed, example and sample id) and runs the config's trigger
detection. It tries sample ids 0–7 and keeps the first trace with a trigger.`,
  },
  {
    code: `
const question = env.BT_QUESTION || syntheticProblems(Number(env.BT_EXAMPLE ?? 0) + 1, config.dataset.seed).at(-1)!.question;
const trace: ExploreTrace = await sampleTrace(config, loaded, question, { sampleIds: [0, 1, 2, 3, 4, 5, 6, 7] });
const onset = trace.detection.onset;
if (!onset) throw new Error("No trigger in samples 0-7 of this question: set BT_EXAMPLE or BT_QUESTION to another one");
const marked = (t: ExploreTrace): ShownToken[] =>
  t.tokenTexts.map((text, i) => {
    const m = t.matches.find((x) => x.token_index === i);
    return m ? { text, mark: \`onset of "\${m.trigger}"\` } : { text };
  });
await showMarkdown(\`**Question.** \${question}\\n\\nSample \${trace.sampleId}: \${trace.completionIds.length} tokens \` +
  \`(finish: \${trace.finishReason}), \${trace.matches.length} trigger(s); the first, "\${onset.trigger}", is completion \` +
  \`token \${onset.token_index} (position \${onset.token_index_in_full}), predicted at position \${onset.pred_pos}.\`);
await showTokens(marked(trace));`,
  },
  {
    md: `
## Logit lens of the trigger around the onset

One forward pass over the trace with \`capture.positions\` around the pre-onset position and
\`capture.lensTokenIds\` = the onset token: the log-probability the model would give it if it stopped at each
layer (layer 0 = the embedding output, the last = the model's own prediction).`,
  },
  {
    code: `
const full = [...trace.promptIds, ...trace.completionIds];
const texts = tokenizer.decodeEach(full);
const triggerId = onset.token_id!;
const lo = Math.max(trace.promptIds.length, onset.pred_pos - 9), hi = Math.min(full.length - 1, onset.pred_pos + 3);
const window = Array.from({ length: hi - lo + 1 }, (_, k) => lo + k);
const lens = await model.forward([full], {
  logits: "none",
  capture: { positions: [window], lensTokenIds: [window.map(() => [triggerId])] },
});
const heat = lens.captures!.lens!.flatMap((perRow, layer) =>
  window.map((position, k) => ({ position, token: JSON.stringify(texts[position]), layer, value: perRow[0]![k]![0]!.logprob }))
);
await showFigure(tokenLayerHeatmap(heat, {
  valueLabel: \`log P(\${JSON.stringify(texts[onset.token_index_in_full])})\`,
  markPosition: onset.pred_pos,
  title: "Logit lens of the onset token, by token and layer",
}));`,
  },
  {
    md: `
## Ablate components and regenerate with the same seed

The same sample id, so the same random stream: the two traces are identical until the intervention changes
a token, and every difference after that is the intervention's. \`scale 0\` on a component's output is
zero-ablation; steering is an \`add\` on \`hook_resid_pre\`, e.g.
\`{ hook: "blocks.2.hook_resid_pre", op: "add", vector: manifest.feature_directions.wait, coef: -4 }\`.`,
  },
  {
    code: `
const ablate: Intervention[] = (env.BT_ABLATE
  ? env.BT_ABLATE.split(",").map((h) => h.trim())
  : manifest
  ? [...new Set(manifest.planted.map((c) => c.hook))]
  : [\`blocks.\${cfg.numLayers - 1}.hook_mlp_out\`]).map((hook) => ({ hook, op: "scale", value: 0 } as Intervention));
const ablated = await sampleTrace(config, loaded, question, { sampleIds: [trace.sampleId], interventions: ablate });
const shared = await showTokenDiff(marked(trace), marked(ablated), [
  "clean",
  \`ablated: \${ablate.map((i) => i.hook).join(", ")}\`,
]);
const diffTable = await showTable([
  { trace: "clean", tokens: trace.completionIds.length, triggers: trace.matches.length, finish: trace.finishReason },
  { trace: "ablated", tokens: ablated.completionIds.length, triggers: ablated.matches.length, finish: ablated.finishReason },
], { title: \`Same seed, sample \${trace.sampleId}: identical for the first \${shared} completion tokens\` });`,
  },
  {
    md: `
## Patch one activation

On the prefix up to the pre-onset position: P(onset token) clean; with each ablated component zeroed at every
position; and the one that lowers it most zeroed everywhere except the pre-onset position, where its clean
output is patched back (\`scale 0\` then \`add\` the captured vector at that position only: the engine's
activation patching). Recovering the clean value says the component acts at that position.`,
  },
  {
    code: `
const prefix = full.slice(0, onset.pred_pos + 1);
const logP = (r: { logits: Float32Array[][] }) => logSoftmax(r.logits[0]![0]!)[triggerId]!;
const clean = await model.forward([prefix], { capture: { positions: [[onset.pred_pos]] } });
// the ablated component whose zeroing lowers the onset token most is the one to patch
const zeroedBy = [];
for (const { hook } of ablate) {
  // (void: a cell whose last statement is a declaration would display push's return value)
  void zeroedBy.push({ hook, result: await model.forward([prefix], { interventions: [{ hook, op: "scale", value: 0 }] }) });
}
const { hook: site, result: zeroed } = zeroedBy.reduce((a, b) => (logP(b.result) < logP(a.result) ? b : a));
const parsed = parseHookName(site, cfg.numLayers) as { layer: number; kind: string };
const caps = clean.captures!;
const cleanVec = (site.endsWith("hook_mlp_out") ? caps.mlpOut : site.endsWith("hook_attn_out") ? caps.attnOut : caps.resid)[parsed.layer]![0]![0]!;
const patched = await model.forward([prefix], {
  interventions: [
    { hook: site, op: "scale", value: 0 },
    { hook: site, op: "add", vector: cleanVec, positions: [[onset.pred_pos]] },
  ],
});
const patchTable = await showTable([
  { run: "clean", log_p_onset: logP(clean) },
  ...zeroedBy.map((z) => ({ run: \`\${z.hook} zeroed everywhere\`, log_p_onset: logP(z.result) })),
  { run: \`zeroed, clean value patched in at position \${onset.pred_pos}\`, log_p_onset: logP(patched) },
], { title: \`log P(\${JSON.stringify(texts[onset.token_index_in_full])}) at the pre-onset position\` });`,
  },
  {
    md: `
## One head: its attention pattern and a single-head ablation

\`capture.heads\` returns \`blocks.{l}.attn.hook_pattern\` at the capture positions as queries (here the
pre-onset position) over every earlier key; \`scale 0\` on \`blocks.{l}.attn.hook_z\` with \`head\` ablates one
head's output before \`o_proj\`.`,
  },
  {
    code: `
// the planted head that writes this onset's trigger (e.g. " Actually"), else the first planted head
const isHead = (c: { component: string; head?: number }) => c.component === "attn" && c.head !== undefined;
const plantedHead = manifest?.planted.find((c) => isHead(c) && c.promotes.includes(texts[onset.token_index_in_full]!)) ??
  manifest?.planted.find(isHead);
const [hl, hh] = env.BT_HEAD ? env.BT_HEAD.split(".").map(Number) as [number, number] : plantedHead ? [plantedHead.layer, plantedHead.head!] : [0, 0];
const withHeads = await model.forward([prefix], { logits: "none", capture: { positions: [[onset.pred_pos]], heads: true } });
const n = prefix.length;
const weights = withHeads.captures!.heads!.pattern[hl]![0]!.subarray(hh * n, (hh + 1) * n);
// the keys holding at least 1% of the attention (at most 16; at least the largest)
const ranked = [...weights.keys()].sort((a, b) => weights[b]! - weights[a]!);
const top = ranked.filter((k, i) => i === 0 || (i < 16 && weights[k]! >= 0.01));
const short = (t: string) => (t.length > 14 ? t.slice(0, 13) + "…" : t);
await showFigure(tokenBars(top.map((position) => ({
  position,
  token: short(JSON.stringify(texts[position])),
  value: weights[position]!,
  highlight: position === top[0],
})), {
  title: \`Attention of L\${hl}H\${hh} from position \${onset.pred_pos} (\${JSON.stringify(texts[onset.pred_pos])}): the keys holding ≥ 1% of it\`,
  valueLabel: "attention weight",
  highlightLabel: "largest key",
  domain: [0, 1],
}));`,
  },
  {
    code: `
const base = logP(clean);
const headRows = [];
for (let h = 0; h < cfg.numHeads; h++) {
  const r = await model.forward([prefix], { interventions: [{ hook: \`blocks.\${hl}.attn.hook_z\`, op: "scale", value: 0, head: h }] });
  void headRows.push({ head: \`L\${hl}H\${h}\`, delta_log_p_onset: logP(r) - base });
}
const layerOff = await model.forward([prefix], { interventions: [{ hook: \`blocks.\${hl}.hook_attn_out\`, op: "scale", value: 0 }] });
void headRows.push({ head: \`L\${hl} (whole layer)\`, delta_log_p_onset: logP(layerOff) - base });
const headTable = await showTable(headRows, { title: \`Δ log P(onset token) when one head of layer \${hl} is zeroed\` });`,
  },
  { md: `## Reading` },
  {
    code: `
const strongest = headRows.slice(0, -1).reduce((a, b) => (b.delta_log_p_onset < a.delta_log_p_onset ? b : a));
await showMarkdown(
  \`The onset token "\${onset.trigger}" has log-probability \${base.toFixed(2)} at the pre-onset position. Zeroing \` +
    \`\\\`\${site}\\\` everywhere moves it to \${logP(zeroed).toFixed(2)}; restoring its clean output at that position \` +
    \`alone gives \${logP(patched).toFixed(2)}. With \${ablate.length} component(s) ablated the same sample has \` +
    \`\${ablated.matches.length} trigger(s) instead of \${trace.matches.length}. Head L\${hl}H\${hh} puts \` +
    \`\${(100 * weights[top[0]!]!).toFixed(0)}% of its attention on position \${top[0]} (\${JSON.stringify(texts[top[0]!])}); \` +
    (Math.abs(strongest.delta_log_p_onset) < 0.005
      ? \`zeroing any single head of layer \${hl} leaves the onset log-probability unchanged (|Δ| < 0.005).\`
      : \`of layer \${hl}'s heads, zeroing \${strongest.head} changes the onset log-probability most \` +
        \`(\${strongest.delta_log_p_onset.toFixed(2)}).\`),
);`,
  },
];

const denoFmt = (text: string, file: string) =>
  formatNotebookText(text, file, fileURLToPath(new URL("../", import.meta.url)));

/** The exploration notebook as formatted text. */
export async function generateExploreNotebook(): Promise<string> {
  return await denoFmt(formatNotebook(notebookFromSpecs(EXPLORE_FILE, CELLS)), EXPLORE_FILE);
}

if (import.meta.main) {
  const path = join(NOTEBOOKS_DIR, EXPLORE_FILE);
  const text = await generateExploreNotebook();
  if (Deno.args.includes("--check")) {
    if ((await Deno.readTextFile(path).catch(() => undefined)) !== text) {
      console.error(`Stale ${path} (run tools/make_explore_notebook.ts)`);
      Deno.exit(1);
    }
    console.log("explore notebook is up to date");
  } else {
    await Deno.writeTextFile(path, text);
    console.log(`wrote ${path}`);
  }
}
