/**
 * Image decoding (src/node/decode.ts), labels (src/models/labels.ts) and the classify / eval commands, on
 * images generated here with sharp and the tiny fixture checkpoint.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import {
  decodeImage, defaultLabels, defaultWeights, imagenetLabels, labelsFromHfConfig, loadLabels, loadModel, parseLabels,
  preprocess, MAX_IMAGE_PIXELS, SwiftFormerError, type RGBImage,
} from '../src/index.js';
import { writeSafetensors } from '../src/weights/safetensors.js';
import { readStateDict } from '../src/weights/read.js';
import { crc32 } from '../src/weights/zip.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath, idxBytes } from './fixtures.js';
import { openTrainingData } from '../src/node/datasets.js';

const TINY = fixturePath('tiny/checkpoint_model_only.pth');
let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swiftformer-classify-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});


/** A deterministic RGB pattern: gradients plus a checkerboard, so resampling has work to do. */
function pattern(width: number, height: number, seed = 1): Buffer {
  const buf = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      buf[i] = (x * 255 * seed) / width;
      buf[i + 1] = (y * 255) / height;
      buf[i + 2] = ((x >> 3) + (y >> 3)) % 2 ? 220 : 30;
    }
  }
  return buf;
}

const raw = (data: Buffer, width: number, height: number, channels: 1 | 2 | 3 | 4) => sharp(data, { raw: { width, height, channels } });

async function decodeError(input: string | Uint8Array, pattern: RegExp, options = {}): Promise<void> {
  await assert.rejects(decodeImage(input, options), (err: unknown) => {
    assert.ok(err instanceof SwiftFormerError, String(err));
    assert.equal(err.code, 'BAD_IMAGE');
    assert.match(err.message, pattern);
    return true;
  });
}

function pixel(image: RGBImage, x: number, y: number): number[] {
  const i = (y * image.width + x) * 3;
  return [...image.data.subarray(i, i + 3)];
}

function near(actual: number[], expected: number[], tolerance: number): boolean {
  return actual.every((v, i) => Math.abs(v - expected[i]!) <= tolerance);
}

/** A PNG whose header claims width x height but holds almost no data: a decompression bomb's shape. */
function pngHeaderOnly(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const idat = new Uint8Array([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]); // an empty zlib stream
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array())];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------- decoding

