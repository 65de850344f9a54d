/**
 * Find a model's files (a local folder, or a Hugging Face Hub model repo), or one file of any hub repo
 * (e.g. a dataset's Parquet file), through the standard hub cache (`models--org--name/` and
 * `datasets--org--name/`, each with `{blobs,refs,snapshots}`, shared with Python's `huggingface_hub`),
 * downloading only what is needed with `@huggingface/hub`.
 *
 * Environment (options win over it): `HF_HUB_CACHE`, else `HF_HOME` + `/hub`, else
 * `~/.cache/huggingface/hub`; `HF_TOKEN` (sent as a bearer token, never logged, written or put in an
 * error); `HF_HUB_OFFLINE` (`1`, `true`, `yes` or `on`); `HF_ENDPOINT` (a hub mirror).
 *
 * @module
 */

import {
  datasetInfo,
  downloadFileToCacheDir,
  HubApiError,
  listFiles,
  modelInfo,
  pathsInfo,
} from "@huggingface/hub";
import { mkdir, readdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";

/** Progress of one file's download. */
export interface DownloadProgress {
  /** The file's path in the repo, e.g. `model.safetensors`. */
  readonly file: string;
  /** Bytes written so far. */
  readonly loaded: number;
  /** The file's size from the hub's listing. */
  readonly total?: number;
}

/** A Hugging Face Hub repo: its kind and id (`org/name`). */
export interface HubRepo {
  readonly type: "model" | "dataset";
  readonly name: string;
}

/** Options of {@linkcode resolveHubFile} (and, with more, of {@linkcode resolveModel}). */
export interface HubOptions {
  /** Branch, tag or 40-hex commit. Default `"main"`. Ignored for local folders. */
  readonly revision?: string;
  /** Hub cache folder. Default: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  readonly cacheDir?: string;
  /** Access token (`hf_...`) for gated or private repos. Default: `HF_TOKEN`. */
  readonly token?: string;
  /** Never touch the network; use the cache only. Default: `HF_HUB_OFFLINE` is `1`/`true`/`yes`/`on`. */
  readonly offline?: boolean;
  /** The `fetch` the hub client uses (a proxy, or a fake hub in tests). Default: global `fetch`. */
  readonly fetch?: typeof fetch;
  /** Download progress. Default: one updating line on stderr (one line per file when not a terminal). */
  readonly onProgress?: (p: DownloadProgress) => void;
}

/** Options of {@linkcode resolveModel}. */
export interface ResolveModelOptions extends HubOptions {
  /**
   * Globs of further repo files to fetch besides {@linkcode DEFAULT_MODEL_FILES} (e.g. `["*.md"]`).
   * `*` and `?` do not cross `/`; `**` does. A cached snapshot is reused only if every glob matches a
   * file in it (offline: the globs are ignored).
   */
  readonly allowPatterns?: readonly string[];
}

/** Where a model's files are. */
export interface ResolvedModel {
  /** Absolute folder with config.json, weights and tokenizer files: a snapshot or the local folder. */
  readonly dir: string;
  /** The hub repo id (`org/name`); absent for local folders. */
  readonly repoId?: string;
  /** The revision asked for (default `"main"`); absent for local folders. */
  readonly revision?: string;
  /** The commit the revision resolved to; absent for local folders. */
  readonly commit?: string;
  /** `local`: a folder on disk; `cache`: a complete snapshot already cached; `download`: fetched now. */
  readonly source: "local" | "cache" | "download";
}

/** Where a hub file is. */
export interface ResolvedHubFile {
  /** Absolute path of the file in its cache snapshot (`<cache>/<type>s--org--name/snapshots/<commit>/<path>`). */
  readonly path: string;
  /** The commit the revision resolved to. */
  readonly commit: string;
  /** The revision asked for (default `"main"`). */
  readonly revision: string;
  /** `cache`: already cached (no network); `download`: fetched now. */
  readonly source: "cache" | "download";
}

/** Repo files fetched by default (globs): config, generation config, tokenizer, chat template, weights. */
export const DEFAULT_MODEL_FILES: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
  "*.safetensors",
  "model.safetensors.index.json",
];

const COMMIT_RE = /^[0-9a-f]{40}$/;
const REPO_ID_RE = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*$/;

function envVar(name: string): string | undefined {
  const v = Deno.env.get(name);
  return v === undefined || v === "" ? undefined : v;
}

function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? join(homedir(), p.slice(1)) : p;
}

