/**
 * A small Open Inference Protocol client for the tests, written from the published protocol
 * (kserve/open-inference-protocol, Triton's docs/protocol/extension_binary_data.md) rather than
 * from the server's code: the request body is the JSON header followed by each binary input's
 * bytes in input order, little-endian, with Inference-Header-Content-Length giving the JSON's
 * byte length; the response is split the same way by its own header.
 */
import '../src/node/platform.js';
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { InferenceServer, type ServerOptions } from '../src/serve/server.js';
import { classifierModel, type Batching } from '../src/serve/models.js';
import { loadClassifier } from '../src/cli/classify.js';
import { fixturePath } from './fixtures.js';
import { registerBackend } from '../src/runtime/runtime.js';
import { workerBackend } from '../src/node/ort-worker.js';

// The servers of the tests run their sessions in the inference worker, as `serve` does.
registerBackend(workerBackend, { preferred: true });

export interface Response { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

export function http(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? (options.body === undefined ? 'GET' : 'POST'), headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export async function getJson(url: string): Promise<{ status: number; json: any; type: string | undefined }> {
  const r = await http(url);
  return { status: r.status, json: JSON.parse(r.body.toString()), type: r.headers['content-type'] as string | undefined };
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return http(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'Content-Type': 'application/json', ...headers } });
}

/** Little-endian bytes of float32 values (the extension's layout). */
export function float32Bytes(values: ArrayLike<number>): Buffer {
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, i * 4);
  return out;
}

/** The extension's request: JSON, then the binary inputs in order; the header length in bytes. */
export function binaryRequest(json: unknown, binaries: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const header = Buffer.from(JSON.stringify(json), 'utf8');
  return {
    body: Buffer.concat([header, ...binaries]),
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(header.length) },
  };
}

export interface DecodedOutput { name: string; datatype: string; shape: number[]; values: number[] | string[] }

/** Splits a response by its Inference-Header-Content-Length and reads each output, JSON or binary. */
export function decodeResponse(r: Response): { json: any; outputs: Map<string, DecodedOutput> } {
  const header = r.headers['inference-header-content-length'] as string | undefined;
  const n = header === undefined ? r.body.length : Number(header);
  const json = JSON.parse(r.body.subarray(0, n).toString('utf8'));
  let offset = n;
  const outputs = new Map<string, DecodedOutput>();
  for (const o of json.outputs) {
    const size = o.parameters?.binary_data_size;
    let values: number[] | string[];
    if (size === undefined) values = o.data;
    else {
      const bytes = r.body.subarray(offset, offset + size);
      offset += size;
      if (o.datatype === 'FP32') values = Array.from({ length: size / 4 }, (_, i) => bytes.readFloatLE(i * 4));
      else if (o.datatype === 'INT64') values = Array.from({ length: size / 8 }, (_, i) => Number(bytes.readBigInt64LE(i * 8)));
      else if (o.datatype === 'BYTES') {
        const strings: string[] = [];
        for (let p = 0; p < bytes.length;) {
          const len = bytes.readUInt32LE(p);
          strings.push(bytes.subarray(p + 4, p + 4 + len).toString('utf8'));
          p += 4 + len;
        }
        values = strings;
      } else throw new Error(`test client: no decoder for ${o.datatype}`);
    }
    outputs.set(o.name, { name: o.name, datatype: o.datatype, shape: o.shape, values });
  }
  if (offset !== r.body.length) throw new Error(`test client: ${r.body.length - offset} bytes left after the outputs`);
  return { json, outputs };
}

/** A raw TCP connection to the server, for slow senders and clients that vanish. */
export function rawConnection(url: string): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      let data = '';
      socket.on('data', (c: Buffer) => (data += c.toString()));
      const closed = new Promise<void>((r) => socket.on('close', () => r()));
      resolve({ socket, received: () => data, closed });
    });
    socket.on('error', reject);
  });
}

export const TINY_WEIGHTS = fixturePath('tiny/weights.safetensors');

/** The tiny fixture model served in this process (ImageNet labels: it has 1000 classes). */
export async function tinyServer(batching: Partial<Batching> = {}, options: ServerOptions = {}): Promise<{ server: InferenceServer; url: string }> {
  const c = await loadClassifier({ weights: TINY_WEIGHTS }, 'test');
  const model = classifierModel('tiny', c, { maxBatch: 16, dynamic: true, maxDelayMs: 5, ...batching });
  await model.warmup!();
  const server = new InferenceServer([model], options);
  return { server, url: await server.listen(0) };
}

/** Parses /metrics: every sample line as { name, labels, value }, checking the exposition format on the way. */
export function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.trimEnd().split('\n')) {
    if (/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus text-format line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return samples;
}

export function metricValue(samples: ReturnType<typeof parseMetrics>, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** Runs `fn` against a tinyServer, shutting it down afterwards whatever happens. */
export async function withTinyServer(batching: Partial<Batching>, options: ServerOptions, fn: (s: { server: InferenceServer; url: string }) => Promise<void>): Promise<void> {
  const s = await tinyServer(batching, options);
  try {
    await fn(s);
  } finally {
    await s.server.shutdown(1000);
  }
}

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const deadline = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** serve in a child process: its URL once listening, or its exit code and stderr if it fails first. */
export async function serveProcess(args: string[]): Promise<{ url?: string; code?: number | null; stderr: string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const stop = async () => {
    child.kill('SIGTERM');
    return Promise.race([exited, deadline(10_000).then(() => (child.kill('SIGKILL'), null))]);
  };
  const first = await Promise.race([
    new Promise<{ url: string }>((resolve) => createInterface({ input: child.stdout }).once('line', (l) => resolve({ url: l.replace('listening on ', '') }))),
    exited.then((code) => ({ code })),
    deadline(60_000).then(() => ({ code: null })),
  ]);
  return { ...first, get stderr() { return stderr; }, stop };
}
