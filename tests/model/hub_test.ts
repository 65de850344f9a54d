import { hex, jsonResponse, requestOf, revisionInfo, withEnv, withTempDir } from "../_hub_helpers.ts";
import assert from "node:assert/strict";
import { lstat, mkdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { type DownloadProgress, hubCacheDir, resolveModel } from "../../lib/engine/hub.ts";

const REPO = "test-org/tiny-model";
const FOLDER = "models--test-org--tiny-model";
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98";
const TOKEN = "hf_SeCrEtTeStToKeN123456";

const enc = new TextEncoder();

interface RepoFile {
  readonly path: string;
  readonly content: Uint8Array<ArrayBuffer>;
  readonly lfs: boolean;
}

function repoFiles(extra: Record<string, string> = {}): RepoFile[] {
  const text: Record<string, string> = {
    "config.json": JSON.stringify({ model_type: "qwen2", hidden_size: 8 }),
    "tokenizer.json": JSON.stringify({ version: "1.0" }),
    "tokenizer_config.json": JSON.stringify({ tokenizer_class: "LlamaTokenizerFast" }),
    "generation_config.json": JSON.stringify({ eos_token_id: 151643 }),
    "README.md": "# tiny\n",
    ".gitattributes": "*.safetensors filter=lfs\n",
    ...extra,
  };
  const files: RepoFile[] = Object.entries(text).map(([path, s]) => ({
    path,
    content: enc.encode(s),
    lfs: false,
  }));
  files.push({ path: "model.safetensors", content: new Uint8Array(3000).map((_, i) => i % 251), lfs: true });
  files.push({ path: "pytorch_model.bin", content: new Uint8Array(100), lfs: true });
  return files;
}

/** Blob name of a file in the hub cache: the LFS sha256, else the git blob sha1. */
async function blobName(f: RepoFile): Promise<string> {
  if (f.lfs) return await hex("SHA-256", f.content);
  const header = enc.encode(`blob ${f.content.length}\0`);
  const all = new Uint8Array(header.length + f.content.length);
  all.set(header);
  all.set(f.content, header.length);
  return await hex("SHA-1", all);
}

/** Lay out a cache exactly as the hub clients do: blobs, refs/main, relative snapshot symlinks. */
async function writeFakeCache(
  cacheDir: string,
  files: RepoFile[],
  opts: { ref?: boolean } = {},
): Promise<string> {
  const repoDir = join(cacheDir, FOLDER);
  const snapshot = join(repoDir, "snapshots", COMMIT);
  await mkdir(join(repoDir, "blobs"), { recursive: true });
  await mkdir(snapshot, { recursive: true });
  for (const f of files) {
    const blob = await blobName(f);
    await writeFile(join(repoDir, "blobs", blob), f.content);
    await symlink(`../../blobs/${blob}`, join(snapshot, f.path));
  }
  if (opts.ref ?? true) {
    await mkdir(join(repoDir, "refs"), { recursive: true });
    await writeFile(join(repoDir, "refs", "main"), COMMIT);
  }
  return snapshot;
}

interface Request {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | null;
}

/**
 * A fake Hugging Face Hub answering the URLs @huggingface/hub 2.17 calls: model info (to resolve a
 * branch), the tree listing, paths-info, and resolve (a Range probe, then the full body).
 */
async function fakeHub(files: RepoFile[], opts: { shortBody?: string; status?: number } = {}) {
  const requests: Request[] = [];
  const meta = new Map<string, { file: RepoFile; oid: string; lfsOid?: string }>();
  for (const f of files) {
    const gitOid = f.lfs ? await hex("SHA-1", enc.encode(`pointer ${f.path}`)) : await blobName(f);
    meta.set(f.path, { file: f, oid: gitOid, ...(f.lfs ? { lfsOid: await blobName(f) } : {}) });
  }
  const entry = (path: string, lastCommit: boolean) => {
    const m = meta.get(path);
    if (!m) return undefined;
    return {
      type: "file",
      path,
      oid: m.oid,
      size: m.file.content.length,
      ...(m.lfsOid ? { lfs: { oid: m.lfsOid, size: m.file.content.length, pointerSize: 134 } } : {}),
      // The file's last commit differs from the head: a client filing by it would use the wrong snapshot.
      ...(lastCommit
        ? { lastCommit: { id: OTHER_COMMIT, title: "add", date: "2025-01-01T00:00:00.000Z" } }
        : {}),
    };
  };
  const json = jsonResponse;

  const answer = (input: string | URL | globalThis.Request, init?: RequestInit): Response => {
    const { url, method, headers } = requestOf(input, init);
    requests.push({ method, url: url.href, authorization: headers.get("Authorization") });
    if (opts.status) return json({ error: "Access to this model is restricted" }, opts.status);
    const p = url.pathname;
    const base = `/api/models/${REPO}`;
    if (p === `${base}/revision/main` || p === `${base}/revision/${COMMIT}`) {
      return json(revisionInfo(REPO, COMMIT));
    }
    if (p === `${base}/tree/${COMMIT}`) return json(files.map((f) => entry(f.path, false)));
    if (p === `${base}/paths-info/${COMMIT}` && method === "POST") {
      const body = JSON.parse(String(init?.body)) as { paths: string[] };
      return json(body.paths.map((x) => entry(x, true)).filter(Boolean));
    }
    const prefix = `/${REPO}/resolve/${COMMIT}/`;
    if (p.startsWith(prefix)) {
      const m = meta.get(decodeURIComponent(p.slice(prefix.length)));
      if (!m) return new Response("no", { status: 404, headers: { "X-Error-Code": "EntryNotFound" } });
      const etag = `"${m.lfsOid ?? m.oid}"`;
      const size = m.file.content.length;
      if (headers.get("Range") === "bytes=0-0") {
        return new Response(m.file.content.slice(0, 1), {
          status: 206,
          headers: {
            "Content-Range": `bytes 0-0/${size}`,
            ETag: etag,
            ...(m.lfsOid ? { "X-Linked-ETag": etag } : {}),
          },
        });
      }
      const body = m.file.path === opts.shortBody ? m.file.content.slice(0, size - 7) : m.file.content;
      return new Response(body, { status: 200, headers: { ETag: etag } });
    }
    return json({ error: `fake hub: unexpected ${method} ${url.href}` }, 500);
  };
  const fetchImpl = (input: string | URL | globalThis.Request, init?: RequestInit): Promise<Response> =>
    Promise.resolve(answer(input, init));
  return { fetch: fetchImpl as typeof fetch, requests };
}

async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await walkFiles(p));
    else out.push(p);
  }
  return out;
}

