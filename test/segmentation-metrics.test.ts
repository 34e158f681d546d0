import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  formatSegmentationTables, SegmentationAccumulator, segmentationJson, segmentationMetrics,
} from '../src/metrics/segmentation.js';
import { formatFixed, nanmean, npRound, numpySum, pyFloatStr, rint } from '../src/metrics/numeric.js';
import { SwiftFormerError } from '../src/core/errors.js';

const close = (a: number, b: number, tol = 1e-15) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

describe('segmentation metrics, worked by hand', () => {
  test('ignore pixels and a class absent from both maps', () => {
    // K = 4, ignore 255. Pixel 4 is ignored (its prediction 0 counts nowhere).
    // Kept: gt [0,0,1,1,2], pred [0,1,1,1,0].
    //   I = [1, 2, 0, 0]; P = [2, 3, 0, 0]; L = [2, 2, 1, 0]; U = P + L - I = [3, 3, 1, 0]
    //   IoU = [1/3, 2/3, 0, NaN]; Acc = [1/2, 1, 0, NaN]
    //   mIoU = (1/3 + 2/3 + 0) / 3 = 1/3; mAcc = 1.5 / 3 = 0.5; aAcc = 3 / 5
    const m = segmentationMetrics([[[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 255, 2]]], { numClasses: 4 });
    assert.deepEqual([...m.intersect], [1, 2, 0, 0]);
    assert.deepEqual([...m.predLabel], [2, 3, 0, 0]);
    assert.deepEqual([...m.label], [2, 2, 1, 0]);
    assert.deepEqual([...m.union], [3, 3, 1, 0]);
    assert.deepEqual(m.IoU, [1 / 3, 2 / 3, 0, NaN]);
    assert.deepEqual(m.Acc, [0.5, 1, 0, NaN]);
    close(m.mIoU, 1 / 3);
    assert.equal(m.mAcc, 0.5);
    assert.equal(m.aAcc, 0.6);
    assert.equal(m.pixels, 5);
    assert.deepEqual(segmentationJson(m), { aAcc: 0.6, mIoU: m.mIoU, mAcc: 0.5, IoU: [1 / 3, 2 / 3, 0, null], Acc: [0.5, 1, 0, null] });
    assert.equal(formatSegmentationTables(m), [
      'per class results:',
      '',
      '+-------+-------+-------+',
      '| Class |  IoU  |  Acc  |',
      '+-------+-------+-------+',
      '|   0   | 33.33 |  50.0 |',
      '|   1   | 66.67 | 100.0 |',
      '|   2   |  0.0  |  0.0  |',
      '|   3   |  nan  |  nan  |',
      '+-------+-------+-------+',
      'Summary:',
      '',
      '+------+-------+------+',
      '| aAcc |  mIoU | mAcc |',
      '+------+-------+------+',
      '| 60.0 | 33.33 | 50.0 |',
      '+------+-------+------+',
    ].join('\n'));
  });

  test('reduce_zero_label rewrites the ground truth only', () => {
    // K = 3. gt raw [0,1,2,3,255,3] -> [255,0,1,2,255,2]: pixels 0 and 4 ignored.
    // pred [2,0,1,0,1,2] is not shifted. Kept: gt [0,1,2,2], pred [0,1,0,2].
    //   I = [1,1,1]; P = [2,1,1]; L = [1,1,2]; U = [2,1,2]
    //   IoU = [.5, 1, .5] -> mIoU 2/3; Acc = [1, 1, .5] -> mAcc 5/6; aAcc = 3/4
    const m = segmentationMetrics([[Uint8Array.of(2, 0, 1, 0, 1, 2), Uint8Array.of(0, 1, 2, 3, 255, 3)]], { numClasses: 3, reduceZeroLabel: true });
    assert.deepEqual(m.IoU, [0.5, 1, 0.5]);
    assert.deepEqual(m.Acc, [1, 1, 0.5]);
    close(m.mIoU, 2 / 3);
    close(m.mAcc, 5 / 6);
    assert.equal(m.aAcc, 0.75);
    // Without the flag the same maps mean something else: 0 is a class, 3 is out of range.
    const raw = segmentationMetrics([[Uint8Array.of(2, 0, 1, 0, 1, 2), Uint8Array.of(0, 1, 2, 3, 255, 3)]], { numClasses: 3 });
    assert.deepEqual([...raw.label], [1, 1, 1]);
    assert.equal(raw.gtOutOfRange, 2);
  });

  test('predictions outside [0, K-1] fall out of the prediction histogram (torch.histc), not into a class', () => {
    // K = 2. gt [0,1,1,0,7], pred [5,1,255,0,7]. The gt 7 is out of range: dropped with its
    // (equal, also out-of-range) prediction. P = [1 (px3), 1 (px1)]; L = [2, 2]; I = [1, 1]
    //   U = [2, 2]; IoU = [.5, .5]; Acc = [.5, .5]; aAcc = 2/4.
    // (Clipping 5 and 255 to class 1 would give P[1] = 3, U[1] = 4 and IoU[1] = 1/4.)
    const m = segmentationMetrics([[Uint8Array.of(5, 1, 255, 0, 7), Uint8Array.of(0, 1, 1, 0, 7)]], { numClasses: 2 });
    assert.deepEqual([...m.predLabel], [1, 1]);
    assert.deepEqual(m.IoU, [0.5, 0.5]);
    assert.deepEqual(m.Acc, [0.5, 0.5]);
    assert.equal(m.aAcc, 0.5);
    assert.equal(m.predOutOfRange, 3);
    assert.equal(m.gtOutOfRange, 1);
    // Negative predictions (an Int32Array) are dropped the same way.
    const neg = segmentationMetrics([[Int32Array.of(-1, 1), Uint8Array.of(0, 1)]], { numClasses: 2 });
    assert.deepEqual([...neg.predLabel], [0, 1]);
  });

  test('intersections and unions are summed over the dataset, not averaged per image', () => {
    // Image 1: gt [0,0], pred [0,0]. Image 2: gt [0,1,1,1], pred [1,1,1,1].
    //   totals: I = [2, 3]; P = [2, 4]; L = [3, 3]; U = [3, 4] -> IoU = [2/3, 3/4]; Acc = [2/3, 1]
    //   aAcc = 5/6. (Averaging per-image IoUs would give class 0 (1 + 0) / 2 = 1/2.)
    const acc = new SegmentationAccumulator({ numClasses: 2 });
    acc.add(Uint8Array.of(0, 0), Uint8Array.of(0, 0));
    acc.add(Uint8Array.of(1, 1, 1, 1), Uint8Array.of(0, 1, 1, 1));
    const m = acc.summary();
    assert.equal(m.images, 2);
    assert.deepEqual([...m.union], [3, 4]);
    assert.deepEqual(m.IoU, [2 / 3, 3 / 4]);
    assert.deepEqual(m.Acc, [2 / 3, 1]);
    assert.equal(m.aAcc, 5 / 6);
  });

  test('bad input is a clear error', () => {
    assert.throws(() => new SegmentationAccumulator({ numClasses: 1 }), /number of classes/);
    const acc = new SegmentationAccumulator({ numClasses: 3 });
    assert.throws(() => acc.add(Uint8Array.of(0, 1), Uint8Array.of(0), 'a.png'), (e: unknown) => e instanceof SwiftFormerError && /a\.png: the prediction has 2 pixels and the ground truth 1/.test(e.message));
    assert.throws(() => acc.add([0.5], [0]), /not a class index/);
  });
});

