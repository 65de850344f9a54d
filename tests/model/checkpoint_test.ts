import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CheckpointError,
  EMBED_TOKENS,
  expectedTensorShapes,
  layerTensorNames,
  LM_HEAD,
  loadCheckpoint,
} from "../../lib/engine/checkpoint.ts";
import { type RandomCheckpointOptions, writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from "../../lib/engine/safetensors.ts";

const TINY: RandomCheckpointOptions = {
  modelType: "qwen2",
  hiddenSize: 16,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  intermediateSize: 24,
  vocabSize: 50,
  seed: 7,
};

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "checkpoint_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): Promise<void> {
  const c = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  edit(c);
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(c));
}

Deno.test("loads a single-file checkpoint and locates every tensor", async () => {
  await withTempDir(async (dir) => {
    const written = await writeRandomCheckpoint(dir, { ...TINY, tieWordEmbeddings: true });
    assert.deepEqual(written.files, ["model.safetensors", "config.json"]);
    const ckpt = await loadCheckpoint(dir);
    assert.equal(ckpt.weightDtype, "F32");
    assert.equal(ckpt.config.numKvHeads, 2);
    assert.deepEqual([...ckpt.tensors.keys()].sort(), [...expectedTensorShapes(ckpt.config).keys()].sort());
    assert.equal(ckpt.tensors.has(LM_HEAD), false);
    assert.equal(ckpt.lmHead, ckpt.tensors.get(EMBED_TOKENS));
    const q = ckpt.tensors.get(layerTensorNames(1).qProj)!;
    assert.deepEqual(q.shape, [16, 16]);
    assert.deepEqual(ckpt.tensors.get(layerTensorNames(1).kBias)!.shape, [8]);
    assert.equal(ckpt.tensors.has(layerTensorNames(1).oBias), false);
    assert.equal((await readTensorF32(q)).length, 256);
  });
});

Deno.test("sharded and single-file checkpoints hold the same values; dtypes are reported", async () => {
  await withTempDir(async (dir) => {
    const single = join(dir, "single");
    const sharded = join(dir, "sharded");
    await writeRandomCheckpoint(single, { ...TINY, dtype: "BF16" });
    const w = await writeRandomCheckpoint(sharded, { ...TINY, dtype: "BF16", shards: 3 });
    assert.deepEqual(w.files, [
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
      "model.safetensors.index.json",
      "config.json",
    ]);
    const a = await loadCheckpoint(single);
    const b = await loadCheckpoint(sharded);
    assert.equal(b.weightDtype, "BF16");
    assert.equal(b.files.length, 3);
    assert.equal(new Set([...b.tensors.values()].map((t) => t.file)).size, 3);
    assert.equal(a.lmHead.name, LM_HEAD);
    for (const [name, info] of a.tensors) {
      assert.deepEqual(await readTensorF32(b.tensors.get(name)!), await readTensorF32(info), name);
    }
  });
});

Deno.test("random checkpoints are byte-identical for the same options and differ by seed", async () => {
  await withTempDir(async (dir) => {
    await writeRandomCheckpoint(join(dir, "a"), TINY);
    await writeRandomCheckpoint(join(dir, "b"), TINY);
    await writeRandomCheckpoint(join(dir, "c"), { ...TINY, seed: 8 });
    const file = (d: string) => Deno.readFile(join(dir, d, "model.safetensors"));
    assert.deepEqual(await file("a"), await file("b"));
    assert.notDeepEqual(await file("a"), await file("c"));
    assert.equal(
      await Deno.readTextFile(join(dir, "a", "config.json")),
      await Deno.readTextFile(join(dir, "b", "config.json")),
    );
  });
});

Deno.test("tied embeddings: lm_head.weight present in the file is ignored", async () => {
  await withTempDir(async (dir) => {
    await writeRandomCheckpoint(dir, TINY);
    assert.equal((await loadCheckpoint(dir)).lmHead.name, LM_HEAD);
    await editConfig(dir, (c) => (c.tie_word_embeddings = true));
    const ckpt = await loadCheckpoint(dir);
    assert.equal(ckpt.lmHead.name, EMBED_TOKENS);
    assert.ok(ckpt.tensors.has(LM_HEAD));
  });
});

Deno.test("llama with attention_bias and mlp_bias expects o_proj and MLP biases", async () => {
  await withTempDir(async (dir) => {
    await writeRandomCheckpoint(dir, { ...TINY, modelType: "llama", attentionBias: true, mlpBias: true });
    const ckpt = await loadCheckpoint(dir);
    const n = layerTensorNames(0);
    assert.deepEqual(ckpt.tensors.get(n.oBias)!.shape, [16]);
    assert.deepEqual(ckpt.tensors.get(n.gateBias)!.shape, [24]);
    assert.deepEqual(ckpt.tensors.get(n.downBias)!.shape, [16]);
  });
});

