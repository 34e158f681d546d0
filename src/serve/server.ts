/**
 * The inference server: the Open Inference Protocol's REST endpoints, /v1 image endpoints, and
 * Prometheus metrics, over node:http.
 *
 * node:http rather than fastify: the protocol is a dozen routes, and what matters is below the
 * router. Triton's binary extension makes a body JSON-then-bytes, so it is parsed by hand whatever
 * the framework (a JSON schema would check only the header); the protocol fixes the error body
 * (`{ "error": "..." }`, not fastify's `{ statusCode, error, message }`); body limits, slow-sender
 * deadlines, client disconnects and draining are node:http's own events. fastify would add about
 * 40 packages to a library that installs 3, for none of that.
 *
 * Every model has its own bounded queue and dynamic batcher (batcher.ts).
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { decodeImage } from '../node/decode.js';
import { workerBackend } from '../node/ort-worker.js';
import type { RGBImage } from '../preprocess/resize.js';
import { Batcher } from './batcher.js';
import { asHttpError, ClientGone, HttpError, JSON_TYPE, readBody, send, sendError, sendJson } from './http.js';
import { Counter, Gauge, Histogram, METRICS_TYPE, Registry } from './metrics.js';
import {
  batchKey, IMAGE_TASKS, isDirect, rowsOf, runBatch, type DirectImageTask, type Feeds, type Outputs, type ServedModel, type TaskName,
} from './models.js';
import { BufferPool } from './buffers.js';
import { collectGarbage } from './idle.js';
import { encodeInferResponse, EXTENSIONS, modelMetadata, parseInferRequest, SERVER_NAME } from './protocol.js';

export interface ServerOptions {
  /** Requests waiting per model before new ones get 503 (default 256). */
  maxQueue?: number;
  /** A request body must arrive, and a request may wait in the queue, this long (default 30000 ms). */
  timeoutMs?: number;
  /** Largest request body, inflated (default 64 MiB). */
  maxBodyBytes?: number;
  /** Images over this many pixels are refused before decoding (decode.ts's default, PIL's limit). */
  maxPixels?: number;
  /** Images decoded at once (each may hold maxPixels x 3 bytes; default 2). */
  decoders?: number;
  /** The server's version in GET /v2. */
  version?: string;
  /** After this long without requests, models give back the memory their runs held (0: never; default 2000 ms). */
  idleTrimMs?: number;
}

type Job = { kind: 'tensor'; feeds: Feeds } | { kind: 'direct'; task: DirectImageTask; image: RGBImage; query: URLSearchParams };

interface Served {
  model: ServedModel;
  batcher: Batcher<Job, unknown>;
  inflight: number;
}

type Endpoint = 'server' | 'live' | 'ready' | 'metadata' | 'model_ready' | 'infer' | TaskName | 'metrics' | 'unknown';

interface Context {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  signal: AbortSignal;
  deadline: number;
  /** Set once the model is known: the metrics' model label (never a name a client made up). */
  served?: Served;
  endpoint: Endpoint;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
/**
 * Free buffers kept for reuse: enough for the bodies of 32 concurrent 224x224 FP32 requests and
 * two batches of 16 (some 40 MB), under load only (an idle server empties the pool).
 */
const BUFFER_POOL_BYTES = 64 * 1024 * 1024;

/** A small semaphore: decoded images are large, so only a few exist at once. */
class Slots {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    }
  }
}

export class InferenceServer {
  private readonly http: Server;
  private readonly served = new Map<string, Served>();
  private readonly options: Required<ServerOptions>;
  private readonly registry = new Registry();
  private readonly requests: Counter;
  private readonly latency: Histogram;
  private readonly batchSizes: Histogram;
  private readonly trims: Counter;
  private readonly decoders: Slots;
  /** Request bodies and batches reused (buffers.ts); emptied by trim. */
  private readonly buffers = new BufferPool(BUFFER_POOL_BYTES);
  private active = 0;
  /** Inference ran since the last trim. */
  private ran = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private trimming: Promise<void> | undefined;
  private draining = false;
  private drainWaiters: (() => void)[] = [];

