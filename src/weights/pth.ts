/**
 * PyTorch checkpoints (`torch.save`, zip format since 1.6) without torch.
 *
 * Layout: `<folder>/data.pkl` (the pickled object), `<folder>/data/<key>` (one raw little-endian
 * storage per key), `<folder>/version`, optionally `<folder>/byteorder`. The folder is `archive`
 * when saving to a file object but the file stem when saving to a path, so it is discovered.
 *
 * The pickle may only use the globals a state dict, an official SwiftFormer training checkpoint or
 * an mmcv checkpoint's meta (numpy scalars) needs (see pthGlobals); anything else, including a whole pickled nn.Module, is
 * refused. Storage dtypes: float32 as is; float16, bfloat16 and float64 become float32; int64
 * stays int64; int32, uint8 and bool storages are widened to int64 (this project has no other
 * integer tensor type).
 *
 * Tensors that are contiguous in a little-endian float32/int64 storage with aligned data (the
 * usual case: torch.save aligns entries to 64 bytes) are views into the input bytes, and tensors
 * sharing a storage may share memory, as in torch. Copy before mutating if that matters.
 */
import { SwiftFormerError } from '../core/errors.js';
import {
  attributeObjectGlobal, codecsEncodeGlobal, counterGlobal, isPlainObject, numpyDtypeGlobal, numpyScalarGlobal, orderedDictGlobal, PickleGlobal, pickleValue, typeName,
  unpickle, writeDictItems,
  type AllowedGlobal, type PickleWriter,
} from './pickle.js';
import { checkTensorForWriting, decodeRaw, littleEndianBytes, RAW_DTYPE_SIZE, type RawDtype } from './safetensors.js';
import { numel, type StateDict, type Tensor } from '../core/tensor.js';
import { readZip, readZipEntry, writeZip, type ZipArchive, type ZipWriteEntry } from './zip.js';

export interface PthFile {
  /** The unpickled top-level object: dicts are Maps, `argparse.Namespace` a plain object, tensors Tensors. */
  readonly root: unknown;
  /** The top-level folder inside the zip (`archive`, or the file stem). */
  readonly folder: string;
  /** The string keys of the top-level dict (empty if the root is not a dict). */
  readonly entries: readonly string[];
  /** Picks a state dict; `entry` defaults to readPth's option, then to the rules of stateDictFromPth. */
  stateDict(entry?: string): StateDict;
}

export interface PthReadOptions {
  /** Default entry for `stateDict()`: 'model' (default), 'model_ema', or any top-level key. */
  entry?: string;
}

/**
 * `collections.Counter`, which writePth pickles as Python does (`Counter({8: 1, 11: 1})`): torch's
 * MultiStepLR keeps its milestones in one, and its state_dict hands that over as is. Reading gives
 * a Map (pickle.ts counterGlobal).
 */
export class PthCounter {
  constructor(readonly counts: ReadonlyMap<number | string, number>) {}
}

/** Anything writePth can store: tensors, numbers, strings, bytes, Counters, and Maps / plain objects / arrays of them. */
export type PthValue =
  | Tensor
  | PthCounter
  | number
  | bigint
  | string
  | boolean
  | null
  | Uint8Array
  | readonly PthValue[]
  | ReadonlyMap<string | number, PthValue>
  | { readonly [key: string]: PthValue };

function bad(message: string): never {
  throw new SwiftFormerError('BAD_CHECKPOINT', message);
}

// ================================================================ storages and tensors

interface StorageType {
  readonly raw: RawDtype;
}

/** torch storage classes by the name pickled in the persistent id. */
const STORAGE_TYPES: Readonly<Record<string, StorageType>> = {
  FloatStorage: { raw: 'F32' },
  HalfStorage: { raw: 'F16' },
  BFloat16Storage: { raw: 'BF16' },
  DoubleStorage: { raw: 'F64' },
  LongStorage: { raw: 'I64' },
  IntStorage: { raw: 'I32' },
  ByteStorage: { raw: 'U8' },
  BoolStorage: { raw: 'BOOL' },
};

