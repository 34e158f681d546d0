/**
 * The few numeric conventions of NumPy and Python that the reference evaluators' printed and
 * returned numbers depend on, reproduced to the last bit: NumPy's summation order (pairwise, in
 * buffers of 8192), `np.nanmean`, `np.round`, Python's `'{:.3f}'` (round half to even on the
 * exact binary value) and `str(float)`.
 */

/** NumPy's pairwise summation of a contiguous block (numpy/core/src/umath/loops_utils.h). */
function pairwiseSum(a: ArrayLike<number>, start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i]!;
    return res;
  }
  if (n <= 128) {
    const r = new Float64Array(8);
    for (let j = 0; j < 8; j++) r[j] = a[start + j]!;
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j]! += a[start + i + j]!;
    let res = ((r[0]! + r[1]!) + (r[2]! + r[3]!)) + ((r[4]! + r[5]!) + (r[6]! + r[7]!));
    for (; i < n; i++) res += a[start + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** NumPy's ufunc reductions hand the inner loop buffers of at most this many elements. */
const NUMPY_BUFSIZE = 8192;

/** `np.sum` of a float64 vector, bit for bit. */
export function numpySum(a: ArrayLike<number>): number {
  let total = 0;
  for (let start = 0; start < a.length; start += NUMPY_BUFSIZE) total += pairwiseSum(a, start, Math.min(NUMPY_BUFSIZE, a.length - start));
  return total;
}

/** `np.mean`: NaN for an empty vector (NumPy warns and returns nan). */
export function numpyMean(a: ArrayLike<number>): number {
  return numpySum(a) / a.length;
}

/** `np.nanmean`: NaNs are replaced by 0 in place (the summation order keeps their slots), then divided by the count of the others. */
export function nanmean(a: ArrayLike<number>): number {
  const zeroed = Float64Array.from(a as ArrayLike<number>, (v) => (Number.isNaN(v) ? 0 : v));
  let count = 0;
  for (let i = 0; i < a.length; i++) if (!Number.isNaN(a[i]!)) count++;
  return numpySum(zeroed) / count;
}

/** `np.rint`: round half to even. */
export function rint(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const d = x - f;
  const r = d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  return r === 0 && x < 0 ? -0 : r; // np.rint(-0.5) is -0.0
}

/** `np.round(x, decimals)` for decimals >= 0: multiply, rint, divide, as NumPy does. */
export function npRound(x: number, decimals: number): number {
  const f = 10 ** decimals;
  return rint(x * f) / f;
}

/** Python's `str(float)`: the shortest round-trip digits, with '.0' on integers and 'nan' / 'inf'. */
export function pyFloatStr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (Object.is(x, -0)) return '-0.0';
  const abs = Math.abs(x);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    // Python: 1e-05, 1.5e+16; JavaScript: 1e-5, 1.5e+16.
    const [m, e] = x.toExponential().split('e') as [string, string];
    const exp = Number(e);
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const s = String(x);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/**
 * Python's `'{:.<digits>f}'.format(x)`: correctly rounded from the exact binary value, ties to
 * even. JavaScript's toFixed breaks exact ties upwards (0.0625 -> '0.063', Python '0.062').
 */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const negative = x < 0 || Object.is(x, -0);
  const { mantissa, exponent } = decompose(Math.abs(x)); // |x| = mantissa * 2^exponent exactly
  const scale = 10n ** BigInt(digits);
  let n: bigint;
  if (exponent >= 0) {
    n = mantissa * scale << BigInt(exponent);
  } else {
    const den = 1n << BigInt(-exponent);
    const num = mantissa * scale;
    n = num / den;
    const twice = 2n * (num % den);
    if (twice > den || (twice === den && n % 2n === 1n)) n += 1n;
  }
  const s = n.toString().padStart(digits + 1, '0');
  const body = digits === 0 ? s : `${s.slice(0, -digits)}.${s.slice(-digits)}`;
  return negative ? `-${body}` : body;
}

/** A finite non-negative double as an integer mantissa and a power of two. */
function decompose(x: number): { mantissa: bigint; exponent: number } {
  if (x === 0) return { mantissa: 0n, exponent: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  return biased === 0
    ? { mantissa: fraction, exponent: -1074 }
    : { mantissa: fraction | (1n << 52n), exponent: biased - 1075 };
}
