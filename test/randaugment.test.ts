/**
 * RandAugment (timm 0.5.4) and ColorJitter vs. Pillow: every operation, at fixed arguments, on the
 * images of test/data/randaugment, byte for byte against what scripts/make-randaugment-refs.py
 * recorded from Pillow (version in index.json). The random policy cannot replay Python's Mersenne
 * Twister, so it is tested by its distribution: op frequencies, how often an op is skipped,
 * magnitudes' mean and spread, signs, and the level-to-argument rules at worked-out magnitudes.
 */
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { SwiftFormerError } from '../src/core/errors.js';
import type { RGBImage } from '../src/core/image.js';
import { Random } from '../src/core/random.js';
import {
  affineTransform, applyDrawn, autoContrast, drawRandAugment, enhanceBrightness, enhanceColor, enhanceContrast,
  enhanceSharpness, equalize, cosSin, fillColor, invert, OFFICIAL_RAND_AUGMENT, parseRandAugment, posterize, RAND_AUGMENT_OPS,
  RAND_CHOICE_WEIGHTS_0, RAND_INCREASING_TRANSFORMS, RAND_TRANSFORMS, randAugment, rotate, rotationMatrix, round15,
  shearX, shearY, smoothFilter, solarize, solarizeAdd, translateXRel, translateYRel, type RandAugmentOpName, type Resample,
  type RGB,
} from '../src/train/randaugment.js';
import {
  applyColorJitter, augmentFor, checkAugment, colorJitter, DEFAULT_AUGMENT, drawColorJitter, sampleTransform, withRandAugment, type JitterStep,
} from '../src/train/augment.js';
import { cropImage, IMAGENET_MEAN, IMAGENET_STD } from '../src/preprocess/transforms.js';
import { resizeRGB8 } from '../src/preprocess/resize.js';
import { freshConfig } from '../src/train/config.js';
import { Loader } from '../src/train/loader.js';

interface RefCase { image: string; op: string; args: Record<string, unknown>; offset: number }
interface RefIndex {
  pillow: string;
  fill: [number, number, number];
  images: { name: string; width: number; height: number; offset: number }[];
  cases: RefCase[];
  rotationMatrices: { degrees: number; width: number; height: number; matrix: number[]; radians: number; libm: [number, number]; exact: [number, number] }[];
}

const DATA_DIR = new URL('./data/randaugment/', import.meta.url);
const index = JSON.parse(readFileSync(new URL('index.json', DATA_DIR), 'utf8')) as RefIndex;
const blob = readFileSync(new URL('refs.bin', DATA_DIR));
const images = new Map(index.images.map((im) => [im.name, im]));

function imageAt(offset: number, width: number, height: number): RGBImage {
  return { width, height, data: new Uint8Array(blob.buffer, blob.byteOffset + offset, width * height * 3) };
}

function source(name: string): RGBImage {
  const im = images.get(name)!;
  return imageAt(im.offset, im.width, im.height);
}

const fill = index.fill as unknown as RGB;

/** Our implementation of each recorded Pillow call. */
const OPS: Record<string, (im: RGBImage, a: Record<string, unknown>) => RGBImage> = {
  autocontrast: (im) => autoContrast(im),
  equalize: (im) => equalize(im),
  invert: (im) => invert(im),
  posterize: (im, a) => (a.bits === 8 ? RAND_AUGMENT_OPS.Posterize.apply(im, 8) : posterize(im, a.bits as number)),
  solarize: (im, a) => solarize(im, a.threshold as number),
  solarize_add: (im, a) => solarizeAdd(im, a.add as number),
  smooth: (im) => smoothFilter(im),
  brightness: (im, a) => enhanceBrightness(im, a.factor as number),
  contrast: (im, a) => enhanceContrast(im, a.factor as number),
  color: (im, a) => enhanceColor(im, a.factor as number),
  sharpness: (im, a) => enhanceSharpness(im, a.factor as number),
  jitter: (im, a) => applyColorJitter(im, (a.steps as [JitterStep['kind'], number][]).map(([kind, factor]) => ({ kind, factor }))),
  rotate: (im, a) => rotate(im, a.degrees as number, a.resample as Resample, fill),
  shear_x: (im, a) => shearX(im, a.factor as number, a.resample as Resample, fill),
  shear_y: (im, a) => shearY(im, a.factor as number, a.resample as Resample, fill),
  translate_x_rel: (im, a) => translateXRel(im, a.pct as number, a.resample as Resample, fill),
  resized_crop: (im, a) => {
    const [x, y, w, h] = a.box as number[];
    return resizeRGB8(cropImage(im, x!, y!, w!, h!), a.size as number, a.size as number, a.resample as Resample);
  },
  translate_y_rel: (im, a) => translateYRel(im, a.pct as number, a.resample as Resample, fill),
};

