/**
 * timm's RandAugment (timm 0.5.4, `timm/data/auto_augment.py`, as the official SwiftFormer recipe
 * runs it: `--aa rand-m9-mstd0.5-inc1`) on 8-bit RGB images, with every operation computing what
 * Pillow computes, byte for byte (Pillow 9.4's C code: Blend.c, Filter.c, Geometry.c; ImageOps,
 * ImageEnhance; checked by test/randaugment.test.ts against scripts/make-randaugment-refs.py).
 *
 * The policy: for each image, `n` operations are drawn uniformly with replacement from the set
 * (15 operations); each is applied with probability 0.5, at a magnitude drawn from
 * Normal(m, mstd) and clipped to [0, 10]; the magnitude becomes the operation's argument by the
 * operation's own rule (below), signed by a coin flip where the operation has a direction.
 * Geometric operations fill what comes from outside the image with the normalization mean as
 * 8-bit color (timm's img_mean) and resample bilinear or bicubic (the training interpolation;
 * 'random' picks one per operation).
 *
 * The blend that ImageEnhance uses (`blendInto`) also serves torchvision's ColorJitter (augment.ts).
 */
import { SwiftFormerError } from '../core/errors.js';
import type { RGBImage } from '../core/image.js';
import type { Random } from '../core/random.js';
import { luma, roundHalfEven } from '../preprocess/transforms.js';

export type Resample = 'bilinear' | 'bicubic';
/** timm's training interpolation: one filter, or a random choice of the two per use. */
export type Interpolation = Resample | 'random';
export type RGB = readonly [number, number, number];

function blank(image: RGBImage): RGBImage {
  return { width: image.width, height: image.height, data: new Uint8Array(image.data.length) };
}

// ---------------------------------------------------------------- blend (Image.blend) and ImageEnhance

/** float -> uint8 as Pillow's blend and filters store it: clipped to [0, 255], then truncated. */
function clip8(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
}

/**
 * Image.blend(degenerate, image, factor) per byte, Pillow's ImagingBlend: the factor is a C float,
 * the arithmetic float32 (`d + alpha * (v - d)`, each step rounded to float32), the result clipped
 * and truncated. `degenerate(i)` is the degenerate image's byte i; `data` is blended in place.
 */
export function blendInto(data: Uint8Array, degenerate: (i: number) => number, factor: number): void {
  const alpha = Math.fround(factor);
  for (let i = 0; i < data.length; i++) {
    const d = degenerate(i);
    data[i] = clip8(Math.fround(d + Math.fround(alpha * (data[i]! - d))));
  }
}

/** A blend whose degenerate image is one value per byte value (brightness, contrast): a 256-entry table. */
function blendTable(data: Uint8Array, gray: number, factor: number): void {
  const table = Uint8Array.from({ length: 256 }, (_, v) => v);
  blendInto(table, () => gray, factor);
  for (let i = 0; i < data.length; i++) data[i] = table[data[i]!]!;
}

/** ImageEnhance.Brightness(image).enhance(factor): a blend with black. */
export function enhanceBrightness(image: RGBImage, factor: number): RGBImage {
  const out = { ...image, data: image.data.slice() };
  blendTable(out.data, 0, factor);
  return out;
}

/** The mean of convert('L') as ImageEnhance.Contrast rounds it: int(mean + 0.5). */
export function meanLuma(image: RGBImage): number {
  const d = image.data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 3) sum += luma(d[i]!, d[i + 1]!, d[i + 2]!);
  return Math.trunc(sum / (d.length / 3) + 0.5);
}

/** ImageEnhance.Contrast(image).enhance(factor): a blend with the mean gray level. */
export function enhanceContrast(image: RGBImage, factor: number): RGBImage {
  const out = { ...image, data: image.data.slice() };
  blendTable(out.data, meanLuma(image), factor);
  return out;
}

/** ImageEnhance.Color(image).enhance(factor): a blend with each pixel's gray level (convert('L')). */
export function enhanceColor(image: RGBImage, factor: number): RGBImage {
  const src = image.data;
  const gray = new Uint8Array(src.length / 3);
  for (let p = 0; p < gray.length; p++) gray[p] = luma(src[3 * p]!, src[3 * p + 1]!, src[3 * p + 2]!);
  const out = { ...image, data: src.slice() };
  blendInto(out.data, (i) => gray[(i / 3) | 0]!, factor);
  return out;
}

