/**
 * Which model family a checkpoint belongs to, read off its keys alone: mmsegmentation's Semantic
 * FPN (`decode_head.`, `neck.lateral_convs.`), torchvision's Mask R-CNN (`rpn.head.`,
 * `roi_heads.`), else a SwiftFormer classifier or backbone in any of its key layouts.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { Task } from './card.js';
import type { ModelSource } from './source.js';

export type DenseTask = Extract<Task, 'segmentation' | 'detection'>;

const FAMILIES: { task: DenseTask; what: string; keys: RegExp }[] = [
  { task: 'segmentation', what: 'a Semantic FPN segmentation model (mmsegmentation keys)', keys: /^(decode_head\.|neck\.lateral_convs\.)/ },
  { task: 'detection', what: 'a Mask R-CNN detector (torchvision keys)', keys: /^(rpn\.head\.|roi_heads\.)/ },
];

/** The dense-prediction task a state dict's keys belong to, or undefined for a SwiftFormer classifier/backbone. */
export function denseTaskOf(keys: Iterable<string>): DenseTask | undefined {
  for (const key of keys) for (const f of FAMILIES) if (f.keys.test(key)) return f.task;
  return undefined;
}

export function describeFamily(task: DenseTask): string {
  return FAMILIES.find((f) => f.task === task)!.what;
}

/** An error unless the weights are of the family the caller loads (`wanted` names it). */
export function refuseOtherFamily(source: ModelSource, wanted: string, allowed?: DenseTask): void {
  const found = denseTaskOf(source.state.keys());
  if (found && found !== allowed) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${source.name} holds ${describeFamily(found)}, not ${wanted} (its task is '${found}')`);
  }
}
