/**
 * The README runs as written. Its library example is run against the built package (imported by its
 * own name, as a user would) and checked against what its comments say; every other ```ts block
 * (except the one for browsers, and the scoring one, which test/score.test.ts runs) and every
 * `npx swiftformer` command of its ```sh blocks is run in a sandbox folder that holds the files the
 * examples name: `SwiftFormer_XS_ckpt.pth` is the official code's XS checkpoint from the fixtures
 * (same layout as the release's file, random weights), `hf:MBZUAI/swiftformer-xs` and the
 * `https://example.org/xs.pth#sha256=<hex>` placeholder are served by a local server on 127.0.0.1,
 * photos and label maps are generated, COCO files come from test/data/coco (pycocotools' reference
 * runs). Trainings get a few images and one epoch appended (`SHORTER`, the fine-tuning also 64 px);
 * nothing else is changed. Paths, scripts and npm scripts the text names must exist. Every ```ts block
 * also compiles under strict TypeScript against the built package's declarations.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { writeGrayPng } from '../src/node/png.js';
import { initialWeights, variantConfig } from '../src/models/swiftformer.js';
import { writePth } from '../src/weights/pth.js';
import { readStateDict } from '../src/weights/read.js';
import { writeSafetensors } from '../src/weights/safetensors.js';
import { fixtureBytes, fixturePath } from './fixtures.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');
/** Inside the package, so that `import 'swiftformer'` resolves to it (a self-reference). */
const SANDBOX = join(ROOT, '.readme-sandbox');
const README = await readFile(join(ROOT, 'README.md'), 'utf8');

interface Block { info: string; body: string }
const BLOCKS: Block[] = [...README.matchAll(/^```(\S*(?: \S+)?)\n([\s\S]*?)^```$/gm)].map((m) => ({ info: m[1]!, body: m[2]! }));

/** Commands the test shortens: a few images and epochs, appended after the README's own flags (the last value wins). */
const SHORTER: { command: RegExp; append: string }[] = [
  { command: /^train --data fashion-mnist /, append: ' --limit 128 --epochs 1 --batch-size 64' },
  { command: /^train --data photos /, append: ' --epochs 1 --batch-size 2 --input-size 64' },
  { command: /^train --resume runs\/fmnist --epochs/, append: ' --epochs 2' },
  { command: /^serve/, append: ' --port 0' }, // any free port: the README's 8000 and 8080 may be taken
];

interface Run { code: number; stdout: string; stderr: string }

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let server: Server;
let base = '';
let env: NodeJS.ProcessEnv = {};
const checkpoint = fixtureBytes('xs/checkpoint_model_only.pth');
const checkpointSha = createHash('sha256').update(checkpoint).digest('hex');

/** A folder in the sandbox, made if missing. */
async function dir(path: string): Promise<string> {
  await mkdir(join(SANDBOX, path), { recursive: true });
  return join(SANDBOX, path);
}

/** An image of a flat colour with a gradient, so each photo is different. */
async function photo(path: string, r: number, g: number, b: number): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const width = 96;
  const height = 72;
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([(r + (i % width)) % 256, (g + i / width) % 256, b], i * 3);
  const image = sharp(data, { raw: { width, height, channels: 3 } });
  await (path.endsWith('.png') ? image.png() : image.jpeg()).toFile(path);
}

