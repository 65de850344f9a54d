/**
 * The shared command-line helper (lib/util/cli.ts): one option table drives the parser and the usage
 * text; unknown options name the near miss; `--help` wins.
 */
import assert from "node:assert/strict";
import {
  closestName,
  defineCli,
  editDistance,
  firstSentence,
  parseCli,
  synopsis,
  UsageError,
  usageError,
  usageText,
  wrapText,
} from "../../lib/util/cli.ts";

/** Naive recursive optimal-string-alignment distance, independent of the dynamic program. */
function naiveDistance(a: string, b: string): number {
  if (a === "") return b.length;
  if (b === "") return a.length;
  let best = Math.min(
    naiveDistance(a.slice(1), b) + 1,
    naiveDistance(a, b.slice(1)) + 1,
    naiveDistance(a.slice(1), b.slice(1)) + (a[0] === b[0] ? 0 : 1),
  );
  if (a.length > 1 && b.length > 1 && a[0] === b[1] && a[1] === b[0]) {
    best = Math.min(best, naiveDistance(a.slice(2), b.slice(2)) + 1);
  }
  return best;
}

Deno.test("editDistance matches a naive recursion on random short strings", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const word = () =>
    Array.from({ length: Math.floor(rand() * 6) }, () => "abc-"[Math.floor(rand() * 4)]).join("");
  for (let i = 0; i < 300; i++) {
    const [a, b] = [word(), word()];
    assert.equal(editDistance(a, b), naiveDistance(a, b), `${a} / ${b}`);
  }
  assert.equal(editDistance("hlep", "help"), 1, "a transposition costs 1");
  assert.equal(editDistance("kitten", "sitting"), 3);
});

Deno.test("closestName: separators and case, unique prefixes, small typos; nothing when far or tied", () => {
  const names = ["config", "run-id", "runs-root", "force", "figures-dir", "help"];
  assert.equal(closestName("run_id", names), "run-id");
  assert.equal(closestName("RUN-ID", names), "run-id");
  assert.equal(closestName("conf", names), "config");
  assert.equal(closestName("confg", names), "config");
  assert.equal(closestName("hlep", names), "help");
  assert.equal(closestName("figure-dir", names), "figures-dir");
  assert.equal(closestName("ru", names), undefined, "prefix of two options");
  assert.equal(closestName("verbose", names), undefined);
  assert.equal(closestName("x", ["a", "b"]), undefined, "tied at distance 1");
});

const DEMO = defineCli({
  command: "demo",
  summary: "Do a demo. Second sentence.",
  options: {
    in: { type: "string", arg: "FILE", required: true, help: "Input." },
    "run-id": { type: "string", arg: "ID", help: "The run.", default: "the current run", env: "DEMO_RUN_ID" },
    tag: { type: "string", short: "t", arg: "T", multiple: true, help: "A tag." },
    force: { type: "boolean", help: "Redo." },
  },
  examples: ["demo --in x.jsonl"],
});

function usageFailure(args: string[]): string {
  try {
    parseCli(DEMO, args);
  } catch (e) {
    assert.ok(e instanceof UsageError, `a UsageError, got ${e}`);
    return e.message;
  }
  throw new Error(`no usage error for ${args.join(" ")}`);
}

Deno.test("parseCli: values, repeated and inline options; --help wins over every problem", () => {
  const p = parseCli(DEMO, ["--in", "a", "--run-id=r1", "-t", "x", "--tag", "y", "--force"]);
  assert.ok(!p.help);
  assert.deepEqual(p.values, { in: "a", "run-id": "r1", tag: ["x", "y"], force: true });
  assert.deepEqual(parseCli(DEMO, ["--bogus", "--help"]), { help: true });
  assert.deepEqual(parseCli(DEMO, ["-h"]), { help: true });
  assert.throws(
    () => parseCli(DEMO, ["--in", "a", "--", "--help"]),
    /unexpected argument "--help"/,
    "after --",
  );
});

