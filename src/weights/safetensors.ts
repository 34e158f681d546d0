/**
 * safetensors: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`,
 * then the raw little-endian tensor data; offsets are relative to the start of the data area.
 *
 * Also home of the raw element decoding that pth.ts shares (half/bfloat16/double → float32,
 * narrower integers → int64), since both formats store plain little-endian arrays.
 */
import { SwiftFormerError } from '../core/errors.js';
import { formatShape, numel, type StateDict, type Tensor } from '../core/tensor.js';

export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

/** Element types of raw storages, named as safetensors names them. */
export type RawDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const RAW_DTYPE_SIZE: Readonly<Record<RawDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** Dtypes readSafetensors accepts (the project's weights only ever need these). */
const SAFETENSORS_READ_DTYPES: readonly RawDtype[] = ['F32', 'F16', 'BF16', 'F64', 'I64'];
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function bad(message: string): never {
  throw new SwiftFormerError('BAD_CHECKPOINT', message);
}

// ================================================================ raw element decoding

/** IEEE half precision bits → number (exact: every half is a float32). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/**
 * Decodes `bytes` (whose length must be a multiple of the element size) into the Tensor data
 * type. float32 and int64 data in host order and suitably aligned are returned as views into
 * `bytes` without copying; everything else is converted into a new array.
 */
export function decodeRaw(bytes: Uint8Array, dtype: RawDtype, littleEndian = true): Float32Array | BigInt64Array {
  const count = bytes.length / RAW_DTYPE_SIZE[dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const inPlace = littleEndian === HOST_IS_LITTLE_ENDIAN && bytes.byteOffset % RAW_DTYPE_SIZE[dtype] === 0;
  switch (dtype) {
    case 'F32':
      if (inPlace) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
      return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, littleEndian));
    case 'I64':
      if (inPlace) return new BigInt64Array(bytes.buffer, bytes.byteOffset, count);
      return BigInt64Array.from({ length: count }, (_, i) => view.getBigInt64(8 * i, littleEndian));
    case 'F64': return Float32Array.from({ length: count }, (_, i) => view.getFloat64(8 * i, littleEndian));
    case 'F16': return Float32Array.from({ length: count }, (_, i) => halfToFloat(view.getUint16(2 * i, littleEndian)));
    case 'BF16': return decodeBfloat16(view, count, littleEndian);
    case 'I32': return BigInt64Array.from({ length: count }, (_, i) => BigInt(view.getInt32(4 * i, littleEndian)));
    case 'I16': return BigInt64Array.from({ length: count }, (_, i) => BigInt(view.getInt16(2 * i, littleEndian)));
    case 'I8': return BigInt64Array.from({ length: count }, (_, i) => BigInt(view.getInt8(i)));
    case 'U8': return BigInt64Array.from({ length: count }, (_, i) => BigInt(view.getUint8(i)));
    case 'BOOL': return BigInt64Array.from({ length: count }, (_, i) => (view.getUint8(i) ? 1n : 0n));
  }
}

/** bfloat16 is the top half of a float32. */
function decodeBfloat16(view: DataView, count: number, littleEndian: boolean): Float32Array {
  const bits = new Uint32Array(count);
  for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, littleEndian) << 16;
  return new Float32Array(bits.buffer);
}

/** The tensor's data as little-endian bytes (a view when the host is little-endian). */
export function littleEndianBytes(data: Float32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (HOST_IS_LITTLE_ENDIAN) return bytes;
  const swapped = bytes.slice();
  const size = data.BYTES_PER_ELEMENT;
  for (let i = 0; i < swapped.length; i += size) swapped.subarray(i, i + size).reverse();
  return swapped;
}

/** Checks that a caller-supplied tensor is well formed before writing it. */
export function checkTensorForWriting(name: string, tensor: Tensor): void {
  const okData = tensor.dtype === 'float32' ? tensor.data instanceof Float32Array : tensor.data instanceof BigInt64Array;
  if (!okData) throw new SwiftFormerError('BAD_ARGUMENT', `tensor '${name}' has dtype ${String(tensor.dtype)} but its data is not the matching typed array`);
  if (!Array.isArray(tensor.shape) || !tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `tensor '${name}' has an invalid shape ${JSON.stringify(tensor.shape)}`);
  }
  if (numel(tensor.shape) !== tensor.data.length) {
    throw new SwiftFormerError('BAD_ARGUMENT', `tensor '${name}' has shape ${formatShape(tensor.shape)} but ${tensor.data.length} values`);
  }
}

// ================================================================ reading

interface TensorInfo {
  name: string;
  dtype: RawDtype;
  shape: number[];
  begin: number;
  end: number;
  order: number;
}

/**
 * Parses a safetensors file. Tensors come out in data order (which is the order they were
 * written in; JSON key order is not reliable for integer-like names). F32 and I64 data are
 * views into `bytes` when aligned.
 */
