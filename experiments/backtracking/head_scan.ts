/**
 * The head-level scan at the pre-onset positions: which attention heads (and MLPs) write the trigger, what
 * the top heads read, and whether ablating one head moves the trigger (docs/protocol.md §24: the layer
 * scan of §13 extended from layers to heads).
 *
 * Three stages, each against the same matched controls as the layer scan (`analysis_items.ts`):
 *
 * 1. **Direct logit attribution** (cheap: one forward pass per batch of positions, every component at
 *    once): at each event, the direct contribution of the embedding, every head and every MLP to the
 *    onset token's logit (`lib/interp/direct_logit_attribution.ts`); at each control, to the token actually
 *    sampled there (and, for reference, to the event's trigger). The *DLA specificity* of a component is
 *    its contribution at the event minus the mean over the event's controls, the analogue of the layer
 *    scan's specificity (Δ trigger at the event − Δ sampled token at the control): a component that
 *    writes every token alike (like the organism's decoy MLP 0) cancels. Components are ranked by it,
 *    with problem-clustered bootstrap CIs.
 * 2. **Single-head ablation** of the top heads (zero on `blocks.{l}.attn.hook_z`, that head only, at the
 *    pre-onset position; `scanPositions` with head conditions): the causal check, summarised exactly as
 *    the layer scan (`summarizeScan`: Δ log-prob of the trigger, control Δ, specificity, CIs).
 * 3. **Attention patterns** of the top heads at the pre-onset position (`blocks.{l}.attn.hook_pattern`
 *    with that position as the only query, read from the DLA passes: no further forward pass): the
 *    attention mass on each {@link TokenClass} of the earlier tokens, at events and at controls, and the
 *    paired difference with CIs.
 *
 * Everything is broken down by group: `all`, `trigger=<phrase>` per trigger word and, when the events
 * table has an `onset_type` column, `onset_type=<type>`.
 *
 * @module
 */

import type { HookedModel } from "../../lib/engine/hooked_model.ts";
import {
  attributionEntries,
  directLogitAttribution,
  type DlaRow,
} from "../../lib/interp/direct_logit_attribution.ts";
import {
  type EffectRow,
  type ScanPosition,
  scanPositions,
  type ScanRow,
  summarizeScan,
} from "../../lib/interp/ablation_scan.ts";
import { clusteredMeanCI } from "../../lib/stats/stats.ts";
import type { BacktrackEvent, ControlPosition } from "./event_selection.ts";

/** The model the head scan needs: forward passes, the config and the weights (for the unembedding). */
export type HeadScanModel = Pick<HookedModel, "forward" | "config" | "checkpoint">;

/** Classes of the earlier tokens a head can attend to (each key position has exactly one). */
export const TOKEN_CLASSES = [
  "equals",
  "number",
  "operator",
  "question",
  "previous_sentence",
  "other",
] as const;

/**
 * A key position's class, by priority: `equals` (the token is `=`), `number` (digits, e.g. `7`, ` 12`,
 * `3.5`), `operator` (`+ - * / × ÷ − ^ %`), then by place: `question` (any other prompt token: the
 * question and its template), `previous_sentence` (completion tokens after the last sentence end before
 * the query, the query itself included), `other` (earlier completion tokens).
 */
export type TokenClass = typeof TOKEN_CLASSES[number];

const NUMBER_RE = /^\d+([.,]\d+)*$/;
const OPERATOR_RE = /^[-+*/×÷−^%]$/;
const BOUNDARY_RE = /([.?!]|\n)\s*$/;

/**
 * The class of every key position `0..queryPos` for a query at `queryPos`.
 *
 * @param tokenIds the trace (prompt then completion).
 * @param promptTokens where the completion starts.
 * @param queryPos the query position (the pre-onset position).
 * @param text the text of one token id (e.g. `tokenizer.decodeEach([id])[0]`; cached by the caller).
 * @returns `queryPos + 1` classes.
 * @throws {RangeError} when `queryPos` is outside the trace.
 */
