import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { decodeLabelPng, encodeGrayPng, encodePalettePng, readLabelPng, writePalettePng } from '../src/node/png.js';
import { SwiftFormerError } from '../src/core/errors.js';

const DIR = new URL('./data/png/', import.meta.url);
const expected = JSON.parse(readFileSync(new URL('expected.json', DIR), 'utf8')).files as Record<string, { mode: string; width: number; height: number; dtype: string; values: string; palette?: number[] }>;

function valuesOf(e: { dtype: string; values: string }): number[] {
  const b = Buffer.from(e.values, 'base64');
  if (e.dtype === 'uint16') return Array.from({ length: b.length / 2 }, (_, i) => b.readUInt16LE(2 * i));
  return [...b];
}

describe('PNG label maps made by Pillow (scripts/make-png-refs.py)', () => {
  for (const [file, e] of Object.entries(expected)) {
    if (file === 'rgb.png') continue;
    test(`${file} (${e.mode}) reads as Pillow's raw values`, async () => {
      const png = await readLabelPng(new URL(file, DIR).pathname);
      assert.equal(png.width, e.width);
      assert.equal(png.height, e.height);
      assert.equal(png.data instanceof Uint16Array, e.dtype === 'uint16');
      assert.deepEqual([...png.data], valuesOf(e));
      assert.equal(png.colorType, e.mode === 'P' ? 'palette' : 'gray');
      if (e.palette) assert.deepEqual([...png.palette!.subarray(0, e.palette.length)], e.palette);
    });
  }

  test('an RGB PNG is refused with the reason', async () => {
    await assert.rejects(readLabelPng(new URL('rgb.png', DIR).pathname), (err: unknown) => err instanceof SwiftFormerError && /rgb\.png: is RGB; a label map must be a grayscale or palette PNG/.test(err.message));
  });
});

describe('PNG against sharp (libpng)', () => {
  const W = 29;
  const H = 17;
  const indices = Uint8Array.from({ length: W * H }, (_, i) => ((i % W) * 7 + Math.floor(i / W) * 3) % 150);

  test('interlaced (Adam7) grayscale written by libpng', async () => {
    const gray = Uint8Array.from({ length: W * H }, (_, i) => (i * 37) % 256);
    const bytes = new Uint8Array(await sharp(gray, { raw: { width: W, height: H, channels: 1 } }).toColourspace('b-w').png({ progressive: true }).toBuffer());
    assert.equal(bytes[25], 0, 'libpng wrote a grayscale file');
    assert.equal(bytes[28], 1, 'libpng wrote an interlaced file');
    const png = decodeLabelPng(bytes);
    assert.deepEqual([...png.data], [...gray]);
  });

  test('our palette PNG: indices exact, colors as libpng expands them', async () => {
    const palette = Array.from({ length: 150 }, (_, i) => [i, (i * 5) % 256, 255 - i] as [number, number, number]);
    const bytes = encodePalettePng(indices, W, H, palette);
    const back = decodeLabelPng(bytes);
    assert.equal(back.colorType, 'palette');
    assert.equal(back.bitDepth, 8);
    assert.deepEqual([...back.data], [...indices]);
    const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 3);
    for (let i = 0; i < indices.length; i++) assert.deepEqual([data[3 * i], data[3 * i + 1], data[3 * i + 2]], palette[indices[i]!]);
  });

  test('our grayscale PNGs, 8 and 16 bits', async () => {
    const bytes = encodeGrayPng(indices, W, H);
    const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    const c = info.channels; // libvips may hand gray back as RGB
    assert.deepEqual(Array.from(indices, (_, i) => data[c * i]), [...indices]);
    const wide = Uint16Array.from(indices, (v) => v * 300);
    const back = decodeLabelPng(encodeGrayPng(wide, W, H));
    assert.equal(back.bitDepth, 16);
    assert.deepEqual([...back.data], [...wide]);
    const meta = await sharp(encodeGrayPng(wide, W, H)).metadata();
    assert.equal(meta.depth, 'ushort');
  });

  test('the palette is extended to cover every index; files are written atomically', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-png-'));
    const path = join(dir, 'mask.png');
    await writePalettePng(path, Uint8Array.of(0, 1, 255, 2), 2, 2, [[10, 20, 30]]);
    const back = await readLabelPng(path);
    assert.deepEqual([...back.data], [0, 1, 255, 2]);
    assert.equal(back.palette!.length, 256 * 3);
    assert.deepEqual([...back.palette!.subarray(0, 6)], [10, 20, 30, 0, 0, 0]);
    assert.deepEqual(await readdir(dir), ['mask.png']);
  });
});

