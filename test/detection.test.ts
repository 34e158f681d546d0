/**
 * Mask R-CNN on SwiftFormer against ../shared/fixtures/maskrcnn-tiny (torchvision 0.14's MaskRCNN
 * run in PyTorch): every stage, for two images of different sizes, within the fixture README's
 * tolerances (detections compared as sets, masks by IoU); the checkpoint layouts; the library's
 * detect against the exported ONNX file run by plain onnxruntime-node; bad input.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { DetectionModel, SwiftFormerError, isMaskRcnnState, readStateDict, writePth, type StateDict, type Tensor } from '../src/index.js';
import { bindParams, toOnnx } from '../src/graph/graph.js';
import { optimizeForInference } from '../src/graph/passes.js';
import { emitMaskRcnn, type MaskRcnnEmitOptions } from '../src/models/maskrcnn.js';
import { unpickle } from '../src/weights/pickle.js';
import { counterGlobal } from '../src/weights/pickle.js';
import type { RGBImage } from '../src/preprocess/resize.js';
import { fixtureBytes, fixturePath, fixtureTensor, manifest, relativeError } from './fixtures.js';

const DIR = 'maskrcnn-tiny';
const M = manifest(DIR);
const SETTINGS = { transform: { minSize: M.config.min_size as number, maxSize: M.config.max_size as number } };
// Fixtures README: feature maps and head outputs within 1e-4 of max|ref|; scores within ~1e-4.
const TOLERANCE = 1e-4;
const WEIGHTS = fixturePath(`${DIR}/weights.safetensors`);

let detector: DetectionModel;
const sessions: ort.InferenceSession[] = [];
const models: DetectionModel[] = [];

before(async () => {
  detector = await DetectionModel.load({ weights: WEIGHTS, settings: SETTINGS, session: { threads: 2 } });
  models.push(detector);
});
after(async () => {
  await Promise.all([...sessions.map((s) => s.release()), ...models.map((m) => m.release())]);
});

async function session(opts: MaskRcnnEmitOptions, model = detector): Promise<ort.InferenceSession> {
  const bytes = toOnnx(optimizeForInference(bindParams(emitMaskRcnn(model.config, opts), model.state)));
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2 });
  sessions.push(s);
  return s;
}

function int64Fixture(file: string): BigInt64Array {
  return new BigInt64Array(fixtureBytes(`${DIR}/${file}`).slice().buffer);
}

const int64 = (values: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);

function batchFeeds(): Record<string, ort.Tensor> {
  const batch = fixtureTensor(DIR, 'batch.bin');
  return {
    images: new ort.Tensor('float32', batch.data, batch.shape),
    image_sizes: int64(M.image_sizes_resized.flat(), [2, 2]),
    original_sizes: int64(M.original_sizes.flat(), [2, 2]),
  };
}

// ---------------------------------------------------------------- detections as sets

interface Det { box: ArrayLike<number>; score: number; label: number }

/** Largest coordinate difference of two boxes. */
function boxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return Math.max(...[0, 1, 2, 3].map((k) => Math.abs(a[k]! - b[k]!)));
}

/**
 * Each reference detection paired with one of ours of the same label, every coordinate within
 * `boxTolerance` pixels and the score within TOLERANCE; returns the pairs and the unpaired.
 */
function matchSets(ours: Det[], ref: Det[], boxTolerance: number): { pairs: [number, number][]; unmatched: number[] } {
  const used = new Set<number>();
  const pairs: [number, number][] = [];
  const unmatched: number[] = [];
  ref.forEach((r, i) => {
    let best = -1;
    let bestDiff = boxTolerance;
    ours.forEach((o, j) => {
      if (used.has(j) || o.label !== r.label || Math.abs(o.score - r.score) > TOLERANCE) return;
      const d = boxDiff(o.box, r.box);
      if (d <= bestDiff) [best, bestDiff] = [j, d];
    });
    if (best < 0) unmatched.push(i);
    else {
      used.add(best);
      pairs.push([i, best]);
    }
  });
  return { pairs, unmatched };
}

/** Coordinates agree within 1e-4 of the image's size (the feature-map tolerance, in pixels). */
function boxTolerance(i: number, sizes: number[][]): number {
  return TOLERANCE * Math.max(...sizes[i]!);
}

