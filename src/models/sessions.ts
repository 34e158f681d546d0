/**
 * The ONNX Runtime sessions of one loaded model, one per input size, created on first use, and
 * what `release()` means for calls in flight: every call that has not returned when the model is
 * released rejects with RELEASED (a run already inside ONNX Runtime is let finish first, so the
 * session is never freed under it), and every later call fails the same way.
 *
 * At most `maxSessions` are open: opening one more closes the least recently used (after its runs
 * in flight), so a model fed images of ever new sizes does not hold a session for each. A session
 * whose engine went away (its worker thread exited) is opened again by the next call.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { FloatTensor, Tensor } from '../core/tensor.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';

export interface SessionLimits {
  /** Most sessions open at once (default: no limit). */
  maxSessions?: number;
}

interface Entry {
  session: Promise<Session>;
  /** How its model bytes are built, to open it again after trim(). */
  build: () => Uint8Array;
  /** Calls on this session that have not returned. */
  running: Set<Promise<unknown>>;
  /** It ran (or was opened by open()) since the last trim: trim() opens it again. */
  used: boolean;
  /** The session, once created. */
  ready?: Session;
}

export class Sessions {
  /** In order of last use, the least recent first. */
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly maxSessions: number;
  private released = false;

  constructor(private readonly what: string, private readonly backend?: string, private readonly options?: SessionOptions, limits: SessionLimits = {}) {
    this.maxSessions = limits.maxSessions ?? Infinity;
    if (!(this.maxSessions >= 1)) throw new SwiftFormerError('BAD_ARGUMENT', `maxSessions must be at least 1, got ${limits.maxSessions}`);
  }

  /** Runs the session for `key`, building its ONNX bytes with `build` the first time. */
  run(key: string, build: () => Uint8Array, feeds: Record<string, FloatTensor>): Promise<Record<string, FloatTensor>> {
    return this.track(key, build, (s) => s.run(feeds));
  }

  /** `run` with int64 tensors among the feeds and outputs (a detector's labels and indices). */
  runTyped(key: string, build: () => Uint8Array, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    return this.track(key, build, (s) => s.runTyped(feeds));
  }

  private async track<T>(key: string, build: () => Uint8Array, call: (s: Session) => Promise<T>): Promise<T> {
    this.checkOpen();
    const entry = this.entry(key, build);
    entry.used = true;
    const job = entry.session.then(call);
    entry.running.add(job);
    this.inflight.add(job);
    try {
      const out = await job;
      this.checkOpen();
      return out;
    } finally {
      entry.running.delete(job);
      this.inflight.delete(job);
    }
  }

  /** Creates the session for `key` now (a model that cannot be loaded fails here, not at its first run). */
  async open(key: string, build: () => Uint8Array): Promise<void> {
    this.checkOpen();
    const entry = this.entry(key, build);
    entry.used = true;
    await entry.session;
  }

  checkOpen(): void {
    if (this.released) throw new SwiftFormerError('RELEASED', `${this.what} was released: load it again to run it`);
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** The keys of the sessions open (or opening), the least recently used first. */
  get keys(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Frees every session, with the memory ONNX Runtime's CPU arena holds (it only grows: after a
   * batch of 16 it keeps that batch's buffers), and opens again, empty, those that ran since the
   * last trim; the others open on their next call. Calls in flight finish on the old sessions
   * first; calls that arrive meanwhile wait for the new ones.
   */
  async trim(): Promise<void> {
    if (this.released) return;
    const old = [...this.entries];
    this.entries.clear();
    await Promise.allSettled([...this.inflight]);
    await Promise.all(old.map(([, e]) => closeSession(e)));
    if (this.released) return;
    const reopened = old.filter(([, e]) => e.used).map(([key, e]) => this.entry(key, e.build).session);
    await Promise.allSettled(reopened);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.allSettled([...this.inflight]);
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(entries.map(closeSession));
  }

  /** The entry for `key`, now the most recently used; created (closing the least recent past maxSessions) when missing or gone. */
  private entry(key: string, build: () => Uint8Array): Entry {
    const existing = this.entries.get(key);
    this.entries.delete(key);
    if (existing && !existing.ready?.gone) {
      this.entries.set(key, existing);
      return existing;
    }
    const entry: Entry = { session: Promise.resolve().then(() => getBackend(this.backend).createSession(build(), this.options)), build, running: new Set(), used: false };
    entry.session.then(
      (s) => void (entry.ready = s),
      // A failed creation is not kept: the next call tries again (and reports its own error).
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    this.entries.set(key, entry);
    for (const [oldKey, old] of this.entries) {
      if (this.entries.size <= this.maxSessions) break;
      this.entries.delete(oldKey);
      void Promise.allSettled([...old.running]).then(() => closeSession(old)).catch(() => {});
    }
    return entry;
  }
}

/** Releases an entry's session once it exists (a failed creation has nothing to release). */
async function closeSession(entry: Entry): Promise<void> {
  await (await entry.session.catch(() => undefined))?.release();
}