/** What a persistent id resolves to; decoded once, on first use by a tensor. */
class Storage {
  private decoded: Float32Array | BigInt64Array | undefined;
  constructor(
    readonly key: string,
    readonly type: StorageType,
    readonly numel: number,
    private readonly bytes: Uint8Array,
    private readonly littleEndian: boolean,
  ) {}
  elements(): Float32Array | BigInt64Array {
    return (this.decoded ??= decodeRaw(this.bytes, this.type.raw, this.littleEndian));
  }
}

/** Tensors this module decoded; a look-alike object built by a crafted pickle is not one. */
const decodedTensors = new WeakSet<object>();

function isDecodedTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && decodedTensors.has(value);
}

function isIntList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`. */
function rebuildTensor(args: unknown[]): Tensor {
  const [storage, offset, size, stride] = args;
  if (args.length < 4 || args.length > 7) bad(`_rebuild_tensor_v2 got ${args.length} arguments`);
  if (!(storage instanceof Storage)) bad(`_rebuild_tensor_v2 storage is a ${typeName(storage)}, not a storage`);
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) bad(`tensor in storage '${storage.key}' has a bad storage offset ${String(offset)}`);
  if (!isIntList(size) || !isIntList(stride) || size.length !== stride.length) {
    bad(`tensor in storage '${storage.key}' has a bad size ${JSON.stringify(size)} / stride ${JSON.stringify(stride)}`);
  }
  const tensor = gather(storage, offset as number, size, stride);
  decodedTensors.add(tensor);
  return tensor;
}

/** The furthest element the view touches must lie inside the storage. */
function checkViewBounds(storage: Storage, offset: number, size: readonly number[], stride: readonly number[]): void {
  if (numel(size) === 0) return;
  const last = size.reduce((sum, d, i) => sum + (d - 1) * stride[i]!, offset);
  if (!Number.isSafeInteger(last) || last >= storage.numel) {
    bad(`tensor of size [${size.join(', ')}] (offset ${offset}, stride [${stride.join(', ')}]) reaches element ${last} of storage '${storage.key}', which has ${storage.numel}`);
  }
}

function isContiguous(size: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    if (size[i] !== 1 && stride[i] !== expected) return false;
    expected *= size[i]!;
  }
  return true;
}

/** A C-order tensor from a strided view of a storage (a view when contiguous, a copy otherwise). */
function gather(storage: Storage, offset: number, size: number[], stride: number[]): Tensor {
  checkViewBounds(storage, offset, size, stride);
  const source = storage.elements();
  const count = numel(size);
  const data = isContiguous(size, stride) ? source.subarray(offset, offset + count) : copyStrided(source, offset, size, stride);
  const shape = [...size];
  return data instanceof Float32Array ? { dtype: 'float32', shape, data } : { dtype: 'int64', shape, data };
}

/** Walks the index space in C order with an odometer; the last axis is the inner loop. */
function copyStrided<T extends Float32Array | BigInt64Array>(source: T, offset: number, size: number[], stride: number[]): T {
  const count = numel(size);
  const out = (source instanceof Float32Array ? new Float32Array(count) : new BigInt64Array(count)) as T;
  if (count === 0) return out;
  const rank = size.length;
  const index = new Array<number>(rank).fill(0);
  const innerSize = size[rank - 1] ?? 1;
  const innerStride = stride[rank - 1] ?? 0;
  let base = offset;
  for (let written = 0; written < count; ) {
    for (let j = 0; j < innerSize; j++) out[written++] = source[base + j * innerStride]!;
    for (let axis = rank - 2; axis >= 0; axis--) {
      base += stride[axis]!;
      if (++index[axis]! < size[axis]!) break;
      base -= stride[axis]! * size[axis]!;
      index[axis] = 0;
    }
  }
  return out;
}

// ================================================================ reading

/** Keyed "module name" as the pickle VM wants. */
function pthGlobals(): Record<string, AllowedGlobal> {
  const globals: Record<string, AllowedGlobal> = {
    'collections OrderedDict': orderedDictGlobal,
    'collections Counter': counterGlobal,
    'torch._utils _rebuild_tensor_v2': { call: rebuildTensor },
    'torch._utils _rebuild_parameter': { call: rebuildParameter },
    'argparse Namespace': attributeObjectGlobal,
    // mmcv checkpoints' meta may hold numpy scalars (hook_msgs.best_score).
    'numpy dtype': numpyDtypeGlobal,
    'numpy.core.multiarray scalar': numpyScalarGlobal,
    'numpy._core.multiarray scalar': numpyScalarGlobal,
    '_codecs encode': codecsEncodeGlobal,
  };
  // Storage classes only appear inside persistent ids; they are never called.
  for (const name of Object.keys(STORAGE_TYPES)) globals[`torch ${name}`] = {};
  return globals;
}

/** `_rebuild_parameter(data, requires_grad, backward_hooks)`: a Parameter is just its tensor here. */
function rebuildParameter(args: unknown[]): unknown {
  if (!isDecodedTensor(args[0])) bad(`_rebuild_parameter data is a ${typeName(args[0])}, not a tensor`);
  return args[0];
}

/** The one folder holding data.pkl, whatever it is called. */
function findFolder(zip: ZipArchive): string {
  const names = [...zip.entries.keys()];
  const folders = names.filter((n) => /^([^/]+\/)?data\.pkl$/.test(n)).map((n) => n.slice(0, -'data.pkl'.length).replace(/\/$/, ''));
  if (folders.length === 1) return folders[0]!;
  const listed = names.slice(0, 8).join(', ') + (names.length > 8 ? ', ...' : '');
  if (folders.length === 0) bad(`not a torch.save checkpoint: no data.pkl in the zip (entries: ${listed})`);
  bad(`ambiguous checkpoint: data.pkl found in several folders (${folders.join(', ')})`);
}

async function readByteOrder(zip: ZipArchive, prefix: string): Promise<boolean> {
  const name = `${prefix}byteorder`;
  if (!zip.entries.has(name)) return true;
  const text = new TextDecoder().decode(await readZipEntry(zip, name)).trim();
  if (text !== 'little' && text !== 'big') bad(`checkpoint ${name} says ${JSON.stringify(text.slice(0, 20))}, expected 'little' or 'big'`);
  return text === 'little';
}

/** Storage bytes are read up front because unpickling (and so persistent_load) is synchronous. */
async function readStorageEntries(zip: ZipArchive, prefix: string): Promise<Map<string, Uint8Array>> {
  const dataPrefix = `${prefix}data/`;
  const storages = new Map<string, Uint8Array>();
  for (const name of zip.entries.keys()) {
    if (name.startsWith(dataPrefix) && !name.endsWith('/')) storages.set(name.slice(dataPrefix.length), await readZipEntry(zip, name));
  }
  return storages;
}

/** Resolves `('storage', StorageClass, key, location, numel)`; a key read twice gives the same Storage. */
function storageLoader(files: Map<string, Uint8Array>, littleEndian: boolean, prefix: string): (pid: unknown) => Storage {
  const loaded = new Map<string, Storage>();
  return (pid) => {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') bad(`unsupported persistent id ${describePid(pid)}`);
    const [, cls, key, , count] = pid as unknown[];
    const type = cls instanceof PickleGlobal && cls.module === 'torch' ? STORAGE_TYPES[cls.name] : undefined;
    if (!type) bad(`persistent id names storage type ${typeName(cls)}, which is not supported`);
    if (typeof key !== 'string' || !Number.isSafeInteger(count) || (count as number) < 0) bad(`malformed storage id ${describePid(pid)}`);
    const cached = loaded.get(key);
    if (cached) return checkSameStorage(cached, type, count as number);
    const bytes = files.get(key);
    if (!bytes) bad(`storage '${key}' is missing: no entry ${prefix}data/${key} in the zip`);
    const expected = (count as number) * RAW_DTYPE_SIZE[type.raw];
    if (bytes.length !== expected) {
      bad(`storage ${prefix}data/${key} holds ${bytes.length} bytes but ${count} ${type.raw} elements need ${expected}`);
    }
    const storage = new Storage(key, type, count as number, bytes, littleEndian);
    loaded.set(key, storage);
    return storage;
  };
}

function checkSameStorage(storage: Storage, type: StorageType, count: number): Storage {
  if (storage.type !== type || storage.numel !== count) bad(`storage '${storage.key}' is referenced with two different types or sizes`);
  return storage;
}

function describePid(pid: unknown): string {
  if (!Array.isArray(pid)) return typeName(pid);
  return `(${pid.map((p) => (typeof p === 'string' ? JSON.stringify(p) : typeName(p))).join(', ')})`;
}

/** Legacy (pre-1.6) torch.save files are a bare pickle starting with PROTO 2 and a LONG1 magic number. */
function isLegacyTorchFile(bytes: Uint8Array): boolean {
  return bytes[0] === 0x80 && bytes[1] === 0x02 && bytes[2] === 0x8a;
}

/** Decodes a torch.save checkpoint. Every problem with the bytes is a BAD_CHECKPOINT error. */
export async function readPth(bytes: Uint8Array, options: PthReadOptions = {}): Promise<PthFile> {
  if (isLegacyTorchFile(bytes)) {
    bad('legacy torch.save format (PyTorch < 1.6 or _use_new_zipfile_serialization=False) is not supported; re-save it with a recent PyTorch');
  }
  try {
    const zip = readZip(bytes);
    const folder = findFolder(zip);
    const prefix = folder === '' ? '' : `${folder}/`;
    const littleEndian = await readByteOrder(zip, prefix);
    const storages = await readStorageEntries(zip, prefix);
    const root = unpickle(await readZipEntry(zip, `${prefix}data.pkl`), {
      globals: pthGlobals(),
      persistentLoad: storageLoader(storages, littleEndian, prefix),
      source: `${prefix}data.pkl`,
      disallowedHint: 'Only state dicts and training checkpoints of tensors can be loaded; save model.state_dict() rather than the model.',
    });
    return makePthFile(root, folder, options.entry);
  } catch (e) {
    if (e instanceof SwiftFormerError) throw e;
    throw new SwiftFormerError('BAD_CHECKPOINT', `corrupt checkpoint: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

