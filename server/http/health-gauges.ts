// Gauges for operators' alerts that no request path moves: the age of the oldest exchange
// sequence gap still open, whether the nightly file is overdue, how far the order outbox is
// behind and how many orders were rejected. All are read from the database, so every server process reports the same values whichever process runs the gateway
// or the importer. (The event loop's delay is among prom-client's default metrics.)
import type { Clock } from '../clock';
import { sql, type Db } from '../db';
import { expectedTradingDay } from '../importer/deadline';
import type { Logger } from '../log';
import { Counter, type MetricsRegistry } from './metrics';

export interface HealthGaugeOptions {
  db: Db;
  metrics: MetricsRegistry;
  clock: Clock;
  log: Logger;
  tz: string;
  /** IMPORT_DEADLINE, local HH:MM. */
  importDeadline: string;
  everyMs?: number;
}

/** Starts the gauges; the returned function stops them. */
export function startHealthGauges(options: HealthGaugeOptions): () => Promise<void> {
  const { db, metrics, clock, log, tz, importDeadline } = options;
  const gapAge = metrics.register(new Counter('powerdesk_exchange_gap_open_seconds', 'Age of the oldest exchange sequence gap neither filled nor given up, per member (0: none open)', 'gauge', ['member']));
  const overdue = metrics.register(new Counter('powerdesk_import_file_overdue', 'Whether the nightly file of the trading day due by IMPORT_DEADLINE has not been imported (1) or has (0)', 'gauge', []));
  const outboxLag = metrics.register(new Counter('powerdesk_orders_outbox_lag_seconds', 'Age of the oldest order message not yet sent to the exchange (0: none waiting)', 'gauge', []));
  // A count of the database's rejected orders (never deleted, never un-rejected): it only grows,
  // and every process reports the same value, so alert on max(rate(...)), not sum.
  const rejected = metrics.register(new Counter('powerdesk_orders_rejected_total', 'Orders rejected so far, by the exchange or by the desk (read from the database: the same on every process)', 'counter', []));
  let rejectedSeen = 0;
  let running: Promise<void> = Promise.resolve();

  const sample = async () => {
    const now = clock.now();
    const gaps = await db.query<{ member: string; open_seconds: number }>(sql`
      SELECT s.member, coalesce(extract(epoch FROM ${now}::timestamptz - min(g.detected_at)), 0)::float8 AS open_seconds
      FROM exchange_sessions s
      LEFT JOIN exchange_gaps g ON g.member = s.member AND g.filled_at IS NULL AND g.lost_at IS NULL
      GROUP BY s.member`);
    for (const g of gaps) gapAge.set({ member: g.member }, Math.max(0, g.open_seconds));
    const day = expectedTradingDay(now, tz, importDeadline);
    const [imported] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM imports WHERE trading_day = ${day} AND status IN ('done', 'identical', 'running')`);
    overdue.set({}, imported!.n > 0 ? 0 : 1);
    const [orders] = await db.query<{ lag_seconds: number; rejected: number }>(sql`
      SELECT coalesce((SELECT extract(epoch FROM ${now}::timestamptz - min(created_at)) FROM outbox WHERE destination = 'exchange' AND sent_at IS NULL), 0)::float8 AS lag_seconds,
             (SELECT count(*) FROM orders WHERE status = 'rejected')::int8 AS rejected`);
    outboxLag.set({}, Math.max(0, orders!.lag_seconds));
    const count = Number(orders!.rejected);
    if (count > rejectedSeen) rejected.inc({}, count - rejectedSeen);
    rejectedSeen = count;
  };
  const tick = () => {
    running = sample().catch((error: Error) => log.warn('could not read the health gauges', { error: error.message }));
  };
  tick();
  const timer = setInterval(tick, options.everyMs ?? 15_000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
