/**
 * `computeDtype: "bf16"` (weights and matmuls in bfloat16, for GPUs): the graph compiles, the fp32
 * graph is unchanged by the option, and on this CPU build ONNX Runtime refuses the bf16 graph at the
 * Gemm (no CPU bf16 Gemm kernel) rather than failing anywhere else. Where a build has the kernel, the
 * logits must stay within bfloat16 rounding of the fp32 graph's.
 */
import assert from "node:assert/strict";
import { compileGraph } from "../../lib/engine/graph.ts";
import { loadCheckpoint } from "../../lib/engine/checkpoint.ts";
import { HookedModel } from "../../lib/engine/hooked_model.ts";
import { writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";

async function withCheckpoint(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bt-bf16-" });
  try {
    await writeRandomCheckpoint(dir, {
      modelType: "qwen2",
      hiddenSize: 32,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 48,
      vocabSize: 64,
      tieWordEmbeddings: true,
      seed: 5,
    });
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("bf16 compute dtype: graph builds, fp32 graph unchanged, CPU refuses only the bf16 Gemm", async () => {
  await withCheckpoint(async (dir) => {
    const ckpt = await loadCheckpoint(dir);
    const locate = () => ({ location: "model.safetensors", offset: 0 });
    const text = (b: Uint8Array) => new TextDecoder("latin1").decode(b);
    const plain = compileGraph(ckpt, { locate });
    assert.deepEqual(compileGraph(ckpt, { locate, computeDtype: "fp32" }), plain);
    for (const inPlaceCache of [false, true]) {
      const bf = text(compileGraph(ckpt, { locate, computeDtype: "bf16", variant: { inPlaceCache } }));
      assert.match(bf, /qwen2_hooked(_inplace)?_bf16/);
      // Norms keep float32 weights: RMSNormalization count is unchanged, Casts were added.
      const count = (s: string, w: string) => s.split(w).length - 1;
      const fp = text(compileGraph(ckpt, { locate, variant: { inPlaceCache } }));
      assert.equal(count(bf, "RMSNormalization"), count(fp, "RMSNormalization"));
      assert.ok(count(bf, "Cast") > count(fp, "Cast") + 2 * 7, "casts around every matmul");
    }
    for (const runtime of ["capi", "node"] as const) {
      const bf = await HookedModel.load(dir, { cacheDir: `${dir}/.g`, runtime, computeDtype: "bf16" });
      const fp = await HookedModel.load(dir, { cacheDir: `${dir}/.g`, runtime });
      try {
        const ref = (await fp.forward([[1, 2, 3, 4]])).logits[0]![0]!;
        let got: Float32Array | undefined;
        try {
          got = (await bf.forward([[1, 2, 3, 4]])).logits[0]![0]!;
        } catch (error) {
          assert.match((error as Error).message, /Could not find an implementation for Gemm/, runtime);
        }
        if (got) {
          // bfloat16 keeps 8 mantissa bits: relative error ~4e-3 per matmul.
          const scale = Math.max(...Array.from(ref, Math.abs));
          ref.forEach((v, i) => assert.ok(Math.abs(v - got![i]!) <= 0.05 * scale, `${runtime} logit ${i}`));
        }
      } finally {
        await bf.dispose();
        await fp.dispose();
      }
    }
  });
});