interface MmsegCase {
  name: string; numClasses: number; ignoreIndex: number; reduceZeroLabel: boolean;
  images: { height: number; width: number; pred: string; gt: string }[];
  aAcc: number; IoU: (number | null)[]; Acc: (number | null)[]; mIoU: number; mAcc: number;
  totals: { intersect: number[]; union: number[]; predLabel: number[]; label: number[] };
  tables: string;
}

describe('segmentation metrics against mmsegmentation 0.x (scripts/make-mmseg-refs.py)', () => {
  const data = JSON.parse(readFileSync(new URL('./data/mmseg/metrics.json', import.meta.url), 'utf8')) as { cases: MmsegCase[] };
  for (const c of data.cases) {
    test(c.name, () => {
      const acc = new SegmentationAccumulator({ numClasses: c.numClasses, ignoreIndex: c.ignoreIndex, reduceZeroLabel: c.reduceZeroLabel });
      for (const im of c.images) {
        const p = Buffer.from(im.pred, 'base64');
        const pred = new Int16Array(p.buffer, p.byteOffset, p.byteLength / 2);
        const gt = new Uint8Array(Buffer.from(im.gt, 'base64'));
        assert.equal(gt.length, im.height * im.width);
        acc.add(pred, gt);
      }
      const m = acc.summary();
      assert.deepEqual([...m.intersect], c.totals.intersect);
      assert.deepEqual([...m.union], c.totals.union);
      assert.deepEqual([...m.predLabel], c.totals.predLabel);
      assert.deepEqual([...m.label], c.totals.label);
      const json = segmentationJson(m);
      assert.deepEqual(json.IoU, c.IoU);
      assert.deepEqual(json.Acc, c.Acc);
      assert.equal(m.aAcc, c.aAcc);
      assert.equal(m.mIoU, c.mIoU); // np.nanmean's summation order, bit for bit
      assert.equal(m.mAcc, c.mAcc);
      assert.equal(formatSegmentationTables(m), c.tables);
    });
  }
});

describe('NumPy and Python number conventions', () => {
  test('rint and np.round round half to even', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(rint), [0, 2, 2, -0, -2, 2, 3]);
    assert.equal(npRound(0.65625 * 100, 2), 65.62); // 6562.5 -> 6562
    assert.equal(npRound(0.123456, 2), 0.12);
  });

  test("Python's str(float) and '{:.3f}'", () => {
    assert.deepEqual([100, 0, 65.62, NaN, 1e-5, 0.0001].map(pyFloatStr), ['100.0', '0.0', '65.62', 'nan', '1e-05', '0.0001']);
    // Exact binary ties go to even in Python; JavaScript's toFixed would give 0.063 and 0.188.
    assert.equal(formatFixed(0.0625, 3), '0.062');
    assert.equal(formatFixed(0.1875, 3), '0.188');
    assert.equal(formatFixed(-1, 3), '-1.000');
    assert.equal(formatFixed(0.5, 2), '0.50');
    // 0.0005 is not a tie in binary (it is slightly above), so it rounds up, as in Python.
    assert.equal(formatFixed(0.0005, 3), '0.001');
    assert.equal(formatFixed(0.3785, 3), '0.379'); // 0.378500000000000003...
    assert.equal(formatFixed(0.1235, 3), '0.123'); // 0.12349999999999999...
  });

  test('pairwise summation agrees with a naive loop to rounding; nanmean skips NaN', () => {
    const a = Array.from({ length: 1000 }, (_, i) => 1 / (i + 1));
    const naive = a.reduce((s, x) => s + x, 0);
    close(numpySum(a), naive, 1e-12);
    assert.equal(nanmean([1, NaN, 2]), 1.5);
  });
});
