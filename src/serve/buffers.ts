/**
 * The server's large buffers, reused: request bodies read in place (http.ts readBody) and the
 * batches joined from them (models.ts runBatch). Why: with the low mmap threshold the server runs
 * under (allocator.ts) every fresh buffer of this size is new pages from the kernel, and touching
 * them the first time costs a fault per 4 KiB page; profiled under 32 clients on this project's
 * machine (a VM), filling fresh 600 KB bodies and 9.6 MB batches took about 1 ms per request
 * of the main thread, more than the rest of its work on a request together. A reused buffer is
 * resident already. Only buffers taken from the pool go back into it (a buffer Node shares
 * between small Buffers must never be handed out twice), each once; the pool holds at most
 * `maxBytes`, and the server empties it when it goes idle, so RSS comes back with the rest.
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Every buffer this pool made, in use or free: only these come back. */
  private readonly issued = new WeakSet<ArrayBuffer>();
  private freeBytes = 0;

  constructor(readonly maxBytes: number) {}

  /** A buffer of exactly `bytes` bytes, reused if one is free; its contents are left over. */
  take(bytes: number): ArrayBuffer {
    const buffer = this.free.get(bytes)?.pop();
    if (buffer) {
      this.freeBytes -= bytes;
      return buffer;
    }
    const fresh = new ArrayBuffer(bytes);
    this.issued.add(fresh);
    return fresh;
  }

  /**
   * Gives back a buffer nothing reads any more. Ignored for a buffer the pool did not make, one
   * given back already, one moved to another thread (detached, 0 bytes), and past `maxBytes`.
   */
  give(buffer: ArrayBufferLike): void {
    if (!(buffer instanceof ArrayBuffer) || !this.issued.has(buffer)) return;
    const bytes = buffer.byteLength;
    const list = this.free.get(bytes) ?? [];
    if (bytes === 0 || list.includes(buffer) || this.freeBytes + bytes > this.maxBytes) return;
    list.push(buffer);
    this.free.set(bytes, list);
    this.freeBytes += bytes;
  }

  /**
   * Gives back a buffer of this pool that went to another thread and came back: the same memory
   * under a new ArrayBuffer object (a transfer makes one), so give's check cannot know it.
   */
  adopt(buffer: ArrayBuffer): void {
    this.issued.add(buffer);
    this.give(buffer);
  }

  /** Bytes held free now. */
  get held(): number {
    return this.freeBytes;
  }

  /** Lets every free buffer go (to the collector). */
  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }
}
