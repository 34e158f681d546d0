/**
 * The Fashion-MNIST scene generator (scripts/make-scenes.ts), checked on a handful of scenes
 * against facts that do not depend on how it composes them: determinism, the label values, COCO
 * RLE masks decoded here (column-major, as pycocotools' maskApi) against their bbox and area, and
 * the label map against the union of the instance masks and the ignore band.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { FASHION_MNIST_CLASSES } from '../src/data/dataset.js';
import { makeScenes, SCENE_DEFAULTS, type SceneOptions } from '../scripts/make-scenes.js';

const SIZE = 96;
const small = (out: string, seed = 3): SceneOptions => ({ ...SCENE_DEFAULTS, out, train: 5, val: 3, size: SIZE, seed });

/** Decodes COCO's uncompressed RLE: alternating runs of 0 and 1 over the column-major pixels. */
function decodeRle(rle: { counts: number[]; size: [number, number] }): Uint8Array {
  const [h, w] = rle.size;
  const mask = new Uint8Array(h * w);
  let k = 0;
  for (const [i, run] of rle.counts.entries()) {
    for (let r = 0; r < run; r++, k++) {
      if (i % 2 === 1) mask[(k % h) * w + Math.floor(k / h)] = 1; // k-th pixel in column order -> row-major index
    }
  }
  assert.equal(k, h * w, 'RLE counts must cover the image exactly');
  return mask;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

async function grayPixels(path: string): Promise<Uint8Array> {
  const meta = await sharp(path).metadata();
  assert.deepEqual([meta.format, meta.channels, meta.depth], ['png', 1, 'uchar'], `${path} must be an 8-bit single-channel PNG`);
  const { data, info } = await sharp(path).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 1);
  assert.deepEqual([info.width, info.height], [SIZE, SIZE]);
  return new Uint8Array(data);
}

