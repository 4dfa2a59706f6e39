// Orders against the real exchange simulator (scripts/exchange-sim.ts, seeded) over the real
// websocket: a marketable buy fills at the book and is booked once, a resting one is canceled.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startExchangeSim, type ExchangeSim } from '../scripts/exchange-sim';
import { sql } from '../server/db';
import { dayBounds, localDay } from '../server/time/market-time';
import { jsonOf, startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

let sim: ExchangeSim;
let server: TestServer;
const tz = 'Europe/Berlin';
const tomorrow = localDay(dayBounds(localDay(new Date(), tz), tz).end, tz);

beforeAll(async () => {
  sim = await startExchangeSim({ port: 0, rate: 0, seed: 7, idPrefix: `os${Math.random().toString(36).slice(2, 7)}` });
  server = await startTestServer({ env: { EXCHANGE_WS_URL: sim.url, FEED_BACKOFF_MIN_MS: '20', FEED_BACKOFF_MAX_MS: '200', FEED_BATCH_MS: '2' } });
  await until(() => server.gateway?.connected, 'gateway connected to the simulator', 30_000);
}, 60_000);
afterAll(async () => {
  await server?.close();
  await sim?.close();
});

it('a marketable buy fills at the simulator\'s book, a resting one is canceled; the ledger adds up', async () => {
  const t = 'sim_t';
  expect((await server.request(`/v1/accounts/${t}/cash`, { method: 'POST', json: { amount: '100000.00' } })).status).toBe(200);
  const place = async (limit: number) => jsonOf(await server.request('/v1/orders', { method: 'POST', json: { trader_id: t, side: 'buy', type: 'limit', delivery_day: tomorrow, delivery_hour: 12, quantity: 1, limit_price: limit, time_in_force: 'gtc' } }));
  const crossing = await place(999_900);
  const resting = await place(-999_900);
  const filled = await until(async () => { const o = await jsonOf(await server.request(`/v1/orders/${crossing.id}`)); return o.status === 'filled' && o; }, 'the crossing buy filled', 30_000);
  expect(filled.fills).toHaveLength(1);
  expect(filled.held).toBe('0.00');
  const price = filled.fills[0].price as number; // eurocent/MWh
  expect(Math.abs(price)).toBeLessThan(999_900);
  await until(async () => (await jsonOf(await server.request(`/v1/orders/${resting.id}`))).status === 'new', 'the resting buy acknowledged', 30_000);
  expect((await server.request(`/v1/orders/${resting.id}/cancel`, { method: 'POST' })).status).toBe(202);
  await until(async () => (await jsonOf(await server.request(`/v1/orders/${resting.id}`))).status === 'canceled', 'canceled', 30_000);
  const balance = await jsonOf(await server.request(`/v1/balance?trader_id=${t}`));
  expect(balance).toMatchObject({ held: '0.00', total: ((10_000_000 - price) / 100).toFixed(2) });
  // the fill's report and its deal confirmation made one trade
  await until(async () => (await server.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM trades WHERE id = ${filled.fills[0].trade_id}`))[0]!.n === 1, 'the trade');
  await server.gateway!.drained();
  const rows = await server.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM trades WHERE trader_id = ${t}`);
  expect(rows[0]!.n).toBe(1);
});
