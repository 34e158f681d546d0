/**
 * COCO instance datasets as torchvision's references/detection reads them (coco_utils.py): label
 * maps, the training filter, ConvertCocoPolysToMask's targets, and the errors of malformed files.
 * Hand-made annotation files whose targets are worked out below, and the scene generator's output.
 */
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SwiftFormerError } from '../src/core/errors.js';
import { parseCocoInstances } from '../src/data/coco.js';
import { categoryOfLabel, cocoLabelMap, instanceTarget, trainingImageIds } from '../src/data/coco-targets.js';
import { encodeMask, rleToString } from '../src/data/rle.js';
import { findCocoSplit, openCocoData, openCocoSplit } from '../src/node/coco-data.js';
import { encodeRgbPng } from '../src/node/png.js';
import { makeScenes, SCENE_DEFAULTS } from '../scripts/make-scenes.js';

const W = 16;
const H = 12;

/** A 0/1 row-major mask with the pixels (x, y) given set. */
function maskWith(pixels: [number, number][], w = W, h = H): Uint8Array {
  const m = new Uint8Array(w * h);
  for (const [x, y] of pixels) m[y * w + x] = 1;
  return m;
}

const rect = (x0: number, y0: number, x1: number, y1: number): [number, number][] => {
  const out: [number, number][] = [];
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) out.push([x, y]);
  return out;
};

const uncompressed = (m: Uint8Array) => ({ size: [H, W], counts: [...encodeMask(m, H, W).counts] });
const compressed = (m: Uint8Array) => ({ size: [H, W], counts: rleToString(encodeMask(m, H, W)) });

/** The hand-made file: categories 3 and 7 (not contiguous), four images. */
function annotations(): Record<string, unknown> {
  return {
    images: [
      { id: 5, file_name: 'b.png', width: W, height: H },
      { id: 2, file_name: 'a.png', width: W, height: H },
      { id: 9, file_name: 'empty.png', width: W, height: H },
      { id: 7, file_name: 'thin.png', width: W, height: H },
    ],
    categories: [{ id: 7, name: 'seven' }, { id: 3, name: 'three' }],
    annotations: [
      // Image 2: a polygon on pixel boundaries (columns 2..9, rows 2..7), an uncompressed RLE, a crowd.
      { id: 11, image_id: 2, category_id: 3, bbox: [2, 2, 8, 6], area: 48, iscrowd: 0, segmentation: [[2, 2, 10, 2, 10, 8, 2, 8]] },
      { id: 12, image_id: 2, category_id: 7, bbox: [12, 0, 10, 4], area: 16, iscrowd: 0, segmentation: uncompressed(maskWith(rect(12, 0, 16, 4))) },
      { id: 13, image_id: 2, category_id: 7, bbox: [0, 8, 5, 4], area: 20, iscrowd: 1, segmentation: uncompressed(maskWith(rect(0, 8, 5, 12))) },
      // Image 5: a compressed RLE, and a box entirely right of the image (empty once clamped: dropped).
      { id: 21, image_id: 5, category_id: 7, bbox: [1, 1, 3, 2], area: 6, iscrowd: 0, segmentation: compressed(maskWith(rect(1, 1, 4, 3))) },
      { id: 22, image_id: 5, category_id: 3, bbox: [20, 1, 3, 2], area: 6, iscrowd: 0, segmentation: compressed(maskWith([])) },
      // Image 7: only a 1-pixel-wide box: no usable annotation for training.
      { id: 31, image_id: 7, category_id: 3, bbox: [4, 4, 1, 5], area: 5, iscrowd: 0, segmentation: compressed(maskWith(rect(4, 4, 5, 9))) },
    ],
  };
}

describe('label maps (torchvision: labels = category ids; contiguous otherwise)', () => {
  test('ids 1..K without a gap map to themselves', () => {
    const m = cocoLabelMap([{ id: 2, name: 'b' }, { id: 1, name: 'a' }]);
    assert.equal(m.kind, 'identity');
    assert.equal(m.numClasses, 3);
    assert.deepEqual(m.names, ['__background__', 'a', 'b']);
    assert.equal(categoryOfLabel(m, 2), 2);
  });

  test('ids with gaps are contiguous by ascending id, unless the model has max id + 1 classes', () => {
    const cats = [{ id: 7, name: 'seven' }, { id: 3, name: 'three' }];
    const c = cocoLabelMap(cats);
    assert.equal(c.kind, 'contiguous');
    assert.equal(c.numClasses, 3);
    assert.deepEqual([c.labelOf.get(3), c.labelOf.get(7)], [1, 2]);
    assert.deepEqual([categoryOfLabel(c, 1), categoryOfLabel(c, 2)], [3, 7]);
    const id = cocoLabelMap(cats, 8);
    assert.equal(id.kind, 'identity');
    assert.deepEqual(id.names, ['__background__', 'N/A', 'N/A', 'three', 'N/A', 'N/A', 'N/A', 'seven']);
    assert.throws(() => categoryOfLabel(id, 4), /label 4 is no category/);
    assert.throws(() => cocoLabelMap(cats, 5), /needs either 3 \(contiguous labels\) or 8/);
  });
});

