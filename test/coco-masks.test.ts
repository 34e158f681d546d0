import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { rleFromBbox, rleFromPolygon } from '../src/data/polygon.js';
import {
  bboxIou, decodeRle, encodeMask, mergeRles, rleArea, rleFromString, rleIou, rleToBbox, rleToString, type Bbox, type Rle,
} from '../src/data/rle.js';
import { parseSegmentation, segmentationToRle } from '../src/data/coco.js';
import { numpyMean, numpySum } from '../src/metrics/numeric.js';

interface Compressed { size: [number, number]; counts: string }
const refs = JSON.parse(readFileSync(new URL('./data/coco/masks.json', import.meta.url), 'utf8'));
const fromRef = (r: Compressed): Rle => rleFromString(r.counts, r.size[0], r.size[1]);
const bitsOf = (mask: Uint8Array) => Array.from(mask, (v) => (v ? '1' : '0')).join('');
const maskOf = (bits: string) => Uint8Array.from(bits, (c) => (c === '1' ? 1 : 0));

describe('RLE, worked by hand', () => {
  test('encode runs down the columns, starting with background', () => {
    // 2x3 mask, rows [0 1 1] / [0 1 0]. Columns: (0,0), (1,1), (1,0) -> 0 0 1 1 1 0 -> runs 2, 3, 1.
    const rle = encodeMask(Uint8Array.of(0, 1, 1, 0, 1, 0), 2, 3);
    assert.deepEqual([...rle.counts], [2, 3, 1]);
    assert.equal(rleArea(rle), 3);
    assert.deepEqual(rleToBbox(rle), [1, 0, 2, 2]);
    assert.deepEqual([...decodeRle(rle)], [0, 1, 1, 0, 1, 0]);
    // A mask starting with foreground has a leading zero count.
    assert.deepEqual([...encodeMask(Uint8Array.of(1, 1, 1, 1), 2, 2).counts], [0, 4]);
  });

  test('compressed strings: 5 bits per character from 48, the third count on as a difference', () => {
    // counts [2, 3, 1]: '2' = 48 + 2, '3', '1' (no difference before the fourth count).
    assert.equal(rleToString({ height: 2, width: 3, counts: Uint32Array.of(2, 3, 1) }), '231');
    // [1, 40, 1, 38]: 40 = 0b101000 -> low 5 bits 8 with the continue bit (0x20): 48 + 40 = 'X',
    // then 1 -> '1'; the fourth count is 38 - 40 = -2 -> 0b11110 with the sign bit 0x10 set: 48 + 30 = 'N'.
    const s = rleToString({ height: 10, width: 8, counts: Uint32Array.of(1, 40, 1, 38) });
    assert.equal(s, '1X11N');
    assert.deepEqual([...rleFromString(s, 10, 8).counts], [1, 40, 1, 38]);
  });

  test('a rectangle on pixel boundaries rasterizes to its own area', () => {
    // [2,2]-[10,8]: pixel centres x + .5 in (2, 10) -> columns 2..9; rows 2..7: 8 x 6 = 48.
    const rle = rleFromPolygon([2, 2, 10, 2, 10, 8, 2, 8], 10, 12);
    assert.equal(rleArea(rle), 48);
    assert.deepEqual(rleToBbox(rle), [2, 2, 8, 6]);
  });

  test('IoU with a crowd region is the fraction of the detection inside it', () => {
    // 4x4 masks by columns. dt: columns 1-2 (8 px); gt: columns 0-1 (8 px). I = 4 (column 1).
    const cols = (from: number, to: number) => encodeMask(Uint8Array.from({ length: 16 }, (_, i) => (i % 4 >= from && i % 4 <= to ? 1 : 0)), 4, 4);
    assert.equal(rleIou([cols(1, 2)], [cols(0, 1)], [false])[0]![0], 4 / 12); // union 12
    assert.equal(rleIou([cols(1, 2)], [cols(0, 1)], [true])[0]![0], 4 / 8); //  the detection's area 8
    assert.equal(rleIou([cols(1, 1)], [cols(0, 2)], [true])[0]![0], 1); //     all of it inside the crowd
    assert.equal(rleIou([cols(3, 3)], [cols(0, 1)], [true])[0]![0], 0); //     disjoint
    const boxes = bboxIou([[0, 0, 2, 2]], [[1, 0, 2, 2]], [true]);
    assert.equal(boxes[0]![0], 0.5); // I = 2, the detection's area = 4
  });
});

