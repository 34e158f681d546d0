/**
 * BMP and binary PPM / PGM, which torchvision's ImageFolder lists and libvips does not read,
 * decoded as Pillow 9.4 opens them and `convert('RGB')` turns them into RGB:
 *
 * - BMP: Windows (40, 64, 108, 124-byte headers) and OS/2 (12-byte) files, bottom-up and
 *   top-down; 1, 2, 4 and 8-bit palettes (an index past the palette shows as grey (i, i, i), as
 *   Pillow's default palette does), 24-bit, 32-bit (the fourth byte is ignored) and 32-bit
 *   bitfields with byte-aligned masks. RLE-compressed and 16-bit files are refused by name.
 * - PNM: P6 (RGB) and P5 (gray), maxval 1 to 65535 (two bytes per sample above 255), comments
 *   in the header. Values are scaled to 255 with Python's round-half-even, except where Pillow
 *   keeps 16-bit gray (maxval above 255, mode I), whose RGB is the value clipped at 255.
 *
 * Each returns the size first, so the caller can refuse a decompression bomb before a single
 * pixel is allocated; every inconsistency (truncated data, impossible sizes) is a BAD_IMAGE error.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { RGBImage } from '../preprocess/resize.js';

/** A parsed header: the size, and the pixels on demand. */
export interface Bitmap {
  width: number;
  height: number;
  decode(): RGBImage;
}

function bad(name: string, why: string): SwiftFormerError {
  return new SwiftFormerError('BAD_IMAGE', `cannot decode ${name}: ${why}`);
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]);

