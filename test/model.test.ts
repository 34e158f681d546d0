import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadModel, loadSwiftFormer, modelInfo, SwiftFormerError, type SwiftFormerModel, type StateDict } from '../src/index.js';
import { bindParams, toOnnx } from '../src/graph/graph.js';
import { emitSwiftFormer, initialWeights, stageNetworkIndices } from '../src/models/swiftformer.js';
import { optimizeForInference } from '../src/graph/passes.js';
import { readStateDict } from '../src/weights/read.js';
import { getBackend, registerBackend } from '../src/runtime/runtime.js';
import { fixtureBytes, fixturePath, fixtureTensor, manifest, relativeError, TINY_CONFIG } from './fixtures.js';

// Fixtures README: eval logits and fork_feat maps within max|a-b| / max|ref| <= 1e-4 in float32.
const TOLERANCE = 1e-4;

const open: SwiftFormerModel[] = [];
async function load(options: Parameters<typeof loadModel>[0]): Promise<SwiftFormerModel> {
  const model = await loadSwiftFormer({ session: { threads: 2 }, ...options });
  open.push(model);
  return model;
}
after(async () => {
  await Promise.all(open.map((m) => m.release()));
});

async function stateOf(rel: string): Promise<StateDict> {
  return readStateDict(fixtureBytes(rel));
}

describe('model size (paper, Table 2: params with the distillation head, GMACs at 224)', () => {
  const paper: Record<string, [number, number]> = { xs: [3.5, 0.6], s: [6.1, 1.0], l1: [12.1, 1.6], l3: [28.5, 4.0] };
  for (const [id, [params, gmacs]] of Object.entries(paper)) {
    test(`${id}: ${params} M params, ${gmacs} GMACs`, () => {
      const info = modelInfo(id);
      assert.equal(Math.round(info.params / 1e5) / 10, params);
      assert.equal(Math.round(info.macs / 1e8) / 10, gmacs);
    });
  }

  test('xs parameter count equals the official model exactly (fixture manifest)', () => {
    assert.equal(modelInfo('xs').params, manifest('xs').num_params_classifier);
    assert.equal(modelInfo(TINY_CONFIG).params, manifest('tiny').num_params_classifier);
  });

  test('stage shapes at 224 and at 320', () => {
    assert.deepEqual(modelInfo('xs').stages.map((s) => s.shape), [[1, 48, 56, 56], [1, 56, 28, 28], [1, 112, 14, 14], [1, 220, 7, 7]]);
    assert.deepEqual(modelInfo('l3', 320).stages.at(-1)!.shape, [1, 512, 10, 10]);
  });

  test('input sizes that are not multiples of 32 are refused', () => {
    assert.throws(() => modelInfo('xs', 225), (e: unknown) => e instanceof SwiftFormerError && e.code === 'BAD_SHAPE' && /multiples of 32/.test(e.message));
    assert.throws(() => modelInfo('xxl'), /unknown model 'xxl'/);
  });
});

