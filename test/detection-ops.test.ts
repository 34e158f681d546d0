/**
 * The detection graph's operators against torchvision's definitions, transcribed here in float32
 * (every operation rounded with Math.fround, in the C++ kernels' order): RoIAlign (aligned=False)
 * on ONNX RoiAlign, nms and batched_nms (both of its paths) on ONNX NonMaxSuppression, anchors,
 * the NMS threshold's float32 form and torchvision's resize sizes.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, toOnnx } from '../src/graph/graph.js';
import { cellAnchors } from '../src/models/detection/anchors.js';
import { floatThreshold, nmsBoxes, nonMaxSuppression, candidateScores } from '../src/models/detection/nms.js';
import { levelScales, multiScaleRoiAlign, roiLevels } from '../src/models/detection/poolers.js';
import { resizedSize } from '../src/models/detection/transform.js';
import { Random } from '../src/core/random.js';
import { cast, compare, unsqueeze } from '../src/graph/ops.js';

const f = Math.fround;
const sessions: ort.InferenceSession[] = [];
after(async () => {
  await Promise.all(sessions.map((s) => s.release()));
});

async function run(b: GraphBuilder, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(toOnnx(b.graph), { intraOpNumThreads: 1 });
  sessions.push(session);
  return session.run(feeds);
}

// ---------------------------------------------------------------- torchvision, transcribed

/** torchvision's roi_align CPU kernel, aligned=False: one RoI, all channels. */
function roiAlignReference(
  x: Float32Array, [c, h, w]: [number, number, number], batchIndex: number, box: ArrayLike<number>, scale: number, size: number, grid: number,
): Float32Array {
  const out = new Float32Array(c * size * size);
  const [x1, y1, x2, y2] = [f(box[0]! * scale), f(box[1]! * scale), f(box[2]! * scale), f(box[3]! * scale)];
  const roiW = Math.max(f(x2 - x1), 1);
  const roiH = Math.max(f(y2 - y1), 1);
  const binW = f(roiW / size);
  const binH = f(roiH / size);
  const count = grid * grid;
  const sample = (yy: number, xx: number, plane: number): number => {
    if (yy < -1 || yy > h || xx < -1 || xx > w) return 0;
    let y = yy <= 0 ? 0 : yy;
    let xv = xx <= 0 ? 0 : xx;
    let yLow = Math.trunc(y);
    let xLow = Math.trunc(xv);
    let yHigh = yLow + 1;
    let xHigh = xLow + 1;
    if (yLow >= h - 1) { yHigh = yLow = h - 1; y = yLow; }
    if (xLow >= w - 1) { xHigh = xLow = w - 1; xv = xLow; }
    const ly = f(y - yLow);
    const lx = f(xv - xLow);
    const hy = f(1 - ly);
    const hx = f(1 - lx);
    const at = (r: number, q: number) => x[plane + r * w + q]!;
    const a = f(f(f(hy * hx) * at(yLow, xLow)) + f(f(hy * lx) * at(yLow, xHigh)));
    return f(f(a + f(f(ly * hx) * at(yHigh, xLow))) + f(f(ly * lx) * at(yHigh, xHigh)));
  };
  for (let ch = 0; ch < c; ch++) {
    const plane = (batchIndex * c + ch) * h * w;
    for (let ph = 0; ph < size; ph++) {
      for (let pw = 0; pw < size; pw++) {
        let acc = 0;
        for (let iy = 0; iy < grid; iy++) {
          const yy = f(f(y1 + f(ph * binH)) + f(f(f(iy + 0.5) * binH) / grid));
          for (let ix = 0; ix < grid; ix++) {
            const xx = f(f(x1 + f(pw * binW)) + f(f(f(ix + 0.5) * binW) / grid));
            acc = f(acc + sample(yy, xx, plane));
          }
        }
        out[(ch * size + ph) * size + pw] = f(acc / count);
      }
    }
  }
  return out;
}

