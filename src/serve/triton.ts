/**
 * Triton model repositories: `export --triton` writes one (DIR/NAME/config.pbtxt and
 * DIR/NAME/1/model.onnx), `serve --repository` reads one. The config is derived from the ONNX
 * graph's own inputs and outputs, so any exported model, whatever its task, gets a config that
 * agrees with it; Triton's onnxruntime backend (and KServe with `modelFormat: onnx`,
 * `protocolVersion: v2`) then serve the same directory.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SwiftFormerError } from '../core/errors.js';
import { readCard } from '../models/card.js';
import { makeDirectory, writeFileAtomic } from '../node/files.js';
import type { Datatype, OnnxSignature, TensorSpec } from './onnx.js';
import { formatPbtxt, parsePbtxt, PbEnum, type PbMessage, type PbObject, type PbScalar } from './pbtxt.js';

export const ONNX_PLATFORM = 'onnxruntime_onnx';
export const MODEL_FILE = 'model.onnx';
export const LABEL_FILE = 'labels.txt';

/** A config.pbtxt `input` or `output`: dims without the batch axis when max_batch_size > 0. */
export interface TritonTensor { name: string; datatype: Datatype; dims: number[]; labelFilename?: string }

export interface TritonConfig {
  name?: string;
  platform: string;
  maxBatchSize: number;
  inputs: TritonTensor[];
  outputs: TritonTensor[];
  /** Present: Triton batches requests dynamically; absent: each request runs on its own. */
  dynamicBatching?: { maxQueueDelayMicroseconds: number };
  defaultModelFilename?: string;
}

/** Triton's TYPE_* names: the protocol's datatype, except that BYTES is TYPE_STRING. */
function tritonType(datatype: Datatype): string {
  return `TYPE_${datatype === 'BYTES' ? 'STRING' : datatype}`;
}

function fromTritonType(type: string, where: string): Datatype {
  const datatype = type === 'TYPE_STRING' ? 'BYTES' : type.replace(/^TYPE_/, '');
  const known: readonly string[] = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BF16', 'BYTES'];
  if (!type.startsWith('TYPE_') || !known.includes(datatype)) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: unknown data_type ${type}`);
  return datatype as Datatype;
}

export interface ConfigOptions {
  name: string;
  /** Largest batch Triton may form; 0: the model has no batch axis. */
  maxBatch: number;
  /** Dynamic batching's max_queue_delay_microseconds; undefined: no dynamic_batching block. */
  maxDelayMicroseconds?: number;
}

/** The config of an ONNX model, every input and output taken from its graph. */
export function tritonConfigFor(signature: OnnxSignature, options: ConfigOptions): TritonConfig {
  const { name, maxBatch } = options;
  const tensor = (t: TensorSpec, kind: string): TritonTensor => {
    if (maxBatch === 0) return { name: t.name, datatype: t.datatype, dims: t.shape };
    if (t.shape[0] !== -1) {
      throw new SwiftFormerError('BAD_ARGUMENT', `${name}: ${kind} '${t.name}' has a fixed first axis (${t.shape.join('x') || 'a scalar'}): there is no batch axis to batch along (use --max-batch 0)`);
    }
    return { name: t.name, datatype: t.datatype, dims: t.shape.slice(1) };
  };
  const outputs = signature.outputs.map((o) => tensor(o, 'output'));
  const labels = readCard(signature.metadata, 'classification').labels;
  const scores = outputs.find((o) => o.dims.length === 1 && o.dims[0] === labels?.length);
  if (scores) scores.labelFilename = LABEL_FILE;
  return {
    name,
    platform: ONNX_PLATFORM,
    maxBatchSize: maxBatch,
    inputs: signature.inputs.map((i) => tensor(i, 'input')),
    outputs,
    ...(options.maxDelayMicroseconds !== undefined && maxBatch > 0 ? { dynamicBatching: { maxQueueDelayMicroseconds: options.maxDelayMicroseconds } } : {}),
  };
}

export function formatTritonConfig(config: TritonConfig): string {
  const tensor = (t: TritonTensor): PbObject => ({
    name: t.name,
    data_type: new PbEnum(tritonType(t.datatype)),
    dims: t.dims,
    ...(t.labelFilename ? { label_filename: t.labelFilename } : {}),
  });
  return formatPbtxt({
    name: config.name,
    platform: config.platform,
    max_batch_size: config.maxBatchSize,
    input: config.inputs.map(tensor),
    output: config.outputs.map(tensor),
    dynamic_batching: config.dynamicBatching && { max_queue_delay_microseconds: config.dynamicBatching.maxQueueDelayMicroseconds },
    default_model_filename: config.defaultModelFilename,
  });
}

// ---------------------------------------------------------------- reading config.pbtxt

function single(msg: PbMessage, field: string, where: string): PbScalar | PbMessage | undefined {
  const values = msg[field];
  if (values && values.length > 1) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: '${field}' is given ${values.length} times`);
  return values?.[0];
}

