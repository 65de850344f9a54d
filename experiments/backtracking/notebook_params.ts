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
 * | `BT_PREREQUISITES` | `run` for the organism, else `stop` | what {@linkcode notebookSetup} does about unfinished earlier steps |
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
  HEAD_OUTPUTS,
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
import { headScan } from "./steps/head_scan.ts";
import { initRun } from "./steps/init_run.ts";
import { logitLens } from "./steps/logit_lens.ts";
import { buildFigures, makeReport } from "./steps/make_report.ts";
import { prepareData } from "./steps/prepare_data.ts";
import pl from "nodejs-polars";
import { generate } from "./steps/generate.ts";
import { phase2Plan, runPhase2 } from "./steps/phase2_run.ts";

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
  /**
   * What {@linkcode notebookSetup} does about earlier steps a notebook needs (`BT_PREREQUISITES`): `run` them
   * (reusing finished ones), `stop` at the first expensive one not finished (generation, logit lens, scan,
   * Phase 2) with a message naming the notebook to run first, or undefined: `run` for the model organism,
   * `stop` for any other model.
   */
  readonly prerequisites: "run" | "stop" | undefined;
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
    prerequisites: prerequisitesMode(env.BT_PREREQUISITES),
  };
}

function prerequisitesMode(v: string | undefined): "run" | "stop" | undefined {
  if (v === undefined || v === "") return undefined;
  if (v === "run" || v === "stop") return v;
  throw new RangeError(`BT_PREREQUISITES must be "run" or "stop", not "${v}"`);
}

/** Notebook output goes to stdout (stderr renders red in Jupyter, as if it were an error). */
const notebookLog = (line: string): void => console.log(line);

/**
 * The context of an existing run for a notebook: the config of `BT_CONFIG`, the run of `BT_RUN_ID` (or
 * the current run) under `BT_RUNS_ROOT`. Changes the working directory to the project root.
 *
 * @param params Parameters (default {@linkcode notebookParams}).
 * @throws {Error} when there is no run yet (run notebook 00 first).
 */
export async function notebookContext(params: NotebookParams = notebookParams()): Promise<StepContext> {
  Deno.chdir(params.projectRoot);
  const ctx = await openContext(params.configPath, { runId: params.runId ?? null, root: params.runsRoot });
  return { ...ctx, log: notebookLog };
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
      return { ctx: { config, configPath: params.configPath, run, log: notebookLog }, created: false };
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const ctx = await initRun({ config, configPath: params.configPath, log: notebookLog }, {
    ...(params.runId ? { runId: params.runId } : {}),
    root: params.runsRoot,
    force: params.force,
  });
  return { ctx, created: true };
}

/** A step of the series that a later notebook can need, in run-log order (docs/protocol.md §2). */
export type SeriesStage =
  | "prepare-data"
  | "generate baseline"
  | "detect-events"
  | "logit-lens"
  | "ablation-scan"
  | "generate targeted_ablation"
  | "generate random_ablation"
  | "generate reference_selection_ablation"
  | "compare-conditions"
  | "protocol-validation"
  | "formatting-sweep"
  | "phase2";

/** Each stage: the notebook that runs it, and whether it is expensive on a real model (model passes). */
export const SERIES_STAGES: Readonly<Record<SeriesStage, { notebook: string; expensive: boolean }>> = {
  "prepare-data": { notebook: "01_prepare_data", expensive: false },
  "generate baseline": { notebook: "02_generate_baseline", expensive: true },
  "detect-events": { notebook: "03_detect_events", expensive: false },
  "logit-lens": { notebook: "04_logit_lens", expensive: true },
  "ablation-scan": { notebook: "05_ablation_scan", expensive: true },
  "generate targeted_ablation": { notebook: "06_generate_targeted_ablation", expensive: true },
  "generate random_ablation": { notebook: "07_generate_random_ablation", expensive: true },
  "generate reference_selection_ablation": { notebook: "07_generate_random_ablation", expensive: true },
  "compare-conditions": { notebook: "08_compare_conditions", expensive: false },
  "protocol-validation": { notebook: "08_compare_conditions", expensive: false },
  "formatting-sweep": { notebook: "09_formatting_sweep", expensive: false },
  phase2: { notebook: "11_phase2_sweeps … 14_phase2_patching", expensive: true },
};

