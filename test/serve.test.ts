/**
 * The inference server against the Open Inference Protocol and the fixtures: every endpoint, the
 * binary tensor extension both ways, every request error, /v1 classify equal to `classify --json`,
 * dynamic batching equal to single requests, and /metrics in the Prometheus text format.
 * Servers listen on 127.0.0.1 only.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadClassifier } from '../src/cli/classify.js';
import { classifierModel, type ServedModel } from '../src/serve/models.js';
import { InferenceServer } from '../src/serve/server.js';
import { cli } from './cli-runner.js';
import { fixtureTensor, relativeError } from './fixtures.js';
import {
  binaryRequest, decodeResponse, float32Bytes, getJson, http, metricValue, parseMetrics, postJson, TINY_WEIGHTS, tinyServer, withTinyServer,
} from './serve-client.js';

const TOLERANCE = 1e-4; // fixtures README: eval logits
const input = fixtureTensor('tiny', 'input.bin'); // 2x3x224x224
const logits = fixtureTensor('tiny', 'logits.bin'); // 2x1000, official PyTorch code
const IMAGE = 3 * 224 * 224;
const row = (t: { data: Float32Array }, i: number, size: number) => t.data.subarray(i * size, (i + 1) * size);
const EXAMPLE = fileURLToPath(new URL('../assets/examples/4-coat.png', import.meta.url));

function inferBody(data: ArrayLike<number>, shape = [2, 3, 224, 224], extra: Record<string, unknown> = {}) {
  return { id: 'req-1', inputs: [{ name: 'pixel_values', shape, datatype: 'FP32', data: Array.from(data) }], ...extra };
}

describe('serve: Open Inference Protocol endpoints', () => {
  let server: InferenceServer;
  let url: string;
  before(async () => ({ server, url } = await tinyServer()));
  after(() => server.shutdown(1000));

  test('health, server and model metadata, model ready', async () => {
    assert.deepEqual((await getJson(`${url}/v2/health/live`)).json, { live: true });
    assert.deepEqual((await getJson(`${url}/v2/health/ready`)).json, { ready: true });
    const meta = await getJson(`${url}/v2`);
    assert.equal(meta.json.name, 'swiftformer');
    assert.ok(meta.json.extensions.includes('binary_tensor_data'));
    const model = await getJson(`${url}/v2/models/tiny`);
    assert.equal(model.status, 200);
    assert.equal(model.type, 'application/json');
    assert.deepEqual(model.json, {
      name: 'tiny', platform: 'onnxruntime_onnx',
      inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [-1, 3, -1, -1] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 1000] }],
    });
    assert.deepEqual((await getJson(`${url}/v2/models/tiny/ready`)).json, { name: 'tiny', ready: true });
  });

  test('unknown model, version, endpoint and method: 404 / 405 with the protocol error body', async () => {
    const unknown = await getJson(`${url}/v2/models/nope`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.type, 'application/json');
    assert.match(unknown.json.error, /unknown model 'nope' \(served: 'tiny'\)/);
    const infer = await postJson(`${url}/v2/models/nope/infer`, inferBody([0], [1]));
    assert.equal(infer.status, 404);
    assert.match(JSON.parse(infer.body.toString()).error, /unknown model 'nope'/);
    const version = await getJson(`${url}/v2/models/tiny/versions/3`);
    assert.equal(version.status, 404);
    assert.match(version.json.error, /no version '3'.*not versioned/);
    assert.equal((await getJson(`${url}/v2/nothing`)).status, 404);
    const wrongMethod = await http(`${url}/v2/models/tiny/infer`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'POST');
    assert.match(JSON.parse(wrongMethod.body.toString()).error, /GET is not allowed/);
  });

  test('JSON inference reproduces the official logits; id echoed, model_name given', async () => {
    const r = await postJson(`${url}/v2/models/tiny/infer`, inferBody(input.data));
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers['content-type'], 'application/json');
    const out = JSON.parse(r.body.toString());
    assert.equal(out.model_name, 'tiny');
    assert.equal(out.id, 'req-1');
    assert.equal(out.outputs.length, 1);
    const [o] = out.outputs;
    assert.deepEqual([o.name, o.datatype, o.shape], ['logits', 'FP32', [2, 1000]]);
    assert.ok(relativeError(o.data, logits.data) <= TOLERANCE);
    // Nested (natural-shape) data means the same tensor.
    const nested = [[Array.from({ length: 3 }, (_, c) => Array.from({ length: 224 }, (_, y) => Array.from(row(input, c * 224 + y, 224))))]];
    const r2 = await postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 224, 224], datatype: 'FP32', data: nested }] });
    const out2 = JSON.parse(r2.body.toString());
    assert.equal(typeof out2.id, 'string', 'a server-made id when the request has none');
    assert.ok(relativeError(out2.outputs[0].data, row(logits, 0, 1000)) <= TOLERANCE);
  });

  test('binary tensor extension: binary input and output, byte for byte as documented', async () => {
    const { body, headers } = binaryRequest({
      inputs: [{ name: 'pixel_values', shape: [2, 3, 224, 224], datatype: 'FP32', parameters: { binary_data_size: IMAGE * 2 * 4 } }],
      outputs: [{ name: 'logits', parameters: { binary_data: true } }],
    }, [float32Bytes(input.data)]);
    const r = await http(`${url}/v2/models/tiny/infer`, { method: 'POST', body, headers });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    const jsonLength = Number(r.headers['inference-header-content-length']);
    assert.equal(Number(r.headers['content-length']), jsonLength + 2 * 1000 * 4, 'Content-Length is the JSON plus the binary data');
    const header = JSON.parse(r.body.subarray(0, jsonLength).toString());
    assert.deepEqual(header.outputs, [{ name: 'logits', datatype: 'FP32', shape: [2, 1000], parameters: { binary_data_size: 8000 } }]);
    const { outputs } = decodeResponse(r);
    assert.ok(relativeError(outputs.get('logits')!.values as number[], logits.data) <= TOLERANCE);
  });

  test('binary input with JSON output; binary_data_output asks for binary outputs', async () => {
    const one = float32Bytes(row(input, 1, IMAGE));
    const json = { inputs: [{ name: 'pixel_values', shape: [1, 3, 224, 224], datatype: 'FP32', parameters: { binary_data_size: one.length } }] };
    const plain = await http(`${url}/v2/models/tiny/infer`, { method: 'POST', ...binaryRequest(json, [one]) });
    assert.equal(plain.headers['content-type'], 'application/json');
    assert.equal(plain.headers['inference-header-content-length'], undefined);
    assert.ok(relativeError(JSON.parse(plain.body.toString()).outputs[0].data, row(logits, 1, 1000)) <= TOLERANCE);
    const binary = await http(`${url}/v2/models/tiny/infer`, { method: 'POST', ...binaryRequest({ ...json, parameters: { binary_data_output: true } }, [one]) });
    const { outputs } = decodeResponse(binary);
    assert.ok(relativeError(outputs.get('logits')!.values as number[], row(logits, 1, 1000)) <= TOLERANCE);
  });

  test("Triton's classification extension: top k as score:index:label", async () => {
    const r = await postJson(`${url}/v2/models/tiny/infer`, inferBody(input.data, undefined, { outputs: [{ name: 'logits', parameters: { classification: 3 } }] }));
    const [o] = JSON.parse(r.body.toString()).outputs;
    assert.equal(o.datatype, 'BYTES');
    assert.deepEqual(o.shape, [2, 3]);
    const labels = JSON.parse(await readFile(new URL('../assets/labels/imagenet-1k.json', import.meta.url), 'utf8')) as string[];
    for (let b = 0; b < 2; b++) {
      const ref = Array.from(row(logits, b, 1000));
      const top = ref.map((v, i) => [v, i] as const).sort((x, y) => y[0] - x[0]).slice(0, 3);
      o.data.slice(b * 3, b * 3 + 3).forEach((s: string, k: number) => {
        const [score, index, ...label] = s.split(':');
        assert.equal(Number(index), top[k]![1]);
        assert.ok(Math.abs(Number(score) - top[k]![0]) <= TOLERANCE * 10);
        assert.equal(label.join(':'), labels[top[k]![1]]);
      });
    }
    // The same strings in binary: 4-byte little-endian length, then the bytes.
    const bin = await postJson(`${url}/v2/models/tiny/infer`, inferBody(input.data, undefined, { outputs: [{ name: 'logits', parameters: { classification: 3, binary_data: true } }] }));
    assert.deepEqual(decodeResponse(bin).outputs.get('logits')!.values, o.data);
  });

  const errors: [string, () => Promise<{ status: number; body: Buffer }>, number, RegExp][] = [
    ['malformed JSON', () => postJson(`${url}/v2/models/tiny/infer`, '{"inputs": [ {"name": '), 400, /malformed JSON in the inference request/],
    ['no inputs array', () => postJson(`${url}/v2/models/tiny/infer`, { input: [] }), 400, /'inputs' array/],
    ['wrong datatype', () => postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 32, 32], datatype: 'FP64', data: new Array(3072).fill(0) }] }), 400, /input 'pixel_values' has datatype "FP64"; model 'tiny' takes FP32/],
    ['wrong shape', () => postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 32, 32], datatype: 'FP32', data: new Array(1024).fill(0) }] }), 400, /input 'pixel_values' has shape \[1, 32, 32\]; model 'tiny' takes \[-1, 3, -1, -1\]/],
    ['sides not a multiple of 32', () => postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 40, 40], datatype: 'FP32', data: new Array(4800).fill(0) }] }), 400, /40x40 is not supported: height and width must be multiples of 32/],
    ['wrong tensor name', () => postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixels', shape: [1, 3, 32, 32], datatype: 'FP32', data: [] }] }), 400, /model 'tiny' has no input 'pixels' \(its inputs: 'pixel_values'\)/],
    ['too little data', () => postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 32, 32], datatype: 'FP32', data: [1, 2, 3] }] }), 400, /data holds 3 values; shape \[1, 3, 32, 32\] needs 3072/],
    ['a string in the data', () => postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 32, 32], datatype: 'FP32', data: ['x'] }] }), 400, /data element 0 is "x", not a number/],
    ['batch over max_batch', () => postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [17, 3, 32, 32], datatype: 'FP32', data: [] }] }), 400, /batch of 17; model 'tiny' takes at most 16/],
    ['unknown output', () => postJson(`${url}/v2/models/tiny/infer`, { ...inferBody(new Float32Array(3072), [1, 3, 32, 32]), outputs: [{ name: 'probs' }] }), 400, /model 'tiny' has no output 'probs' \(its outputs: 'logits'\)/],
    ['shared memory', () => postJson(`${url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [1, 3, 32, 32], datatype: 'FP32', parameters: { shared_memory_region: 'r' } }] }), 400, /shared memory .* not supported/],
    ['binary size that does not fit the shape', () => http(`${url}/v2/models/tiny/infer`, { method: 'POST', ...binaryRequest({ inputs: [{ name: 'pixel_values', shape: [1, 3, 32, 32], datatype: 'FP32', parameters: { binary_data_size: 8 } }] }, [Buffer.alloc(8)]) }), 400, /8 bytes of binary data; shape \[1, 3, 32, 32\] of FP32 needs 12288/],
    ['binary data missing', () => http(`${url}/v2/models/tiny/infer`, { method: 'POST', ...binaryRequest({ inputs: [{ name: 'pixel_values', shape: [1, 3, 32, 32], datatype: 'FP32', parameters: { binary_data_size: 12288 } }] }, [Buffer.alloc(100)]) }), 400, /binary_data_size is 12288 but only 100 bytes/],
    ['bytes nobody claims', () => http(`${url}/v2/models/tiny/infer`, { method: 'POST', ...binaryRequest({ inputs: [{ name: 'pixel_values', shape: [1, 3, 32, 32], datatype: 'FP32', data: new Array(3072).fill(0) }] }, [Buffer.alloc(12)]) }), 400, /12 bytes after the JSON header belong to no input/],
    ['header length past the body', () => http(`${url}/v2/models/tiny/infer`, { method: 'POST', body: '{}', headers: { 'Inference-Header-Content-Length': '99' } }), 400, /Inference-Header-Content-Length is 99 but the body has only 2 bytes/],
  ];
  for (const [name, send, status, pattern] of errors) {
    test(`request error: ${name} -> ${status} naming the problem`, async () => {
      const r = await send();
      assert.equal(r.status, status, r.body.toString());
      assert.match(JSON.parse(r.body.toString()).error, pattern);
    });
  }

  test('/metrics: Prometheus text format with requests by model and status, histograms, gauges', async () => {
    const r = await http(`${url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
    const samples = parseMetrics(r.body.toString());
    assert.ok((metricValue(samples, 'swiftformer_requests_total', { model: 'tiny', endpoint: 'infer', status: '200' }) ?? 0) >= 5);
    assert.ok((metricValue(samples, 'swiftformer_requests_total', { model: 'tiny', endpoint: 'infer', status: '400' }) ?? 0) >= 10);
    // A made-up model name is never a label value (bounded cardinality).
    assert.equal(samples.some((s) => s.labels.model === 'nope'), false);
    assert.equal(metricValue(samples, 'swiftformer_requests_total', { model: '', endpoint: 'metadata', status: '404' }), 1);
    for (const h of ['swiftformer_request_duration_seconds', 'swiftformer_batch_size']) {
      const buckets = samples.filter((s) => s.name === `${h}_bucket` && s.labels.model === 'tiny' && (h !== 'swiftformer_request_duration_seconds' || s.labels.endpoint === 'infer'));
      assert.ok(buckets.length > 2, h);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${h} buckets are cumulative`);
      assert.equal(buckets.at(-1)!.labels.le, '+Inf');
      const count = samples.find((s) => s.name === `${h}_count` && s.labels.model === 'tiny' && (h !== 'swiftformer_request_duration_seconds' || s.labels.endpoint === 'infer'))!;
      assert.equal(buckets.at(-1)!.value, count.value);
    }
    assert.equal(metricValue(samples, 'swiftformer_queue_depth', { model: 'tiny' }), 0);
    assert.equal(metricValue(samples, 'swiftformer_inflight_requests', { model: 'tiny' }), 0);
  });
});

describe('serve: /v1 image endpoints', () => {
  let server: InferenceServer;
  let url: string;
  before(async () => ({ server, url } = await tinyServer()));
  after(() => server.shutdown(1000));

  test('classify answers what classify --json prints for the image', async () => {
    const image = await readFile(EXAMPLE);
    const r = await http(`${url}/v1/models/tiny/classify?top=3`, { method: 'POST', body: image, headers: { 'Content-Type': 'image/png' } });
    assert.equal(r.status, 200, r.body.toString());
    const fromCli = await cli('classify', EXAMPLE, '--weights', TINY_WEIGHTS, '--json', '--top', '3');
    assert.equal(fromCli.code, 0, fromCli.stderr);
    const [printed] = JSON.parse(fromCli.stdout);
    assert.deepEqual(JSON.parse(r.body.toString()), { predictions: printed.predictions });
    assert.equal(printed.predictions.length, 3);
  });

  test('segment and detect on a classifier: 400 naming what it does', async () => {
    for (const task of ['segment', 'detect']) {
      const r = await http(`${url}/v1/models/tiny/${task}`, { method: 'POST', body: await readFile(EXAMPLE), headers: { 'Content-Type': 'image/png' } });
      assert.equal(r.status, 400);
      assert.match(JSON.parse(r.body.toString()).error, new RegExp(`model 'tiny' does not do ${task} \\(it does: classify\\)`));
    }
  });

  test('bad uploads: not an image type (415), undecodable (400), empty (400), bad ?top (400)', async () => {
    const post = (body: Buffer | string, type: string, query = '') => http(`${url}/v1/models/tiny/classify${query}`, { method: 'POST', body, headers: { 'Content-Type': type } });
    const json = await post('{}', 'application/json');
    assert.equal(json.status, 415);
    assert.match(JSON.parse(json.body.toString()).error, /Content-Type application\/json is not an image/);
    const garbage = await post(Buffer.from('not an image at all'), 'image/png');
    assert.equal(garbage.status, 400);
    assert.match(JSON.parse(garbage.body.toString()).error, /uploaded image/);
    assert.equal((await post(Buffer.alloc(0), 'image/png')).status, 400);
    const top = await post(await readFile(EXAMPLE), 'image/png', '?top=0');
    assert.equal(top.status, 400);
    assert.match(JSON.parse(top.body.toString()).error, /top must be an integer >= 1/);
  });
});

describe('serve: a direct image task plugs in', () => {
  test('a model whose task handles the image itself (as segment(image) and detect(image) do) answers through the queue', async () => {
    const c = await loadClassifier({ weights: TINY_WEIGHTS }, 'test');
    const base = classifierModel('seg', c, { maxBatch: 4, dynamic: true, maxDelayMs: 1 });
    const model: ServedModel = { ...base, tasks: { ...base.tasks, segment: { run: async (image) => ({ width: image.width, height: image.height }) } } };
    const server = new InferenceServer([model]);
    const url = await server.listen(0);
    try {
      const r = await http(`${url}/v1/models/seg/segment`, { method: 'POST', body: await readFile(EXAMPLE), headers: { 'Content-Type': 'image/png' } });
      assert.equal(r.status, 200, r.body.toString());
      assert.deepEqual(JSON.parse(r.body.toString()), { width: 28, height: 28 });
    } finally {
      await server.shutdown(1000);
    }
  });
});

/** A binary-input request (quick to build and parse, so that concurrent ones arrive together). */
function sendBinary(base: string, data: ArrayLike<number>, shape: number[]) {
  const bytes = float32Bytes(data);
  const json = { inputs: [{ name: 'pixel_values', shape, datatype: 'FP32', parameters: { binary_data_size: bytes.length } }] };
  return http(`${base}/v2/models/tiny/infer`, { method: 'POST', ...binaryRequest(json, [bytes]) });
}

