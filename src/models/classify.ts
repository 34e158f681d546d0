/**
 * From logits to answers, one way for every caller (the model's `classify`, the CLI, the page, the
 * server): a float64 softmax, the top k, the label of each class. Logits holding NaN or infinity
 * are an error naming what they came from, never a ranking: NaN compares as neither larger nor
 * smaller, so a broken model would otherwise come out "100% correct" with a null score.
 */
import { SwiftFormerError } from '../core/errors.js';
import { labelOf } from './labels.js';

export interface Prediction { index: number; label: string; score: number }

/** Throws unless every value is finite; `what` names the image or batch in the message. */
export function checkFiniteLogits(values: ArrayLike<number>, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) {
      throw new SwiftFormerError('BAD_CHECKPOINT', `the model's logits for ${what} hold ${values[i]} (at index ${i}): its weights are broken (NaN or infinite values), so it cannot score anything`);
    }
  }
}

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

/** The `top` most probable classes of one row of logits, with their labels. */
export function predictions(logits: ArrayLike<number>, labels: readonly string[] | undefined, top: number, what: string): Prediction[] {
  checkFiniteLogits(logits, what);
  const probs = softmax(logits);
  return topK(probs, top).map((index) => ({ index, label: labelOf(labels, index), score: probs[index]! }));
}
