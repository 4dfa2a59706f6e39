// Many readers of one trader-day, one computation. A report is cached per (trader, day) until a
// commit touches that trader-day: the trades_stored NOTIFY every process hears (deals, bulk
// hours, recalls), the writer's own afterWrite before it answers (read-your-writes in this
// process without waiting for the NOTIFY), and a new reference price (reference_prices_stored,
// which changes every trader's rows of that day). Concurrent readers share the computation in
// flight (single flight); one that arrives after an invalidation never joins a computation
// whose query was sent before it, so what it gets includes every commit it could have seen. A
// computation still waiting for its turn stays shared across invalidations (its query will see
// those commits): however fast the commits, a trader-day costs at most one computation running
// and one waiting. Computations go in rounds: every one queued when a round starts is done in
// it, one query per day for all its traders (a few rows per hour each, see pnl.ts), and after a
// crowded round the next waits twice as long as it took and at least roundSpacingMs, so under any
// number of readers and any rate of commits reports take a small share of the database's time
// and ingestion the rest (the embedded database has one connection).
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
import { pnlReports } from './pnl';

interface Entry {
  promise: Promise<PnlReport>;
  /** Set when its query is sent: from then on a commit makes it stale. */
  started: boolean;
  /** Set once the computation succeeded: a hit. */
  done: boolean;
  /** The report as UTF-8 JSON, made once for every reader over HTTP. */
  json?: Uint8Array<ArrayBuffer>;
}

interface Job {
  entry: Entry;
  /** The live hub's push of a change: not held back by roundSpacingMs (the hub spaces its own rounds). */
  urgent: boolean;
  traderId: string;
  day: string;
  resolve: (report: PnlReport) => void;
  reject: (error: unknown) => void;
}

const key = (traderId: string, day: string) => `${traderId}\0${day}`;

export class ReportCache {
  private entries = new Map<string, Entry>();
  private unlisteners: (() => Promise<void>)[] = [];
  /** Computations waiting for the next round, whether one is running, and when the next may start. */
  private queued: Job[] = [];
  private running = false;
  private timer?: NodeJS.Timeout;
  private nextRoundAt = 0;
  private nextUrgentAt = 0;
  /** Reads (hits included) since the last round ended: more than one means company. */
  private reads = 0;
  /** For tests and the benchmark. */
  readonly stats = { hits: 0, joined: 0, misses: 0, computed: 0, rounds: 0, invalidated: 0 };

  constructor(
    private db: Db | Queryable,
    private tz: string,
    private options: { freshness?: PnlFreshness; log?: Logger; maxEntries?: number; singleProcess?: boolean; roundGap?: number; roundSpacingMs?: number } = {},
  ) {
    options.freshness?.onWrite((rows) => this.invalidateRows(rows));
  }