export function classifyKeys(
  tokenIds: readonly number[],
  promptTokens: number,
  queryPos: number,
  text: (id: number) => string,
): TokenClass[] {
  if (!Number.isInteger(queryPos) || queryPos < 0 || queryPos >= tokenIds.length) {
    throw new RangeError(`classifyKeys: query position ${queryPos} is outside the ${tokenIds.length} tokens`);
  }
  let lastBoundary = promptTokens - 1;
  for (let k = queryPos - 1; k >= promptTokens; k--) {
    if (BOUNDARY_RE.test(text(tokenIds[k]!))) {
      lastBoundary = k;
      break;
    }
  }
  const out: TokenClass[] = new Array(queryPos + 1);
  for (let k = 0; k <= queryPos; k++) {
    const t = text(tokenIds[k]!).trim();
    if (t === "=") out[k] = "equals";
    else if (NUMBER_RE.test(t)) out[k] = "number";
    else if (OPERATOR_RE.test(t)) out[k] = "operator";
    else if (k < promptTokens) out[k] = "question";
    else if (k > lastBoundary) out[k] = "previous_sentence";
    else out[k] = "other";
  }
  return out;
}

/**
 * Attention mass per token class of one query: `mass[c] = Σ_{k: class[k] = TOKEN_CLASSES[c]} p[k]`.
 *
 * @param probs the query's probabilities over keys `0..n-1` (keys after the query are 0).
 * @param classes the classes of keys `0..queryPos` ({@link classifyKeys}).
 * @throws {RangeError} when a key after the query has non-zero probability (not a causal pattern).
 */
export function classMass(probs: ArrayLike<number>, classes: readonly TokenClass[]): number[] {
  const mass = TOKEN_CLASSES.map(() => 0);
  for (let k = 0; k < probs.length; k++) {
    const p = probs[k]!;
    if (k >= classes.length) {
      if (p > 1e-6) throw new RangeError(`classMass: key ${k} after the query has probability ${p}`);
      continue;
    }
    mass[TOKEN_CLASSES.indexOf(classes[k]!)]! += p;
  }
  return mass;
}

/** The groups an event belongs to: `all`, `trigger=<phrase>`, and `onset_type=<type>` when known. */
export function eventGroups(trigger: string, onsetType?: string | null): string[] {
  return ["all", `trigger=${trigger}`, ...(onsetType ? [`onset_type=${onsetType}`] : [])];
}

/** A component of the DLA ranking. */
export interface DlaComponent {
  /** TransformerLens label: `embed`, `L{l}H{h}`, `{l}_mlp_out`, `bias`. */
  readonly name: string;
  readonly kind: "embed" | "head" | "mlp" | "bias";
  /** -1 for `embed` and `bias`. */
  readonly layer: number;
  /** -1 unless a head. */
  readonly head: number;
}

/** One (group, component) row of the DLA summary. */
export interface DlaSummaryRow extends DlaComponent {
  readonly group: string;
  /** 1 = the largest DLA specificity in its group. */
  readonly rank: number;
  readonly n_events: number;
  /** Mean direct contribution to the onset token's logit at the events, with CI. */
  readonly event_mean: number;
  readonly event_lower: number;
  readonly event_upper: number;
  readonly n_controls: number;
  /** Mean direct contribution to the sampled token's logit at the controls, with CI. */
  readonly control_mean: number;
  readonly control_lower: number;
  readonly control_upper: number;
  /** Mean direct contribution to the event's trigger token at the controls (no CI). */
  readonly control_trigger_mean: number;
  /** Events with at least one control. */
  readonly n_pairs: number;
  /** Mean over paired events of (event − mean of its controls), with CI. */
  readonly specificity_mean: number;
  readonly specificity_lower: number;
  readonly specificity_upper: number;
  readonly level: number;
}

/** One (group, head) row of the single-head ablation: the layer scan's statistics. */
export interface HeadAblationRow extends Omit<ScanRow, "component"> {
  readonly group: string;
  readonly head: number;
}

/** One (group, head, token class) row of the attention summary. */
export interface HeadAttentionRow {
  readonly group: string;
  readonly layer: number;
  readonly head: number;
  readonly token_class: TokenClass;
  readonly n_events: number;
  /** Mean attention mass on the class at the events' pre-onset positions, with CI. */
  readonly event_mean: number;
  readonly event_lower: number;
  readonly event_upper: number;
  readonly n_controls: number;
  readonly control_mean: number;
  readonly control_lower: number;
  readonly control_upper: number;
  readonly n_pairs: number;
  /** Mean over paired events of (event − mean of its controls), with CI. */
  readonly diff_mean: number;
  readonly diff_lower: number;
  readonly diff_upper: number;
  readonly level: number;
}

