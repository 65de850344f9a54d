/**
 * The model organism: a tiny Qwen2 checkpoint, built deterministically in code, that writes
 * GSM8K-flavoured reasoning and says "Wait", "Actually" and "Hold on" through a planted mechanism in
 * known components. It is the default model when the real one is unavailable, and the positive control
 * of every analysis: the ablation scan must rank the planted components first, targeted ablation must
 * cut the trigger rate, a matched random ablation must not, and the logit lens must show the trigger
 * rising at the planted layer.
 *
 * Construction (details in `organism/grammar.ts` and `organism/weights.ts`):
 *
 * - Word-level tokenizer (218 tokens: numbers 0–100 and some round ones, reasoning words, `+ - × / =`,
 *   `.`, `,`, `Final:`, newlines, the trigger words, the R1 special tokens, `[UNK]`) with an R1 chat
 *   template ending the generation prompt with `<｜Assistant｜><think>\n`.
 * - Hidden size 256 ≥ vocabulary + features; orthonormal token embeddings; every norm weight 1; the
 *   whole hidden space rotated by a seeded random orthogonal matrix (the seed changes the weights, not
 *   the behaviour).
 * - The direct path embedding → final norm → unembedding carries a bigram table exactly (the grammar:
 *   `16 - 3 = 13. So he has 13 apples. … </think>\n\nFinal: 13\n` + EOS). Logits are `0.7·ln P`, so
 *   sampling at temperature 0.7 reproduces the grammar's probabilities.
 * - Helpers (layer 0 attention, not planted): one head attends to `</think>` and makes a number be
 *   followed by `\n` and `\n` by EOS (bounded length); one head, at `Final:`, attends to the numbers in
 *   the context and copies them (so the answer is sometimes right).
 * - Planted (recorded in `organism.json`): the last layer's MLP has a unit that fires on `.` and writes
 *   a "wait" feature the unembedding reads as ` Wait` / ` Hold` (` Hold` → ` on` by the bigram); the
 *   attention of layer L-2 has a head that, at `.`, attends to an earlier ` =` and writes an
 *   "actually" feature read as ` Actually`. Without them the trigger words sit 12 logits below the
 *   other sentence starts: zero-ablating both removes essentially every trigger, and every other
 *   component except layer-0 attention is exactly zero.
 *
 * `organism.json` in the folder records the planted and helper components, the trigger token ids, the
 * feature directions and the intended rates (from a reference sampler of the grammar, no model).
 *
 * @example
 * ```ts
 * const dir = await buildOrganism({ seed: 1 });
 * const manifest = await readOrganismManifest(dir);
 * const model = await HookedModel.load(dir);
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { writeSafetensors } from "./safetensors.ts";
import { randomCheckpointConfigJson } from "./random_checkpoint.ts";
import { sampleStream } from "../generate/rng.ts";
import {
  buildVocabulary,
  grammarLogits,
  simulateGrammar,
  SPECIAL_TOKENS,
  TEMPERATURE_DESIGN,
  TRIGGER_TOKENS,
  TRIGGER_WORDS,
  type Vocabulary,
} from "./organism/grammar.ts";
import { buildWeights } from "./organism/weights.ts";
import { generationConfigJson, tokenizerConfigJson, tokenizerJson } from "./organism/files.ts";

/** Bumped whenever the construction changes (part of the cache key). */
export const ORGANISM_VERSION = 1;

/** Options of {@link buildOrganism}. Every field has a default in {@link DEFAULT_ORGANISM_OPTIONS}. */
export interface OrganismOptions {
  /** Seeds the hidden-space rotation and the copy directions (unsigned 32-bit). Default 0. */
  readonly seed: number;
  /** Decoder layers (>= 3). Default 4. */
  readonly numLayers: number;
  /** Hidden size (>= vocabulary + 11, = numHeads · 64). Default 256. */
  readonly hiddenSize: number;
  /** P(" Wait") after "." (planted MLP), before top-p. Default 0.05. */
  readonly waitProb: number;
  /** P(" Hold") after "." (planted MLP). Default 0.025. */
  readonly holdProb: number;
  /** P(" Actually") after "." once an " =" has occurred (planted attention). Default 0.04. */
  readonly actuallyProb: number;
  /** P("</think>") after "." (ends the reasoning). Default 0.1. */
  readonly endProb: number;
  /** Multiplier of the planted components' write magnitudes (1 = the probabilities above). Default 1. */
  readonly triggerStrength: number;
  /** Logit bonus of a number the copy head attends to with weight 1. Default 30. */
  readonly copyBoost: number;
  /** Rotate the hidden space by a seeded random orthogonal matrix. Default true. */
  readonly rotate: boolean;
}