/** ImageEnhance.Sharpness(image).enhance(factor): a blend with the image smoothed by ImageFilter.SMOOTH. */
export function enhanceSharpness(image: RGBImage, factor: number): RGBImage {
  const smooth = smoothFilter(image).data;
  const out = { ...image, data: image.data.slice() };
  blendInto(out.data, (i) => smooth[i]!, factor);
  return out;
}

/** ImageFilter.SMOOTH's kernel (1 1 1 / 1 5 1 / 1 1 1) / 13, as Pillow stores it: float32 weights. */
const SMOOTH_EDGE = Math.fround(1 / 13);
const SMOOTH_CENTER = Math.fround(5 / 13);

/**
 * image.filter(ImageFilter.SMOOTH), Pillow's ImagingFilter3x3: float32 sums (0.5 added for
 * rounding, three rows of three products each), clipped and truncated. The outermost rows and
 * columns are copied unchanged, and an image narrower or lower than 3 pixels is returned as it is.
 */
export function smoothFilter(image: RGBImage): RGBImage {
  const { width: w, height: h, data: src } = image;
  const out = { ...image, data: src.slice() };
  if (w < 3 || h < 3) return out;
  const f = Math.fround;
  const e = SMOOTH_EDGE;
  /** One kernel row: (a k0 + b k1) + c k2 in float32, the bytes 3 apart (one pixel); only the middle row has the center weight. */
  const row = (i: number, k1: number) => f(f(f(src[i - 3]! * e) + f(src[i]! * k1)) + f(src[i + 3]! * e));
  const stride = w * 3;
  for (let y = 1; y < h - 1; y++) {
    for (let i = y * stride + 3; i < (y + 1) * stride - 3; i++) {
      // Pillow's order: the row below (the kernel's first row), this row, the row above; 0.5 for rounding.
      let ss = f(0.5 + row(i + stride, e));
      ss = f(ss + row(i, SMOOTH_CENTER));
      ss = f(ss + row(i - stride, e));
      out.data[i] = clip8(ss);
    }
  }
  return out;
}

// ---------------------------------------------------------------- ImageOps (lookup tables per channel)

/** image.point(lut) with one 256-entry table per channel (values clipped to [0, 255], as Pillow's CLIP8). */
function applyTables(image: RGBImage, tables: readonly ArrayLike<number>[]): RGBImage {
  const clipped = tables.map((t) => Uint8Array.from({ length: 256 }, (_, v) => Math.min(255, Math.max(0, t[v]!))));
  const out = blank(image);
  const src = image.data;
  for (let i = 0; i < src.length; i += 3) {
    out.data[i] = clipped[0]![src[i]!]!;
    out.data[i + 1] = clipped[1]![src[i + 1]!]!;
    out.data[i + 2] = clipped[2]![src[i + 2]!]!;
  }
  return out;
}

function applyTable(image: RGBImage, table: ArrayLike<number>): RGBImage {
  return applyTables(image, [table, table, table]);
}

/** image.histogram() of an RGB image: one 256-bin histogram per channel. */
function histograms(image: RGBImage): Uint32Array[] {
  const h = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)];
  const d = image.data;
  for (let i = 0; i < d.length; i += 3) {
    h[0]![d[i]!]!++;
    h[1]![d[i + 1]!]!++;
    h[2]![d[i + 2]!]!++;
  }
  return h;
}

/**
 * ImageOps.autocontrast(image) (no cutoff): per channel, the lowest and highest values present
 * are stretched to 0 and 255, v -> int(v * scale + offset) in doubles, clipped; a channel with a
 * single value is left as it is.
 */
export function autoContrast(image: RGBImage): RGBImage {
  return applyTables(image, histograms(image).map((h) => {
    const lo = h.findIndex((n) => n > 0);
    const hi = 255 - [...h].reverse().findIndex((n) => n > 0);
    if (hi <= lo) return Uint8Array.from({ length: 256 }, (_, v) => v);
    const scale = 255.0 / (hi - lo);
    const offset = -lo * scale;
    return Array.from({ length: 256 }, (_, v) => Math.trunc(v * scale + offset));
  }));
}

/**
 * ImageOps.equalize(image): per channel, step = (pixels - count of the highest value present) // 255;
 * value i maps to (step // 2 + pixels below i) // step (clipped to 255 by point()). A channel with
 * one value, or a step of 0, is left as it is.
 */
export function equalize(image: RGBImage): RGBImage {
  return applyTables(image, histograms(image).map((h) => {
    const present = [...h].filter((n) => n > 0);
    const identity = Uint8Array.from({ length: 256 }, (_, v) => v);
    if (present.length <= 1) return identity;
    const step = Math.floor((present.reduce((a, b) => a + b, 0) - present.at(-1)!) / 255);
    if (step === 0) return identity;
    const lut = new Array<number>(256);
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.floor(n / step);
      n += h[i]!;
    }
    return lut;
  }));
}

