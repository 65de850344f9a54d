/**
 * The organism's language: a word-level vocabulary and a stochastic grammar (a bigram table plus three
 * context rules), written as next-token logits, and a reference sampler of that language.
 *
 * The grammar makes GSM8K-flavoured reasoning: `Okay, so we need to find how many apples he has. First,
 * 16 - 3 = 13. So he has 13 apples. Wait, 13 + 2 = 15. … </think>\n\nFinal: 15\n` then EOS. Its
 * next-token logits are `TEMPERATURE_DESIGN · ln P(next | current)`, so sampling at temperature 0.7
 * reproduces the intended probabilities. Three rules look beyond the current token; each is carried
 * by a known component of the built model (see `weights.ts`):
 *
 * - after `</think>` (helper attention head, layer 0): a number is followed by `\n`, and `\n` by EOS;
 * - at `Final:` (helper copy head, layer 0): numbers already in the context get a logit bonus;
 * - at `.` (planted MLP): ` Wait` and ` Hold` get a boost; after an earlier ` =` (planted attention
 *   head): ` Actually` gets a boost. Without these the trigger words sit at {@link TRIGGER_BASE_LOGIT}.
 *
 * @module
 */

import type { Rng } from "../../generate/rng.ts";

/** Sampling temperature the grammar's logits are calibrated for. */
export const TEMPERATURE_DESIGN = 0.7;
/** Logit of continuations the grammar forbids. */
export const IMPOSSIBLE_LOGIT = -40;
/** Logit of a continuation that only a context rule turns on (before the rule's boost). */
export const GATED_LOGIT = -10;
/** Logit of the trigger words after `.` before the planted components add their boost. */
export const TRIGGER_BASE_LOGIT = -12;
/** Boost the post-`</think>` rule gives `\n` and EOS (logits). */
export const FINAL_RULE_BOOST = 25;

/** Special tokens (R1 spellings), in id order after the regular vocabulary. */
export const SPECIAL_TOKENS = {
  bos: "<｜begin▁of▁sentence｜>",
  eos: "<｜end▁of▁sentence｜>",
  user: "<｜User｜>",
  assistant: "<｜Assistant｜>",
  thinkOpen: "<think>",
  thinkClose: "</think>",
} as const;

/** The unknown-word token (id 0). */
export const UNK = "[UNK]";

/** Trigger tokens as spelled in the vocabulary (with their leading space). */
export const TRIGGER_TOKENS = { Wait: " Wait", Actually: " Actually", Hold: " Hold", on: " on" } as const;

/** The trigger words as the detector sees them. */
export const TRIGGER_WORDS = ["Wait", "Actually", "Hold on"] as const;

const NUM = "<NUM>";

/** Regular numbers of the vocabulary (each a token with a leading space). */
export const NUMBERS: readonly number[] = [
  ...Array.from({ length: 101 }, (_, i) => i),
  120,
  150,
  200,
  250,
  300,
  400,
  500,
  1000,
];

function numberWeight(n: number): number {
  return n >= 1 && n <= 20 ? 3 : 1;
}

type Row = readonly (readonly [string, number])[];

const SUBJECT_SINGULAR: Row = [[" has", 4], [" gets", 2], [" buys", 2], [" needs", 1], [" sells", 1], [
  " spends",
  1,
]];
const SUBJECT_PLURAL: Row = [[" have", 4], [" get", 2], [" buy", 2], [" need", 2], [" sell", 1]];
const UNIT_ROW: Row = [[".", 6], [" each", 1], [" per", 1], [" left", 1], [" in", 1], [",", 1]];
const STARTS: Row = [
  [" So", 30],
  [" Then", 20],
  [" Now", 10],
  [" That", 9],
  [" The", 9],
  [" We", 8],
  [" Next", 1.5],
  [" Also", 1.5],
  [" Finally", 1.5],
  [" Since", 1.5],
  [" Each", 1.5],
  [" Altogether", 1.5],
];

/**
 * The bigram rows of the grammar (weights, normalised per row). `<NUM>` stands for every number, drawn
 * with {@link numberWeight}. The `.` row's end-of-reasoning weight is set by the `endProb` option.
 */
