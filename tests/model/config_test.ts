import assert from "node:assert/strict";
import { join } from "node:path";
import { parseModelConfig, readModelConfig, ropeInverseFrequencies } from "../../lib/engine/config.ts";

const R1_CONFIG = new URL("../../../shared/data/r1-distill-qwen/config.json", import.meta.url);

/** Llama 3.1 8B's config.json as published. */
const LLAMA31 = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: "silu",
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-05,
  rope_scaling: {
    factor: 8.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192,
    rope_type: "llama3",
  },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.43.0.dev0",
  use_cache: true,
  vocab_size: 128256,
};

Deno.test("parses the real R1-Distill-Qwen config", async () => {
  const cfg = parseModelConfig(JSON.parse(await Deno.readTextFile(R1_CONFIG)), "r1/config.json");
  assert.deepEqual(cfg, {
    modelType: "qwen2",
    vocabSize: 151936,
    hiddenSize: 1536,
    intermediateSize: 8960,
    numLayers: 28,
    numHeads: 12,
    numKvHeads: 2,
    headDim: 128,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    maxPositionEmbeddings: 131072,
    tieWordEmbeddings: false,
    attentionBias: true,
    mlpBias: false,
    torchDtype: "float32",
    bosTokenId: 151643,
    eosTokenIds: [151643],
  });
});

Deno.test("parses a Llama 3.1 config with llama3 rope scaling", () => {
  const cfg = parseModelConfig(LLAMA31, "llama/config.json");
  assert.equal(cfg.modelType, "llama");
  assert.equal(cfg.headDim, 128);
  assert.equal(cfg.numKvHeads, 8);
  assert.equal(cfg.attentionBias, false);
  assert.deepEqual(cfg.eosTokenIds, [128001, 128008, 128009]);
  assert.deepEqual(cfg.ropeScaling, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  assert.equal(parseModelConfig({ ...LLAMA31, attention_bias: true }, "x").attentionBias, true);
  assert.equal(parseModelConfig({ ...LLAMA31, head_dim: 64 }, "x").headDim, 64);
  // transformers v5 layout: rope settings under rope_parameters.
  const v5 = {
    ...LLAMA31,
    rope_scaling: undefined,
    rope_theta: undefined,
    rope_parameters: LLAMA31.rope_scaling,
  };
  const withTheta = { ...v5, rope_parameters: { ...LLAMA31.rope_scaling, rope_theta: 500000 } };
  assert.deepEqual(parseModelConfig(withTheta, "v5").ropeScaling, cfg.ropeScaling);
  assert.equal(parseModelConfig(withTheta, "v5").ropeTheta, 500000);
});

Deno.test("ropeInverseFrequencies: plain RoPE and llama3 scaling against hand-computed values", () => {
  const plain = ropeInverseFrequencies({ headDim: 8, ropeTheta: 10000 });
  assert.deepEqual([...plain], [1, 0.1, 0.01, 0.001].map(Math.fround));

  const inv = ropeInverseFrequencies(parseModelConfig(LLAMA31, "llama"));
  assert.equal(inv.length, 64);
  // Written out from the transformers formula in float64 (i = 0 high band, 30 medium, 63 low).
  const hand = (i: number) => {
    const f = 1 / 500000 ** ((2 * i) / 128);
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < 2048) return f;
    if (wavelen > 8192) return f / 8;
    const smooth = (8192 / wavelen - 1) / 3;
    return ((1 - smooth) * f) / 8 + smooth * f;
  };
  for (const i of [0, 10, 28, 29, 30, 34, 35, 63]) {
    assert.ok(Math.abs(inv[i]! - hand(i)) / hand(i) < 1e-6, `inv_freq[${i}] = ${inv[i]}, hand ${hand(i)}`);
  }
  // float32 values from the same arithmetic in numpy float32 (as transformers does in torch).
  const f32: [number, number][] = [[0, 1], [30, 0.0013718936825171113], [63, 3.068925877869333e-07]];
  for (const [i, want] of f32) {
    assert.ok(Math.abs(inv[i]! - want) / want < 2.5e-7, `inv_freq[${i}] = ${inv[i]}, float32 ref ${want}`);
  }
  // Medium band is strictly between the unscaled and fully scaled values.
  const base = ropeInverseFrequencies({ headDim: 128, ropeTheta: 500000 });
  assert.ok(inv[30]! < base[30]! && inv[30]! > base[30]! / 8);
  assert.equal(inv[63], Math.fround(base[63]! / 8));
  assert.equal(inv[5], base[5]);
});

Deno.test("unknown model_type names the file, the value and the supported types", () => {
  assert.throws(
    () => parseModelConfig({ ...LLAMA31, model_type: "mistral" }, "m/config.json"),
    (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /m\/config\.json/);
      assert.match(e.message, /"mistral"/);
      assert.match(e.message, /"qwen2", "llama"/);
      return true;
    },
  );
});

Deno.test("missing or ill-typed keys name the key and the file", () => {
  const { hidden_size: _, ...noHidden } = LLAMA31;
  assert.throws(() => parseModelConfig(noHidden, "a/config.json"), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /"hidden_size".*missing/);
    assert.match(e.message, /a\/config\.json/);
    return true;
  });
  assert.throws(
    () => parseModelConfig({ ...LLAMA31, num_hidden_layers: "32" }, "b/config.json"),
    /b\/config\.json.*"num_hidden_layers" must be a positive integer, got "32"/,
  );
  assert.throws(() => parseModelConfig([], "c.json"), TypeError);
});

Deno.test("unsupported rope scaling, activation and sliding window are clear errors", () => {
  for (const type of ["yarn", "linear", "dynamic"]) {
    assert.throws(
      () => parseModelConfig({ ...LLAMA31, rope_scaling: { rope_type: type, factor: 2 } }, "r.json"),
      new RegExp(`r\\.json.*"${type}" is not supported yet`),
    );
  }
  assert.equal(
    parseModelConfig({ ...LLAMA31, rope_scaling: { type: "default" } }, "r").ropeScaling,
    undefined,
  );
  assert.equal(parseModelConfig({ ...LLAMA31, rope_scaling: null }, "r").ropeScaling, undefined);
  assert.throws(
    () => parseModelConfig({ ...LLAMA31, rope_scaling: { rope_type: "llama3", factor: 8 } }, "r.json"),
    /"low_freq_factor"/,
  );
  assert.throws(() => parseModelConfig({ ...LLAMA31, hidden_act: "gelu" }, "g.json"), /g\.json.*"gelu"/);
  const qwen = { ...LLAMA31, model_type: "qwen2", use_sliding_window: true };
  assert.throws(() => parseModelConfig(qwen, "q.json"), /q\.json.*sliding/);
  assert.throws(() => parseModelConfig({ ...LLAMA31, num_key_value_heads: 5 }, "k.json"), /not a multiple/);
});

Deno.test("readModelConfig reads a folder and names a folder without config.json", async () => {
  const dir = await Deno.makeTempDir({ prefix: "config_test_" });
  try {
    await assert.rejects(readModelConfig(dir), (e: unknown) => {
      assert.ok(e instanceof Deno.errors.NotFound);
      assert.ok(e.message.includes(dir));
      assert.match(e.message, /Hugging Face model folder/);
      return true;
    });
    await Deno.writeTextFile(join(dir, "config.json"), "{oops");
    await assert.rejects(readModelConfig(dir), /config\.json.*not valid JSON/);
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(LLAMA31));
    assert.equal((await readModelConfig(dir)).numLayers, 32);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
