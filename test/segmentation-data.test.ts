/**
 * Segmentation datasets on disk (src/node/segmentation-data.ts): mmseg's generic layout and
 * ADE20K's, palette PNGs read as indices, reduce_zero_label as mmseg's LoadAnnotations does it, and
 * every way a pair can be wrong as one error naming the file.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { SwiftFormerError } from '../src/core/errors.js';
import { ADE20K_CLASSES, ADE20K_PALETTE, reduceZeroLabel } from '../src/data/segmentation.js';
import { encodeGrayPng, encodePalettePng, encodeRgbPng } from '../src/node/png.js';
import { openSegmentationData, segmentationLayout } from '../src/node/segmentation-data.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'swiftformer-segdata-'));
  dirs.push(d);
  return d;
}

function rgb(width: number, height: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 7 + seed * 13) % 256);
}

interface PairSpec { stem: string; width?: number; height?: number; label?: (i: number) => number; labelSize?: [number, number]; ext?: string; labelPng?: 'gray' | 'palette' | 'rgb' | 'none' }

/** A split of a layout: images (PNG, or JPEG for '.jpg') and label PNGs. */
async function writeSplit(root: string, imageDir: string, labelDir: string, pairs: PairSpec[]): Promise<void> {
  await mkdir(join(root, imageDir), { recursive: true });
  await mkdir(join(root, labelDir), { recursive: true });
  for (const p of pairs) {
    const [w, h] = [p.width ?? 8, p.height ?? 6];
    const ext = p.ext ?? '.png';
    const pixels = rgb(w, h, p.stem.length);
    const bytes = ext === '.jpg' ? await sharp(Buffer.from(pixels), { raw: { width: w, height: h, channels: 3 } }).jpeg().toBuffer() : encodeRgbPng(pixels, w, h);
    await writeFile(join(root, imageDir, `${p.stem}${ext}`), bytes);
    const [lw, lh] = p.labelSize ?? [w, h];
    const values = Uint8Array.from({ length: lw * lh }, (_, i) => (p.label ?? ((j: number) => j % 3))(i));
    const kind = p.labelPng ?? 'gray';
    if (kind === 'none') continue;
    const label = kind === 'palette' ? encodePalettePng(values, lw, lh, [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]])
      : kind === 'rgb' ? encodeRgbPng(rgb(lw, lh, 1), lw, lh) : encodeGrayPng(values, lw, lh);
    await writeFile(join(root, labelDir, `${p.stem}.png`), label);
  }
}

async function generic(pairs: PairSpec[], info?: object, val: PairSpec[] = [{ stem: 'v0' }]): Promise<string> {
  const root = await tempDir();
  await writeSplit(root, 'img_dir/train', 'ann_dir/train', pairs);
  await writeSplit(root, 'img_dir/val', 'ann_dir/val', val);
  if (info) await writeFile(join(root, 'dataset.json'), JSON.stringify(info));
  return root;
}