function fixtureDetections(i: number): Det[] {
  const boxes = fixtureTensor(DIR, `boxes${i}.bin`).data;
  const scores = fixtureTensor(DIR, `scores${i}.bin`).data;
  const labels = int64Fixture(`labels${i}.bin`);
  return [...scores].map((score, k) => ({ box: boxes.subarray(4 * k, 4 * k + 4), score, label: Number(labels[k]) }));
}

function graphDetections(out: ort.InferenceSession.OnnxValueMapType, image: number): { dets: Det[]; rows: number[] } {
  const batch = out.batch_index!.data as BigInt64Array;
  const boxes = out.boxes!.data as Float32Array;
  const scores = out.scores!.data as Float32Array;
  const labels = out.labels!.data as BigInt64Array;
  const rows = [...batch.keys()].filter((k) => Number(batch[k]) === image);
  return { dets: rows.map((k) => ({ box: boxes.subarray(4 * k, 4 * k + 4), score: scores[k]!, label: Number(labels[k]) })), rows };
}

/** IoU of two masks thresholded at 0.5, over the image's h x w (ours on a canvas of cw columns). */
function maskIou(ours: Float32Array, oursOffset: number, cw: number, ref: Float32Array, refOffset: number, h: number, w: number): number {
  let inter = 0;
  let union = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const a = ours[oursOffset + y * cw + x]! > 0.5;
      const b = ref[refOffset + y * w + x]! > 0.5;
      if (a && b) inter++;
      if (a || b) union++;
    }
  }
  return union === 0 ? 1 : inter / union;
}

/** The final detections of both fixture images: sets equal, masks by IoU. */
function assertFinalDetections(out: ort.InferenceSession.OnnxValueMapType): void {
  const masks = out.masks!;
  const [, , ch, cw] = masks.dims as number[];
  for (const i of [0, 1]) {
    const ref = fixtureDetections(i);
    const { dets, rows } = graphDetections(out, i);
    assert.equal(dets.length, M.per_image[i].detections, `image ${i}: detection count`);
    const { pairs, unmatched } = matchSets(dets, ref, boxTolerance(i, M.original_sizes));
    assert.deepEqual(unmatched, [], `image ${i}: fixture detections without a match`);
    const [h, w] = M.original_sizes[i] as [number, number];
    assert.ok(h <= ch! && w <= cw!);
    const refMasks = fixtureTensor(DIR, `masks${i}.bin`).data;
    const ious = pairs.map(([r, o]) => maskIou(masks.data as Float32Array, rows[o]! * ch! * cw!, cw!, refMasks, r * h * w, h, w));
    assert.ok(Math.min(...ious) >= 0.95, `image ${i}: worst mask IoU ${Math.min(...ious)}`);
    assert.ok(ious.reduce((s, v) => s + v, 0) / ious.length >= 0.99, `image ${i}: mean mask IoU`);
  }
}

// ---------------------------------------------------------------- tests

