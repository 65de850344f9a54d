/**
 * Conversions between 32-bit floats and the 16-bit formats found in checkpoints: IEEE half
 * (`F16`) and bfloat16 (`BF16`).
 *
 * Narrowing conversions round to nearest, ties to even (as PyTorch's `.to(torch.float16)` /
 * `.to(torch.bfloat16)` do); NaN stays NaN (a quiet NaN), ±Infinity stays infinite, values beyond
 * the format's range become ±Infinity, and tiny values become subnormals or signed zero. Inputs are
 * JavaScript numbers; they are first rounded to float32 (`Math.fround`), as when a float32 tensor is
 * cast, so a double is rounded twice on its way to 16 bits.
 *
 * @module
 */

const scratch = new DataView(new ArrayBuffer(4));

/** The IEEE bit pattern of `Math.fround(x)`, as an unsigned 32-bit integer. */
export function f32Bits(x: number): number {
  scratch.setFloat32(0, x, true);
  return scratch.getUint32(0, true);
}

/**
 * Round a number to bfloat16 (round to nearest, ties to even).
 * @param x a number; it is first rounded to float32.
 * @returns the 16-bit pattern (0..0xffff).
 * @example
 * ```ts
 * f32ToBf16(1); // 0x3f80
 * ```
 */
export function f32ToBf16(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) {
    return ((bits >>> 16) & 0x8000) | 0x7fc0; // quiet NaN, sign kept
  }
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
  return rounded & 0xffff;
}

/**
 * Widen a bfloat16 bit pattern to a number (exact).
 * @param h the 16-bit pattern.
 * @example
 * ```ts
 * bf16ToF32(0x3f80); // 1
 * ```
 */
export function bf16ToF32(h: number): number {
  scratch.setUint32(0, (h & 0xffff) << 16, true);
  return scratch.getFloat32(0, true);
}

/**
 * Round a number to IEEE half precision (round to nearest, ties to even).
 * @param x a number; it is first rounded to float32.
 * @returns the 16-bit pattern (0..0xffff).
 * @example
 * ```ts
 * f32ToF16(1); // 0x3c00
 * f32ToF16(65520); // 0x7c00 (Infinity: beyond the largest half, 65504)
 * ```
 */
export function f32ToF16(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): value = full * 2^(e - 14 - 10) in units of 2^-24.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    return sign | ((full + half - 1 + ((full >>> shift) & 1)) >>> shift);
  }
  const m16 = mant >>> 13;
  const rem = mant & 0x1fff;
  let out = sign | (e << 10) | m16;
  if (rem > 0x1000 || (rem === 0x1000 && (m16 & 1) === 1)) out++; // a carry may reach Infinity: correct
  return out;
}

/**
 * Widen an IEEE half bit pattern to a number (exact).
 * @param h the 16-bit pattern.
 * @example
 * ```ts
 * f16ToF32(0x3c00); // 1
 * ```
 */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return sign * (1024 + m) * 2 ** (e - 25);
}

let f16Table: Float32Array | undefined;

/** All 65536 half values as float32, indexed by bit pattern (built once, 256 KiB). */
export function f16Table32(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}
