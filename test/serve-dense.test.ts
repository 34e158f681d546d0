/**
 * The server with segmentation and detection models, started as users start it (`serve --model
 * NAME=WEIGHTS --repository DIR`, in a child process on 127.0.0.1), against the library in this
 * process and against the PyTorch fixtures: /v1 segment equals `segment(image)` (the mask decoded
 * from its PNG, pixel for pixel; the class fractions), /v1 detect equals `detect(image)` (labels,
 * scores and boxes as the library gives them; masks decoded from their PNGs), /v2 on the segmenter
 * equals `logits` (1e-5) and the fixture's logits (1e-4), /v2 on the detector gives the graph's
 * INT64 labels and batch indices in JSON and binary, and the repositories `export --triton` writes
 * for both serve on /v2 with the same answers (the exported detector on /v1 detect too). `--labels`
 * renames the classes of weights and exports and nothing else. Bad query values, UINT8 outputs and
 * label files that do not fit are refused.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeImage } from '../src/node/decode.js';
import { decodeLabelPng, encodeRgbPng } from '../src/node/png.js';
import { overlay } from '../src/draw/overlay.js';
import { classAreas, SegmentationModel } from '../src/models/segmentation.js';
import { DetectionModel } from '../src/models/detector.js';
import type { RGBImage } from '../src/preprocess/resize.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath, fixtureTensor, relativeError } from './fixtures.js';
import { binaryRequest, decodeResponse, float32Bytes, getJson, http, metricValue, parseMetrics, postJson, serveProcess } from './serve-client.js';

const FPN_WEIGHTS = fixturePath('semfpn-tiny/checkpoint.pth');
const DET_WEIGHTS = fixturePath('maskrcnn-tiny/weights.safetensors');
const SIZES = ['--min-size', '128', '--max-size', '256']; // the fixture's transform
const SCALE: [number, number] = [256, 64];
/** --labels for the detector (one per line, the background left out) and the segmenter (a JSON array). */
const DET_NAMES = ['cat', 'dog', 'bird', 'fish'];
const SEG_NAMES = ['sky', 'road', 'tree', 'car', 'wall'];

let dir: string;
let server: Awaited<ReturnType<typeof serveProcess>>;
let url: string;
let segmenter: SegmentationModel;
let detector: DetectionModel;

/** A detection fixture image as 8-bit RGB, and its PNG (lossless: the server decodes the same pixels). */
function fixtureImage(i: number): { image: RGBImage; png: Buffer } {
  const t = fixtureTensor('maskrcnn-tiny', `images${i}.bin`);
  const [, h, w] = t.shape as [number, number, number];
  const data = new Uint8Array(w * h * 3);
  for (let c = 0; c < 3; c++) for (let p = 0; p < w * h; p++) data[3 * p + c] = Math.round(t.data[c * w * h + p]! * 255);
  return { image: { width: w, height: h, data }, png: Buffer.from(encodeRgbPng(data, w, h)) };
}

