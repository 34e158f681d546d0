/**
 * ONNX ModelProto encoding and decoding: the one place that knows protobuf.
 *
 * Messages are described by small schemas (field number -> name, kind, repeated) so that one
 * encoder and one decoder serve every message. Only the fields this library writes or reads are
 * listed; unknown fields are skipped when decoding.
 */
import { SwiftFormerError } from '../core/errors.js';

type Scalar = 'int' | 'float' | 'string' | 'bytes' | 'packedFloat' | 'packedInt';
type FieldKind = Scalar | { message: string };
interface Field { name: string; kind: FieldKind; repeated?: boolean }
type Schema = Record<number, Field>;

const SCHEMAS: Record<string, Schema> = {
  ModelProto: {
    1: { name: 'irVersion', kind: 'int' },
    2: { name: 'producerName', kind: 'string' },
    3: { name: 'producerVersion', kind: 'string' },
    4: { name: 'domain', kind: 'string' },
    5: { name: 'modelVersion', kind: 'int' },
    6: { name: 'docString', kind: 'string' },
    7: { name: 'graph', kind: { message: 'GraphProto' } },
    8: { name: 'opsetImport', kind: { message: 'OperatorSetIdProto' }, repeated: true },
    14: { name: 'metadataProps', kind: { message: 'StringStringEntryProto' }, repeated: true },
  },
  OperatorSetIdProto: {
    1: { name: 'domain', kind: 'string' },
    2: { name: 'version', kind: 'int' },
  },
  StringStringEntryProto: {
    1: { name: 'key', kind: 'string' },
    2: { name: 'value', kind: 'string' },
  },
  GraphProto: {
    1: { name: 'node', kind: { message: 'NodeProto' }, repeated: true },
    2: { name: 'name', kind: 'string' },
    5: { name: 'initializer', kind: { message: 'TensorProto' }, repeated: true },
    10: { name: 'docString', kind: 'string' },
    11: { name: 'input', kind: { message: 'ValueInfoProto' }, repeated: true },
    12: { name: 'output', kind: { message: 'ValueInfoProto' }, repeated: true },
    13: { name: 'valueInfo', kind: { message: 'ValueInfoProto' }, repeated: true },
  },
  NodeProto: {
    1: { name: 'input', kind: 'string', repeated: true },
    2: { name: 'output', kind: 'string', repeated: true },
    3: { name: 'name', kind: 'string' },
    4: { name: 'opType', kind: 'string' },
    5: { name: 'attribute', kind: { message: 'AttributeProto' }, repeated: true },
    6: { name: 'docString', kind: 'string' },
    7: { name: 'domain', kind: 'string' },
  },
  AttributeProto: {
    1: { name: 'name', kind: 'string' },
    2: { name: 'f', kind: 'float' },
    3: { name: 'i', kind: 'int' },
    4: { name: 's', kind: 'bytes' },
    5: { name: 't', kind: { message: 'TensorProto' } },
    7: { name: 'floats', kind: 'packedFloat' },
    8: { name: 'ints', kind: 'packedInt' },
    20: { name: 'type', kind: 'int' },
  },
  TensorProto: {
    1: { name: 'dims', kind: 'packedInt' },
    2: { name: 'dataType', kind: 'int' },
    4: { name: 'floatData', kind: 'packedFloat' },
    7: { name: 'int64Data', kind: 'packedInt' },
    8: { name: 'name', kind: 'string' },
    9: { name: 'rawData', kind: 'bytes' },
  },
  ValueInfoProto: {
    1: { name: 'name', kind: 'string' },
    2: { name: 'type', kind: { message: 'TypeProto' } },
  },
  TypeProto: {
    1: { name: 'tensorType', kind: { message: 'TypeProtoTensor' } },
  },
  TypeProtoTensor: {
    1: { name: 'elemType', kind: 'int' },
    2: { name: 'shape', kind: { message: 'TensorShapeProto' } },
  },
  TensorShapeProto: {
    1: { name: 'dim', kind: { message: 'Dimension' }, repeated: true },
  },
  Dimension: {
    1: { name: 'dimValue', kind: 'int' },
    2: { name: 'dimParam', kind: 'string' },
  },
};

/** ONNX TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
/** ONNX AttributeProto.AttributeType values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** A decoded or to-be-encoded message: field name -> value (arrays for repeated fields). */
export type Message = { [field: string]: unknown };

