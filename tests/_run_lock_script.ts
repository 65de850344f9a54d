/**
 * Test helper for run_lock_test.ts, run as its own process.
 *
 * - `hold <runDir> <ms> [K/N]`: take the run lock as a step would (`lockRun`; with `K/N`, shard K of N's
 *   lock), print `locked`, hold it `ms` milliseconds (or until killed), release it and print `released`.
 * - `write <runDir> <n> <delayMs>`: a writer like `bt generate`: take the lock, then append `n` records to
 *   `<runDir>/generations/v/baseline.jsonl` (resuming), one every `delayMs`, and finalise.
 */
import { join } from "node:path";
import { openRecordStore } from "../lib/generate/records.ts";
import { lockRun } from "../experiments/backtracking/context.ts";
import { fixtureRecord } from "./generate/_writer_script.ts";
import { parseShard } from "../lib/generate/shards.ts";

const [mode, dir, a, b] = Deno.args;
if (!dir || (mode !== "hold" && mode !== "write")) throw new TypeError("usage: hold|write <runDir> …");
const ctx = { run: { id: "x", root: join(dir, ".."), dir }, log: (l: string) => console.error(l) };
const shard = mode === "hold" && b ? parseShard(b) : undefined;
await using _lock = await lockRun(ctx, mode === "hold" ? "test-holder" : "test-writer", shard);
console.log("locked");
if (mode === "hold") {
  await new Promise((r) => setTimeout(r, Number(a)));
} else {
  await Deno.mkdir(join(dir, "generations", "v"), { recursive: true });
  const store = await openRecordStore(join(dir, "generations", "v", "baseline.jsonl"));
  for (let i = 0; i < Number(a); i++) {
    const r = fixtureRecord(i);
    if (store.has(r)) continue;
    await store.append(r);
    await new Promise((r) => setTimeout(r, Number(b)));
  }
  await store.finalize();
}
console.log("released");