/** ImageOps.invert: 255 - v. */
export function invert(image: RGBImage): RGBImage {
  return applyTable(image, Array.from({ length: 256 }, (_, v) => 255 - v));
}

/** ImageOps.posterize(image, bits): keep the `bits` most significant bits (0 bits: black). */
export function posterize(image: RGBImage, bits: number): RGBImage {
  const mask = ~((1 << (8 - bits)) - 1) & 0xff;
  return applyTable(image, Array.from({ length: 256 }, (_, v) => v & mask));
}

/** ImageOps.solarize(image, threshold): values at or above the threshold are inverted. */
export function solarize(image: RGBImage, threshold: number): RGBImage {
  return applyTable(image, Array.from({ length: 256 }, (_, v) => (v < threshold ? v : 255 - v)));
}

/** timm's solarize_add: values below the threshold get `add` added (capped at 255). */
export function solarizeAdd(image: RGBImage, add: number, threshold = 128): RGBImage {
  return applyTable(image, Array.from({ length: 256 }, (_, v) => (v < threshold ? Math.min(255, v + add) : v)));
}

// ---------------------------------------------------------------- Image.transform(AFFINE) and rotate

/** (a, b, c, d, e, f): output pixel (x, y) samples the input at (a x + b y + c, d x + e y + f), pixel centers at +0.5. */
export type Affine = readonly [number, number, number, number, number, number];

/** Bilinear sample of channel `c` at (xin, yin), Geometry.c's bilinear_filter32RGB; false outside the image. */
type Sampler = (src: RGBImage, xin: number, yin: number, out: Uint8Array, at: number) => boolean;

const clampTo = (v: number, n: number) => (v < 0 ? 0 : v < n ? v : n - 1);

const bilinearSample: Sampler = (src, xin, yin, out, at) => {
  const { width: w, height: h, data } = src;
  if (xin < 0 || xin >= w || yin < 0 || yin >= h) return false;
  const xs = xin - 0.5;
  const ys = yin - 0.5;
  const x = Math.floor(xs);
  const y = Math.floor(ys);
  const dx = xs - x;
  const dy = ys - y;
  const x0 = clampTo(x, w) * 3;
  const x1 = clampTo(x + 1, w) * 3;
  const r0 = clampTo(y, h) * w * 3;
  const below = y + 1 >= 0 && y + 1 < h;
  const r1 = (y + 1) * w * 3;
  for (let c = 0; c < 3; c++) {
    const a = data[r0 + x0 + c]!;
    const v1 = a + (data[r0 + x1 + c]! - a) * dx;
    let v2 = v1;
    if (below) {
      const b = data[r1 + x0 + c]!;
      v2 = b + (data[r1 + x1 + c]! - b) * dx;
    }
    out[at + c] = Math.trunc(v1 + (v2 - v1) * dy);
  }
  return true;
};