const ROWS: Readonly<Record<string, Row>> = {
  "\n": [["Okay", 5], ["Let", 3], ["First", 2]],
  "Okay": [[",", 1]],
  "First": [[",", 1]],
  "Let": [[" me", 1]],
  " let": [[" me", 1]],
  " me": [[" think", 3], [" compute", 3], [" check", 2], [" see", 2]],
  " think": [[".", 4], [" about", 3], [" again", 3]],
  " about": [[" the", 1]],
  " again": [[".", 6], [",", 4]],
  " compute": [[" the", 6], [NUM, 4]],
  " check": [[" the", 6], [" again", 4]],
  " see": [[".", 5], [",", 5]],
  ",": [[" so", 3], [" the", 2], [" we", 2], [" he", 1], [" she", 1], [" they", 1], [NUM, 3], [" let", 2], [
    " I",
    1,
  ]],
  " I": [[" think", 3], [" need", 4], [" have", 3]],
  " so": [[" the", 4], [" we", 3], [" he", 1], [" she", 1], [" they", 1]],
  " So": [[" the", 4], [" we", 3], [" he", 1], [" she", 1], [" they", 1]],
  " Then": [[NUM, 4], [" the", 2], [" he", 1], [" she", 1], [" we", 2]],
  " Now": [[",", 1]],
  " Next": [[",", 1]],
  " Also": [[",", 1]],
  " Finally": [[",", 1]],
  " Altogether": [[",", 1]],
  " Since": [[" he", 1], [" she", 1], [" we", 1]],
  " Each": [[" day", 1], [" hour", 1], [" week", 1]],
  " That": [[" means", 6], [" gives", 4]],
  " means": [[" the", 5], [" he", 2], [" she", 1], [" we", 2]],
  " gives": [[NUM, 7], [" us", 3]],
  " us": [[NUM, 1]],
  " the": [[" total", 4], [" number", 2], [" cost", 2], [" answer", 2], [" price", 1]],
  " The": [[" total", 4], [" number", 2], [" cost", 2], [" answer", 2], [" price", 1]],
  " total": [[" is", 6], [" of", 2], [" cost", 2]],
  " number": [[" of", 1]],
  " of": [[" apples", 3], [" eggs", 2], [" dollars", 2], [" hours", 1], [" cookies", 2], [" students", 1], [
    " the",
    1,
  ]],
  " cost": [[" is", 8], [" of", 2]],
  " price": [[" is", 6], [" of", 4]],
  " answer": [[" is", 1]],
  " is": [[NUM, 8], [" the", 1]],
  " he": SUBJECT_SINGULAR,
  " she": SUBJECT_SINGULAR,
  " they": SUBJECT_PLURAL,
  " we": SUBJECT_PLURAL,
  " We": SUBJECT_PLURAL,
  " has": [[NUM, 1]],
  " have": [[NUM, 1]],
  " gets": [[NUM, 1]],
  " get": [[NUM, 1]],
  " buys": [[NUM, 1]],
  " buy": [[NUM, 1]],
  " sells": [[NUM, 1]],
  " sell": [[NUM, 1]],
  " spends": [[NUM, 1]],
  " needs": [[" to", 6], [NUM, 4]],
  " need": [[" to", 6], [NUM, 4]],
  " to": [[" find", 4], [" add", 2], [" multiply", 2], [" subtract", 2]],
  " find": [[" the", 6], [" how", 4]],
  " how": [[" many", 6], [" much", 4]],
  " many": [[" apples", 3], [" eggs", 2], [" cookies", 2], [" hours", 1], [" students", 1]],
  " much": [[" money", 6], [" he", 2], [" she", 2]],
  " money": [[".", 6], [" is", 4]],
  " add": [[NUM, 7], [" the", 3]],
  " multiply": [[NUM, 7], [" the", 3]],
  " subtract": [[NUM, 7], [" the", 3]],
  [NUM]: [
    [".", 6],
    [" +", 3],
    [" -", 2],
    [" ×", 2],
    [" /", 0.5],
    [" =", 3.5],
    [" apples", 1],
    [" eggs", 1],
    [" dollars", 2],
    [" cookies", 1],
    [" hours", 1],
    [" students", 1],
    [",", 1],
  ],
  " +": [[NUM, 1]],
  " -": [[NUM, 1]],
  " ×": [[NUM, 1]],
  " /": [[NUM, 1]],
  " =": [[NUM, 1]],
  " apples": UNIT_ROW,
  " eggs": UNIT_ROW,
  " dollars": UNIT_ROW,
  " cookies": UNIT_ROW,
  " hours": UNIT_ROW,
  " students": UNIT_ROW,
  " each": [[".", 1]],
  " per": [[" day", 5], [" hour", 3], [" week", 2]],
  " day": [[".", 7], [",", 3]],
  " hour": [[".", 7], [",", 3]],
  " week": [[".", 7], [",", 3]],
  " left": [[".", 1]],
  " in": [[" all", 1]],
  " all": [[".", 1]],
  ".": STARTS,
  " Wait": [[",", 1]],
  " Actually": [[",", 1]],
  " Hold": [[" on", 1]],
  " on": [[",", 1]],
  [SPECIAL_TOKENS.thinkClose]: [["\n\n", 1]],
  "\n\n": [["Final:", 1]],
  "Final:": [[NUM, 1]],
  [SPECIAL_TOKENS.assistant]: [[SPECIAL_TOKENS.thinkOpen, 1]],
  [SPECIAL_TOKENS.thinkOpen]: [["\n", 1]],
};

