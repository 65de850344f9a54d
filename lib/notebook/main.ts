/**
 * CLI: execute notebooks headlessly on the Deno kernel, in order, stopping at the first failure
 * (`--help`: the usage text, from the option table {@linkcode NOTEBOOK_CLI} the parser uses).
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

import { basename, join } from "node:path";
import { describeFailure, executeNotebook } from "./runner.ts";
import { defineCli, parseOrHelp, UsageError, usageError } from "../util/cli.ts";

/** The command line: the option table its parser uses and its `--help`. */
export const NOTEBOOK_CLI = defineCli({
  command: "deno run -A lib/notebook/main.ts",
  summary: "Execute notebooks headlessly on the Deno Jupyter kernel, in order, stopping at the first " +
    "failing cell. Waits for every output of a cell (stock `jupyter nbconvert --execute` can drop a " +
    "cell's last outputs with this kernel).",
  options: {
    "out-dir": {
      type: "string",
      arg: "DIR",
      required: true,
      help: "Where the executed notebooks are written (same file names; partially on failure).",
    },
    timeout: { type: "string", arg: "SECONDS", help: "Time limit of one cell.", default: "600" },
    "quiet-ms": {
      type: "string",
      arg: "MS",
      help: "How long the kernel must stay quiet after a cell's reply before its outputs count as complete.",
      default: "250",
    },
    env: {
      type: "string",
      arg: "K=V",
      multiple: true,
      help: "An environment variable for the kernels (on top of this process's environment).",
    },
  },
  positionals: { synopsis: "NOTEBOOK.ipynb...", help: "The notebooks to execute, in order.", min: 1 },
  details: [
    "Exit status: 0 when every notebook ran, 1 when a cell failed (or a kernel/notebook error), 2 bad " +
    "usage. The project's series is run by `deno task notebooks`, which also sets up the run.",
  ],
  examples: [
    "deno run -A lib/notebook/main.ts notebooks/01.ipynb notebooks/02.ipynb --out-dir out --env MODEL=tiny",
  ],
});

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
  let options;
  try {
    options = parseOptions(args, io);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(err.message);
    return 2;
  }
  if (options === undefined) return 0;
  return await runNotebooks(options, io);
}

/** The parsed command line. */
interface RunnerOptions {
  readonly inputs: readonly string[];
  readonly outDir: string;
  readonly timeoutS: number;
  readonly quietMs: number;
  readonly env: Record<string, string>;
}

/** Parse the command line; undefined after printing the help. @throws {UsageError} on bad usage. */
function parseOptions(args: readonly string[], io: MainIO): RunnerOptions | undefined {
  const parsed = parseOrHelp(NOTEBOOK_CLI, args, io);
  if (parsed.help) return undefined;
  const { values, positionals } = parsed;
  const timeoutS = values.timeout === undefined ? 600 : Number(values.timeout);
  if (!(timeoutS > 0)) {
    throw usageError(NOTEBOOK_CLI, `--timeout must be a positive number of seconds, got "${values.timeout}"`);
  }
  const quietMs = values["quiet-ms"] === undefined ? 250 : Number(values["quiet-ms"]);
  if (!(quietMs >= 0)) {
    throw usageError(NOTEBOOK_CLI, `--quiet-ms must be a non-negative number, got "${values["quiet-ms"]}"`);
  }
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw usageError(NOTEBOOK_CLI, `--env expects K=V, got "${kv}"`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { inputs: positionals, outDir: values["out-dir"]!, timeoutS, quietMs, env };
}

/** Execute the notebooks (the CLI after parsing); returns the exit status. */
async function runNotebooks(
  { inputs: positionals, outDir, timeoutS, quietMs, env }: RunnerOptions,
  io: MainIO,
): Promise<number> {
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
