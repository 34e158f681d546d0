import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseCocoInstances, parseCocoResults } from '../src/data/coco.js';
import { evaluateCoco, statsJson, summaryLines, type IouType } from '../src/metrics/cocoeval.js';
import { encodeMask, rleToString } from '../src/data/rle.js';
import { SwiftFormerError } from '../src/core/errors.js';

type Box = [number, number, number, number];
interface Gt { id: number; image_id: number; category_id: number; bbox: Box; area?: number; iscrowd?: number; segmentation?: unknown }
interface Res { image_id: number; category_id: number; bbox?: Box; score: number; segmentation?: unknown }

function dataset(anns: Gt[], images = [1], categories = [1]) {
  return {
    images: images.map((id) => ({ id, width: 640, height: 480, file_name: `${id}.jpg` })),
    categories: categories.map((id) => ({ id, name: `c${id}` })),
    annotations: anns.map((a) => ({ iscrowd: 0, area: a.bbox[2] * a.bbox[3], ...a })),
  };
}

function run(anns: Gt[], results: Res[], opts: { images?: number[]; categories?: number[]; iouType?: IouType } = {}) {
  const gt = parseCocoInstances(dataset(anns, opts.images, opts.categories));
  const { detections } = parseCocoResults(results, gt);
  return statsJson(evaluateCoco(gt, detections, opts.iouType ?? 'bbox').stats);
}

/** One detection that matches perfectly: tp / (tp + fp + eps) = 1 / (1 + 2^-52), not exactly 1. */
const ONE = 1 / (1 + Number.EPSILON);
const near = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

