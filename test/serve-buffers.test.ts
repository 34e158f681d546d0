/**
 * The server's reused buffers (serve/buffers.ts) and the request body read in place (http.ts
 * readBody): a /v2 body lands 4-byte aligned after its JSON header in a buffer of the pool, its
 * FP32 tensors are views into it (no second copy), and runBatch gives bodies and batches back.
 */
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { BufferPool } from '../src/serve/buffers.js';
import { readBody, type BodyLimits } from '../src/serve/http.js';
import { runBatch, type Feeds, type ServedModel } from '../src/serve/models.js';
import { parseInferRequest } from '../src/serve/protocol.js';
import { binaryRequest, float32Bytes } from './serve-client.js';

describe('BufferPool', () => {
  test('a buffer given back is the next one of its size taken; others are ignored; bounded; cleared', () => {
    const pool = new BufferPool(1000);
    const a = pool.take(100);
    assert.equal(a.byteLength, 100);
    pool.give(a);
    pool.give(a); // twice: once only
    assert.equal(pool.held, 100);
    assert.equal(pool.take(100), a);
    assert.notEqual(pool.take(100), a, 'taken already: a fresh one');
    pool.give(new ArrayBuffer(100)); // not the pool's
    assert.equal(pool.held, 0);
    const moved = pool.take(200);
    const back = structuredClone(moved, { transfer: [moved] });
    pool.give(moved); // detached by the transfer
    assert.equal(pool.held, 0);
    pool.adopt(back); // the same memory, back from the other side
    assert.equal(pool.held, 200);
    const big = [pool.take(400), pool.take(400), pool.take(400)];
    big.forEach((b) => pool.give(b));
    assert.equal(pool.held, 1000, 'the third 400 would pass maxBytes: let go');
    pool.clear();
    assert.equal(pool.held, 0);
    assert.notEqual(pool.take(200), back);
  });
});

/** A server on 127.0.0.1 whose handler reads each body with `limits`; resolves the bodies (or the errors) in order. */
async function bodyServer(limits: () => Partial<BodyLimits>) {
  const read: Promise<Buffer>[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const body = readBody(req, { maxBytes: 1 << 20, deadline: Date.now() + 5000, timeoutMs: 5000, ...limits() });
    read.push(body);
    body.then(() => res.end('ok'), () => res.end('no'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const send = (body: Buffer, headers: Record<string, string | number>, cut = false) => new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers }, (res) => res.resume().on('end', resolve));
    req.on('error', () => resolve());
    if (cut) {
      req.write(body.subarray(0, body.length >> 1), () => setTimeout(() => (req.destroy(), resolve()), 100));
    } else req.end(body);
  });
  return { read, send, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('readBody in place', () => {
  test('a body of declared length lands in one pool buffer with alignAt on a multiple of 4; a chunked one is joined', async () => {
    const pool = new BufferPool(1 << 20);
    for (const alignAt of [0, 1, 2, 3, 5]) {
      const s = await bodyServer(() => ({ alignAt, pool }));
      try {
        const body = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff)); // more than one socket read
        await s.send(body, { 'Content-Length': body.length });
        await s.send(body, { 'Transfer-Encoding': 'chunked' });
        const [inPlace, joined] = await Promise.all(s.read);
        assert.ok(inPlace!.equals(body) && joined!.equals(body));
        assert.equal((inPlace!.byteOffset + alignAt) % 4, 0, `alignAt ${alignAt}`);
        assert.equal(inPlace!.buffer.byteLength, body.length + ((4 - (alignAt % 4)) % 4), 'a buffer of its own, the body and the padding');
        pool.give(inPlace!.buffer);
        assert.equal(pool.take(inPlace!.buffer.byteLength), inPlace!.buffer, "it is the pool's");
      } finally {
        await s.close();
      }
    }
  });

  test("a client that goes away mid-body: the body's buffer goes back to the pool", async () => {
    const pool = new BufferPool(1 << 20);
    const s = await bodyServer(() => ({ pool }));
    try {
      await s.send(Buffer.alloc(200_000, 1), { 'Content-Length': 200_000 }, true);
      await assert.rejects(s.read[0]!, { name: 'ClientGone' });
      assert.equal(pool.held, 200_000);
    } finally {
      await s.close();
    }
  });
});

