/**
 * What a loaded model knows about itself, parsed and validated once: its task, its class names
 * and palette, and the input pipeline a model trained here recorded. Every consumer (library,
 * CLI, page, server) reads these typed fields; the string metadata of weight and ONNX files is
 * read and written here only.
 */
import { SwiftFormerError } from '../core/errors.js';
import { inputHW } from './swiftformer.js';
import type { Preprocessing } from '../preprocess/transforms.js';

/** What a model's outputs mean. 'features' is the fork_feat backbone (four stage maps). */
export type Task = 'classification' | 'features' | 'segmentation' | 'detection';

export type RGB = [number, number, number];

export interface ModelCard {
  readonly task: Task;
  /** Class names by index, when the weights (or their repository) name them. */
  readonly labels?: readonly string[];
  /** A display color per class (segmentation). */
  readonly palette?: readonly RGB[];
  /** The input pipeline of a model trained here; absent: the official evaluation transform. */
  readonly preprocessing?: Preprocessing;
}

/** Metadata keys of safetensors and ONNX files written by this library. */
export const CARD_KEYS = {
  task: 'swiftformer.task',
  labels: 'swiftformer.labels',
  palette: 'swiftformer.palette',
  preprocessing: 'swiftformer.preprocessing',
} as const;

const TASKS: readonly Task[] = ['classification', 'features', 'segmentation', 'detection'];

function json(metadata: Readonly<Record<string, string>>, key: string): unknown {
  const text = metadata[key];
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new SwiftFormerError('BAD_CHECKPOINT', `the weights' ${key} metadata is not valid JSON`);
  }
}

function malformed(key: string, why: string): SwiftFormerError {
  return new SwiftFormerError('BAD_CHECKPOINT', `the weights' ${key} metadata is malformed: ${why}`);
}

function readPreprocessing(metadata: Readonly<Record<string, string>>): Preprocessing | undefined {
  const p = json(metadata, CARD_KEYS.preprocessing) as Preprocessing | undefined;
  if (p === undefined) return undefined;
  const ok = Array.isArray(p.inputSize) && p.inputSize.length === 2 && Array.isArray(p.normalization?.mean) && Array.isArray(p.normalization?.std)
    && Number.isInteger(p.pad) && typeof p.cropPct === 'number';
  if (!ok) throw malformed(CARD_KEYS.preprocessing, 'expected { inputSize, normalization: { mean, std }, pad, cropPct }');
  inputHW(p.inputSize);
  return p;
}

function readLabels(metadata: Readonly<Record<string, string>>): string[] | undefined {
  const labels = json(metadata, CARD_KEYS.labels);
  if (labels === undefined) return undefined;
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw malformed(CARD_KEYS.labels, 'not a list of names');
  return labels;
}

export function checkPalette(palette: unknown, name: string): RGB[] {
  const isByte = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255;
  if (!Array.isArray(palette) || !palette.every((c) => Array.isArray(c) && c.length === 3 && c.every(isByte))) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${name} is not a list of [r, g, b] colors with values in 0..255`);
  }
  return palette as RGB[];
}

/**
 * The card of a weight or ONNX file's metadata; `task` is what the weights' layout says when the
 * metadata does not record it. Malformed metadata is an error naming the key.
 */
export function readCard(metadata: Readonly<Record<string, string>>, task: Task): ModelCard {
  const recordedTask = metadata[CARD_KEYS.task];
  if (recordedTask !== undefined && !TASKS.includes(recordedTask as Task)) throw malformed(CARD_KEYS.task, `unknown task '${recordedTask}'`);
  const labels = readLabels(metadata);
  const palette = json(metadata, CARD_KEYS.palette);
  const preprocessing = readPreprocessing(metadata);
  return {
    task: (recordedTask as Task | undefined) ?? task,
    ...(labels ? { labels } : {}),
    ...(palette !== undefined ? { palette: checkPalette(palette, `the weights' ${CARD_KEYS.palette} metadata`) } : {}),
    ...(preprocessing ? { preprocessing } : {}),
  };
}

/** The metadata that records a card (for safetensors and ONNX files). */
export function cardMetadata(card: ModelCard): Record<string, string> {
  const out: Record<string, string> = { [CARD_KEYS.task]: card.task };
  if (card.labels) out[CARD_KEYS.labels] = JSON.stringify(card.labels);
  if (card.palette) out[CARD_KEYS.palette] = JSON.stringify(card.palette);
  if (card.preprocessing) out[CARD_KEYS.preprocessing] = JSON.stringify(card.preprocessing);
  return out;
}

/** A one-line account of a recorded pipeline, for messages: "32x32, gray, zero padding 2, mean 0.286 / std 0.353". */
export function describePreprocessing(p: Preprocessing): string {
  const parts = [`${p.inputSize[0]}x${p.inputSize[1]}`];
  if (p.grayscale) parts.push('gray');
  if (p.pad) parts.push(`zero padding ${p.pad}`);
  if (p.cropPct !== 1) parts.push(`resize to size / ${p.cropPct} and center crop`);
  const same = (v: number[]) => v.every((x) => x === v[0]);
  const { mean, std } = p.normalization;
  parts.push(same(mean) && same(std) ? `mean ${mean[0]} / std ${std[0]}` : `mean [${mean}] / std [${std}]`);
  return parts.join(', ');
}

/**
 * How images become this model's input, given an optional requested size: the recorded pipeline
 * (a size it does not record is refused, naming the pipeline: a 32x32 Fashion-MNIST model fed
 * 224x224 ImageNet-normalized crops is silently wrong), else the official eval transform at
 * `size` (default 224).
 */
export function inputOptions(card: ModelCard, size?: number): { preprocessing: Preprocessing } | { size: number } {
  const p = card.preprocessing;
  if (!p) return { size: size ?? 224 };
  if (size !== undefined && (p.inputSize[0] !== size || p.inputSize[1] !== size)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `this model records its input pipeline (${describePreprocessing(p)}); an input size of ${size} contradicts it (leave the size out to use it)`);
  }
  return { preprocessing: p };
}
