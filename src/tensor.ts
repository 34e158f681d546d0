import { SwiftFormerError } from './errors.js';

/** A dense tensor in C order: the one data type that crosses module boundaries. */
export type Tensor =
  | { dtype: 'float32'; shape: number[]; data: Float32Array }
  | { dtype: 'int64'; shape: number[]; data: BigInt64Array };

export type FloatTensor = Extract<Tensor, { dtype: 'float32' }>;

/** Parameters and buffers by their official state_dict key, in file order. */
export type StateDict = Map<string, Tensor>;

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
