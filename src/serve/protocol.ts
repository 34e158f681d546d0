/**
 * The Open Inference Protocol (KServe v2) over HTTP/REST, as Triton and KServe implement it:
 * inference requests parsed and checked against the model (every error names the input and the
 * problem), responses encoded, and Triton's binary tensor data extension both ways: with an
 * `Inference-Header-Content-Length` header the body is that many bytes of JSON followed by each
 * binary input's `binary_data_size` bytes, in the order of the JSON's inputs (little-endian, row
 * major); outputs asked for with `binary_data` (or the request's `binary_data_output`) come back
 * the same way. Inputs are FP32; outputs FP32 or INT64 (a detector's labels and batch indices), in
 * JSON as numbers and in binary as 8-byte integers. Triton's classification extension
 * (`classification: k` on an FP32 output) answers "score:index:label" strings.
 */
import { formatShape, numel, type FloatTensor, type Tensor } from '../core/tensor.js';
import { HttpError } from './http.js';
import type { Feeds, Outputs, ServedModel } from './models.js';
import type { Datatype, TensorSpec } from './onnx.js';

export const SERVER_NAME = 'swiftformer';
export const EXTENSIONS = ['binary_tensor_data', 'classification'];

export interface RequestedOutput { name: string; binary: boolean; classification?: number }

export interface InferRequest {
  id?: string;
  feeds: Feeds;
  outputs: RequestedOutput[];
}

type Json = Record<string, unknown>;

const bad = (message: string) => new HttpError(400, message);
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const quoteList = (names: readonly string[]) => names.map((n) => `'${n}'`).join(', ');
const shapeText = (shape: readonly number[]) => formatShape(shape);

/** Splits the body into its JSON header and the binary data after it. */
function splitBody(body: Buffer, headerLength: string | undefined): { header: Buffer; binary: Buffer } {
  if (headerLength === undefined) return { header: body, binary: body.subarray(body.length) };
  const n = Number(headerLength);
  if (!/^\d+$/.test(headerLength.trim()) || !Number.isSafeInteger(n)) throw bad(`Inference-Header-Content-Length '${headerLength}' is not a byte count`);
  if (n > body.length) throw bad(`Inference-Header-Content-Length is ${n} but the body has only ${body.length} bytes`);
  return { header: body.subarray(0, n), binary: body.subarray(n) };
}

function parseJson(header: Buffer): Json {
  let json: unknown;
  try {
    json = JSON.parse(header.toString('utf8'));
  } catch (err) {
    throw bad(`malformed JSON in the inference request: ${(err as Error).message}`);
  }
  if (!isObject(json) || !Array.isArray(json.inputs)) throw bad("the inference request must be a JSON object with an 'inputs' array");
  return json;
}

function parameters(v: unknown, where: string): Json {
  if (v === undefined) return {};
  if (!isObject(v)) throw bad(`${where}: 'parameters' must be an object`);
  for (const key of ['shared_memory_region', 'shared_memory_byte_size', 'shared_memory_offset']) {
    if (key in v) throw bad(`${where}: shared memory (${key}) is not supported by this server; send the tensor in the request body`);
  }
  return v;
}

/** Flattens (possibly nested) JSON tensor data into exactly `count` float32 values. */
function jsonData(data: unknown, count: number, name: string, shape: number[]): Float32Array {
  const out = new Float32Array(count);
  let n = 0;
  const visit = (v: unknown, depth: number): void => {
    if (Array.isArray(v)) {
      if (depth > shape.length) throw bad(`input '${name}': data is nested deeper than its shape ${shapeText(shape)}`);
      for (const x of v) visit(x, depth + 1);
      return;
    }
    if (typeof v !== 'number') throw bad(`input '${name}': data element ${n} is ${JSON.stringify(v)?.slice(0, 32)}, not a number`);
    if (n >= count) throw bad(`input '${name}': data holds more than the ${count} values shape ${shapeText(shape)} needs`);
    out[n++] = v;
  };
  visit(data, 0);
  if (n !== count) throw bad(`input '${name}': data holds ${n} values; shape ${shapeText(shape)} needs ${count}`);
  return out;
}

