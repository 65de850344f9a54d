/**
 * Experiment configuration: the reference pipeline's YAML schema (docs/protocol.md §1) plus this project's
 * extensions, validated with zod.
 *
 * Protocol: the top-level key `protocol` is `"corrected"` (our fixed protocol, docs/protocol.md) or
 * `"reference"` (reference-compatible mode). **A file without `protocol` is read as `"corrected"`**: the
 * shipped configs in `configs/` always set it explicitly, and the two reference YAMLs (which have no such
 * key) therefore load unchanged but run under the corrected protocol unless a caller overrides `protocol`.
 *
 * Keys of the reference keep the defaults of the reference's code (not those of its YAML files), except
 * `model.device`, which defaults to `"auto"` so that a config without it runs on a machine without GPU.
 * Extension keys whose right value depends on the protocol (`detection.rule`,
 * `detection.answer_extractor`, `generation.intervention_scope`, `prompting.use_chat_template`,
 * `analysis.selection_criterion`, `analysis.random_ablation_draws`, `analysis.control_target`,
 * `analysis.event_selection`) may be left out; they are then resolved from `protocol` (see
 * {@linkcode PROTOCOL_DEFAULTS}). The resolved config always holds concrete values.
 *
 * Unknown keys anywhere are an error naming the full key path and the valid keys; ill-typed values are
 * an error naming the key path, the expected type and what was found.
 *
 * @module
 */
import { z } from "zod";
import YAML from "yaml";
import { checkOrganismOptions } from "../../lib/engine/organism.ts";

/** Which protocol a run follows: our corrected one, or the reference's choices (bug-compatible). */
export type Protocol = "corrected" | "reference";

/**
 * Defaults of the protocol-dependent extension keys.
 *
 * - `detection.rule`: trigger detection rule (`lib/detect.ts`).
 * - `detection.answer_extractor`: `"reference"` = first `Final:` etc. (docs/protocol.md §9), `"robust"` =
 *   last `\boxed{}` / `Final:` line / last number (`lib/answers.ts`).
 * - `generation.intervention_scope`: which positions a generation-time ablation touches.
 *   `"decode_only"` = the reference's: only KV-cached single-token decode steps, so the first generated
 *   token comes from the clean prefill; `"generated_only"` = every position that predicts a generated
 *   token (the last prompt position and all generated positions); `"all_positions"` = prompt and
 *   generated positions.
 * - `prompting.use_chat_template`: the reference never applies the chat template (docs/protocol.md §4).
 * - `analysis.selection_criterion`: `"signed_mean"` = the reference's most-negative mean logit delta
 *   (docs/protocol.md §13); `"specificity"` = trigger log-prob change minus the change for sampled tokens at
 *   matched non-BT positions (docs/protocol.md §13).
 * - `analysis.random_ablation_draws`: number of random layer draws for the random control.
 * - `analysis.control_target`: `"first_event_token"` = the reference's single id for every control
 *   (docs/protocol.md §11); `"matched_event_token"` = the matched BT event's own onset id.
 * - `analysis.event_selection`: `"first"` = the first `max_events` BT events in file order (docs/protocol.md
 *   §11); `"random"` = a seeded random sample across problems.
 */
export const PROTOCOL_DEFAULTS = {
  corrected: {
    rule: "corrected",
    answer_extractor: "robust",
    intervention_scope: "generated_only",
    use_chat_template: true,
    selection_criterion: "specificity",
    random_ablation_draws: 5,
    control_target: "matched_event_token",
    event_selection: "random",
  },
  reference: {
    rule: "reference",
    answer_extractor: "reference",
    intervention_scope: "decode_only",
    use_chat_template: false,
    selection_criterion: "signed_mean",
    random_ablation_draws: 1,
    control_target: "first_event_token",
    event_selection: "first",
  },
} as const;

const int = () => z.number().int();
const nonNegInt = () => z.number().int().nonnegative();
const posInt = () => z.number().int().positive();
const component = z.enum(["attn", "mlp"]);

const DTYPE_ALIASES = {
  float16: "float16",
  fp16: "float16",
  bfloat16: "bfloat16",
  bf16: "bfloat16",
  float32: "float32",
  fp32: "float32",
} as const;

const runSchema = z.strictObject({
  name: z.string().default("backtracking_state_transition"),
  seed: int().default(42),
  run_id: z.string().nullable().default(null),
  /** Unused by the reference (runs/ is hard-coded); kept for compatibility. */
  output_dir: z.string().default("runs"),
});