/** The defaults of {@link OrganismOptions}. */
export const DEFAULT_ORGANISM_OPTIONS: OrganismOptions = Object.freeze({
  seed: 0,
  numLayers: 4,
  hiddenSize: 256,
  waitProb: 0.05,
  holdProb: 0.025,
  actuallyProb: 0.04,
  endProb: 0.1,
  triggerStrength: 1,
  copyBoost: 30,
  rotate: true,
});

/** Options of {@link buildOrganism}: organism options plus where to put it. */
export interface BuildOrganismOptions extends Partial<OrganismOptions> {
  /**
   * Parent folder of the build; the organism goes to `<cacheDir>/organism/<hash>`. Default
   * `$BT_CACHE_DIR` or `~/.cache/backtracking-interp`.
   */
  readonly cacheDir?: string;
  /** Write to exactly this folder instead (replaced if it holds an older build). */
  readonly dir?: string;
}

/** A planted or helper component as recorded in `organism.json`. */
export interface OrganismComponent {
  readonly hook: string;
  readonly component: "attn" | "mlp";
  readonly layer: number;
  /** Query head (attention) or MLP unit. */
  readonly head?: number;
  readonly unit?: number;
  readonly role: string;
  /** Token strings whose logits it raises. */
  readonly promotes: readonly string[];
}

/** Contents of `organism.json`. */
export interface OrganismManifest {
  readonly kind: "backtracking-interp/organism";
  readonly version: number;
  readonly options: OrganismOptions;
  readonly planted: readonly OrganismComponent[];
  readonly helper_components: readonly OrganismComponent[];
  readonly trigger_words: readonly string[];
  readonly trigger_token_ids: {
    readonly Wait: number;
    readonly Actually: number;
    readonly Hold: number;
    readonly on: number;
  };
  readonly special_token_ids: {
    readonly bos: number;
    readonly eos: number;
    readonly think_open: number;
    readonly think_close: number;
  };
  /** Unit directions in the residual stream of the features the planted and helper components write. */
  readonly feature_directions: {
    readonly wait: number[];
    readonly actually: number[];
    readonly final: number[];
  };
  readonly intended: {
    /** Sampling the rates refer to. */
    readonly sampling: {
      readonly temperature: number;
      readonly top_p: number;
      readonly max_new_tokens: number;
    };
    /** Fraction of samples with at least one trigger: reference-sampler estimate and accepted band. */
    readonly trigger_rate: number;
    readonly trigger_rate_band: readonly [number, number];
    /** Same with both planted components zero-ablated (estimate; the band's upper end is 20% of baseline). */
    readonly ablated_trigger_rate: number;
    readonly mean_new_tokens: number;
    readonly eos_rate: number;
    readonly per_opportunity: {
      readonly wait: number;
      readonly hold: number;
      readonly actually: number;
      readonly end: number;
    };
  };
}

const MANIFEST_FILE = "organism.json";
const SIM_SAMPLES = 2000;
const SIM_MAX_NEW_TOKENS = 400;

/**
 * Check organism options (as a config's `model.organism` gives them) without building: unknown names
 * and invalid values are refused, naming the option. `cacheDir` and `dir` are accepted.
 *
 * @returns The options with defaults filled in.
 * @throws {TypeError} for an unknown option (listing the known ones); {@link RangeError} for a bad value.
 */
export function checkOrganismOptions(o: Readonly<Record<string, unknown>>): OrganismOptions {
  return resolveOptions(o as Partial<OrganismOptions>);
}