  constructor(models: readonly ServedModel[], options: ServerOptions = {}) {
    this.options = {
      maxQueue: options.maxQueue ?? 256,
      timeoutMs: options.timeoutMs ?? 30_000,
      maxBodyBytes: options.maxBodyBytes ?? 64 * 1024 * 1024,
      maxPixels: options.maxPixels ?? 89_478_485,
      decoders: options.decoders ?? 2,
      version: options.version ?? '0',
      idleTrimMs: options.idleTrimMs ?? 2000,
    };
    this.decoders = new Slots(this.options.decoders);
    this.requests = this.registry.add(new Counter('swiftformer_requests_total', 'HTTP requests answered, by model, endpoint and status (499: the client closed the connection first)'));
    this.latency = this.registry.add(new Histogram('swiftformer_request_duration_seconds', 'Time from arrival to answer of inference requests (/v2 infer, /v1), by model and endpoint', LATENCY_BUCKETS));
    this.batchSizes = this.registry.add(new Histogram('swiftformer_batch_size', 'Rows per model run (dynamic batches), by model', BATCH_BUCKETS));
    this.registry.add(new Gauge('swiftformer_queue_depth', 'Requests waiting for a batch, by model', () => [...this.served.values()].map((s) => [{ model: s.model.name }, s.batcher.depth])));
    this.registry.add(new Gauge('swiftformer_inflight_requests', 'Inference requests received and not yet answered, by model', () => [...this.served.values()].map((s) => [{ model: s.model.name }, s.inflight])));
    this.registry.add(new Gauge('swiftformer_batch_rows_running', 'Rows of the batch running now, by model', () => [...this.served.values()].map((s) => [{ model: s.model.name }, s.batcher.running])));
    this.registry.add(new Gauge('swiftformer_buffer_pool_bytes', 'Free request-body and batch buffers kept for reuse (emptied when idle), in bytes', () => [[{}, this.buffers.held]]));
    this.trims = this.registry.add(new Counter('swiftformer_idle_trims_total', 'Times the models gave back the memory of their runs after idleTrimMs (--idle-trim-ms) without requests'));
    this.trims.inc({}, 0);
    this.addProcessGauges();
    for (const model of models) this.add(model);

    const { timeoutMs } = this.options;
    this.http = createServer({
      // Backstops behind readBody's own deadline (which answers with a JSON body): headers must
      // arrive within the timeout too, and Node checks its deadlines this often.
      headersTimeout: timeoutMs,
      requestTimeout: timeoutMs + 2000,
      connectionsCheckingInterval: Math.min(1000, Math.max(100, timeoutMs / 4)),
      keepAliveTimeout: 5000,
    });
    this.http.on('request', (req, res) => void this.handle(req, res));
    this.http.on('checkContinue', (req, res) => {
      // Refuse an oversized body before the client sends it.
      const length = Number(req.headers['content-length']);
      if (length > this.options.maxBodyBytes) this.handle(req, res);
      else {
        res.writeContinue();
        this.handle(req, res);
      }
    });
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.clientError(err, socket));
  }

  /** The process's memory, under the names Prometheus' Node.js client uses, so that a trim shows. */
  private addProcessGauges(): void {
    this.addMemoryGauges(() => process.memoryUsage(), [
      ['process_resident_memory_bytes', 'Resident memory size in bytes', (m) => m.rss],
      ['nodejs_heap_size_total_bytes', 'V8 heap size in bytes', (m) => m.heapTotal],
      ['nodejs_heap_size_used_bytes', 'V8 heap used in bytes', (m) => m.heapUsed],
      ['nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript objects (buffers among them), in bytes', (m) => m.external],
      ['nodejs_array_buffers_bytes', 'Memory of ArrayBuffers and Buffers, in bytes', (m) => m.arrayBuffers],
    ]);
    // The inference worker's isolate is not in the figures above (they are this thread's): its own,
    // as of its latest answer, while one runs.
    this.addMemoryGauges(() => workerBackend.memory, [
      ['swiftformer_inference_worker_heap_used_bytes', 'V8 heap used by the inference worker thread, as of its latest answer, in bytes', (m) => m.heapUsed],
      ['swiftformer_inference_worker_external_memory_bytes', 'External memory (buffers among it) of the inference worker thread, as of its latest answer, in bytes', (m) => m.external],
      ['swiftformer_inference_worker_array_buffers_bytes', 'ArrayBuffers of the inference worker thread, as of its latest answer, in bytes', (m) => m.arrayBuffers],
    ]);
  }

  /** One gauge per row, read from `source` at each scrape (no sample while it gives nothing). */
  private addMemoryGauges<M>(source: () => M | undefined, rows: [string, string, (m: M) => number][]): void {
    for (const [name, help, read] of rows) {
      this.registry.add(new Gauge(name, help, () => {
        const m = source();
        return m ? [[{}, read(m)]] : [];
      }));
    }
  }

  private add(model: ServedModel): void {
    if (this.served.has(model.name)) throw new HttpError(500, `two models are named '${model.name}'`);
    const runner = async (_key: string, jobs: Job[]): Promise<unknown[]> => {
      const first = jobs[0]!;
      if (first.kind === 'direct') {
        const out: unknown[] = [];
        for (const j of jobs as Extract<Job, { kind: 'direct' }>[]) out.push(await j.task.run(j.image, j.query));
        return out;
      }
      return runBatch(model, (jobs as Extract<Job, { kind: 'tensor' }>[]).map((j) => j.feeds), this.buffers);
    };
    const batcher = new Batcher<Job, unknown>(runner, {
      model: model.name,
      maxBatch: Math.max(1, model.maxBatch),
      combine: model.dynamic && model.maxBatch > 0,
      maxDelayMs: model.maxDelayMs,
      maxQueue: this.options.maxQueue,
      timeoutMs: this.options.timeoutMs,
    }, (rows) => this.batchSizes.observe({ model: model.name }, rows));
    this.served.set(model.name, { model, batcher, inflight: 0 });
  }

  get models(): ServedModel[] {
    return [...this.served.values()].map((s) => s.model);
  }

  /** Listens (default 127.0.0.1, an ephemeral port) and returns the base URL. */
  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    return this.url;
  }

  get url(): string {
    const a = this.http.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get metricsText(): string {
    return this.registry.render();
  }

  /**
   * Stops accepting connections, lets what is in flight finish for up to `graceMs`, then closes
   * every connection and releases the models. `drained`: nothing was cut short.
   */
  async shutdown(graceMs = 10_000): Promise<{ drained: boolean; cut: number }> {
    this.draining = true;
    clearTimeout(this.idleTimer);
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    for (const s of this.served.values()) s.batcher.flush();
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      new Promise<boolean>((resolve) => {
        if (this.active === 0) resolve(true);
        else this.drainWaiters.push(() => resolve(true));
      }),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    const cut = this.active;
    this.http.closeAllConnections();
    await closed;
    await this.trimming;
    await Promise.all(this.models.map((m) => m.release()));
    return { drained, cut };
  }

  /** Once nothing has arrived for idleTrimMs after inference ran, the server trims. */
  private idleSoon(): void {
    const { idleTrimMs } = this.options;
    if (!this.ran || idleTrimMs <= 0 || this.draining) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => void this.trim(), idleTrimMs);
    this.idleTimer.unref();
  }

  /**
   * Gives back what the models' runs held: ONNX Runtime's arenas (which keep the buffers of the
   * largest batch so far), then the request and tensor buffers nobody references any more (V8
   * frees those only when it collects, which an idle process does not). Requests that arrive
   * meanwhile are answered once the sessions are open again. A trim that fails is let go: the next
   * run opens its session itself and reports its own error.
   */
  async trim(): Promise<void> {
    if (this.trimming) return this.trimming;
    this.ran = false;
    this.trimming = (async () => {
      this.buffers.clear();
      await Promise.all(this.models.map((m) => m.trim?.()));
      await collectGarbage();
      this.trims.inc({});
    })().catch(() => {}).finally(() => (this.trimming = undefined));
    return this.trimming;
  }

  // ---------------------------------------------------------------- requests

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const abort = new AbortController();
    const ctx: Context = {
      req, res, url: new URL(req.url ?? '/', 'http://localhost'), signal: abort.signal,
      deadline: Date.now() + this.options.timeoutMs, endpoint: 'unknown',
    };
    this.active++;
    clearTimeout(this.idleTimer);
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
      const status = res.writableFinished ? String(res.statusCode) : '499';
      const model = ctx.served?.model.name ?? '';
      this.requests.inc({ model, endpoint: ctx.endpoint, status });
      if (ctx.served && (ctx.endpoint === 'infer' || (IMAGE_TASKS as readonly string[]).includes(ctx.endpoint))) {
        this.latency.observe({ model, endpoint: ctx.endpoint }, (performance.now() - started) / 1000);
      }
      if (--this.active === 0) {
        for (const w of this.drainWaiters.splice(0)) w();
        this.idleSoon();
      }
      if (this.draining) this.http.closeIdleConnections();
    });
    try {
      if (this.draining) {
        res.setHeader('Connection', 'close');
        if (!/^\/v2\/health\/live\/?$/.test(ctx.url.pathname)) throw new HttpError(503, 'the server is shutting down');
      }
      await this.route(ctx);
    } catch (err) {
      if (err instanceof ClientGone || abort.signal.aborted) return;
      const e = asHttpError(err);
      sendError(res, e);
      if (e.headers.Connection === 'close') this.discardRest(req, res);
    }
  }

  /** After an early answer (413, 408), let the client read it, then drop the connection. */
  private discardRest(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    res.once('finish', () => setTimeout(() => req.socket.destroy(), 1000).unref());
  }

  private clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable || socket.bytesWritten > 0) {
      socket.destroy();
      return;
    }
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const message = status === 408 ? `request headers not received within ${this.options.timeoutMs} ms`
      : status === 431 ? 'request headers are too large' : `malformed HTTP request: ${err.message}`;
    const body = JSON.stringify({ error: message });
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }

  private async route(ctx: Context): Promise<void> {
    const path = ctx.url.pathname.replace(/\/+$/, '') || '/';
    const method = ctx.req.method ?? 'GET';
    const only = (allowed: string) => {
      if (method !== allowed) throw new HttpError(405, `${method} is not allowed on ${path} (use ${allowed})`, { Allow: allowed });
    };
    if (path === '/v2') {
      ctx.endpoint = 'server';
      only('GET');
      return sendJson(ctx.res, 200, { name: SERVER_NAME, version: this.options.version, extensions: EXTENSIONS });
    }
    if (path === '/v2/health/live' || path === '/v2/health/ready') {
      const live = path.endsWith('live');
      ctx.endpoint = live ? 'live' : 'ready';
      only('GET');
      return sendJson(ctx.res, 200, live ? { live: true } : { ready: true });
    }
    if (path === '/metrics') {
      ctx.endpoint = 'metrics';
      only('GET');
      return send(ctx.res, 200, Buffer.from(this.registry.render()), { 'Content-Type': METRICS_TYPE });
    }
    const v2 = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(ready|infer))?$/.exec(path);
    if (v2) {
      const action = v2[3];
      ctx.endpoint = action === 'infer' ? 'infer' : action === 'ready' ? 'model_ready' : 'metadata';
      only(action === 'infer' ? 'POST' : 'GET');
      const served = this.lookup(ctx, v2[1]!, v2[2]);
      if (action === 'infer') return this.infer(ctx, served);
      if (action === 'ready') return sendJson(ctx.res, 200, { name: served.model.name, ready: true });
      return sendJson(ctx.res, 200, modelMetadata(served.model));
    }
    const v1 = /^\/v1\/models\/([^/]+)\/([^/]+)$/.exec(path);
    if (v1 && (IMAGE_TASKS as readonly string[]).includes(v1[2]!)) {
      ctx.endpoint = v1[2] as TaskName;
      only('POST');
      return this.image(ctx, this.lookup(ctx, v1[1]!, undefined), v1[2] as TaskName);
    }
    throw new HttpError(404, `no such endpoint: ${method} ${path} (see GET /v2, /v2/models/{name}, POST /v2/models/{name}/infer, POST /v1/models/{name}/${IMAGE_TASKS.join('|')}, GET /metrics)`);
  }

  private lookup(ctx: Context, rawName: string, version: string | undefined): Served {
    let name: string;
    try {
      name = decodeURIComponent(rawName);
    } catch {
      throw new HttpError(400, `model name '${rawName}' is not valid percent-encoding`);
    }
    const served = this.served.get(name);
    if (!served) throw new HttpError(404, `unknown model '${name}' (served: ${[...this.served.keys()].map((n) => `'${n}'`).join(', ')})`);
    ctx.served = served;
    const v = served.model.version;
    if (version !== undefined && version !== v) {
      throw new HttpError(404, `model '${name}' has no version '${version}' (${v ? `it serves version ${v}` : 'it is not versioned'})`);
    }
    return served;
  }

  /** `tensors`: a /v2 infer body, read aligned after its JSON header into a reused buffer. */
  private body(ctx: Context, tensors?: { alignAt: number }): Promise<Buffer> {
    const limits = { maxBytes: this.options.maxBodyBytes, deadline: ctx.deadline, timeoutMs: this.options.timeoutMs };
    return readBody(ctx.req, tensors ? { ...limits, alignAt: tensors.alignAt, pool: this.buffers } : limits);
  }

  private async infer(ctx: Context, served: Served): Promise<void> {
    served.inflight++;
    try {
      this.checkQueue(served);
      const header = ctx.req.headers['inference-header-content-length'];
      const headerLength = Array.isArray(header) ? header[0] : header;
      // Binary tensors follow the JSON header: read them 4-byte aligned, used in place (a JSON-only
      // body is parsed into tensors of its own, so it takes no buffer from the pool).
      const body = await this.body(ctx, headerLength === undefined ? undefined : { alignAt: Number(headerLength) || 0 });
      const request = parseInferRequest(body, headerLength, served.model);
      const rows = rowsOf(served.model, request.feeds);
      this.ran = true;
      const outputs = await served.batcher.submit(batchKey(request.feeds), rows, { kind: 'tensor', feeds: request.feeds }, ctx.signal) as Outputs;
      const { body: out, headers } = encodeInferResponse(served.model, request, outputs, request.id ?? randomUUID());
      send(ctx.res, 200, out, headers);
    } finally {
      served.inflight--;
    }
  }

  /** Refuses at once, before reading the body, when the model's queue is already full. */
  private checkQueue(served: Served): void {
    const refusal = served.batcher.refusal();
    if (refusal) throw refusal;
  }

  private async image(ctx: Context, served: Served, taskName: TaskName): Promise<void> {
    const { model } = served;
    const task = model.tasks[taskName];
    if (!task) {
      const does = Object.keys(model.tasks);
      throw new HttpError(400, `model '${model.name}' does not do ${taskName} (${does.length > 0 ? `it does: ${does.join(', ')}` : 'it serves tensors only, on /v2/models/{name}/infer'})`);
    }
    const query = ctx.url.searchParams;
    if (isDirect(task)) task.check?.(query);
    const type = ctx.req.headers['content-type']?.split(';')[0]!.trim().toLowerCase();
    if (type !== undefined && !type.startsWith('image/') && type !== 'application/octet-stream') {
      throw new HttpError(415, `Content-Type ${type} is not an image: send the image file's bytes (image/jpeg, image/png, image/webp, image/gif, image/tiff)`);
    }
    served.inflight++;
    try {
      this.checkQueue(served);
      const bytes = await this.body(ctx);
      if (bytes.length === 0) throw new HttpError(400, 'the request body is empty: send the image file\'s bytes');
      const image = await this.decoders.use(() => decodeImage(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), { maxPixels: this.options.maxPixels, name: 'the uploaded image' }));
      let answer: unknown;
      this.ran = true;
      if (isDirect(task)) {
        answer = await served.batcher.submit(`direct:${taskName}`, 1, { kind: 'direct', task, image, query }, ctx.signal);
      } else {
        const feeds = task.prepare(image, query);
        const outputs = await served.batcher.submit(batchKey(feeds), 1, { kind: 'tensor', feeds }, ctx.signal) as Outputs;
        answer = task.answer(outputs, query);
      }
      sendJson(ctx.res, 200, answer);
    } finally {
      served.inflight--;
    }
  }
}