function binaryData(binary: Buffer, offset: number, size: unknown, count: number, name: string, shape: number[]): Float32Array {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw bad(`input '${name}': binary_data_size must be a byte count`);
  if (offset + size > binary.length) throw bad(`input '${name}': binary_data_size is ${size} but only ${binary.length - offset} bytes of binary data follow`);
  if (size !== count * 4) throw bad(`input '${name}': ${size} bytes of binary data; shape ${shapeText(shape)} of FP32 needs ${count * 4}`);
  // In place where the body was read aligned (http.ts readBody's alignAt), else a copy: a
  // Float32Array must start on a multiple of 4.
  const start = binary.byteOffset + offset;
  if (start % 4 === 0) return new Float32Array(binary.buffer, start, count);
  const bytes = new Uint8Array(size);
  bytes.set(binary.subarray(offset, offset + size));
  return new Float32Array(bytes.buffer);
}

function checkShape(shape: unknown, spec: TensorSpec, model: ServedModel): number[] {
  const name = spec.name;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`input '${name}': shape must be a list of non-negative integers`);
  const dims = shape as number[];
  const fits = dims.length === spec.shape.length && dims.every((d, i) => spec.shape[i] === -1 || spec.shape[i] === d);
  if (!fits) throw bad(`input '${name}' has shape ${shapeText(dims)}; model '${model.name}' takes ${shapeText(spec.shape)} (-1: any size)`);
  if (model.maxBatch > 0) {
    if (dims[0] === 0) throw bad(`input '${name}' holds an empty batch`);
    if (dims[0]! > model.maxBatch) throw bad(`input '${name}' holds a batch of ${dims[0]}; model '${model.name}' takes at most ${model.maxBatch}`);
  }
  return dims;
}

function requestedOutputs(json: Json, model: ServedModel): RequestedOutput[] {
  const params = parameters(json.parameters, 'request');
  const binaryDefault = params.binary_data_output === true;
  const names = model.outputs.map((o) => o.name);
  if (json.outputs === undefined) return names.map((name) => ({ name, binary: binaryDefault }));
  if (!Array.isArray(json.outputs)) throw bad("'outputs' must be a list");
  const seen = new Set<string>();
  return json.outputs.map((o: unknown, i) => {
    if (!isObject(o) || typeof o.name !== 'string') throw bad(`outputs[${i}] must be an object with a 'name'`);
    if (!names.includes(o.name)) throw bad(`model '${model.name}' has no output '${o.name}' (its outputs: ${quoteList(names)})`);
    if (seen.has(o.name)) throw bad(`output '${o.name}' is asked for twice`);
    seen.add(o.name);
    const p = parameters(o.parameters, `output '${o.name}'`);
    if (p.binary_data !== undefined && typeof p.binary_data !== 'boolean') throw bad(`output '${o.name}': binary_data must be true or false`);
    const out: RequestedOutput = { name: o.name, binary: (p.binary_data as boolean | undefined) ?? binaryDefault };
    if (p.classification !== undefined) {
      const k = p.classification;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 1) throw bad(`output '${o.name}': classification must be an integer >= 1`);
      const datatype = model.outputs.find((s) => s.name === o.name)!.datatype;
      if (datatype !== 'FP32') throw bad(`output '${o.name}' is ${datatype}: classification applies to FP32 scores`);
      out.classification = k;
    }
    return out;
  });
}

/** Parses and checks an inference request against the model's inputs and outputs. */
export function parseInferRequest(body: Buffer, headerLength: string | undefined, model: ServedModel): InferRequest {
  const { header, binary } = splitBody(body, headerLength);
  const json = parseJson(header);
  if (json.id !== undefined && typeof json.id !== 'string') throw bad("'id' must be a string");
  const specs = new Map(model.inputs.map((s) => [s.name, s]));
  const feeds: Feeds = {};
  let offset = 0;
  (json.inputs as unknown[]).forEach((input, i) => {
    if (!isObject(input) || typeof input.name !== 'string') throw bad(`inputs[${i}] must be an object with 'name', 'shape', 'datatype' and 'data'`);
    const name = input.name;
    const spec = specs.get(name);
    if (!spec) throw bad(`model '${model.name}' has no input '${name}' (its inputs: ${quoteList([...specs.keys()])})`);
    if (feeds[name]) throw bad(`input '${name}' is given twice`);
    if (input.datatype !== spec.datatype) throw bad(`input '${name}' has datatype ${JSON.stringify(input.datatype)}; model '${model.name}' takes ${spec.datatype}`);
    const shape = checkShape(input.shape, spec, model);
    const count = numel(shape);
    const p = parameters(input.parameters, `input '${name}'`);
    let data: Float32Array;
    if (p.binary_data_size !== undefined) {
      if (input.data !== undefined) throw bad(`input '${name}' has both 'data' and binary_data_size`);
      data = binaryData(binary, offset, p.binary_data_size, count, name, shape);
      offset += data.byteLength;
    } else {
      if (input.data === undefined) throw bad(`input '${name}' has no 'data' (nor binary_data_size)`);
      data = jsonData(input.data, count, name, shape);
    }
    feeds[name] = { dtype: 'float32', shape, data };
  });
  if (offset !== binary.length) {
    throw bad(`${binary.length - offset} bytes after the JSON header belong to no input (the inputs' binary_data_size add up to ${offset})`);
  }
  const missing = model.inputs.filter((s) => !feeds[s.name]);
  if (missing.length > 0) throw bad(`missing input${missing.length > 1 ? 's' : ''} ${quoteList(missing.map((s) => s.name))} of model '${model.name}'`);
  if (model.maxBatch > 0) {
    const batches = Object.entries(feeds).map(([n, t]) => [n, t.shape[0]] as const);
    const other = batches.find(([, b]) => b !== batches[0]![1]);
    if (other) throw bad(`inputs '${batches[0]![0]}' and '${other[0]}' have different batch sizes (${batches[0]![1]} and ${other[1]})`);
  }
  model.check?.(feeds);
  return { ...(json.id !== undefined ? { id: json.id as string } : {}), feeds, outputs: requestedOutputs(json, model) };
}

