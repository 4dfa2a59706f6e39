// Keeps pnl_hourly both fast and exact. Past days are materialised (refresh up to the start of
// the current local day); from there on real-time aggregation reads the raw trades, so today's
// and future deliveries are fresh the moment they commit. A late deal for a materialised hour
// (a nightly file, a correction) invalidates that hour: this module refreshes exactly the
// touched hours when it hears of the deal on trades_stored. Refreshes run outside any
// transaction; on the embedded database they share its one connection, so they are coalesced
// per tick into one call. Nothing here schedules TimescaleDB jobs: the embedded database has no
// job scheduler, and the same code keeps a TimescaleDB server fresh.
import type { Clock } from '../clock';
import type { Db } from '../db';
import { sql } from '../db';
import { channels } from '../live/events';
import type { Logger } from '../log';
import { hoursOfDay, localDay, dayBounds, type HourSlot } from '../time/market-time';
import { touchedHours, type TradesStoredEvent } from '../trades/store';
import type { ApiTrade } from '../trades/normalize';

const hourMs = 3_600_000;
const checkEveryMs = 5 * 60_000;
/** History is materialised in windows of this length (about 2.5M trades at the desk's benchmark density). */
const windowMs = 90 * 24 * hourMs;

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
  /** Figures for the README and the benchmark. */
  readonly stats = { refreshes: 0, refreshMs: 0, historyMs: 0 };

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
      await this.db.query(sql`CALL refresh_continuous_aggregate('pnl_hourly', ${from === null ? null : new Date(from)}::timestamptz, ${new Date(to)}::timestamptz)`);
      if (to >= upTo) break;
      this.log.info('materialising pnl_hourly', { done_up_to: new Date(to).toISOString(), up_to: new Date(upTo).toISOString(), seconds: Math.round((performance.now() - started) / 1000) });
      from = to;
      to = Math.min(upTo, to + windowMs);
    }
    this.stats.historyMs = performance.now() - started;
    this.materialisedDay = day;
    this.log.info('pnl_hourly materialised', { up_to: new Date(upTo).toISOString(), ms: Math.round(this.stats.historyMs) });
  }

  private onTradesStored(payload: string): void {
    let event: TradesStoredEvent;
    try {
      event = JSON.parse(payload) as TradesStoredEvent;
    } catch (error) {
      this.log.warn('unreadable trades_stored payload', { error });
      return;
    }
    for (const hour of touchedHours(event)) {
      try {
        for (const slot of touchedSlots(hour, this.tz)) this.pending.add(slot.start.getTime());
      } catch (error) {
        this.log.warn('trades_stored: an impossible delivery hour', { hour, error });
      }
    }
    if (this.pending.size) this.enqueue(() => this.refreshPending());
  }

  private enqueue(task: () => Promise<void>): void {
    this.tail = this.tail.then(task).catch((error: Error) => this.log.error('pnl_hourly refresh failed', { error }));
  }

  /** Refreshes the touched hours below the watermark (above it real-time aggregation is exact). */
  private async refreshPending(): Promise<void> {
    if (!this.pending.size) return; // an earlier task of this tick took them
    const touched = [...this.pending];
    this.pending.clear();
    // Nothing from the start of today on is ever materialised (here or by another process), so
    // the usual case, deals for today and later, needs no look at the watermark at all.
    const today = dayBounds(localDay(this.clock.now(), this.tz), this.tz).start.getTime();
    if (touched.every((t) => t >= today)) return;
    const watermark = await this.watermark();
    const stale = touched.filter((t) => t < watermark);
    if (!stale.length) return;
    // One call over the span: only invalidated ranges inside it are recomputed.
    const from = Math.min(...stale);
    const to = Math.max(...stale) + hourMs;
    const started = performance.now();
    await this.db.query(sql`CALL refresh_continuous_aggregate('pnl_hourly', ${new Date(from)}::timestamptz, ${new Date(to)}::timestamptz)`);
    this.stats.refreshes += 1;
    this.stats.refreshMs += performance.now() - started;
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