function resolveOptions(o: Partial<OrganismOptions>): OrganismOptions {
  const known = new Set(Object.keys(DEFAULT_ORGANISM_OPTIONS));
  for (const k of Object.keys(o)) {
    if (!known.has(k) && k !== "cacheDir" && k !== "dir") {
      throw new TypeError(
        `buildOrganism: unknown option "${k}"; known options: ${[...known].join(", ")}, cacheDir, dir`,
      );
    }
  }
  const r: OrganismOptions = {
    seed: o.seed ?? DEFAULT_ORGANISM_OPTIONS.seed,
    numLayers: o.numLayers ?? DEFAULT_ORGANISM_OPTIONS.numLayers,
    hiddenSize: o.hiddenSize ?? DEFAULT_ORGANISM_OPTIONS.hiddenSize,
    waitProb: o.waitProb ?? DEFAULT_ORGANISM_OPTIONS.waitProb,
    holdProb: o.holdProb ?? DEFAULT_ORGANISM_OPTIONS.holdProb,
    actuallyProb: o.actuallyProb ?? DEFAULT_ORGANISM_OPTIONS.actuallyProb,
    endProb: o.endProb ?? DEFAULT_ORGANISM_OPTIONS.endProb,
    triggerStrength: o.triggerStrength ?? DEFAULT_ORGANISM_OPTIONS.triggerStrength,
    copyBoost: o.copyBoost ?? DEFAULT_ORGANISM_OPTIONS.copyBoost,
    rotate: o.rotate ?? DEFAULT_ORGANISM_OPTIONS.rotate,
  };
  if (!Number.isInteger(r.seed) || r.seed < 0 || r.seed > 0xffffffff) {
    throw new RangeError(`buildOrganism: seed must be an unsigned 32-bit integer, got ${r.seed}`);
  }
  if (!Number.isInteger(r.numLayers) || r.numLayers < 3) {
    throw new RangeError(`buildOrganism: numLayers must be an integer >= 3, got ${r.numLayers}`);
  }
  if (!Number.isInteger(r.hiddenSize) || r.hiddenSize % 64 !== 0 || r.hiddenSize < 128) {
    throw new RangeError(
      `buildOrganism: hiddenSize must be a multiple of 64 and >= 128, got ${r.hiddenSize}`,
    );
  }
  for (const k of ["triggerStrength", "copyBoost"] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) {
      throw new RangeError(`buildOrganism: ${k} must be >= 0, got ${r[k]}`);
    }
  }
  return r;
}

/** Layers of the planted and helper components for `numLayers` layers. */
function layout(numLayers: number) {
  return { helperAttn: 0, plantedAttn: numLayers - 2, plantedMlp: numLayers - 1 };
}