describe('eval logits match the official code', () => {
  for (const dir of ['tiny', 'xs'] as const) {
    test(`${dir}: official checkpoint -> logits`, async () => {
      const model = await load({ weights: fixturePath(`${dir}/checkpoint_model_only.pth`) });
      assert.equal(model.report?.format, 'official');
      assert.equal(model.config.attention, 'l2');
      const logits = await model.logits(fixtureTensor(dir, 'input.bin'));
      assert.deepEqual(logits.shape, [2, 1000]);
      assert.ok(relativeError(logits.data, fixtureTensor(dir, 'logits.bin').data) <= TOLERANCE);
    });
  }

  test('batch of one gives the first row', async () => {
    const model = await load({ weights: fixturePath('tiny/weights.safetensors') });
    const input = fixtureTensor('tiny', 'input.bin');
    const one = { dtype: 'float32' as const, shape: [1, 3, 224, 224], data: input.data.slice(0, 3 * 224 * 224) };
    const logits = await model.logits(one);
    assert.ok(relativeError(logits.data, fixtureTensor('tiny', 'logits.bin').data.slice(0, 1000)) <= TOLERANCE);
  });

  test('the unfolded graph (BatchNorm nodes kept) agrees too: folding is exact', async () => {
    const graph = bindParams(emitSwiftFormer(TINY_CONFIG), await stateOf('tiny/weights.safetensors'));
    assert.ok(graph.nodes.some((n) => n.op === 'BatchNormalization'));
    const session = await ort.InferenceSession.create(toOnnx(graph), { intraOpNumThreads: 2 });
    const input = fixtureTensor('tiny', 'input.bin');
    const out = await session.run({ pixel_values: new ort.Tensor('float32', input.data, input.shape) });
    assert.ok(relativeError(out.logits!.data as Float32Array, fixtureTensor('tiny', 'logits.bin').data) <= TOLERANCE);
    await session.release();
  });

  test('the folded eval graph has no BatchNormalization and no layer-scale Mul left', async () => {
    const model = await load({ weights: fixturePath('tiny/weights.safetensors') });
    const graph = model.graph();
    assert.equal(graph.nodes.filter((n) => n.op === 'BatchNormalization').length, 0);
    assert.equal(graph.nodes.filter((n) => n.op === 'Gemm').length, 1, 'head and dist_head merged into one Gemm');
    assert.ok(!graph.nodes.some((n) => n.inputs.some((i) => /layer_scale/.test(i) && !/folded/.test(i))));
  });

  test('model_ema is taken only on request', async () => {
    const input = fixtureTensor('tiny', 'input.bin');
    const reference = fixtureTensor('tiny', 'logits.bin').data;
    const model = await load({ weights: fixturePath('tiny/checkpoint.pth') });
    assert.ok(relativeError((await model.logits(input)).data, reference) <= TOLERANCE);
    const ema = await load({ weights: fixturePath('tiny/checkpoint.pth'), entry: 'model_ema' });
    assert.ok(relativeError((await ema.logits(input)).data, reference) > 0.01);
  });
});

describe('features (official fork_feat)', () => {
  for (const dir of ['tiny', 'xs'] as const) {
    test(`${dir}: four normalized stage outputs`, async () => {
      const model = await load({ weights: fixturePath(`${dir}/fork_feat_weights.safetensors`) });
      assert.equal(model.head, 'features');
      const features = await model.features(fixtureTensor(dir, 'input.bin'));
      assert.equal(features.length, 4);
      features.forEach((f, i) => {
        const ref = fixtureTensor(dir, `fork_feat_out${i}.bin`);
        assert.deepEqual(f.shape, ref.shape);
        assert.ok(relativeError(f.data, ref.data) <= TOLERANCE, `features${i}`);
      });
    });
  }
});

/** Official keys renamed as Hugging Face's conversion script does. */
function toHuggingFaceKeys(state: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [key, t] of state) {
    let k = key.replace('.pwconv', '.point_wise_conv').replace('.dwconv', '.depth_wise_conv').replace('.Proj.', '.proj.');
    k = k.replace(/^patch_embed\./, 'swiftformer.patch_embed.patch_embedding.');
    k = k.replace(/^network\.(\d+)\.(\d+)\./, 'swiftformer.encoder.network.$1.blocks.$2.').replace(/^network\./, 'swiftformer.encoder.network.');
    out.set(k, t);
  }
  return out;
}

/** Official keys renamed as timm's checkpoint_filter_fn does. */
function toTimmKeys(state: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [key, t] of state) {
    let k = key.replace(/^patch_embed\./, 'stem.').replace(/^dist_head\./, 'head_dist.').replace('.attn.Proj.', '.attn.proj.');
    k = k.replace(/\.layer_scale(_1|_2)?$/, '.layer_scale$1.gamma');
    k = k.replace(/^network\.(\d+)\.(.*)$/, (_, n: string, rest: string) => {
      const i = Number(n);
      return i % 2 === 0 ? `stages.${i / 2}.blocks.${rest}` : `stages.${(i + 1) / 2}.downsample.${rest}`;
    });
    out.set(k, t);
  }
  return out;
}

