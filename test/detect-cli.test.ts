/**
 * `swiftformer detect` and `export` of detector weights, run as a user runs them: JSON with
 * unrounded floats equal to the library's, mask PNGs (0/255, the image's size), overlays, the
 * exported file run by plain onnxruntime-node; one clear error per bad input.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { DetectionModel, decodeImage } from '../src/index.js';
import { encodeRgbPng } from '../src/node/png.js';
import { onnxSignature } from '../src/serve/onnx.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath, fixtureTensor } from './fixtures.js';

const WEIGHTS = fixturePath('maskrcnn-tiny/weights.safetensors');
const SIZES = ['--min-size', '128', '--max-size', '256'];
let dir: string;
let images: string[];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'detect-cli-'));
  images = [0, 1].map((i) => {
    const t = fixtureTensor('maskrcnn-tiny', `images${i}.bin`);
    const [, h, w] = t.shape as [number, number, number];
    const data = new Uint8Array(w * h * 3);
    for (let c = 0; c < 3; c++) for (let p = 0; p < w * h; p++) data[3 * p + c] = Math.round(t.data[c * w * h + p]! * 255);
    const path = join(dir, `image${i}.png`);
    writeFileSync(path, encodeRgbPng(data, w, h));
    return path;
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('swiftformer detect', () => {
  test('--json with --masks and --overlay: the library\'s detections, mask PNGs and pictures', async () => {
    const masks = join(dir, 'masks');
    const overlay = join(dir, 'overlay');
    const labels = join(dir, 'labels.txt');
    writeFileSync(labels, 'cat\ndog\nbird\nfish\n');
    const r = await cli('detect', ...images, '--weights', WEIGHTS, ...SIZES, '--threshold', '0.45', '--json', '--masks', masks, '--overlay', overlay, '--labels', labels);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { file: string; width: number; height: number; overlay: string; detections: { index: number; label: string; score: number; box: Record<string, number>; mask: string }[] }[];
    assert.deepEqual(out.map((o) => [o.file, o.width, o.height]), [[images[0], 160, 120], [images[1], 100, 150]]);
    const model = await DetectionModel.load({ weights: WEIGHTS, settings: { transform: { minSize: 128, maxSize: 256 } }, labels: ['cat', 'dog', 'bird', 'fish'] });
    try {
      for (const [i, o] of out.entries()) {
        const image = await decodeImage(images[i]!);
        const expected = await model.detect(image, { threshold: 0.45 });
        assert.ok(expected.length > 0);
        assert.equal(o.detections.length, expected.length);
        for (const [k, d] of o.detections.entries()) {
          const e = expected[k]!;
          assert.deepEqual([d.index, d.label, d.score, d.box], [e.index, e.label, e.score, e.box], 'unrounded floats, as the library gives them');
          assert.equal(d.mask, join(masks, `image${i}_${k}_${e.label}.png`));
          const png = await decodeImage(d.mask);
          assert.deepEqual([png.width, png.height], [image.width, image.height]);
          for (let p = 0; p < image.width * image.height; p++) assert.equal(png.data[3 * p], e.mask!.data[p]);
        }
        const picture = await decodeImage(o.overlay);
        assert.deepEqual([picture.width, picture.height], [image.width, image.height]);
        assert.ok(picture.data.some((v, p) => v !== image.data[p]), 'something is drawn');
      }
    } finally {
      await model.release();
    }
  });

  test('plain output: one line per detection', async () => {
    const r = await cli('detect', images[0]!, '--weights', WEIGHTS, ...SIZES, '--threshold', '0.5');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /image0\.png \(160x120\): \d+ detections? above 0\.5/);
  });

  test('export writes the one-graph ONNX file, which plain onnxruntime runs', async () => {
    const onnx = join(dir, 'detector.onnx');
    const r = await cli('export', '--weights', WEIGHTS, '--onnx', onnx, ...SIZES);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Mask R-CNN, 5 classes, images resized to 128 \/ 256 inside the graph/);
    const bytes = readFileSync(onnx);
    const signature = onnxSignature(bytes, onnx);
    assert.equal(signature.metadata['swiftformer.task'], 'detection', 'the card travels in the metadata');
    assert.deepEqual(signature.inputs.map((i) => i.name), ['pixel_values']);
    const session = await ort.InferenceSession.create(bytes);
    try {
      const image = await decodeImage(images[1]!);
      const pixels = new Float32Array(3 * image.width * image.height);
      for (let c = 0; c < 3; c++) for (let p = 0; p < image.width * image.height; p++) pixels[c * image.width * image.height + p] = image.data[3 * p + c]! / 255;
      const out = await session.run({ pixel_values: new ort.Tensor('float32', pixels, [1, 3, image.height, image.width]) });
      assert.equal(out.boxes!.dims[0], 100);
      assert.deepEqual(out.masks!.dims, [100, 1, 150, 100]);
    } finally {
      await session.release();
    }
  });

  test('bad input: another architecture, labels that do not match, a bad threshold, an image too thin', async () => {
    assertCleanFailure(await cli('detect', images[0]!, '--weights', fixturePath('tiny/weights.safetensors')), /holds SwiftFormer classification \/ backbone weights, not a detector/);
    assertCleanFailure(await cli('detect', images[0]!, '--weights', fixturePath('semfpn-tiny/weights.safetensors')), /holds a Semantic FPN segmentation model .*, not a detector/);
    const two = join(dir, 'two.txt');
    writeFileSync(two, 'a\nb\n');
    assertCleanFailure(await cli('detect', images[0]!, '--weights', WEIGHTS, '--labels', two), /has 2 labels but the model has 5 classes \(4 and the background\)/);
    assertCleanFailure(await cli('detect', images[0]!, '--weights', WEIGHTS, '--threshold', '1.5'), /--threshold must be a number in \[0, 1\], got '1.5'/);
    assertCleanFailure(await cli('detect', images[0]!, '--weights', WEIGHTS, '--min-size', '5000'), /min size must be an integer in \[1, 4096\], got 5000/);
    const thin = join(dir, 'thin.png');
    writeFileSync(thin, encodeRgbPng(new Uint8Array(3 * 2000), 2000, 1));
    const r = await cli('detect', thin, images[0]!, '--weights', WEIGHTS, ...SIZES);
    assertCleanFailure(r, /thin\.png is 2000x1: resized for min size 128 \/ max size 256 it would be 256x0 pixels/);
    assert.match(r.stdout, /image0\.png \(160x120\)/, 'the other image is still processed');
  });
});
