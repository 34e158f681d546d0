/**
 * PNG label maps: class indices in, class indices out. sharp expands palette PNGs to RGB, which
 * loses the indices that ADE20K-style annotations and our masks store, so label maps go through
 * this small codec instead.
 *
 * Reads grayscale (1/2/4/8 bits as their raw values, 16 bits as a Uint16Array) and palette PNGs
 * (1/2/4/8 bits, the indices and the palette), interlaced or not; other color types are an error
 * that says so. Writes 8-bit palette PNGs (mode P, indices exact) and 8- or 16-bit grayscale PNGs.
 * Every chunk's CRC is checked, sizes are bounded (PIL's pixel limit by default) and the image data
 * may not inflate past the size its header implies (a decompression-bomb guard).
 */
import { readFile } from 'node:fs/promises';
import { deflateSync, inflateSync } from 'node:zlib';
import { SwiftFormerError } from '../core/errors.js';
import { crc32 } from '../weights/zip.js';
import { MAX_IMAGE_PIXELS } from './decode.js';
import { writeFileAtomic } from './files.js';

export interface LabelPng {
  width: number;
  height: number;
  /** Row-major raw sample values: palette indices or gray levels (not rescaled). */
  data: Uint8Array | Uint16Array;
  colorType: 'gray' | 'palette';
  bitDepth: 1 | 2 | 4 | 8 | 16;
  /** RGB triples of a palette PNG. */
  palette?: Uint8Array;
}

export interface ReadPngOptions {
  /** Refuse images with more pixels than this (default PIL's MAX_IMAGE_PIXELS). */
  maxPixels?: number;
  /** Shown in errors (default: the path, or 'PNG'). */
  name?: string;
}

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

const COLOR_TYPES: Record<number, string> = { 0: 'grayscale', 2: 'RGB', 3: 'palette', 4: 'grayscale with alpha', 6: 'RGBA' };

/** The Adam7 passes: x start, y start, x step, y step. */
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const;

