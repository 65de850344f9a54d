/**
 * `deno task pipeline` and `deno task notebooks`: the experiment as its notebook series, executed headlessly
 * on the real Deno Jupyter kernel (lib/notebook/runner.ts), one notebook per pipeline step.
 *
 * ```sh
 * deno task pipeline  [--config FILE] [--run-id ID] [--runs-root DIR] [--figures-dir DIR|none] [--cell-timeout S] [--force]
 * deno task notebooks [same options] [NN|NAME|PATH.ipynb ...]
 * ```
 *
 * - `pipeline`: build the model (for the organism; a real model is fetched by the first step that needs
 *   it), start a new run (or continue `--run-id`), execute every `notebooks/NN_*.ipynb` in order, copy the
 *   latest figures to `figures/`, and print where the report, figures and executed notebooks are.
 * - `notebooks`: execute the series (or the notebooks named by number or file name) on a run: a new run
 *   when the series includes 00 and no run id is given, else the current run. Any other notebook is named
 *   by its path (an argument ending in `.ipynb` that is not a series file name, or containing a `/`;
 *   relative to the directory `deno task` was called from): it runs on the current run (a new run id when
 *   there is none yet), with its own folder as the kernel's working directory as in Jupyter, and its
 *   executed copy goes to the run's `notebooks/` folder like the series'. This is the reliable headless
 *   runner for any Deno notebook: it waits for every output of a cell (stock `jupyter nbconvert --execute`
 *   can drop a cell's last outputs with this kernel) and stops at the first failing cell.
 *
 * Both take `--help` (the usage text, generated with the parser's option table: {@linkcode PIPELINE_CLI},
 * {@linkcode NOTEBOOKS_CLI}). Options fall back to the notebooks' environment variables (`BT_CONFIG`, `BT_RUN_ID`, `BT_RUNS_ROOT`,
 * `BT_FIGURES_DIR`, `BT_FORCE`), which are passed on to every kernel. Executed notebooks go to
 * `<runs root>/<run id>/notebooks/`; a failing cell stops the series with exit status 1, its error on
 * stderr and the partial notebook written. Exit status 2: bad usage.
 *
 * @module
 */

import { basename, dirname, join, relative, resolve } from "node:path";
import { loadConfig } from "./config.ts";
import { resolveModelSource } from "../../lib/engine/load.ts";
import { PROJECT_ROOT } from "./notebook_params.ts";
import { readNotebook } from "../../lib/notebook/nbformat.ts";
import { describeFailure, executeNotebook } from "../../lib/notebook/runner.ts";
import { copyFiguresToProject, newRunId, resolveRunId, validateRunId } from "./run.ts";
import {
  type CliOption,
  type CliSpec,
  closestName,
  commandList,
  defineCli,
  parseOrHelp,
  UsageError,
} from "../../lib/util/cli.ts";

/** The options `pipeline` and `notebooks` share (the notebooks' environment variables stand for them). */
const SERIES_OPTIONS = {
  config: {
    type: "string",
    short: "c",
    arg: "FILE",
    help: "The experiment config (YAML).",
    default: "configs/organism.yaml (the model organism)",
    env: "BT_CONFIG",
  },
  "run-id": { type: "string", arg: "ID", help: "The run to execute the notebooks on.", env: "BT_RUN_ID" },
  "runs-root": {
    type: "string",
    arg: "DIR",
    help: "Where run folders are made.",
    default: "runs/ in the project",
    env: "BT_RUNS_ROOT",
  },
  "figures-dir": {
    type: "string",
    arg: "DIR|none",
    help: "Where the latest figures are copied (none: nowhere).",
    default: "figures/ in the project",
    env: "BT_FIGURES_DIR",
  },
  "cell-timeout": {
    type: "string",
    arg: "SECONDS",
    help: "Time limit of one notebook cell.",
    default: "600",
  },
  force: {
    type: "boolean",
    help: "Recompute finished steps instead of reusing them.",
    env: "BT_FORCE=1 (or true)",
  },
} as const satisfies Record<string, CliOption>;

