/**
 * Prometheus metrics in the text exposition format (version 0.0.4): counters, gauges read at
 * scrape time, and cumulative histograms, each with labels. Small enough to need no client
 * library; label values are escaped as the format requires.
 */

type Labels = Record<string, string>;

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function labelText(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels);
  if (extra) pairs.push(extra);
  return pairs.length === 0 ? '' : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

const number = (v: number) => (v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : Number.isNaN(v) ? 'NaN' : String(v));

interface Metric { render(lines: string[]): void }

abstract class Family<T> implements Metric {
  protected readonly series = new Map<string, { labels: Labels; value: T }>();
  constructor(readonly name: string, readonly help: string, readonly type: string) {}

  protected get(labels: Labels, init: () => T): T {
    const key = JSON.stringify(labels);
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels, value: init() }));
    return s.value;
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const { labels, value } of this.series.values()) this.renderSeries(lines, labels, value);
  }

  protected abstract renderSeries(lines: string[], labels: Labels, value: T): void;
}

export class Counter extends Family<{ n: number }> {
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }

  inc(labels: Labels, by = 1): void {
    this.get(labels, () => ({ n: 0 })).n += by;
  }

  protected renderSeries(lines: string[], labels: Labels, value: { n: number }): void {
    lines.push(`${this.name}${labelText(labels)} ${number(value.n)}`);
  }
}

/** A gauge whose values are read when scraped. */
export class Gauge implements Metric {
  constructor(readonly name: string, readonly help: string, private readonly read: () => [Labels, number][]) {}

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`);
    for (const [labels, v] of this.read()) lines.push(`${this.name}${labelText(labels)} ${number(v)}`);
  }
}

interface HistogramState { counts: number[]; sum: number; count: number }

export class Histogram extends Family<HistogramState> {
  constructor(name: string, help: string, readonly buckets: readonly number[]) {
    super(name, help, 'histogram');
  }

  observe(labels: Labels, v: number): void {
    const s = this.get(labels, () => ({ counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    this.buckets.forEach((b, i) => {
      if (v <= b) s.counts[i]!++;
    });
    s.sum += v;
    s.count++;
  }

  protected renderSeries(lines: string[], labels: Labels, s: HistogramState): void {
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${labelText(labels, ['le', number(b)])} ${s.counts[i]}`));
    lines.push(`${this.name}_bucket${labelText(labels, ['le', '+Inf'])} ${s.count}`);
    lines.push(`${this.name}_sum${labelText(labels)} ${number(s.sum)}`, `${this.name}_count${labelText(labels)} ${s.count}`);
  }
}

export const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class Registry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }

  render(): string {
    const lines: string[] = [];
    for (const m of this.metrics) m.render(lines);
    return `${lines.join('\n')}\n`;
  }
}
