// Prometheus metrics through prom-client: one registry per server (tests run several in one
// process), the process and Node.js runtime metrics (CPU, memory, event-loop lag, GC) included.
// Capabilities register their counters, gauges and histograms here with the small API below, and
// GET /metrics is for the admin and service roles or the bearer token METRICS_TOKEN only.
import { timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import client from 'prom-client';
import type { AppDeps, AppEnv } from './context';
import { ApiError } from './errors';

type Labels = Record<string, string>;

interface Metric {
  readonly name: string;
  attach(registry: client.Registry): void;
}

/**
 * A metric's label names are given, or else those of its first use (every caller uses one fixed
 * set), when the prom-client metric is made. One with given label names is exposed from the start.
 */
abstract class LazyMetric<M extends client.Metric<string>> implements Metric {
  private registry?: client.Registry;
  private metric?: M;
  constructor(readonly name: string, readonly help: string, private labelNames?: string[]) {}

  attach(registry: client.Registry): void {
    this.registry = registry;
    if (this.labelNames && !this.metric) this.metric = this.make({ name: this.name, help: this.help, labelNames: this.labelNames, registers: [registry] });
  }

  protected abstract make(config: { name: string; help: string; labelNames: string[]; registers: client.Registry[] }): M;

  protected get(labels: Labels): M {
    const names = Object.keys(labels);
    if (!this.metric) {
      this.labelNames = [...names].sort();
      this.metric = this.make({ name: this.name, help: this.help, labelNames: this.labelNames, registers: this.registry ? [this.registry] : [] });
    } else if (names.some((n) => !this.labelNames!.includes(n))) {
      throw new Error(`metric ${this.name}: labels ${names.join(', ')} differ from its labels ${this.labelNames!.join(', ')}`);
    }
    return this.metric;
  }
}

/** A counter, or a gauge when type is 'gauge' (then `set` is what it is for). */
export class Counter extends LazyMetric<client.Counter<string> | client.Gauge<string>> {
  constructor(name: string, help: string, readonly type: 'counter' | 'gauge' = 'counter', labelNames?: string[]) {
    super(name, help, labelNames);
  }

  protected make(config: { name: string; help: string; labelNames: string[]; registers: client.Registry[] }) {
    return this.type === 'gauge' ? new client.Gauge(config) : new client.Counter(config);
  }

  inc(labels: Labels = {}, by = 1): void {
    this.get(labels).inc(labels, by);
  }

  set(labels: Labels, value: number): void {
    const metric = this.get(labels);
    if (metric instanceof client.Gauge) metric.set(labels, value);
    else throw new Error(`metric ${this.name} is a counter: it only goes up (inc)`);
  }
}

export class Histogram extends LazyMetric<client.Histogram<string>> {
  constructor(name: string, help: string, readonly buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], labelNames?: string[]) {
    super(name, help, labelNames);
  }

  protected make(config: { name: string; help: string; labelNames: string[]; registers: client.Registry[] }) {
    return new client.Histogram({ ...config, buckets: this.buckets });
  }

  observe(labels: Labels, value: number): void {
    this.get(labels).observe(labels, value);
  }
}

export interface MetricsOptions {
  /** A bearer token that may read /metrics (METRICS_TOKEN), besides the admin and service users. */
  token?: string;
}

export class MetricsRegistry {
  readonly registry = new client.Registry();
  private readonly byName = new Map<string, Metric>();
  readonly httpRequests = this.register(new Counter('powerdesk_http_requests_total', 'HTTP requests by method, route and status', 'counter', ['method', 'route', 'status']));
  readonly httpDuration = this.register(new Histogram('powerdesk_http_request_duration_seconds', 'HTTP request duration by method and route', undefined, ['method', 'route']));
  readonly tradesIngested = this.register(new Counter('powerdesk_trades_ingested_total', 'Trades offered for ingestion by source and outcome (stored, duplicate, conflict, invalid)', 'counter', ['source', 'outcome']));

  constructor(readonly options: MetricsOptions = {}) {
    client.collectDefaultMetrics({ register: this.registry });
  }

  /** Registers a metric; a second one of the same name is the first (one series per name). */
  register<T extends Metric>(metric: T): T {
    const existing = this.byName.get(metric.name);
    if (existing) return existing as T;
    this.byName.set(metric.name, metric);
    metric.attach(this.registry);
    return metric;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** GET /metrics: the bearer token, or an admin or service user (Basic or session cookie). */
export async function metricsHandler(c: Context<AppEnv>, deps: AppDeps, address: string): Promise<Response> {
  const authorization = c.req.header('authorization');
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization ?? '')?.[1]?.trim();
  const token = deps.metrics.options.token;
  const challenge = { 'WWW-Authenticate': 'Bearer realm="powerdesk metrics", Basic realm="powerdesk", charset="UTF-8"' };
  if (bearer !== undefined) {
    if (!token || !sameToken(bearer, token)) throw new ApiError(401, token ? 'authorization: wrong bearer token for /metrics' : 'authorization: no METRICS_TOKEN is set on this server; use an admin or service user', challenge);
  } else {
    const result = await deps.auth.authenticate({ authorization, cookie: c.req.header('cookie') }, address);
    if (!result.ok) {
      if (result.status === 401) throw new ApiError(401, `${result.message}; /metrics needs the bearer token METRICS_TOKEN or an admin or service user`, challenge);
      throw new ApiError(result.status, result.message, { 'Retry-After': String(result.retryAfterSeconds ?? 60) });
    }
    if (result.user.role !== 'admin' && result.user.role !== 'service') throw new ApiError(403, `role ${result.user.role} may not read /metrics: admin or service only`);
  }
  return c.text(await deps.metrics.render(), 200, { 'Content-Type': deps.metrics.contentType });
}