function makePthFile(root: unknown, folder: string, defaultEntry: string | undefined): PthFile {
  const entries = root instanceof Map ? [...root.keys()].filter((k): k is string => typeof k === 'string') : [];
  return { root, folder, entries, stateDict: (entry = defaultEntry) => selectStateDict(root, entry) };
}

/**
 * Reads a checkpoint and returns one state dict: `entry` if given (e.g. 'model_ema'), otherwise
 * the file itself when it is a bare state dict, else its 'model' entry, else 'state_dict'.
 */
export async function stateDictFromPth(bytes: Uint8Array, options: { entry?: string } = {}): Promise<StateDict> {
  return (await readPth(bytes, options)).stateDict();
}

// ================================================================ picking the state dict

function entryList(root: unknown): string {
  if (!(root instanceof Map)) return `the checkpoint is a ${typeName(root)}, not a dict`;
  const keys = [...root.keys()].map((k) => (typeof k === 'string' ? k : String(k)));
  return `entries: ${keys.length ? keys.join(', ') : 'none'}`;
}

/** A dict whose values are all tensors (and which has at least one). */
function isStateDict(value: unknown): value is Map<string, Tensor> {
  if (!(value instanceof Map) || value.size === 0) return false;
  for (const [key, item] of value) if (typeof key !== 'string' || !isDecodedTensor(item)) return false;
  return true;
}