const SERIES_DETAILS = [
  "Each notebook runs on a fresh Deno kernel with the options passed on as the notebooks' environment " +
  "variables; executed notebooks go to <runs root>/<run id>/notebooks/. The runner waits for every output " +
  "of a cell (stock `jupyter nbconvert --execute` can drop a cell's last outputs with this kernel) and " +
  "stops at the first failing cell, writing the partial notebook. Exit status: 0 done, 1 a cell or step " +
  "failed, 2 bad usage.",
];

/** `deno task pipeline`: its option table (used by the parser) and usage text. */
export const PIPELINE_CLI = defineCli({
  command: "deno task pipeline",
  summary: "Run the whole experiment as its notebook series, headlessly. Builds the model organism (a real " +
    "model is fetched by the first step that needs it), starts a new run (or continues --run-id), executes " +
    "every notebooks/NN_*.ipynb in order, copies the latest figures and prints where the report, figures " +
    "and executed notebooks are.",
  options: {
    ...SERIES_OPTIONS,
    "run-id": {
      ...SERIES_OPTIONS["run-id"],
      default: "a new id (YYYYMMDD_HHMMSS) unless the config sets run.run_id",
    },
  },
  noPositionals: "pipeline runs the whole series; use `deno task notebooks NN ...` for a part",
  details: SERIES_DETAILS,
  examples: [
    "deno task pipeline",
    "deno task pipeline -c configs/r1_distill_qwen_1p5b.yaml --figures-dir none",
  ],
});

/** `deno task notebooks`: its option table (used by the parser) and usage text. */
export const NOTEBOOKS_CLI = defineCli({
  command: "deno task notebooks",
  summary: "Execute notebooks headlessly on one run. The series, some of it (by number or name), or any " +
    "Deno notebook by path: the reliable headless runner for the Deno kernel.",
  options: {
    ...SERIES_OPTIONS,
    "run-id": {
      ...SERIES_OPTIONS["run-id"],
      default: "a new run when the series includes 00, else the current run (a new one when there is none)",
    },
  },
  positionals: {
    synopsis: "[NN|NAME|PATH.ipynb ...]",
    help: "Series notebooks by number (04) or file name (04_logit_lens); any other notebook by its path " +
      "(ending in .ipynb or containing a /, relative to where deno task was called; it runs with its own " +
      "folder as working directory, as in Jupyter). None: the whole series.",
  },
  details: SERIES_DETAILS,
  examples: [
    "deno task notebooks 04",
    "deno task notebooks --run-id 20261130_021500 05 06",
    "deno task notebooks path/to/mine.ipynb",
  ],
});

const SERIES_COMMANDS: Readonly<Record<string, CliSpec>> = {
  pipeline: PIPELINE_CLI,
  notebooks: NOTEBOOKS_CLI,
};

/** The usage without a command (the module run directly): both commands. */
function seriesUsage(): string {
  return [
    "Usage: deno task pipeline [options]",
    "       deno task notebooks [options] [NN|NAME|PATH.ipynb ...]",
    "",
    "Commands:",
    commandList(SERIES_COMMANDS),
    "",
    "Run `deno task pipeline --help` or `deno task notebooks --help` for the options.",
  ].join("\n");
}

