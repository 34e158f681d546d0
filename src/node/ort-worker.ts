/**
 * onnxruntime-node in a worker thread, as the backend 'onnxruntime-node-worker'. onnxruntime-node
 * runs `session.run` synchronously on the calling thread (microsoft/onnxruntime#19611): in the main
 * thread, nothing else happens while a model runs. `serve` runs its sessions here instead, so
 * that reading, parsing and queueing the next batch's requests overlap the batch running now.
 *
 * One worker holds every session of the process (on a few cores, one run at a time with all
 * intra-op threads is what runs fastest, as in the main thread), started on the first session.
 * Inputs are transferred when their owner handed them over (runtime.ts handOver), else copied,
 * and moved inputs come back with the outputs to the owner's recycle function, if it gave one;
 * outputs always come back transferred. If the worker exits (an uncaught error, out of memory,
 * terminate()), every call waiting on it rejects with ENGINE_EXITED, its sessions report `gone`,
 * and the next session created starts a new worker.
 */
import { Worker } from 'node:worker_threads';
import { SwiftFormerError, type ErrorCode } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { isHandedOver, recyclerOf, type Backend, type Session, type SessionOptions } from '../runtime/runtime.js';
import { ownsBuffer, transferList, type Reply, type Request, type RunReply, type WorkerMemory } from './ort-worker-protocol.js';

export const WORKER_BACKEND = 'onnxruntime-node-worker';

/**
 * Built, the thread's module is .js. Run from the sources (tests, benches: `node --import tsx`) it
 * is .ts, which a worker does not load even with --import tsx among its inherited flags: then a
 * small entry registers tsx's loader in the worker and imports it.
 */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./ort-worker-thread.js', import.meta.url));
  const [tsx, thread] = [import.meta.resolve('tsx/esm/api'), new URL('./ort-worker-thread.ts', import.meta.url).href].map((u) => JSON.stringify(u));
  return new Worker(`import(${tsx}).then((api) => { api.register(); return import(${thread}); })`, { eval: true });
}

type Pending = { resolve: (value: unknown) => void; reject: (err: Error) => void };

/** Requests without their id, which the connection assigns. */
type Call = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

/** One running worker and the calls waiting on it. */
class Connection {
  readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set when the worker has exited: why. */
  exited: string | undefined;
  /** The worker's memory as of its latest reply. */
  memory: WorkerMemory | undefined;

  constructor(onExit: () => void) {
    this.worker = startWorker();
    this.worker.unref();
    this.worker.on('message', (reply: Reply) => this.settle(reply));
    this.worker.on('error', (err) => this.fail(`the inference worker failed: ${err.message}`));
    this.worker.on('exit', (code) => {
      this.fail(`the inference worker exited (code ${code})`);
      onExit();
    });
  }

  call(request: Call, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.exited) return Promise.reject(exitedError(this.exited));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Waiting on the worker keeps the process alive; an idle worker does not.
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage({ ...request, id }, transfer);
    });
  }

  private settle(reply: Reply): void {
    this.memory = reply.memory;
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if (reply.ok) p.resolve(reply.value);
    else p.reject(reply.error.code ? new SwiftFormerError(reply.error.code as ErrorCode, reply.error.message) : new Error(reply.error.message));
  }

  private fail(why: string): void {
    this.exited ??= why;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(exitedError(this.exited));
  }
}

function exitedError(why: string): SwiftFormerError {
  return new SwiftFormerError('ENGINE_EXITED', `${why}; the runs it held failed, and the model's next run opens its session again`);
}

/** The feeds as posted: handed-over buffers move, the rest are copied (a view's own bytes only). */
function outgoing(feeds: Record<string, Tensor>): { feeds: Record<string, Tensor>; transfer: ArrayBuffer[] } {
  const posted: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    posted[name] = isHandedOver(t.data) && ownsBuffer(t.data) ? t : ({ ...t, data: t.data.slice() } as Tensor);
  }
  return { feeds: posted, transfer: transferList(Object.values(posted)) };
}

class WorkerBackend implements Backend {
  readonly name = WORKER_BACKEND;
  private connection: Connection | undefined;

  async createSession(model: Uint8Array | string, options?: SessionOptions): Promise<Session> {
    const connection = this.connect();
    // The bytes are copied (a model may be opened again from the same bytes), a view's own bytes only.
    const bytes = typeof model === 'string' || ownsBuffer(model) ? model : model.slice();
    const { id, inputNames, outputNames } = await connection.call({ op: 'create', model: bytes, options }) as { id: number; inputNames: string[]; outputNames: string[] };
    const run = async (feeds: Record<string, Tensor>) => {
      const { feeds: posted, transfer } = outgoing(feeds);
      const { outputs, inputs } = await connection.call({ op: 'run', session: id, feeds: posted }, transfer) as RunReply;
      for (const [name, t] of Object.entries(feeds)) {
        const back = inputs[name]?.data.buffer;
        if (transfer.includes(t.data.buffer as ArrayBuffer) && back instanceof ArrayBuffer) recyclerOf(t.data)?.(back);
      }
      return outputs;
    };
    return {
      inputNames,
      outputNames,
      run: run as Session['run'],
      runTyped: run,
      get gone() {
        return connection.exited !== undefined;
      },
      async release() {
        if (!connection.exited) await connection.call({ op: 'release', session: id });
      },
    };
  }

  /**
   * The worker thread's V8 memory as of its latest answer (a run, a trim's collection), if a worker
   * runs: its heap is its own, not in the main thread's process.memoryUsage().
   */
  get memory(): WorkerMemory | undefined {
    const connection = this.connection;
    return connection && !connection.exited ? connection.memory : undefined;
  }

  /** A full garbage collection in the worker, if one runs (an idle thread does not collect by itself). */
  async collectGarbage(): Promise<void> {
    const connection = this.connection;
    if (connection && !connection.exited) await connection.call({ op: 'collect' }).catch(() => {});
  }

  /**
   * Stops the worker once the run executing now has answered (worker.terminate() in the middle of
   * onnxruntime-node's native run aborts the whole process): calls queued behind it reject with
   * ENGINE_EXITED, as they do when the worker dies of an error, and the next session opens a new one.
   */
  async terminate(): Promise<void> {
    const connection = this.connection;
    if (!connection || connection.exited) return;
    const exited = new Promise((resolve) => connection.worker.once('exit', resolve));
    void connection.call({ op: 'exit' }).catch(() => {});
    await exited;
  }

  private connect(): Connection {
    if (!this.connection || this.connection.exited) {
      const connection: Connection = new Connection(() => {
        if (this.connection === connection) this.connection = undefined;
      });
      this.connection = connection;
    }
    return this.connection;
  }
}

export const workerBackend = new WorkerBackend();
