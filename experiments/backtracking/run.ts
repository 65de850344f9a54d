/**
 * The run folder: `<root>/<run_id>/` holding everything one run produced (docs/protocol.md §2), its
 * provenance (`meta.json`), and safe artifact writes.
 *
 * Layout:
 *
 * ```
 * <root>/<run_id>/
 *   config_resolved.yaml                    full resolved config (our extensions and phase2 included)
 *   meta.json                               provenance, updated as steps learn more (model, data, device)
 *   data/problems.jsonl                     the problems this run used (prepare-data)
 *   generations/<variant>/<condition>.jsonl generation record stores (resumable)
 *   analysis/*.csv|json                     tables
 *   figures/*.svg|png                       figures (also copied to the project's figures/ for the latest run)
 *   report.md                               the report
 *   notebooks/                              executed notebooks
 * <root>/.current_run_id                    the latest run id
 * ```
 *
 * The root is `run.output_dir` (default `runs`, relative to the working directory), or an explicit
 * `root` option. Run-id resolution (docs/protocol.md §2): an explicit id, then `run.run_id` in the config,
 * then the content of `<root>/.current_run_id`, else an error.
 *
 * Artifacts are written atomically (temp file + rename) and a finished artifact is never silently
 * replaced: {@linkcode writeArtifact} refuses unless `overwrite: true` (the CLI's `--force`).
 *
 * @module
 */

import { pathExists, writeFileAtomic } from "../../lib/util/fs.ts";
import { dirname, isAbsolute, join, normalize, relative, resolve } from "node:path";
import type { Config } from "./config.ts";
import { resolvedConfigYaml } from "./config.ts";
import { acquireRunLock } from "../../lib/util/run_lock.ts";

/** An open run folder. */
export interface Run {
  /** The run id (folder name). */
  readonly id: string;
  /** The runs root folder (absolute). */
  readonly root: string;
  /** The run folder (absolute). */
  readonly dir: string;
}

/** Provenance of a run (`meta.json`); later steps add to it through {@linkcode updateMeta}. */
export interface RunMeta {
  run_id: string;
  /** Local ISO time with offset when the run was created. */
  timestamp: string;
  /** When meta.json was last updated. */
  updated_at: string;
  /** The first 8 hex digits of HEAD (the reference's field), or "unknown" outside a git repo. */
  git_sha: string;
  git_sha_full: string;
  /** Whether the work tree had uncommitted changes; undefined outside a repo. */
  git_dirty: boolean | "unknown";
  hostname: string;
  /** The model id from the config (`model.source`). */
  model_id: string;
  /** The config path as given. */
  config_path: string | null;
  protocol: string;
  versions: Record<string, string>;
  /** Filled when a step loads the model. */
  model?: Record<string, unknown>;
  /** Filled when prepare-data runs. */
  data?: Record<string, unknown>;
  /** Execution provider actually used and why (filled when the model is loaded). */
  execution_provider?: { requested: string; used: string; reason: string };
  /** Other step records, keyed by step name. */
  steps?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A refused overwrite of a finished artifact. */
export class ArtifactExistsError extends Error {
  constructor(readonly path: string) {
    super(
      `${path} already exists; refusing to overwrite a finished artifact (pass --force / overwrite: true)`,
    );
    this.name = "ArtifactExistsError";
  }
}

const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const CURRENT = ".current_run_id";

/**
 * Check a run id: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
 * @throws {RangeError} naming the id.
 */
export function validateRunId(id: string): string {
  if (!RUN_ID_RE.test(id) || id.length > 128) {
    throw new RangeError(
      `Invalid run id ${JSON.stringify(id)}: use letters, digits, ".", "_" or "-" (e.g. 20250101_120000)`,
    );
  }
  return id;
}

/** A new run id from local time: `YYYYMMDD_HHMMSS`. */
export function newRunId(now: Date = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(now.getFullYear(), 4)}${p(now.getMonth() + 1)}${p(now.getDate())}_${p(now.getHours())}${
    p(now.getMinutes())
  }${p(now.getSeconds())}`;
}

/** Local ISO timestamp with offset and milliseconds, e.g. `2025-12-23T23:25:41.123+01:00`. */
export function localIsoTimestamp(now: Date = new Date()): string {
  const p = (n: number, w = 2) => String(Math.abs(n)).padStart(w, "0");
  const off = -now.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  return `${p(now.getFullYear(), 4)}-${p(now.getMonth() + 1)}-${p(now.getDate())}T${p(now.getHours())}:${
    p(now.getMinutes())
  }:${p(now.getSeconds())}.${p(now.getMilliseconds(), 3)}${sign}${p(Math.trunc(off / 60))}:${p(off % 60)}`;
}

/** Options shared by run-folder functions. */
export interface RunRootOptions {
  /** The runs root; default `config.run.output_dir` (`runs`), relative to the working directory. */
  readonly root?: string;
}

/** The runs root for a config. */
export function runsRoot(config: Config, options: RunRootOptions = {}): string {
  return resolve(options.root ?? config.run.output_dir);
}

/**
 * Resolve the run id (docs/protocol.md §2): `explicit`, then `config.run.run_id`, then
 * `<root>/.current_run_id`.
 *
 * @throws {Error} when none gives an id (says to run `init-run` or pass `--run-id`).
 */
export async function resolveRunId(
  config: Config,
  explicit?: string | null,
  options: RunRootOptions = {},
): Promise<string> {
  if (explicit) return validateRunId(explicit);
  if (config.run.run_id) return validateRunId(config.run.run_id);
  const root = runsRoot(config, options);
  const file = join(root, CURRENT);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `No run id: no --run-id, no run.run_id in the config, and no ${file}; run \`bt init-run\` first ` +
          `or pass --run-id`,
      );
    }
    throw e;
  }
  const id = text.trim();
  try {
    return validateRunId(id);
  } catch (e) {
    throw new Error(`${file} holds an invalid run id: ${(e as Error).message}; run \`bt init-run\` again`, {
      cause: e,
    });
  }
}

