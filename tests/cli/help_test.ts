/**
 * Every command-line entry point documents itself: `--help` prints the usage (exit 0) naming every option
 * its parser accepts (the list comes from the option table, so an option added without documentation
 * fails here), and an unknown option exits 2 naming it, the near miss and `--help`. In-process for every
 * entry and every `bt` command; real subprocesses for a few, as a user types them.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { COMMANDS, main as btMain } from "../../experiments/backtracking/cli/main.ts";
import {
  main as seriesMain,
  NOTEBOOKS_CLI,
  PIPELINE_CLI,
} from "../../experiments/backtracking/pipeline_main.ts";
import { main as runnerMain, NOTEBOOK_CLI } from "../../lib/notebook/main.ts";
import { BENCH_CLI, main as benchMain } from "../../lib/bench/main.ts";
import { CAPI_DECODE_CLI, main as capiMain } from "../../lib/bench/capi_decode.ts";
import { DOCTOR_CLI, main as doctorMain } from "../../lib/engine/ort/doctor.ts";
import { type CliIO, type CliSpec, firstSentence } from "../../lib/util/cli.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function collector(): { io: CliIO; out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (l) => out.push(l), err: (l) => err.push(l) },
    out: () => out.join("\n"),
    err: () => err.join("\n"),
  };
}

/** One entry point: its option table and how to call it with arguments in-process. */
interface Entry {
  readonly name: string;
  readonly cli: CliSpec;
  readonly call: (args: string[], io: CliIO) => Promise<number> | number;
}

const ENTRIES: Entry[] = [
  ...Object.entries(COMMANDS).map(([cmd, c]) => ({
    name: `bt ${cmd}`,
    cli: c.cli,
    call: (args: string[], io: CliIO) => btMain([cmd, ...args], io),
  })),
  { name: "pipeline", cli: PIPELINE_CLI, call: (a, io) => seriesMain(["pipeline", ...a], io) },
  { name: "notebooks", cli: NOTEBOOKS_CLI, call: (a, io) => seriesMain(["notebooks", ...a], io) },
  { name: "lib/notebook/main.ts", cli: NOTEBOOK_CLI, call: runnerMain },
  { name: "bench", cli: BENCH_CLI, call: benchMain },
  { name: "lib/bench/capi_decode.ts", cli: CAPI_DECODE_CLI, call: capiMain },
  { name: "doctor", cli: DOCTOR_CLI, call: doctorMain },
];

/** A near miss of an option name: `_` for `-`, else its last two letters swapped. */
function nearMiss(name: string): string {
  return name.includes("-") ? name.replaceAll("-", "_") : name.slice(0, -2) + name.at(-1) + name.at(-2);
}

Deno.test("every entry point: --help and -h print usage naming every option of its parser, exit 0", async () => {
  for (const e of ENTRIES) {
    for (const flag of ["--help", "-h"]) {
      const c = collector();
      assert.equal(await e.call([flag], c.io), 0, `${e.name} ${flag}: ${c.err()}`);
      const text = c.out();
      assert.equal(c.err(), "", `${e.name} ${flag} writes nothing to stderr`);
      assert.ok(text.startsWith(`Usage: ${e.cli.command}`), `${e.name}: synopsis first:\n${text}`);
      assert.ok(text.includes(e.cli.summary.split(" ").slice(0, 4).join(" ")), `${e.name}: summary`);
      assert.match(text, /\nExamples?:\n {2}\S/, `${e.name}: an example`);
      for (const [name, o] of Object.entries(e.cli.options)) {
        const head = (o.short ? `-${o.short}, ` : "") + `--${name}` +
          (o.type === "string" ? ` ${o.arg ?? ""}` : "");
        assert.ok(text.includes(head.trim()), `${e.name} --help does not document ${head}:\n${text}`);
        const flat = text.replaceAll(/\s+/g, " ");
        if (o.default) assert.ok(flat.includes(`Default: ${o.default}`), `${e.name} --${name}: default`);
        if (o.env) assert.ok(flat.includes(`Env: ${o.env}`), `${e.name} --${name}: environment variable`);
      }
    }
  }
});

Deno.test("every entry point: an unknown option exits 2, names it, suggests the near miss, points to --help", async () => {
  for (const e of ENTRIES) {
    for (const name of Object.keys(e.cli.options)) {
      if (name.length < 4) continue; // too short for an unambiguous near miss (in, out, env)
      const typo = nearMiss(name);
      const c = collector();
      assert.equal(await e.call([`--${typo}`], c.io), 2, `${e.name} --${typo}`);
      assert.equal(c.out(), "", `${e.name} --${typo}: nothing on stdout`);
      assert.match(c.err(), new RegExp(`unknown option --${typo}; did you mean --${name}\\?`), e.name);
      assert.ok(c.err().includes(`${e.cli.command} --help`), `${e.name}: points to --help`);
    }
    const c = collector();
    assert.equal(await e.call(["--no-such-option"], c.io), 2, e.name);
    assert.match(
      c.err(),
      /unknown option --no-such-option\n/,
      `${e.name}: no suggestion when nothing is near`,
    );
  }
});

