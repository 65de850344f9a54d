/**
 * The positions the interpretability methods read: a token sequence (a trace), an *event* in it (a
 * position whose next-token prediction is a behaviour's onset token) and a *control* (a position in
 * another trace matched to an event). Experiments fill these from their own data; the methods
 * ({@link ../interp/logit_lens.ts}, {@link ../interp/ablation_scan.ts},
 * {@link ../interp/activation_patching.ts}) take them as plain data.
 *
 * @module
 */

/** A generated sequence: the prompt's token ids followed by the completion's (BOS included). */
export interface Trace {
  readonly exampleId: number;
  readonly sampleId: number;
  /** Prompt then completion token ids, as generated (no re-tokenisation). */
  readonly tokenIds: readonly number[];
  /** Number of prompt tokens (BOS included); the completion starts at this index. */
  readonly promptTokens: number;
}

/** An onset event: at `predPos` the model emitted the behaviour's first token next. */
export interface OnsetEvent extends Trace {
  /** Position whose next-token prediction is the onset token (= onset index in the full sequence − 1). */
  readonly predPos: number;
  /** Token id of the onset (normally `tokenIds[predPos + 1]`). */
  readonly onsetTokenId: number;
}

/** A position in a non-backtracking trace at the same completion offset as an event. */
export interface ControlPosition extends Trace {
  readonly predPos: number;
  /** Token id whose lens values are read here (chosen by the experiment's matching rule). */
  readonly targetId: number;
  /** Index of the matched event in the `events` array given to {@link matchControls}. */
  readonly matchedTo: number;
}
