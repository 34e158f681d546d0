/**
 * Preprocessing vs. Pillow: the reference images and outputs in test/data/preprocess were
 * produced by scripts/make-preprocess-refs.py with Pillow (version recorded in index.json).
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { SwiftFormerError } from '../src/core/errors.js';
import type { ErrorCode } from '../src/core/errors.js';
import { resizeRGB8 } from '../src/preprocess/resize.js';
import type { RGBImage, ResizeFilter } from '../src/preprocess/resize.js';
import {
  centerCrop,
  evalTransform,
  IMAGENET_MEAN,
  IMAGENET_STD,
  resizeShorterSide,
  resizeTargetFor,
  shorterSideSize,
  toGrayscale,
  toNormalizedCHW,
} from '../src/preprocess/transforms.js';

interface EvalCase {
  name: string;
  width: number;
  height: number;
  source: string;
  resized: { width: number; height: number };
  crop: string;
  /** Pillow's convert('L') of the source, one byte per pixel. */
  luma: string;
}

interface ResizeCase {
  name: string;
  width: number;
  height: number;
  source: string;
  outputs: { width: number; height: number; filter: ResizeFilter; file: string }[];
}

interface RefIndex {
  pillow: string;
  resizeShorter: number;
  crop: number;
  evalCases: EvalCase[];
  resizeCases: ResizeCase[];
}

const DATA_DIR = new URL('./data/preprocess/', import.meta.url);
const index = JSON.parse(readFileSync(new URL('index.json', DATA_DIR), 'utf8')) as RefIndex;

function readRGB(file: string, width: number, height: number): RGBImage {
  const bytes = readFileSync(new URL(file, DATA_DIR));
  assert.equal(bytes.length, width * height * 3, `${file} should hold ${width}x${height} RGB`);
  return { width, height, data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) };
}

/** Largest and mean absolute per-byte difference. */
function byteDifference(actual: Uint8Array, expected: Uint8Array): { max: number; mean: number } {
  assert.equal(actual.length, expected.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    sum += d;
    if (d > max) max = d;
  }
  return { max, mean: sum / actual.length };
}

/** ≤ 1/255 anywhere, and nearly always exact: a systematically biased resampler fails the mean. */
function assertMatchesPillow(t: TestContext, label: string, actual: RGBImage, expected: RGBImage): void {
  assert.equal(actual.width, expected.width, `${label}: width`);
  assert.equal(actual.height, expected.height, `${label}: height`);
  const { max, mean } = byteDifference(actual.data, expected.data);
  t.diagnostic(`${label}: max |diff| = ${max}, mean |diff| = ${mean.toExponential(2)} (vs Pillow ${index.pillow})`);
  assert.ok(max <= 1, `${label}: max |diff| ${max} > 1`);
  assert.ok(mean < 0.05, `${label}: mean |diff| ${mean} >= 0.05`);
}

function assertErrorCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e: unknown) => e instanceof SwiftFormerError && e.code === code);
}

function solidImage(width: number, height: number, rgb: readonly [number, number, number]): RGBImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rgb[i % 3]!;
  return { width, height, data };
}

describe('resize shorter side to 256 + center crop 224 (official eval geometry) vs Pillow', () => {
  for (const c of index.evalCases) {
    it(c.name, (t) => {
      const source = readRGB(c.source, c.width, c.height);
      assert.deepEqual(shorterSideSize(c.width, c.height, index.resizeShorter), c.resized);
      const cropped = centerCrop(resizeShorterSide(source, index.resizeShorter), index.crop);
      assertMatchesPillow(t, c.name, cropped, readRGB(c.crop, index.crop, index.crop));
    });
  }
});

describe('resizeRGB8 vs Pillow Image.resize', () => {
  for (const c of index.resizeCases) {
    const source = readRGB(c.source, c.width, c.height);
    for (const o of c.outputs) {
      const label = `${c.name} -> ${o.width}x${o.height} ${o.filter}`;
      it(label, (t) => {
        const actual = resizeRGB8(source, o.width, o.height, o.filter);
        assertMatchesPillow(t, label, actual, readRGB(o.file, o.width, o.height));
      });
    }
  }
});

describe("toGrayscale: Pillow's convert('L')", () => {
  for (const c of index.evalCases) {
    it(`${c.name}: every pixel's luma, replicated to three channels, exactly`, () => {
      const gray = toGrayscale(readRGB(c.source, c.width, c.height));
      const expected = readFileSync(new URL(c.luma, DATA_DIR));
      for (let i = 0; i < c.width * c.height; i++) {
        const [r, g, b] = [gray.data[3 * i]!, gray.data[3 * i + 1]!, gray.data[3 * i + 2]!];
        if (r !== expected[i] || g !== r || b !== r) assert.fail(`${c.name} pixel ${i}: got (${r}, ${g}, ${b}), Pillow ${expected[i]}`);
      }
    });
  }
});

