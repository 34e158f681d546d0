/**
 * A small pickle VM and writer.
 *
 * Unpickling arbitrary data runs arbitrary code in Python; here it cannot, because the VM only
 * resolves globals that the caller lists, and every other `GLOBAL` / `STACK_GLOBAL` is an error
 * naming it. Supported: protocol 2 plus the cheap protocol 3/4 opcodes (bytes, short/8-byte
 * unicode, FRAME, MEMOIZE, STACK_GLOBAL, sets, NEWOBJ_EX). Not supported: the protocol 0/1
 * class opcodes INST/OBJ, text PERSID, STRING/UNICODE text literals, the extension registry
 * (EXT1/2/4) and protocol 5 out-of-band buffers.
 *
 * Python values map to JS as: None → null, bool → boolean, int → number (bigint beyond 2^53),
 * float → number, str → string, bytes → Uint8Array, tuple and list → array, dict → Map
 * (insertion order kept, any key type), set / frozenset → Set. Objects built by allowed
 * globals are whatever their handlers return.
 */
import { SwiftFormerError } from '../core/errors.js';

/** How the VM may use one allowed global. A missing hook makes that use an error. */
export interface AllowedGlobal {
  /** REDUCE: `global(*args)`. */
  call?: (args: unknown[]) => unknown;
  /** NEWOBJ / NEWOBJ_EX: `cls.__new__(cls, *args, **kwargs)`. */
  construct?: (args: unknown[], kwargs: Map<unknown, unknown>) => unknown;
  /** BUILD on an object this global produced: `obj.__setstate__(state)`. */
  build?: (obj: unknown, state: unknown) => void;
}

/** Allowed globals keyed by `"module name"`, e.g. `"collections OrderedDict"`. */
export type AllowedGlobals = Readonly<Record<string, AllowedGlobal>>;

export interface UnpickleOptions {
  globals: AllowedGlobals;
  /** Resolves BINPERSID ids; without it, a persistent id is an error. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Names the stream in error messages, e.g. `checkpoint/data.pkl`. */
  source?: string;
  /** Appended to the error for a global that is not allowed. */
  disallowedHint?: string;
}

/** What GLOBAL pushes: a reference to an allowed global, callable through its handler. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: AllowedGlobal,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** `collections.OrderedDict`: a Map. Instance state (torch's `_metadata`) is accepted and dropped. */
export const orderedDictGlobal: AllowedGlobal = {
  call: (args) => new Map(pairsOf(args[0])),
  construct: () => new Map(),
  build: () => undefined,
};

/**
 * `collections.Counter(dict)`: a Map (torchvision's references/detection checkpoints hold one,
 * MultiStepLR's milestones, in their lr_scheduler entry).
 */
export const counterGlobal: AllowedGlobal = {
  call: (args) => {
    const counts = args[0] ?? null;
    if (counts !== null && !(counts instanceof Map)) bad(`Counter argument is a ${typeName(counts)}, not a dict`);
    return new Map(counts ?? []);
  },
  construct: () => new Map(),
  build: () => undefined,
};

/** A class whose instances become plain objects of their attributes (e.g. `argparse.Namespace`). */
export const attributeObjectGlobal: AllowedGlobal = {
  call: () => ({}),
  construct: (_args, kwargs) => {
    const obj = {};
    assignAttributes(obj, kwargs);
    return obj;
  },
  build: (obj, state) => assignAttributes(obj, state),
};

/** A numpy dtype as its pickle describes it: the type code ('f8', 'i8', ...) and the byte order. */
class NumpyDtype {
  littleEndian = true;
  constructor(readonly code: string) {}
}

const NUMPY_SCALARS: Readonly<Record<string, { size: number; read: (v: DataView, le: boolean) => number | bigint | boolean }>> = {
  f8: { size: 8, read: (v, le) => v.getFloat64(0, le) },
  f4: { size: 4, read: (v, le) => v.getFloat32(0, le) },
  i8: { size: 8, read: (v, le) => v.getBigInt64(0, le) },
  i4: { size: 4, read: (v, le) => v.getInt32(0, le) },
  i2: { size: 2, read: (v, le) => v.getInt16(0, le) },
  i1: { size: 1, read: (v) => v.getInt8(0) },
  u8: { size: 8, read: (v, le) => v.getBigUint64(0, le) },
  u4: { size: 4, read: (v, le) => v.getUint32(0, le) },
  u2: { size: 2, read: (v, le) => v.getUint16(0, le) },
  u1: { size: 1, read: (v) => v.getUint8(0) },
  b1: { size: 1, read: (v) => v.getUint8(0) !== 0 },
};