describe('COCOeval, worked by hand', () => {
  test('one image, one box, one exact detection; -1 for the area ranges without ground truth', () => {
    // A 10x10 box (area 100: small). Precision ONE at every recall point and threshold; recall 1.
    const s = run([{ id: 1, image_id: 1, category_id: 1, bbox: [10, 10, 10, 10] }], [{ image_id: 1, category_id: 1, bbox: [10, 10, 10, 10], score: 0.9 }]);
    for (const k of ['AP', 'AP50', 'AP75', 'APs'] as const) near(s[k], ONE);
    for (const k of ['AR1', 'AR10', 'AR100', 'ARs'] as const) assert.equal(s[k], 1);
    for (const k of ['APm', 'APl', 'ARm', 'ARl'] as const) assert.equal(s[k], -1);
  });

  test('IoU 2/3 matches at thresholds .50-.65 only', () => {
    // gt [0,0,10,10], dt [0,0,10,15]: IoU 100 / 150. Matched at 4 of the 10 thresholds.
    const s = run([{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 10, 10] }], [{ image_id: 1, category_id: 1, bbox: [0, 0, 10, 15], score: 0.9 }]);
    near(s.AP, (4 * ONE) / 10);
    near(s.AP50, ONE);
    assert.equal(s.AP75, 0);
    near(s.AR100, 0.4, 1e-15);
  });

  test('a crowd region: detections inside it are ignored, not false positives, and it is not counted in recall', () => {
    // A: [0,0,10,10]; C: crowd [50,50,40,40]. d2, d3 lie inside C (IoU with a crowd = fraction of the
    // detection inside = 1) and outrank the true positive d1; d4 is a false positive after it.
    // Order d2 (ignored), d3 (ignored), d1 (TP), d4 (FP): recall 1 is reached at precision ONE.
    // Without the crowd rule d2 and d3 would be FPs first: precision 1/3 -> AP 1/3.
    const anns: Gt[] = [
      { id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 10, 10] },
      { id: 2, image_id: 1, category_id: 1, bbox: [50, 50, 40, 40], iscrowd: 1 },
    ];
    const results: Res[] = [
      { image_id: 1, category_id: 1, bbox: [55, 55, 10, 10], score: 0.95 },
      { image_id: 1, category_id: 1, bbox: [70, 70, 10, 10], score: 0.9 },
      { image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], score: 0.8 },
      { image_id: 1, category_id: 1, bbox: [200, 200, 10, 10], score: 0.6 },
    ];
    const s = run(anns, results);
    near(s.AP, ONE);
    assert.equal(s.AR100, 1);
    // A is small; the crowd's 1600 would be medium but crowds are always ignored: no medium ground truth.
    assert.equal(s.APm, -1);
    // The same region not marked crowd: an ordinary miss, and d2, d3 are false positives ahead of d1.
    const plain = run(anns.map((a) => ({ ...a, iscrowd: 0 })), results);
    // d2 FP, d3 FP, d1 TP, d4 FP: recall reaches 1/2 at precision 1/3, so 51 of the 101 recall points
    // (0, .01, ..., .50) get 1/3 and the rest 0.
    near(plain.AP, (51 / 101) * (1 / (3 + Number.EPSILON)));
    near(plain.AR100, 0.5);
  });

  test('detections beyond maxDets (100) are never seen', () => {
    const gt: Gt[] = [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 20, 20] }];
    const fps = (n: number): Res[] => Array.from({ length: n }, (_, i) => ({ image_id: 1, category_id: 1, bbox: [300 + i, 300, 5, 5], score: 0.9 - i * 0.001 }));
    const tp: Res = { image_id: 1, category_id: 1, bbox: [0, 0, 20, 20], score: 0.01 };
    // 100 higher-scoring false positives: the true positive is the 101st, cut.
    const cut = run(gt, [...fps(100), tp]);
    assert.equal(cut.AP, 0);
    assert.equal(cut.AR100, 0);
    // 99: it is the 100th. Recall 1 at precision 1/100; AR10 and AR1 still 0.
    const kept = run(gt, [tp, ...fps(99)]); // file order does not matter, scores do
    near(kept.AP, 1 / (100 + Number.EPSILON));
    assert.equal(kept.AR100, 1);
    assert.equal(kept.AR10, 0);
    assert.equal(kept.AR1, 0);
  });

  test('categories without ground truth are left out of the mean; categories without detections count 0', () => {
    const anns: Gt[] = [
      { id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 50, 50] },
      { id: 2, image_id: 1, category_id: 3, bbox: [100, 100, 50, 50] },
    ];
    const results: Res[] = [
      { image_id: 1, category_id: 1, bbox: [0, 0, 50, 50], score: 0.9 },
      { image_id: 1, category_id: 2, bbox: [300, 300, 50, 50], score: 0.8 }, // category 2 has no ground truth
      { image_id: 1, category_id: 99, bbox: [0, 0, 50, 50], score: 0.8 }, // not a ground-truth category: not evaluated
    ];
    // Category 1: AP ONE. Category 2: -1 (left out). Category 3: no detection, AP 0. Mean: ONE / 2.
    const s = run(anns, results, { categories: [1, 2, 3] });
    near(s.AP, ONE / 2);
    near(s.AR100, 0.5, 0);
    const gt = parseCocoInstances(dataset(anns, [1], [1, 2, 3]));
    assert.equal(parseCocoResults(results, gt).unknownCategories, 1);
  });

  test('tied scores keep their order: file order within an image, image id order across images', () => {
    const gt: Gt[] = [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 20, 20] }];
    const fp: Res = { image_id: 1, category_id: 1, bbox: [200, 200, 20, 20], score: 0.5 };
    const tp: Res = { image_id: 1, category_id: 1, bbox: [0, 0, 20, 20], score: 0.5 };
    // FP first: precision [0, 1/2] -> interpolated 1/2 at every recall point. TP first: ONE.
    near(run(gt, [fp, tp]).AP, 0.5 / (1 + Number.EPSILON / 2), 1e-15);
    near(run(gt, [tp, fp]).AP, ONE);
    // Across images the lower image id comes first, wherever the results are in the file.
    const gt2: Gt[] = [{ id: 1, image_id: 2, category_id: 1, bbox: [0, 0, 20, 20] }];
    const fpImage1 = { ...fp, image_id: 1 };
    const tpImage2 = { ...tp, image_id: 2 };
    near(run(gt2, [tpImage2, fpImage1], { images: [1, 2] }).AP, 0.5, 1e-15);
    near(run(gt2, [tpImage2, { ...fpImage1, image_id: 3 }], { images: [3, 2] }).AP, ONE);
  });

  test('area ranges are inclusive: an area of exactly 32^2 is both small and medium', () => {
    const s = run([{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 32, 32], area: 1024 }], [{ image_id: 1, category_id: 1, bbox: [0, 0, 32, 32], score: 1 }]);
    near(s.APs, ONE);
    near(s.APm, ONE);
    assert.equal(s.APl, -1);
  });

  test("pycocotools' quirk: a ground truth with id 0 never counts as matched", () => {
    const s = run([{ id: 0, image_id: 1, category_id: 1, bbox: [0, 0, 20, 20] }], [{ image_id: 1, category_id: 1, bbox: [0, 0, 20, 20], score: 1 }]);
    assert.equal(s.AP, 0);
  });

  test('the summary prints as pycocotools prints it', () => {
    const gt = parseCocoInstances(dataset([{ id: 1, image_id: 1, category_id: 1, bbox: [10, 10, 10, 10] }]));
    const r = evaluateCoco(gt, parseCocoResults([{ image_id: 1, category_id: 1, bbox: [10, 10, 10, 10], score: 0.9 }], gt).detections, 'bbox');
    assert.deepEqual(summaryLines(r).slice(0, 2), [
      ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000',
      ' Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000',
    ]);
    assert.equal(summaryLines(r)[4], ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000');
    assert.equal(summaryLines(r)[6], ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 1.000');
  });

  test("published: mmdetection's CocoMetric test expects 1.0 for every bbox and segm mAP on its dummy data", () => {
    // mmdet tests/test_evaluation/test_metrics/test_coco_metric.py: one 640x640 image, categories
    // 0 (car) and 1 (bicycle), four boxes (areas 400, 900, 1600, 10000), each with the same RLE of a
    // 10x10 mask whose top-left 5x5 is set; results are the same boxes (xyxy -> xywh) with scores
    // 1.0, .98, .96, .95 and labels 0, 0, 1, 0, and that mask.
    const mask = Uint8Array.from({ length: 100 }, (_, i) => (Math.floor(i / 10) < 5 && i % 10 < 5 ? 1 : 0));
    const rle = { size: [10, 10], counts: rleToString(encodeMask(mask, 10, 10)) };
    const boxes: Box[] = [[50, 60, 20, 20], [100, 120, 30, 30], [150, 160, 40, 40], [250, 260, 100, 100]];
    const labels = [0, 0, 1, 0];
    const json = {
      images: [{ id: 0, width: 640, height: 640, file_name: 'fake_name.jpg' }],
      categories: [{ id: 0, name: 'car' }, { id: 1, name: 'bicycle' }],
      annotations: boxes.map((bbox, i) => ({ id: i + 1, image_id: 0, category_id: labels[i], area: [400, 900, 1600, 10000][i], bbox, iscrowd: 0, segmentation: rle })),
    };
    const results = boxes.map((bbox, i) => ({ image_id: 0, category_id: labels[i], bbox, score: [1, 0.98, 0.96, 0.95][i], segmentation: rle }));
    const gt = parseCocoInstances(json);
    for (const iouType of ['bbox', 'segm'] as const) {
      const stats = evaluateCoco(gt, parseCocoResults(results, gt).detections, iouType).stats;
      assert.deepEqual(stats.slice(0, 6).map((v) => Math.round(v * 1000) / 1000), [1, 1, 1, 1, 1, 1], iouType);
    }
  });
});