const postImage = (path: string, png: Buffer) => http(`${url}${path}`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' } });
const json = (r: { body: Buffer }) => JSON.parse(r.body.toString());

/** Fixture image i posted to a /v1 endpoint: the image as the server decodes it, and the 200 answer. */
async function answerFor(i: number, path: string): Promise<{ image: RGBImage; answer: any }> {
  const { png } = fixtureImage(i);
  const r = await postImage(path, png);
  assert.equal(r.status, 200, r.body.toString());
  return { image: await decodeImage(png), answer: json(r) };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swiftformer-serve-dense-'));
  const fpn = await cli('export', '--weights', FPN_WEIGHTS, '--triton', dir, '--name', 'fpn', '--size', '64', '--max-batch', '4');
  assert.equal(fpn.code, 0, fpn.stderr);
  const det = await cli('export', '--weights', DET_WEIGHTS, '--triton', dir, '--name', 'det', ...SIZES);
  assert.equal(det.code, 0, det.stderr);
  const [detNames, segNames] = [join(dir, 'det-names.txt'), join(dir, 'seg-names.json')];
  await writeFile(detNames, DET_NAMES.join('\n'));
  await writeFile(segNames, JSON.stringify(SEG_NAMES));
  const exported = join(dir, 'det', '1', 'model.onnx');
  server = await serveProcess([
    '--model', `seg=${FPN_WEIGHTS}`, '--model', `mrcnn=${DET_WEIGHTS}`, '--model', `exported=${exported}`, '--repository', dir,
    '--model', `named-seg=${FPN_WEIGHTS}`, '--model', `named-det=${DET_WEIGHTS}`, '--model', `named-exported=${exported}`,
    '--labels', `named-seg=${segNames}`, '--labels', `named-det=${detNames}`, '--labels', `named-exported=${detNames}`,
    '--scale', SCALE.join(','), ...SIZES, '--max-delay-ms', '300',
  ]);
  assert.ok(server.url, server.stderr);
  url = server.url!;
  segmenter = await SegmentationModel.load({ weights: FPN_WEIGHTS, scale: SCALE });
  detector = await DetectionModel.load({ weights: DET_WEIGHTS, settings: { transform: { minSize: 128, maxSize: 256 } } });
});

after(async () => {
  assert.equal(await server?.stop(), 0, 'serve exits 0 on SIGTERM');
  await Promise.all([segmenter?.release(), detector?.release()]);
  await rm(dir, { recursive: true, force: true });
});

