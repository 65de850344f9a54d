/**
 * The organism's language: a small active subset of the real Qwen2.5/R1 vocabulary and a stochastic
 * grammar over it (a bigram table written as next-token logits), plus the context rules the model's
 * components carry (see `weights.ts`).
 *
 * Text looks like `Okay, so the answer is 16. So 16 - 3 = 13 total. Wait, 16 * 2 = 4. …</think>\n\nFinal: 16`
 * then EOS, tokenised exactly as the real tokenizer does (numbers digit by digit after a `" "` token).
 * Logits are `TEMPERATURE_DESIGN · ln P(next | current)`, so sampling at temperature 0.7 reproduces the
 * grammar's probabilities. Context rules (each carried by known components):
 *
 * - trigger words after `.` (planted): ` Wait` when the sentence ended in a digit, ` Actually` when an
 *   ` =` occurred earlier;
 * - after a trigger (helper "re-read" circuit): numbers are copied from the question, digit by digit;
 * - after `</think>` (helper): a digit is followed by a digit or EOS only.
 *
 * @module
 */

/** Sampling temperature the grammar's logits are calibrated for. */
export const TEMPERATURE_DESIGN = 0.7;
/** Logit (relative to the language's allowed continuations) of a continuation the grammar forbids. */
export const IMPOSSIBLE_LOGIT = -20;

/** The active tokens: key → text (a regular token's decoded text, or an R1 added token). */
export const ACTIVE_TOKENS = {
  bos: "<｜begin▁of▁sentence｜>",
  assistant: "<｜Assistant｜>",
  nl: "\n",
  okay: "Okay",
  comma: ",",
  so: " so",
  the: " the",
  answer: " answer",
  is: " is",
  So: " So",
  dot: ".",
  sp: " ",
  d0: "0",
  d1: "1",
  d2: "2",
  d3: "3",
  d4: "4",
  d5: "5",
  d6: "6",
  d7: "7",
  d8: "8",
  d9: "9",
  plus: " +",
  minus: " -",
  times: " *",
  eq: " =",
  total: " total",
  wait: " Wait",
  actually: " Actually",
  nlnl: "\n\n",
  thinkClose: "</think>",
  final: "Final",
  colon: ":",
  eos: "<｜end▁of▁sentence｜>",
} as const;

/** Key of an active token. */
export type TokenKey = keyof typeof ACTIVE_TOKENS;

/** The active token keys in basis order. */
export const TOKEN_KEYS = Object.keys(ACTIVE_TOKENS) as TokenKey[];

/** Digit keys, in value order. */
export const DIGITS: readonly TokenKey[] = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"];

/** Tokens that are never generated (prompt-only): scored like inactive tokens. */
export const PROMPT_ONLY: readonly TokenKey[] = ["bos", "assistant"];

/** Trigger words as the detector sees them, and their tokens. */
export const TRIGGER_WORDS = ["Wait", "Actually"] as const;

/** Per-opportunity probabilities of the grammar (see {@link grammarLogits}). */
export interface GrammarRates {
  /** P(` Wait`) after `.` when the sentence ended in a digit and every planted component is intact. */
  readonly waitProb: number;
  /** Same with the planted MLP ablated (the direct write of the planted previous-token head alone). */
  readonly waitProbHeadOnly: number;
  /** P(` Wait`) after `.` with neither (the grammar's base rate). */
  readonly waitBaseProb: number;
  /** P(` Actually`) after `.` when the planted `=` head attends fully to an earlier ` =`. */
  readonly actuallyProb: number;
  /** P(` Actually`) after `.` without it (base rate). */
  readonly actuallyBaseProb: number;
  /** P(`</think>`) after `.` (ends the reasoning). */
  readonly endProb: number;
}

type Row = readonly (readonly [TokenKey | "DIGIT" | "NZDIGIT", number])[];

/** The bigram rows (weights normalised per row). `DIGIT` = each digit, `NZDIGIT` = 1–9 (0 rarer). */
const ROWS: Partial<Record<TokenKey, Row>> = {
  nl: [["okay", 1]],
  okay: [["comma", 1]],
  comma: [["so", 0.3], ["sp", 0.7]],
  so: [["the", 1]],
  the: [["answer", 1]],
  answer: [["is", 1]],
  is: [["sp", 1]],
  So: [["the", 0.3], ["sp", 0.7]],
  sp: [["NZDIGIT", 1]],
  plus: [["sp", 1]],
  minus: [["sp", 1]],
  times: [["sp", 1]],
  eq: [["sp", 1]],
  total: [["dot", 1]],
  wait: [["comma", 1]],
  actually: [["comma", 1]],
  thinkClose: [["nlnl", 1]],
  nlnl: [["final", 1]],
  final: [["colon", 1]],
  colon: [["sp", 1]],
};

/** Continuations of a digit (before `</think>`). */
const DIGIT_ROW: Row = [
  ["DIGIT", 0.3],
  ["plus", 0.1],
  ["minus", 0.08],
  ["times", 0.07],
  ["eq", 0.15],
  ["dot", 0.17],
  ["total", 0.13],
];

