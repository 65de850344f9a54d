/**
 * One call to get a model and its tokenizer from a hub id, a local folder, or the built-in model
 * organism, with the provenance a run records (commit, weight-file hashes, execution provider).
 *
 * @example
 * ```ts
 * const loaded = await loadModel("organism", { device: "cpu" });
 * loaded.model.device.used; // "cpu"
 * await loaded.model.dispose();
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { type DeviceRequest, type EngineRuntime, HookedModel } from "./hooked_model.ts";
import type { ComputeDtype } from "./graph.ts";
import { type DownloadProgress, resolveModel } from "./hub.ts";
import { loadTokenizer, type Tokenizer } from "./tokenizer.ts";
import { sha256File, writeFileAtomic } from "../util/fs.ts";
import { defaultCacheDir } from "./graph_folder.ts";
import { buildOrganism, type BuildOrganismOptions, readOrganismManifest } from "./organism.ts";

/** Options of the built-in model organism (passed through to its builder). */
export type OrganismOptions = Readonly<Record<string, unknown>>;

/** What {@linkcode loadModel} accepts: a hub id, a local folder, `"organism"`, or organism options. */
export type ModelSource = string | { readonly organism: OrganismOptions };

/** Options of {@linkcode loadModel}. */
export interface LoadModelOptions {
  /** Hub revision (branch, tag or commit). Default the default branch. */
  readonly revision?: string | null;
  /** Execution provider request. Default `"auto"`. */
  readonly device?: DeviceRequest;
  /** Hub cache folder (see `resolveModel`). */
  readonly cacheDir?: string;
  /** Cache only, no network. Default `HF_HUB_OFFLINE`. */
  readonly offline?: boolean;
  /** Hub token. Default `HF_TOKEN`. */
  readonly token?: string;
  /** Download progress. */
  readonly onProgress?: (p: DownloadProgress) => void;
  /** Intra-op threads (default all cores). */
  readonly threads?: number;
  /** Graph precision (`HookedModel.load`'s `computeDtype`): "bf16" for GPUs; default "fp32". */
  readonly computeDtype?: ComputeDtype;
  /** ONNX Runtime binding (`HookedModel.load`'s `runtime`; default its default). */
  readonly runtime?: EngineRuntime;
  /** Compute sha256 of each weight file (streamed; ~seconds per GB). Default true. */
  readonly hashWeights?: boolean;
  /** Parent folder of organism builds (`buildOrganism`'s `cacheDir`; default its own cache). */
  readonly organismDir?: string;
}

/** A loaded model with its tokenizer and provenance. */
export interface LoadedModel {
  readonly model: HookedModel;
  readonly tokenizer: Tokenizer;
  /** The checkpoint folder. */
  readonly dir: string;
  /** Hub id, local path, or `"organism"`. */
  readonly modelId: string;
  readonly revision: string | undefined;
  readonly commit: string | undefined;
  /** `local`, `cache`, `download`, or `organism`. */
  readonly source: "local" | "cache" | "download" | "organism";
  /** sha256 per safetensors file name. */
  readonly weightHashes?: Readonly<Record<string, string>>;
  /** The organism's manifest (`organism.json`) when the source is the organism. */
  readonly organism?: Readonly<Record<string, unknown>>;
}

/**
 * sha256 of every `*.safetensors` file in a folder, for provenance. Files of a Hugging Face cache snapshot
 * resolve to `blobs/<sha256>`, their content address, which is used as is; other files are hashed once
 * (streamed) and remembered in `<cacheDir>/weight-hashes.json` by path, size and modification time, so
 * every step and notebook that loads a multi-GB model does not read it again.
 *
 * @param dir A checkpoint folder.
 * @param cacheDir Where the hash memo lives (default: the graph cache, `$BT_CACHE_DIR`).
 * @returns File name → lowercase hex digest, sorted by name.
 */