const BASE: readonly SeriesStage[] = ["prepare-data", "generate baseline", "detect-events"];
const PHASE1: readonly SeriesStage[] = [
  ...BASE,
  "logit-lens",
  "ablation-scan",
  "generate targeted_ablation",
  "generate random_ablation",
  "generate reference_selection_ablation",
  "compare-conditions",
  "protocol-validation",
  "formatting-sweep",
];

/** Stages that exist only on a model with a known circuit (the organism): protocol validation. */
const ORGANISM_ONLY: ReadonlySet<SeriesStage> = new Set([
  "generate reference_selection_ablation",
  "protocol-validation",
]);

/**
 * What each notebook of the series needs done before its own step, by its two-digit number. Notebook 00
 * creates the run, which every other notebook does too when it is missing.
 */
export const NOTEBOOK_PREREQUISITES: Readonly<Record<string, readonly SeriesStage[]>> = {
  "00": [],
  "01": [],
  "02": ["prepare-data"],
  "03": ["prepare-data", "generate baseline"],
  "04": BASE,
  "05": BASE,
  "06": [...BASE, "ablation-scan"],
  "07": [...BASE, "ablation-scan"],
  "08": [
    ...BASE,
    "ablation-scan",
    "generate targeted_ablation",
    "generate random_ablation",
    "generate reference_selection_ablation",
  ],
  "09": BASE,
  "10": PHASE1,
  "11": [...BASE, "ablation-scan"],
  "12": [...BASE, "ablation-scan"],
  "13": [...BASE, "ablation-scan"],
  "14": [...BASE, "ablation-scan"],
  "15": [...PHASE1, "phase2"],
};

/** What {@linkcode notebookSetup} did about one earlier stage. */
export interface PrerequisiteRun {
  readonly stage: SeriesStage;
  /** The notebook that runs this stage. */
  readonly notebook: string;
  /** `ran`: (re)computed or generated now; `reused`: already finished. */
  readonly status: "ran" | "reused";
  readonly seconds: number;
}

/** Thrown by {@linkcode notebookSetup} when an expensive earlier step is unfinished in `stop` mode. */
export class PrerequisiteMissingError extends Error {
  constructor(readonly notebook: string, readonly stage: SeriesStage, message: string) {
    super(message);
    this.name = "PrerequisiteMissingError";
  }
}

/** Whether an expensive stage's outputs are already in the run (checked without loading the model). */
async function stageDone(ctx: StepContext, stage: SeriesStage): Promise<boolean> {
  const stores = (cond: string) =>
    listGenerationStores(ctx, { phase1Only: true }).then((all) =>
      all.some((s) => s.condition === cond || s.condition.startsWith(cond + "_"))
    );
  const all = async (rels: readonly string[]) => {
    for (const r of rels) if (!(await pathExists(artifactPath(ctx.run, r)))) return false;
    return true;
  };
  switch (stage) {
    case "generate baseline":
      return await pathExists(
        artifactPath(ctx.run, generationFile(defaultAnalysisVariant(ctx.config), "baseline")),
      );
    case "generate targeted_ablation":
      return await stores("targeted_ablation");
    case "generate random_ablation":
      return await stores("random_ablation");
    case "generate reference_selection_ablation":
      return await stores("reference_selection_ablation");
    case "logit-lens":
      return await all(LENS_OUTPUTS);
    case "ablation-scan":
      return await all(SCAN_OUTPUTS);
    case "phase2":
      return await pathExists(artifactPath(ctx.run, "analysis/phase2"));
    default:
      return false;
  }
}