/** After `</think>`: P(another digit | digit); the rest is EOS. */
export const FINAL_DIGIT_PROB = 0.3;

/** Tokens a digit may be followed by before `</think>` but not after (the post-`</think>` rule lowers them). */
export const DIGIT_ONLY_BEFORE_FINAL: readonly TokenKey[] = ["plus", "minus", "times", "eq", "dot", "total"];

/** The grammar as logits over the active tokens. */
export interface GrammarLogits {
  /** `bigram[c][n]`: logit of active token n after active token c (context rules not applied). */
  readonly bigram: readonly Float64Array[];
  /** Logit boosts of the context rules (added by components; see `weights.ts`). */
  readonly boosts: {
    /** ` Wait` from the planted previous-token head's direct write. */
    readonly waitHead: number;
    /** ` Wait` from the planted MLP. */
    readonly waitMlp: number;
    /** ` Actually` from the planted `=` head at full attention. */
    readonly actually: number;
    /** EOS after `</think>` (and the lowering of {@link DIGIT_ONLY_BEFORE_FINAL}). */
    readonly final: number;
  };
}

/**
 * Next-token logits of the grammar over the active tokens (index = position in {@link TOKEN_KEYS}).
 * @throws {RangeError} for a rate outside (0, 1) or inconsistent rates.
 */
export function grammarLogits(rates: GrammarRates): GrammarLogits {
  for (const [k, v] of Object.entries(rates)) {
    if (!(v > 0 && v < 1)) throw new RangeError(`organism: ${k} must be in (0, 1), got ${v}`);
  }
  if (!(rates.waitBaseProb < rates.waitProbHeadOnly && rates.waitProbHeadOnly < rates.waitProb)) {
    throw new RangeError(
      `organism: need waitBaseProb < waitProbHeadOnly < waitProb, got ${rates.waitBaseProb}, ` +
        `${rates.waitProbHeadOnly}, ${rates.waitProb}`,
    );
  }
  if (!(rates.actuallyBaseProb < rates.actuallyProb)) {
    throw new RangeError(`organism: need actuallyBaseProb < actuallyProb`);
  }
  if (rates.endProb + rates.waitProb + rates.actuallyProb >= 0.9) {
    throw new RangeError(`organism: endProb + waitProb + actuallyProb must stay below 0.9`);
  }
  const T = TEMPERATURE_DESIGN;
  const V = TOKEN_KEYS.length;
  const idx = new Map(TOKEN_KEYS.map((k, i) => [k, i]));
  const toLogits = (row: Row): Float64Array => {
    const out = new Float64Array(V).fill(IMPOSSIBLE_LOGIT);
    const total = row.reduce((a, [, w]) => a + w, 0);
    for (const [t, w] of row) {
      const p = w / total;
      if (t === "DIGIT" || t === "NZDIGIT") {
        const weights = DIGITS.map((_, v) => (t === "NZDIGIT" && v === 0 ? 0.2 : 1));
        const sum = weights.reduce((a, b) => a + b, 0);
        DIGITS.forEach((d, v) => (out[idx.get(d)!] = T * Math.log((p * weights[v]!) / sum)));
      } else out[idx.get(t)!] = T * Math.log(p);
    }
    return out;
  };
  const bigram: Float64Array[] = TOKEN_KEYS.map((k) => {
    if ((DIGITS as readonly string[]).includes(k)) return toLogits(DIGIT_ROW);
    const row = ROWS[k];
    return row ? toLogits(row) : toLogits([["nl", 1]]);
  });
  // After ".": sentence starts, the end of reasoning, and the triggers at their base rates.
  const dot = bigram[idx.get("dot")!]!;
  const pWait = rates.waitBaseProb, pAct = rates.actuallyBaseProb;
  dot.fill(IMPOSSIBLE_LOGIT);
  dot[idx.get("So")!] = T * Math.log(1 - rates.endProb - pWait - pAct);
  dot[idx.get("thinkClose")!] = T * Math.log(rates.endProb);
  dot[idx.get("wait")!] = T * Math.log(pWait);
  dot[idx.get("actually")!] = T * Math.log(pAct);
  // After </think> a digit ends with EOS: EOS is gated here and lifted by the final rule's boost.
  // Elsewhere EOS stays below the floor even with the boost.
  const final = 30;
  const eos = idx.get("eos")!;
  TOKEN_KEYS.forEach((k, c) => {
    const row = bigram[c]!;
    row[eos] = (DIGITS as readonly string[]).includes(k)
      ? T * Math.log(1 - FINAL_DIGIT_PROB) - final // digits after </think> keep P(digit) = 0.3
      : IMPOSSIBLE_LOGIT - final;
  });
  // Odds boosts: the boost that turns base odds into target odds, with the "So" continuation as reference.
  const odds = (p: number) => p / (1 - p);
  return {
    bigram,
    boosts: {
      waitHead: T * Math.log(odds(rates.waitProbHeadOnly) / odds(rates.waitBaseProb)),
      waitMlp: T * Math.log(odds(rates.waitProb) / odds(rates.waitProbHeadOnly)),
      actually: T * Math.log(odds(rates.actuallyProb) / odds(rates.actuallyBaseProb)),
      final,
    },
  };
}
