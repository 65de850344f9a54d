import assert from "node:assert/strict";
import { writeRandomCheckpoint } from "../../lib/engine/random_checkpoint.ts";

const SCRIPT = new URL("./_generate_script.ts", import.meta.url).pathname;

async function runScript(checkpoint: string, out: string, delayMs: number, killAfterLines?: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, checkpoint, out],
    env: { BT_TEST_DELAY_MS: String(delayMs), NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  if (killAfterLines !== undefined) {
    // Kill -9 once some records are on disk.
    for (let i = 0; i < 600; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const text = await Deno.readTextFile(out).catch(() => "");
      if (text.split("\n").length > killAfterLines) break;
    }
    child.kill("SIGKILL");
  }
  const status = await child.status;
  const stderr = new TextDecoder().decode(
    (await child.output().catch(() => ({ stderr: new Uint8Array() }))).stderr,
  );
  return { status, stderr };
}

Deno.test("generation killed with SIGKILL resumes to the same final file as an uninterrupted run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bt-resume-" });
  try {
    await writeRandomCheckpoint(`${dir}/ckpt`, {
      modelType: "qwen2",
      hiddenSize: 32,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 48,
      vocabSize: 64,
      seed: 5,
    });
    const full = await runScript(`${dir}/ckpt`, `${dir}/full.jsonl`, 0);
    assert.equal(full.status.code, 0, full.stderr);

    const killed = await runScript(`${dir}/ckpt`, `${dir}/resumed.jsonl`, 60, 10);
    assert.notEqual(killed.status.code, 0, "the first run should have been killed");
    const partial = (await Deno.readTextFile(`${dir}/resumed.jsonl`)).split("\n").filter(Boolean).length;
    assert.ok(partial >= 10 && partial < 72, `killed run left ${partial} records`);

    const resumed = await runScript(`${dir}/ckpt`, `${dir}/resumed.jsonl`, 0);
    assert.equal(resumed.status.code, 0, resumed.stderr);
    const a = await Deno.readTextFile(`${dir}/full.jsonl`);
    const b = await Deno.readTextFile(`${dir}/resumed.jsonl`);
    assert.equal(a.split("\n").filter(Boolean).length, 72);
    assert.equal(b, a, "resumed file differs from the uninterrupted run's");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("generateToStore: an output folder that is missing fails before any model work", async () => {
  const { generateToStore } = await import("../../lib/generate/run_generation.ts");
  const { HookedModel } = await import("../../lib/engine/hooked_model.ts");
  const dir = await Deno.makeTempDir({ prefix: "bt-resume-" });
  try {
    await writeRandomCheckpoint(`${dir}/ckpt`, {
      modelType: "qwen2",
      hiddenSize: 16,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 1,
      intermediateSize: 24,
      vocabSize: 32,
    });
    const model = await HookedModel.load(`${dir}/ckpt`, { cacheDir: `${dir}/.graphs` });
    let forwards = 0;
    const spy = new Proxy(model, {
      get(target, prop) {
        if (prop === "forward") {
          return (...args: Parameters<typeof model.forward>) => (forwards++, target.forward(...args));
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    try {
      await assert.rejects(
        generateToStore(spy, [{ exampleId: 0, prompt: "p", tokenIds: [1, 2] }], {
          path: `${dir}/no/such/folder/out.jsonl`,
          variant: "v",
          condition: "baseline",
          maxNewTokens: 4,
          sampling: { temperature: 1 },
          eosTokenIds: [],
          seed: 0,
          decodeCompletion: (ids) => ids.join(" "),
          progress: "silent",
        }),
        /no[/]such[/]folder/,
      );
      assert.equal(forwards, 0);
    } finally {
      await model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
