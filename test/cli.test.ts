import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { assertCleanFailure, assertOneLine, cli, cliWith } from './cli-runner.js';
import { fixturePath, fixtureTensor, relativeError } from './fixtures.js';
import { loadModel } from '../src/index.js';



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
    assertCleanFailure(await cli('info', '--bogus'), /unknown option '--bogus'/i);
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

describe('the command line as a user meets it', () => {
  test('--version prints the package version', async () => {
    const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await cli('--version');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
  });

  test('option errors are one line pointing at --help, not the whole usage', async () => {
    assertOneLine(await cli('info', '--bogus'), /^swiftformer info: unknown option '--bogus'; see swiftformer info --help$/);
    assertOneLine(await cli('info', '--size'), /^swiftformer info: option '--size <value>' argument missing; see swiftformer info --help$/i);
    assertOneLine(await cli('export', '--model', 'xs'), /^swiftformer export: --onnx <out\.onnx> is required \(or --triton <dir>\); see swiftformer export --help$/);
    assertOneLine(await cli('classify', '--model', 'xs'), /^swiftformer classify: no images given; see swiftformer classify --help$/);
    assertOneLine(await cli('eval'), /^swiftformer eval: eval takes one dataset, got 0; see swiftformer eval --help$/);
    assertOneLine(await cli('train', '--epochs', '1'), /^swiftformer train: --data <dir\|fashion-mnist> is required; see swiftformer train --help$/);
    assertOneLine(await cli('frobnicate'), /^swiftformer: unknown command 'frobnicate' \(commands: info, export, train, classify, segment, detect, eval, bench, score, serve\); see swiftformer --help$/);
  });

  test('stray positional arguments are refused', async () => {
    assertOneLine(await cli('info', '--model', 'xs', 'extra'), /^swiftformer info: unexpected argument 'extra'; see swiftformer info --help$/);
    assertOneLine(await cli('export', 'xs.onnx', '--model', 'xs'), /unexpected argument 'xs\.onnx'/);
    assertOneLine(await cli('bench', 'xs'), /unexpected argument 'xs'/);
    assertOneLine(await cli('train', 'fashion-mnist'), /unexpected argument 'fashion-mnist'/);
    assertOneLine(await cli('score', 'segmentation', 'extra'), /score takes 'segmentation' or 'detection', got 'segmentation extra'; see swiftformer score --help/);
    assertOneLine(await cli('eval', 'a', 'b'), /eval takes one dataset, got 2/);
  });

  test('bench checks every --model id before timing any', async () => {
    const r = await cli('bench', '--model', 'xs,zz', '--batch', '1', '--rounds', '1');
    assertOneLine(r, /^swiftformer bench: unknown model 'zz'/);
    assert.equal(r.stdout, '', 'nothing was timed');
  });

  test('bench --official / --int8: a file that is not an ONNX model, or takes another input size, is one line before any timing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-bench-'));
    const text = join(dir, 'page.onnx');
    await writeFile(text, '<!doctype html><title>not a model</title>\n');
    const small = join(dir, 'small.onnx');
    const tiny = await loadModel({ weights: fixturePath('tiny/checkpoint_model_only.pth') });
    await writeFile(small, tiny.toOnnx(64));
    await tiny.release();
    const run = (...extra: string[]) => cli('bench', '--model', 'xs', '--batch', '1', '--rounds', '1', ...extra);
    let r = await run('--official', text);
    assertOneLine(r, /^swiftformer bench: --official .*page\.onnx is not an ONNX model ONNX Runtime can load \(/);
    assert.equal(r.stdout, '');
    r = await run('--official', small);
    assertOneLine(r, /^swiftformer bench: --official .*small\.onnx does not run on \(1,3,224,224\) images: .*Expected: 64/);
    assert.equal(r.stdout, '');
    assertOneLine(await run('--int8', join(dir, 'missing.onnx')), /missing\.onnx: no such file/);
    // The same file at its own size runs, whatever its input is called.
    r = await cli('bench', '--model', 'xs', '--batch', '1', '--rounds', '1', '--size', '64', '--int8', small, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).rows[0].int8Ms > 0);
  });

  test('library messages name the CLI flags: --no-strict where the command has it, nothing where it does not', async () => {
    const xs = fixturePath('xs/checkpoint_model_only.pth');
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-cli-'));
    const exported = await cli('export', '--model', 's', '--weights', xs, '--onnx', join(dir, 'x.onnx'));
    assertOneLine(exported, /Pass the matching --model, or --no-strict to load what fits\.$/);
    assert.doesNotMatch(exported.stderr, /strict: false/);
    const image = join(dir, 'img.png');
    await writeFile(image, await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 9, g: 99, b: 199 } } }).png().toBuffer());
    const classified = await cli('classify', image, '--model', 's', '--weights', xs);
    assertOneLine(classified, /do not fit the model .*Pass the matching --model\.$/);
    assert.doesNotMatch(classified.stderr, /strict/);
    // The decompression-bomb refusal: a colon after the limit, and the CLI's flag.
    const bomb = await cli('classify', image, '--weights', fixturePath('tiny/checkpoint_model_only.pth'), '--max-pixels', '100');
    assertCleanFailure(bomb, /img\.png is 64x48 = 3072 pixels, over the limit of 100: refused as a possible decompression bomb \(raise the limit with --max-pixels if the image is genuine\)/);
    assert.doesNotMatch(bomb.stderr, /maxPixels/);
  });

  test('a full disk on stdout is one line, not a stack trace', async () => {
    assertOneLine(await cliWith({ stdoutFile: '/dev/full' }, 'info', '--model', 'xs'), /^swiftformer info: cannot write the output: no space left on device$/);
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-cli-'));
    const image = join(dir, 'img.png');
    await writeFile(image, await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 9, g: 99, b: 199 } } }).png().toBuffer());
    const r = await cliWith({ stdoutFile: '/dev/full' }, 'classify', image, '--weights', fixturePath('tiny/checkpoint_model_only.pth'), '--json');
    assertOneLine(r, /^swiftformer classify: cannot write the output: no space left on device$/);
  });
});
