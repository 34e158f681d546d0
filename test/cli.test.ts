import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath, fixtureTensor, relativeError } from './fixtures.js';



describe('swiftformer info', () => {
  test('--json reproduces the paper for every variant', async () => {
    const paper: Record<string, [number, number]> = { xs: [3.5, 0.6], s: [6.1, 1.0], l1: [12.1, 1.6], l3: [28.5, 4.0] };
    for (const [id, [params, gmacs]] of Object.entries(paper)) {
      const r = await cli('info', '--model', id, '--json');
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(typeof out.params, 'number');
      assert.equal(Math.round(out.params / 1e5) / 10, params);
      assert.equal(Math.round(out.macs / 1e8) / 10, gmacs);
      assert.equal(out.stages.length, 4);
    }
  });

  test('text output names params, MACs and stage shapes', async () => {
    const r = await cli('info', '--model', 'xs');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /params\s+3\.48 M/);
    assert.match(r.stdout, /MACs\s+0\.602 G/);
    assert.match(r.stdout, /stage3\s+\[1, 220, 7, 7\]/);
  });

  test('describes a checkpoint by reading its architecture', async () => {
    const r = await cli('info', '--weights', fixturePath('tiny/checkpoint_model_only.pth'), '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.config.embedDims, [16, 24, 32, 48]);
    assert.deepEqual(out.config.depths, [1, 1, 2, 1]);
    assert.equal(out.params, 194528);
  });

  test('bad input: unknown model, bad size, unknown option', async () => {
    assertCleanFailure(await cli('info', '--model', 'xxl'), /unknown model 'xxl'/);
    assertCleanFailure(await cli('info', '--model', 'xs', '--size', '100'), /multiples of 32/);
    assertCleanFailure(await cli('info', '--bogus'), /Unknown option '--bogus'/);
    assertCleanFailure(await cli('frobnicate'), /unknown command 'frobnicate'/);
  });
});

describe('swiftformer export', () => {
  test('writes an ONNX file that reproduces the official logits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-export-'));
    const out = join(dir, 'xs.onnx');
    const r = await cli('export', '--model', 'xs', '--weights', fixturePath('xs/checkpoint_model_only.pth'), '--onnx', out);
    assert.equal(r.code, 0, r.stderr);
    const session = await ort.InferenceSession.create(out, { intraOpNumThreads: 2 });
    assert.deepEqual(session.inputNames, ['pixel_values']);
    assert.deepEqual(session.outputNames, ['logits']);
    const input = fixtureTensor('xs', 'input.bin');
    const logits = (await session.run({ pixel_values: new ort.Tensor('float32', input.data, input.shape) })).logits!;
    assert.deepEqual(logits.dims, [2, 1000]);
    assert.ok(relativeError(logits.data as Float32Array, fixtureTensor('xs', 'logits.bin').data) <= 1e-4);
    await session.release();
    assert.deepEqual(await readdir(dir), ['xs.onnx'], 'no temporary file left behind');
  });

  test('--size and --num-classes shape the graph', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-export-'));
    const out = join(dir, 'tiny.onnx');
    const r = await cli('export', '--model', 'xs', '--num-classes', '10', '--size', '256', '--onnx', out);
    assert.equal(r.code, 0, r.stderr);
    const session = await ort.InferenceSession.create(out);
    const x = new ort.Tensor('float32', new Float32Array(2 * 3 * 256 * 256), [2, 3, 256, 256]);
    assert.deepEqual((await session.run({ pixel_values: x })).logits!.dims, [2, 10]);
    await session.release();
  });

  test('a failed export keeps the existing file and names the problem', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-export-'));
    const out = join(dir, 'keep.onnx');
    await writeFile(out, 'precious');
    const truncated = join(dir, 'cut.pth');
    await writeFile(truncated, (await readFile(fixturePath('tiny/checkpoint_model_only.pth'))).subarray(0, 5000));
    assertCleanFailure(await cli('export', '--weights', truncated, '--onnx', out), /cut\.pth|truncated|central directory/i);
    assertCleanFailure(await cli('export', '--model', 's', '--weights', fixturePath('xs/checkpoint_model_only.pth'), '--onnx', out), /mis-shaped \(network\.1\.proj\.weight/);
    assertCleanFailure(await cli('export', '--weights', join(dir, 'missing.pth'), '--onnx', out), /no such file/);
    assertCleanFailure(await cli('export', '--model', 'xs'), /--onnx <out\.onnx> is required/);
    assert.equal(await readFile(out, 'utf8'), 'precious');
  });
});
