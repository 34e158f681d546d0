/**
 * Class predictions from logits, as `classify --json` prints them and the server's /v1 classify
 * answers: softmax in float64, the top k, `{ index, label, score }` rows.
 */
import { labelOf } from './labels.js';

export interface Prediction { index: number; label: string; score: number }

/** Softmax in float64 (max subtracted first). */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i]! - max);
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topK(values: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b]! - values[a]! || a - b);
  return idx.slice(0, Math.min(k, idx.length));
}

/** The k most probable classes of one row of logits. */
export function topPredictions(logits: ArrayLike<number>, labels: readonly string[] | undefined, k: number): Prediction[] {
  const probs = softmax(logits);
  return topK(probs, k).map((index) => ({ index, label: labelOf(labels, index), score: probs[index]! }));
}
