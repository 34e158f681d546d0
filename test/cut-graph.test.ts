/**
 * cutGraph (graph/passes.ts): a graph cut in two and run as two sessions, the back fed the
 * front's held values, gives the whole graph's outputs exactly; held values keep their element
 * types (an int64 crosses the cut here), and values the back does not read are not held.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../src/node/platform.js';
import { attr, GraphBuilder, toOnnx } from '../src/graph/graph.js';
import { cutGraph } from '../src/graph/passes.js';
import { getBackend } from '../src/runtime/runtime.js';
import type { Tensor } from '../src/core/tensor.js';

test('a graph cut in two gives the whole graph\'s outputs, int64 values crossing the cut', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', [2, 3]);
  const a = b.unary('Relu', x);
  const count = b.node('Cast', [b.node('Greater', [a, b.constant([0.5])], [2, 3])], [2, 3], { to: attr.int(7) });
  const unused = b.unary('Exp', x);
  b.node('Identity', [a], [2, 3], {}, 'early');
  b.output('early');
  const at = b.graph.nodes.length;
  const y = b.binary('Add', b.binary('Mul', b.node('Cast', [count], [2, 3], { to: attr.int(1) }), a), x);
  b.node('Identity', [y], [2, 3], {}, 'y');
  b.output('y');
  const { front, back, held } = cutGraph(b.graph, at, ['early']);
  assert.deepEqual(new Set(held), new Set([a, count]), `held ${held}`);
  assert.ok(!held.includes(unused) && !held.includes(x));
  assert.deepEqual(back.inputs.find((v) => v.name === count)?.dtype, 'int64');
  assert.deepEqual(front.outputs.map((o) => o.name).slice(0, 1), ['early']);

  const backend = getBackend();
  const feeds: Record<string, Tensor> = { x: { dtype: 'float32', shape: [2, 3], data: Float32Array.of(-1, 0.25, 0.75, 2, -0.5, 0.6) } };
  const whole = await backend.createSession(toOnnx(b.graph), {});
  const first = await backend.createSession(toOnnx(front), {});
  const second = await backend.createSession(toOnnx(back), {});
  try {
    const expected = await whole.runTyped(feeds);
    const f = await first.runTyped(feeds);
    const out = await second.runTyped({ ...(back.inputs.some((v) => v.name === 'x') ? feeds : {}), ...Object.fromEntries(held.map((h) => [h, f[h]!])) });
    assert.deepEqual(Array.from(out.y!.data as Float32Array), Array.from(expected.y!.data as Float32Array));
    assert.deepEqual(Array.from(f.early!.data as Float32Array), Array.from(expected.early!.data as Float32Array));
    assert.deepEqual(Array.from(out.y!.data as Float32Array), [-1, 0.25, 1.5, 4, -0.5, 1.2].map((v) => Math.fround(v)));
  } finally {
    for (const s of [whole, first, second]) await s.release();
  }
});
