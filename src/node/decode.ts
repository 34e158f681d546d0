/**
 * Image files -> RGB8 pixels (Node, with sharp/libvips), decoded the way the official evaluation's
 * `PIL.Image.open(f).convert('RGB')` sees them: grayscale is replicated to three channels, an
 * alpha channel is dropped (not composited), embedded ICC profiles are ignored. The pixels are
 * bit-identical to Pillow 9.4's for JPEG (baseline, progressive, 4:2:0, 4:4:4, gray, CMYK), PNG
 * (RGB, RGBA, LA, palette, 16-bit), GIF, WebP, TIFF, BMP and binary PPM / PGM (test/data/decode).
 * Two cases follow Pillow's own arithmetic rather than libvips': CMYK goes to RGB by Pillow's
 * formula (R = (255 - K) - C(255 - K)/255, no ICC profile), and a 16-bit gray PNG, which Pillow
 * opens as 32-bit integers, is clipped at 255 (other 16-bit PNGs keep their high byte in both).
 * BMP and PNM, which libvips does not read, are decoded by ./bitmap.ts. One difference on purpose:
 * the EXIF orientation is applied (as ImageOps.exif_transpose does; PIL alone ignores it), so a
 * phone photo is classified upright.
 *
 * Files are sniffed by their first bytes, never by their names; anything else is a BAD_IMAGE
 * error naming the file, as are unreadable and corrupt files and images over the pixel limit
 * (decompression bombs).
 */
import { readFile } from 'node:fs/promises';
import type { Sharp, SharpOptions } from 'sharp';
import { SwiftFormerError } from '../core/errors.js';
import { MAX_IMAGE_DIMENSION, type RGBImage } from '../preprocess/resize.js';
import type { FloatTensor } from '../core/tensor.js';
import { inputFor, type InputOptions } from '../preprocess/transforms.js';
import { bitmapFormat, readBmp, readPnm } from './bitmap.js';
import { fsReason, refuseOtherSchemes } from './files.js';

/** PIL's `Image.MAX_IMAGE_PIXELS`: int(1024 * 1024 * 1024 // 4 // 3). */
export const MAX_IMAGE_PIXELS = 89_478_485;

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'bmp' | 'pnm';

export interface DecodeOptions {
  /**
   * Refuse images with more than this many pixels (width x height), before decoding them.
   * Default MAX_IMAGE_PIXELS (PIL's limit); 0 or Infinity: no limit.
   */
  maxPixels?: number;
  /** Apply the EXIF Orientation tag (default true). */
  autoOrient?: boolean;
  /** Shown in errors; default: the file path, or 'image' for bytes. */
  name?: string;
}

export type PreprocessOptions = DecodeOptions & InputOptions;

/** Decodes an image file (path) or its bytes to 8-bit RGB, width x height x 3, row-major. */
export async function decodeImage(input: string | Uint8Array, options: DecodeOptions = {}): Promise<RGBImage> {
  const name = options.name ?? (typeof input === 'string' ? input : 'image');
  const bytes = typeof input === 'string' ? await readImageFile(input, name) : input;
  const format = sniffFormat(bytes, name);
  const maxPixels = options.maxPixels ?? MAX_IMAGE_PIXELS;
  if (!(maxPixels >= 0)) throw new SwiftFormerError('BAD_ARGUMENT', `maxPixels must be >= 0, got ${maxPixels}`);
  const limit = maxPixels === 0 || maxPixels === Infinity ? 0 : Math.floor(maxPixels);
  if (format === 'bmp' || format === 'pnm') {
    const bitmap = (format === 'bmp' ? readBmp : readPnm)(bytes, name);
    checkSize(name, format, bitmap.width, bitmap.height, limit);
    return bitmap.decode();
  }
  const sharp = await loadSharp();
  const base: SharpOptions = { failOn: 'error', ignoreIcc: true, pages: 1, page: 0, limitInputPixels: false };

  // The header alone gives the size: refuse a bomb before a single pixel is decompressed.
  let meta: Awaited<ReturnType<Sharp['metadata']>>;
  try {
    meta = await sharp(bytes, base).metadata();
  } catch (err) {
    throw decodeError(name, format, err);
  }
  checkSize(name, format, meta.width, meta.pageHeight ?? meta.height, limit);

  const conversion = meta.space === 'cmyk' ? 'cmyk' : format === 'png' && bytes[24] === 16 && bytes[25] === 0 ? 'gray16' : undefined;
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    const pipeline = sharp(bytes, { ...base, limitInputPixels: limit === 0 ? false : limit, autoOrient: options.autoOrient ?? true });
    decoded = await (conversion === 'cmyk'
      ? pipeline.pipelineColourspace('cmyk').toColourspace('cmyk').raw()
      : conversion === 'gray16' ? pipeline.toColourspace('grey16').raw({ depth: 'ushort' }) : pipeline.raw({ depth: 'uchar' })
    ).toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw decodeError(name, format, err);
  }
  const { data, info } = decoded;
  if (conversion === 'cmyk') return cmykToRGB(data, info.width, info.height, info.channels, name);
  if (conversion === 'gray16') return gray16ToRGB(data, info.width, info.height, info.channels, name);
  return toRGB(data, info.width, info.height, info.channels, name);
}

