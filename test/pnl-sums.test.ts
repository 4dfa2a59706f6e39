// The running product sums (sql/0160) stay exactly the sums of the trades that count (not
// recalled), through every write: new deals from every source, repeats and conflicts, manual
// entries superseded by the exchange, recalls before and after the deal, quarter hours and the
// DST days. And the report reads the same figures from them as from pnl_hourly.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../scripts/sim/random';
import { openEmbedded } from '../server/db/embedded';
import { openServer } from '../server/db/server';
import { freshTimescaleDatabase } from './helpers/databases';
import { defaultMigrationsDir, migrate } from '../server/db/migrate';
import { sql, type Db } from '../server/db';
import { deskReport, pnlReport, pnlReports } from '../server/reports/pnl';
import { parsePeriod } from '../server/time/market-time';
import type { TradeRow, TradeSource } from '../server/trades/normalize';
import { recallDeals } from '../server/trades/recalls';
import { ingestTrades } from '../server/trades/store';

const tz = 'Europe/Berlin';
// Quarter and half hours among the hours; the 25-hour day has 02-03 twice, the 23-hour day none.
const periodsOf: Record<string, string[]> = {
  '2026-03-29': ['00-01', '03-04', '03:15-03:30', '03:45-04:00', '08-09', '08:00-08:15', '08:30-09:00', '23-24'],
  '2026-10-25': ['00-01', '02-03', '02-03B', '02:15-02:30', '02:45-03:00B', '08-09', '08:00-08:15', '23-24'],
  '2026-06-15': ['00-01', '02-03', '02:15-02:30', '08-09', '08:00-08:15', '08:30-09:00', '12-13', '23-24'],
};
const days = Object.keys(periodsOf);
const traders = ['sums_a', 'sums_b', 'sums_c'];

// On the embedded database, and on a TimescaleDB server where TEST_TIMESCALE_URL names one.
const server = await freshTimescaleDatabase('sums', 'the PnL product sums on a TimescaleDB server');
const engines = [{ name: 'embedded', open: () => openEmbedded(undefined) }, ...(server ? [{ name: 'TimescaleDB server', open: () => openServer(server.url, { max: 4 }) }] : [])];
afterAll(async () => { await server?.drop(); });

/** Products whose running sums differ from the sums of the trades that count (empty: exact). */
async function mismatches(database: Db): Promise<unknown[]> {
  return database.query(sql`
    WITH expected AS (
      SELECT trader_id, delivery_start, delivery_end, count(*) AS trades,
        coalesce(sum(quantity) FILTER (WHERE direction = 'buy'), 0) AS buy_mw,
        coalesce(sum(quantity) FILTER (WHERE direction = 'sell'), 0) AS sell_mw,
        coalesce(sum(quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'buy'), 0) AS buy_mwh,
        coalesce(sum(quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'sell'), 0) AS sell_mwh,
        coalesce(sum(price * quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'buy'), 0) AS buy_eur,
        coalesce(sum(price * quantity * extract(epoch FROM delivery_end - delivery_start) / 3600) FILTER (WHERE direction = 'sell'), 0) AS sell_eur
      FROM trades WHERE recalled_at IS NULL GROUP BY 1, 2, 3),
    kept AS (SELECT * FROM pnl_product_sums WHERE trades <> 0 OR buy_mw <> 0 OR sell_mw <> 0 OR buy_eur <> 0 OR sell_eur <> 0)
    SELECT coalesce(e.trader_id, k.trader_id) AS trader_id, coalesce(e.delivery_start, k.delivery_start) AS delivery_start,
      e.trades AS expected_trades, k.trades AS kept_trades, e.sell_eur - e.buy_eur AS expected_pnl, k.sell_eur - k.buy_eur AS kept_pnl
    FROM expected e FULL JOIN kept k USING (trader_id, delivery_start, delivery_end)
    WHERE (e.trades, e.buy_mw, e.sell_mw, e.buy_mwh, e.sell_mwh, e.buy_eur, e.sell_eur)
      IS DISTINCT FROM (k.trades, k.buy_mw, k.sell_mw, k.buy_mwh, k.sell_mwh, k.buy_eur, k.sell_eur)`);
}

function row(random: () => number, id: string, trader = traders[Math.floor(random() * traders.length)]!): TradeRow {
  const day = days[Math.floor(random() * days.length)]!;
  const period = periodsOf[day]![Math.floor(random() * periodsOf[day]!.length)]!;
  const { start, end } = parsePeriod(day, period, tz);
  const cents = Math.floor(random() * 40_000) - 10_000; // negative prices too
  return {
    id, trader_id: trader, direction: random() < 0.5 ? 'buy' : 'sell', price: (cents / 100).toFixed(2),
    quantity: (Math.floor(random() * 2000 + 1) / 10).toFixed(1), delivery_day: day, delivery_start: start, delivery_end: end,
    execution_time: new Date(start.getTime() - 7_200_000),
  };
}

