import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { encodeGrayPng, encodePalettePng } from '../src/node/png.js';
import { formatSegmentationTables, segmentationMetrics } from '../src/metrics/segmentation.js';
import { assertCleanFailure, cli } from './cli-runner.js';

/** A ground-truth and a prediction directory of 2x3 label maps; predictions as palette PNGs. */
async function labelDirs(pairs: Record<string, [number[], number[]]>, predExtra: Record<string, number[]> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'swiftformer-score-'));
  const gt = join(dir, 'gt');
  const pred = join(dir, 'pred');
  await mkdir(gt);
  await mkdir(pred);
  const palette = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]] as [number, number, number][];
  for (const [stem, [p, g]] of Object.entries(pairs)) {
    await writeFile(join(gt, `${stem}.png`), encodeGrayPng(Uint8Array.from(g), 3, 2));
    await writeFile(join(pred, `${stem}.png`), encodePalettePng(Uint8Array.from(p), 3, 2, palette));
  }
  for (const [stem, p] of Object.entries(predExtra)) await writeFile(join(pred, `${stem}.png`), encodeGrayPng(Uint8Array.from(p), 3, 2));
  return { dir, gt, pred };
}

describe('swiftformer score segmentation', () => {
  // The hand-worked case of test/segmentation-metrics.test.ts, split over two images:
  // gt [0,0,1 | 1,255,2], pred [0,1,1 | 1,0,0], K = 4 -> IoU [1/3, 2/3, 0, NaN], Acc [1/2, 1, 0, NaN].
  const pairs: Record<string, [number[], number[]]> = {
    a: [[0, 1, 1, 0, 0, 0], [0, 0, 1, 255, 255, 255]],
    b: [[1, 0, 0, 0, 0, 0], [1, 255, 2, 255, 255, 255]],
  };

  test("prints mmseg's tables", async () => {
    const { gt, pred } = await labelDirs(pairs);
    const r = await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '4');
    assert.equal(r.code, 0, r.stderr);
    // The tables themselves are checked by hand in test/segmentation-metrics.test.ts; here: the same
    // numbers come out of the files.
    const want = segmentationMetrics(Object.values(pairs).map(([p, g]) => [Uint8Array.from(p), Uint8Array.from(g)] as const), { numClasses: 4 });
    assert.equal(r.stdout, `${formatSegmentationTables(want)}\n`);
    assert.match(r.stdout, /\| {3}1 {3}\| 66\.67 \| 100\.0 \|/);
    assert.match(r.stderr, /scored 2 images, 5 pixels, ignore index 255/);
  });

  test('--json gives fractions with null for undefined classes; --classes names the rows', async () => {
    const { dir, gt, pred } = await labelDirs(pairs, { 'c.overlay': [0, 0, 0, 0, 0, 0] });
    const r = await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '4', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out), ['aAcc', 'mIoU', 'mAcc', 'IoU', 'Acc']);
    assert.equal(out.aAcc, 0.6);
    assert.ok(Math.abs(out.mIoU - 1 / 3) < 1e-15);
    assert.deepEqual(out.IoU, [1 / 3, 2 / 3, 0, null]);
    assert.deepEqual(out.Acc, [0.5, 1, 0, null]);
    assert.match(r.stderr, /1 prediction file has no ground truth and was left out/);
    await writeFile(join(dir, 'classes.txt'), 'wall\nfloor\nsky\ntree\n');
    const named = await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '4', '--classes', join(dir, 'classes.txt'));
    assert.match(named.stdout, /\| {2}wall \| 33\.33 \| {2}50\.0 \|\n\| floor \|/); // PrettyTable: odd slack left of even-length text
  });

  test('--reduce-zero-label and --ignore-index', async () => {
    // gt raw [0,1,2 | 3,255,3], pred [2,0,1 | 0,1,2], K = 3 (see the metrics test): IoU [.5, 1, .5].
    const { gt, pred } = await labelDirs({ a: [[2, 0, 1, 0, 1, 2], [0, 1, 2, 3, 255, 3]] });
    const r = await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '3', '--reduce-zero-label', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.IoU, [0.5, 1, 0.5]);
    assert.equal(out.aAcc, 0.75);
    // Without the flag, with 0 ignored instead: the 255 pixel now counts (out of range) and 3 too.
    const raw = await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '3', '--ignore-index', '0', '--json');
    assert.equal(raw.code, 0, raw.stderr);
    assert.match(raw.stderr, /3 ground-truth pixels are outside \[0, 2\]/);
  });

  test('a missing prediction, a size mismatch, bad arguments', async () => {
    const { dir, gt, pred } = await labelDirs(pairs);
    await writeFile(join(gt, 'z.png'), encodeGrayPng(new Uint8Array(6), 3, 2));
    assertCleanFailure(await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '4'), /z\.png: no prediction z\.png in /);
    await writeFile(join(pred, 'z.png'), encodeGrayPng(new Uint8Array(6), 2, 3));
    assertCleanFailure(await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '4'), /pred\/z\.png: the prediction is 2x3, the ground truth .*gt\/z\.png is 3x2/);
    await writeFile(join(pred, 'z.png'), 'not a png');
    assertCleanFailure(await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '4'), /pred\/z\.png: not a PNG file/);
    assertCleanFailure(await cli('score', 'segmentation', '--gt', gt, '--pred', pred), /needs --num-classes/);
    assertCleanFailure(await cli('score', 'segmentation', '--gt', join(dir, 'nope'), '--pred', pred, '--num-classes', '4'), /ground-truth directory .*nope: no such directory/);
    assertCleanFailure(await cli('score', 'segmentation', '--gt', gt, '--pred', pred, '--num-classes', '4', '--iou-type', 'segm'), /--iou-type is for score detection/);
    assertCleanFailure(await cli('score', 'classification'), /score takes 'segmentation' or 'detection'/);
  });
});

