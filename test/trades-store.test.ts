// Ingestion on the embedded TimescaleDB: idempotency across calls and the trades_stored NOTIFY.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbedded } from '../server/db/embedded';
import { migrate } from '../server/db/migrate';
import { sql, type Db } from '../server/db';
import { checkApiTrade, type TradeRow } from '../server/trades/normalize';
import { ingestTrades, tradesStoredChannel, type TradesStoredEvent } from '../server/trades/store';
import { trade } from './helpers/server';

const tz = 'Europe/Berlin';
let db: Db;
beforeAll(async () => { db = await openEmbedded(undefined); await migrate(db); });
afterAll(async () => { await db?.close(); });

function rows(n: number, prefix: string, overrides: Record<string, unknown> = {}): TradeRow[] {
  return Array.from({ length: n }, (_, i) => {
    const checked = checkApiTrade(trade({ id: `${prefix}-${i}`, trader_id: prefix, delivery_hour: i % 24, ...overrides }), tz);
    if (!checked.ok) throw new Error(checked.message);
    return checked.value;
  });
}

describe('ingestTrades', () => {
  it('announces exactly the newly stored trades on trades_stored, in payloads Postgres accepts', async () => {
    const events: TradesStoredEvent[] = [];
    const unlisten = await db.listen(tradesStoredChannel, (p) => {
      expect(Buffer.byteLength(p)).toBeLessThan(8000);
      events.push(JSON.parse(p));
    });
    try {
      const batch = rows(300, 'ann');
      const outcomes = await ingestTrades(db, batch, 'feed', tz, new Date());
      expect(outcomes.every((o) => o.status === 'stored')).toBe(true);
      await ingestTrades(db, batch.slice(0, 10), 'feed', tz, new Date()); // duplicates: no announcement
      await db.query(sql`SELECT 1`);
      const announced = events.flatMap((e) => (e.trades ?? []).map((t) => t.id));
      expect(announced.sort()).toEqual(batch.map((r) => r.id).sort());
      expect(events.length).toBeGreaterThan(1);
      expect(events.every((e) => e.source === 'feed')).toBe(true);
      expect(events[0]!.trades![0]).toEqual(trade({ id: 'ann-0', trader_id: 'ann', delivery_hour: 0 }));
    } finally {
      await unlisten();
    }
  });

  it('announces a bulk commit as the distinct hours it touched, with its count', async () => {
    const events: TradesStoredEvent[] = [];
    const unlisten = await db.listen(tradesStoredChannel, (p) => events.push(JSON.parse(p)));
    try {
      const batch = [...rows(1500, 'bulk_a'), ...rows(30, 'bulk_b', { delivery_day: '2023-10-29', delivery_hour: 2 })];
      await ingestTrades(db, batch, 'file', tz, new Date());
      await db.query(sql`SELECT 1`);
      expect(events.every((e) => e.trades === undefined && e.count === 1530 && e.source === 'file')).toBe(true);
      const touched = events.flatMap((e) => e.touched ?? []);
      const expected = [
        ...Array.from({ length: 24 }, (_, h) => ({ trader_id: 'bulk_a', delivery_day: '2023-02-06', delivery_hour: h })),
        { trader_id: 'bulk_b', delivery_day: '2023-10-29', delivery_hour: 2 },
      ];
      expect(touched).toEqual(expect.arrayContaining(expected));
      expect(touched).toHaveLength(expected.length);
    } finally {
      await unlisten();
    }
  });

  it('compares repeats within one batch with the first occurrence', async () => {
    const [a] = rows(1, 'same');
    const changed = { ...a!, quantity: '99' };
    const outcomes = await ingestTrades(db, [a!, a!, changed], 'api', tz, new Date());
    expect(outcomes.map((o) => o.status)).toEqual(['stored', 'duplicate', 'conflict']);
    expect(outcomes[2]!.differences).toEqual(['quantity']);
  });

  it('treats the same deal from another source as a duplicate and keeps the first source', async () => {
    const batch = rows(3, 'src');
    await ingestTrades(db, batch, 'feed', tz, new Date());
    const outcomes = await ingestTrades(db, batch, 'file', tz, new Date());
    expect(outcomes.map((o) => o.status)).toEqual(['duplicate', 'duplicate', 'duplicate']);
    const stored = await db.query<{ source: string; n: number }>(sql`SELECT source, count(*)::int AS n FROM trades WHERE trader_id = 'src' GROUP BY source`);
    expect(stored).toEqual([{ source: 'feed', n: 3 }]);
  });

  it('stores exact decimals: 0.1 + 0.2 MW sums to 0.3', async () => {
    await ingestTrades(db, [...rows(1, 'dec1', { quantity: 0.1 }), ...rows(1, 'dec2', { quantity: 0.2 })], 'api', tz, new Date());
    const [row] = await db.query<{ q: string }>(sql`SELECT sum(quantity)::text AS q FROM trades WHERE trader_id IN ('dec1', 'dec2')`);
    expect(row!.q).toBe('0.300000');
  });
});
