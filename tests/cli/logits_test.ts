/**
 * Black-box tests of `deno task bt logits`: a real subprocess on a checkpoint laid out like the
 * Hugging Face hub cache (snapshot files are symlinks into blobs/), and clear failures on bad input.
 */
import assert from "node:assert/strict";
import { writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";
import { readSafetensorsHeader } from "../../lib/engine/safetensors.ts";
import { loadNaiveWeights, naiveForward } from "../naive_forward.ts";

const MAIN = new URL("../../experiments/backtracking/cli/main.ts", import.meta.url).pathname;

async function bt(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** Lay out `src` as `models--org--name/{blobs,refs,snapshots/<commit>}` with relative symlinks. */
async function hubLayout(src: string, root: string): Promise<string> {
  const repo = `${root}/models--org--tiny`;
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const snap = `${repo}/snapshots/${commit}`;
  await Deno.mkdir(`${repo}/blobs`, { recursive: true });
  await Deno.mkdir(`${repo}/refs`, { recursive: true });
  await Deno.mkdir(snap, { recursive: true });
  await Deno.writeTextFile(`${repo}/refs/main`, commit);
  for await (const entry of Deno.readDir(src)) {
    if (!entry.isFile) continue;
    const bytes = await Deno.readFile(`${src}/${entry.name}`);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const blob = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    await Deno.writeFile(`${repo}/blobs/${blob}`, bytes);
    await Deno.symlink(`../../blobs/${blob}`, `${snap}/${entry.name}`);
  }
  return snap;
}

Deno.test("bt logits on a hub-cache snapshot it has never seen matches the naive forward pass", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-cli-" });
  try {
    await writeRandomCheckpoint(`${dir}/src`, {
      modelType: "qwen2",
      hiddenSize: 40,
      numLayers: 2,
      numHeads: 5,
      numKvHeads: 1,
      intermediateSize: 64,
      vocabSize: 77,
      dtype: "BF16",
      seed: 3,
    });
    const snap = await hubLayout(`${dir}/src`, `${dir}/hub`);
    const rows = [[1, 2, 3, 4], [5, 6]];
    const env = { BT_CACHE_DIR: `${dir}/cache` };
    const r = await bt([
      "logits",
      "--model",
      snap,
      "--tokens",
      "1,2,3,4",
      "--tokens",
      "5,6",
      "--hook",
      "blocks.1.hook_mlp_out=scale:0",
      "--out",
      `${dir}/out.json`,
    ], env);
    assert.equal(r.code, 0, r.stderr);
    const { logits } = JSON.parse(await Deno.readTextFile(`${dir}/out.json`)) as { logits: number[][] };
    const naive = naiveForward(await loadNaiveWeights(`${dir}/src`), rows, {
      interventions: [{ hook: "blocks.1.hook_mlp_out", op: "scale", value: 0 }],
    });
    assert.equal(logits.length, 2);
    rows.forEach((row, b) => {
      const want = naive.logits[b]![row.length - 1]!;
      const worst = Math.max(...logits[b]!.map((v, i) => Math.abs(v - want[i]!)));
      assert.ok(worst <= 1e-4, `row ${b}: worst |diff| ${worst}`);
    });
    // The snapshot folder itself was not written to (graphs live in the cache, next to hard links).
    const names = [];
    for await (const e of Deno.readDir(snap)) names.push(e.name);
    assert.ok(!names.some((n) => n.endsWith(".onnx")), `graph written into the snapshot: ${names}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bt logits: bad input exits non-zero with a clear message and writes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-cli-" });
  try {
    await writeRandomCheckpoint(`${dir}/m`, {
      modelType: "llama",
      hiddenSize: 16,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 2,
      intermediateSize: 24,
      vocabSize: 20,
    });
    const env = { BT_CACHE_DIR: `${dir}/cache` };
    const out = `${dir}/out.json`;
    const cases: [string[], RegExp][] = [
      [["logits", "--tokens", "1", "--out", out], /--model is required/],
      [["logits", "--model", `${dir}/m`, "--out", out], /--tokens/],
      [["logits", "--model", `${dir}/m`, "--tokens", "1,x", "--out", out], /--tokens #1 "1,x"/],
      [["logits", "--model", `${dir}/m`, "--tokens", "1,99", "--out", out], /token id 99/],
      [[
        "logits",
        "--model",
        `${dir}/m`,
        "--tokens",
        "1",
        "--hook",
        "blocks.5.hook_mlp_out=scale:0",
        "--out",
        out,
      ], /Unknown hook/],
      [
        ["logits", "--model", `${dir}/m`, "--tokens", "1", "--hook", "nonsense", "--out", out],
        /--hook "nonsense"/,
      ],
      [["logits", "--model", `${dir}/m`, "--tokens", "1", "--device", "tpu", "--out", out], /--device/],
      [["logits", "--model", `${dir}/missing`, "--tokens", "1", "--out", out], /missing/],
      [["logits", "--model", `${dir}/m`, "--tokens", "1", "--bogus", "--out", out], /bogus/],
      [["frobnicate"], /unknown command "frobnicate"/],
    ];
    for (const [args, pattern] of cases) {
      const r = await bt(args, env);
      assert.notEqual(r.code, 0, `expected failure for ${args.join(" ")}`);
      assert.match(r.stderr, pattern, `stderr for ${args.join(" ")}`);
    }
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    // CUDA requested on a machine without it: the preflight's message naming what is missing, a non-zero
    // exit and no output (`device: auto` is the setting that falls back to CPU).
    const r = await bt(
      ["logits", "--model", `${dir}/m`, "--tokens", "1,2", "--device", "cuda", "--out", out],
      env,
    );
    assert.notEqual(r.code, 0, "--device cuda without CUDA must fail");
    assert.match(r.stderr, /libonnxruntime_providers_cuda\.so/);
    assert.match(r.stderr, /deno task doctor/);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bt logits: non-finite logits are an error naming row and index; --allow-non-finite writes strings", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-cli-" });
  try {
    await writeRandomCheckpoint(`${dir}/m`, {
      modelType: "llama",
      hiddenSize: 16,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 2,
      intermediateSize: 24,
      vocabSize: 20,
    });
    // Poison one unembedding row (vocabulary index 7) with NaN: logit 7 is NaN at every position.
    const file = `${dir}/m/model.safetensors`;
    const lm = (await readSafetensorsHeader(file)).get("lm_head.weight")!;
    const [, hidden] = lm.shape as [number, number];
    const f = await Deno.open(file, { write: true });
    await f.seek(lm.dataOffset + 7 * hidden * 4, Deno.SeekMode.Start);
    await f.write(new Uint8Array(new Float32Array([NaN]).buffer));
    f.close();
    const env = { BT_CACHE_DIR: `${dir}/cache` };
    const out = `${dir}/out.json`;
    const r = await bt(
      ["logits", "--model", `${dir}/m`, "--tokens", "1,2", "--tokens", "3", "--out", out],
      env,
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /--tokens #1 \(1,2\) hold 1 non-finite value\(s\), first at vocabulary index 7: NaN/,
    );
    assert.match(r.stderr, /--allow-non-finite/);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    const ok = await bt(
      ["logits", "--model", `${dir}/m`, "--tokens", "1,2", "--allow-non-finite", "--out", out],
      env,
    );
    assert.equal(ok.code, 0, ok.stderr);
    const { logits } = JSON.parse(await Deno.readTextFile(out)) as { logits: (number | string)[][] };
    assert.equal(logits[0]![7], "NaN");
    assert.ok(logits[0]!.every((v, i) => (i === 7 ? true : typeof v === "number" && Number.isFinite(v))));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