describe('Mask R-CNN weights (torchvision layout)', () => {
  test('the architecture is read off the weights: the fixture manifest config', () => {
    const c = detector.config;
    assert.deepEqual([c.backbone.embedDims, c.backbone.depths], [[16, 24, 32, 48], [1, 1, 2, 1]]);
    assert.deepEqual([c.numClasses, c.fpnChannels, c.representation, c.maskLayers], [M.config.num_classes, M.config.out_channels, M.config.representation, M.config.mask_layers]);
    assert.equal(c.settings.rpn.nmsThresh, M.defaults.rpn_nms_thresh);
    assert.equal(c.settings.roi.detectionsPerImage, M.defaults.detections_per_img);
    assert.equal(c.settings.roi.scoreThresh, M.defaults.box_score_thresh);
    assert.deepEqual(c.settings.anchors.sizes, M.defaults.anchor_sizes);
  });

  test('isMaskRcnnState tells a detector from a classifier', async () => {
    assert.ok(isMaskRcnnState(detector.state.keys()));
    assert.ok(!isMaskRcnnState((await readStateDict(fixtureBytes('tiny/weights.safetensors'))).keys()));
  });

  test("references/detection's checkpoint ({model, optimizer, lr_scheduler, args, epoch}) loads the same weights", async () => {
    const state = detector.state;
    const momentum = new Map<number, unknown>([...state.keys()].filter((k) => !/running|num_batches/.test(k)).map((k, i) => [i, { momentum_buffer: state.get(k)! }]));
    const checkpoint = writePth({
      model: state,
      optimizer: { state: momentum, param_groups: [{ lr: 0.02, momentum: 0.9, weight_decay: 1e-4, nesterov: false, params: [...momentum.keys()] }] },
      lr_scheduler: { milestones: new Map([[16, 1], [22, 1]]), gamma: 0.1, base_lrs: [0.02], last_epoch: 3 },
      args: { lr: 0.02, epochs: 26, lr_steps: [16, 22], data_path: '/data/coco' },
      epoch: 3,
    } as never, { folder: 'checkpoint' });
    const loaded = await DetectionModel.load({ weights: checkpoint, settings: SETTINGS });
    models.push(loaded);
    assert.deepEqual([...loaded.state.keys()], [...state.keys()]);
    for (const [k, t] of state) assert.deepEqual(loaded.state.get(k)!.data, t.data, k);
  });

  test("collections.Counter (MultiStepLR's milestones in that checkpoint) unpickles as a Map", () => {
    // protocol 2: Counter({16: 1, 22: 1}) as torch.save writes it.
    const bytes = Uint8Array.from([0x80, 2, ...Buffer.from('ccollections\nCounter\n'), 0x7d, 0x28, 0x4b, 16, 0x4b, 1, 0x4b, 22, 0x4b, 1, 0x75, 0x85, 0x52, 0x2e]);
    const value = unpickle(bytes, { globals: { 'collections Counter': counterGlobal } });
    assert.deepEqual(value, new Map([[16, 1], [22, 1]]));
  });

  test("older key names (torchvision's version-1 modules) and DataParallel's module. prefix load too", async () => {
    const old: StateDict = new Map();
    for (const [k, t] of detector.state) {
      const renamed = k
        .replace(/^rpn\.head\.conv\.0\.0\./, 'rpn.head.conv.')
        .replace(/^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.0\./, 'backbone.fpn.$1_blocks.$2.')
        .replace(/^roi_heads\.mask_head\.(\d)\.0\./, (_, i: string) => `roi_heads.mask_head.mask_fcn${Number(i) + 1}.`);
      old.set(`module.${renamed}`, t);
    }
    assert.ok(old.has('module.rpn.head.conv.weight') && old.has('module.roi_heads.mask_head.mask_fcn1.weight'));
    const loaded = await DetectionModel.load({ weights: old, settings: SETTINGS });
    models.push(loaded);
    assert.deepEqual([...loaded.state.keys()].sort(), [...detector.state.keys()].sort());
  });

  test('a classification checkpoint initializes the backbone of a new detector', async () => {
    const classifier = await readStateDict(fixtureBytes('tiny/checkpoint_model_only.pth'));
    const fresh = await DetectionModel.load({ weights: classifier, numClasses: 3, seed: 1, settings: SETTINGS });
    models.push(fresh);
    assert.equal(fresh.numClasses, 3);
    assert.deepEqual(fresh.config.backbone.embedDims, [16, 24, 32, 48]);
    for (const [k, t] of classifier) {
      if (k.endsWith('num_batches_tracked')) continue;
      if (/^(norm|head|dist_head)\./.test(k)) assert.ok(!fresh.state.has(`backbone.body.${k}`), k);
      else assert.deepEqual(fresh.state.get(`backbone.body.${k}`)!.data, t.data, k);
    }
    // The fork_feat norms a classifier has not: identity. Heads: torchvision's initialization.
    assert.ok([...fresh.state.get('backbone.body.norm0.weight')!.data].every((v) => v === 1));
    const rpn = fresh.state.get('rpn.head.conv.0.0.weight')!.data as Float32Array;
    const std = Math.sqrt(rpn.reduce((s, v) => s + v * v, 0) / rpn.length);
    assert.ok(Math.abs(std - 0.01) < 0.001, `RPN conv std ${std}`);
    assert.ok([...fresh.state.get('rpn.head.conv.0.0.bias')!.data].every((v) => v === 0));
    assert.deepEqual(fresh.state.get('roi_heads.box_predictor.cls_score.weight')!.shape, [3, 1024]);
    const found = await fresh.detect(imageOf(0), { threshold: 0 });
    assert.ok(found.every((d) => Number.isFinite(d.score) && d.index >= 1 && d.index < 3));
  });
});