describe('decodeImage', () => {
  test('PNG and TIFF are lossless: pixels come back exactly', async () => {
    const src = pattern(37, 23);
    for (const encoded of [await raw(src, 37, 23, 3).png().toBuffer(), await raw(src, 37, 23, 3).tiff({ compression: 'lzw' }).toBuffer()]) {
      const image = await decodeImage(encoded);
      assert.equal(image.width, 37);
      assert.equal(image.height, 23);
      assert.deepEqual(Buffer.from(image.data), src);
    }
  });

  test('JPEG decodes to the right size and close to the source', async () => {
    const src = pattern(64, 48);
    const image = await decodeImage(await raw(src, 64, 48, 3).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer());
    assert.deepEqual([image.width, image.height, image.data.length], [64, 48, 64 * 48 * 3]);
    let diff = 0;
    for (let i = 0; i < src.length; i++) diff += Math.abs(image.data[i]! - src[i]!);
    assert.ok(diff / src.length < 2, `mean abs difference ${diff / src.length}`);
  });

  test('RGBA (PNG, WebP): alpha is dropped, not composited, as PIL convert("RGB") does', async () => {
    const rgba = Buffer.alloc(8 * 4 * 4);
    for (let i = 0; i < 32; i++) rgba.set([i * 7, 255 - i * 5, 100, i % 2 ? 0 : 128], i * 4);
    const expected = Buffer.alloc(32 * 3);
    for (let i = 0; i < 32; i++) expected.set([i * 7, 255 - i * 5, 100], i * 3);
    for (const encoded of [await raw(rgba, 8, 4, 4).png().toBuffer(), await raw(rgba, 8, 4, 4).webp({ lossless: true, exact: true }).toBuffer()]) {
      const image = await decodeImage(encoded);
      assert.deepEqual(Buffer.from(image.data), expected);
    }
  });

  test('grayscale (with and without alpha, 8 and 16 bit) becomes three equal channels', async () => {
    const gray = Buffer.from(Array.from({ length: 6 * 5 }, (_, i) => i * 8));
    const ga = Buffer.from(Array.from({ length: 6 * 5 }, (_, i) => [i * 8, i % 3 ? 255 : 0]).flat());
    const encodings = [
      await raw(gray, 6, 5, 1).toColourspace('b-w').png().toBuffer(),
      await raw(ga, 6, 5, 2).toColourspace('b-w').png().toBuffer(),
      await raw(gray, 6, 5, 1).toColourspace('grey16').png().toBuffer(),
    ];
    assert.deepEqual((await Promise.all(encodings.map((e) => sharp(e).metadata()))).map((m) => [m.channels, m.depth]), [[1, 'uchar'], [2, 'uchar'], [1, 'ushort']]);
    for (const encoded of encodings.slice(0, 2)) {
      const image = await decodeImage(encoded);
      assert.deepEqual([...image.data], [...gray].flatMap((v) => [v, v, v]));
    }
    // 16-bit gray (v * 257 here): Pillow opens it as 32-bit integers, and convert('RGB') clips them at 255.
    const deep = await decodeImage(encodings[2]!);
    assert.deepEqual([...deep.data], [...gray].flatMap((v) => Array(3).fill(Math.min(255, v * 257))));
  });

  test('GIF: the first frame of an animation', async () => {
    const frames = Buffer.concat([Buffer.alloc(10 * 6 * 3, 0), Buffer.alloc(10 * 6 * 3, 0)]);
    for (let i = 0; i < 60; i++) {
      frames.set([200, 16, 16], i * 3);
      frames.set([16, 200, 16], 180 + i * 3);
    }
    const gif = await sharp(frames, { raw: { width: 10, height: 12, channels: 3, pageHeight: 6 } as never }).gif().toBuffer();
    assert.equal((await sharp(gif).metadata()).pages, 2);
    const image = await decodeImage(gif);
    assert.deepEqual([image.width, image.height], [10, 6]);
    for (let y = 0; y < 6; y++) for (let x = 0; x < 10; x++) assert.ok(near(pixel(image, x, y), [200, 16, 16], 2), `pixel ${x},${y}: ${pixel(image, x, y)}`);
  });

  test('EXIF orientation is applied (orientation 6: rotate 90 degrees clockwise)', async () => {
    // Quadrants as stored: top-left red, top-right blue, bottom-left green, bottom-right white.
    const w = 40;
    const h = 20;
    const src = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const c = y < h / 2 ? (x < w / 2 ? [255, 0, 0] : [0, 0, 255]) : x < w / 2 ? [0, 255, 0] : [255, 255, 255];
        src.set(c, (y * w + x) * 3);
      }
    }
    const jpeg = await raw(src, w, h, 3).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    assert.equal((await sharp(jpeg).metadata()).orientation, 6);
    const image = await decodeImage(jpeg);
    // Orientation 6: stored row 0 is the displayed right edge, stored column 0 the displayed top.
    assert.deepEqual([image.width, image.height], [h, w]);
    assert.ok(near(pixel(image, h - 3, 2), [255, 0, 0], 40), `top right is red: ${pixel(image, h - 3, 2)}`);
    assert.ok(near(pixel(image, 2, 2), [0, 255, 0], 40), `top left is green: ${pixel(image, 2, 2)}`);
    assert.ok(near(pixel(image, h - 3, w - 3), [0, 0, 255], 40), `bottom right is blue: ${pixel(image, h - 3, w - 3)}`);
    assert.ok(near(pixel(image, 2, w - 3), [255, 255, 255], 40), `bottom left is white: ${pixel(image, 2, w - 3)}`);
    const stored = await decodeImage(jpeg, { autoOrient: false });
    assert.deepEqual([stored.width, stored.height], [w, h]);
  });

  test("bit-identical to Pillow's Image.open(f).convert('RGB') (and exif_transpose) on Pillow-made files", async () => {
    // test/data/decode: images encoded by Pillow, with the sha256 of Pillow's decode (scripts/make-decode-refs.py).
    const data = fileURLToPath(new URL('data/decode/', import.meta.url));
    const index = JSON.parse(await readFile(join(data, 'index.json'), 'utf8')) as {
      cases: { file: string; width: number; height: number; sha256: string; exifTransposed?: { width: number; height: number; sha256: string } }[];
    };
    assert.ok(index.cases.length >= 36);
    const wrong: string[] = [];
    for (const c of index.cases) {
      for (const autoOrient of [false, true]) {
        const ref = autoOrient && c.exifTransposed ? c.exifTransposed : c;
        try {
          const image = await decodeImage(join(data, c.file), { autoOrient });
          const sha = createHash('sha256').update(image.data).digest('hex');
          if (image.width !== ref.width || image.height !== ref.height || sha !== ref.sha256) wrong.push(`${c.file} (autoOrient ${autoOrient})`);
        } catch (err) {
          wrong.push(`${c.file}: ${(err as Error).message}`);
        }
      }
    }
    assert.deepEqual(wrong, [], 'decoded as Pillow does');
    assert.ok(index.cases.some((c) => c.exifTransposed), 'the EXIF case is there');
  });

  test('decompression bombs are refused from the header, before decoding', async () => {
    assert.equal(MAX_IMAGE_PIXELS, 89_478_485); // PIL's Image.MAX_IMAGE_PIXELS
    const bomb = join(dir, 'bomb.png');
    await writeFile(bomb, pngHeaderOnly(30000, 30000));
    await decodeError(bomb, /bomb\.png is 30000x30000 = 900000000 pixels, over the limit of 89478485/);
    // Just over and just under PIL's limit: only the first is refused as a bomb.
    await decodeError(pngHeaderOnly(9460, 9459), /over the limit/); // 89,482,140 pixels
    await assert.rejects(decodeImage(pngHeaderOnly(9459, 9459)), (err: Error) => !/over the limit/.test(err.message)); // 89,472,681
    await decodeError(pngHeaderOnly(3000, 3000), /over the limit of 1000000/, { maxPixels: 1_000_000 });
  });

  test('unreadable, unsupported and corrupt files: one BAD_IMAGE error naming the file', async () => {
    await decodeError(join(dir, 'missing.jpg'), /missing\.jpg: no such file/);
    await decodeError(dir, /is a directory/);
    const text = join(dir, 'notes.jpg');
    await writeFile(text, 'just some text\n');
    await decodeError(text, /notes\.jpg: not an image in a supported format/);
    await decodeError(new Uint8Array(), /image: the file is empty/);
    await decodeError(new TextEncoder().encode('BM\x36\x00\x00\x00\x00\x00\x00\x00'), /BMP header is truncated/);
    await decodeError(new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"></svg>'), /SVG is not a supported format/);
    const png = await raw(pattern(50, 50), 50, 50, 3).png().toBuffer();
    await decodeError(png.subarray(0, png.length >> 1), /cut\.png: truncated or corrupt PNG/, { name: 'cut.png' });
    const jpeg = await raw(pattern(50, 50), 50, 50, 3).jpeg().toBuffer();
    await decodeError(jpeg.subarray(0, 200), /truncated or corrupt JPEG/);
  });

  test('BMP and PNM: what is not read is refused by name; truncated files and bombs are caught before decoding', async () => {
    const data = fileURLToPath(new URL('data/decode/', import.meta.url));
    const bmp = new Uint8Array(await readFile(join(data, 'rgb24.bmp')));
    await decodeError(bmp.subarray(0, 1000), /cannot decode image: BMP pixel data is truncated \(946 of 8648 bytes\)/);
    const header = (patch: (view: DataView) => void) => {
      const copy = bmp.slice(0, 54);
      patch(new DataView(copy.buffer));
      return copy;
    };
    await decodeError(header((v) => v.setUint32(30, 1, true)), /RLE-compressed BMP is not supported/);
    await decodeError(header((v) => v.setUint16(28, 16, true)), /16-bit BMP is not supported/);
    await decodeError(header((v) => v.setUint32(14, 52, true)), /BMP header size 52 is not supported/);
    await decodeError(header((v) => { v.setInt32(18, 30000, true); v.setInt32(22, -30000, true); }), /is 30000x30000 = 900000000 pixels, over the limit/);
    await decodeError(new TextEncoder().encode('P3\n2 1\n255\n1 2 3 4 5 6\n'), /plain \(ASCII\) P3 PNM is not supported/);
    await decodeError(new TextEncoder().encode('P5\n4 4\n255\nabc'), /PNM pixel data is truncated \(3 of 16 bytes\)/);
    await decodeError(new TextEncoder().encode('P6\n4 4\n0\n'), /maxval 0 is outside 1\.\.65535/);
    await decodeError(new TextEncoder().encode('P6\n4 x\n'), /PNM header has an invalid number 'x'/);
  });

  test('preprocess: [1, 3, size, size], ImageNet-normalized', async () => {
    const red = join(dir, 'red.png');
    await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toFile(red);
    const t = await preprocess(red);
    assert.deepEqual(t.shape, [1, 3, 224, 224]);
    // A constant image stays constant through resize and crop: (v/255 - mean) / std per channel.
    const plane = 224 * 224;
    const expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225];
    for (let c = 0; c < 3; c++) {
      for (const i of [0, 1000, plane - 1]) assert.ok(Math.abs(t.data[c * plane + i]! - expected[c]!) < 1e-5);
    }
    assert.deepEqual((await preprocess(await readFile(red), { size: 64 })).shape, [1, 3, 64, 64]);
  });
});