const model = (rowsOut: (x: Float32Array, rows: number) => Float32Array): ServedModel => ({
  name: 'm', platform: 'test', maxBatch: 4, dynamic: true, maxDelayMs: 0, tasks: {},
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 1] }],
  async run(feeds: Feeds) {
    const rows = feeds.x!.shape[0]!;
    return { y: { dtype: 'float32', shape: [rows, 1], data: rowsOut(feeds.x!.data, rows) } };
  },
  release: async () => {},
});

/** y = the sum of each row of x. */
const rowSums = model((x, rows) => Float32Array.from({ length: rows }, (_, r) => x[3 * r]! + x[3 * r + 1]! + x[3 * r + 2]!));

function inferBody(values: number[], rows: number): { body: Buffer; headerLength: string } {
  const bytes = float32Bytes(values);
  const { body, headers } = binaryRequest({ inputs: [{ name: 'x', shape: [rows, 3], datatype: 'FP32', parameters: { binary_data_size: bytes.length } }] }, [bytes]);
  return { body, headerLength: headers['Inference-Header-Content-Length']! };
}

describe('binary tensors in place, batches from the pool', () => {
  test('an aligned body gives a view into it, a misaligned one a copy, with the same values', () => {
    const { body, headerLength } = inferBody([1, 2, 3], 1);
    const misaligned = Buffer.alloc(body.length + 4);
    const shift = (4 - ((misaligned.byteOffset + Number(headerLength)) % 4)) % 4;
    const aligned = misaligned.subarray(shift, shift + body.length);
    body.copy(aligned);
    const inPlace = parseInferRequest(aligned, headerLength, rowSums).feeds.x!;
    assert.equal(inPlace.data.buffer, aligned.buffer, 'a view into the body');
    assert.deepEqual([...inPlace.data], [1, 2, 3]);
    const off = misaligned.subarray(shift + 1, shift + 1 + body.length);
    body.copy(off);
    const copied = parseInferRequest(off, headerLength, rowSums).feeds.x!;
    assert.notEqual(copied.data.buffer, off.buffer);
    assert.deepEqual([...copied.data], [1, 2, 3]);
  });

  test("runBatch joins requests into a pool buffer, gives the bodies and the batch back, and each answer is its rows'", async () => {
    const pool = new BufferPool(1 << 20);
    const bodyOf = (values: number[], rows: number) => {
      const { body, headerLength } = inferBody(values, rows);
      const own = Buffer.from(pool.take(body.length + 4), (4 - (Number(headerLength) % 4)) % 4, body.length);
      body.copy(own);
      return parseInferRequest(own, headerLength, rowSums).feeds;
    };
    const requests = [bodyOf([1, 2, 3], 1), bodyOf([10, 20, 30, 4, 5, 6], 2), bodyOf([0.5, 0.25, 0.25], 1)];
    const bodies = requests.map((f) => f.x!.data.buffer);
    const out = await runBatch(rowSums, requests, pool);
    assert.deepEqual(out.map((o) => [...o.y!.data]), [[6], [60, 15], [1]]);
    assert.equal(pool.held, bodies.reduce((n, b) => n + b.byteLength, 0) + 4 * 3 * 4, 'three bodies and the 4-row batch');
    // One request alone goes through a pool copy too: the model sees data that owns its buffer.
    let owned = false;
    const single = { ...rowSums, run: (feeds: Feeds) => ((owned = feeds.x!.data.byteOffset === 0 && feeds.x!.data.byteLength === feeds.x!.data.buffer.byteLength), rowSums.run(feeds)) };
    assert.deepEqual([...(await runBatch(single, [bodyOf([1, 1, 1], 1)], pool))[0]!.y!.data], [3]);
    assert.ok(owned);
  });
});
