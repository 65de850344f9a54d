/**
 * Parity of the compiled ONNX engine with the independent float64 forward pass in
 * tests/naive_forward.ts, on tiny random checkpoints written in Hugging Face format.
 */
import assert from "node:assert/strict";
import { assertClose, worstDiff } from "../_close.ts";
import { type EngineRuntime, HookedModel } from "../../lib/engine/hooked_model.ts";
import { joinCaches, selectCacheRows } from "../../lib/engine/ort/native_cache.ts";
import type { Intervention } from "../../lib/engine/hooks.ts";
import { type RandomCheckpointOptions, writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import { loadNaiveWeights, naiveForward, naiveLens, type NaiveWeights } from "../naive_forward.ts";

const TOL = 1e-4;

const SHAPES: Record<string, RandomCheckpointOptions> = {
  "qwen2 tied, GQA 6q/2kv, hidden 48": {
    modelType: "qwen2",
    hiddenSize: 48,
    numLayers: 3,
    numHeads: 6,
    numKvHeads: 2,
    intermediateSize: 72,
    vocabSize: 101,
    tieWordEmbeddings: true,
    seed: 11,
  },
  "qwen2 untied, bf16, 2 shards": {
    modelType: "qwen2",
    hiddenSize: 40,
    numLayers: 2,
    numHeads: 5,
    numKvHeads: 5,
    intermediateSize: 56,
    vocabSize: 89,
    tieWordEmbeddings: false,
    dtype: "BF16",
    shards: 2,
    seed: 12,
  },
  "llama, llama3 rope, head_dim 12 != hidden/heads, fp16": {
    modelType: "llama",
    hiddenSize: 40,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 12,
    intermediateSize: 64,
    vocabSize: 97,
    dtype: "F16",
    ropeTheta: 500000,
    ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
    seed: 13,
  },
};

function rowsFor(vocab: number): number[][] {
  return [
    [3, 17, 42, 5, 9, 60, 1],
    [8, 2, 77],
    [50, 51, 52, 53, 11],
  ].map((r) => r.map((t) => t % vocab));
}

// Every scenario runs on both runtimes: onnxruntime-node (JS cache) and the C API (native cache).
const RUNTIMES: readonly EngineRuntime[] = ["node", "capi"];
const CASES = Object.entries(SHAPES).flatMap(([label, shape]) =>
  RUNTIMES.map((rt) => [label, shape, rt] as const)
);

for (const [label, shape, runtime] of CASES) {
  Deno.test(`engine matches the naive forward pass: ${label} (runtime ${runtime})`, async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "bt-engine-" });
    let model: HookedModel | undefined;
    try {
      await writeRandomCheckpoint(dir, shape);
      const naive: NaiveWeights = await loadNaiveWeights(dir);
      model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime });
      const m = model;
      const rows = rowsFor(shape.vocabSize);
      const L = shape.numLayers;

      await t.step("all-position logits of a left-padded batch", async () => {
        const ref = naiveForward(naive, rows);
        const out = await m.forward(rows, { logits: "all" });
        rows.forEach((row, b) => {
          assert.deepEqual(out.logitPositions[b], row.map((_, i) => i));
          row.forEach((_, p) =>
            assertClose(out.logits[b]![p]!, ref.logits[b]![p]!, TOL, `row ${b} pos ${p}`)
          );
        });
        const last = await m.forward(rows);
        rows.forEach((row, b) =>
          assertClose(last.logits[b]![0]!, ref.logits[b]![row.length - 1]!, TOL, `last logits row ${b}`)
        );
      });

      await t.step("prefill then cached decode, rows of different lengths", async () => {
        const ref = naiveForward(naive, rows);
        const split = [3, 1, 2];
        let res = await m.forward(rows.map((r, b) => r.slice(0, split[b])), { returnCache: true });
        rows.forEach((_, b) =>
          assertClose(res.logits[b]![0]!, ref.logits[b]![split[b]! - 1]!, TOL, `prefill ${b}`)
        );
        for (let step = 0; step < 2; step++) {
          const next = rows.map((r, b) => [r[split[b]! + step]!]);
          res = await m.forward(next, { cache: res.cache!, returnCache: true });
          rows.forEach((_, b) => {
            assert.deepEqual(res.logitPositions[b], [split[b]! + step]);
            assertClose(
              res.logits[b]![0]!,
              ref.logits[b]![split[b]! + step]!,
              TOL,
              `decode ${step} row ${b}`,
            );
          });
        }
        // Rows leave the batch (row 1 finishes), the others continue from their cache.
        const kept = await selectCacheRows(res.cache!, [2, 0]);
        const after = await m.forward([[rows[2]![split[2]! + 2]!], [rows[0]![split[0]! + 2]!]], {
          cache: kept,
        });
        assertClose(after.logits[0]![0]!, ref.logits[2]![split[2]! + 2]!, TOL, "row 2 after selectRows");
        assertClose(after.logits[1]![0]!, ref.logits[0]![split[0]! + 2]!, TOL, "row 0 after selectRows");
      });

      await t.step("a new row joins a running batch (cache concat)", async () => {
        const ref = naiveForward(naive, rows);
        const a = await m.forward([rows[0]!.slice(0, 5)], { returnCache: true });
        const b = await m.forward([rows[1]!.slice(0, 2)], { returnCache: true });
        const joined = await joinCaches(a.cache!, b.cache!);
        const out = await m.forward([[rows[0]![5]!], [rows[1]![2]!]], { cache: joined });
        assertClose(out.logits[0]![0]!, ref.logits[0]![5]!, TOL, "joined row 0");
        assertClose(out.logits[1]![0]!, ref.logits[1]![2]!, TOL, "joined row 1");
      });

      const H = shape.hiddenSize;
      const steer = Array.from({ length: H }, (_, i) => Math.sin(i * 0.7) * 0.8);
      const interventions: Intervention[] = [
        { hook: `blocks.${L - 1}.hook_attn_out`, op: "scale", value: 0.5 },
        { hook: "blocks.0.hook_mlp_out", op: "scale", value: 0, positions: [[2, 4], [], [0, 1, 2, 3, 4]] },
        { hook: "blocks.1.hook_attn_out", op: "scale", value: 0, positions: { from: [5, 1, 3] } },
        {
          hook: `blocks.${L - 1}.hook_resid_pre`,
          op: "add",
          vector: steer,
          coef: 1.5,
          positions: { from: [3, 0, 4] },
        },
      ];

      await t.step("every hook kind: scale (all / per-row / from) and steering", async () => {
        const ref = naiveForward(naive, rows, { interventions });
        const clean = naiveForward(naive, rows);
        const out = await m.forward(rows, { logits: "all", interventions });
        rows.forEach((row, b) =>
          row.forEach((_, p) =>
            assertClose(out.logits[b]![p]!, ref.logits[b]![p]!, TOL, `hooked row ${b} pos ${p}`)
          )
        );
        // The interventions must actually change something, or this test could not fail.
        const moved = worstDiff(ref.logits[0]![6]!, clean.logits[0]![6]!).diff;
        assert.ok(moved > 1e-2, `interventions changed logits by only ${moved}`);
      });

      await t.step("interventions during cached decode use absolute positions", async () => {
        const ref = naiveForward(naive, rows, { interventions });
        let res = await m.forward(rows.map((r) => r.slice(0, 2)), { returnCache: true, interventions });
        res = await m.forward(rows.map((r) => [r[2]!]), {
          cache: res.cache!,
          returnCache: true,
          interventions,
        });
        rows.forEach((_, b) =>
          assertClose(res.logits[b]![0]!, ref.logits[b]![2]!, TOL, `decode p=2 row ${b}`)
        );
        // Row 1 (3 tokens) is done; rows 0 and 2 go on. Their positions-per-row lists now index the
        // remaining rows, so the per-row interventions are re-stated for the new batch order.
        const remap = (iv: Intervention): Intervention => {
          const pos = iv.positions;
          if (pos === undefined || pos === "all") return iv;
          if ("from" in pos) return { ...iv, positions: { from: [pos.from[0]!, pos.from[2]!] } };
          const lists = pos as readonly (readonly number[])[];
          return { ...iv, positions: [lists[0]!, lists[2]!] };
        };
        let cache = await selectCacheRows(res.cache!, [0, 2]);
        for (const p of [3, 4]) {
          res = await m.forward([[rows[0]![p]!], [rows[2]![p]!]], {
            cache,
            returnCache: true,
            interventions: interventions.map(remap),
          });
          cache = res.cache!;
          assertClose(res.logits[0]![0]!, ref.logits[0]![p]!, TOL, `decode p=${p} row 0`);
          assertClose(res.logits[1]![0]!, ref.logits[2]![p]!, TOL, `decode p=${p} row 2`);
        }
      });

      await t.step("patching: scale 0 + add on component outputs, per-row vectors", async () => {
        // Replace block 0's attention output at one position per row by a donor vector, and add a
        // per-row vector to the last MLP output and a per-row steering vector to the residual.
        const donors = rows.map((_, b) => Array.from({ length: H }, (_, i) => Math.cos(i * 0.3 + b)));
        const patch: Intervention[] = [
          { hook: "blocks.0.hook_attn_out", op: "scale", value: 0, positions: [[2], [1], [3]] },
          { hook: "blocks.0.hook_attn_out", op: "add", vector: donors, positions: [[2], [1], [3]] },
          {
            hook: `blocks.${L - 1}.hook_mlp_out`,
            op: "add",
            vector: donors.map((d) => d.map((x) => -x)),
            coef: 0.5,
          },
          {
            hook: "blocks.1.hook_resid_pre",
            op: "add",
            vector: donors.slice().reverse(),
            positions: { from: [1, 1, 1] },
          },
        ];
        const ref = naiveForward(naive, rows, { interventions: patch });
        const out = await m.forward(rows, { logits: "all", interventions: patch });
        rows.forEach((row, b) =>
          row.forEach((_, p) =>
            assertClose(out.logits[b]![p]!, ref.logits[b]![p]!, TOL, `patched row ${b} pos ${p}`)
          )
        );
        // The patched attention output equals the donor exactly where it was replaced.
        const cap = await m.forward(rows, { interventions: patch, capture: { positions: [[2], [1], [3]] } });
        rows.forEach((_, b) =>
          assertClose(cap.captures!.attnOut[0]![b]![0]!, donors[b]!, 1e-5, `donor row ${b}`)
        );
        // Component adds need the analysis graph; the generation graph refuses them clearly.
        await assert.rejects(m.forward(rows, { interventions: patch, variant: "hooked" }), /analysis/);
      });

      await t.step("neutral hooks equal the graph compiled without hooks", async () => {
        const plain = await m.forward(rows, { logits: "all", variant: "plain" });
        const neutral = await m.forward(rows, {
          logits: "all",
          interventions: [
            { hook: "blocks.0.hook_attn_out", op: "scale", value: 1 },
            { hook: "blocks.1.hook_resid_pre", op: "add", vector: steer, coef: 0 },
          ],
        });
        rows.forEach((row, b) =>
          row.forEach((_, p) =>
            assertClose(neutral.logits[b]![p]!, plain.logits[b]![p]!, 1e-6, `neutral ${b}/${p}`)
          )
        );
      });

      await t.step("captures: residuals, component outputs and the logit lens", async () => {
        const positions = [[0, 6], [2], [1, 4]];
        const lensIds = positions.map((ps, b) => ps.map((p) => [rows[b]![p]!, 7 % shape.vocabSize, 0]));
        const lensAll = rows.map((row, b) => row.map((_, p) => lensIds[b]![positions[b]!.indexOf(p)] ?? [0]));
        const ref = naiveForward(naive, rows, { interventions, lensTokenIds: lensAll });
        const out = await m.forward(rows, {
          logits: "all",
          interventions,
          capture: { positions, lensTokenIds: lensIds },
        });
        const cap = out.captures!;
        positions.forEach((ps, b) =>
          ps.forEach((p, k) => {
            for (let l = 0; l <= L; l++) {
              assertClose(
                cap.resid[l]![b]![k]!,
                ref.resid[l]![b]![p]!,
                TOL,
                `resid l=${l} row ${b} pos ${p}`,
              );
              const lens = cap.lens![l]![b]![k]!;
              const want = naiveLens(naive, ref.resid[l]![b]![p]!, lensIds[b]![k]!);
              lens.forEach((v, j) => {
                assert.ok(
                  Math.abs(v.logit - want[j]!.logit) <= TOL,
                  `lens logit l=${l} b=${b} p=${p} id#${j}`,
                );
                assert.ok(Math.abs(v.logprob - want[j]!.logprob) <= TOL, `lens logprob l=${l} b=${b} p=${p}`);
                assert.equal(v.rank, want[j]!.rank, `lens rank l=${l} b=${b} p=${p} id#${j}`);
              });
            }
            for (let l = 0; l < L; l++) {
              assertClose(cap.attnOut[l]![b]![k]!, ref.attnOut[l]![b]![p]!, TOL, `attn_out l=${l} ${b}/${p}`);
              assertClose(cap.mlpOut[l]![b]![k]!, ref.mlpOut[l]![b]![p]!, TOL, `mlp_out l=${l} ${b}/${p}`);
            }
            // The last lens layer is the model's own output.
            lensIds[b]![k]!.forEach((id, j) => {
              const d = Math.abs(cap.lens![L]![b]![k]![j]!.logit - out.logits[b]![p]![id]!);
              assert.ok(d <= 1e-6, `last lens layer differs from logits by ${d}`);
            });
          })
        );
      });
    } finally {
      await model?.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("forward rejects bad input with clear errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-engine-" });
  const model = await (async () => {
    await writeRandomCheckpoint(dir, SHAPES["qwen2 tied, GQA 6q/2kv, hidden 48"]!);
    return HookedModel.load(dir, { cacheDir: `${dir}/.graphs` });
  })();
  try {
    await assert.rejects(model.forward([]), /at least one row/);
    await assert.rejects(model.forward([[1, 500]]), /token id 500 at row 0, index 1/);
    await assert.rejects(
      model.forward([[1, 2]], { interventions: [{ hook: "blocks.9.hook_mlp_out", op: "scale", value: 0 }] }),
      /Unknown hook "blocks\.9\.hook_mlp_out".*did you mean/,
    );
    await assert.rejects(
      model.forward([[1, 2]], {
        interventions: [{ hook: "blocks.0.hook_resid_pre", op: "scale", value: 0 }],
      }),
      /hook_attn_out or hook_mlp_out/,
    );
    await assert.rejects(
      model.forward([[1, 2]], {
        interventions: [{ hook: "blocks.0.hook_resid_pre", op: "add", vector: [1, 2] }],
      }),
      /length 2; expected 48/,
    );
    await assert.rejects(model.forward([[1, 2]], { logits: [[5]] }), /Position 5 of row 0/);
  } finally {
    await model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("device selection reports what it got and why", async () => {
  const { pickDevice } = await import("../../lib/engine/hooked_model.ts");
  assert.deepEqual(pickDevice("cpu"), { requested: "cpu", used: "cpu", reason: "CPU requested" });
  const missing = () => ({
    ok: false,
    checks: [
      { name: "provider library libonnxruntime_providers_cuda.so", ok: false, detail: "not found" },
      { name: "cuDNN 9 (libcudnn.so.9)", ok: false, detail: "cannot open" },
      { name: "CUDA 13 runtime (libcudart.so.13)", ok: true, detail: "loads" },
    ],
    message: "CUDA is not usable here; missing: provider library …; cuDNN 9 …",
  });
  // `cuda` refuses with the preflight's message; `auto` falls back and names what is missing.
  assert.throws(
    () => pickDevice("cuda", missing),
    /device "cuda" requested: CUDA is not usable here; missing/,
  );
  const auto = pickDevice("auto", missing);
  assert.equal(auto.used, "cpu");
  assert.match(
    auto.reason,
    /^auto: CUDA unavailable \(missing: provider library libonnxruntime_providers_cuda\.so; cuDNN 9/,
  );
  assert.doesNotMatch(auto.reason, /libcudart/);
  const present = () => ({ ok: true, checks: [], message: "CUDA preflight passed: all" });
  assert.deepEqual(pickDevice("auto", present), {
    requested: "auto",
    used: "cuda",
    reason: "auto: CUDA preflight passed: all",
  });
});
