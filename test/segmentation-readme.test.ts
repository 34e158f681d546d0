/**
 * The README's segmentation examples run as written: the ```ts segmentation block against the
 * built package (imported by its name, as a user would), and its command lines against the built CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: ROOT }, (err, out, stderr) => (err ? reject(new Error(stderr)) : resolve(out)));
  });
}

test('README segmentation example runs and prints what its comments say', async () => {
  const readme = await readFile(`${ROOT}README.md`, 'utf8');
  const block = /```ts segmentation\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a ```ts segmentation block');
  const script = `${ROOT}.readme-segmentation.mts`;
  await writeFile(script, block[1]!);
  try {
    const lines = (await run(['--import', 'tsx', script])).trim().split('\n');
    assert.equal(lines[0], "[ 16, 24, 32, 48 ] 5 [ 'background', 'shirt', 'shoe', 'bag', 'trouser' ]");
    assert.equal(lines[1], '28 28 Uint8Array');
    assert.match(lines[2]!, /^\[ '(background|shirt|shoe|bag|trouser)'/);
    assert.equal(lines[3], 'true');
  } finally {
    await rm(script, { force: true });
  }
});

test("README segmentation command lines run as written (into a temporary directory): segment, export, train, eval", async () => {
  const readme = await readFile(`${ROOT}README.md`, 'utf8');
  const section = readme.slice(readme.indexOf('\n## Segmentation'), readme.indexOf('\n## Training'));
  const commands = [...section.matchAll(/^\$ npx swiftformer (.*)$/gm)].map((m) => m[1]!.split(' '));
  assert.equal(commands.length, 4);
  const dir = await mkdtemp(join(tmpdir(), 'swiftformer-readme-seg-'));
  try {
    const retarget = (args: string[]) => args.map((a) => a.replace(/^\/tmp\//, `${dir}/`));
    const segmented = await run(['dist/cli/main.js', ...retarget(commands[0]!)]);
    assert.equal(segmented.split('\n')[0], `assets/examples/4-coat.png (28x28) -> ${dir}/masks/4-coat_mask.png, ${dir}/masks/4-coat_overlay.png`);
    await run(['dist/cli/main.js', ...retarget(commands[1]!)]);
    assert.ok((await readFile(join(dir, 'fpn.onnx'))).length > 100_000);
    // Training on the tests' two scenes, then mmseg's tables of its best checkpoint.
    await run(['dist/cli/main.js', ...retarget(commands[2]!)]);
    const tables = await run(['dist/cli/main.js', ...retarget(commands[3]!)]);
    assert.match(tables, /per class results:[\s\S]*Summary:[\s\S]*aAcc \|\s+mIoU \|\s+mAcc/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
