/**
 * Notebook parameters and the few helpers the step notebooks (`notebooks/NN_*.ipynb`) share.
 *
 * Parameters come from environment variables, so a researcher can open any notebook and run it top to
 * bottom, and the headless runner (`deno task notebooks`) can pass them to every kernel:
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | `BT_CONFIG` | `configs/organism.yaml` | experiment config; a relative path is resolved from the project root |
 * | `BT_RUN_ID` | the run's current id (`<runs root>/.current_run_id`) | run to work on |
 * | `BT_RUNS_ROOT` | `<project>/runs` | runs root |
 * | `BT_FIGURES_DIR` | `<project>/figures` | where make-report copies the latest figures; `none` = nowhere |
 * | `BT_FORCE` | unset | `1`: recompute every step even when its artifacts are up to date |
 *
 * The kernel's working directory is the notebook's folder; {@linkcode notebookContext} changes it to the
 * project root so that relative paths in configs mean what they mean for `deno task bt`.
 *
 * @module
 */

import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "./config.ts";
import type { EventRow } from "./event_row.ts";
import { resolveModelSource } from "../../lib/engine/load.ts";
import type { OrganismComponent } from "../../lib/engine/organism.ts";
import type { Figure } from "./figures.ts";
import { pathExists, sha256File, writeFileAtomic } from "../../lib/util/fs.ts";
import { artifactPath, openRun } from "./run.ts";
import { lockRun, type ModelContext, openContext, type RunContext, type StepContext } from "./context.ts";
import { defaultAnalysisVariant } from "./settings.ts";
import {
  COMPARE_OUTPUTS,
  DETECT_OUTPUTS,
  FORMATTING_OUTPUTS,
  generationFile,
  LENS_OUTPUTS,
  listGenerationStores,
  PROBLEMS_FILE,
  PROTOCOL_VALIDATION_OUTPUTS,
  readEvents,
  SCAN_OUTPUTS,
} from "./artifacts/mod.ts";
import { ablationScan } from "./steps/ablation_scan.ts";
import { compareConditions } from "./steps/compare_conditions.ts";
import { protocolValidation } from "./steps/protocol_validation.ts";
import { detectEvents } from "./steps/detect_events.ts";
import { formattingSweep } from "./steps/formatting_sweep.ts";
import { initRun } from "./steps/init_run.ts";
import { logitLens } from "./steps/logit_lens.ts";
import { buildFigures, makeReport } from "./steps/make_report.ts";
import { prepareData } from "./steps/prepare_data.ts";
import { readCsv } from "../../lib/tables/table.ts";

/** The project root (the folder holding deno.json), from this module's location. */
export const PROJECT_ROOT: string = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The parameters of a notebook run. */
export interface NotebookParams {
  /** The project root (absolute). */
  readonly projectRoot: string;
  /** The config file (absolute). */
  readonly configPath: string;
  /** The run id (`BT_RUN_ID`), or undefined for the current run. */
  readonly runId: string | undefined;
  /** The runs root (absolute). */
  readonly runsRoot: string;
  /** Where make-report copies the latest figures; null = nowhere. */
  readonly figuresDir: string | null;
  /** Recompute every step even when its artifacts are up to date. */
  readonly force: boolean;
}

function fromRoot(root: string, p: string): string {
  return isAbsolute(p) ? p : resolve(root, p);
}

/**
 * The notebook parameters from environment variables (see the module doc for names and defaults).
 *
 * @param env The environment (default `Deno.env`).
 * @returns Absolute paths, the run id (undefined: current run) and the force flag.
 * @example
 * ```ts
 * const { configPath, runsRoot } = notebookParams();
 * ```
 */
export function notebookParams(env: Readonly<Record<string, string>> = Deno.env.toObject()): NotebookParams {
  const root = PROJECT_ROOT;
  const figures = env.BT_FIGURES_DIR;
  return {
    projectRoot: root,
    configPath: fromRoot(root, env.BT_CONFIG || "configs/organism.yaml"),
    runId: env.BT_RUN_ID || undefined,
    runsRoot: fromRoot(root, env.BT_RUNS_ROOT || "runs"),
    figuresDir: figures === "none" ? null : fromRoot(root, figures || "figures"),
    force: env.BT_FORCE === "1" || env.BT_FORCE === "true",
  };
}

