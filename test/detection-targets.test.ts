/** torchvision's training targets (models/detection/targets.ts) on cases worked out by hand. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Random } from '../src/core/random.js';
import {
  anchorGrid, BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, boxIou, levelScale, matchBoxes, roiAssignment, roiLevels, sampleBalanced,
} from '../src/models/detection/targets.js';
import { defaultSettings } from '../src/models/detection/settings.js';

describe('training targets', () => {
  test('box IoU: [0,0,2,2] and [1,1,3,3] overlap in 1 of 7 pixels; disjoint boxes 0', () => {
    const iou = boxIou(Float32Array.of(0, 0, 2, 2), Float32Array.of(1, 1, 3, 3, 5, 5, 6, 6));
    assert.deepEqual([...iou], [Math.fround(1 / 7), 0]);
  });

  test('Matcher: thresholds, and a gt\'s best prediction kept however low (ties too)', () => {
    // 2 gt x 4 predictions. Prediction 0: 0.8 with gt 0 (match); 1: 0.5 (between); 2: 0.1 (below);
    // 3: 0.2 with gt 1, which is gt 1's best: matched to gt 1 with low-quality matches.
    const q = Float32Array.of(0.8, 0.5, 0.1, 0.0, 0.1, 0.2, 0.05, 0.2);
    assert.deepEqual([...matchBoxes(q, 2, 4, 0.7, 0.3, false)], [0, BETWEEN_THRESHOLDS, BELOW_LOW_THRESHOLD, BELOW_LOW_THRESHOLD]);
    // gt 1's best (0.2) is tied between predictions 1 and 3: both get their own best gt (1 -> gt 0, 3 -> gt 1).
    assert.deepEqual([...matchBoxes(q, 2, 4, 0.7, 0.3, true)], [0, 0, BELOW_LOW_THRESHOLD, 1]);
  });

  test('balanced sampling: at most batch x fraction positives, negatives fill the rest', () => {
    const rng = new Random(3);
    const labels = Int32Array.from({ length: 400 }, (_, i) => (i < 10 ? 1 : i < 390 ? 0 : -1));
    const count = (m: Uint8Array) => m.reduce((a, v) => a + v, 0);
    const few = sampleBalanced(labels, 256, 0.5, () => rng.uniform(0, 1));
    assert.deepEqual([count(few.pos), count(few.neg)], [10, 246]);
    const many = sampleBalanced(Int32Array.from({ length: 400 }, (_, i) => (i < 200 ? 2 : 0)), 256, 0.5, () => rng.uniform(0, 1));
    assert.deepEqual([count(many.pos), count(many.neg)], [128, 128]);
    assert.ok(many.pos.every((v, i) => !v || i < 200) && many.neg.every((v, i) => !v || i >= 200));
  });

  test('RoI assignment appends the gt boxes, which match themselves', () => {
    const r = roiAssignment(Float32Array.of(0, 0, 10, 10, 50, 50, 60, 60), Float32Array.of(1, 1, 10, 10), Int32Array.of(3), 0.5, 0.5);
    assert.equal(r.boxes.length, 12);
    // proposal 0 vs gt: 81 / 100 >= 0.5 -> label 3; proposal 1: background; the gt itself: label 3.
    assert.deepEqual([...r.labels], [3, 0, 3]);
  });

  test('levels: sqrt(area) 224 -> canonical level 4, 112 -> 3, clamped to the pyramid', () => {
    const boxes = Float32Array.of(0, 0, 224, 224, 0, 0, 112, 112, 0, 0, 8, 8, 0, 0, 2000, 2000);
    assert.deepEqual([...roiLevels(boxes, 2, 5, 224, 4)], [2, 1, 0, 3]);
    assert.equal(levelScale(48, 191), 0.25);
  });

  test('anchors: level 0 of a 64x64 batch starts at the cell anchors, then steps by the stride', () => {
    const a = anchorGrid([64, 64], [[16, 16], [8, 8], [4, 4], [2, 2], [1, 1]], defaultSettings().anchors);
    assert.equal(a.length / 4, 3 * (256 + 64 + 16 + 4 + 1));
    // Ratio 1, size 32: (-16, -16, 16, 16); the next position is 4 px to the right.
    assert.deepEqual([...a.subarray(4, 8)], [-16, -16, 16, 16]);
    assert.deepEqual([...a.subarray(16, 20)], [-12, -16, 20, 16]);
  });
});