describe('serve: dynamic batching', () => {
  test('concurrent requests run as one batch and each answer equals a single request (1e-5 relative)', async () => {
    const { server: single, url: singleUrl } = await tinyServer({ maxBatch: 1 });
    const { server: batched, url: batchedUrl } = await tinyServer({ maxBatch: 16, maxDelayMs: 1000 });
    try {
      // Six different images: the fixture's two and four blends of them.
      const images = [0, 1, 0.25, 0.5, 0.75, 0.9].map((a) => {
        const out = new Float32Array(IMAGE);
        for (let i = 0; i < IMAGE; i++) out[i] = (1 - a) * input.data[i]! + a * input.data[IMAGE + i]!;
        return out;
      });
      const infer = async (base: string, data: Float32Array) => {
        const r = await sendBinary(base, data, [1, 3, 224, 224]);
        assert.equal(r.status, 200, r.body.toString());
        return JSON.parse(r.body.toString()).outputs[0].data as number[];
      };
      const alone: number[][] = [];
      for (const img of images) alone.push(await infer(singleUrl, img));
      const together = await Promise.all(images.map((img) => infer(batchedUrl, img)));
      together.forEach((out, i) => assert.ok(relativeError(out, alone[i]!) <= 1e-5, `request ${i}: ${relativeError(out, alone[i]!)}`));
      // The six bodies and the batch went back to the server's buffer pool ...
      const pooled = metricValue(parseMetrics(batched.metricsText), 'swiftformer_buffer_pool_bytes')!;
      assert.ok(pooled >= 12 * IMAGE * 4, `pool holds ${pooled} bytes`);
      // ... and a second batch in another order reuses them: nothing of the first one's data is left in it.
      const again = await Promise.all([...images].reverse().map((img) => infer(batchedUrl, img)));
      again.reverse().forEach((out, i) => assert.ok(relativeError(out, alone[i]!) <= 1e-5, `again, request ${i}: ${relativeError(out, alone[i]!)}`));
      assert.equal(metricValue(parseMetrics(batched.metricsText), 'swiftformer_buffer_pool_bytes'), pooled, 'the same buffers, no new ones');
      // The fixture images still give the official logits.
      assert.ok(relativeError(together[0]!, row(logits, 0, 1000)) <= TOLERANCE);
      const samples = parseMetrics(batched.metricsText);
      assert.equal(metricValue(samples, 'swiftformer_batch_size_count', { model: 'tiny' }), 2, 'one batch per round of the six requests');
      assert.equal(metricValue(samples, 'swiftformer_batch_size_sum', { model: 'tiny' }), 12);
      assert.equal(metricValue(samples, 'swiftformer_batch_size_bucket', { model: 'tiny', le: '4' }), 0);
      assert.equal(metricValue(samples, 'swiftformer_batch_size_bucket', { model: 'tiny', le: '8' }), 2);
    } finally {
      await Promise.all([single.shutdown(1000), batched.shutdown(1000)]);
    }
  });

  test('different image sizes batch per size; a request with its own batch is split back', async () => {
    await withTinyServer({ maxBatch: 16, maxDelayMs: 1000 }, {}, async ({ server, url }) => {
      const at = (side: number, seed: number) => Float32Array.from({ length: 3 * side * side }, (_, i) => Math.sin(i * 0.37 + seed));
      const requests = [[224, 1, 1], [256, 1, 2], [224, 2, 3], [256, 1, 4]].map(([side, n, seed]) => ({ side: side!, n: n!, data: Array.from({ length: n! }, (_, k) => [...at(side!, seed! + k)]).flat() }));
      const send = (side: number, n: number, data: ArrayLike<number>) => sendBinary(url, data, [n, 3, side, side]);
      const results = await Promise.all(requests.map((q) => send(q.side, q.n, q.data)));
      const samples = parseMetrics(server.metricsText);
      assert.equal(metricValue(samples, 'swiftformer_batch_size_count', { model: 'tiny' }), 2, 'one batch per size');
      assert.equal(metricValue(samples, 'swiftformer_batch_size_sum', { model: 'tiny' }), 5);
      for (const [i, q] of requests.entries()) {
        const out = JSON.parse(results[i]!.body.toString()).outputs[0];
        assert.deepEqual(out.shape, [q.n, 1000]);
        const alone = JSON.parse((await send(q.side, q.n, q.data)).body.toString()).outputs[0].data;
        assert.ok(relativeError(out.data, alone) <= 1e-5);
      }
    });
  });

  test('/v1 classify requests share batches too, with the same answers', async () => {
    const { server, url } = await tinyServer({ maxBatch: 16, maxDelayMs: 1000 });
    const { server: single, url: singleUrl } = await tinyServer({ maxBatch: 1 });
    try {
      const files = ['0-t-shirt-top.png', '5-sandal.png', '9-ankle-boot.png'];
      const bodies = await Promise.all(files.map((f) => readFile(new URL(`../assets/examples/${f}`, import.meta.url))));
      const post = (base: string, body: Buffer) => http(`${base}/v1/models/tiny/classify?top=5`, { method: 'POST', body, headers: { 'Content-Type': 'image/png' } });
      const together = await Promise.all(bodies.map((b) => post(url, b)));
      for (const [i, b] of bodies.entries()) {
        const a = JSON.parse(together[i]!.body.toString()).predictions;
        const s = JSON.parse((await post(singleUrl, b)).body.toString()).predictions;
        assert.deepEqual(a.map((p: { index: number }) => p.index), s.map((p: { index: number }) => p.index));
        a.forEach((p: { score: number }, k: number) => assert.ok(Math.abs(p.score - s[k].score) <= 1e-5 * s[0].score));
      }
      assert.equal(metricValue(parseMetrics(server.metricsText), 'swiftformer_batch_size_count', { model: 'tiny' }), 1);
    } finally {
      await Promise.all([server.shutdown(1000), single.shutdown(1000)]);
    }
  });
});

