import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { main } from "../../lib/notebook/main.ts";
import { writeFixture } from "./_helpers.ts";

function collector() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

Deno.test("main: runs notebooks in order, with --env, and prints a summary", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  try {
    const a = await writeFixture(dir, "a.ipynb", ["console.log(Deno.env.get('GREETING'))"]);
    const b = await writeFixture(dir, "b.ipynb", [{ md: "# b" }, "1 + 1"]);
    const c = collector();
    const code = await main([a, b, "--out-dir", `${dir}/out`, "--env", "GREETING=hello=world"], c.io);
    assert.equal(code, 0, c.err.join("\n"));
    assert.match(
      c.out.join("\n"),
      /\[1\/2\].*a\.ipynb[\s\S]*\[2\/2\].*b\.ipynb[\s\S]*Summary: 2 of 2 notebooks passed/,
    );
    const outA = JSON.parse(await Deno.readTextFile(`${dir}/out/a.ipynb`));
    assert.equal(outA.cells[0].outputs[0].text, "hello=world\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: usage errors exit 2", async () => {
  for (
    const args of [[], ["x.ipynb"], ["x.ipynb", "--out-dir", "o", "--timeout", "-1"], [
      "x.ipynb",
      "--out-dir",
      "o",
      "--env",
      "NOEQ",
    ], ["d1/x.ipynb", "d2/x.ipynb", "--out-dir", "o"]]
  ) {
    const c = collector();
    assert.equal(await main(args, c.io), 2, args.join(" "));
    assert.ok(c.err.length > 0);
  }
});

Deno.test("CLI: stops at the first failure, exit 1, error details on stderr", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  try {
    const bad = await writeFixture(dir, "bad.ipynb", [
      'console.log("ok")',
      'const why = "because";\nthrow new RangeError(why)',
    ]);
    const never = await writeFixture(dir, "never.ipynb", ["1"]);
    const mainPath = fileURLToPath(new URL("../../lib/notebook/main.ts", import.meta.url));
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", mainPath, bad, never, "--out-dir", `${dir}/out`, "--timeout", "60"],
      env: { NO_COLOR: "1" },
    }).output();
    const err = new TextDecoder().decode(stderr);
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 1, out + err);
    assert.match(err, /FAILED .*bad\.ipynb, cell index 1: RangeError: because/);
    assert.match(err, /--- cell source \(head\) ---\nconst why = "because";/);
    assert.match(err, /--- traceback ---\nRangeError: because/);
    assert.match(out, /Summary: 0 of 2 notebooks passed; stopped at .*bad\.ipynb/);
    assert.ok(!out.includes("never.ipynb ->"), out);
    const partial = JSON.parse(await Deno.readTextFile(`${dir}/out/bad.ipynb`));
    assert.equal(partial.cells[1].outputs.at(-1).ename, "RangeError");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Pids of processes whose parent is `ppid` and whose command line contains `needle`. */
function childrenOf(ppid: number, needle: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const parent = Number(/^PPid:\s*(\d+)/m.exec(Deno.readTextFileSync(`/proc/${e.name}/status`))?.[1]);
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0").join(" ");
      if (parent === ppid && cmd.includes(needle)) pids.push(Number(e.name));
    } catch { /* gone */ }
  }
  return pids;
}

/** Whether `pid` is alive (not gone and not a zombie). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s*Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

Deno.test("CLI: SIGINT during a cell kills the kernel and exits 130", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nbtest-" });
  try {
    const nb = await writeFixture(dir, "slow.ipynb", ["await new Promise((r) => setTimeout(r, 60000));"]);
    const mainPath = fileURLToPath(new URL("../../lib/notebook/main.ts", import.meta.url));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", mainPath, nb, "--out-dir", `${dir}/out`],
      stdout: "null",
      stderr: "null",
    }).spawn();
    let kernels: number[] = [];
    for (let i = 0; i < 200 && kernels.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      kernels = childrenOf(child.pid, "--kernel");
    }
    assert.equal(kernels.length, 1, "kernel did not start within 10 s");
    const argv = Deno.readTextFileSync(`/proc/${kernels[0]}/cmdline`).split("\0");
    const connectionFile = argv[argv.indexOf("--conn") + 1]!;
    assert.ok(Deno.statSync(connectionFile).isFile);
    await new Promise((r) => setTimeout(r, 1000)); // let the cell start
    child.kill("SIGINT");
    const status = await child.status;
    assert.equal(status.code, 130);
    for (let i = 0; i < 40 && alive(kernels[0]!); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(kernels[0]!), false, `kernel ${kernels[0]} survived SIGINT of the runner`);
    assert.throws(() => Deno.statSync(connectionFile), Deno.errors.NotFound, "connection file left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
