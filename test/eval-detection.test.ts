/**
 * `swiftformer eval` on a COCO dataset with a detector (the maskrcnn-tiny fixture's weights) on a
 * few generated scenes: the saved results are the library's detections in COCO's format (labels
 * mapped back to category ids, x, y, w, h boxes, compressed RLE masks), and the printed summary is
 * what `swiftformer score detection` gives on the saved files.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DetectionModel, decodeImage } from '../src/index.js';
import { encodeMask, rleToString } from '../src/data/rle.js';
import { makeScenes, SCENE_DEFAULTS } from '../scripts/make-scenes.js';
import { segmResultsPath } from '../src/cli/eval-detection.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath } from './fixtures.js';

const WEIGHTS = fixturePath('maskrcnn-tiny/weights.safetensors');
const SIZES = ['--min-size', '128', '--max-size', '256'];
let root: string;
let gtFile: string;

interface Instances { images: { id: number; file_name: string }[]; annotations: { category_id: number }[]; categories: { id: number; name: string }[] }

/** The scenes' val split cut to the fixture detector's 4 classes (category ids 1..4). */
async function fourClasses(file: string, idOf: (k: number) => number = (k) => k): Promise<Instances> {
  const json = JSON.parse(await readFile(file, 'utf8')) as Instances;
  json.annotations = json.annotations.filter((a) => a.category_id <= 4).map((a) => ({ ...a, category_id: idOf(a.category_id) }));
  json.categories = json.categories.filter((c) => c.id <= 4).map((c) => ({ ...c, id: idOf(c.id) }));
  return json;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'eval-detection-'));
  await makeScenes({ ...SCENE_DEFAULTS, out: root, train: 0, val: 3, size: 64, seed: 2 });
  gtFile = join(root, 'annotations', 'instances_val.json');
  await writeFile(gtFile, JSON.stringify(await fourClasses(gtFile)));
});
after(() => rm(root, { recursive: true, force: true }));

describe('swiftformer eval on a COCO dataset', () => {
  let saved: string;
  let summary: { bbox: Record<string, number>; segm: Record<string, number>; images: number; detections: number };

  test('results are the library\'s detections in COCO format', async () => {
    saved = join(root, 'results.json');
    const r = await cli('eval', root, '--weights', WEIGHTS, ...SIZES, '--save-results', saved, '--json');
    assert.equal(r.code, 0, r.stderr);
    summary = JSON.parse(r.stdout);
    assert.equal(summary.images, 3);
    const bbox = JSON.parse(await readFile(saved, 'utf8')) as { image_id: number; category_id: number; bbox: number[]; score: number }[];
    const segm = JSON.parse(await readFile(segmResultsPath(saved), 'utf8')) as { image_id: number; category_id: number; segmentation: { size: number[]; counts: string }; score: number }[];
    assert.equal(summary.detections, bbox.length);
    assert.ok(bbox.length > 0, 'the fixture detector finds something');
    const model = await DetectionModel.load({ weights: WEIGHTS, settings: { transform: { minSize: 128, maxSize: 256 } } });
    try {
      let k = 0;
      for (const [i, stem] of ['000000', '000001', '000002'].entries()) {
        const found = await model.detect(await decodeImage(join(root, 'img_dir', 'val', `${stem}.png`)), { threshold: 0 });
        for (const d of found) {
          const f = Math.fround;
          const { xmin, ymin, xmax, ymax } = d.box;
          assert.deepEqual(bbox[k], { image_id: i + 1, category_id: d.index, bbox: [f(xmin), f(ymin), f(f(xmax) - f(xmin)), f(f(ymax) - f(ymin))], score: d.score });
          assert.deepEqual(segm[k], { image_id: i + 1, category_id: d.index, segmentation: { size: [64, 64], counts: rleToString(encodeMask(d.mask!.data, 64, 64)) }, score: d.score });
          k++;
        }
      }
      assert.equal(k, bbox.length);
    } finally {
      await model.release();
    }
  });

  test('the summary equals score detection on the saved files, in JSON and as printed', async () => {
    for (const [iouType, file] of [['bbox', saved], ['segm', segmResultsPath(saved)]] as const) {
      const s = await cli('score', 'detection', '--gt', gtFile, '--pred', file, '--iou-type', iouType, '--json');
      assert.equal(s.code, 0, s.stderr);
      assert.deepEqual(summary[iouType], JSON.parse(s.stdout), iouType);
    }
    const text = await cli('eval', root, '--weights', WEIGHTS, ...SIZES);
    assert.equal(text.code, 0, text.stderr);
    const box = await cli('score', 'detection', '--gt', gtFile, '--pred', saved);
    const mask = await cli('score', 'detection', '--gt', gtFile, '--pred', segmResultsPath(saved), '--iou-type', 'segm');
    assert.equal(text.stdout, `IoU metric: bbox\n${box.stdout}IoU metric: segm\n${mask.stdout}`);
  });

  test('category ids with gaps: contiguous labels, mapped back in the results', async () => {
    const dir = join(root, 'gaps');
    const file = join(dir, 'instances.json');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    await writeFile(file, JSON.stringify(await fourClasses(gtFile, (k) => 10 * k)));
    const out = join(dir, 'results.json');
    const r = await cli('eval', '--annotations', file, '--images', join(root, 'img_dir', 'val'), '--weights', WEIGHTS, ...SIZES, '--save-results', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const mapped = JSON.parse(await readFile(out, 'utf8')) as { category_id: number }[];
    const plain = JSON.parse(await readFile(saved, 'utf8')) as { category_id: number }[];
    assert.deepEqual(mapped, plain.map((p) => ({ ...p, category_id: 10 * p.category_id })));
    assert.deepEqual(JSON.parse(r.stdout).bbox, summary.bbox);
  });

  test('a model with other classes than the annotations is one clear error', async () => {
    const dir = join(root, 'three');
    await mkdir(dir, { recursive: true });
    const json = await fourClasses(gtFile, (k) => 10 * k);
    json.categories = json.categories.slice(0, 3);
    json.annotations = (json.annotations as { category_id: number }[]).filter((a) => a.category_id <= 30);
    const file = join(dir, 'instances.json');
    await writeFile(file, JSON.stringify(json));
    const r = await cli('eval', '--annotations', file, '--images', join(root, 'img_dir', 'val'), '--weights', WEIGHTS, ...SIZES);
    assertCleanFailure(r, /the model has 5 classes \(background included\), the annotations 3 categories with ids 10\.\.30/);
  });
});
