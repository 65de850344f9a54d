// Subprocess for the kill -9 resume test: generates into a record store, slowly enough to be killed.
import { HookedModel } from "../../lib/engine/hooked_model.ts";
import { generateToStore } from "../../lib/generate/run_generation.ts";

const [checkpoint, out] = Deno.args as [string, string];
const model = await HookedModel.load(checkpoint, { cacheDir: `${checkpoint}/.graphs` });
const prompts = Array.from({ length: 24 }, (_, i) => ({
  exampleId: i,
  prompt: `prompt ${i}`,
  tokenIds: [1 + (i % 7), 2 + (i % 5), 3 + (i % 11)],
}));
await generateToStore(model, prompts, {
  path: out,
  variant: "v",
  condition: "baseline",
  samplesPerPrompt: 3,
  maxNewTokens: 40,
  sampling: { temperature: 0.8, topP: 0.95 },
  eosTokenIds: [63],
  seed: 7,
  batchSize: 4,
  progress: "silent",
  decodeCompletion: (ids) => ids.map((i) => String.fromCharCode(97 + (i % 26))).join(""),
  onRecord: () => {
    const delay = Number(Deno.env.get("BT_TEST_DELAY_MS") ?? "0");
    const until = performance.now() + delay;
    while (performance.now() < until) { /* slow down so the parent can kill mid-run */ }
  },
});
await model.dispose();
