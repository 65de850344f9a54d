/**
 * Tokenizer loading and a small typed wrapper around `@huggingface/transformers`' tokenizers.
 *
 * A tokenizer is loaded from a local folder (a model folder or a hub-cache snapshot, see
 * `resolveModel` in `hub.ts`) holding `tokenizer.json` and `tokenizer_config.json`; the chat template
 * comes from `chat_template.jinja` beside them or from `tokenizer_config.json`, and extra end-of-sequence
 * ids from `generation_config.json` when present. Nothing is fetched from the network.
 *
 * Importing this module imports `@huggingface/transformers`, which loads onnxruntime-node and sharp
 * (native add-ons): Deno needs `--allow-ffi` (plus `--allow-read` and `--allow-env`), or `-A`.
 *
 * @module
 */

import { AutoTokenizer, env } from "@huggingface/transformers";
import { readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";

type HfTokenizer = Awaited<ReturnType<typeof AutoTokenizer.from_pretrained>>;

/** The role of a chat message. */
export type ChatRole = "system" | "user" | "assistant";

/** One chat message, as passed to the chat template. */
export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
}

/** Options of {@linkcode Tokenizer.applyChatTemplate} and {@linkcode Tokenizer.encodeChat}. */
export interface ChatTemplateOptions {
  /** End the prompt with the assistant turn's opening (for R1: `<｜Assistant｜><think>\n`). */
  readonly addGenerationPrompt: boolean;
}

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add the special tokens of the tokenizer's post-processor (for R1: a leading BOS). Default `true`. */
  readonly addSpecialTokens?: boolean;
}

/** Options of {@linkcode Tokenizer.decode} and {@linkcode Tokenizer.tokenOffsets}. */
export interface DecodeOptions {
  /** Drop tokens marked `special` (for R1: BOS and EOS, not `<think>`). Default `false`. */
  readonly skipSpecialTokens?: boolean;
}

/** A half-open character range `[start, end)` in a decoded string (UTF-16 code units, as `String#slice`). */
export interface TokenSpan {
  readonly start: number;
  readonly end: number;
}

/** The files a tokenizer folder must hold. */
export const REQUIRED_TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"] as const;

type TokenizerInit = Pick<
  Tokenizer,
  "dir" | "inner" | "chatTemplate" | "bosTokenId" | "eosTokenIds" | "padTokenId"
>;

/**
 * A loaded tokenizer. Create it with {@linkcode loadTokenizer}.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("models/r1-distill");
 * const ids = tok.encodeChat([{ role: "user", content: "2+2?" }], { addGenerationPrompt: true });
 * tok.decode(ids); // "<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>\n"
 * ```
 */
export class Tokenizer {
  /** Absolute path of the folder the tokenizer was loaded from. */
  readonly dir: string;
  /** The wrapped `@huggingface/transformers` tokenizer, for anything this class does not cover. */
  readonly inner: HfTokenizer;
  /** The Jinja chat template, or `undefined` when the folder has none. */
  readonly chatTemplate: string | undefined;
  /** Id of the beginning-of-sequence token (R1: 151646), or `undefined` when there is none. */
  readonly bosTokenId: number | undefined;
  /**
   * Ids that end generation: `generation_config.json`'s `eos_token_id` (a number or a list) first, then
   * `tokenizer_config.json`'s `eos_token`, without duplicates (R1: `[151643]`).
   */
  readonly eosTokenIds: readonly number[];
  /** Id of the padding token (R1: 151643, the EOS), or `undefined` when there is none. */
  readonly padTokenId: number | undefined;
  /**
   * One more than the largest token id the tokenizer knows, added tokens included (R1: 151665). The
   * model's embedding matrix may be larger (R1: 151936); ids in between decode to "".
   */
  readonly vocabSize: number;

