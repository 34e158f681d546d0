/**
 * COCO's run-length encoded masks, giving the results of pycocotools' maskApi.c exactly:
 * column-major runs that alternate starting with background (the first count may be 0), merge
 * (union / intersection), area, IoU with the crowd rule, the bounding box of an RLE, box IoU, and
 * the compressed string form (LEB128-like, 6 bits per character in '0'..'o', each count from the
 * third on stored as its difference from the count two before).
 *
 * Deliberate differences, all on input pycocotools mishandles: masks are binarized (nonzero is
 * foreground; maskApi starts a new run at every change of byte value), and a compressed string
 * with a character outside '0'..'o' or a count needing more than 6 characters is an error
 * (maskApi reads bytes past its shifts' range). Sizes stay below 2^29 pixels, where every
 * count fits in 6 characters.
 */
import { SwiftFormerError } from '../core/errors.js';

/** An uncompressed RLE of a height x width mask: counts of alternating 0 / 1 runs down the columns. */
export interface Rle {
  height: number;
  width: number;
  counts: Uint32Array;
}

/** [x, y, width, height], COCO's box. */
export type Bbox = [number, number, number, number];

/** The largest mask an RLE may describe (every count then fits in 6 characters of the string form). */
export const MAX_RLE_PIXELS = 2 ** 29 - 1;

export function checkRleSize(height: number, width: number, what = 'RLE'): void {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 0 || width < 0 || height * width > MAX_RLE_PIXELS) {
    throw new SwiftFormerError('BAD_DATA', `${what}: size [${height}, ${width}] must be non-negative integers with at most ${MAX_RLE_PIXELS} pixels`);
  }
}

/** rleEncode of a row-major height x width mask (our images' layout); nonzero is foreground. */
export function encodeMask(mask: ArrayLike<number>, height: number, width: number): Rle {
  checkRleSize(height, width, 'mask');
  if (mask.length !== height * width) throw new SwiftFormerError('BAD_SHAPE', `mask has ${mask.length} values, ${height}x${width} needs ${height * width}`);
  const counts: number[] = [];
  let previous = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const v = mask[y * width + x] ? 1 : 0;
      if (v !== previous) {
        counts.push(run);
        run = 0;
        previous = v;
      }
      run++;
    }
  }
  counts.push(run);
  return { height, width, counts: Uint32Array.from(counts) };
}

/** rleDecode into a row-major mask of 0 / 1. Counts must add up to height x width. */
export function decodeRle(rle: Rle): Uint8Array {
  const { height, width, counts } = rle;
  checkRleSize(height, width);
  checkCountsTotal(rle);
  const mask = new Uint8Array(height * width);
  let j = 0; // column-major position
  let v = 0;
  for (const c of counts) {
    if (v) for (let k = j; k < j + c; k++) mask[(k % height) * width + Math.floor(k / height)] = 1;
    j += c;
    v ^= 1;
  }
  return mask;
}

/** A clear error where maskApi would read or write past the mask. */
export function checkCountsTotal(rle: Rle, what = 'RLE'): void {
  let total = 0;
  for (const c of rle.counts) total += c;
  if (total !== rle.height * rle.width) {
    throw new SwiftFormerError('BAD_DATA', `${what}: counts add up to ${total} pixels, but size [${rle.height}, ${rle.width}] has ${rle.height * rle.width}`);
  }
}

/**
 * rleMerge: the union (or intersection) of RLEs of one size. Of RLEs of different sizes the
 * result is an empty 0x0 RLE, as maskApi's; of none, too.
 */
export function mergeRles(rles: readonly Rle[], intersect = false): Rle {
  if (rles.length === 0) return { height: 0, width: 0, counts: new Uint32Array(0) };
  const { height, width } = rles[0]!;
  if (rles.length === 1) return { height, width, counts: rles[0]!.counts.slice() };
  let acc: Uint32Array = rles[0]!.counts;
  for (let i = 1; i < rles.length; i++) {
    const b = rles[i]!;
    if (b.height !== height || b.width !== width) return { height: 0, width: 0, counts: new Uint32Array(0) };
    acc = mergeTwo(acc, b.counts, intersect);
  }
  return { height, width, counts: acc };
}

/**
 * The run walk of maskApi's rleMerge and rleIou: both RLEs at once, one segment per step, where
 * neither changes value. `visit` gets the segment's length, both values on it, and whether it is
 * the last (a zero-length segment comes first when a mask starts with foreground).
 */
function walkRuns(A: Uint32Array, B: Uint32Array, visit: (c: number, va: number, vb: number, last: boolean) => void): void {
  let ca = A[0] ?? 0;
  let cb = B[0] ?? 0;
  let va = 0;
  let vb = 0;
  let a = 1;
  let b = 1;
  let ct = 1;
  while (ct > 0) {
    const c = Math.min(ca, cb);
    const [pa, pb] = [va, vb];
    ct = 0;
    ca -= c;
    if (!ca && a < A.length) {
      ca = A[a++]!;
      va ^= 1;
    }
    ct += ca;
    cb -= c;
    if (!cb && b < B.length) {
      cb = B[b++]!;
      vb ^= 1;
    }
    ct += cb;
    visit(c, pa, pb, ct === 0);
  }
}