describe('targets (ConvertCocoPolysToMask)', () => {
  const coco = parseCocoInstances(annotations());
  const map = cocoLabelMap(coco.categories);

  test('training keeps images with a box larger than 1 pixel, in ascending id order', () => {
    assert.deepEqual(trainingImageIds(coco), [2, 5]);
  });

  test('crowds dropped, boxes to x1 y1 x2 y2 clamped, masks from polygon and uncompressed RLE', () => {
    const t = instanceTarget(coco, 2, { width: W, height: H }, map);
    assert.deepEqual(t.annotationIds, [11, 12]);
    assert.deepEqual([...t.labels], [1, 2]);
    // Annotation 12's box runs to x = 22: clamped to the width.
    assert.deepEqual([...t.boxes], [2, 2, 10, 8, 12, 0, 16, 4]);
    assert.deepEqual(t.masks!.subarray(0, W * H), maskWith(rect(2, 2, 10, 8)));
    assert.deepEqual(t.masks!.subarray(W * H), maskWith(rect(12, 0, 16, 4)));
  });

  test('compressed RLE; a box empty after clamping is left out', () => {
    const t = instanceTarget(coco, 5, { width: W, height: H }, map);
    assert.deepEqual(t.annotationIds, [21]);
    assert.deepEqual([...t.boxes], [1, 1, 4, 3]);
    assert.deepEqual(t.masks, maskWith(rect(1, 1, 4, 3)));
    assert.equal(instanceTarget(coco, 5, { width: W, height: H }, map, { masks: false }).masks, undefined);
  });

  test('the decoded image must have the annotated size', () => {
    assert.throws(() => instanceTarget(coco, 5, { width: W + 1, height: H }, map), /image 5 \(b\.png\): the annotations give 16x12, the file is 17x12/);
  });
});