/** The first differing byte, as a readable location, or undefined when equal. */
function firstDifference(actual: RGBImage, expected: RGBImage): string | undefined {
  if (actual.width !== expected.width || actual.height !== expected.height) return `size ${actual.width}x${actual.height}`;
  let count = 0;
  let first = -1;
  for (let i = 0; i < expected.data.length; i++) {
    if (actual.data[i] !== expected.data[i]) {
      count++;
      if (first < 0) first = i;
    }
  }
  if (count === 0) return undefined;
  const p = Math.floor(first / 3);
  return `${count} bytes differ; first at (x ${p % expected.width}, y ${Math.floor(p / expected.width)}, channel ${first % 3}): ${actual.data[first]} vs ${expected.data[first]}`;
}

describe(`RandAugment's operations vs Pillow ${index.pillow}`, () => {
  const byOp = new Map<string, RefCase[]>();
  for (const c of index.cases) byOp.set(c.op, [...(byOp.get(c.op) ?? []), c]);

  test('the references cover every operation', () => {
    assert.deepEqual([...byOp.keys()].sort(), Object.keys(OPS).sort());
  });

  for (const [op, cases] of byOp) {
    test(`${op}: every byte, ${cases.length} cases`, () => {
      const failures: string[] = [];
      for (const c of cases) {
        const src = source(c.image);
        const before = Buffer.from(src.data);
        const actual = OPS[op]!(src, c.args);
        const side = c.args.size as number | undefined; // resized crops are square, the rest keep the size
        const diff = firstDifference(actual, imageAt(c.offset, side ?? src.width, side ?? src.height));
        if (diff) failures.push(`${c.image} ${JSON.stringify(c.args)}: ${diff}`);
        assert.ok(before.equals(src.data), `${op} must not modify its input`);
      }
      assert.deepEqual(failures, []);
    });
  }

  test('Image.rotate\'s affine matrix: exactly Pillow\'s wherever libm\'s cos and sin are correctly rounded', (t) => {
    let libmOff = 0;
    let matrixOff = 0;
    for (const r of index.rotationMatrices) {
      const where = `rotate(${r.degrees}) on ${r.width}x${r.height}`;
      assert.deepEqual(cosSin(r.radians), r.exact, `${where}: correctly rounded cos, sin`);
      const ours = rotationMatrix(r.degrees, r.width, r.height);
      if (r.libm[0] === r.exact[0] && r.libm[1] === r.exact[1]) {
        assert.deepEqual([...ours], r.matrix, where);
        continue;
      }
      // glibc's cos or sin is one ulp off here: round(x, 15) may keep it, 1e-15 in a coefficient.
      libmOff++;
      if (ours.some((v, i) => v !== r.matrix[i])) matrixOff++;
      ours.forEach((v, i) => assert.ok(Math.abs(v - r.matrix[i]!) < (i % 3 === 2 ? 1e-12 : 1.1e-15), `${where}: coefficient ${i}`));
    }
    t.diagnostic(`${index.rotationMatrices.length} angles: libm's cos or sin not correctly rounded for ${libmOff}, changing the matrix for ${matrixOff}`);
    assert.ok(libmOff <= 10, 'libm is off for few angles');
  });

  test('round15 is Python\'s round(x, 15), ties to even', () => {
    assert.equal(round15(0.8910065241883678), 0.891006524188368);
    assert.equal(round15(-0.45399049973954675), -0.453990499739547);
    // Odd multiples of 2^-16 lie exactly halfway between two multiples of 1e-15.
    assert.equal(round15(3 / 65536), 0.000045776367188); // ...1875 -> ...188 (even)
    assert.equal(round15(1 / 65536), 0.000015258789062); // ...0625 -> ...062 (even), toFixed says 063
    assert.equal(round15(-1 / 65536), -0.000015258789062);
  });
});

