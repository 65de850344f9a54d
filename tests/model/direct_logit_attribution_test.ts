/**
 * Direct logit attribution against an independent float64 decomposition built from the naive forward
 * pass (tests/naive_forward.ts), and the sum check: contributions + bias = the model's logit.
 */
import assert from "node:assert/strict";
import { HookedModel } from "../../lib/engine/hooked_model.ts";
import { type RandomCheckpointOptions, writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import {
  attributionEntries,
  directLogitAttribution,
  type DlaItem,
} from "../../lib/interp/direct_logit_attribution.ts";
import { loadNaiveWeights, naiveForward, type NaiveWeights } from "../naive_forward.ts";

const SHAPES: Record<string, RandomCheckpointOptions> = {
  "qwen2 (q/k/v biases), GQA 6q/2kv, bf16": {
    modelType: "qwen2",
    hiddenSize: 48,
    numLayers: 3,
    numHeads: 6,
    numKvHeads: 2,
    intermediateSize: 72,
    vocabSize: 101,
    tieWordEmbeddings: true,
    dtype: "BF16",
    seed: 31,
  },
  "llama with o_proj and MLP biases, untied, head_dim 12": {
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
    tieWordEmbeddings: false,
    seed: 32,
  },
};

/** The float64 decomposition, written from the definitions: per-head (z − b_v)·W_Oᵀ, frozen RMS scale. */
function naiveDla(w: NaiveWeights, tokens: readonly number[], pos: number, dirIds: [number, number?]) {
  const ref = naiveForward(w, [tokens]);
  const H = w.hiddenSize, D = w.headDim, nh = w.numHeads, L = w.layers.length;
  const group = nh / w.numKvHeads;
  const x = ref.resid[L]![0]![pos]!;
  const scale = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / H + w.rmsNormEps);
  const dir = new Float64Array(H);
  for (let i = 0; i < H; i++) {
    const c = dirIds[1] === undefined ? 0 : w.lmHead[dirIds[1] * H + i]!;
    dir[i] = w.norm[i]! * (w.lmHead[dirIds[0] * H + i]! - c) / scale;
  }
  const dot = (v: ArrayLike<number>) => Array.from(v).reduce((s, a, i) => s + a * dir[i]!, 0);
  const heads = new Float64Array(L * nh);
  const mlp = new Float64Array(L);
  let bias = 0;
  for (let l = 0; l < L; l++) {
    const lw = w.layers[l]!;
    const z = ref.z[l]![0]![pos]!;
    const bv = (h: number, d: number) => lw.vBias ? lw.vBias[Math.floor(h / group) * D + d]! : 0;
    for (let h = 0; h < nh; h++) {
      const res = new Float64Array(H);
      for (let i = 0; i < H; i++) {
        for (let d = 0; d < D; d++) {
          res[i] = res[i]! + lw.o[i * nh * D + h * D + d]! * (z[h * D + d]! - bv(h, d));
        }
      }
      heads[l * nh + h] = dot(res);
    }
    const b = new Float64Array(H);
    for (let i = 0; i < H; i++) {
      b[i] = lw.oBias ? lw.oBias[i]! : 0;
      for (let h = 0; h < nh; h++) {
        for (let d = 0; d < D; d++) b[i] = b[i]! + lw.o[i * nh * D + h * D + d]! * bv(h, d);
      }
    }
    bias += dot(b);
    mlp[l] = dot(ref.mlpOut[l]![0]![pos]!);
  }
  const embed = dot(ref.resid[0]![0]![pos]!);
  const logits = ref.logits[0]![pos]!;
  const value = logits[dirIds[0]]! - (dirIds[1] === undefined ? 0 : logits[dirIds[1]]!);
  return { embed, heads, mlp, bias, value };
}