describe.each(engines)('pnl_product_sums ($name)', ({ open }) => {
  let db: Db;
  beforeAll(async () => { db = await open(); await migrate(db); });
  afterAll(async () => { await db?.close(); });

  it('stays the exact sums of the trades that count through every kind of write', async () => {
    const random = seededRandom(20261202);
    const stored: TradeRow[] = [];
    const manual: TradeRow[] = [];
    let n = 0;
    const sources: TradeSource[] = ['feed', 'file', 'api'];
    for (let step = 0; step < 30; step++) {
      const batch: TradeRow[] = Array.from({ length: 1 + Math.floor(random() * 40) }, () => row(random, `s-${n++}`));
      // Repeats of stored deals (duplicates) and the same id with other content (conflicts).
      if (stored.length) {
        const old = stored[Math.floor(random() * stored.length)]!;
        batch.push({ ...old }, { ...old, price: (Number(old.price) + 1).toFixed(2) });
      }
      const source = sources[step % sources.length]!;
      const outcomes = await ingestTrades(db, batch, source, tz, new Date());
      batch.forEach((r, i) => { if (outcomes[i]!.status === 'stored') (source === 'api' ? manual : stored).push(r); });
      // The exchange confirms some manual entries with other content: they are superseded.
      if (manual.length && step % 3 === 2) {
        const confirmed = manual.splice(0, 3).map((m) => ({ ...m, quantity: (Number(m.quantity) + 0.5).toFixed(1), trader_id: traders[step % traders.length]! }));
        const results = await ingestTrades(db, confirmed, 'feed', tz, new Date());
        expect(results.every((r) => r.status === 'stored' && r.superseded)).toBe(true);
        stored.push(...confirmed);
      }
      // Recalls: of stored deals, of one not arrived yet (applied when it comes), and repeated.
      if (step % 4 === 1) {
        const target = stored[Math.floor(random() * stored.length)]!;
        const early = `s-${n + 1}`;
        await db.transaction((tx) => recallDeals(tx, [
          { id: target.id, reason: 'mistrade', recalledAt: new Date() },
          { id: target.id, reason: 'again', recalledAt: new Date() },
          { id: early, reason: 'before the deal', recalledAt: new Date() },
        ], 'feed', tz));
      }
      expect(await mismatches(db), `after step ${step}`).toEqual([]);
    }
    const [counts] = await db.query<{ recalled: number; superseded: number; products: number }>(sql`
      SELECT (SELECT count(*) FROM trades WHERE recalled_at IS NOT NULL)::int AS recalled,
        (SELECT count(*) FROM trades_superseded)::int AS superseded,
        (SELECT count(*) FROM pnl_product_sums)::int AS products`);
    // The run did exercise every path.
    expect(counts!.recalled).toBeGreaterThan(3);
    expect(counts!.superseded).toBeGreaterThan(5);
    expect(counts!.products).toBeGreaterThan(40);
  });

  it('gives the report the same figures as pnl_hourly, hours, products and totals, on every day', async () => {
    for (const day of days) {
      for (const trader of traders) {
        const fromSums = await pnlReport(db, trader, day, tz, { sums: true });
        const fromAggregate = await pnlReport(db, trader, day, tz, { sums: false });
        expect(fromSums.total.trades, `${trader} ${day}`).toBeGreaterThan(0);
        expect(fromSums, `${trader} ${day}`).toEqual(fromAggregate);
      }
      // One round for several traders, one of them without trades, is each trader's own report.
      const batch = await pnlReports(db, [...traders, 'sums_nobody'], day, tz, { sums: true });
      expect(batch.size).toBe(traders.length + 1);
      for (const trader of traders) expect(batch.get(trader), `${trader} ${day} in a round`).toEqual(await pnlReport(db, trader, day, tz, { sums: false }));
      expect(batch.get('sums_nobody')).toEqual(await pnlReport(db, 'sums_nobody', day, tz, { sums: false }));
      expect(batch.get('sums_nobody')!.total.trades).toBe(0);
      const desk = await deskReport(db, day, tz, { sums: true });
      expect(desk.traders.length).toBe(traders.length);
      expect(desk).toEqual(await deskReport(db, day, tz, { sums: false }));
    }
    // The 23- and 25-hour days keep their hours; split hours list their products.
    expect((await pnlReport(db, traders[0]!, '2026-10-25', tz, { sums: true })).hours).toHaveLength(25);
    expect((await pnlReport(db, traders[0]!, '2026-03-29', tz, { sums: true })).hours).toHaveLength(23);
    const split = (await pnlReport(db, traders[1]!, '2026-06-15', tz, { sums: true })).hours.filter((h) => h.products);
    expect(split.length).toBeGreaterThan(0);
  });
});

describe('the pnl_product_sums migration', () => {
  it('is filled from the trades already stored when the migration runs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pd-sums-migrations-'));
    const later = await openEmbedded(undefined);
    try {
      for (const file of fs.readdirSync(defaultMigrationsDir)) {
        if (/^\d{4}_.*\.sql$/.test(file) && file < '0160') fs.copyFileSync(path.join(defaultMigrationsDir, file), path.join(dir, file));
      }
      await migrate(later, { dir });
      const random = seededRandom(7);
      // Stored as the release before it stored them (that code knew nothing of the sums).
      const columns = ['id', 'trader_id', 'direction', 'price', 'quantity', 'delivery_day', 'delivery_start', 'delivery_end', 'execution_time', 'source']
        .map((name) => ({ name, type: name === 'price' || name === 'quantity' ? 'numeric' : name === 'delivery_day' ? 'date' : /_(start|end|time)$/.test(name) ? 'timestamptz' : 'text' }));
      const rows = Array.from({ length: 200 }, (_, i) => row(random, `m-${i}`));
      await later.bulkInsert('trades', columns, rows.map((r) => [r.id, r.trader_id, r.direction, r.price, r.quantity, r.delivery_day, r.delivery_start, r.delivery_end, r.execution_time, 'feed']));
      await later.query(sql`UPDATE trades SET recalled_at = now() WHERE id = 'm-5'`);
      await expect(later.query(sql`SELECT 1 FROM pnl_product_sums`)).rejects.toThrow(/pnl_product_sums/);
      await migrate(later);
      expect(await mismatches(later)).toEqual([]);
      const [sum] = await later.query<{ trades: number }>(sql`SELECT sum(trades)::int AS trades FROM pnl_product_sums`);
      expect(sum!.trades).toBe(199);
    } finally {
      await later.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
