/**
 * Per-head hooks of the engine (`blocks.{l}.attn.hook_z`, `hook_pattern`, `hook_result`) against the
 * independent float64 forward pass in tests/naive_forward.ts, on tiny random checkpoints.
 */
import assert from "node:assert/strict";
import { assertClose, worstDiff } from "../_close.ts";
import { HookedModel } from "../../lib/engine/hooked_model.ts";
import type { Intervention } from "../../lib/engine/hooks.ts";
import { type RandomCheckpointOptions, writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import { loadNaiveWeights, naiveForward, type NaiveWeights } from "../naive_forward.ts";

const TOL = 1e-4;

const SHAPES: Record<string, RandomCheckpointOptions> = {
  "qwen2 (q/k/v biases), GQA 6q/2kv": {
    modelType: "qwen2",
    hiddenSize: 48,
    numLayers: 3,
    numHeads: 6,
    numKvHeads: 2,
    intermediateSize: 72,
    vocabSize: 101,
    tieWordEmbeddings: true,
    seed: 21,
  },
  "llama with attention and MLP biases (o_proj bias), head_dim 12, GQA 4q/2kv": {
    modelType: "llama",
    hiddenSize: 40,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 12,
    intermediateSize: 64,
    vocabSize: 97,
    attentionBias: true,
    mlpBias: true,
    dtype: "F16",
    seed: 22,
  },
};

const ROWS = [
  [3, 17, 42, 5, 9, 60, 1],
  [8, 2, 77],
  [50, 51, 52, 53, 11],
];

for (const [label, shape] of Object.entries(SHAPES)) {
  Deno.test(`per-head hooks match the naive forward pass: ${label}`, async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "bt-heads-" });
    let model: HookedModel | undefined;
    try {
      await writeRandomCheckpoint(dir, shape);
      const naive: NaiveWeights = await loadNaiveWeights(dir);
      model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs` });
      const m = model;
      const rows = ROWS.map((r) => r.map((x) => x % shape.vocabSize));
      const { numLayers: L, numHeads: nh } = m.config;
      const D = m.config.headDim, H = m.config.hiddenSize;
      const positions = [[0, 4, 6], [2], [1, 3]];

      await t.step("patterns, z and head results at chosen positions of a left-padded batch", async () => {
        const ref = naiveForward(naive, rows);
        const out = await m.forward(rows, { capture: { positions, heads: true } });
        const heads = out.captures!.heads!;
        for (let l = 0; l < L; l++) {
          positions.forEach((ps, b) => {
            const n = rows[b]!.length;
            const pat = heads.pattern[l]![b]!;
            assert.equal(pat.length, nh * ps.length * n, `pattern shape l=${l} row ${b}`);
            ps.forEach((p, k) => {
              assertClose(heads.z[l]![b]![k]!, ref.z[l]![b]![p]!, TOL, `z l=${l} row ${b} pos ${p}`);
              for (let h = 0; h < nh; h++) {
                const got = pat.subarray((h * ps.length + k) * n, (h * ps.length + k + 1) * n);
                const want = new Float64Array(n); // keys after the query: probability 0
                want.set(ref.pattern[l]![b]![p]!.subarray(h * (p + 1), (h + 1) * (p + 1)));
                assertClose(got, want, 1e-5, `pattern l=${l} row ${b} head ${h} query ${p}`);
              }
              // attn_out = Σ_head head_result + attn_bias.
              const sum = Float64Array.from(heads.attnBias[l]!);
              const res = heads.headResult[l]![b]![k]!;
              for (let h = 0; h < nh; h++) for (let i = 0; i < H; i++) sum[i] = sum[i]! + res[h * H + i]!;
              assertClose(sum, ref.attnOut[l]![b]![p]!, TOL, `Σ head results l=${l} row ${b} pos ${p}`);
            });
          });
        }
        // The value bias is taken out of each head's result (TransformerLens's folded b_O): with biases,
        // attn_bias is not zero, so a head result differs from z_head · W_O[:, head]ᵀ.
        const biasNorm = Math.max(...heads.attnBias.map((v) => Math.max(...Array.from(v, Math.abs))));
        assert.ok(biasNorm > 1e-3, `attn_bias should carry the value/o biases, max |b| = ${biasNorm}`);
      });

      await t.step("patterns over a KV cache: keys are the row's positions 0..n-1", async () => {
        const ref = naiveForward(naive, rows);
        const split = [4, 1, 2];
        const pre = await m.forward(rows.map((r, b) => r.slice(0, split[b])), { returnCache: true });
        const rest = rows.map((r, b) => r.slice(split[b]));
        const qs = rows.map((r) => [r.length - 1]);
        const out = await m.forward(rest, { cache: pre.cache!, capture: { positions: qs, heads: true } });
        const heads = out.captures!.heads!;
        for (let l = 0; l < L; l++) {
          rows.forEach((r, b) => {
            const p = r.length - 1;
            assertClose(
              heads.pattern[l]![b]!,
              ref.pattern[l]![b]![p]!,
              1e-5,
              `cached pattern l=${l} row ${b}`,
            );
            assertClose(heads.z[l]![b]![0]!, ref.z[l]![b]![p]!, TOL, `cached z l=${l} row ${b}`);
          });
        }
      });

      await t.step("single-head ablation and per-head patching on hook_z", async () => {
        const clean = naiveForward(naive, rows);
        const ablate: Intervention[] = [{ hook: "blocks.0.attn.hook_z", op: "scale", value: 0, head: 1 }];
        const ref = naiveForward(naive, rows, { interventions: ablate });
        const out = await m.forward(rows, {
          logits: "all",
          interventions: ablate,
          capture: { positions, heads: true },
        });
        rows.forEach((row, b) =>
          row.forEach((_, p) =>
            assertClose(out.logits[b]![p]!, ref.logits[b]![p]!, TOL, `ablated logits row ${b} pos ${p}`)
          )
        );
        const moved = worstDiff(ref.logits[0]![6]!, clean.logits[0]![6]!).diff;
        assert.ok(moved > 1e-3, `ablating one head changed logits by only ${moved}`);
        // Only head 1 of layer 0 is zero; the other heads of that layer are untouched.
        const z = out.captures!.heads!.z[0]![0]![1]!;
        assert.ok(z.subarray(D, 2 * D).every((v) => v === 0), "ablated head's z is zero");
        assertClose(z.subarray(0, D), clean.z[0]![0]![4]!.subarray(0, D), TOL, "head 0 untouched");

        // Patch: per-row vectors into head nh-1 of the last layer at some positions, a scaled add on
        // every head of layer 0 from position 2 on, and a head scale at chosen positions.
        const donors = rows.map((_, b) => Array.from({ length: D }, (_, i) => Math.cos(i * 0.4 + b)));
        const all = Array.from({ length: nh * D }, (_, i) => Math.sin(i * 0.3) * 0.5);
        const patch: Intervention[] = [
          {
            hook: `blocks.${L - 1}.attn.hook_z`,
            op: "scale",
            value: 0,
            head: nh - 1,
            positions: [[3], [1], [2]],
          },
          {
            hook: `blocks.${L - 1}.attn.hook_z`,
            op: "add",
            vector: donors,
            head: nh - 1,
            positions: [[3], [1], [2]],
          },
          { hook: "blocks.0.attn.hook_z", op: "add", vector: all, coef: 0.7, positions: { from: [2, 2, 2] } },
          { hook: "blocks.1.attn.hook_z", op: "scale", value: 2.5, head: 0, positions: [[0, 5], [2], []] },
        ];
        const refP = naiveForward(naive, rows, { interventions: patch });
        const outP = await m.forward(rows, {
          logits: "all",
          interventions: patch,
          capture: { positions: [[3], [1], [2]], heads: true },
        });
        rows.forEach((row, b) => {
          row.forEach((_, p) =>
            assertClose(outP.logits[b]![p]!, refP.logits[b]![p]!, TOL, `patched logits row ${b} pos ${p}`)
          );
          const zp = outP.captures!.heads!.z[L - 1]![b]![0]!;
          assertClose(zp.subarray((nh - 1) * D), donors[b]!, 1e-6, `patched head equals donor, row ${b}`);
        });
        // Without captures, hook_z interventions pick the capture-free "head_hooks" graph (generation),
        // which also serves steering beside them, during a cached decode.
        const steer = Array.from({ length: H }, (_, i) => Math.sin(i) * 0.5);
        const gen: Intervention[] = [
          ...ablate,
          { hook: "blocks.1.hook_resid_pre", op: "add", vector: steer, positions: { from: [2, 2, 2] } },
        ];
        const refGen = naiveForward(naive, rows, { interventions: gen });
        const used: string[] = [];
        const session = m.session.bind(m);
        m.session = (v) => (used.push(v), session(v));
        const pre = await m.forward(rows.map((r) => r.slice(0, 2)), {
          interventions: gen,
          returnCache: true,
        });
        const step = await m.forward(rows.map((r) => [r[2]!]), { interventions: gen, cache: pre.cache! });
        rows.forEach((_, b) => {
          assertClose(pre.logits[b]![0]!, refGen.logits[b]![1]!, TOL, `head_hooks prefill row ${b}`);
          assertClose(step.logits[b]![0]!, refGen.logits[b]![2]!, TOL, `head_hooks decode row ${b}`);
        });
        m.session = session;
        assert.deepEqual(used, ["head_hooks", "head_hooks"]);
        await assert.rejects(
          m.forward(rows, {
            interventions: gen,
            capture: { positions: [[1], [1], [1]] },
            variant: "head_hooks",
          }),
          /capture needs/,
        );
      });

      await t.step("neutral head hooks give the plain model's logits", async () => {
        const plain = await m.forward(rows, { logits: "all", variant: "plain" });
        const neutral = await m.forward(rows, {
          logits: "all",
          interventions: [
            { hook: "blocks.0.attn.hook_z", op: "scale", value: 1, head: 0 },
            { hook: "blocks.1.attn.hook_z", op: "add", vector: new Array(D).fill(3), coef: 0, head: 1 },
          ],
          capture: { positions, heads: true },
        });
        rows.forEach((row, b) =>
          row.forEach((_, p) =>
            assertClose(neutral.logits[b]![p]!, plain.logits[b]![p]!, 0, `neutral ${b}/${p}`)
          )
        );
      });
    } finally {
      await model?.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("per-head hooks reject bad requests with clear errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-heads-" });
  await writeRandomCheckpoint(dir, SHAPES["qwen2 (q/k/v biases), GQA 6q/2kv"]!);
  const model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs` });
  try {
    const rows = [[1, 2, 3]];
    const z = (iv: Partial<Intervention>) =>
      model.forward(rows, {
        interventions: [{ hook: "blocks.0.attn.hook_z", op: "scale", value: 0, ...iv } as Intervention],
      });
    await assert.rejects(z({ head: 6 }), /head 6 is outside \[0, 6\)/);
    await assert.rejects(
      z({ op: "add", vector: [1, 2], head: 0 } as Partial<Intervention>),
      /head 0 has length 2; expected 8/,
    );
    await assert.rejects(z({ hook: "blocks.0.attn.hook_pattern" }), /capture-only/);
    await assert.rejects(z({ hook: "blocks.0.hook_attn_out", head: 1 }), /heads are chosen only on/);
    await assert.rejects(z({ hook: "blocks.0.attn.hook_q" as Intervention["hook"] }), /Unknown hook.*hook_z/);
    await assert.rejects(
      model.forward(rows, { capture: { positions: [[1]], heads: true }, variant: "analysis" }),
      /"heads" graph variant/,
    );
  } finally {
    await model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
