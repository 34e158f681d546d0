/**
 * What an idle server does to give memory back. V8 frees an unreachable ArrayBuffer (request
 * bodies, input and output tensors) only when it collects garbage, and an idle process allocates
 * nothing that would make it collect: one full collection once traffic stops returns them, in
 * the main thread and in the inference worker (which holds the batches handed to it and its copy
 * of each reopened session's ONNX bytes).
 */
import { fullGc } from '../node/gc.js';
import { workerBackend } from '../node/ort-worker.js';

export async function collectGarbage(): Promise<void> {
  fullGc();
  await workerBackend.collectGarbage();
}
