import assert from "node:assert/strict";
import { writeRandomCheckpoint } from "../../lib/model/random_checkpoint.ts";

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
