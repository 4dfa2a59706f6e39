// The reference-price poller: asks the market-data provider for the hours that matter (today's,
// and those with trades from yesterday to tomorrow), most urgent first (the current and next
// hour, then hours with trades), within the provider's limits, and stores each new observation.
// 404, null or no value means "undefined": nothing is stored, never 0. Errors retry with backoff.
import { z } from 'zod';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import type { Db } from '../db';
import { sql } from '../db';
import { Counter, type MetricsRegistry } from '../http/metrics';
import { createLogger, type Logger } from '../log';
import { dayBounds, hoursOfDay, localDay, pad, type HourSlot } from '../time/market-time';
import { numberToDecimal } from '../trades/decimal';
import { channels } from '../live/events';
import { SlidingWindowLimiter } from './rate-limit';

export interface PollerOptions {
  db: Db;
  /** Base URL of the provider, e.g. https://market-data-provider.energy/v1 */
  url: string;
  tz: string;
  clock?: Clock;
  log?: Logger;
  metrics?: MetricsRegistry;
  perMinute?: number;
  perHour?: number;
  /** Ask again for a value this often (the provider updates about every 10 minutes). */
  refreshMs?: number;
  timeoutMs?: number;
  retryMinMs?: number;
  /** How often the scheduler looks for due hours. */
  tickMs?: number;
  /** Requests at once. */
  concurrency?: number;
}

export type PollOutcome = 'stored' | 'unchanged' | 'undefined' | 'error';

export interface Target {
  key: string;
  day: string;
  /** As sent to the provider: "08-09"; on the 25-hour day the repeated hour is "02-03A"/"02-03B". */
  period: string;
  start: Date;
  end: Date;
  hasTrades: boolean;
  nextDue: number;
  failures: number;
}

const ProviderAnswer = z.object({
  delivery_day: z.string().optional(),
  delivery_hour: z.string().optional(),
  value: z.number({ error: 'must be a number or null' }).nullable().optional(),
  unit: z.string().nullable().optional(),
  last_update: z.string().nullable().optional(),
});

/** The provider's hour string for a slot of the local day. */
export function providerPeriod(slot: HourSlot, slots: HourSlot[]): string {
  const repeated = slots.filter((s) => s.hour === slot.hour).length > 1;
  return `${pad(slot.hour)}-${pad((slot.hour + 1) % 24)}${repeated ? (slot.occurrence === 1 ? 'A' : 'B') : ''}`;
}

const metricsByRegistry = new WeakMap<MetricsRegistry, Counter>();

export class ReferencePoller {
  readonly targets = new Map<string, Target>();
  private readonly db: Db;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly limiter: SlidingWindowLimiter;
  private readonly o: Required<Omit<PollerOptions, 'db' | 'clock' | 'log' | 'metrics'>>;
  private readonly requests?: Counter;
  private timer?: NodeJS.Timeout;
  private inFlight = new Set<Promise<unknown>>();
  private aborts = new Set<AbortController>();
  private targetsAt = -Infinity;
  private ticking?: Promise<void>;
  private closed = false;

  constructor(options: PollerOptions) {
    this.db = options.db;
    this.clock = options.clock ?? systemClock;
    this.log = (options.log ?? createLogger('silent')).child({ part: 'market-data' });
    this.o = {
      url: options.url.replace(/\/+$/, ''), tz: options.tz,
      perMinute: options.perMinute ?? 50, perHour: options.perHour ?? 1000,
      refreshMs: options.refreshMs ?? 600_000, timeoutMs: options.timeoutMs ?? 5000,
      retryMinMs: options.retryMinMs ?? 5000, tickMs: options.tickMs ?? 1000, concurrency: options.concurrency ?? 4,
    };
    this.limiter = new SlidingWindowLimiter([{ windowMs: 60_000, max: this.o.perMinute }, { windowMs: 3_600_000, max: this.o.perHour }]);
    if (options.metrics) {
      let c = metricsByRegistry.get(options.metrics);
      if (!c) {
        c = options.metrics.register(new Counter('powerdesk_reference_price_requests_total', 'Requests to the market-data provider by outcome (stored, unchanged, undefined, error)'));
        metricsByRegistry.set(options.metrics, c);
      }
      this.requests = c;
    }
  }

