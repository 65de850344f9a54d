/**
 * Prompt construction: what the model sees, under the corrected protocol and in reference mode.
 *
 * **Corrected (chat) form** (`prompting.use_chat_template: true`, the corrected protocol's default): the
 * model's own chat template is rendered with a system and a user message and the generation prompt,
 *
 * ```
 * applyChatTemplate([{role: "system", content: system_prompt}, {role: "user", content: user_prompt}],
 *                   {addGenerationPrompt: true})
 * ```
 *
 * which for DeepSeek-R1-Distill gives `<BOS>{system}<｜User｜>{user}<｜Assistant｜><think>\n`. Then the
 * formatting variant is applied to the assistant prefix: the template's own think opening (a trailing
 * `<think>\n`, or `<think>`) is removed and the variant's `think_open` is appended verbatim. With the
 * reference YAML's three variants that means:
 *
 * | variant | think_open | assistant prefix ends with | user prompt |
 * |---|---|---|---|
 * | `baseline_think_newline` | `"<think>\n"` | `<｜Assistant｜><think>\n` (exactly the template's) | template |
 * | `think_same_line` | `"<think> "` | `<｜Assistant｜><think> ` (no newline; the YAML's space kept) | template |
 * | `no_think_tags` | `""` | `<｜Assistant｜>` (the template's `<think>\n` removed) | instruction line removed |
 *
 * The instruction line `Use <think> tags for your reasoning.` is removed from the user prompt exactly when
 * the variant's `think_open` is empty (a prompt without think tags should not ask for them).
 * `think_close` never enters the prompt (the model writes it); {@linkcode reasoningCloseTag} gives the tag
 * that closes the reasoning span for detection.
 *
 * **Reference (plain) form** (`use_chat_template: false`, docs/protocol.md §4): no chat template; the text is
 * `system_prompt + "\n\n" + user_prompt`, tokenised with the tokenizer's special tokens (a leading BOS).
 * `think_open`/`think_close` are ignored, as the reference ignores them, so `baseline_think_newline` and
 * `think_same_line` give byte-identical prompts; only the variant *named* `no_think_tags` removes the
 * instruction line. The Phase-2 form (`form: "phase2"`) is `user_prompt` alone, without the system prompt:
 * a reference bug (docs/protocol.md §19), available for reproducing the Phase-2 sweeps and flagged in the
 * result.
 *
 * In both forms `user_prompt` is `prompting.template` with `{question}` replaced by the question verbatim.
 *
 * @module
 */

import type { Config } from "./config.ts";
import type { Tokenizer } from "../../lib/engine/tokenizer.ts";

/** The instruction line the reference removes for `no_think_tags` (docs/protocol.md §5). */
export const THINK_INSTRUCTION = "Use <think> tags for your reasoning.";

/** A formatting variant as configured (`prompting.formatting_variants[]`). */
export interface FormattingVariant {
  readonly name: string;
  readonly think_open: string;
  readonly think_close: string;
}

/** Which prompt form to build. */
export type PromptForm = "chat" | "reference" | "phase2";

/** A built prompt. */
export interface BuiltPrompt {
  /** The exact prompt string (for the chat form it starts with the BOS token the template emits). */
  readonly text: string;
  /** Its token ids, BOS included when the form has one. */
  readonly tokenIds: number[];
  /** Variant name. */
  readonly variant: string;
  /** The form used. */
  readonly form: PromptForm;
  /** A warning when the form reproduces a known reference defect (the Phase-2 form), else undefined. */
  readonly flag?: string;
}

/** Options of {@linkcode buildPrompt}. */
export interface BuildPromptOptions {
  /**
   * Prompt form. Default: `"chat"` when `prompting.use_chat_template` is true, else `"reference"`.
   * `"phase2"` is the reference's Phase-2 sweep prompt (no system prompt).
   */
  readonly form?: PromptForm;
}

type Prompting = Config["prompting"];

/**
 * The variant named `name` in the config.
 *
 * @param prompting The config's `prompting` section.
 * @param name Variant name.
 * @throws {RangeError} naming `prompting.formatting_variants` and the configured names when unknown.
 */
export function findVariant(prompting: Prompting, name: string): FormattingVariant {
  const v = prompting.formatting_variants.find((x) => x.name === name);
  if (!v) {
    const names = prompting.formatting_variants.map((x) => `"${x.name}"`).join(", ") || "(none)";
    throw new RangeError(
      `Unknown formatting variant "${name}": prompting.formatting_variants has ${names}; ` +
        `pass one of them or add "${name}" to the config`,
    );
  }
  return v;
}

/**
 * The user prompt: the template with `{question}` replaced (first occurrence, as Python's `str.format`
 * with one field), optionally without the think instruction line.
 *
 * @param template `prompting.template`.
 * @param question The question, verbatim.
 * @param removeInstruction Remove `Use <think> tags for your reasoning.\n` (then the same without the
 *   newline if still present), as the reference does for `no_think_tags`.
 * @throws {RangeError} when the template has no `{question}` field.
 */
