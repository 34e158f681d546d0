/**
 * `swiftformer segment` and `swiftformer export` of Semantic FPN weights, as a user runs them:
 * files written, their contents against the library and the mmseg fixture, and the errors.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import '../src/node/platform.js';
import { decodeImage } from '../src/node/decode.js';
import { SegmentationModel } from '../src/models/segmentation.js';
import { overlay } from '../src/draw/overlay.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath, fixtureTensor, relativeError } from './fixtures.js';

const CHECKPOINT = fixturePath('semfpn-tiny/checkpoint.pth');

describe('swiftformer segment', () => {
  let dir = '';
  let model: SegmentationModel;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'swiftformer-segment-'));
    const pixels = Buffer.alloc(96 * 72 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7 + ((i / 288) | 0) * 3) % 256;
    await sharp(pixels, { raw: { width: 96, height: 72, channels: 3 } }).png().toFile(join(dir, 'scene.png'));
    model = await SegmentationModel.load({ weights: CHECKPOINT, session: { threads: 2 } });
  });
  after(async () => {
    await model?.release();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('writes a palette mask and an overlay per image; --json gives the class areas', async () => {
    const r = await cli('segment', join(dir, 'scene.png'), '--weights', CHECKPOINT, '--out', join(dir, 'out'), '--json');
    assert.equal(r.code, 0, r.stderr);
    const [result] = JSON.parse(r.stdout) as { file: string; width: number; height: number; mask: string; overlay: string; classes: { index: number; label: string; fraction: number }[] }[];
    assert.deepEqual([result!.width, result!.height], [96, 72]);
    const expected = await model.segment(await decodeImage(join(dir, 'scene.png')));
    // The PNG is a palette image: its colors are the model's palette at the mask's indices.
    const png = await sharp(await readFile(result!.mask)).raw().toBuffer({ resolveWithObject: true });
    assert.equal(png.info.width, 96);
    const { palette } = model;
    for (let i = 0; i < 96 * 72; i++) {
      const color = palette[expected.mask[i]!]!;
      assert.deepEqual([png.data[i * 3], png.data[i * 3 + 1], png.data[i * 3 + 2]], color, `pixel ${i}`);
    }
    const meta = await sharp(await readFile(result!.mask)).metadata();
    assert.equal(meta.isPalette, true, 'a palette PNG');
    const total = result!.classes.reduce((s, c) => s + c.fraction, 0);
    assert.ok(Math.abs(total - 1) < 1e-9);
    assert.ok(result!.classes.every((c) => model.labels[c.index] === c.label));
    // The overlay: the blended image, with the legend to its right.
    const picture = await sharp(await readFile(result!.overlay)).raw().toBuffer({ resolveWithObject: true });
    const reference = overlay(await decodeImage(join(dir, 'scene.png')), expected);
    assert.deepEqual([picture.info.width, picture.info.height], [reference.width, reference.height]);
    assert.ok(picture.info.width > 96, 'a legend beside the image');
    assert.ok(Buffer.from(reference.data).equals(picture.data), 'overlay pixels');
  });

  test('errors: no weights (none bundled yet), classification weights, a bad --size', async () => {
    assertCleanFailure(await cli('segment', join(dir, 'scene.png')), /needs --weights: the package bundles no segmentation model yet/);
    assertCleanFailure(await cli('segment', join(dir, 'scene.png'), '--weights', fixturePath('tiny/weights.safetensors')), /no segmentation head/);
    assertCleanFailure(await cli('segment', join(dir, 'scene.png'), '--weights', CHECKPOINT, '--size', '31'), /--size must be/);
    const missing = await cli('segment', join(dir, 'nope.png'), '--weights', CHECKPOINT, '--out', join(dir, 'out'));
    assertCleanFailure(missing, /nope\.png/);
  });
});

describe('swiftformer export of Semantic FPN weights', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'swiftformer-export-seg-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function runOnnx(path: string, batch: number): Promise<ort.InferenceSession.OnnxValueMapType> {
    const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 2 });
    const input = fixtureTensor('semfpn-tiny', 'input.bin');
    const n = 3 * 64 * 64;
    try {
      return await session.run({ pixel_values: new ort.Tensor('float32', input.data.subarray(0, batch * n), [batch, 3, 64, 64]) });
    } finally {
      await session.release();
    }
  }

  test('logits (N,K,H,W) at the input resolution, dynamic batch, equal to mmseg\'s', async () => {
    const out = join(dir, 'fpn.onnx');
    const r = await cli('export', '--onnx', out, '--weights', CHECKPOINT, '--size', '64');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /logits \(N,5,64,64\)/);
    const reference = fixtureTensor('semfpn-tiny', 'logits.bin').data;
    for (const batch of [1, 2]) {
      const logits = (await runOnnx(out, batch)).logits!;
      assert.deepEqual(logits.dims, [batch, 5, 64, 64]);
      assert.ok(relativeError(logits.data as Float32Array, reference.subarray(0, batch * 5 * 64 * 64)) <= 1e-4);
    }
  });

  test('--output mask: the uint8 argmax', async () => {
    const out = join(dir, 'mask.onnx');
    assert.equal((await cli('export', '--onnx', out, '--weights', CHECKPOINT, '--size', '64', '--output', 'mask')).code, 0);
    const mask = (await runOnnx(out, 2)).mask!;
    assert.equal(mask.type, 'uint8');
    assert.deepEqual(mask.dims, [2, 64, 64]);
    const logits = fixtureTensor('semfpn-tiny', 'logits.bin').data;
    const plane = 64 * 64;
    let differing = 0;
    for (let n = 0; n < 2; n++) {
      for (let i = 0; i < plane; i++) {
        let best = 0;
        for (let c = 1; c < 5; c++) if (logits[(n * 5 + c) * plane + i]! > logits[(n * 5 + best) * plane + i]!) best = c;
        if (best !== (mask.data as Uint8Array)[n * plane + i]) differing++;
      }
    }
    assert.equal(differing, 0);
  });

  test('--output is refused for classifiers, --int8 for segmentation', async () => {
    assertCleanFailure(await cli('export', '--onnx', join(dir, 'x.onnx'), '--weights', fixturePath('tiny/weights.safetensors'), '--output', 'mask'), /--output goes with Semantic FPN/);
    assertCleanFailure(await cli('export', '--onnx', join(dir, 'x.onnx'), '--weights', CHECKPOINT, '--int8', '--calibrate', 'x'), /--int8 does not apply/);
  });
});