/**
 * The hub cache folder.
 *
 * @param cacheDir An explicit folder (wins over the environment).
 * @returns `cacheDir`, else `HF_HUB_CACHE`, else `HF_HOME` + `/hub`, else `~/.cache/huggingface/hub`
 *   (absolute, `~` expanded).
 */
export function hubCacheDir(cacheDir?: string): string {
  const dir = cacheDir ?? envVar("HF_HUB_CACHE") ??
    join(envVar("HF_HOME") ?? join(homedir(), ".cache", "huggingface"), "hub");
  return resolve(expandHome(dir));
}

/** @returns Whether `HF_HUB_OFFLINE` is set to `1`, `true`, `yes` or `on` (any case). */
export function isOfflineEnv(): boolean {
  return ["1", "true", "yes", "on"].includes((envVar("HF_HUB_OFFLINE") ?? "").trim().toLowerCase());
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch {
    return undefined;
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await statOrUndefined(path))?.isFile ?? false;
}

function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
      if (glob[i + 1] === "/") i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * What a model folder lacks: `config.json`, `tokenizer.json`, `tokenizer_config.json`, and weights
 * (`model.safetensors.index.json` with every shard it names, or else at least one `*.safetensors`).
 * Broken symlinks count as missing.
 */
async function missingModelFiles(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) {
    if (!(await isFile(join(dir, f)))) missing.push(f);
  }
  const indexPath = join(dir, "model.safetensors.index.json");
  if (await isFile(indexPath)) {
    let shards: string[];
    try {
      const index = JSON.parse(await readFile(indexPath, "utf8")) as { weight_map?: Record<string, string> };
      shards = [...new Set(Object.values(index.weight_map ?? {}))];
    } catch {
      return [...missing, "model.safetensors.index.json (unreadable)"];
    }
    for (const s of shards) if (!(await isFile(join(dir, s)))) missing.push(s);
    if (shards.length === 0) missing.push("weight shards (model.safetensors.index.json names none)");
  } else {
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch {
      // an absent folder lacks everything: reported below
    }
    let found = false;
    for (const n of names) if (n.endsWith(".safetensors") && await isFile(join(dir, n))) found = true;
    if (!found) missing.push("*.safetensors");
  }
  return missing;
}

async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return out;
  }
  for (const e of entries) {
    const rel = prefix + e.name;
    if (e.isDirectory) out.push(...await listTree(join(dir, e.name), rel + "/"));
    else out.push(rel);
  }
  return out;
}

function isRepoId(name: string): boolean {
  return REPO_ID_RE.test(name) && !name.includes("--") && !name.includes("..");
}

/** The repo's folder in the hub cache: `<cacheDir>/<type>s--org--name`. */
function repoFolder(cacheDir: string, repo: HubRepo): string {
  return join(cacheDir, `${repo.type}s--${repo.name.split("/").join("--")}`);
}

/** The commit a revision stands for in the cache: the revision itself if a commit, else `refs/<revision>`. */
async function cachedCommit(folder: string, revision: string): Promise<string | undefined> {
  if (COMMIT_RE.test(revision)) return revision;
  let commit: string;
  try {
    commit = (await readFile(join(folder, "refs", revision), "utf8")).trim();
  } catch {
    return undefined;
  }
  return COMMIT_RE.test(commit) ? commit : undefined;
}

/** Whether to stay off the network, and why (for error messages). */
function offlineMode(option: boolean | undefined): { offline: boolean; why: string } {
  const fromEnv = option === undefined && isOfflineEnv();
  return {
    offline: option ?? fromEnv,
    why: fromEnv ? "HF_HUB_OFFLINE=1 is set" : "offline mode was requested",
  };
}

interface CachedSnapshot {
  readonly commit: string;
  readonly dir: string;
  readonly missing: readonly string[];
}

async function findCachedSnapshot(
  cacheDir: string,
  repoId: string,
  revision: string,
): Promise<CachedSnapshot | undefined> {
  const folder = repoFolder(cacheDir, { type: "model", name: repoId });
  const commit = await cachedCommit(folder, revision);
  if (commit === undefined) return undefined;
  const dir = join(folder, "snapshots", commit);
  if (!(await statOrUndefined(dir))?.isDirectory) return undefined;
  return { commit, dir, missing: await missingModelFiles(dir) };
}