/** Options of {@linkcode createRun}. */
export interface CreateRunOptions extends RunRootOptions {
  /** The run id; default `config.run.run_id`, else a new `YYYYMMDD_HHMMSS` id. */
  readonly runId?: string | null;
  /** The config path as given (recorded in meta.json). */
  readonly configPath?: string | null;
  /** Re-initialise an existing run folder (rewrites config_resolved.yaml and meta.json; keeps artifacts). */
  readonly force?: boolean;
  /** Clock, for tests. */
  readonly now?: Date;
  /** Folder whose git state is recorded; default the working directory. */
  readonly gitDir?: string;
}

/**
 * Create a run folder (`init-run`): the folder, `config_resolved.yaml` (with `run.run_id` filled in),
 * `meta.json`, and `<root>/.current_run_id`.
 *
 * @param config The resolved config.
 * @param options Run id, root, config path, force.
 * @returns The run.
 * @throws {Error} when the run folder already has a config_resolved.yaml and `force` is not set.
 * @throws {RunLockedError} when another process holds the run's lock (`lib/run_lock.ts`).
 */
export async function createRun(config: Config, options: CreateRunOptions = {}): Promise<Run> {
  const root = runsRoot(config, options);
  const now = options.now ?? new Date();
  const id = validateRunId(options.runId ?? config.run.run_id ?? newRunId(now));
  const run: Run = { id, root, dir: join(root, id) };
  const cfgPath = join(run.dir, "config_resolved.yaml");
  if (await pathExists(cfgPath) && !options.force) {
    throw new Error(
      `Run folder ${run.dir} already exists (config_resolved.yaml present); pass --force to re-initialise ` +
        `it or choose another --run-id`,
    );
  }
  await Deno.mkdir(run.dir, { recursive: true });
  await using _lock = await acquireRunLock(run.dir, { step: "init-run" });
  if (await pathExists(cfgPath) && !options.force) {
    throw new Error(`Run folder ${run.dir} was just initialised by another process; choose another --run-id`);
  }
  const withId = { ...config, run: { ...config.run, run_id: id } } as Config;
  await writeFileAtomic(cfgPath, resolvedConfigYaml(withId));
  const meta = await baseMeta(config, run, options.configPath ?? null, now, options.gitDir);
  await writeFileAtomic(join(run.dir, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
  await writeFileAtomic(join(root, CURRENT), id + "\n");
  return run;
}

/**
 * Open an existing run folder, resolving the id as in {@linkcode resolveRunId}.
 *
 * @throws {Error} when the folder does not exist (says to run `init-run`).
 */
export async function openRun(
  config: Config,
  runId?: string | null,
  options: RunRootOptions = {},
): Promise<Run> {
  const root = runsRoot(config, options);
  const id = await resolveRunId(config, runId, options);
  const dir = join(root, id);
  if (!(await pathExists(dir))) {
    throw new Error(`Run folder ${dir} does not exist; run \`bt init-run --run-id ${id}\` first`);
  }
  return { id, root, dir };
}

/**
 * The absolute path of an artifact inside the run folder.
 *
 * @param run The run.
 * @param relativePath A path relative to the run folder, e.g. `analysis/logit_lens.csv`.
 * @throws {RangeError} when the path is absolute or leaves the run folder.
 */
export function artifactPath(run: Run, relativePath: string): string {
  if (isAbsolute(relativePath)) {
    throw new RangeError(`Artifact path ${JSON.stringify(relativePath)} must be relative to the run folder`);
  }
  const full = normalize(join(run.dir, relativePath));
  const rel = relative(run.dir, full);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw new RangeError(`Artifact path ${JSON.stringify(relativePath)} leaves the run folder ${run.dir}`);
  }
  return full;
}

/** Options of {@linkcode writeArtifact}. */
export interface WriteArtifactOptions {
  /** Replace an existing artifact. Default false: an existing file is an {@linkcode ArtifactExistsError}. */
  readonly overwrite?: boolean;
}

/**
 * Write an artifact atomically (temp file in the same folder, then rename), creating its folder.
 * Strings are written as UTF-8; other non-binary values as indented JSON with a trailing newline.
 *
 * @param run The run.
 * @param relativePath Path relative to the run folder.
 * @param data Text, bytes, or a JSON-serialisable value.
 * @param options `overwrite` (default false).
 * @returns The absolute path written.
 * @throws {ArtifactExistsError} when the file exists and `overwrite` is not set.
 */
export async function writeArtifact(
  run: Run,
  relativePath: string,
  data: string | Uint8Array | unknown,
  options: WriteArtifactOptions = {},
): Promise<string> {
  const path = artifactPath(run, relativePath);
  if (!options.overwrite && await pathExists(path)) throw new ArtifactExistsError(path);
  await Deno.mkdir(dirname(path), { recursive: true });
  const payload = typeof data === "string" || data instanceof Uint8Array
    ? data
    : JSON.stringify(data, null, 2) + "\n";
  await writeFileAtomic(path, payload);
  return path;
}

/**
 * Check before expensive work that artifacts may be written (so a refusal comes before, not after).
 *
 * @throws {ArtifactExistsError} for the first existing one when `overwrite` is not set.
 */
export async function assertWritable(
  run: Run,
  relativePaths: readonly string[],
  options: WriteArtifactOptions = {},
): Promise<void> {
  if (options.overwrite) return;
  for (const r of relativePaths) {
    const p = artifactPath(run, r);
    if (await pathExists(p)) throw new ArtifactExistsError(p);
  }
}

/** Read `meta.json` of a run. */
export async function readMeta(run: Run): Promise<RunMeta> {
  const path = join(run.dir, "meta.json");
  try {
    return JSON.parse(await Deno.readTextFile(path)) as RunMeta;
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as Error).message}; run \`bt init-run\` again`, { cause: e });
  }
}

