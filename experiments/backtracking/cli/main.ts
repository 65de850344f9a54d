/**
 * `deno task bt <command>`: the command-line entry point. `bt` / `bt --help` lists the commands; every
 * command takes `--help` (its usage, generated from the option table its parser uses: `lib/util/cli.ts`).
 * Exit status: 0 done, 1 the command failed, 2 bad usage (unknown command or option, missing argument).
 *
 * @module
 */

import { LOGITS_CLI, logitsCommand } from "./logits.ts";
import { SCORE_TRACES_CLI, scoreTracesCommand } from "./score_traces.ts";
import { STEP_COMMANDS, STEP_ENVIRONMENT, stepCli, stepCommand } from "./steps.ts";
import {
  type CliIO,
  type CliSpec,
  closestName,
  commandList,
  consoleIO,
  formatRows,
  UsageError,
  wrapText,
} from "../../../lib/util/cli.ts";

/** One `bt` command: its command line (option table and usage) and its action. */
export interface BtCommand {
  readonly cli: CliSpec;
  /** Runs the command on the arguments after its name; returns the exit status, throws on failure. */
  readonly run: (args: string[], io: CliIO) => Promise<number>;
}

/** Every `bt` command by name, in the order `bt --help` lists them. */
export const COMMANDS: Readonly<Record<string, BtCommand>> = {
  ...Object.fromEntries(
    Object.keys(STEP_COMMANDS).map((step) => [step, { cli: stepCli(step), run: stepCommand(step) }]),
  ),
  "score-traces": { cli: SCORE_TRACES_CLI, run: scoreTracesCommand },
  logits: { cli: LOGITS_CLI, run: logitsCommand },
};

/** The text of `bt --help`: the commands with a one-line summary each. */
export function btUsage(): string {
  return [
    "Usage: deno task bt <command> [options]",
    "       deno task bt <command> --help",
    "",
    wrapText(
      "The backtracking experiment on the command line: the pipeline steps (one command each, listed in " +
        "pipeline order), the orchestrators (phase2, pipeline), and tools for external traces and logits. " +
        "Options may also be written --name=value.",
      100,
    ),
    "",
    "Commands:",
    commandList(Object.fromEntries(Object.entries(COMMANDS).map(([name, c]) => [name, c.cli]))),
    "",
    "Environment:",
    formatRows(Object.entries(STEP_ENVIRONMENT)),
    "",
    "Examples:",
    "  deno task bt pipeline",
    "  deno task bt generate --help",
  ].join("\n");
}

/**
 * Dispatch a command line.
 *
 * @param argv The arguments after `bt`: a command, then its options.
 * @param io Where usage text and errors go (default: stdout / stderr).
 * @returns The exit status: 0 done (or help printed), 1 the command failed, 2 bad usage.
 */
export async function main(argv: string[], io: CliIO = consoleIO): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    const topic = command === "help" ? rest[0] : undefined;
    if (topic !== undefined && COMMANDS[topic]) return await main([topic, "--help"], io);
    if (topic !== undefined) return unknownCommand(topic, io);
    io.out(btUsage());
    return 0;
  }
  const cmd = COMMANDS[command];
  if (!cmd) return unknownCommand(command, io);
  try {
    return await cmd.run(rest, io);
  } catch (error) {
    const e = error as Error;
    const usage = e instanceof UsageError;
    io.err(`bt ${command}: ${e.message}`);
    if (!usage && Deno.env.get("BT_DEBUG")) io.err(e.stack ?? "");
    return usage ? 2 : 1;
  }
}

function unknownCommand(command: string, io: CliIO): number {
  const names = Object.keys(COMMANDS);
  const what = command.startsWith("-")
    ? `bt: unknown option ${command} (a command comes first)`
    : `bt: unknown command "${command}"`;
  const guess = command.startsWith("-") ? undefined : closestName(command, names);
  io.err(
    `${what}${guess !== undefined ? `; did you mean "${guess}"?` : ""}\n` +
      "Run `deno task bt --help` for the commands.",
  );
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