for (const [label, shape] of Object.entries(SHAPES)) {
  Deno.test(`direct logit attribution matches the float64 decomposition: ${label}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "bt-dla-" });
    let model: HookedModel | undefined;
    try {
      await writeRandomCheckpoint(dir, shape);
      const w = await loadNaiveWeights(dir);
      model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs` });
      const V = shape.vocabSize;
      const items: DlaItem[] = [
        { tokenIds: [3, 17, 42, 5, 9, 60, 1, 33], predPos: 6, targetId: 12, contrastId: 40, exampleId: 7 },
        { tokenIds: [8, 2, 77], predPos: 2, targetId: 5 },
        { tokenIds: [50, 51, 52, 53, 11], predPos: 3, targetId: 90 % V, contrastId: 12 },
      ].map((it) => ({ ...it, tokenIds: it.tokenIds.map((t) => t % V) }));
      const rows = await directLogitAttribution(model, items, { batchSize: 2 });
      const { numHeads: nh, numLayers: L } = model.config;
      for (const [i, it] of items.entries()) {
        const row = rows[i]!;
        assert.equal(row.item, i);
        assert.equal(row.exampleId, it.exampleId);
        // The split adds up to the model's own logit (and log-prob difference).
        const sumErr = Math.abs(row.target.total - row.logit);
        assert.ok(
          sumErr <= 1e-4,
          `item ${i}: contributions + bias = ${row.target.total}, logit ${row.logit}`,
        );
        const forward = await model.forward([it.tokenIds.slice(0, it.predPos + 1)]);
        assert.ok(Math.abs(row.logit - forward.logits[0]![0]![it.targetId]!) <= 1e-5, `item ${i}: logit`);
        // Each component equals the float64 decomposition.
        const checks: [string, typeof row.target, [number, number?]][] = [["target", row.target, [
          it.targetId,
        ]]];
        if (it.contrastId !== undefined) {
          assert.ok(row.diff && row.logprobDiff !== undefined, `item ${i}: no contrast split`);
          assert.ok(Math.abs(row.diff.total - row.logprobDiff) <= 1e-4, `item ${i}: diff sum`);
          checks.push(["diff", row.diff, [it.targetId, it.contrastId]]);
        } else {
          assert.equal(row.diff, undefined);
        }
        for (const [what, got, ids] of checks) {
          const want = naiveDla(w, it.tokenIds.slice(0, it.predPos + 1), it.predPos, ids);
          // The naive parts add up to the naive logit exactly: the decomposition itself is right.
          const wantSum = want.embed + want.bias + want.heads.reduce((s, v) => s + v, 0) +
            want.mlp.reduce((s, v) => s + v, 0);
          assert.ok(Math.abs(wantSum - want.value) <= 1e-9, `naive ${what} sum ${wantSum} vs ${want.value}`);
          assert.ok(Math.abs(got.total - want.value) <= 1e-4, `item ${i} ${what}: total vs float64 logit`);
          const close = (a: number, b: number, name: string) =>
            assert.ok(Math.abs(a - b) <= 1e-4, `item ${i} ${what} ${name}: ${a} vs float64 ${b}`);
          close(got.embed, want.embed, "embed");
          close(got.bias, want.bias, "bias");
          for (let l = 0; l < L; l++) {
            close(got.mlp[l]!, want.mlp[l]!, `${l}_mlp_out`);
            for (let h = 0; h < nh; h++) close(got.heads[l * nh + h]!, want.heads[l * nh + h]!, `L${l}H${h}`);
          }
        }
        // Biased models put a nonzero share in the bias term (else the bias handling would go untested).
        assert.ok(Math.abs(row.target.bias) > 1e-4, `item ${i}: bias term ${row.target.bias} is ~0`);
      }
      const entries = attributionEntries(rows[0]!.target, nh);
      assert.equal(entries.length, 1 + L * (nh + 1) + 1);
      assert.deepEqual(entries.slice(0, 2).map((e) => e.name), ["embed", "L0H0"]);
      assert.equal(entries[nh + 1]!.name, "0_mlp_out");
      assert.equal(entries.at(-1)!.name, "bias");
      const sum = entries.reduce((s, e) => s + e.value, 0);
      assert.ok(Math.abs(sum - rows[0]!.target.total) <= 1e-9);
    } finally {
      await model?.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("direct logit attribution rejects bad items with clear errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-dla-" });
  await writeRandomCheckpoint(dir, SHAPES["qwen2 (q/k/v biases), GQA 6q/2kv, bf16"]!);
  const model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs` });
  try {
    await assert.rejects(
      directLogitAttribution(model, [{ tokenIds: [1, 2], predPos: 2, targetId: 3 }]),
      /item 0 has predPos 2 outside its 2 tokens/,
    );
    await assert.rejects(
      directLogitAttribution(model, [{ tokenIds: [1, 2], predPos: 1, targetId: 3, contrastId: 101 }]),
      /item 0 has contrast id 101 outside \[0, 101\)/,
    );
  } finally {
    await model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