/**
 * The context of an existing run for a notebook: the config of `BT_CONFIG`, the run of `BT_RUN_ID` (or
 * the current run) under `BT_RUNS_ROOT`. Changes the working directory to the project root.
 *
 * @param params Parameters (default {@linkcode notebookParams}).
 * @throws {Error} when there is no run yet (run notebook 00 first).
 */
export async function notebookContext(params: NotebookParams = notebookParams()): Promise<StepContext> {
  Deno.chdir(params.projectRoot);
  return await openContext(params.configPath, { runId: params.runId ?? null, root: params.runsRoot });
}

/**
 * Step `init-run` for a notebook: open the run of `BT_RUN_ID` when its folder exists (re-running the
 * notebook reuses it), otherwise create it (a new timestamp id when `BT_RUN_ID` is unset). Changes the
 * working directory to the project root.
 *
 * @param params Parameters (default {@linkcode notebookParams}).
 * @returns The context and whether the run was created now.
 */
export async function startRun(
  params: NotebookParams = notebookParams(),
): Promise<{ ctx: StepContext; created: boolean }> {
  Deno.chdir(params.projectRoot);
  const config = await loadConfig(params.configPath);
  if (params.runId !== undefined && !params.force) {
    try {
      await Deno.stat(join(params.runsRoot, params.runId, "config_resolved.yaml"));
      const run = await openRun(config, params.runId, { root: params.runsRoot });
      await Deno.writeTextFile(join(params.runsRoot, ".current_run_id"), run.id + "\n");
      return { ctx: { config, configPath: params.configPath, run }, created: false };
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const ctx = await initRun({ config, configPath: params.configPath }, {
    ...(params.runId ? { runId: params.runId } : {}),
    root: params.runsRoot,
    force: params.force,
  });
  return { ctx, created: true };
}

/** The steps {@linkcode runOrReuse} knows. */
export type ReusableStep =
  | "prepare-data"
  | "detect-events"
  | "logit-lens"
  | "ablation-scan"
  | "compare-conditions"
  | "protocol-validation"
  | "formatting-sweep"
  | "make-report";

/** What {@linkcode runOrReuse} did. */
export interface StepRun {
  readonly step: ReusableStep;
  readonly status: "ran" | "reused";
  /** Why it ran or was reused. */
  readonly reason: string;
  /** The step's output files (run-relative). */
  readonly outputs: readonly string[];
  readonly seconds: number;
}

/** Where {@linkcode runOrReuse} records the inputs a step's outputs were computed from. */
const STAMPS_DIR = ".step_inputs";

async function newestMtime(paths: readonly string[]): Promise<number> {
  let t = -Infinity;
  for (const p of paths) if (await pathExists(p)) t = Math.max(t, (await Deno.stat(p)).mtime?.getTime() ?? 0);
  return t;
}

async function oldestMtime(ctx: Pick<RunContext, "run">, outputs: readonly string[]): Promise<number> {
  let t = Infinity;
  for (const o of outputs) t = Math.min(t, (await Deno.stat(artifactPath(ctx.run, o))).mtime?.getTime() ?? 0);
  return t;
}

/** The content signature of a step's inputs: run-relative path → sha256 (or "missing"). */
async function inputSignature(
  ctx: Pick<RunContext, "run">,
  inputs: readonly string[],
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of [...inputs].sort()) {
    out[relative(ctx.run.dir, p)] = (await pathExists(p)) ? await sha256File(p) : "missing";
  }
  return out;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && !e.name.startsWith(".")) out.push(join(dir, e.name));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** A step's outputs and the inputs they must be newer than (absolute paths). */
async function stepFiles(
  ctx: RunContext,
  step: ReusableStep,
): Promise<{ outputs: readonly string[]; inputs: string[] }> {
  const at = (rel: string) => artifactPath(ctx.run, rel);
  const variantBaseline = at(generationFile(defaultAnalysisVariant(ctx.config), "baseline"));
  switch (step) {
    case "prepare-data":
      return { outputs: [PROBLEMS_FILE], inputs: [] };
    case "detect-events":
      return {
        outputs: DETECT_OUTPUTS,
        inputs: [
          at(PROBLEMS_FILE),
          ...(await listGenerationStores(ctx, { phase1Only: true })).map((s) => s.path),
        ],
      };
    case "logit-lens":
      return { outputs: LENS_OUTPUTS, inputs: [variantBaseline] };
    case "ablation-scan":
      return { outputs: SCAN_OUTPUTS, inputs: [variantBaseline] };
    case "compare-conditions":
      return { outputs: COMPARE_OUTPUTS, inputs: [at(DETECT_OUTPUTS[0])] };
    case "protocol-validation":
      return {
        outputs: PROTOCOL_VALIDATION_OUTPUTS,
        inputs: [at(SCAN_OUTPUTS[0]), at(COMPARE_OUTPUTS[1])],
      };
    case "formatting-sweep":
      return { outputs: FORMATTING_OUTPUTS, inputs: [at(DETECT_OUTPUTS[0])] };
    case "make-report":
      return { outputs: ["report.md"], inputs: await filesUnder(at("analysis")) };
  }
}

/**
 * Run a step, or reuse its artifacts when they are up to date, so that re-running a notebook skips finished
 * work instead of failing with `ArtifactExistsError`, and stale or partial outputs are replaced.
 *
 * Up to date means: every output exists and the step's inputs have the same content (sha256) as when this
 * function last ran the step (recorded in `<run>/.step_inputs/<step>.json`); for outputs made outside the
 * notebooks (the CLI, `runPipeline`), that no input is newer than the oldest output. The inputs: nothing for
 * prepare-data; problems + every Phase-1 generation store for detect-events; the analysis variant's baseline store
 * for logit-lens and ablation-scan; `backtracking_events.csv` for compare-conditions and formatting-sweep; the importance table and the
 * corrected comparison for protocol-validation;
 * every `analysis/` file for make-report. `force` (or `BT_FORCE=1`) always runs. A step that runs replaces
 * its outputs (`force: true`).
 *
 * @param ctx The run.
 * @param step The step.
 * @param options `force`; `figuresDir` for make-report (default `BT_FIGURES_DIR`).
 * @returns Whether it ran or was reused, and why.
 * @example
 * ```ts
 * const lens = await runOrReuse(ctx, "logit-lens");
 * console.log(lens.status, lens.reason);
 * ```
 */
export async function runOrReuse(
  ctx: ModelContext,
  step: ReusableStep,
  options: { readonly force?: boolean; readonly figuresDir?: string | null } = {},
): Promise<StepRun> {
  await using _lock = await lockRun(ctx, step);
  const params = notebookParams();
  const { outputs, inputs } = await stepFiles(ctx, step);
  const t0 = performance.now();
  const signature = await inputSignature(ctx, inputs);
  const stampPath = artifactPath(ctx.run, `${STAMPS_DIR}/${step}.json`);
  let reason: string;
  if (options.force ?? params.force) reason = "forced (BT_FORCE=1)";
  else {
    const missing: string[] = [];
    for (const o of outputs) if (!(await pathExists(artifactPath(ctx.run, o)))) missing.push(o);
    const stamp = await Deno.readTextFile(stampPath).then(JSON.parse).catch(() => undefined);
    if (missing.length === outputs.length) reason = "no outputs yet";
    else if (missing.length > 0) reason = `outputs missing: ${missing.join(", ")}`;
    else if (stamp !== undefined && JSON.stringify(stamp) !== JSON.stringify(signature)) {
      reason = "inputs changed since the outputs were made";
    } else if (stamp === undefined && (await newestMtime(inputs)) > (await oldestMtime(ctx, outputs))) {
      reason = "inputs newer than the outputs (made outside the notebooks)";
    } else {
      return {
        step,
        status: "reused",
        reason: stamp ? "outputs up to date (same inputs)" : "outputs newer than their inputs",
        outputs,
        seconds: (performance.now() - t0) / 1000,
      };
    }
  }
  const force = true; // existing outputs are stale, partial or to be replaced
  switch (step) {
    case "prepare-data":
      await prepareData(ctx, { force });
      break;
    case "detect-events":
      await detectEvents(ctx, { force });
      break;
    case "logit-lens":
      await logitLens(ctx, { force });
      break;
    case "ablation-scan":
      await ablationScan(ctx, { force });
      break;
    case "compare-conditions":
      await compareConditions(ctx, { force });
      break;
    case "protocol-validation":
      await protocolValidation(ctx, { force });
      break;
    case "formatting-sweep":
      await formattingSweep(ctx, { force });
      break;
    case "make-report": {
      const dir = options.figuresDir === undefined ? params.figuresDir : options.figuresDir;
      await makeReport(ctx, { force, projectFigures: dir });
      break;
    }
  }
  await Deno.mkdir(artifactPath(ctx.run, STAMPS_DIR), { recursive: true });
  await writeFileAtomic(stampPath, JSON.stringify(signature, null, 1) + "\n");
  return { step, status: "ran", reason, outputs, seconds: (performance.now() - t0) / 1000 };
}

/**
 * A run artifact parsed as JSON.
 *
 * @param ctx The run.
 * @param rel Path relative to the run folder, e.g. `analysis/selected_layers.json`.
 * @throws {Error} naming the file when it is missing or not JSON.
 */
export async function readArtifactJson<T = unknown>(ctx: Pick<RunContext, "run">, rel: string): Promise<T> {
  const path = artifactPath(ctx.run, rel);
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * A run's CSV artifact as rows for display: numeric cells become numbers, empty cells undefined.
 *
 * @param ctx The run.
 * @param rel Path relative to the run folder.
 * @param options `columns`: keep only these, in this order; `limit`: first rows only.
 */
export async function readArtifactTable(
  ctx: Pick<RunContext, "run">,
  rel: string,
  options: { readonly columns?: readonly string[]; readonly limit?: number } = {},
): Promise<Record<string, string | number | undefined>[]> {
  const { columns, records } = await readCsv(artifactPath(ctx.run, rel));
  const keep = options.columns ?? columns;
  const unknown = keep.filter((c) => !columns.includes(c));
  if (unknown.length > 0) {
    throw new RangeError(`${rel} has no column(s) ${unknown.join(", ")}; it has ${columns.join(", ")}`);
  }
  const cell = (s: string | undefined) =>
    s === undefined || s === "" ? undefined : /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s) ? Number(s) : s;
  return records.slice(0, options.limit ?? records.length).map((r) =>
    Object.fromEntries(keep.map((c) => [c, cell(r[c])]))
  );
}

/**
 * One of the report's figures, built from the run's current analysis files (the same code as
 * make-report, so the notebook shows what the report shows).
 *
 * @param ctx The run.
 * @param name Figure name, e.g. `logit_lens_by_layer`.
 * @param rows Event rows (default: read `backtracking_events.csv`).
 * @throws {RangeError} listing the figures available when `name` is not among them.
 */
export async function reportFigure(
  ctx: RunContext,
  name: string,
  rows?: readonly EventRow[],
): Promise<Figure> {
  const figures = await buildFigures(ctx, rows ?? (await readEvents(ctx.run)));
  const fig = figures.find((f) => f.name === name);
  if (!fig) {
    throw new RangeError(
      `No figure "${name}" for run ${ctx.run.id}; available: ${
        figures.map((f) => f.name).join(", ") || "none"
      }`,
    );
  }
  return fig;
}

/** The planted circuit of the model organism, by component type. */
export interface PlantedCircuit {
  readonly attn: number[];
  readonly mlp: number[];
  readonly components: readonly OrganismComponent[];
}

/**
 * The organism's planted components (from its `organism.json`), or undefined when the config's model is
 * not the organism (a real model has no known ground truth).
 *
 * @param ctx The run (only the config is used; the organism is built if needed, no model is loaded).
 */
export async function plantedCircuit(ctx: Pick<RunContext, "config">): Promise<PlantedCircuit | undefined> {
  const m = ctx.config.model;
  if (m.source !== "organism") return undefined;
  const resolved = await resolveModelSource({ organism: { ...m.organism } });
  const components = (resolved.organism as { planted: OrganismComponent[] } | undefined)?.planted ?? [];
  const layers = (c: "attn" | "mlp") => components.filter((p) => p.component === c).map((p) => p.layer);
  return { attn: layers("attn"), mlp: layers("mlp"), components };
}