  /** Use {@linkcode loadTokenizer}; this constructor is for wrapping an already loaded tokenizer. */
  constructor(init: TokenizerInit) {
    this.dir = init.dir;
    this.inner = init.inner;
    this.chatTemplate = init.chatTemplate;
    this.bosTokenId = init.bosTokenId;
    this.eosTokenIds = init.eosTokenIds;
    this.padTokenId = init.padTokenId;
    let maxId = -1;
    for (const id of init.inner.get_vocab().values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
  }

  /**
   * Encode text to token ids.
   *
   * @param text The text; special-token strings in it (e.g. `<think>`) become their single ids.
   * @param options `addSpecialTokens` (default `true`): add the post-processor's tokens (R1: a leading
   *   BOS). Pass `false` when counting completion tokens or encoding a continuation.
   * @returns The token ids.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true });
  }

  /**
   * Decode token ids to text. Ids the tokenizer does not know decode to "".
   *
   * @param ids The token ids; an empty list decodes to "".
   * @param options `skipSpecialTokens` (default `false`): drop tokens marked special.
   * @returns The text.
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    return this.inner.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /**
   * Decode each token on its own. With byte-level BPE a token holding part of a multi-byte character
   * decodes to "\uFFFD", so the pieces need not join to {@linkcode Tokenizer.decode}'s text; use
   * {@linkcode Tokenizer.tokenOffsets} for positions in it.
   *
   * @param ids The token ids.
   * @returns One string per id.
   */
  decodeEach(ids: readonly number[]): string[] {
    return ids.map((id) => this.inner.decode([id], { skip_special_tokens: false }));
  }

  /**
   * @param token A vocabulary entry in the tokenizer's own spelling (byte-level: `"ĠWait"` for " Wait")
   *   or an added token (`"<think>"`).
   * @returns Its id, or `undefined` when it is not in the vocabulary.
   */
  tokenToId(token: string): number | undefined {
    return this.inner._tokenizer.token_to_id(token) ?? undefined;
  }

  /**
   * @param id A token id.
   * @returns The vocabulary entry (byte-level spelling, e.g. `"ĠWait"`), or `undefined` when unknown.
   */
  idToToken(id: number): string | undefined {
    return this.inner._tokenizer.id_to_token(id) ?? undefined;
  }

  /**
   * Render messages with the folder's chat template (Jinja, as transformers does), with `bos_token`,
   * `eos_token` and `pad_token` from `tokenizer_config.json` in scope.
   *
   * @param messages The conversation.
   * @param options `addGenerationPrompt`: end with the assistant turn's opening.
   * @returns The prompt string. The R1 template starts it with the BOS token itself.
   * @throws {Error} When the folder has no chat template.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions): string {
    if (this.chatTemplate === undefined) {
      throw new Error(
        `Tokenizer "${this.dir}" has no chat template: add chat_template.jinja to the folder or a ` +
          `"chat_template" entry to its tokenizer_config.json`,
      );
    }
    const rendered = this.inner.apply_chat_template(
      messages.map((m) => ({ role: m.role, content: m.content })),
      {
        tokenize: false,
        add_generation_prompt: options.addGenerationPrompt,
        chat_template: this.chatTemplate,
      },
    );
    return rendered as string;
  }

  /**
   * {@linkcode Tokenizer.applyChatTemplate}, then encode without adding special tokens, so the BOS the
   * template emits is not doubled.
   *
   * @param messages The conversation.
   * @param options `addGenerationPrompt`: end with the assistant turn's opening.
   * @returns The prompt's token ids.
   */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  /**
   * Character range of each token in `decode(ids, options)`, found by decoding every prefix of `ids`
   * and comparing with the full text. This is exact for byte-level BPE, where a single token may hold
   * part of a character: such a token gets the empty range at the point where its character starts, and
   * the token completing the character spans it. A prefix's trailing "\uFFFD" is taken for an incomplete
   * character (a genuine U+FFFD at a token's end moves to the next token's range).
   *
   * Cost: one decode per token over a growing prefix, O(n²) in the number of tokens (about 0.5 s for
   * 2,000 tokens); run it on the span you need, not on a whole long transcript.
   *
   * @param ids The token ids.
   * @param options `skipSpecialTokens` (default `false`): as in {@linkcode Tokenizer.decode}; skipped
   *   tokens get empty ranges.
   * @returns One `{start, end}` per id; ranges are contiguous, non-overlapping and cover the text.
   */
  tokenOffsets(ids: readonly number[], options: DecodeOptions = {}): TokenSpan[] {
    const full = this.decode(ids, options);
    const spans: TokenSpan[] = [];
    let prev = 0;
    for (let i = 0; i < ids.length; i++) {
      let end: number;
      if (i === ids.length - 1) {
        end = full.length;
      } else {
        const prefix = this.decode(ids.slice(0, i + 1), options).replace(/\uFFFD+$/, "");
        end = full.startsWith(prefix) ? prefix.length : commonPrefixLength(prefix, full);
      }
      end = Math.max(prev, end);
      spans.push({ start: prev, end });
      prev = end;
    }
    return spans;
  }
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `"${path}" is not valid JSON (${(e as Error).message}); replace it with the model's original`,
      {
        cause: e,
      },
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`"${path}" must hold a JSON object; replace it with the model's original`);
  }
  return value as Record<string, unknown>;
}