Deno.test("a missing tensor is named with its file", async () => {
  await withTempDir(async (dir) => {
    await writeRandomCheckpoint(dir, TINY);
    const path = join(dir, "model.safetensors");
    const header = await readSafetensorsHeader(path);
    const kept = await Promise.all(
      [...header.values()].filter((t) => t.name !== "model.norm.weight").map(async (t) => ({
        name: t.name,
        dtype: "F32" as const,
        shape: t.shape,
        data: await readTensorF32(t),
      })),
    );
    await writeSafetensors(path, kept);
    await assert.rejects(loadCheckpoint(dir), (e: unknown) => {
      assert.ok(e instanceof CheckpointError);
      assert.ok(e.message.includes(dir));
      assert.match(e.message, /tensor "model\.norm\.weight" missing from model\.safetensors/);
      return true;
    });
  });
});

Deno.test("a shape mismatch names tensor, file, actual and expected shapes", async () => {
  await withTempDir(async (dir) => {
    await writeRandomCheckpoint(dir, TINY);
    await editConfig(dir, (c) => (c.intermediate_size = 32));
    await assert.rejects(loadCheckpoint(dir), (e: unknown) => {
      assert.ok(e instanceof CheckpointError);
      assert.match(
        e.message,
        /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" in model\.safetensors has shape \[24, 16\], expected \[32, 16\]/,
      );
      return true;
    });
  });
});

Deno.test("a missing shard, a wrong weight_map entry and a missing config are named", async () => {
  await withTempDir(async (dir) => {
    await writeRandomCheckpoint(dir, { ...TINY, shards: 2 });
    const indexPath = join(dir, "model.safetensors.index.json");
    const index = JSON.parse(await Deno.readTextFile(indexPath));
    index.weight_map["model.norm.weight"] = "model-00001-of-00002.safetensors"; // it is in shard 2
    await Deno.writeTextFile(indexPath, JSON.stringify(index));
    await assert.rejects(
      loadCheckpoint(dir),
      /tensor "model\.norm\.weight" missing from model-00001-of-00002\.safetensors/,
    );

    await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
    await assert.rejects(loadCheckpoint(dir), (e: unknown) => {
      assert.ok(e instanceof Deno.errors.NotFound);
      assert.match(e.message, /shard "model-00002-of-00002\.safetensors".*missing/);
      return true;
    });

    await Deno.remove(indexPath);
    await assert.rejects(
      loadCheckpoint(dir),
      /neither model\.safetensors nor model\.safetensors\.index\.json/,
    );

    await Deno.remove(join(dir, "config.json"));
    await assert.rejects(loadCheckpoint(dir), (e: unknown) => {
      assert.ok(e instanceof Deno.errors.NotFound);
      assert.ok(e.message.includes(dir));
      assert.match(e.message, /no config\.json/);
      return true;
    });
  });
});

Deno.test("a hub-cache snapshot whose files are symlinks into blobs/ loads", async () => {
  await withTempDir(async (root) => {
    const src = join(root, "src");
    await writeRandomCheckpoint(src, TINY);
    await Deno.mkdir(join(root, "blobs"));
    const snapshot = join(root, "snapshots", "0123abcd");
    await Deno.mkdir(snapshot, { recursive: true });
    for (const [file, blob] of [["config.json", "aaa111"], ["model.safetensors", "bbb222"]] as const) {
      await Deno.rename(join(src, file), join(root, "blobs", blob));
      await Deno.symlink(join("..", "..", "blobs", blob), join(snapshot, file));
    }
    const ckpt = await loadCheckpoint(snapshot);
    const norm = ckpt.tensors.get("model.norm.weight")!;
    assert.equal(norm.file, join(snapshot, "model.safetensors"));
    assert.equal((await readTensorF32(norm)).length, 16);
  });
});

Deno.test("writeRandomCheckpoint rejects inconsistent options", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(writeRandomCheckpoint(dir, { ...TINY, numKvHeads: 3 }), /not a multiple/);
    await assert.rejects(writeRandomCheckpoint(dir, { ...TINY, shards: 1000 }), /shards must be/);
    await assert.rejects(writeRandomCheckpoint(dir, { ...TINY, attentionBias: false }), /qwen2/);
  });
});