/** Pillow's cubic (a = -1) through four values at fraction d, in its order of operations. */
function cubic(v1: number, v2: number, v3: number, v4: number, d: number): number {
  const p1 = v2;
  const p2 = -v1 + v3;
  const p3 = 2 * (v1 - v2) + v3 - v4;
  const p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

/** Bicubic sample, Geometry.c's bicubic_filter32RGB: columns clamped; rows past the edge repeat the last row computed. */
const bicubicSample: Sampler = (src, xin, yin, out, at) => {
  const { width: w, height: h, data } = src;
  if (xin < 0 || xin >= w || yin < 0 || yin >= h) return false;
  const xs = xin - 0.5;
  const ys = yin - 0.5;
  const x = Math.floor(xs) - 1;
  const y = Math.floor(ys) - 1;
  const dx = xs - (x + 1);
  const dy = ys - (y + 1);
  const c0 = clampTo(x, w) * 3;
  const c1 = clampTo(x + 1, w) * 3;
  const c2 = clampTo(x + 2, w) * 3;
  const c3 = clampTo(x + 3, w) * 3;
  const stride = w * 3;
  const r0 = clampTo(y, h) * stride;
  const has1 = y + 1 >= 0 && y + 1 < h;
  const has2 = y + 2 >= 0 && y + 2 < h;
  const has3 = y + 3 >= 0 && y + 3 < h;
  for (let c = 0; c < 3; c++) {
    let b = r0 + c;
    const v1 = cubic(data[b + c0]!, data[b + c1]!, data[b + c2]!, data[b + c3]!, dx);
    b = (y + 1) * stride + c;
    const v2 = has1 ? cubic(data[b + c0]!, data[b + c1]!, data[b + c2]!, data[b + c3]!, dx) : v1;
    b += stride;
    const v3 = has2 ? cubic(data[b + c0]!, data[b + c1]!, data[b + c2]!, data[b + c3]!, dx) : v2;
    b += stride;
    const v4 = has3 ? cubic(data[b + c0]!, data[b + c1]!, data[b + c2]!, data[b + c3]!, dx) : v3;
    out[at + c] = clip8(cubic(v1, v2, v3, v4, dy));
  }
  return true;
};

/**
 * image.transform(image.size, Image.AFFINE, matrix, resample, fillcolor=fill), Pillow's
 * ImagingGenericTransform: each output pixel center (x + 0.5, y + 0.5) is mapped in doubles
 * ((a x' + b y') + c), sampled if it falls inside the input, else left at the fill color.
 */
export function affineTransform(image: RGBImage, m: Affine, resample: Resample, fill: RGB): RGBImage {
  const { width: w, height: h } = image;
  const out = blank(image);
  const sample = resample === 'bicubic' ? bicubicSample : bilinearSample;
  for (let y = 0; y < h; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < w; x++) {
      const xc = x + 0.5;
      const at = (y * w + x) * 3;
      if (!sample(image, m[0] * xc + m[1] * yc + m[2], m[3] * xc + m[4] * yc + m[5], out.data, at)) {
        out.data[at] = fill[0];
        out.data[at + 1] = fill[1];
        out.data[at + 2] = fill[2];
      }
    }
  }
  return out;
}

/**
 * Python's round(x, 15) for |x| <= 1: the nearest multiple of 1e-15, ties to even (toFixed breaks
 * ties upward; a tie needs x to be an odd multiple of 2^-16, which is then rounded with BigInts).
 */
export function round15(x: number): number {
  const s = x * 65536;
  if (Number.isInteger(s) && Math.abs(s % 2) === 1) {
    const halfUp = BigInt(s) * 30517578125n; // x * 1e15 * 2 = s * 5^15, odd
    const below = (halfUp - 1n) / 2n;
    return Number(`${below % 2n === 0n ? below : below + 1n}e-15`);
  }
  return Number(x.toFixed(15));
}

// Image.rotate takes cos and sin from C's libm, then round(x, 15). V8's Math.cos and Math.sin are
// one ulp off the correctly rounded value for about 6% of arguments, enough for round(x, 15) to
// change a coefficient of about 1 angle in 200. So cos and sin are computed here in double-double
// arithmetic (about 106 bits) and rounded once: correctly rounded. glibc (Debian 12) is not
// correctly rounded for about 1 argument in 400; for about 1 angle in 8000 that survives the
// rounding to 15 decimals and Pillow's matrix is 1e-15 off ours (the rotations recorded at such
// angles are still the same bytes; test/randaugment.test.ts).

type DD = readonly [number, number];

function twoSum(a: number, b: number): DD {
  const s = a + b;
  const bb = s - a;
  return [s, (a - (s - bb)) + (b - bb)];
}

function split(a: number): DD {
  const c = 134217729 * a; // 2^27 + 1: Dekker's split into two 26-bit halves
  const hi = c - (c - a);
  return [hi, a - hi];
}

function twoProd(a: number, b: number): DD {
  const p = a * b;
  const [ah, al] = split(a);
  const [bh, bl] = split(b);
  return [p, ((ah * bh - p) + ah * bl + al * bh) + al * bl];
}

function ddAdd(x: DD, y: DD): DD {
  const [s, e] = twoSum(x[0], y[0]);
  const [t, f] = twoSum(x[1], y[1]);
  const [u, g] = twoSum(s, e + t);
  return twoSum(u, g + f);
}

function ddMul(x: DD, y: DD): DD {
  const [p, e] = twoProd(x[0], y[0]);
  return twoSum(p, e + (x[0] * y[1] + x[1] * y[0]));
}

function ddDiv(x: DD, d: number): DD {
  const q = x[0] / d;
  const [p, e] = twoProd(q, d);
  return twoSum(q, (x[0] - p - e + x[1]) / d);
}

/** pi / 2 as a double-double, and the next 53 bits. */
const PIO2: DD = [1.5707963267948966, 6.123233995736766e-17];
const PIO2_TAIL = -1.4973849048591698e-33;

