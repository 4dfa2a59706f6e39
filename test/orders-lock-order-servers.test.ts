// Every path that moves cash, at once, from two app instances on one TimescaleDB server through
// postgres.js: fills and the exchange's expiries (report batches, which lock orders, then
// accounts), cancels and modifies (one order, then its account), placements (accounts in
// trader_id order) and both processes' expiry sweeps (orders claimed with SKIP LOCKED, then
// accounts) on the same traders and products. No deadlock may reach a caller or a log, and the
// books of every trader add up afterwards. Needs TEST_TIMESCALE_URL; without it the suite is
// skipped, loudly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../server/db';
import { freshTimescaleDatabase, timescaleUrl } from './helpers/databases';
import { linkedEnv, startFakeExchange, type FakeExchange } from './helpers/fake-exchange-orders';
import { expectBooksAddUp } from './helpers/ledger-checks';
import { jsonOf, recordingLogger, startTestServer, type LogEntry, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

// 11:00 in Berlin. Hour 12's gate closes at 10:55 UTC, hour 20's in the evening.
let nowMs = Date.parse('2026-12-01T10:00:00Z');
const clock = { now: () => new Date(nowMs) };
const day = '2026-12-01';
const closing = 12;
const later = 20;

if (!timescaleUrl) console.warn('\n!!! SKIPPING orders-lock-order-servers: two servers trading on one database need a TimescaleDB server: set TEST_TIMESCALE_URL (e.g. postgres://postgres@127.0.0.1:5433/ts_orders). !!!\n');

describe.skipIf(!timescaleUrl)('fills, expiries, cancels, modifies and placements at once on two servers', () => {
  const servers: TestServer[] = [];
  const logs: LogEntry[][] = [[], []];
  let exchange: FakeExchange;
  let database: Awaited<ReturnType<typeof freshTimescaleDatabase>>;

  beforeAll(async () => {
    exchange = await startFakeExchange();
    database = await freshTimescaleDatabase('orders_locks', 'two servers trading concurrently');
    const env = { ...linkedEnv(exchange.url), DATABASE_URL: database!.url, ORDER_EXPIRY_SWEEP_MS: '50' };
    // Redundant gateways of one exchange session: each its own id.
    servers.push(...(await Promise.all(logs.map((entries, i) => startTestServer({ clock, env: { ...env, FEED_GATEWAY_ID: `lk-gw-${i}` }, log: recordingLogger(entries) })))));
    await until(() => servers.every((s) => s.gateway?.connected), 'both gateways connected', 30_000);
  }, 180_000);
  afterAll(async () => {
    for (const s of servers) await s.close();
    await exchange?.close();
    await database?.drop();
  });

  it('no deadlock, no 5xx, and the books of every trader add up', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const traders = ['lk_t1', 'lk_t2', 'lk_t3'];
    for (const t of traders) {
      expect((await a.request(`/v1/accounts/${t}/cash`, { method: 'POST', json: { amount: '5000.00' } })).status).toBe(200);
      for (const hour of [closing, later]) {
        const long = { id: `${t}-long-${hour}`, price: 3000, quantity: 4, direction: 'buy', delivery_day: day, delivery_hour: hour, trader_id: t, execution_time: '2026-12-01T08:00:00Z' };
        expect((await b.request('/v1/trades', { method: 'POST', json: long })).status).toBe(200);
      }
    }
    const order = (i: number) => {
      const trader_id = traders[i % 3]!;
      const delivery_hour = i % 2 ? closing : later;
      return i % 5 === 4
        ? { trader_id, side: 'sell', type: 'limit', delivery_day: day, delivery_hour, quantity: 0.5, limit_price: 4000 }
        : { trader_id, side: 'buy', type: 'limit', delivery_day: day, delivery_hour, quantity: ((i * 3) % 10 + 2) / 10, limit_price: 2000 + ((i * 13) % 20) * 100 };
    };
    const placed = await Promise.all(Array.from({ length: 90 }, async (_, i) => {
      const res = await servers[i % 2]!.request('/v1/orders', { method: 'POST', json: order(i) });
      expect(res.status).toBe(201);
      return (await jsonOf(res)) as { id: string; trader_id: string; quantity: number; limit_price: number; side: string; delivery_hour: number };
    }));
    await until(() => placed.every((o) => exchange.orders.get(o.id)?.status === 'new'), 'every order at the exchange', 60_000);
    await until(async () => (await a.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE status = 'pending_new'`))[0]!.n === 0, 'the acknowledgements applied', 60_000);

    // All at once: fills, cancels on b, modifies on a, new placements on both, the gate of hour
    // 12 closing (both sweeps expire its orders while the exchange reports its own expiries).
    const statuses: number[] = [];
    const call = async (s: TestServer, path: string, method: string, json?: unknown) => {
      const res = await s.request(path, { method, json });
      statuses.push(res.status);
      return res;
    };
    // Each kind of action on orders of both hours; the gate of hour 12 closes once the first
    // answers are in, so that both sweeps run while the rest are still being served.
    const storm: Promise<unknown>[] = [];
    placed.forEach((o, i) => {
      const price = o.side === 'buy' ? (o.limit_price - 100) / 100 : 41;
      const action = Math.floor(i / 2) % 4;
      if (action === 0) exchange.fill(o.id, Math.round(o.quantity * 5) / 10, price);
      else if (action === 1) storm.push(call(b, `/v1/orders/${o.id}/cancel`, 'POST'));
      else if (action === 2) storm.push(call(a, `/v1/orders/${o.id}`, 'PATCH', { quantity: Math.round((o.quantity + 0.1) * 10) / 10 }));
    });
    for (let i = 90; i < 150; i++) storm.push(call(servers[i % 2]!, '/v1/orders', 'POST', order(i)));
    storm.push((async () => {
      await until(() => statuses.length >= 10, 'the first answers of the storm');
      nowMs = Date.parse('2026-12-01T10:56:00Z');
      placed.forEach((o, i) => {
        const x = exchange.orders.get(o.id)!;
        if (o.delivery_hour === closing && i % 3 === 0 && (x.status === 'new' || x.status === 'partially_filled')) exchange.expire(o.id);
      });
    })());
    await Promise.all(storm);
    // Outcomes a caller may see: accepted, refused for what it asked (gate closed, not enough
    // cash or quantity, already final or busy), never a server error.
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(statuses.filter((s) => s === 201 || s === 202).length).toBeGreaterThan(0);

    // Settled: no answer pending, hour 12 has no open order, every fill of the exchange applied.
    await until(async () => (await a.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE status LIKE 'pending%'`))[0]!.n === 0, 'every answer applied', 60_000);
    await until(async () => (await a.deps.db.query<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM orders WHERE delivery_start = '2026-12-01T11:00:00Z' AND status IN ('new', 'partially_filled')`))[0]!.n === 0, 'hour 12 expired', 30_000);
    const filledAtExchange = [...exchange.orders.values()].filter((o) => o.filled > 0).length;
    await until(async () => (await a.deps.db.query<{ n: number }>(sql`SELECT count(DISTINCT order_id)::int AS n FROM order_fills`))[0]!.n === filledAtExchange, 'the fills applied', 60_000);

    let fills = 0;
    for (const t of traders) fills += await expectBooksAddUp(b.deps.db, t);
    expect(fills).toBe(filledAtExchange);
    const [expired] = await a.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE status = 'expired'`);
    expect(expired!.n).toBeGreaterThan(0);
    // Neither process met a deadlock, nor had to place a group again one by one.
    const trouble = logs.flat().filter((e) => e.level === 'error' || /deadlock|placing its members one by one/i.test(`${e.msg} ${JSON.stringify(e.fields ?? {})}`));
    expect(trouble).toEqual([]);
  }, 240_000);
});