/** Decodes a grayscale or palette PNG's samples. */
export function decodeLabelPng(bytes: Uint8Array, options: ReadPngOptions = {}): LabelPng {
  const name = options.name ?? 'PNG';
  const fail = (why: string): never => {
    throw new SwiftFormerError('BAD_IMAGE', `${name}: ${why}`);
  };
  if (bytes.length < 8 || !SIGNATURE.every((b, i) => bytes[i] === b)) fail('not a PNG file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let header: { width: number; height: number; bitDepth: number; colorType: number; interlace: number } | undefined;
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let ended = false;
  while (!ended) {
    if (pos + 12 > bytes.length) fail('truncated (no IEND chunk)');
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (length > 0x7fffffff || pos + 12 + length > bytes.length) fail(`truncated in its ${type} chunk`);
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (crc32(bytes.subarray(pos + 4, pos + 8 + length)) !== view.getUint32(pos + 8 + length)) fail(`CRC mismatch in its ${type} chunk (corrupt file)`);
    pos += 12 + length;
    if (!header && type !== 'IHDR') fail('the first chunk is not IHDR');
    switch (type) {
      case 'IHDR': {
        if (header) fail('two IHDR chunks');
        if (length !== 13) fail('IHDR chunk has the wrong length');
        const d = new DataView(data.buffer, data.byteOffset, 13);
        header = { width: d.getUint32(0), height: d.getUint32(4), bitDepth: data[8]!, colorType: data[9]!, interlace: data[12]! };
        if (data[10] !== 0 || data[11] !== 0) fail('unknown compression or filter method');
        break;
      }
      case 'PLTE':
        if (length % 3 !== 0 || length === 0 || length > 768) fail(`PLTE chunk of ${length} bytes is not 1-256 RGB entries`);
        palette = data.slice();
        break;
      case 'IDAT':
        idat.push(data);
        break;
      case 'IEND':
        ended = true;
        break;
      default:
        // Ancillary chunks (tRNS, gAMA, text...) say nothing about the indices; unknown critical ones do.
        if ((type.charCodeAt(0) & 0x20) === 0) fail(`unknown critical chunk ${type}`);
    }
  }
  const { width, height, bitDepth, colorType, interlace } = header!;
  if (colorType !== 0 && colorType !== 3) {
    fail(`is ${COLOR_TYPES[colorType] ?? `color type ${colorType}`}; a label map must be a grayscale or palette PNG (class index = pixel value)`);
  }
  const depths = colorType === 0 ? [1, 2, 4, 8, 16] : [1, 2, 4, 8];
  if (!depths.includes(bitDepth)) fail(`bit depth ${bitDepth} is not valid for a ${COLOR_TYPES[colorType]} PNG`);
  if (interlace > 1) fail(`unknown interlace method ${interlace}`);
  if (colorType === 3 && !palette) fail('palette PNG without a PLTE chunk');
  const maxPixels = options.maxPixels ?? MAX_IMAGE_PIXELS;
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) fail(`invalid size ${width}x${height}`);
  if (width * height > maxPixels) fail(`${width}x${height} has more than ${maxPixels} pixels (a decompression bomb?)`);

  const passes = interlace ? ADAM7.map(([xs, ys, dx, dy]) => ({ xs, ys, dx, dy, w: Math.ceil((width - xs) / dx), h: Math.ceil((height - ys) / dy) })) : [{ xs: 0, ys: 0, dx: 1, dy: 1, w: width, h: height }];
  const rowBytes = (w: number) => Math.ceil((w * bitDepth) / 8);
  const expected = passes.reduce((n, p) => n + (p.w && p.h ? p.h * (1 + rowBytes(p.w)) : 0), 0);
  let raw: Uint8Array;
  try {
    const compressed = idat.length === 1 ? idat[0]! : Buffer.concat(idat);
    raw = inflateSync(compressed, { maxOutputLength: Math.max(1, expected) });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(code === 'ERR_BUFFER_TOO_LARGE' ? `image data inflates past the ${expected} bytes its header implies` : `image data is corrupt (${(err as Error).message})`);
  }
  if (raw!.length !== expected) fail(`image data has ${raw!.length} bytes, its header implies ${expected} (truncated?)`);

  const out = bitDepth === 16 ? new Uint16Array(width * height) : new Uint8Array(width * height);
  const bpp = Math.max(1, bitDepth / 8); // bytes per complete pixel, for the filters
  let offset = 0;
  for (const p of passes) {
    if (!p.w || !p.h) continue;
    const stride = rowBytes(p.w);
    let prev: Uint8Array = new Uint8Array(stride);
    for (let y = 0; y < p.h; y++) {
      const filter = raw![offset]!;
      const line = raw!.subarray(offset + 1, offset + 1 + stride);
      offset += 1 + stride;
      unfilter(filter, line, prev, bpp, () => fail(`unknown filter type ${filter} in row ${y}`));
      unpackRow(line, p.w, bitDepth, out, (p.ys + y * p.dy) * width + p.xs, p.dx);
      prev = line;
    }
  }
  return { width, height, data: out, colorType: colorType === 0 ? 'gray' : 'palette', bitDepth: bitDepth as LabelPng['bitDepth'], ...(palette ? { palette } : {}) };
}

/** Reverses one scanline's filter in place (PNG filter method 0). */
function unfilter(filter: number, line: Uint8Array, prev: Uint8Array, bpp: number, bad: () => void): void {
  const n = line.length;
  switch (filter) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) line[i] = (line[i]! + line[i - bpp]!) & 0xff;
      return;
    case 2:
      for (let i = 0; i < n; i++) line[i] = (line[i]! + prev[i]!) & 0xff;
      return;
    case 3:
      for (let i = 0; i < n; i++) line[i] = (line[i]! + (((i >= bpp ? line[i - bpp]! : 0) + prev[i]!) >> 1)) & 0xff;
      return;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? line[i - bpp]! : 0;
        const b = prev[i]!;
        const c = i >= bpp ? prev[i - bpp]! : 0;
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        line[i] = (line[i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
      }
      return;
    default:
      bad();
  }
}

/** Samples of one scanline (MSB first below 8 bits, big-endian at 16) into the image. */
function unpackRow(line: Uint8Array, w: number, bitDepth: number, out: Uint8Array | Uint16Array, start: number, step: number): void {
  if (bitDepth === 8) {
    for (let x = 0; x < w; x++) out[start + x * step] = line[x]!;
  } else if (bitDepth === 16) {
    for (let x = 0; x < w; x++) out[start + x * step] = (line[2 * x]! << 8) | line[2 * x + 1]!;
  } else {
    const perByte = 8 / bitDepth;
    const mask = (1 << bitDepth) - 1;
    for (let x = 0; x < w; x++) {
      const shift = 8 - bitDepth * ((x % perByte) + 1);
      out[start + x * step] = (line[Math.floor(x / perByte)]! >> shift) & mask;
    }
  }
}

