/** The messages between node/ort-worker.ts (the main thread) and node/ort-worker-thread.ts (the inference worker). */
import type { Tensor } from '../core/tensor.js';
import type { SessionOptions } from '../runtime/runtime.js';

export type Request =
  | { id: number; op: 'create'; model: Uint8Array | string; options: SessionOptions | undefined }
  | { id: number; op: 'run'; session: number; feeds: Record<string, Tensor> }
  | { id: number; op: 'release'; session: number }
  /** A full garbage collection in the worker. */
  | { id: number; op: 'collect' }
  /** Stop the worker once the run executing now (if any) has answered; what is queued behind it is never answered. */
  | { id: number; op: 'exit' };

/** What a run answers: its outputs, and its inputs given back. */
export interface RunReply { outputs: Record<string, Tensor>; inputs: Record<string, Tensor> }

/** The worker thread's own V8 memory (process.memoryUsage() in a worker: its isolate's figures), in bytes. */
export interface WorkerMemory { heapUsed: number; external: number; arrayBuffers: number }

/** Every reply carries the worker's memory as it answers, so the main thread can show it without asking. */
export type Reply = { memory: WorkerMemory } & (
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { message: string; code?: string } });

/** A tensor's data owns its whole buffer, so the buffer can move to the other thread as it is. */
export function ownsBuffer(data: ArrayBufferView): boolean {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
}

/** The buffers of `tensors` that can be transferred (each once); the others are copied by postMessage. */
export function transferList(tensors: readonly Tensor[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const t of tensors) if (ownsBuffer(t.data)) buffers.add(t.data.buffer as ArrayBuffer);
  return [...buffers];
}