const noNetwork = (() => {
  throw new Error("network used");
}) as unknown as typeof fetch;

Deno.test("hubCacheDir: option, HF_HUB_CACHE, HF_HOME, home default", async () => {
  await withEnv({}, () => {
    assert.equal(hubCacheDir("/x/cache"), "/x/cache");
    assert.match(hubCacheDir(), /\.cache\/huggingface\/hub$/);
    Deno.env.set("HF_HOME", "/h");
    assert.equal(hubCacheDir(), "/h/hub");
    Deno.env.set("HF_HUB_CACHE", "/c");
    assert.equal(hubCacheDir(), "/c");
    assert.equal(hubCacheDir("/o"), "/o");
  });
});

Deno.test("cached snapshot resolves offline (option, HF_HUB_CACHE, HF_HOME, commit revision)", async () => {
  await withTempDir(async (tmp) => {
    const cacheDir = join(tmp, "home", "hub");
    const snapshot = await writeFakeCache(cacheDir, repoFiles());
    const expected = { dir: snapshot, repoId: REPO, revision: "main", commit: COMMIT, source: "cache" };
    await withEnv({}, async () => {
      assert.deepEqual(await resolveModel(REPO, { cacheDir, offline: true }), expected);
      // Online but complete in the cache: no request at all.
      assert.deepEqual(await resolveModel(REPO, { cacheDir, fetch: noNetwork }), expected);
    });
    for (const offline of ["1", "true", "YES"]) {
      await withEnv({ HF_HUB_OFFLINE: offline, HF_HUB_CACHE: cacheDir }, async () => {
        assert.deepEqual(await resolveModel(REPO, { fetch: noNetwork }), expected);
      });
    }
    await withEnv({ HF_HUB_OFFLINE: "1", HF_HOME: join(tmp, "home") }, async () => {
      assert.deepEqual(await resolveModel(REPO), expected);
      assert.deepEqual(await resolveModel(REPO, { revision: COMMIT }), { ...expected, revision: COMMIT });
    });
    await withEnv({ HF_HUB_OFFLINE: "1", HF_HUB_CACHE: cacheDir }, async () => {
      // A commit revision needs no refs/ entry.
      await rm(join(cacheDir, FOLDER, "refs"), { recursive: true });
      assert.equal((await resolveModel(REPO, { revision: COMMIT })).dir, snapshot);
      await assert.rejects(resolveModel(REPO), /is not in the Hugging Face cache/);
    });
  });
});

