/**
 * Triton model repositories: the text-format parser on a config in Triton's documented style,
 * `export --triton` writing a config.pbtxt that parses and agrees with the ONNX model (as ONNX
 * Runtime itself reads the model), and `serve --repository` serving that directory with the
 * official logits.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { formatPbtxt, parsePbtxt, PbEnum, type PbMessage } from '../src/serve/pbtxt.js';
import { parseTritonConfig } from '../src/serve/triton.js';
import { assertCleanFailure, cli } from './cli-runner.js';
import { fixturePath, fixtureTensor, relativeError } from './fixtures.js';
import { getJson, postJson, serveProcess as serve } from './serve-client.js';

const TINY = fixturePath('tiny/weights.safetensors');
const OFFICIAL_ONNX = fixturePath('official-onnx/swiftformer_xs.onnx');
const BUNDLED = fileURLToPath(new URL('../assets/default/model.safetensors', import.meta.url));

// In the style of Triton's docs/user_guide/model_configuration.md: comments, optional colons before
// messages, lists of messages, enums, nested messages, both separators and both delimiters.
const TRITON_STYLE = `
# An ONNX classifier
name: "densenet_onnx"
platform: "onnxruntime_onnx"
max_batch_size : 8
input [
  {
    name: "data_0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape: { shape: [ 1, 3, 224, 224 ] }
  }
]
output [
  {
    name: "fc6_1"
    data_type: TYPE_FP32
    dims: [ -1 ]
    label_filename: "densenet_labels.txt"
  }
]
instance_group [ { count: 2, kind: KIND_CPU }, { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ]; max_queue_delay_microseconds: 100 }
parameters < key: "note" value: { string_value: "a \\"quoted\\" word,\\ttab \\303\\251" } >
optimization { execution_accelerators { cpu_execution_accelerator : [ { name : "openvino" } ] } }
`;

describe('text protobuf (config.pbtxt)', () => {
  test('parses a Triton-style config: fields, lists, enums, nested messages, escapes', () => {
    const msg = parsePbtxt(TRITON_STYLE);
    assert.deepEqual(msg.name, ['densenet_onnx']);
    assert.deepEqual(msg.max_batch_size, [8]);
    const [input] = msg.input as PbMessage[];
    assert.deepEqual(input!.dims, [3, 224, 224]);
    assert.equal((input!.data_type![0] as PbEnum).name, 'TYPE_FP32');
    assert.deepEqual((input!.reshape![0] as PbMessage).shape, [1, 3, 224, 224]);
    const groups = msg.instance_group as PbMessage[];
    assert.equal(groups.length, 2);
    assert.deepEqual(groups[1]!.gpus, [0]);
    assert.equal((groups[1]!.kind![0] as PbEnum).name, 'KIND_GPU');
    assert.deepEqual((msg.dynamic_batching![0] as PbMessage).preferred_batch_size, [4, 8]);
    const value = ((msg.parameters![0] as PbMessage).value![0] as PbMessage).string_value;
    assert.deepEqual(value, ['a "quoted" word,\ttab é']);
    const config = parseTritonConfig(TRITON_STYLE);
    assert.deepEqual(config.outputs, [{ name: 'fc6_1', datatype: 'FP32', dims: [-1], labelFilename: 'densenet_labels.txt' }]);
    assert.deepEqual(config.dynamicBatching, { maxQueueDelayMicroseconds: 100 });
  });

  test('errors name the line; a non-ONNX platform is refused', () => {
    assert.throws(() => parsePbtxt('name: "x"\nmax_batch_size 8\n', 'config.pbtxt'), /config.pbtxt, line 2: expected ':' before 8/);
    assert.throws(() => parsePbtxt('input [ { name: "x" }\n'), /line 1: expected ',' or ']' in a list/);
    assert.throws(() => parsePbtxt('dynamic_batching {\n max_queue_delay_microseconds: 1\n'), /line 2: missing '}'/);
    assert.throws(() => parsePbtxt('name: "x\n"'), /line 1: newline inside a string/);
    assert.throws(() => parseTritonConfig('platform: "tensorrt_plan"'), /platform 'tensorrt_plan' is not ONNX/);
  });

  test('what formatPbtxt writes parses back to the same values', () => {
    const obj = { name: 'a "b" \\ c\nd', n: -3, f: 0.5, flag: true, e: new PbEnum('TYPE_FP32'), dims: [3, -1], list: [{ x: 1 }, { x: 2, sub: { y: 'é' } }] };
    const back = parsePbtxt(formatPbtxt(obj));
    assert.deepEqual(back.name, [obj.name]);
    assert.deepEqual([back.n, back.f, back.flag], [[-3], [0.5], [true]]);
    assert.equal((back.e![0] as PbEnum).name, 'TYPE_FP32');
    assert.deepEqual(back.dims, [3, -1]);
    assert.deepEqual((back.list as PbMessage[]).map((m) => m.x), [[1], [2]]);
    assert.deepEqual(((back.list![1] as PbMessage).sub![0] as PbMessage).y, ['é']);
  });
});

/** The config's tensors against what ONNX Runtime reads off the model file. */
async function assertAgrees(config: PbMessage, modelPath: string): Promise<void> {
  const session = await ort.InferenceSession.create(modelPath);
  try {
    const maxBatch = config.max_batch_size![0] as number;
    for (const [kind, meta] of [['input', session.inputMetadata], ['output', session.outputMetadata]] as const) {
      const tensors = config[kind] as PbMessage[];
      assert.deepEqual(tensors.map((t) => t.name![0]), meta.map((m) => m.name), `${kind} names`);
      tensors.forEach((t, i) => {
        const m = meta[i] as { shape: readonly (number | string)[]; type: string };
        assert.equal(m.type, 'float32');
        assert.equal((t.data_type![0] as PbEnum).name, 'TYPE_FP32');
        const shape = m.shape.map((d) => (typeof d === 'number' ? d : -1));
        // With max_batch_size > 0 the dims leave out the (dynamic) batch axis.
        assert.deepEqual(t.dims, maxBatch > 0 ? shape.slice(1) : shape, `${kind} ${m.shape}`);
        if (maxBatch > 0) assert.equal(shape[0], -1);
      });
    }
  } finally {
    await session.release();
  }
}

