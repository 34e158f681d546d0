/**
 * The inference worker's side of node/ort-worker.ts: it holds onnxruntime-node sessions (through
 * runtime/ort.ts, as the main thread does) and answers create / run / release messages. Outputs
 * and the run's inputs go back with their buffers transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';
import type { Tensor } from '../core/tensor.js';
import type { Session } from '../runtime/runtime.js';
import { nodeBackend } from './engine.js';
import { fullGc } from './gc.js';
import { transferList, type Reply, type Request, type RunReply, type WorkerMemory } from './ort-worker-protocol.js';

const sessions = new Map<number, Session>();
let nextSession = 1;

async function answer(request: Request): Promise<{ value: unknown; transfer: ArrayBuffer[] }> {
  switch (request.op) {
    case 'create': {
      const session = await nodeBackend.createSession(request.model, request.options);
      const id = nextSession++;
      sessions.set(id, session);
      return { value: { id, inputNames: session.inputNames, outputNames: session.outputNames }, transfer: [] };
    }
    case 'run': {
      const outputs: Record<string, Tensor> = await sessionOf(request.session).runTyped(request.feeds);
      // The inputs go back too, moved: an owner that reuses its buffers gets them again.
      const value: RunReply = { outputs, inputs: request.feeds };
      return { value, transfer: [...transferList(Object.values(outputs)), ...transferList(Object.values(request.feeds))] };
    }
    case 'collect':
      fullGc();
      return { value: undefined, transfer: [] };
    case 'exit':
      process.exit(0);
    // falls through: process.exit does not return
    case 'release': {
      const session = sessions.get(request.session);
      sessions.delete(request.session);
      await session?.release();
      return { value: undefined, transfer: [] };
    }
  }
}

function sessionOf(id: number): Session {
  const session = sessions.get(id);
  if (!session) throw new Error(`inference worker: no session ${id} (released?)`);
  return session;
}

function memory(): WorkerMemory {
  const { heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { heapUsed, external, arrayBuffers };
}

const port = parentPort!;
port.on('message', (request: Request) => {
  answer(request).then(
    ({ value, transfer }) => port.postMessage({ id: request.id, ok: true, value, memory: memory() } satisfies Reply, transfer),
    (err: unknown) => {
      const e = err as { message?: unknown; code?: unknown };
      const error = { message: String(e?.message ?? err), ...(typeof e?.code === 'string' ? { code: e.code } : {}) };
      port.postMessage({ id: request.id, ok: false, error, memory: memory() } satisfies Reply);
    },
  );
});
