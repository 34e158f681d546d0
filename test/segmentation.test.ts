/**
 * The segmentation model as a user meets it: mmseg's test pipeline (OpenCV-exact resize against
 * libopencv's own output, the keep-ratio rule, normalization, padding), masks at the image's size
 * (against a direct two-step resize of the logits, as mmseg does it), weights and metadata, and a
 * classification checkpoint starting a new model's backbone.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import '../src/node/platform.js';
import { cvResizeLinear, rescaleSize } from '../src/preprocess/cv-resize.js';
import { MMSEG_NORMALIZATION, segmentationInput } from '../src/preprocess/segmentation.js';
import { classAreas, readSegmentationWeights, SegmentationModel, type SegmentationOptions } from '../src/models/segmentation.js';
import { readPth } from '../src/weights/pth.js';
import { readStateDict } from '../src/weights/read.js';
import { SwiftFormerError } from '../src/core/errors.js';
import type { RGBImage } from '../src/preprocess/resize.js';
import { fixtureBytes, fixturePath, relativeError } from './fixtures.js';
import { referenceMask } from './segmentation-reference.js';

const open: SegmentationModel[] = [];
async function load(options: SegmentationOptions): Promise<SegmentationModel> {
  const model = await SegmentationModel.load({ session: { threads: 2 }, ...options });
  open.push(model);
  return model;
}
after(() => Promise.all(open.map((m) => m.release())));

function pattern(width: number, height: number, seed: number): RGBImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * (37 + seed) + (i >> 5) * 11 + ((i / 3 / width) | 0) * 5) % 256;
  return { width, height, data };
}

describe("mmseg's test pipeline", () => {
  const dir = new URL('data/cv-resize/', import.meta.url);
  const cases = JSON.parse(readFileSync(new URL('cases.json', dir), 'utf8')) as { cases: { name: string; src: [number, number]; dst: [number, number] }[] };
  test(`OpenCV INTER_LINEAR, bit for bit on ${cases.cases.length} cases (libopencv 4.6: up, down, exact half, one axis, 1x1)`, () => {
    for (const c of cases.cases) {
      const src = { width: c.src[0], height: c.src[1], data: new Uint8Array(readFileSync(new URL(`${c.name}-src.bin`, dir))) };
      const expected = new Uint8Array(readFileSync(new URL(`${c.name}-dst.bin`, dir)));
      const got = cvResizeLinear(src, c.dst[0], c.dst[1]);
      const differing = expected.reduce((n, v, i) => n + (v !== got.data[i] ? 1 : 0), 0);
      assert.equal(differing, 0, `${c.name} ${c.src.join('x')} -> ${c.dst.join('x')}: ${differing} values differ`);
    }
  });

  test('keep-ratio rescale into (2048, 512), as mmcv.rescale_size', () => {
    // 640x480: min(2048/640, 512/480) = 1.0667 -> int(682.67 + 0.5) = 683, 512.
    assert.deepEqual([rescaleSize(640, 480, [2048, 512]).width, rescaleSize(640, 480, [2048, 512]).height], [683, 512]);
    // 1000x200: the long side binds: 2.048 -> 2048, int(409.6 + 0.5) = 410.
    const wide = rescaleSize(1000, 200, [2048, 512]);
    assert.deepEqual([wide.width, wide.height, wide.factor], [2048, 410, 2.048]);
    // Downscaling, and the scale's order does not matter.
    assert.deepEqual(rescaleSize(3000, 2000, [512, 2048]), { width: 768, height: 512, factor: 512 / 2000 });
  });

  test('normalize (mmcv.imnormalize in float32) and zero-pad to a multiple of 32', () => {
    const image = pattern(50, 37, 1);
    const input = segmentationInput(image, null);
    assert.deepEqual(input.pixels.shape, [1, 3, 64, 64]);
    assert.deepEqual(input.resized, { width: 50, height: 37 });
    const at = (c: number, y: number, x: number) => input.pixels.data[c * 64 * 64 + y * 64 + x]!;
    for (const [y, x] of [[0, 0], [36, 49], [10, 20]] as const) {
      for (let c = 0; c < 3; c++) {
        const v = image.data[(y * 50 + x) * 3 + c]!;
        const expected = (v - MMSEG_NORMALIZATION.mean[c]!) / MMSEG_NORMALIZATION.std[c]!;
        assert.ok(Math.abs(at(c, y, x) - expected) <= 1e-6 * Math.max(1, Math.abs(expected)), `pixel ${y},${x},${c}`);
      }
    }
    assert.equal(at(0, 37, 0), 0);
    assert.equal(at(2, 0, 50), 0);
    assert.equal(at(1, 63, 63), 0);
  });
});

describe('segment(): masks at the image size', async () => {
  const xs = await load({ weights: fixturePath('semfpn-xs/weights.safetensors'), scale: [2048, 96] });

  test('an image of a size mmseg resizes and pads: the mask equals the two-step resize + argmax', async () => {
    const image = pattern(157, 93, 2);
    const input = await xs.preprocess(image);
    assert.deepEqual(input.resized, { width: 162, height: 96 }); // min(2048/157, 96/93) -> int(162.06 + 0.5)
    assert.deepEqual(input.pixels.shape, [1, 3, 96, 192]);
    const result = await xs.segment(image);
    assert.deepEqual([result.width, result.height, result.mask.length], [157, 93, 157 * 93]);
    assert.ok(result.mask instanceof Uint8Array);
    const quarter = await xs.quarterLogits(input.pixels);
    const expected = referenceMask(quarter.data, 150, [96, 192], [96, 162], [93, 157]).mask;
    const differing = expected.reduce((n, v, i) => n + (v !== result.mask[i] ? 1 : 0), 0);
    assert.equal(differing, 0, `${differing} pixels differ`);
    assert.ok(new Set(result.mask).size > 3, 'the random model predicts several classes');
  });

  test('at its own size (scale null) the mask is the exported graph\'s argmax', async () => {
    const model = await load({ weights: fixturePath('semfpn-xs/weights.safetensors'), scale: null });
    const image = pattern(64, 96, 3);
    const result = await model.segment(image);
    const logits = await model.logits((await model.preprocess(image)).pixels);
    assert.deepEqual(logits.shape, [1, 150, 96, 64]);
    const plane = 96 * 64;
    let differing = 0;
    for (let i = 0; i < plane; i++) {
      let best = 0;
      for (let c = 1; c < 150; c++) if (logits.data[c * plane + i]! > logits.data[best * plane + i]!) best = c;
      if (best !== result.mask[i]) differing++;
    }
    assert.equal(differing, 0);
  });

  test('class areas: fractions of the pixels, largest first', () => {
    const areas = classAreas({ mask: Uint8Array.from([2, 2, 0, 2]), labels: ["a", "b", "c"] });
    assert.deepEqual(areas, [{ index: 2, label: 'c', fraction: 0.75 }, { index: 0, label: 'a', fraction: 0.25 }]);
  });
});

describe('segmentation weights', () => {
  test("an mmseg checkpoint (mmcv layout): weights, class names and palette from its meta", async () => {
    const model = await load({ weights: fixturePath('semfpn-tiny/checkpoint.pth') });
    assert.deepEqual(model.labels, ['background', 'shirt', 'shoe', 'bag', 'trouser']);
    assert.deepEqual(model.palette[1], [255, 0, 0]);
    assert.equal(model.report?.format, 'official');
    const same = await load({ weights: fixtureBytes('semfpn-tiny/weights.safetensors') });
    assert.deepEqual(same.labels, ['class 0', 'class 1', 'class 2', 'class 3', 'class 4']);
    assert.deepEqual(same.palette.slice(0, 3), [[0, 0, 0], [128, 0, 0], [0, 128, 0]], 'VOC palette');
    const pixels = { dtype: 'float32' as const, shape: [1, 3, 64, 64], data: Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i)) };
    assert.ok(relativeError((await model.logits(pixels)).data, (await same.logits(pixels)).data) === 0);
  });

  test("mmcv checkpoints' meta with numpy scalars, strings and an optimizer state is read (allow-listed numpy and _codecs globals)", async () => {
    const bytes = new Uint8Array(readFileSync(new URL('data/mmseg/meta-numpy.pth', import.meta.url)));
    const { state, meta } = await readSegmentationWeights(bytes);
    assert.deepEqual(meta, { labels: ['background', 'thing'], palette: [[0, 0, 0], [200, 100, 50]] });
    assert.deepEqual([...state.keys()], ['decode_head.conv_seg.weight']);
    const root = (await readPth(bytes)).root as Map<string, Map<string, unknown>>;
    const hooks = root.get('meta')!.get('hook_msgs') as Map<string, unknown>;
    assert.deepEqual([hooks.get('best_score'), hooks.get('count'), hooks.get('flag'), hooks.get('ratio')], [0.4125, 7, true, 0.5]);
  });

  test('a classification checkpoint starts the backbone of a new model; the rest is initialized', async () => {
    const classifier = await readStateDict(fixtureBytes('tiny/checkpoint_model_only.pth'));
    const model = await load({ weights: fixturePath('tiny/checkpoint_model_only.pth'), numClasses: 7, neckChannels: 32, headChannels: 16 });
    assert.deepEqual([model.config.backbone.embedDims, model.numClasses, model.labels.length], [[16, 24, 32, 48], 7, 7]);
    assert.deepEqual(model.state.get('backbone.network.4.1.attn.Proj.weight')!.data, classifier.get('network.4.1.attn.Proj.weight')!.data);
    assert.ok((model.state.get('backbone.norm0.weight')!.data as Float32Array).every((v) => v === 1), 'norm0 starts as identity');
    assert.ok(model.report!.unexpected.includes('backbone.head.weight'), 'the classifier head is reported, not loaded');
    assert.ok(model.report!.missing.includes('decode_head.conv_seg.weight'));
    const result = await model.segment(pattern(40, 30, 4));
    assert.deepEqual([result.width, result.height], [40, 30]);
  });

  test('a backbone of another variant is one clear error', async () => {
    await assert.rejects(
      SegmentationModel.load({ weights: fixturePath('tiny/checkpoint_model_only.pth'), model: 'xs' }),
      (e: unknown) => e instanceof SwiftFormerError && e.code === 'KEY_MISMATCH' && /another variant/.test(e.message),
    );
  });

  test('Semantic FPN weights with a different class count need strict: false', async () => {
    await assert.rejects(
      SegmentationModel.load({ weights: fixturePath('semfpn-tiny/weights.safetensors'), numClasses: 3 }),
      (e: unknown) => e instanceof SwiftFormerError && e.code === 'KEY_MISMATCH' && /decode_head\.conv_seg\.weight/.test(e.message),
    );
    const rehead = await load({ weights: fixturePath('semfpn-tiny/weights.safetensors'), numClasses: 3, strict: false });
    assert.equal(rehead.numClasses, 3);
    assert.deepEqual(rehead.report!.mismatched.map((m) => m.key), ['decode_head.conv_seg.weight', 'decode_head.conv_seg.bias']);
  });
});
