/**
 * `deno task bt <command>`: the command-line entry point.
 * @module
 */

import { logitsCommand } from "./logits.ts";
import { scoreTracesCommand } from "./score_traces.ts";
import { STEP_COMMANDS, stepCommand } from "./steps.ts";
import { UsageError } from "./util.ts";

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  logits: logitsCommand,
  "score-traces": scoreTracesCommand,
  ...Object.fromEntries(Object.keys(STEP_COMMANDS).map((step) => [step, stepCommand(step)])),
};

/** Dispatch a command line; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h") {
    console.log(`usage: bt <command> [options]\ncommands: ${Object.keys(COMMANDS).join(", ")}`);
    return command ? 0 : 2;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`bt: unknown command "${command}"; commands: ${Object.keys(COMMANDS).join(", ")}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (error) {
    const e = error as Error;
    // node:util parseArgs throws TypeErrors with codes for unknown/ill-formed flags.
    const usage = e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    console.error(`bt ${command}: ${e.message}`);
    if (!usage && Deno.env.get("BT_DEBUG")) console.error(e.stack);
    return usage ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