/**
 * The run and everything a notebook needs before its own step, so each notebook runs top to bottom on its
 * own ("Run all" in Jupyter, or headless alone on a fresh run): opens the run of `BT_RUN_ID` (or the current
 * run), creating it when there is none; then, in run-log order, runs each earlier stage the notebook needs
 * ({@linkcode NOTEBOOK_PREREQUISITES}), reusing finished ones (generation resumes, analysis steps go through
 * {@linkcode runOrReuse}). With `BT_PREREQUISITES=stop` (the default for a real model, where generation
 * takes hours) an expensive stage that is not finished stops the notebook with a message naming the
 * notebook to run first; cheap stages (prepare-data, detect-events, compare-conditions, formatting-sweep)
 * always run. `BT_FORCE` does not apply here (only to the notebook's own step): earlier steps are reused
 * when up to date. Changes the working directory to the project root; log lines go to stdout.
 *
 * @param notebook The notebook's two-digit number, e.g. `"04"`.
 * @param params Parameters (default {@linkcode notebookParams}).
 * @returns The context and what was done per stage.
 * @throws {PrerequisiteMissingError} in `stop` mode, naming the notebook to run first.
 * @throws {RangeError} for an unknown notebook number.
 * @example
 * ```ts
 * const { ctx, prerequisites } = await notebookSetup("08");
 * ```
 */
export async function notebookSetup(
  notebook: string,
  params: NotebookParams = notebookParams(),
): Promise<{ ctx: StepContext; prerequisites: PrerequisiteRun[] }> {
  const needs = NOTEBOOK_PREREQUISITES[notebook];
  if (needs === undefined) {
    throw new RangeError(
      `No notebook "${notebook}" in the series; known: ${Object.keys(NOTEBOOK_PREREQUISITES).join(", ")}`,
    );
  }
  Deno.chdir(params.projectRoot);
  let runId = params.runId;
  if (runId === undefined) {
    runId = await Deno.readTextFile(join(params.runsRoot, ".current_run_id")).then((t) =>
      t.trim() || undefined
    )
      .catch(() => undefined);
  }
  const haveRun = runId !== undefined &&
    await pathExists(join(params.runsRoot, runId, "config_resolved.yaml"));
  const ctx = haveRun
    ? await notebookContext({ ...params, runId })
    : (await startRun({ ...params, runId, force: false })).ctx;
  if (!haveRun) notebookLog(`run ${ctx.run.id}: created in ${ctx.run.dir} (no run yet)`);
  const mode = params.prerequisites ?? (ctx.config.model.source === "organism" ? "run" : "stop");
  const done: PrerequisiteRun[] = [];
  for (const stage of needs) {
    if (ORGANISM_ONLY.has(stage) && ctx.config.model.source !== "organism") continue;
    const { notebook: by, expensive } = SERIES_STAGES[stage];
    if (mode === "stop" && expensive && !(await stageDone(ctx, stage))) {
      throw new PrerequisiteMissingError(
        by,
        stage,
        `Notebook ${notebook} needs step "${stage}", which has not run in run ${ctx.run.id}: run notebook ` +
          `${by} first (the series runs in number order), or set BT_PREREQUISITES=run to run it from here.`,
      );
    }
    const t0 = performance.now();
    let ran: boolean;
    switch (stage) {
      case "generate baseline":
      case "generate targeted_ablation":
      case "generate random_ablation":
      case "generate reference_selection_ablation": {
        const stores = await generate(ctx, { condition: stage.slice("generate ".length) });
        ran = stores.some((s) => s.generated > 0);
        break;
      }
      case "compare-conditions": {
        const detect = await runOrReuse(ctx, "detect-events", { force: false });
        ran = (await runOrReuse(ctx, "compare-conditions", { force: false })).status === "ran" ||
          detect.status === "ran";
        break;
      }
      case "phase2": {
        const plan = phase2Plan(ctx);
        const r = plan.sweeps || plan.continuation || plan.steering || plan.patching
          ? await runPhase2(ctx)
          : { timings: [] };
        ran = [r.sweeps, r.continuation, r.steering, r.patching].some((x) => x?.status === "ran");
        break;
      }
      default:
        ran = (await runOrReuse(ctx, stage, { force: false })).status === "ran";
    }
    const seconds = (performance.now() - t0) / 1000;
    done.push({ stage, notebook: by, status: ran ? "ran" : "reused", seconds });
    if (ran) notebookLog(`${stage} (notebook ${by}): ran now, ${seconds.toFixed(1)} s`);
  }
  return { ctx, prerequisites: done };
}

