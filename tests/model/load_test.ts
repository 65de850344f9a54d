import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256File } from "../../lib/util/fs.ts";
import { weightFileHashes } from "../../lib/engine/load.ts";

Deno.test("weightFileHashes: hashes once, reuses the memo until the file changes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-hashes-" });
  try {
    await Deno.mkdir(join(dir, "model"));
    const file = join(dir, "model", "model.safetensors");
    await Deno.writeTextFile(file, "weights v1");
    const cache = join(dir, "cache");
    const first = await weightFileHashes(join(dir, "model"), cache);
    assert.deepEqual(first, { "model.safetensors": await sha256File(file) });

    // The memo is what answers the second call: tamper with it and the tampered value comes back.
    const memoPath = join(cache, "weight-hashes.json");
    const memo = JSON.parse(await Deno.readTextFile(memoPath)) as Record<string, string>;
    const key = Object.keys(memo)[0]!;
    await Deno.writeTextFile(memoPath, JSON.stringify({ [key]: "f".repeat(64) }));
    assert.equal((await weightFileHashes(join(dir, "model"), cache))["model.safetensors"], "f".repeat(64));

    // A changed file (size / mtime) is hashed again.
    await Deno.writeTextFile(file, "weights v2, longer");
    assert.equal(
      (await weightFileHashes(join(dir, "model"), cache))["model.safetensors"],
      await sha256File(file),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("weightFileHashes: a hub-cache snapshot file uses its blob's content address", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-hashes-" });
  try {
    const sha = "a".repeat(64);
    await Deno.mkdir(join(dir, "blobs"));
    await Deno.mkdir(join(dir, "snapshots", "c0ffee"), { recursive: true });
    await Deno.writeTextFile(join(dir, "blobs", sha), "not read");
    await Deno.symlink(`../../blobs/${sha}`, join(dir, "snapshots", "c0ffee", "model.safetensors"));
    const hashes = await weightFileHashes(join(dir, "snapshots", "c0ffee"), join(dir, "cache"));
    assert.deepEqual(hashes, { "model.safetensors": sha });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
