/**
 * Command-line parsing and usage text from one option table, shared by every entry point (`deno task bt
 * <command>`, `deno task pipeline` / `notebooks`, `deno task bench`, `deno task doctor`,
 * `lib/notebook/main.ts`): the table drives `node:util` `parseArgs` and the `--help` text, so the two cannot
 * drift.
 *
 * Every command gets `-h` / `--help` (the usage text on stdout, exit 0). An unknown option is a
 * {@linkcode UsageError} (exit status 2 by convention) that names the option, suggests the closest valid
 * one when it is a near miss (`--run_id` → `--run-id`) and points to `--help`.
 *
 * @example
 * ```ts
 * const CLI = defineCli({
 *   command: "deno task demo",
 *   summary: "Print a greeting.",
 *   options: { name: { type: "string", arg: "NAME", help: "Who to greet.", default: "world" } },
 *   examples: ["deno task demo --name Ada"],
 * });
 * const parsed = parseCli(CLI, Deno.args); // throws UsageError on bad usage
 * if (parsed.help) console.log(usageText(CLI));
 * else console.log(`hello ${parsed.values.name ?? "world"}`);
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";

/** A command-line mistake: printed without a stack trace, exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** One option of a command. */
export interface CliOption {
  /** `string` takes a value (`--config FILE`, `--config=FILE`); `boolean` is a switch. */
  readonly type: "string" | "boolean";
  /** A one-letter alias (`c` for `-c`). */
  readonly short?: string;
  /** The option may be repeated; its values are collected in order. */
  readonly multiple?: boolean;
  /** The value's placeholder in the usage text (string options; default `VALUE`). */
  readonly arg?: string;
  /** What the option does (one or two sentences). */
  readonly help: string;
  /** The default as documented (the command applies it; the parser does not). */
  readonly default?: string;
  /** The environment variable(s) that set the option when it is not given, as documented. */
  readonly env?: string;
  /** Parsing fails with "--NAME is required" when the option is absent. */
  readonly required?: boolean;
}

/** A command: its option table and the rest of its usage text. */
export interface CliSpec<
  O extends Readonly<Record<string, CliOption>> = Readonly<Record<string, CliOption>>,
> {
  /** How the command is invoked, e.g. `deno task bt score-traces`. */
  readonly command: string;
  /** What it does, in one or two sentences (the first line is the summary in command lists). */
  readonly summary: string;
  /** The options, by long name (without `--`); `help` / `-h` is added by {@linkcode defineCli}. */
  readonly options: O;
  /** Positional arguments: absent = none accepted. */
  readonly positionals?: {
    /** In the synopsis, e.g. `NOTEBOOK.ipynb...` or `[NN|NAME|PATH.ipynb ...]`. */
    readonly synopsis: string;
    readonly help: string;
    /** The fewest accepted (default 0). */
    readonly min?: number;
  };
  /** Without `positionals`: what to say about a stray argument (e.g. which command takes it). */
  readonly noPositionals?: string;
  /** Further paragraphs (behaviour, exit statuses), printed after the options. */
  readonly details?: readonly string[];
  /** Environment variables the command reads that no single option stands for: name → meaning. */
  readonly environment?: Readonly<Record<string, string>>;
  /** Example command lines (at least one). */
  readonly examples: readonly string[];
  /** Extra text for an unknown option (e.g. "--variant does not apply to init-run"), or undefined. */
  readonly unknownHint?: (option: string) => string | undefined;
}

/** The option every command gets. */
export const HELP_OPTION: CliOption = { type: "boolean", short: "h", help: "Print this help and exit." };

type ValueOf<T extends CliOption> = T["type"] extends "boolean" ? boolean
  : T["multiple"] extends true ? string[]
  : string;

/** Parsed option values: absent options are missing (defaults are the command's to apply). */
export type CliValues<O extends Readonly<Record<string, CliOption>>> = {
  readonly [K in keyof O]?: ValueOf<O[K]>;
};

/** The result of {@linkcode parseCli}. */
export type CliParse<O extends Readonly<Record<string, CliOption>>> =
  | { readonly help: true }
  | { readonly help: false; readonly values: CliValues<O>; readonly positionals: string[] };

/**
 * Check a command's table and add `--help` / `-h` to it.
 *
 * @throws {Error} when an option is named `help`, when two options share a short name or a short name is
 *   `h` or longer than one character, or when there is no example.
 */