/**
 * One line on what {@linkcode notebookSetup} did, for a notebook's run table: e.g.
 * `ran now: generate baseline (02), detect-events (03); reused: prepare-data (01)`, or `none needed`. A stage
 * run by several notebooks names the range, e.g. `phase2 (11–14)`.
 */
export function earlierSteps(runs: readonly PrerequisiteRun[]): string {
  if (runs.length === 0) return "none needed";
  const numbers = (notebook: string) => {
    const nn = notebook.match(/\b\d\d(?=_)/g) ?? [notebook.slice(0, 2)];
    return nn.length > 1 ? `${nn[0]}–${nn.at(-1)}` : nn[0];
  };
  const list = (status: "ran" | "reused") =>
    runs.filter((r) => r.status === status).map((r) => `${r.stage} (${numbers(r.notebook)})`).join(", ");
  return [["ran now", list("ran")], ["reused", list("reused")]].filter(([, l]) => l).map(([k, l]) =>
    `${k}: ${l}`
  )
    .join("; ");
}

/** The steps {@linkcode runOrReuse} knows. */
export type ReusableStep =
  | "prepare-data"
  | "detect-events"
  | "logit-lens"
  | "ablation-scan"
  | "head-scan"
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
    case "head-scan":
      return { outputs: HEAD_OUTPUTS, inputs: [variantBaseline] };
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
 * for logit-lens, ablation-scan and head-scan; `backtracking_events.csv` for compare-conditions and formatting-sweep; the importance table and the
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
        seconds: Math.round(performance.now() - t0) / 1000, // ms precision: the record is shown in notebooks
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
    case "head-scan":
      await headScan(ctx, { force });
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
  return { step, status: "ran", reason, outputs, seconds: Math.round(performance.now() - t0) / 1000 };
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
 * A run's CSV artifact as a polars DataFrame (column types inferred from every row; empty cells null), the
 * notebooks' table type: filter, sort, group-by and join it, and show the result with `showTable`.
 * nodejs-polars also exposes every column as a property of the DataFrame, hiding a method of the same name
 * (a `head` column hides `DataFrame.head`): `select` the columns needed before calling such a method.
 *
 * @param ctx The run.
 * @param rel Path relative to the run folder, e.g. `analysis/backtracking_events.csv`.
 * @param options `columns`: keep only these, in this order.
 * @throws {Error} naming the file when it is missing or not CSV.
 * @throws {RangeError} naming the file and its columns when one of `columns` is not among them.
 * @example
 * ```ts
 * const lens = await readArtifactFrame(ctx, "analysis/logit_lens.csv", { columns: ["layer", "n_bt"] });
 * await showTable(lens.sort("layer").head(5));
 * ```
 */
export async function readArtifactFrame(
  ctx: Pick<RunContext, "run">,
  rel: string,
  options: { readonly columns?: readonly string[] } = {},
): Promise<pl.DataFrame> {
  const path = artifactPath(ctx.run, rel);
  let df: pl.DataFrame;
  try {
    df = pl.readCSV(await Deno.readTextFile(path), { inferSchemaLength: 1_000_000 });
  } catch (e) {
    throw new Error(`Cannot read ${path} as a table: ${(e as Error).message}`, { cause: e });
  }
  if (!options.columns) return df;
  const unknown = options.columns.filter((c) => !df.columns.includes(c));
  if (unknown.length > 0) {
    throw new RangeError(`${rel} has no column(s) ${unknown.join(", ")}; it has ${df.columns.join(", ")}`);
  }
  return df.select(...options.columns);
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
