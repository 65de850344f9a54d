/**
 * `bt logits`: last-position logits of token rows, for debugging and black-box checks.
 *
 * ```
 * deno task bt logits --model <dir> --tokens 1,2,3 [--tokens 4,5] [--hook NAME=scale:X]...
 *   [--device cpu|cuda|auto] [--allow-non-finite] --out <file.json>
 * ```
 *
 * Non-finite logits (NaN, ±Infinity: broken weights, fp16 overflow) are an error (exit status 1) naming
 * the row, the vocabulary index and the value, since JSON cannot hold them; `--allow-non-finite` writes
 * them as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` instead.
 *
 * @module
 */

import { HookedModel } from "../../../lib/engine/hooked_model.ts";
import { type Intervention, parseHookName } from "../../../lib/engine/hooks.ts";
import { writeFileAtomic } from "../../../lib/util/fs.ts";
import {
  type CliIO,
  consoleIO,
  defineCli,
  parseOrHelp,
  UsageError,
  usageError,
} from "../../../lib/util/cli.ts";

/** The command line of `bt logits`: the option table of its parser and its `--help`. */
export const LOGITS_CLI = defineCli({
  command: "deno task bt logits",
  summary: "Last-position logits of token rows, as JSON. Optionally with interventions; for debugging and " +
    "black-box checks against another implementation.",
  options: {
    model: { type: "string", arg: "DIR", required: true, help: "A Hugging Face model folder (safetensors)." },
    tokens: {
      type: "string",
      arg: "IDS",
      multiple: true,
      required: true,
      help: "One row of comma-separated token ids, e.g. 1,2,3; repeat for a batch.",
    },
    hook: {
      type: "string",
      arg: "NAME=scale:X",
      multiple: true,
      help: "Scale a hook point's output, e.g. blocks.3.hook_mlp_out=scale:0 (zero-ablate layer 3's MLP).",
    },
    device: {
      type: "string",
      arg: "cpu|cuda|auto",
      help: "Where to run; auto uses CUDA when its preflight passes (deno task doctor), else the CPU.",
      default: "cpu",
    },
    out: {
      type: "string",
      arg: "FILE",
      required: true,
      help: "Output JSON: {logits: [row][vocab]}, the last position of each row.",
    },
    "allow-non-finite": {
      type: "boolean",
      help: 'Write NaN/Infinity logits as the strings "NaN", "Infinity", "-Infinity" instead of failing.',
    },
  },
  details: ["Exit status: 0 written, 1 the model failed or produced non-finite logits, 2 bad usage."],
  environment: {
    BT_CACHE_DIR: "Cache of exported ONNX graphs (default ~/.cache/backtracking-interp).",
    BT_DEBUG: "1 = print the stack trace of an error.",
  },
  examples: [
    "deno task bt logits --model ./model --tokens 151646,9707 --hook blocks.0.hook_mlp_out=scale:0 --out l.json",
  ],
});

/** Parse `--tokens 1,2,3` into ids. */
export function parseTokenRow(text: string, index: number): number[] {
  const parts = text.split(",").map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
    throw new UsageError(`--tokens #${index + 1} "${text}" must be comma-separated non-negative integers`);
  }
  return parts.map(Number);
}

/** Parse `--hook blocks.3.hook_mlp_out=scale:0`. */
export function parseHookFlag(text: string): Intervention {
  const m = /^([^=]+)=scale:(.+)$/.exec(text);
  if (!m || !Number.isFinite(Number(m[2]))) {
    throw new UsageError(`--hook "${text}" must look like blocks.<layer>.hook_mlp_out=scale:<number>`);
  }
  return { hook: m[1]! as Intervention["hook"], op: "scale", value: Number(m[2]) };
}

/**
 * Run the subcommand.
 *
 * @param args The arguments after `logits`.
 * @param io Where the help goes.
 * @returns The exit status (0).
 * @throws {UsageError} on bad usage; {Error} when the model fails or its logits are not finite.
 */
export async function logitsCommand(args: string[], io: CliIO = consoleIO): Promise<number> {
  const parsed = parseOrHelp(LOGITS_CLI, args, io);
  if (parsed.help) return 0;
  const values = parsed.values as {
    model: string;
    tokens: string[];
    hook?: string[];
    device?: string;
    out: string;
    "allow-non-finite"?: boolean;
  };
  const device = values.device ?? "cpu";
  if (device !== "cpu" && device !== "cuda" && device !== "auto") {
    throw usageError(LOGITS_CLI, `--device must be cpu, cuda or auto, got "${device}"`);
  }
  const rows = values.tokens.map(parseTokenRow);
  const hooks = (values.hook ?? []).map(parseHookFlag);

  const model = await HookedModel.load(values.model, { device });
  try {
    for (const h of hooks) parseHookName(h.hook, model.config.numLayers);
    if (model.device.requested !== model.device.used) console.error(`note: ${model.device.reason}`);
    const { logits } = await model.forward(rows, { interventions: hooks });
    const last = logits.map((r) => Array.from(r[0]!));
    const allow = values["allow-non-finite"] ?? false;
    last.forEach((row, b) => {
      const bad = row.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0 && !allow) {
        const count = row.filter((v) => !Number.isFinite(v)).length;
        throw new Error(
          `the logits of --tokens #${b + 1} (${rows[b]!.join(",")}) hold ${count} non-finite value(s), ` +
            `first at vocabulary index ${bad}: ${row[bad]}; the checkpoint ${values.model} (or a --hook) ` +
            `produces NaN/Infinity. Check its weights, or pass --allow-non-finite to write them as ` +
            `"NaN"/"Infinity" strings`,
        );
      }
    });
    const cell = (v: number) => (Number.isFinite(v) ? v : String(v));
    const json = JSON.stringify({ logits: allow ? last.map((r) => r.map(cell)) : last });
    await writeFileAtomic(values.out, json + "\n");
  } finally {
    await model.dispose();
  }
  return 0;
}
