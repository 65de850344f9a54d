/**
 * Issue 17 acceptance, with real processes started as the schedulers start them: the deploy recipes'
 * scripts (`deploy/slurm/bt.sbatch`, the Kubernetes Indexed Job's container command) run as N concurrent
 * processes with the scheduler's variables set (SLURM_ARRAY_TASK_ID/_COUNT/_MIN; JOB_COMPLETION_INDEX with
 * BT_SHARD_COUNT), stage after stage (deploy/stages.sh; the ablation scan sharded too). On a small organism
 * config, N = 1, 2 and 3 shards give generations, analysis tables, figures and report byte-identical to the
 * unsharded run; a shard
 * killed mid-way makes the next analysis stage fail naming it (nothing merged), and rerunning only that
 * shard gives the same result.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { writeSmallShardConfig } from "./_shard_config.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const SCHEDULER_VARS = [
  "SLURM_ARRAY_TASK_ID",
  "SLURM_ARRAY_TASK_COUNT",
  "SLURM_ARRAY_TASK_MIN",
  "JOB_COMPLETION_INDEX",
  "BT_SHARD",
  "BT_SHARD_COUNT",
];

/** One runs root with its config (run.output_dir = the root); every run is called {@linkcode RUN_ID}. */
interface Ctx {
  readonly config: string;
  readonly logs: string;
}

/** The same run id everywhere (it is printed in the report), in a runs root per N. */
const RUN_ID = "cluster";

/** Start `bash <args>` in its own process group (so a kill reaches its `deno` child), logging to a file. */
function start(ctx: Ctx, name: string, args: string[], env: Record<string, string>): Deno.ChildProcess {
  const base = Deno.env.toObject();
  for (const v of SCHEDULER_VARS) delete base[v];
  return new Deno.Command("setsid", {
    args: ["bash", "-c", `exec bash "$@" > "${join(ctx.logs, name)}.log" 2>&1`, "bash", ...args],
    cwd: REPO,
    clearEnv: true,
    env: { ...base, BT_CONFIG: ctx.config, BT_DENO: Deno.execPath(), SLURM_SUBMIT_DIR: REPO, ...env },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function log(ctx: Ctx, name: string): Promise<string> {
  return await Deno.readTextFile(join(ctx.logs, `${name}.log`)).catch(() => "");
}

/** Run processes concurrently; every one must succeed (the failing one's log is shown). */
async function all(ctx: Ctx, procs: [string, Deno.ChildProcess][]): Promise<void> {
  const st = await Promise.all(procs.map(([, p]) => p.status));
  for (let i = 0; i < procs.length; i++) {
    const name = procs[i]![0];
    assert.ok(st[i]!.success, `${name} failed (${st[i]!.code}):\n${(await log(ctx, name)).slice(-3000)}`);
  }
}

/** A single-task stage: the sbatch script without array variables. */
async function single(ctx: Ctx, runId: string, stage: string): Promise<void> {
  const name = `${runId}-${stage}`;
  await all(ctx, [[name, start(ctx, name, ["deploy/slurm/bt.sbatch", stage], { BT_RUN_ID: RUN_ID })]]);
}

/** A SLURM array stage: `sbatch --array=min-(min+n-1)`, one process per task. */
function slurmArray(ctx: Ctx, runId: string, stage: string, n: number, min: number, only?: number) {
  const tasks = Array.from({ length: n }, (_, k) => k).filter((k) => only === undefined || k === only);
  return tasks.map((k): [string, Deno.ChildProcess] => {
    const name = `${runId}-${stage}-task${min + k}${only === undefined ? "" : "-rerun"}`;
    return [
      name,
      start(ctx, name, ["deploy/slurm/bt.sbatch", stage], {
        BT_RUN_ID: RUN_ID,
        SLURM_JOB_ID: "4242",
        SLURM_ARRAY_JOB_ID: "4242",
        SLURM_ARRAY_TASK_ID: String(min + k),
        SLURM_ARRAY_TASK_COUNT: String(n),
        SLURM_ARRAY_TASK_MIN: String(min),
        SLURM_ARRAY_TASK_MAX: String(min + n - 1),
      }),
    ];
  });
}

/** A Kubernetes Indexed Job stage: the container command and env of deploy/k8s/generate-job.yaml. */
async function k8sIndexed(ctx: Ctx, runId: string, stage: string, n: number) {
  const job = parse(await Deno.readTextFile(join(REPO, "deploy/k8s/generate-job.yaml")));
  assert.equal(job.spec.completionMode, "Indexed");
  const container = job.spec.template.spec.containers[0];
  const command = (container.command as string[]).map((c) => (c === "generate-1" ? stage : c));
  assert.equal(command[0], "bash");
  const env: Record<string, string> = {};
  for (const e of container.env as { name: string; value: string }[]) env[e.name] = e.value;
  delete env.HOME;
  return Array.from({ length: n }, (_, k): [string, Deno.ChildProcess] => {
    const name = `${runId}-${stage}-index${k}`;
    return [
      name,
      start(ctx, name, command.slice(1), {
        ...env,
        BT_SHARD_COUNT: String(n),
        BT_RUN_ID: RUN_ID,
        BT_CONFIG: ctx.config,
        JOB_COMPLETION_INDEX: String(k),
      }),
    ];
  });
}

/** The files that must be byte-identical across runs: stores, analysis tables, figures, the report. */
async function outputs(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile) out.set(relative(dir, p), await Deno.readFile(p));
    }
  };
  for (const sub of ["generations", "analysis", "figures"]) await walk(join(dir, sub));
  for (const k of [...out.keys()]) {
    if (k.endsWith(".timings.jsonl") || /\.shard|\.shards-/.test(k)) out.delete(k);
  }
  out.set("report.md", await Deno.readFile(join(dir, "report.md")));
  return out;
}

