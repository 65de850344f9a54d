/**
 * Four first runs at once on an empty `BT_CACHE_DIR` (real processes): each builds (or reuses) the
 * organism, loads its tokenizer and compiles its graphs. None may fail: a cache entry is built under a
 * temporary name and renamed into place, and a complete entry is never removed.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./_organism_race_script.ts", import.meta.url));

Deno.test("organism cache: 4 concurrent first runs on an empty BT_CACHE_DIR all succeed", async () => {
  for (let trial = 0; trial < 3; trial++) {
    const cache = await Deno.makeTempDir({ prefix: "organism-race-" });
    try {
      const children = Array.from({ length: 4 }, () =>
        new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--frozen", SCRIPT, "2"],
          env: { BT_CACHE_DIR: cache },
          stdout: "piped",
          stderr: "piped",
        }).output());
      const outs = await Promise.all(children);
      const dec = new TextDecoder();
      const report = outs.map((o, i) => `process ${i}: exit ${o.code}\n${dec.decode(o.stderr).slice(-800)}`);
      assert.ok(outs.every((o) => o.success), `trial ${trial}: some failed:\n${report.join("\n")}`);
      const dirs = new Set(outs.map((o) => dec.decode(o.stdout).trim()));
      assert.equal(dirs.size, 1, "all four use the same cache entry");
      const left = [...Deno.readDirSync(`${cache}/organism`)].map((e) => e.name);
      assert.equal(left.length, 1, `no temporary build folders left: ${left.join(", ")}`);
    } finally {
      await Deno.remove(cache, { recursive: true });
    }
  }
});
