/**
 * The HTTP plumbing of the server: errors as the protocol's `{ "error": "..." }` bodies with a
 * status, and request bodies read under a size limit and a deadline (slow senders get 408, large
 * bodies 413, compressed bodies are inflated under the same limit).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import { SwiftFormerError, type ErrorCode } from '../core/errors.js';
import type { BufferPool } from './buffers.js';

/** An answer other than 200, with the message the `error` body carries. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
  }
}

const CLIENT_STATUS: Partial<Record<ErrorCode, number>> = { BAD_ARGUMENT: 400, BAD_DATA: 400, BAD_IMAGE: 400, BAD_SHAPE: 400, UNKNOWN_MODEL: 404, RELEASED: 503 };

/**
 * The status a library error means to a client: its input was wrong (400), the model unknown
 * (404), the model going away under shutdown (503); anything else is the server's (500), such as
 * a model whose weights give non-finite logits.
 */
export function asHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof SwiftFormerError) {
    return new HttpError(CLIENT_STATUS[err.code] ?? 500, err.message);
  }
  return new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`);
}

/**
 * KServe's Python client reads an error body only when Content-Type is exactly application/json,
 * so no charset parameter (JSON is UTF-8 by definition, RFC 8259).
 */
export const JSON_TYPE = 'application/json';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  send(res, status, Buffer.from(JSON.stringify(body)), { 'Content-Type': JSON_TYPE, ...headers });
}

export function send(res: ServerResponse, status: number, body: Buffer, headers: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { ...headers, 'Content-Length': String(body.length) });
  res.end(body);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: err.message }, err.headers);
}

export interface BodyLimits {
  /** Largest body, after decompression. */
  maxBytes: number;
  /** Epoch milliseconds by which the whole body must have arrived. */
  deadline: number;
  /** The request timeout the deadline comes from, for the message. */
  timeoutMs: number;
  /**
   * A body offset that should land on a 4-byte boundary in memory: where Triton's binary tensors
   * start (after the JSON header), so that FP32 data can be read in place instead of copied.
   */
  alignAt?: number;
  /** Where a body of declared length gets its buffer (and gives it back if the read fails). */
  pool?: BufferPool;
}

/** The declared Content-Length, checked; undefined for a chunked body. */
export function declaredLength(req: IncomingMessage): number | undefined {
  const header = req.headers['content-length'];
  if (header === undefined) return undefined;
  const n = Number(header);
  if (!/^\d+$/.test(header) || !Number.isSafeInteger(n)) throw new HttpError(400, `Content-Length '${header}' is not a byte count`);
  return n;
}

export function tooLarge(bytes: number | string, maxBytes: number): HttpError {
  return new HttpError(413, `request body of ${bytes} bytes is over the limit of ${maxBytes} bytes`, { Connection: 'close' });
}

/**
 * Reads the whole body; rejects with 413 past the limit, 408 past the deadline. A body of declared
 * length that is not compressed is copied straight into one buffer of its own as it arrives
 * (placed so that `alignAt` is 4-byte aligned); any other is gathered and joined at the end.
 */
export async function readBody(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const { maxBytes, deadline } = limits;
  const length = declaredLength(req);
  if (length !== undefined && length > maxBytes) throw tooLarge(length, maxBytes);
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  const sink = length !== undefined && (!encoding || encoding === 'identity') ? inPlace(length, limits.alignAt ?? 0, limits.pool) : gathered();
  const raw = await new Promise<Buffer>((resolve, reject) => {
    let size = 0;
    const done = (err?: Error) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
      if (err) {
        sink.discard();
        reject(err);
      } else resolve(sink.body(size));
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > maxBytes) return done(tooLarge(`more than ${maxBytes}`, maxBytes));
      if (length !== undefined && size + chunk.length > length) return done(new HttpError(400, `request body is longer than its Content-Length of ${length} bytes`));
      sink.add(chunk, size);
      size += chunk.length;
    };
    const onEnd = () => done();
    const onError = (err: Error) => done(err);
    const onAborted = () => done(new ClientGone());
    const timer = setTimeout(() => {
      done(new HttpError(408, `request body not received within ${limits.timeoutMs} ms (${size} of ${length ?? 'unknown'} bytes arrived)`, { Connection: 'close' }));
    }, Math.max(0, deadline - Date.now()));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
  });
  return inflateBody(raw, encoding, maxBytes);
}

interface BodySink {
  /** Stores `chunk`, which starts at body offset `at`. */
  add(chunk: Buffer, at: number): void;
  /** The body, `size` bytes. */
  body(size: number): Buffer;
  /** The read failed: nothing will read what was stored. */
  discard(): void;
}

/**
 * One buffer of the declared length (a few bytes more, for the alignment) that the body owns, not
 * a piece of Node's shared pool: one copy per byte instead of two, and no chunks kept until the end.
 */
function inPlace(length: number, alignAt: number, pool: BufferPool | undefined): BodySink {
  const pad = Number.isSafeInteger(alignAt) ? ((-alignAt % 4) + 4) % 4 : 0;
  const buffer = pool ? pool.take(pad + length) : new ArrayBuffer(pad + length);
  const target = Buffer.from(buffer);
  return {
    add: (chunk, at) => void chunk.copy(target, pad + at),
    body: (size) => target.subarray(pad, pad + size),
    discard: () => pool?.give(buffer),
  };
}

function gathered(): BodySink {
  const chunks: Buffer[] = [];
  return {
    add: (chunk) => void chunks.push(chunk),
    body: (size) => Buffer.concat(chunks, size),
    discard: () => {},
  };
}

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/** Triton's clients may gzip or deflate the request; the inflated size is bounded too (no zip bombs). */
async function inflateBody(raw: Buffer, e: string | undefined, maxBytes: number): Promise<Buffer> {
  if (!e || e === 'identity') return raw;
  if (e !== 'gzip' && e !== 'deflate') throw new HttpError(415, `Content-Encoding '${e}' is not supported (use gzip, deflate or none)`);
  try {
    return await (e === 'gzip' ? gunzipAsync : inflateAsync)(raw, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(`more than ${maxBytes} (inflated)`, maxBytes);
    throw new HttpError(400, `request body is not valid ${e} data: ${(err as Error).message}`);
  }
}

/** The client closed the connection: nobody is left to answer. */
export class ClientGone extends Error {
  constructor() {
    super('the client closed the connection');
    this.name = 'ClientGone';
  }
}