before(async () => {
  await rm(SANDBOX, { recursive: true, force: true });
  await mkdir(SANDBOX, { recursive: true });
  await copyFile(fixturePath('xs/checkpoint_model_only.pth'), join(SANDBOX, 'SwiftFormer_XS_ckpt.pth'));
  await copyFile(fixturePath('xs/fork_feat_weights.safetensors'), join(SANDBOX, 'fork_feat_weights.safetensors'));
  // The official L1 checkpoint's layout ({'model': state_dict}) and shapes, random weights.
  await writeFile(join(SANDBOX, 'SwiftFormer_L1.pth'), writePth({ model: initialWeights(variantConfig('l1'), 'classifier', 0) } as never, { folder: 'SwiftFormer_L1' }));
  // fmnist.onnx, which the serve example names: the bundled model exported.
  const exported = await run(process.execPath, [MAIN, 'export', '--weights', join(ROOT, 'assets/default/model.safetensors'), '--onnx', join(SANDBOX, 'fmnist.onnx')], SANDBOX, process.env);
  assert.equal(exported.code, 0, exported.stderr);
  await photo(join(SANDBOX, 'cat.jpg'), 200, 120, 40);
  await photo(join(SANDBOX, 'dog.png'), 90, 60, 30);
  for (const [i, c] of [[1, 10], [2, 200]] as const) await photo(join(SANDBOX, 'photos', `p${i}.jpg`), c, 50, 200 - c);
  for (const [cls, c] of [['blue', 20], ['red', 230]] as const) {
    for (const split of ['train', 'val']) {
      for (const i of split === 'train' ? [1, 2] : [1]) await photo(join(SANDBOX, 'photos', split, cls, `${i}.jpg`), c, 40 * i, 255 - c);
    }
    await photo(join(SANDBOX, 'imagenet', 'val', `n0${c}`, 'x.png'), c, 100, 100);
  }
  // Label maps for `score segmentation` (ADE20K's 150 classes with 0 = other, and a 21-class set),
  // predictions beside them, and a COCO segm run for `score detection`.
  const labels = (f: (i: number) => number) => Uint8Array.from({ length: 8 * 6 }, (_, i) => f(i));
  for (const stem of ['a', 'b']) {
    const k = stem === 'a' ? 1 : 2;
    await writeGrayPng(join(await dir('ADEChallengeData2016/annotations/validation'), `${stem}.png`), labels((i) => (i * k) % 151), 8, 6);
    await writeGrayPng(join(await dir('ann_dir/val'), `${stem}.png`), labels((i) => (i * k) % 21), 8, 6);
    await writeGrayPng(join(await dir('masks'), `${stem}.png`), labels((i) => (i * k + (i % 3)) % 21), 8, 6);
  }
  const coco = JSON.parse(await readFile(new URL('./data/coco/eval-2.json', import.meta.url), 'utf8')) as { iouType: string; gt: unknown; results: unknown };
  assert.equal(coco.iouType, 'segm');
  await writeFile(join(await dir('annotations'), 'instances_val2017.json'), JSON.stringify(coco.gt));
  await writeFile(join(SANDBOX, 'results.json'), JSON.stringify(coco.results));
  // A Hugging Face mirror with MBZUAI/swiftformer-xs, and the placeholder URL's checkpoint.
  const hfWeights = writeSafetensors(await readStateDict(checkpoint));
  const config = JSON.stringify({ model_type: 'swiftformer', id2label: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [String(i), `class ${i}`])) });
  const files: Record<string, Uint8Array | string> = {
    '/hf/MBZUAI/swiftformer-xs/resolve/main/config.json': config,
    '/hf/MBZUAI/swiftformer-xs/resolve/main/model.safetensors': hfWeights,
    '/xs.pth': checkpoint,
  };
  server = createServer((req, res) => {
    const body = files[new URL(req.url ?? '/', 'http://x').pathname];
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  env = { ...process.env, HF_ENDPOINT: `${base}/hf`, SWIFTFORMER_CACHE: join(SANDBOX, 'cache') };
  delete env.HF_HUB_OFFLINE;
  delete env.HF_TOKEN;
});

after(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await rm(SANDBOX, { recursive: true, force: true });
});

test('README library example runs and prints what its comments say', async () => {
  const block = BLOCKS.find((b) => b.info === 'ts example');
  assert.ok(block, 'README has a ```ts example block');
  // Run from the repo root (the example's relative path is from there), as plain ESM JavaScript.
  const script = `${ROOT}.readme-example.mts`;
  await writeFile(script, block.body);
  try {
    const r = await run(process.execPath, ['--import', 'tsx', script], ROOT, process.env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /\[ 48, 56, 112, 220 \] official l2/);
    assert.match(lines[1]!, /\[ 1, 1000 \]/);
    assert.equal(lines[2], '28494736');
    assert.ok(Number(lines[3]) > 13e6, 'ONNX bytes hold the 3.5 M float parameters');
  } finally {
    await rm(script, { force: true });
  }
});

