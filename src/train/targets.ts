/**
 * Training targets as class-probability rows (N,K): smoothed one-hot labels and the two
 * distillation targets (DeiT's hard argmax, a tempered softmax).
 */
import { SwiftFormerError } from '../core/errors.js';
import type { FloatTensor } from '../core/tensor.js';

/** One-hot rows with label smoothing: (1 - eps) onehot + eps / K. labels: class indices. (N) -> (N,K). */
export function smoothTargets(labels: ArrayLike<number>, numClasses: number, smoothing = 0): FloatTensor {
  checkSmoothing(smoothing);
  const n = labels.length;
  const data = new Float32Array(n * numClasses).fill(smoothing / numClasses);
  const on = 1 - smoothing + smoothing / numClasses;
  for (let i = 0; i < n; i++) {
    const label = labels[i]!;
    if (!(Number.isInteger(label) && label >= 0 && label < numClasses)) throw new SwiftFormerError('BAD_ARGUMENT', `label ${label} is not a class index below ${numClasses}`);
    data[i * numClasses + label] = on;
  }
  return { dtype: 'float32', shape: [n, numClasses], data };
}

export function checkSmoothing(smoothing: number): void {
  if (!(smoothing >= 0 && smoothing < 1)) throw new SwiftFormerError('BAD_ARGUMENT', `label smoothing must be in [0, 1), got ${smoothing}`);
}

/** Hard distillation (DeiT): one-hot of the teacher's argmax. (N,K) logits -> (N,K). */
export function hardDistillTargets(teacherLogits: FloatTensor): FloatTensor {
  const [n, k] = teacherLogits.shape as [number, number];
  const data = new Float32Array(n * k);
  for (let i = 0; i < n; i++) data[i * k + argmaxRow(teacherLogits.data, i * k, k)] = 1;
  return { dtype: 'float32', shape: [n, k], data };
}

/**
 * Soft distillation: the teacher's softmax at temperature T. The step's loss is the cross-entropy
 * against it, which differs from DeiT's KL(teacher || student) only by the teacher's entropy (a
 * constant); DeiT also scales the KL by T^2, which `distillWeight` can absorb.
 */
export function softDistillTargets(teacherLogits: FloatTensor, temperature = 1): FloatTensor {
  if (!(temperature > 0)) throw new SwiftFormerError('BAD_ARGUMENT', `distillation temperature must be > 0, got ${temperature}`);
  const [n, k] = teacherLogits.shape as [number, number];
  const data = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    const row = i * k;
    let max = -Infinity;
    for (let j = 0; j < k; j++) max = Math.max(max, teacherLogits.data[row + j]! / temperature);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += data[row + j] = Math.exp(teacherLogits.data[row + j]! / temperature - max);
    for (let j = 0; j < k; j++) data[row + j] = data[row + j]! / sum;
  }
  return { dtype: 'float32', shape: [n, k], data };
}

/** Index of the largest of data[offset .. offset + k). */
export function argmaxRow(data: ArrayLike<number>, offset: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (data[offset + j]! > data[offset + best]!) best = j;
  return best;
}