/** A valid size, under the pixel limit (0: none) and the resampler's largest side, from the header alone. */
function checkSize(name: string, format: ImageFormat, width: number, height: number, limit: number): void {
  if (!(width >= 1 && height >= 1)) throw new SwiftFormerError('BAD_IMAGE', `cannot decode ${name}: ${FORMAT_NAMES[format]} header has no valid size`);
  if (limit > 0 && width * height > limit) {
    throw new SwiftFormerError(
      'BAD_IMAGE',
      `${name} is ${width}x${height} = ${width * height} pixels, over the limit of ${limit}: refused as a possible decompression bomb ` +
        '(raise the limit with maxPixels if the image is genuine)',
    );
  }
  if (width > MAX_IMAGE_DIMENSION || height > MAX_IMAGE_DIMENSION) {
    throw new SwiftFormerError('BAD_IMAGE', `${name} is ${width}x${height}: sides over ${MAX_IMAGE_DIMENSION} pixels are not supported`);
  }
}

/**
 * The official evaluation input for one image file or its bytes: decode, then `evalTransform`
 * (resize the shorter side to size/0.875 with PIL's bicubic, center crop, ImageNet normalization).
 * Returns a float32 tensor [1, 3, size, size]; with `preprocessing`, a trained model's own
 * recorded transform (`modelTransform`) instead.
 */
export async function preprocess(input: string | Uint8Array, options: PreprocessOptions = {}): Promise<FloatTensor> {
  const image = await decodeImage(input, options);
  return inputFor(image, options);
}

/** The format of an image from its first bytes, or undefined. */
export function imageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const at = (offset: number, ascii: string) => [...ascii].every((c, i) => bytes[offset + i] === c.charCodeAt(0));
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes[0] === 0x89 && at(1, 'PNG\r\n\x1a\n')) return 'png';
  if (at(0, 'RIFF') && at(8, 'WEBP')) return 'webp';
  if (at(0, 'GIF87a') || at(0, 'GIF89a')) return 'gif';
  if (at(0, 'II*\0') || at(0, 'MM\0*')) return 'tiff';
  return bitmapFormat(bytes);
}

const FORMAT_NAMES: Record<ImageFormat, string> = { jpeg: 'JPEG', png: 'PNG', webp: 'WebP', gif: 'GIF', tiff: 'TIFF', bmp: 'BMP', pnm: 'PNM' };

/** Formats we recognise but do not decode, for a more helpful message than "not an image". */
function otherFormat(bytes: Uint8Array): string | undefined {
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, 64));
  if (/^\s*(<\?xml[^>]*>\s*)?<svg/i.test(head)) return 'SVG';
  if (head.slice(4, 12) === 'ftypavif' || head.slice(4, 12) === 'ftypheic' || head.slice(4, 12) === 'ftypmif1') return 'HEIF/AVIF';
  if (head.startsWith('%PDF')) return 'PDF';
  return undefined;
}

function sniffFormat(bytes: Uint8Array, name: string): ImageFormat {
  if (bytes.length === 0) throw new SwiftFormerError('BAD_IMAGE', `cannot decode ${name}: the file is empty`);
  const format = imageFormat(bytes);
  if (format) return format;
  const other = otherFormat(bytes);
  throw new SwiftFormerError(
    'BAD_IMAGE',
    `cannot decode ${name}: ${other ? `${other} is not a supported format` : 'not an image in a supported format'} (supported: JPEG, PNG, WebP, GIF, TIFF, BMP, PPM/PGM)`,
  );
}