/** Forward passes and wall time of one stage. */
export interface StageCost {
  /** Calls of `model.forward`. */
  readonly forward_calls: number;
  /** Rows over all calls (a batched call of 8 positions counts 8). */
  readonly forward_rows: number;
  readonly seconds: number;
}

/** Options of {@link headScan}. */
export interface HeadScanOptions {
  /** Heads to ablate and whose patterns to summarise, the top by DLA specificity in `all` (default 4). */
  readonly topHeads?: number;
  /** Zero-ablation by default (0). */
  readonly scale?: number;
  /** Positions per DLA / pattern forward pass (default 8). */
  readonly batchSize?: number;
  /** Bootstrap resamples (default 2000), seed (0), level (0.95). */
  readonly bootstrap?: number;
  readonly seed?: number;
  readonly level?: number;
  /** `onset_type` of each event (same order), when the events table has one. */
  readonly onsetTypes?: readonly (string | null | undefined)[];
  /** The text of a token id, for the token classes (default: none → no pattern summary). */
  readonly tokenText?: (id: number) => string;
  readonly onProgress?: (stage: "dla" | "ablation", done: number, total: number) => void;
}

/** Result of {@link headScan}. */
export interface HeadScanResult {
  /** The DLA ranking per group (rank 1 first within a group; groups in order of first appearance). */
  readonly dla: DlaSummaryRow[];
  /** The heads ablated and summarised: `all`'s top heads by DLA specificity, best first. */
  readonly topHeads: { readonly layer: number; readonly head: number }[];
  readonly ablation: HeadAblationRow[];
  readonly attention: HeadAttentionRow[];
  readonly groups: string[];
  /** Per stage; `patterns` has no forward pass of its own (read from the DLA passes): its seconds summarise. */
  readonly cost: { readonly dla: StageCost; readonly ablation: StageCost; readonly patterns: StageCost };
  readonly n_events: number;
  readonly n_controls: number;
}

/** A model wrapper that counts forward calls and rows. */
function counting(model: HeadScanModel): { model: HeadScanModel; calls: () => number; rows: () => number } {
  let calls = 0, rows = 0;
  const wrapped: HeadScanModel = {
    config: model.config,
    checkpoint: model.checkpoint,
    forward: ((
      tokens: Parameters<HeadScanModel["forward"]>[0],
      options?: Parameters<HeadScanModel["forward"]>[1],
    ) => {
      calls++;
      rows += tokens.length;
      return model.forward(tokens, options);
    }) as HeadScanModel["forward"],
  };
  return { model: wrapped, calls: () => calls, rows: () => rows };
}

/** The components of an attribution, in `attributionEntries` order. */
function dlaComponents(numLayers: number, numHeads: number): DlaComponent[] {
  const zero = { embed: 0, heads: new Float64Array(numLayers * numHeads), mlp: new Float64Array(numLayers) };
  return attributionEntries({ ...zero, bias: 0, total: 0 }, numHeads).map((e) => ({
    name: e.name,
    kind: e.kind,
    layer: e.layer ?? -1,
    head: e.head ?? -1,
  }));
}

function values(row: DlaRow, which: "target" | "trigger", numHeads: number): number[] {
  const t = attributionEntries(row.target, numHeads).map((e) => e.value);
  if (which === "target") return t;
  // The trigger's split = target − (target − trigger).
  const d = attributionEntries(row.diff!, numHeads).map((e) => e.value);
  return t.map((v, i) => v - d[i]!);
}

interface Paired {
  readonly events: { cluster: number; value: number; event: number }[];
  readonly controls: { cluster: number; value: number; event: number }[];
}