test("every ```ts block type-checks against the package's declarations (strict), as a TypeScript user would compile it", async () => {
  const blocks = BLOCKS.filter((b) => /^ts\b/.test(b.info));
  assert.ok(blocks.length >= 10, `${blocks.length} blocks`);
  const dir = join(SANDBOX, 'typecheck');
  await mkdir(dir, { recursive: true });
  // Node blocks resolve 'swiftformer' as Node does; the browser block as a bundler does (the package's `browser` condition).
  const browser = (b: Block) => b.info === 'ts browser';
  await Promise.all(blocks.map((b, i) => writeFile(join(dir, `${browser(b) ? 'browser' : 'node'}-${i}.mts`), b.body)));
  const strict = { strict: true, noEmit: true, target: 'ES2022', lib: ['ES2022', 'DOM'], skipLibCheck: true };
  const configs = {
    node: { ...strict, module: 'NodeNext', moduleResolution: 'NodeNext', types: ['node'] },
    browser: { ...strict, module: 'ESNext', moduleResolution: 'Bundler', customConditions: ['browser'], types: [] },
  };
  for (const [name, compilerOptions] of Object.entries(configs)) {
    await writeFile(join(dir, `tsconfig.${name}.json`), JSON.stringify({ compilerOptions, include: [`${name}-*.mts`] }));
    const r = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, `tsconfig.${name}.json`)], dir, process.env);
    const named = r.stdout.replace(/(?:node|browser)-(\d+)\.mts/g, (_, i: string) => `README block ${i} (${blocks[Number(i)]!.body.split('\n')[0]})`);
    assert.equal(r.code, 0, named);
  }
});