async function readImageFile(path: string, name: string): Promise<Uint8Array> {
  refuseOtherSchemes(path, 'images are read from files', 'BAD_IMAGE');
  try {
    const buf = await readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new SwiftFormerError('BAD_IMAGE', `cannot read image ${name}: ${fsReason(err)}`, { cause: err });
  }
}

/** libvips' messages, first line only, with a plainer word for the common cases. */
function decodeError(name: string, format: ImageFormat, err: unknown): SwiftFormerError {
  if (err instanceof SwiftFormerError) return err;
  const message = ((err as Error)?.message ?? String(err)).split('\n')[0]!.trim();
  const truncated = /premature end|truncated|unexpected end|not enough data|read error|out of data/i.test(message);
  const why = truncated ? `truncated or corrupt ${FORMAT_NAMES[format]} data (${message})` : `corrupt or unreadable ${FORMAT_NAMES[format]} data (${message})`;
  return new SwiftFormerError('BAD_IMAGE', `cannot decode ${name}: ${why}`, { cause: err });
}

/** Raw 1-4 channel pixels to RGB: gray is replicated, alpha dropped, as PIL's convert('RGB'). */
function toRGB(data: Uint8Array, width: number, height: number, channels: number, name: string): RGBImage {
  const pixels = width * height;
  if (data.length !== pixels * channels || channels < 1 || channels > 4) {
    throw new SwiftFormerError('BAD_IMAGE', `cannot decode ${name}: unexpected decoder output (${width}x${height}, ${channels} channels, ${data.length} bytes)`);
  }
  if (channels === 3) return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  const out = new Uint8Array(pixels * 3);
  if (channels === 4) {
    for (let i = 0, p = 0, q = 0; i < pixels; i++, p += 4, q += 3) {
      out[q] = data[p]!;
      out[q + 1] = data[p + 1]!;
      out[q + 2] = data[p + 2]!;
    }
  } else {
    for (let i = 0, p = 0, q = 0; i < pixels; i++, p += channels, q += 3) {
      const v = data[p]!;
      out[q] = v;
      out[q + 1] = v;
      out[q + 2] = v;
    }
  }
  return { width, height, data: out };
}

/** Pillow's CMYK to RGB (Convert.c): each channel (255 - K) - C * (255 - K) / 255, rounded as its MULDIV255. */
function cmykToRGB(data: Uint8Array, width: number, height: number, channels: number, name: string): RGBImage {
  if (channels < 4 || data.length !== width * height * channels) {
    throw new SwiftFormerError('BAD_IMAGE', `cannot decode ${name}: unexpected CMYK decoder output (${width}x${height}, ${channels} channels)`);
  }
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, p = 0, q = 0; i < width * height; i++, p += channels, q += 3) {
    const nk = 255 - data[p + 3]!;
    for (let c = 0; c < 3; c++) {
      const t = data[p + c]! * nk + 128;
      out[q + c] = Math.max(0, nk - (((t >> 8) + t) >> 8));
    }
  }
  return { width, height, data: out };
}

/** A 16-bit gray PNG as Pillow's mode I gives it in RGB: each value clipped at 255 (first channel; a tRNS alpha is dropped). */
function gray16ToRGB(data: Buffer, width: number, height: number, channels: number, name: string): RGBImage {
  const pixels = width * height;
  if (data.length !== pixels * channels * 2) {
    throw new SwiftFormerError('BAD_IMAGE', `cannot decode ${name}: unexpected 16-bit decoder output (${width}x${height}, ${channels} channels)`);
  }
  const values = new Uint16Array(Uint8Array.from(data).buffer); // sharp writes native byte order
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = Math.min(255, values[i * channels]!);
  return { width, height, data: out };
}

type SharpModule = typeof import('sharp').default;
let sharpModule: Promise<SharpModule> | undefined;

/** sharp (native libvips) is loaded on the first decode, so importing the library stays cheap. */
function loadSharp(): Promise<SharpModule> {
  sharpModule ??= import('sharp').then(
    (m) => {
      const sharp = m.default;
      // One-off decodes gain nothing from libvips' operation cache; it only holds memory.
      sharp.cache(false);
      return sharp;
    },
    (err: unknown) => {
      sharpModule = undefined;
      throw new SwiftFormerError('UNSUPPORTED', `image decoding needs the 'sharp' package, which failed to load: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    },
  );
  return sharpModule;
}