/** cos(a) and sin(a), correctly rounded for |a| up to a few thousand (Image.rotate's angles are in [-2 pi, 0]). */
export function cosSin(a: number): [number, number] {
  const k = Math.round(a / PIO2[0]);
  const r = ddAdd(ddAdd([a, 0], ddMul([-k, 0], PIO2)), [-k * PIO2_TAIL, 0]);
  const r2 = ddMul(r, r);
  // Taylor series of sin and cos on |r| <= pi / 4, until the terms are below 2^-120.
  let sinSum = r;
  let cosSum: DD = [1, 0];
  let sinTerm = r;
  let cosTerm: DD = [1, 0];
  for (let n = 1; Math.abs(cosTerm[0]) > 1e-36 || Math.abs(sinTerm[0]) > 1e-36; n++) {
    sinTerm = ddDiv(ddMul(sinTerm, r2), -(2 * n) * (2 * n + 1));
    cosTerm = ddDiv(ddMul(cosTerm, r2), -(2 * n - 1) * (2 * n));
    sinSum = ddAdd(sinSum, sinTerm);
    cosSum = ddAdd(cosSum, cosTerm);
  }
  const [c, s] = [cosSum[0] + cosSum[1], sinSum[0] + sinSum[1]];
  switch (((k % 4) + 4) % 4) {
    case 0: return [c, s];
    case 1: return [-s, c];
    case 2: return [-c, -s];
    default: return [s, -c];
  }
}

/** Python's float % 360.0: the result takes the sign of 360 (so -27 becomes 333). */
function pyMod360(angle: number): number {
  const m = angle % 360;
  return m !== 0 && m < 0 ? m + 360 : m === 0 ? 0 : m;
}

/** Image.rotate's inverse matrix for `degrees` counter-clockwise about the image center (w / 2, h / 2). */
export function rotationMatrix(degrees: number, width: number, height: number): Affine {
  const angle = -(pyMod360(degrees) * (Math.PI / 180));
  const [cos, sin] = cosSin(angle);
  const [a, b, d, e] = [round15(cos), round15(sin), round15(-sin), round15(cos)];
  const cx = width / 2.0;
  const cy = height / 2.0;
  return [a, b, a * -cx + b * -cy + 0.0 + cx, d, e, d * -cx + e * -cy + 0.0 + cy];
}

/** Image.transpose for 90/180/270 degrees counter-clockwise (Pillow's exact fast paths of rotate). */
function quarterTurns(image: RGBImage, turns: 1 | 2 | 3): RGBImage {
  const { width: w, height: h, data } = image;
  const ow = turns === 2 ? w : h;
  const oh = turns === 2 ? h : w;
  const out = { width: ow, height: oh, data: new Uint8Array(data.length) };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // Where input (x, y) lands: 90 CCW -> (y, w-1-x); 180 -> (w-1-x, h-1-y); 270 CCW -> (h-1-y, x).
      const [tx, ty] = turns === 1 ? [y, w - 1 - x] : turns === 2 ? [w - 1 - x, h - 1 - y] : [h - 1 - y, x];
      out.data.set(data.subarray((y * w + x) * 3, (y * w + x) * 3 + 3), (ty * ow + tx) * 3);
    }
  }
  return out;
}

/**
 * image.rotate(degrees, resample, fillcolor=fill): counter-clockwise about the center, same size.
 * As Pillow: 0 is a copy, 180 (and 90 / 270 on a square image) an exact transpose whatever the
 * filter; any other angle an affine transform with the matrix rounded to 15 decimals.
 */
export function rotate(image: RGBImage, degrees: number, resample: Resample, fill: RGB): RGBImage {
  const angle = pyMod360(degrees);
  if (angle === 0) return { ...image, data: image.data.slice() };
  if (angle === 180) return quarterTurns(image, 2);
  if ((angle === 90 || angle === 270) && image.width === image.height) return quarterTurns(image, angle === 90 ? 1 : 3);
  return affineTransform(image, rotationMatrix(degrees, image.width, image.height), resample, fill);
}

/** timm's shear_x: the matrix (1, factor, 0, 0, 1, 0). */
export function shearX(image: RGBImage, factor: number, resample: Resample, fill: RGB): RGBImage {
  return affineTransform(image, [1, factor, 0, 0, 1, 0], resample, fill);
}

/** timm's shear_y: the matrix (1, 0, 0, factor, 1, 0). */
export function shearY(image: RGBImage, factor: number, resample: Resample, fill: RGB): RGBImage {
  return affineTransform(image, [1, 0, 0, factor, 1, 0], resample, fill);
}