function stringField(msg: PbMessage, field: string, where: string): string | undefined {
  const v = single(msg, field, where);
  if (v !== undefined && typeof v !== 'string') throw new SwiftFormerError('BAD_ARGUMENT', `${where}: '${field}' must be a quoted string`);
  return v;
}

function intField(msg: PbMessage, field: string, where: string): number | undefined {
  const v = single(msg, field, where);
  if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v))) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: '${field}' must be an integer`);
  return v;
}

function messages(msg: PbMessage, field: string, where: string): PbMessage[] {
  return (msg[field] ?? []).map((v) => {
    if (typeof v !== 'object' || v instanceof PbEnum) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: '${field}' must be a message`);
    return v;
  });
}

function tensorOf(msg: PbMessage, where: string): TritonTensor {
  const name = stringField(msg, 'name', where);
  if (!name) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: a tensor has no name`);
  const at = `${where}, '${name}'`;
  const type = single(msg, 'data_type', at);
  if (!(type instanceof PbEnum)) throw new SwiftFormerError('BAD_ARGUMENT', `${at}: data_type must be a TYPE_* constant`);
  const dims = (msg.dims ?? []).map((d) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < -1) throw new SwiftFormerError('BAD_ARGUMENT', `${at}: dims must be integers >= -1`);
    return d;
  });
  const labelFilename = stringField(msg, 'label_filename', at);
  return { name, datatype: fromTritonType(type.name, at), dims, ...(labelFilename ? { labelFilename } : {}) };
}

/** The fields of a config.pbtxt this server acts on; an unsupported platform is an error. */
export function parseTritonConfig(text: string, where = 'config.pbtxt'): TritonConfig {
  const msg = parsePbtxt(text, where);
  const platform = stringField(msg, 'platform', where);
  const backend = stringField(msg, 'backend', where);
  if (platform !== undefined ? platform !== ONNX_PLATFORM : backend !== undefined && backend !== 'onnxruntime') {
    throw new SwiftFormerError('UNSUPPORTED', `${where}: platform '${platform ?? backend}' is not ONNX; this server runs ${ONNX_PLATFORM} models`);
  }
  const maxBatchSize = intField(msg, 'max_batch_size', where) ?? 0;
  if (maxBatchSize < 0) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: max_batch_size must be >= 0`);
  const batching = messages(msg, 'dynamic_batching', where)[0];
  const name = stringField(msg, 'name', where);
  const defaultModelFilename = stringField(msg, 'default_model_filename', where);
  return {
    ...(name !== undefined ? { name } : {}),
    platform: ONNX_PLATFORM,
    maxBatchSize,
    inputs: messages(msg, 'input', where).map((m) => tensorOf(m, `${where} input`)),
    outputs: messages(msg, 'output', where).map((m) => tensorOf(m, `${where} output`)),
    ...(batching ? { dynamicBatching: { maxQueueDelayMicroseconds: intField(batching, 'max_queue_delay_microseconds', where) ?? 0 } } : {}),
    ...(defaultModelFilename ? { defaultModelFilename } : {}),
  };
}

/** The protocol's shape of a config tensor: the batch axis (-1) put back in front. */
export function specOf(t: TritonTensor, maxBatchSize: number): TensorSpec {
  return { name: t.name, datatype: t.datatype, shape: maxBatchSize > 0 ? [-1, ...t.dims] : t.dims };
}

/**
 * Checks a config against the model it describes, as Triton does when it loads the model: the
 * same inputs, outputs the model has, the same datatypes, and dims that fit the graph's.
 */