function pairedStats(p: Paired, boot: { samples: number; seed: number; level: number }) {
  const ci = (obs: { cluster: number; value: number }[]) =>
    obs.length === 0 ? { estimate: NaN, lower: NaN, upper: NaN } : clusteredMeanCI(obs, boot);
  const byEvent = new Map<number, number[]>();
  for (const c of p.controls) {
    const l = byEvent.get(c.event);
    if (l) l.push(c.value);
    else byEvent.set(c.event, [c.value]);
  }
  const diff = p.events.filter((e) => byEvent.has(e.event)).map((e) => {
    const cs = byEvent.get(e.event)!;
    return { cluster: e.cluster, value: e.value - cs.reduce((a, b) => a + b, 0) / cs.length };
  });
  return { ev: ci(p.events), ct: ci(p.controls), diff: ci(diff), nPairs: diff.length };
}

/**
 * The head-level scan (DLA ranking, single-head ablation of the top heads, their attention by token
 * class), broken down by group. See the module documentation.
 *
 * @param model the model (a {@link HookedModel}).
 * @param events the events (target: `onsetTokenId` at `predPos`; `trigger` names the group).
 * @param controls their matched controls (`matchedTo` indexes `events`); controls without a sampled token
 *   after `predPos` are skipped.
 * @throws {RangeError} on a control whose `matchedTo` is not an index of `events`, an `onsetTypes` of the
 *   wrong length, or `topHeads` < 1.
 */