// ---------------------------------------------------------------- labels

describe('labels', () => {
  test('ImageNet-1k: 1000 names in the standard order', async () => {
    const labels = await imagenetLabels();
    assert.equal(labels.length, 1000);
    assert.equal(labels[0], 'tench, Tinca tinca');
    assert.equal(labels[1], 'goldfish, Carassius auratus');
    assert.equal(labels[281], 'tabby, tabby cat');
    assert.equal(labels[999], 'toilet tissue, toilet paper, bathroom tissue');
    // ImageNet's two 'crane' classes (the bird and the machine) are both there.
    assert.equal(labels[134], 'crane');
    assert.equal(labels[517], 'crane');
    assert.equal(new Set(labels).size, 999);
    assert.deepEqual(await defaultLabels(1000), labels);
    assert.equal(await defaultLabels(10), undefined);
  });

  test('label files: JSON array, JSON object, HF config, one per line', async () => {
    assert.deepEqual(parseLabels('["cat", "dog"]'), ['cat', 'dog']);
    assert.deepEqual(parseLabels('{"1": "dog", "0": "cat", "2": "emu"}'), ['cat', 'dog', 'emu']);
    assert.deepEqual(parseLabels('{"id2label": {"0": "cat", "1": "dog"}, "num_labels": 2}'), ['cat', 'dog']);
    assert.deepEqual(parseLabels('\uFEFFcat\r\ndog, hound\r\nemu\n\n'), ['cat', 'dog, hound', 'emu']);
    const file = join(dir, 'labels.txt');
    await writeFile(file, 'a\nb\nc\n');
    assert.deepEqual(await loadLabels(file), ['a', 'b', 'c']);
  });

  test('bad label files are refused with the reason', async () => {
    assert.throws(() => parseLabels('{"0": "cat", "2": "emu"}', 'l.json'), /l\.json: key '2' is not a class index in 0\.\.1/);
    assert.throws(() => parseLabels('cat\n\ndog\n', 'l.txt'), /l\.txt: line 2 is empty/);
    assert.throws(() => parseLabels('[1, 2]'), /entry 0 is not a string/);
    assert.throws(() => parseLabels('{"0": '), /not valid JSON/);
    assert.throws(() => parseLabels('  \n'), /empty/);
    await assert.rejects(loadLabels(join(dir, 'nope.json')), /no such file/);
  });

  test('labelsFromHfConfig: id2label by numeric key; placeholders and absence give undefined', () => {
    const id2label = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [String(i), `c${i}`]));
    assert.deepEqual(labelsFromHfConfig({ id2label }), Array.from({ length: 12 }, (_, i) => `c${i}`));
    assert.deepEqual(labelsFromHfConfig(JSON.stringify({ id2label: { 1: 'b', 0: 'a' } })), ['a', 'b']);
    assert.equal(labelsFromHfConfig({ id2label: { 0: 'LABEL_0', 1: 'LABEL_1' } }), undefined);
    assert.equal(labelsFromHfConfig({ model_type: 'swiftformer' }), undefined);
  });

  test('defaultWeights: the bundled model folder, when it holds model.safetensors', async () => {
    const bundle = join(dir, 'bundle');
    await mkdir(bundle);
    assert.equal(await defaultWeights(bundle), undefined);
    await writeFile(join(bundle, 'model.safetensors'), '');
    assert.deepEqual(await defaultWeights(bundle), { weights: join(bundle, 'model.safetensors') });
    await writeFile(join(bundle, 'labels.json'), '[]');
    await writeFile(join(bundle, 'config.json'), '{}');
    assert.deepEqual(await defaultWeights(bundle), {
      weights: join(bundle, 'model.safetensors'), labels: join(bundle, 'labels.json'), config: join(bundle, 'config.json'),
    });
  });
});

