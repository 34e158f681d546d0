/**
 * A one-line progress bar on stderr: redrawn in place when stderr is a terminal, otherwise silent
 * until `done`, which always prints one final line (so logs stay readable).
 */
import { isRemoteSource, resolveWeights, type DownloadProgress } from '../node/hub.js';

export class ProgressBar {
  private last = 0;
  private drawn = false;
  private readonly start = Date.now();

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly live: boolean = Boolean(stream.isTTY),
  ) {}

  /** `current` of `total` units; `text` is shown after the bar. Redraws at most every 100 ms. */
  update(current: number, total: number | undefined, text = ''): void {
    if (!this.live) return;
    const now = Date.now();
    if (now - this.last < 100 && current !== total) return;
    this.last = now;
    const width = 30;
    const fraction = total ? Math.min(1, current / total) : 0;
    const bar = total ? `[${'#'.repeat(Math.round(fraction * width)).padEnd(width, '.')}] ${(fraction * 100).toFixed(0).padStart(3)}%` : '';
    const line = `${this.label} ${bar} ${text}`.trimEnd();
    const columns = this.stream.columns || 100;
    this.stream.write(`\r${line.slice(0, columns - 1)}\x1b[K`);
    this.drawn = true;
  }

  /** Ends the bar with a final line. */
  done(text: string): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(`${text}\n`);
  }

  /** Removes the bar without a final line (e.g. before an error message). */
  clear(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }

  /** Seconds since the bar was made. */
  elapsed(): number {
    return (Date.now() - this.start) / 1000;
  }
}

export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** A download progress callback drawing one bar per URL, and a final "downloaded" line. */
export function downloadProgress(stream: NodeJS.WriteStream = process.stderr): (p: DownloadProgress) => void {
  const bars = new Map<string, ProgressBar>();
  return (p) => {
    let bar = bars.get(p.url);
    if (!bar) {
      bar = new ProgressBar(`downloading ${p.url.split('/').at(-1)}`, stream);
      bars.set(p.url, bar);
    }
    if (p.done) {
      const resumed = p.resumedFrom > 0 ? `, resumed at ${formatBytes(p.resumedFrom)}` : '';
      bar.done(`downloaded ${p.url} (${formatBytes(p.received)}${resumed}, ${bar.elapsed().toFixed(1)} s)`);
      bars.delete(p.url);
      return;
    }
    const rate = (p.received - p.resumedFrom) / Math.max(bar.elapsed(), 1e-3);
    bar.update(p.received, p.total, `${formatBytes(p.received)}${p.total !== undefined ? ` / ${formatBytes(p.total)}` : ''}  ${formatBytes(rate)}/s`);
  };
}

/**
 * A weights source as a local file: remote ones (https://, hf:) downloaded into the cache with a
 * progress bar (cut short cleanly on failure), with the labels their repository keeps.
 */
export async function localWeights(weights: string): Promise<{ path: string; labels?: string[] }> {
  if (!isRemoteSource(weights)) return { path: weights };
  try {
    const resolved = await resolveWeights(weights, { onProgress: downloadProgress() });
    return { path: resolved.path, ...(resolved.labels ? { labels: resolved.labels } : {}) };
  } catch (err) {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K'); // end a progress bar cut short
    throw err;
  }
}