describe('Fashion-MNIST scenes', () => {
  let dirs: string[] = [];
  before(async () => {
    dirs = await Promise.all([0, 1, 2].map(() => mkdtemp(join(tmpdir(), 'scenes-'))));
    await makeScenes(small(dirs[0]!));
    await makeScenes(small(dirs[1]!));
    await makeScenes(small(dirs[2]!, 4));
  });
  after(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  test('the same seed and arguments give byte-identical files; another seed does not', async () => {
    const [a, b, c] = dirs as [string, string, string];
    const files = await filesUnder(a);
    assert.deepEqual(await filesUnder(b), files);
    assert.equal(files.length, 2 * (5 + 3) + 3);
    for (const f of files) assert.ok((await readFile(join(a, f))).equals(await readFile(join(b, f))), `${f} differs between two runs`);
    const image = 'img_dir/train/000000.png';
    assert.ok(!(await readFile(join(a, image))).equals(await readFile(join(c, image))), 'seed 4 gave the same scene as seed 3');
  });

  for (const split of ['train', 'val'] as const) {
    test(`${split}: COCO masks, boxes and areas agree with the label maps`, async () => {
      const dir = dirs[0]!;
      const coco = JSON.parse(await readFile(join(dir, 'annotations', `instances_${split}.json`), 'utf8'));
      assert.deepEqual(coco.categories.map((c: { id: number }) => c.id), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.deepEqual(coco.categories.map((c: { name: string }) => c.name), FASHION_MNIST_CLASSES);
      assert.equal(coco.images.length, split === 'train' ? 5 : 3);
      assert.deepEqual(new Set(coco.annotations.map((a: { id: number }) => a.id)).size, coco.annotations.length, 'annotation ids are unique');
      let instances = 0;
      for (const image of coco.images) {
        assert.deepEqual([image.width, image.height], [SIZE, SIZE]);
        const rgb = await sharp(join(dir, 'img_dir', split, image.file_name)).raw().toBuffer({ resolveWithObject: true });
        assert.deepEqual([rgb.info.width, rgb.info.height, rgb.info.channels], [SIZE, SIZE, 3]);
        const label = await grayPixels(join(dir, 'ann_dir', split, image.file_name));
        for (const v of label) assert.ok(v <= 10 || v === 255, `label value ${v}`);

        const owner = new Int32Array(SIZE * SIZE).fill(-1); // which instance's visible mask holds the pixel
        const anns = coco.annotations.filter((a: { image_id: number }) => a.image_id === image.id);
        for (const [k, a] of anns.entries()) {
          instances++;
          assert.ok(Number.isInteger(a.category_id) && a.category_id >= 1 && a.category_id <= 10);
          assert.equal(a.iscrowd, 0);
          assert.deepEqual(a.segmentation.size, [SIZE, SIZE]);
          const mask = decodeRle(a.segmentation);
          const [x, y, w, h] = a.bbox as number[];
          let area = 0;
          let [x0, y0, x1, y1] = [SIZE, SIZE, -1, -1];
          for (let p = 0; p < mask.length; p++) {
            if (!mask[p]) continue;
            const [px, py] = [p % SIZE, Math.floor(p / SIZE)];
            assert.ok(px >= x! && px < x! + w! && py >= y! && py < y! + h!, `pixel (${px}, ${py}) outside bbox ${a.bbox}`);
            [x0, y0, x1, y1] = [Math.min(x0, px), Math.min(y0, py), Math.max(x1, px), Math.max(y1, py)];
            assert.equal(owner[p], -1, 'visible masks of one image do not overlap');
            owner[p] = k;
            area++;
          }
          assert.equal(area, a.area, `annotation ${a.id}: area`);
          assert.ok(area >= SCENE_DEFAULTS.minArea);
          assert.deepEqual([x0, y0, x1 - x0 + 1, y1 - y0 + 1], a.bbox, 'bbox is tight');
        }
        // Garment labels = union of the visible masks minus the band; the band hugs every mask's edge.
        for (let p = 0; p < label.length; p++) {
          const [px, py] = [p % SIZE, Math.floor(p / SIZE)];
          const k = owner[p]!;
          if (label[p]! >= 1 && label[p]! <= 10) {
            assert.ok(k >= 0, `garment label at (${px}, ${py}) outside every instance mask`);
            assert.equal(label[p], anns[k].category_id);
          }
          if (k < 0) continue;
          let edge = false;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const [qx, qy] = [px + dx, py + dy];
              if (qx >= 0 && qy >= 0 && qx < SIZE && qy < SIZE && owner[qy * SIZE + qx] !== k) edge = true;
            }
          }
          assert.equal(label[p], edge ? 255 : anns[k].category_id, `pixel (${px}, ${py}) of annotation ${anns[k].id}`);
        }
        const band = label.filter((v) => v === 255).length;
        assert.ok(band < label.length / 3, 'the ignore band is thin');
      }
      assert.ok(instances >= coco.images.length, 'at least one instance per scene on average');
    });
  }

  test('backgrounds are textured, not flat', async () => {
    for (let i = 0; i < 5; i++) {
      const { data } = await sharp(join(dirs[0]!, 'img_dir', 'train', `00000${i}.png`)).raw().toBuffer({ resolveWithObject: true });
      const label = await grayPixels(join(dirs[0]!, 'ann_dir', 'train', `00000${i}.png`));
      const values = [...label.keys()].filter((p) => label[p] === 0).map((p) => data[p * 3]! + data[p * 3 + 1]! + data[p * 3 + 2]!);
      const mean = values.reduce((s, v) => s + v, 0) / values.length;
      const std = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
      assert.ok(std > 3, `scene ${i}: background std ${std.toFixed(2)}`);
    }
  });

  test('dataset.json records the arguments, classes and palette', async () => {
    const d = JSON.parse(await readFile(join(dirs[0]!, 'dataset.json'), 'utf8'));
    assert.equal(d.seed, 3);
    assert.equal(d.args.size, SIZE);
    assert.deepEqual(d.classes, ['background', ...FASHION_MNIST_CLASSES]);
    assert.equal(d.palette.length, 11);
    assert.equal(d.ignore_index, 255);
  });
});