describe('Hugging Face and timm weights', () => {
  test('timm keys are detected, mapped, and run with the l2 rule', async () => {
    const timm = toTimmKeys(await stateOf('tiny/weights.safetensors'));
    assert.ok(timm.has('stages.1.downsample.proj.weight') && timm.has('stem.0.weight'));
    const model = await load({ weights: timm, model: TINY_CONFIG });
    assert.equal(model.report?.format, 'timm');
    assert.equal(model.config.attention, 'l2');
    const logits = await model.logits(fixtureTensor('tiny', 'input.bin'));
    assert.ok(relativeError(logits.data, fixtureTensor('tiny', 'logits.bin').data) <= TOLERANCE);
  });

  test('Hugging Face keys mean the softmax rule; overriding to l2 reproduces the official logits', async () => {
    const hf = toHuggingFaceKeys(await stateOf('tiny/weights.safetensors'));
    const input = fixtureTensor('tiny', 'input.bin');
    const reference = fixtureTensor('tiny', 'logits.bin').data;
    const soft = await load({ weights: hf });
    assert.equal(soft.report?.format, 'huggingface');
    assert.equal(soft.config.attention, 'softmax');
    assert.ok(relativeError((await soft.logits(input)).data, reference) > 1e-3, 'softmax and l2 rules differ');
    const l2 = await load({ weights: hf, attention: 'l2' });
    assert.ok(relativeError((await l2.logits(input)).data, reference) <= TOLERANCE);
  });

  test('softmax rule: every token weight is 1, so w_g has no effect', async () => {
    const hf = toHuggingFaceKeys(await stateOf('tiny/weights.safetensors'));
    const input = fixtureTensor('tiny', 'input.bin');
    const a = await (await load({ weights: hf })).logits(input);
    const changed: StateDict = new Map([...hf].map(([k, t]) => [k, k.endsWith('.w_g') ? { ...t, data: (t.data as Float32Array).map((v) => v * -3 + 1) } as typeof t : t]));
    const b = await (await load({ weights: changed })).logits(input);
    assert.ok(relativeError(b.data, a.data) < 1e-6);
  });
});