export function defineCli<const O extends Readonly<Record<string, CliOption>>>(
  spec: CliSpec<O>,
): CliSpec<O & { readonly help: CliOption }> {
  const shorts = new Map<string, string>([["h", "help"]]);
  for (const [name, o] of Object.entries(spec.options)) {
    if (name === "help") throw new Error(`${spec.command}: the option "help" is added by defineCli`);
    if (o.short !== undefined) {
      if (o.short.length !== 1) {
        throw new Error(`${spec.command}: --${name}: short name "${o.short}" not 1 char`);
      }
      const other = shorts.get(o.short);
      if (other) throw new Error(`${spec.command}: -${o.short} is both --${other} and --${name}`);
      shorts.set(o.short, name);
    }
  }
  if (spec.examples.length === 0) throw new Error(`${spec.command}: give at least one example`);
  return { ...spec, options: { ...spec.options, help: HELP_OPTION } };
}

/** The hint appended to usage errors: where the full usage is. */
export function helpHint(spec: Pick<CliSpec, "command">): string {
  return `Run \`${spec.command} --help\` for usage.`;
}

/** A {@linkcode UsageError} for `spec` with the pointer to `--help` appended. */
export function usageError(spec: Pick<CliSpec, "command">, message: string): UsageError {
  return new UsageError(`${message}\n${helpHint(spec)}`);
}

/**
 * Edit distance between two strings: insertions, deletions, substitutions and transpositions of two
 * adjacent characters (`hlep` → `help` is 1), each costing 1 (optimal string alignment distance).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to a mistyped name, when it is a near miss: equal up to case and `_`/`-`
 * (`run_id` → `run-id`), a unique prefix of at least two characters (`conf` → `config`), or within
 * edit distance max(1, ⌊length/3⌋) of exactly one best candidate (`confg` → `config`).
 *
 * @param name The name as typed, without dashes.
 * @param candidates The valid names.
 * @returns The suggestion, or undefined when nothing is close.
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replaceAll("_", "-");
  const n = norm(name);
  const same = candidates.find((c) => norm(c) === n);
  if (same !== undefined) return same;
  if (n.length >= 2) {
    const prefixed = candidates.filter((c) => norm(c).startsWith(n));
    if (prefixed.length === 1) return prefixed[0];
  }
  let best: string | undefined;
  let bestD = Infinity;
  let ties = 0;
  for (const c of candidates) {
    const d = editDistance(n, norm(c));
    if (d < bestD) [best, bestD, ties] = [c, d, 1];
    else if (d === bestD) ties++;
  }
  return best !== undefined && ties === 1 && bestD <= Math.max(1, Math.floor(best.length / 3))
    ? best
    : undefined;
}

/**
 * Parse a command line against a command's option table.
 *
 * `--help` / `-h` anywhere (before a `--`) wins over every other problem: the result is `{help: true}` and
 * the caller prints {@linkcode usageText}.
 *
 * @param spec The command (from {@linkcode defineCli}).
 * @param args The arguments after the command name.
 * @returns The option values (only those given) and the positionals.
 * @throws {UsageError} naming the option at fault: an unknown option (with the closest valid one when
 *   it is a near miss), a string option without its value, a value given to a switch, an argument where
 *   none is accepted or fewer than required, or a required option missing; each with a pointer to `--help`.
 */
export function parseCli<O extends Readonly<Record<string, CliOption>>>(
  spec: CliSpec<O>,
  args: readonly string[],
): CliParse<O> {
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    options[name] = {
      type: o.type,
      ...(o.short !== undefined ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  if (!("help" in options)) options.help = { type: "boolean", short: "h" };
  const loose = parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });
  const tokens = loose.tokens ?? [];
  if (tokens.some((t) => t.kind === "option" && t.name === "help")) return { help: true };
  for (const t of tokens) {
    if (t.kind !== "option" || Object.hasOwn(options, t.name)) continue;
    const long = Object.keys(options);
    const guess = t.name.length > 1 ? closestName(t.name, long) : undefined;
    const extra = spec.unknownHint?.(t.name);
    throw usageError(
      spec,
      `unknown option ${t.rawName.startsWith("--") ? `--${t.name}` : t.rawName}` +
        (guess !== undefined ? `; did you mean --${guess}?` : "") + (extra ? ` (${extra})` : ""),
    );
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    if (!code.startsWith("ERR_PARSE_ARGS")) throw e;
    throw usageError(spec, (e as Error).message.replace(/\.$/, ""));
  }
  if (spec.positionals === undefined && parsed.positionals.length > 0) {
    const stray = parsed.positionals[0]!;
    throw usageError(
      spec,
      `unexpected argument "${stray}"` +
        (spec.noPositionals ? `; ${spec.noPositionals}` : " (this command takes none)"),
    );
  }
  const values = parsed.values as Record<string, unknown>;
  for (const [name, o] of Object.entries(spec.options)) {
    if (o.required && values[name] === undefined) throw usageError(spec, `--${name} is required`);
  }
  const min = spec.positionals?.min ?? 0;
  if (parsed.positionals.length < min) {
    throw usageError(
      spec,
      `expected ${spec.positionals!.synopsis}, got ${parsed.positionals.length} argument(s)`,
    );
  }
  return { help: false, values: { ...values } as CliValues<O>, positionals: parsed.positionals };
}