Deno.test("sharded weights: every shard named in the index must be cached", async () => {
  await withTempDir(async (cacheDir) => {
    const index = {
      weight_map: {
        "a.weight": "model-00001-of-00002.safetensors",
        "b.weight": "model-00002-of-00002.safetensors",
      },
    };
    const files = repoFiles({
      "model.safetensors.index.json": JSON.stringify(index),
      "model-00001-of-00002.safetensors": "shard one",
    }).filter((f) => f.path !== "model.safetensors");
    await writeFakeCache(cacheDir, files);
    await withEnv({ HF_HUB_OFFLINE: "1" }, async () => {
      await assert.rejects(
        resolveModel(REPO, { cacheDir }),
        (e: Error) =>
          e.message.includes("lacks model-00002-of-00002.safetensors") &&
          e.message.includes("HF_HUB_OFFLINE=1") &&
          e.message.includes(cacheDir),
      );
      await writeFile(
        join(cacheDir, FOLDER, "snapshots", COMMIT, "model-00002-of-00002.safetensors"),
        "shard two",
      );
      assert.equal((await resolveModel(REPO, { cacheDir })).source, "cache");
    });
  });
});

Deno.test("offline and not cached: the clear error", async () => {
  await withTempDir(async (cacheDir) => {
    await withEnv({ HF_HUB_OFFLINE: "1", HF_HUB_CACHE: cacheDir }, async () => {
      await assert.rejects(resolveModel("org/name"), {
        message: `Model "org/name" (revision main) is not in the Hugging Face cache at ${cacheDir} and ` +
          `HF_HUB_OFFLINE=1 is set; run once with network access or pass a local folder`,
      });
    });
    await withEnv({}, async () => {
      await assert.rejects(
        resolveModel("org/name", { cacheDir, offline: true, revision: "v2" }),
        /"org\/name" \(revision v2\) is not in the Hugging Face cache .* offline mode was requested/,
      );
    });
  });
});

Deno.test("local folders: absolute, ./relative, missing config.json, missing folder", async () => {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, "my-model");
    await mkdir(dir);
    await withEnv({ HF_HUB_OFFLINE: "1" }, async () => {
      await assert.rejects(
        resolveModel(dir),
        (e: Error) => e.message.includes(dir) && e.message.includes("no config.json"),
      );
      await writeFile(join(dir, "config.json"), "{}");
      assert.deepEqual(await resolveModel(dir), { dir, source: "local" });
      const rel = relative(Deno.cwd(), dir);
      assert.deepEqual(await resolveModel(rel.startsWith("..") ? rel : `./${rel}`), { dir, source: "local" });
      const missing = join(tmp, "nope");
      await assert.rejects(
        resolveModel(missing),
        (e: Error) => e.message.includes(missing) && /does not exist/.test(e.message),
      );
      await assert.rejects(resolveModel("./definitely-not-here"), /does not exist/);
      await assert.rejects(resolveModel("not a repo id!"), TypeError);
    });
  });
});

Deno.test("download from a fake hub: cache layout, refs, progress, token", async () => {
  await withTempDir(async (cacheDir) => {
    const files = repoFiles({ "chat_template.jinja": "{{ bos_token }}" });
    const hub = await fakeHub(files);
    const progress: DownloadProgress[] = [];
    await withEnv({ HF_TOKEN: TOKEN }, async () => {
      const res = await resolveModel(REPO, {
        cacheDir,
        fetch: hub.fetch,
        onProgress: (p) => progress.push(p),
      });
      const snapshot = join(cacheDir, FOLDER, "snapshots", COMMIT);
      assert.deepEqual(res, {
        dir: snapshot,
        repoId: REPO,
        revision: "main",
        commit: COMMIT,
        source: "download",
      });

      // Only the needed files, as relative symlinks into blobs/ named by sha256 (LFS) or git sha1.
      const wanted = [
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
      ];
      assert.deepEqual((await Array.fromAsync(Deno.readDir(snapshot))).map((e) => e.name).sort(), wanted);
      for (const name of wanted) {
        const f = files.find((x) => x.path === name);
        assert.ok(f);
        const blob = await blobName(f);
        assert.ok((await lstat(join(snapshot, name))).isSymbolicLink(), name);
        assert.equal(await readlink(join(snapshot, name)), join("..", "..", "blobs", blob), name);
        assert.deepEqual(
          new Uint8Array(await readFile(join(cacheDir, FOLDER, "blobs", blob))),
          f.content,
          name,
        );
      }
      assert.equal(await readFile(join(cacheDir, FOLDER, "refs", "main"), "utf8"), COMMIT);
      assert.equal(
        (await Array.fromAsync(Deno.readDir(join(cacheDir, FOLDER, "blobs")))).length,
        wanted.length,
      );

      // Progress: every file reported, ending at its listed size.
      for (const name of wanted) {
        const last = progress.filter((p) => p.file === name).at(-1);
        const size = files.find((x) => x.path === name)?.content.length;
        assert.deepEqual(last, { file: name, loaded: size, total: size }, name);
      }

      // The token went out on every request and was written nowhere.
      assert.ok(hub.requests.length > 0);
      for (const r of hub.requests) assert.equal(r.authorization, `Bearer ${TOKEN}`, r.url);
      assert.ok(hub.requests.some((r) => r.url.includes(`/api/models/${REPO}/revision/main`)));
      assert.ok(
        hub.requests.every((r) => !r.url.includes("README.md") && !r.url.includes("pytorch_model.bin")),
      );
      for (const p of await walkFiles(cacheDir)) {
        assert.ok(!(await readFile(p, "utf8")).includes(TOKEN), p);
      }

      // Now cached: offline works, and online makes no request.
      const before = hub.requests.length;
      assert.equal((await resolveModel(REPO, { cacheDir, offline: true })).source, "cache");
      assert.equal((await resolveModel(REPO, { cacheDir, fetch: hub.fetch })).source, "cache");
      assert.equal(hub.requests.length, before);
    });
  });
});