/** torchvision's nms CPU kernel: indices kept, in descending score order (scores distinct). */
function nmsReference(boxes: ArrayLike<number>, scores: ArrayLike<number>, threshold: number, subset?: number[]): number[] {
  const idx = subset ?? Array.from({ length: scores.length }, (_, i) => i);
  const order = [...idx].sort((a, b) => scores[b]! - scores[a]!);
  const area = (i: number) => f(f(boxes[4 * i + 2]! - boxes[4 * i]!) * f(boxes[4 * i + 3]! - boxes[4 * i + 1]!));
  const suppressed = new Set<number>();
  const keep: number[] = [];
  for (let a = 0; a < order.length; a++) {
    const i = order[a]!;
    if (suppressed.has(i)) continue;
    keep.push(i);
    for (let z = a + 1; z < order.length; z++) {
      const j = order[z]!;
      if (suppressed.has(j)) continue;
      const iw = Math.max(0, f(Math.min(boxes[4 * i + 2]!, boxes[4 * j + 2]!) - Math.max(boxes[4 * i]!, boxes[4 * j]!)));
      const ih = Math.max(0, f(Math.min(boxes[4 * i + 3]!, boxes[4 * j + 3]!) - Math.max(boxes[4 * i + 1]!, boxes[4 * j + 1]!)));
      const inter = f(iw * ih);
      if (f(inter / f(f(area(i) + area(j)) - inter)) > threshold) suppressed.add(j);
    }
  }
  return keep;
}

/** torchvision's batched_nms on the CPU: per category above 4000 coordinates, else the coordinate trick. */
function batchedNmsReference(boxes: Float32Array, scores: Float32Array, categories: number[], threshold: number): number[] {
  const n = scores.length;
  if (4 * n > 4000) {
    const kept = [...new Set(categories)].flatMap((c) => nmsReference(boxes, scores, threshold, categories.flatMap((v, i) => (v === c ? [i] : []))));
    return kept.sort((a, b) => scores[b]! - scores[a]!);
  }
  const max = Math.max(...boxes);
  const shifted = boxes.map((v, i) => f(v + f(categories[Math.floor(i / 4)]! * f(max + 1))));
  return nmsReference(shifted, scores, threshold);
}

function randomBoxes(rng: Random, n: number, extent: number, minSide: number, maxSide: number): Float32Array {
  const boxes = new Float32Array(4 * n);
  for (let i = 0; i < n; i++) {
    const [x, y] = [rng.uniform(-10, extent), rng.uniform(-10, extent)];
    boxes.set([x, y, x + rng.uniform(minSide, maxSide), y + rng.uniform(minSide, maxSide)], 4 * i);
  }
  return boxes;
}

function distinctScores(rng: Random, n: number): Float32Array {
  // Distinct values: ties are implementation-defined in both torchvision and ONNX Runtime.
  const perm = Array.from({ length: n }, (_, i) => i).sort(() => rng.next() - 0.5);
  return Float32Array.from(perm, (p) => (p + rng.next() * 0.5) / n);
}

// ---------------------------------------------------------------- tests

describe('anchors and sizes (torchvision 0.14 facts)', () => {
  test('cell anchors of the default generator (sizes 32..512, ratios 0.5, 1, 2)', () => {
    const expected: Record<number, number[]> = {
      32: [-23, -11, 23, 11, -16, -16, 16, 16, -11, -23, 11, 23],
      64: [-45, -23, 45, 23, -32, -32, 32, 32, -23, -45, 23, 45],
      128: [-91, -45, 91, 45, -64, -64, 64, 64, -45, -91, 45, 91],
      256: [-181, -91, 181, 91, -128, -128, 128, 128, -91, -181, 91, 181],
      512: [-362, -181, 362, 181, -256, -256, 256, 256, -181, -362, 181, 362],
    };
    for (const [size, anchors] of Object.entries(expected)) assert.deepEqual([...cellAnchors([Number(size)], [0.5, 1, 2])], anchors);
  });

  test("resize sizes: torchvision's float32 scale (150x100 -> 191x127, 480x640 -> 800x1066, 1000x3000 -> 444x1332)", () => {
    // Sizes torchvision 0.14 gives (the fixture manifest's two, and _resize_image_and_masks run on these shapes).
    assert.deepEqual(resizedSize(120, 160, { minSize: 128, maxSize: 256 }), [128, 170]);
    assert.deepEqual(resizedSize(150, 100, { minSize: 128, maxSize: 256 }), [191, 127]);
    assert.deepEqual(resizedSize(480, 640, { minSize: 800, maxSize: 1333 }), [800, 1066]);
    assert.deepEqual(resizedSize(600, 800, { minSize: 800, maxSize: 1333 }), [800, 1066]);
    assert.deepEqual(resizedSize(1000, 3000, { minSize: 800, maxSize: 1333 }), [444, 1332]);
  });

  test('NMS threshold: the largest float32 not above the double threshold', () => {
    assert.equal(floatThreshold(0.5), 0.5);
    assert.equal(floatThreshold(0.7), Math.fround(0.7));
    assert.ok(Math.fround(0.7) < 0.7);
    // fround(0.3) is above 0.3: the float just below it decides "iou > 0.3" like torchvision's double.
    assert.ok(Math.fround(0.3) > 0.3 && floatThreshold(0.3) < 0.3 && Math.fround(floatThreshold(0.3)) === floatThreshold(0.3));
    assert.equal(new Float32Array([floatThreshold(0.3)])[0], floatThreshold(0.3));
  });
});