describe('COCOeval against pycocotools (scripts/make-coco-refs.py)', () => {
  const dir = new URL('./data/coco/', import.meta.url);
  for (const file of readdirSync(dir).filter((f) => f.startsWith('eval-')).sort()) {
    const c = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
    test(`${c.name} (${c.iouType})`, () => {
      const gt = parseCocoInstances(c.gt);
      const r = evaluateCoco(gt, parseCocoResults(c.results, gt).detections, c.iouType);
      r.stats.forEach((v, i) => near(v, c.stats[i], 1e-12));
      assert.equal(`${summaryLines(r).join('\n')}\n`, c.summary);
      const recall = (c.recall as number[][][][]).flat(3);
      assert.equal(r.recall.length, recall.length);
      r.recall.forEach((v, i) => near(v, recall[i]!, 1e-12));
      // Precision at area=all, maxDets=100: [T, R, K] of the full [T, R, K, A, M].
      const buf = Buffer.from(c.precisionAllArea100, 'base64');
      const want = new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
      const K = r.categoryIds.length;
      const [A, M] = [4, 3];
      want.forEach((v, i) => near(r.precision[i * A * M + 0 * M + 2]!, v, 1e-12));
      assert.equal(want.length, 10 * 101 * K);
    });
  }
});

describe('COCO files with mistakes get errors naming the annotation and field', () => {
  const base = () => dataset([{ id: 7, image_id: 1, category_id: 1, bbox: [0, 0, 5, 5] }]);
  const fails = (mutate: (j: ReturnType<typeof base>) => void, pattern: RegExp) => {
    const j = base();
    mutate(j);
    assert.throws(() => parseCocoInstances(j), (e: unknown) => e instanceof SwiftFormerError && e.code === 'BAD_DATA' && pattern.test(e.message));
  };
  test('ground truth', () => {
    fails((j) => void (j.annotations[0]!.bbox = [0, 0, -1, 5]), /annotation 7: 'bbox' \[0,0,-1,5\] has a negative width/);
    fails((j) => void (j.annotations[0]!.image_id = 99), /annotation 7: 'image_id' 99 is not among the images/);
    fails((j) => void (j.annotations[0]!.category_id = 5), /annotation 7: 'category_id' 5 is not among the categories/);
    fails((j) => void ((j.annotations[0] as Gt).segmentation = [[0, 0, 1, 0, 1]]), /annotation 7: 'segmentation' polygon 0 has 5 coordinates/);
    fails((j) => void delete (j.annotations[0] as Partial<Gt>).area, /annotation 7: 'area' must be a non-negative number/);
    fails((j) => void j.annotations.push({ ...j.annotations[0]! }), /annotation id 7 appears more than once/);
    fails((j) => void (j.images[0]!.width = 0), /image 1: 'width' must be positive/);
  });
  test('results', () => {
    const gt = parseCocoInstances(base());
    assert.throws(() => parseCocoResults([{ image_id: 5, category_id: 1, bbox: [0, 0, 1, 1], score: 1 }], gt), /result 0: 'image_id' 5 is not among the ground truth's images/);
    assert.throws(() => parseCocoResults([{ image_id: 1, category_id: 1, bbox: [0, 0, 1, 1], score: 1 }, { image_id: 1, category_id: 1, score: 1 }], gt), /result 1: 'bbox' is missing/);
    assert.throws(() => parseCocoResults([{ image_id: 1, category_id: 1, bbox: [0, 0, 1, 1], score: 'high' }], gt), /result 0: 'score' must be a finite number/);
    assert.throws(() => parseCocoResults({}, gt), /results are a JSON list/);
    // A segm evaluation of ground truth without segmentations names the annotation.
    assert.throws(() => evaluateCoco(gt, parseCocoResults([{ image_id: 1, category_id: 1, bbox: [0, 0, 5, 5], score: 1 }], gt).detections, 'segm'), /annotation 7: 'segmentation' is missing/);
  });
  test('no results at all: AP and AR 0 where there is ground truth', () => {
    const gt = parseCocoInstances(base());
    const s = statsJson(evaluateCoco(gt, parseCocoResults([], gt).detections, 'bbox').stats);
    assert.equal(s.AP, 0);
    assert.equal(s.AR100, 0);
    assert.equal(s.APl, -1);
  });
});