let metaQueue: Promise<unknown> = Promise.resolve();

/**
 * Merge fields into `meta.json` (top-level keys replaced; `steps` merged by step name) atomically.
 * Updates within one process are serialised.
 *
 * @returns The updated meta.
 */
export function updateMeta(run: Run, patch: Partial<RunMeta>): Promise<RunMeta> {
  const next = metaQueue.then(async () => {
    const meta = await readMeta(run);
    const steps = patch.steps ? { ...(meta.steps ?? {}), ...patch.steps } : meta.steps;
    const merged: RunMeta = {
      ...meta,
      ...patch,
      ...(steps ? { steps } : {}),
      updated_at: localIsoTimestamp(),
    };
    await writeFileAtomic(join(run.dir, "meta.json"), JSON.stringify(merged, null, 2) + "\n");
    return merged;
  });
  metaQueue = next.catch(() => {});
  return next;
}

/** Git HEAD and dirty flag of a folder, via the `git` binary; "unknown" when unavailable. */
export async function gitState(
  dir: string = Deno.cwd(),
): Promise<{ sha: string; short: string; dirty: boolean | "unknown" }> {
  const git = async (...args: string[]): Promise<string | undefined> => {
    try {
      const out = await new Deno.Command("git", {
        args: ["-C", dir, ...args],
        stdout: "piped",
        stderr: "null",
      })
        .output();
      return out.success ? new TextDecoder().decode(out.stdout) : undefined;
    } catch {
      return undefined;
    }
  };
  const sha = (await git("rev-parse", "HEAD"))?.trim();
  if (!sha) return { sha: "unknown", short: "unknown", dirty: "unknown" };
  const status = await git("status", "--porcelain", "--untracked-files=no");
  return { sha, short: sha.slice(0, 8), dirty: status === undefined ? "unknown" : status.trim() !== "" };
}

