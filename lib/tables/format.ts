/**
 * Numbers as report and notebook text, one rule each, so a rate, a difference or a p-value reads the same
 * in a report table, a notebook reading and a figure label:
 *
 * - {@linkcode fixed}: `digits` decimals, halves rounded away from zero alike for both signs (so +1/80 and
 *   −1/80 of a percent print `1.3` and `-1.3`), never `-0.00`;
 * - {@linkcode pct}: a share (0–1) as a percentage, `47.5%`; {@linkcode ciPct}: its interval
 *   `[36.9%, 58.3%]`;
 * - {@linkcode pp}: a difference of shares in percentage points, signed, `-47.5 pp`; {@linkcode ciPp}: its
 *   interval `[-57.5, -36.3]`;
 * - {@linkcode pValue}: `0.42`, `0.031`, `7.3e-12` (scientific only below 0.001, so none reads `0.000`).
 *
 * @module
 */

/**
 * `x` with `digits` decimals; halves away from zero for both signs (after a 12-significant-digit pre-round,
 * so 0.0125 · 100 rounds up like 1.25); a value that rounds to zero prints without a sign; "n/a" when not
 * finite.
 *
 * @example
 * ```ts
 * fixed(-0.0004, 2); // "0.00"
 * fixed(-1.25, 1);   // "-1.3"
 * ```
 */
export function fixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return "n/a";
  const scale = 10 ** digits;
  const units = Math.round(Number((Math.abs(x) * scale).toPrecision(12)));
  if (units === 0) return (0).toFixed(digits);
  return `${x < 0 ? "-" : ""}${(units / scale).toFixed(digits)}`;
}

/** A share (0–1) as a percentage, `47.5%`; "n/a" when undefined or not finite. */
export function pct(x: number | undefined, digits = 1): string {
  return x !== undefined && Number.isFinite(x) ? `${fixed(x * 100, digits)}%` : "n/a";
}

/** A difference of two shares in percentage points, signed: `-47.5 pp`, `+1.3 pp`, `0.0 pp`; "n/a". */
export function pp(x: number | undefined, digits = 1): string {
  if (x === undefined || !Number.isFinite(x)) return "n/a";
  const t = fixed(x * 100, digits);
  return `${t.startsWith("-") || Number(t) === 0 ? "" : "+"}${t} pp`;
}

/** The interval of a share in percent, `[36.9%, 58.3%]`; "" when a bound is not finite. */
export function ciPct(lower: number, upper: number, digits = 1): string {
  return Number.isFinite(lower) && Number.isFinite(upper)
    ? `[${pct(lower, digits)}, ${pct(upper, digits)}]`
    : "";
}

/** The interval of a difference of shares in percentage points, `[-57.5, -36.3]`; "" when not finite. */
export function ciPp(lower: number, upper: number, digits = 1): string {
  return Number.isFinite(lower) && Number.isFinite(upper)
    ? `[${fixed(lower * 100, digits)}, ${fixed(upper * 100, digits)}]`
    : "";
}

/**
 * A p-value: two decimals from 0.1 (`0.42`, `1.00`), two significant digits from 0.001 (`0.031`),
 * scientific below (`7.3e-12`); `< 1e-300` for an exact 0 (underflow); "n/a" when undefined or NaN.
 */
export function pValue(p: number | undefined): string {
  if (p === undefined || !Number.isFinite(p)) return "n/a";
  if (p === 0) return "< 1e-300";
  if (p < 0.001) return p.toExponential(1);
  return p >= 0.1 ? fixed(p, 2) : p.toPrecision(2);
}