function defaultProgress(): (p: DownloadProgress) => void {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return (p) => {
    const done = p.total !== undefined && p.loaded >= p.total;
    if (tty) {
      const pct = p.total ? ` ${Math.floor((100 * p.loaded) / p.total)}%` : "";
      const line = `${p.file} ${mb(p.loaded)}/${p.total === undefined ? "?" : mb(p.total)} MB${pct}`;
      Deno.stderr.writeSync(enc.encode(`\r\x1b[K${line}${done ? "\n" : ""}`));
    } else if (done) {
      Deno.stderr.writeSync(enc.encode(`downloaded ${p.file} (${mb(p.loaded)} MB)\n`));
    }
  };
}

/** The hub client's options shared by every request. */
interface ClientParams {
  readonly fetch?: typeof fetch;
  readonly accessToken?: string;
  readonly hubUrl?: string;
}

/** One download from a hub repo: the repo, the revision asked for, where it is filed, the client. */
interface HubSession {
  readonly repo: HubRepo;
  readonly revision: string;
  readonly cacheDir: string;
  /** {@linkcode repoFolder} of the repo. */
  readonly folder: string;
  readonly client: ClientParams;
  readonly report: (p: DownloadProgress) => void;
  /** What the user can do instead, appended to hub errors (e.g. `pass a local folder`). */
  readonly instead: string | undefined;
}

/**
 * Prepare downloads: the token (option, else `HF_TOKEN`), the endpoint (`HF_ENDPOINT`), the progress.
 *
 * @throws {TypeError} When the token does not start with `hf_` (the token itself is not shown).
 */
function openSession(
  repo: HubRepo,
  revision: string,
  cacheDir: string,
  options: HubOptions,
  instead?: string,
): HubSession {
  const token = options.token ?? envVar("HF_TOKEN");
  if (token !== undefined && !token.startsWith("hf_")) {
    throw new TypeError(
      `The Hugging Face token (options.token or HF_TOKEN) must start with "hf_"; fix or unset it`,
    );
  }
  const hubUrl = envVar("HF_ENDPOINT")?.replace(/\/+$/, "");
  return {
    repo,
    revision,
    cacheDir,
    folder: repoFolder(cacheDir, repo),
    client: {
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(token ? { accessToken: token } : {}),
      ...(hubUrl ? { hubUrl } : {}),
    },
    report: options.onProgress ?? defaultProgress(),
    instead,
  };
}

function describeRepo(repo: HubRepo): string {
  return `${repo.type} "${repo.name}"`;
}