Deno.test("bt: --help, -h, help and no command list every command with its one-line summary", async () => {
  for (const args of [[], ["--help"], ["-h"], ["help"]]) {
    const c = collector();
    assert.equal(await btMain(args, c.io), 0, args.join(" "));
    for (const [cmd, { cli }] of Object.entries(COMMANDS)) {
      assert.match(
        c.out(),
        new RegExp(`\\n  ${cmd} +${firstSentence(cli.summary).slice(0, 30).replace(/[.()]/g, "\\$&")}`),
      );
    }
  }
  const help = collector();
  assert.equal(await btMain(["help", "generate"], help.io), 0);
  assert.match(help.out(), /^Usage: deno task bt generate/);
  for (
    const [args, pattern] of [
      [["scor-traces"], /bt: unknown command "scor-traces"; did you mean "score-traces"\?/],
      [["detect_events"], /did you mean "detect-events"\?/],
      [["frobnicate", "--help"], /bt: unknown command "frobnicate"\nRun `deno task bt --help`/],
      [["--verbose"], /bt: unknown option --verbose \(a command comes first\)/],
    ] as const
  ) {
    const c = collector();
    assert.equal(await btMain([...args], c.io), 2, args.join(" "));
    assert.match(c.err(), pattern);
  }
  // A flag that belongs to other steps says which.
  const c = collector();
  assert.equal(await btMain(["prepare-data", "--variant", "x"], c.io), 2);
  assert.match(c.err(), /unknown option --variant \(prepare-data takes no --variant; it applies to generate/);
});

Deno.test("pipeline_main: no command lists both; a wrong command or a stray argument is a usage error", async () => {
  const c = collector();
  assert.equal(await seriesMain([], c.io), 0);
  assert.match(c.out(), /pipeline +Run the whole experiment/);
  assert.match(c.out(), /notebooks +Execute notebooks/);
  const bad = collector();
  assert.equal(await seriesMain(["pipelne"], bad.io), 2);
  assert.match(bad.err(), /Unknown command "pipelne" \(pipeline or notebooks\); did you mean pipeline\?/);
  const stray = collector();
  assert.equal(await seriesMain(["pipeline", "04"], stray.io), 2);
  assert.match(
    stray.err(),
    /unexpected argument "04"; pipeline runs the whole series; use `deno task notebooks/,
  );
});

Deno.test("every deno.json task that runs a program is an entry point tested here", () => {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<string, string>;
  const programs = Object.entries(tasks).flatMap(([task, cmd]) => {
    const m = /^deno run .*?(\S+\.ts)\b/.exec(cmd);
    return m ? [[task, m[1]!] as const] : [];
  });
  assert.ok(programs.length >= 5, JSON.stringify(programs));
  const tested: Record<string, string> = {
    "experiments/backtracking/cli/main.ts": "bt",
    "experiments/backtracking/pipeline_main.ts": "pipeline",
    "lib/bench/main.ts": "bench",
    "lib/engine/ort/doctor.ts": "doctor",
  };
  for (const [task, file] of programs) {
    assert.ok(file in tested, `deno task ${task} runs ${file}: add it to this test's ENTRIES (with --help)`);
  }
});

async function run(file: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${ROOT}${file}`, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("subprocesses: bt score-traces --help (the reported case), a typo, bare bt; pipeline and doctor --help", async () => {
  const BT = "experiments/backtracking/cli/main.ts";
  const help = await run(BT, ["score-traces", "--help"]);
  assert.equal(help.code, 0, help.stderr);
  for (const name of Object.keys(COMMANDS["score-traces"]!.cli.options)) {
    assert.ok(help.stdout.includes(`--${name}`));
  }
  const typo = await run(BT, ["score-traces", "--in", "t.jsonl", "--tokeniser", "x"]);
  assert.equal(typo.code, 2);
  assert.equal(typo.stdout, "");
  assert.match(typo.stderr, /bt score-traces: unknown option --tokeniser; did you mean --tokenizer\?/);
  assert.match(typo.stderr, /Run `deno task bt score-traces --help` for usage\./);
  const bare = await run(BT, []);
  assert.equal(bare.code, 0);
  assert.match(bare.stdout, /\n {2}score-traces +Score reasoning traces/);
  const pipeline = await run("experiments/backtracking/pipeline_main.ts", ["pipeline", "--help"]);
  assert.equal(pipeline.code, 0, pipeline.stderr);
  assert.match(
    pipeline.stdout,
    /--runs-root DIR +Where run folders are made\. Default: runs\/ in the project\. Env:\s+BT_RUNS_ROOT/,
  );
  const doctor = await run("lib/engine/ort/doctor.ts", ["--run_id", "x"]);
  assert.equal(doctor.code, 2);
  assert.match(doctor.stderr, /doctor: unknown option --run_id\n/);
});

Deno.test("bt pipeline --help: Phase 2 runs too when the config enables it (it said 'whole Phase-1')", async () => {
  const c = collector();
  assert.equal(await btMain(["pipeline", "--help"], c.io), 0);
  const text = c.out().replaceAll(/\s+/g, " ");
  assert.doesNotMatch(text, /Phase-1 experiment/);
  assert.match(text, /Phase 1, then Phase 2 when the config enables any of phase2\.subset_sweep/);
});
