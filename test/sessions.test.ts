/**
 * The engine under the models: onnxruntime-node in a worker thread (what `serve` runs on) against
 * the official logits, with inputs copied unless handed over (then moved, and given back to a
 * recycle function after the run) and outputs transferred; a stopped
 * worker; and Sessions' bookkeeping (trim reopens only what ran since the last trim, at most
 * maxSessions open, the least recently used closed first), counted on the real engine.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import '../src/node/platform.js';
import type { FloatTensor } from '../src/core/tensor.js';
import { loadSwiftFormer } from '../src/models/model.js';
import { SEGMENTER_SESSIONS, SegmentationModel } from '../src/models/segmentation.js';
import { Sessions } from '../src/models/sessions.js';
import { WORKER_BACKEND, workerBackend } from '../src/node/ort-worker.js';
import { getBackend, handOver, registerBackend } from '../src/runtime/runtime.js';
import { fixturePath, fixtureTensor, relativeError } from './fixtures.js';

const TOLERANCE = 1e-4; // fixtures README: eval logits
const TINY = fixturePath('tiny/weights.safetensors');
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

/** A backend over `inner` counting the sessions it opens and frees. */
function countingBackend(name: string, inner = 'onnxruntime-node') {
  const counts = { created: 0, released: 0 };
  registerBackend({
    name,
    async createSession(bytes, options) {
      const s = await getBackend(inner).createSession(bytes, options);
      counts.created++;
      return { inputNames: s.inputNames, outputNames: s.outputNames, run: (f) => s.run(f), runTyped: (f) => s.runTyped(f), release: () => (counts.released++, s.release()), get gone() { return s.gone; } };
    },
  });
  return counts;
}

const pixels = (size: number, fill = 0.5): FloatTensor => ({ dtype: 'float32', shape: [1, 3, size, size], data: new Float32Array(3 * size * size).fill(fill) });

describe('onnxruntime-node in a worker thread', () => {
  test('the official logits; an input is copied unless handed over, then it is moved', async () => {
    const model = await loadSwiftFormer({ weights: TINY, session: { threads: 1 }, backend: WORKER_BACKEND });
    try {
      const input = fixtureTensor('tiny', 'input.bin');
      const expected = fixtureTensor('tiny', 'logits.bin');
      const copy = input.data.slice();
      assert.ok(relativeError((await model.logits(input)).data, expected.data) < TOLERANCE);
      assert.deepEqual(input.data, copy, 'an input not handed over is left as it was');
      const handed = handOver({ ...input, data: copy.slice() });
      assert.ok(relativeError((await model.logits(handed)).data, expected.data) < TOLERANCE);
      assert.equal(handed.data.length, 0, 'a handed-over input moved to the worker (its buffer transferred)');
      // A view into a larger buffer is copied, not the buffer it views (which stays usable).
      const big = new Float32Array(copy.length + 16);
      big.set(copy, 16);
      const view = handOver({ ...input, data: big.subarray(16) });
      assert.ok(relativeError((await model.logits(view)).data, expected.data) < TOLERANCE);
      assert.equal(big.length, copy.length + 16);
    } finally {
      await model.release();
    }
  });

  test('a handed-over input with a recycle function comes back to it after the run, the same bytes; a copied one does not', async () => {
    const model = await loadSwiftFormer({ weights: TINY, session: { threads: 1 }, backend: WORKER_BACKEND });
    const session = await workerBackend.createSession(model.toOnnx(32), { threads: 1 });
    try {
      const sent = pixels(32, 0.25);
      const original = sent.data.slice();
      const back: ArrayBuffer[] = [];
      const before = await session.runTyped({ pixel_values: pixels(32, 0.25) });
      const out = await session.runTyped({ pixel_values: handOver(sent, (b) => back.push(b)) });
      assert.equal(sent.data.length, 0, 'moved to the worker');
      assert.equal(back.length, 1, 'given back once');
      assert.deepEqual(new Float32Array(back[0]!), original, 'the buffer it sent, unchanged');
      assert.deepEqual(out.logits!.data, before.logits!.data);
      // A view is copied to the worker, so its buffer never left: nothing comes back.
      const big = new Float32Array(original.length + 4);
      await session.runTyped({ pixel_values: handOver({ ...sent, data: big.subarray(4) }, (b) => back.push(b)) });
      assert.equal(back.length, 1);
    } finally {
      await session.release();
      await model.release();
    }
  });

  test('a stopped worker: its sessions are gone, runs on them fail with ENGINE_EXITED, a model opens its session again', async () => {
    const model = await loadSwiftFormer({ weights: TINY, session: { threads: 1 }, backend: WORKER_BACKEND });
    const session = await workerBackend.createSession(model.toOnnx(32), { threads: 1 });
    try {
      const before = await model.logits(pixels(32));
      assert.equal(session.gone, false);
      await workerBackend.terminate();
      assert.equal(session.gone, true);
      await assert.rejects(session.run({ pixel_values: pixels(32) }), (e: unknown) => code('ENGINE_EXITED')(e) && /the inference worker exited/.test((e as Error).message));
      await session.release(); // nothing left to free: no error
      const after = await model.logits(pixels(32));
      assert.ok(relativeError(after.data, before.data) < 1e-6, 'the same answer from a session opened on a new worker');
    } finally {
      await model.release();
    }
  });
});

