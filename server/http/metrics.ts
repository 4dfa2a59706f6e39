// Prometheus text exposition for counters, gauges and histograms: no dependency needed.
type Labels = Record<string, string>;

const key = (labels: Labels) => JSON.stringify(Object.entries(labels).sort());
const fmt = (labels: Labels) => {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

interface Metric { render(): string[] }

export class Counter implements Metric {
  private values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' = 'counter') {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    const entry = this.values.get(k) ?? { labels, value: 0 };
    entry.value += by;
    this.values.set(k, entry);
  }
  set(labels: Labels, value: number): void {
    this.values.set(key(labels), { labels, value });
  }
  render(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...[...this.values.values()].map((e) => `${this.name}${fmt(e.labels)} ${e.value}`)];
  }
}

export class Histogram implements Metric {
  private series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]) {}
  observe(labels: Labels, value: number): void {
    const k = key(labels);
    const s = this.series.get(k) ?? { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
    this.buckets.forEach((b, i) => { if (value <= b) s.counts[i]! += 1; });
    s.sum += value;
    s.count += 1;
    this.series.set(k, s);
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${fmt({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${fmt({ ...s.labels, le: '+Inf' })} ${s.count}`, `${this.name}_sum${fmt(s.labels)} ${s.sum}`, `${this.name}_count${fmt(s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class MetricsRegistry {
  private metrics: Metric[] = [];
  readonly httpRequests = this.register(new Counter('powerdesk_http_requests_total', 'HTTP requests by method, route and status'));
  readonly httpDuration = this.register(new Histogram('powerdesk_http_request_duration_seconds', 'HTTP request duration by method and route'));
  readonly tradesIngested = this.register(new Counter('powerdesk_trades_ingested_total', 'Trades offered for ingestion by source and outcome (stored, duplicate, conflict, invalid)'));

  register<T extends Metric>(metric: T): T {
    this.metrics.push(metric);
    return metric;
  }

  render(): string {
    return `${this.metrics.flatMap((m) => m.render()).join('\n')}\n`;
  }
}
