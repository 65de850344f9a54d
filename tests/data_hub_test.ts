import { hex, jsonResponse, requestOf, revisionInfo, withEnv, withTempDir } from "./_hub_helpers.ts";
import assert from "node:assert/strict";
import { lstat, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pl from "nodejs-polars";
import { loadConfig, parseConfig } from "../experiments/backtracking/config.ts";
import {
  DataFileError,
  fetchGsm8kFromHub,
  loadGsm8kFromHub,
  loadGsm8kJsonl,
  readGsm8kParquet,
} from "../experiments/backtracking/data.ts";
import { type DownloadProgress, resolveHubFile } from "../lib/engine/hub.ts";
import { readMeta } from "../experiments/backtracking/run.ts";
import { initRun, prepareData } from "../experiments/backtracking/steps/mod.ts";

const REPO = "openai/gsm8k";
const FOLDER = "datasets--openai--gsm8k";
const FILE = "main/test-00000-of-00001.parquet";
const COMMIT = "e53f048856ff4f594e959d75785d2c2d37b678ee";
const OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98";
const TOKEN = "hf_DaTaSeTtEsTtOkEn987654";
const CONFIG = fileURLToPath(new URL("../configs/r1_distill_qwen_1p5b.yaml", import.meta.url));

const enc = new TextEncoder();

/** Twelve GSM8K-like rows; one gold with a thousands comma. */
const ROWS = Array.from({ length: 12 }, (_, i) => ({
  question: `Problem ${i}: Ann has ${i + 2} apples and buys ${3 * i} more. How many apples does she have?`,
  answer: i === 7
    ? `She has 1,000 + 234 = <<1000+234=1234>>1234 apples.\n#### 1,234`
    : `${i + 2} + ${3 * i} = <<${i + 2}+${3 * i}=${4 * i + 2}>>${4 * i + 2}\n#### ${4 * i + 2}`,
}));

/** A Parquet file as the hub serves GSM8K: `question`, `answer` (string columns). */
function gsm8kParquet(rows: readonly Record<string, string>[] = ROWS): Uint8Array<ArrayBuffer> {
  const cols = Object.keys(rows[0] ?? {});
  const df = pl.DataFrame(cols.map((c) => pl.Series(c, rows.map((r) => r[c] ?? ""), pl.Utf8)));
  return new Uint8Array(df.writeParquet());
}

interface Request {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | null;
}

/**
 * A fake Hugging Face Hub serving dataset repo files as LFS objects, answering the URLs
 * @huggingface/hub 2.17 calls: dataset info (to resolve a branch), paths-info, and resolve (a Range
 * probe, then the full body). Files report a last commit other than the head, as the real hub does.
 */
async function fakeHub(files: Record<string, Uint8Array<ArrayBuffer>>) {
  const requests: Request[] = [];
  const meta = new Map<string, { content: Uint8Array<ArrayBuffer>; oid: string; sha256: string }>();
  for (const [path, content] of Object.entries(files)) {
    meta.set(path, {
      content,
      oid: await hex("SHA-1", enc.encode(`pointer ${path}`)),
      sha256: await hex("SHA-256", content),
    });
  }
  const json = jsonResponse;
  const answer = (input: string | URL | globalThis.Request, init?: RequestInit): Response => {
    const { url, method, headers } = requestOf(input, init);
    requests.push({ method, url: url.href, authorization: headers.get("Authorization") });
    const p = url.pathname;
    const api = `/api/datasets/${REPO}`;
    if (p === `${api}/revision/main`) {
      return json(revisionInfo(REPO, COMMIT));
    }
    if (p.startsWith(`${api}/revision/`)) return json({ error: "Invalid rev id" }, 404);
    if (p === `${api}/paths-info/${COMMIT}` && method === "POST") {
      const body = JSON.parse(String(init?.body)) as { paths: string[] };
      return json(body.paths.flatMap((path) => {
        const m = meta.get(path);
        return m
          ? [{
            type: "file",
            path,
            oid: m.oid,
            size: m.content.length,
            lfs: { oid: m.sha256, size: m.content.length, pointerSize: 134 },
            lastCommit: { id: OTHER_COMMIT, title: "add", date: "2025-01-01T00:00:00.000Z" },
          }]
          : [];
      }));
    }
    const prefix = `/datasets/${REPO}/resolve/${COMMIT}/`;
    if (p.startsWith(prefix)) {
      const m = meta.get(decodeURIComponent(p.slice(prefix.length)));
      if (!m) return new Response("no", { status: 404, headers: { "X-Error-Code": "EntryNotFound" } });
      const etag = `"${m.sha256}"`;
      if (headers.get("Range") === "bytes=0-0") {
        return new Response(m.content.slice(0, 1), {
          status: 206,
          headers: { "Content-Range": `bytes 0-0/${m.content.length}`, ETag: etag, "X-Linked-ETag": etag },
        });
      }
      return new Response(m.content, { status: 200, headers: { ETag: etag } });
    }
    return json({ error: `fake hub: unexpected ${method} ${url.href}` }, 500);
  };
  const fetchImpl = (input: string | URL | globalThis.Request, init?: RequestInit): Promise<Response> =>
    Promise.resolve(answer(input, init));
  return { fetch: fetchImpl as typeof fetch, requests };
}

const noNetwork = (() => {
  throw new Error("network used");
}) as unknown as typeof fetch;

/** Download the test split from a fake hub into `cacheDir`; returns the Parquet bytes served. */
async function fillCache(cacheDir: string): Promise<Uint8Array<ArrayBuffer>> {
  const parquet = gsm8kParquet();
  const hub = await fakeHub({ [FILE]: parquet });
  await resolveHubFile({ type: "dataset", name: REPO }, FILE, {
    cacheDir,
    fetch: hub.fetch,
    onProgress: () => {},
  });
  return parquet;
}

Deno.test("resolveHubFile: a dataset file lands in datasets--org--name with blobs, snapshots, refs", async () => {
  await withTempDir(async (cacheDir) => {
    const parquet = gsm8kParquet();
    const hub = await fakeHub({ [FILE]: parquet, "main/train-00000-of-00001.parquet": gsm8kParquet() });
    const progress: DownloadProgress[] = [];
    await withEnv({ HF_TOKEN: TOKEN }, async () => {
      const res = await resolveHubFile({ type: "dataset", name: REPO }, FILE, {
        cacheDir,
        fetch: hub.fetch,
        onProgress: (p) => progress.push(p),
      });
      // Filed under the head commit, not the file's last commit.
      const path = join(cacheDir, FOLDER, "snapshots", COMMIT, "main", "test-00000-of-00001.parquet");
      assert.deepEqual(res, { path, commit: COMMIT, revision: "main", source: "download" });
      const blob = await hex("SHA-256", parquet);
      assert.ok((await lstat(path)).isSymbolicLink());
      assert.equal(await readlink(path), join("..", "..", "..", "blobs", blob));
      assert.deepEqual(new Uint8Array(await readFile(join(cacheDir, FOLDER, "blobs", blob))), parquet);
      assert.equal(await readFile(join(cacheDir, FOLDER, "refs", "main"), "utf8"), COMMIT);
      assert.deepEqual((await Array.fromAsync(Deno.readDir(join(cacheDir, FOLDER, "blobs")))).length, 1);
      assert.deepEqual(progress.at(-1), { file: FILE, loaded: parquet.length, total: parquet.length });
      // Only this file was fetched; the token went out on every request.
      assert.ok(hub.requests.some((r) => r.url.includes(`/api/datasets/${REPO}/revision/main`)));
      assert.ok(hub.requests.every((r) => !r.url.includes("train-")));
      for (const r of hub.requests) assert.equal(r.authorization, `Bearer ${TOKEN}`, r.url);

      // Cached: no request online, and offline (option or HF_HUB_OFFLINE) works; a commit needs no ref.
      const before = hub.requests.length;
      const cached = { path, commit: COMMIT, revision: "main", source: "cache" };
      assert.deepEqual(
        await resolveHubFile({ type: "dataset", name: REPO }, FILE, { cacheDir, fetch: hub.fetch }),
        cached,
      );
      assert.deepEqual(
        await resolveHubFile({ type: "dataset", name: REPO }, FILE, { cacheDir, offline: true }),
        cached,
      );
      assert.equal(hub.requests.length, before);
      await withEnv({ HF_HUB_OFFLINE: "1", HF_HUB_CACHE: cacheDir }, async () => {
        assert.deepEqual(
          await resolveHubFile({ type: "dataset", name: REPO }, FILE, { fetch: noNetwork }),
          cached,
        );
        assert.deepEqual(
          await resolveHubFile({ type: "dataset", name: REPO }, FILE, { revision: COMMIT }),
          { ...cached, revision: COMMIT },
        );
      });
    });
  });
});

Deno.test("resolveHubFile: offline and missing, missing file, bad arguments, no model cache mixup", async () => {
  await withTempDir(async (cacheDir) => {
    await withEnv({ HF_HUB_OFFLINE: "1", HF_HUB_CACHE: cacheDir }, async () => {
      await assert.rejects(resolveHubFile({ type: "dataset", name: REPO }, FILE), {
        message: `File "${FILE}" of dataset "${REPO}" (revision main) is not in the Hugging Face cache at ` +
          `${cacheDir} and HF_HUB_OFFLINE=1 is set; run once with network access`,
      });
    });
    await withEnv({}, async () => {
      const hub = await fakeHub({ [FILE]: gsm8kParquet() });
      await assert.rejects(
        resolveHubFile({ type: "dataset", name: REPO }, "main/nope.parquet", { cacheDir, fetch: hub.fetch }),
        (e: Error) => e.message.includes(`has no file "main/nope.parquet"`) && e.message.includes(REPO),
      );
      await assert.rejects(
        resolveHubFile({ type: "dataset", name: REPO }, FILE, { cacheDir, fetch: hub.fetch, revision: "v9" }),
        /dataset "openai\/gsm8k" \(revision v9\) was not found on the Hugging Face Hub/,
      );
      // The same name as a model is another repo (models--openai--gsm8k), not the dataset's cache.
      await fillCache(cacheDir);
      await assert.rejects(
        resolveHubFile({ type: "model", name: REPO }, FILE, { cacheDir, offline: true }),
        /of model "openai\/gsm8k" .* not in the Hugging Face cache .* offline mode was requested/,
      );
      for (const bad of ["/abs.parquet", "a/../b", "", "a//b"]) {
        await assert.rejects(
          resolveHubFile({ type: "dataset", name: REPO }, bad, { cacheDir }),
          TypeError,
          bad,
        );
      }
      await assert.rejects(
        resolveHubFile({ type: "dataset", name: "not a repo" }, FILE, { cacheDir }),
        TypeError,
      );
      const refused = (() =>
        Promise.reject(new TypeError("error sending request"))) as unknown as typeof fetch;
      await assert.rejects(
        resolveHubFile({ type: "dataset", name: "org/other" }, FILE, { cacheDir, fetch: refused }),
        /Cannot reach the Hugging Face Hub for dataset "org\/other".*HF_HUB_OFFLINE=1/,
      );
    });
  });
});

Deno.test("loadGsm8kFromHub: download, then offline from the cache; problems parsed as from JSONL", async () => {
  await withTempDir(async (cacheDir) => {
    const hub = await fakeHub({ [FILE]: gsm8kParquet() });
    await withEnv({}, async () => {
      const got = await fetchGsm8kFromHub({
        split: "test",
        cacheDir,
        fetch: hub.fetch,
        onProgress: () => {},
      });
      assert.equal(got.cached, false);
      assert.equal(got.commit, COMMIT);
      assert.equal(got.source, `hf://datasets/${REPO}@${COMMIT}/${FILE}`);
      assert.equal(got.file, join(cacheDir, FOLDER, "snapshots", COMMIT, FILE));
      // The same rows as JSONL parse to the same problems.
      const jsonl = join(cacheDir, "test.jsonl");
      await Deno.writeTextFile(jsonl, ROWS.map((r) => JSON.stringify(r)).join("\n") + "\n");
      assert.deepEqual(got.problems, await loadGsm8kJsonl(jsonl));
      assert.deepEqual(got.problems.map((p) => p.id), [...ROWS.keys()]);
      assert.equal(got.problems[7]?.answer_value, "1,234");
      assert.equal(got.problems[7]?.gold, 1234);
      assert.equal(got.problems[3]?.gold, 14);
    });
    await withEnv({ HF_HUB_OFFLINE: "1", HF_HUB_CACHE: cacheDir }, async () => {
      const again = await fetchGsm8kFromHub({ split: "test", fetch: noNetwork });
      assert.equal(again.cached, true);
      assert.deepEqual(await loadGsm8kFromHub({ split: "test" }), again.problems);
      // train is not cached: the clear error naming repo, file and what to do.
      await assert.rejects(
        loadGsm8kFromHub({ split: "train" }),
        (e: Error) =>
          e.message.includes(`"main/train-00000-of-00001.parquet" of dataset "${REPO}"`) &&
          e.message.includes("HF_HUB_OFFLINE=1 is set") &&
          e.message.includes("run once with network access") &&
          e.message.includes("set dataset.path"),
      );
      await assert.rejects(loadGsm8kFromHub({ split: "dev" as "test" }), TypeError);
    });
  });
});

Deno.test("readGsm8kParquet: errors name the file and row", async () => {
  await withTempDir(async (dir) => {
    const p = join(dir, "x.parquet");
    await Deno.writeFile(p, gsm8kParquet([{ question: "q", text: "a" }]));
    assert.throws(
      () => readGsm8kParquet(p, "hf://x"),
      (e: unknown) => e instanceof DataFileError && e.line === 0 && /no column "answer"/.test(e.message),
    );
    await Deno.writeFile(
      p,
      gsm8kParquet([{ question: "q", answer: "a\n#### 5" }, { question: "q", answer: "no gold" }]),
    );
    assert.throws(
      () => readGsm8kParquet(p),
      (e: unknown) => e instanceof DataFileError && e.line === 2 && e.message.startsWith(`${p}:2:`),
    );
    await Deno.writeTextFile(p, "not parquet");
    assert.throws(() => readGsm8kParquet(p), (e: unknown) => e instanceof DataFileError && e.line === 0);
  });
});

Deno.test("prepare-data: gsm8k with path null and no reference sample loads the hub split", async () => {
  await withTempDir(async (tmp) => {
    const cacheDir = join(tmp, "hub");
    const parquet = await withEnvResult(() => fillCache(cacheDir));
    const jsonl = join(tmp, "test.jsonl");
    await Deno.writeTextFile(jsonl, ROWS.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const base = await loadConfig(CONFIG);
    const config = (dataset: Record<string, unknown>) =>
      parseConfig({
        ...structuredClone(base),
        run: { ...base.run, output_dir: join(tmp, "runs") },
        dataset: {
          ...base.dataset,
          name: "gsm8k",
          split: "test",
          max_examples: 5,
          seed: 7,
          save_path: join(tmp, "absent", "gsm8k_200.jsonl"),
          path: null,
          ...dataset,
        },
      }, "hub (test)");
    await withEnv({ HF_HUB_OFFLINE: "1", HF_HUB_CACHE: cacheDir }, async () => {
      const run = async (dataset: Record<string, unknown>, runId: string) => {
        const ctx = await initRun({ config: config(dataset), log: () => {} }, { runId });
        return { ctx, res: await prepareData(ctx) };
      };
      const { ctx, res } = await run({}, "hub");
      const source = `hf://datasets/${REPO}@${COMMIT}/${FILE}`;
      assert.equal(res.source, source);
      assert.equal(res.sourceSha256, await hex("SHA-256", parquet));
      // Exactly the seeded sample a local JSONL of the same split gives.
      const local = await run({ path: jsonl }, "local");
      assert.deepEqual(res.problems, local.res.problems);
      assert.equal(res.problems.length, 5);
      const meta = await readMeta(ctx.run);
      const data = (meta as unknown as { data: Record<string, unknown> }).data;
      assert.equal(data["source"], source);
      assert.equal(data["source_sha256"], res.sourceSha256);
      assert.equal(data["source_name"], "test-00000-of-00001.parquet");
      assert.equal(data["n_problems"], 5);
      const written = (await Deno.readTextFile(res.path)).trim().split("\n").map((l) => JSON.parse(l).id);
      assert.deepEqual(written, res.problems.map((p) => p.id));

      // shuffle: false → the split's first max_examples.
      const first = await run({ shuffle: false }, "first");
      assert.deepEqual(first.res.problems.map((p) => p.id), [0, 1, 2, 3, 4]);
      // Another split, not cached, offline: the clear error; a non-GSM8K split is refused.
      await assert.rejects(
        run({ split: "train" }, "train"),
        /not in the Hugging Face cache.*set dataset\.path/,
      );
      await assert.rejects(
        run({ split: "validation" }, "val"),
        /dataset\.split "validation" is not a GSM8K split/,
      );
      // Other dataset names are not downloaded.
      await assert.rejects(run({ name: "other" }, "other"), /No dataset: dataset\.path is null/);
    });
  });
});

async function withEnvResult<T>(fn: () => Promise<T>): Promise<T> {
  let out: T | undefined;
  await withEnv({}, async () => {
    out = await fn();
  });
  return out as T;
}
