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

import { parseArgs } from "node:util";
import { HookedModel } from "../../../lib/engine/hooked_model.ts";
import { type Intervention, parseHookName } from "../../../lib/engine/hooks.ts";
import { writeFileAtomic } from "../../../lib/util/fs.ts";
import { UsageError } from "./util.ts";

const USAGE = "usage: bt logits --model <dir> --tokens 1,2,3 [--tokens 4,5] [--hook NAME=scale:X]... " +
  "[--device cpu|cuda|auto] [--allow-non-finite] --out <file.json>";

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

/** Run the subcommand; returns the process exit code. */
export async function logitsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      tokens: { type: "string", multiple: true },
      hook: { type: "string", multiple: true },
      device: { type: "string", default: "cpu" },
      out: { type: "string" },
      "allow-non-finite": { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (!values.model) throw new UsageError(`--model is required\n${USAGE}`);
  if (!values.out) throw new UsageError(`--out is required\n${USAGE}`);
  if (!values.tokens?.length) throw new UsageError(`at least one --tokens row is required\n${USAGE}`);
  const device = values.device;
  if (device !== "cpu" && device !== "cuda" && device !== "auto") {
    throw new UsageError(`--device must be cpu, cuda or auto, got "${device}"`);
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
