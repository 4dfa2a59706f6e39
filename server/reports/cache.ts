// Many readers of one trader-day, one computation. A report is cached per (trader, day) until a
// commit touches that trader-day: the trades_stored NOTIFY every process hears (deals, bulk
// hours, recalls), the writer's own afterWrite before it answers (read-your-writes in this
// process without waiting for the NOTIFY), and a new reference price (reference_prices_stored,
// which changes every trader's rows of that day). Concurrent readers share the computation in
// flight (single flight); one that arrives after an invalidation never joins a computation
// whose query was sent before it, so what it gets includes every commit it could have seen. A
// computation still waiting for its turn stays shared across invalidations (its query will see
// those commits): however fast the commits, a trader-day costs at most one computation running
// and one waiting. Computations run one at a time, so report readers never hold more than one
// query in the database's queue ahead of ingestion (the embedded database has one connection).
//
// Keeping finished reports (and joining a computation already sent) is only right where every
// write is seen at once: one process on its own embedded database (`singleProcess`). Where other
// processes may write (a database server, or a database shared in tests), a write answered there
// may not have been announced here yet, so a reader only ever joins a computation whose query is
// not yet sent: it still shares one computation with every reader that comes while another runs,
// and what it gets includes every write answered before it asked.
import type { Queryable } from '../db';
import type { Db } from '../db';
import { channels, type PnlReport } from '../live/events';
import type { Logger } from '../log';
import { localDay } from '../time/market-time';
import { touchedHours, type TradesStoredEvent } from '../trades/store';
import type { PnlFreshness } from './freshness';
import { pnlReport } from './pnl';

interface Entry {
  promise: Promise<PnlReport>;
  /** Set when its query is sent: from then on a commit makes it stale. */
  started: boolean;
  /** Set once the computation succeeded: a hit. */
  done: boolean;
}

const key = (traderId: string, day: string) => `${traderId}\0${day}`;

export class ReportCache {
  private entries = new Map<string, Entry>();
  private unlisteners: (() => Promise<void>)[] = [];
  /** The one computation allowed at a time, and those waiting for it. */
  private running = false;
  private waiting: (() => void)[] = [];
  /** For tests and the benchmark. */
  readonly stats = { hits: 0, joined: 0, misses: 0, computed: 0, invalidated: 0 };

  constructor(
    private db: Db | Queryable,
    private tz: string,
    private options: { freshness?: PnlFreshness; log?: Logger; maxEntries?: number; singleProcess?: boolean } = {},
  ) {
    options.freshness?.onWrite((rows) => this.invalidateRows(rows));
  }

  async start(): Promise<void> {
    const db = this.db as Db;
    this.unlisteners.push(await db.listen(channels.tradesStored, (payload) => this.onTradesStored(payload)));
    this.unlisteners.push(await db.listen(channels.referencePricesStored, (payload) => this.onReferencePrices(payload)));
  }

  async close(): Promise<void> {
    for (const unlisten of this.unlisteners) await unlisten().catch(() => {});
    this.unlisteners = [];
    this.entries.clear();
  }

  /** The current report of one trader and day: cached, or computed once for every reader waiting for it. */
  async get(traderId: string, day: string): Promise<PnlReport> {
    const k = key(traderId, day);
    const cached = this.entries.get(k);
    if (cached && (this.options.singleProcess || !cached.started)) {
      if (cached.done) this.stats.hits++;
      else this.stats.joined++;
      // Most recently used last: the oldest are dropped first.
      this.entries.delete(k);
      this.entries.set(k, cached);
      return cached.promise;
    }
    this.stats.misses++;
    const entry: Entry = { started: false, done: false, promise: undefined as unknown as Promise<PnlReport> };
    entry.promise = this.compute(entry, traderId, day).then(
      (report) => { entry.done = true; return report; },
      (error: unknown) => { if (this.entries.get(k) === entry) this.entries.delete(k); throw error; },
    );
    this.entries.set(k, entry);
    const max = this.options.maxEntries ?? 2000;
    if (this.entries.size > max) this.entries.delete(this.entries.keys().next().value!);
    return entry.promise;
  }

  /** Forgets one trader-day: the next reader computes it again. */
  invalidate(traderId: string, day: string): void {
    const k = key(traderId, day);
    const entry = this.entries.get(k);
    if (!entry || !entry.started) return; // not yet sent: it will see the commit
    this.entries.delete(k);
    this.stats.invalidated++;
  }

  /** Forgets every trader's report of the given days (a new reference price). */
  invalidateDays(days: ReadonlySet<string>): void {
    for (const [k, entry] of [...this.entries]) {
      if (entry.started && days.has(k.slice(k.indexOf('\0') + 1))) { this.entries.delete(k); this.stats.invalidated++; }
    }
  }

  /** For the writer, before it answers: the rows it stored. */
  invalidateRows(rows: readonly { trader_id: string; delivery_start: Date; delivery_day?: string }[]): void {
    for (const row of rows) this.invalidate(row.trader_id, row.delivery_day ?? localDay(row.delivery_start, this.tz));
  }

  private async compute(entry: Entry, traderId: string, day: string): Promise<PnlReport> {
    await this.acquire();
    try {
      // Every refresh of materialised hours queued until the query is sent (a late deal heard
      // while this waited) is done first.
      const freshness = this.options.freshness;
      if (freshness) {
        let tail: Promise<void>;
        do { tail = freshness.settled(); await tail; } while (tail !== freshness.settled());
      }
      entry.started = true;
      this.stats.computed++;
      return await pnlReport(this.db, traderId, day, this.tz);
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (!this.running) { this.running = true; return Promise.resolve(); }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running = false;
  }

  private onTradesStored(payload: string): void {
    let event: TradesStoredEvent;
    try {
      event = JSON.parse(payload) as TradesStoredEvent;
    } catch (error) {
      // Whatever it touched is unknown: nothing cached can be trusted.
      this.options.log?.warn('report cache: unreadable trades_stored payload; dropping every cached report', { error });
      this.entries.clear();
      return;
    }
    for (const hour of touchedHours(event)) this.invalidate(hour.trader_id, hour.delivery_day);
  }

  private onReferencePrices(payload: string): void {
    let days: string[];
    try {
      days = JSON.parse(payload) as string[];
      if (!Array.isArray(days)) throw new Error('not a list of days');
    } catch {
      this.entries.clear();
      return;
    }
    this.invalidateDays(new Set(days));
  }
}