Deno.test("download: allowPatterns fetches more; a commit revision skips the branch lookup", async () => {
  await withTempDir(async (cacheDir) => {
    const hub = await fakeHub(repoFiles());
    await withEnv({}, async () => {
      const res = await resolveModel(REPO, {
        cacheDir,
        revision: COMMIT,
        fetch: hub.fetch,
        onProgress: () => {},
        allowPatterns: ["*.md"],
      });
      assert.equal(res.commit, COMMIT);
      assert.ok(await Deno.stat(join(res.dir, "README.md")));
      assert.ok(hub.requests.every((r) => !r.url.includes("/revision/") && r.authorization === null));
      await assert.rejects(Deno.stat(join(cacheDir, FOLDER, "refs")));
    });
  });
});

Deno.test("download: a size mismatch is detected and the bad blob removed", async () => {
  await withTempDir(async (cacheDir) => {
    const files = repoFiles();
    const hub = await fakeHub(files, { shortBody: "model.safetensors" });
    await withEnv({}, async () => {
      await assert.rejects(
        resolveModel(REPO, { cacheDir, fetch: hub.fetch, onProgress: () => {} }),
        (e: Error) =>
          e.message.includes(`"model.safetensors"`) && e.message.includes("2993 bytes") &&
          e.message.includes("lists 3000"),
      );
      const model = files.find((f) => f.path === "model.safetensors");
      assert.ok(model);
      await assert.rejects(Deno.stat(join(cacheDir, FOLDER, "blobs", await blobName(model))));
      await assert.rejects(lstat(join(cacheDir, FOLDER, "snapshots", COMMIT, "model.safetensors")));
    });
  });
});

Deno.test("download errors: access refused, bad token, missing files; the token never shows", async () => {
  await withTempDir(async (cacheDir) => {
    await withEnv({ HF_TOKEN: TOKEN }, async () => {
      const refused = await fakeHub(repoFiles(), { status: 403 });
      await assert.rejects(
        resolveModel(REPO, { cacheDir, fetch: refused.fetch }),
        (e: Error) =>
          e.message.includes(REPO) && e.message.includes("HF_TOKEN") && !e.message.includes(TOKEN),
      );
      const gone = await fakeHub(repoFiles(), { status: 404 });
      await assert.rejects(
        resolveModel(REPO, { cacheDir, fetch: gone.fetch }),
        /not found on the Hugging Face Hub/,
      );
      const noWeights = await fakeHub(repoFiles().filter((f) => f.path !== "model.safetensors"));
      await assert.rejects(
        resolveModel(REPO, { cacheDir, fetch: noWeights.fetch }),
        /has no \*\.safetensors/,
      );
    });
    await withEnv({}, async () => {
      const hub = await fakeHub(repoFiles());
      await assert.rejects(
        resolveModel(REPO, { cacheDir, fetch: hub.fetch, token: "not-a-token" }),
        (e: Error) =>
          e instanceof TypeError && e.message.includes("hf_") && !e.message.includes("not-a-token"),
      );
      const offlineNet = (() =>
        Promise.reject(new TypeError("error sending request"))) as unknown as typeof fetch;
      await assert.rejects(
        resolveModel(REPO, { cacheDir, fetch: offlineNet }),
        /Cannot reach the Hugging Face Hub.*HF_HUB_OFFLINE=1/,
      );
    });
  });
});
