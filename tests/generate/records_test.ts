import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  compareRecordKeys,
  type GenerationRecord,
  openRecordStore,
  readStore,
  recordKey,
  serializeRecord,
  timingsPathFor,
} from "../../lib/generate/records.ts";
import { fixtureRecord } from "./_writer_script.ts";

const SCRIPT = fileURLToPath(new URL("./_writer_script.ts", import.meta.url));

async function lines(path: string): Promise<string[]> {
  return (await Deno.readTextFile(path)).split("\n").filter((l) => l !== "");
}

Deno.test("append, has, records and resume after reopening", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/g.jsonl`;
  const store = await openRecordStore(path);
  await store.append(fixtureRecord(0));
  await store.appendMany([fixtureRecord(1), fixtureRecord(2)]);
  assert.equal(store.size, 3);
  assert.ok(
    store.has({ variant: "baseline_think_newline", condition: "baseline", example_id: 0, sample_id: 1 }),
  );
  assert.ok(
    !store.has({ variant: "baseline_think_newline", condition: "baseline", example_id: "0", sample_id: 1 }),
  );
  await assert.rejects(() => store.append(fixtureRecord(1)), /already in store/);
  await assert.rejects(() => store.appendMany([fixtureRecord(5), fixtureRecord(5)]), /already in store/);
  const back = await store.records();
  assert.deepEqual(back.map((r) => r.completion), [0, 1, 2].map((i) => fixtureRecord(i).completion));
  assert.ok(back[0]!.timings.started_at, "timings merged back from the sidecar");
  await store.close();
  assert.ok(!(await Deno.readTextFile(path)).includes("started_at"), "no timings in the main file");
  assert.equal((await lines(timingsPathFor(path))).length, 3);

  const again = await openRecordStore(path);
  assert.equal(again.size, 3);
  assert.ok(again.has(fixtureRecord(2)));
  await again.append(fixtureRecord(3));
  await again.close();
  assert.equal((await readStore(path)).length, 4);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a partial trailing line is truncated away and logged", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/g.jsonl`;
  const store = await openRecordStore(path);
  await store.appendMany([fixtureRecord(0), fixtureRecord(1)]);
  await store.close();
  const whole = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, serializeRecord(fixtureRecord(2)).slice(0, 40), { append: true });
  await Deno.writeTextFile(timingsPathFor(path), '{"variant":"baseline_thi', { append: true });
  const messages: string[] = [];
  const resumed = await openRecordStore(path, { log: (m) => messages.push(m) });
  assert.equal(resumed.size, 2);
  assert.equal(messages.length, 2);
  assert.match(messages[0]!, /g\.jsonl": truncated a partial trailing line 3 \(40 bytes\)/);
  assert.equal(await Deno.readTextFile(path), whole);
  await resumed.append(fixtureRecord(2));
  await resumed.close();
  assert.deepEqual((await readStore(path)).map((r) => r.sample_id), [0, 1, 2]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a corrupt line in the middle is an error naming file and line", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/g.jsonl`;
  const good = (i: number) => serializeRecord(fixtureRecord(i)) + "\n";
  await Deno.writeTextFile(path, good(0) + good(1) + '{"example_id": 1, "sam\n' + good(3));
  await assert.rejects(() => openRecordStore(path), (e: Error) => {
    assert.match(e.message, new RegExp(`Corrupt record store "${path}": line 3 is not valid JSON`));
    return true;
  });
  await Deno.writeTextFile(path, good(0) + good(0));
  await assert.rejects(() => openRecordStore(path), /line 2 repeats the key .* of line 1/);
  await Deno.writeTextFile(path, good(0) + '{"variant":"v","condition":"c","example_id":1}\n');
  await assert.rejects(
    () => openRecordStore(path),
    /line 2: field "sample_id" must be a non-negative integer/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("finalize is byte-identical across append orders and batchings", async () => {
  const dir = await Deno.makeTempDir();
  const records = Array.from({ length: 10 }, (_, i) => fixtureRecord(i));
  const a = await openRecordStore(`${dir}/a.jsonl`);
  for (const r of records) await a.append(r);
  await a.finalize();
  const b = await openRecordStore(`${dir}/b.jsonl`);
  const shuffled = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4].map((i) => {
    // Same content, different key insertion order (as another code path might build it).
    const r = records[i]!;
    const gp = r.gen_params;
    return {
      ...r,
      gen_params: {
        do_sample: gp.do_sample,
        max_new_tokens: gp.max_new_tokens,
        top_k: gp.top_k,
        top_p: gp.top_p,
        temperature: gp.temperature,
      },
      timings: { duration_ms: 1, started_at: "x" },
    } as GenerationRecord;
  });
  await b.appendMany(shuffled.slice(0, 4));
  for (const r of shuffled.slice(4)) await b.append(r);
  await b.finalize();
  const bytesA = await Deno.readFile(`${dir}/a.jsonl`);
  assert.deepEqual(await Deno.readFile(`${dir}/b.jsonl`), bytesA);
  const keys = (await readStore(`${dir}/a.jsonl`)).map(recordKey);
  assert.deepEqual(keys, [...records].sort(compareRecordKeys).map(recordKey));
  assert.deepEqual(
    (await readStore(`${dir}/b.jsonl`, timingsPathFor(`${dir}/b.jsonl`))).map((r) => r.timings.started_at),
    Array(10).fill("x"),
    "sidecar rewritten in the same order",
  );
  await assert.rejects(() => a.append(records[0]!), /is closed/);
  // Finalizing a finalized file again changes nothing.
  const c = await openRecordStore(`${dir}/a.jsonl`);
  await c.finalize();
  assert.deepEqual(await Deno.readFile(`${dir}/a.jsonl`), bytesA);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("canonical order: numeric example ids numerically, before string ids", () => {
  const k = (example_id: number | string, sample_id = 0) => ({
    variant: "v",
    condition: "c",
    example_id,
    sample_id,
  });
  const sorted = [k("b"), k(10), k(2, 1), k("a"), k(2, 0)].sort(compareRecordKeys).map(recordKey);
  assert.deepEqual(sorted, [k(2, 0), k(2, 1), k(10), k("a"), k("b")].map(recordKey));
});

Deno.test("existing-file policies: overwrite empties, error refuses", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/g.jsonl`;
  const s = await openRecordStore(path);
  await s.append(fixtureRecord(0));
  await s.close();
  await assert.rejects(() => openRecordStore(path, { existing: "error" }), /already exists/);
  const o = await openRecordStore(path, { existing: "overwrite" });
  assert.equal(o.size, 0);
  await o.close();
  assert.equal(await Deno.readTextFile(path), "");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a missing or non-writable directory is refused before any work", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(
    () => openRecordStore(`${dir}/missing/g.jsonl`),
    /directory ".*missing" does not exist/,
  );
  await Deno.writeTextFile(`${dir}/file`, "");
  await assert.rejects(() => openRecordStore(`${dir}/file/g.jsonl`), /"[^"]*file" is not a directory/);
  if (Deno.build.os === "linux") {
    await assert.rejects(() => openRecordStore("/proc/g.jsonl"), /directory "\/proc" is not writable/);
  }
  if (Deno.uid() !== 0 && Deno.build.os !== "windows") {
    await Deno.mkdir(`${dir}/ro`);
    await Deno.chmod(`${dir}/ro`, 0o555);
    await assert.rejects(() => openRecordStore(`${dir}/ro/g.jsonl`), /directory ".*ro" is not writable/);
    await Deno.chmod(`${dir}/ro`, 0o755);
  }
  assert.deepEqual(
    [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
    Deno.uid() !== 0 ? ["file", "ro"] : ["file"],
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a SIGKILLed writer resumes to a file byte-identical to an uninterrupted run", async () => {
  const dir = await Deno.makeTempDir();
  const n = 24;
  const run = (path: string, delay: number, order: string) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", SCRIPT, path, String(n), String(delay), order],
      stdout: "piped",
      stderr: "piped",
    });

  const whole = await run(`${dir}/whole.jsonl`, 0, "forward").output();
  assert.equal(whole.code, 0, new TextDecoder().decode(whole.stderr));

  const path = `${dir}/killed.jsonl`;
  const child = run(path, 100, "forward").spawn();
  let seen = 0;
  let buffered = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  while (seen < 6) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    seen = (buffered.match(/appended/g) ?? []).length;
  }
  child.kill("SIGKILL");
  const status = await child.status;
  await reader.cancel();
  await child.stderr.cancel();
  assert.equal(status.signal, "SIGKILL");
  const partial = (await lines(path)).length;
  assert.ok(partial >= 6 && partial < n, `killed run wrote ${partial} of ${n} records`);

  const resumed = await run(path, 0, "reverse").output();
  const out = new TextDecoder().decode(resumed.stdout);
  assert.equal(resumed.code, 0, new TextDecoder().decode(resumed.stderr));
  assert.equal((out.match(/appended/g) ?? []).length, n - partial, "resume skipped the stored keys");
  assert.deepEqual(await Deno.readFile(path), await Deno.readFile(`${dir}/whole.jsonl`));
  assert.equal((await lines(timingsPathFor(path))).length, n);
  await Deno.remove(dir, { recursive: true });
});

/**
 * Mount a small tmpfs (needs root and `mount`); undefined when this machine does not allow it, and the
 * disk-full test below is then skipped with a message (it needs a real ENOSPC, not an injected one).
 */
async function smallTmpfs(kib: number): Promise<{ dir: string; unmount: () => Promise<void> } | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "bt_tmpfs_" });
  try {
    const out = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${kib}k`, "tmpfs", dir],
      stdout: "null",
      stderr: "null",
    }).output();
    if (out.success) {
      return {
        dir,
        unmount: async () => {
          await new Deno.Command("umount", { args: [dir] }).output();
          await Deno.remove(dir, { recursive: true });
        },
      };
    }
  } catch {
    // no mount binary
  }
  await Deno.remove(dir, { recursive: true });
  return undefined;
}