function asStateDict(value: unknown, what: string): StateDict {
  if (!(value instanceof Map)) bad(`${what} is a ${typeName(value)}, not a state dict`);
  if (value.size === 0) bad(`${what} is an empty state dict`);
  for (const [key, item] of value) {
    if (typeof key !== 'string') bad(`${what} has a non-string key ${String(key)}`);
    if (!isDecodedTensor(item)) bad(`${what} is not a state dict: '${key}' holds a ${typeName(item)}, not a tensor`);
  }
  return new Map(value as Map<string, Tensor>);
}

/** The state-dict selection rules of stateDictFromPth, for an already decoded root object. */
export function selectStateDict(root: unknown, entry?: string): StateDict {
  if (entry !== undefined) {
    if (!(root instanceof Map) || !root.has(entry)) bad(`checkpoint has no '${entry}' entry (${entryList(root)})`);
    return asStateDict(root.get(entry), `checkpoint entry '${entry}'`);
  }
  if (isStateDict(root)) return asStateDict(root, 'the checkpoint');
  for (const key of ['model', 'state_dict']) {
    if (root instanceof Map && root.has(key)) return asStateDict(root.get(key), `checkpoint entry '${key}'`);
  }
  bad(`checkpoint holds no state dict: expected a 'model' or 'state_dict' entry or a dict of tensors (${entryList(root)})`);
}

