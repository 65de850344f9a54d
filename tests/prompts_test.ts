import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../experiments/backtracking/config.ts";
import { loadTokenizer, type Tokenizer } from "../lib/engine/tokenizer.ts";
import {
  buildPrompt,
  findVariant,
  reasoningCloseTag,
  referencePromptText,
  stripTemplateThinkOpen,
  userPrompt,
} from "../experiments/backtracking/prompts.ts";

const MINI = fileURLToPath(new URL("./fixtures/tokenizer/r1-distill-mini/", import.meta.url));
const CORRECTED = fileURLToPath(new URL("../configs/r1_distill_qwen_1p5b.yaml", import.meta.url));
const REFERENCE = fileURLToPath(new URL("../configs/r1_distill_qwen_1p5b_reference.yaml", import.meta.url));
const BOS = "<｜begin▁of▁sentence｜>";
const Q = "Janet has 16 eggs. How many are left?";
const USER =
  `Solve the problem carefully.\nUse <think> tags for your reasoning.\nEnd with a single line: Final: <answer>\n\nProblem: ${Q}\n`;

let tok: Promise<Tokenizer> | undefined;
const mini = () => (tok ??= loadTokenizer(MINI));

Deno.test("reference prompt strings are exactly the reference's (docs/protocol.md §4)", async () => {
  const cfg = await loadConfig(REFERENCE);
  assert.equal(
    referencePromptText(cfg.prompting, Q, "baseline_think_newline"),
    `You are a helpful assistant.\n\n${USER}`,
  );
  assert.equal(
    referencePromptText(cfg.prompting, Q, "think_same_line"),
    referencePromptText(cfg.prompting, Q, "baseline_think_newline"),
    "think_open/think_close are dead config in the reference",
  );
  assert.equal(
    referencePromptText(cfg.prompting, Q, "no_think_tags"),
    `You are a helpful assistant.\n\nSolve the problem carefully.\nEnd with a single line: Final: <answer>\n\nProblem: ${Q}\n`,
  );
  assert.equal(
    referencePromptText(cfg.prompting, Q, "baseline_think_newline", true),
    USER,
    "phase 2: no system prompt",
  );
});

Deno.test("reference form is tokenised with a leading BOS; the phase-2 form is flagged", async () => {
  const cfg = await loadConfig(REFERENCE);
  const t = await mini();
  const p = buildPrompt(t, cfg.prompting, Q, "baseline_think_newline");
  assert.equal(p.form, "reference");
  assert.equal(p.tokenIds[0], 151646);
  assert.deepEqual(p.tokenIds.slice(1), t.encode(p.text, { addSpecialTokens: false }));
  assert.ok(p.tokenIds.includes(151648), "<think> in the prompt text is the added token");
  assert.equal(p.flag, undefined);
  const p2 = buildPrompt(t, cfg.prompting, Q, "baseline_think_newline", { form: "phase2" });
  assert.equal(p2.text, USER);
  assert.match(p2.flag ?? "", /system prompt is missing/);
});

Deno.test("corrected form applies the chat template and the variant's think_open", async () => {
  const cfg = await loadConfig(CORRECTED);
  const t = await mini();
  const base = `${BOS}You are a helpful assistant.<｜User｜>${USER}<｜Assistant｜>`;
  const a = buildPrompt(t, cfg.prompting, Q, "baseline_think_newline");
  assert.equal(a.form, "chat");
  assert.equal(a.text, `${base}<think>\n`);
  assert.equal(
    a.text,
    t.applyChatTemplate([{ role: "system", content: "You are a helpful assistant." }, {
      role: "user",
      content: USER,
    }], {
      addGenerationPrompt: true,
    }),
    "baseline_think_newline is exactly the template's prompt",
  );
  assert.equal(a.tokenIds.filter((id) => id === 151646).length, 1, "BOS not doubled");
  assert.equal(a.tokenIds[0], 151646);
  const b = buildPrompt(t, cfg.prompting, Q, "think_same_line");
  assert.equal(b.text, `${base}<think> `);
  const c = buildPrompt(t, cfg.prompting, Q, "no_think_tags");
  assert.equal(
    c.text,
    `${BOS}You are a helpful assistant.<｜User｜>Solve the problem carefully.\nEnd with a single line: Final: <answer>\n\nProblem: ${Q}\n<｜Assistant｜>`,
  );
  assert.ok(!c.tokenIds.includes(151648));
});

Deno.test("helpers: unknown variant, template without {question}, think tags", async () => {
  const cfg = await loadConfig(CORRECTED);
  assert.throws(
    () => findVariant(cfg.prompting, "nope"),
    /Unknown formatting variant "nope".*baseline_think_newline/,
  );
  assert.throws(() => userPrompt("no field", Q, false), /prompting.template has no "\{question\}"/);
  assert.equal(userPrompt("Q: {question}", "$& x", false), "Q: $& x", "question inserted verbatim");
  assert.equal(stripTemplateThinkOpen("x<think>\n"), "x");
  assert.equal(stripTemplateThinkOpen("x<think>"), "x");
  assert.equal(stripTemplateThinkOpen("x"), "x");
  assert.equal(reasoningCloseTag(findVariant(cfg.prompting, "baseline_think_newline")), "</think>");
  assert.equal(reasoningCloseTag(findVariant(cfg.prompting, "no_think_tags")), "</think>");
});