  start(): void {
    const run = () => {
      if (this.ticking) return;
      this.ticking = this.tick()
        .catch((error: Error) => this.log.error('reference price scheduling failed', { error }))
        .finally(() => { this.ticking = undefined; });
    };
    this.timer = setInterval(run, this.o.tickMs);
    this.timer.unref?.();
    run();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const a of this.aborts) a.abort();
    await this.ticking;
    await Promise.allSettled([...this.inFlight]);
  }

  /** Requests sent in the last minute / hour (for tests and logs). */
  used(): { minute: number; hour: number } {
    const now = this.clock.now().getTime();
    return { minute: this.limiter.used(now, 60_000), hour: this.limiter.used(now, 3_600_000) };
  }

  /** One scheduling round: refresh the list of hours, then start due polls while the limits allow. */
  async tick(): Promise<void> {
    const now = this.clock.now().getTime();
    if (now - this.targetsAt >= 60_000 || this.targets.size === 0) {
      try {
        await this.refreshTargets();
        this.targetsAt = now;
      } catch (error) {
        this.log.warn('could not list the hours to poll', { error: (error as Error).message });
      }
    }
    const due = [...this.targets.values()].filter((t) => t.nextDue <= now).sort((a, b) => this.priority(a, now) - this.priority(b, now) || a.nextDue - b.nextDue);
    for (const target of due) {
      if (this.closed || this.inFlight.size >= this.o.concurrency) break;
      if (!this.limiter.tryTake(now)) break;
      target.nextDue = Infinity; // not again until this poll decides
      const p = this.poll(target).finally(() => { this.inFlight.delete(p); });
      this.inFlight.add(p);
    }
  }

  /** Waits for the polls started so far (tests). */
  async settled(): Promise<void> {
    await this.ticking;
    await Promise.allSettled([...this.inFlight]);
  }

  private priority(t: Target, now: number): number {
    const hour = 3_600_000;
    if (t.start.getTime() <= now + hour && t.end.getTime() > now) return 0; // current and next hour
    if (t.hasTrades && t.end.getTime() > now - hour) return 1;
    if (t.hasTrades) return 2;
    return t.end.getTime() > now ? 3 : 4;
  }

  async refreshTargets(): Promise<void> {
    const now = this.clock.now();
    const today = localDay(now, this.o.tz);
    const yesterday = localDay(new Date(dayBounds(today, this.o.tz).start.getTime() - 1), this.o.tz);
    const tomorrow = localDay(dayBounds(today, this.o.tz).end, this.o.tz);
    const from = dayBounds(yesterday, this.o.tz).start;
    const to = dayBounds(tomorrow, this.o.tz).end;
    const traded = await this.db.query<{ delivery_day: string; delivery_start: Date }>(sql`
      SELECT DISTINCT delivery_day, delivery_start FROM trades WHERE delivery_start >= ${from} AND delivery_start < ${to}`);
    const wanted = new Map<string, { day: string; slot: HourSlot; slots: HourSlot[]; hasTrades: boolean }>();
    const add = (day: string, slot: HourSlot, slots: HourSlot[], hasTrades: boolean) => {
      const key = slot.start.toISOString();
      const prev = wanted.get(key);
      wanted.set(key, { day, slot, slots, hasTrades: hasTrades || (prev?.hasTrades ?? false) });
    };
    const todaySlots = hoursOfDay(today, this.o.tz);
    for (const slot of todaySlots) add(today, slot, todaySlots, false);
    for (const t of traded) {
      const slots = hoursOfDay(t.delivery_day, this.o.tz);
      const slot = slots.find((s) => s.start <= t.delivery_start && t.delivery_start < s.end); // quarter hours count for their hour
      if (slot) add(t.delivery_day, slot, slots, true);
    }
    for (const key of [...this.targets.keys()]) if (!wanted.has(key)) this.targets.delete(key);
    for (const [key, w] of wanted) {
      const existing = this.targets.get(key);
      if (existing) existing.hasTrades = w.hasTrades;
      else this.targets.set(key, { key, day: w.day, period: providerPeriod(w.slot, w.slots), start: w.slot.start, end: w.slot.end, hasTrades: w.hasTrades, nextDue: now.getTime(), failures: 0 });
    }
  }

  /** Asks for one hour now (ignoring the schedule, not the limits' bookkeeping) and stores a new value. */
  async poll(target: Target): Promise<PollOutcome> {
    let outcome: PollOutcome;
    try {
      outcome = await this.fetchAndStore(target);
      target.failures = 0;
      const settled = target.end.getTime() < this.clock.now().getTime() - 3_600_000; // long past gate closure: final
      target.nextDue = this.clock.now().getTime() + (settled && outcome !== 'undefined' ? 6 * this.o.refreshMs : this.o.refreshMs);
    } catch (error) {
      outcome = 'error';
      target.failures += 1;
      const wait = Math.min(this.o.refreshMs, this.o.retryMinMs * 2 ** Math.min(target.failures - 1, 16));
      target.nextDue = this.clock.now().getTime() + Math.round(wait * (0.75 + Math.random() * 0.5));
      if (!this.closed) this.log.warn('reference price request failed; will retry', { day: target.day, hour: target.period, attempt: target.failures, retry_in_ms: wait, error: (error as Error).message });
    }
    this.requests?.inc({ outcome });
    return outcome;
  }

  private async fetchAndStore(target: Target): Promise<Exclude<PollOutcome, 'error'>> {
    const url = `${this.o.url}/reference-price?delivery_day=${encodeURIComponent(target.day)}&delivery_hour=${encodeURIComponent(target.period)}`;
    const abort = new AbortController();
    this.aborts.add(abort);
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
    let body: unknown;
    try {
      const res = await fetch(url, { signal: abort.signal, headers: { accept: 'application/json' } });
      if (res.status === 404) { await res.body?.cancel(); return 'undefined'; }
      if (!res.ok) { await res.body?.cancel(); throw new Error(`HTTP ${res.status} from ${url}`); }
      const text = await res.text();
      try { body = JSON.parse(text); } catch { throw new Error(`not JSON from ${url}: ${text.slice(0, 100)}`); }
    } catch (error) {
      if (abort.signal.aborted) throw abort.signal.reason instanceof Error ? abort.signal.reason : new Error('request aborted');
      throw error;
    } finally {
      clearTimeout(timer);
      this.aborts.delete(abort);
    }
    const parsed = ProviderAnswer.safeParse(body);
    if (!parsed.success) throw new Error(`unexpected answer from ${url}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const answer = parsed.data;
    if (answer.value === null || answer.value === undefined) return 'undefined';
    if (answer.delivery_day !== undefined && answer.delivery_day !== target.day) throw new Error(`answer for delivery_day ${answer.delivery_day}, asked for ${target.day}`);
    const value = numberToDecimal(answer.value);
    if (value === undefined) throw new Error(`value ${answer.value} is not a plain decimal number`);
    const lastUpdate = answer.last_update == null ? NaN : Date.parse(answer.last_update);
    if (Number.isNaN(lastUpdate)) throw new Error(`last_update ${JSON.stringify(answer.last_update)} is not an ISO-8601 time`);
    const inserted = await this.db.query(sql`
      INSERT INTO reference_prices (delivery_start, delivery_end, delivery_day, value, unit, last_update, observed_at)
      VALUES (${target.start}, ${target.end}, ${target.day}, ${value}, ${answer.unit ?? 'EUR/MWh'}, ${new Date(lastUpdate)}, ${this.clock.now()})
      ON CONFLICT (delivery_start, last_update) DO NOTHING RETURNING 1 AS inserted`);
    if (!inserted.length) return 'unchanged';
    // Cached reports of that day carry the old reference price: every process forgets them.
    await this.db.notify(channels.referencePricesStored, JSON.stringify([target.day]));
    return 'stored';
  }
}