// ---------------------------------------------------------------- the policy string

describe('RandAugment policy strings (timm\'s rand_augment_transform)', () => {
  test('the official policy: m9, two operations, noise 0.5, the increasing set, clipped at 10', () => {
    assert.deepEqual(parseRandAugment(OFFICIAL_RAND_AUGMENT), {
      magnitude: 9, numOps: 2, magnitudeStd: 0.5, magnitudeMax: 10, ops: RAND_INCREASING_TRANSFORMS,
    });
    assert.deepEqual(parseRandAugment('rand'), { magnitude: 10, numOps: 2, magnitudeStd: 0, magnitudeMax: 10, ops: RAND_TRANSFORMS });
    const p = parseRandAugment('rand-n3-mmax20-m15-mstd101-w0');
    assert.deepEqual([p.numOps, p.magnitudeMax, p.magnitude, p.magnitudeStd, p.weights], [3, 20, 15, Infinity, RAND_CHOICE_WEIGHTS_0]);
  });

  test('strings timm would misread, or reject with an assertion, are one clear error each', () => {
    const cases: [string, RegExp][] = [
      ['augmix-m5', /starts with 'rand'/],
      ['rand-m9-inc0', /inc1/],
      ['rand-m9-inc', /not a key followed by a number/],
      ['rand-m9-m8', /'m' is given twice/],
      ['rand-m9.5', /integer/],
      ['rand-mmax0', /'mmax' takes an integer in \[1, 100\]/],
      ['rand-x3', /unknown section 'x3'/],
      ['rand-w1', /w0/],
      ['rand-mstd0.5x', /'mstd' takes a number/],
      ['rand-n14-w0', /too many/],
    ];
    for (const [config, message] of cases) {
      assert.throws(() => parseRandAugment(config), (e: unknown) => e instanceof SwiftFormerError && e.code === 'BAD_ARGUMENT' && message.test(e.message) && e.message.includes(config), config);
    }
  });

  test('the fill color is timm\'s img_mean, min(255, round(255 m)) with round half to even', () => {
    assert.deepEqual(fillColor(IMAGENET_MEAN), [124, 116, 104]);
    assert.deepEqual(fillColor([0.5, 1, 1.2]), [128, 255, 255]); // 127.5 -> 128 (even)
    assert.deepEqual(fillColor([0.5 + 1 / 510, 0, 0]), [128, 0, 0]); // 128.5 -> 128 (even)
  });
});

// ---------------------------------------------------------------- the random policy

/** Draws of `draws` images; per op name: times chosen, times applied, magnitudes, arguments. */
function tally(config: string, draws: number, seed = 7, interpolation: 'bilinear' | 'bicubic' | 'random' = 'bicubic') {
  const policy = parseRandAugment(config);
  const rng = new Random(seed);
  const stats = new Map<RandAugmentOpName, { chosen: number; applied: number; magnitudes: number[]; args: number[]; resample: string[] }>();
  for (let i = 0; i < draws; i++) {
    const drawn = drawRandAugment(policy, interpolation, rng);
    assert.equal(drawn.length, policy.numOps);
    for (const op of drawn) {
      const s = stats.get(op.name) ?? { chosen: 0, applied: 0, magnitudes: [], args: [], resample: [] };
      s.chosen++;
      if (op.applied) {
        s.applied++;
        s.magnitudes.push(op.magnitude!);
        if (op.arg !== undefined) s.args.push(op.arg);
        if (op.resample) s.resample.push(op.resample);
      } else {
        assert.deepEqual(Object.keys(op).sort(), ['applied', 'name']);
      }
      stats.set(op.name, s);
    }
  }
  return stats;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));

