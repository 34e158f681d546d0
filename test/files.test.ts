/**
 * Files and directories (src/node/files.ts): directories are created without Node's recursive
 * mkdir (which loops forever on /proc in Node 20), writes are atomic, and every failure is one
 * IO error naming the path, in the library and in the CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeDirectory, writeFileAtomic } from '../src/node/files.js';
import { SwiftFormerError } from '../src/core/errors.js';
import { assertCleanFailure, cli, cliWith } from './cli-runner.js';
import { idxBytes } from './fixtures.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swiftformer-files-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Rejects with an IO SwiftFormerError matching `pattern` within `ms` (a hang fails the test). */
async function failsQuickly(promise: Promise<unknown>, pattern: RegExp, ms = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms);
  });
  try {
    await Promise.race([promise, hang]);
    assert.fail(`expected an error matching ${pattern}`);
  } catch (err) {
    assert.ok(err instanceof SwiftFormerError, String(err));
    assert.equal(err.code, 'IO');
    assert.match(err.message, pattern);
  } finally {
    clearTimeout(timer);
  }
}

describe('makeDirectory', () => {
  test('creates every missing level, and accepts a directory that exists', async () => {
    const deep = join(dir, 'a', 'b', 'c');
    await makeDirectory(deep);
    assert.ok((await stat(deep)).isDirectory());
    await makeDirectory(deep);
    await makeDirectory(dir);
  });

  test('/proc paths are refused at once, not looped on', async () => {
    await failsQuickly(makeDirectory('/proc/run'), /^directory \/proc\/run cannot be created: \/proc does not accept new folders$/);
    await failsQuickly(makeDirectory('/proc/x/y/z', 'output directory'), /^output directory \/proc\/x\/y\/z cannot be created: \/proc does not accept new folders$/);
  });

  test('a file in the way, and a purpose for the message', async () => {
    const file = join(dir, 'f');
    await writeFile(file, 'x');
    await failsQuickly(makeDirectory(file), new RegExp(`^directory ${file} exists and is not a directory$`));
    await failsQuickly(makeDirectory(join(file, 'run', 'deeper'), 'output directory'), new RegExp(`^output directory ${file}/run/deeper cannot be created: ${file} is a file, not a directory$`));
  });
});

describe('writeFileAtomic', () => {
  test('a missing or non-directory parent is one IO error, and nothing is left behind', async () => {
    const file = join(dir, 'plain');
    await writeFile(file, 'x');
    await failsQuickly(writeFileAtomic(join(file, 'xs.onnx'), 'data'), new RegExp(`^cannot write ${file}/xs\\.onnx: ${file} is a file, not a directory$`));
    await failsQuickly(writeFileAtomic(join(dir, 'nope', 'xs.onnx'), 'data'), /nope\/xs\.onnx: the folder .*nope does not exist$/);
    assert.ok(!(await readdir(dir)).some((f) => f.endsWith('.tmp')));
  });
});

describe('the CLI on paths it cannot create or write', () => {
  test('export --onnx under a file: one line, no stack trace', async () => {
    const file = join(dir, 'notadir');
    await writeFile(file, 'x');
    assertCleanFailure(await cli('export', '--model', 'xs', '--size', '32', '--onnx', join(file, 'xs.onnx')), /^swiftformer export: cannot write .*notadir\/xs\.onnx: .*notadir is a file, not a directory\n$/);
  });

  test('train --out /proc/run and SWIFTFORMER_CACHE=/proc/x fail with one line instead of hanging', async () => {
    const data = join(dir, 'idx');
    await makeDirectory(data);
    const n = 16;
    await writeFile(join(data, 'train-images-idx3-ubyte'), idxBytes(8, [n, 28, 28], new Uint8Array(n * 28 * 28)));
    await writeFile(join(data, 'train-labels-idx1-ubyte'), idxBytes(8, [n], Array.from({ length: n }, (_, i) => i % 2)));
    const train = await cliWith({ timeout: 60_000 }, 'train', '--data', data, '--out', '/proc/run', '--epochs', '1', '--batch-size', '8', '--threads', '1');
    assertCleanFailure(train, /output directory \/proc\/run cannot be created: \/proc does not accept new folders/);
    const env = { ...process.env, SWIFTFORMER_CACHE: '/proc/x' };
    const classify = await cliWith({ env, timeout: 60_000 }, 'classify', 'img.png', '--weights', 'http://127.0.0.1:9/w.pth');
    assertCleanFailure(classify, /download cache folder \/proc\/x\/[0-9a-f]+ cannot be created: \/proc does not accept new folders \(set SWIFTFORMER_CACHE/);
  });
});
