// 200 concurrent orders worth more than the balance, on the embedded database and (with
// TEST_TIMESCALE_URL) on a TimescaleDB server through postgres.js with a real connection pool:
// accepted holds never exceed the cash, sells never exceed the long position, and after fills
// and cancels the ledger adds up exactly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../server/db';
import { freshTimescaleDatabase } from './helpers/databases';
import { expectBooksAddUp } from './helpers/ledger-checks';
import { linkedEnv, startFakeExchange, type FakeExchange } from './helpers/fake-exchange-orders';
import { jsonOf, startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

const now = new Date('2026-12-01T12:00:00Z');
const day = '2026-12-02';

/** A small deterministic PRNG (mulberry32): the same orders on every run. */
function prng(seed: number) {
  let a = seed;
  return () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

for (const backend of ['embedded', 'timescaledb'] as const) {
  describe(`200 concurrent orders (${backend})`, () => {
    let server: TestServer | undefined;
    let exchange: FakeExchange;
    let database: Awaited<ReturnType<typeof freshTimescaleDatabase>>;

    beforeAll(async () => {
      exchange = await startFakeExchange();
      const env: Record<string, string> = linkedEnv(exchange.url);
      if (backend === 'timescaledb') {
        database = await freshTimescaleDatabase('orders', 'concurrent orders on postgres.js');
        if (!database) return;
        env.DATABASE_URL = database.url;
      }
      server = await startTestServer({ clock: { now: () => now }, env });
      await until(() => server!.gateway?.connected, 'gateway connected');
    }, 120_000);
    afterAll(async () => {
      await server?.close();
      await exchange?.close();
      await database?.drop();
    });

    it('never over-commits cash or quantity, and the final ledger adds up', async (ctx) => {
      if (!server) return ctx.skip();
      const s = server;
      const t = `conc_${backend}`;
      expect((await s.request(`/v1/accounts/${t}/cash`, { method: 'POST', json: { amount: '1000.00' } })).status).toBe(200);
      const long = { id: `${t}-long`, price: 3000, quantity: 5, direction: 'buy', delivery_day: day, delivery_hour: 10, trader_id: t, execution_time: '2026-12-01T10:00:00Z' };
      expect((await s.request('/v1/trades', { method: 'POST', json: long })).status).toBe(200);

      const random = prng(42);
      const bodies = Array.from({ length: 200 }, (_, i) => i % 4 === 3
        ? { trader_id: t, side: 'sell', type: 'limit', delivery_day: day, delivery_hour: 10, quantity: 0.5, limit_price: 3500 }
        : { trader_id: t, side: 'buy', type: 'limit', delivery_day: day, delivery_hour: 8 + (i % 3), quantity: Math.round(1 + random() * 29) / 10, limit_price: Math.round(1000 + random() * 5000) });
      const buyValue = bodies.filter((b) => b.side === 'buy').reduce((sum, b) => sum + b.quantity * b.limit_price / 100, 0);
      expect(buyValue).toBeGreaterThan(2000); // worth more than twice the balance

      const results = await Promise.all(bodies.map(async (body) => {
        const res = await s.request('/v1/orders', { method: 'POST', json: body });
        return { body, status: res.status, json: await jsonOf(res) };
      }));
      const statuses = new Set(results.map((r) => r.status));
      expect([...statuses].every((x) => x === 201 || x === 422), JSON.stringify(results.find((r) => r.status !== 201 && r.status !== 422)?.json)).toBe(true);
      const accepted = results.filter((r) => r.status === 201);
      const acceptedBuys = accepted.filter((r) => r.body.side === 'buy');
      const held = acceptedBuys.reduce((sum, r) => sum + Number(r.json.held), 0);
      expect(held).toBeLessThanOrEqual(1000);
      expect(acceptedBuys.length).toBeGreaterThan(0);
      expect(results.filter((r) => r.status === 422 && r.body.side === 'buy').length).toBeGreaterThan(0);
      // 5 MW long, no short limit: exactly ten sells of 0.5 MW fit
      expect(accepted.filter((r) => r.body.side === 'sell')).toHaveLength(10);
      const balance = await jsonOf(await s.request(`/v1/balance?trader_id=${t}`));
      expect(Number(balance.held)).toBeCloseTo(held, 2);
      expect(Number(balance.available)).toBeCloseTo(1000 - held, 2);
      // Cash only went down during the burst: every refused buy needed more than what is left now.
      for (const r of results.filter((x) => x.status === 422 && x.body.side === 'buy')) {
        const needed = Number(/needs ([\d.]+) EUR/.exec(r.json.message)![1]);
        expect(needed).toBeGreaterThan(Number(balance.available));
      }

      // The exchange acknowledges every accepted order exactly once; then fills, partial fills and cancels.
      await until(() => accepted.every((r) => exchange.orders.get(r.json.id)?.status === 'new'), 'every order acknowledged', 60_000);
      for (const r of accepted) expect(exchange.newCount(r.json.id)).toBe(1);
      await until(async () => (await s.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE trader_id = ${t} AND status = 'pending_new'`))[0]!.n === 0, 'acks applied', 60_000);
      accepted.forEach((r, i) => {
        const price = r.body.side === 'buy' ? (r.body.limit_price - 100 * (i % 5)) / 100 : 36;
        if (i % 3 === 0) exchange.fill(r.json.id, r.body.quantity, price);
        else if (i % 3 === 1 && r.body.quantity >= 0.2) exchange.fill(r.json.id, Math.round(r.body.quantity * 5) / 10, price);
      });
      const cancels = await Promise.all(accepted.filter((_r, i) => i % 3 === 1).map((r) => s.request(`/v1/orders/${r.json.id}/cancel`, { method: 'POST' })));
      for (const c of cancels) expect([202, 409]).toContain(c.status);
      await until(async () => (await s.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM orders WHERE trader_id = ${t} AND status LIKE 'pending%'`))[0]!.n === 0, 'all answers applied', 60_000);
      await until(async () => (await s.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM order_fills f JOIN orders o ON o.id = f.order_id WHERE o.trader_id = ${t}`))[0]!.n === [...exchange.orders.values()].filter((o) => o.trader_id === t && o.filled > 0).length, 'fills applied', 60_000);

      expect(await expectBooksAddUp(s.deps.db, t)).toBeGreaterThan(0);
    }, 180_000);
  });
}
