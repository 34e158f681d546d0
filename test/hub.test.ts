/**
 * Downloads and the cache (src/node/hub.ts) against a local HTTP server on 127.0.0.1 that serves the
 * shared fixtures: success, cache hits, 404, dropped and short bodies, resume with Range, sha256,
 * and hf: repositories (HF_ENDPOINT pointed at the server) with Hugging Face key names.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  cacheDir, download, loadModel, parseHfSource, readSafetensors, resolveWeights, writePth, writeSafetensors,
  type DownloadProgress, type StateDict,
} from '../src/index.js';
import { SwiftFormerError } from '../src/core/errors.js';
import { fixtureBytes, fixtureTensor } from './fixtures.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const FILE = fixtureBytes('tiny/weights.safetensors'); // ~800 kB: several network reads
const FILE_SHA = createHash('sha256').update(FILE).digest('hex');
const MAX_REQUESTS = 300;
const HTML = new TextEncoder().encode('<!DOCTYPE html>\n<html><head><title>Moved</title></head><body>This file has moved.</body></html>\n');
const HTML_SHA = createHash('sha256').update(HTML).digest('hex');

/** The tiny fixture's official keys renamed as transformers' convert_swiftformer_original_to_hf does. */
function toHuggingFaceKey(key: string): string {
  let k = key.replace('.pwconv', '.point_wise_conv').replace('.dwconv', '.depth_wise_conv').replace('.Proj.', '.proj.');
  k = k.replace(/^patch_embed\./, 'swiftformer.patch_embed.patch_embedding.');
  k = k.replace(/^network\.(\d+)\.(\d+)\./, 'swiftformer.encoder.network.$1.blocks.$2.');
  k = k.replace(/^network\.(\d+)\./, 'swiftformer.encoder.network.$1.');
  return k;
}
const OFFICIAL = readSafetensors(FILE).tensors;
const ONNX = (await loadModel({ weights: OFFICIAL })).toOnnx(32);
const HF_STATE: StateDict = new Map([...OFFICIAL].map(([k, t]) => [toHuggingFaceKey(k), t]));
const ID2LABEL = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [String(i), `thing ${i}`]));
const HF_CONFIG = JSON.stringify({ model_type: 'swiftformer', id2label: ID2LABEL, label2id: {} });

// ---------------------------------------------------------------- the server

let server: Server;
let base = '';
/** GET requests per path; HEAD requests are counted apart, in `heads`. */
const hits = new Map<string, number>();
const heads = new Map<string, number>();
const ranges: (string | undefined)[] = [];
let total = 0;

/**
 * Hugging Face repositories as the hub serves them: commits of files, and a `main` branch that
 * points at one. Every resolve answer names its commit in X-Repo-Commit, except in a repository
 * marked `plain` (a file mirror that only knows `main`).
 */
interface HfRepo { main: string; commits: Map<string, Record<string, Uint8Array>>; plain?: boolean }
const hfRepos: Record<string, HfRepo> = {};

/** Adds a commit to a repository (made on first use) and moves its `main` there; returns the commit id. */
function commit(repo: string, files: Record<string, Uint8Array>, plain = false): string {
  const r = (hfRepos[repo] ??= { main: '', commits: new Map(), plain });
  const id = createHash('sha1').update(`${repo} ${r.commits.size}`).digest('hex');
  r.commits.set(id, files);
  r.main = id;
  return id;
}
const hfConfig = (label: string) => new TextEncoder().encode(JSON.stringify({ model_type: 'swiftformer', id2label: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [String(i), `${label} ${i}`])) }));
const TINY_COMMIT = commit('test/tiny', { 'config.json': new TextEncoder().encode(HF_CONFIG), 'model.safetensors': writeSafetensors(HF_STATE) });
commit('test/htmlconfig', { 'config.json': new TextEncoder().encode('<html><body>Sign in</body></html>'), 'model.safetensors': writeSafetensors(HF_STATE) });
commit('test/htmlweights', { 'config.json': new TextEncoder().encode(HF_CONFIG), 'model.safetensors': new TextEncoder().encode('<!DOCTYPE html><p>gated</p>') });
commit('test/binonly', { 'config.json': new TextEncoder().encode(HF_CONFIG), 'pytorch_model.bin': writePth(HF_STATE, { folder: 'pytorch_model' }) }, true);