describe('malformed annotation files name the annotation and the field', () => {
  const withAnnotation = (a: Record<string, unknown>) => {
    const json = annotations();
    (json.annotations as unknown[]).push({ id: 99, image_id: 2, category_id: 3, area: 1, iscrowd: 0, bbox: [0, 0, 1, 1], ...a });
    return json;
  };
  const fails = (json: unknown, pattern: RegExp) => assert.throws(() => parseCocoInstances(json), (err: unknown) => {
    assert.ok(err instanceof SwiftFormerError && err.code === 'BAD_DATA', String(err));
    assert.match(err.message, pattern);
    return true;
  });

  test('negative box size', () => fails(withAnnotation({ bbox: [0, 0, -2, 3] }), /annotation 99: 'bbox' \[0,0,-2,3\] has a negative width or height/));
  test('odd polygon coordinate count', () => fails(withAnnotation({ segmentation: [[0, 0, 4, 0, 4, 4, 1]] }), /annotation 99: 'segmentation' polygon 0 has 7 coordinates, an odd number/));
  test('unknown image id', () => fails(withAnnotation({ image_id: 42 }), /annotation 99: 'image_id' 42 is not among the images/));
  test('unknown category id', () => fails(withAnnotation({ category_id: 4 }), /annotation 99: 'category_id' 4 is not among the categories/));

  test('an RLE of another size than its image', () => {
    const coco = parseCocoInstances(withAnnotation({ segmentation: { size: [H, W + 1], counts: [H * (W + 1)] } }));
    assert.throws(() => instanceTarget(coco, 2, { width: W, height: H }, cocoLabelMap(coco.categories)),
      /annotation 99: 'segmentation' RLE size \[12, 17\] is not image 2's \[12, 16\]/);
  });

  test('a kept annotation without a box or a segmentation', () => {
    const noBox = parseCocoInstances(withAnnotation({ bbox: undefined }));
    assert.throws(() => instanceTarget(noBox, 2, { width: W, height: H }, cocoLabelMap(noBox.categories)), /annotation 99: 'bbox' is missing/);
    const noSegm = parseCocoInstances(withAnnotation({}));
    assert.throws(() => instanceTarget(noSegm, 2, { width: W, height: H }, cocoLabelMap(noSegm.categories)), /annotation 99: 'segmentation' is missing/);
  });
});

describe('datasets on disk', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'coco-data-'));
    await mkdir(join(root, 'annotations'));
    await mkdir(join(root, 'train2017'));
    const pixels = (seed: number) => Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 7 + seed) % 256);
    for (const [k, name] of ['a.png', 'b.png', 'empty.png', 'thin.png'].entries()) await writeFile(join(root, 'train2017', name), encodeRgbPng(pixels(k), W, H));
    await writeFile(join(root, 'annotations', 'instances_train2017.json'), JSON.stringify(annotations()));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test("COCO's layout: training split filtered, samples with image and target", async () => {
    assert.deepEqual(await findCocoSplit(root, 'train'), { annotations: join(root, 'annotations', 'instances_train2017.json'), images: join(root, 'train2017') });
    const train = await openCocoData(root, 'train');
    assert.deepEqual(train.imageIds, [2, 5]);
    const s = await train.sample(0);
    assert.equal(s.file, join(root, 'train2017', 'a.png'));
    assert.deepEqual([s.image.width, s.image.height, s.image.data[3]], [W, H, 3 * 7 % 256]);
    assert.deepEqual(s.target.annotationIds, [11, 12]);
    const all = await openCocoData(root, 'train', { training: false });
    assert.deepEqual(all.imageIds, [2, 5, 7, 9]);
  });

  test('a missing image file is an error naming the image id and the file, when the split is opened', async () => {
    const json = annotations();
    (json.images as Record<string, unknown>[]).push({ id: 40, file_name: 'gone.png', width: W, height: H });
    (json.annotations as unknown[]).push({ id: 41, image_id: 40, category_id: 3, bbox: [0, 0, 4, 4], area: 16, iscrowd: 0, segmentation: [[0, 0, 4, 0, 4, 4]] });
    const file = join(root, 'annotations', 'missing.json');
    await writeFile(file, JSON.stringify(json));
    await assert.rejects(openCocoSplit(file, join(root, 'train2017'), { training: true }),
      new RegExp(`missing\\.json: image 40: ${join(root, 'train2017', 'gone.png').replace(/[.]/g, '\\.')} does not exist`));
  });

  test('a directory without a split says what it looked for', async () => {
    await assert.rejects(openCocoData(root, 'val'), /has no COCO val split: looked for .*instances_val2017\.json/);
  });
});

describe('the scene generator in COCO form', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'coco-scenes-'));
    await makeScenes({ ...SCENE_DEFAULTS, out: root, train: 4, val: 0, size: 64, seed: 5 });
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('targets match the generator: box = bbox corners, mask area = area, label = category id', async () => {
    const train = await openCocoData(root, 'train');
    assert.equal(train.labels.kind, 'identity');
    assert.equal(train.labels.numClasses, 11);
    assert.equal(train.imagesDir, join(root, 'img_dir', 'train'));
    let instances = 0;
    for (let i = 0; i < train.length; i++) {
      const { target, image } = await train.sample(i);
      assert.deepEqual([image.width, image.height], [64, 64]);
      const anns = train.coco.annotationsByImage.get(target.imageId)!;
      assert.deepEqual(target.annotationIds, anns.map((a) => a.id));
      anns.forEach((a, k) => {
        const [x, y, w, h] = a.bbox!;
        assert.deepEqual([...target.boxes.subarray(4 * k, 4 * k + 4)], [x, y, x + w, y + h]);
        assert.equal(target.labels[k], a.categoryId);
        const mask = target.masks!.subarray(k * 64 * 64, (k + 1) * 64 * 64);
        assert.equal(mask.reduce((s, v) => s + v, 0), a.area);
        // The mask's extent is the bbox (the generator's bbox is the visible mask's).
        let [x0, y0, x1, y1] = [64, 64, -1, -1];
        mask.forEach((v, p) => {
          if (!v) return;
          const [px, py] = [p % 64, Math.floor(p / 64)];
          [x0, y0, x1, y1] = [Math.min(x0, px), Math.min(y0, py), Math.max(x1, px), Math.max(y1, py)];
        });
        assert.deepEqual([x0, y0, x1 - x0 + 1, y1 - y0 + 1], [x, y, w, h]);
        instances++;
      });
    }
    assert.ok(instances >= 4, `${instances} instances`);
  });
});