describe('every other README example runs as written', () => {
  /** What a block must print, for the blocks whose comments say what they print. */
  const prints: { marker: string; output: RegExp }[] = [
    { marker: "'assets/default/model.safetensors'", output: /^classification \[ 32, 32 \] Coat\n\[ \{ index: 4, label: 'Coat', score: 0\.88\d+ \} \]\nBAD_ARGUMENT$/m },
    { marker: 'fork_feat_weights', output: /^\[ 1, 48, 56, 56 \] \[ 1, 220, 7, 7 \]$/m },
    { marker: "hf:MBZUAI/swiftformer-xs'", output: /^5 \[ 1, 3, 224, 224 \] \[ 1, 1000 \]$/m },
    { marker: "attentionType: 'mhsa'", output: /^3474924$/m },
    { marker: "'SwiftFormer_L1.pth'", output: /^150$/m },
    { marker: "openTrainingData('fashion-mnist'", output: /epoch: 2,/ },
  ];

  test('the ```ts blocks (Node)', async () => {
    const blocks = BLOCKS.filter((b) => b.info === 'ts');
    assert.ok(blocks.length >= 4, `${blocks.length} blocks`);
    for (const [i, block] of blocks.entries()) {
      const script = join(SANDBOX, `.block-${i}.mts`); // inside the package either way: 'swiftformer' resolves to it
      await writeFile(script, block.body);
      const r = await run(process.execPath, ['--import', 'tsx', script], block.body.includes("'assets/") ? ROOT : SANDBOX, env);
      assert.equal(r.code, 0, `README block:\n${block.body}\n${r.stderr}`);
      for (const p of prints) if (block.body.includes(p.marker)) assert.match(r.stdout, p.output, block.body);
    }
    assert.ok(BLOCKS.some((b) => b.info === 'ts browser'), 'the browser block is marked as such (test/browser.test.ts drives the page)');
  });

  /** The README's sh lines (a trailing backslash continues a line), comments dropped. */
  const shLines = BLOCKS.filter((b) => b.info === 'sh')
    .flatMap((b) => b.body.replace(/\\\n\s*/g, ' ').split('\n'))
    .map((line) => line.replace(/\s+# .*$/, '').trim());

  /** A README command line with the test's substitutions: the placeholder URL served here, shorter runs. */
  function asRun(command: string): string {
    const shorter = SHORTER.find((s) => s.command.test(command))?.append ?? '';
    // ../shared/fixtures is the checkout's sibling as the README is read; the sandbox is one level deeper.
    return command.replace('https://example.org/xs.pth#sha256=<hex>', `${base}/xs.pth#sha256=${checkpointSha}`).replaceAll('../shared/fixtures/', fixturePath('')) + shorter;
  }

  test('the `npx swiftformer` commands (servers apart)', async () => {
    const commands = shLines.filter((l) => l.startsWith('npx swiftformer ') && !l.startsWith('npx swiftformer serve')).map((l) => l.slice('npx swiftformer '.length));
    assert.ok(commands.length >= 10, `${commands.length} commands`);
    for (const command of commands) {
      const line = asRun(command);
      const cwd = command.includes('assets/') ? ROOT : SANDBOX; // the bundled examples are in the package
      const r = await run('/bin/sh', ['-c', `exec "${process.execPath}" "${MAIN}" ${line}`], cwd, env);
      assert.equal(r.code, 0, `npx swiftformer ${line}\n${r.stderr}`);
      if (command.includes('--json')) JSON.parse(r.stdout);
    }
    assert.ok(existsSync(join(SANDBOX, 'runs', 'photos', 'checkpoint.safetensors')), 'the fine-tuning example wrote its run');
  });

  test('`npx swiftformer serve`: each server starts, answers the curl lines after it, and stops on SIGTERM', async () => {
    const servers: { command: string; curls: string[] }[] = [];
    for (const l of shLines) {
      if (l.startsWith('npx swiftformer serve')) servers.push({ command: l.slice('npx swiftformer '.length), curls: [] });
      else if (l.startsWith('curl ')) servers.at(-1)!.curls.push(l);
    }
    assert.ok(servers.length >= 3 && servers.some((s) => s.curls.length > 0));
    for (const { command, curls } of servers) {
      // The curl lines read assets/ from the package; models/ is what export --triton wrote above.
      const child = spawn('/bin/sh', ['-c', `exec "${process.execPath}" "${MAIN}" ${asRun(command)}`], { cwd: SANDBOX, env });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
      const address = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d;
          const m = /^listening on http:\/\/(\S+)\n/.exec(out);
          if (m) resolve(m[1]!);
        });
        void exited.then((code) => reject(new Error(`${command} exited with ${code} before listening:\n${stderr}`)));
      });
      for (const curl of curls) {
        const r = await run('/bin/sh', ['-c', curl.replace(/localhost:\d+/g, address)], ROOT, env);
        assert.equal(r.code, 0, `${curl}\n${r.stderr}`);
        const body = JSON.parse(r.stdout) as { ready?: boolean; predictions?: { index: number; label: string }[]; width?: number; mask?: string; classes?: unknown[]; detections?: { box: unknown; mask?: string }[] };
        const predictions = body.predictions ?? [];
        if (curl.includes('classify')) assert.deepEqual([predictions.length, predictions[0]?.index, predictions[0]?.label], [3, 4, 'Coat'], r.stdout);
        else if (curl.includes('/segment')) {
          assert.equal(body.width, 28, r.stdout);
          assert.ok(Buffer.from(body.mask!, 'base64').subarray(1, 4).toString() === 'PNG' && body.classes!.length > 0, r.stdout);
        } else if (curl.includes('/detect')) {
          assert.ok(body.detections!.length > 0 && body.detections!.every((d) => d.box && d.mask === undefined), r.stdout);
        } else assert.equal(body.ready, true, r.stdout);
      }
      child.kill('SIGTERM');
      assert.equal(await exited, 0, `${command}: exit after SIGTERM\n${stderr}`);
    }
  });

  test('the files, scripts and npm scripts the text names exist', async () => {
    const scripts = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const [, name] of README.matchAll(/npm run ([\w:-]+)/g)) assert.ok(scripts[name!], `npm run ${name}`);
    const paths = [...README.matchAll(/`((?:src|scripts|bench|assets|test|web)\/[\w./-]*)`/g)].map((m) => m[1]!);
    assert.ok(paths.length > 20);
    for (const path of paths) if (!path.startsWith('web/dist')) assert.ok(existsSync(join(ROOT, path)), path);
  });
});