describe('serve: a Semantic FPN segmenter', () => {
  test('/v1 segment answers segment --json for the image: the mask PNG decodes to segment()\'s mask, the class fractions equal', async () => {
    for (const i of [0, 1]) {
      const { image, answer } = await answerFor(i, '/v1/models/seg/segment');
      assert.deepEqual(Object.keys(answer), ['width', 'height', 'mask', 'classes']);
      const expected = await segmenter.segment(image);
      assert.deepEqual([answer.width, answer.height], [image.width, image.height]);
      const mask = decodeLabelPng(Buffer.from(answer.mask, 'base64'));
      assert.deepEqual([mask.colorType, mask.width, mask.height], ['palette', image.width, image.height]);
      assert.deepEqual(mask.data, expected.mask, 'pixel value = class index');
      assert.deepEqual(Uint8Array.from(mask.palette!.subarray(0, 3 * expected.palette.length)), Uint8Array.from(expected.palette.flat()), "the model's colors");
      assert.deepEqual(answer.classes, classAreas(expected));
      assert.ok(answer.classes.length >= 2, 'a mask with more than one class');
    }
  });

  test('/v1 segment?overlay=true adds the overlay picture segment writes', async () => {
    const { png } = fixtureImage(0);
    const image = await decodeImage(png);
    const answer = json(await postImage('/v1/models/seg/segment?overlay=true', png));
    const picture = await decodeImage(Buffer.from(answer.overlay, 'base64'));
    const expected = overlay(image, await segmenter.segment(image));
    assert.deepEqual([picture.width, picture.height], [expected.width, expected.height]);
    assert.deepEqual(picture.data, expected.data);
  });

  test('/v2 infer runs the logits: equal to logits() (1e-5) and to the PyTorch fixture (1e-4), JSON and binary', async () => {
    const input = fixtureTensor('semfpn-tiny', 'input.bin'); // 2x3x64x64, mmseg-normalized
    const reference = fixtureTensor('semfpn-tiny', 'logits.bin');
    const ours = await segmenter.logits(input);
    const r = await postJson(`${url}/v2/models/seg/infer`, { inputs: [{ name: 'pixel_values', shape: [2, 3, 64, 64], datatype: 'FP32', data: Array.from(input.data) }] });
    assert.equal(r.status, 200, r.body.toString());
    const [out] = json(r).outputs;
    assert.deepEqual([out.name, out.datatype, out.shape], ['logits', 'FP32', [2, 5, 64, 64]]);
    assert.ok(relativeError(out.data, ours.data) <= 1e-5);
    assert.ok(relativeError(out.data, reference.data) <= 1e-4);
    const bytes = float32Bytes(input.data);
    const binary = await http(`${url}/v2/models/seg/infer`, {
      method: 'POST',
      ...binaryRequest({ inputs: [{ name: 'pixel_values', shape: [2, 3, 64, 64], datatype: 'FP32', parameters: { binary_data_size: bytes.length } }], parameters: { binary_data_output: true } }, [bytes]),
    });
    assert.ok(relativeError(decodeResponse(binary).outputs.get('logits')!.values as number[], ours.data) <= 1e-5);
  });

  test('/v2 requests of the same size share a dynamic batch, each answer its own rows', async () => {
    const input = fixtureTensor('semfpn-tiny', 'input.bin');
    const before = metricValue(parseMetrics((await http(`${url}/metrics`)).body.toString()), 'swiftformer_batch_size_count', { model: 'seg' }) ?? 0;
    const image = (k: number) => input.data.subarray(k * 3 * 64 * 64, (k + 1) * 3 * 64 * 64);
    const answers = await Promise.all([0, 1].map((k) => postJson(`${url}/v2/models/seg/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 64, 64], datatype: 'FP32', data: Array.from(image(k)) }] })));
    const samples = parseMetrics((await http(`${url}/metrics`)).body.toString());
    assert.equal(metricValue(samples, 'swiftformer_batch_size_count', { model: 'seg' }), before + 1, 'one run for both');
    const reference = fixtureTensor('semfpn-tiny', 'logits.bin');
    for (const [k, a] of answers.entries()) {
      assert.ok(relativeError(json(a).outputs[0].data, reference.data.subarray(k * 5 * 64 * 64, (k + 1) * 5 * 64 * 64)) <= 1e-4);
    }
  });

  test('the repository export --triton wrote for it answers /v2 infer with the same logits', async () => {
    const meta = await getJson(`${url}/v2/models/fpn`);
    assert.deepEqual(meta.json.outputs, [{ name: 'logits', datatype: 'FP32', shape: [-1, 5, 64, 64] }]);
    const input = fixtureTensor('semfpn-tiny', 'input.bin');
    const r = await postJson(`${url}/v2/models/fpn/versions/1/infer`, { inputs: [{ name: 'pixel_values', shape: [2, 3, 64, 64], datatype: 'FP32', data: Array.from(input.data) }] });
    assert.equal(r.status, 200, r.body.toString());
    const [out] = json(r).outputs;
    assert.ok(relativeError(out.data, (await segmenter.logits(input)).data) <= 1e-5);
    assert.ok(relativeError(out.data, fixtureTensor('semfpn-tiny', 'logits.bin').data) <= 1e-4);
  });

  test('what a segmenter does not do: 400 naming what it does; bad overlay value; sides not a multiple of 32', async () => {
    const { png } = fixtureImage(0);
    for (const task of ['classify', 'detect']) {
      const r = await postImage(`/v1/models/seg/${task}`, png);
      assert.equal(r.status, 400);
      assert.match(json(r).error, new RegExp(`model 'seg' does not do ${task} \\(it does: segment\\)`));
    }
    const flag = await postImage('/v1/models/seg/segment?overlay=yes', png);
    assert.equal(flag.status, 400);
    assert.match(json(flag).error, /overlay must be true or false, got 'yes'/);
    const odd = await postJson(`${url}/v2/models/seg/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 40, 40], datatype: 'FP32', data: new Array(4800).fill(0) }] });
    assert.equal(odd.status, 400);
    assert.match(json(odd).error, /40x40 is not supported: height and width must be multiples of 32/);
  });
});