describe('parity with torchvision (maskrcnn-tiny: two images of different sizes)', () => {
  let core: ort.InferenceSession;
  let coreOut: ort.InferenceSession.OnnxValueMapType;
  before(async () => {
    core = await session({ input: 'batch', intermediates: true });
    coreOut = await core.run(batchFeeds());
  });

  test('transform: each image normalized, resized (bilinear, recompute_scale_factor) and zero-padded to 32', async () => {
    const s = await session({ intermediates: true });
    const batch = fixtureTensor(DIR, 'batch.bin');
    const [, , bh, bw] = batch.shape as number[];
    for (const i of [0, 1]) {
      const image = fixtureTensor(DIR, `images${i}.bin`);
      const out = await s.run({ pixel_values: new ort.Tensor('float32', image.data, [1, ...image.shape]) });
      const [h, w] = M.image_sizes_resized[i] as [number, number];
      assert.deepEqual([...(out.resized_sizes!.data as BigInt64Array)].map(Number), [h, w]);
      const padded = out.batch!;
      const [ph, pw] = [padded.dims[2]!, padded.dims[3]!];
      assert.deepEqual([ph, pw], [Math.ceil(h / 32) * 32, Math.ceil(w / 32) * 32]);
      const ours: number[] = [];
      const ref: number[] = [];
      let padding = 0;
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < ph; y++) {
          for (let x = 0; x < pw; x++) {
            const v = (padded.data as Float32Array)[(c * ph + y) * pw + x]!;
            if (y >= h || x >= w) padding = Math.max(padding, Math.abs(v));
            else {
              ours.push(v);
              ref.push(batch.data[((i * 3 + c) * bh! + y) * bw! + x]!);
            }
          }
        }
      }
      assert.equal(padding, 0, 'zero padding');
      // torch's resize formula exactly; sums within 2 ulp (torch's kernel fuses one multiply-add).
      assert.ok(relativeError(ours, ref) <= 1e-6, `image ${i}: ${relativeError(ours, ref)}`);
    }
  });

  test("FPN levels '0'..'3' and 'pool'", () => {
    for (const name of ['0', '1', '2', '3', 'pool']) {
      const ref = fixtureTensor(DIR, `fpn_${name}.bin`);
      const ours = coreOut[`fpn_${name}`]!;
      assert.deepEqual(ours.dims, ref.shape);
      assert.ok(relativeError(ours.data as Float32Array, ref.data) <= TOLERANCE, `fpn_${name}`);
    }
  });

  test('RPN proposals, as sets per image', () => {
    const boxes = coreOut.proposals_flat!.data as Float32Array;
    const batch = coreOut.proposal_batch!.data as BigInt64Array;
    for (const i of [0, 1]) {
      const ref = fixtureTensor(DIR, `proposals${i}.bin`);
      const ours = [...batch.keys()].filter((k) => Number(batch[k]) === i).map((k) => ({ box: boxes.subarray(4 * k, 4 * k + 4), score: 0, label: 0 }));
      assert.equal(ours.length, ref.shape[0]);
      const refDets = Array.from({ length: ref.shape[0]! }, (_, k) => ({ box: ref.data.subarray(4 * k, 4 * k + 4), score: 0, label: 0 }));
      assert.deepEqual(matchSets(ours, refDets, boxTolerance(i, M.image_sizes_resized)).unmatched, []);
    }
  });

  test("box head outputs on the fixture's proposals", async () => {
    const s = await session({ input: 'batch', proposalsInput: true, intermediates: true });
    const out = await s.run({ ...batchFeeds(), ...proposalFeeds() });
    assert.ok(relativeError(out.class_logits!.data as Float32Array, fixtureTensor(DIR, 'class_logits.bin').data) <= TOLERANCE);
    assert.ok(relativeError(out.box_regression!.data as Float32Array, fixtureTensor(DIR, 'box_regression.bin').data) <= TOLERANCE);
    assertFinalDetections(out);
  });

  test('final boxes, scores, labels and pasted masks (RPN included)', () => {
    assertFinalDetections(coreOut);
  });
});