const modelSchema = z.strictObject({
  hf_id: z.string().default("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"),
  trust_remote_code: z.boolean().default(true),
  torch_dtype: z.enum(["float16", "bfloat16", "float32", "fp16", "bf16", "fp32"]).default("bfloat16")
    .transform((d) => DTYPE_ALIASES[d]),
  device: z.enum(["cpu", "cuda", "auto"]).default("auto"),
  attn_implementation: z.enum(["flash_attention_2", "sdpa", "eager"]).default("flash_attention_2"),
  use_cache: z.boolean().default(true),
  /** Extension: a hub id, a local checkpoint folder, or `"organism"`; null = `hf_id` from the hub. */
  source: z.string().min(1).nullable().default(null),
  /** Extension: hub revision (branch, tag or commit); null = the default branch. */
  revision: z.string().min(1).nullable().default(null),
  /** Extension: options of the built-in model organism (seed etc.), checked at load (`checkOrganismOptions`). */
  organism: z.record(z.string(), z.unknown()).default({}),
});

const datasetSchema = z.strictObject({
  name: z.string().default("gsm8k"),
  split: z.string().default("test"),
  max_examples: posInt().default(200),
  shuffle: z.boolean().default(true),
  seed: int().default(123),
  save_path: z.string().default("data/processed/gsm8k_200.jsonl"),
  /** Extension: a local GSM8K-style JSONL file; null = the hub dataset. */
  path: z.string().min(1).nullable().default(null),
});

const variantSchema = z.strictObject({
  name: z.string().min(1),
  think_open: z.string().default(""),
  think_close: z.string().default(""),
});

const promptingSchema = z.strictObject({
  system_prompt: z.string().default("You are a helpful assistant."),
  template: z.string().default(""),
  formatting_variants: z.array(variantSchema).default([]),
  /** Extension: apply the model's chat template; default from `protocol`. */
  use_chat_template: z.boolean().optional(),
});

const generationSchema = z.strictObject({
  num_samples_per_prompt: posInt().default(6),
  max_new_tokens: posInt().default(512),
  temperature: z.number().nonnegative().default(0.7),
  top_p: z.number().gt(0).lte(1).default(0.95),
  do_sample: z.boolean().default(true),
  /** Unused by the reference. */
  batch_size: posInt().default(4),
  /** Extension: top-k filter; 50 is what HF applies implicitly; 0 = off. */
  top_k: nonNegInt().default(50),
  /** Extension: positions touched by generation-time ablation; default from `protocol`. */
  intervention_scope: z.enum(["all_positions", "generated_only", "decode_only"]).optional(),
});

const detectionSchema = z.strictObject({
  triggers_strict: z.array(z.string().min(1)).default(["Wait", "Actually", "Hold on"]),
  triggers_relaxed: z.array(z.string().min(1)).default([]),
  onset_priority: z.array(z.string().min(1)).default(["Wait", "Actually", "Hold on"]),
  answer_regex: z.string().nullable().default(null),
  /** Extension: detection rule; default from `protocol`. */
  rule: z.enum(["reference", "corrected"]).optional(),
  /** Extension: answer extractor; default from `protocol`. */
  answer_extractor: z.enum(["reference", "robust"]).optional(),
});

const analysisSchema = z.strictObject({
  max_events: posInt().default(120),
  /** Unused by the reference. */
  control_samples: posInt().default(120),
  logit_lens_token: z.string().default("Wait"),
  ablation_components: z.array(component).default(["attn", "mlp"]),
  ablation_layers: z.union([z.literal("all"), z.array(nonNegInt())]).default("all"),
  topk_layers_for_generation: posInt().default(6),
  /** Extension: number of random-ablation layer draws; default from `protocol`. */
  random_ablation_draws: posInt().optional(),
  /** Extension: layer selection criterion; default from `protocol`. */
  selection_criterion: z.enum(["signed_mean", "specificity"]).optional(),
  /**
   * Extension: with `selection_criterion: specificity`, keep a component only when its specificity CI
   * lies entirely below −this many nats (docs/protocol.md §13); 0 = "the CI excludes zero".
   */
  min_specificity_effect: z.number().nonnegative().default(0.1),
  /** Extension: logit-lens control target token; default from `protocol`. */
  control_target: z.enum(["first_event_token", "matched_event_token"]).optional(),
  /** Extension: which BT events the lens / scan use; default from `protocol`. */
  event_selection: z.enum(["first", "random"]).optional(),
  /**
   * Extension: restrict the events of the lens, scan and Phase-2 analyses to one onset type
   * (`revision`, `verification`, `other`; docs/protocol.md §23); `all` (default) = every strict event.
   */
  onset_type: z.enum(["all", "revision", "verification", "other"]).default("all"),
});