// ---------------------------------------------------------------- CLI

interface Prediction { index: number; label: string; score: number }

describe('swiftformer classify', () => {
  let images: string[] = [];

  before(async () => {
    const a = join(dir, 'a.png');
    const b = join(dir, 'b.jpg');
    const c = join(dir, 'c.webp');
    await raw(pattern(300, 200), 300, 200, 3).png().toFile(a);
    await raw(pattern(180, 240, 3), 180, 240, 3).jpeg().toFile(b);
    await raw(pattern(224, 224, 2), 224, 224, 3).webp().toFile(c);
    images = [a, b, c];
  });

  test('--json: top-k per image, sorted, ImageNet labels; the scores are the softmax of the logits', async () => {
    const r = await cli('classify', ...images, '--weights', TINY, '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { file: string; predictions: Prediction[] }[];
    assert.deepEqual(out.map((o) => o.file), images);
    const imagenet = await imagenetLabels();
    const model = await loadModel({ weights: TINY, task: 'classification' });
    for (const [n, o] of out.entries()) {
      assert.equal(o.predictions.length, 5);
      for (const p of o.predictions) {
        assert.ok(Number.isInteger(p.index) && p.index >= 0 && p.index < 1000);
        assert.equal(p.label, imagenet[p.index]);
        assert.ok(p.score > 0 && p.score <= 1);
      }
      for (let i = 1; i < 5; i++) assert.ok(o.predictions[i - 1]!.score >= o.predictions[i]!.score);
      // The same image through the library: softmax(logits) at the printed indices.
      const logits = (await model.logits(await preprocess(images[n]!))).data;
      const max = Math.max(...logits);
      const sum = logits.reduce((s, v) => s + Math.exp(v - max), 0);
      const best = logits.indexOf(max);
      assert.equal(o.predictions[0]!.index, best);
      for (const p of o.predictions) assert.ok(Math.abs(p.score - Math.exp(logits[p.index]! - max) / sum) < 1e-6);
    }
    await model.release();
  });

  test("a model trained here: its recorded preprocessing (gray, pad, own normalization) and labels are used", async () => {
    const state = await readStateDict(await readFile(TINY));
    const preprocessing = { inputSize: [32, 32], normalization: { mean: [0.3, 0.3, 0.3], std: [0.4, 0.4, 0.4] }, pad: 2, cropPct: 1, grayscale: true };
    const labels = Array.from({ length: 1000 }, (_, i) => `thing ${i}`);
    const weights = join(dir, 'trained.safetensors');
    await writeFile(weights, writeSafetensors(state, { 'swiftformer.preprocessing': JSON.stringify(preprocessing), 'swiftformer.labels': JSON.stringify(labels) }));
    const image = join(dir, 'small.png');
    const rgb = pattern(28, 28, 5);
    await raw(rgb, 28, 28, 3).png().toFile(image);
    const r = await cli('classify', image, '--weights', weights, '--json', '--top', '3');
    assert.equal(r.code, 0, r.stderr);
    const [result] = JSON.parse(r.stdout) as { predictions: Prediction[] }[];
    // The input built by hand: PIL's luma, zero padding to 32x32, then (v/255 - 0.3) / 0.4.
    const x = new Float32Array(3 * 32 * 32).fill((0 - 0.3) / 0.4);
    for (let y = 0; y < 28; y++) {
      for (let col = 0; col < 28; col++) {
        const i = (y * 28 + col) * 3;
        const luma = (rgb[i]! * 19595 + rgb[i + 1]! * 38470 + rgb[i + 2]! * 7471 + 0x8000) >> 16;
        for (let ch = 0; ch < 3; ch++) x[ch * 1024 + (y + 2) * 32 + col + 2] = (luma / 255 - 0.3) / 0.4;
      }
    }
    const model = await loadModel({ weights: TINY, task: 'classification' });
    const logits = (await model.logits({ dtype: 'float32', shape: [1, 3, 32, 32], data: x })).data;
    await model.release();
    const max = Math.max(...logits);
    const sum = logits.reduce((acc, v) => acc + Math.exp(v - max), 0);
    assert.equal(result!.predictions[0]!.index, logits.indexOf(max));
    for (const p of result!.predictions) {
      assert.equal(p.label, `thing ${p.index}`);
      assert.ok(Math.abs(p.score - Math.exp(logits[p.index]! - max) / sum) < 1e-5);
    }
  });

  test('--top 1000 gives every class once; the probabilities sum to 1', async () => {
    const r = await cli('classify', images[0]!, '--weights', TINY, '--json', '--top', '1000');
    assert.equal(r.code, 0, r.stderr);
    const [o] = JSON.parse(r.stdout) as { predictions: Prediction[] }[];
    assert.deepEqual(o!.predictions.map((p) => p.index).sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
    assert.ok(Math.abs(o!.predictions.reduce((s, p) => s + p.score, 0) - 1) < 1e-6);
  });

  test('text output: the file, then one line per class with a percentage', async () => {
    const r = await cli('classify', images[1]!, '--weights', TINY, '--top', '3');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], images[1]);
    assert.equal(lines.length, 4);
    for (const line of lines.slice(1)) assert.match(line, /^\s+\d{1,3}\.\d\d%  .+ \(\d+\)$/);
  });

  test('a bad file in a batch is reported at the end; the others are classified; exit code 1', async () => {
    const bad = join(dir, 'bad.png');
    await writeFile(bad, 'not a png');
    const bomb = join(dir, 'huge.png');
    await writeFile(bomb, pngHeaderOnly(20000, 20000));
    const missing = join(dir, 'missing.png');
    const r = await cli('classify', images[0]!, bad, bomb, images[1]!, missing, '--weights', TINY, '--json', '--top', '2');
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as ({ file: string; predictions: Prediction[] } | { file: string; error: string })[];
    assert.deepEqual(out.map((o) => o.file), [images[0], bad, bomb, images[1], missing]);
    assert.deepEqual(out.map((o) => ('error' in o ? 'error' : o.predictions.length)), [2, 'error', 'error', 2, 'error']);
    const errors = r.stderr.trimEnd().split('\n');
    assert.equal(errors.length, 4, r.stderr);
    assert.match(errors[0]!, /bad\.png: not an image/);
    assert.match(errors[1]!, /huge\.png is 20000x20000 = 400000000 pixels, over the limit/);
    assert.match(errors[2]!, /missing\.png: no such file/);
    assert.match(errors[3]!, /3 of 5 images could not be classified/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    // Text mode: the good ones on stdout, the bad one on stderr.
    const t = await cli('classify', bad, images[2]!, '--weights', TINY, '--top', '1');
    assert.equal(t.code, 1);
    assert.equal(t.stdout.split('\n')[0], images[2]);
    assert.match(t.stderr, /bad\.png/);
  });

  test('custom labels: a text file with one name per line; a wrong count is an error', async () => {
    const names = join(dir, 'names.txt');
    await writeFile(names, Array.from({ length: 1000 }, (_, i) => `name-${i}`).join('\n'));
    const r = await cli('classify', images[0]!, '--weights', TINY, '--labels', names, '--json', '--top', '2');
    assert.equal(r.code, 0, r.stderr);
    for (const p of (JSON.parse(r.stdout) as { predictions: Prediction[] }[])[0]!.predictions) assert.equal(p.label, `name-${p.index}`);
    const few = join(dir, 'few.json');
    await writeFile(few, '["a", "b"]');
    assertCleanFailure(await cli('classify', images[0]!, '--weights', TINY, '--labels', few), /few\.json has 2 labels but the model has 1000 classes/);
  });

  test('errors: no weights, unknown model, weights that do not fit, bad options', async () => {
    if (!(await defaultWeights())) {
      const r = await cli('classify', images[0]!);
      assertCleanFailure(r, /needs weights.*--weights file\.pth \| https:\/\/\.\.\. \| hf:MBZUAI\/swiftformer-xs/);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1);
    }
    assertCleanFailure(await cli('classify', images[0]!, '--model', 'xxl', '--weights', TINY), /unknown model 'xxl'/);
    assertCleanFailure(await cli('classify', images[0]!, '--model', 'xs', '--weights', TINY), /do not fit the model/);
    assertCleanFailure(await cli('classify', images[0]!, '--weights', join(dir, 'nope.pth')), /nope\.pth: no such file/);
    assertCleanFailure(await cli('classify', images[0]!, '--weights', TINY, '--size', '100'), /multiples of 32/);
    assertCleanFailure(await cli('classify', '--weights', TINY), /no images given/);
  });
});