function serveHf(req: IncomingMessage, res: ServerResponse, repo: HfRepo, revision: string, file: string): boolean {
  const id = revision === 'main' ? repo.main : repo.plain ? undefined : revision;
  const body = id === undefined ? undefined : repo.commits.get(id)?.[file];
  if (!body) return false;
  sendRange(req, res, body, repo.plain ? {} : { 'x-repo-commit': id! });
  return true;
}

function sendRange(req: IncomingMessage, res: ServerResponse, body: Uint8Array, headers: Record<string, string> = {}): void {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    if (start >= body.length) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    res.writeHead(206, { ...headers, 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, etag: '"v1"' });
    res.end(body.subarray(start));
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': body.length, etag: '"v1"' });
  res.end(body);
}

/** Routes: /f/<x> the fixture (Range supported), /drop mid-body reset, /short fewer bytes than Content-Length, /flaky drops once,
 * /hf/<repo>/resolve/<revision>/<file> Hugging Face. */
function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const count = req.method === 'HEAD' ? heads : hits;
  count.set(path, (count.get(path) ?? 0) + 1);
  if (++total > MAX_REQUESTS) return void res.writeHead(503).end();
  const socket = req.socket;
  if (path.startsWith('/f/')) return sendRange(req, res, FILE);
  if (path.startsWith('/drop/')) {
    // Headers promise the whole file; half of it arrives, then the connection is reset.
    res.writeHead(200, { 'content-length': FILE.length });
    res.write(FILE.subarray(0, FILE.length >> 1), () => setTimeout(() => socket.destroy(), 20));
    return;
  }
  if (path.startsWith('/short/')) {
    // A well-closed connection whose body is 1000 bytes short of its Content-Length.
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${FILE.length}\r\nConnection: close\r\n\r\n`);
    socket.end(FILE.subarray(0, FILE.length - 1000));
    return;
  }
  if (path.startsWith('/flaky/')) {
    ranges.push(req.headers.range);
    if (hits.get(path) === 1) {
      res.writeHead(200, { 'content-length': FILE.length, etag: '"v1"' });
      res.write(FILE.subarray(0, 300_000), () => setTimeout(() => socket.destroy(), 20));
      return;
    }
    return sendRange(req, res, FILE);
  }
  if (path.startsWith('/norange/')) {
    // Drops the first response; then answers a Range request with the whole file (200), as a
    // server does that cannot resume or whose file changed (If-Range mismatch).
    ranges.push(req.headers.range);
    res.writeHead(200, { 'content-length': FILE.length });
    if (hits.get(path) === 1) res.write(FILE.subarray(0, 300_000), () => setTimeout(() => socket.destroy(), 20));
    else res.end(FILE);
    return;
  }
  if (path.startsWith('/stall/')) {
    // Some bytes, then silence (the client's idle timeout must end it).
    res.writeHead(200, { 'content-length': FILE.length });
    res.write(FILE.subarray(0, 1000));
    return;
  }
  if (path.startsWith('/html/')) {
    // A page where a file was expected: a login wall, a "file moved" page, a GitHub blob view.
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': HTML.length });
    res.end(HTML);
    return;
  }
  if (path.startsWith('/html-once/')) {
    if (hits.get(path) === 1) return void res.writeHead(200, { 'content-type': 'text/html' }).end(HTML);
    return sendRange(req, res, FILE);
  }
  if (path.startsWith('/onnx/')) return sendRange(req, res, ONNX);
  if (path.startsWith('/redirect/')) {
    res.writeHead(302, { location: `/f/${path.slice('/redirect/'.length)}` }).end();
    return;
  }
  const hf = /^\/hf\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
  const repo = hf && hfRepos[hf[1]!];
  if (repo && serveHf(req, res, repo, hf[2]!, hf[3]!)) return;
  res.writeHead(404, { 'content-type': 'text/plain' }).end('Entry not found');
}

const savedEnv = { HF_ENDPOINT: process.env.HF_ENDPOINT, SWIFTFORMER_CACHE: process.env.SWIFTFORMER_CACHE, HF_TOKEN: process.env.HF_TOKEN };
let envCache = '';

before(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  envCache = await mkdtemp(join(tmpdir(), 'swiftformer-envcache-'));
  process.env.HF_ENDPOINT = `${base}/hf`;
  process.env.SWIFTFORMER_CACHE = envCache;
  delete process.env.HF_TOKEN;
});

after(async () => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(envCache, { recursive: true, force: true });
});

const newCache = () => mkdtemp(join(tmpdir(), 'swiftformer-cache-'));
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
/** Every file under a folder, relative paths. */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name).slice(dir.length + 1));
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<SwiftFormerError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SwiftFormerError, `expected a SwiftFormerError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected an error matching ${pattern}`);
}

// ---------------------------------------------------------------- tests

describe('download', () => {
  test('fetches a file into the cache once; a second call makes no request', async () => {
    const dir = await newCache();
    const progress: DownloadProgress[] = [];
    const path = await download(`${base}/f/a.safetensors`, { cacheDir: dir, onProgress: (p) => progress.push(p) });
    assert.equal(sha(path), FILE_SHA);
    assert.ok(path.startsWith(dir) && path.endsWith('a.safetensors'));
    assert.equal(hits.get('/f/a.safetensors'), 1);
    const last = progress.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.received, FILE.length);
    assert.ok(progress.slice(0, -1).every((p) => !p.done && p.total === FILE.length && p.received <= FILE.length));

    const again = await download(`${base}/f/a.safetensors`, { cacheDir: dir });
    assert.equal(again, path);
    assert.equal(hits.get('/f/a.safetensors'), 1, 'cache hit: no second request');
    assert.ok(!listFiles(dir).some((f) => f.endsWith('.part')), 'no .part left');
  });

  test('the cache folder follows SWIFTFORMER_CACHE, then XDG_CACHE_HOME, then ~/.cache', () => {
    assert.equal(cacheDir({ SWIFTFORMER_CACHE: '/a', XDG_CACHE_HOME: '/b' }), '/a');
    assert.equal(cacheDir({ XDG_CACHE_HOME: '/b' }), join('/b', 'swiftformer'));
    assert.ok(cacheDir({}).endsWith(join('.cache', 'swiftformer')));
  });

  test('follows redirects, caching under the URL that was asked for', async () => {
    const dir = await newCache();
    const path = await download(`${base}/redirect/r.bin`, { cacheDir: dir });
    assert.equal(sha(path), FILE_SHA);
    assert.equal(hits.get('/redirect/r.bin'), 1);
    assert.equal(hits.get('/f/r.bin'), 1);
  });

  test('404 is "not found: <url>" and leaves nothing in the cache', async () => {
    const dir = await newCache();
    await rejectsWith(download(`${base}/nothing/here.pth`, { cacheDir: dir }), new RegExp(`^not found: ${base}/nothing/here\\.pth$`));
    assert.deepEqual(readdirSync(dir), [], 'not even an empty folder');
  });

  test('a connection reset mid-body is an IO error; the .part is kept and nothing is cached', async () => {
    const dir = await newCache();
    const err = await rejectsWith(download(`${base}/drop/d.bin`, { cacheDir: dir }), /interrupted after \d+ of \d+ bytes.*run again to resume/);
    assert.equal(err.code, 'IO');
    const files = listFiles(dir);
    assert.ok(files.some((f) => f.endsWith('d.bin.part')), `a .part is kept: ${files}`);
    assert.ok(!files.some((f) => f.endsWith('d.bin')), 'no file under the final name');
  });

  test('a body shorter than its Content-Length is an IO error, never a cached file', async () => {
    const dir = await newCache();
    await rejectsWith(download(`${base}/short/s.bin`, { cacheDir: dir }), /interrupted|truncated/);
    const files = listFiles(dir);
    assert.ok(!files.some((f) => f.endsWith('s.bin')), `no file under the final name: ${files}`);
    const part = files.find((f) => f.endsWith('s.bin.part'));
    assert.ok(part, 'the .part is kept for a resume');
    assert.ok(statSync(join(dir, part)).size < FILE.length);
  });

  test('a stalled body times out with the .part kept', async () => {
    const dir = await newCache();
    await rejectsWith(download(`${base}/stall/t.bin`, { cacheDir: dir, idleTimeoutMs: 300 }), /interrupted after \d+ of \d+ bytes \(no data for/);
    assert.deepEqual(listFiles(dir).filter((f) => !f.endsWith('meta.json')).map((f) => f.split('/').at(-1)), ['t.bin.part']);
  });

  test('resumes an interrupted download with a Range request', async () => {
    const dir = await newCache();
    const url = `${base}/flaky/r.safetensors`;
    ranges.length = 0;
    await rejectsWith(download(url, { cacheDir: dir }), /interrupted/);
    const partFile = listFiles(dir).find((f) => f.endsWith('.part'))!;
    const have = statSync(join(dir, partFile)).size;
    assert.ok(have > 0 && have < FILE.length, `part holds ${have} bytes`);
    const progress: DownloadProgress[] = [];
    const path = await download(url, { cacheDir: dir, onProgress: (p) => progress.push(p) });
    assert.deepEqual(ranges, [undefined, `bytes=${have}-`]);
    assert.equal(hits.get('/flaky/r.safetensors'), 2);
    assert.equal(sha(path), FILE_SHA, 'resumed file is byte-identical');
    assert.equal(progress.at(-1)!.resumedFrom, have);
    assert.ok(!existsSync(join(dir, partFile)));
  });

  test('a server that answers a resume with the whole file (200) gets a fresh download', async () => {
    const dir = await newCache();
    const url = `${base}/norange/n.bin`;
    ranges.length = 0;
    await rejectsWith(download(url, { cacheDir: dir }), /interrupted/);
    const path = await download(url, { cacheDir: dir });
    assert.match(ranges[1] ?? '', /^bytes=\d+-$/, 'a resume was asked for');
    assert.equal(sha(path), FILE_SHA, 'the partial bytes were not kept in front of the full body');
  });

  test('sha256: a matching hash passes, a wrong one fails and caches nothing', async () => {
    const dir = await newCache();
    const good = await download(`${base}/f/h1.bin#sha256=${FILE_SHA.toUpperCase()}`, { cacheDir: dir });
    assert.equal(sha(good), FILE_SHA);
    const wrong = '0'.repeat(64);
    await rejectsWith(download(`${base}/f/h2.bin#sha256=${wrong}`, { cacheDir: dir }), new RegExp(`sha256 mismatch.*expected ${wrong}, got ${FILE_SHA}`));
    await rejectsWith(download(`${base}/f/h3.bin`, { cacheDir: dir, sha256: wrong }), /sha256 mismatch/);
    const files = listFiles(dir);
    assert.ok(!files.some((f) => /h[23]\.bin/.test(f)), `nothing kept for the mismatches: ${files}`);
    // A cached file that does not have the expected hash is not a cache hit.
    const before = hits.get('/f/h1.bin');
    await rejectsWith(download(`${base}/f/h1.bin`, { cacheDir: dir, sha256: wrong }), /sha256 mismatch/);
    assert.equal(hits.get('/f/h1.bin'), before! + 1);
    await rejectsWith(download(`${base}/f/x.bin#sha256=abc`, { cacheDir: dir }), /64 hex digits/);
  });

  test('concurrent calls for one URL share one request', async () => {
    const dir = await newCache();
    const [a, b] = await Promise.all([download(`${base}/f/c.bin`, { cacheDir: dir }), download(`${base}/f/c.bin`, { cacheDir: dir })]);
    assert.equal(a, b);
    assert.equal(hits.get('/f/c.bin'), 1);
  });

  test('unreachable host and bad URLs are one clear error', async () => {
    const dir = await newCache();
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await rejectsWith(download(`http://127.0.0.1:${port}/w.pth`, { cacheDir: dir }), /cannot download .*ECONNREFUSED/);
    await rejectsWith(download('ftp://example.invalid/w.pth', { cacheDir: dir }), /unsupported URL scheme ftp:/);
  });
});

