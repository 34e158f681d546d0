/**
 * The README's detection examples run as written: the ```ts detection block against the built
 * package (imported by its name, as a user would), and the Detection section's command lines
 * against the built CLI, their output checked against what the text says and the library gives.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { decodeImage } from '../src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = await readFile(`${ROOT}README.md`, 'utf8');
const SECTION = README.slice(README.indexOf('\n## Detection\n'), README.indexOf('\n## Training\n'));

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: ROOT, maxBuffer: 1 << 24 }, (err, out, stderr) => (err ? reject(new Error(stderr)) : resolve(out)));
  });
}

test('README detection example runs and prints what its comments say', async () => {
  const block = /```ts detection\n([\s\S]*?)```/.exec(SECTION);
  assert.ok(block, 'the Detection section has a ```ts detection block');
  const script = `${ROOT}.readme-detection.mts`;
  await writeFile(script, block[1]!);
  try {
    const lines = (await run(['--import', 'tsx', script])).trim().split('\n');
    assert.deepEqual(lines, ['5 true [ 16, 24, 32, 48 ]', '9 1 shirt 0.954 28', '28 28 true', 'detection 9']);
  } finally {
    await rm(script, { force: true });
  }
});

test('README detection command lines run as written (into a temporary directory): detect, detect --json --masks --overlay, export', async () => {
  const commands = [...SECTION.matchAll(/^\$ npx swiftformer (.*)$/gm)].map((m) => m[1]!.split(' '));
  assert.equal(commands.length, 3);
  const dir = await mkdtemp(join(tmpdir(), 'swiftformer-readme-det-'));
  try {
    const retarget = (args: string[]) => args.map((a) => a.replace(/^\/tmp\//, `${dir}/`));
    const printed = await run(['dist/cli/main.js', ...retarget(commands[0]!)]);
    const shown = /```\n\$ npx swiftformer detect [^\n]*\n([^\n]*)\n([^\n]*)\n/.exec(SECTION)!;
    assert.deepEqual(printed.split('\n').slice(0, 2), [shown[1], shown[2]], 'the first lines the README shows');

    const out = JSON.parse(await run(['dist/cli/main.js', ...retarget(commands[1]!)])) as { width: number; height: number; detections: { mask: string }[] }[];
    assert.equal(out[0]!.detections.length, 9);
    const mask = await decodeImage(out[0]!.detections[0]!.mask);
    assert.deepEqual([mask.width, mask.height], [out[0]!.width, out[0]!.height]);
    assert.ok((await readdir(join(dir, 'det'))).includes('4-coat_detections.png'), 'the overlay picture');

    await run(['dist/cli/main.js', ...retarget(commands[2]!)]);
    const session = await ort.InferenceSession.create(join(dir, 'maskrcnn.onnx'));
    try {
      assert.deepEqual(session.inputNames, ['pixel_values']);
      assert.deepEqual([...session.outputNames].sort(), ['batch_index', 'boxes', 'labels', 'masks', 'scores']);
    } finally {
      await session.release();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