describe('swiftformer eval', () => {
  let root = '';
  /** Files by class folder, in the order torchvision's ImageFolder lists them. */
  const layout: Record<string, string[]> = {
    'C_upper': ['x.png', 'y.PNG'],
    'a_class': ['1.jpg', 'nested/2.png', 'nested/deeper/3.webp'],
    'b_class': ['k.tiff'],
  };

  before(async () => {
    root = join(dir, 'folder');
    let seed = 1;
    for (const [cls, files] of Object.entries(layout)) {
      for (const f of files) {
        const path = join(root, cls, f);
        await mkdir(join(path, '..'), { recursive: true });
        const s = raw(pattern(96 + seed * 8, 80, seed++), 96 + (seed - 1) * 8, 80, 3);
        const ext = f.split('.').pop()!.toLowerCase();
        await (ext === 'jpg' ? s.jpeg() : ext === 'webp' ? s.webp() : ext === 'tiff' ? s.tiff() : s.png()).toFile(path);
      }
    }
    await writeFile(join(root, 'a_class', 'notes.txt'), 'not an image, and not an image extension');
  });

  /** Expected accuracy, computed through the library: class index = sorted folder position ('C' < 'a' < 'b'). */
  async function expected(): Promise<{ top1: number; top5: number }> {
    const model = await loadModel({ weights: TINY, task: 'classification' });
    let top1 = 0;
    let top5 = 0;
    let n = 0;
    for (const [target, cls] of ['C_upper', 'a_class', 'b_class'].entries()) {
      for (const f of layout[cls]!) {
        const logits = [...(await model.logits(await preprocess(join(root, cls, f)))).data];
        const rank = logits.filter((v, i) => v > logits[target]! || (v === logits[target]! && i < target)).length;
        top1 += rank === 0 ? 1 : 0;
        top5 += rank < 5 ? 1 : 0;
        n++;
      }
    }
    await model.release();
    return { top1: top1 / n, top5: top5 / n };
  }

  test('--json: accuracy over every image of an ImageFolder, worst classes, a final progress line', async () => {
    const r = await cli('eval', root, '--weights', TINY, '--json', '--batch-size', '2');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.images, 6);
    assert.equal(out.classes, 3);
    assert.equal(out.failed, 0);
    const want = await expected();
    assert.equal(out.top1, want.top1);
    assert.equal(out.top5, want.top5);
    assert.equal(out.worst.length, 3);
    assert.deepEqual(out.worst.map((w: { name: string }) => w.name).sort(), ['C_upper', 'a_class', 'b_class']);
    for (const w of out.worst) {
      assert.equal(w.images, layout[w.name]!.length);
      assert.equal(w.index, ['C_upper', 'a_class', 'b_class'].indexOf(w.name));
      assert.equal(w.label, (await imagenetLabels())[w.index]);
    }
    for (let i = 1; i < out.worst.length; i++) assert.ok(out.worst[i - 1].top1 <= out.worst[i].top1);
    assert.match(r.stderr, /evaluated 6 images in [\d.]+ s/);
  });

  test('text output and --limit', async () => {
    const r = await cli('eval', root, '--weights', TINY, '--limit', '3');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^top-1 \d+\.\d\d%  top-5 \d+\.\d\d%  \(3 images, 3 classes\)\nworst classes by top-1:\n/);
    assert.match(r.stderr, /evaluated 3 images/);
  });

  test('unreadable images are left out and reported; bad folders are one clear error', async () => {
    const broken = join(dir, 'broken');
    await mkdir(join(broken, 'one'), { recursive: true });
    await mkdir(join(broken, 'two'), { recursive: true });
    await raw(pattern(64, 64), 64, 64, 3).png().toFile(join(broken, 'one', 'ok.png'));
    await writeFile(join(broken, 'two', 'bad.jpg'), 'garbage');
    const r = await cli('eval', broken, '--weights', TINY, '--json');
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout);
    assert.equal(out.images, 1);
    assert.equal(out.failed, 1);
    assert.match(out.errors[0].file, /bad\.jpg$/);
    assert.match(r.stderr, /1 of 2 images could not be read/);
    assertCleanFailure(await cli('eval', join(dir, 'no-such-folder'), '--weights', TINY), /no-such-folder does not exist/);
    const flat = join(dir, 'flat');
    await mkdir(flat);
    assertCleanFailure(await cli('eval', flat, '--weights', TINY), /flat has no class subfolders/);
  });
});