/** timm's translate_x_rel: sample pct * width pixels to the right (the content moves left for pct > 0). */
export function translateXRel(image: RGBImage, pct: number, resample: Resample, fill: RGB): RGBImage {
  return affineTransform(image, [1, 0, pct * image.width, 0, 1, 0], resample, fill);
}

/** timm's translate_y_rel: as translateXRel, vertically (pct * height). */
export function translateYRel(image: RGBImage, pct: number, resample: Resample, fill: RGB): RGBImage {
  return affineTransform(image, [1, 0, 0, 0, 1, pct * image.height], resample, fill);
}

// ---------------------------------------------------------------- timm's operations and their arguments

/** timm's `_LEVEL_DENOM`: magnitudes run from 0 to 10. */
const LEVEL_DENOM = 10;

/** With probability 1/2 (timm: random() > 0.5), the value negated. */
function randomlyNegate(v: number, rng: Random): number {
  return rng.next() > 0.5 ? -v : v;
}

interface OpSpec {
  /** timm's level-to-argument rule; absent for operations without an argument. */
  level?: (magnitude: number, rng: Random) => number;
  /** Geometric operations resample (and draw the filter when the interpolation is random). */
  geometric?: boolean;
  apply(image: RGBImage, arg: number, resample: Resample, fill: RGB): RGBImage;
}

const enhanceLevel = (m: number) => (m / LEVEL_DENOM) * 1.8 + 0.1;
const enhanceIncreasingLevel = (m: number, rng: Random) => Math.max(0.1, 1.0 + randomlyNegate((m / LEVEL_DENOM) * 0.9, rng));
const posterizeLevel = (m: number) => Math.trunc((m / LEVEL_DENOM) * 4);
const solarizeLevel = (m: number) => Math.trunc((m / LEVEL_DENOM) * 256);
const signed = (range: number) => (m: number, rng: Random) => randomlyNegate((m / LEVEL_DENOM) * range, rng);
/** timm's posterize: 8 bits or more is the image itself. */
const posterizeOp = (image: RGBImage, bits: number) => (bits >= 8 ? { ...image, data: image.data.slice() } : posterize(image, bits));

/** Every operation of timm's two RandAugment sets, with timm's level-to-argument rules (translate_pct 0.45). */
export const RAND_AUGMENT_OPS = {
  AutoContrast: { apply: (im) => autoContrast(im) },
  Equalize: { apply: (im) => equalize(im) },
  Invert: { apply: (im) => invert(im) },
  Rotate: { level: signed(30), geometric: true, apply: rotate },
  Posterize: { level: posterizeLevel, apply: posterizeOp },
  PosterizeIncreasing: { level: (m) => 4 - posterizeLevel(m), apply: posterizeOp },
  Solarize: { level: solarizeLevel, apply: solarize },
  SolarizeIncreasing: { level: (m) => 256 - solarizeLevel(m), apply: solarize },
  SolarizeAdd: { level: (m) => Math.trunc((m / LEVEL_DENOM) * 110), apply: (im, add) => solarizeAdd(im, add) },
  Color: { level: enhanceLevel, apply: enhanceColor },
  ColorIncreasing: { level: enhanceIncreasingLevel, apply: enhanceColor },
  Contrast: { level: enhanceLevel, apply: enhanceContrast },
  ContrastIncreasing: { level: enhanceIncreasingLevel, apply: enhanceContrast },
  Brightness: { level: enhanceLevel, apply: enhanceBrightness },
  BrightnessIncreasing: { level: enhanceIncreasingLevel, apply: enhanceBrightness },
  Sharpness: { level: enhanceLevel, apply: enhanceSharpness },
  SharpnessIncreasing: { level: enhanceIncreasingLevel, apply: enhanceSharpness },
  ShearX: { level: signed(0.3), geometric: true, apply: shearX },
  ShearY: { level: signed(0.3), geometric: true, apply: shearY },
  TranslateXRel: { level: signed(0.45), geometric: true, apply: translateXRel },
  TranslateYRel: { level: signed(0.45), geometric: true, apply: translateYRel },
} satisfies Record<string, OpSpec>;

export type RandAugmentOpName = keyof typeof RAND_AUGMENT_OPS;

/** timm's _RAND_TRANSFORMS (the default set). */
export const RAND_TRANSFORMS: readonly RandAugmentOpName[] = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color', 'Contrast',
  'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel',
];

