/**
 * onnxruntime-node (CPU) as a backend of runtime/ort.ts: the one place this package is imported,
 * shared by the main thread (node/platform.ts) and the inference worker (node/ort-worker-thread.ts).
 */
import * as ort from 'onnxruntime-node';
import { ortBackend } from '../runtime/ort.js';

export const NODE_BACKEND = 'onnxruntime-node';

export const nodeBackend = ortBackend(ort, NODE_BACKEND, ['cpu']);