/**
 * Versions of the runtime and of the pinned libraries, as declared in the project's `deno.json` imports
 * (installs are frozen to the lockfile, so the declared pin is what runs).
 */
export async function libraryVersions(): Promise<Record<string, string>> {
  const versions: Record<string, string> = {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
  };
  try {
    const denoJson = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
    const wanted: Record<string, string> = {
      "onnxruntime-node": "onnxruntime",
      "nodejs-polars": "polars",
      "@huggingface/transformers": "transformers",
      "@huggingface/hub": "hub",
      "@observablehq/plot": "plot",
    };
    for (const [pkg, label] of Object.entries(wanted)) {
      const spec = denoJson.imports?.[pkg];
      const m = typeof spec === "string" ? /@([^@/]+)$/.exec(spec) : null;
      if (m) versions[label] = m[1]!;
    }
  } catch {
    // deno.json unreadable: runtime versions only
  }
  return versions;
}

async function baseMeta(
  config: Config,
  run: Run,
  configPath: string | null,
  now: Date,
  gitDir?: string,
): Promise<RunMeta> {
  const git = await gitState(gitDir);
  let hostname = "unknown";
  try {
    hostname = Deno.hostname();
  } catch {
    // no --allow-sys
  }
  const ts = localIsoTimestamp(now);
  return {
    run_id: run.id,
    timestamp: ts,
    updated_at: ts,
    git_sha: git.short,
    git_sha_full: git.sha,
    git_dirty: git.dirty,
    hostname,
    model_id: config.model.source,
    config_path: configPath,
    protocol: config.protocol,
    versions: await libraryVersions(),
  };
}

/**
 * Copy a run's figures to a project-level folder (default `figures/`), replacing older copies of the same
 * names, so that the folder shows the latest run. When the folder holds an earlier copy (its `.run_id`
 * marker), figures of that copy that the run does not have (e.g. a Phase-2 figure of a run with Phase 2 on)
 * are removed, so the folder never mixes two runs; other files are left alone.
 *
 * @param run The run.
 * @param target Destination folder; default `figures` in the working directory.
 * @returns The copied paths.
 */
export async function copyFiguresToProject(run: Run, target = "figures"): Promise<string[]> {
  const src = join(run.dir, "figures");
  if (!(await pathExists(src))) return [];
  await Deno.mkdir(target, { recursive: true });
  const isFigure = (name: string) => /\.(svg|png)$/.test(name);
  const names = new Set<string>();
  for await (const e of Deno.readDir(src)) if (e.isFile && isFigure(e.name)) names.add(e.name);
  if (await pathExists(join(target, ".run_id"))) {
    for await (const e of Deno.readDir(target)) {
      if (e.isFile && isFigure(e.name) && !names.has(e.name)) await Deno.remove(join(target, e.name));
    }
  }
  const out: string[] = [];
  for (const name of [...names].sort()) {
    const dest = join(target, name);
    await writeFileAtomic(dest, await Deno.readFile(join(src, name)));
    out.push(dest);
  }
  await writeFileAtomic(join(target, ".run_id"), run.id + "\n");
  return out.sort();
}