describe('Sessions: trim and the open-session limit', () => {
  test('trim reopens the sessions that ran since the last trim; the others open on their next run', async () => {
    const counts = countingBackend('counting-recent');
    const model = await loadSwiftFormer({ weights: TINY, session: { threads: 1 }, backend: 'counting-recent' });
    try {
      const first32 = await model.logits(pixels(32));
      const first64 = await model.logits(pixels(64));
      assert.deepEqual(counts, { created: 2, released: 0 });
      await model.trim();
      assert.deepEqual(counts, { created: 4, released: 2 }, 'both ran: both reopened');
      assert.ok(relativeError((await model.logits(pixels(32))).data, first32.data) < 1e-6);
      await model.trim();
      assert.deepEqual(counts, { created: 5, released: 4 }, 'only 32x32 ran since: only it reopened');
      await model.trim();
      assert.deepEqual(counts, { created: 5, released: 5 }, 'nothing ran: nothing reopened');
      assert.ok(relativeError((await model.logits(pixels(64))).data, first64.data) < 1e-6);
      assert.deepEqual(counts, { created: 6, released: 5 }, 'a closed size opens on its next run');
    } finally {
      await model.release();
    }
    assert.deepEqual(counts, { created: 6, released: 6 });
  });

  test('at most maxSessions open: the least recently used is closed, after the run it has in flight', async () => {
    const counts = countingBackend('counting-lru');
    const model = await loadSwiftFormer({ weights: TINY, session: { threads: 1 } });
    const build = (size: number) => () => model.toOnnx(size);
    const sessions = new Sessions('test sessions', 'counting-lru', { threads: 1 }, { maxSessions: 2 });
    const run = (size: number) => sessions.run(`${size}`, build(size), { pixel_values: pixels(size) });
    try {
      const expected = await model.logits(pixels(32));
      await run(32);
      await run(64);
      await run(32);
      await run(96); // 64 is the least recently used
      assert.deepEqual(sessions.keys, ['32', '96']);
      assert.deepEqual(counts, { created: 3, released: 1 });
      // 32 starts a run; before it gets to run, 128 opens (closing 96) and 64 opens (closing 32).
      const inFlight = run(32);
      const opened = [run(128), run(64)];
      assert.ok(relativeError((await inFlight).logits!.data, expected.data) < 1e-6, 'the closed session finished its run first');
      await Promise.all(opened);
      assert.deepEqual(sessions.keys, ['128', '64']);
      assert.deepEqual(counts, { created: 5, released: 3 });
      await sessions.release();
      assert.deepEqual(counts, { created: 5, released: 5 });
    } finally {
      await sessions.release();
      await model.release();
    }
    assert.throws(() => new Sessions('x', undefined, undefined, { maxSessions: 0 }), code('BAD_ARGUMENT'));
  });

  test(`a segmenter keeps at most ${SEGMENTER_SESSIONS} sessions, one per padded size`, async () => {
    const counts = countingBackend('counting-seg');
    const model = await SegmentationModel.load({ weights: fixturePath('semfpn-tiny/checkpoint.pth'), session: { threads: 1 }, backend: 'counting-seg', scale: [128, 64] });
    try {
      // Aspect ratios that pad to different sizes within the 128x64 test scale.
      const shapes = [[64, 64], [64, 128], [128, 64], [64, 96], [96, 64], [64, 64]] as const;
      const first = await model.segment({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(100) });
      for (const [w, h] of shapes.slice(1)) await model.segment({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(100) });
      assert.equal(counts.created, 6, 'five sizes, and 64x64 again after it was closed');
      assert.equal(counts.created - counts.released, SEGMENTER_SESSIONS);
      const again = await model.segment({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(100) });
      assert.deepEqual(again.mask, first.mask);
    } finally {
      await model.release();
    }
    assert.equal(counts.released, counts.created);
  });
});