export function checkConfig(config: TritonConfig, signature: OnnxSignature, where: string): void {
  const fits = (t: TritonTensor, kind: string, graph: TensorSpec[]) => {
    const g = graph.find((s) => s.name === t.name);
    if (!g) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: ${kind} '${t.name}' is not in the model (it has ${graph.map((s) => `'${s.name}'`).join(', ')})`);
    const want = specOf(t, config.maxBatchSize);
    if (g.datatype !== t.datatype) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: ${kind} '${t.name}' is ${g.datatype} in the model, ${t.datatype} in the config`);
    const ok = g.shape.length === want.shape.length && g.shape.every((d, i) => d === -1 || d === want.shape[i]);
    if (!ok) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: ${kind} '${t.name}' has shape [${g.shape}] in the model, [${want.shape}] by the config`);
  };
  for (const t of config.inputs) fits(t, 'input', signature.inputs);
  for (const t of config.outputs) fits(t, 'output', signature.outputs);
  const missing = signature.inputs.filter((i) => !config.inputs.some((t) => t.name === i.name));
  if (missing.length > 0) throw new SwiftFormerError('BAD_ARGUMENT', `${where}: the config lacks the model's input${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m.name}'`).join(', ')}`);
}

// ---------------------------------------------------------------- repositories on disk

/** Triton model names are directory names; keep them to characters that are safe in a URL path too. */
export function checkModelName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.length > 128) {
    throw new SwiftFormerError('BAD_ARGUMENT', `model name '${name}' must start with a letter or digit and hold only letters, digits, '_', '.' and '-'`);
  }
  return name;
}

export interface TritonWriteOptions { maxBatch: number; maxDelayMicroseconds?: number }

/** Writes DIR/NAME/config.pbtxt, DIR/NAME/1/model.onnx and, for a model that records its classes, DIR/NAME/labels.txt. */
export async function writeTritonModel(dir: string, name: string, onnx: Uint8Array, signature: OnnxSignature, options: TritonWriteOptions): Promise<string[]> {
  checkModelName(name);
  const config = tritonConfigFor(signature, { name, ...options });
  const modelDir = join(dir, name);
  await makeDirectory(join(modelDir, '1'), 'Triton model folder');
  const written = [join(modelDir, '1', MODEL_FILE), join(modelDir, 'config.pbtxt')];
  await writeFileAtomic(written[0]!, onnx);
  const labels = readCard(signature.metadata, 'classification').labels;
  if (labels && config.outputs.some((o) => o.labelFilename)) {
    written.push(join(modelDir, LABEL_FILE));
    await writeFileAtomic(written[2]!, `${labels.map((l) => l.replace(/[\r\n]+/g, ' ')).join('\n')}\n`);
  }
  // The config last: a directory with a config is a complete model.
  await writeFileAtomic(written[1]!, formatTritonConfig(config));
  return written;
}

export interface RepositoryModel {
  name: string;
  version: string;
  /** The model file of that version. */
  path: string;
  /** Undefined when the directory has no config.pbtxt (Triton then derives one from the ONNX file). */
  config?: TritonConfig;
}

const isDir = async (path: string) => (await stat(path).catch(() => undefined))?.isDirectory() ?? false;

/** Every model of a repository, at its highest version (Triton's default version policy, `latest: 1`). */
export async function readRepository(dir: string): Promise<RepositoryModel[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).filter((e) => !e.startsWith('.')).sort();
  } catch (err) {
    throw new SwiftFormerError('IO', `cannot read the model repository ${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (err as Error).message}`);
  }
  const models: RepositoryModel[] = [];
  for (const name of entries) {
    const modelDir = join(dir, name);
    if (!(await isDir(modelDir))) continue;
    checkModelName(name);
    const configPath = join(modelDir, 'config.pbtxt');
    const text = await readFile(configPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new SwiftFormerError('IO', `cannot read ${configPath}: ${err.message}`);
    });
    const config = text === undefined ? undefined : parseTritonConfig(text, configPath);
    if (config?.name !== undefined && config.name !== name) {
      throw new SwiftFormerError('BAD_ARGUMENT', `${configPath}: name '${config.name}' differs from its directory '${name}'`);
    }
    const file = config?.defaultModelFilename ?? MODEL_FILE;
    const versions: number[] = [];
    for (const v of await readdir(modelDir)) {
      if (/^\d+$/.test(v) && (await stat(join(modelDir, v, file)).catch(() => undefined))?.isFile()) versions.push(Number(v));
    }
    if (versions.length === 0) throw new SwiftFormerError('BAD_ARGUMENT', `${modelDir} has no version directory holding ${file} (expected ${join(modelDir, '1', file)})`);
    const version = String(Math.max(...versions));
    models.push({ name, version, path: join(modelDir, version, file), ...(config ? { config } : {}) });
  }
  if (models.length === 0) throw new SwiftFormerError('BAD_ARGUMENT', `the model repository ${dir} holds no model directories`);
  return models;
}