Deno.test("disk full while finalising: the error names the file and ENOSPC, no temp file stays", async (t) => {
  const fs = await smallTmpfs(64);
  if (!fs) {
    console.warn("skipped: cannot mount a tmpfs here (needs root); the ENOSPC case is not exercised");
    return;
  }
  try {
    const path = `${fs.dir}/g.jsonl`;
    const store = await openRecordStore(path, { timings: "drop" });
    // Fill the 64 KiB file system to about 60% with appended lines: the finalised copy cannot fit beside them.
    let i = 0;
    while ((await Deno.stat(path)).size < 38 * 1024) await store.append(fixtureRecord(i++));
    const before = await Deno.readTextFile(path);
    const err = await store.finalize().then(() => undefined, (e: Error) => e);
    assert.ok(err, "finalize on a full disk must fail");
    assert.match(err.message, new RegExp(`Cannot write ${path.replaceAll(".", "\\.")} while finalising`));
    assert.match(err.message, /No space left on device|ENOSPC|os error 28/i);
    assert.deepEqual(
      [...Deno.readDirSync(fs.dir)].map((e) => e.name).sort(),
      ["g.jsonl"],
      "no temp file left",
    );
    assert.equal(await Deno.readTextFile(path), before, "the appended records are intact");
    await t.step("after freeing space the store resumes and finalises", async () => {
      const again = await openRecordStore(path, { timings: "drop" });
      assert.equal(again.size, i);
      await Deno.writeFile(`${fs.dir}/spare`, new Uint8Array(1)); // the file system still works
      await Deno.remove(`${fs.dir}/spare`);
      await again.close();
    });
  } finally {
    await fs.unmount();
  }
});

Deno.test("temp files of a killed finalisation are reclaimed on the next open, with a message", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/g.jsonl`;
  const first = await openRecordStore(path);
  await first.append(fixtureRecord(0));
  await first.close();
  // A process that has exited stands for one killed (-9) inside finalize: its pid is dead.
  const child = new Deno.Command(Deno.execPath(), { args: ["eval", "0"], stdout: "null" }).spawn();
  const dead = child.pid;
  await child.status;
  await Deno.writeTextFile(`${path}.tmp-${dead}`, "partial");
  await Deno.writeTextFile(`${timingsPathFor(path)}.tmp-${dead}`, "partial");
  // A live process's temp file (this test runner's parent stands in) is not touched.
  const live = Deno.ppid;
  await Deno.writeTextFile(`${path}.tmp-${live}`, "in progress");
  const logs: string[] = [];
  const store = await openRecordStore(path, { log: (m) => logs.push(m) });
  await store.finalize();
  const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assert.deepEqual(left, ["g.jsonl", "g.jsonl.timings.jsonl", `g.jsonl.tmp-${live}`]);
  assert.equal(
    logs.filter((l) => /removed .*\.tmp-\d+, left by an interrupted finalisation/.test(l)).length,
    2,
  );
});
