/**
 * Test helper for records_test.ts: appends `n` deterministic records to a store, resuming (skipping
 * keys already present), printing `appended <i>` after each, then finalizes.
 * Usage: deno run -A _writer_script.ts <path> <n> <delayMs> <forward|reverse>
 */
import { type GenerationRecord, openRecordStore } from "../../lib/generate/records.ts";

export function fixtureRecord(i: number): GenerationRecord {
  const ids = Array.from({ length: 1 + (i % 5) }, (_, j) => (i * 31 + j * 7) % 1000);
  return {
    example_id: Math.floor(i / 3),
    sample_id: i % 3,
    variant: "baseline_think_newline",
    condition: "baseline",
    prompt: `Question ${Math.floor(i / 3)}: what is ${i} + ${i}? “ünïcode” ✓`,
    prompt_tokens: 12,
    completion: `The answer is ${2 * i}.\nFinal: ${2 * i}`,
    completion_token_ids: ids,
    completion_tokens: ids.length,
    finish_reason: i % 4 === 0 ? "length" : "eos",
    interventions: i % 2 ? [{ op: "scale", hook: "blocks.3.hook_mlp_out", value: 0 }] : [],
    intervention_scope: "generated_only",
    seed: 42,
    gen_params: { temperature: 0.7, top_p: 0.95, top_k: 50, max_new_tokens: 64, do_sample: true },
    timings: { started_at: new Date().toISOString(), duration_ms: performance.now() },
    model_id: "test/model",
  };
}

if (import.meta.main) {
  const [path, n, delay, order] = Deno.args;
  if (!path || !n || !delay || !order) throw new TypeError("usage: <path> <n> <delayMs> <forward|reverse>");
  const store = await openRecordStore(path, { log: (m) => console.error(m) });
  const indices = Array.from({ length: Number(n) }, (_, i) => i);
  if (order === "reverse") indices.reverse();
  for (const i of indices) {
    const record = fixtureRecord(i);
    if (store.has(record)) continue;
    await store.append(record);
    console.log(`appended ${i}`);
    await new Promise((r) => setTimeout(r, Number(delay)));
  }
  await store.finalize();
  console.log("finalized");
}