describe('what a download holds is checked before it is cached', () => {
  test('an HTML page where a checkpoint was expected: one error naming the URL, the content type and the cache; nothing cached', async () => {
    const dir = await newCache();
    const url = `${base}/html/w.pth`;
    for (let attempt = 1; attempt <= 2; attempt++) {
      const err = await rejectsWith(resolveWeights(url, { cacheDir: dir }), new RegExp(
        `^${url} did not answer with a checkpoint \\(PyTorch zip or safetensors\\) but an HTML page \\(content type text/html; charset=utf-8, ${HTML.length} bytes\\); nothing was cached in ${dir}$`));
      assert.equal(err.code, 'BAD_CHECKPOINT');
      assert.deepEqual(listFiles(dir), [], 'nothing in the cache, not even meta.json');
      assert.equal(hits.get('/html/w.pth'), attempt, 'every run asks again');
    }
  });

  test('.onnx URLs must hold ONNX, .json JSON; an expected sha256 vouches for any content', async () => {
    const dir = await newCache();
    assert.equal(sha(await download(`${base}/onnx/m.onnx`, { cacheDir: dir })), createHash('sha256').update(ONNX).digest('hex'));
    await rejectsWith(download(`${base}/f/m.onnx`, { cacheDir: dir }), /m\.onnx did not answer with an ONNX model but a safetensors file \(content type not given, \d+ bytes\)/);
    await rejectsWith(download(`${base}/html/labels.json`, { cacheDir: dir }), /labels\.json did not answer with JSON but an HTML page/);
    const vouched = await download(`${base}/html/page.bin#sha256=${HTML_SHA}`, { cacheDir: dir });
    assert.equal(sha(vouched), HTML_SHA);
    assert.equal(sha(await download(`${base}/html/any.pth`, { cacheDir: dir, expect: 'any' })), HTML_SHA);
  });

  test('a bad file already in the cache (from an older version) is not a hit: it is fetched again', async () => {
    const dir = await newCache();
    const url = `${base}/html-once/w.safetensors`;
    const poisoned = await download(url, { cacheDir: dir, expect: 'any' });
    assert.equal(sha(poisoned), HTML_SHA);
    const path = await download(url, { cacheDir: dir });
    assert.equal(path, poisoned);
    assert.equal(sha(path), FILE_SHA);
    assert.equal(hits.get('/html-once/w.safetensors'), 2);
  });

  test('hf: a config.json or model file that is an HTML page is refused', async () => {
    const dir = await newCache();
    await rejectsWith(resolveWeights('hf:test/htmlconfig', { cacheDir: dir }), /config\.json did not answer with JSON but an HTML page/);
    await rejectsWith(resolveWeights('hf:test/htmlweights', { cacheDir: dir }), /model\.safetensors did not answer with a checkpoint .* but an HTML page/);
    assert.ok(!listFiles(dir).some((f) => f.endsWith('model.safetensors')));
  });

  test('the CLI: one line, exit 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-htmlcli-'));
    const env = { ...process.env, SWIFTFORMER_CACHE: join(dir, 'cache') };
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', MAIN, 'classify', 'x.png', '--weights', `${base}/html/cli.pth`], { env }, (err, _stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }));
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^swiftformer classify: .*cli\.pth did not answer with a checkpoint .* but an HTML page \(content type text\/html; charset=utf-8, \d+ bytes\); nothing was cached in .*cache\n$/);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('hf: repositories', () => {
  test('parses hf:ORG/NAME[@revision] and refuses anything else', () => {
    assert.deepEqual(parseHfSource('hf:MBZUAI/swiftformer-xs'), { repo: 'MBZUAI/swiftformer-xs', revision: 'main' });
    assert.deepEqual(parseHfSource('hf:a/b@v1.0'), { repo: 'a/b', revision: 'v1.0' });
    for (const bad of ['hf:noslash', 'hf:a/b/c', 'hf:../x', 'hf:']) assert.throws(() => parseHfSource(bad), /not a Hugging Face source/);
  });

  const count = (m: Map<string, number>, path: string) => m.get(path) ?? 0;

  test('main is pinned to its commit by one HEAD; config.json and model.safetensors come from that commit; cached afterwards', async () => {
    const dir = await newCache();
    const main = '/hf/test/tiny/resolve/main/config.json';
    const at = (file: string) => `/hf/test/tiny/resolve/${TINY_COMMIT}/${file}`;
    const before = [count(heads, main), count(hits, at('config.json')), count(hits, at('model.safetensors'))];
    const r = await resolveWeights('hf:test/tiny', { cacheDir: dir });
    assert.deepEqual([count(heads, main), count(hits, at('config.json')), count(hits, at('model.safetensors'))], before.map((n) => n + 1));
    assert.equal(count(hits, main), 0, 'nothing is downloaded from the branch URL');
    assert.equal(r.labels?.length, 1000);
    assert.equal(r.labels?.[7], 'thing 7');
    assert.deepEqual(readSafetensors(readFileSync(r.path)).tensors.keys().next().value, 'swiftformer.patch_embed.patch_embedding.0.weight');
    await resolveWeights('hf:test/tiny', { cacheDir: dir });
    assert.deepEqual([count(heads, main), count(hits, at('config.json')), count(hits, at('model.safetensors'))], [before[0]! + 2, before[1]! + 1, before[2]! + 1], 'the second load asks only which commit main is at');
  });

  test('a branch that moved is downloaded again; offline the last commit seen is used; a commit id needs no HEAD', async () => {
    const dir = await newCache();
    const weights = writeSafetensors(HF_STATE);
    const first = commit('test/moving', { 'config.json': hfConfig('old'), 'model.safetensors': weights });
    const a = await resolveWeights('hf:test/moving', { cacheDir: dir });
    assert.equal(a.labels?.[3], 'old 3');
    const second = commit('test/moving', { 'config.json': hfConfig('new'), 'model.safetensors': weights });
    const b = await resolveWeights('hf:test/moving', { cacheDir: dir });
    assert.equal(b.labels?.[3], 'new 3', 'main moved: the new commit is used');
    assert.notEqual(b.path, a.path);
    assert.equal(count(hits, `/hf/test/moving/resolve/${second}/model.safetensors`), 1);
    // A pinned commit is immutable: read from the cache without asking the server anything.
    const headsBefore = count(heads, '/hf/test/moving/resolve/main/config.json');
    const pinned = await resolveWeights(`hf:test/moving@${first}`, { cacheDir: dir });
    assert.equal(pinned.labels?.[3], 'old 3');
    assert.equal(pinned.path, a.path);
    assert.equal(count(heads, '/hf/test/moving/resolve/main/config.json'), headsBefore);
    // Offline, by switch and by a server that is gone: the last commit seen, from the cache.
    const requests = total;
    process.env.HF_HUB_OFFLINE = '1';
    try {
      assert.equal((await resolveWeights('hf:test/moving', { cacheDir: dir })).labels?.[3], 'new 3');
      assert.equal(total, requests, 'HF_HUB_OFFLINE: no request at all');
      await rejectsWith(resolveWeights('hf:test/moving', { cacheDir: await newCache() }), /HF_HUB_OFFLINE is set and hf:test\/moving is not in the cache/);
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
    const mirror = createServer(handle);
    await new Promise<void>((resolve) => mirror.listen(0, '127.0.0.1', resolve));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}/hf`;
    try {
      const online = await resolveWeights('hf:test/moving', { cacheDir: dir });
      mirror.closeAllConnections();
      await new Promise((resolve) => mirror.close(resolve));
      const offline = await resolveWeights('hf:test/moving', { cacheDir: dir });
      assert.equal(offline.path, online.path, 'the server is gone: the commit it last named, from the cache');
      assert.equal(offline.labels?.[3], 'new 3');
      await rejectsWith(resolveWeights('hf:test/moving@v2', { cacheDir: dir }), /cannot download .*resolve\/v2\/config\.json/);
    } finally {
      process.env.HF_ENDPOINT = `${base}/hf`;
    }
  });

  test('a mirror that does not name commits is cached under the revision; pytorch_model.bin after a 404; a missing repository is "not found"', async () => {
    const dir = await newCache();
    const headsBefore = count(heads, '/hf/test/binonly/resolve/main/config.json');
    const r = await resolveWeights('hf:test/binonly', { cacheDir: dir });
    assert.equal(count(heads, '/hf/test/binonly/resolve/main/config.json'), headsBefore + 1);
    assert.equal(hits.get('/hf/test/binonly/resolve/main/model.safetensors'), 1);
    assert.equal(hits.get('/hf/test/binonly/resolve/main/pytorch_model.bin'), 1);
    assert.match(r.path, /pytorch_model\.bin$/);
    await resolveWeights('hf:test/binonly', { cacheDir: dir });
    assert.equal(hits.get('/hf/test/binonly/resolve/main/model.safetensors'), 1, 'no request once the .bin is cached');
    await rejectsWith(resolveWeights('hf:test/nope', { cacheDir: dir }), new RegExp(`not found: ${base}/hf/test/nope/resolve/main/config\\.json`));
  });

  test('loadModel({ weights: "hf:..." }) reads Hugging Face keys and runs them with softmax attention', async () => {
    const fromHub = await loadModel({ weights: 'hf:test/tiny', task: 'classification' });
    assert.equal(fromHub.report?.format, 'huggingface');
    assert.equal(fromHub.config.attention, 'softmax');
    assert.ok(listFiles(envCache).some((f) => f.endsWith('model.safetensors')), 'downloaded into $SWIFTFORMER_CACHE');
    // The same tensors under official keys, told to use softmax, must give the same logits.
    const official = await loadModel({ weights: OFFICIAL, task: 'classification', attention: 'softmax' });
    const input = fixtureTensor('tiny', 'input.bin');
    const a = await fromHub.logits(input);
    const b = await official.logits(input);
    assert.deepEqual(a.shape, [2, 1000]);
    assert.deepEqual(a.data, b.data);
    // And they differ from the official (l2) rule the fixture logits were made with.
    const l2 = fixtureTensor('tiny', 'logits.bin');
    assert.ok(a.data.some((v, i) => Math.abs(v - l2.data[i]!) > 1e-3));
    await fromHub.release();
    await official.release();
  });

  test('the CLI classifies with hf: weights and labels from id2label', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swiftformer-hfcli-'));
    const image = join(dir, 'img.png');
    const sharp = (await import('sharp')).default;
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toFile(image);
    const env = { ...process.env, HF_ENDPOINT: `${base}/hf`, SWIFTFORMER_CACHE: join(dir, 'cache') };
    const weightsPath = `/hf/test/tiny/resolve/${TINY_COMMIT}/model.safetensors`;
    const before = hits.get(weightsPath) ?? 0;
    const headsBefore = heads.get('/hf/test/tiny/resolve/main/config.json') ?? 0;
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', MAIN, 'classify', image, '--weights', 'hf:test/tiny', '--json', '--top', '3'], { env }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { file: string; predictions: { index: number; label: string; score: number }[] }[];
    assert.equal(out[0]!.predictions.length, 3);
    for (const p of out[0]!.predictions) assert.equal(p.label, `thing ${p.index}`);
    assert.match(r.stderr, /downloaded .*model\.safetensors/);
    assert.equal(hits.get(weightsPath), before + 1, 'downloaded once: the model then reads the cached file');
    assert.equal(heads.get('/hf/test/tiny/resolve/main/config.json'), headsBefore + 1, 'one HEAD request per load, as the README says');
    await rm(dir, { recursive: true, force: true });
  });
});
