/**
 * Checkpoint bytes to a state dict: the container is sniffed from the bytes (torch.save zip or
 * safetensors), never from the file name.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { StateDict } from '../core/tensor.js';
import { readPth } from './pth.js';
import { readSafetensors } from './safetensors.js';

export interface ReadOptions {
  /** Which entry of a full training checkpoint: 'model' (default) or 'model_ema'. */
  entry?: string;
  /** Shown in error messages. */
  name?: string;
}

/** Reads a `.pth` (torch.save zip) or `.safetensors` file from its bytes. */
export async function readStateDict(bytes: Uint8Array, options: ReadOptions = {}): Promise<StateDict> {
  return (await readWeights(bytes, options)).state;
}

/** What a weights file holds: one state dict, and what travels with it. */
export interface WeightsFile {
  state: StateDict;
  /** safetensors' string metadata (a trained model's card); empty for .pth. */
  metadata: Record<string, string>;
  /** A .pth file's decoded pickle root, for what sits beside the state dict (mmcv's `meta`, torchvision's `args`). */
  root?: unknown;
}

/** The state dict and what travels with it (safetensors metadata, a .pth file's pickle root). */
export async function readWeights(bytes: Uint8Array, options: ReadOptions = {}): Promise<WeightsFile> {
  const name = options.name ?? 'weights';
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) {
    const file = await readPth(bytes, options.entry === undefined ? {} : { entry: options.entry });
    return { state: file.stateDict(), metadata: {}, root: file.root };
  }
  if (looksLikeSafetensors(bytes)) {
    if (options.entry !== undefined && options.entry !== 'model') {
      throw new SwiftFormerError('BAD_ARGUMENT', `${name} is a safetensors file, which holds one state dict: entry '${options.entry}' does not apply`);
    }
    const file = readSafetensors(bytes);
    return { state: file.tensors, metadata: file.metadata };
  }
  if (bytes.length >= 2 && bytes[0] === 0x80) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `${name} is a legacy (pre-1.6) torch.save file; re-save it with torch.save(obj, path) from a recent PyTorch`);
  }
  throw new SwiftFormerError('BAD_CHECKPOINT', `${name} is neither a PyTorch checkpoint (.pth, zip) nor a safetensors file (${bytes.length} bytes)`);
}

export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return headerLength > 1n && bytes[8] === 0x7b; // '{'
}
