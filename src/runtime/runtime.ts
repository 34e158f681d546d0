/**
 * The engine interface and its registry. Platform entries (node/platform.ts, browser.ts) register a
 * backend; nothing else in the library knows which ONNX Runtime build is underneath.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { FloatTensor, Tensor } from '../core/tensor.js';

export interface SessionOptions {
  /** Intra-op threads (default: the backend's choice). */
  threads?: number;
  /** ONNX Runtime graph optimization level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write an ONNX Runtime profile (JSON) with this file prefix. */
  profilePrefix?: string;
  /**
   * false: intermediate buffers are malloc'ed and freed in every run instead of being kept in ONNX
   * Runtime's CPU arena, which only grows. Runs are slower that way (XS at 224 lost 15-25% on 2
   * cores), so `serve` keeps the arena and gives it back by reopening idle sessions instead
   * (Sessions.trim). Default true.
   */
  memoryArena?: boolean;
}

export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, FloatTensor>): Promise<Record<string, FloatTensor>>;
  /** The same with int64 tensors among the feeds and outputs (a detector's labels and indices). */
  runTyped(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
  /** true once the session cannot run any more (its worker thread exited): open a new one. */
  readonly gone?: boolean;
}

export interface Backend {
  readonly name: string;
  /** `model` is ONNX bytes, or a file path where the platform has files. */
  createSession(model: Uint8Array | string, options?: SessionOptions): Promise<Session>;
}

/** Tensors' data given away by their owner, with what to do with the buffer after the run. */
const handedOver = new WeakMap<ArrayBufferView, Recycle | undefined>();

/** Takes a handed-over buffer back once the run that had it is done (it may be a new object for the same memory). */
export type Recycle = (buffer: ArrayBuffer) => void;

/**
 * Marks a tensor whose data its owner will not read again (a batch the server joined for one run),
 * so that a backend running in another thread may move its buffer there instead of copying it.
 * Unmarked tensors are copied: a caller may run the same input twice. A backend that moved the
 * buffer passes it to `recycle` when it comes back after the run (an owner that reuses buffers).
 */
export function handOver<T extends Tensor>(tensor: T, recycle?: Recycle): T {
  handedOver.set(tensor.data, recycle);
  return tensor;
}

export function isHandedOver(data: ArrayBufferView): boolean {
  return handedOver.has(data);
}

export function recyclerOf(data: ArrayBufferView): Recycle | undefined {
  return handedOver.get(data);
}

const backends = new Map<string, Backend>();
let preferred: string | undefined;

export function registerBackend(backend: Backend, options: { preferred?: boolean } = {}): void {
  backends.set(backend.name, backend);
  if (options.preferred || !preferred) preferred = backend.name;
}

export function getBackend(name?: string): Backend {
  const key = name ?? preferred;
  const backend = key === undefined ? undefined : backends.get(key);
  if (!backend) {
    const known = [...backends.keys()].join(', ') || 'none';
    throw new SwiftFormerError('UNSUPPORTED', `no runtime backend ${key ? `'${key}'` : ''} registered (registered: ${known}); import 'swiftformer' from its node or browser entry`);
  }
  return backend;
}