/** A PNG from raw chunks, for the files no encoder would write. */
function png(chunks: [string, Uint8Array][]): Uint8Array {
  const parts: Buffer[] = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])];
  for (const [type, data] of chunks) {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    parts.push(head, Buffer.from(data), crc);
  }
  return new Uint8Array(Buffer.concat(parts));
}

function ihdr(width: number, height: number, bitDepth = 8, colorType = 0): Uint8Array {
  const b = Buffer.alloc(13);
  b.writeUInt32BE(width, 0);
  b.writeUInt32BE(height, 4);
  b[8] = bitDepth;
  b[9] = colorType;
  return b;
}

describe('broken and hostile PNGs are clear errors', () => {
  const rejects = (bytes: Uint8Array, pattern: RegExp) =>
    assert.throws(() => decodeLabelPng(bytes, { name: 'x.png' }), (e: unknown) => e instanceof SwiftFormerError && e.code === 'BAD_IMAGE' && pattern.test(e.message));
  const good = encodeGrayPng(Uint8Array.of(1, 2, 3, 4), 2, 2);

  test('corruption and truncation', () => {
    const flipped = good.slice();
    flipped[42]! ^= 0xff; // IDAT's data (signature 8 + IHDR 25 + length 4 + type 4)
    rejects(flipped, /x\.png: CRC mismatch in its IDAT chunk/);
    rejects(good.subarray(0, 40), /truncated/);
    rejects(Uint8Array.of(1, 2, 3), /not a PNG file/);
    rejects(png([['IHDR', ihdr(2, 2)], ['IDAT', deflateSync(Buffer.alloc(3))], ['IEND', new Uint8Array(0)]]), /image data has 3 bytes, its header implies 6/);
    rejects(png([['IHDR', ihdr(2, 2)], ['IDAT', Uint8Array.of(1, 2, 3)], ['IEND', new Uint8Array(0)]]), /image data is corrupt/);
    rejects(png([['IHDR', ihdr(1, 1)], ['IDAT', deflateSync(Buffer.from([7, 0]))], ['IEND', new Uint8Array(0)]]), /unknown filter type 7/);
    rejects(png([['IHDR', ihdr(1, 1, 8, 3)], ['IDAT', deflateSync(Buffer.alloc(2))], ['IEND', new Uint8Array(0)]]), /palette PNG without a PLTE chunk/);
    rejects(png([['IHDR', ihdr(1, 1, 16, 3)], ['IEND', new Uint8Array(0)]]), /bit depth 16 is not valid for a palette PNG/);
  });

  test('decompression bombs: by the header, and by data that inflates past it', () => {
    rejects(png([['IHDR', ihdr(100_000, 100_000)], ['IEND', new Uint8Array(0)]]), /100000x100000 has more than 89478485 pixels/);
    // A 10x10 header (110 bytes of scanlines) with 50 MB of zeros behind it.
    rejects(png([['IHDR', ihdr(10, 10)], ['IDAT', deflateSync(Buffer.alloc(50 << 20))], ['IEND', new Uint8Array(0)]]), /inflates past the 110 bytes its header implies/);
    assert.throws(() => decodeLabelPng(good, { maxPixels: 3 }), /more than 3 pixels/);
  });

  test('a missing file', async () => {
    await assert.rejects(readLabelPng('/nonexistent/label.png'), /cannot read \/nonexistent\/label\.png: no such file/);
  });
});
