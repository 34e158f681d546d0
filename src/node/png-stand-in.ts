/**
 * TEMPORARY stand-in for src/node/png.ts (the metrics work's PNG codec, not on main yet): the
 * same encodePalettePng / encodeGrayPng signatures, plus encodeRgbPng, so `swiftformer segment`
 * can write its masks and overlays now. Deleted when png.ts lands (encodeRgbPng moves there).
 */
import { deflateSync } from 'node:zlib';
import { SwiftFormerError } from '../core/errors.js';
import { crc32 } from '../weights/zip.js';

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function encode(width: number, height: number, bitDepth: number, colorType: number, bytesPerRow: number, fill: (y: number, line: Uint8Array) => void, extra: Uint8Array[] = []): Uint8Array {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) throw new SwiftFormerError('BAD_ARGUMENT', `bad PNG size ${width}x${height}`);
  const raw = new Uint8Array((bytesPerRow + 1) * height);
  for (let y = 0; y < height; y++) fill(y, raw.subarray(y * (bytesPerRow + 1) + 1, (y + 1) * (bytesPerRow + 1)));
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([bitDepth, colorType, 0, 0, 0], 8);
  const parts = [Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a), chunk('IHDR', header), ...extra, chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function encodePalettePng(indices: Uint8Array, width: number, height: number, palette: Uint8Array | readonly (readonly [number, number, number])[]): Uint8Array {
  const flat = palette instanceof Uint8Array ? palette : Uint8Array.from(palette.flat());
  if (flat.length % 3 !== 0 || flat.length > 768) throw new SwiftFormerError('BAD_ARGUMENT', `a palette is at most 256 RGB triples, got ${flat.length} values`);
  let max = 0;
  for (const i of indices) if (i > max) max = i;
  const plte = new Uint8Array(3 * Math.max(max + 1, flat.length / 3, 1));
  plte.set(flat);
  return encode(width, height, 8, 3, width, (y, line) => line.set(indices.subarray(y * width, (y + 1) * width)), [chunk('PLTE', plte)]);
}

export function encodeGrayPng(values: Uint8Array | Uint16Array, width: number, height: number): Uint8Array {
  if (values instanceof Uint8Array) return encode(width, height, 8, 0, width, (y, line) => line.set(values.subarray(y * width, (y + 1) * width)));
  return encode(width, height, 16, 0, 2 * width, (y, line) => {
    for (let x = 0; x < width; x++) {
      const v = values[y * width + x]!;
      line[2 * x] = v >> 8;
      line[2 * x + 1] = v & 0xff;
    }
  });
}

/** An 8-bit RGB PNG of interleaved pixels. */
export function encodeRgbPng(data: Uint8Array, width: number, height: number): Uint8Array {
  return encode(width, height, 8, 2, 3 * width, (y, line) => line.set(data.subarray(y * width * 3, (y + 1) * width * 3)));
}