export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  try {
    const { header, dataStart } = readHeader(bytes);
    const dataLength = bytes.length - dataStart;
    const metadata = readMetadata(header['__metadata__']);
    const infos = Object.entries(header)
      .filter(([name]) => name !== '__metadata__')
      .map(([name, info], order) => parseTensorInfo(name, info, order, dataLength));
    infos.sort((a, b) => a.begin - b.begin || a.order - b.order);
    checkNoOverlap(infos);
    const tensors: StateDict = new Map();
    for (const info of infos) tensors.set(info.name, decodeTensor(bytes, dataStart, info));
    return { tensors, metadata };
  } catch (e) {
    if (e instanceof SwiftFormerError) throw e;
    throw new SwiftFormerError('BAD_CHECKPOINT', `corrupt safetensors file: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

function readHeader(bytes: Uint8Array): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) bad(`safetensors file is truncated: ${bytes.length} bytes is too short for the 8-byte header length`);
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) bad(`safetensors header length ${length} is over the 100 MB limit (corrupt file?)`);
  if (8n + length > BigInt(bytes.length)) {
    bad(`safetensors file is truncated: header length ${length} runs past the end of the file (file is ${bytes.length} bytes)`);
  }
  const dataStart = 8 + Number(length);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    bad(`safetensors header (${length} bytes) is not valid UTF-8 (corrupt file?)`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    bad(`safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad('safetensors header is not a JSON object');
  return { header: header as Record<string, unknown>, dataStart };
}

function readMetadata(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) bad('safetensors __metadata__ is not an object');
  const metadata: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') bad(`safetensors __metadata__ entry '${key}' is not a string`);
    Object.defineProperty(metadata, key, { value: item, enumerable: true, writable: true, configurable: true });
  }
  return metadata;
}

function isRawDtype(dtype: string): dtype is RawDtype {
  return Object.hasOwn(RAW_DTYPE_SIZE, dtype);
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseTensorInfo(name: string, info: unknown, order: number, dataLength: number): TensorInfo {
  const where = `safetensors tensor '${name}'`;
  if (typeof info !== 'object' || info === null) bad(`${where} has no {dtype, shape, data_offsets} entry`);
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof dtype !== 'string') bad(`${where} has no dtype`);
  if (!isRawDtype(dtype) || !SAFETENSORS_READ_DTYPES.includes(dtype)) {
    bad(`${where} has dtype ${dtype}, which is not supported (supported: ${SAFETENSORS_READ_DTYPES.join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isIndex)) bad(`${where} has an invalid shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    bad(`${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) bad(`${where} has data_offsets [${begin}, ${end}] that end before they begin`);
  if (end > dataLength) {
    bad(`${where} data_offsets [${begin}, ${end}] run past the end of the file (data area is ${dataLength} bytes; truncated file?)`);
  }
  const expected = numel(shape) * RAW_DTYPE_SIZE[dtype];
  if (end - begin !== expected) {
    bad(`${where} holds ${end - begin} bytes but shape ${formatShape(shape)} of ${dtype} needs ${expected}`);
  }
  return { name, dtype, shape: [...shape], begin, end, order };
}

/** Sorted by begin, each tensor must start at or after the previous one's end. */
function checkNoOverlap(infos: readonly TensorInfo[]): void {
  for (let i = 1; i < infos.length; i++) {
    const prev = infos[i - 1]!;
    const cur = infos[i]!;
    if (cur.begin < prev.end) {
      bad(`safetensors tensors '${prev.name}' [${prev.begin}, ${prev.end}] and '${cur.name}' [${cur.begin}, ${cur.end}] overlap`);
    }
  }
}

function decodeTensor(bytes: Uint8Array, dataStart: number, info: TensorInfo): Tensor {
  const raw = bytes.subarray(dataStart + info.begin, dataStart + info.end);
  const data = decodeRaw(raw, info.dtype);
  return data instanceof Float32Array
    ? { dtype: 'float32', shape: info.shape, data }
    : { dtype: 'int64', shape: info.shape, data };
}

// ================================================================ writing

const WRITE_DTYPE: Readonly<Record<Tensor['dtype'], RawDtype>> = { float32: 'F32', int64: 'I64' };

/**
 * Writes tensors in the given order, the header padded with spaces to a multiple of 8 bytes
 * (so float32 data stays aligned). The header JSON is assembled by hand because
 * JSON.stringify would move integer-like keys to the front.
 */
export function writeSafetensors(state: StateDict, metadata?: Record<string, string>): Uint8Array {
  const fields: string[] = [];
  if (metadata !== undefined) fields.push(`"__metadata__":${metadataJson(metadata)}`);
  let offset = 0;
  for (const [name, tensor] of state) {
    if (name === '__metadata__') throw new SwiftFormerError('BAD_ARGUMENT', `'__metadata__' is reserved in safetensors and cannot name a tensor`);
    checkTensorForWriting(name, tensor);
    const info = { dtype: WRITE_DTYPE[tensor.dtype], shape: tensor.shape, data_offsets: [offset, offset + tensor.data.byteLength] };
    fields.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += tensor.data.byteLength;
  }
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const tensor of state.values()) {
    out.set(littleEndianBytes(tensor.data), at);
    at += tensor.data.byteLength;
  }
  return out;
}

function metadataJson(metadata: Record<string, string>): string {
  const fields = Object.entries(metadata).map(([key, value]) => {
    if (typeof value !== 'string') throw new SwiftFormerError('BAD_ARGUMENT', `safetensors metadata '${key}' must be a string`);
    return `${JSON.stringify(key)}:${JSON.stringify(value)}`;
  });
  return `{${fields.join(',')}}`;
}