describe('RoIAlign: ONNX RoiAlign (output_half_pixel) is torchvision roi_align(aligned=False) bit for bit', () => {
  test('multi-level pooling of random RoIs, inside, across and outside the maps, degenerate ones included', async () => {
    const rng = new Random(3);
    const [n, c] = [2, 3];
    const sizes: [number, number][] = [[32, 40], [16, 20], [8, 10], [4, 5]];
    const maps = sizes.map(([h, w]) => Float32Array.from({ length: n * c * h! * w! }, () => rng.normal()));
    const count = 400;
    const rois = randomBoxes(rng, count, 160, 0.2, 150);
    rois.set([5, 5, 5.1, 5.05], 0); // smaller than one pixel: forced to 1x1
    rois.set([-30, -30, -2, -3], 4); // outside the image
    for (let i = 2; i < 40; i++) rois.set([rng.uniform(0, 60), rng.uniform(0, 60), rng.uniform(300, 900), rng.uniform(300, 900)], 4 * i); // deep levels
    const batch = BigInt64Array.from({ length: count }, () => BigInt(Math.floor(rng.next() * n)));
    const b = new GraphBuilder();
    const features = sizes.map(([h, w], i) => b.input(`f${i}`, [n, c, h!, w!]));
    const boxes = b.input('rois', [count, 4]);
    const bidx = b.input('batch', [count], 'int64');
    const imageSizes = b.input('sizes', [n, 2], 'int64');
    const scales = levelScales(b, features, imageSizes);
    const levels = roiLevels(b, boxes, scales, 224, 4);
    const pooled = multiScaleRoiAlign(b, features, c, boxes, bidx, levels, scales, { outputSize: 7, samplingRatio: 2 });
    b.node('Identity', [pooled], b.shape(pooled), {}, 'pooled');
    b.output('pooled');
    b.node('Identity', [levels], [count], {}, 'levels');
    b.output('levels', 'int64');
    const feeds: Record<string, ort.Tensor> = {
      rois: new ort.Tensor('float32', rois, [count, 4]), batch: new ort.Tensor('int64', batch, [count]),
      sizes: new ort.Tensor('int64', BigInt64Array.from([128n, 150n, 120n, 160n]), [n, 2]),
    };
    sizes.forEach(([h, w], i) => (feeds[`f${i}`] = new ort.Tensor('float32', maps[i]!, [n, c, h!, w!])));
    const out = await run(b, feeds);
    const pooledOut = out.pooled!.data as Float32Array;
    const levelOut = out.levels!.data as BigInt64Array;
    let mismatches = 0;
    const used = new Set<number>();
    for (let r = 0; r < count; r++) {
      const box = rois.subarray(4 * r, 4 * r + 4);
      // torchvision's LevelMapper (k_min 2, k_max 5 for strides 4..32).
      const side = Math.sqrt(f(f(box[2]! - box[0]!) * f(box[3]! - box[1]!)));
      const level = Math.min(Math.max(Math.floor(4 + Math.log2(side / 224) + 1e-6), 2), 5) - 2;
      assert.equal(Number(levelOut[r]), level, `level of RoI ${r}`);
      used.add(level);
      const ref = roiAlignReference(maps[level]!, [c, sizes[level]![0], sizes[level]![1]], Number(batch[r]), box, 0.25 / 2 ** level, 7, 2);
      for (let i = 0; i < ref.length; i++) if (pooledOut[r * ref.length + i] !== ref[i]) mismatches++;
    }
    assert.equal(mismatches, 0);
    assert.deepEqual([...used].sort(), [0, 1, 2, 3], 'every level is exercised');
  });
});

