/**
 * The reference pipeline's own table layouts, built from our summaries so both can stand side by side
 * (reference reproduction; see docs/protocol.md).
 *
 * @module
 */

import type { LensSummaryRow } from "../../../lib/interp/logit_lens.ts";

/**
 * The reference's `logit_lens.csv` rows (docs/protocol.md §12) from a summary, in its column order.
 *
 * Our layer 0 (embedding output) has no reference counterpart and is left out; our layer l ≥ 1 is the
 * reference's layer l − 1. Our last layer is the true final logits, whereas the reference's last layer
 * was normed twice, so that one row is not comparable.
 */
export function referenceLensRows(summary: readonly LensSummaryRow[]): {
  layer: number;
  mean_target_logit_bt: number;
  mean_target_logit_control: number;
  std_bt: number;
  std_control: number;
  n_bt: number;
  n_control: number;
  control_matching: "position_matched";
}[] {
  return summary.filter((s) => s.reference_layer !== undefined).map((s) => ({
    layer: s.reference_layer!,
    mean_target_logit_bt: s.mean_target_logit_bt,
    mean_target_logit_control: s.mean_target_logit_control,
    std_bt: s.std_bt,
    std_control: s.std_control,
    n_bt: s.n_bt,
    n_control: s.n_control,
    control_matching: s.control_matching,
  }));
}
