/**
 * mmsegmentation's training pipeline on image/label pairs (src/train/segmentation-augment.ts):
 * OpenCV's 8-bit HSV conversions and INTER_NEAREST label resize against libopencv 4.6's own output,
 * PhotoMetricDistortion's `convert` against numpy's float32 arithmetic (test/data/seg-augment, from
 * scripts/make-seg-augment-refs.py), and the random steps (rescale ratio and target size, the
 * cat_max_ratio crop and its redraws, flip, the photometric branches and their order, padding)
 * on cases worked out by hand with scripted draws.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Random } from '../src/core/random.js';
import { segmentationInput } from '../src/preprocess/segmentation.js';
import {
  augmentPair, convertScale, cropPair, flipPair, hsv8ToRgb, photometricDistortion, randomCrop, randomScale, rescalePair, resizeLabelNearest,
  rgbToHsv8, writeTrainingPair, type Pair, type SegmentationPipeline,
} from '../src/train/segmentation-augment.js';
import type { RGBImage } from '../src/preprocess/resize.js';

const dir = new URL('data/seg-augment/', import.meta.url);
const index = JSON.parse(readFileSync(new URL('index.json', dir), 'utf8')) as {
  files: Record<string, number[]>;
  nearest: { src: string; dst: string; from: [number, number]; to: [number, number] }[];
  convert: { alpha: number; beta: number; out: number[] }[];
};
const bin = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));

function differing(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

/** A Random whose draws are the given values, in order (and fails past them). */
function scripted(values: number[]): Random & { used: () => number } {
  let i = 0;
  const rng = new Random(0);
  rng.next = () => {
    if (i >= values.length) throw new Error(`draw ${i + 1} was not scripted`);
    return values[i++]!;
  };
  return Object.assign(rng, { used: () => i });
}

function image(width: number, height: number, seed = 1): RGBImage {
  const rng = new Random(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(rng.next() * 256)) };
}

describe('pixel operations against OpenCV 4.6 and numpy', () => {
  test('COLOR_RGB2HSV on 8-bit pixels: every edge combination, all grays, 20000 random pixels', () => {
    const data = bin('rgb.bin');
    rgbToHsv8(data);
    assert.equal(differing(data, bin('rgb2hsv.bin')), 0);
  });

  test("COLOR_HSV2RGB on 8-bit pixels, in rows of 257 (vector loop, then one scalar pixel) and of 31 (scalar only)", () => {
    const wide = bin('hsv.bin');
    hsv8ToRgb(wide, 257);
    assert.equal(differing(wide, bin('hsv2rgb.bin')), 0, 'rows of 257');
    const narrow = bin('hsv-narrow.bin');
    hsv8ToRgb(narrow, 31);
    assert.equal(differing(narrow, bin('hsv2rgb-narrow.bin')), 0, 'rows of 31');
    // The two loops round differently: the same pixel comes out differently by column.
    const pixel = [0, 1, 1]; // G = V (1 - S) = 0.996: truncated to 0 by the vector loop, rounded to 1 by the scalar one
    const row = Uint8Array.from({ length: 33 * 3 }, (_, i) => pixel[i % 3]!);
    hsv8ToRgb(row, 33);
    assert.notDeepEqual([...row.subarray(0, 3)], [...row.subarray(32 * 3)]);
  });

  test(`INTER_NEAREST label resize, bit for bit on ${index.nearest.length} cases (up, down, non-integer, one axis, single rows)`, () => {
    for (const c of index.nearest) {
      const got = resizeLabelNearest({ width: c.from[0], height: c.from[1], data: bin(c.src) }, c.to[0], c.to[1]);
      assert.deepEqual([got.width, got.height], c.to);
      assert.equal(differing(got.data, bin(c.dst)), 0, `${c.from} -> ${c.to}`);
    }
  });

  test('convert: np.clip(x.astype(float32) * alpha + beta, 0, 255).astype(uint8) on all 256 values', () => {
    for (const c of index.convert) {
      const data = Uint8Array.from({ length: 256 }, (_, i) => i);
      convertScale(data, c.alpha, c.beta);
      assert.deepEqual([...data], c.out, `alpha ${c.alpha}, beta ${c.beta}`);
    }
  });
});

