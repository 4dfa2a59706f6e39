// Keeps pnl_hourly both fast and exact. Past days are materialised (refresh up to the start of
// the current local day); from there on real-time aggregation reads the raw trades, so today's
// and future deliveries are fresh the moment they commit. A late deal for a materialised hour
// (a nightly file, a correction) invalidates that hour: this module refreshes exactly the
// touched hours: the process that stored it before answering the write (afterWrite), so that a
// report read after that answer, on any process, includes it; and every process when it hears of
// the deal on trades_stored (a no-op where another already did it), so that each process's live
// pushes, which wait for its own refreshes, carry the corrected row. Refreshes run outside any
// transaction, coalesced per tick into one call, and one at a time across all processes (the
// pnlRefresh lock): TimescaleDB >= 2.26.3 refuses overlapping refreshes instead of waiting, and
// one started elsewhere (a policy, an operator) is waited out and tried again. Nothing here
// schedules TimescaleDB jobs: the embedded database has no job scheduler, and the same code keeps
// a TimescaleDB server fresh.
import type { Clock } from '../clock';
import type { Db } from '../db';
import { sql } from '../db';
import { locks } from '../db/locks';
import { channels } from '../live/events';
import type { Logger } from '../log';
import { hoursOfDay, localDay, dayBounds, type HourSlot } from '../time/market-time';
import { touchedHours, type TradesStoredEvent } from '../trades/store';
import type { ApiTrade } from '../trades/normalize';

const hourMs = 3_600_000;
const checkEveryMs = 5 * 60_000;
/** History is materialised in windows of this length (about 2.5M trades at the desk's benchmark density). */
const windowMs = 90 * 24 * hourMs;
/** TimescaleDB's refusal while another refresh of an overlapping window runs. */
export const concurrentRefreshError = /could not refresh continuous aggregate .* due to a concurrent refresh/;
/** Tries of a refused refresh, with growing waits between them (about 25 s in all). */
const refreshTries = 10;

/** The hour slots a stored trade may touch: its local start hour (twice on the 25-hour day). */
export function touchedSlots(trade: Pick<ApiTrade, 'delivery_day' | 'delivery_hour'>, tz: string): HourSlot[] {
  return hoursOfDay(trade.delivery_day, tz).filter((s) => s.hour === trade.delivery_hour);
}

export class PnlFreshness {
  private tail: Promise<void> = Promise.resolve();
  private pending = new Set<number>();
  private unlisten?: () => Promise<void>;
  private timer?: NodeJS.Timeout;
  private materialisedDay?: string;
  private writeListeners: ((rows: readonly { trader_id: string; delivery_start: Date; delivery_day?: string }[]) => void)[] = [];
  /** Figures for the README and the benchmark. */
  readonly stats = { refreshes: 0, refreshMs: 0, historyMs: 0, refused: 0 };

  constructor(private db: Db, private tz: string, private clock: Clock, private log: Logger) {}

