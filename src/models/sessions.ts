/**
 * The ONNX Runtime sessions of one loaded model, one per input size, created on first use, and
 * what `release()` means for calls in flight: every call that has not returned when the model is
 * released rejects with RELEASED (a run already inside ONNX Runtime is let finish first, so the
 * session is never freed under it), and every later call fails the same way.
 */
import { SwiftFormerError } from '../core/errors.js';
import type { FloatTensor, Tensor } from '../core/tensor.js';
import { getBackend, type Session, type SessionOptions } from '../runtime/runtime.js';

export class Sessions {
  private readonly sessions = new Map<string, Promise<Session>>();
  /** How each session's model bytes are built, to open it again after trim(). */
  private readonly builds = new Map<string, () => Uint8Array>();
  private readonly inflight = new Set<Promise<unknown>>();
  private released = false;

  constructor(private readonly what: string, private readonly backend?: string, private readonly options?: SessionOptions) {}

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
    const job = this.session(key, build).then(call);
    this.inflight.add(job);
    try {
      const out = await job;
      this.checkOpen();
      return out;
    } finally {
      this.inflight.delete(job);
    }
  }

  /** Creates the session for `key` now (a model that cannot be loaded fails here, not at its first run). */
  async open(key: string, build: () => Uint8Array): Promise<void> {
    this.checkOpen();
    await this.session(key, build);
  }

  checkOpen(): void {
    if (this.released) throw new SwiftFormerError('RELEASED', `${this.what} was released: load it again to run it`);
  }

  get isReleased(): boolean {
    return this.released;
  }

  /**
   * Frees every session, with the memory ONNX Runtime's CPU arena holds (it only grows: after a
   * batch of 16 it keeps that batch's buffers), and opens them again, empty. Calls in flight finish
   * on the old sessions first; calls that arrive meanwhile wait for the new ones.
   */
  async trim(): Promise<void> {
    if (this.released) return;
    const old = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled([...this.inflight]);
    await Promise.all(old.map(async (s) => (await s.catch(() => undefined))?.release()));
    if (this.released) return;
    await Promise.allSettled([...this.builds].map(([key, build]) => this.session(key, build)));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.allSettled([...this.inflight]);
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (s) => (await s.catch(() => undefined))?.release()));
  }

  private session(key: string, build: () => Uint8Array): Promise<Session> {
    let session = this.sessions.get(key);
    if (!session) {
      this.builds.set(key, build);
      session = Promise.resolve().then(() => getBackend(this.backend).createSession(build(), this.options));
      // A failed creation is not cached: the next call tries again (and reports its own error).
      const created = session;
      created.catch(() => {
        if (this.sessions.get(key) === created) this.sessions.delete(key);
      });
      this.sessions.set(key, session);
    }
    return session;
  }
}