/** timm's _RAND_INCREASING_TRANSFORMS (`inc1`): the same operations, each stronger as the magnitude grows. */
export const RAND_INCREASING_TRANSFORMS: readonly RandAugmentOpName[] = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing', 'SolarizeAdd',
  'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing', 'ShearX', 'ShearY',
  'TranslateXRel', 'TranslateYRel',
];

/** timm's _RAND_CHOICE_WEIGHTS_0 (`w0`), by position in either set. */
export const RAND_CHOICE_WEIGHTS_0: readonly number[] = [0.025, 0.005, 0, 0.3, 0, 0.005, 0.005, 0.025, 0.005, 0.005, 0.025, 0.2, 0.2, 0.1, 0.1];

// ---------------------------------------------------------------- the policy string

export interface RandAugmentPolicy {
  /** `m`: the magnitude, 0 .. 10 (default 10). */
  magnitude: number;
  /** `n`: operations drawn per image (default 2). */
  numOps: number;
  /** `mstd`: standard deviation of the magnitude noise; Infinity (`mstd` > 100): uniform in [0, m]. Default 0. */
  magnitudeStd: number;
  /** `mmax`: magnitudes are clipped to [0, mmax] (default 10). */
  magnitudeMax: number;
  /** The operations (`inc1`: timm's increasing set). */
  ops: readonly RandAugmentOpName[];
  /** `w0`: timm's choice weights, drawn without replacement; absent: uniform with replacement. */
  weights?: readonly number[];
}

/** timm's probability of applying each drawn operation. */
export const RAND_AUGMENT_PROB = 0.5;

/** The official SwiftFormer recipe's policy (main.py `--aa`). */
export const OFFICIAL_RAND_AUGMENT = 'rand-m9-mstd0.5-inc1';

/**
 * Parses a timm RandAugment config string: `rand` followed by dash-separated sections `m<int>`,
 * `n<int>`, `mstd<float>`, `mmax<int>`, `inc1`, `w0`, in any order. Where timm would silently
 * read a string otherwise than it looks (`inc0` enables the increasing set, since bool('0') is
 * True; `mmax0` means 10; a section without digits is skipped; a repeated `mstd` keeps the first),
 * this is an error instead.
 */
export function parseRandAugment(config: string): RandAugmentPolicy {
  const bad = (why: string) => new SwiftFormerError('BAD_ARGUMENT', `RandAugment policy '${config}': ${why}`);
  if (typeof config !== 'string') throw new SwiftFormerError('BAD_ARGUMENT', `RandAugment policy must be a string like '${OFFICIAL_RAND_AUGMENT}', got ${JSON.stringify(config)}`);
  const [head, ...sections] = config.split('-');
  if (head !== 'rand') throw bad(`a RandAugment policy starts with 'rand' (timm's AutoAugment and AugMix policies are not supported), e.g. '${OFFICIAL_RAND_AUGMENT}'`);
  const policy: RandAugmentPolicy = { magnitude: LEVEL_DENOM, numOps: 2, magnitudeStd: 0, magnitudeMax: LEVEL_DENOM, ops: RAND_TRANSFORMS };
  const seen = new Set<string>();
  for (const section of sections) {
    const match = /^([a-z]*)(\d.*)$/.exec(section);
    if (!match) throw bad(`section '${section}' is not a key followed by a number (m9, n2, mstd0.5, mmax10, inc1, w0)`);
    const [, key, value] = match as unknown as [string, string, string];
    if (seen.has(key)) throw bad(`'${key}' is given twice`);
    seen.add(key);
    const int = (lo: number, hi: number) => {
      if (!/^\d+$/.test(value) || Number(value) < lo || Number(value) > hi) throw bad(`'${key}' takes an integer in [${lo}, ${hi}], got '${value}'`);
      return Number(value);
    };
    if (key === 'm') policy.magnitude = int(0, 100);
    else if (key === 'n') policy.numOps = int(0, 100);
    else if (key === 'mmax') policy.magnitudeMax = int(1, 100);
    else if (key === 'mstd') {
      if (!/^\d+(\.\d*)?([eE][+-]?\d+)?$/.test(value)) throw bad(`'mstd' takes a number >= 0, got '${value}'`);
      policy.magnitudeStd = Number(value) > 100 ? Infinity : Number(value);
    } else if (key === 'inc') {
      if (value !== '1') throw bad(`'inc${value}': timm reads any inc<digits> as inc1 (bool of a non-empty string); write inc1, or leave it out for the plain set`);
      policy.ops = RAND_INCREASING_TRANSFORMS;
    } else if (key === 'w') {
      if (value !== '0') throw bad(`timm has one set of choice weights, w0; got 'w${value}'`);
      policy.weights = RAND_CHOICE_WEIGHTS_0;
    } else throw bad(`unknown section '${section}' (timm's: m, n, mstd, mmax, inc, w)`);
  }
  if (policy.weights && policy.numOps > policy.weights.filter((w) => w > 0).length) {
    throw bad(`w0 draws without replacement from the ${policy.weights.filter((w) => w > 0).length} operations of non-zero weight: n${policy.numOps} is too many`);
  }
  return policy;
}

