/**
 * The README's library example must run as written: extract the ```ts example block, run it
 * against the built package (imported by its own name, as a user would), check what it prints.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('README library example runs and prints what its comments say', async () => {
  const readme = await readFile(`${ROOT}README.md`, 'utf8');
  const block = /```ts example\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a ```ts example block');
  // Run from the repo root (the example's relative path is from there), as plain ESM JavaScript.
  const script = `${ROOT}.readme-example.mts`;
  await writeFile(script, block[1]!);
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', script], { cwd: ROOT }, (err, out, stderr) => (err ? reject(new Error(stderr)) : resolve(out)));
    });
    const lines = stdout.trim().split('\n');
    assert.match(lines[0]!, /\[ 48, 56, 112, 220 \] official l2/);
    assert.match(lines[1]!, /\[ 1, 1000 \]/);
    assert.equal(lines[2], '28494736');
    assert.ok(Number(lines[3]) > 13e6, 'ONNX bytes hold the 3.5 M float parameters');
  } finally {
    await rm(script, { force: true });
  }
});