  async start(): Promise<void> {
    await this.materialiseHistory();
    this.unlisten = await this.db.listen(channels.tradesStored, (payload) => this.onTradesStored(payload));
    this.timer = setInterval(() => {
      if (localDay(this.clock.now(), this.tz) !== this.materialisedDay) this.enqueue(() => this.materialiseHistory());
    }, checkEveryMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.unlisten?.();
    await this.tail;
  }

  /** Told of every afterWrite first, synchronously (the report cache forgets those trader-days). */
  onWrite(listener: (rows: readonly { trader_id: string; delivery_start: Date; delivery_day?: string }[]) => void): void {
    this.writeListeners.push(listener);
  }

  /** Resolves when every refresh queued so far (including by a notification just heard) is done. */
  settled(): Promise<void> {
    return this.tail;
  }

  /**
   * Materialises everything before the start of the current local day (idempotent, incremental:
   * only invalidated ranges are recomputed). Done in windows from the oldest trade on, so a first
   * materialisation of a large table logs its progress and lets other queries in between.
   */
  async materialiseHistory(): Promise<void> {
    const day = localDay(this.clock.now(), this.tz);
    const upTo = floorHour(dayBounds(day, this.tz).start.getTime());
    const started = performance.now();
    const [oldest] = await this.db.query<{ start: Date | null }>(sql`SELECT min(delivery_start) AS start FROM trades`);
    const first = oldest?.start ? floorHour(oldest.start.getTime()) : upTo;
    // The first window is open below so that nothing older is ever left out.
    let from: number | null = null;
    let to = Math.min(upTo, first + windowMs);
    for (;;) {
      await this.refresh(from === null ? null : new Date(from), new Date(to));
      if (to >= upTo) break;
      this.log.info('materialising pnl_hourly', { done_up_to: new Date(to).toISOString(), up_to: new Date(upTo).toISOString(), seconds: Math.round((performance.now() - started) / 1000) });
      from = to;
      to = Math.min(upTo, to + windowMs);
    }
    this.stats.historyMs = performance.now() - started;
    this.materialisedDay = day;
    this.log.info('pnl_hourly materialised', { up_to: new Date(upTo).toISOString(), ms: Math.round(this.stats.historyMs) });
  }

  /**
   * For the writer, before it answers: refreshes the hours of `rows` that may be materialised.
   * Resolves when that is done (a failure is logged, never thrown: the rows are stored). Rows
   * delivered from the start of today on are never materialised and cost nothing here.
   */
  afterWrite(rows: readonly { trader_id: string; delivery_start: Date; delivery_day?: string }[]): Promise<void> {
    for (const listener of this.writeListeners) listener(rows);
    return this.track(rows.map((r) => floorHour(r.delivery_start.getTime())));
  }

  private onTradesStored(payload: string): void {
    let event: TradesStoredEvent;
    try {
      event = JSON.parse(payload) as TradesStoredEvent;
    } catch (error) {
      this.log.warn('unreadable trades_stored payload', { error });
      return;
    }
    const slots: number[] = [];
    for (const hour of touchedHours(event)) {
      try {
        for (const slot of touchedSlots(hour, this.tz)) slots.push(slot.start.getTime());
      } catch (error) {
        this.log.warn('trades_stored: an impossible delivery hour', { hour, error });
      }
    }
    void this.track(slots);
  }

  /** Queues the hours before today for the next refresh; resolves when it has run. */
  private track(slots: readonly number[]): Promise<void> {
    // Nothing from the start of today on is ever materialised (here or by another process), so
    // the usual case, deals for today and later, needs no refresh and no look at the watermark.
    const today = dayBounds(localDay(this.clock.now(), this.tz), this.tz).start.getTime();
    const past = slots.filter((t) => t < today);
    if (!past.length) return Promise.resolve();
    for (const t of past) this.pending.add(t);
    this.enqueue(() => this.refreshPending());
    return this.tail;
  }

  private enqueue(task: () => Promise<void>): void {
    this.tail = this.tail.then(task).catch((error: Error) => this.log.error('pnl_hourly refresh failed', { error }));
  }

  /** Refreshes the touched hours below the watermark (above it real-time aggregation is exact). */
  private async refreshPending(): Promise<void> {
    if (!this.pending.size) return; // an earlier task of this tick took them
    const touched = [...this.pending];
    this.pending.clear();
    const watermark = await this.watermark();
    const stale = touched.filter((t) => t < watermark);
    if (!stale.length) return;
    // One call over the span: only invalidated ranges inside it are recomputed.
    const from = Math.min(...stale);
    const to = Math.max(...stale) + hourMs;
    const started = performance.now();
    await this.refresh(new Date(from), new Date(to));
    this.stats.refreshes += 1;
    this.stats.refreshMs += performance.now() - started;
  }

  /** One refresh, never overlapping another process's; refused ones (a refresher outside the lock) are tried again. */
  private async refresh(from: Date | null, to: Date): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.db.exclusive(locks.pnlRefresh, () => this.db.query(sql`CALL refresh_continuous_aggregate('pnl_hourly', ${from}::timestamptz, ${to}::timestamptz)`));
        return;
      } catch (error) {
        if (attempt >= refreshTries || !concurrentRefreshError.test((error as Error).message)) throw error;
        this.stats.refused += 1;
        this.log.info('pnl_hourly: another refresh of these hours is running; trying again', { attempt, from: from?.toISOString() ?? null, to: to.toISOString() });
        await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 25 * 2 ** attempt) * (0.5 + Math.random())));
      }
    }
  }

  /** End of the materialised range, in ms (another process may have moved it: read it each time). */
  async watermark(): Promise<number> {
    const [row] = await this.db.query<{ ms: string | null }>(sql`
      SELECT (extract(epoch FROM _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id))) * 1000)::text AS ms
      FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = 'pnl_hourly'`);
    const ms = Number(row?.ms);
    return Number.isFinite(ms) ? ms : -Infinity;
  }
}

function floorHour(ms: number): number {
  return Math.floor(ms / hourMs) * hourMs;
}
