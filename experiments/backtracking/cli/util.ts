/**
 * Small helpers shared by CLI subcommands.
 * @module
 */

/** A command-line mistake: printed without a stack trace, exit code 2 (the toolkit's, `lib/util/cli.ts`). */
export { UsageError } from "../../../lib/util/cli.ts";
