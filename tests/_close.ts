/**
 * Numerical comparison helpers shared by the parity tests.
 * @module
 */

import assert from "node:assert/strict";

/** Worst absolute difference, with its index, for a readable failure message. */
export function worstDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; index: number } {
  assert.equal(a.length, b.length, "length mismatch");
  let diff = 0, index = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= diff)) {
      diff = d;
      index = i;
    }
  }
  return { diff, index };
}

/** Assert every |a - b| ≤ `tol`, naming `what`, the worst difference and where it is. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  const { diff, index } = worstDiff(a, b);
  assert.ok(diff <= tol, `${what}: worst |diff| ${diff.toExponential(3)} at index ${index} exceeds ${tol}`);
}
