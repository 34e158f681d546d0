/**
 * Dynamic batching for one model. Requests with the same key (the same input shapes after the
 * batch axis, so images of different sizes are batched per size) that arrive within `maxDelayMs`
 * of the oldest waiting one run as one batch of at most `maxBatch` rows; one batch runs at a time,
 * and requests that arrive meanwhile gather into the next. The queue is bounded: past `maxQueue`
 * waiting requests a new one is refused at once (503 with Retry-After), a request that waits
 * longer than `timeoutMs` is answered 503, and one whose client went away leaves the queue.
 */
import { ClientGone, HttpError } from './http.js';

export interface BatchOptions {
  /** Shown in errors. */
  model: string;
  /** Most rows in one run (1: no batching). */
  maxBatch: number;
  /** false: one request per run, whatever its rows. */
  combine: boolean;
  /** How long the oldest waiting request may wait for others to join it. */
  maxDelayMs: number;
  /** Waiting requests (all keys) before new ones are refused. */
  maxQueue: number;
  /** Longest wait in the queue. */
  timeoutMs: number;
}

interface Waiting<I, O> {
  key: string;
  rows: number;
  input: I;
  enqueued: number;
  resolve: (out: O) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/** `run` gets the inputs of one batch (all of one key) and returns one output per input, in order. */
export type BatchRunner<I, O> = (key: string, inputs: I[]) => Promise<O[]>;

export class Batcher<I, O> {
  private readonly waiting: Waiting<I, O>[] = [];
  private runningRows = 0;
  private busy = false;
  private timer: NodeJS.Timeout | undefined;
  /** Smoothed duration of a batch, for Retry-After. */
  private batchMs = 0;
  /** Set when shutting down: what waits runs now instead of waiting for company. */
  private flushing = false;

  constructor(
    private readonly run: BatchRunner<I, O>,
    readonly options: BatchOptions,
    private readonly onBatch: (rows: number) => void = () => {},
  ) {}

  /** Requests waiting for a batch. */
  get depth(): number {
    return this.waiting.length;
  }

  /** Rows of the batch running now. */
  get running(): number {
    return this.runningRows;
  }

  /** Queues `rows` rows under `key`; settles with this input's share of the batch's output. */
  submit(key: string, rows: number, input: I, signal?: AbortSignal): Promise<O> {
    if (signal?.aborted) return Promise.reject(new ClientGone());
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    const { timeoutMs, model } = this.options;
    return new Promise<O>((resolve, reject) => {
      const item: Waiting<I, O> = {
        key, rows, input, enqueued: Date.now(), resolve, reject, signal,
        timer: setTimeout(() => {
          if (this.remove(item)) reject(new HttpError(503, `request waited ${timeoutMs} ms in the queue of model '${model}' without running`, { 'Retry-After': this.retryAfter() }));
        }, timeoutMs),
        onAbort: () => {
          if (this.remove(item)) reject(new ClientGone());
        },
      };
      signal?.addEventListener('abort', item.onAbort, { once: true });
      this.waiting.push(item);
      this.schedule();
    });
  }

  /** The 503 a new request gets while the queue is full, else undefined. */
  refusal(): HttpError | undefined {
    if (this.waiting.length < this.options.maxQueue) return undefined;
    return new HttpError(503, `model '${this.options.model}' has ${this.waiting.length} requests waiting, its queue limit: try again later`, { 'Retry-After': this.retryAfter() });
  }

  /** Runs what waits without waiting out maxDelayMs (for shutdown), and everything after it. */
  flush(): void {
    this.flushing = true;
    this.schedule();
  }

  private retryAfter(): string {
    const batches = this.waiting.length / Math.max(1, this.options.maxBatch) + 1;
    return String(Math.max(1, Math.ceil((batches * this.batchMs) / 1000)));
  }

  private remove(item: Waiting<I, O>): boolean {
    const i = this.waiting.indexOf(item);
    if (i < 0) return false;
    this.waiting.splice(i, 1);
    clearTimeout(item.timer);
    item.signal?.removeEventListener('abort', item.onAbort);
    if (this.waiting.length === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return true;
  }

  private schedule(): void {
    if (this.busy || this.waiting.length === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const { maxBatch, maxDelayMs, combine } = this.options;
    const oldest = this.waiting[0]!;
    const group: Waiting<I, O>[] = [];
    let rows = 0;
    let keyRows = 0;
    for (const w of this.waiting) {
      if (w.key !== oldest.key) continue;
      keyRows += w.rows;
      if (group.length === 0 || (combine && rows + w.rows <= maxBatch)) {
        group.push(w);
        rows += w.rows;
      }
    }
    // Full: nothing more of this key fits, or something of this key already had to be left out.
    const full = !combine || rows >= maxBatch || keyRows > rows;
    const wait = oldest.enqueued + maxDelayMs - Date.now();
    if (!full && wait > 0 && !this.flushing) {
      this.timer = setTimeout(() => this.schedule(), wait);
      return;
    }
    this.dispatch(oldest.key, group, rows);
  }

  private dispatch(key: string, group: Waiting<I, O>[], rows: number): void {
    this.busy = true;
    for (const w of group) this.remove(w);
    this.runningRows = rows;
    this.onBatch(rows);
    const started = performance.now();
    Promise.resolve()
      .then(() => this.run(key, group.map((w) => w.input)))
      .then(
        (outs) => group.forEach((w, i) => w.resolve(outs[i]!)),
        (err: Error) => group.forEach((w) => w.reject(err)),
      )
      .finally(() => {
        const ms = performance.now() - started;
        this.batchMs = this.batchMs === 0 ? ms : 0.8 * this.batchMs + 0.2 * ms;
        this.busy = false;
        this.runningRows = 0;
        this.schedule();
      });
  }
}
