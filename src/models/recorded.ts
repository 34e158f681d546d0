/**
 * What a model trained by this library records in its weights' metadata (safetensors, and the
 * ONNX files it exports): the preprocessing its test set went through and its class names.
 * Read, and checked, here only.
 */
import type { Preprocessing } from '../preprocess/transforms.js';
import { SwiftFormerError } from '../core/errors.js';
import { inputHW } from './swiftformer.js';

function recordedJson(metadata: Readonly<Record<string, string>>, key: string): unknown {
  const text = metadata[key];
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new SwiftFormerError('BAD_CHECKPOINT', `the weights' ${key} metadata is not valid JSON`);
  }
}

/** The recorded preprocessing, or undefined for weights from elsewhere; malformed metadata is an error. */
export function recordedPreprocessing(metadata: Readonly<Record<string, string>>): Preprocessing | undefined {
  const p = recordedJson(metadata, 'swiftformer.preprocessing') as Preprocessing | undefined;
  if (p === undefined) return undefined;
  const ok = Array.isArray(p.inputSize) && p.inputSize.length === 2 && Array.isArray(p.normalization?.mean) && Array.isArray(p.normalization?.std)
    && Number.isInteger(p.pad) && typeof p.cropPct === 'number';
  if (!ok) throw new SwiftFormerError('BAD_CHECKPOINT', "the weights' swiftformer.preprocessing metadata is malformed");
  inputHW(p.inputSize);
  return p;
}

/** The recorded class names, or undefined. */
export function recordedLabels(metadata: Readonly<Record<string, string>>): string[] | undefined {
  const labels = recordedJson(metadata, 'swiftformer.labels');
  if (labels === undefined) return undefined;
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) {
    throw new SwiftFormerError('BAD_CHECKPOINT', "the weights' swiftformer.labels metadata is not a list of names");
  }
  return labels;
}