function templateFromConfig(config: Record<string, unknown>, configPath: string): string | undefined {
  const t = config["chat_template"];
  if (t === undefined || t === null) return undefined;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    for (const item of t) {
      if (
        typeof item === "object" && item !== null && item.name === "default" &&
        typeof item.template === "string"
      ) {
        return item.template;
      }
    }
    throw new Error(`"${configPath}": chat_template is a list without a "default" entry; add one`);
  }
  throw new Error(`"${configPath}": chat_template must be a string or a list of {name, template}`);
}

function idList(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) {
    return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  }
  return [];
}

/**
 * Load the tokenizer in a local folder through `AutoTokenizer.from_pretrained`, offline.
 *
 * Sets `@huggingface/transformers`' global `env.allowRemoteModels = false` and
 * `env.allowLocalModels = true` (downloads go through `resolveModel` in `hub.ts`), and passes the
 * folder as an absolute path (a relative path shaped like `org/name` would otherwise be looked up
 * under `env.localModelPath`). Needs `--allow-ffi` (see the module doc), `--allow-read`, `--allow-env`.
 *
 * The chat template is `chat_template.jinja` when the folder has one (as in transformers, it wins
 * over `tokenizer_config.json`'s `chat_template`), else the config's entry.
 *
 * @param dir The folder: a model folder or a hub-cache snapshot (`resolveModel(...).dir`).
 * @returns The tokenizer.
 * @throws {Error} Naming the folder and the missing or unreadable file, when the folder does not exist,
 *   lacks `tokenizer.json` / `tokenizer_config.json`, or holds invalid JSON.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer((await resolveModel("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")).dir);
 * tok.encode(" Wait", { addSpecialTokens: false }); // [13824]
 * ```
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const abs = resolve(dir);
  let isDir = false;
  try {
    isDir = (await stat(abs)).isDirectory();
  } catch {
    throw new Error(
      `Cannot load tokenizer: folder "${abs}" does not exist; pass a model folder holding tokenizer.json ` +
        `and tokenizer_config.json (e.g. resolveModel(id).dir)`,
    );
  }
  if (!isDir) {
    throw new Error(`Cannot load tokenizer: "${abs}" is a file, not a folder; pass the model folder`);
  }
  const missing: string[] = [];
  for (const f of REQUIRED_TOKENIZER_FILES) if (!(await isFile(join(abs, f)))) missing.push(f);
  if (missing.length > 0) {
    throw new Error(
      `Cannot load tokenizer from "${abs}": ${missing.join(" and ")} missing; copy ${
        missing.length > 1 ? "them" : "it"
      } from the model's hub repo into the folder`,
    );
  }
  const configPath = join(abs, "tokenizer_config.json");
  const config = await readJsonObject(configPath);
  const templatePath = join(abs, "chat_template.jinja");
  const chatTemplate = (await isFile(templatePath))
    ? await readFile(templatePath, "utf8")
    : templateFromConfig(config, configPath);
  const genPath = join(abs, "generation_config.json");
  const genConfig = (await isFile(genPath)) ? await readJsonObject(genPath) : {};

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  let inner: HfTokenizer;
  try {
    inner = await AutoTokenizer.from_pretrained(abs);
  } catch (e) {
    throw new Error(`Cannot load tokenizer from "${abs}": ${(e as Error).message}`, { cause: e });
  }

  const known = (id: unknown): id is number => typeof id === "number" && Number.isInteger(id);
  const bosTokenId = known(inner.bos_token_id) ? inner.bos_token_id : idList(genConfig["bos_token_id"])[0];
  const eosTokenIds = [...idList(genConfig["eos_token_id"])];
  if (known(inner.eos_token_id) && !eosTokenIds.includes(inner.eos_token_id)) {
    eosTokenIds.push(inner.eos_token_id);
  }
  const padTokenId = known(inner.pad_token_id) ? inner.pad_token_id : idList(genConfig["pad_token_id"])[0];
  return new Tokenizer({ dir: abs, inner, chatTemplate, bosTokenId, eosTokenIds, padTokenId });
}