/** Words that only occur in prompts (common GSM8K words), so fewer prompt words become `[UNK]`. */
const PROMPT_WORDS = [
  " How",
  " What",
  " a",
  " and",
  " are",
  " does",
  " for",
  " if",
  " at",
  "?",
  ":",
  "$",
  " ",
  " ?",
];

/** The vocabulary and the ids the construction needs. */
export interface Vocabulary {
  /** Token strings by id (regular tokens, then {@link SPECIAL_TOKENS}). */
  readonly tokens: readonly string[];
  readonly ids: ReadonlyMap<string, number>;
  /** Ids of the number tokens, and their values. */
  readonly numberIds: readonly number[];
  readonly numberValues: readonly number[];
  /** Number of regular (non-added) tokens: ids `0 .. regularCount - 1`. */
  readonly regularCount: number;
  readonly special: { readonly [K in keyof typeof SPECIAL_TOKENS]: number };
}

/** Build the vocabulary (fixed: it does not depend on the options). */
export function buildVocabulary(): Vocabulary {
  const tokens: string[] = [UNK];
  const seen = new Set<string>(tokens);
  const add = (t: string) => {
    if (t === NUM || seen.has(t) || Object.values(SPECIAL_TOKENS).includes(t as never)) return;
    seen.add(t);
    tokens.push(t);
  };
  for (const [ctx, row] of Object.entries(ROWS)) {
    add(ctx);
    for (const [t] of row) add(t);
  }
  for (const t of STARTS) add(t[0]);
  for (const t of Object.values(TRIGGER_TOKENS)) add(t);
  for (const t of PROMPT_WORDS) add(t);
  const numberIds: number[] = [];
  for (const n of NUMBERS) {
    numberIds.push(tokens.length);
    add(` ${n}`);
  }
  const regularCount = tokens.length;
  for (const t of Object.values(SPECIAL_TOKENS)) tokens.push(t);
  const ids = new Map(tokens.map((t, i) => [t, i]));
  const id = (t: string) => ids.get(t)!;
  return {
    tokens,
    ids,
    numberIds,
    numberValues: NUMBERS,
    regularCount,
    special: {
      bos: id(SPECIAL_TOKENS.bos),
      eos: id(SPECIAL_TOKENS.eos),
      user: id(SPECIAL_TOKENS.user),
      assistant: id(SPECIAL_TOKENS.assistant),
      thinkOpen: id(SPECIAL_TOKENS.thinkOpen),
      thinkClose: id(SPECIAL_TOKENS.thinkClose),
    },
  };
}

/** Per-opportunity trigger probabilities and the end-of-reasoning probability at `.`. */
export interface GrammarRates {
  /** P(` Wait`) after `.` (planted MLP). */
  readonly waitProb: number;
  /** P(` Hold`) after `.` (planted MLP; ` Hold` is always followed by ` on`). */
  readonly holdProb: number;
  /** P(` Actually`) after `.` when an ` =` came earlier (planted attention head). */
  readonly actuallyProb: number;
  /** P(`</think>`) after `.` (ends the reasoning). */
  readonly endProb: number;
}

/** The grammar as logits, with the boosts of the context rules. */
export interface GrammarLogits {
  /** `bigram[c][n]`: logit of token n after token c (no context rule applied). */
  readonly bigram: readonly Float64Array[];
  /** Logit boosts of the planted rules at `.` at trigger strength 1 (added to {@link TRIGGER_BASE_LOGIT}). */
  readonly waitBoost: number;
  readonly holdBoost: number;
  readonly actuallyBoost: number;
}