// ---------------------------------------------------------------- responses

/** An output in both forms, each made only when asked for (a 1000-class row as JSON numbers is not free). */
interface Encoded { datatype: Datatype; shape: number[]; json: () => unknown[]; binary: () => Buffer }

/**
 * A tensor as the protocol carries it: FP32, or INT64 (JSON numbers; a detector's labels and
 * indices are far below 2^53, where a JSON number stays exact). Binary data is the typed array's
 * own bytes, little-endian on the machines ONNX Runtime runs on.
 */
function tensorData(t: Tensor): Encoded {
  const binary = () => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.dtype === 'int64') return { datatype: 'INT64', shape: t.shape, json: () => Array.from(t.data, Number), binary };
  return { datatype: 'FP32', shape: t.shape, json: () => Array.from(t.data), binary };
}

/** Triton's classification extension: the top k of each row as "score:index[:label]" BYTES. */
function classification(t: FloatTensor, k: number, batched: boolean, labels: readonly string[] | undefined): Encoded {
  const rows = batched ? t.shape[0]! : 1;
  const classes = t.data.length / rows;
  const strings: string[] = [];
  for (let r = 0; r < rows; r++) {
    const row = t.data.subarray(r * classes, (r + 1) * classes);
    const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
    for (const i of order) strings.push(labels?.[i] !== undefined ? `${row[i]}:${i}:${labels[i]}` : `${row[i]}:${i}`);
  }
  const kk = strings.length / rows;
  return {
    datatype: 'BYTES',
    shape: batched ? [rows, kk] : [kk],
    json: () => strings,
    // Each element: its byte length as a little-endian uint32, then the bytes.
    binary: () => Buffer.concat(strings.flatMap((s) => {
      const bytes = Buffer.from(s, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    })),
  };
}

export interface EncodedResponse { body: Buffer; headers: Record<string, string> }

export function encodeInferResponse(model: ServedModel, request: InferRequest, outputs: Outputs, id: string): EncodedResponse {
  const binaries: Buffer[] = [];
  const tensors = request.outputs.map((o) => {
    const t = outputs[o.name]!;
    const e = o.classification !== undefined ? classification(t as FloatTensor, o.classification, model.maxBatch > 0, model.labels) : tensorData(t);
    if (!o.binary) return { name: o.name, datatype: e.datatype, shape: e.shape, data: e.json() };
    const bytes = e.binary();
    binaries.push(bytes);
    return { name: o.name, datatype: e.datatype, shape: e.shape, parameters: { binary_data_size: bytes.length } };
  });
  const json = Buffer.from(JSON.stringify({
    model_name: model.name,
    ...(model.version ? { model_version: model.version } : {}),
    id,
    outputs: tensors,
  }));
  if (binaries.length === 0) return { body: json, headers: { 'Content-Type': 'application/json' } };
  return {
    body: Buffer.concat([json, ...binaries]),
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(json.length) },
  };
}

export function modelMetadata(model: ServedModel): Json {
  return {
    name: model.name,
    ...(model.version ? { versions: [model.version] } : {}),
    platform: model.platform,
    inputs: model.inputs,
    outputs: model.outputs,
  };
}
