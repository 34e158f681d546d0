/**
 * Weights from the network (Node): `https://` / `http://` URLs and Hugging Face repositories
 * (`hf:ORG/NAME[@revision]`), downloaded once into a cache and read from there afterwards.
 *
 * A download goes to `<file>.part`, resumes with an HTTP Range request when a `.part` exists,
 * is checked against the announced size, then against a sha256 when one is given, else against
 * what its name promises (a checkpoint, ONNX, JSON: an HTML page is never cached as weights), and
 * is renamed into place only when complete: the cache never holds a partial or corrupt file. Cache layout:
 * `<cache>/<sha256(url)[:24]>/<file name>` (plus `meta.json`), so a URL is fetched at most once.
 * An hf: branch or tag is first pinned to the commit it names now (one HEAD request; `refs/`
 * remembers it for offline use), so its files are cached under that commit's URLs.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm, rmdir, stat, utimes, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SwiftFormerError } from '../core/errors.js';
import { contentMismatch, expectedFromName, HEAD_BYTES, type ExpectedContent } from './content.js';
import { makeDirectory, writeFileAtomic } from './files.js';
import { HF_WEIGHT_FILES, hfFileUrl, parseHfSource } from '../weights/hf.js';
import { labelsFromHfConfig } from '../models/labels.js';

export interface DownloadProgress {
  url: string;
  /** Bytes of the file on disk so far (resumed bytes included). */
  received: number;
  /** Full size, when the server announced it. */
  total: number | undefined;
  /** Bytes that were already in a `.part` file from an earlier attempt. */
  resumedFrom: number;
  done: boolean;
}

export interface DownloadOptions {
  /** Cache folder; default $SWIFTFORMER_CACHE, else $XDG_CACHE_HOME/swiftformer, else ~/.cache/swiftformer. */
  cacheDir?: string;
  /** Expected sha256 (hex) of the file; a `#sha256=<hex>` URL fragment does the same. */
  sha256?: string;
  /**
   * What the file must hold to be cached, when no sha256 vouches for it: 'checkpoint' (PyTorch zip
   * or safetensors), 'onnx', 'json', 'text', or 'any'. Default: from the URL's file name (.onnx,
   * .json, .txt, anything else a checkpoint). A cached file that does not qualify is fetched again.
   */
  expect?: ExpectedContent;
  /** Called as bytes arrive (at most every 100 ms) and once at the end with done: true. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Extra request headers (e.g. Authorization). They are not sent on to another host after a redirect. */
  headers?: Record<string, string>;
  /** Give up when no byte arrives for this long (default 60 s). The `.part` is kept. */
  idleTimeoutMs?: number;
}

/** An HTTP error status; `status` 404 means "not found". */
export class HttpStatusError extends SwiftFormerError {
  readonly status: number;
  readonly url: string;
  constructor(status: number, url: string, message: string) {
    super('IO', message);
    this.name = 'HttpStatusError';
    this.status = status;
    this.url = url;
  }
}

/** The cache folder, from the environment. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SWIFTFORMER_CACHE) return env.SWIFTFORMER_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'swiftformer');
  return join(homedir(), '.cache', 'swiftformer');
}

/** True for sources this module fetches: http(s) URLs and hf: repositories. */
export function isRemoteSource(source: string): boolean {
  return /^https?:\/\//i.test(source) || source.startsWith('hf:');
}

// ---------------------------------------------------------------- URLs and cache paths

interface Target {
  /** The URL without its fragment: what is requested and what keys the cache. */
  url: string;
  sha256: string | undefined;
  expect: ExpectedContent;
  /** The cache folder (the root, for messages). */
  cache: string;
  dir: string;
  file: string;
  part: string;
  meta: string;
}