describe('weights that do not fit', () => {
  test('another variant: an error naming mis-shaped and missing keys', async () => {
    await assert.rejects(load({ model: 's', weights: fixturePath('xs/checkpoint_model_only.pth') }), (e: unknown): boolean => {
      assert.ok(e instanceof SwiftFormerError && e.code === 'KEY_MISMATCH');
      assert.match(e.message, /mis-shaped \(network\.1\.proj\.weight: checkpoint \[56, 48, 3, 3\] vs model \[64, 48, 3, 3\]/);
      assert.match(e.message, /missing \(network\.4\.5\.dwconv\.weight/);
      assert.match(e.message, /unexpected \(network\.4\.5\.layer_scale_1/);
      return true;
    });
  });

  test('unexpected keys are named', async () => {
    const state = await stateOf('tiny/weights.safetensors');
    state.set('network.0.0.extra.weight', state.get('head.bias')!);
    await assert.rejects(load({ weights: state, model: TINY_CONFIG }), /1 unexpected \(network\.0\.0\.extra\.weight\)/);
  });

  test('strict: false loads what fits and initializes a head of another class count', async () => {
    const model = await load({ weights: fixturePath('tiny/weights.safetensors'), numClasses: 10, strict: false });
    assert.deepEqual(model.report?.mismatched.map((m) => m.key).sort(), ['dist_head.bias', 'dist_head.weight', 'head.bias', 'head.weight']);
    const logits = await model.logits(fixtureTensor('tiny', 'input.bin'));
    assert.deepEqual(logits.shape, [2, 10]);
  });

  test('pixels of the wrong shape are refused', async () => {
    const model = await load({ weights: fixturePath('tiny/weights.safetensors') });
    await assert.rejects(model.logits({ dtype: 'float32', shape: [1, 3, 100, 100], data: new Float32Array(30000) }), /multiples of 32/);
    await assert.rejects(model.logits({ dtype: 'float32', shape: [1, 1, 224, 224], data: new Float32Array(50176) }), /\(batch, 3, height, width\)/);
  });

  test('other input sizes run (a session per size)', async () => {
    const model = await load({ weights: fixturePath('tiny/weights.safetensors') });
    const logits = await model.logits({ dtype: 'float32', shape: [1, 3, 160, 96], data: new Float32Array(3 * 160 * 96).fill(0.5) });
    assert.deepEqual(logits.shape, [1, 1000]);
    assert.ok(logits.data.every(Number.isFinite));
  });
});

describe('custom configurations', () => {
  for (const dir of ['tiny', 'xs'] as const) {
    test(`${dir}: distillation off, 10 classes = the official train model (parameter count and strict load)`, async () => {
      const model = await load({ weights: fixturePath(`${dir}/train_weights.safetensors`) });
      assert.equal(model.config.distillation, false);
      assert.equal(model.config.numClasses, 10);
      assert.equal(model.info().params, manifest(dir).num_params_train_model);
      const logits = await model.logits({ dtype: 'float32', shape: [1, 3, 64, 64], data: fixtureTensor(dir, 'train_input.bin').data.slice(0, 3 * 64 * 64) });
      assert.deepEqual(logits.shape, [1, 10]);
    });
  }

  test('two attention blocks per stage and a different MLP ratio change the graph as they should', () => {
    const cfg = { ...TINY_CONFIG, depths: [2, 2, 2, 2], vitNum: 2, mlpRatio: 2, distillation: false };
    const graph = emitSwiftFormer(cfg);
    assert.ok(graph.params.has('network.0.0.attn.w_g') && graph.params.has('network.0.1.attn.w_g'));
    assert.deepEqual(graph.params.get('network.0.0.linear.fc1.weight'), [32, 16, 1, 1]);
    assert.ok(!graph.params.has('dist_head.weight'));
  });

  test('invalid configs are refused with the reason', () => {
    assert.throws(() => modelInfo({ ...TINY_CONFIG, depths: [1, 1, 2] }), /same non-zero length/);
    assert.throws(() => modelInfo({ ...TINY_CONFIG, embedDims: [16, 24, 32, 47] }), /even integers/);
    assert.throws(() => modelInfo({ ...TINY_CONFIG, attention: 'cosine' as 'l2' }), /'l2' or 'softmax'/);
  });
});

test('optimizeForInference leaves the graph it is given intact', async () => {
  const graph = bindParams(emitSwiftFormer(TINY_CONFIG), await stateOf('tiny/weights.safetensors'));
  const before = JSON.stringify(graph.nodes);
  optimizeForInference(graph);
  assert.equal(JSON.stringify(graph.nodes), before);
});

describe('loading in one pass', () => {
  test('timm keys are renamed before the architecture is known: a config without an Embedding between two stages is inferred', async () => {
    const cfg = { ...TINY_CONFIG, embedDims: [16, 24, 24, 48], downsamples: [true, false, true, true], numClasses: 7, distillation: false };
    const official = initialWeights(cfg, 'classifier', 3);
    // timm's layout: stage i's blocks are stages.i.blocks, the Embedding before stage i is stages.i.downsample.
    const netIndex = stageNetworkIndices(cfg);
    const timm: StateDict = new Map();
    for (const [key, t] of official) {
      let k = key.replace(/^patch_embed\./, 'stem.').replace('.attn.Proj.', '.attn.proj.').replace(/\.layer_scale(_1|_2)?$/, '.layer_scale$1.gamma');
      k = k.replace(/^network\.(\d+)\.(.*)$/, (_, n: string, rest: string) => {
        const stage = netIndex.indexOf(Number(n));
        return stage >= 0 ? `stages.${stage}.blocks.${rest}` : `stages.${netIndex.indexOf(Number(n) + 1)}.downsample.${rest}`;
      });
      timm.set(k, t);
    }
    assert.ok(!timm.has('stages.2.downsample.proj.weight') && timm.has('stages.3.downsample.proj.weight'));
    const fromTimm = await load({ weights: timm });
    assert.deepEqual(fromTimm.config.downsamples.slice(0, 3), [true, false, true]);
    assert.deepEqual(fromTimm.config.embedDims, cfg.embedDims);
    const pixels = { dtype: 'float32' as const, shape: [1, 3, 64, 64], data: Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i)) };
    const reference = await (await load({ weights: official, model: cfg })).logits(pixels);
    assert.ok(relativeError((await fromTimm.logits(pixels)).data, reference.data) < 1e-6);
  });

  test('the eval graph is emitted once per input size and shared by the session and toOnnx', async () => {
    const model = await load({ weights: fixturePath('tiny/weights.safetensors') });
    assert.equal(model.graph(64), model.graph(64));
    assert.notEqual(model.graph(64), model.graph(96));
  });
});

describe('a loaded model knows itself', () => {
  const example = (name: string) => new URL(`../assets/examples/${name}`, import.meta.url).pathname;

  test('the bundled Fashion-MNIST model: task, labels and its recorded pipeline, applied by preprocess and classify', async () => {
    const model = await load({ weights: new URL('../assets/default/model.safetensors', import.meta.url).pathname });
    assert.equal(model.card.task, 'classification');
    assert.equal(model.card.labels?.[4], 'Coat');
    assert.deepEqual(model.inputSize, [32, 32]);
    const pixels = await model.preprocess(example('4-coat.png'));
    assert.deepEqual(pixels.shape, [1, 3, 32, 32]);
    const [best] = await model.classify(example('4-coat.png'), { top: 1 });
    assert.equal(best!.label, 'Coat');
    // The ImageNet transform at 224 is what the model did NOT see: asking for it is refused, naming the pipeline.
    await assert.rejects(model.preprocess(example('4-coat.png'), { size: 224 }), (e: unknown) =>
      e instanceof SwiftFormerError && e.code === 'BAD_ARGUMENT' && /records its input pipeline \(32x32, gray, zero padding 2/.test(e.message));
  });

  test('weights from elsewhere get the official eval transform and no recorded labels', async () => {
    const model = await load({ weights: fixturePath('tiny/weights.safetensors') });
    assert.equal(model.card.task, 'classification');
    assert.equal(model.card.labels, undefined);
    assert.deepEqual((await model.preprocess(example('1-trouser.png'))).shape, [1, 3, 224, 224]);
    assert.deepEqual((await model.preprocess(example('1-trouser.png'), { size: 96 })).shape, [1, 3, 96, 96]);
    const backbone = await load({ weights: fixturePath('tiny/fork_feat_weights.safetensors') });
    assert.equal(backbone.card.task, 'features');
    const det = await loadModel({ weights: fixturePath('maskrcnn-tiny/weights.safetensors'), session: { threads: 1 } });
    open.push(det as never);
    assert.equal(det.task, 'detection');
    assert.equal(det.card.task, 'detection');
    assert.ok(det.task === 'detection' && det.hasMasks);
  });
});

describe('non-finite weights and logits', () => {
  async function poisoned(): Promise<StateDict> {
    const state = await stateOf('tiny/weights.safetensors');
    const t = state.get('network.4.0.pwconv1.weight')!;
    const data = (t.data as Float32Array).slice();
    data[3] = NaN;
    state.set('network.4.0.pwconv1.weight', { ...t, data } as typeof t);
    const bias = state.get('head.bias')!;
    state.set('head.bias', { ...bias, data: (bias.data as Float32Array).map((v, i) => (i === 0 ? Infinity : v)) } as typeof bias);
    return state;
  }

  test('are refused at load, naming the tensors; allowNonFinite loads them', async () => {
    await assert.rejects(load({ weights: await poisoned() }), (e: unknown) =>
      e instanceof SwiftFormerError && e.code === 'BAD_CHECKPOINT' && /non-finite values \(NaN or infinity\) in 2 tensors: network\.4\.0\.pwconv1\.weight, head\.bias/.test(e.message));
    const model = await load({ weights: await poisoned(), allowNonFinite: true });
    const logits = await model.logits(fixtureTensor('tiny', 'input.bin'));
    assert.ok(logits.data.some((v) => !Number.isFinite(v)));
  });

  test('NaN logits are never ranked: classify is an error naming the image', async () => {
    const model = await load({ weights: await poisoned(), allowNonFinite: true });
    const image = { width: 40, height: 40, data: new Uint8Array(40 * 40 * 3).fill(128) };
    await assert.rejects(model.classify(image), /logits for the image hold NaN/);
  });
});

describe('every public entry validates its arguments', () => {
  const code = (c: string) => (e: unknown) => e instanceof SwiftFormerError && e.code === c;

  test('loadModel options', async () => {
    await assert.rejects(loadModel({ model: { embedDims: [16, 24, 32, 48] } as never }), (e: unknown) => code('BAD_ARGUMENT')(e) && /model\.depths must be an array/.test((e as Error).message));
    await assert.rejects(loadModel({ weights: 42 as never }), (e: unknown) => code('BAD_ARGUMENT')(e) && /weights must be a path or URL, bytes/.test((e as Error).message));
    await assert.rejects(loadModel({ head: 'bogus' as never }), (e: unknown) => code('BAD_ARGUMENT')(e) && /head must be 'classifier' or 'features'/.test((e as Error).message));
    await assert.rejects(loadModel({ session: { threads: -1 } }), (e: unknown) => code('BAD_ARGUMENT')(e) && /session\.threads/.test((e as Error).message));
    await assert.rejects(loadModel(null as never), code('BAD_ARGUMENT'));
    // A partial config takes the defaults for what it leaves out.
    const partial = await load({ model: { embedDims: [16, 24, 32, 48], depths: [1, 1, 2, 1] } as never });
    assert.equal(partial.config.mlpRatio, 4);
  });

  test('logits(null) and other non-tensors', async () => {
    const model = await load({ weights: fixturePath('tiny/weights.safetensors') });
    await assert.rejects(model.logits(null as never), (e: unknown) => code('BAD_ARGUMENT')(e) && /expected a float32 pixel batch/.test((e as Error).message));
    await assert.rejects(model.logits({ shape: [1, 3, 32, 32], data: [1, 2] } as never), code('BAD_ARGUMENT'));
  });

  test('release: calls pending at release and every later call fail with RELEASED', async () => {
    const model = await loadModel({ weights: fixturePath('tiny/weights.safetensors'), session: { threads: 1 }, task: 'classification' });
    const pixels = fixtureTensor('tiny', 'input.bin');
    const pending = model.logits(pixels);
    const released = model.release();
    await assert.rejects(pending, code('RELEASED'));
    await released;
    await assert.rejects(model.logits(pixels), (e: unknown) => code('RELEASED')(e) && /was released/.test((e as Error).message));
    await assert.rejects(model.classify({ width: 8, height: 8, data: new Uint8Array(192) }), code('RELEASED'));
    await model.release(); // twice is fine
  });
});

describe('trim: the memory of runs given back, the model kept ready', () => {
  /** The platform's backend, counting the sessions it opens and frees. */
  function countingBackend(name: string) {
    const counts = { created: 0, released: 0 };
    const inner = getBackend('onnxruntime-node');
    registerBackend({
      name,
      async createSession(bytes, options) {
        const s = await inner.createSession(bytes, options);
        counts.created++;
        return { ...s, run: (f) => s.run(f), runTyped: (f) => s.runTyped(f), release: () => (counts.released++, s.release()) };
      },
    });
    return counts;
  }

  test('reopens the session that ran: answers before, during and after a trim are the official logits; release still works', async () => {
    const counts = countingBackend('counting-trim');
    const model = await loadSwiftFormer({ weights: fixturePath('tiny/weights.safetensors'), session: { threads: 1 }, backend: 'counting-trim' });
    const pixels = fixtureTensor('tiny', 'input.bin');
    const expected = fixtureTensor('tiny', 'logits.bin');
    assert.ok(relativeError((await model.logits(pixels)).data, expected.data) < TOLERANCE);
    assert.deepEqual(counts, { created: 1, released: 0 });
    // A call in flight when the trim starts finishes on the old session; one made during it waits for the new one.
    const inFlight = model.logits(pixels);
    const trimmed = model.trim();
    const during = model.logits(pixels);
    for (const out of await Promise.all([inFlight, during])) assert.ok(relativeError(out.data, expected.data) < TOLERANCE);
    await trimmed;
    assert.equal(counts.released, 1, 'the old session is freed');
    assert.equal(counts.created, 2, 'and one new session serves both the call during the trim and the reopening');
    assert.ok(relativeError((await model.logits(pixels)).data, expected.data) < TOLERANCE);
    await model.release();
    assert.deepEqual(counts, { created: 2, released: 2 });
    await model.trim(); // a released model stays released
    assert.equal(counts.created, 2);
    await assert.rejects(model.logits(pixels), (e: unknown) => e instanceof SwiftFormerError && e.code === 'RELEASED');
  });
});

describe('loadModel: one entry, the family read off the weights', () => {
  test('mmsegmentation weights give a segmentation model; SwiftFormer weights a classifier or backbone', async () => {
    const seg = await loadModel({ weights: fixturePath('semfpn-tiny/checkpoint.pth'), session: { threads: 1 } });
    open.push(seg as never);
    assert.equal(seg.task, 'segmentation');
    assert.equal(seg.card.task, 'segmentation');
    const cls = await loadModel({ weights: fixturePath('tiny/weights.safetensors'), session: { threads: 1 } });
    open.push(cls as never);
    assert.equal(cls.card.task, 'classification');
    const backbone = await loadModel({ weights: fixturePath('tiny/fork_feat_weights.safetensors'), session: { threads: 1 } });
    open.push(backbone as never);
    assert.equal(backbone.card.task, 'features');
  });

  test('a task that the weights are not is refused, naming what they are', async () => {
    await assert.rejects(loadModel({ weights: fixturePath('semfpn-tiny/checkpoint.pth'), task: 'classification' }),
      /holds a Semantic FPN segmentation model \(mmsegmentation keys\): it cannot be loaded for classification/);
    await assert.rejects(loadSwiftFormer({ weights: fixturePath('semfpn-tiny/weights.safetensors') }),
      /holds a Semantic FPN segmentation model .*not a SwiftFormer classifier or backbone/);
    await assert.rejects(loadModel({ weights: fixturePath('maskrcnn-tiny/weights.safetensors'), task: 'segmentation' }),
      /holds a Mask R-CNN detector \(torchvision keys\): it cannot be loaded for segmentation/);
    await assert.rejects(loadModel({ task: 'bogus' as never }), /task must be one of/);
  });

  test("task 'segmentation' with a classifier's weights starts a new model from its backbone", async () => {
    const seg = await loadModel({ task: 'segmentation', weights: fixturePath('tiny/weights.safetensors'), numClasses: 4, session: { threads: 1 } });
    open.push(seg as never);
    const classifier = await stateOf('tiny/weights.safetensors');
    const key = 'network.0.0.local_representation.dwconv.weight';
    assert.deepEqual([...(seg.state.get(`backbone.${key}`)!.data as Float32Array)], [...(classifier.get(key)!.data as Float32Array)]);
    assert.equal(seg.numClasses, 4);
  });

  test("task 'detection' with a classifier's weights starts a new detector from its backbone, with loadModel's settings", async () => {
    const det = await loadModel({ task: 'detection', weights: fixturePath('tiny/weights.safetensors'), numClasses: 5, settings: { transform: { minSize: 96, maxSize: 160 } }, session: { threads: 1 } });
    open.push(det as never);
    const classifier = await stateOf('tiny/weights.safetensors');
    const key = 'network.0.0.local_representation.dwconv.weight';
    assert.deepEqual([...(det.state.get(`backbone.body.${key}`)!.data as Float32Array)], [...(classifier.get(key)!.data as Float32Array)]);
    assert.equal(det.numClasses, 5);
    assert.deepEqual([det.config.settings.transform.minSize, det.config.settings.transform.maxSize], [96, 160]);
  });
});
