/**
 * The organism's tokenizer and config files (Hugging Face formats).
 *
 * The tokenizer is word-level: a `Split` pre-tokenizer cuts text into words, numbers and punctuation,
 * each piece keeping its leading space (` Wait`, ` 16`, `.`), plus runs of newlines; a `WordLevel`
 * model maps pieces to ids (`[UNK]` otherwise); a `Fuse` decoder concatenates them, so
 * `decode(encode(text)) === text` for in-vocabulary text. The R1 special tokens are added tokens and a
 * `TemplateProcessing` post-processor prepends BOS, as in DeepSeek-R1-Distill-Qwen.
 *
 * @module
 */

import { SPECIAL_TOKENS, UNK, type Vocabulary } from "./grammar.ts";

/** Pre-tokenizer pattern: `Final:` whole, then words, numbers and symbols with an optional leading space. */
export const PRE_TOKENIZER_PATTERN = "Final:| ?[A-Za-z]+| ?[0-9]+| ?[^\\sA-Za-z0-9]|\\n+| +|\\s";

/** An R1-style chat template (DeepSeek-R1's, without the tool-call branches). */
export const CHAT_TEMPLATE =
  "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}" +
  "{% set ns = namespace(system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}" +
  "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}" +
  "{%- for message in messages %}{%- if message['role'] == 'user' %}{{'<｜User｜>' + message['content']}}{%- endif %}" +
  "{%- if message['role'] == 'assistant' and message['content'] is not none %}{% set content = message['content'] %}" +
  "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}" +
  "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor -%}" +
  "{% if add_generation_prompt %}{{'<｜Assistant｜><think>\\n'}}{% endif %}";

const SPECIAL_FLAG: Readonly<Record<string, boolean>> = {
  [SPECIAL_TOKENS.bos]: true,
  [SPECIAL_TOKENS.eos]: true,
  [SPECIAL_TOKENS.user]: false,
  [SPECIAL_TOKENS.assistant]: false,
  [SPECIAL_TOKENS.thinkOpen]: false,
  [SPECIAL_TOKENS.thinkClose]: false,
};

/** tokenizer.json. */
export function tokenizerJson(vocab: Vocabulary): Record<string, unknown> {
  const regular: Record<string, number> = {};
  for (let i = 0; i < vocab.regularCount; i++) regular[vocab.tokens[i]!] = i;
  const added = [
    { id: 0, content: UNK, special: true },
    ...Object.values(SPECIAL_TOKENS).map((t) => ({
      id: vocab.ids.get(t)!,
      content: t,
      special: SPECIAL_FLAG[t]!,
    })),
  ].map((t) => ({
    id: t.id,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: t.special,
  }));
  const bos = SPECIAL_TOKENS.bos;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: "Split",
      pattern: { Regex: PRE_TOKENIZER_PATTERN },
      behavior: "Isolated",
      invert: false,
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [vocab.special.bos], tokens: [bos] } },
    },
    decoder: { type: "Fuse" },
    model: { type: "WordLevel", vocab: regular, unk_token: UNK },
  };
}

/** tokenizer_config.json (with the chat template). */
export function tokenizerConfigJson(vocab: Vocabulary): Record<string, unknown> {
  const decoderEntries: Record<string, unknown> = {};
  for (const t of [UNK, ...Object.values(SPECIAL_TOKENS)]) {
    decoderEntries[String(vocab.ids.get(t)!)] = {
      content: t,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: t === UNK ? true : SPECIAL_FLAG[t]!,
    };
  }
  return {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: decoderEntries,
    bos_token: SPECIAL_TOKENS.bos,
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: SPECIAL_TOKENS.eos,
    model_max_length: 4096,
    pad_token: SPECIAL_TOKENS.eos,
    tokenizer_class: "PreTrainedTokenizerFast",
    unk_token: UNK,
  };
}

/** generation_config.json (the R1 sampling defaults). */
export function generationConfigJson(vocab: Vocabulary): Record<string, unknown> {
  return {
    bos_token_id: vocab.special.bos,
    do_sample: true,
    eos_token_id: vocab.special.eos,
    temperature: 0.7,
    top_p: 0.95,
  };
}
