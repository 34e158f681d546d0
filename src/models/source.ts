/**
 * Reading a model's weights once, whatever the family: the state dict, what travels with it
 * (safetensors metadata, a .pth file's pickle root with mmcv's `meta` or torchvision's `args`), and
 * the labels a repository keeps beside them (hf: id2label). Every family's loader starts here.
 */
import { readWeightsSource } from '../core/io.js';
import type { StateDict } from '../core/tensor.js';
import { readWeights } from '../weights/read.js';

export interface ModelSource {
  state: StateDict;
  metadata: Record<string, string>;
  root?: unknown;
  /** For messages: the path or URL, or 'weights'. */
  name: string;
  /** Class names from the weights' repository (an hf: config.json's id2label). */
  labels?: string[];
}

export async function readModelSource(weights: string | Uint8Array | StateDict, entry?: string): Promise<ModelSource> {
  if (weights instanceof Map) return { state: weights, metadata: {}, name: 'weights' };
  const name = typeof weights === 'string' ? weights : 'weights';
  const { bytes, labels } = typeof weights === 'string' ? await readWeightsSource(weights) : { bytes: weights, labels: undefined };
  return { ...(await readWeights(bytes, entry === undefined ? { name } : { entry, name })), name, ...(labels ? { labels } : {}) };
}
