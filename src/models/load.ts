/**
 * `loadModel`: one entry for every model family. The checkpoint is read once; its keys say what it
 * is (models/families.ts: an mmsegmentation Semantic FPN, a torchvision Mask R-CNN, else a
 * SwiftFormer classifier or backbone in any key layout), and that family builds the model. `task`
 * asks for one: it types the result, refuses weights of another family, and lets a classifier's
 * weights start the backbone of a new dense-prediction model (the paper's recipe).
 */
import { SwiftFormerError } from '../core/errors.js';
import type { Task } from './card.js';
import { denseTaskOf, describeFamily } from './families.js';
import { DetectionModel, type DetectionModelOptions } from './detector.js';
import { checkModelOptions, SwiftFormerModel, type ModelOptions } from './model.js';
import { SegmentationModel, type SegmentationOptions } from './segmentation.js';
import { readModelSource } from './source.js';

/** Any loaded model; `model.task` tells which. */
export type Model = SwiftFormerModel | SegmentationModel | DetectionModel;

export type LoadOptions = ModelOptions & Omit<SegmentationOptions, keyof ModelOptions>
  & Pick<DetectionModelOptions, 'settings'> & {
  /** The task the model is for (default: what the weights are). */
  task?: Task;
};

const TASKS: readonly Task[] = ['classification', 'features', 'segmentation', 'detection'];

export function loadModel(options: LoadOptions & { task: 'segmentation' }): Promise<SegmentationModel>;
export function loadModel(options: LoadOptions & { task: 'detection' }): Promise<DetectionModel>;
export function loadModel(options: LoadOptions & { task: 'classification' | 'features' }): Promise<SwiftFormerModel>;
export function loadModel(options?: LoadOptions): Promise<Model>;
/**
 * `await loadModel({ weights })`: a classifier, a fork_feat backbone, a Semantic FPN segmenter or a
 * Mask R-CNN detector,
 * as the weights are; `{ task }` to ask for one (and type the result).
 */
export async function loadModel(options: LoadOptions = {}): Promise<Model> {
  checkModelOptions(options);
  if (options.task !== undefined && !TASKS.includes(options.task)) {
    throw new SwiftFormerError('BAD_ARGUMENT', `loadModel: task must be one of ${TASKS.join(', ')}, got '${String(options.task)}'`);
  }
  const source = options.weights === undefined ? undefined : await readModelSource(options.weights, options.entry);
  const found = source ? denseTaskOf(source.state.keys()) : undefined;
  const task = options.task ?? found ?? (options.head === 'features' ? 'features' : 'classification');
  if (found && task !== found) {
    throw new SwiftFormerError('BAD_ARGUMENT', `${source!.name} holds ${describeFamily(found)}: it cannot be loaded for ${task}`);
  }
  switch (task) {
    case 'segmentation':
      return source ? SegmentationModel.fromSource(source, options) : SegmentationModel.load(options);
    case 'detection':
      return source ? DetectionModel.fromSource(source, detectionOptions(options)) : DetectionModel.load(detectionOptions(options));
    case 'features':
    case 'classification': {
      const head = task === 'features' ? 'features' : options.head;
      return SwiftFormerModel.fromSource(source, { ...options, ...(head ? { head } : {}) });
    }
  }
}

/** The options a detector takes, out of loadModel's. */
function detectionOptions(options: LoadOptions): DetectionModelOptions {
  const keys = ['weights', 'entry', 'model', 'numClasses', 'labels', 'settings', 'attention', 'allowNonFinite', 'seed', 'session', 'backend'] as const;
  return Object.fromEntries(keys.filter((k) => options[k] !== undefined).map((k) => [k, options[k]])) as DetectionModelOptions;
}