const ablationGenerationSchema = z.strictObject({
  /** Unused by the reference. */
  enabled: z.boolean().default(true),
  mode: z.enum(["zero", "scale"]).default("scale"),
  scale: z.number().default(0.0),
  random_control_seed: int().default(999),
});

const reportSchema = z.strictObject({
  make_report: z.boolean().default(true),
  report_path: z.string().default("reports/backtracking_state_transition_report.md"),
});

const statsSchema = z.strictObject({
  /** Bootstrap resamples for every CI. */
  bootstrap_samples: posInt().default(2000),
  /** Two-sided confidence level of every CI. */
  ci_level: z.number().gt(0).lt(1).default(0.95),
  /** Bootstrap RNG seed; null = `run.seed`. */
  seed: int().nullable().default(null),
});

const subsetEntry = z.tuple([component, nonNegInt()]);

const phase2Schema = z.strictObject({
  max_examples: posInt().default(120),
  num_samples_per_prompt: posInt().default(4),
  compute_baseline_only_metrics: z.boolean().default(true),
  decode_only: z.boolean().default(true),
  hook_debug: z.boolean().default(true),
  phase1_run_id: z.string().nullable().default(null),
  subset_sweep: z.strictObject({
    enabled: z.boolean().default(true),
    variant: z.string().default("baseline_think_newline"),
    subsets: z.record(z.string(), z.array(subsetEntry)).default({}),
  }).prefault({}),
  scale_sweep: z.strictObject({
    enabled: z.boolean().default(true),
    variant: z.string().default("baseline_think_newline"),
    subset_name: z.string().default("mlp_late_cluster"),
    scales: z.array(z.number()).default([0.0, 0.25, 0.5, 0.75, 0.9]),
  }).prefault({}),
  continuation_ablation: z.strictObject({
    enabled: z.boolean().default(true),
    variant: z.string().default("baseline_think_newline"),
    max_events: posInt().default(150),
    subset_name: z.string().default("mlp_27_only"),
    scales: z.array(z.number()).default([0.0, 0.5, 0.9]),
  }).prefault({}),
  /**
   * Extension: steering along the backtracking direction (`phase2-steering`). Runs when `enabled`
   * (independently of the sweeps).
   */
  steering: z.strictObject({
    enabled: z.boolean().default(true),
    /** Multiples of the direction; 0 (= the Phase-1 baseline) is always added. */
    coefficients: z.array(z.number()).min(1).default([-1, -0.5, 0.5, 1]),
    /** Block to steer at; null = the scan's top MLP, else its top attention layer, else the last. */
    layer: nonNegInt().nullable().default(null),
    /**
     * `"mean_difference"`: pre-onset minus matched-control residual means (on the organism also its
     * planted wait direction as a comparison); `"planted"`: only the organism's planted wait direction.
     */
    direction: z.enum(["mean_difference", "planted"]).default("mean_difference"),
    /** Problems steered; null = `phase2.max_examples` (as the sweeps). */
    max_examples: posInt().nullable().default(null),
    /** Samples per problem; null = `phase2.num_samples_per_prompt` (as the sweeps). */
    num_samples_per_prompt: posInt().nullable().default(null),
  }).prefault({}),
  /** Extension: activation patching at the pre-onset position (`phase2-patching`). Runs when `enabled`. */
  patching: z.strictObject({
    enabled: z.boolean().default(true),
    components: z.array(component).min(1).default(["attn", "mlp"]),
    layers: z.union([z.literal("all"), z.array(nonNegInt()).min(1)]).default("all"),
    /** Most event/control pairs (of the lens/scan items); null = `continuation_ablation.max_events`. */
    max_events: posInt().nullable().default(null),
  }).prefault({}),
  report: z.strictObject({
    report_path: z.string().default("reports/backtracking_phase2_report.md"),
  }).prefault({}),
});

/** The schema before protocol-dependent defaults are resolved. */
const rawConfigSchema = z.strictObject({
  protocol: z.enum(["corrected", "reference"]).default("corrected"),
  run: runSchema.prefault({}),
  model: modelSchema.prefault({}),
  dataset: datasetSchema.prefault({}),
  prompting: promptingSchema.prefault({}),
  generation: generationSchema.prefault({}),
  detection: detectionSchema.prefault({}),
  analysis: analysisSchema.prefault({}),
  ablation_generation: ablationGenerationSchema.prefault({}),
  report: reportSchema.prefault({}),
  stats: statsSchema.prefault({}),
  phase2: phase2Schema.prefault({}),
});