// ================================================================ writing

function isTensorLike(value: unknown): value is Tensor {
  return isPlainObject(value) && (value.dtype === 'float32' || value.dtype === 'int64') && 'data' in value && 'shape' in value;
}

function cContiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= shape[i]!;
  }
  return strides;
}

function writeIntTuple(w: PickleWriter, values: readonly number[]): void {
  w.beginTuple(values.length);
  for (const v of values) w.int(v);
  w.endTuple(values.length);
}

function writeEmptyOrderedDict(w: PickleWriter): void {
  w.global('collections', 'OrderedDict');
  w.beginTuple(0);
  w.endTuple(0);
  w.reduce();
}

/** `_rebuild_tensor_v2(pid, 0, size, stride, False, OrderedDict())` with a fresh storage per tensor. */
function writeTensor(w: PickleWriter, tensor: Tensor, key: string): void {
  w.global('torch._utils', '_rebuild_tensor_v2');
  w.beginTuple(6);
  w.beginTuple(5);
  w.string('storage');
  w.global('torch', tensor.dtype === 'float32' ? 'FloatStorage' : 'LongStorage');
  w.string(key);
  w.string('cpu');
  w.int(tensor.data.length);
  w.endTuple(5);
  w.binPersId();
  w.int(0);
  writeIntTuple(w, tensor.shape);
  writeIntTuple(w, cContiguousStrides(tensor.shape));
  w.bool(false);
  writeEmptyOrderedDict(w);
  w.endTuple(6);
  w.reduce();
}

function checkFolderName(folder: string): void {
  if (!/^[A-Za-z0-9_.-]+$/.test(folder) || folder === '.' || folder === '..') {
    throw new SwiftFormerError('BAD_ARGUMENT', `checkpoint folder name ${JSON.stringify(folder)} must be a plain name (letters, digits, _ . -)`);
  }
}

/**
 * Writes a checkpoint that torch.load reads (plain torch.load, as the official main.py uses; torch
 * 1.13's weights_only=True loader refuses the BINFLOAT opcode of float values): a protocol 2 pickle
 * where Maps become OrderedDicts, plain objects dicts, arrays lists, integers ints and other
 * numbers floats, PthCounter a collections.Counter; each tensor gets its own storage `<folder>/data/<i>`.
 */
export function writePth(state: StateDict | PthValue, options: { folder?: string } = {}): Uint8Array {
  const folder = options.folder ?? 'archive';
  checkFolderName(folder);
  const storages: ZipWriteEntry[] = [];
  const pickle = pickleValue(state, (value, w, child, path) => {
    if (isTensorLike(value)) {
      checkTensorForWriting(path, value);
      const key = String(storages.length);
      storages.push({ name: `${folder}/data/${key}`, data: littleEndianBytes(value.data) });
      writeTensor(w, value, key);
      return true;
    }
    if (value instanceof Map) {
      writeEmptyOrderedDict(w);
      writeDictItems(w, [...value], child, false);
      return true;
    }
    if (value instanceof PthCounter) {
      // Counter.__reduce__: (Counter, (dict(self),))
      w.global('collections', 'Counter');
      w.beginTuple(1);
      writeDictItems(w, [...value.counts], child, true);
      w.endTuple(1);
      w.reduce();
      return true;
    }
    return false;
  });
  const text = (s: string): Uint8Array => new TextEncoder().encode(s);
  return writeZip([
    { name: `${folder}/data.pkl`, data: pickle },
    { name: `${folder}/byteorder`, data: text('little') },
    ...storages,
    { name: `${folder}/version`, data: text('3\n') },
  ]);
}