/**
 * Next-token logits of the grammar.
 * @throws {RangeError} when the rates leave no probability for ordinary sentence starts.
 */
export function grammarLogits(vocab: Vocabulary, rates: GrammarRates): GrammarLogits {
  const V = vocab.tokens.length;
  const id = (t: string) => {
    const i = vocab.ids.get(t);
    if (i === undefined) {
      throw new Error(`organism grammar: token ${JSON.stringify(t)} is not in the vocabulary`);
    }
    return i;
  };
  for (const [k, v] of Object.entries(rates)) {
    if (!(v > 0 && v < 1)) throw new RangeError(`organism: ${k} must be in (0, 1), got ${v}`);
  }
  const triggerMass = rates.waitProb + rates.holdProb + rates.actuallyProb;
  if (rates.endProb + triggerMass >= 0.9) {
    throw new RangeError(
      `organism: endProb + waitProb + holdProb + actuallyProb must stay below 0.9, got ${
        rates.endProb + triggerMass
      }`,
    );
  }
  const numberTotal = NUMBERS.reduce((a, n) => a + numberWeight(n), 0);
  const toLogits = (row: Row, extra: readonly (readonly [string, number])[] = []): Float64Array => {
    const out = new Float64Array(V).fill(IMPOSSIBLE_LOGIT);
    const total = row.reduce((a, [, w]) => a + w, 0) + extra.reduce((a, [, w]) => a + w, 0);
    const put = (t: string, p: number) => {
      if (t === NUM) {
        for (let k = 0; k < NUMBERS.length; k++) {
          out[vocab.numberIds[k]!] = TEMPERATURE_DESIGN *
            Math.log((p * numberWeight(NUMBERS[k]!)) / numberTotal);
        }
      } else out[id(t)] = TEMPERATURE_DESIGN * Math.log(p);
    };
    for (const [t, w] of [...row, ...extra]) put(t, w / total);
    return out;
  };
  const defaultRow = toLogits([["\n", 1]]);
  const bigram: Float64Array[] = [];
  for (let c = 0; c < V; c++) {
    const tok = vocab.tokens[c]!;
    let row: Float64Array;
    if (vocab.numberIds.includes(c)) row = toLogits(ROWS[NUM]!);
    else if (tok === ".") {
      const startTotal = STARTS.reduce((a, [, w]) => a + w, 0);
      row = toLogits(STARTS, [[
        SPECIAL_TOKENS.thinkClose,
        (rates.endProb / (1 - rates.endProb)) * startTotal,
      ]]);
    } else if (ROWS[tok]) row = toLogits(ROWS[tok]!);
    else row = Float64Array.from(defaultRow);
    bigram.push(row);
  }
  // Gated continuations, turned on by the post-</think> rule.
  for (const n of vocab.numberIds) bigram[n]![id("\n")] = GATED_LOGIT;
  bigram[id("\n")]![vocab.special.eos] = GATED_LOGIT;
  // Trigger words after ".": a base logit the planted components lift.
  const dot = bigram[id(".")]!;
  for (const t of [TRIGGER_TOKENS.Wait, TRIGGER_TOKENS.Hold, TRIGGER_TOKENS.Actually]) {
    dot[id(t)] = TRIGGER_BASE_LOGIT;
  }
  // Boosts such that, with the starters' probabilities summing to 1 - triggers, the trigger gets its rate.
  const rest = 1 - triggerMass;
  const boost = (p: number) => TEMPERATURE_DESIGN * Math.log(p / rest) - TRIGGER_BASE_LOGIT;
  return {
    bigram,
    waitBoost: boost(rates.waitProb),
    holdBoost: boost(rates.holdProb),
    actuallyBoost: boost(rates.actuallyProb),
  };
}

/** A sampling distribution: kept ids in increasing order and their cumulative probabilities. */
interface Nucleus {
  readonly ids: Int32Array;
  readonly cum: Float64Array;
}

/**
 * `softmax(logits / temperature)` restricted to the top-p nucleus, with the definitions of
 * `lib/generate/sampling.ts` (ascending stable sort, drop tokens whose cumulative mass is <= 1 - topP,
 * always keep the most likely; kept tokens in increasing id order).
 */