// ---------------------------------------------------------------- drawing and applying

/** One drawn operation of one image: skipped (probability failed), or applied with its argument. */
export interface DrawnOp {
  name: RandAugmentOpName;
  applied: boolean;
  /** The clipped magnitude (applied operations). */
  magnitude?: number;
  /** The operation's argument (operations with one). */
  arg?: number;
  /** The filter of a geometric operation. */
  resample?: Resample;
}

/** Indices of `count` operations: uniform with replacement, or by weight without replacement (numpy's choice). */
function chooseOps(policy: RandAugmentPolicy, rng: Random): number[] {
  const k = policy.ops.length;
  if (!policy.weights) return Array.from({ length: policy.numOps }, () => Math.floor(rng.next() * k));
  const weights = [...policy.weights];
  const chosen: number[] = [];
  for (let i = 0; i < policy.numOps; i++) {
    // The first operation whose cumulative weight exceeds u (numpy's searchsorted, side='right').
    let u = rng.next() * weights.reduce((a, b) => a + b, 0);
    let pick = -1;
    for (let j = 0; j < k && (pick < 0 || u >= 0); j++) {
      if (weights[j]! <= 0) continue;
      pick = j;
      u -= weights[j]!;
    }
    chosen.push(pick);
    weights[pick] = 0;
  }
  return chosen;
}

/**
 * The random part of RandAugment for one image, in timm's order: the operations, then for each
 * the coin for applying it (random() > 0.5 skips), the magnitude (Normal(m, mstd), or uniform in
 * [0, m]; clipped to [0, mmax]), the argument's sign, and the filter when it is random.
 */
export function drawRandAugment(policy: RandAugmentPolicy, interpolation: Interpolation, rng: Random): DrawnOp[] {
  return chooseOps(policy, rng).map((index) => {
    const name = policy.ops[index]!;
    const spec: OpSpec = RAND_AUGMENT_OPS[name];
    if (rng.next() > RAND_AUGMENT_PROB) return { name, applied: false };
    let magnitude = policy.magnitude;
    if (policy.magnitudeStd === Infinity) magnitude = rng.uniform(0, magnitude);
    else if (policy.magnitudeStd > 0) magnitude = magnitude + policy.magnitudeStd * rng.normal();
    magnitude = Math.max(0, Math.min(magnitude, policy.magnitudeMax));
    const op: DrawnOp = { name, applied: true, magnitude };
    if (spec.level) op.arg = spec.level(magnitude, rng);
    if (spec.geometric) op.resample = interpolation === 'random' ? (rng.next() < 0.5 ? 'bilinear' : 'bicubic') : interpolation;
    return op;
  });
}

/** Applies drawn operations in order; returns a new image (the input is not modified). */
export function applyDrawn(image: RGBImage, drawn: readonly DrawnOp[], fill: RGB): RGBImage {
  let out = image;
  for (const op of drawn) {
    if (!op.applied) continue;
    const spec: OpSpec = RAND_AUGMENT_OPS[op.name];
    out = spec.apply(out, op.arg ?? 0, op.resample ?? 'bilinear', fill);
  }
  return out === image ? { ...image, data: image.data.slice() } : out;
}

/** timm's img_mean: the normalization mean as 8-bit color, min(255, round(255 m)) with Python's round. */
export function fillColor(mean: readonly number[]): RGB {
  const [r, g, b] = mean.map((m) => Math.min(255, roundHalfEven(255 * m)));
  return [r!, g!, b!];
}

export interface RandAugment {
  readonly policy: RandAugmentPolicy;
  /** One image's RandAugment: draws from `rng`, returns a new image. */
  apply(image: RGBImage, rng: Random): RGBImage;
}

/** RandAugment as timm's rand_augment_transform(config, {img_mean, interpolation}) builds it. */
export function randAugment(config: string, options: { mean: readonly number[]; interpolation: Interpolation }): RandAugment {
  const policy = parseRandAugment(config);
  const fill = fillColor(options.mean);
  return { policy, apply: (image, rng) => applyDrawn(image, drawRandAugment(policy, options.interpolation, rng), fill) };
}
