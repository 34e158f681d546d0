/**
 * maskApi's polygon rasterization (rleFrPoly), step for step, because COCO's masks and areas are
 * defined by it and a generic scanline fill differs along every edge:
 *
 *  1. vertices are scaled by 5 and rounded ((int)(5x + .5), truncating toward zero);
 *  2. each edge is walked one step per unit of its longer axis, the other coordinate rounded the
 *     same way (edges are always walked from their lower end, so both directions agree);
 *  3. wherever the walk crosses a vertical pixel-centre line (scaled x = 5i + 2), it records the
 *     first pixel row whose centre lies below the crossing, clamped to [0, h];
 *  4. those points, as column-major offsets, sorted, become run boundaries (the even-odd rule).
 */
import { SwiftFormerError } from '../core/errors.js';
import { checkRleSize, type Bbox, type Rle } from './rle.js';

const SCALE = 5;

/** The most boundary points a polygon may have after upsampling (a guard against absurd coordinates). */
export const MAX_POLYGON_POINTS = 2 ** 24;

/** (int)(v + .5) in C: truncation toward zero. */
const roundHalfUpTrunc = (v: number) => Math.trunc(v + 0.5);

/** rleFrPoly of a flat [x0, y0, x1, y1, ...] polygon on a height x width image. */
export function rleFromPolygon(xy: ArrayLike<number>, height: number, width: number): Rle {
  checkRleSize(height, width, 'polygon');
  const k = Math.floor(xy.length / 2);
  if (k < 1) throw new SwiftFormerError('BAD_DATA', `a polygon needs at least one vertex`);
  const x = new Int32Array(k + 1);
  const y = new Int32Array(k + 1);
  for (let j = 0; j < k; j++) {
    const px = xy[2 * j]!;
    const py = xy[2 * j + 1]!;
    if (!Number.isFinite(px) || !Number.isFinite(py) || Math.abs(px) > 2 ** 27 || Math.abs(py) > 2 ** 27) {
      throw new SwiftFormerError('BAD_DATA', `polygon vertex ${j} (${px}, ${py}) is not a finite coordinate within ±2^27`);
    }
    x[j] = roundHalfUpTrunc(SCALE * px);
    y[j] = roundHalfUpTrunc(SCALE * py);
  }
  x[k] = x[0]!;
  y[k] = y[0]!;

  let total = 0;
  for (let j = 0; j < k; j++) total += Math.max(Math.abs(x[j]! - x[j + 1]!), Math.abs(y[j]! - y[j + 1]!)) + 1;
  if (total > MAX_POLYGON_POINTS) {
    throw new SwiftFormerError('BAD_DATA', `polygon boundary has ${total} points after upsampling by ${SCALE} (at most ${MAX_POLYGON_POINTS})`);
  }

  // Dense boundary points.
  const u = new Int32Array(total);
  const v = new Int32Array(total);
  let m = 0;
  for (let j = 0; j < k; j++) {
    let xs = x[j]!;
    let xe = x[j + 1]!;
    let ys = y[j]!;
    let ye = y[j + 1]!;
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      [xs, xe] = [xe, xs];
      [ys, ye] = [ye, ys];
    }
    // dx = dy = 0 makes s NaN, as in C; that point's v is never read (its neighbours share its u).
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    if (dx >= dy) {
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u[m] = t + xs;
        v[m] = roundHalfUpTrunc(ys + s * t);
        m++;
      }
    } else {
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v[m] = t + ys;
        u[m] = roundHalfUpTrunc(xs + s * t);
        m++;
      }
    }
  }

  // Points where the boundary crosses a pixel-centre column, downsampled.
  const wMinus1 = width === 0 ? 2 ** 64 - 1 : width - 1; // siz arithmetic: w - 1 wraps for w = 0
  const offsets: number[] = [];
  for (let j = 1; j < m; j++) {
    if (u[j] === u[j - 1]) continue;
    let xd = u[j]! < u[j - 1]! ? u[j]! : u[j]! - 1;
    xd = (xd + 0.5) / SCALE - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > wMinus1) continue;
    let yd = v[j]! < v[j - 1]! ? v[j]! : v[j - 1]!;
    yd = (yd + 0.5) / SCALE - 0.5;
    if (yd < 0) yd = 0;
    else if (yd > height) yd = height;
    yd = Math.ceil(yd);
    offsets.push(xd * height + yd);
  }

  // Run lengths from the sorted offsets; a zero-length run merges its two neighbours.
  offsets.push(height * width);
  const a = Uint32Array.from(offsets).sort();
  let previous = 0;
  for (let j = 0; j < a.length; j++) {
    const t = a[j]!;
    a[j] = t - previous;
    previous = t;
  }
  const b: number[] = [a[0]!];
  for (let j = 1; j < a.length;) {
    if (a[j]! > 0) b.push(a[j++]!);
    else {
      j++;
      if (j < a.length) b[b.length - 1]! += a[j++]!;
    }
  }
  return { height, width, counts: Uint32Array.from(b) };
}

/** rleFrBbox: a box rasterized as the polygon of its four corners. */
export function rleFromBbox(box: Bbox, height: number, width: number): Rle {
  const [xs, ys] = box;
  const xe = xs + box[2];
  const ye = ys + box[3];
  return rleFromPolygon([xs, ys, xs, ye, xe, ye, xe, ys], height, width);
}