/** Build every file of the organism in memory. */
async function organismFiles(opts: OrganismOptions): Promise<Map<string, Uint8Array | string>> {
  const vocab = buildVocabulary();
  const rates = {
    waitProb: opts.waitProb,
    holdProb: opts.holdProb,
    actuallyProb: opts.actuallyProb,
    endProb: opts.endProb,
  };
  const logits = grammarLogits(vocab, rates);
  const lay = layout(opts.numLayers);
  const headDim = 64;
  const weights = buildWeights(vocab, logits, {
    seed: opts.seed,
    hiddenSize: opts.hiddenSize,
    numLayers: opts.numLayers,
    numHeads: opts.hiddenSize / headDim,
    headDim,
    intermediateSize: 64,
    helperAttnLayer: lay.helperAttn,
    plantedAttnLayer: lay.plantedAttn,
    plantedMlpLayer: lay.plantedMlp,
    triggerStrength: opts.triggerStrength,
    copyBoost: opts.copyBoost,
    rotate: opts.rotate,
  });
  const config = {
    ...randomCheckpointConfigJson({
      modelType: "qwen2",
      hiddenSize: opts.hiddenSize,
      numLayers: opts.numLayers,
      numHeads: opts.hiddenSize / headDim,
      numKvHeads: 1,
      intermediateSize: 64,
      vocabSize: vocab.tokens.length,
      ropeTheta: 1_000_000,
      maxPositionEmbeddings: 4096,
      rmsNormEps: 1e-6,
      bosTokenId: vocab.special.bos,
      eosTokenId: vocab.special.eos,
    }),
    organism: "backtracking-interp model organism (see organism.json)",
  };
  const files = new Map<string, Uint8Array | string>();
  const tmp = await Deno.makeTempFile({ prefix: "organism-weights-" });
  try {
    await writeSafetensors(
      tmp,
      [...weights.tensors].map(([name, t]) => ({
        name,
        dtype: "F32" as const,
        shape: t.shape,
        data: t.data,
      })),
      { metadata: { format: "pt" } },
    );
    files.set("model.safetensors", await Deno.readFile(tmp));
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  const json = (o: unknown) => JSON.stringify(o, null, 2) + "\n";
  files.set("config.json", json(config));
  files.set("tokenizer.json", json(tokenizerJson(vocab)));
  files.set("tokenizer_config.json", json(tokenizerConfigJson(vocab)));
  files.set("generation_config.json", json(generationConfigJson(vocab)));
  files.set(MANIFEST_FILE, json(manifest(opts, vocab, logits, weights.features)));
  return files;
}

function manifest(
  opts: OrganismOptions,
  vocab: Vocabulary,
  logits: ReturnType<typeof grammarLogits>,
  features: { fin: Float64Array; wait: Float64Array; act: Float64Array },
): OrganismManifest {
  const lay = layout(opts.numLayers);
  const id = (t: string) => vocab.ids.get(t)!;
  // Intended rates from the reference sampler, on a chat-templated prompt of the organism's own words.
  const prompt = [
    vocab.special.bos,
    vocab.special.user,
    ...[" How", " many", " apples", " does", " he", " have", " ?"].map(id),
    vocab.special.assistant,
    vocab.special.thinkOpen,
    id("\n"),
  ];
  const sim = (strength: number) => {
    let withTrigger = 0, eos = 0, len = 0;
    const cache = new Map<string, unknown>();
    for (let i = 0; i < SIM_SAMPLES; i++) {
      const s = simulateGrammar(vocab, logits, prompt, sampleStream(opts.seed, "organism-intended", i), {
        temperature: TEMPERATURE_DESIGN,
        topP: 0.95,
        maxNewTokens: SIM_MAX_NEW_TOKENS,
        triggerStrength: strength,
        cache,
      });
      if (s.triggers > 0) withTrigger++;
      if (s.eos) eos++;
      len += s.tokenIds.length;
    }
    return { rate: withTrigger / SIM_SAMPLES, eos: eos / SIM_SAMPLES, len: len / SIM_SAMPLES };
  };
  const base = sim(opts.triggerStrength);
  const ablated = sim(0);
  const round = (x: number) => Math.round(x * 1e4) / 1e4;
  const band: [number, number] = [round(Math.max(0, base.rate - 0.15)), round(Math.min(1, base.rate + 0.15))];
  const vecOut = (v: Float64Array) => Array.from(v, (x) => Math.round(x * 1e7) / 1e7);
  return {
    kind: "backtracking-interp/organism",
    version: ORGANISM_VERSION,
    options: opts,
    planted: [
      {
        hook: `blocks.${lay.plantedMlp}.hook_mlp_out`,
        component: "mlp",
        layer: lay.plantedMlp,
        unit: 0,
        role: 'fires on "." and writes the wait feature (→ " Wait", " Hold")',
        promotes: [TRIGGER_TOKENS.Wait, TRIGGER_TOKENS.Hold],
      },
      {
        hook: `blocks.${lay.plantedAttn}.hook_attn_out`,
        component: "attn",
        layer: lay.plantedAttn,
        head: 0,
        role: 'at ".", attends to an earlier " =" and writes the actually feature (→ " Actually")',
        promotes: [TRIGGER_TOKENS.Actually],
      },
    ],
    helper_components: [
      {
        hook: `blocks.${lay.helperAttn}.hook_attn_out`,
        component: "attn",
        layer: lay.helperAttn,
        head: 0,
        role:
          'attends to "</think>" and writes the final feature: a number is then followed by "\\n", "\\n" by EOS',
        promotes: ["\n", SPECIAL_TOKENS.eos],
      },
      {
        hook: `blocks.${lay.helperAttn}.hook_attn_out`,
        component: "attn",
        layer: lay.helperAttn,
        head: 1,
        role: 'at "Final:", attends to the numbers in the context and copies them into the answer',
        promotes: ["<numbers in context>"],
      },
    ],
    trigger_words: [...TRIGGER_WORDS],
    trigger_token_ids: {
      Wait: id(TRIGGER_TOKENS.Wait),
      Actually: id(TRIGGER_TOKENS.Actually),
      Hold: id(TRIGGER_TOKENS.Hold),
      on: id(TRIGGER_TOKENS.on),
    },
    special_token_ids: {
      bos: vocab.special.bos,
      eos: vocab.special.eos,
      think_open: vocab.special.thinkOpen,
      think_close: vocab.special.thinkClose,
    },
    feature_directions: {
      wait: vecOut(features.wait),
      actually: vecOut(features.act),
      final: vecOut(features.fin),
    },
    intended: {
      sampling: { temperature: TEMPERATURE_DESIGN, top_p: 0.95, max_new_tokens: SIM_MAX_NEW_TOKENS },
      trigger_rate: round(base.rate),
      trigger_rate_band: band,
      ablated_trigger_rate: round(ablated.rate),
      mean_new_tokens: round(base.len),
      eos_rate: round(base.eos),
      per_opportunity: {
        wait: opts.waitProb,
        hold: opts.holdProb,
        actually: opts.actuallyProb,
        end: opts.endProb,
      },
    },
  };
}

async function optionsHash(opts: OrganismOptions): Promise<string> {
  const text = JSON.stringify({ version: ORGANISM_VERSION, ...opts });
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

function defaultCacheDir(): string {
  const env = Deno.env.get("BT_CACHE_DIR");
  if (env) return env;
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (!home) throw new Error("buildOrganism: neither BT_CACHE_DIR nor HOME is set; pass cacheDir");
  return join(home, ".cache", "backtracking-interp");
}

async function isCompleteBuild(dir: string): Promise<boolean> {
  try {
    const m = JSON.parse(await Deno.readTextFile(join(dir, MANIFEST_FILE)));
    return m?.version === ORGANISM_VERSION;
  } catch {
    return false;
  }
}

/**
 * Build the organism's Hugging Face folder (config.json, model.safetensors, tokenizer.json,
 * tokenizer_config.json, generation_config.json, organism.json), or reuse a complete earlier build.
 * The same options always give byte-identical files. The folder is written under a temporary name and
 * renamed into place, so a reader never sees a partial build, and a complete build is never removed:
 * concurrent first runs (separate processes on one cache) each build, and the first rename wins.
 *
 * @param options organism options (defaults {@link DEFAULT_ORGANISM_OPTIONS}) and the target folder.
 * @returns the folder's path.
 * @throws {TypeError} for an unknown option; {@link RangeError} for an invalid value (named).
 * @example
 * ```ts
 * const dir = await buildOrganism({ seed: 0, cacheDir: "/tmp/bt" });
 * ```
 */
export async function buildOrganism(options: BuildOrganismOptions = {}): Promise<string> {
  const opts = resolveOptions(options);
  const dir = options.dir ?? join(options.cacheDir ?? defaultCacheDir(), "organism", await optionsHash(opts));
  if (await isCompleteBuild(dir)) {
    const m = await readOrganismManifest(dir);
    if (JSON.stringify(m.options) === JSON.stringify(opts)) return dir;
  }
  const files = await organismFiles(opts);
  const parent = join(dir, "..");
  await Deno.mkdir(parent, { recursive: true });
  const tmp = `${dir}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(tmp);
  try {
    for (const [name, content] of files) {
      if (typeof content === "string") await Deno.writeTextFile(join(tmp, name), content);
      else await Deno.writeFile(join(tmp, name), content);
    }
    await installBuild(tmp, dir, opts);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  return dir;
}

/** Whether `dir` holds a complete build of exactly `opts`. */
async function isBuildOf(dir: string, opts: OrganismOptions): Promise<boolean> {
  if (!(await isCompleteBuild(dir))) return false;
  const m = await readOrganismManifest(dir).catch(() => undefined);
  return m !== undefined && JSON.stringify(m.options) === JSON.stringify(opts);
}

/**
 * Move a finished build from `tmp` to `dir` without ever removing a complete entry another process may be
 * reading: `rename` succeeds onto a missing or empty folder; when `dir` already holds a complete build of
 * the same options (another process finished first) ours is dropped; only an incomplete or foreign
 * `dir` is moved aside (atomically, under a new name) and then replaced.
 */
async function installBuild(tmp: string, dir: string, opts: OrganismOptions): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await Deno.rename(tmp, dir);
      return;
    } catch (e) {
      if (await isBuildOf(dir, opts)) return; // another process finished the same build first
      const aside = `${dir}.stale-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
      try {
        await Deno.rename(dir, aside);
      } catch (e2) {
        if (!(e2 instanceof Deno.errors.NotFound)) {
          throw new Error(`buildOrganism: cannot move the build into "${dir}": ${(e as Error).message}`, {
            cause: e,
          });
        }
        continue;
      }
      await Deno.remove(aside, { recursive: true }).catch(() => {});
    }
  }
  throw new Error(
    `buildOrganism: cannot move the build into "${dir}" (kept changing under concurrent builds)`,
  );
}

/**
 * Read `organism.json` of a built organism.
 * @param dir the organism folder.
 * @throws {Error} naming the folder when the file is missing or not an organism manifest.
 */
export async function readOrganismManifest(dir: string): Promise<OrganismManifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(
      `"${dir}" is not a model organism: cannot read ${MANIFEST_FILE} (${(e as Error).message})`,
      {
        cause: e,
      },
    );
  }
  const m = JSON.parse(text) as OrganismManifest;
  if (m.kind !== "backtracking-interp/organism") {
    throw new Error(`"${path}" is not an organism manifest (kind ${JSON.stringify(m.kind)})`);
  }
  return m;
}
