import assert from "node:assert/strict";
import { assertClose, worstDiff } from "../_close.ts";
import { ropeInverseFrequencies } from "../../lib/engine/config.ts";
import { type RandomCheckpointOptions, writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import {
  loadNaiveWeights,
  naiveForward,
  naiveInverseFrequencies,
  type NaiveLayer,
  naiveLens,
  type NaiveWeights,
} from "../naive_forward.ts";

const TINY: RandomCheckpointOptions = {
  modelType: "qwen2",
  hiddenSize: 16,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  intermediateSize: 24,
  vocabSize: 40,
  seed: 3,
};

async function tinyWeights(options: Partial<RandomCheckpointOptions> = {}): Promise<NaiveWeights> {
  const dir = await Deno.makeTempDir({ prefix: "naive_forward_test_" });
  try {
    await writeRandomCheckpoint(dir, { ...TINY, ...options });
    return await loadNaiveWeights(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("GQA equals MHA with the KV heads repeated", async () => {
  const gqa = await tinyWeights();
  const D = gqa.headDim;
  const repeat = (w: Float64Array, width: number) => {
    const out = new Float64Array(gqa.numHeads * D * width);
    for (let h = 0; h < gqa.numHeads; h++) {
      const kv = Math.floor(h / (gqa.numHeads / gqa.numKvHeads));
      out.set(w.subarray(kv * D * width, (kv + 1) * D * width), h * D * width);
    }
    return out;
  };
  const mha: NaiveWeights = {
    ...gqa,
    numKvHeads: gqa.numHeads,
    layers: gqa.layers.map((l): NaiveLayer => ({
      ...l,
      k: repeat(l.k, gqa.hiddenSize),
      v: repeat(l.v, gqa.hiddenSize),
      kBias: repeat(l.kBias!, 1),
      vBias: repeat(l.vBias!, 1),
    })),
  };
  const rows = [[1, 5, 9, 2, 7, 3]];
  const a = naiveForward(gqa, rows);
  const b = naiveForward(mha, rows);
  for (let t = 0; t < 6; t++) assertClose(a.logits[0]![t]!, b.logits[0]![t]!, 1e-12, `position ${t}`);
  // A wrong head mapping (h % kvh) would differ: make sure the KV heads are not identical.
  assert.ok(
    worstDiff(gqa.layers[0]!.k.subarray(0, D * 16), gqa.layers[0]!.k.subarray(D * 16, 2 * D * 16)).diff >
      0.01,
  );
});

Deno.test("causality and row independence: appending tokens or batching other rows changes nothing", async () => {
  const w = await tinyWeights();
  const short = naiveForward(w, [[4, 8, 15]]);
  const long = naiveForward(w, [[4, 8, 15, 16, 23, 42 % 40]]);
  const batch = naiveForward(w, [[7, 7], [4, 8, 15]]);
  for (let t = 0; t < 3; t++) {
    assertClose(short.logits[0]![t]!, long.logits[0]![t]!, 1e-12, `causality at ${t}`);
    assertClose(short.logits[0]![t]!, batch.logits[1]![t]!, 1e-12, `batching at ${t}`);
  }
  assert.equal(batch.logits[0]!.length, 2);
  // Logits are not trivial and do depend on context (position 2 after different prefixes).
  const other = naiveForward(w, [[9, 1, 15]]);
  assert.ok(worstDiff(other.logits[0]![2]!, short.logits[0]![2]!).diff > 1e-3);
  let ss = 0;
  for (const v of short.logits[0]![2]!) ss += v * v;
  assert.ok(Math.sqrt(ss / w.vocabSize) > 0.5, "logits should not be near zero");
});

Deno.test("residual bookkeeping: resid[l+1] = resid[l] + attnOut[l] + mlpOut[l]", async () => {
  const w = await tinyWeights({ modelType: "llama", attentionBias: true, mlpBias: true });
  const r = naiveForward(w, [[1, 2, 3]]);
  assert.equal(r.resid.length, 3);
  for (let l = 0; l < 2; l++) {
    for (let t = 0; t < 3; t++) {
      const sum = r.resid[l]![0]![t]!.map((v, i) => v + r.attnOut[l]![0]![t]![i]! + r.mlpOut[l]![0]![t]![i]!);
      assertClose(r.resid[l + 1]![0]![t]!, sum, 1e-12, `layer ${l} position ${t}`);
    }
  }
  assertClose(r.resid[0]![0]![1]!, w.embed.subarray(2 * 16, 3 * 16), 0, "embedding");
});

Deno.test("interventions: scale 1 is a no-op, scale 0 zeroes selected positions, add shifts resid_pre", async () => {
  const w = await tinyWeights();
  const rows = [[3, 1, 4, 1, 5]];
  const base = naiveForward(w, rows);
  const one = naiveForward(w, rows, {
    interventions: [{ hook: "blocks.0.hook_attn_out", op: "scale", value: 1 }, {
      hook: "blocks.1.hook_mlp_out",
      op: "scale",
      value: 1,
    }],
  });
  for (let t = 0; t < 5; t++) assertClose(one.logits[0]![t]!, base.logits[0]![t]!, 0, `scale 1 at ${t}`);

  const zero = naiveForward(w, rows, {
    interventions: [{ hook: "blocks.1.hook_mlp_out", op: "scale", value: 0, positions: { from: [3] } }],
  });
  for (let t = 0; t < 5; t++) {
    const out = zero.mlpOut[1]![0]![t]!;
    if (t >= 3) assert.equal(worstDiff(out, new Float64Array(16)).diff, 0);
    else assertClose(out, base.mlpOut[1]![0]![t]!, 0, `unselected position ${t}`);
  }
  assert.ok(worstDiff(zero.logits[0]![3]!, base.logits[0]![3]!).diff > 1e-3);
  assertClose(zero.logits[0]![2]!, base.logits[0]![2]!, 0, "position before the ablation");

  const vector = Array.from({ length: 16 }, (_, i) => (i % 3) - 1);
  const add = naiveForward(w, rows, {
    interventions: [{ hook: "blocks.1.hook_resid_pre", op: "add", vector, coef: 2, positions: [[1]] }],
  });
  const post0 = base.resid[1]![0]![1]!;
  assertClose(add.resid[1]![0]![1]!, post0.map((v, i) => v + 2 * vector[i]!), 1e-12, "added vector");
  assertClose(add.resid[1]![0]![0]!, base.resid[1]![0]![0]!, 0, "unselected position");
  assert.throws(
    () =>
      naiveForward(w, rows, { interventions: [{ hook: "blocks.0.hook_resid_pre", op: "scale", value: 0 }] }),
    RangeError,
  );
});

Deno.test("the logit lens on the last residual reproduces the logits", async () => {
  const w = await tinyWeights({ tieWordEmbeddings: true });
  const rows = [[2, 4, 6, 8]];
  const r = naiveForward(w, rows, { lensTokenIds: [[[], [0, 1], [], [5, 6, 7]]] });
  const logits = r.logits[0]![3]!;
  let top = 0;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > logits[top]!) top = i;
  const lens = naiveLens(w, r.resid[2]![0]![3]!, [top, 5]);
  assert.equal(lens[0]!.rank, 0);
  assert.equal(lens[0]!.logit, logits[top]);
  const logZ = Math.log(logits.reduce((s, v) => s + Math.exp(v), 0));
  assert.ok(Math.abs(lens[1]!.logprob - (logits[5]! - logZ)) < 1e-9);
  assert.equal(lens[1]!.rank, [...logits].filter((v) => v > logits[5]!).length);
  assert.equal(r.lens.length, 3);
  assert.deepEqual(r.lens[2]![0]![3]![0], naiveLens(w, r.resid[2]![0]![3]!, [5])[0]);
  assert.deepEqual(r.lens[0]![0]![0], []);
});

Deno.test("independent RoPE frequencies agree with ropeInverseFrequencies (plain and llama3)", async () => {
  const scaling = { factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 };
  const lib = ropeInverseFrequencies({
    headDim: 16,
    ropeTheta: 10000,
    ropeScaling: { type: "llama3", ...scaling },
  });
  const naive = naiveInverseFrequencies(16, 10000, {
    factor: 4,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMax: 64,
  });
  for (let i = 0; i < 8; i++) {
    assert.ok(Math.abs(lib[i]! - naive[i]!) / naive[i]! < 1e-6, `inv_freq[${i}]: ${lib[i]} vs ${naive[i]}`);
  }
  const plain = naiveInverseFrequencies(16, 10000);
  const medium = [...naive].filter((v, i) => v !== plain[i] && Math.abs(v - plain[i]! / 4) > 1e-9);
  assert.ok(medium.length > 0, "the test should cover the smoothed band");

  const w = await tinyWeights({
    modelType: "llama",
    ropeScaling: scaling,
    headDim: 8,
    hiddenSize: 24,
    numHeads: 3,
    numKvHeads: 1,
  });
  assert.equal(w.invFreq.length, 4);
  assert.equal(naiveForward(w, [[1, 2, 3]]).logits[0]!.length, 3);
});

Deno.test("heads in the naive pass: patterns are causal distributions, z · W_O is attn_out, head hooks", async () => {
  const w = await tinyWeights(); // qwen2: q/k/v biases, no o_proj bias; 4 heads of 4 dims, 2 KV heads
  const rows = [[3, 1, 4, 1, 5]];
  const base = naiveForward(w, rows);
  const { numHeads: nh, headDim: D, hiddenSize: H } = w;
  for (let l = 0; l < 2; l++) {
    for (let t = 0; t < 5; t++) {
      const pat = base.pattern[l]![0]![t]!;
      assert.equal(pat.length, nh * (t + 1));
      for (let h = 0; h < nh; h++) {
        const rowSum = pat.subarray(h * (t + 1), (h + 1) * (t + 1)).reduce((s, p) => s + p, 0);
        assert.ok(Math.abs(rowSum - 1) < 1e-12, `pattern l=${l} t=${t} head ${h} sums to ${rowSum}`);
      }
      // attn_out = W_O z (no o_proj bias in Qwen2).
      const z = base.z[l]![0]![t]!;
      const o = w.layers[l]!.o;
      const out = Float64Array.from(
        { length: H },
        (_, i) => z.reduce((s, v, j) => s + o[i * nh * D + j]! * v, 0),
      );
      assertClose(out, base.attnOut[l]![0]![t]!, 1e-12, `W_O z at l=${l} t=${t}`);
    }
  }
  // At position 0 a head can only attend to itself: z = its value vector (value bias included).
  assert.deepEqual([...base.pattern[0]![0]![0]!], new Array(nh).fill(1));

  // Scaling every head by 0 equals zero-ablating hook_attn_out (no o_proj bias); one head moves less.
  const allHeads = naiveForward(w, rows, {
    interventions: [{ hook: "blocks.1.attn.hook_z", op: "scale", value: 0 }],
  });
  const attnZero = naiveForward(w, rows, {
    interventions: [{ hook: "blocks.1.hook_attn_out", op: "scale", value: 0 }],
  });
  for (let t = 0; t < 5; t++) {
    assertClose(allHeads.logits[0]![t]!, attnZero.logits[0]![t]!, 1e-12, `all heads ${t}`);
  }
  const oneHead = naiveForward(w, rows, {
    interventions: [{ hook: "blocks.1.attn.hook_z", op: "scale", value: 0, head: 2, positions: [[3]] }],
  });
  const z3 = oneHead.z[1]![0]![3]!;
  assert.ok(z3.subarray(2 * D, 3 * D).every((v) => v === 0));
  assertClose(z3.subarray(0, 2 * D), base.z[1]![0]![3]!.subarray(0, 2 * D), 0, "other heads untouched");
  assertClose(oneHead.logits[0]![2]!, base.logits[0]![2]!, 0, "position before the ablation");
  assert.ok(worstDiff(oneHead.logits[0]![3]!, base.logits[0]![3]!).diff > 1e-4);

  // Adding v to one head's z adds W_O[:, head] v to attn_out.
  const v = Array.from({ length: D }, (_, i) => i - 1.5);
  const added = naiveForward(w, rows, {
    interventions: [{
      hook: "blocks.0.attn.hook_z",
      op: "add",
      vector: v,
      coef: 2,
      head: 1,
      positions: [[2]],
    }],
  });
  const o0 = w.layers[0]!.o;
  const shift = Float64Array.from(
    { length: H },
    (_, i) => v.reduce((s, x, d) => s + 2 * o0[i * nh * D + D + d]! * x, 0),
  );
  assertClose(
    added.attnOut[0]![0]![2]!,
    base.attnOut[0]![0]![2]!.map((x, i) => x + shift[i]!),
    1e-12,
    "add on one head's z",
  );
});
