/** Access to ../shared/fixtures (made with the official PyTorch code) and comparison helpers. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FloatTensor, StateDict } from '../src/core/tensor.js';
import { updateRunningStats, type StepResult } from '../src/train/step.js';
import { readStateDict } from '../src/weights/read.js';

export const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/', import.meta.url));

export function fixturePath(rel: string): string {
  return FIXTURES + rel;
}

export function fixtureBytes(rel: string): Uint8Array {
  const buf = readFileSync(fixturePath(rel));
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function manifest(dir: FixtureDir): Record<string, any> {
  return JSON.parse(readFileSync(fixturePath(`${dir}/manifest.json`), 'utf8'));
}

/** Fixture folders (fixtures README). */
export type FixtureDir = 'tiny' | 'xs' | 'semfpn-tiny' | 'semfpn-xs' | 'maskrcnn-tiny' | 'maskrcnn-tiny-train';

/** A raw little-endian float32 .bin file with its shape from the manifest. */
export function fixtureTensor(dir: FixtureDir, file: string): FloatTensor {
  const bytes = fixtureBytes(`${dir}/${file}`);
  const data = new Float32Array(bytes.slice().buffer);
  return { dtype: 'float32', shape: manifest(dir).files[file].shape, data };
}

/** max|a - b| and max|ref|. */
function maxDiffAndScale(actual: ArrayLike<number>, reference: ArrayLike<number>): [number, number] {
  if (actual.length !== reference.length) throw new Error(`length ${actual.length} vs reference ${reference.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < reference.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - reference[i]!));
    scale = Math.max(scale, Math.abs(reference[i]!));
  }
  return [diff, scale];
}

/** max|a - b| / max|ref|: the fixtures README's measure for logits and feature maps. */
export function relativeError(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
  const [diff, scale] = maxDiffAndScale(actual, reference);
  return diff / scale;
}

/** max|a - b| <= tol * max|ref| + abs: the fixtures README's measure for gradients (abs: the floor for ~0 gradients). */
export function assertClose(actual: ArrayLike<number>, reference: ArrayLike<number>, tol: number, label: string, abs = 0): void {
  const [diff, scale] = maxDiffAndScale(actual, reference);
  assert.ok(diff <= tol * scale + abs, `${label}: max diff ${diff} vs max|ref| ${scale}`);
}

/** The tiny fixture's architecture (fixtures README). */
export const TINY_CONFIG = {
  embedDims: [16, 24, 32, 48], depths: [1, 1, 2, 1], mlpRatio: 4, numClasses: 1000, distillation: true,
  vitNum: 1, downsamples: [true, true, true, true], attention: 'l2' as const,
};

/** An IDX file (the MNIST format): magic 0 0 <type> <rank>, big-endian dimensions, then the data. */
export function idxBytes(type: number, dims: number[], data: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out.set([0, 0, type, dims.length]);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** A training pass's gradients against a fixture's grads.safetensors: one per parameter, 1e-4 * max|ref| + 1e-6 each (README). */
export async function assertGradients(grads: ReadonlyMap<string, FloatTensor>, rel: string): Promise<void> {
  const reference = await readStateDict(fixtureBytes(rel));
  assert.equal(grads.size, reference.size, 'one gradient per parameter');
  for (const [key, ref] of reference) {
    const got = grads.get(key);
    assert.ok(got, `gradient of ${key}`);
    assert.deepEqual(got.shape, ref.shape, key);
    assertClose(got.data, ref.data as Float32Array, 1e-4, key, 1e-6);
  }
}

/** BatchNorm buffers after a pass (PyTorch's update of a copy of `state`) against a fixture: 1e-5 relative, counters exact. */
export async function assertRunningStats(state: StateDict, stats: StepResult['stats'], rel: string): Promise<void> {
  const updated: StateDict = new Map([...state].map(([k, t]) => [k, { ...t, data: t.data.slice() } as typeof t]));
  updateRunningStats(updated, stats);
  const reference = await readStateDict(fixtureBytes(rel));
  for (const [key, ref] of reference) {
    const got = updated.get(key)!;
    if (ref.dtype === 'int64') assert.equal(got.data[0], ref.data[0], key);
    else assert.ok(relativeError(got.data as Float32Array, ref.data) <= 1e-5, key);
  }
}
