import assert from "node:assert/strict";
import { Kernel, KernelError } from "../../lib/notebook/kernel.ts";

/** Children of this process whose command line contains `needle`. */
function childrenMatching(needle: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const ppid = Number(/^PPid:\s*(\d+)/m.exec(Deno.readTextFileSync(`/proc/${e.name}/status`))?.[1]);
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0").join(" ");
      if (ppid === Deno.pid && cmd.includes(needle)) pids.push(Number(e.name));
    } catch { /* gone */ }
  }
  return pids;
}

async function fakeKernel(dir: string, script: string): Promise<string> {
  const path = `${dir}/fake-deno.sh`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${script}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("Kernel.start: a kernel that never answers times out with its stderr tail, and is killed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  try {
    const denoPath = await fakeKernel(dir, 'echo "fake kernel is stuck" >&2\nexec sleep 31');
    await assert.rejects(
      Kernel.start({ cwd: dir, denoPath, startupTimeoutMs: 1500 }),
      (err: Error) =>
        err instanceof KernelError && err.message.includes(dir) && /never opened port/.test(err.message) &&
        err.stderrTail.includes("fake kernel is stuck"),
    );
    assert.deepEqual(childrenMatching("sleep 31"), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Kernel.start: a kernel that exits at once reports its exit and output", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  try {
    const denoPath = await fakeKernel(dir, 'echo "error: no such flag" >&2\nexit 7');
    await assert.rejects(
      Kernel.start({ cwd: dir, denoPath, startupTimeoutMs: 10_000 }),
      (err: Error) =>
        err instanceof KernelError && /exited during startup/.test(err.message) &&
        err.message.includes("error: no such flag"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Kernel: real kernel answers, shutdown kills it and removes the connection file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  const kernel = await Kernel.start({ cwd: dir });
  try {
    assert.equal((kernel.kernelInfo.language_info as { name: string }).name, "typescript");
    const cmd = Deno.readTextFileSync(`/proc/${kernel.pid}/cmdline`).split("\0");
    assert.deepEqual(cmd.slice(1, 5), ["jupyter", "--kernel", "--conn", kernel.connectionFile]);
    const header = await kernel.request("execute_request", { code: "6 * 7", silent: false });
    let result: unknown;
    while (result === undefined) {
      const event = await kernel.next(10_000);
      assert.ok(event, "no message within 10 s");
      if (event.kind === "iopub" && event.msg.header.msg_type === "execute_result") {
        assert.equal(event.msg.parent_header.msg_id, header.msg_id);
        result = (event.msg.content.data as Record<string, unknown>)["text/plain"];
      }
    }
    assert.equal(result, "42");
    assert.equal(kernel.droppedMessages, 0);
  } finally {
    await kernel.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(kernel.exited, true);
  assert.throws(() => Deno.statSync(kernel.connectionFile), Deno.errors.NotFound);
  assert.throws(() => Deno.statSync(`/proc/${kernel.pid}/cmdline`), Deno.errors.NotFound);
});