function proposalFeeds(): Record<string, ort.Tensor> {
  const lists = [0, 1].map((i) => fixtureTensor(DIR, `proposals${i}.bin`));
  const t = Math.max(...lists.map((l) => l.shape[0]!));
  const padded = new Float32Array(2 * t * 4);
  lists.forEach((l, i) => padded.set(l.data, i * t * 4));
  return { proposals: new ort.Tensor('float32', padded, [2, t, 4]), proposal_counts: int64(lists.map((l) => l.shape[0]!), [2]) };
}

/** A fixture image as 8-bit RGB (what detect takes). */
function imageOf(i: number): RGBImage {
  const t = fixtureTensor(DIR, `images${i}.bin`);
  const [, h, w] = t.shape as [number, number, number];
  const data = new Uint8Array(w * h * 3);
  for (let c = 0; c < 3; c++) for (let p = 0; p < w * h; p++) data[3 * p + c] = Math.round(t.data[c * w * h + p]! * 255);
  return { width: w, height: h, data };
}

/** The same image as the float pixels the exported graph takes (v / 255, as detect computes them). */
function pixelsOf(image: RGBImage): Float32Array {
  const plane = image.width * image.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) for (let p = 0; p < plane; p++) out[c * plane + p] = image.data[3 * p + c]! / 255;
  return out;
}

describe('DetectionModel and the exported ONNX file', () => {
  test("detect() gives the exported file's detections above the threshold, in the image's pixels", async () => {
    const image = imageOf(1);
    const found = await detector.detect(image, { threshold: 0.4 });
    assert.ok(found.length > 0 && found.length < 100);
    const exported = await ort.InferenceSession.create(detector.toOnnx(), { intraOpNumThreads: 2 });
    sessions.push(exported);
    assert.deepEqual(exported.inputNames, ['pixel_values']);
    assert.deepEqual(exported.outputNames, ['boxes', 'scores', 'labels', 'masks', 'batch_index']);
    const out = await exported.run({ pixel_values: new ort.Tensor('float32', pixelsOf(image), [1, 3, image.height, image.width]) });
    assert.equal(out.scores!.dims[0], 100, 'the export keeps every detection, as torchvision');
    assert.deepEqual(out.masks!.dims, [100, 1, image.height, image.width]);
    const scores = out.scores!.data as Float32Array;
    const kept = [...scores.keys()].filter((k) => scores[k]! > 0.4);
    assert.equal(found.length, kept.length);
    const boxes = out.boxes!.data as Float32Array;
    const masks = out.masks!.data as Float32Array;
    const plane = image.width * image.height;
    kept.forEach((k, j) => {
      const d = found[j]!;
      assert.equal(d.score, scores[k]);
      assert.equal(d.index, Number((out.labels!.data as BigInt64Array)[k]));
      assert.equal(d.label, `class ${d.index}`);
      assert.deepEqual([d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax], [...boxes.subarray(4 * k, 4 * k + 4)]);
      assert.ok(d.box.xmax <= image.width && d.box.ymax <= image.height);
      const mask = d.mask!;
      assert.deepEqual([mask.width, mask.height], [image.width, image.height]);
      for (let p = 0; p < plane; p++) assert.equal(mask.data[p], masks[k * plane + p]! > 0.5 ? 255 : 0);
    });
  });

  test('a batch of two same-size images: each image gets its own detections (batch_index)', async () => {
    const image = imageOf(0);
    const one = pixelsOf(image);
    const two = new Float32Array(2 * one.length);
    two.set(one, 0);
    two.set(one, one.length);
    const raw = await detector.run({ dtype: 'float32', shape: [2, 3, image.height, image.width], data: two }, { threshold: 0.2 });
    const single = await detector.run({ dtype: 'float32', shape: [1, 3, image.height, image.width], data: one }, { threshold: 0.2 });
    const n = single.scores.length;
    assert.ok(n > 0);
    assert.deepEqual([...raw.batch], [...Array(n).fill(0), ...Array(n).fill(1)]);
    for (const image of [0, 1]) {
      assert.deepEqual([...raw.scores.subarray(image * n, (image + 1) * n)], [...single.scores]);
      assert.deepEqual([...raw.labels.subarray(image * n, (image + 1) * n)], [...single.labels]);
    }
  });

  test('labels: COCO names for 91 classes, a label file of the class count (background optional)', async () => {
    const coco = await DetectionModel.load({ numClasses: 91, model: { embedDims: [16, 24, 32, 48], depths: [1, 1, 2, 1], mlpRatio: 4, numClasses: 0, distillation: false, vitNum: 1, downsamples: [true, true, true, true], attention: 'l2' } });
    models.push(coco);
    assert.deepEqual([coco.labels![0], coco.labels![1], coco.labels![12], coco.labels![90]], ['__background__', 'person', 'N/A', 'toothbrush']);
    const named = await DetectionModel.load({ weights: WEIGHTS, settings: SETTINGS, labels: ['cat', 'dog', 'bird', 'fish'] });
    models.push(named);
    assert.deepEqual(named.labels, ['__background__', 'cat', 'dog', 'bird', 'fish']);
  });
});