describe('the random policy, by its distribution', () => {
  const draws = 30000;
  const stats = tally(OFFICIAL_RAND_AUGMENT, draws);

  test('each of the 15 operations is chosen 1/15 of the time, and applied half of those times', () => {
    assert.deepEqual([...stats.keys()].sort(), [...RAND_INCREASING_TRANSFORMS].sort());
    const expected = (2 * draws) / 15;
    for (const [name, s] of stats) {
      // 4 standard deviations of a binomial count.
      assert.ok(Math.abs(s.chosen - expected) < 4 * Math.sqrt(expected), `${name} chosen ${s.chosen} times, expected about ${expected.toFixed(0)}`);
      assert.ok(Math.abs(s.applied / s.chosen - 0.5) < 4 * Math.sqrt(0.25 / s.chosen), `${name} applied ${s.applied}/${s.chosen}`);
    }
  });

  test('magnitudes: Normal(9, 0.5) clipped to [0, 10]', () => {
    const all = [...stats.values()].flatMap((s) => s.magnitudes);
    assert.ok(all.every((m) => m >= 0 && m <= 10));
    // min(9 + 0.5 Z, 10): E[min(Z, 2)] = 2 (1 - Φ(2)) - φ(2) = -0.00849, E[min(Z, 2)^2] = Φ(2) - 2 φ(2) + 4 (1 - Φ(2)) = 0.96027,
    // so the mean is 8.9958 and the standard deviation 0.5 * 0.97990 = 0.4900.
    assert.ok(Math.abs(mean(all) - 8.9958) < 0.01, `mean ${mean(all)}`);
    assert.ok(Math.abs(std(all) - 0.4900) < 0.01, `std ${std(all)}`);
    const atCap = all.filter((m) => m === 10).length / all.length;
    assert.ok(Math.abs(atCap - 0.02275) < 0.004, `P(clipped at 10) ${atCap}, expected 1 - Φ(2) = 0.0228`);
  });

  test('arguments follow timm\'s level rules, signed by a fair coin where the op has a direction', () => {
    const rules: Partial<Record<RandAugmentOpName, (m: number) => number>> = {
      Rotate: (m) => (m / 10) * 30,
      ShearX: (m) => (m / 10) * 0.3,
      ShearY: (m) => (m / 10) * 0.3,
      TranslateXRel: (m) => (m / 10) * 0.45,
      TranslateYRel: (m) => (m / 10) * 0.45,
      ColorIncreasing: (m) => (m / 10) * 0.9,
      ContrastIncreasing: (m) => (m / 10) * 0.9,
      BrightnessIncreasing: (m) => (m / 10) * 0.9,
      SharpnessIncreasing: (m) => (m / 10) * 0.9,
    };
    for (const [name, rule] of Object.entries(rules) as [RandAugmentOpName, (m: number) => number][]) {
      const s = stats.get(name)!;
      const enhance = name.endsWith('Increasing');
      let negative = 0;
      s.args.forEach((arg, i) => {
        const size = rule(s.magnitudes[i]!);
        const signedSize = enhance ? arg - 1 : arg;
        if (enhance && arg === 0.1) {
          negative++; // max(0.1, 1 - size): the floor, reached only going down
          return;
        }
        assert.ok(Math.abs(Math.abs(signedSize) - size) < 1e-12, `${name}: ${arg} at magnitude ${s.magnitudes[i]}`);
        if (signedSize < 0) negative++;
      });
      const n = s.args.length;
      assert.ok(Math.abs(negative / n - 0.5) < 4 * Math.sqrt(0.25 / n), `${name} negative ${negative}/${n}`);
      if ((RAND_AUGMENT_OPS[name] as { geometric?: boolean }).geometric) assert.ok(s.resample.every((r) => r === 'bicubic'), `${name} uses the given filter`);
    }
    const counted: [RandAugmentOpName, (m: number) => number][] = [
      ['PosterizeIncreasing', (m) => 4 - Math.trunc((m / 10) * 4)],
      ['SolarizeIncreasing', (m) => 256 - Math.trunc((m / 10) * 256)],
      ['SolarizeAdd', (m) => Math.trunc((m / 10) * 110)],
    ];
    for (const [name, rule] of counted) {
      const s = stats.get(name)!;
      assert.equal(s.args.length, s.applied);
      s.args.forEach((arg, i) => assert.equal(arg, rule(s.magnitudes[i]!), `${name} at magnitude ${s.magnitudes[i]}`));
    }
    for (const name of ['AutoContrast', 'Equalize', 'Invert'] as const) assert.equal(stats.get(name)!.args.length, 0);
  });

  test('level rules at worked-out magnitudes (timm 0.5.4\'s formulas by hand)', () => {
    const at = (name: RandAugmentOpName, m: number, coin = 0.9) => {
      const rng = { next: () => coin } as unknown as Random; // coin > 0.5: negated
      return (RAND_AUGMENT_OPS[name] as { level?: (m: number, rng: Random) => number }).level!(m, rng);
    };
    assert.equal(at('PosterizeIncreasing', 9), 1); // 4 - int(3.6)
    assert.equal(at('PosterizeIncreasing', 10), 0);
    assert.equal(at('PosterizeIncreasing', 2.4), 4); // 4 - int(0.96)
    assert.equal(at('Posterize', 9), 3);
    assert.equal(at('SolarizeIncreasing', 9), 26); // 256 - int(230.4)
    assert.equal(at('SolarizeIncreasing', 0), 256); // no pixel at or above 256: identity
    assert.equal(at('Solarize', 9), 230);
    assert.equal(at('SolarizeAdd', 9), 99);
    assert.equal(at('SolarizeAdd', 10), 110);
    assert.equal(at('Rotate', 9), -27);
    assert.equal(at('Rotate', 9, 0.2), 27);
    assert.equal(at('ShearX', 9, 0.2), 0.27);
    assert.equal(at('TranslateYRel', 9, 0.2), 0.405);
    assert.equal(at('ColorIncreasing', 9, 0.2), 1.81);
    assert.equal(at('ColorIncreasing', 9), 0.18999999999999995);
    assert.equal(at('ColorIncreasing', 10), 0.1); // 1 - 0.9 = 0.09999999999999998, floored at 0.1
    assert.equal(at('Color', 9), 1.7200000000000002);
    assert.equal(at('Sharpness', 0), 0.1);
  });

  test('uniform magnitudes (mstd > 100), weights without replacement (w0), random filters', () => {
    const uniform = [...tally('rand-m8-mstd200', 4000).values()].flatMap((s) => s.magnitudes);
    assert.ok(uniform.every((m) => m >= 0 && m < 8));
    assert.ok(Math.abs(mean(uniform) - 4) < 0.1 && Math.abs(std(uniform) - 8 / Math.sqrt(12)) < 0.1);
    const policy = parseRandAugment('rand-n2-w0');
    const rng = new Random(3);
    const counts = new Map<string, number>();
    for (let i = 0; i < 20000; i++) {
      const [a, b] = drawRandAugment(policy, 'bilinear', rng);
      assert.notEqual(a!.name, b!.name, 'without replacement');
      counts.set(a!.name, (counts.get(a!.name) ?? 0) + 1);
    }
    // The first draw is by weight: Rotate 0.3, ShearX 0.2, Invert and Posterize never.
    assert.ok(Math.abs(counts.get('Rotate')! / 20000 - 0.3) < 0.015);
    assert.ok(Math.abs(counts.get('ShearX')! / 20000 - 0.2) < 0.015);
    assert.equal(counts.get('Invert'), undefined);
    assert.equal(counts.get('Posterize'), undefined);
    const random = [...tally('rand-m9', 4000, 1, 'random').values()].flatMap((s) => s.resample);
    const bicubic = random.filter((r) => r === 'bicubic').length / random.length;
    assert.ok(Math.abs(bicubic - 0.5) < 0.04, `bicubic ${bicubic}`);
  });

  test('applying: skipped operations leave the image as it is; applied ones are the Pillow-exact ops', () => {
    const src = source('pattern_40x30');
    const skipped = applyDrawn(src, [{ name: 'Invert', applied: false }, { name: 'Rotate', applied: false }], fill);
    assert.deepEqual(skipped.data, src.data);
    assert.notEqual(skipped.data, src.data, 'a new image');
    const both = applyDrawn(src, [
      { name: 'Rotate', applied: true, magnitude: 9, arg: -27, resample: 'bicubic' },
      { name: 'SolarizeIncreasing', applied: true, magnitude: 9, arg: 26 },
    ], fill);
    assert.deepEqual(both.data, solarize(rotate(src, -27, 'bicubic', fill), 26).data);
    // Deterministic per seed, different across seeds.
    const ra = randAugment(OFFICIAL_RAND_AUGMENT, { mean: IMAGENET_MEAN, interpolation: 'bicubic' });
    assert.deepEqual(ra.apply(src, new Random(11)).data, ra.apply(src, new Random(11)).data);
    const outputs = new Set(Array.from({ length: 20 }, (_, s) => Buffer.from(ra.apply(src, new Random(s)).data).toString('base64')));
    assert.ok(outputs.size > 10);
  });
});

