/**
 * The artifact modules (`experiments/backtracking/artifacts/`): each family's reader returns what its
 * writer wrote (values through the Python-convention CSV, NaN included), the generation-store index is in
 * the reference's detection order, and optional readers tell a missing file from a broken one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type LensRow, summarizeLens } from "../lib/interp/logit_lens.ts";
import type { ScanRow } from "../lib/interp/ablation_scan.ts";
import { loadConfig, parseConfig } from "../experiments/backtracking/config.ts";
import type { Run } from "../experiments/backtracking/run.ts";
import {
  ifPresent,
  importanceTable,
  listGenerationStores,
  MissingArtifactError,
  PROTOCOL_VALIDATION_FILES,
  type ProtocolValidationArtifact,
  readImportanceTable,
  readLensItems,
  readLensSummary,
  readProtocolValidation,
  readRandomAblationSpecs,
  readSelectedLayers,
  readSelection,
  SCAN_FILES,
  writeLensTables,
  writeProtocolValidation,
  writeScanTables,
} from "../experiments/backtracking/artifacts/mod.ts";
import { validateProtocols, validationVerdict } from "../experiments/backtracking/protocol_validation.ts";
import { degenerationFlags } from "../experiments/backtracking/degeneration.ts";

const ORGANISM = new URL("../configs/organism.yaml", import.meta.url);

async function tempRun(): Promise<Run> {
  const root = await Deno.makeTempDir({ prefix: "artifacts_test_" });
  return { id: "t", root, dir: join(root, "t") };
}

Deno.test("lens tables: the readers return the items and per-layer differences written", async () => {
  const run = await tempRun();
  try {
    const trace = (exampleId: number, sampleId: number) => ({
      exampleId,
      sampleId,
      tokenIds: [1, 2, 3, 4, 5],
      promptTokens: 2,
    });
    const events = [
      { ...trace(0, 0), predPos: 3, onsetTokenId: 11, trigger: "Wait" },
      { ...trace(1, 0), predPos: 2, onsetTokenId: 12, trigger: "Wait" },
    ];
    const controls = [{ ...trace(2, 1), predPos: 3, targetId: 11, matchedTo: 0 }];
    const rows = (n: number, base: number): LensRow[] =>
      Array.from({ length: n }, (_, item) =>
        [0, 1, 2].map((layer) => ({
          item,
          layer,
          logit: base + item + layer / 3,
          logprob: -(base + item) / 7 - layer,
          rank: item + layer,
          exampleId: item,
        }))).flat();
    const bt = rows(2, 1), control = rows(1, 5);
    const summary = summarizeLens(bt, control, { bootstrap: 50, seed: 1 });
    await writeLensTables(run, { summary, bt, control, events, controls });
    const items = await readLensItems(run);
    assert.equal(items.length, bt.length + control.length);
    const b = items.filter((r) => r.group === "bt");
    assert.deepEqual(
      b.map((r) => [r.example_id, r.item, r.layer, r.logprob, r.rank]),
      bt.map((r) => [
        events[r.item]!.exampleId,
        r.item,
        r.layer,
        r.logprob,
        r.rank,
      ]),
    );
    assert.deepEqual(items.filter((r) => r.group === "control").map((r) => r.target_id), [11, 11, 11]);
    const layers = await readLensSummary(run);
    assert.deepEqual(layers.map((r) => r.layer), summary.map((r) => r.layer));
    assert.deepEqual(layers.map((r) => r.diff_logprob_estimate), summary.map((r) => r.diff_logprob.estimate));
    assert.deepEqual(layers.map((r) => [r.n_bt, r.n_control]), summary.map(() => [2, 1]));
  } finally {
    await Deno.remove(run.root, { recursive: true });
  }
});

function scanRow(layer: number, component: "attn" | "mlp", mean: number, specificity: number): ScanRow {
  return {
    layer,
    component,
    n_events: 3,
    delta_logprob_mean: mean,
    delta_logprob_std: 0.5,
    delta_logprob_lower: mean - 0.25,
    delta_logprob_upper: mean + 0.25,
    delta_logit_mean: mean * 1.1,
    delta_logit_std: 0.3,
    n_controls: 3,
    control_delta_logprob_mean: 0.01,
    control_delta_logprob_lower: 0,
    control_delta_logprob_upper: 0.02,
    control_trigger_delta_logprob_mean: -0.1,
    n_pairs: 3,
    specificity_mean: specificity,
    specificity_lower: specificity - 0.5,
    specificity_upper: specificity + 0.5,
    level: 0.95,
  };
}

Deno.test("scan tables: importance rows in the reference's order, NaN kept; selection and draws", async () => {
  const run = await tempRun();
  try {
    const rows = [
      scanRow(0, "attn", -0.1, NaN),
      scanRow(1, "mlp", -2.5, -2.25),
      scanRow(1, "attn", 1 / 3, 0),
    ];
    const selected = { attn: [] as number[], mlp: [1] };
    const random = { mode: "matched" as const, seed: 7, selected, draws: [{ attn: [], mlp: [0] }] };
    await writeScanTables(run, { rows, selected, random });
    const read = await readImportanceTable(run);
    const order = importanceTable(rows).map((r) => `${r.layer}|${r.component}`);
    assert.deepEqual(read.map((r) => `${r.layer}|${r.component}`), order);
    assert.deepEqual(order, ["1|mlp", "0|attn", "1|attn"]); // ascending mean Δlogit, as the reference sorts
    const byKey = new Map(rows.map((r) => [`${r.layer}|${r.component}`, r]));
    for (const r of read) {
      const w = byKey.get(`${r.layer}|${r.component}`)!;
      assert.equal(r.delta_logprob_mean, w.delta_logprob_mean);
      assert.equal(r.delta_logprob_upper, w.delta_logprob_upper);
      assert.equal(r.n_events, 3);
      if (Number.isNaN(w.specificity_mean)) assert.ok(Number.isNaN(r.specificity_mean));
      else assert.equal(r.specificity_mean, w.specificity_mean);
    }
    assert.deepEqual(await readSelectedLayers(run), selected);
    assert.deepEqual(await readRandomAblationSpecs(run), random);
    assert.deepEqual(await readSelection(run), { selected, draws: random.draws });
  } finally {
    await Deno.remove(run.root, { recursive: true });
  }
});

Deno.test("ifPresent: a missing artifact is undefined, a broken one is an error naming the file", async () => {
  const run = await tempRun();
  try {
    assert.equal(await ifPresent(() => readSelectedLayers(run)), undefined);
    await assert.rejects(readSelectedLayers(run), (e: Error) => {
      assert.ok(e instanceof MissingArtifactError);
      assert.match(e.message, /selected_layers\.json.*run ablation-scan first/);
      return true;
    });
    await Deno.mkdir(join(run.dir, "analysis"), { recursive: true });
    await Deno.writeTextFile(join(run.dir, SCAN_FILES.selected), "{not json");
    await assert.rejects(ifPresent(() => readSelectedLayers(run)), MissingArtifactError);
  } finally {
    await Deno.remove(run.root, { recursive: true });
  }
});

Deno.test("generation stores: config variant order, then the reference's condition order; timings skipped", async () => {
  const run = await tempRun();
  try {
    const base = await loadConfig(ORGANISM);
    const config = parseConfig({
      ...structuredClone(base),
      prompting: {
        ...base.prompting,
        formatting_variants: [
          { ...base.prompting.formatting_variants[0]!, name: "zeta" },
          { ...base.prompting.formatting_variants[0]!, name: "alpha" },
        ],
      },
    }, "artifacts test");
    const files = [
      "alpha/baseline.jsonl",
      "zeta/random_ablation_10.jsonl",
      "zeta/phase2_x_s0.jsonl",
      "zeta/random_ablation_2.jsonl",
      "zeta/baseline.jsonl.timings.jsonl",
      "zeta/targeted_ablation.jsonl",
      "zeta/reference_selection_ablation.jsonl",
      "zeta/baseline.jsonl",
      "other/baseline.jsonl",
    ];
    for (const f of files) {
      await Deno.mkdir(join(run.dir, "generations", f.split("/")[0]!), { recursive: true });
      await Deno.writeTextFile(join(run.dir, "generations", f), "");
    }
    const stores = await listGenerationStores({ config, run });
    assert.deepEqual(stores.map((s) => `${s.variant}/${s.condition}`), [
      "zeta/baseline",
      "zeta/targeted_ablation",
      "zeta/random_ablation_2",
      "zeta/random_ablation_10",
      "zeta/phase2_x_s0",
      "zeta/reference_selection_ablation",
      "alpha/baseline",
      "other/baseline",
    ]);
    assert.equal(stores[0]!.path, join(run.dir, "generations", "zeta", "baseline.jsonl"));
    // Phase 1 (the events table) includes the protocol-validation condition, not Phase-2 settings.
    assert.deepEqual(
      (await listGenerationStores({ config, run }, { phase1Only: true })).map((s) =>
        `${s.variant}/${s.condition}`
      ),
      [
        "zeta/baseline",
        "zeta/targeted_ablation",
        "zeta/random_ablation_2",
        "zeta/random_ablation_10",
        "zeta/reference_selection_ablation",
        "alpha/baseline",
        "other/baseline",
      ],
    );
  } finally {
    await Deno.remove(run.root, { recursive: true });
  }
});

Deno.test("protocol validation: the reader returns what the writer wrote (NaN kept); CSV one row per protocol", async () => {
  const run = await tempRun();
  try {
    const row = (component: "attn" | "mlp", layer: number, dl: number, sp: number) => ({
      component,
      layer,
      delta_logit_mean: dl,
      specificity_mean: sp,
      specificity_lower: sp - 0.2,
      specificity_upper: sp + 0.2,
    });
    const truth = {
      planted: [{ component: "attn" as const, layer: 1 }],
      decoy: [{ component: "mlp" as const, layer: 0 }],
    };
    const v = validateProtocols([row("mlp", 0, -9, 0), row("attn", 1, -2, -1), row("attn", 0, 0, 0)], truth, {
      referenceK: 1,
    });
    const fig = (condition: string | null, eos: number) => ({
      condition,
      n: condition ? 10 : 0,
      bt_rate: condition ? 0.1 : NaN,
      bt_rate_lower: NaN,
      bt_rate_upper: NaN,
      delta_bt_rate: NaN,
      delta_bt_rate_lower: NaN,
      delta_bt_rate_upper: NaN,
      accuracy: 0,
      eos_rate: eos,
      truncation_rate: 1 - eos,
      unknown_rate: 0,
      mean_length: 10,
      digit_free_rate: 0,
      degeneration: degenerationFlags({ eos_rate: eos, truncation_rate: 1 - eos, unknown_rate: 0 }),
    });
    const a: ProtocolValidationArtifact = {
      model_description: "d",
      planted: truth.planted,
      decoy: truth.decoy,
      reference_k: 1,
      min_specificity_effect: 0.1,
      max_per_type: 1,
      variant: "v",
      baseline: fig("baseline", 1),
      ours: { selection: v.ours, ablation: fig("targeted_ablation", 1) },
      reference: { selection: v.reference, ablation: fig(null, 0) },
      expected: { ...validationVerdict(v), reference_drop_degenerate: false, ours_drop_clean: true },
    };
    await writeProtocolValidation(run, a);
    const back = await readProtocolValidation(run);
    assert.deepEqual(back, a);
    assert.ok(Number.isNaN(back.reference.ablation.bt_rate));
    assert.equal(back.reference.ablation.condition, null);
    const csv = (await Deno.readTextFile(join(run.dir, PROTOCOL_VALIDATION_FILES.csv))).trim().split("\n");
    assert.equal(csv.length, 3);
    assert.match(csv[1]!, /^reference,attn 1; mlp 0,/);
    assert.match(csv[2]!, /^ours,attn 1,1,1,False,targeted_ablation,0.1,nan,/);
    await assert.rejects(() => writeProtocolValidation(run, a), /exists/);
  } finally {
    await Deno.remove(run.root, { recursive: true });
  }
});