Deno.test("parseCli: usage errors name the option, suggest the near miss and point to --help", () => {
  const runId = usageFailure(["--in", "a", "--run_id", "r"]);
  assert.match(runId, /unknown option --run_id; did you mean --run-id\?/);
  assert.match(runId, /Run `demo --help` for usage\./);
  assert.match(usageFailure(["--in", "a", "--verbose"]), /^unknown option --verbose\nRun `demo --help`/);
  assert.match(usageFailure(["--in", "a", "-x"]), /unknown option -x/);
  assert.match(
    usageFailure(["--in", "a", "--toString"]),
    /unknown option --toString/,
    "not an inherited key",
  );
  assert.match(usageFailure(["--force"]), /--in is required/);
  assert.match(usageFailure(["--in"]), /--in/, "a string option without its value");
  assert.match(usageFailure(["--in", "a", "--force=yes"]), /--force/, "a value for a switch");
  assert.match(
    usageFailure(["--in", "a", "stray"]),
    /unexpected argument "stray" \(this command takes none\)/,
  );
});

Deno.test("parseCli: positionals and their minimum; unknownHint adds to the message", () => {
  const spec = defineCli({
    command: "nb",
    summary: "Run notebooks.",
    options: { out: { type: "string", help: "Out." } },
    positionals: { synopsis: "FILE...", help: "Files.", min: 1 },
    examples: ["nb a.ipynb"],
    unknownHint: (name) => (name === "variant" ? "nb takes no --variant" : undefined),
  });
  const p = parseCli(spec, ["a", "--out", "o", "b"]);
  assert.ok(!p.help);
  assert.deepEqual(p.positionals, ["a", "b"]);
  assert.throws(() => parseCli(spec, ["--out", "o"]), /expected FILE\.\.\., got 0 argument/);
  assert.throws(
    () => parseCli(spec, ["a", "--variant", "v"]),
    /unknown option --variant \(nb takes no --variant\)/,
  );
});

Deno.test("usageText: synopsis, summary, every option with argument, default, env; example", () => {
  const text = usageText(DEMO);
  assert.equal(synopsis(DEMO), "demo --in FILE [options]");
  assert.ok(text.startsWith("Usage: demo --in FILE [options]\n\nDo a demo. Second sentence.\n"), text);
  for (
    const line of [
      /--in FILE +Input\. Required\./,
      /--run-id ID +The run\. Default: the current run\. Env: DEMO_RUN_ID\./,
      /-t, --tag T +A tag\. Repeatable\./,
      /--force +Redo\./,
      /-h, --help +Print this help and exit\./,
      /Example:\n {2}demo --in x\.jsonl/,
    ]
  ) {
    assert.match(text, line);
  }
  assert.ok(text.split("\n").every((l) => l.length <= 100 || !l.includes(" ")), "wrapped at 100");
  assert.equal(firstSentence(DEMO.summary), "Do a demo");
  assert.equal(wrapText("aa bb cc", 5, 2), "aa\n  bb\n  cc");
  assert.match(usageError(DEMO, "bad").message, /^bad\nRun `demo --help` for usage\.$/);
});

Deno.test("defineCli refuses a table that would confuse the parser", () => {
  const base = { command: "x", summary: "X.", examples: ["x"] };
  assert.throws(() => defineCli({ ...base, options: { help: { type: "boolean", help: "h" } } }), /help/);
  assert.throws(
    () =>
      defineCli({
        ...base,
        options: {
          a: { type: "boolean", short: "c", help: "" },
          b: { type: "boolean", short: "c", help: "" },
        },
      }),
    /-c is both --a and --b/,
  );
  assert.throws(
    () => defineCli({ ...base, options: { a: { type: "boolean", short: "h", help: "" } } }),
    /-h/,
  );
  assert.throws(() => defineCli({ ...base, examples: [], options: {} }), /example/);
});