// ---------------------------------------------------------------- encoding

/*
 * Two passes, as protobuf encoders do: the size of every nested message is computed first
 * (memoized per message object), then everything is written once into one buffer of the exact
 * size. Encoding each nested message into its own buffer and copying it into the parent would copy
 * the weights once per nesting level (tensor, graph, model: three times for a ViT-B/16's 346 MB).
 */

const utf8 = new TextEncoder();

function varintSize(value: number | bigint): number {
  if (typeof value === 'number' && value >= 0 && value < 2 ** 31) {
    let size = 1;
    for (let v = value; v >= 0x80; v = Math.floor(v / 128)) size++;
    return size;
  }
  // Negative int64 values take ten bytes in two's complement, as protobuf specifies.
  let v = BigInt.asUintN(64, BigInt(value));
  let size = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    size++;
  }
  return size;
}

class Writer {
  length = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  varint(value: number | bigint): void {
    if (typeof value === 'number' && value >= 0 && value < 2 ** 31) {
      let v = value;
      while (v >= 0x80) {
        this.buf[this.length++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.buf[this.length++] = v;
      return;
    }
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.buf[this.length++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.length++] = Number(v);
  }

  raw(data: Uint8Array): void {
    this.buf.set(data, this.length);
    this.length += data.length;
  }

  float32(value: number): void {
    this.view.setFloat32(this.length, value, true);
    this.length += 4;
  }
}

/** Sizes of nested messages (their payload, without tag and length) and UTF-8 of strings, from the size pass. */
interface Plan { sizes: Map<Message, number>; strings: Map<string, Uint8Array> }

function utf8Of(plan: Plan, text: string): Uint8Array {
  let bytes = plan.strings.get(text);
  if (!bytes) {
    bytes = utf8.encode(text);
    plan.strings.set(text, bytes);
  }
  return bytes;
}

function packedIntSize(values: ArrayLike<number | bigint>): number {
  let size = 0;
  for (let i = 0; i < values.length; i++) size += varintSize(values[i]!);
  return size;
}

/** Bytes of one scalar field after its tag. */
function scalarSize(plan: Plan, kind: Scalar, value: unknown): number {
  switch (kind) {
    case 'int': return varintSize(value as number | bigint);
    case 'float': return 4;
    case 'string': return lengthDelimited(utf8Of(plan, value as string).length);
    case 'bytes': return lengthDelimited((value as Uint8Array).length);
    case 'packedFloat': return lengthDelimited(4 * (value as ArrayLike<number>).length);
    case 'packedInt': return lengthDelimited(packedIntSize(value as ArrayLike<number | bigint>));
  }
}

function lengthDelimited(n: number): number {
  return varintSize(n) + n;
}

function messageSize(plan: Plan, msg: Message, schemaName: string): number {
  const known = plan.sizes.get(msg);
  if (known !== undefined) return known;
  let size = 0;
  for (const [numText, field] of Object.entries(SCHEMAS[schemaName]!)) {
    const value = msg[field.name];
    if (value === undefined || value === null) continue;
    const tag = varintSize(Number(numText) << 3);
    for (const item of field.repeated ? (value as unknown[]) : [value]) {
      size += tag + (typeof field.kind === 'object' ? lengthDelimited(messageSize(plan, item as Message, field.kind.message)) : scalarSize(plan, field.kind, item));
    }
  }
  plan.sizes.set(msg, size);
  return size;
}

function writeScalar(w: Writer, plan: Plan, num: number, kind: Scalar, value: unknown): void {
  switch (kind) {
    case 'int':
      w.varint(num << 3);
      w.varint(value as number | bigint);
      return;
    case 'float':
      w.varint((num << 3) | 5);
      w.float32(value as number);
      return;
    case 'string':
    case 'bytes': {
      const data = kind === 'string' ? utf8Of(plan, value as string) : (value as Uint8Array);
      w.varint((num << 3) | 2);
      w.varint(data.length);
      w.raw(data);
      return;
    }
    case 'packedFloat': {
      const values = value as ArrayLike<number>;
      w.varint((num << 3) | 2);
      w.varint(4 * values.length);
      for (let i = 0; i < values.length; i++) w.float32(values[i]!);
      return;
    }
    case 'packedInt': {
      const values = value as ArrayLike<number | bigint>;
      w.varint((num << 3) | 2);
      w.varint(packedIntSize(values));
      for (let i = 0; i < values.length; i++) w.varint(values[i]!);
      return;
    }
  }
}

function writeMessage(w: Writer, plan: Plan, msg: Message, schemaName: string): void {
  for (const [numText, field] of Object.entries(SCHEMAS[schemaName]!)) {
    const value = msg[field.name];
    if (value === undefined || value === null) continue;
    const num = Number(numText);
    for (const item of field.repeated ? (value as unknown[]) : [value]) {
      if (typeof field.kind === 'object') {
        w.varint((num << 3) | 2);
        w.varint(plan.sizes.get(item as Message)!);
        writeMessage(w, plan, item as Message, field.kind.message);
      } else {
        writeScalar(w, plan, num, field.kind, item);
      }
    }
  }
}

export function encodeMessage(msg: Message, schemaName: string): Uint8Array {
  const plan: Plan = { sizes: new Map(), strings: new Map() };
  const out = new Uint8Array(messageSize(plan, msg, schemaName));
  const w = new Writer(out);
  writeMessage(w, plan, msg, schemaName);
  if (w.length !== out.length) throw new Error(`protobuf size pass (${out.length}) and write pass (${w.length}) disagree for ${schemaName}`);
  return out;
}

// ---------------------------------------------------------------- decoding

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const byte = this.buf[this.pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('varint longer than 10 bytes');
    }
  }