function parseUrl(source: string): URL {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    throw new SwiftFormerError('BAD_ARGUMENT', `not a valid URL: ${source}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new SwiftFormerError('BAD_ARGUMENT', `unsupported URL scheme ${url.protocol} in ${source} (http and https only)`);
  return url;
}

function normalizeSha(sha: string | undefined, source: string): string | undefined {
  if (sha === undefined || sha === '') return undefined;
  const hex = sha.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new SwiftFormerError('BAD_ARGUMENT', `sha256 for ${source} must be 64 hex digits, got '${sha}'`);
  return hex;
}

function target(source: string, options: DownloadOptions): Target {
  const url = parseUrl(source);
  const fragment = /(?:^|&)sha256=([^&]*)/.exec(url.hash.slice(1))?.[1];
  const fromFragment = normalizeSha(fragment, source);
  const fromOption = normalizeSha(options.sha256, source);
  if (fromFragment && fromOption && fromFragment !== fromOption) {
    throw new SwiftFormerError('BAD_ARGUMENT', `two different sha256 values for ${source} (URL fragment and option)`);
  }
  url.hash = '';
  const href = url.href;
  const cache = options.cacheDir ?? cacheDir();
  const dir = join(cache, createHash('sha256').update(href).digest('hex').slice(0, 24));
  const file = join(dir, safeName(url));
  const expect = options.expect ?? expectedFromName(href);
  return { url: href, sha256: fromOption ?? fromFragment, expect, cache, dir, file, part: `${file}.part`, meta: join(dir, 'meta.json') };
}

/** The URL's last path segment, made safe as a file name. */
function safeName(url: URL): string {
  let last = url.pathname.split('/').filter(Boolean).at(-1) ?? '';
  try {
    last = decodeURIComponent(last);
  } catch {
    // keep it encoded
  }
  const name = last.replace(/[^\w.+-]/g, '_').replace(/^\.+/, '').slice(0, 120);
  return name === '' || name === 'meta.json' ? 'download' : name;
}

/** Where `url` is (or would be) cached; undefined until it has been downloaded. */
export async function cachedPath(url: string, options: Pick<DownloadOptions, 'cacheDir' | 'sha256' | 'expect'> = {}): Promise<string | undefined> {
  const t = target(url, options);
  return (await isCacheHit(t)) ? t.file : undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

interface Meta {
  url: string;
  size?: number;
  sha256?: string;
  etag?: string;
  lastModified?: string;
  contentType?: string;
  complete: boolean;
}

async function readMeta(t: Target): Promise<Meta | undefined> {
  try {
    const meta = JSON.parse(await readFile(t.meta, 'utf8')) as Meta;
    return meta.url === t.url ? meta : undefined;
  } catch {
    return undefined;
  }
}

/** A cached file counts only if it is there and has the expected sha256, or else the expected content. */
async function isCacheHit(t: Target): Promise<boolean> {
  if (!(await exists(t.file))) return false;
  if (!t.sha256) return contentMismatch(await readHead(t.file), t.expect) === undefined;
  const meta = await readMeta(t);
  const actual = meta?.sha256 && meta.complete ? meta.sha256 : await hashFile(t.file);
  return actual === t.sha256;
}

async function readHead(path: string): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(new Uint8Array(HEAD_BYTES), 0, HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

async function hashFile(path: string, hash = createHash('sha256')): Promise<string> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// ---------------------------------------------------------------- download

const inflight = new Map<string, Promise<string>>();

/**
 * Downloads `url` into the cache unless it is there already; returns the cached file's path.
 * Concurrent calls for one URL share a download (across processes too, through a lock file).
 */
export async function download(url: string, options: DownloadOptions = {}): Promise<string> {
  const t = target(url, options);
  const key = `${t.file}\0${t.sha256 ?? ''}`;
  let pending = inflight.get(key);
  if (!pending) {
    pending = downloadTarget(t, options).finally(() => inflight.delete(key));
    inflight.set(key, pending);
  }
  return pending;
}

async function downloadTarget(t: Target, options: DownloadOptions): Promise<string> {
  try {
    if (await isCacheHit(t)) return t.file;
    await makeCacheDirectory(t.dir);
    const release = await lock(t);
    try {
      if (await isCacheHit(t)) return t.file; // another process finished it meanwhile
      await rm(t.file, { force: true }); // present but with the wrong hash or content
      await fetchToPart(t, options);
      await rename(t.part, t.file);
      return t.file;
    } finally {
      await release();
    }
  } catch (err) {
    await rmdir(t.dir).catch(() => {}); // only if the failure left it empty
    if (err instanceof SwiftFormerError) throw err;
    // File system trouble in the cache (permissions, disk full): still one clear line.
    throw new SwiftFormerError('IO', `cannot download ${t.url} into ${t.dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** A folder in the cache; one that cannot be made says how to choose another cache. */
async function makeCacheDirectory(dir: string): Promise<void> {
  try {
    await makeDirectory(dir, 'download cache folder');
  } catch (err) {
    throw new SwiftFormerError('IO', `${(err as Error).message} (set SWIFTFORMER_CACHE to a folder you can write)`, { cause: err });
  }
}

async function fetchToPart(t: Target, options: DownloadOptions): Promise<void> {
  // Two rounds at most: a resume the server refuses (changed file, no Range support) restarts once.
  for (let round = 0; round < 2; round++) {
    const have = (await exists(t.part)) ? (await stat(t.part)).size : 0;
    const meta = have > 0 ? await readMeta(t) : undefined;
    const headers: Record<string, string> = { ...options.headers };
    if (have > 0) {
      headers.range = `bytes=${have}-`;
      const validator = meta?.etag && !meta.etag.startsWith('W/') ? meta.etag : meta?.lastModified;
      if (validator) headers['if-range'] = validator;
    }
    const res = await request(t.url, headers, options.idleTimeoutMs ?? 60_000);
    let offset = 0;
    let total: number | undefined;
    if (res.statusCode === 206 && have > 0) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
      if (!range || Number(range[1]) !== have) {
        res.destroy();
        await rm(t.part, { force: true });
        continue;
      }
      offset = have;
      total = range[3] === '*' ? Number(range[2]) + 1 : Number(range[3]);
    } else if (res.statusCode === 416 && have > 0) {
      // The .part may already be complete (stopped before its rename): the range tells the size.
      res.resume();
      const size = /^bytes \*\/(\d+)$/.exec(res.headers['content-range'] ?? '')?.[1];
      if (size !== undefined && Number(size) === have) {
        await finishPart(t, have, have, meta, options, have);
        return;
      }
      await rm(t.part, { force: true });
      continue;
    } else if (res.statusCode === 200) {
      const length = res.headers['content-length'];
      total = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    } else {
      res.resume();
      throw statusError(res.statusCode ?? 0, res.statusMessage ?? '', t.url);
    }
    const startMeta: Meta = {
      url: t.url, complete: false, ...(total !== undefined ? { size: total } : {}),
      ...(typeof res.headers.etag === 'string' ? { etag: res.headers.etag } : {}),
      ...(typeof res.headers['last-modified'] === 'string' ? { lastModified: res.headers['last-modified'] } : {}),
      ...(typeof res.headers['content-type'] === 'string' ? { contentType: res.headers['content-type'] } : {}),
    };
    if (offset === 0) await writeFile(t.meta, JSON.stringify(startMeta));
    const received = await receive(res, t, offset, total, options);
    await finishPart(t, received, total, offset === 0 ? startMeta : meta ?? startMeta, options, offset);
    return;
  }
  throw new SwiftFormerError('IO', `cannot download ${t.url}: the server refused to resume it twice`);
}

/** Streams the body into the .part file (appending after `offset`); returns the file's size. */
async function receive(res: http.IncomingMessage, t: Target, offset: number, total: number | undefined, options: DownloadOptions): Promise<number> {
  const handle = await open(t.part, offset > 0 ? 'a' : 'w');
  let received = offset;
  let last = 0;
  const report = () => options.onProgress?.({ url: t.url, received, total, resumedFrom: offset, done: false });
  try {
    report();
    for await (const chunk of res) {
      const buf = chunk as Buffer;
      await handle.write(buf);
      received += buf.length;
      const now = Date.now();
      if (now - last >= 100) {
        last = now;
        report();
      }
    }
    await handle.sync();
  } catch (err) {
    res.destroy();
    const why = (err as Error).message;
    throw new SwiftFormerError('IO', `download of ${t.url} was interrupted after ${received} of ${total ?? '?'} bytes (${why}); run again to resume`, { cause: err });
  } finally {
    await handle.close();
  }
  if (!res.complete) {
    throw new SwiftFormerError('IO', `download of ${t.url} was interrupted after ${received} of ${total ?? '?'} bytes (connection closed); run again to resume`);
  }
  return received;
}

/** Size, hash and content checks on a finished .part; a wrong one is deleted, never renamed into the cache. */
async function finishPart(t: Target, received: number, total: number | undefined, meta: Meta | undefined, options: DownloadOptions, resumedFrom: number): Promise<void> {
  const size = (await stat(t.part)).size;
  if (size !== received || (total !== undefined && size !== total)) {
    if (total !== undefined && size < total) {
      throw new SwiftFormerError('IO', `download of ${t.url} is truncated: ${size} of ${total} bytes (connection closed early); run again to resume`);
    }
    await rm(t.part, { force: true });
    throw new SwiftFormerError('IO', `download of ${t.url} has ${size} bytes, expected ${total ?? received}; the partial file was deleted, run again`);
  }
  const sha256 = await hashFile(t.part);
  if (t.sha256 && sha256 !== t.sha256) {
    await rm(t.part, { force: true });
    throw new SwiftFormerError('IO', `sha256 mismatch for ${t.url}: expected ${t.sha256}, got ${sha256}; the download was deleted`);
  }
  const mismatch = t.sha256 ? undefined : contentMismatch(await readHead(t.part), t.expect);
  if (mismatch) {
    await rm(t.part, { force: true });
    await rm(t.meta, { force: true });
    const code = t.expect === 'checkpoint' || t.expect === 'onnx' ? 'BAD_CHECKPOINT' : 'BAD_DATA';
    throw new SwiftFormerError(code, `${t.url} ${mismatch} (content type ${meta?.contentType ?? 'not given'}, ${size} bytes); nothing was cached in ${t.cache}`);
  }
  await writeFile(t.meta, JSON.stringify({ ...(meta ?? { url: t.url }), url: t.url, size, sha256, complete: true } satisfies Meta));
  options.onProgress?.({ url: t.url, received: size, total: size, resumedFrom, done: true });
}

function statusError(status: number, message: string, url: string): HttpStatusError {
  if (status === 404) return new HttpStatusError(404, url, `not found: ${url}`);
  if (status === 401 || status === 403) {
    return new HttpStatusError(status, url, `access denied (HTTP ${status}) to ${url}: a private or gated repository? For Hugging Face, set HF_TOKEN`);
  }
  return new HttpStatusError(status, url, `HTTP ${status}${message ? ` ${message}` : ''} from ${url}`);
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** GET (or HEAD) with redirects followed (10 at most); headers other than Range/If-Range stay on the first host. */
function request(url: string, headers: Record<string, string>, idleTimeoutMs: number, method: 'GET' | 'HEAD' = 'GET'): Promise<http.IncomingMessage> {
  const origin = new URL(url).host;
  const go = (current: string, redirects: number): Promise<http.IncomingMessage> =>
    new Promise((resolve, reject) => {
      const u = new URL(current);
      const sameHost = u.host === origin;
      const sent: Record<string, string> = { 'user-agent': 'swiftformer', 'accept-encoding': 'identity' };
      for (const [k, v] of Object.entries(headers)) if (sameHost || /^(range|if-range)$/i.test(k)) sent[k.toLowerCase()] = v;
      const send = u.protocol === 'https:' ? https.request : http.request;
      let response: http.IncomingMessage | undefined;
      const req = send(u, { method, headers: sent, agent: false }, (res) => {
        response = res;
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (REDIRECTS.has(status) && location) {
          res.resume();
          if (redirects >= 10) return reject(new SwiftFormerError('IO', `too many redirects fetching ${url}`));
          let next: URL;
          try {
            next = new URL(location, u);
          } catch {
            return reject(new SwiftFormerError('IO', `bad redirect from ${current}: ${location}`));
          }
          if (next.protocol !== 'https:' && next.protocol !== 'http:') return reject(new SwiftFormerError('IO', `redirect to unsupported URL ${next.href}`));
          return resolve(go(next.href, redirects + 1));
        }
        resolve(res);
      });
      req.setTimeout(idleTimeoutMs, () => {
        const err = new Error(`no data for ${+(idleTimeoutMs / 1000).toFixed(1)} s`);
        if (response) response.destroy(err);
        else req.destroy(err);
      });
      req.on('error', (err) => reject(new SwiftFormerError('IO', `cannot download ${url}: ${err.message}`, { cause: err })));
      req.end();
    });
  return go(url, 0);
}

// ---------------------------------------------------------------- lock between processes

/**
 * A lock file holding the owner's pid. A lock whose owner is gone, or whose download has not
 * moved for two minutes, is taken over.
 */
async function lock(t: Target): Promise<() => Promise<void>> {
  const path = join(t.dir, '.lock');
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      let held = true;
      const keepAlive = setInterval(() => void utimes(path, new Date(), new Date()).catch(() => {}), 20_000);
      keepAlive.unref();
      return async () => {
        if (!held) return;
        held = false;
        clearInterval(keepAlive);
        await rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new SwiftFormerError('IO', `cannot write to the cache ${t.dir}: ${(err as Error).message}`, { cause: err });
    }
    if (await isStale(path, t.part)) {
      await rm(path, { force: true });
      continue;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function isStale(lockPath: string, part: string): Promise<boolean> {
  let pid: number;
  let touched: number;
  try {
    pid = Number(await readFile(lockPath, 'utf8'));
    touched = (await stat(lockPath)).mtimeMs;
  } catch {
    return false; // just released, or being written: look again
  }
  const partTouched = (await exists(part)) ? (await stat(part)).mtimeMs : 0;
  if (Date.now() - Math.max(touched, partTouched) > 120_000) return true;
  if (!Number.isInteger(pid) || pid <= 0) return Date.now() - touched > 5_000;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

// ---------------------------------------------------------------- Hugging Face

export { HF_WEIGHT_FILES, parseHfSource, type HfSource } from '../weights/hf.js';

/** `${HF_ENDPOINT ?? 'https://huggingface.co'}/${repo}/resolve/${revision}/${file}`. */
export function hfUrl(repo: string, file: string, revision = 'main', endpoint = process.env.HF_ENDPOINT): string {
  return hfFileUrl(repo, file, revision, endpoint);
}

export interface ResolvedWeights {
  /** The source as given. */
  source: string;
  /** A local file holding the weights (the cached download for remote sources). */
  path: string;
  /** Class names that came with the weights (a Hugging Face config's id2label). */
  labels?: string[];
  /** The Hugging Face config.json, for hf: sources. */
  config?: Record<string, unknown>;
}

/**
 * A weights source to a local file: paths are returned as they are, URLs and hf: repositories
 * are downloaded into the cache (once). For hf:, config.json comes too and gives the labels.
 */
export async function resolveWeights(source: string, options: DownloadOptions = {}): Promise<ResolvedWeights> {
  if (source.startsWith('hf:')) return resolveHf(source, options);
  if (/^https?:\/\//i.test(source)) return { source, path: await download(source, options) };
  return { source, path: source.startsWith('file:') ? fileURLToPath(source) : source };
}

async function resolveHf(source: string, options: DownloadOptions): Promise<ResolvedWeights> {
  const { repo, revision: named } = parseHfSource(source);
  const auth: Record<string, string> = process.env.HF_TOKEN ? { authorization: `Bearer ${process.env.HF_TOKEN}` } : {};
  const opts: DownloadOptions = { ...options, headers: { ...auth, ...options.headers } };
  const offline = isOffline();
  const revision = await pinRevision(repo, named, opts, offline);
  const { sha256: _ignored, ...configOpts } = opts;
  const configUrl = hfUrl(repo, 'config.json', revision);
  const configPath = offline ? await offlineCopy(configUrl, source, configOpts) : await download(configUrl, { ...configOpts, onProgress: undefined });
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new SwiftFormerError('BAD_CHECKPOINT', `config.json of ${source} is not valid JSON: ${(err as Error).message}`);
  }
  const labels = labelsFromHfConfig(config);
  const urls = HF_WEIGHT_FILES.map((f) => hfUrl(repo, f, revision));
  // A cached file of either kind answers without touching the network.
  for (const url of urls) {
    const path = await cachedPath(url, opts);
    if (path) return { source, path, config, ...(labels ? { labels } : {}) };
  }
  if (offline) throw offlineMiss(source, urls.join(' or '));
  let lastNotFound: HttpStatusError | undefined;
  for (const url of urls) {
    try {
      const path = await download(url, opts);
      return { source, path, config, ...(labels ? { labels } : {}) };
    } catch (err) {
      if (err instanceof HttpStatusError && err.status === 404) lastNotFound = err;
      else throw err;
    }
  }
  const at = revision === named ? named : `${named} (commit ${revision})`;
  throw new SwiftFormerError('IO', `${source} has no weights at revision ${at}: neither ${HF_WEIGHT_FILES.join(' nor ')} (not found: ${lastNotFound?.url})`);
}

const COMMIT_ID = /^[0-9a-f]{40}$/;

/**
 * The commit a branch or tag names now. Files are then fetched and cached under immutable
 * `resolve/<commit>/` URLs, so a branch that moves is noticed while a commit is downloaded once.
 * Hugging Face answers every resolve request with X-Repo-Commit; a HEAD of config.json asks for
 * it. The answer is remembered in the cache (`refs/`), and without a network (a connection error,
 * or HF_HUB_OFFLINE=1) the last commit seen is used. A server that does not send the header (a
 * plain file mirror) leaves the revision as it is, and its files are cached under it.
 */
async function pinRevision(repo: string, revision: string, options: DownloadOptions, offline: boolean): Promise<string> {
  if (COMMIT_ID.test(revision)) return revision;
  const url = hfUrl(repo, 'config.json', revision);
  const ref = join(options.cacheDir ?? cacheDir(), 'refs', createHash('sha256').update(url).digest('hex').slice(0, 24));
  const remembered = async () => {
    const saved = await readFile(ref, 'utf8').catch(() => '');
    return COMMIT_ID.test(saved) ? saved : undefined;
  };
  if (offline) return (await remembered()) ?? revision;
  let res: http.IncomingMessage;
  try {
    res = await request(url, options.headers ?? {}, options.idleTimeoutMs ?? 60_000, 'HEAD');
  } catch (err) {
    // Offline or unreachable: the last commit seen, else the revision's own cached files.
    if (err instanceof SwiftFormerError) return (await remembered()) ?? revision;
    throw err;
  }
  res.resume();
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) throw statusError(status, res.statusMessage ?? '', url);
  const commit = res.headers['x-repo-commit'];
  if (typeof commit !== 'string' || !COMMIT_ID.test(commit)) return revision;
  if (commit !== (await remembered())) {
    await makeCacheDirectory(dirname(ref));
    await writeFileAtomic(ref, commit);
  }
  return commit;
}

/** The cached copy of an hf: file when offline; an error naming the source when there is none. */
async function offlineCopy(url: string, source: string, options: DownloadOptions): Promise<string> {
  const path = await cachedPath(url, options);
  if (!path) throw offlineMiss(source, url);
  return path;
}

function offlineMiss(source: string, what: string): SwiftFormerError {
  return new SwiftFormerError('IO', `HF_HUB_OFFLINE is set and ${source} is not in the cache (${what}); run once with a network, or unset HF_HUB_OFFLINE`);
}

/** HF_HUB_OFFLINE=1 (huggingface_hub's switch): use what the cache has, ask no server. */
function isOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '');
}

/** The source reader for remote sources: resolve (download once), then read the cached file. */
export async function readRemoteSource(source: string, options: DownloadOptions = {}): Promise<Uint8Array> {
  const { path } = await resolveWeights(source, options);
  const buf = await readFile(path);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

// ---------------------------------------------------------------- bundled default model

export interface BundledModel {
  /** assets/default/model.safetensors */
  weights: string;
  /** assets/default/labels.json, when present. */
  labels?: string;
  /** assets/default/config.json, when present: `{ "size"?: number, "attention"?: "l2" | "softmax", "id2label"?: {...} }`. */
  config?: string;
}

/** The package's own model folder (beside src/ and dist/ alike). */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../assets/default/', import.meta.url));

/**
 * The model bundled with the package, if there is one: `assets/default/model.safetensors`, with
 * optional `labels.json` and `config.json` beside it. Undefined when the weights are absent.
 */
export async function defaultWeights(dir: string = DEFAULT_MODEL_DIR): Promise<BundledModel | undefined> {
  const weights = join(dir, 'model.safetensors');
  if (!(await exists(weights))) return undefined;
  const labels = join(dir, 'labels.json');
  const config = join(dir, 'config.json');
  return { weights, ...((await exists(labels)) ? { labels } : {}), ...((await exists(config)) ? { config } : {}) };
}