export async function weightFileHashes(
  dir: string,
  cacheDir = defaultCacheDir(),
): Promise<Record<string, string>> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".safetensors") && (e.isFile || e.isSymlink)) names.push(e.name);
  }
  names.sort();
  const memoPath = join(cacheDir, "weight-hashes.json");
  let memo: Record<string, string> = {};
  try {
    memo = JSON.parse(await Deno.readTextFile(memoPath)) as Record<string, string>;
  } catch {
    // no memo yet (or unreadable): hash afresh
  }
  let added = false;
  const out: Record<string, string> = {};
  for (const n of names) {
    const real = await Deno.realPath(join(dir, n));
    const blob = /\/blobs\/([0-9a-f]{64})$/.exec(real);
    if (blob) {
      out[n] = blob[1]!;
      continue;
    }
    const st = await Deno.stat(real);
    const key = `${real}|${st.size}|${st.mtime?.getTime() ?? 0}`;
    if (memo[key] === undefined) {
      memo[key] = await sha256File(real);
      added = true;
    }
    out[n] = memo[key]!;
  }
  if (added) {
    // A memo that cannot be written only costs a re-hash next time.
    await writeFileAtomic(memoPath, JSON.stringify(memo, null, 1) + "\n", { createDir: true }).catch(
      () => {},
    );
  }
  return out;
}

/** Where a model source's files are (no model loaded). */
export interface ResolvedSource {
  readonly dir: string;
  readonly modelId: string;
  readonly revision: string | undefined;
  readonly commit: string | undefined;
  readonly source: LoadedModel["source"];
  readonly organism?: Record<string, unknown>;
}

/**
 * Find (download, or build for the organism) a model source's folder without loading it.
 *
 * @param source Hub id, local folder, `"organism"`, or `{organism: options}`.
 * @param options Revision, cache, offline, token, progress, organismDir.
 */
export async function resolveModelSource(
  source: ModelSource,
  options: LoadModelOptions = {},
): Promise<ResolvedSource> {
  if (source === "organism" || typeof source === "object") {
    const opts = (typeof source === "object" ? { ...source.organism } : {}) as BuildOrganismOptions;
    const dir = await buildOrganism(
      options.organismDir && opts.cacheDir === undefined ? { ...opts, cacheDir: options.organismDir } : opts,
    );
    const manifest = await readOrganismManifest(dir);
    return {
      dir,
      modelId: "organism",
      revision: undefined,
      commit: undefined,
      source: "organism",
      organism: manifest as unknown as Record<string, unknown>,
    };
  }
  const resolved = await resolveModel(source, {
    ...(options.revision ? { revision: options.revision } : {}),
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    ...(options.offline !== undefined ? { offline: options.offline } : {}),
    ...(options.token ? { token: options.token } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  return {
    dir: resolved.dir,
    modelId: resolved.repoId ?? source,
    revision: resolved.revision,
    commit: resolved.commit,
    source: resolved.source,
  };
}

/**
 * Load a model and its tokenizer.
 *
 * - `"organism"` or `{organism: options}`: build the model organism (deterministic, cached) and load it.
 * - a hub id or a local folder: `resolveModel` (download or cache), then `HookedModel.load` and
 *   `loadTokenizer` on the folder.
 *
 * @param source Hub id, local folder, `"organism"`, or `{organism: options}`.
 * @param options Revision, device, cache, offline, token, progress.
 * @returns The model, tokenizer and provenance.
 * @throws {Error} from the resolver or loaders, naming the folder or file at fault.
 */
export async function loadModel(source: ModelSource, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const r = await resolveModelSource(source, options);
  const tokenizer = await loadTokenizer(r.dir);
  const model = await HookedModel.load(r.dir, {
    device: options.device ?? "auto",
    ...(options.threads ? { threads: options.threads } : {}),
    ...(options.runtime ? { runtime: options.runtime } : {}),
    ...(options.computeDtype ? { computeDtype: options.computeDtype } : {}),
  });
  const weightHashes = options.hashWeights === false ? undefined : await weightFileHashes(r.dir);
  return {
    model,
    tokenizer,
    dir: r.dir,
    modelId: r.modelId,
    revision: r.revision,
    commit: r.commit,
    source: r.source,
    ...(weightHashes ? { weightHashes } : {}),
    ...(r.organism ? { organism: r.organism } : {}),
  };
}