/** Where {@linkcode main} writes; defaults to the console. */
export interface PipelineIO {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

const consoleIO: PipelineIO = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Options of {@linkcode runNotebookSeries}. */
export interface SeriesOptions {
  /** Config file (absolute, or relative to the working directory). */
  readonly configPath: string;
  /**
   * Run id; undefined = a new id when the series starts with notebook 00, else the current run (a new id
   * when there is none: each notebook creates the run and runs the earlier steps it needs).
   */
  readonly runId?: string;
  /** Runs root (absolute, or relative to the working directory). */
  readonly runsRoot: string;
  /** Where make-report copies the latest figures; null = nowhere. */
  readonly figuresDir: string | null;
  /** Recompute finished steps (`BT_FORCE=1` in the kernels). */
  readonly force?: boolean;
  /** Notebook files to execute, in order (default: every `notebooks/NN_*.ipynb`). */
  readonly notebooks?: readonly string[];
  /** Per-cell time limit in seconds (default 600). */
  readonly cellTimeoutS?: number;
  readonly io?: PipelineIO;
}

/** One executed notebook. */
export interface SeriesNotebook {
  readonly input: string;
  readonly output: string;
  readonly codeCells: number;
  readonly outputs: number;
  readonly seconds: number;
}

/** Result of {@linkcode runNotebookSeries}. */
export interface SeriesResult {
  readonly runId: string;
  readonly runDir: string;
  readonly notebooksDir: string;
  readonly notebooks: SeriesNotebook[];
  /** Set when a cell failed: the notebook and the error line. */
  readonly failed?: { readonly notebook: string; readonly message: string };
  readonly seconds: number;
}

/** The notebook series of the project: `notebooks/NN_*.ipynb`, in order. */
export function seriesNotebooks(dir: string = join(PROJECT_ROOT, "notebooks")): string[] {
  return [...Deno.readDirSync(dir)].filter((e) => e.isFile && /^\d\d_.*\.ipynb$/.test(e.name)).map((e) =>
    join(dir, e.name)
  ).sort();
}

/**
 * Execute notebooks in order on one run, each on a fresh kernel.
 *
 * @param options Config, run, runs root, figures folder, notebooks, timeout.
 * @returns The run, each notebook's counts and time, and the failure if one cell failed (later notebooks
 *   are not run; the failing one is written partially).
 */
export async function runNotebookSeries(options: SeriesOptions): Promise<SeriesResult> {
  const io = options.io ?? consoleIO;
  const started = performance.now();
  const notebooks = options.notebooks ?? seriesNotebooks();
  if (notebooks.length === 0) throw new Error("No notebooks to run (notebooks/NN_*.ipynb)");
  const byName = new Map<string, string>();
  for (const p of notebooks) {
    const other = byName.get(basename(p));
    if (other !== undefined && resolve(other) !== resolve(p)) {
      throw new Error(`Notebooks "${other}" and "${p}" would both be written to notebooks/${basename(p)}`);
    }
    byName.set(basename(p), p);
  }
  const config = await loadConfig(options.configPath);
  const runsRoot = resolve(options.runsRoot);
  const startsFresh = basename(notebooks[0]!).startsWith("00_");
  // Without a current run, a new id: every notebook creates its run and runs what it needs (notebookSetup).
  const runId = options.runId !== undefined
    ? validateRunId(options.runId)
    : startsFresh
    ? (config.run.run_id ?? newRunId())
    : await resolveRunId(config, undefined, { root: runsRoot }).catch(() => config.run.run_id ?? newRunId());
  const runDir = join(runsRoot, runId);
  const notebooksDir = join(runDir, "notebooks");
  const env: Record<string, string> = {
    BT_CONFIG: resolve(options.configPath),
    BT_RUN_ID: runId,
    BT_RUNS_ROOT: runsRoot,
    BT_FIGURES_DIR: options.figuresDir === null ? "none" : resolve(options.figuresDir),
    BT_FORCE: options.force ? "1" : "0",
  };
  io.out(`run ${runId}: ${notebooks.length} notebooks → ${notebooksDir}`);
  const done: SeriesNotebook[] = [];
  for (const [i, input] of notebooks.entries()) {
    const output = join(notebooksDir, basename(input));
    let cellStart = 0;
    const slow: string[] = [];
    const result = await executeNotebook(input, {
      outputPath: output,
      env,
      cellTimeoutMs: (options.cellTimeoutS ?? 600) * 1000,
      onCell: (index, status) => {
        if (status === "running") cellStart = performance.now();
        else if (performance.now() - cellStart > 5000) {
          slow.push(`cell ${index} ${((performance.now() - cellStart) / 1000).toFixed(1)} s`);
        }
      },
    });
    const nb = await readNotebook(output);
    const outputs = nb.cells.reduce((a, c) => a + (c.cell_type === "code" ? c.outputs.length : 0), 0);
    const seconds = result.durationMs / 1000;
    done.push({ input, output, codeCells: result.executed, outputs, seconds });
    const tag = `[${String(i + 1).padStart(2)}/${notebooks.length}] ${basename(input)}`;
    if (result.failed) {
      const f = result.failed;
      const message = `${f.ename}: ${f.evalue}`;
      const [first, ...rest] = describeFailure(f, output, 12);
      io.err([`${tag}: FAILED at ${first}`, ...rest].join("\n"));
      return {
        runId,
        runDir,
        notebooksDir,
        notebooks: done,
        failed: { notebook: input, message },
        seconds: (performance.now() - started) / 1000,
      };
    }
    io.out(
      `${tag}: ${result.executed} code cells, ${outputs} outputs, ${seconds.toFixed(1)} s` +
        (slow.length ? ` (${slow.join(", ")})` : ""),
    );
  }
  return { runId, runDir, notebooksDir, notebooks: done, seconds: (performance.now() - started) / 1000 };
}

/** Whether `path` is a notebook of the project's series (`notebooks/NN_*.ipynb`). */
export function isSeriesNotebook(path: string): boolean {
  return dirname(resolve(path)) === join(PROJECT_ROOT, "notebooks") &&
    /^\d\d_.*\.ipynb$/.test(basename(path));
}

/**
 * The notebooks named on the command line, in order: series notebooks by number (`04`) or file name
 * (`04_logit_lens`, `04_logit_lens.ipynb`), any other notebook by its path.
 *
 * @param all The series (absolute paths).
 * @param wanted The arguments; none = the whole series.
 * @param cwd The directory relative paths are resolved from (the caller's, not `deno task`'s).
 * @throws {RangeError} for an unknown series name, a path that is not a file, or a file that is not `.ipynb`.
 */
export function selectNotebooks(all: readonly string[], wanted: readonly string[], cwd: string): string[] {
  if (wanted.length === 0) return [...all];
  return wanted.map((w) => {
    const inSeries = all.find((p) => basename(p) === w);
    if (inSeries) return inSeries;
    if (w.endsWith(".ipynb") || w.includes("/")) {
      const path = resolve(cwd, w);
      let info;
      try {
        info = Deno.statSync(path);
      } catch {
        throw new RangeError(`No notebook file "${path}" (from "${w}", relative to ${cwd})`);
      }
      if (!info.isFile || !path.endsWith(".ipynb")) {
        throw new RangeError(`"${path}" is not a notebook file (.ipynb)`);
      }
      return path;
    }
    const hit = all.find((p) =>
      basename(p) === w || basename(p).startsWith(/^\d+$/.test(w) ? `${w.padStart(2, "0")}_` : w)
    );
    if (!hit) {
      throw new RangeError(
        `No notebook "${w}"; the series is ${all.map((p) => basename(p)).join(", ")} ` +
          `(give other notebooks by path, e.g. ./${w}.ipynb)`,
      );
    }
    return hit;
  });
}

/**
 * The CLI.
 *
 * @param args `pipeline` or `notebooks`, then options (see the module doc).
 * @param io Output sinks.
 * @returns Exit status: 0 success, 1 a failed cell or step, 2 bad usage.
 */
export async function main(args: readonly string[], io: PipelineIO = consoleIO): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === "--help" || command === "-h") {
    io.out(seriesUsage());
    return 0;
  }
  const spec: CliSpec | undefined = command === "pipeline"
    ? PIPELINE_CLI
    : command === "notebooks"
    ? NOTEBOOKS_CLI
    : undefined;
  if (spec === undefined) {
    const guess = closestName(command, Object.keys(SERIES_COMMANDS));
    io.err(
      `Unknown command ${JSON.stringify(command)} (pipeline or notebooks)` +
        (guess ? `; did you mean ${guess}?` : "") + "\n" + seriesUsage(),
    );
    return 2;
  }
  let parsed;
  try {
    parsed = parseOrHelp(spec, rest, io);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`${command}: ${e.message}`);
    return 2;
  }
  if (parsed.help) return 0;
  const values = parsed.values as {
    readonly [K in keyof typeof SERIES_OPTIONS]?: (typeof SERIES_OPTIONS)[K]["type"] extends "boolean"
      ? boolean
      : string;
  };
  const names = parsed.positionals;
  const env = Deno.env.toObject();
  const cellTimeoutS = Number(values["cell-timeout"] ?? 600);
  if (!(cellTimeoutS > 0)) {
    io.err(
      `${command}: --cell-timeout must be a positive number of seconds, got "${values["cell-timeout"]}"\n` +
        `Run \`deno task ${command} --help\` for usage.`,
    );
    return 2;
  }
  const fromRoot = (p: string) => resolve(PROJECT_ROOT, p);
  const configPath = resolve(values.config ?? env.BT_CONFIG ?? fromRoot("configs/organism.yaml"));
  const runsRoot = resolve(values["runs-root"] ?? env.BT_RUNS_ROOT ?? fromRoot("runs"));
  const figuresArg = values["figures-dir"] ?? env.BT_FIGURES_DIR ?? fromRoot("figures");
  const figuresDir = figuresArg === "none" ? null : resolve(figuresArg);
  const runId = values["run-id"] ?? (env.BT_RUN_ID || undefined);
  const force = values.force ?? (env.BT_FORCE === "1" || env.BT_FORCE === "true");
  let notebooks: string[];
  try {
    // `deno task` runs in the project root; INIT_CWD is where it was called from.
    notebooks = selectNotebooks(seriesNotebooks(), names, env.INIT_CWD ?? Deno.cwd());
  } catch (e) {
    io.err((e as Error).message);
    return 2;
  }

  const t0 = performance.now();
  try {
    if (command === "pipeline") {
      const config = await loadConfig(configPath);
      if (config.model.source === "organism") {
        const built = await resolveModelSource({ organism: { ...config.model.organism } });
        io.out(`model organism: ${built.dir}`);
      }
    }
    const series = await runNotebookSeries({
      configPath,
      ...(runId ? { runId } : {}),
      runsRoot,
      figuresDir,
      force,
      notebooks,
      cellTimeoutS,
      io,
    });
    const cells = series.notebooks.reduce((a, n) => a + n.codeCells, 0);
    const outputs = series.notebooks.reduce((a, n) => a + n.outputs, 0);
    const summary = `${series.notebooks.length - (series.failed ? 1 : 0)} of ${notebooks.length} ` +
      `notebook${notebooks.length === 1 ? "" : "s"} passed, ${cells} code cells, ${outputs} outputs, ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    if (series.failed) {
      io.err(`FAILED: ${summary}; stopped at ${basename(series.failed.notebook)}: ${series.failed.message}`);
      return 1;
    }
    let copied = 0;
    if (command === "pipeline" && figuresDir !== null) {
      copied =
        (await copyFiguresToProject({ id: series.runId, root: runsRoot, dir: series.runDir }, figuresDir))
          .length;
    }
    io.out(await seriesSummary(series, summary, figuresDir, copied));
    return 0;
  } catch (e) {
    io.err(`${command}: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * The closing lines of `deno task pipeline` / `notebooks`: only what this run has (a series of one
 * notebook may have no report or figures yet), and the project's figures folder only when it holds this
 * run's copies.
 */
export async function seriesSummary(
  series: Pick<SeriesResult, "runDir" | "runId" | "notebooksDir">,
  summary: string,
  figuresDir: string | null,
  copied: number,
): Promise<string> {
  const rel = (p: string) => relative(Deno.cwd(), p) || ".";
  const exists = async (p: string) => {
    try {
      await Deno.stat(p);
      return true;
    } catch {
      return false;
    }
  };
  const report = join(series.runDir, "report.md");
  const figures = join(series.runDir, "figures");
  let copiesOfThisRun = false;
  if (figuresDir !== null) {
    try {
      copiesOfThisRun = (await Deno.readTextFile(join(figuresDir, ".run_id"))).trim() === series.runId;
    } catch { /* no copies */ }
  }
  return [
    `done: ${summary}`,
    ...(await exists(report) ? [`  report:             ${rel(report)}`] : []),
    ...(await exists(figures)
      ? [
        `  figures:            ${rel(figures)}` +
        (figuresDir !== null && copiesOfThisRun
          ? ` (latest copies: ${rel(figuresDir)}${copied ? `, ${copied} files` : ""})`
          : ""),
      ]
      : []),
    `  executed notebooks: ${rel(series.notebooksDir)}`,
  ].join("\n");
}