describe('evalTransform', () => {
  for (const c of index.evalCases) {
    it(`${c.name}: (pillow / 255 - mean) / std within 1/255/std`, () => {
      const tensor = evalTransform(readRGB(c.source, c.width, c.height));
      const size = index.crop;
      assert.deepEqual(tensor.shape, [1, 3, size, size]);
      const expected = readRGB(c.crop, size, size).data;
      for (let ch = 0; ch < 3; ch++) {
        const mean = IMAGENET_MEAN[ch]!;
        const std = IMAGENET_STD[ch]!;
        // One uint8 step of slack, plus float32 rounding of the tensor itself.
        const tolerance = 1 / 255 / std + 1e-6;
        for (let i = 0; i < size * size; i++) {
          const want = (expected[i * 3 + ch]! / 255 - mean) / std;
          const got = tensor.data[ch * size * size + i]!;
          if (Math.abs(got - want) > tolerance) {
            assert.fail(`${c.name} channel ${ch} pixel ${i}: got ${got}, want ${want} ± ${tolerance}`);
          }
        }
      }
    });
  }

  it('rejects bad sizes and crop ratios with BAD_ARGUMENT', () => {
    const image = solidImage(8, 8, [1, 2, 3]);
    for (const size of [0, -224, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 8193, 1e9]) {
      assertErrorCode(() => evalTransform(image, { size }), 'BAD_ARGUMENT');
    }
    for (const cropPct of [0, -0.5, 1.5, Number.NaN, 1e-9]) {
      assertErrorCode(() => evalTransform(image, { cropPct }), 'BAD_ARGUMENT');
    }
    assertErrorCode(() => evalTransform(image, { mean: [0, 0] }), 'BAD_ARGUMENT');
    assertErrorCode(() => evalTransform(image, { std: [1, 0, 1] }), 'BAD_ARGUMENT');
    assertErrorCode(() => resizeRGB8(image, 0, 4, 'bicubic'), 'BAD_ARGUMENT');
    assertErrorCode(() => resizeRGB8(image, 4, 2.5, 'bilinear'), 'BAD_ARGUMENT');
    assertErrorCode(() => resizeShorterSide(image, 0), 'BAD_ARGUMENT');
    assertErrorCode(() => centerCrop(image, -1), 'BAD_ARGUMENT');
  });

  it('rejects malformed images with BAD_IMAGE', () => {
    assertErrorCode(() => evalTransform({ width: 4, height: 4, data: new Uint8Array(47) }), 'BAD_IMAGE');
    assertErrorCode(() => resizeRGB8({ width: 0, height: 4, data: new Uint8Array(0) }, 2, 2, 'bicubic'), 'BAD_IMAGE');
  });

  it('small sizes work end to end', () => {
    const tensor = evalTransform(solidImage(5, 3, [255, 0, 128]), { size: 2 });
    assert.deepEqual(tensor.shape, [1, 3, 2, 2]);
  });
});

describe('independent facts', () => {
  const filters: ResizeFilter[] = ['bicubic', 'bilinear'];

  it('resizing a constant-colour image gives exactly that colour', () => {
    const colour = [12, 200, 255] as const;
    const image = solidImage(123, 77, colour);
    for (const filter of filters) {
      for (const [w, h] of [[50, 200], [300, 31], [1, 1], [123, 5], [7, 77]] as const) {
        assert.deepEqual(resizeRGB8(image, w, h, filter), solidImage(w, h, colour), `${filter} ${w}x${h}`);
      }
    }
  });

  it('an identity-size resize returns the input unchanged (as a copy)', () => {
    const image = readRGB('grow_23x17.rgb', 23, 17);
    for (const filter of filters) {
      const out = resizeRGB8(image, 23, 17, filter);
      assert.deepEqual(out.data, image.data);
      assert.notEqual(out.data, image.data);
    }
  });

  it('center crop rounds offsets half to even and zero-pads crops larger than the image', () => {
    // 5 columns [0..4], crop 2: offset round(1.5) = 2 (even), torchvision's round().
    const row = { width: 5, height: 1, data: Uint8Array.from([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]) };
    assert.deepEqual([...centerCrop(row, 2, 1).data], [2, 2, 2, 3, 3, 3]);
    // Crop 8 of 5: pad 1 on the left, 2 on the right (the odd pixel goes right/bottom).
    const padded = centerCrop(row, 8, 1).data;
    assert.deepEqual([...padded].filter((_, i) => i % 3 === 0), [0, 0, 1, 2, 3, 4, 0, 0]);
  });

  it('the resize target is the official int(256 / 224 * size)', () => {
    assert.equal(resizeTargetFor(224, 224 / 256), 256);
    assert.equal(resizeTargetFor(384, 224 / 256), 438); // not round(438.86) = 439
    for (let size = 1; size <= 8192; size++) {
      assert.equal(resizeTargetFor(size, 224 / 256), Math.trunc((256 / 224) * size), `size ${size}`);
    }
  });

  it('normalization uses float32 arithmetic like torch', () => {
    const tensor = toNormalizedCHW(solidImage(1, 1, [0, 128, 255]));
    const expected = [0, 128, 255].map((v, c) =>
      Math.fround(Math.fround(Math.fround(v / 255) - Math.fround(IMAGENET_MEAN[c]!)) / Math.fround(IMAGENET_STD[c]!)),
    );
    assert.deepEqual([...tensor.data], expected);
  });
});