describe('swiftformer score detection', () => {
  const ref = JSON.parse(readFileSync(new URL('./data/coco/eval-0.json', import.meta.url), 'utf8'));

  async function files(gt: unknown, results: unknown) {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-score-'));
    await writeFile(join(dir, 'gt.json'), JSON.stringify(gt));
    await writeFile(join(dir, 'res.json'), JSON.stringify(results));
    return { dir, gt: join(dir, 'gt.json'), res: join(dir, 'res.json') };
  }

  test("prints pycocotools' summary; --json the 12 statistics", async () => {
    const f = await files(ref.gt, ref.results);
    const r = await cli('score', 'detection', '--gt', f.gt, '--pred', f.res, '--iou-type', ref.iouType);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, ref.summary);
    const j = await cli('score', 'detection', '--gt', f.gt, '--pred', f.res, '--json');
    const out = JSON.parse(j.stdout);
    assert.deepEqual(Object.keys(out), ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl']);
    Object.values(out).forEach((v, i) => assert.ok(Math.abs((v as number) - ref.stats[i]) < 1e-12));
  });

  test('-1 where a statistic is undefined', async () => {
    const gt = { images: [{ id: 1, width: 100, height: 100 }], categories: [{ id: 1, name: 'a' }], annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], area: 100, iscrowd: 0 }] };
    const f = await files(gt, [{ image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], score: 0.5 }]);
    const out = JSON.parse((await cli('score', 'detection', '--gt', f.gt, '--pred', f.res, '--json')).stdout);
    assert.ok(Math.abs(out.AP - 1) < 1e-15);
    assert.equal(out.APm, -1);
    assert.equal(out.ARl, -1);
  });

  test('malformed files: errors name the file, the annotation or result, and the field', async () => {
    const bad = structuredClone(ref.gt);
    bad.annotations[3].bbox = [1, 2, -3, 4];
    const f = await files(bad, ref.results);
    assertCleanFailure(await cli('score', 'detection', '--gt', f.gt, '--pred', f.res), new RegExp(`gt\\.json: annotation ${bad.annotations[3].id}: 'bbox' \\[1,2,-3,4\\] has a negative width`));
    const g = await files(ref.gt, [{ image_id: 12345, category_id: 1, bbox: [0, 0, 1, 1], score: 1 }]);
    assertCleanFailure(await cli('score', 'detection', '--gt', g.gt, '--pred', g.res), /res\.json: result 0: 'image_id' 12345 is not among the ground truth's images/);
    const noSegm = await files(ref.gt, ref.results);
    assertCleanFailure(await cli('score', 'detection', '--gt', noSegm.gt, '--pred', noSegm.res, '--iou-type', 'segm'), /gt\.json: annotation \d+: 'segmentation' is missing/);
    assertCleanFailure(await cli('score', 'detection', '--gt', g.gt, '--pred', g.res, '--iou-type', 'mask'), /--iou-type must be one of bbox, segm/);
    assertCleanFailure(await cli('score', 'detection', '--gt', join(g.dir, 'missing.json'), '--pred', g.res), /cannot read ground truth .*missing\.json: no such file/);
    await writeFile(join(g.dir, 'broken.json'), '{"images": [');
    assertCleanFailure(await cli('score', 'detection', '--gt', join(g.dir, 'broken.json'), '--pred', g.res), /broken\.json is not JSON/);
    assertCleanFailure(await cli('score', 'detection', '--gt', g.gt), /needs --gt and --pred/);
  });
});

test("README's scoring example runs and prints what its comments say", async () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const block = /```ts score-example\n([\s\S]*?)```/.exec(readFileSync(join(root, 'README.md'), 'utf8'));
  assert.ok(block, 'README has a ```ts score-example block');
  // Against the sources (the README test proper runs the built package).
  const code = block[1]!.replace("from 'swiftformer'", `from ${JSON.stringify(join(root, 'src/index.ts'))}`);
  const dir = await mkdtemp(join(tmpdir(), 'swiftformer-readme-'));
  const script = join(dir, 'example.mts');
  await writeFile(script, code);
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', script], { cwd: root }, (err, out, stderr) => (err ? reject(new Error(stderr)) : resolve(out)));
  });
  assert.deepEqual(stdout.trim().split('\n'), ['[ 0.5, 1, 0.5 ]', '0.9999999999999999']);
});