describe('export --triton', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'swiftformer-triton-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  test('writes DIR/NAME/config.pbtxt that parses and agrees with DIR/NAME/1/model.onnx, which gives the official logits', async () => {
    const r = await cli('export', '--weights', TINY, '--triton', dir, '--name', 'tiny', '--max-batch', '8', '--max-delay-ms', '2');
    assert.equal(r.code, 0, r.stderr);
    const config = parsePbtxt(await readFile(join(dir, 'tiny', 'config.pbtxt'), 'utf8'));
    assert.deepEqual(config.name, ['tiny']);
    assert.deepEqual(config.platform, ['onnxruntime_onnx']);
    assert.deepEqual(config.max_batch_size, [8]);
    assert.deepEqual((config.dynamic_batching![0] as PbMessage).max_queue_delay_microseconds, [2000]);
    const modelPath = join(dir, 'tiny', '1', 'model.onnx');
    await assertAgrees(config, modelPath);
    assert.deepEqual((config.input![0] as PbMessage).dims, [3, 224, 224]);
    assert.deepEqual((config.output![0] as PbMessage).dims, [1000]);
    const session = await ort.InferenceSession.create(modelPath);
    const input = fixtureTensor('tiny', 'input.bin');
    const out = await session.run({ pixel_values: new ort.Tensor('float32', input.data, input.shape) });
    assert.ok(relativeError(out.logits!.data as Float32Array, fixtureTensor('tiny', 'logits.bin').data) <= 1e-4);
    await session.release();
  });

  test('a model that records its classes gets labels.txt as its label_filename; the name defaults to the weights file', async () => {
    const r = await cli('export', '--weights', BUNDLED, '--triton', dir);
    assert.equal(r.code, 0, r.stderr);
    const config = parsePbtxt(await readFile(join(dir, 'model', 'config.pbtxt'), 'utf8'));
    await assertAgrees(config, join(dir, 'model', '1', 'model.onnx'));
    assert.deepEqual((config.input![0] as PbMessage).dims, [3, 32, 32]);
    assert.deepEqual((config.output![0] as PbMessage).label_filename, ['labels.txt']);
    const labels = (await readFile(join(dir, 'model', 'labels.txt'), 'utf8')).trimEnd().split('\n');
    assert.deepEqual(labels, ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
  });

  test('an exported .onnx file (another exporter\'s) is packaged as it is; --max-batch 0 keeps whole shapes', async () => {
    const r = await cli('export', '--weights', OFFICIAL_ONNX, '--triton', dir, '--name', 'official');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(join(dir, 'official', '1', 'model.onnx')), await readFile(OFFICIAL_ONNX));
    const config = parsePbtxt(await readFile(join(dir, 'official', 'config.pbtxt'), 'utf8'));
    await assertAgrees(config, join(dir, 'official', '1', 'model.onnx'));
    assert.deepEqual((config.input![0] as PbMessage).name, ['input']);
    const whole = await cli('export', '--weights', OFFICIAL_ONNX, '--triton', dir, '--name', 'whole', '--max-batch', '0');
    assert.equal(whole.code, 0, whole.stderr);
    const wholeConfig = parsePbtxt(await readFile(join(dir, 'whole', 'config.pbtxt'), 'utf8'));
    assert.deepEqual((wholeConfig.input![0] as PbMessage).dims, [-1, 3, 224, 224]);
    assert.equal(wholeConfig.dynamic_batching, undefined);
    await assertAgrees(wholeConfig, join(dir, 'whole', '1', 'model.onnx'));
  });

  test('bad names and missing targets fail with one line', async () => {
    assertCleanFailure(await cli('export', '--weights', TINY, '--triton', dir, '--name', '../escape'), /model name '..\/escape' must start with a letter or digit/);
    assertCleanFailure(await cli('export', '--weights', TINY), /--onnx <out.onnx> is required \(or --triton <dir>\)/);
  });
});

