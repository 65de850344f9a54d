/**
 * Test helper for organism_race_test.ts, run as its own process with `BT_CACHE_DIR` set: what the first
 * step of a run does with the organism (build or reuse it, read its tokenizer, compile and load its graph),
 * `rounds` times. Prints `ok <dir>` at the end.
 * Usage: deno run -A _organism_race_script.ts <rounds>
 */
import { loadModel } from "../../lib/engine/load.ts";

const rounds = Number(Deno.args[0] ?? 1);
let dir = "";
for (let i = 0; i < rounds; i++) {
  const loaded = await loadModel("organism", { device: "cpu" });
  dir = loaded.dir;
  await loaded.model.dispose();
}
console.log(`ok ${dir}`);
