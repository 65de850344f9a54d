/**
 * Python's float text, for tables that Python tools (pandas, the csv module) read back or that must
 * match files Python wrote byte for byte.
 *
 * @module
 */

/**
 * Python `repr(float)` (= `str(float)` in Python 3): shortest round-trip digits, fixed notation when
 * the decimal exponent is in [-4, 16), otherwise scientific with a signed two-digit-minimum exponent;
 * integral values in fixed notation end in `.0`.
 *
 * @example
 * ```ts
 * pyFloatRepr(1e16); // "1e+16"   (JS String gives "10000000000000000")
 * pyFloatRepr(1e-5); // "1e-05"   (JS String gives "0.00001")
 * pyFloatRepr(18);   // "18.0"
 * ```
 */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const neg = x < 0;
  const [mant, e] = Math.abs(x).toExponential().split("e") as [string, string];
  const digits = mant.replace(".", "");
  const decpt = Number(e) + 1; // x = 0.d1d2... × 10^decpt
  let out: string;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) out = "0." + "0".repeat(-decpt) + digits;
    else if (decpt >= digits.length) out = digits + "0".repeat(decpt - digits.length) + ".0";
    else out = digits.slice(0, decpt) + "." + digits.slice(decpt);
  } else {
    const exp = decpt - 1;
    const m = digits.length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
    out = `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return neg ? "-" + out : out;
}