/** The synopsis: the command, its required options, `[options]`, the positionals. */
export function synopsis(spec: CliSpec): string {
  const required = Object.entries(spec.options).filter(([, o]) => o.required).map(([name, o]) =>
    o.type === "string" ? `--${name} ${o.arg ?? "VALUE"}${o.multiple ? "..." : ""}` : `--${name}`
  );
  return [spec.command, ...required, "[options]", ...(spec.positionals ? [spec.positionals.synopsis] : [])]
    .join(" ");
}

/**
 * Wrap `text` at spaces to `width` columns, every line after the first indented by `indent` spaces.
 *
 * @param firstUsed Columns already used on the first line (default `indent`).
 */
export function wrapText(text: string, width: number, indent = 0, firstUsed = indent): string {
  const lines: string[] = [];
  let line = "";
  let room = width - firstUsed;
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
      room = width - indent;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.join(`\n${" ".repeat(indent)}`);
}

/** The option's help with its default, environment variable and requiredness. */
function optionHelp(o: CliOption): string {
  const parts = [o.help];
  if (o.required) parts.push("Required.");
  if (o.multiple) parts.push("Repeatable.");
  if (o.default !== undefined) parts.push(`Default: ${o.default}.`);
  if (o.env !== undefined) parts.push(`Env: ${o.env}.`);
  return parts.join(" ");
}

/**
 * The usage text of a command, generated from its option table: synopsis, summary, every option with
 * its argument, default and environment variable, positionals, details, environment and examples.
 *
 * @param width Line width to wrap at (default 100).
 */
export function usageText(spec: CliSpec, width = 100): string {
  const out = [`Usage: ${synopsis(spec)}`, "", wrapText(spec.summary, width, 0, 0), ""];
  if (spec.positionals) {
    out.push("Arguments:", formatRows([[spec.positionals.synopsis, spec.positionals.help]], width), "");
  }
  out.push("Options:");
  out.push(formatRows(
    Object.entries(spec.options).map(([name, o]) => [
      (o.short ? `-${o.short}, ` : "    ") + `--${name}` +
      (o.type === "string" ? ` ${o.arg ?? "VALUE"}` : ""),
      optionHelp(o),
    ]),
    width,
  ));
  for (const paragraph of spec.details ?? []) out.push("", wrapText(paragraph, width, 0, 0));
  const env = Object.entries(spec.environment ?? {});
  if (env.length > 0) out.push("", "Environment:", formatRows(env, width));
  out.push("", spec.examples.length > 1 ? "Examples:" : "Example:");
  for (const e of spec.examples) out.push(`  ${e}`);
  return out.join("\n");
}

/**
 * Two-column rows (a name, its text wrapped under itself), as in the options list.
 *
 * @param col The column the text starts at; a longer name puts the text on the next line.
 */
export function formatRows(rows: readonly (readonly [string, string])[], width = 100, col = 26): string {
  return rows.map(([name, text]) => {
    const head = `  ${name}`;
    return head.length + 2 <= col
      ? head.padEnd(col) + wrapText(text, width, col)
      : `${head}\n${" ".repeat(col)}${wrapText(text, width, col)}`;
  }).join("\n");
}

/** A list of commands with their one-line summaries (the first sentence of each summary). */
export function commandList(
  commands: Readonly<Record<string, Pick<CliSpec, "summary">>>,
  width = 100,
): string {
  return formatRows(Object.entries(commands).map(([name, s]) => [name, firstSentence(s.summary)]), width);
}

/** The first sentence of a text: up to the first period followed by a space or the end. */
export function firstSentence(text: string): string {
  const m = /^(.*?)\.(\s|$)/s.exec(text.trim());
  return (m ? m[1]! : text.trim()).replaceAll(/\s+/g, " ");
}

/** Where a CLI writes: stdout / stderr lines. */
export interface CliIO {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

/** The console as a {@linkcode CliIO}. */
export const consoleIO: CliIO = { out: (l) => console.log(l), err: (l) => console.error(l) };

/**
 * Parse, or print the help: the common head of an entry point.
 *
 * @returns The parse, or `{help: true}` after printing the usage text to `io.out`.
 * @throws {UsageError} as {@linkcode parseCli}.
 */
export function parseOrHelp<O extends Readonly<Record<string, CliOption>>>(
  spec: CliSpec<O>,
  args: readonly string[],
  io: CliIO = consoleIO,
): CliParse<O> {
  const parsed = parseCli(spec, args);
  if (parsed.help) io.out(usageText(spec));
  return parsed;
}
