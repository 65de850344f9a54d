import assert from "node:assert/strict";
import { sha256File, writeFileAtomic } from "../lib/util/fs.ts";
import { join } from "node:path";
import { parseConfig, parseConfigYaml } from "../experiments/backtracking/config.ts";
import {
  ArtifactExistsError,
  artifactPath,
  assertWritable,
  copyFiguresToProject,
  createRun,
  newRunId,
  openRun,
  readMeta,
  resolveRunId,
  updateMeta,
  writeArtifact,
} from "../experiments/backtracking/run.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "run_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const config = parseConfig({ protocol: "reference", run: { seed: 7 } }, "inline");

Deno.test("newRunId formats local time as YYYYMMDD_HHMMSS", () => {
  assert.equal(newRunId(new Date(2025, 11, 23, 23, 25, 41)), "20251223_232541");
});

Deno.test("createRun writes config_resolved.yaml, meta.json with provenance, and .current_run_id", async () => {
  await withTempDir(async (root) => {
    const run = await createRun(config, { root, runId: "r1", configPath: "configs/x.yaml" });
    assert.equal(run.dir, join(root, "r1"));
    const resolved = parseConfigYaml(
      await Deno.readTextFile(join(run.dir, "config_resolved.yaml")),
      "resolved",
    );
    assert.equal(resolved.run.run_id, "r1");
    assert.equal(resolved.protocol, "reference");
    assert.equal(resolved.phase2.max_examples, 120, "phase2 section is saved");
    const meta = await readMeta(run);
    assert.equal(meta.run_id, "r1");
    assert.equal(meta.config_path, "configs/x.yaml");
    assert.equal(meta.model_id, "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B");
    assert.ok(meta.git_sha === "unknown" || /^[0-9a-f]{8}$/.test(meta.git_sha), meta.git_sha);
    assert.ok(typeof meta.git_dirty === "boolean" || meta.git_dirty === "unknown");
    assert.equal(meta.versions.deno, Deno.version.deno);
    assert.equal(meta.versions.onnxruntime, "1.30.0");
    assert.match(meta.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/);
    assert.equal((await Deno.readTextFile(join(root, ".current_run_id"))).trim(), "r1");
    await assert.rejects(() => createRun(config, { root, runId: "r1" }), /already exists.*--force/);
    await createRun(config, { root, runId: "r1", force: true });
  });
});

Deno.test("git state is 'unknown' outside a repository", async () => {
  await withTempDir(async (root) => {
    const run = await createRun(config, { root, runId: "nogit", gitDir: root });
    const meta = await readMeta(run);
    assert.equal(meta.git_sha, "unknown");
    assert.equal(meta.git_dirty, "unknown");
  });
});

Deno.test("run id resolution: explicit, then run.run_id, then .current_run_id, else an error", async () => {
  await withTempDir(async (root) => {
    await assert.rejects(() => resolveRunId(config, undefined, { root }), /init-run/);
    await createRun(config, { root, runId: "latest" });
    assert.equal(await resolveRunId(config, undefined, { root }), "latest");
    const pinned = parseConfig({ run: { run_id: "pinned" } }, "inline");
    assert.equal(await resolveRunId(pinned, undefined, { root }), "pinned");
    assert.equal(await resolveRunId(pinned, "explicit", { root }), "explicit");
    await assert.rejects(() => resolveRunId(config, "../escape", { root }), /Invalid run id/);
    await assert.rejects(() => openRun(config, "missing", { root }), /does not exist.*init-run/);
    assert.equal((await openRun(config, undefined, { root })).id, "latest");
  });
});

Deno.test("writeArtifact is atomic and refuses to overwrite a finished artifact unless asked", async () => {
  await withTempDir(async (root) => {
    const run = await createRun(config, { root, runId: "w" });
    const p = await writeArtifact(run, "analysis/x.json", { a: 1 });
    assert.equal(await Deno.readTextFile(p), '{\n  "a": 1\n}\n');
    await assert.rejects(() => writeArtifact(run, "analysis/x.json", "new"), ArtifactExistsError);
    await assert.rejects(() => assertWritable(run, ["analysis/x.json"]), /--force/);
    assert.equal(await Deno.readTextFile(p), '{\n  "a": 1\n}\n', "refused write left the file unchanged");
    await writeArtifact(run, "analysis/x.json", "new", { overwrite: true });
    assert.equal(await Deno.readTextFile(p), "new");
    assert.throws(() => artifactPath(run, "../other/x"), /leaves the run folder/);
    assert.throws(() => artifactPath(run, "/abs"), /relative/);
    // A failed write leaves neither the target nor a temp file behind.
    await Deno.mkdir(join(run.dir, "blocked"));
    await assert.rejects(() => writeFileAtomic(join(run.dir, "blocked"), "x"), /Cannot write/);
    const names = [];
    for await (const e of Deno.readDir(run.dir)) names.push(e.name);
    assert.ok(!names.some((n) => n.endsWith(".tmp")), names.join(","));
  });
});

Deno.test("updateMeta merges steps; sha256File streams; figures copy to the project folder", async () => {
  await withTempDir(async (root) => {
    const run = await createRun(config, { root, runId: "m" });
    await updateMeta(run, { steps: { a: { n: 1 } } });
    await updateMeta(run, { steps: { b: { n: 2 } }, data: { n_problems: 3 } });
    const meta = await readMeta(run);
    assert.deepEqual(Object.keys(meta.steps ?? {}), ["a", "b"]);
    assert.equal(meta.data?.n_problems, 3);
    const f = join(root, "f.txt");
    await Deno.writeTextFile(f, "abc");
    assert.equal(await sha256File(f), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    await writeArtifact(run, "figures/a.svg", "<svg/>");
    await writeArtifact(run, "figures/a.png", new Uint8Array([1, 2]));
    const copied = await copyFiguresToProject(run, join(root, "figs"));
    assert.deepEqual(copied.map((p) => p.slice(root.length + 1)), ["figs/a.png", "figs/a.svg"]);
    assert.equal((await Deno.readTextFile(join(root, "figs", ".run_id"))).trim(), "m");
    // A later run without figure a (and with b) replaces the copy: no stale a.* is left beside b.*, and a
    // file that is not a figure stays.
    await Deno.writeTextFile(join(root, "figs", "notes.txt"), "mine");
    const run2 = await createRun(config, { root, runId: "m2" });
    await writeArtifact(run2, "figures/b.svg", "<svg/>");
    const copied2 = await copyFiguresToProject(run2, join(root, "figs"));
    assert.deepEqual(copied2.map((p) => p.slice(root.length + 1)), ["figs/b.svg"]);
    const left = [...Deno.readDirSync(join(root, "figs"))].map((e) => e.name).sort();
    assert.deepEqual(left, [".run_id", "b.svg", "notes.txt"]);
    // A folder that never held a copy (no .run_id) is only added to.
    await Deno.mkdir(join(root, "other"));
    await Deno.writeTextFile(join(root, "other", "keep.png"), "x");
    await copyFiguresToProject(run2, join(root, "other"));
    assert.ok(Deno.statSync(join(root, "other", "keep.png")).isFile);
  });
});
