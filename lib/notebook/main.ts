/**
 * CLI: execute notebooks headlessly on the Deno kernel, in order, stopping at the first failure.
 *
 * ```sh
 * deno run -A lib/notebook/main.ts notebooks/01.ipynb notebooks/02.ipynb --out-dir runs/notebooks \
 *   [--timeout 600] [--quiet-ms 250] [--env MODEL=tiny]...
 * ```
 *
 * Exit status: 0 when every notebook ran, 1 when a cell failed (or a kernel/notebook error), 2 on bad
 * usage. Each executed notebook goes to `<out-dir>/<file name>`, partially on failure.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import { describeFailure, executeNotebook } from "./runner.ts";

const USAGE = "Usage: deno run -A lib/notebook/main.ts <notebook.ipynb>... --out-dir <dir> " +
  "[--timeout <seconds per cell, default 600>] [--quiet-ms <ms, default 250>] [--env K=V]...";

/** Where {@linkcode main} writes; defaults to the console. */
export interface MainIO {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

const consoleIO: MainIO = { out: (l) => console.log(l), err: (l) => console.error(l) };

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Runs the CLI.
 *
 * @param args Command-line arguments (without the program name).
 * @param io Output sinks (default: stdout / stderr).
 * @returns The exit status: 0 success, 1 failure, 2 usage error.
 */
export async function main(args: readonly string[], io: MainIO = consoleIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        "out-dir": { type: "string" },
        timeout: { type: "string" },
        "quiet-ms": { type: "string" },
        env: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    io.err(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const outDir = values["out-dir"];
  if (!outDir) {
    io.err(`Missing --out-dir\n${USAGE}`);
    return 2;
  }
  if (positionals.length === 0) {
    io.err(`No notebooks given\n${USAGE}`);
    return 2;
  }
  const timeoutS = values.timeout === undefined ? 600 : Number(values.timeout);
  if (!(timeoutS > 0)) {
    io.err(`--timeout must be a positive number of seconds, got "${values.timeout}"`);
    return 2;
  }
  const quietMs = values["quiet-ms"] === undefined ? 250 : Number(values["quiet-ms"]);
  if (!(quietMs >= 0)) {
    io.err(`--quiet-ms must be a non-negative number, got "${values["quiet-ms"]}"`);
    return 2;
  }
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) {
      io.err(`--env expects K=V, got "${kv}"`);
      return 2;
    }
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const outputs = positionals.map((p) => join(outDir, basename(p)));
  const seen = new Map<string, string>();
  for (const [i, out] of outputs.entries()) {
    const other = seen.get(out);
    if (other !== undefined) {
      io.err(`Notebooks "${other}" and "${positionals[i]}" would both be written to "${out}"`);
      return 2;
    }
    seen.set(out, positionals[i]!);
  }

  const started = performance.now();
  let cellsRun = 0;
  for (const [i, input] of positionals.entries()) {
    const outputPath = outputs[i]!;
    io.out(`[${i + 1}/${positionals.length}] ${input} -> ${outputPath}`);
    let cellStart = 0;
    let result;
    try {
      result = await executeNotebook(input, {
        outputPath,
        env,
        cellTimeoutMs: timeoutS * 1000,
        quietMs,
        onCell: (index, status) => {
          if (status === "running") cellStart = performance.now();
          else io.out(`  cell ${index}: ${status} (${fmtSeconds(performance.now() - cellStart)})`);
        },
      });
    } catch (err) {
      io.err(`FAILED ${input}: ${(err as Error).message}`);
      return 1;
    }
    cellsRun += result.executed;
    const { failed } = result;
    if (failed) {
      const [first, ...rest] = describeFailure(failed, result.outputPath);
      io.err([`FAILED ${input}, ${first}`, ...rest].join("\n"));
      io.out(
        `Summary: ${i} of ${positionals.length} notebooks passed; stopped at ${input} ` +
          `(${cellsRun} code cells run, ${fmtSeconds(performance.now() - started)})`,
      );
      return 1;
    }
    io.out(
      `  done: ${result.executed} code cells of ${result.cells} cells in ${fmtSeconds(result.durationMs)}`,
    );
  }
  io.out(
    `Summary: ${positionals.length} of ${positionals.length} notebooks passed ` +
      `(${cellsRun} code cells, ${fmtSeconds(performance.now() - started)})`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
