/**
 * Sharded ablation scan (issue 17 item 3): N = 1, 2, 3 shards (whole prefill groups each) assembled by the
 * unsharded step give tables byte-identical to an unsharded scan; a missing shard is named.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { prefillGroups } from "../../lib/interp/ablation_scan.ts";
import { SCAN_OUTPUTS } from "../../experiments/backtracking/artifacts/scan.ts";
import {
  ablationScan,
  ablationScanShard,
  detectEvents,
  disposeContext,
  generate,
  initRun,
  prepareData,
} from "../../experiments/backtracking/steps/mod.ts";
import { smallShardConfig } from "./_shard_config.ts";
import { parseConfig } from "../../experiments/backtracking/config.ts";

Deno.test("prefillGroups: sorted by position then index, in chunks", () => {
  const groups = prefillGroups([{ predPos: 5 }, { predPos: 2 }, { predPos: 5 }, { predPos: 1 }, {
    predPos: 3,
  }], 2);
  assert.deepEqual(groups, [[3, 1], [4, 0], [2]]);
});

Deno.test("ablation-scan shards assembled = the unsharded scan, byte for byte; a missing shard is named", async () => {
  const root = await Deno.makeTempDir({ prefix: "scan_shards_" });
  const small = await smallShardConfig(root);
  // More problems and events than the cluster test's config, so the scan has several prefill groups.
  const config = parseConfig({
    ...structuredClone(small),
    dataset: { ...small.dataset, max_examples: 16 },
    analysis: { ...small.analysis, max_events: 40, control_samples: 40 },
  }, "scan shards test");
  const ctx = await initRun({ config, log: () => {}, progress: "silent" }, { runId: "scan" });
  try {
    await prepareData(ctx);
    await generate(ctx, { condition: "baseline", variant: "baseline_think_newline" });
    await detectEvents(ctx);
    await ablationScan(ctx);
    const read = async () =>
      await Promise.all(SCAN_OUTPUTS.map((f) => Deno.readTextFile(join(ctx.run.dir, f))));
    const ref = await read();
    const drop = async () => {
      for (const f of SCAN_OUTPUTS) await Deno.remove(join(ctx.run.dir, f));
      await Deno.remove(join(ctx.run.dir, "analysis/shards"), { recursive: true }).catch(() => {});
    };
    let total: number | undefined;
    for (const n of [1, 2, 3]) {
      await drop();
      const counts: number[] = [];
      for (let k = 0; k < n; k++) {
        counts.push((await ablationScanShard(ctx, { index: k, count: n })).positions);
      }
      total ??= counts[0];
      assert.equal(counts.reduce((a, b) => a + b, 0), total, `the shards split the positions: ${counts}`);
      assert.ok(counts.every((c) => c > 0), `every shard scans: ${counts}`);
      await ablationScan(ctx);
      assert.deepEqual(await read(), ref, `${n} shard(s)`);
    }
    await drop();
    await ablationScanShard(ctx, { index: 0, count: 2 });
    await assert.rejects(
      ablationScan(ctx),
      /shard 1\/2 \(analysis\/shards\/ablation_scan\.shard-1-of-2\.json\) is missing: run `bt ablation-scan --shard 1\/2`/,
    );
  } finally {
    await disposeContext(ctx);
    await Deno.remove(root, { recursive: true });
  }
});