test('eval on the test split of an IDX directory (the MNIST format), with a model trained here', async () => {
  const idxDir = join(dir, 'idx');
  await mkdir(idxDir, { recursive: true });
  const n = 6;
  const pixels = Array.from({ length: n * 28 * 28 }, (_, i) => (i * 7) % 256);
  for (const split of ['train', 't10k']) {
    await writeFile(join(idxDir, `${split}-images-idx3-ubyte`), idxBytes(0x08, [n, 28, 28], pixels));
    await writeFile(join(idxDir, `${split}-labels-idx1-ubyte`), idxBytes(0x08, [n], [0, 1, 2, 0, 1, 2]));
  }
  const state = await readStateDict(await readFile(TINY));
  const weights = join(dir, 'idx-model.safetensors');
  const preprocessing = { inputSize: [32, 32], normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, pad: 2, cropPct: 1, grayscale: true };
  await writeFile(weights, writeSafetensors(state, { 'swiftformer.preprocessing': JSON.stringify(preprocessing) }));
  const r = await cli('eval', idxDir, '--weights', weights, '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.images, n);
  assert.equal(out.classes, 3);
  assert.match(r.stderr, /3 classes and the model 1000/);
});

describe('a size that contradicts what the model records, and weights that cannot score', () => {
  const bundled = new URL('../assets/default/model.safetensors', import.meta.url).pathname;
  const coat = new URL('../assets/examples/4-coat.png', import.meta.url).pathname;

  test('classify --size 224 and eval --size 64 on the bundled 32x32 model are refused, naming the recorded pipeline', async () => {
    assertCleanFailure(await cli('classify', coat, '--weights', bundled, '--size', '224'), /records its input pipeline \(32x32, gray, zero padding 2, mean 0\.286 \/ std 0\.353\).*leave out --size/);
    const idxDir = join(dir, 'idx-size');
    await mkdir(idxDir, { recursive: true });
    for (const split of ['train', 't10k']) {
      await writeFile(join(idxDir, `${split}-images-idx3-ubyte`), idxBytes(0x08, [2, 28, 28], new Uint8Array(2 * 28 * 28)));
      await writeFile(join(idxDir, `${split}-labels-idx1-ubyte`), idxBytes(0x08, [2], [0, 1]));
    }
    assertCleanFailure(await cli('eval', idxDir, '--weights', bundled, '--size', '64'), /records its input pipeline \(32x32/);
    // The recorded size itself is fine, and so is leaving it out.
    const r = await cli('classify', coat, '--weights', bundled, '--size', '32', '--json', '--top', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout)[0].predictions[0].label, 'Coat');
  });

  test('NaN weights: refused at load naming the tensor and the flag; with --allow-non-finite, classify and eval fail instead of scoring', async () => {
    const state = await readStateDict(await readFile(TINY));
    const bias = state.get('head.bias')!;
    state.set('head.bias', { ...bias, data: (bias.data as Float32Array).map((v, i) => (i === 7 ? NaN : v)) } as typeof bias);
    const weights = join(dir, 'nan.safetensors');
    await writeFile(weights, writeSafetensors(state));
    const image = join(dir, 'nan-input.png');
    await raw(pattern(64, 48), 64, 48, 3).png().toFile(image);
    assertCleanFailure(await cli('classify', image, '--weights', weights, '--json'), /non-finite values \(NaN or infinity\) in 1 tensor: head\.bias; --allow-non-finite loads them/);
    const r = await cli('classify', image, '--weights', weights, '--json', '--allow-non-finite');
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout, /"score": null/);
    assert.match(r.stderr, /logits for .*hold NaN/);
    const folder = join(dir, 'nan-folder');
    await mkdir(join(folder, 'a'), { recursive: true });
    await raw(pattern(64, 64), 64, 64, 3).png().toFile(join(folder, 'a', 'x.png'));
    const e = await cli('eval', folder, '--weights', weights, '--allow-non-finite');
    assert.notEqual(e.code, 0);
    assert.doesNotMatch(e.stdout, /100\.00%/);
    assert.match(e.stderr, /logits for .*x\.png hold NaN/);
  });
});

