/**
 * Where compiled graphs live. ONNX Runtime only accepts external data through relative paths that stay
 * inside the .onnx file's folder and refuses symlinks that leave it; Hugging Face cache snapshots are
 * symlinks into `blobs/`. So each checkpoint gets a folder in the graph cache holding hard links to
 * the resolved weight files plus the compiled .onnx files; when hard links are impossible (another
 * filesystem) the graph is written beside the resolved weight files instead.
 *
 * @module
 */

import { pathExists } from "../util/fs.ts";
import type { Checkpoint } from "./checkpoint.ts";
import type { TensorInfo } from "./safetensors.ts";

/** Default graph cache: `$BT_CACHE_DIR`, else `$XDG_CACHE_HOME/backtracking-interp`, else `~/.cache/...`. */
export function defaultCacheDir(): string {
  const env = Deno.env.get("BT_CACHE_DIR");
  if (env) return env;
  const xdg = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "."}/.cache`;
  return `${xdg}/backtracking-interp`;
}

async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** A prepared folder: how to locate tensors from it, and how to write a graph into it. */
export interface GraphFolder {
  readonly dir: string;
  readonly locate: (info: TensorInfo) => { location: string; offset: number };
  writeGraph(name: string, bytes: Uint8Array): Promise<string>;
}

/**
 * Prepare the folder that holds a checkpoint's compiled graphs next to (links of) its weight files.
 * @throws when neither hard links nor writing beside the weights is possible.
 */
export async function prepareGraphFolder(
  checkpoint: Checkpoint,
  cacheDir = defaultCacheDir(),
): Promise<GraphFolder> {
  const files = [...new Set([...checkpoint.tensors.values()].map((t) => t.file))].sort();
  const real = new Map<string, string>();
  const stamp: string[] = [];
  for (const f of files) {
    const r = await Deno.realPath(f);
    const st = await Deno.stat(r);
    real.set(f, r);
    stamp.push(`${r}:${st.size}:${st.mtime?.getTime() ?? 0}:${st.ino ?? 0}`);
  }
  const key = (await sha256Hex(stamp.join("\n"))).slice(0, 24);
  const names = new Map<string, string>(); // source file -> name inside the folder
  const used = new Set<string>();
  for (const f of files) {
    let name = basename(real.get(f)!);
    if (used.has(name)) name = `${used.size}-${name}`;
    used.add(name);
    names.set(f, name);
  }

  let dir = `${cacheDir}/graphs/${key}`;
  let linked = true;
  try {
    await Deno.mkdir(dir, { recursive: true });
    for (const f of files) {
      const target = `${dir}/${names.get(f)}`;
      if (await pathExists(target)) continue;
      // Link under a private name, then rename: concurrent processes each install the same inode, and
      // an existing link is replaced atomically (never removed), so a reader always finds the file.
      const tmp = `${target}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
      try {
        await Deno.link(real.get(f)!, tmp);
        await Deno.rename(tmp, target);
      } finally {
        await Deno.remove(tmp).catch(() => {});
      }
    }
  } catch {
    linked = false;
  }
  if (!linked) {
    const dirs = new Set([...real.values()].map((r) => r.slice(0, r.lastIndexOf("/"))));
    if (dirs.size !== 1) {
      throw new Error(
        `Cannot prepare graphs for "${checkpoint.dir}": hard links into ${cacheDir} failed and the weight ` +
          `files resolve to ${dirs.size} folders; set BT_CACHE_DIR to a folder on the weights' filesystem`,
      );
    }
    dir = [...dirs][0]!;
    for (const f of files) names.set(f, basename(real.get(f)!));
  }
  return {
    dir,
    locate: (info) => ({ location: names.get(info.file)!, offset: info.dataOffset }),
    async writeGraph(name, bytes) {
      const hash = (await sha256Hex(bytes)).slice(0, 12);
      const path = `${dir}/${linked ? "" : ".bt-"}graph-${name}-${hash}.onnx`;
      // The name holds the content hash: an existing file is this very graph (written atomically).
      if (await pathExists(path)) return path;
      const tmp = `${path}.${crypto.randomUUID()}.tmp`;
      try {
        await Deno.writeFile(tmp, bytes);
        await Deno.rename(tmp, path);
      } catch (error) {
        await Deno.remove(tmp).catch(() => {});
        throw new Error(`Cannot write the compiled graph to ${path}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      return path;
    },
  };
}