export async function headScan(
  model: HeadScanModel,
  events: readonly BacktrackEvent[],
  controls: readonly ControlPosition[],
  options: HeadScanOptions = {},
): Promise<HeadScanResult> {
  const { numLayers: L, numHeads: nh } = model.config;
  const topK = options.topHeads ?? 4;
  if (!Number.isInteger(topK) || topK < 1) {
    throw new RangeError(`headScan: topHeads must be a positive integer, got ${topK}`);
  }
  if (options.onsetTypes && options.onsetTypes.length !== events.length) {
    throw new RangeError(
      `headScan: ${options.onsetTypes.length} onset types for ${events.length} events (one per event)`,
    );
  }
  controls.forEach((c, i) => {
    if (!Number.isInteger(c.matchedTo) || c.matchedTo < 0 || c.matchedTo >= events.length) {
      throw new RangeError(`headScan: control ${i} has matchedTo ${c.matchedTo}, not an event index`);
    }
  });
  const boot = { samples: options.bootstrap ?? 2000, seed: options.seed ?? 0, level: options.level ?? 0.95 };
  const batchSize = options.batchSize ?? 8;
  const usable = controls.filter((c) => c.predPos + 1 < c.tokenIds.length);
  const eventGroupsOf = events.map((e, i) => eventGroups(e.trigger, options.onsetTypes?.[i]));
  const groups = [...new Set(eventGroupsOf.flat())];

  // 1. DLA: events (onset token) and controls (sampled token, contrast = the trigger) in one batched pass;
  // the same passes capture every head's pattern at the pre-onset position (summed by class for stage 3).
  const items = [...events, ...usable];
  const text = options.tokenText;
  const masses: Float64Array[] = new Array(items.length); // [item][(layer * nh + head) * classes + class]
  const C = TOKEN_CLASSES.length;
  const dlaCount = counting(model);
  let t0 = performance.now();
  const dlaRows = await directLogitAttribution(dlaCount.model, [
    ...events.map((e) => ({ tokenIds: e.tokenIds, predPos: e.predPos, targetId: e.onsetTokenId })),
    ...usable.map((c) => ({
      tokenIds: c.tokenIds,
      predPos: c.predPos,
      targetId: c.tokenIds[c.predPos + 1]!,
      contrastId: c.targetId,
    })),
  ], {
    batchSize,
    ...(options.onProgress ? { onProgress: (d, t) => options.onProgress!("dla", d, t) } : {}),
    ...(text
      ? {
        onCaptures: (batch, cap) => {
          const heads = cap.heads!;
          batch.forEach((i, b) => {
            const it = items[i]!;
            const classes = classifyKeys(it.tokenIds, it.promptTokens, it.predPos, text);
            const n = it.predPos + 1;
            const m = new Float64Array(L * nh * C);
            for (let l = 0; l < L; l++) {
              const p = heads.pattern[l]![b]!; // [head, 1 query, n keys]
              for (let h = 0; h < nh; h++) {
                m.set(classMass(p.subarray(h * n, (h + 1) * n), classes), (l * nh + h) * C);
              }
            }
            masses[i] = m;
          });
        },
      }
      : {}),
  });
  const dlaCost = {
    forward_calls: dlaCount.calls(),
    forward_rows: dlaCount.rows(),
    seconds: (performance.now() - t0) / 1000,
  };
  const comps = dlaComponents(L, nh);
  const evVals = events.map((_, i) => values(dlaRows[i]!, "target", nh));
  const ctVals = usable.map((_, u) => values(dlaRows[events.length + u]!, "target", nh));
  const ctTrig = usable.map((_, u) => values(dlaRows[events.length + u]!, "trigger", nh));
  const inGroup = (g: string, event: number) => eventGroupsOf[event]!.includes(g);
  const dla: DlaSummaryRow[] = [];
  for (const g of groups) {
    const evIdx = events.map((_, i) => i).filter((i) => inGroup(g, i));
    const ctIdx = usable.map((_, u) => u).filter((u) => inGroup(g, usable[u]!.matchedTo));
    const rows = comps.map((comp, k) => {
      const s = pairedStats({
        events: evIdx.map((i) => ({ cluster: events[i]!.exampleId, value: evVals[i]![k]!, event: i })),
        controls: ctIdx.map((u) => ({
          cluster: usable[u]!.exampleId,
          value: ctVals[u]![k]!,
          event: usable[u]!.matchedTo,
        })),
      }, boot);
      const trig = ctIdx.map((u) => ctTrig[u]![k]!);
      return {
        group: g,
        ...comp,
        rank: 0,
        n_events: evIdx.length,
        event_mean: s.ev.estimate,
        event_lower: s.ev.lower,
        event_upper: s.ev.upper,
        n_controls: ctIdx.length,
        control_mean: s.ct.estimate,
        control_lower: s.ct.lower,
        control_upper: s.ct.upper,
        control_trigger_mean: trig.length ? trig.reduce((a, b) => a + b, 0) / trig.length : NaN,
        n_pairs: s.nPairs,
        specificity_mean: s.diff.estimate,
        specificity_lower: s.diff.lower,
        specificity_upper: s.diff.upper,
        level: boot.level,
      };
    });
    // Rank by specificity (NaN last; without controls, by the event mean).
    const key = (r: DlaSummaryRow) =>
      Number.isFinite(r.specificity_mean)
        ? r.specificity_mean
        : Number.isFinite(r.event_mean)
        ? r.event_mean
        : -Infinity;
    rows.sort((a, b) => key(b) - key(a));
    rows.forEach((r, i) => dla.push({ ...r, rank: i + 1 }));
  }
  const topHeads = dla.filter((r) => r.group === "all" && r.kind === "head").slice(0, Math.min(topK, L * nh))
    .map((r) => ({ layer: r.layer, head: r.head }));

  // 2. Single-head zero-ablation of the top heads (the layer scan's engine, head conditions).
  const ablCount = counting(model);
  t0 = performance.now();
  const positions: ScanPosition[] = [
    ...events.map((e) => ({ tokenIds: e.tokenIds, predPos: e.predPos, targetIds: [e.onsetTokenId] })),
    ...usable.map((c) => ({
      tokenIds: c.tokenIds,
      predPos: c.predPos,
      targetIds: [c.tokenIds[c.predPos + 1]!, c.targetId],
    })),
  ];
  const scores = await scanPositions(ablCount.model, positions, {
    conditions: topHeads.map((h) => ({ layer: h.layer, component: "attn" as const, head: h.head })),
    scale: options.scale ?? 0,
    prefillBatch: 16,
    ...(options.onProgress ? { onProgress: (d, t) => options.onProgress!("ablation", d, t) } : {}),
  });
  const ablCost = {
    forward_calls: ablCount.calls(),
    forward_rows: ablCount.rows(),
    seconds: (performance.now() - t0) / 1000,
  };
  const effect = (h: number, kind: "event" | "control", index: number, event: number): EffectRow => {
    const isEvent = kind === "event";
    const tr = isEvent ? events[index]! : usable[index]!;
    const s = scores[isEvent ? index : events.length + index]!;
    const t = s.clean[0]!, g = s.clean[s.clean.length - 1]!;
    const a = s.ablated[h]!;
    return {
      kind,
      index,
      event,
      example_id: tr.exampleId,
      sample_id: tr.sampleId,
      pred_pos: tr.predPos,
      layer: topHeads[h]!.layer,
      component: "attn",
      target_id: isEvent ? events[index]!.onsetTokenId : usable[index]!.tokenIds[tr.predPos + 1]!,
      clean_logit: t.logit,
      clean_logprob: t.logprob,
      delta_logit: a[0]!.logit - t.logit,
      delta_logprob: a[0]!.logprob - t.logprob,
      trigger_id: isEvent ? events[index]!.onsetTokenId : usable[index]!.targetId,
      trigger_delta_logprob: a[a.length - 1]!.logprob - g.logprob,
    };
  };
  const ablation: HeadAblationRow[] = [];
  for (const g of groups) {
    for (let h = 0; h < topHeads.length; h++) {
      const rows = [
        ...events.map((_, i) => i).filter((i) => inGroup(g, i)).map((i) => effect(h, "event", i, i)),
        ...usable.map((c, u) => ({ c, u })).filter(({ c }) => inGroup(g, c.matchedTo))
          .map(({ c, u }) => effect(h, "control", u, c.matchedTo)),
      ];
      const [row] = summarizeScan(rows, { bootstrap: boot.samples, seed: boot.seed, level: boot.level });
      const { component: _c, ...rest } = row!;
      ablation.push({ group: g, ...rest, head: topHeads[h]!.head });
    }
  }

  // 3. Attention of the top heads at the pre-onset position by token class (captured in the DLA passes).
  t0 = performance.now();
  const attention: HeadAttentionRow[] = [];
  if (text) {
    const mass = (item: number, h: number, c: number) =>
      masses[item]![(topHeads[h]!.layer * nh + topHeads[h]!.head) * C + c]!;
    for (const g of groups) {
      const evIdx = events.map((_, i) => i).filter((i) => inGroup(g, i));
      const ctIdx = usable.map((_, u) => u).filter((u) => inGroup(g, usable[u]!.matchedTo));
      topHeads.forEach(({ layer, head }, h) => {
        TOKEN_CLASSES.forEach((cls, c) => {
          const s = pairedStats({
            events: evIdx.map((i) => ({
              cluster: events[i]!.exampleId,
              value: mass(i, h, c),
              event: i,
            })),
            controls: ctIdx.map((u) => ({
              cluster: usable[u]!.exampleId,
              value: mass(events.length + u, h, c),
              event: usable[u]!.matchedTo,
            })),
          }, boot);
          attention.push({
            group: g,
            layer,
            head,
            token_class: cls,
            n_events: evIdx.length,
            event_mean: s.ev.estimate,
            event_lower: s.ev.lower,
            event_upper: s.ev.upper,
            n_controls: ctIdx.length,
            control_mean: s.ct.estimate,
            control_lower: s.ct.lower,
            control_upper: s.ct.upper,
            n_pairs: s.nPairs,
            diff_mean: s.diff.estimate,
            diff_lower: s.diff.lower,
            diff_upper: s.diff.upper,
            level: boot.level,
          });
        });
      });
    }
  }
  const patCost = { forward_calls: 0, forward_rows: 0, seconds: (performance.now() - t0) / 1000 };
  return {
    dla,
    topHeads,
    ablation,
    attention,
    groups,
    cost: { dla: dlaCost, ablation: ablCost, patterns: patCost },
    n_events: events.length,
    n_controls: usable.length,
  };
}

/** The token class with the most attention mass of a head at the events of a group (undefined if none). */
export function dominantClass(
  rows: readonly HeadAttentionRow[],
  layer: number,
  head: number,
  group = "all",
): { token_class: TokenClass; event_mean: number } | undefined {
  const mine = rows.filter((r) => r.group === group && r.layer === layer && r.head === head);
  if (mine.length === 0) return undefined;
  const best = mine.reduce((a, b) => (b.event_mean > a.event_mean ? b : a));
  return { token_class: best.token_class, event_mean: best.event_mean };
}