describe('RLE against pycocotools (scripts/make-coco-refs.py)', () => {
  test('encode and decode', () => {
    for (const c of refs.encode as { height: number; width: number; mask: string; rle: Compressed }[]) {
      const rle = encodeMask(maskOf(c.mask), c.height, c.width);
      assert.equal(rleToString(rle), c.rle.counts);
      assert.equal(bitsOf(decodeRle(fromRef(c.rle))), c.mask);
    }
  });

  test('compressed strings with large counts', () => {
    for (const c of refs.strings as { counts: number[]; rle: Compressed; area: number; bbox: Bbox }[]) {
      const rle = { height: c.rle.size[0], width: c.rle.size[1], counts: Uint32Array.from(c.counts) };
      assert.equal(rleToString(rle), c.rle.counts);
      assert.deepEqual([...fromRef(c.rle).counts], c.counts);
      assert.equal(rleArea(rle), c.area);
      assert.deepEqual(rleToBbox(rle), c.bbox);
    }
  });

  test('merge: union, intersection, and RLEs of different sizes', () => {
    for (const c of refs.merge as { rles: Compressed[]; union: Compressed; intersection: Compressed }[]) {
      const rles = c.rles.map(fromRef);
      for (const [intersect, want] of [[false, c.union], [true, c.intersection]] as const) {
        const m = mergeRles(rles, intersect);
        assert.deepEqual([m.height, m.width], want.size);
        assert.equal(rleToString(m), want.counts);
      }
    }
  });

  test('area and bbox', () => {
    for (const c of refs.rle as { rle: Compressed; area: number; bbox: Bbox }[]) {
      assert.equal(rleArea(fromRef(c.rle)), c.area);
      assert.deepEqual(rleToBbox(fromRef(c.rle)), c.bbox);
    }
  });

  test('mask IoU, with crowds and a size mismatch (-1)', () => {
    for (const c of refs.iou as { dt: Compressed[]; gt: Compressed[]; iscrowd: number[]; iou: number[][] }[]) {
      const got = rleIou(c.dt.map(fromRef), c.gt.map(fromRef), c.iscrowd.map(Boolean)).map((r) => [...r]);
      assert.deepEqual(got, c.iou);
    }
  });

  test('box IoU, with crowds', () => {
    for (const c of refs.bboxIou as { dt: Bbox[]; gt: Bbox[]; iscrowd: number[]; iou: number[][] }[]) {
      assert.deepEqual(bboxIou(c.dt, c.gt, c.iscrowd.map(Boolean)).map((r) => [...r]), c.iou);
    }
  });

  test('polygon rasterization (rleFrPoly) of awkward polygons', () => {
    for (const c of refs.polygons as { polygon: number[]; height: number; width: number; rle: Compressed; area: number; mask: string }[]) {
      const rle = rleFromPolygon(c.polygon, c.height, c.width);
      assert.equal(rleToString(rle), c.rle.counts, JSON.stringify(c.polygon));
      assert.equal(rleArea(rle), c.area);
      assert.equal(bitsOf(decodeRle(rle)), c.mask);
    }
  });

  test('multi-part polygons, boxes and uncompressed RLE, as frPyObjects / annToRLE convert them', () => {
    const mp = refs.multipart as { segmentation: number[][]; height: number; width: number; rle: Compressed };
    const rle = segmentationToRle(parseSegmentation(mp.segmentation, 'test'), { id: 1, height: mp.height, width: mp.width }, 'test');
    assert.equal(rleToString(rle), mp.rle.counts);
    const dg = refs.degenerate as typeof mp;
    const drle = segmentationToRle(parseSegmentation(dg.segmentation, 'test'), { id: 1, height: dg.height, width: dg.width }, 'test');
    assert.equal(rleToString(drle), dg.rle.counts);
    for (const c of refs.boxes as { bbox: Bbox; height: number; width: number; rle: Compressed }[]) {
      assert.equal(rleToString(rleFromBbox(c.bbox, c.height, c.width)), c.rle.counts);
    }
    for (const c of refs.uncompressed as { rle: { size: [number, number]; counts: number[] }; compressed: Compressed }[]) {
      const r = segmentationToRle(parseSegmentation(c.rle, 'test'), undefined, 'test');
      assert.equal(rleToString(r), c.compressed.counts);
    }
  });

  test("NumPy's summation order (np.sum, np.mean)", () => {
    const cases = JSON.parse(readFileSync(new URL('./data/coco/numpy-sums.json', import.meta.url), 'utf8')).cases as { length: number; scale: number; sum: number; mean: number }[];
    for (const c of cases) {
      const a = Array.from({ length: c.length }, (_, i) => (((i * 7919) % 10007) / 10007 + 1 / (i + 3)) * c.scale);
      assert.equal(numpySum(a), c.sum, `length ${c.length}`);
      assert.equal(numpyMean(a), c.mean, `length ${c.length}`);
    }
  });
});

describe('bad RLE input is a clear error', () => {
  test('strings, counts, polygons', () => {
    assert.throws(() => rleFromString('1 2', 2, 2), /outside the alphabet/);
    assert.throws(() => rleFromString('X', 2, 2), /end in the middle of a count/);
    assert.throws(() => decodeRle({ height: 2, width: 2, counts: Uint32Array.of(1, 2) }), /add up to 3 pixels, but size \[2, 2\] has 4/);
    assert.throws(() => parseSegmentation([[1, 2, 3, 4, 5, 6, 7]], 'annotation 9'), /annotation 9: 'segmentation' polygon 0 has 7 coordinates/);
    assert.throws(() => parseSegmentation([[1, 2, 3, 4]], 'annotation 9'), /has 4 coordinates/);
    assert.throws(() => parseSegmentation({ size: [2, 2], counts: [1, 1] }, 'annotation 3'), /annotation 3: 'segmentation': counts add up to 2/);
    assert.throws(() => parseSegmentation({ size: [2, 2], counts: '1 ' }, 'annotation 3'), /annotation 3: 'segmentation' compressed RLE/);
    assert.throws(() => rleFromPolygon([0, 0, 1e12, 0, 0, 1], 10, 10), /not a finite coordinate/);
    assert.throws(() => rleFromPolygon([0, 0, 1e7, 0, 0, 1], 10, 10), /boundary has \d+ points/);
  });
});
