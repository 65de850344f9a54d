/**
 * Degeneration flags (experiments/backtracking/degeneration.ts): each rule at and around its threshold, the
 * baseline's own flags, and bad input named.
 */
import assert from "node:assert/strict";
import { degenerationFlags, figuresOf, flagText } from "../experiments/backtracking/degeneration.ts";

const BASE = { eos_rate: 0.9, truncation_rate: 0.1, unknown_rate: 0.05 };

Deno.test("degeneration: a destructive condition (never stops, no answers) gets every flag", () => {
  const v = degenerationFlags({ eos_rate: 0, truncation_rate: 1, unknown_rate: 1 }, BASE);
  assert.deepEqual(v.flags, ["eos_collapse", "length_at_cap", "unknown_jump"]);
  assert.equal(v.degenerate, true);
  assert.equal(flagText(v), "DEGENERATE: EOS 90% → 0%; at length cap 100%; no answer 5% → 100%");
});

Deno.test("degeneration: a clean condition is not flagged; thresholds are inclusive", () => {
  const clean = degenerationFlags({ eos_rate: 0.85, truncation_rate: 0.15, unknown_rate: 0.1 }, BASE);
  assert.deepEqual(clean.flags, []);
  assert.equal(flagText(clean), "");
  // EOS drop of exactly 0.25 (0.9 → 0.65) is flagged, 0.24 is not.
  assert.deepEqual(degenerationFlags({ ...BASE, eos_rate: 0.65 }, BASE).flags, ["eos_collapse"]);
  assert.deepEqual(degenerationFlags({ ...BASE, eos_rate: 0.66 }, BASE).flags, []);
  // Ratio rule: a baseline EOS of 0.3 falling to 0.15 (drop 0.15 < 0.25, ratio 0.5) is flagged.
  const low = { eos_rate: 0.3, truncation_rate: 0.1, unknown_rate: 0 };
  assert.deepEqual(degenerationFlags({ ...low, eos_rate: 0.15 }, low).flags, ["eos_collapse"]);
  assert.deepEqual(degenerationFlags({ ...low, eos_rate: 0.16 }, low).flags, []);
  // ... but not under a baseline EOS below 0.1.
  const rare = { eos_rate: 0.08, truncation_rate: 0.4, unknown_rate: 0 };
  assert.deepEqual(degenerationFlags({ ...rare, eos_rate: 0 }, rare).flags, []);
  // Cap: absolute 0.5, or a rise of 0.25.
  assert.deepEqual(degenerationFlags({ ...BASE, truncation_rate: 0.35 }, BASE).flags, ["length_at_cap"]);
  assert.deepEqual(degenerationFlags({ ...BASE, truncation_rate: 0.34 }, BASE).flags, []);
  // Unknown/unfinished: a rise of 0.2.
  assert.deepEqual(degenerationFlags({ ...BASE, unknown_rate: 0.25 }, BASE).flags, ["unknown_jump"]);
  assert.deepEqual(degenerationFlags({ ...BASE, unknown_rate: 0.24 }, BASE).flags, []);
});

Deno.test("degeneration: without a baseline only the absolute cap rule applies; overrides; bad input", () => {
  assert.deepEqual(degenerationFlags({ eos_rate: 0, truncation_rate: 0.6, unknown_rate: 1 }).flags, [
    "length_at_cap",
  ]);
  assert.deepEqual(degenerationFlags({ eos_rate: 0, truncation_rate: 0.4, unknown_rate: 1 }).flags, []);
  assert.deepEqual(
    degenerationFlags({ ...BASE, unknown_rate: 0.1 }, BASE, { unknownRise: 0.05 }).flags,
    ["unknown_jump"],
  );
  assert.throws(
    () => degenerationFlags({ eos_rate: NaN, truncation_rate: 0, unknown_rate: 0 }, BASE),
    /condition eos_rate must be a rate in \[0, 1\], got NaN/,
  );
  assert.throws(() => degenerationFlags(BASE, { ...BASE, unknown_rate: 2 }), /baseline unknown_rate/);
  assert.deepEqual(
    figuresOf({ eos_rate: { value: 0.5 }, truncation_rate: { value: 0.25 }, unknown_rate: 0.1 }),
    { eos_rate: 0.5, truncation_rate: 0.25, unknown_rate: 0.1 },
  );
});