describe('serve: a Mask R-CNN detector', () => {
  test('/v1 detect answers detect --json\'s detections: the library\'s labels, scores and boxes; masks as PNGs of its masks', async () => {
    for (const i of [0, 1]) {
      const { image, answer } = await answerFor(i, '/v1/models/mrcnn/detect?threshold=0.45');
      assert.deepEqual([answer.width, answer.height], [image.width, image.height]);
      const expected = await detector.detect(image, { threshold: 0.45 });
      assert.ok(expected.length > 0);
      assert.equal(answer.detections.length, expected.length);
      for (const [k, d] of answer.detections.entries()) {
        const e = expected[k]!;
        assert.deepEqual([d.index, d.label, d.score, d.box], [e.index, e.label, e.score, e.box]);
        const mask = decodeLabelPng(Buffer.from(d.mask, 'base64'));
        assert.deepEqual([mask.colorType, mask.width, mask.height], ['gray', image.width, image.height]);
        assert.deepEqual(mask.data, e.mask!.data, '0/255 at the image size');
      }
    }
  });

  test('/v1 detect: the default threshold is 0.5; masks=false leaves the masks out', async () => {
    const { png } = fixtureImage(0);
    const image = await decodeImage(png);
    const answer = json(await postImage('/v1/models/mrcnn/detect?masks=false', png));
    const expected = await detector.detect(image, { masks: false });
    assert.deepEqual(answer.detections, expected.map((d) => ({ ...d })));
    assert.ok(answer.detections.every((d: object) => !('mask' in d)));
  });

  test('bad query values: 400 with a clear message, before the image runs', async () => {
    const { png } = fixtureImage(0);
    for (const [query, pattern] of [
      ['threshold=1.5', /threshold must be a number in \[0, 1\], got '1.5'/],
      ['threshold=-0.1', /threshold must be a number in \[0, 1\], got '-0.1'/],
      ['threshold=abc', /threshold must be a number in \[0, 1\], got 'abc'/],
      ['threshold=', /threshold must be a number in \[0, 1\], got ''/],
      ['masks=maybe', /masks must be true or false, got 'maybe'/],
    ] as const) {
      const r = await postImage(`/v1/models/mrcnn/detect?${query}`, png);
      assert.equal(r.status, 400, query);
      assert.match(json(r).error, pattern);
    }
    const classify = await postImage('/v1/models/mrcnn/classify', png);
    assert.equal(classify.status, 400);
    assert.match(json(classify).error, /model 'mrcnn' does not do classify \(it does: detect\)/);
  });

  test('/v2 infer runs the graph: INT64 labels and batch indices (JSON and binary), the run() of the library, no batch axis', async () => {
    const meta = await getJson(`${url}/v2/models/mrcnn`);
    const exported = await getJson(`${url}/v2/models/det`);
    assert.deepEqual(meta.json.outputs, exported.json.outputs, "the weights' model states the export's outputs");
    assert.deepEqual(meta.json.outputs.map((o: { datatype: string }) => o.datatype), ['FP32', 'FP32', 'INT64', 'FP32', 'INT64']);
    const pixels = fixtureTensor('maskrcnn-tiny', 'images0.bin'); // 3x120x160 in [0, 1]
    const feeds = { dtype: 'float32' as const, shape: [1, ...pixels.shape], data: pixels.data };
    const raw = await detector.run(feeds);
    const body = { inputs: [{ name: 'pixel_values', shape: feeds.shape, datatype: 'FP32', data: Array.from(pixels.data) }] };
    for (const model of ['mrcnn', 'det']) {
      const r = await postJson(`${url}/v2/models/${model}/infer`, body);
      assert.equal(r.status, 200, r.body.toString());
      const out = new Map(json(r).outputs.map((o: { name: string }) => [o.name, o])) as Map<string, { datatype: string; shape: number[]; data: number[] }>;
      const d = raw.scores.length;
      assert.equal(d, 100, 'torchvision keeps 100 (fixture manifest)');
      assert.deepEqual(out.get('labels')!.datatype, 'INT64');
      assert.deepEqual(out.get('labels')!.data, Array.from(raw.labels));
      assert.deepEqual(out.get('batch_index')!.data, new Array(d).fill(0));
      assert.deepEqual(out.get('masks')!.shape, [d, 1, 120, 160]);
      assert.ok(relativeError(out.get('scores')!.data, raw.scores) <= 1e-5, model);
      assert.ok(relativeError(out.get('boxes')!.data, raw.boxes) <= 1e-5, model);
      // The same in binary: INT64 as 8-byte little-endian integers.
      const bin = await postJson(`${url}/v2/models/${model}/infer`, { ...body, outputs: [{ name: 'labels', parameters: { binary_data: true } }, { name: 'scores' }] });
      const decoded = decodeResponse(bin).outputs;
      assert.equal(Number(bin.headers['content-length']) - Number(bin.headers['inference-header-content-length']), 8 * d);
      assert.deepEqual(decoded.get('labels')!.values, Array.from(raw.labels));
    }
    // torchvision's own labels for this image (the fixture): the same multiset.
    const labels = new BigInt64Array(fixtureTensor('maskrcnn-tiny', 'labels0.bin').data.buffer);
    assert.deepEqual(Array.from(raw.labels).sort(), Array.from(labels, Number).sort());
  });

  test('/v2 on a detector: two images of one size in one request, batch_index tells them apart', async () => {
    const pixels = fixtureTensor('maskrcnn-tiny', 'images0.bin');
    const two = new Float32Array(2 * pixels.data.length);
    two.set(pixels.data);
    two.set(pixels.data.map((v) => 1 - v), pixels.data.length);
    const r = await postJson(`${url}/v2/models/det/infer`, { inputs: [{ name: 'pixel_values', shape: [2, 3, 120, 160], datatype: 'FP32', data: Array.from(two) }], outputs: [{ name: 'batch_index' }, { name: 'scores' }] });
    assert.equal(r.status, 200, r.body.toString());
    const [batch, scores] = json(r).outputs;
    const raw = await detector.run({ dtype: 'float32', shape: [2, 3, 120, 160], data: two });
    assert.deepEqual(batch.data, Array.from(raw.batch));
    assert.ok(batch.data.includes(0) && batch.data.includes(1));
    assert.ok(relativeError(scores.data, raw.scores) <= 1e-5);
  });

  test('an exported detector (--model file.onnx, and the repository) answers /v1 detect as the library does', async () => {
    const { image: fixture } = fixtureImage(0);
    const expected = await detector.detect(fixture, { threshold: 0.45 });
    assert.ok(expected.length > 0);
    for (const model of ['exported', 'det']) {
      const { answer } = await answerFor(0, `/v1/models/${model}/detect?threshold=0.45`);
      assert.equal(answer.detections.length, expected.length, model);
      for (const [k, d] of answer.detections.entries()) {
        const e = expected[k]!;
        // The same computation as the library's graph (which only adds the threshold input): the same numbers.
        assert.deepEqual([d.index, d.label, d.score, d.box], [e.index, e.label, e.score, e.box], model);
        assert.deepEqual(decodeLabelPng(Buffer.from(d.mask, 'base64')).data, e.mask!.data, model);
      }
      const meta = await getJson(`${url}/v2/models/${model}`);
      assert.deepEqual(meta.json.outputs.map((o: { name: string }) => o.name), ['boxes', 'scores', 'labels', 'masks', 'batch_index']);
    }
    const bad = await postImage('/v1/models/exported/detect?threshold=7', fixtureImage(0).png);
    assert.equal(bad.status, 400);
    assert.match(json(bad).error, /threshold must be a number in \[0, 1\], got '7'/);
  });

  test('/v2 on a detector: an empty batch and an image too elongated to resize are 400s, from weights and export alike', async () => {
    for (const model of ['mrcnn', 'det']) {
      const empty = await postJson(`${url}/v2/models/${model}/infer`, { inputs: [{ name: 'pixel_values', shape: [0, 3, 120, 160], datatype: 'FP32', data: [] }] });
      assert.equal(empty.status, 400, `${model}: ${empty.body}`);
      const thin = await postJson(`${url}/v2/models/${model}/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 1, 1000], datatype: 'FP32', data: new Array(3000).fill(0.5) }] });
      assert.equal(thin.status, 400, `${model}: ${thin.body}`);
      assert.match(json(thin).error, /is 1000x1: resized for min size 128 \/ max size 256 it would be 256x0 pixels/);
    }
  });

  test("classification extension on an INT64 output is refused", async () => {
    const pixels = fixtureTensor('maskrcnn-tiny', 'images0.bin');
    const r = await postJson(`${url}/v2/models/det/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 120, 160], datatype: 'FP32', data: Array.from(pixels.data) }], outputs: [{ name: 'labels', parameters: { classification: 3 } }] });
    assert.equal(r.status, 400);
    assert.match(json(r).error, /output 'labels' is INT64: classification applies to FP32 scores/);
  });
});

