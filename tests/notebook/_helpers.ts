/**
 * Test helpers: fixture notebooks written to temp folders, and a watch on kernel child processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type Cell,
  codeCell,
  markdownCell,
  newNotebook,
  writeNotebook,
} from "../../lib/notebook/nbformat.ts";

/** A kernel process seen while a test ran. */
export interface KernelProcess {
  readonly pid: number;
  readonly cmdline: string;
}

/** `deno jupyter --kernel` processes whose parent is this test process, read from /proc. */
export function kernelChildren(): KernelProcess[] {
  const found: KernelProcess[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
      const ppid = Number(/^PPid:\s*(\d+)/m.exec(status)?.[1]);
      if (ppid !== Deno.pid) continue;
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0").join(" ");
      if (cmdline.includes("jupyter") && cmdline.includes("--kernel")) {
        found.push({ pid: Number(entry.name), cmdline });
      }
    } catch { /* process ended while scanning */ }
  }
  return found;
}

/** Whether a process with this pid still runs the given command line. */
function stillRunning(p: KernelProcess): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${p.pid}/cmdline`).split("\0").join(" ") === p.cmdline;
  } catch {
    return false;
  }
}

/** Records the kernels started during a run (via `onCell`) and asserts they are gone afterwards. */
export class KernelWatch {
  readonly seen = new Map<number, KernelProcess>();

  /** Pass as (or call from) `onCell`: records the kernel children alive at that moment. */
  readonly onCell = (): void => {
    for (const p of kernelChildren()) this.seen.set(p.pid, p);
  };

  /** Asserts at least one kernel was seen and none of them (by pid + connection file) still runs. */
  assertAllGone(): void {
    assert.ok(this.seen.size > 0, "no kernel process was observed during the run");
    for (const p of this.seen.values()) {
      assert.ok(p.cmdline.includes("--conn"), `kernel ${p.pid} has no --conn argument: ${p.cmdline}`);
      assert.equal(stillRunning(p), false, `kernel ${p.pid} (${p.cmdline}) is still running`);
    }
  }
}

/** Cell shorthand for fixtures: a string is a code cell, `{md}` a markdown cell. */
export type FixtureCell = string | { readonly md: string };

/**
 * Writes a fixture notebook into `dir`.
 *
 * @returns The notebook's path.
 */
export async function writeFixture(
  dir: string,
  name: string,
  cells: readonly FixtureCell[],
): Promise<string> {
  const path = `${dir}/${name}`;
  const built: Cell[] = cells.map((c) => typeof c === "string" ? codeCell(c) : markdownCell(c.md));
  await writeNotebook(path, newNotebook(built));
  return path;
}