describe('serve: memory given back when idle', () => {
  const trims = (server: InferenceServer) => metricValue(parseMetrics(server.metricsText), 'swiftformer_idle_trims_total');
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (cond()) return true;
    return cond();
  }

  test('after idleTrimMs without requests the models trim once; requests during and after it get the same answers', async () => {
    await withTinyServer({ maxBatch: 16, maxDelayMs: 1 }, { idleTrimMs: 300 }, async ({ server, url }) => {
      assert.equal(trims(server), 0);
      await sleep(400);
      assert.equal(trims(server), 0, 'no inference ran, nothing to give back');
      const infer = async () => {
        const r = await sendBinary(url, row(input, 0, IMAGE), [1, 3, 224, 224]);
        assert.equal(r.status, 200, r.body.toString());
        return JSON.parse(r.body.toString()).outputs[0].data as number[];
      };
      const first = await infer();
      assert.ok(relativeError(first, row(logits, 0, 1000)) <= TOLERANCE);
      // Requests keep coming faster than idleTrimMs: no trim under traffic.
      for (let i = 0; i < 4; i++) {
        await infer();
        await sleep(30);
      }
      assert.equal(trims(server), 0, 'no trim while requests keep arriving');
      assert.ok(metricValue(parseMetrics(server.metricsText), 'swiftformer_buffer_pool_bytes')! > IMAGE * 4, 'bodies kept for reuse under traffic');
      assert.ok(await waitFor(() => trims(server) === 1, 5000), 'one trim once traffic stopped');
      assert.equal(metricValue(parseMetrics(server.metricsText), 'swiftformer_buffer_pool_bytes'), 0, 'the trim emptied the buffer pool');
      await sleep(400);
      assert.equal(trims(server), 1, 'and only one: nothing ran since');
      assert.ok(relativeError(await infer(), first) <= 1e-6, 'the reopened session answers as before');
      // A request that arrives while the sessions are being reopened waits for them.
      const trimming = server.trim();
      const during = await infer();
      await trimming;
      assert.ok(relativeError(during, first) <= 1e-6);
      const samples = parseMetrics(server.metricsText);
      const rss = metricValue(samples, 'process_resident_memory_bytes')!;
      assert.ok(rss > 10 * 2 ** 20 && rss < 4 * process.memoryUsage().rss, `process_resident_memory_bytes ${rss}`);
      for (const name of ['nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes', 'nodejs_array_buffers_bytes']) assert.ok(metricValue(samples, name)! > 0, name);
    });
  });

  test('idleTrimMs 0: the server never trims', async () => {
    await withTinyServer({ maxBatch: 1 }, { idleTrimMs: 0 }, async ({ server, url }) => {
      assert.equal((await sendBinary(url, row(input, 0, IMAGE), [1, 3, 224, 224])).status, 200);
      await sleep(300);
      assert.equal(trims(server), 0);
    });
  });
});