/** One step of rleMerge: a run ends where the combined value changes, and at the end. */
function mergeTwo(A: Uint32Array, B: Uint32Array, intersect: boolean): Uint32Array {
  const out: number[] = [];
  let current = 0;
  let cc = 0;
  walkRuns(A, B, (c, va, vb, last) => {
    const v = intersect ? va & vb : va | vb;
    if (v !== current) {
      out.push(cc);
      cc = 0;
      current = v;
    }
    cc += c;
    if (last) out.push(cc);
  });
  return Uint32Array.from(out);
}

/** rleArea: the foreground pixel count (the odd-indexed counts). */
export function rleArea(rle: Rle): number {
  let a = 0;
  for (let j = 1; j < rle.counts.length; j += 2) a += rle.counts[j]!;
  return a;
}

/**
 * rleToBbox: the tightest [x, y, w, h] around the foreground, [0, 0, 0, 0] for none. A run that
 * wraps into the next column spans the full height, as in maskApi. A trailing odd count is
 * ignored.
 */
export function rleToBbox(rle: Rle): Bbox {
  const { height: h, width: w, counts } = rle;
  const m = Math.floor(counts.length / 2) * 2;
  if (m === 0) return [0, 0, 0, 0];
  let xs = w;
  let ys = h;
  let xe = 0;
  let ye = 0;
  let cc = 0;
  let xp = 0;
  for (let j = 0; j < m; j++) {
    cc += counts[j]!;
    const t = (cc - (j % 2)) >>> 0; // uint arithmetic, as in C
    const y = t % h;
    const x = (t - y) / h;
    if (j % 2 === 0) xp = x;
    else if (xp < x) {
      ys = 0;
      ye = h - 1;
    }
    xs = Math.min(xs, x);
    xe = Math.max(xe, x);
    ys = Math.min(ys, y);
    ye = Math.max(ye, y);
  }
  return [xs, ys, xe - xs + 1, ye - ys + 1];
}

/**
 * bbIou: IoU of every detection box with every ground-truth box, as rows per detection. Against a
 * crowd box the union is the detection's own area (the fraction of the detection inside it).
 */
export function bboxIou(dt: readonly Bbox[], gt: readonly Bbox[], iscrowd: readonly boolean[] = []): Float64Array[] {
  const out = dt.map(() => new Float64Array(gt.length));
  gt.forEach((G, g) => {
    const ga = G[2] * G[3];
    const crowd = iscrowd[g] === true;
    dt.forEach((D, d) => {
      const da = D[2] * D[3];
      const w = Math.min(D[2] + D[0], G[2] + G[0]) - Math.max(D[0], G[0]);
      if (w <= 0) return;
      const h = Math.min(D[3] + D[1], G[3] + G[1]) - Math.max(D[1], G[1]);
      if (h <= 0) return;
      const i = w * h;
      out[d]![g] = i / (crowd ? da : da + ga - i);
    });
  });
  return out;
}

/**
 * rleIou: mask IoU of every detection with every ground truth, rows per detection. Pairs whose
 * boxes do not overlap are 0 without walking the runs; masks of different sizes give -1; against
 * a crowd region the union is the detection's area.
 */
export function rleIou(dt: readonly Rle[], gt: readonly Rle[], iscrowd: readonly boolean[] = []): Float64Array[] {
  const o = bboxIou(dt.map(rleToBbox), gt.map(rleToBbox), iscrowd);
  gt.forEach((G, g) => {
    const crowd = iscrowd[g] === true;
    dt.forEach((D, d) => {
      if (!(o[d]![g]! > 0)) return;
      if (D.height !== G.height || D.width !== G.width) {
        o[d]![g] = -1;
        return;
      }
      const [inter, union] = intersectionAndUnion(D.counts, G.counts);
      const u = inter === 0 ? 1 : crowd ? rleArea(D) : union;
      o[d]![g] = inter / u;
    });
  });
  return o;
}

/** Intersection and union of two RLEs' foregrounds, as rleIou walks them. */
function intersectionAndUnion(A: Uint32Array, B: Uint32Array): [number, number] {
  let i = 0;
  let u = 0;
  walkRuns(A, B, (c, va, vb) => {
    if (va || vb) u += c;
    if (va && vb) i += c;
  });
  return [i, u];
}

/** rleToString: COCO's compressed counts. */
export function rleToString(rle: Rle): string {
  const { counts } = rle;
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i]!;
    if (i > 2) x -= counts[i - 2]!;
    let more = true;
    while (more) {
      let c = x - 32 * Math.floor(x / 32); // x & 0x1f on a two's-complement long
      x = Math.floor(x / 32); //              x >>= 5 (arithmetic)
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** rleFrString: the inverse of rleToString for a height x width mask. */
export function rleFromString(s: string, height: number, width: number): Rle {
  checkRleSize(height, width);
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) throw new SwiftFormerError('BAD_DATA', `compressed RLE counts end in the middle of a count`);
      const code = s.charCodeAt(p);
      if (code < 48 || code > 111) {
        throw new SwiftFormerError('BAD_DATA', `compressed RLE counts have ${JSON.stringify(s[p])} at position ${p}, outside the alphabet '0'..'o'`);
      }
      if (k === 6) throw new SwiftFormerError('BAD_DATA', `compressed RLE count at position ${p} is longer than 6 characters (over 2^29)`);
      const c = code - 48;
      x += (c & 0x1f) * 32 ** k;
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 32 ** k; // sign extension
    }
    if (counts.length > 2) x += counts[counts.length - 2]!;
    if (x < 0) throw new SwiftFormerError('BAD_DATA', `compressed RLE count ${counts.length} is negative (${x})`);
    counts.push(x);
  }
  return { height, width, counts: Uint32Array.from(counts) };
}