/** 'bmp' for a file that starts 'BM', 'pnm' for 'P1'..'P6' and a whitespace, else undefined. */
export function bitmapFormat(bytes: Uint8Array): 'bmp' | 'pnm' | undefined {
  if (bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  if (bytes[0] === 0x50 && bytes[1]! >= 0x31 && bytes[1]! <= 0x36 && WHITESPACE.has(bytes[2]!)) return 'pnm';
  return undefined;
}

// ---------------------------------------------------------------- BMP

interface BmpLayout {
  width: number;
  height: number;
  topDown: boolean;
  bits: number;
  /** Byte order of the colour channels in a 24/32-bit pixel: offsets of R, G, B. */
  channels: [number, number, number];
  palette?: Uint8Array[];
  offset: number;
}

const BMP_HEADERS = new Set([12, 40, 64, 108, 124]);

/** Byte offsets of R, G, B in a little-endian 32-bit pixel from bitfield masks (each 0xff << 8k). */
function maskOffsets(masks: number[], name: string): [number, number, number] {
  if (masks.every((m) => m === 0)) return [2, 1, 0]; // Pillow reads all-zero masks as BGRA
  const offsets = masks.slice(0, 3).map((m) => [0, 1, 2, 3].find((k) => m >>> 0 === (0xff << (8 * k)) >>> 0));
  if (offsets.some((o) => o === undefined)) {
    throw bad(name, `BMP bitfields layout (masks ${masks.slice(0, 3).map((m) => `0x${(m >>> 0).toString(16)}`).join(', ')}) is not supported`);
  }
  return offsets as [number, number, number];
}

function bmpLayout(bytes: Uint8Array, name: string): BmpLayout {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (n: number) => {
    if (bytes.length < n) throw bad(name, `BMP header is truncated (${bytes.length} bytes)`);
  };
  need(18);
  let offset = view.getUint32(10, true);
  const header = view.getUint32(14, true);
  if (!BMP_HEADERS.has(header)) throw bad(name, `BMP header size ${header} is not supported`);
  need(14 + header);
  let width: number;
  let height: number;
  let bits: number;
  let compression = 0;
  let colors = 0;
  let masks: number[] | undefined;
  let entry = 4;
  if (header === 12) {
    width = view.getUint16(18, true);
    height = view.getUint16(20, true);
    bits = view.getUint16(24, true);
    entry = 3;
  } else {
    width = view.getInt32(18, true);
    height = view.getInt32(22, true);
    bits = view.getUint16(28, true);
    compression = view.getUint32(30, true);
    colors = view.getUint32(46, true);
    if (compression === 3) {
      // Masks inside a v2+ header, or (40-byte header) in the three words after it.
      const at = header >= 56 ? 54 : 14 + header;
      need(at + 12);
      masks = [0, 1, 2].map((i) => view.getUint32(at + 4 * i, true));
      masks.push(header >= 56 ? view.getUint32(66, true) : 0);
    }
  }
  const topDown = height < 0;
  height = Math.abs(height);
  if (width < 1 || height < 1) throw bad(name, `BMP header has no valid size (${width}x${height})`);
  if (compression === 1 || compression === 2) throw bad(name, 'RLE-compressed BMP is not supported (save it uncompressed or as PNG)');
  if (compression !== 0 && compression !== 3) throw bad(name, `BMP compression ${compression} is not supported`);
  if (bits === 16) throw bad(name, '16-bit BMP is not supported (save it as 24-bit or PNG)');
  let channels: [number, number, number] = [2, 1, 0];
  let palette: Uint8Array[] | undefined;
  if (bits <= 8) {
    if (![1, 2, 4, 8].includes(bits) || compression !== 0) throw bad(name, `BMP pixel depth ${bits} is not supported`);
    colors ||= 1 << bits;
    if (colors > 65536) throw bad(name, `BMP palette of ${colors} colours is not valid`);
    if (offset === 14 + header) offset += 4 * colors; // a pixel offset that leaves no room for the palette (as Pillow reads it)
    const start = 14 + header;
    need(start + entry * Math.min(colors, 256));
    palette = Array.from({ length: Math.min(colors, 256) }, (_, i) => bytes.subarray(start + entry * i, start + entry * i + 3));
  } else if (bits === 24 || bits === 32) {
    if (masks) {
      if (bits === 24 && !(masks[0] === 0xff0000 && masks[1] === 0xff00 && masks[2] === 0xff)) throw bad(name, 'BMP bitfields layout is not supported');
      channels = bits === 32 ? maskOffsets(masks, name) : channels;
    }
  } else {
    throw bad(name, `BMP pixel depth ${bits} is not supported`);
  }
  return { width, height, topDown, bits, channels, ...(palette ? { palette } : {}), offset };
}

export function readBmp(bytes: Uint8Array, name: string): Bitmap {
  const layout = bmpLayout(bytes, name);
  const { width, height } = layout;
  return {
    width,
    height,
    decode: () => {
      const stride = ((width * layout.bits + 31) >>> 3) & ~3;
      if (layout.offset + stride * height > bytes.length) {
        throw bad(name, `BMP pixel data is truncated (${bytes.length - Math.min(layout.offset, bytes.length)} of ${stride * height} bytes)`);
      }
      const out = new Uint8Array(width * height * 3);
      const step = layout.bits >>> 3;
      const [r, g, b] = layout.channels;
      for (let y = 0; y < height; y++) {
        const row = layout.offset + stride * (layout.topDown ? y : height - 1 - y);
        let q = y * width * 3;
        for (let x = 0; x < width; x++, q += 3) {
          if (layout.palette) {
            const bitPos = x * layout.bits;
            const index = (bytes[row + (bitPos >>> 3)]! >>> (8 - layout.bits - (bitPos & 7))) & ((1 << layout.bits) - 1);
            const c = layout.palette[index];
            // The palette entry is stored B, G, R; past the palette Pillow's default grey ramp shows.
            out[q] = c ? c[2]! : index;
            out[q + 1] = c ? c[1]! : index;
            out[q + 2] = c ? c[0]! : index;
          } else {
            const p = row + x * step;
            out[q] = bytes[p + r]!;
            out[q + 1] = bytes[p + g]!;
            out[q + 2] = bytes[p + b]!;
          }
        }
      }
      return { width, height, data: out };
    },
  };
}

// ---------------------------------------------------------------- PNM

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** The header tokens (magic excluded) and where the pixels start: one whitespace after maxval. */
function pnmHeader(bytes: Uint8Array, name: string): { values: number[]; data: number } {
  let at = 2;
  const values: number[] = [];
  while (values.length < 3) {
    let token = '';
    for (;;) {
      if (at >= bytes.length) throw bad(name, 'PNM header is truncated');
      const c = bytes[at++]!;
      if (WHITESPACE.has(c)) {
        if (token) break;
      } else if (c === 0x23) {
        while (at < bytes.length && bytes[at] !== 0x0a && bytes[at] !== 0x0d) at++; // a comment, to the end of its line
      } else {
        token += String.fromCharCode(c);
        if (token.length > 10 || c < 0x30 || c > 0x39) throw bad(name, `PNM header has an invalid number '${token}'`);
      }
    }
    values.push(Number(token));
  }
  return { values, data: at };
}

export function readPnm(bytes: Uint8Array, name: string): Bitmap {
  const magic = String.fromCharCode(bytes[0]!, bytes[1] ?? 0);
  if (magic === 'P1' || magic === 'P2' || magic === 'P3') throw bad(name, `plain (ASCII) ${magic} PNM is not supported (binary P5 and P6 are)`);
  if (magic !== 'P5' && magic !== 'P6') throw bad(name, `${magic} PNM is not supported (binary P5 and P6 are)`);
  const { values: [width, height, maxval], data } = pnmHeader(bytes, name) as { values: [number, number, number]; data: number };
  if (width < 1 || height < 1) throw bad(name, `PNM header has no valid size (${width}x${height})`);
  if (!(maxval > 0 && maxval < 65536)) throw bad(name, `PNM maxval ${maxval} is outside 1..65535`);
  const bands = magic === 'P6' ? 3 : 1;
  const wide = maxval > 255;
  return {
    width,
    height,
    decode: () => {
      const count = width * height * bands;
      const size = count * (wide ? 2 : 1);
      if (data + size > bytes.length) throw bad(name, `PNM pixel data is truncated (${bytes.length - data} of ${size} bytes)`);
      // Pillow's mode I (gray above maxval 255) keeps up to 65535, which RGB then clips at 255.
      const keep16 = bands === 1 && wide;
      const outMax = keep16 ? 65535 : 255;
      const scale = maxval !== outMax && !(keep16 && maxval === 65535);
      const sample = (i: number) => (wide ? (bytes[data + 2 * i]! << 8) | bytes[data + 2 * i + 1]! : bytes[data + i]!);
      const out = new Uint8Array(width * height * 3);
      for (let i = 0; i < count; i++) {
        let v = sample(i);
        if (scale) v = Math.min(outMax, roundHalfEven((v / maxval) * outMax));
        v = Math.min(255, v);
        if (bands === 3) out[i] = v;
        else out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v;
      }
      return { width, height, data: out };
    },
  };
}