test('an IDX directory with only the t10k files: eval reads it, training names the missing train files', async () => {
  const idxDir = join(dir, 'idx-t10k');
  await mkdir(idxDir, { recursive: true });
  const n = 4;
  await writeFile(join(idxDir, 't10k-images-idx3-ubyte'), idxBytes(0x08, [n, 28, 28], new Uint8Array(n * 28 * 28)));
  await writeFile(join(idxDir, 't10k-labels-idx1-ubyte.gz'), gzipSync(idxBytes(0x08, [n], [0, 1, 0, 1])));
  const r = await cli('eval', idxDir, '--weights', TINY, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).images, n);
  await assert.rejects(openTrainingData(idxDir), /idx-t10k has no train split: expected train-images-idx3-ubyte and train-labels-idx1-ubyte \(optionally \.gz\), but both are missing/);
  assertCleanFailure(await cli('train', '--data', idxDir, '--epochs', '1'), /has no train split: .*both are missing/);
  await rm(join(idxDir, 't10k-labels-idx1-ubyte.gz'));
  assertCleanFailure(await cli('eval', idxDir, '--weights', TINY), /idx-t10k has no test split: expected .* but t10k-labels-idx1-ubyte is missing/);
});

test('ftp:// and other URL schemes are said to be unsupported, not missing files', async () => {
  const image = join(dir, 'scheme.png');
  await raw(pattern(40, 40), 40, 40, 3).png().toFile(image);
  assertCleanFailure(await cli('classify', image, '--weights', 'ftp://example.org/w.pth'), /unsupported URL scheme ftp: in ftp:\/\/example\.org\/w\.pth/);
  const r = await cli('classify', 'ftp://example.org/cat.png', '--weights', TINY, '--json');
  assert.equal(r.code, 1);
  assert.match(JSON.parse(r.stdout)[0].error, /unsupported URL scheme ftp: in ftp:\/\/example\.org\/cat\.png \(images are read from files\)/);
  assertCleanFailure(await cli('eval', 'ftp://example.org/val', '--weights', TINY), /unsupported URL scheme ftp:/);
  assertCleanFailure(await cli('train', '--data', 's3://bucket/train', '--epochs', '1'), /unsupported URL scheme s3:/);
  await assert.rejects(loadModel({ weights: 'ftp://example.org/w.pth' }), (err: unknown) => err instanceof SwiftFormerError && err.code === 'UNSUPPORTED' && /ftp:/.test(err.message));
});