export function userPrompt(template: string, question: string, removeInstruction: boolean): string {
  if (!template.includes("{question}")) {
    throw new RangeError(
      `prompting.template has no "{question}" field (got ${JSON.stringify(template.slice(0, 60))}); ` +
        `add "{question}" where the problem goes`,
    );
  }
  let text = template.replaceAll("{question}", () => question);
  if (removeInstruction) {
    text = text.replace(`${THINK_INSTRUCTION}\n`, "");
    text = text.replace(THINK_INSTRUCTION, "");
  }
  return text;
}

/**
 * The reference's plain-text prompt string (docs/protocol.md §4), without tokenising.
 *
 * @param prompting The config's `prompting` section.
 * @param question The question.
 * @param variant The variant name (only `no_think_tags` changes anything).
 * @param phase2 Phase-2 form: the user prompt without the system prompt (a reference defect).
 * @example
 * ```ts
 * referencePromptText(config.prompting, "What is 2+2?", "baseline_think_newline");
 * // "You are a helpful assistant.\n\nSolve the problem carefully.\nUse <think> tags ...\n\nProblem: What is 2+2?\n"
 * ```
 */
export function referencePromptText(
  prompting: Prompting,
  question: string,
  variant: string,
  phase2 = false,
): string {
  const user = userPrompt(prompting.template, question, variant === "no_think_tags");
  return phase2 ? user : `${prompting.system_prompt}\n\n${user}`;
}

/**
 * Strip the chat template's trailing think opening (`<think>\n` or `<think>`) from a rendered prompt.
 *
 * @returns The prompt up to the assistant turn's opening, without any think tag.
 */
export function stripTemplateThinkOpen(rendered: string): string {
  for (const open of ["<think>\n", "<think>"]) {
    if (rendered.endsWith(open)) return rendered.slice(0, -open.length);
  }
  return rendered;
}

/**
 * The corrected chat-form prompt string (see the module doc), without tokenising.
 *
 * @param tokenizer A tokenizer with a chat template.
 * @param prompting The config's `prompting` section.
 * @param question The question.
 * @param variant The formatting variant.
 * @throws {Error} when the tokenizer has no chat template.
 */
export function chatPromptText(
  tokenizer: Tokenizer,
  prompting: Prompting,
  question: string,
  variant: FormattingVariant,
): string {
  const user = userPrompt(prompting.template, question, variant.think_open === "");
  const messages = prompting.system_prompt === ""
    ? [{ role: "user" as const, content: user }]
    : [{ role: "system" as const, content: prompting.system_prompt }, {
      role: "user" as const,
      content: user,
    }];
  const rendered = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  return stripTemplateThinkOpen(rendered) + variant.think_open;
}

/**
 * Build the prompt one problem gets under one variant: its text and token ids.
 *
 * @param tokenizer The model's tokenizer.
 * @param prompting The config's `prompting` section.
 * @param question The question.
 * @param variantName A name from `prompting.formatting_variants`.
 * @param options `form` (default from `prompting.use_chat_template`).
 * @returns The prompt; the chat form is encoded without adding special tokens (the template emits the
 *   BOS), the reference forms with them (a leading BOS, as the reference's HF tokenizer adds).
 * @throws {RangeError} for an unknown variant or a template without `{question}`.
 * @example
 * ```ts
 * const p = buildPrompt(tokenizer, config.prompting, problem.question, "baseline_think_newline");
 * p.text.endsWith("<｜Assistant｜><think>\n"); // true for R1 under the corrected protocol
 * ```
 */
export function buildPrompt(
  tokenizer: Tokenizer,
  prompting: Prompting,
  question: string,
  variantName: string,
  options: BuildPromptOptions = {},
): BuiltPrompt {
  const variant = findVariant(prompting, variantName);
  const form = options.form ?? (prompting.use_chat_template ? "chat" : "reference");
  if (form === "chat") {
    const text = chatPromptText(tokenizer, prompting, question, variant);
    return {
      text,
      tokenIds: tokenizer.encode(text, { addSpecialTokens: false }),
      variant: variant.name,
      form,
    };
  }
  const phase2 = form === "phase2";
  const text = referencePromptText(prompting, question, variant.name, phase2);
  return {
    text,
    tokenIds: tokenizer.encode(text, { addSpecialTokens: true }),
    variant: variant.name,
    form,
    ...(phase2
      ? {
        flag:
          "reference Phase-2 prompt: the system prompt is missing (docs/protocol.md §19); use only to reproduce " +
          "the reference's Phase-2 sweeps",
      }
      : {}),
  };
}

/**
 * The tag that closes the reasoning span of a variant, for detection: `think_close` trimmed, or
 * `</think>` when the variant has none (the R1 model closes its reasoning with `</think>` whether or not
 * the prompt opened it).
 */
export function reasoningCloseTag(variant: FormattingVariant): string {
  return variant.think_close.trim() || "</think>";
}
