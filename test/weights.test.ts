/**
 * Checkpoint I/O without torch: zip, pickle, .pth and safetensors, checked against the
 * fixtures made by the official PyTorch code (see /work/shared/fixtures/README.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';

import { SwiftFormerError } from '../src/core/errors.js';
import { PickleWriter, unpickle, orderedDictGlobal } from '../src/weights/pickle.js';
import { PthCounter, readPth, stateDictFromPth, writePth } from '../src/weights/pth.js';
import { readSafetensors, writeSafetensors } from '../src/weights/safetensors.js';
import type { StateDict, Tensor } from '../src/core/tensor.js';
import { crc32, readZip, readZipEntry, writeZip } from '../src/weights/zip.js';

const FIXTURES = new URL('../../shared/fixtures/', import.meta.url);
const fixture = (path: string): Uint8Array => new Uint8Array(readFileSync(new URL(path, FIXTURES)));

const TINY_PARAMS = 194528;
const XS_PARAMS = 3475360;

// ---------------------------------------------------------------- helpers

function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Same keys in the same order, same dtypes and shapes, bit-identical data. */
function assertSameStateDict(actual: StateDict, expected: StateDict, what: string): void {
  assert.deepEqual([...actual.keys()], [...expected.keys()], `${what}: keys`);
  for (const [key, e] of expected) {
    const a = actual.get(key)!;
    assert.equal(a.dtype, e.dtype, `${what}: ${key} dtype`);
    assert.deepEqual(a.shape, e.shape, `${what}: ${key} shape`);
    assert.ok(Buffer.from(bytesOf(a)).equals(bytesOf(e)), `${what}: ${key} data differs`);
  }
}

/** Learnable parameters: float tensors other than BatchNorm running statistics. */
function countParameters(state: StateDict): number {
  let count = 0;
  for (const [key, t] of state) {
    if (t.dtype === 'float32' && !/running_(mean|var)$/.test(key)) count += t.data.length;
  }
  return count;
}

async function expectBad(run: () => unknown, fragment: string | RegExp): Promise<SwiftFormerError> {
  let error: unknown;
  try {
    await run();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof SwiftFormerError, `expected a SwiftFormerError, got ${String(error)}`);
  assert.equal(error.code, 'BAD_CHECKPOINT', error.message);
  if (typeof fragment === 'string') assert.ok(error.message.includes(fragment), `message ${JSON.stringify(error.message)} lacks ${JSON.stringify(fragment)}`);
  else assert.match(error.message, fragment);
  return error;
}

