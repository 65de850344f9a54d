/**
 * Re-running the pipeline on a finished or crashed run (issue 15, faults 4 and 5): every entry point
 * resumes (`runPipeline`, `bt pipeline --run-id`), finished steps are reused when their inputs are
 * unchanged, and Phase-2 generations never enter the Phase-1 tables, so the artifacts stay byte-identical.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, parseConfig, resolvedConfigYaml } from "../../experiments/backtracking/config.ts";
import { readEventsCsv } from "../../experiments/backtracking/events.ts";
import { runOrReuse } from "../../experiments/backtracking/notebook_params.ts";
import { openContext, runPipeline } from "../../experiments/backtracking/steps/mod.ts";
import { main } from "../../experiments/backtracking/cli/main.ts";
import { smallShardConfig } from "./_shard_config.ts";

const ORGANISM = fileURLToPath(new URL("../../configs/organism.yaml", import.meta.url));

/**
 * The sharding tests' small organism config (`_shard_config.ts`: a one-setting Phase 2, sweeps + steering),
 * with 6 problems × 2 samples, 80 new tokens, the organism's own batch size, 12 events, 100 bootstrap samples.
 */
async function tinyConfig(root: string) {
  const [base, organism] = [await smallShardConfig(root), await loadConfig(ORGANISM)];
  return parseConfig({
    ...base,
    dataset: { ...base.dataset, max_examples: 6 },
    generation: { ...base.generation, max_new_tokens: 80, batch_size: organism.generation.batch_size },
    analysis: { ...base.analysis, max_events: 12 },
    stats: { ...base.stats, bootstrap_samples: 100 },
  }, "organism (resume test)");
}

/** The Phase-1 and report artifacts that must not change when a finished run is run again. */
const STABLE = [
  "data/problems.jsonl",
  "analysis/backtracking_events.csv",
  "analysis/summary_metrics.json",
  "analysis/summary_metrics_corrected.json",
  "analysis/condition_comparison.csv",
  "analysis/condition_comparison_corrected.json",
  "analysis/formatting_summary_corrected.json",
  "analysis/logit_lens.csv",
  "analysis/selected_layers.json",
  "report.md",
];

async function snapshot(dir: string): Promise<Map<string, string>> {
  return new Map(
    await Promise.all(STABLE.map(async (f) => [f, await Deno.readTextFile(join(dir, f))] as const)),
  );
}

/** Without the lines that carry wall-clock times (when the report was written, meta.json's update time). */
function untimed(text: string): string {
  return text.split("\n").filter((l) => !/^Report written |^- Started: /.test(l)).join("\n");
}

function assertSame(a: Map<string, string>, b: Map<string, string>, when: string, timed = false): void {
  for (const [f, text] of a) {
    const [x, y] = timed ? [untimed(text), untimed(b.get(f) ?? "")] : [text, b.get(f)];
    assert.ok(x === y, `${f} changed ${when}`);
  }
}

Deno.test("a finished run re-run through runPipeline and `bt pipeline --run-id` is resumed, not rewritten", async () => {
  const root = await Deno.makeTempDir({ prefix: "pipeline_resume_" });
  const cwd = Deno.cwd();
  try {
    const cfg = await tinyConfig(root);
    const cfgFile = join(root, "config.yaml");
    await Deno.writeTextFile(cfgFile, resolvedConfigYaml(cfg));
    const logs: string[] = [];
    const first = await runPipeline(cfg, {
      runId: "r",
      phase2: true,
      progress: "silent",
      projectFigures: null,
      log: (l) => logs.push(l),
    });
    const dir = first.ctx.run.dir;
    const phase2Stores = [...Deno.readDirSync(join(dir, "generations/baseline_think_newline"))]
      .filter((e) =>
        e.name.startsWith("phase2_") && e.name.endsWith(".jsonl") && !e.name.includes("timings")
      );
    assert.ok(phase2Stores.length >= 2, "Phase 2 wrote its own generation stores");
    const before = await snapshot(dir);
    const rows = await readEventsCsv(join(dir, "analysis/backtracking_events.csv"));
    assert.ok(rows.every((r) => !r.condition.startsWith("phase2_")), "no Phase-2 rows in the events table");
    const phase1Report = before.get("report.md")!.split(/\n## .*Phase 2/i)[0]!;
    assert.ok(!/phase2_\w+_(s|l)\d/.test(phase1Report), "no phase2_* condition in the Phase-1 sections");

    // Notebook 03/08 after Phase 2: detect-events is reused (Phase-2 stores are not its inputs).
    const ctx = await openContext(cfg, { runId: "r" });
    const detect = await runOrReuse(ctx, "detect-events", { force: false, figuresDir: null });
    assert.equal(detect.status, "reused", detect.reason);

    // `runPipeline` again on the finished run: resumes, reuses every analysis step.
    logs.length = 0;
    await runPipeline(cfg, {
      runId: "r",
      phase2: true,
      progress: "silent",
      projectFigures: null,
      log: (l) => logs.push(l),
    });
    assert.ok(logs.some((l) => l.includes("run r: resuming")), logs.join("\n"));
    assertSame(before, await snapshot(dir), "by runPipeline on the finished run");

    // The CLI entry point, after a crash that lost the comparison and the report: it resumes (no
    // "already exists … pass --force"), recomputes what is missing, and ends byte-identical.
    for (
      const f of [
        "analysis/condition_comparison_corrected.json",
        "analysis/condition_comparison.csv",
        "report.md",
      ]
    ) {
      await Deno.remove(join(dir, f));
    }
    Deno.chdir(root); // make-report's latest-figures copy goes to <root>/figures, not the project's
    assert.equal(await main(["pipeline", "-c", cfgFile, "--run-id", "r"]), 0);
    Deno.chdir(cwd);
    assertSame(before, await snapshot(dir), "by `bt pipeline --run-id r` resuming after a crash", true);
  } finally {
    Deno.chdir(cwd);
    if (Deno.env.get("KEEP")) console.log(root);
    else await Deno.remove(root, { recursive: true });
  }
});