describe('serve --labels NAME=FILE', () => {
  test("names a segmenter's classes, and a detector's from weights and from an export (background left out of the file)", async () => {
    const { answer: seg } = await answerFor(0, '/v1/models/seg/segment');
    const { answer: named } = await answerFor(0, '/v1/models/named-seg/segment');
    assert.ok(seg.classes.length >= 2);
    assert.deepEqual(named.classes, seg.classes.map((c: { index: number }) => ({ ...c, label: SEG_NAMES[c.index] })));
    assert.equal(named.mask, seg.mask, 'the same mask');
    const { answer: det } = await answerFor(0, '/v1/models/mrcnn/detect?threshold=0.45');
    assert.ok(det.detections.length > 0);
    for (const model of ['named-det', 'named-exported']) {
      const { answer } = await answerFor(0, `/v1/models/${model}/detect?threshold=0.45`);
      const renamed = det.detections.map((d: { index: number }) => ({ ...d, label: ['__background__', ...DET_NAMES][d.index] }));
      assert.deepEqual(answer.detections, renamed, model);
    }
  });
});

describe('serve: what it refuses when loading', () => {
  test('a segmentation export with --output mask (UINT8): refused at load time, naming the output and the way out', async () => {
    const mask = join(dir, 'mask.onnx');
    const r = await cli('export', '--weights', FPN_WEIGHTS, '--onnx', mask, '--size', '64', '--output', 'mask');
    assert.equal(r.code, 0, r.stderr);
    assertCleanFailure(await cli('serve', '--port', '0', '--model', `m=${mask}`), /model 'm': output 'mask' is UINT8; this server returns FP32 and INT64 outputs only \(a segmentation export with --output mask\? export the logits instead/);
  });

  test('--labels: a file whose count is not the classes\', and one for a graph served on /v2 only, name the model and the file', async () => {
    const three = join(dir, 'three.txt');
    await writeFile(three, 'a\nb\nc\n');
    assertCleanFailure(await cli('serve', '--port', '0', '--model', `s=${FPN_WEIGHTS}`, '--labels', `s=${three}`), /model 's': 3 labels for a model of 5 classes/);
    assertCleanFailure(await cli('serve', '--port', '0', '--model', `d=${DET_WEIGHTS}`, '--labels', `d=${three}`, ...SIZES), new RegExp(`model 'd': ${three} has 3 labels but the model has 5 classes \\(4 and the background\\)`));
    const fpn = join(dir, 'fpn', '1', 'model.onnx');
    assertCleanFailure(await cli('serve', '--port', '0', '--model', `f=${fpn}`, '--labels', `f=${three}`), new RegExp(`model 'f': --labels f=${three}: ${fpn} is neither a classifier nor a detector export; it serves tensors on /v2 only`));
  });

  test('--scale 0 is refused: every image size would need its own sessions', async () => {
    assertCleanFailure(await cli('serve', '--port', '0', '--model', `seg=${FPN_WEIGHTS}`, '--scale', '0'), /--scale 0 is not for a server/);
  });
});