  async start(): Promise<void> {
    const db = this.db as Db;
    this.unlisteners.push(await db.listen(channels.tradesStored, (payload) => this.onTradesStored(payload)));
    this.unlisteners.push(await db.listen(channels.referencePricesStored, (payload) => this.onReferencePrices(payload)));
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const job of this.queued.splice(0)) job.reject(new Error('the report cache is closed'));
    for (const unlisten of this.unlisteners) await unlisten().catch(() => {});
    this.unlisteners = [];
    this.entries.clear();
  }

  /**
   * The current report of one trader and day: cached, or computed once for every reader waiting
   * for it. `urgent` (the live hub's push of a change) starts the next round as soon as the last
   * one's cost allows, without waiting out roundSpacingMs.
   */
  async get(traderId: string, day: string, options: { urgent?: boolean } = {}): Promise<PnlReport> {
    return this.entry(traderId, day, options.urgent ?? false).promise;
  }

  /** The same report as UTF-8 JSON, serialised and encoded once per computation however many read it. */
  async getJson(traderId: string, day: string): Promise<Uint8Array<ArrayBuffer>> {
    const entry = this.entry(traderId, day, false);
    const report = await entry.promise;
    return (entry.json ??= new TextEncoder().encode(JSON.stringify(report)));
  }

  private entry(traderId: string, day: string, urgent: boolean): Entry {
    this.reads++;
    const k = key(traderId, day);
    const cached = this.entries.get(k);
    if (cached && (this.options.singleProcess || !cached.started)) {
      if (cached.done) this.stats.hits++;
      else {
        this.stats.joined++;
        if (urgent) this.hurry(cached);
      }
      // Most recently used last: the oldest are dropped first.
      this.entries.delete(k);
      this.entries.set(k, cached);
      return cached;
    }
    this.stats.misses++;
    const entry: Entry = { started: false, done: false, promise: undefined as unknown as Promise<PnlReport> };
    entry.promise = this.compute(entry, traderId, day, urgent).then(
      (report) => { entry.done = true; return report; },
      (error: unknown) => { if (this.entries.get(k) === entry) this.entries.delete(k); throw error; },
    );
    this.entries.set(k, entry);
    const max = this.options.maxEntries ?? 2000;
    if (this.entries.size > max) this.entries.delete(this.entries.keys().next().value!);
    return entry;
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

  /** Queues the computation for the next round. */
  private compute(entry: Entry, traderId: string, day: string, urgent: boolean): Promise<PnlReport> {
    return new Promise<PnlReport>((resolve, reject) => {
      this.queued.push({ entry, traderId, day, urgent, resolve, reject });
      if (urgent) this.hurry(entry);
      else this.schedule();
    });
  }

  /** An urgent reader joined a queued computation: the round may start earlier. */
  private hurry(entry: Entry): void {
    const job = this.queued.find((j) => j.entry === entry);
    if (!job) return; // already running
    job.urgent = true;
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    this.schedule();
  }

  /** Starts a round when one is due: none running, and the gap after the previous one over. */
  private schedule(): void {
    if (this.running || this.timer || !this.queued.length) return;
    const wait = (this.queued.some((j) => j.urgent) ? this.nextUrgentAt : this.nextRoundAt) - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => { this.timer = undefined; this.schedule(); }, wait);
      return;
    }
    this.running = true;
    void this.round().finally(() => { this.running = false; this.schedule(); });
  }

  /** One round: every computation queued until its query is sent, in one query per day. */
  private async round(): Promise<void> {
    // Every refresh of materialised hours queued until the query is sent (a late deal heard
    // while this waited) is done first.
    const freshness = this.options.freshness;
    if (freshness) {
      let tail: Promise<void>;
      do { tail = freshness.settled(); await tail; } while (tail !== freshness.settled());
    }
    const batch = this.queued;
    this.queued = [];
    const started = performance.now();
    for (const job of batch) job.entry.started = true;
    this.stats.computed += batch.length;
    this.stats.rounds++;
    const days = new Map<string, Job[]>();
    for (const job of batch) days.set(job.day, [...(days.get(job.day) ?? []), job]);
    for (const [day, jobs] of days) {
      try {
        const reports = await pnlReports(this.db, jobs.map((j) => j.traderId), day, this.tz);
        for (const job of jobs) job.resolve(reports.get(job.traderId)!);
      } catch (error) {
        for (const job of jobs) job.reject(error);
      }
    }
    // After a crowded round (more than one read since the round before it ended: readers joining
    // it, queued meanwhile, or of several trader-days) the next one waits twice as long as this
    // one took, and at least roundSpacingMs unless the live hub pushes a change (urgent): under a
    // constant stream of readers and commits, reports take at most a third of the database's
    // time, and far less when they are cheap (at most 1000 / roundSpacingMs crowded rounds a
    // second, however many read). A lone reader reading again and again is not held back.
    const end = performance.now();
    const crowded = this.reads > 1;
    this.reads = 0;
    this.nextUrgentAt = crowded ? end + (end - started) * (this.options.roundGap ?? 2) : end;
    this.nextRoundAt = crowded ? Math.max(this.nextUrgentAt, end + (this.options.roundSpacingMs ?? 50)) : end;
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
