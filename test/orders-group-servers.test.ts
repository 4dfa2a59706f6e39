// Two app instances on one TimescaleDB server through postgres.js, placing concurrently for the
// same traders: each commits its placements in groups, locking the accounts in trader_id order,
// so neither over-commits cash or quantity and no deadlock reaches a caller. Needs
// TEST_TIMESCALE_URL; without it the suite is skipped, loudly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../server/db';
import type { Trading } from '../server/orders';
import { freshTimescaleDatabase, timescaleUrl } from './helpers/databases';
import { jsonOf, startTestServer, type TestServer } from './helpers/server';

const now = new Date('2026-12-01T12:00:00Z');
const day = '2026-12-02';

if (!timescaleUrl) console.warn('\n!!! SKIPPING orders-group-servers: two servers placing on one database need a TimescaleDB server: set TEST_TIMESCALE_URL (e.g. postgres://postgres@127.0.0.1:5433/ts_orders). !!!\n');

describe.skipIf(!timescaleUrl)('group commit: two servers on one TimescaleDB database', () => {
  const servers: TestServer[] = [];
  let database: Awaited<ReturnType<typeof freshTimescaleDatabase>>;

  beforeAll(async () => {
    database = await freshTimescaleDatabase('orders_groups', 'two servers placing concurrently');
    const env = { DATABASE_URL: database!.url, ORDER_EXPIRY_SWEEP_MS: '100000' };
    // Started together: migrations take their lock, the first admin is created once.
    servers.push(...(await Promise.all([startTestServer({ clock: { now: () => now }, env }), startTestServer({ clock: { now: () => now }, env })])));
  }, 180_000);
  afterAll(async () => {
    for (const s of servers) await s.close();
    await database?.drop();
  });

  it('never over-commits cash or quantity, and surfaces no deadlock to callers', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const traders = ['srv_t1', 'srv_t2', 'srv_t3'];
    for (const t of traders) {
      expect((await a.request(`/v1/accounts/${t}/cash`, { method: 'POST', json: { amount: '1000.00' } })).status).toBe(200);
      const long = { id: `${t}-long`, price: 3000, quantity: 5, direction: 'buy', delivery_day: day, delivery_hour: 10, trader_id: t, execution_time: '2026-12-01T10:00:00Z' };
      expect((await b.request('/v1/trades', { method: 'POST', json: long })).status).toBe(200);
    }
    // 3 traders x 120 orders, alternately on either server: buys worth about 2.5 times each
    // trader's cash, and sells of 0.5 MW against a 5 MW long position (ten fit per trader).
    const bodies = Array.from({ length: 360 }, (_, i) => {
      const trader_id = traders[i % 3]!;
      return i % 4 === 3
        ? { trader_id, side: 'sell', type: 'limit', delivery_day: day, delivery_hour: 10, quantity: 0.5, limit_price: 3500 }
        : { trader_id, side: 'buy', type: 'limit', delivery_day: day, delivery_hour: 8 + (i % 3), quantity: ((i * 7) % 20 + 1) / 10, limit_price: 1000 + ((i * 11) % 41) * 100 };
    });
    const before = servers.map((s) => ({ ...(s.deps.trading as Trading).placements.stats }));
    const results = await Promise.all(bodies.map(async (body, i) => {
      const res = await servers[i % 2]!.request('/v1/orders', { method: 'POST', json: body });
      return { body, status: res.status, json: await jsonOf(res) };
    }));
    const odd = results.find((r) => r.status !== 201 && r.status !== 422);
    expect(odd, JSON.stringify(odd?.json)).toBeUndefined();
    servers.forEach((s, i) => {
      const stats = (s.deps.trading as Trading).placements.stats;
      expect(stats.placements - before[i]!.placements).toBe(180);
      expect(stats.groups - before[i]!.groups).toBeLessThan(180);
    });

    const db = a.deps.db;
    for (const t of traders) {
      const mine = results.filter((r) => r.body.trader_id === t);
      const buys = mine.filter((r) => r.body.side === 'buy' && r.status === 201);
      const held = buys.reduce((sum, r) => sum + Math.round(Number(r.json.held) * 100), 0);
      expect(held).toBeLessThanOrEqual(100_000);
      expect(mine.some((r) => r.body.side === 'buy' && r.status === 422)).toBe(true);
      expect(mine.filter((r) => r.body.side === 'sell' && r.status === 201)).toHaveLength(10);
      const [acc] = await db.query<{ available: string; held: string }>(sql`SELECT available, held FROM accounts WHERE trader_id = ${t}`);
      expect(Math.round(Number(acc!.held) * 100)).toBe(held);
      expect(Math.round(Number(acc!.available) * 100)).toBe(100_000 - held);
      const [sums] = await db.query<{ a: string; h: string }>(sql`SELECT sum(amount) AS a, sum(held_amount) AS h FROM ledger WHERE trader_id = ${t}`);
      expect(Number(sums!.a).toFixed(2)).toBe(acc!.available);
      expect(Number(sums!.h).toFixed(2)).toBe(acc!.held);
      const [sell] = await db.query<{ held_mw: string }>(sql`SELECT held_mw FROM sell_holds WHERE trader_id = ${t}`);
      expect(Number(sell!.held_mw)).toBe(5);
      for (const r of mine.filter((x) => x.status === 422 && x.body.side === 'buy')) {
        const [, needed, available] = /needs ([\d.]+) EUR held, ([\d.]+) EUR is available/.exec(r.json.message)!;
        expect(Number(needed)).toBeGreaterThan(Number(available));
      }
    }
    const [orders] = await db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE trader_id = ANY(${traders}::text[])`);
    expect(orders!.n).toBe(results.filter((r) => r.status === 201).length);
  }, 180_000);
});