// ---------------------------------------------------------------- wiring: recipe, color jitter, config

describe('the official recipe in the training options', () => {
  test('augment: true on photos is main.py\'s pipeline: bicubic crop, flip, RandAugment, erasing, no color jitter', () => {
    assert.deepEqual(augmentFor([224, 224]), {
      randomResizedCrop: { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] }, randomCrop: false, hflip: 0.5, colorJitter: false,
      randAugment: 'rand-m9-mstd0.5-inc1', interpolation: 'bicubic', randomErasing: { probability: 0.25 },
    });
    assert.equal(augmentFor([32, 32]).randAugment, undefined, 'the small-image preset stays as it was');
  });

  test('--rand-augment: a policy in place of the preset\'s; none on photos is main.py with --aa \'\' (color jitter 0.4)', () => {
    const photos = augmentFor([224, 224]);
    assert.deepEqual(withRandAugment(photos, 'rand-m7'), { ...photos, randAugment: 'rand-m7' });
    assert.deepEqual(withRandAugment(photos, 'none'), { ...photos, randAugment: false, colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4 } });
    const small = augmentFor([32, 32]);
    assert.equal(withRandAugment(small, 'none'), small);
    assert.deepEqual(withRandAugment(small, OFFICIAL_RAND_AUGMENT), { ...small, randAugment: OFFICIAL_RAND_AUGMENT, interpolation: 'bicubic' });
    assert.throws(() => withRandAugment(small, 'rand-inc'), /section 'inc'/);
  });

  test('augmentation settings are checked when the run is configured, with one clear error', () => {
    const base = { preprocessing: { inputSize: [224, 224] as [number, number], normalization: { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] }, pad: 0, cropPct: 0.875 }, dataset: { trainImages: 1000, numClasses: 10 } };
    const config = freshConfig('classification', { classification: { augment: DEFAULT_AUGMENT } }, base);
    assert.equal(config.classification!.augment!.randAugment, OFFICIAL_RAND_AUGMENT);
    assert.throws(() => freshConfig('classification', { classification: { augment: { randAugment: 'rand-m9-inc0' } } }, base), /RandAugment policy 'rand-m9-inc0'/);
    assert.throws(() => checkAugment({ randAugment: OFFICIAL_RAND_AUGMENT, colorJitter: { brightness: 0.4 } }), /alternatives/);
    assert.throws(() => checkAugment({ interpolation: 'nearest' as 'bilinear' }), /interpolation is one of/);
    assert.throws(() => checkAugment({ colorJitter: { contrast: -1 } }), /colorJitter contrast/);
    assert.throws(() => sampleTransform({ inputSize: [8, 8], mean: [0, 0, 0], std: [1, 1, 1], augment: { randAugment: 'rand-q1' } }), /unknown section/);
  });

  test('the sample transform applies RandAugment after crop and flip, reproducibly per seed', () => {
    const src = source('pattern_40x30');
    const norm = { inputSize: [24, 24] as [number, number], mean: IMAGENET_MEAN, std: IMAGENET_STD };
    const t = sampleTransform({ ...norm, augment: { randomResizedCrop: {}, interpolation: 'bicubic', hflip: 0.5, randAugment: 'rand-m9-n4-mstd0.5-inc1' } });
    const plain = sampleTransform({ ...norm, augment: { randomResizedCrop: {}, interpolation: 'bicubic', hflip: 0.5 } });
    const out = (tr: typeof t, seed: number) => {
      const o = new Float32Array(3 * 24 * 24);
      tr.apply(src, new Random(seed), o, 0);
      return o;
    };
    assert.deepEqual(out(t, 5), out(t, 5));
    let differ = 0;
    for (let seed = 0; seed < 30; seed++) if (!out(t, seed).every((v, i) => v === out(plain, seed)[i])) differ++;
    // Four ops each applied with p 0.5: all skipped in 1/16 of the images.
    assert.ok(differ >= 20 && differ < 30, `${differ} of 30 changed by RandAugment`);
  });

  test('a batch with RandAugment is the same whether computed in order or alone after a resume (seed, epoch, index)', async () => {
    const src = source('pattern_40x30');
    const dataset = { name: 'pattern', length: 8, classes: ['a', 'b'], label: (i: number) => i % 2, image: () => src };
    const transform = sampleTransform({ inputSize: [24, 24], mean: IMAGENET_MEAN, std: IMAGENET_STD, augment: augmentFor([224, 224]) });
    const loader = new Loader(dataset, { batchSize: 4, transform, shuffle: true, seed: 3 });
    const inOrder = [];
    for await (const batch of loader.epoch(2)) inOrder.push(batch);
    const resumed = [];
    for await (const batch of loader.epoch(2, 1)) resumed.push(batch);
    assert.deepEqual(resumed[0]!.pixels.data, inOrder[1]!.pixels.data);
    assert.notDeepEqual(inOrder[0]!.pixels.data.subarray(0, 1728), inOrder[0]!.pixels.data.subarray(1728, 3456));
  });

  test('colorJitter draws torchvision\'s order and factors, and blends as Pillow does', () => {
    const rng = new Random(2);
    const orders = new Set<string>();
    for (let i = 0; i < 600; i++) {
      const steps = drawColorJitter(rng, { brightness: 0.4, contrast: 0.4, saturation: 0.4 });
      assert.equal(steps.length, 3);
      for (const s of steps) assert.ok(s.factor >= 0.6 && s.factor <= 1.4);
      orders.add(steps.map((s) => s.kind).join());
    }
    assert.equal(orders.size, 6, 'all six orders');
    assert.deepEqual(drawColorJitter(new Random(1), { contrast: 2 }).map((s) => s.kind), ['contrast']);
    assert.ok(drawColorJitter(new Random(1), { contrast: 2 })[0]!.factor >= 0, 'factors never below 0');
    // colorJitter (exported, in place) is the same draws and blends; the sample transform leaves its input alone.
    const src = source('pattern_40x30');
    const jitter = { brightness: 0.4, contrast: 0.4, saturation: 0.4 };
    const copy = { ...src, data: src.data.slice() };
    assert.equal(colorJitter(copy, new Random(9), jitter), copy);
    assert.deepEqual(copy.data, applyColorJitter(src, drawColorJitter(new Random(9), jitter)).data);
    const before = Buffer.from(src.data);
    sampleTransform({ inputSize: [30, 40], mean: [0, 0, 0], std: [1, 1, 1], augment: { colorJitter: jitter, hflip: 0 } }).apply(src, new Random(9), new Float32Array(3 * 1200), 0);
    assert.ok(before.equals(src.data));
  });
});