/**
 * numpy scalars, as mmcv checkpoints' `meta` holds them (a `hook_msgs.best_score` of np.float64):
 * `numpy.dtype(code, align, copy)` with its BUILD state, and `numpy.core.multiarray.scalar(dtype,
 * bytes)`, which becomes a JS number (bigint beyond 2^53) or boolean. Only plain numeric dtypes.
 */
export const numpyDtypeGlobal: AllowedGlobal = {
  call: (args) => {
    const code = args[0];
    if (typeof code !== 'string' || !(code in NUMPY_SCALARS)) bad(`numpy dtype ${JSON.stringify(code)} is not a plain numeric type`);
    return new NumpyDtype(code);
  },
  build: (obj, state) => {
    const order = Array.isArray(state) ? state[1] : undefined;
    if (!(obj instanceof NumpyDtype) || (order !== '<' && order !== '>' && order !== '|' && order !== '=')) bad('malformed numpy dtype state');
    obj.littleEndian = order !== '>';
  },
};

export const numpyScalarGlobal: AllowedGlobal = {
  call: (args) => {
    const [dtype, data] = args;
    if (!(dtype instanceof NumpyDtype) || !(data instanceof Uint8Array)) bad('numpy scalar expects (dtype, bytes)');
    const kind = NUMPY_SCALARS[dtype.code]!;
    if (data.length !== kind.size) bad(`numpy ${dtype.code} scalar holds ${data.length} bytes`);
    const value = kind.read(new DataView(data.buffer, data.byteOffset, data.length), dtype.littleEndian);
    return typeof value === 'bigint' && value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  },
};

/** `_codecs.encode(text, 'latin1')`: how protocol 2 pickles bytes (numpy scalars' data). */
export const codecsEncodeGlobal: AllowedGlobal = {
  call: (args) => {
    const [text, encoding] = args;
    if (typeof text !== 'string' || encoding !== 'latin1') bad("_codecs.encode is only accepted as encode(str, 'latin1')");
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code > 255) bad('_codecs.encode latin1 text holds a character above U+00FF');
      out[i] = code;
    }
    return out;
  },
};

function pairsOf(items: unknown): [unknown, unknown][] {
  if (items === undefined || items === null) return [];
  if (!Array.isArray(items)) bad('OrderedDict argument is not a list of pairs');
  return items.map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2) bad('OrderedDict argument is not a list of pairs');
    return [pair[0], pair[1]];
  });
}

/** defineProperty (not assignment) so a key such as `__proto__` stays an ordinary own property. */
function assignAttributes(obj: unknown, state: unknown): void {
  if (state === null) return;
  // (dict_state, slot_state) is how objects with __slots__ pickle their state.
  const dicts = Array.isArray(state) && state.length === 2 ? state : [state];
  for (const dict of dicts) {
    if (dict === null) continue;
    if (!(dict instanceof Map) || typeof obj !== 'object' || obj === null) bad('BUILD state is not a dict of attributes');
    for (const [key, value] of dict) {
      if (typeof key !== 'string') bad(`attribute name is a ${typeName(key)}, not a string`);
      Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
    }
  }
}

function bad(message: string): never {
  throw new SwiftFormerError('BAD_CHECKPOINT', message);
}

export function typeName(value: unknown): string {
  if (value === null) return 'None';
  if (Array.isArray(value)) return 'tuple/list';
  if (value instanceof Map) return 'dict';
  if (value instanceof Set) return 'set';
  if (value instanceof Uint8Array) return 'bytes';
  if (value instanceof PickleGlobal) return `global ${value.qualifiedName}`;
  return typeof value;
}

/** Opcode names, for error messages (including the ones this VM refuses). */
const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT',
  0x4a: 'BININT', 0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID',
  0x51: 'BINPERSID', 0x52: 'REDUCE', 0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND', 0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT',
  0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET', 0x69: 'INST', 0x6a: 'LONG_BINGET',
  0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT',
  0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1',
  0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4',
  0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Runs a pickle and returns the object STOP leaves. Every failure is a BAD_CHECKPOINT error. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  const vm = new Unpickler(bytes, options);
  try {
    return vm.run();
  } catch (e) {
    if (e instanceof SwiftFormerError) {
      throw new SwiftFormerError(e.code, `${vm.source}: ${e.message} (pickle opcode at offset ${vm.opcodeOffset})`, { cause: e });
    }
    const detail = (e as Error)?.message ?? String(e);
    throw new SwiftFormerError('BAD_CHECKPOINT', `${vm.source}: malformed pickle at offset ${vm.opcodeOffset} (${detail})`, { cause: e });
  }
}

