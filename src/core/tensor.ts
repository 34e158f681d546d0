import { SwiftFormerError } from './errors.js';

/** A dense tensor in C order: the one data type that crosses module boundaries. */
export type Tensor =
  | { dtype: 'float32'; shape: number[]; data: Float32Array }
  | { dtype: 'int64'; shape: number[]; data: BigInt64Array };

export type FloatTensor = Extract<Tensor, { dtype: 'float32' }>;

/** Parameters and buffers by their official state_dict key, in file order. */
export type StateDict = Map<string, Tensor>;

/** BN running statistics and counters: state, not trainable parameters. */
export function isBuffer(key: string): boolean {
  return /\.(running_mean|running_var|num_batches_tracked)$/.test(key);
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function float32(shape: number[], data?: Float32Array): FloatTensor {
  const size = numel(shape);
  if (data && data.length !== size) {
    throw new SwiftFormerError('BAD_SHAPE', `tensor data has ${data.length} values, shape [${shape}] needs ${size}`);
  }
  return { dtype: 'float32', shape, data: data ?? new Float32Array(size) };
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Tensors that agree after the first axis, joined along it: single images [1, C, H, W] into a
 * batch; `allocate` gives the joined data's buffer (a server reuses its buffers).
 */
export function concatBatch(tensors: readonly FloatTensor[], allocate?: (bytes: number) => ArrayBuffer): FloatTensor {
  const first = tensors[0];
  if (!first) throw new SwiftFormerError('BAD_SHAPE', 'no tensors to put in a batch');
  const rest = first.shape.slice(1);
  let rows = 0;
  for (const t of tensors) {
    if (!sameShape(t.shape.slice(1), rest)) throw new SwiftFormerError('BAD_SHAPE', `cannot batch a ${formatShape(t.shape)} tensor with ${formatShape(first.shape)}`);
    rows += t.shape[0]!;
  }
  const count = rows * numel(rest);
  const data = allocate ? new Float32Array(allocate(count * 4), 0, count) : new Float32Array(count);
  let offset = 0;
  for (const t of tensors) {
    data.set(t.data, offset);
    offset += t.data.length;
  }
  return { dtype: 'float32', shape: [rows, ...rest], data };
}