type RawConfig = z.output<typeof rawConfigSchema>;

function resolve(raw: RawConfig) {
  const d = PROTOCOL_DEFAULTS[raw.protocol];
  return {
    protocol: raw.protocol,
    run: raw.run,
    model: { ...raw.model, source: raw.model.source ?? raw.model.hf_id },
    dataset: raw.dataset,
    prompting: {
      ...raw.prompting,
      use_chat_template: raw.prompting.use_chat_template ?? d.use_chat_template,
    },
    generation: {
      ...raw.generation,
      intervention_scope: raw.generation.intervention_scope ?? d.intervention_scope,
    },
    detection: {
      ...raw.detection,
      rule: raw.detection.rule ?? d.rule,
      answer_extractor: raw.detection.answer_extractor ?? d.answer_extractor,
    },
    analysis: {
      ...raw.analysis,
      random_ablation_draws: raw.analysis.random_ablation_draws ?? d.random_ablation_draws,
      selection_criterion: raw.analysis.selection_criterion ?? d.selection_criterion,
      control_target: raw.analysis.control_target ?? d.control_target,
      event_selection: raw.analysis.event_selection ?? d.event_selection,
    },
    ablation_generation: raw.ablation_generation,
    report: raw.report,
    stats: { ...raw.stats, seed: raw.stats.seed ?? raw.run.seed },
    phase2: raw.phase2,
  };
}

type DeepReadonly<T> = T extends (infer E)[] ? readonly DeepReadonly<E>[]
  : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
  : T;

/** A validated, fully resolved, deeply frozen experiment config. */
export type Config = DeepReadonly<ReturnType<typeof resolve>>;

/** Error for an invalid config; `issues` holds one line per problem, each naming its key path. */
export class ConfigError extends Error {
  /** One message per problem, each starting with the key path. */
  readonly issues: readonly string[];
  constructor(source: string, issues: readonly string[], options?: ErrorOptions) {
    super(`Invalid config ${source}:\n  ${issues.join("\n  ")}`, options);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

function pathString(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : String(p))).join(".").replaceAll(".[", "[");
}

function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "number" || typeof v === "boolean") return `${typeof v} ${String(v)}`;
  return typeof v;
}

// deno-lint-ignore no-explicit-any
type AnyDef = any;

/** Unwrap defaults/optionals/transforms down to the structural schema. */
function unwrap(schema: z.ZodType): z.ZodType {
  let s: AnyDef = schema;
  for (let i = 0; i < 20; i++) {
    const def = s._zod.def;
    if (def.innerType) s = def.innerType;
    else if (def.type === "pipe") s = def.in;
    else break;
  }
  return s as z.ZodType;
}