/** The report without the lines that carry wall-clock times. */
function untimed(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).split("\n").filter((l) => !/^Report written |^- Started: /.test(l))
    .join("\n");
}

function assertSameOutputs(ref: Map<string, Uint8Array>, got: Map<string, Uint8Array>, what: string): void {
  assert.deepEqual([...got.keys()].sort(), [...ref.keys()].sort(), `${what}: the same files`);
  const differ: string[] = [];
  for (const [f, bytes] of ref) {
    const other = got.get(f)!;
    const same = f === "report.md"
      ? untimed(bytes) === untimed(other)
      : bytes.length === other.length && bytes.every((b, i) => b === other[i]);
    if (!same && f === "report.md") {
      const [a, b] = [untimed(bytes).split("\n"), untimed(other).split("\n")];
      const lines = a.flatMap((l, i) => (l === b[i] ? [] : [`  - ${l}\n  + ${b[i]}`])).slice(0, 6);
      differ.push(`report.md:\n${lines.join("\n")}`);
    } else if (!same) differ.push(f);
  }
  assert.deepEqual(differ, [], `${what}: files differ from the unsharded run`);
}

Deno.test({
  name: "N = 1, 2, 3 concurrent shards (SLURM array, k8s Indexed Job) = the unsharded run; a killed shard",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "shard_cluster_" });
    const logs = join(root, "logs");
    await Deno.mkdir(logs);
    // One config file for every run (its path is printed in the report), rewritten before each run with
    // that run's runs root (run.output_dir, which no sample depends on).
    const runsRoot = async (name: string): Promise<Ctx> => {
      await Deno.mkdir(join(root, name));
      const config = join(root, "config.yaml");
      await Deno.rename(await writeSmallShardConfig(join(root, name)), config);
      return { config, logs };
    };
    try {
      // The unsharded run: one process for the whole pipeline.
      const refCtx = await runsRoot("ref");
      await single(refCtx, "ref", "prepare");
      await single(refCtx, "ref", "analyse-2");
      const ref = await outputs(join(root, "ref", RUN_ID));
      assert.ok([...ref.keys()].some((k) => k.startsWith("generations/") && k.includes("phase2_")));

      // N = 1 and 3 as SLURM arrays (N = 3 as --array=1-3), N = 2 as a Kubernetes Indexed Job.
      for (const n of [1, 2, 3]) {
        const id = `n${n}`;
        const ctx = await runsRoot(id);
        const gen = (stage: string) =>
          n === 2 ? k8sIndexed(ctx, id, stage, n) : slurmArray(ctx, id, stage, n, n === 3 ? 1 : 0);
        await single(ctx, id, "prepare");
        if (n === 3) {
          // Shard 1/3 is killed once it has stored a record, before it finished.
          const procs = await gen("generate-1");
          const victim = procs[1]![1];
          const store = join(
            root,
            id,
            RUN_ID,
            "generations/baseline_think_newline/baseline.shard-1-of-3.jsonl",
          );
          for (;;) {
            const text = await Deno.readTextFile(store).catch(() => "");
            if (text.includes("\n")) break;
            await new Promise((r) => setTimeout(r, 10));
          }
          Deno.kill(-victim.pid, "SIGKILL");
          assert.equal((await victim.status).signal, "SIGKILL");
          await all(ctx, [procs[0]!, procs[2]!]);
          const done = await Array.fromAsync(
            Deno.readDir(join(root, id, RUN_ID, "generations/no_think_tags")),
          )
            .catch(() => []);
          assert.ok(
            !done.some((e) => e.name === "baseline.shard-1-of-3.done.json"),
            "the killed shard had not finished",
          );
          // The next stage refuses to merge and names the shard.
          const name = `${id}-analyse-1-missing`;
          const p = start(ctx, name, ["deploy/slurm/bt.sbatch", "analyse-1"], { BT_RUN_ID: RUN_ID });
          assert.equal((await p.status).success, false, "analyse-1 must fail while shard 1/3 is missing");
          const text = await log(ctx, name);
          assert.match(text, /shard 1\/3 \(baseline\.shard-1-of-3\.jsonl\) (did not finish|was never run)/);
          assert.match(text, /--shard 1\/3/);
          await assert.rejects(
            Deno.stat(join(root, id, RUN_ID, "generations/no_think_tags/baseline.jsonl")),
            Deno.errors.NotFound,
            "an incomplete store must not be merged",
          );
          // Rerun only that shard: it resumes.
          await all(ctx, slurmArray(ctx, id, "generate-1", n, 1, 1));
        } else {
          await all(ctx, await gen("generate-1"));
        }
        await single(ctx, id, "analyse-1");
        await all(ctx, await gen("scan"));
        await single(ctx, id, "select");
        assert.match(await log(ctx, `${id}-select`), new RegExp(`assembled the scores of ${n} shard\\(s\\)`));
        await all(ctx, await gen("generate-2"));
        await single(ctx, id, "analyse-2");
        // Every store was generated by the shards: plans for each, and the final stage generated nothing.
        const plans =
          (await Array.fromAsync(Deno.readDir(join(root, id, RUN_ID, "generations/baseline_think_newline"))))
            .map((e) => e.name).filter((f) => f.endsWith(`.shards-${n}.plan.json`)).sort();
        assert.ok(plans.includes(`targeted_ablation.shards-${n}.plan.json`), plans.join(", "));
        assert.ok(plans.includes(`random_ablation.shards-${n}.plan.json`), plans.join(", "));
        assert.ok(plans.some((f) => f.startsWith("phase2_steer_")), `steering shards: ${plans.join(", ")}`);
        assert.ok(
          plans.filter((f) => /^phase2_.*_s0\./.test(f)).length >= 2,
          `sweep shards: ${plans.join(", ")}`,
        );
        const final = await log(ctx, `${id}-analyse-2`);
        assert.doesNotMatch(final, /: [1-9]\d* new,/, "the final analysis stage must not generate");
        assert.match(final, /merge baseline_think_newline\/phase2_/);
        assertSameOutputs(ref, await outputs(join(root, id, RUN_ID)), `${n} shard(s)`);
      }
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