/** A hub client error as a message naming the repo and what to do (the token is never shown). */
function hubError(s: HubSession, e: unknown): Error {
  const { type } = s.repo;
  const what = describeRepo(s.repo);
  const orInstead = s.instead === undefined ? "" : `, or ${s.instead}`;
  if (e instanceof HubApiError) {
    const status = e.statusCode;
    if (status === 401 || status === 403) {
      return new Error(
        `The Hugging Face Hub refused access to ${what} (HTTP ${status}); ` +
          (s.client.accessToken !== undefined
            ? `check that HF_TOKEN has read access and that you accepted the ${type}'s terms on its page`
            : `for a gated or private ${type} set HF_TOKEN to a read token (hf_...)`),
        { cause: e },
      );
    }
    if (status === 404) {
      return new Error(
        `The ${what} (revision ${s.revision}) was not found on the Hugging Face Hub (HTTP 404); check the ` +
          `${type} id and revision${orInstead}`,
        { cause: e },
      );
    }
    return new Error(`Hugging Face Hub request for ${what} (revision ${s.revision}) failed: ${e.message}`, {
      cause: e,
    });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new Error(
    `Cannot reach the Hugging Face Hub for ${what} (revision ${s.revision}): ${msg}; with the ${type} ` +
      `already cached set HF_HUB_OFFLINE=1${orInstead}`,
    { cause: e },
  );
}

/**
 * The commit of the session's revision. A branch is resolved first because the hub client would
 * otherwise file a branch's files under each file's last commit rather than the branch head.
 */
async function resolveCommit(s: HubSession): Promise<string> {
  if (COMMIT_RE.test(s.revision)) return s.revision;
  let commit: string;
  try {
    const params = { name: s.repo.name, revision: s.revision, ...s.client };
    commit = s.repo.type === "model"
      ? (await modelInfo({ ...params, additionalFields: ["sha"] })).sha
      : (await datasetInfo({ ...params, additionalFields: ["sha"] })).sha;
  } catch (e) {
    throw hubError(s, e);
  }
  if (typeof commit !== "string" || !COMMIT_RE.test(commit)) {
    throw new Error(
      `The Hugging Face Hub answered commit "${commit}" for ${describeRepo(s.repo)} (revision ` +
        `${s.revision}); retry later`,
    );
  }
  return commit;
}

/** Record `refs/<revision>` → `commit` (nothing for a commit revision). */
async function writeRef(s: HubSession, commit: string): Promise<void> {
  if (s.revision === commit) return;
  const ref = join(s.folder, "refs", s.revision);
  await mkdir(dirname(ref), { recursive: true });
  await writeFile(ref, commit);
}

/** A repo file as listed by the hub. */
interface ListedFile {
  readonly path: string;
  /** Size of the file itself (the LFS object's, not the pointer's). */
  readonly size: number;
  /** Its blob name in the cache (LFS sha256, xet hash, or git sha1), when known. */
  readonly blob: string | undefined;
}

function listedFile(
  e: { path: string; size: number; oid?: string; xetHash?: string; lfs?: { oid: string; size: number } },
): ListedFile {
  return { path: e.path, size: e.lfs?.size ?? e.size, blob: e.lfs?.oid ?? e.xetHash ?? e.oid };
}

/**
 * Download one file of `commit` into the cache (`blobs/` + a `snapshots/<commit>/` symlink), with
 * progress, and check its size against the listing.
 *
 * @returns The file's snapshot path.
 * @throws {Error} On a hub error, or a size mismatch (the bad file is removed from the cache).
 */
async function downloadOne(s: HubSession, f: ListedFile, commit: string): Promise<string> {
  s.report({ file: f.path, loaded: 0, total: f.size });
  const incomplete = f.blob === undefined ? undefined : join(s.folder, "blobs", `${f.blob}.incomplete`);
  let finished = false;
  const timer = incomplete === undefined ? undefined : setInterval(() => {
    stat(incomplete).then((st) => {
      if (!finished) s.report({ file: f.path, loaded: st.size, total: f.size });
    }, () => {});
  }, 250);
  // xet: false downloads through the hub's resolve URL (plain HTTP, the bytes of the file itself)
  // rather than reconstructing the file from xet chunks in WebAssembly; the type omits the option
  // that downloadFileToCacheDir forwards to downloadFile.
  const plainHttp = { xet: false };
  // The client announces each download with console.debug, which Deno prints on stdout: mute it.
  const debug = console.debug;
  console.debug = () => {};
  let pointer: string;
  try {
    // A commit revision makes the client file the download under snapshots/<commit>/.
    pointer = await downloadFileToCacheDir({
      repo: s.repo,
      path: f.path,
      revision: commit,
      cacheDir: s.cacheDir,
      ...s.client,
      ...plainHttp,
    });
  } catch (e) {
    throw hubError(s, e);
  } finally {
    console.debug = debug;
    finished = true;
    if (timer !== undefined) clearInterval(timer);
  }
  const actual = (await stat(pointer)).size;
  if (actual !== f.size) {
    const blob = await realpath(pointer).catch(() => undefined);
    await rm(pointer, { force: true });
    if (blob !== undefined && blob !== pointer) await rm(blob, { force: true });
    throw new Error(
      `Downloaded "${f.path}" of ${
        describeRepo(s.repo)
      } (commit ${commit}) has ${actual} bytes but the hub ` +
        `lists ${f.size}; the file was removed from the cache at ${s.cacheDir}: run again to fetch it anew`,
    );
  }
  s.report({ file: f.path, loaded: actual, total: f.size });
  return pointer;
}

function checkRepoFilePath(path: string): void {
  const parts = path.split("/");
  if (path.includes("\\") || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new TypeError(`"${path}" is not a file path inside a repo (like "main/test.parquet"); fix it`);
  }
}

/**
 * Find one file of a Hugging Face Hub repo (model or dataset) in the hub cache, downloading it when
 * needed.
 *
 * - A cached file for the revision (`refs/<revision>` → `snapshots/<commit>/<path>`, or the commit
 *   itself) is used without any network access; a cached branch is not refreshed (pass a commit, or
 *   delete `refs/<branch>`, to move on). Offline, that is all; a missing file is an error.
 * - Online, the revision is resolved to its commit, the file's size and blob name are looked up, and
 *   it is downloaded into `blobs/` with a `snapshots/<commit>/` symlink, checked against the listed
 *   size; `refs/<revision>` is written.
 *
 * @param repo The repo: `{ type: "dataset", name: "openai/gsm8k" }` lands in `datasets--openai--gsm8k/`.
 * @param path The file's path in the repo, e.g. `main/test-00000-of-00001.parquet`.
 * @param options See {@linkcode HubOptions}; each defaults to its environment variable.
 * @returns The file's absolute snapshot path, the commit, and whether it was cached.
 * @throws {Error} Naming the repo and file and what to do: the file missing from the cache when
 *   offline, a hub error (access, not found, network), a path that is not a file of the repo, or a
 *   download whose size differs from the listing (the bad file is removed).
 * @throws {TypeError} When the repo id or path is malformed, or the token does not start with `hf_`.
 *
 * @example
 * ```ts
 * const { path, commit } = await resolveHubFile(
 *   { type: "dataset", name: "openai/gsm8k" },
 *   "main/test-00000-of-00001.parquet",
 * );
 * ```
 */
export async function resolveHubFile(
  repo: HubRepo,
  path: string,
  options: HubOptions = {},
): Promise<ResolvedHubFile> {
  if ((repo.type !== "model" && repo.type !== "dataset") || !isRepoId(repo.name)) {
    throw new TypeError(
      `${JSON.stringify(repo)} is not a Hugging Face model or dataset repo like ` +
        `{ type: "dataset", name: "org/name" }; check the spelling`,
    );
  }
  checkRepoFilePath(path);
  const revision = options.revision ?? "main";
  const cacheDir = hubCacheDir(options.cacheDir);
  const { offline, why } = offlineMode(options.offline);
  const folder = repoFolder(cacheDir, repo);
  const cached = await cachedCommit(folder, revision);
  if (cached !== undefined) {
    const file = join(folder, "snapshots", cached, ...path.split("/"));
    if (await isFile(file)) return { path: file, commit: cached, revision, source: "cache" };
  }
  if (offline) {
    throw new Error(
      `File "${path}" of ${describeRepo(repo)} (revision ${revision}) is not in the Hugging Face cache at ` +
        `${cacheDir} and ${why}; run once with network access`,
    );
  }
  const s = openSession(repo, revision, cacheDir, options);
  const commit = await resolveCommit(s);
  let info: ListedFile | undefined;
  try {
    const found = await pathsInfo({ repo, paths: [path], revision: commit, ...s.client });
    const entry = found.find((e) => e.path === path && e.type === "file");
    info = entry === undefined ? undefined : listedFile(entry);
  } catch (e) {
    throw hubError(s, e);
  }
  if (info === undefined) {
    throw new Error(
      `The ${
        describeRepo(repo)
      } (revision ${revision}, commit ${commit}) has no file "${path}" on the Hugging ` +
        `Face Hub; check the file path`,
    );
  }
  const file = await downloadOne(s, info, commit);
  await writeRef(s, commit);
  return { path: resolve(file), commit, revision, source: "download" };
}

/**
 * Find a model's folder, downloading it from the Hugging Face Hub when needed.
 *
 * - A path that exists (or is written as one: absolute, `./`, `../`, `~/`) is a local folder; it must
 *   hold `config.json`.
 * - Otherwise `idOrPath` is a hub repo id (`org/name`). A complete cached snapshot for the revision
 *   (`refs/<revision>` → `snapshots/<commit>/` with config.json, weights and tokenizer files) is used
 *   without any network access. A cached branch is not refreshed: pass a commit, or delete
 *   `refs/<branch>`, to move on. Offline, that is all; a missing model is an error.
 * - Online, the revision is resolved to its commit first (the hub client would otherwise file a
 *   branch's files under each file's last commit), then {@linkcode DEFAULT_MODEL_FILES} (plus
 *   `allowPatterns`) are downloaded into `blobs/` with `snapshots/<commit>/` symlinks, each checked
 *   against the listed size, and `refs/<revision>` is written.
 *
 * @param idOrPath A local folder or a hub repo id such as `deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B`.
 * @param options See {@linkcode ResolveModelOptions}; each defaults to its environment variable.
 * @returns The folder to load (`dir`) and where it came from.
 * @throws {Error} Naming the folder, repo or file at fault and what to do: a local folder without
 *   config.json, a model missing from the cache when offline, a hub error (access, not found, network),
 *   a repo without the files the engine needs, or a download whose size differs from the listing (the
 *   bad file is removed so that the next run fetches it again).
 * @throws {TypeError} When the token does not start with `hf_`, or `idOrPath` is neither a folder nor a
 *   repo id.
 *
 * @example
 * ```ts
 * const { dir, source } = await resolveModel("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B");
 * const tokenizer = await loadTokenizer(dir);
 * ```
 */
export async function resolveModel(
  idOrPath: string,
  options: ResolveModelOptions = {},
): Promise<ResolvedModel> {
  const pathLike = isAbsolute(idOrPath) || /^\.{1,2}(\/|\\|$)/.test(idOrPath) || /^~(\/|$)/.test(idOrPath) ||
    idOrPath.includes("\\");
  const localPath = resolve(expandHome(idOrPath));
  if (pathLike || (await statOrUndefined(localPath)) !== undefined) {
    return { dir: await checkLocalFolder(localPath), source: "local" };
  }
  if (!isRepoId(idOrPath)) {
    throw new TypeError(
      `"${idOrPath}" is neither an existing folder nor a Hugging Face repo id like "org/name"; check the spelling`,
    );
  }
  const repoId = idOrPath;
  const revision = options.revision ?? "main";
  const cacheDir = hubCacheDir(options.cacheDir);
  const { offline, why } = offlineMode(options.offline);
  const extraGlobs = (options.allowPatterns ?? []).map(globToRegExp);

  const cached = await findCachedSnapshot(cacheDir, repoId, revision);
  if (cached !== undefined && cached.missing.length === 0) {
    const files = extraGlobs.length > 0 && !offline ? await listTree(cached.dir) : [];
    if (offline || extraGlobs.every((g) => files.some((f) => g.test(f)))) {
      return { dir: cached.dir, repoId, revision, commit: cached.commit, source: "cache" };
    }
  }
  if (offline) {
    if (cached !== undefined) {
      throw new Error(
        `Model "${repoId}" (revision ${revision}) in the Hugging Face cache at ${cacheDir} lacks ` +
          `${cached.missing.join(", ")} (snapshot ${cached.dir}) and ${why}; run once with network access ` +
          `or pass a local folder`,
      );
    }
    throw new Error(
      `Model "${repoId}" (revision ${revision}) is not in the Hugging Face cache at ${cacheDir} and ${why}; ` +
        `run once with network access or pass a local folder`,
    );
  }
  const session = openSession(
    { type: "model", name: repoId },
    revision,
    cacheDir,
    options,
    "pass a local folder",
  );
  return await downloadModel(session, extraGlobs);
}

async function checkLocalFolder(dir: string): Promise<string> {
  const info = await statOrUndefined(dir);
  if (info === undefined) {
    throw new Error(
      `Model folder "${dir}" does not exist; pass a folder holding config.json, *.safetensors and tokenizer ` +
        `files, or a Hugging Face repo id like "org/name"`,
    );
  }
  if (!info.isDirectory) {
    throw new Error(`"${dir}" is a file, not a model folder; pass the folder that holds it`);
  }
  if (!(await isFile(join(dir, "config.json")))) {
    throw new Error(
      `Model folder "${dir}" has no config.json; pass a Hugging Face model folder (config.json, ` +
        `*.safetensors, tokenizer.json, tokenizer_config.json)`,
    );
  }
  return dir;
}

async function downloadModel(s: HubSession, extraGlobs: readonly RegExp[]): Promise<ResolvedModel> {
  const { repo, revision } = s;
  const globs = [...DEFAULT_MODEL_FILES.map(globToRegExp), ...extraGlobs];
  const commit = await resolveCommit(s);
  const files: ListedFile[] = [];
  try {
    for await (const e of listFiles({ repo, revision: commit, recursive: true, ...s.client })) {
      if (e.type === "file" && globs.some((g) => g.test(e.path))) files.push(listedFile(e));
    }
  } catch (e) {
    throw hubError(s, e);
  }
  const names = new Set(files.map((f) => f.path));
  const lacking = ["config.json", "tokenizer.json", "tokenizer_config.json"].filter((f) => !names.has(f));
  if (![...names].some((n) => !n.includes("/") && n.endsWith(".safetensors"))) lacking.push("*.safetensors");
  if (lacking.length > 0) {
    throw new Error(
      `Hub repo "${repo.name}" (revision ${revision}, commit ${commit}) has no ${lacking.join(", ")}; this ` +
        `project needs config.json, safetensors weights, tokenizer.json and tokenizer_config.json: convert the ` +
        `checkpoint into a local folder and pass that`,
    );
  }
  for (const f of files) await downloadOne(s, f, commit);
  await writeRef(s, commit);
  return {
    dir: join(s.folder, "snapshots", commit),
    repoId: repo.name,
    revision,
    commit,
    source: "download",
  };
}