async function failure(promise: Promise<unknown>, pattern: RegExp, code = 'BAD_DATA'): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof SwiftFormerError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('the generic layout (img_dir/, ann_dir/)', () => {
  test('pairs by stem in sorted order, classes and palette from dataset.json, palette PNGs read as indices', async () => {
    const root = await generic(
      [{ stem: 'b', label: (i) => i % 4, labelPng: 'palette' }, { stem: 'a', ext: '.jpg', label: () => 255 }, { stem: 'c', width: 5, height: 3 }],
      { classes: ['bg', 'x', 'y', 'z'], palette: [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [99, 99, 99]] },
    );
    assert.equal(await segmentationLayout(root), 'generic');
    const data = await openSegmentationData(root);
    assert.equal(data.layout, 'generic');
    assert.deepEqual(data.classes, ['bg', 'x', 'y', 'z']);
    assert.deepEqual(data.palette, [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]);
    const train = data.train!;
    assert.deepEqual([train.length, data.val!.length, train.reduceZeroLabel, train.ignoreIndex], [3, 1, false, 255]);
    const [a, b, c] = await Promise.all([0, 1, 2].map((i) => train.sample(i)));
    assert.match(a!.name, /ann_dir\/train\/a\.png$/);
    assert.ok(a!.label.data.every((v) => v === 255));
    // The palette PNG's pixel values are its indices (0..3), not its colors.
    assert.deepEqual([...b!.label.data.subarray(0, 6)], [0, 1, 2, 3, 0, 1]);
    assert.deepEqual([c!.image.width, c!.image.height, c!.label.width], [5, 3, 5]);
  });

  test('without dataset.json the class count is given; names are then indices', async () => {
    const root = await generic([{ stem: 'a' }]);
    const data = await openSegmentationData(root, { numClasses: 3 });
    assert.deepEqual(data.classes, ['class 0', 'class 1', 'class 2']);
    assert.equal(data.palette.length, 3);
    await failure(openSegmentationData(root), /does not say how many classes.*--num-classes/, 'BAD_ARGUMENT');
  });

  test('errors name the file: a missing label map, another size, a value outside the classes, an RGB label, two images of one stem', async () => {
    const info = { classes: ['a', 'b', 'c'] };
    await failure(openSegmentationData(await generic([{ stem: 'x' }, { stem: 'y', labelPng: 'none' }], info)), /img_dir\/train\/y\.png has no label map: expected .*ann_dir\/train\/y\.png/);
    const sized = await openSegmentationData(await generic([{ stem: 'x', labelSize: [8, 5] }], info));
    await failure(sized.train!.sample(0), /ann_dir\/train\/x\.png is 8x5, its image .*img_dir\/train\/x\.png is 8x6/);
    const values = await openSegmentationData(await generic([{ stem: 'x', label: (i) => (i === 9 ? 3 : 1) }], info));
    await failure(values.train!.sample(0), /x\.png: pixel \(1, 1\) has label 3, which is neither one of the 3 classes 0-2 nor the ignore index 255/);
    const colors = await openSegmentationData(await generic([{ stem: 'x', labelPng: 'rgb' }], info));
    await assert.rejects(colors.train!.sample(0), (e: unknown) => e instanceof SwiftFormerError && /ann_dir\/train\/x\.png/.test(e.message) && /RGB/.test(e.message));
    const twice = await generic([{ stem: 'x' }], info);
    await writeFile(join(twice, 'img_dir/train/x.jpg'), await sharp(Buffer.from(rgb(8, 6, 0)), { raw: { width: 8, height: 6, channels: 3 } }).jpeg().toBuffer());
    await failure(openSegmentationData(twice), /x\.png and .*x\.jpg have the same stem|x\.jpg and .*x\.png have the same stem/);
    await failure(openSegmentationData(await generic([{ stem: 'x' }], { classes: ['a', 'b'] }), { numClasses: 3 }), /names 2 classes, the class count given is 3/, 'BAD_ARGUMENT');
    await failure(openSegmentationData(await generic([{ stem: 'x' }], { classes: 'abc' })), /"classes" must be a list/);
  });

  test('a directory that is neither layout says what was expected; a missing split asked for is named', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'img_dir/train'), { recursive: true });
    assert.equal(await segmentationLayout(root), undefined);
    await failure(openSegmentationData(root), /not a segmentation dataset: expected img_dir\/\{train,val\} and ann_dir\/\{train,val\}.*ADE20K/);
    await failure(openSegmentationData(join(root, 'nope')), /does not exist/, 'IO');
    const trainOnly = await tempDir();
    await writeSplit(trainOnly, 'img_dir/train', 'ann_dir/train', [{ stem: 'a' }]);
    const data = await openSegmentationData(trainOnly, { numClasses: 3 });
    assert.equal(data.val, undefined);
    await failure(openSegmentationData(trainOnly, { numClasses: 3, splits: ['val'] }), /has no val split/, 'IO');
  });

  test('limit keeps evenly spaced samples', async () => {
    const root = await generic(['a', 'b', 'c', 'd', 'e', 'f'].map((stem) => ({ stem })), { classes: ['a', 'b', 'c'] });
    const data = await openSegmentationData(root, { limit: 3 });
    assert.equal(data.train!.length, 3);
    assert.deepEqual(await Promise.all([0, 1, 2].map(async (i) => (await data.train!.sample(i)).name.match(/(\w)\.png$/)![1])), ['a', 'c', 'e']);
  });
});

describe("ADE20K's layout (images/, annotations/)", () => {
  test('its 150 classes and palette; 0 ("other") becomes the ignore index and k becomes k - 1', async () => {
    const root = await tempDir();
    const raw = [0, 1, 2, 150, 255, 37];
    await writeSplit(root, 'images/training', 'annotations/training', [{ stem: 'ADE_train_00000001', ext: '.jpg', width: 3, height: 2, label: (i) => raw[i]! }]);
    await writeSplit(root, 'images/validation', 'annotations/validation', [{ stem: 'ADE_val_00000001', ext: '.jpg', width: 3, height: 2, label: () => 1 }]);
    const data = await openSegmentationData(root);
    assert.equal(data.layout, 'ade20k');
    assert.equal(data.classes.length, 150);
    assert.equal(data.classes, ADE20K_CLASSES);
    assert.deepEqual([data.classes[0], data.classes[149], data.palette[0], data.palette[149]], ['wall', 'flag', [120, 120, 120], [92, 0, 255]]);
    assert.equal(ADE20K_PALETTE.length, 150);
    assert.ok(data.reduceZeroLabel && data.train!.reduceZeroLabel);
    assert.deepEqual([...(await data.train!.sample(0)).label.data], [255, 0, 1, 149, 255, 36]);
    await failure(openSegmentationData(root, { numClasses: 5 }), /ADE20K's layout, whose labels are its 150 classes/, 'BAD_ARGUMENT');
    // 151 is past the 150 classes once reduced: an error in the file's own values.
    const bad = await tempDir();
    await writeSplit(bad, 'images/training', 'annotations/training', [{ stem: 'x', ext: '.jpg', width: 3, height: 2, label: (i) => (i === 2 ? 151 : 1) }]);
    await failure((await openSegmentationData(bad)).train!.sample(0), /pixel \(2, 0\) has label 151, which is neither one of the 150 labels 1-150 \(reduce_zero_label: 0 is "other", ignored\)/);
  });

  test('reduceZeroLabel is mmseg\'s uint8 arithmetic (16-bit maps: 256 becomes 255 too)', () => {
    assert.deepEqual([...reduceZeroLabel(Uint8Array.of(0, 1, 254, 255, 100))], [255, 0, 253, 255, 99]);
    assert.deepEqual([...reduceZeroLabel(Uint16Array.of(0, 256, 300))], [255, 255, 299]);
  });
});