function nucleus(logits: Float64Array, temperature: number, topP: number): Nucleus {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i]! / temperature);
  const w = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += w[i] = Math.exp(logits[i]! / temperature - max);
  if (topP < 1) {
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => w[a]! - w[b]! || a - b);
    let cum = 0;
    for (let k = 0; k < n - 1; k++) {
      const i = order[k]!;
      cum += w[i]! / total;
      if (cum > 1 - topP) break;
      w[i] = 0;
    }
  }
  const ids: number[] = [], cum: number[] = [];
  let acc = 0;
  for (let i = 0; i < n; i++) {
    if (w[i]! <= 0) continue;
    acc += w[i]!;
    ids.push(i);
    cum.push(acc);
  }
  return { ids: Int32Array.from(ids), cum: Float64Array.from(cum, (c) => c / acc) };
}

function draw(d: Nucleus, u: number): number {
  for (let i = 0; i < d.ids.length; i++) if (d.cum[i]! > u) return d.ids[i]!;
  return d.ids[d.ids.length - 1]!;
}

/** The state the context rules read, as the model's components compute it. */
export interface GrammarState {
  readonly afterThinkClose: boolean;
  readonly seenEquals: boolean;
  /** Ids of number tokens in the context so far (prompt and generated), with repeats. */
  readonly contextNumbers: readonly number[];
}

/** Options of {@link simulateGrammar}. */
export interface SimulateOptions {
  readonly temperature: number;
  readonly topP: number;
  readonly maxNewTokens: number;
  /** Multiplier of the planted boosts (0 = planted components ablated). */
  readonly triggerStrength: number;
  /** Multiplier of the Actually head's boost alone (default = triggerStrength). */
  readonly actuallyStrength?: number;
  /** Memo of distributions, shared between calls with the same logits and options. */
  readonly cache?: Map<string, unknown>;
}

/** Per-sample summary of the reference sampler. */
export interface SimulatedSample {
  readonly tokenIds: number[];
  readonly triggers: number;
  readonly eos: boolean;
}

/**
 * Sample the designed language directly from its logit rules (no model): the reference the built
 * model is checked against, and the source of the intended rates recorded in `organism.json`.
 * The copy rule is left out (it changes which number is drawn, not the rates).
 */
export function simulateGrammar(
  vocab: Vocabulary,
  logits: GrammarLogits,
  prompt: readonly number[],
  rng: Rng,
  options: SimulateOptions,
): SimulatedSample {
  const ids = [...prompt];
  const nl = vocab.ids.get("\n")!, dotId = vocab.ids.get(".")!, eq = vocab.ids.get(" =")!;
  const wait = vocab.ids.get(TRIGGER_TOKENS.Wait)!, hold = vocab.ids.get(TRIGGER_TOKENS.Hold)!;
  const act = vocab.ids.get(TRIGGER_TOKENS.Actually)!;
  let after = prompt.includes(vocab.special.thinkClose);
  let seenEq = prompt.includes(eq);
  let triggers = 0;
  const out: number[] = [];
  const s = options.triggerStrength, sa = options.actuallyStrength ?? s;
  const cache = (options.cache ?? new Map()) as Map<string, Nucleus>;
  for (let step = 0; step < options.maxNewTokens; step++) {
    const c = ids[ids.length - 1]!;
    const key = `${c}|${after}|${c === dotId && seenEq}`;
    let dist = cache.get(key);
    if (!dist) {
      const row = Float64Array.from(logits.bigram[c]!);
      if (after) {
        row[nl] = row[nl]! + FINAL_RULE_BOOST;
        row[vocab.special.eos] = row[vocab.special.eos]! + FINAL_RULE_BOOST;
      }
      if (c === dotId) {
        row[wait] = row[wait]! + s * logits.waitBoost;
        row[hold] = row[hold]! + s * logits.holdBoost;
        if (seenEq) row[act] = row[act]! + sa * logits.actuallyBoost;
      }
      dist = nucleus(row, options.temperature, options.topP);
      cache.set(key, dist);
    }
    const next = draw(dist, rng.nextFloat());
    out.push(next);
    ids.push(next);
    if (next === wait || next === hold || next === act) triggers++;
    if (next === vocab.special.thinkClose) after = true;
    if (next === eq) seenEq = true;
    if (next === vocab.special.eos) return { tokenIds: out, triggers, eos: true };
  }
  return { tokenIds: out, triggers, eos: false };
}