describe('NMS: ONNX NonMaxSuppression is torchvision nms; batched_nms takes the same path', () => {
  async function batchedNms(boxes: Float32Array, scores: Float32Array, categories: number[], groups: number, threshold: number): Promise<number[]> {
    const n = scores.length;
    const b = new GraphBuilder();
    const x = b.input('boxes', [1, n, 4]);
    const s = b.input('scores', [1, n]);
    const cat = b.input('category', [n], 'int64');
    const candidates = unsqueeze(b, compare(b, 'Greater', s, b.constant([-1])), [-1]);
    const nmsInput = nmsBoxes(b, x, candidates, unsqueeze(b, cast(b, cat, 'float32'), [-1]), [1]);
    const inGroup = compare(b, 'Equal', unsqueeze(b, cat, [0, 1]), b.ints([...Array(groups).keys()], [1, groups, 1]));
    const grouped = candidateScores(b, inGroup, unsqueeze(b, s, [1]));
    const selected = nonMaxSuppression(b, nmsInput, grouped, threshold);
    b.node('Identity', [selected], b.shape(selected), {}, 'selected');
    b.output('selected', 'int64');
    const out = await run(b, {
      boxes: new ort.Tensor('float32', boxes, [1, n, 4]), scores: new ort.Tensor('float32', scores, [1, n]),
      category: new ort.Tensor('int64', BigInt64Array.from(categories.map(BigInt)), [n]),
    });
    const rows = out.selected!.data as BigInt64Array;
    const kept = Array.from({ length: rows.length / 3 }, (_, i) => Number(rows[3 * i + 2]));
    return kept.sort((p, q) => scores[q]! - scores[p]!);
  }

  for (const [count, threshold] of [[300, 0.7], [1500, 0.5], [1000, 0.3]] as const) {
    test(`${count} boxes in 4 categories, IoU threshold ${threshold} (${count > 1000 ? 'per category' : 'coordinate trick'})`, async () => {
      const rng = new Random(count);
      const boxes = randomBoxes(rng, count, 300, 5, 80);
      const scores = distinctScores(rng, count);
      const categories = Array.from({ length: count }, () => Math.floor(rng.next() * 4));
      assert.deepEqual(await batchedNms(boxes, scores, categories, 4, threshold), batchedNmsReference(boxes, scores, categories, threshold));
    });
  }

  test('the coordinate trick matters, and is reproduced: tiny boxes far from the origin round differently', async () => {
    const rng = new Random(11);
    const count = 600;
    const boxes = randomBoxes(rng, count, 40, 0.6, 2.5);
    boxes.set([0, 0, 1e6, 1e6], 0); // a huge box: offsets of category * (1e6 + 1), where float32 steps are 0.06-0.25
    const scores = distinctScores(rng, count);
    const categories = Array.from({ length: count }, (_, i) => (i === 0 ? 0 : 1 + (i % 3)));
    const trick = batchedNmsReference(boxes, scores, categories, 0.5);
    const vanilla = [...new Set(categories)].flatMap((c) => nmsReference(boxes, scores, 0.5, categories.flatMap((v, i) => (v === c ? [i] : []))))
      .sort((a, b) => scores[b]! - scores[a]!);
    assert.notDeepEqual(trick, vanilla, 'the two paths of batched_nms differ on this input');
    assert.deepEqual(await batchedNms(boxes, scores, categories, 4, 0.5), trick);
  });
});
