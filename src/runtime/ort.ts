/**
 * The one module that speaks ONNX Runtime's API. It is written against onnxruntime-common, which
 * onnxruntime-node and onnxruntime-web both implement, so each platform entry only passes in its
 * package.
 */
import type { InferenceSession as OrtSession, Tensor as OrtTensor } from 'onnxruntime-common';
import type { Backend, Session, SessionOptions } from './runtime.js';
import type { FloatTensor, Tensor } from '../core/tensor.js';

/** The part of an onnxruntime package this adapter uses. */
export interface OrtModule {
  InferenceSession: { create(model: Uint8Array | string, options?: OrtSession.SessionOptions): Promise<OrtSession> };
  Tensor: {
    new (type: 'float32', data: Float32Array, dims: readonly number[]): OrtTensor;
    new (type: 'int64', data: BigInt64Array, dims: readonly number[]): OrtTensor;
  };
}

function sessionOptions(options: SessionOptions, executionProviders: string[]): OrtSession.SessionOptions {
  const out: OrtSession.SessionOptions = {
    graphOptimizationLevel: options.optimization ?? 'all',
    executionMode: 'sequential',
    executionProviders,
  };
  if (options.threads !== undefined) {
    out.intraOpNumThreads = options.threads;
    out.interOpNumThreads = 1;
  }
  if (options.memoryArena === false) {
    out.enableCpuMemArena = false;
    out.enableMemPattern = false;
  }
  if (options.profilePrefix !== undefined) {
    out.enableProfiling = true;
    out.profileFilePrefix = options.profilePrefix;
  }
  return out;
}

function wrapSession(ort: OrtModule, session: OrtSession): Session {
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds) {
      const ortFeeds: Record<string, OrtTensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', t.data, t.shape);
      const results = await session.run(ortFeeds);
      const out: Record<string, FloatTensor> = {};
      for (const [name, t] of Object.entries(results)) {
        out[name] = { dtype: 'float32', shape: [...t.dims], data: t.data as Float32Array };
      }
      return out;
    },
    async runTyped(feeds) {
      const ortFeeds: Record<string, OrtTensor> = {};
      for (const [name, t] of Object.entries(feeds)) {
        ortFeeds[name] = t.dtype === 'int64' ? new ort.Tensor('int64', t.data, t.shape) : new ort.Tensor('float32', t.data, t.shape);
      }
      const results = await session.run(ortFeeds);
      const out: Record<string, Tensor> = {};
      for (const [name, t] of Object.entries(results)) {
        const shape = [...t.dims];
        if (t.type === 'int64') out[name] = { dtype: 'int64', shape, data: t.data as BigInt64Array };
        else if (t.type === 'float32') out[name] = { dtype: 'float32', shape, data: t.data as Float32Array };
        else throw new Error(`output ${name} has type ${t.type}, which this adapter does not return`);
      }
      return out;
    },
    async release() {
      await session.release();
    },
  };
}

export function ortBackend(ort: OrtModule, name: string, executionProviders: string[]): Backend {
  return {
    name,
    async createSession(model, options = {}) {
      return wrapSession(ort, await ort.InferenceSession.create(model, sessionOptions(options, executionProviders)));
    },
  };
}