  slice(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) throw new Error(`field of ${n} bytes runs past the end`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

const utf8Decoder = new TextDecoder();

function toNumber(v: bigint): number | bigint {
  const signed = BigInt.asIntN(64, v);
  return signed >= BigInt(Number.MIN_SAFE_INTEGER) && signed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(signed) : signed;
}

function decodePacked(data: Uint8Array, kind: 'packedFloat' | 'packedInt'): number[] | (number | bigint)[] {
  if (kind === 'packedFloat') {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return Array.from({ length: data.byteLength >> 2 }, (_, i) => view.getFloat32(i * 4, true));
  }
  const r = new Reader(data);
  const out: (number | bigint)[] = [];
  while (!r.done) out.push(toNumber(r.varint()));
  return out;
}

function readField(r: Reader, wire: number, field: Field | undefined): unknown {
  if (wire === 0) return toNumber(r.varint());
  if (wire === 5) return new DataView(r.slice(4).slice().buffer).getFloat32(0, true);
  if (wire === 1) return r.slice(8);
  if (wire !== 2) throw new Error(`unsupported wire type ${wire}`);
  const data = r.slice(Number(r.varint()));
  if (!field) return undefined;
  const kind = field.kind;
  if (typeof kind === 'object') return decodeMessage(data, kind.message);
  if (kind === 'string') return utf8Decoder.decode(data);
  if (kind === 'packedFloat' || kind === 'packedInt') return decodePacked(data, kind);
  return data;
}

function store(msg: Message, field: Field, value: unknown): void {
  const packed = field.kind === 'packedFloat' || field.kind === 'packedInt';
  if (packed) {
    // Packed and unpacked encodings of a repeated scalar may both occur: append either way.
    const list = (msg[field.name] as unknown[] | undefined) ?? [];
    msg[field.name] = list.concat(value);
  } else if (field.repeated) {
    ((msg[field.name] ??= []) as unknown[]).push(value);
  } else {
    msg[field.name] = value;
  }
}

export function decodeMessage(data: Uint8Array, schemaName: string): Message {
  const schema = SCHEMAS[schemaName]!;
  const r = new Reader(data);
  const msg: Message = {};
  while (!r.done) {
    const key = Number(r.varint());
    const field = schema[key >>> 3];
    const value = readField(r, key & 7, field);
    if (field && value !== undefined) store(msg, field, value);
  }
  return msg;
}

/** Decodes an ONNX file; a corrupt file is a clear error rather than a crash. */
export function decodeModel(bytes: Uint8Array): Message {
  try {
    return decodeMessage(bytes, 'ModelProto');
  } catch (err) {
    throw new SwiftFormerError('BAD_ARGUMENT', `not a valid ONNX model: ${(err as Error).message}`, { cause: err });
  }
}

export function encodeModel(model: Message): Uint8Array {
  return encodeMessage(model, 'ModelProto');
}