class Unpickler {
  readonly source: string;
  opcodeOffset = 0;
  private pos = 0;
  private stack: unknown[] = [];
  private readonly marks: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  /** Which global produced an object, so BUILD can find its `build` hook. */
  private readonly producers = new WeakMap<object, AllowedGlobal>();
  private readonly globals: ReadonlyMap<string, AllowedGlobal>;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: UnpickleOptions,
  ) {
    this.source = options.source ?? 'pickle';
    this.globals = new Map(Object.entries(options.globals));
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  run(): unknown {
    for (;;) {
      this.opcodeOffset = this.pos;
      if (this.pos >= this.bytes.length) {
        bad(`pickle is truncated: reached the end of ${this.bytes.length} bytes without a STOP opcode`);
      }
      const opcode = this.bytes[this.pos++]!;
      if (opcode === 0x2e) return this.pop('STOP');
      this.step(opcode);
    }
  }

  // ------------------------------------------------------------ reading the stream

  private take(n: number, what: string): Uint8Array {
    if (!(n >= 0 && this.pos + n <= this.bytes.length)) {
      bad(`pickle is truncated: ${what} needs ${n} bytes at offset ${this.pos} but only ${this.bytes.length - this.pos} remain`);
    }
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private u8(what: string): number {
    return this.take(1, what)[0]!;
  }
  private u16(what: string): number {
    this.take(2, what);
    return this.view.getUint16(this.pos - 2, true);
  }
  private u32(what: string): number {
    this.take(4, what);
    return this.view.getUint32(this.pos - 4, true);
  }
  private i32(what: string): number {
    this.take(4, what);
    return this.view.getInt32(this.pos - 4, true);
  }
  /** An 8-byte length: anything beyond the remaining bytes fails in take() anyway, so cap it early. */
  private u64(what: string): number {
    this.take(8, what);
    const value = this.view.getBigUint64(this.pos - 8, true);
    if (value > BigInt(this.bytes.length)) bad(`${what} of ${value} bytes is larger than the whole pickle`);
    return Number(value);
  }
  private line(what: string): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) bad(`pickle is truncated: ${what} has no terminating newline`);
    const text = latin1.decode(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return text;
  }
  private text(n: number, what: string): string {
    const raw = this.take(n, what);
    try {
      return utf8.decode(raw);
    } catch {
      return bad(`${what} is not valid UTF-8`);
    }
  }

  // ------------------------------------------------------------ the stack

  private push(value: unknown): void {
    this.stack.push(value);
  }
  private pop(opname: string): unknown {
    if (this.stack.length === 0) bad(`pickle stack underflow: ${opname} needs an item but the stack is empty`);
    return this.stack.pop();
  }
  private top(opname: string): unknown {
    if (this.stack.length === 0) bad(`pickle stack underflow: ${opname} needs an item but the stack is empty`);
    return this.stack[this.stack.length - 1];
  }
  private mark(): void {
    this.marks.push(this.stack);
    this.stack = [];
  }
  /** Items pushed since the last MARK, which is removed. */
  private popMark(opname: string): unknown[] {
    const below = this.marks.pop();
    if (below === undefined) bad(`${opname} without a preceding MARK`);
    const items = this.stack;
    this.stack = below;
    return items;
  }
  private popTuple(n: number, opname: string): unknown[] {
    const items: unknown[] = new Array<unknown>(n);
    for (let i = n - 1; i >= 0; i--) items[i] = this.pop(opname);
    return items;
  }

  // ------------------------------------------------------------ memo

  private memoGet(index: number, opname: string): void {
    if (!this.memo.has(index)) bad(`${opname} refers to memo entry ${index}, which was never stored`);
    this.push(this.memo.get(index));
  }
  private memoPut(index: number, opname: string): void {
    this.memo.set(index, this.top(opname));
  }
  private decimal(what: string): number {
    const text = this.line(what);
    if (!/^\d{1,15}$/.test(text)) bad(`${what} ${JSON.stringify(text)} is not a memo index`);
    return Number(text);
  }

  // ------------------------------------------------------------ dispatch

  private step(opcode: number): void {
    switch (opcode) {
      case 0x80: return this.proto();
      case 0x95: return void this.u64('FRAME length');
      case 0x28: return this.mark();
      case 0x30: return this.popOrMark();
      case 0x31: return void this.popMark('POP_MARK');
      case 0x32: return this.push(this.top('DUP'));
      case 0x4e: return this.push(null);
      case 0x88: return this.push(true);
      case 0x89: return this.push(false);
      case 0x4b: return this.push(this.u8('BININT1'));
      case 0x4d: return this.push(this.u16('BININT2'));
      case 0x4a: return this.push(this.i32('BININT'));
      case 0x8a: return this.push(this.long(this.u8('LONG1 length'), 'LONG1'));
      case 0x8b: return this.push(this.long(this.i32('LONG4 length'), 'LONG4'));
      case 0x49: return this.push(this.textInt(this.line('INT')));
      case 0x4c: return this.push(this.textInt(this.line('LONG').replace(/L$/, '')));
      case 0x46: return this.push(this.textFloat(this.line('FLOAT')));
      case 0x47: return this.push(this.binFloat());
      case 0x58: return this.push(this.text(this.u32('BINUNICODE length'), 'BINUNICODE'));
      case 0x8c: return this.push(this.text(this.u8('SHORT_BINUNICODE length'), 'SHORT_BINUNICODE'));
      case 0x8d: return this.push(this.text(this.u64('BINUNICODE8 length'), 'BINUNICODE8'));
      case 0x54: return this.push(latin1.decode(this.take(this.i32('BINSTRING length'), 'BINSTRING')));
      case 0x55: return this.push(latin1.decode(this.take(this.u8('SHORT_BINSTRING length'), 'SHORT_BINSTRING')));
      case 0x42: return this.push(this.take(this.u32('BINBYTES length'), 'BINBYTES').slice());
      case 0x43: return this.push(this.take(this.u8('SHORT_BINBYTES length'), 'SHORT_BINBYTES').slice());
      case 0x8e: return this.push(this.take(this.u64('BINBYTES8 length'), 'BINBYTES8').slice());
      case 0x29: return this.push([]);
      case 0x85: return this.push(this.popTuple(1, 'TUPLE1'));
      case 0x86: return this.push(this.popTuple(2, 'TUPLE2'));
      case 0x87: return this.push(this.popTuple(3, 'TUPLE3'));
      case 0x74: return this.push(this.popMark('TUPLE'));
      case 0x5d: return this.push([]);
      case 0x6c: return this.push(this.popMark('LIST'));
      case 0x61: return this.append([this.pop('APPEND')], 'APPEND');
      case 0x65: return this.append(this.popMark('APPENDS'), 'APPENDS');
      case 0x7d: return this.push(new Map());
      case 0x64: return this.push(this.setItems(new Map(), this.popMark('DICT'), 'DICT'));
      case 0x73: return this.setItemOnTop(this.popTuple(2, 'SETITEM'), 'SETITEM');
      case 0x75: return this.setItemOnTop(this.popMark('SETITEMS'), 'SETITEMS');
      case 0x8f: return this.push(new Set());
      case 0x90: return this.addItems(this.popMark('ADDITEMS'));
      case 0x91: return this.push(new Set(this.popMark('FROZENSET')));
      case 0x68: return this.memoGet(this.u8('BINGET'), 'BINGET');
      case 0x6a: return this.memoGet(this.u32('LONG_BINGET'), 'LONG_BINGET');
      case 0x67: return this.memoGet(this.decimal('GET'), 'GET');
      case 0x71: return this.memoPut(this.u8('BINPUT'), 'BINPUT');
      case 0x72: return this.memoPut(this.u32('LONG_BINPUT'), 'LONG_BINPUT');
      case 0x70: return this.memoPut(this.decimal('PUT'), 'PUT');
      case 0x94: return this.memoPut(this.memo.size, 'MEMOIZE');
      case 0x63: return this.push(this.resolve(this.line('GLOBAL module'), this.line('GLOBAL name')));
      case 0x93: return this.stackGlobal();
      case 0x52: return this.reduce();
      case 0x81: return this.newObj(new Map(), 'NEWOBJ');
      case 0x92: return this.newObjEx();
      case 0x62: return this.build();
      case 0x51: return this.persistentId();
      default: return this.unsupported(opcode);
    }
  }

  private unsupported(opcode: number): never {
    const hex = `0x${opcode.toString(16).padStart(2, '0')}`;
    const name = OPCODE_NAMES[opcode];
    if (name) bad(`unsupported pickle opcode ${name} (${hex})`);
    bad(`unknown pickle opcode ${hex} (corrupt data?)`);
  }

  private proto(): void {
    const version = this.u8('PROTO');
    if (version > 5) bad(`pickle protocol ${version} is not supported`);
  }

  /** POP of an empty frame discards the MARK itself, as CPython does. */
  private popOrMark(): void {
    if (this.stack.length === 0 && this.marks.length > 0) this.popMark('POP');
    else this.pop('POP');
  }

  // ------------------------------------------------------------ scalars

  /** Little-endian two's complement of n bytes. */
  private long(n: number, opname: string): number | bigint {
    if (n < 0) bad(`${opname} has a negative length ${n}`);
    const raw = this.take(n, opname);
    let value = 0n;
    for (let i = raw.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(raw[i]!);
    if (n > 0 && raw[n - 1]! & 0x80) value -= 1n << BigInt(8 * n);
    return narrowInt(value);
  }
  private textInt(text: string): number | bigint | boolean {
    if (text === '00') return false;
    if (text === '01') return true;
    if (!/^[+-]?\d+$/.test(text)) bad(`integer literal ${JSON.stringify(text.slice(0, 40))} is malformed`);
    return narrowInt(BigInt(text));
  }
  private textFloat(text: string): number {
    const value = Number(text);
    if (Number.isNaN(value) && !/^[+-]?nan$/i.test(text)) bad(`float literal ${JSON.stringify(text.slice(0, 40))} is malformed`);
    return value;
  }
  private binFloat(): number {
    this.take(8, 'BINFLOAT');
    return this.view.getFloat64(this.pos - 8, false);
  }

  // ------------------------------------------------------------ containers

  private append(items: unknown[], opname: string): void {
    const list = this.top(opname);
    if (!Array.isArray(list)) bad(`${opname} on a ${typeName(list)}, not a list`);
    for (const item of items) list.push(item);
  }
  private setItems(dict: Map<unknown, unknown>, items: unknown[], opname: string): Map<unknown, unknown> {
    if (items.length % 2 !== 0) bad(`${opname} has an odd number of items (${items.length})`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
    return dict;
  }
  private setItemOnTop(items: unknown[], opname: string): void {
    const dict = this.top(opname);
    if (!(dict instanceof Map)) bad(`${opname} on a ${typeName(dict)}, not a dict`);
    this.setItems(dict, items, opname);
  }
  private addItems(items: unknown[]): void {
    const set = this.top('ADDITEMS');
    if (!(set instanceof Set)) bad(`ADDITEMS on a ${typeName(set)}, not a set`);
    for (const item of items) set.add(item);
  }

  // ------------------------------------------------------------ globals and objects

  private resolve(module: string, name: string): PickleGlobal {
    // Whitespace would make "module name" keys ambiguous; no real global has any.
    const handler = /\s/.test(module + name) ? undefined : this.globals.get(`${module} ${name}`);
    if (handler === undefined) {
      const allowed = [...this.globals.keys()].map((k) => k.replace(' ', '.')).join(', ');
      const hint = this.options.disallowedHint ? ` ${this.options.disallowedHint}` : '';
      bad(`refusing to load global '${printable(module)}.${printable(name)}': it is not on the allow-list (${allowed}).${hint}`);
    }
    return new PickleGlobal(module, name, handler);
  }
  private stackGlobal(): void {
    const name = this.pop('STACK_GLOBAL');
    const module = this.pop('STACK_GLOBAL');
    if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL needs two strings');
    this.push(this.resolve(module, name));
  }
  private produced(handler: AllowedGlobal, value: unknown): unknown {
    if (typeof value === 'object' && value !== null) this.producers.set(value, handler);
    return value;
  }
  private reduce(): void {
    const args = this.pop('REDUCE');
    const callable = this.pop('REDUCE');
    if (!(callable instanceof PickleGlobal)) bad(`REDUCE calls a ${typeName(callable)}, which is not callable`);
    if (!Array.isArray(args)) bad(`REDUCE arguments for ${callable.qualifiedName} are a ${typeName(args)}, not a tuple`);
    const call = callable.handler.call;
    if (!call) bad(`global '${callable.qualifiedName}' cannot be called (REDUCE)`);
    this.push(this.produced(callable.handler, call(args)));
  }
  private newObj(kwargs: Map<unknown, unknown>, opname: string): void {
    const args = this.pop(opname);
    const cls = this.pop(opname);
    if (!(cls instanceof PickleGlobal)) bad(`${opname} on a ${typeName(cls)}, which is not a class`);
    if (!Array.isArray(args)) bad(`${opname} arguments for ${cls.qualifiedName} are a ${typeName(args)}, not a tuple`);
    const construct = cls.handler.construct;
    if (!construct) bad(`global '${cls.qualifiedName}' cannot be instantiated (${opname})`);
    this.push(this.produced(cls.handler, construct(args, kwargs)));
  }
  private newObjEx(): void {
    const kwargs = this.pop('NEWOBJ_EX');
    if (!(kwargs instanceof Map)) bad(`NEWOBJ_EX keyword arguments are a ${typeName(kwargs)}, not a dict`);
    this.newObj(kwargs, 'NEWOBJ_EX');
  }
  private build(): void {
    const state = this.pop('BUILD');
    const obj = this.top('BUILD');
    const handler = typeof obj === 'object' && obj !== null ? this.producers.get(obj) : undefined;
    if (handler?.build) return handler.build(obj, state);
    if (state === null) return;
    bad(`BUILD (setting state) on a ${typeName(obj)} is not supported`);
  }
  private persistentId(): void {
    const pid = this.pop('BINPERSID');
    if (!this.options.persistentLoad) bad('pickle has a persistent id (BINPERSID) but nothing can resolve it');
    this.push(this.options.persistentLoad(pid));
  }
}

/** A name from the stream as it may appear in a message: control characters escaped, length capped. */
function printable(text: string): string {
  const escaped = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text).slice(1, -1);
  return escaped.replace(/[\u007f-\u00ff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
}

function narrowInt(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

// ================================================================ writer

function argumentError(message: string): never {
  throw new SwiftFormerError('BAD_ARGUMENT', message);
}

/**
 * Low-level pickle output: each method appends one value or opcode. The caller is responsible
 * for a well-formed sequence; `pickleValue` below does that for plain data.
 */
export class PickleWriter {
  private buffer = new Uint8Array(1024);
  private length = 0;
  private readonly encoder = new TextEncoder();

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  private op(...bytes: number[]): void {
    const at = this.reserve(bytes.length);
    this.buffer.set(bytes, at);
  }
  private raw(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length); // may replace this.buffer, so it comes first
    this.buffer.set(bytes, at);
  }
  /** Room for `n` bytes, as a DataView positioned on them. */
  private field(n: number): DataView {
    const at = this.reserve(n);
    return new DataView(this.buffer.buffer, at, n);
  }
  private u32(value: number): void {
    this.field(4).setUint32(0, value, true);
  }

  proto(version: number): void {
    this.op(0x80, version);
  }
  mark(): void {
    this.op(0x28);
  }
  none(): void {
    this.op(0x4e);
  }
  bool(value: boolean): void {
    this.op(value ? 0x88 : 0x89);
  }
  int(value: number | bigint): void {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) argumentError(`cannot pickle ${value} as an int`);
    const n = BigInt(value);
    if (n >= 0n && n < 0x100n) return this.op(0x4b, Number(n));
    if (n >= 0n && n < 0x10000n) return this.op(0x4d, Number(n & 0xffn), Number(n >> 8n));
    if (n >= -0x80000000n && n < 0x80000000n) {
      this.op(0x4a);
      return this.field(4).setInt32(0, Number(n), true);
    }
    const bytes = twosComplement(n);
    this.op(0x8a, bytes.length, ...bytes);
  }
  float(value: number): void {
    this.op(0x47);
    this.field(8).setFloat64(0, value, false);
  }
  string(value: string): void {
    const bytes = this.encoder.encode(value);
    this.op(0x58);
    this.u32(bytes.length);
    this.raw(bytes);
  }
  /** SHORT_BINBYTES/BINBYTES are protocol 3, but Python's unpickler accepts them in any stream. */
  bytes(value: Uint8Array): void {
    if (value.length < 0x100) this.op(0x43, value.length);
    else {
      this.op(0x42);
      this.u32(value.length);
    }
    this.raw(value);
  }
  global(module: string, name: string): void {
    if (/[\n]/.test(module + name)) argumentError(`global name ${module}.${name} contains a newline`);
    this.op(0x63);
    this.raw(this.encoder.encode(`${module}\n${name}\n`));
  }
  /** Call before writing the items of a tuple of `count` items; pair with endTuple. */
  beginTuple(count: number): void {
    if (count > 3) this.mark();
  }
  endTuple(count: number): void {
    const ops = [0x29, 0x85, 0x86, 0x87];
    this.op(ops[count] ?? 0x74);
  }
  emptyList(): void {
    this.op(0x5d);
  }
  appends(): void {
    this.op(0x65);
  }
  emptyDict(): void {
    this.op(0x7d);
  }
  setItems(): void {
    this.op(0x75);
  }
  reduce(): void {
    this.op(0x52);
  }
  binPersId(): void {
    this.op(0x51);
  }
  build(): void {
    this.op(0x62);
  }
  stop(): void {
    this.op(0x2e);
  }
  /** The bytes written so far. */
  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

/** Minimal little-endian two's complement, as LONG1 wants it. */
function twosComplement(value: bigint): number[] {
  const bytes: number[] = [];
  let rest = value;
  for (;;) {
    const byte = Number(rest & 0xffn);
    bytes.push(byte);
    rest >>= 8n;
    const signBit = (byte & 0x80) !== 0;
    if ((rest === 0n && !signBit) || (rest === -1n && signBit)) return bytes;
  }
}

/**
 * Writes `value` itself if it knows how and returns true; returns false to fall back to the
 * default encoding. `child` encodes nested values with the same rules.
 */
export type PickleEncoder = (value: unknown, writer: PickleWriter, child: (value: unknown, key: string) => void, path: string) => boolean;

/**
 * Pickles plain data with protocol 2: null, booleans, numbers (integers become Python ints,
 * others floats), bigints, strings, Uint8Array (bytes), arrays (lists), Maps and plain objects
 * (dicts). `encode` can take over any value first (e.g. tensors, OrderedDicts).
 */
export function pickleValue(value: unknown, encode?: PickleEncoder): Uint8Array {
  const writer = new PickleWriter();
  const active = new Set<object>();
  const write = (item: unknown, path: string): void => {
    if (typeof item === 'object' && item !== null) {
      if (active.has(item)) argumentError(`cannot pickle a cycle (at ${path})`);
      active.add(item);
    }
    const child = (next: unknown, key: string): void => write(next, `${path}.${key}`);
    if (!encode?.(item, writer, child, path)) writeDefault(writer, item, child, path);
    if (typeof item === 'object' && item !== null) active.delete(item);
  };
  writer.proto(2);
  write(value, '(root)');
  writer.stop();
  return writer.result();
}

function writeDefault(w: PickleWriter, value: unknown, child: (value: unknown, key: string) => void, path: string): void {
  if (value === null) return w.none();
  switch (typeof value) {
    case 'boolean': return w.bool(value);
    case 'bigint': return w.int(value);
    case 'number': return Number.isSafeInteger(value) && !Object.is(value, -0) ? w.int(value) : w.float(value);
    case 'string': return w.string(value);
  }
  if (value instanceof Uint8Array) return w.bytes(value);
  if (Array.isArray(value)) return writeList(w, value, child);
  if (value instanceof Map) return writeDictItems(w, [...value], child, true);
  if (isPlainObject(value)) return writeDictItems(w, Object.entries(value), child, true);
  argumentError(`cannot pickle a ${describe(value)} (at ${path})`);
}

function writeList(w: PickleWriter, items: readonly unknown[], child: (value: unknown, key: string) => void): void {
  w.emptyList();
  if (items.length === 0) return;
  w.mark();
  items.forEach((item, i) => child(item, String(i)));
  w.appends();
}

/** Writes `{}` (when `empty`) then the items with SETITEMS; also used after an OrderedDict(). */
export function writeDictItems(
  w: PickleWriter,
  entries: readonly (readonly [unknown, unknown])[],
  child: (value: unknown, key: string) => void,
  empty: boolean,
): void {
  if (empty) w.emptyDict();
  if (entries.length === 0) return;
  w.mark();
  for (const [key, value] of entries) {
    child(key, '(key)');
    child(value, String(key));
  }
  w.setItems();
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (typeof value === 'object' && value !== null) return value.constructor?.name ?? 'object';
  return typeof value;
}
