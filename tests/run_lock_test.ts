import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, parseConfig, resolvedConfigYaml } from "../experiments/backtracking/config.ts";
import { createRun } from "../experiments/backtracking/run.ts";
import { acquireRunLock, RUN_LOCK_FILE, RunLockedError } from "../lib/util/run_lock.ts";

const SCRIPT = fileURLToPath(new URL("./_run_lock_script.ts", import.meta.url));
const CLI = fileURLToPath(new URL("../experiments/backtracking/cli/main.ts", import.meta.url));
const ORGANISM = fileURLToPath(new URL("../configs/organism.yaml", import.meta.url));

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--frozen", ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Read a child's stdout until `line` appears; the rest of the stream is drained in the background. */
async function waitForLine(child: Deno.ChildProcess, line: string): Promise<void> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.split("\n").includes(line)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child exited before printing "${line}" (stdout: ${seen})`);
    seen += value;
  }
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
}

async function text(s: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(s).text();
}

/** A run folder `x` under a temp root, and a config file whose run.output_dir is that root. */
async function newRun(): Promise<{ root: string; dir: string; cfgFile: string }> {
  const root = await Deno.makeTempDir({ prefix: "run_lock_test_" });
  const base = await loadConfig(ORGANISM);
  const cfg = parseConfig({ ...structuredClone(base), run: { ...base.run, output_dir: root } }, "test");
  const cfgFile = join(root, "cfg.yaml");
  await Deno.writeTextFile(cfgFile, resolvedConfigYaml(cfg));
  const run = await createRun(cfg, { runId: "x" });
  return { root, dir: run.dir, cfgFile };
}

Deno.test("two writers started together: one works, the other fails at once naming the holder", async () => {
  const { root, dir } = await newRun();
  try {
    const started = performance.now();
    const [p, q] = [spawn([SCRIPT, "write", dir, "48", "20"]), spawn([SCRIPT, "write", dir, "48", "20"])];
    const [sp, sq] = await Promise.all([p.status, q.status]);
    const [op, oq] = await Promise.all([text(p.stdout), text(q.stdout)]);
    const [ep, eq] = await Promise.all([text(p.stderr), text(q.stderr)]);
    assert.deepEqual([sp.success, sq.success].sort(), [false, true], `exit statuses: ${ep}\n${eq}`);
    const [winner, loserErr] = sp.success ? [p, eq] : [q, ep];
    assert.match(sp.success ? op : oq, /released/);
    assert.match(loserErr, new RegExp(`is locked by pid ${winner.pid} on .* \\(step test-writer, since `));
    assert.match(loserErr, /two writers would corrupt its record stores/);
    const lines = (await Deno.readTextFile(join(dir, "generations/v/baseline.jsonl"))).split("\n").filter(
      (l) => l,
    );
    assert.equal(lines.length, 48, "48 keys, 48 lines: no duplicates, nothing lost");
    assert.equal(new Set(lines).size, 48);
    assert.ok(!(await Deno.stat(join(dir, RUN_LOCK_FILE)).then(() => true, () => false)), "lock released");
    console.log(`both done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a CLI step refuses a run another process is writing, naming the holder", async () => {
  const { root, dir, cfgFile } = await newRun();
  try {
    const holder = spawn([SCRIPT, "hold", dir, "60000"]);
    await waitForLine(holder, "locked");
    const t0 = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--frozen", CLI, "detect-events", "-c", cfgFile, "--run-id", "x"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    holder.kill("SIGTERM");
    await holder.status;
    assert.ok(!out.success, "the second writer must fail");
    assert.match(err, new RegExp(`locked by pid ${holder.pid} on .*step test-holder`));
    assert.ok((performance.now() - t0) / 1000 < 30, "fails at once, does not wait for the holder");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a stale lock of a killed process is reclaimed with a message, with its temp files", async () => {
  const { root, dir } = await newRun();
  try {
    const holder = spawn([SCRIPT, "hold", dir, "60000"]);
    await waitForLine(holder, "locked");
    // Temp files the holder would leave when killed inside an atomic write / a store finalisation.
    await Deno.mkdir(join(dir, "analysis"), { recursive: true });
    const fsTemp = join(dir, "analysis", `.summary.json.${holder.pid}.0123abcd.tmp`);
    const storeTemp = join(dir, "analysis", `s.jsonl.tmp-${holder.pid}`);
    await Deno.writeTextFile(fsTemp, "partial");
    await Deno.writeTextFile(storeTemp, "partial");
    await assert.rejects(() => acquireRunLock(dir, { step: "here" }), RunLockedError);
    holder.kill("SIGKILL");
    await holder.status;
    const logs: string[] = [];
    const lock = await acquireRunLock(dir, { step: "here", log: (l) => logs.push(l) });
    assert.ok(
      logs.some((l) => l.includes(`reclaimed the stale lock of pid ${holder.pid}`)),
      logs.join("\n"),
    );
    assert.equal(
      logs.filter((l) => /removed .*a temp file left by process/.test(l)).length,
      2,
      logs.join("\n"),
    );
    assert.ok(!(await Deno.stat(fsTemp).then(() => true, () => false)));
    assert.ok(!(await Deno.stat(storeTemp).then(() => true, () => false)));
    const info = JSON.parse(await Deno.readTextFile(join(dir, RUN_LOCK_FILE)));
    assert.equal(info.pid, Deno.pid);
    assert.equal(info.step, "here");
    assert.ok(info.host && info.started_at);
    // Re-entrant in a process: the file goes when the outermost holder releases.
    const inner = await acquireRunLock(dir, { step: "inner" });
    await inner.release();
    assert.ok(await Deno.stat(join(dir, RUN_LOCK_FILE)).then(() => true, () => false));
    await lock.release();
    assert.ok(!(await Deno.stat(join(dir, RUN_LOCK_FILE)).then(() => true, () => false)));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a lock of another host is not reclaimed: the message says what to do", async () => {
  const { root, dir } = await newRun();
  try {
    const foreign = {
      pid: 1,
      host: "elsewhere",
      started_at: "2026-01-01T00:00:00Z",
      step: "generate",
      command: "bt",
    };
    await Deno.writeTextFile(join(dir, RUN_LOCK_FILE), JSON.stringify(foreign));
    await assert.rejects(
      () => acquireRunLock(dir, { step: "here" }),
      /locked by pid 1 on elsewhere \(step generate.*once that process is gone, remove .*\.run\.lock/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
