/**
 * Shard locks (issue 17): the N shards of a run write at once, two processes of one shard cannot, and a
 * shard and an exclusive writer (an unsharded step, an analysis step) exclude each other. Real processes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { shardLockHolders } from "../lib/util/run_lock.ts";

const SCRIPT = fileURLToPath(new URL("./_run_lock_script.ts", import.meta.url));

function hold(dir: string, shard?: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--frozen", SCRIPT, "hold", dir, "60000", ...(shard ? [shard] : [])],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Wait for `locked` on stdout (true) or the child's exit (false, with its stderr). */
async function locked(child: Deno.ChildProcess): Promise<{ ok: boolean; stderr: string }> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      const out = await child.output().catch(() => undefined);
      return { ok: false, stderr: out ? new TextDecoder().decode(out.stderr) : await text(child.stderr) };
    }
    seen += value;
    if (seen.split("\n").includes("locked")) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      return { ok: true, stderr: "" };
    }
  }
}

async function text(s: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(s).text().catch(() => "");
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* exited */ }
  await child.status;
  await child.stderr.cancel().catch(() => {});
}

Deno.test("shards of one run hold their locks at once; a second process of one shard is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shard_lock_" });
  const kids: Deno.ChildProcess[] = [];
  try {
    const [a, b] = [hold(dir, "0/2"), hold(dir, "1/2")];
    kids.push(a, b);
    assert.ok((await locked(a)).ok, "shard 0/2 takes its lock");
    assert.ok((await locked(b)).ok, "shard 1/2 takes its lock while 0/2 holds its own");
    assert.deepEqual([...(await shardLockHolders(dir)).keys()].sort(), ["0/2", "1/2"]);
    const again = hold(dir, "1/2");
    kids.push(again);
    const r = await locked(again);
    assert.equal(r.ok, false, "a second process of shard 1/2 must be refused");
    assert.match(r.stderr, /locked by pid \d+ .*shard 1\/2 is already running/s);
    assert.match(r.stderr, new RegExp(`${join(dir, ".run.lock.shard-1-of-2").replaceAll("/", "\\/")}`));
  } finally {
    for (const k of kids) await stop(k);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a running shard refuses an exclusive writer, and an exclusive writer refuses a shard", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shard_lock_" });
  const kids: Deno.ChildProcess[] = [];
  try {
    const s = hold(dir, "0/3");
    kids.push(s);
    assert.ok((await locked(s)).ok);
    const x = hold(dir);
    kids.push(x);
    const rx = await locked(x);
    assert.equal(rx.ok, false, "the exclusive lock must be refused while a shard runs");
    assert.match(rx.stderr, /a shard of this run is being generated/);
    assert.match(rx.stderr, /\.run\.lock\.shard-0-of-3/);
    await stop(s);
    kids.length = 0;
    // The killed shard's lock is stale now: the exclusive writer reclaims it and runs.
    const y = hold(dir);
    kids.push(y);
    const ry = await locked(y);
    assert.ok(ry.ok, `exclusive lock after the shard died: ${ry.stderr}`);
    const t = hold(dir, "2/3");
    kids.push(t);
    const rt = await locked(t);
    assert.equal(rt.ok, false, "a shard must be refused while the exclusive lock is held");
    assert.match(rt.stderr, /shard 2\/3 of test-holder cannot write while it runs/);
  } finally {
    for (const k of kids) await stop(k);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a shard lock of another host: refused while its heartbeat is fresh, reclaimed once stale", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shard_lock_" });
  const kids: Deno.ChildProcess[] = [];
  try {
    const lock = join(dir, ".run.lock.shard-1-of-2");
    const foreign = {
      pid: 4242,
      host: "node-b.cluster",
      started_at: "2026-11-29T20:00:00.000Z",
      step: "generate",
      command: "deno run … bt generate",
    };
    await Deno.writeTextFile(lock, JSON.stringify(foreign) + "\n");
    const a = hold(dir, "1/2");
    kids.push(a);
    const ra = await locked(a);
    assert.equal(ra.ok, false, "a fresh lock of another host must be refused");
    assert.match(ra.stderr, /node-b\.cluster.*cannot be checked from/s);
    // Its task died 10 minutes ago: no heartbeat since.
    const old = new Date(Date.now() - 600_000);
    await Deno.utime(lock, old, old);
    const b = hold(dir, "1/2");
    kids.push(b);
    const rb = await locked(b);
    assert.ok(rb.ok, `a stale lock of another host is reclaimed: ${rb.stderr}`);
  } finally {
    for (const k of kids) await stop(k);
    await Deno.remove(dir, { recursive: true });
  }
});