/** Any error, but it must be a SwiftFormerError (fuzzing: no TypeError/RangeError may escape). */
async function expectControlledFailure(run: () => unknown): Promise<void> {
  try {
    await run();
  } catch (e) {
    assert.ok(e instanceof SwiftFormerError, `uncontrolled ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
}

function replaceAll(bytes: Uint8Array, from: string, to: string): Uint8Array {
  assert.equal(from.length, to.length);
  const out = bytes.slice();
  const needle = Buffer.from(from);
  let count = 0;
  for (let at = Buffer.from(out.buffer).indexOf(needle); at >= 0; at = Buffer.from(out.buffer).indexOf(needle, at + 1)) {
    out.set(Buffer.from(to), at);
    count++;
  }
  assert.ok(count > 0, `${from} not found`);
  return out;
}

function f32(shape: number[], values: number[]): Tensor {
  return { dtype: 'float32', shape, data: Float32Array.from(values) };
}

/** A deterministic PRNG so that failures are reproducible. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A torch-style checkpoint with a hand-written pickle and raw storages. */
function handBuiltPth(pickle: Uint8Array, storages: Record<string, Uint8Array>, extra: Record<string, string> = {}): Uint8Array {
  const entries = [{ name: 'archive/data.pkl', data: pickle }];
  for (const [key, data] of Object.entries(storages)) entries.push({ name: `archive/data/${key}`, data });
  for (const [name, text] of Object.entries(extra)) entries.push({ name: `archive/${name}`, data: new TextEncoder().encode(text) });
  entries.push({ name: 'archive/version', data: new TextEncoder().encode('3\n') });
  return writeZip(entries);
}

/** Pickles `{'t': _rebuild_tensor_v2(storage '0', offset, size, stride)}`. */
function tensorPickle(storageClass: string, numel: number, offset: number, size: number[], stride: number[]): Uint8Array {
  const w = new PickleWriter();
  const ints = (values: number[]): void => {
    w.beginTuple(values.length);
    values.forEach((v) => w.int(v));
    w.endTuple(values.length);
  };
  w.proto(2);
  w.emptyDict();
  w.mark();
  w.string('t');
  w.global('torch._utils', '_rebuild_tensor_v2');
  w.beginTuple(6);
  w.beginTuple(5);
  w.string('storage');
  w.global('torch', storageClass);
  w.string('0');
  w.string('cpu');
  w.int(numel);
  w.endTuple(5);
  w.binPersId();
  w.int(offset);
  ints(size);
  ints(stride);
  w.bool(false);
  w.global('collections', 'OrderedDict');
  w.beginTuple(0);
  w.endTuple(0);
  w.reduce();
  w.endTuple(6);
  w.reduce();
  w.setItems();
  w.stop();
  return w.result();
}

interface RawZipEntry {
  name: string;
  stored: Uint8Array;
  size: number;
  crc: number;
  method: number;
}

/** Little-endian byte output for hand-built zips. */
class ByteBuilder {
  readonly bytes: number[] = [];
  u16(v: number): this {
    this.bytes.push(v & 0xff, (v >>> 8) & 0xff);
    return this;
  }
  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  u64(v: number): this {
    return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32));
  }
  raw(data: Iterable<number>): this {
    for (const b of data) this.bytes.push(b);
    return this;
  }
}

/**
 * A zip built field by field, for what writeZip does not produce: deflate, ZIP64 extra fields
 * (sizes and offset given only in 64 bits), a trailing comment.
 */
function rawZip(entries: RawZipEntry[], options: { zip64?: boolean; comment?: string } = {}): Uint8Array {
  const body = new ByteBuilder();
  const central = new ByteBuilder();
  const saturated = (v: number): number => (options.zip64 ? 0xffffffff : v);
  for (const e of entries) {
    const offset = body.bytes.length;
    const name = Buffer.from(e.name);
    body.u32(0x04034b50).u16(45).u16(0x0800).u16(e.method).u32(0).u32(e.crc).u32(e.stored.length).u32(e.size);
    body.u16(name.length).u16(0).raw(name).raw(e.stored);
    central.u32(0x02014b50).u16(45).u16(45).u16(0x0800).u16(e.method).u32(0).u32(e.crc);
    central.u32(saturated(e.stored.length)).u32(saturated(e.size)).u16(name.length).u16(options.zip64 ? 28 : 0);
    central.u16(0).u16(0).u16(0).u32(0).u32(saturated(offset)).raw(name);
    if (options.zip64) central.u16(1).u16(24).u64(e.size).u64(e.stored.length).u64(offset);
  }
  const comment = Buffer.from(options.comment ?? '');
  const end = new ByteBuilder().u32(0x06054b50).u16(0).u16(0).u16(entries.length).u16(entries.length);
  end.u32(central.bytes.length).u32(body.bytes.length).u16(comment.length).raw(comment);
  return Uint8Array.from([...body.bytes, ...central.bytes, ...end.bytes]);
}

function storedEntry(name: string, data: Uint8Array): RawZipEntry {
  return { name, stored: data, size: data.length, crc: crc32(data), method: 0 };
}

function deflatedEntry(name: string, data: Uint8Array): RawZipEntry {
  return { name, stored: new Uint8Array(deflateRawSync(data)), size: data.length, crc: crc32(data), method: 8 };
}

// ---------------------------------------------------------------- fixtures: tiny

test('tiny checkpoint.pth: model equals weights.safetensors and checkpoint_model_only.pth, bit for bit', async () => {
  const full = await readPth(fixture('tiny/checkpoint.pth'));
  assert.equal(full.folder, 'checkpoint');
  const model = full.stateDict();
  assert.equal(model.size, 184);
  assertSameStateDict(model, readSafetensors(fixture('tiny/weights.safetensors')).tensors, 'checkpoint.pth vs weights.safetensors');
  const modelOnly = await readPth(fixture('tiny/checkpoint_model_only.pth'));
  assert.equal(modelOnly.folder, 'checkpoint_model_only');
  assert.deepEqual(modelOnly.entries, ['model']);
  assertSameStateDict(modelOnly.stateDict(), model, 'checkpoint_model_only.pth vs checkpoint.pth');
  assert.equal(countParameters(model), TINY_PARAMS);
});

test('tiny checkpoint.pth: training-checkpoint layout, args as an object, model_ema differs', async () => {
  const full = await readPth(fixture('tiny/checkpoint.pth'));
  assert.deepEqual(full.entries, ['model', 'optimizer', 'lr_scheduler', 'epoch', 'model_ema', 'scaler', 'args']);
  const root = full.root as Map<string, unknown>;
  assert.equal(root.get('epoch'), 299);
  const args = root.get('args') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(args), Object.prototype);
  assert.equal(args['model'], 'SwiftFormer_tiny');
  assert.equal(args['batch_size'], 128);
  assert.equal(args['model_ema_decay'], 0.99996);
  assert.equal(args['n_parameters'], TINY_PARAMS);
  const optimizer = root.get('optimizer') as Map<string, unknown>;
  const groups = optimizer.get('param_groups') as Map<string, unknown>[];
  assert.deepEqual(groups[0]?.get('betas'), [0.9, 0.999]);
  assert.equal(groups[0]?.get('foreach'), null);

  const model = full.stateDict();
  const ema = full.stateDict('model_ema');
  assert.deepEqual([...ema.keys()], [...model.keys()]);
  let differing = 0;
  for (const [key, t] of model) {
    if (!Buffer.from(bytesOf(t)).equals(bytesOf(ema.get(key)!))) differing++;
  }
  assert.ok(differing > model.size / 2, `only ${differing} of ${model.size} tensors differ between model and model_ema`);
  assertSameStateDict(await stateDictFromPth(fixture('tiny/checkpoint.pth'), { entry: 'model_ema' }), ema, 'entry option');
  assertSameStateDict((await readPth(fixture('tiny/checkpoint.pth'), { entry: 'model_ema' })).stateDict(), ema, 'readPth entry option');
});

test('stateDictFromPth: a missing entry names the available ones; non-state-dict entries are refused', async () => {
  const error = await expectBad(() => stateDictFromPth(fixture('tiny/checkpoint_model_only.pth'), { entry: 'model_ema' }), "no 'model_ema' entry");
  assert.ok(error.message.includes('entries: model'), error.message);
  await expectBad(() => stateDictFromPth(fixture('tiny/checkpoint.pth'), { entry: 'optimizer' }), "entry 'optimizer'");
  await expectBad(() => stateDictFromPth(fixture('tiny/checkpoint.pth'), { entry: 'epoch' }), 'not a state dict');
});

// ---------------------------------------------------------------- fixtures: xs

test('xs checkpoint_model_only.pth: parameter count, w_g shape, int64 buffers, shared values with fork_feat weights', async () => {
  const state = await stateDictFromPth(fixture('xs/checkpoint_model_only.pth'));
  assert.equal(countParameters(state), XS_PARAMS);
  assert.deepEqual(state.get('network.0.2.attn.w_g')?.shape, [48, 1]);
  const tracked = [...state].filter(([key]) => key.endsWith('num_batches_tracked'));
  assert.ok(tracked.length > 0);
  for (const [key, t] of tracked) {
    assert.equal(t.dtype, 'int64', key);
    assert.ok(t.data instanceof BigInt64Array, key);
    assert.deepEqual(t.shape, []);
  }
  const forkFeat = readSafetensors(fixture('xs/fork_feat_weights.safetensors')).tensors;
  let shared = 0;
  for (const [key, t] of forkFeat) {
    const mine = state.get(key);
    if (!mine) continue;
    shared++;
    assert.ok(Buffer.from(bytesOf(mine)).equals(bytesOf(t)), key);
  }
  assert.ok(shared > 250, `only ${shared} shared keys`);
});

// ---------------------------------------------------------------- round trips

test('writeSafetensors → readSafetensors keeps order (also integer-like names), shapes, bits and metadata', async () => {
  const tiny = readSafetensors(fixture('tiny/weights.safetensors'));
  assert.deepEqual(tiny.metadata, { variant: 'tiny', seed: '0' });
  const again = readSafetensors(writeSafetensors(tiny.tensors, tiny.metadata));
  assertSameStateDict(again.tensors, tiny.tensors, 'safetensors round trip');
  assert.deepEqual(again.metadata, tiny.metadata);

  const odd: StateDict = new Map<string, Tensor>([
    ['10', f32([2], [1, 2])],
    ['count', { dtype: 'int64', shape: [], data: BigInt64Array.from([-5n]) }],
    ['2', f32([1, 3], [-0, NaN, Infinity])], // misaligned after the 8-byte int: read by copying
    ['empty', f32([0, 4], [])],
  ]);
  const bytes = writeSafetensors(odd);
  assert.equal(new DataView(bytes.buffer).getUint32(0, true) % 8, 0, 'header padded to 8 bytes');
  const back = readSafetensors(bytes);
  assertSameStateDict(back.tensors, odd, 'odd names');
  assert.deepEqual(back.metadata, {});
});

test('readSafetensors converts F16, BF16 and F64 to float32', () => {
  const header = JSON.stringify({
    h: { dtype: 'F16', shape: [3], data_offsets: [0, 6] },
    b: { dtype: 'BF16', shape: [2], data_offsets: [6, 10] },
    d: { dtype: 'F64', shape: [1], data_offsets: [10, 18] },
  });
  const data = new Uint8Array(18);
  const view = new DataView(data.buffer);
  [0x3c00, 0xc000, 0x0001].forEach((bits, i) => view.setUint16(2 * i, bits, true)); // 1, -2, smallest subnormal
  view.setUint16(6, 0x3fc0, true); // 1.5
  view.setUint16(8, 0xff80, true); // -inf
  view.setFloat64(10, 0.1, true);
  const file = Buffer.concat([Buffer.alloc(8), Buffer.from(header), data]);
  file.writeBigUInt64LE(BigInt(header.length), 0);
  const { tensors } = readSafetensors(new Uint8Array(file));
  assert.deepEqual([...tensors.keys()], ['h', 'b', 'd']);
  assert.deepEqual([...tensors.get('h')!.data], [1, -2, 2 ** -24]);
  assert.deepEqual([...tensors.get('b')!.data], [1.5, -Infinity]);
  assert.deepEqual([...tensors.get('d')!.data], [Math.fround(0.1)]);
});

test('writePth → readPth keeps keys, order, shapes and bits; nested objects come back', async () => {
  const model = await stateDictFromPth(fixture('tiny/checkpoint_model_only.pth'));
  const bare = await readPth(writePth(model));
  assert.equal(bare.folder, 'archive');
  assertSameStateDict(bare.stateDict(), model, 'bare state dict');

  const nested = writePth(
    { model, epoch: 3, lr: 0.5, big: 2n ** 70n, neg: -70000, name: 'tiny', args: { flag: true, none: null, list: [1, 'a'] }, milestones: new PthCounter(new Map([[8, 1], [11, 2]])) },
    { folder: 'my_ckpt' },
  );
  const file = await readPth(nested);
  assert.equal(file.folder, 'my_ckpt');
  assertSameStateDict(file.stateDict(), model, 'nested model');
  const root = file.root as Map<string, unknown>;
  assert.equal(root.get('epoch'), 3);
  assert.equal(root.get('lr'), 0.5);
  assert.equal(root.get('big'), 2n ** 70n);
  assert.equal(root.get('neg'), -70000);
  assert.equal(root.get('name'), 'tiny');
  assert.deepEqual(root.get('args'), new Map<string, unknown>([['flag', true], ['none', null], ['list', [1, 'a']]]));
  assert.deepEqual(root.get('milestones'), new Map([[8, 1], [11, 2]]), 'a Counter comes back as the Map of its counts');

  const zip = readZip(nested);
  assert.deepEqual(new TextDecoder().decode(await readZipEntry(zip, 'my_ckpt/version')), '3\n');
  assert.deepEqual(new TextDecoder().decode(await readZipEntry(zip, 'my_ckpt/byteorder')), 'little');
  for (const entry of zip.entries.values()) {
    if (entry.name.includes('/data/')) assert.equal(entry.dataOffset % 64, 0, `${entry.name} is not 64-byte aligned`);
  }
});

test('writePth refuses malformed tensors and bad folder names', () => {
  const bad: Tensor = { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) };
  assert.throws(() => writePth(new Map([['w', bad]])), (e: unknown) => e instanceof SwiftFormerError && e.code === 'BAD_ARGUMENT');
  assert.throws(() => writePth(new Map(), { folder: '../x' }), (e: unknown) => e instanceof SwiftFormerError && e.code === 'BAD_ARGUMENT');
});

// ---------------------------------------------------------------- hand-built pickles

test('a transposed (strided) tensor with a storage offset decodes to C order', async () => {
  const storage = new Float32Array([9, 0, 1, 2, 3, 4, 5]); // element 0 is skipped by the offset
  // The storage read as [2, 3] is [[0, 1, 2], [3, 4, 5]]; its transpose is [3, 2] with stride [1, 3].
  const file = handBuiltPth(tensorPickle('FloatStorage', 7, 1, [3, 2], [1, 3]), { '0': new Uint8Array(storage.buffer) });
  const t = (await readPth(file)).stateDict().get('t')!;
  assert.deepEqual(t.shape, [3, 2]);
  assert.deepEqual([...t.data], [0, 3, 1, 4, 2, 5]);

  const expanded = handBuiltPth(tensorPickle('FloatStorage', 7, 2, [2, 3], [0, 1]), { '0': new Uint8Array(storage.buffer) });
  assert.deepEqual([...(await stateDictFromPth(expanded)).get('t')!.data], [1, 2, 3, 1, 2, 3]);
});

test('half, double, int and big-endian storages', async () => {
  const half = new Uint16Array([0x3c00, 0x3800, 0xbc00]); // 1, 0.5, -1
  let t = (await stateDictFromPth(handBuiltPth(tensorPickle('HalfStorage', 3, 0, [3], [1]), { '0': new Uint8Array(half.buffer) }))).get('t')!;
  assert.equal(t.dtype, 'float32');
  assert.deepEqual([...t.data], [1, 0.5, -1]);

  const double = new Float64Array([0.25, 1e40]);
  t = (await stateDictFromPth(handBuiltPth(tensorPickle('DoubleStorage', 2, 0, [2], [1]), { '0': new Uint8Array(double.buffer) }))).get('t')!;
  assert.deepEqual([...t.data], [0.25, Infinity]);

  const ints = new Int32Array([-3, 7]);
  t = (await stateDictFromPth(handBuiltPth(tensorPickle('IntStorage', 2, 0, [2], [1]), { '0': new Uint8Array(ints.buffer) }))).get('t')!;
  assert.equal(t.dtype, 'int64');
  assert.deepEqual([...t.data], [-3n, 7n]);

  const bigEndian = new Uint8Array([0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]); // 1, -2
  const file = handBuiltPth(tensorPickle('FloatStorage', 2, 0, [2], [1]), { '0': bigEndian }, { byteorder: 'big' });
  assert.deepEqual([...(await stateDictFromPth(file)).get('t')!.data], [1, -2]);
});

test('a view past the end of its storage, a wrong storage size and a missing storage are refused', async () => {
  const four = new Uint8Array(new Float32Array(4).buffer);
  await expectBad(() => readPth(handBuiltPth(tensorPickle('FloatStorage', 4, 1, [2, 2], [2, 1]), { '0': four })), "storage '0', which has 4");
  await expectBad(() => readPth(handBuiltPth(tensorPickle('FloatStorage', 5, 0, [4], [1]), { '0': four })), 'holds 16 bytes but 5 F32 elements need 20');
  await expectBad(() => readPth(handBuiltPth(tensorPickle('FloatStorage', 4, 0, [4], [1]), {})), "storage '0' is missing");
});

// ---------------------------------------------------------------- hostile and broken files

test('truncated, empty and random files are clear BAD_CHECKPOINT errors', async () => {
  const full = fixture('tiny/checkpoint.pth');
  const zip = readZip(full);
  const pkl = zip.entries.get('checkpoint/data.pkl')!;
  const firstCentral = Buffer.from(full.buffer, full.byteOffset, full.byteLength).indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  const cuts = [10, pkl.dataOffset + 1000, pkl.dataOffset + pkl.size - 1, 1_000_000, firstCentral + 500, full.length - 30, full.length - 1];
  for (const cut of cuts) {
    await expectBad(() => readPth(full.subarray(0, cut)), `checkpoint is truncated: zip central directory not found (file is ${cut} bytes`);
  }
  await expectBad(() => readPth(new Uint8Array(0)), 'empty');
  const random = new Uint8Array(4096).map(prng(1)).map((x) => Math.floor(x * 256));
  random[0] = 0x13; // not a zip, safetensors or pickle by accident
  await expectBad(() => readPth(random), 'not a zip archive');
  await expectBad(() => readPth(Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 1, 2, 3])), 'legacy torch.save format');
});

test('zip damage: central directory pointing past the end, bad local header, corrupt data', async () => {
  const good = writePth(new Map([['w', f32([2], [1, 2])]]));
  const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const centralAt = (b: Uint8Array, index: number): number => {
    let at = view(b).getUint32(b.length - 6, true);
    for (let i = 0; i < index; i++) at += 46 + view(b).getUint16(at + 28, true);
    return at;
  };
  // Entry 2 is archive/data/0; claim it is much larger than the file.
  const tooLong = good.slice();
  view(tooLong).setUint32(centralAt(tooLong, 2) + 20, 1_000_000, true);
  view(tooLong).setUint32(centralAt(tooLong, 2) + 24, 1_000_000, true);
  await expectBad(() => readPth(tooLong), `zip entry "archive/data/0" runs past the end of the file`);

  const badLocal = good.slice();
  view(badLocal).setUint32(0, 0x12345678, true);
  await expectBad(() => readPth(badLocal), 'local header of "archive/data.pkl" at offset 0 has a bad signature');

  const flipped = good.slice();
  const storageAt = readZip(good).entries.get('archive/data/0')!.dataOffset;
  flipped[storageAt]! ^= 0xff;
  await expectBad(() => readPth(flipped), 'CRC-32 mismatch');

  const noPickle = writeZip([{ name: 'archive/version', data: new Uint8Array([0x33, 0x0a]) }]);
  await expectBad(() => readPth(noPickle), 'no data.pkl');
});

test('zip entry names that could escape a folder are refused', async () => {
  const base = writeZip([
    { name: 'xx/evil', data: new Uint8Array(1) },
    { name: 'archive/data.pkl', data: new Uint8Array([0x80, 0x02, 0x4e, 0x2e]) },
  ]);
  await expectBad(() => readPth(replaceAll(base, 'xx/evil', '../evil')), "contains a '..' segment");
  await expectBad(() => readZip(replaceAll(base, 'xx/evil', 'a/../ev')), "contains a '..' segment");
  await expectBad(() => readZip(replaceAll(base, 'xx/evil', '/x/evil')), 'absolute path');
  await expectBad(() => readZip(replaceAll(base, 'xx/evil', 'C:/evil')), 'absolute path');
  await expectBad(() => readZip(replaceAll(base, 'xx/evil', 'xx\\evil')), 'backslash');
  await expectBad(() => readZip(replaceAll(base, 'xx/evil', 'xx/ev\0l')), 'NUL');
  assert.throws(() => writeZip([{ name: '../evil', data: new Uint8Array(1) }]), (e: unknown) => e instanceof SwiftFormerError && e.code === 'BAD_ARGUMENT');
});

test('zip reader: deflate, ZIP64 extra fields and a trailing comment', async () => {
  const text = new TextEncoder().encode('hello deflate '.repeat(100));
  const zip = readZip(rawZip([deflatedEntry('a/text', text), storedEntry('a/raw', Uint8Array.from([1, 2, 3]))], { zip64: true, comment: 'PK\x05\x06 fake' }));
  assert.deepEqual([...zip.entries.keys()], ['a/text', 'a/raw']);
  assert.deepEqual(await readZipEntry(zip, 'a/text'), text);
  assert.deepEqual([...(await readZipEntry(zip, 'a/raw'))], [1, 2, 3]);

  const broken = deflatedEntry('a/text', text);
  broken.stored = broken.stored.slice(0, 10);
  await expectBad(() => readZipEntry(readZip(rawZip([broken])), 'a/text'), 'cannot inflate');
  await expectBad(() => readZipEntry(readZip(rawZip([{ ...storedEntry('a/x', text), method: 12 }])), 'a/x'), 'unsupported compression method 12');
});

test('pickles naming dangerous globals are refused by name', async () => {
  const call = (module: string, name: string): Uint8Array => {
    const w = new PickleWriter();
    w.proto(2);
    w.global(module, name);
    w.string('echo pwned');
    w.beginTuple(1);
    w.endTuple(1);
    w.reduce();
    w.stop();
    return w.result();
  };
  await expectBad(() => readPth(handBuiltPth(call('os', 'system'), {})), "refusing to load global 'os.system'");
  await expectBad(() => readPth(handBuiltPth(call('posix', 'system'), {})), "'posix.system'");
  await expectBad(() => readPth(handBuiltPth(call('subprocess', 'Popen'), {})), "'subprocess.Popen'");
  await expectBad(() => readPth(handBuiltPth(call('__builtin__', 'eval'), {})), "'__builtin__.eval'");
  // Protocol 4 STACK_GLOBAL: builtins.eval('1')
  const stackGlobal = Uint8Array.from([0x80, 4, 0x8c, 8, ...Buffer.from('builtins'), 0x8c, 4, ...Buffer.from('eval'), 0x93, 0x8c, 1, 0x31, 0x85, 0x52, 0x2e]);
  await expectBad(() => readPth(handBuiltPth(stackGlobal, {})), "refusing to load global 'builtins.eval'");
  // An allowed class may still not be called in ways it does not support.
  await expectBad(() => readPth(handBuiltPth(call('torch', 'FloatStorage'), {})), 'cannot be called');
});

test('broken pickles: unknown opcode, underflow, missing memo, truncation, absurd lengths', async () => {
  const run = (bytes: number[]): unknown => unpickle(Uint8Array.from(bytes), { globals: { 'collections OrderedDict': orderedDictGlobal }, source: 'test.pkl' });
  await expectBad(() => run([0x80, 2, 0xff]), 'unknown pickle opcode 0xff');
  await expectBad(() => run([0x80, 2, 0xff]), 'offset 2');
  await expectBad(() => run([0x80, 2, 0x69]), 'unsupported pickle opcode INST');
  await expectBad(() => run([0x80, 2, 0x52]), 'stack underflow');
  await expectBad(() => run([0x80, 2, 0x2e]), 'stack underflow');
  await expectBad(() => run([0x80, 2, 0x68, 5, 0x2e]), 'memo entry 5');
  await expectBad(() => run([0x80, 2, 0x4e]), 'without a STOP');
  await expectBad(() => run([0x80, 2, 0x58, 0xe8, 0x03, 0, 0, 0x61, 0x62]), 'pickle is truncated: BINUNICODE needs 1000 bytes');
  await expectBad(() => run([0x80, 2, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), 'larger than the whole pickle');
  await expectBad(() => run([0x80, 2, 0x74]), 'TUPLE without a preceding MARK');
  await expectBad(() => run([0x80, 2, 0x4e, 0x4e, 0x61, 0x2e]), 'APPEND on a None');
  await expectBad(() => run([0x80, 2, 0x51, 0x2e]), 'stack underflow');
  await expectBad(() => run([0x80, 2, 0x4e, 0x51, 0x2e]), 'persistent id');
  assert.deepEqual(run([0x80, 2, 0x8a, 2, 0x00, 0x80, 0x2e]), -32768);
  assert.deepEqual(run([0x80, 2, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x2e]), 2n ** 64n);
});

test('safetensors damage: header past EOF, offsets past EOF, bad dtype, overlap, bad JSON', async () => {
  const good = fixture('tiny/weights.safetensors');
  const make = (header: unknown, dataLength: number): Uint8Array => {
    const json = Buffer.from(JSON.stringify(header));
    const out = Buffer.alloc(8 + json.length + dataLength);
    out.writeBigUInt64LE(BigInt(json.length), 0);
    json.copy(out, 8);
    return new Uint8Array(out);
  };
  await expectBad(() => readSafetensors(good.subarray(0, 5)), 'too short');
  await expectBad(() => readSafetensors(good.subarray(0, 1000)), 'header length 17528 runs past the end of the file (file is 1000 bytes)');
  await expectBad(() => readSafetensors(good.subarray(0, good.length - 4)), "'dist_head.bias' data_offsets");
  await expectBad(() => readSafetensors(good.subarray(0, good.length - 4)), 'run past the end of the file');
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
  await expectBad(() => readSafetensors(huge), '100 MB');
  await expectBad(() => readSafetensors(make({ x: { dtype: 'I32', shape: [1], data_offsets: [0, 4] } }, 4)), "tensor 'x' has dtype I32");
  await expectBad(() => readSafetensors(make({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, 8)), 'holds 4 bytes but shape [2] of F32 needs 8');
  await expectBad(
    () => readSafetensors(make({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8)),
    'overlap',
  );
  await expectBad(() => readSafetensors(make({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4)), 'invalid shape');
  await expectBad(() => readSafetensors(make({ __metadata__: { a: 1 } }, 0)), '__metadata__');
  const notJson = Buffer.from('\x05\0\0\0\0\0\0\0{nope');
  await expectBad(() => readSafetensors(new Uint8Array(notJson)), 'not valid JSON');
});

test('fuzz: random damage to a checkpoint or a pickle only ever raises SwiftFormerError', async () => {
  const random = prng(7);
  const file = writePth({ model: new Map([['w', f32([2, 2], [1, 2, 3, 4])], ['n', { dtype: 'int64', shape: [], data: BigInt64Array.from([3n]) }]]), epoch: 1 });
  const pickle = (await readZipEntry(readZip(file), 'archive/data.pkl')).slice();
  const safetensors = writeSafetensors(new Map([['w', f32([2, 2], [1, 2, 3, 4])], ['v', f32([1], [5])]]), { a: 'b' });
  const allowed = { 'collections OrderedDict': orderedDictGlobal };
  for (let i = 0; i < 300; i++) {
    const damagedFile = file.slice();
    const damagedPickle = pickle.slice();
    const damagedSafetensors = safetensors.slice();
    for (let k = 0; k < 3; k++) {
      for (const damaged of [damagedFile, damagedPickle, damagedSafetensors]) {
        damaged[Math.floor(random() * damaged.length)] = Math.floor(random() * 256);
      }
    }
    await expectControlledFailure(() => readPth(damagedFile));
    await expectControlledFailure(() => unpickle(damagedPickle, { globals: allowed, persistentLoad: (pid) => pid }));
    await expectControlledFailure(() => readSafetensors(damagedSafetensors));
  }
});