/** Reads a label PNG file. */
export async function readLabelPng(path: string, options: ReadPngOptions = {}): Promise<LabelPng> {
  const name = options.name ?? path;
  let bytes: Uint8Array;
  try {
    const buf = await readFile(path);
    bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SwiftFormerError('IO', `cannot read ${name}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
  return decodeLabelPng(bytes, { ...options, name });
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function checkSize(width: number, height: number, length: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new SwiftFormerError('BAD_ARGUMENT', `PNG size ${width}x${height} must be positive integers`);
  }
  if (length !== width * height) throw new SwiftFormerError('BAD_SHAPE', `${length} values for a ${width}x${height} PNG (needs ${width * height})`);
}

/** Scanlines with filter type 0; label maps are runs of equal values, which deflate compresses well unfiltered. */
function encode(width: number, height: number, bitDepth: number, colorType: number, rows: (y: number, line: Uint8Array) => void, extra: Uint8Array[] = [], channels = 1): Uint8Array {
  const stride = (width * channels * bitDepth) / 8;
  const raw = new Uint8Array(height * (1 + stride));
  for (let y = 0; y < height; y++) rows(y, raw.subarray(y * (1 + stride) + 1, (y + 1) * (1 + stride)));
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  const file = Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), ...extra, chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
  return new Uint8Array(file.buffer, file.byteOffset, file.byteLength); // a plain Uint8Array: slice() copies
}

/**
 * An 8-bit palette PNG (Pillow's mode P) holding `indices` exactly. `palette` is RGB triples (flat
 * or as [r, g, b] entries); it is extended with black to cover the largest index used.
 */
export function encodePalettePng(indices: Uint8Array, width: number, height: number, palette: Uint8Array | readonly (readonly [number, number, number])[]): Uint8Array {
  checkSize(width, height, indices.length);
  const flat = palette instanceof Uint8Array ? palette : Uint8Array.from(palette.flat());
  if (flat.length % 3 !== 0 || flat.length > 768) throw new SwiftFormerError('BAD_ARGUMENT', `a palette is at most 256 RGB triples, got ${flat.length} values`);
  let max = 0;
  for (const i of indices) if (i > max) max = i;
  const plte = new Uint8Array(3 * Math.max(max + 1, flat.length / 3, 1));
  plte.set(flat);
  return encode(width, height, 8, 3, (y, line) => line.set(indices.subarray(y * width, (y + 1) * width)), [chunk('PLTE', plte)]);
}

/** An 8-bit (Uint8Array) or 16-bit (Uint16Array) grayscale PNG holding `values` exactly. */
export function encodeGrayPng(values: Uint8Array | Uint16Array, width: number, height: number): Uint8Array {
  checkSize(width, height, values.length);
  if (values instanceof Uint8Array) return encode(width, height, 8, 0, (y, line) => line.set(values.subarray(y * width, (y + 1) * width)));
  return encode(width, height, 16, 0, (y, line) => {
    for (let x = 0; x < width; x++) {
      const v = values[y * width + x]!;
      line[2 * x] = v >> 8;
      line[2 * x + 1] = v & 0xff;
    }
  });
}

/** An 8-bit RGB PNG of interleaved pixels (pictures such as segmentation overlays). */
export function encodeRgbPng(data: Uint8Array, width: number, height: number): Uint8Array {
  checkSize(width, height, data.length / 3);
  return encode(width, height, 8, 2, (y, line) => line.set(data.subarray(y * width * 3, (y + 1) * width * 3)), [], 3);
}

/**
 * A class mask as a PNG whose pixel values are the class indices: an 8-bit palette PNG with the
 * model's colors (Uint8Array masks), else 16-bit grayscale. What `segment` writes and the
 * server's /v1 segment answers.
 */
export function maskPng(result: { mask: Uint8Array | Uint16Array; width: number; height: number; palette: readonly (readonly [number, number, number])[] }): Uint8Array {
  if (result.mask instanceof Uint8Array) return encodePalettePng(result.mask, result.width, result.height, result.palette);
  return encodeGrayPng(result.mask, result.width, result.height);
}

/** Writes a palette PNG atomically. */
export async function writePalettePng(path: string, indices: Uint8Array, width: number, height: number, palette: Parameters<typeof encodePalettePng>[3]): Promise<void> {
  await writeFileAtomic(path, encodePalettePng(indices, width, height, palette));
}

/** Writes a grayscale PNG atomically. */
export async function writeGrayPng(path: string, values: Uint8Array | Uint16Array, width: number, height: number): Promise<void> {
  await writeFileAtomic(path, encodeGrayPng(values, width, height));
}