describe('serve --repository', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'swiftformer-repo-'));
    const r = await cli('export', '--weights', TINY, '--triton', dir, '--name', 'tiny', '--max-batch', '4');
    assert.equal(r.code, 0, r.stderr);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('serves the exported repository: versioned metadata, the official logits, the config\'s max_batch_size', async () => {
    const s = await serve(['--repository', dir]);
    assert.ok(s.url, s.stderr);
    try {
      const meta = await getJson(`${s.url}/v2/models/tiny`);
      assert.deepEqual(meta.json, {
        name: 'tiny', versions: ['1'], platform: 'onnxruntime_onnx',
        inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
        outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 1000] }],
      });
      const input = fixtureTensor('tiny', 'input.bin');
      const body = { inputs: [{ name: 'pixel_values', shape: [2, 3, 224, 224], datatype: 'FP32', data: Array.from(input.data) }] };
      const r = await postJson(`${s.url}/v2/models/tiny/versions/1/infer`, body);
      assert.equal(r.status, 200, r.body.toString());
      const out = JSON.parse(r.body.toString());
      assert.equal(out.model_version, '1');
      assert.ok(relativeError(out.outputs[0].data, fixtureTensor('tiny', 'logits.bin').data) <= 1e-4);
      assert.equal((await getJson(`${s.url}/v2/models/tiny/versions/2/ready`)).status, 404);
      const tooMany = await postJson(`${s.url}/v2/models/tiny/infer`, { inputs: [{ name: 'pixel_values', shape: [5, 3, 224, 224], datatype: 'FP32', data: [] }] });
      assert.match(JSON.parse(tooMany.body.toString()).error, /batch of 5; model 'tiny' takes at most 4/);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  test('a config that disagrees with its model is refused at startup, naming both', async () => {
    const path = join(dir, 'tiny', 'config.pbtxt');
    const good = await readFile(path, 'utf8');
    await writeFile(path, good.replace('dims: [ 3, 224, 224 ]', 'dims: [ 3, 256, 256 ]'));
    try {
      const s = await serve(['--repository', dir]);
      assert.equal(s.url, undefined);
      assert.ok(s.code !== 0 && s.code !== null, `exit code ${s.code}`);
      assert.doesNotMatch(s.stderr, /\n\s+at /, 'no stack trace');
      assert.match(s.stderr, /config.pbtxt: input 'pixel_values' has shape \[-1,3,224,224\] in the model, \[-1,3,256,256\] by the config/);
    } finally {
      await writeFile(path, good);
    }
  });
});