describe('bad input: one clear error each', () => {
  const fails = async (promise: Promise<unknown>, code: string, pattern: RegExp) => {
    await assert.rejects(promise, (e: unknown) => e instanceof SwiftFormerError && e.code === code && pattern.test(e.message));
  };

  test('weights of another architecture', async () => {
    await fails(DetectionModel.load({ weights: fixturePath('semfpn-tiny/weights.safetensors') }), 'BAD_ARGUMENT', /holds a Semantic FPN segmentation model \(mmsegmentation keys\), not a Mask R-CNN detector/);
    const junk: StateDict = new Map([['encoder.layer.0.weight', { dtype: 'float32', shape: [2], data: new Float32Array(2) }]]);
    await fails(DetectionModel.load({ weights: junk }), 'KEY_MISMATCH', /neither a Mask R-CNN detector .* nor SwiftFormer weights to start one from \(it has encoder.layer.0.weight\)/);
    const resnet: StateDict = new Map<string, Tensor>([...detector.state].filter(([k]) => !k.startsWith('backbone.body.')));
    resnet.set('backbone.body.layer1.0.conv1.weight', { dtype: 'float32', shape: [64, 64, 1, 1], data: new Float32Array(64 * 64) });
    await fails(DetectionModel.load({ weights: resnet }), 'KEY_MISMATCH', /backbone is not a SwiftFormer: backbone.body has layer1.0.conv1.weight/);
    const missing: StateDict = new Map([...detector.state].filter(([k]) => k !== 'roi_heads.box_head.fc7.bias'));
    await fails(DetectionModel.load({ weights: missing }), 'KEY_MISMATCH', /1 missing \(roi_heads.box_head.fc7.bias\)/);
  });

  test('a class count that does not match the labels', async () => {
    await fails(DetectionModel.load({ weights: WEIGHTS, labels: ['a', 'b'] }), 'BAD_ARGUMENT', /the labels has 2 labels but the model has 5 classes \(4 and the background\)/);
  });

  test('images too small or too elongated for the configured sizes, and sizes out of range', async () => {
    const thin: RGBImage = { width: 3000, height: 1, data: new Uint8Array(9000) };
    await fails(detector.detect(thin), 'BAD_IMAGE', /3000x1: resized for min size 128 \/ max size 256 it would be 255x0 pixels/);
    await fails(DetectionModel.load({ weights: WEIGHTS, settings: { transform: { minSize: 0 } } }), 'BAD_ARGUMENT', /min size must be an integer in \[1, 4096\], got 0/);
    await fails(DetectionModel.load({ weights: WEIGHTS, settings: { transform: { maxSize: 100000 } } }), 'BAD_ARGUMENT', /max size must be an integer in \[1, 4096\], got 100000/);
  });

  test('thresholds outside [0, 1]', async () => {
    for (const threshold of [1.5, -0.1, Number.NaN]) {
      await fails(detector.detect(imageOf(0), { threshold }), 'BAD_ARGUMENT', /threshold must be a number in \[0, 1\]/);
    }
    await fails(DetectionModel.load({ weights: WEIGHTS, settings: { roi: { nmsThresh: 2 } } }), 'BAD_ARGUMENT', /roi nmsThresh must be in \[0, 1\], got 2/);
  });
});