describe("mmseg's random steps, worked by hand", () => {
  const pair = (w: number, h: number, label: (x: number, y: number) => number): Pair => ({
    image: image(w, h), label: { width: w, height: h, data: Uint8Array.from({ length: w * h }, (_, i) => label(i % w, Math.floor(i / w))) },
  });

  test('Resize with ratio_range: ratio = U * (hi - lo) + lo, scale = (int(long * r), int(short * r)), keep-ratio size', () => {
    // U = 0.25 on [0.5, 2.0]: ratio 0.875; (512, 128) -> (448, 112).
    assert.deepEqual(randomScale(scripted([0.25]), [512, 128], [0.5, 2]), [448, 112]);
    // U = 0.999 -> ratio 1.9985 -> (1023, 255): int() truncates.
    assert.deepEqual(randomScale(scripted([0.999]), [512, 128], [0.5, 2]), [1023, 255]);
    // A 128x96 pair into (448, 112): factor min(448/128, 112/96) = 7/6 -> 149x112; the label by nearest.
    const p = rescalePair(pair(128, 96, (x) => (x < 64 ? 1 : 2)), [448, 112]);
    assert.deepEqual([p.image.width, p.image.height, p.label.width, p.label.height], [149, 112, 149, 112]);
    // Column x of the label takes source column floor(x * 128 / 149): 74 -> 63 (class 1), 75 -> 64 (class 2).
    assert.deepEqual([p.label.data[74], p.label.data[75]], [1, 2]);
  });

  test('RandomCrop: offsets randint(0, margin + 1), redrawn while one class holds >= cat_max_ratio of the labelled pixels', () => {
    // 8x8: columns 0-3 class 1, 4-7 class 2, row 0 ignored. A 4x4 crop at x = 0 holds one class.
    const p = pair(8, 8, (x, y) => (y === 0 ? 255 : x < 4 ? 1 : 2));
    // Draw 1: (y, x) = (floor(0.1 * 5), floor(0 * 5)) = (0, 0): class 1 alone -> redraw.
    // Draw 2: (floor(0.5 * 5), floor(0.5 * 5)) = (2, 2): 8 + 8 pixels, 50% < 75% -> kept.
    const rng = scripted([0.1, 0, 0.5, 0.5]);
    const crop = randomCrop(p, rng, [4, 4], 0.75, 255);
    assert.equal(rng.used(), 4);
    assert.deepEqual([...crop.label.data], [1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2]);
    assert.deepEqual([...crop.image.data.subarray(0, 3)], [...p.image.data.subarray((2 * 8 + 2) * 3, (2 * 8 + 2) * 3 + 3)]);
    // A crop whose only other pixels are ignored counts as one class: at (0, 3) it holds 1 (3 columns
    // minus row 0) and 2 (one column); 9 / 12 = 75% is not below 0.75 -> redrawn.
    const again = scripted([0, 0.6, 0.5, 0.5]);
    randomCrop(p, again, [4, 4], 0.75, 255);
    assert.equal(again.used(), 4);
    // Never balanced: 10 redraws, then the 11th box is taken as it is (22 draws).
    const flat = pair(8, 8, () => 3);
    const capped = scripted(Array.from({ length: 22 }, (_, i) => (i === 20 || i === 21 ? 0.99 : 0)));
    const last = randomCrop(flat, capped, [4, 4], 0.75, 255);
    assert.equal(capped.used(), 22);
    assert.deepEqual([...last.image.data.subarray(0, 3)], [...flat.image.data.subarray((4 * 8 + 4) * 3, (4 * 8 + 4) * 3 + 3)]);
    // cat_max_ratio 1: one draw, no check. An image smaller than the crop: margin 0, the whole image.
    const off = scripted([0.9, 0.9]);
    const small = randomCrop(pair(3, 2, () => 1), off, [4, 4], 1, 255);
    assert.deepEqual([off.used(), small.image.width, small.image.height], [2, 3, 2]);
  });

  test('cropPair clips at the border as numpy slicing does; flip mirrors image and label together', () => {
    const p = pair(5, 3, (x, y) => 10 * y + x);
    const c = cropPair(p, 3, 1, 4, 4);
    assert.deepEqual([c.label.width, c.label.height, ...c.label.data], [2, 2, 13, 14, 23, 24]);
    flipPair(c);
    assert.deepEqual([...c.label.data], [14, 13, 24, 23]);
    assert.deepEqual([...c.image.data.subarray(0, 3)], [...p.image.data.subarray((1 * 5 + 4) * 3, (1 * 5 + 4) * 3 + 3)]);
  });

  test('PhotoMetricDistortion: each branch with probability 1/2, contrast first (mode 1) or last (mode 0), in mmseg\'s order', () => {
    const src = image(40, 3, 7);
    // Draws: brightness yes (randint(2) = floor(0.7 * 2) = 1), beta = -32 + 64 * 0.25 = -16; mode
    // floor(0.9 * 2) = 1; contrast yes, alpha 0.5 + 0.75 = 1.25; saturation yes, alpha 0.5 + 0.1;
    // hue yes, delta randint(-18, 18) = -18 + floor(0.5 * 36) = 0 ... then 0.99 -> 17.
    const all = scripted([0.7, 0.25, 0.9, 0.6, 0.75, 0.8, 0.1, 0.8, 0.99]);
    const out = photometricDistortion({ ...src, data: src.data.slice() }, all);
    assert.equal(all.used(), 9);
    const expected = src.data.slice();
    convertScale(expected, 1, -16);
    convertScale(expected, 1.25, 0);
    rgbToHsv8(expected);
    convertScale(expected, 0.6, 0, 1, 3);
    hsv8ToRgb(expected, 40);
    rgbToHsv8(expected);
    for (let p = 0; p < expected.length; p += 3) expected[p] = (expected[p]! + 17) % 180;
    hsv8ToRgb(expected, 40);
    assert.deepEqual([...out.data], [...expected]);
    // Mode 0 and nothing else but the final contrast: 5 draws, contrast applied last.
    const last = scripted([0.2, 0.1, 0.3, 0.4, 0.6, 0.5]);
    const out2 = photometricDistortion({ ...src, data: src.data.slice() }, last);
    assert.equal(last.used(), 6);
    const expected2 = src.data.slice();
    convertScale(expected2, 0.5 + 0.5, 0);
    assert.deepEqual([...out2.data], [...expected2]);
  });

  test('Normalize + Pad: the image as mmseg\'s test pipeline normalizes it, padded with 0; the label padded with 255', () => {
    const img = image(20, 12, 3);
    const label = { width: 20, height: 12, data: Uint8Array.from({ length: 240 }, (_, i) => i % 5) };
    const pixels = new Float32Array(3 * 32 * 32);
    const labels = new Float32Array(32 * 32);
    writeTrainingPair({ image: img, label }, [32, 32], 255, pixels, 0, labels, 0);
    assert.deepEqual([...pixels], [...segmentationInput(img, null).pixels.data]);
    assert.deepEqual([labels[0], labels[19], labels[20], labels[12 * 32]], [0, 4, 255, 255]);
    assert.equal(labels.filter((v) => v === 255).length, 32 * 32 - 240);
  });

  test('the whole pipeline: crop-sized output, label values from the input, the same for the same seed', () => {
    const p: SegmentationPipeline = { cropSize: [64, 64], imgScale: [256, 64], ratioRange: [0.5, 2], catMaxRatio: 0.75, flipProb: 0.5, photometric: true, ignoreIndex: 255 };
    const src = pair(96, 80, (x, y) => (x + y < 60 ? 0 : x > 70 ? 2 : 1));
    const sizes = new Set<string>();
    for (let seed = 0; seed < 20; seed++) {
      const a = augmentPair({ image: { ...src.image, data: src.image.data.slice() }, label: src.label }, new Random(seed), p);
      const b = augmentPair({ image: { ...src.image, data: src.image.data.slice() }, label: src.label }, new Random(seed), p);
      assert.deepEqual(a, b);
      assert.ok(a.image.width <= 64 && a.image.height <= 64 && a.label.width === a.image.width && a.label.height === a.image.height);
      assert.ok(a.label.data.every((v) => v <= 2));
      sizes.add(`${a.image.width}x${a.image.height}`);
    }
    assert.ok(sizes.has('64x64') && sizes.size > 1, `ratios below 1 leave images smaller than the crop: ${[...sizes]}`);
    // The source pair is never modified.
    assert.deepEqual(src.label.data, pair(96, 80, (x, y) => (x + y < 60 ? 0 : x > 70 ? 2 : 1)).label.data);
  });
});