/** Valid keys of the object schema found at `path` (string segments descend, numbers index arrays). */
function validKeysAt(path: readonly PropertyKey[]): string[] | undefined {
  let s: AnyDef = unwrap(rawConfigSchema);
  for (const p of path) {
    const def = s._zod.def;
    if (def.type === "object" && typeof p === "string") s = def.shape[p];
    else if (def.type === "array") s = def.element;
    else if (def.type === "record") s = def.valueType;
    else if (def.type === "tuple" && typeof p === "number") s = def.items[p];
    else return undefined;
    if (s === undefined) return undefined;
    s = unwrap(s);
  }
  return s._zod.def.type === "object" ? Object.keys(s._zod.def.shape) : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

function formatIssue(issue: z.core.$ZodIssue, input: unknown): string[] {
  const where = pathString(issue.path);
  switch (issue.code) {
    case "unrecognized_keys": {
      const valid = validKeysAt(issue.path) ?? [];
      return issue.keys.map((k) => {
        const full = where ? `${where}.${k}` : k;
        const near = valid.filter((v) => editDistance(v, k) <= Math.max(2, Math.floor(k.length / 4)));
        const hint = near.length > 0 ? ` (did you mean ${near.map((n) => `"${n}"`).join(" or ")}?)` : "";
        return `${full}: unknown key${hint}; valid keys ${where ? `under ${where}` : "at top level"}: ${
          valid.join(", ")
        }`;
      });
    }
    case "invalid_type":
      return [
        `${where || "(root)"}: expected ${issue.expected}, got ${describe(valueAt(input, issue.path))}`,
      ];
    case "invalid_value":
      return [
        `${where}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, got ${
          describe(valueAt(input, issue.path))
        }`,
      ];
    case "invalid_union":
      return [`${where}: ${issue.message}, got ${describe(valueAt(input, issue.path))}`];
    default:
      return [`${where || "(root)"}: ${issue.message}, got ${describe(valueAt(input, issue.path))}`];
  }
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/**
 * Validate a plain object (e.g. parsed YAML) as a config and resolve protocol-dependent defaults.
 *
 * @param obj The parsed document (`null`/`undefined` = all defaults).
 * @param source Where it came from, used in error messages (a file path or a label).
 * @returns The resolved, deeply frozen config.
 * @throws {ConfigError} on unknown keys (full key path + valid keys) or ill-typed values (key path +
 *   expected type + what was found), `temperature: 0` with `do_sample: true`, and unknown or invalid
 *   `model.organism` options (named `model.organism.<key>`).
 * @example
 * ```ts
 * const c = parseConfig({ protocol: "reference", generation: { temperature: 0.6 } }, "inline");
 * c.detection.rule; // "reference"
 * ```
 */
export function parseConfig(obj: unknown, source: string): Config {
  const input = obj ?? {};
  const result = rawConfigSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(source, result.error.issues.flatMap((i) => formatIssue(i, input)));
  }
  const raw = result.data;
  if (raw.phase2.steering.direction === "planted" && (raw.model.source ?? raw.model.hf_id) !== "organism") {
    throw new ConfigError(source, [
      `phase2.steering.direction: "planted" needs the model organism (model.source: organism), got ` +
      `model.source ${describe(raw.model.source ?? raw.model.hf_id)}`,
    ]);
  }
  const issues: string[] = [];
  if (raw.generation.do_sample && raw.generation.temperature === 0) {
    issues.push(
      `generation.temperature: 0 with generation.do_sample: true; sampling needs a temperature > 0 ` +
        `(set generation.do_sample: false for greedy decoding, or a positive temperature)`,
    );
  }
  try {
    checkOrganismOptions(raw.model.organism);
  } catch (e) {
    const message = (e as Error).message;
    const key = /unknown option "([^"]+)"/.exec(message)?.[1] ?? /^buildOrganism: (\w+) /.exec(message)?.[1];
    issues.push(
      `model.organism${key ? `.${key}` : ""}: ${message.replace(/^buildOrganism: /, "")}`,
    );
  }
  if (issues.length > 0) throw new ConfigError(source, issues);
  return deepFreeze(resolve(raw));
}

/**
 * Read and validate a YAML config file.
 *
 * @param path Path of the YAML file.
 * @returns The resolved, deeply frozen config.
 * @throws {ConfigError} naming the file, with line/column for YAML syntax errors and key paths for
 *   schema errors; a `Deno.errors.NotFound` (wrapped) if the file is missing.
 * @example
 * ```ts
 * const c = await loadConfig("configs/reference.yaml");
 * ```
 */
export async function loadConfig(path: string | URL): Promise<Config> {
  const source = path instanceof URL ? path.pathname : path;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(source, [`cannot read file: ${(e as Error).message}`], { cause: e });
  }
  return parseConfigYaml(text, source);
}

/**
 * Parse and validate YAML config text.
 *
 * @param text YAML text.
 * @param source File name or label for error messages.
 * @throws {ConfigError} on YAML syntax errors (with line and column) or schema errors.
 */
export function parseConfigYaml(text: string, source: string): Config {
  const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ""}${e.message.split("\n")[0]}`;
      }),
    );
  }
  return parseConfig(doc.toJS(), source);
}

/**
 * The resolved config as YAML, in schema key order (not input order), so equal configs give equal
 * text. Unlike the reference's `config_resolved.yaml`, every section is written, `phase2` included.
 * Parsing the text back gives an equal config.
 *
 * @param config A resolved config.
 * @returns YAML text ending with a newline.
 */
export function resolvedConfigYaml(config: Config): string {
  const ordered = orderLike(config, rawConfigSchema);
  return YAML.stringify(ordered, { lineWidth: 0, indent: 2 });
}

function orderLike(value: unknown, schema: z.ZodType): unknown {
  const def: AnyDef = unwrap(schema)._zod.def;
  if (Array.isArray(value)) {
    const el = def.type === "array" ? def.element : undefined;
    return value.map((v, i) => {
      const s = el ?? (def.type === "tuple" ? def.items[i] : undefined);
      return s ? orderLike(v, s) : v;
    });
  }
  if (value !== null && typeof value === "object") {
    const rec = value as Record<string, unknown>;
    if (def.type === "object") {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(def.shape)) if (k in rec) out[k] = orderLike(rec[k], def.shape[k]);
      return out;
    }
    if (def.type === "record") {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(rec)) out[k] = orderLike(rec[k], def.valueType);
      return out;
    }
    return structuredClone(rec);
  }
  return value;
}
