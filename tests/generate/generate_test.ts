import assert from "node:assert/strict";
import { type EngineRuntime, HookedModel } from "../../lib/engine/hooked_model.ts";
import type { Intervention } from "../../lib/engine/hooks.ts";
import { writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import { generate, type GenerateOptions, type PromptInput } from "../../lib/generate/generate.ts";
import { argmax } from "../../lib/generate/sampling.ts";

/** Runs `fn` on each runtime in turn (default both: onnxruntime-node and the C API), naming it on failure. */
async function withModel(
  fn: (model: HookedModel) => Promise<void>,
  runtimes: readonly EngineRuntime[] = ["node", "capi"],
) {
  for (const runtime of runtimes) {
    try {
      await withRuntime(fn, runtime);
    } catch (error) {
      throw new Error(`[runtime ${runtime}] ${(error as Error).message}`, { cause: error });
    }
  }
}

async function withRuntime(fn: (model: HookedModel) => Promise<void>, runtime: EngineRuntime) {
  const dir = await Deno.makeTempDir({ prefix: "bt-gen-" });
  await writeRandomCheckpoint(dir, {
    modelType: "qwen2",
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 48,
    vocabSize: 64,
    seed: 5,
  });
  const model = await HookedModel.load(dir, { cacheDir: `${dir}/.graphs`, runtime });
  try {
    await fn(model);
  } finally {
    await model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

const PROMPTS: PromptInput[] = [
  { id: 0, tokenIds: [1, 5, 9, 12] },
  { id: "ex-1", tokenIds: [2, 7] },
  { id: 2, tokenIds: [3, 3, 8, 40, 41, 42, 11] },
];

const SAMPLED: GenerateOptions = {
  samplesPerPrompt: 3,
  maxNewTokens: 12,
  sampling: { temperature: 0.9, topP: 0.95, topK: 20 },
  eosTokenIds: [63],
  seed: 42,
};

Deno.test("a sample's tokens do not depend on batch size or composition", async () => {
  await withModel(async (model) => {
    const runs: Awaited<ReturnType<typeof generate>>[] = [];
    for (const batchSize of [1, 2, 5, 16]) {
      runs.push(await generate(model, PROMPTS, { ...SAMPLED, batchSize }));
    }
    const key = (r: (typeof runs)[number]) =>
      r.map((s) => `${s.exampleId}/${s.sampleId}:${s.tokenIds.join(",")}`);
    for (const r of runs.slice(1)) assert.deepEqual(key(r), key(runs[0]!));
    // Different samples of one prompt differ (their streams are independent).
    const p0 = runs[0]!.filter((s) => s.promptIndex === 0).map((s) => s.tokenIds.join(","));
    assert.ok(new Set(p0).size > 1, "all samples of prompt 0 are identical");
    // A subset of the prompts (different batch composition) gives the same samples for them.
    const alone = await generate(model, [PROMPTS[2]!], { ...SAMPLED, batchSize: 4 });
    assert.deepEqual(
      alone.map((s) => s.tokenIds),
      runs[0]!.filter((s) => s.promptIndex === 2).map((s) => s.tokenIds),
    );
  });
});

Deno.test("greedy generation equals the argmax of the engine's logits", async () => {
  await withModel(async (model) => {
    const [sample] = await generate(model, [PROMPTS[0]!], {
      maxNewTokens: 6,
      sampling: { temperature: 1, greedy: true },
      eosTokenIds: [],
      seed: 0,
    });
    const ids = [...PROMPTS[0]!.tokenIds];
    for (let i = 0; i < 6; i++) {
      const { logits } = await model.forward([ids]);
      ids.push(argmax(logits[0]![0]!));
    }
    assert.deepEqual(sample!.tokenIds, ids.slice(PROMPTS[0]!.tokenIds.length));
    assert.equal(sample!.finishReason, "length");
  });
});

Deno.test("finish reasons: eos, stop string, length", async () => {
  await withModel(async (model) => {
    const greedy = { maxNewTokens: 8, sampling: { temperature: 1, greedy: true }, seed: 0 } as const;
    const [free] = await generate(model, [PROMPTS[0]!], { ...greedy, eosTokenIds: [] });
    assert.equal(free!.finishReason, "length");
    assert.equal(free!.tokenIds.length, 8);
    const third = free!.tokenIds[2]!;
    const firstAt = free!.tokenIds.indexOf(third);
    const [eos] = await generate(model, [PROMPTS[0]!], { ...greedy, eosTokenIds: [third] });
    assert.equal(eos!.finishReason, "eos");
    assert.deepEqual(eos!.tokenIds, free!.tokenIds.slice(0, firstAt + 1));
    // Stop strings: a toy decoder mapping each id to a letter.
    const decode = (ids: readonly number[]) => ids.map((i) => String.fromCharCode(65 + (i % 26))).join("");
    const stop = decode(free!.tokenIds.slice(3, 5));
    const [stopped] = await generate(model, [PROMPTS[0]!], {
      ...greedy,
      eosTokenIds: [],
      stopStrings: [stop],
      decode,
    });
    assert.equal(stopped!.finishReason, "stop");
    assert.equal(stopped!.stopString, stop);
    assert.ok(decode(stopped!.tokenIds).endsWith(stop));
    assert.ok(stopped!.tokenIds.length <= 5);
  });
});

Deno.test("intervention placement: all positions, generated only, decode only", async () => {
  await withModel(async (model) => {
    const ablate: Intervention[] = [
      { hook: "blocks.0.hook_mlp_out", op: "scale", value: 0 },
      { hook: "blocks.1.hook_mlp_out", op: "scale", value: 0 },
      { hook: "blocks.1.hook_attn_out", op: "scale", value: 0 },
    ];
    const prompt = PROMPTS[2]!.tokenIds;
    const P = prompt.length;
    const firstToken = async (positions: Intervention["positions"]) => {
      const { logits } = await model.forward([prompt], {
        interventions: ablate.map((iv) => ({ ...iv, positions })),
      });
      return argmax(logits[0]![0]!);
    };
    const clean = argmax((await model.forward([prompt])).logits[0]![0]!);
    const opts = {
      maxNewTokens: 1,
      sampling: { temperature: 1, greedy: true },
      eosTokenIds: [],
      seed: 0,
    } as const;
    const run = async (scope: "all_positions" | "generated_only" | "decode_only") =>
      (await generate(model, [PROMPTS[2]!], { ...opts, interventions: ablate, scope }))[0]!.tokenIds[0];
    assert.equal(await run("decode_only"), clean, "decode_only must leave the first token clean");
    assert.equal(await run("generated_only"), await firstToken([[P - 1]]));
    assert.equal(await run("all_positions"), await firstToken("all"));
    // This check can fail only if the ablation changes the first token somewhere.
    const changed = (await firstToken([[P - 1]])) !== clean || (await firstToken("all")) !== clean;
    assert.ok(changed, "the ablation does not change the first token; pick a stronger one");
  });
});

Deno.test("bad input fails before any work starts", async () => {
  await withModel(async (model) => {
    let calls = 0;
    const spy = new Proxy(model, {
      get(target, prop) {
        if (prop === "forward") {
          return (...args: Parameters<HookedModel["forward"]>) => {
            calls++;
            return target.forward(...args);
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    await assert.rejects(generate(spy, [], SAMPLED), /prompt list is empty/);
    await assert.rejects(generate(spy, PROMPTS, { ...SAMPLED, maxNewTokens: 0 }), /maxNewTokens/);
    await assert.rejects(
      generate(spy, PROMPTS, {
        ...SAMPLED,
        interventions: [{ hook: "blocks.7.hook_mlp_out", op: "scale", value: 0 }],
      }),
      /Unknown hook/,
    );
    await assert.rejects(generate(spy, [{ id: 0, tokenIds: [] }], SAMPLED), /no tokens/);
    assert.equal(calls, 0);
  });
});

Deno.test("skip resumes: the remaining samples equal those of a full run", async () => {
  await withModel(async (model) => {
    const full = await generate(model, PROMPTS, SAMPLED);
    const rest = await generate(model, PROMPTS, { ...SAMPLED, skip: (p, s) => (p + s) % 2 === 0 });
    assert.deepEqual(
      rest,
      full.filter((s) => (s.promptIndex + s.sampleId) % 2 === 1).map((s) => ({
        ...s,
        durationMs: rest.find((r) =>
          r.promptIndex === s.promptIndex && r.sampleId === s.sampleId
        )!.durationMs,
      })),
    );
  });
});

Deno.test("sampling from the engine's top-k candidates equals sampling from the whole row", async () => {
  const { sampleFromCandidates } = await import("../../lib/generate/generate.ts");
  const { sampleToken } = await import("../../lib/generate/sampling.ts");
  const { sampleStream } = await import("../../lib/generate/rng.ts");
  const vocab = 5000;
  for (let trial = 0; trial < 200; trial++) {
    const r = sampleStream(9, trial);
    const logits = Float32Array.from({ length: vocab }, () => (r.nextFloat() - 0.5) * 12);
    const params = { temperature: 0.7, topK: 1 + (trial % 60), topP: trial % 3 === 0 ? 1 : 0.9 };
    // The engine's TopK: largest first, lower id first on ties.
    const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b).slice(
      0,
      params.topK,
    );
    const candidates = { ids: Int32Array.from(order), values: Float32Array.from(order, (i) => logits[i]!) };
    const a = sampleToken(logits, params, sampleStream(1, trial));
    const b = sampleFromCandidates(candidates, params, sampleStream(1, trial));
    assert.equal(b, a, `trial ${trial}`);
  }
});

Deno.test("both runtimes sample the same tokens for the same seeds (continuous batching, hooks)", async () => {
  const samples: Record<string, string[]> = {};
  for (const runtime of ["node", "capi"] as const) {
    await withModel(async (model) => {
      const runs = [
        await generate(model, PROMPTS, { ...SAMPLED, batchSize: 4 }),
        await generate(model, PROMPTS, {
          ...SAMPLED,
          batchSize: 3,
          interventions: [{ hook: "blocks.1.hook_mlp_out", op: "scale", value: 0.3 }],
        }),
      ];
      samples[runtime] = runs.flat().map((s) => `${s.exampleId}/${s.sampleId}:${s.tokenIds.join(",")}`);
    }, [runtime]);
  }
  assert.deepEqual(samples.capi, samples.node);
  // Rows of different lengths finished and joined along the way, or this test would prove little.
  assert.ok(new Set(samples.node!.map((s) => s.split(",").length)).size > 1, "all samples have one length");
});
