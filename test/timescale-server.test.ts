// Delivery products, gate closure and meter hour buckets on a real TimescaleDB server
// (TEST_TIMESCALE_URL), through the real app on the postgres.js adapter: the migrations (the
// partial index of sql/0071 needs an immutable time_bucket), the products of the PnL report and
// the real-hour meter buckets are the same SQL there as on the embedded database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { sql } from '../server/db';
import type { PnlReport } from '../server/live/events';
import { hoursOfDay } from '../server/time/market-time';
import { freshTimescaleDatabase } from './helpers/databases';
import { basic, startTestServer, trade, type TestServer } from './helpers/server';

describe('on a TimescaleDB server', () => {
  let database: Awaited<ReturnType<typeof freshTimescaleDatabase>>;
  let server: TestServer | undefined;

  beforeAll(async () => {
    database = await freshTimescaleDatabase('products', 'delivery products and meter hours on a TimescaleDB server');
    if (!database) return;
    server = await startTestServer({ env: { DATABASE_URL: database!.url } });
    await addUser(server.deps.db, { username: 'ts-service', password: 'ts-service-password', role: 'service' });
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  it('does round-trip quarter hours and the second 02:00 hour, and list them under their hours in the report', async (ctx) => {
    if (!server) return ctx.skip();
    expect(server.deps.db.kind).toBe('server');
    const trades = [
      trade({ id: 'ts-h', trader_id: 'ts_t', delivery_day: '2023-10-29', delivery_hour: 2, direction: 'buy', quantity: 1, price: 3000 }),
      trade({ id: 'ts-b', trader_id: 'ts_t', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02-03B', direction: 'sell', quantity: 2, price: 5000 }),
      trade({ id: 'ts-bq', trader_id: 'ts_t', delivery_day: '2023-10-29', delivery_hour: 2, delivery_period: '02:15-02:30B', direction: 'sell', quantity: 4, price: 4000 }),
    ];
    expect(await (await server.request('/v1/trades/batch', { method: 'POST', json: trades })).json()).toMatchObject({ stored: 3 });
    const listed = await (await server.request('/v1/trades?trader_id=ts_t')).json();
    expect(listed).toEqual(trades);
    expect(await (await server.request('/v1/trades/batch', { method: 'POST', json: listed })).json()).toMatchObject({ duplicates: 3 });
    const report = (await (await server.request('/v1/reports/pnl?trader_id=ts_t&delivery_day=2023-10-29')).json()) as PnlReport;
    expect(report.hours[2]).toMatchObject({ label: '02-03 (+02:00)', pnl_eur: -30 });
    expect(report.hours[2]!.products).toBeUndefined();
    expect(report.hours[3]).toMatchObject({ label: '02-03 (+01:00)', pnl_eur: 140 });
    expect(report.hours[3]!.products!.map((p) => [p.period, p.pnl_eur])).toEqual([['02-03B', 100], ['02:15-02:30B', 40]]);
    // The hours with products are found through the partial index of sql/0071.
    const [index] = await server.deps.db.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM pg_indexes WHERE indexname LIKE '%trades_trader_products%'`);
    expect(index!.n).toBeGreaterThan(0);
    const [flag] = await server.deps.db.query<{ late: boolean }>(sql`SELECT after_gate_closure AS late FROM trades WHERE id = 'ts-b'`);
    expect(flag!.late).toBe(false);
  });

  it('does bucket the NZ autumn day into 25 real hours with their offsets', async (ctx) => {
    if (!server) return ctx.skip();
    const auth = basic('ts-service', 'ts-service-password');
    const run = await (await server.request('/v1/algorithm-runs', { method: 'POST', json: { algorithm: 'm', version: '1', params: {}, input_from: '2018-04-01', input_to: '2018-04-02' }, auth })).json() as { id: number };
    const slots = hoursOfDay('2018-04-01', 'Pacific/Auckland');
    const lines = ['icp_id,matched_amount,read_date,read_time,buyer_seller', ...slots.flatMap((s) => ['00', '30'].map((m) => `ts1,1,2018-04-01,${String(s.hour).padStart(2, '0')}:${m}:00${s.offset},buyer`))];
    const upload = await (await server.request(`/v1/algorithm-runs/${run.id}/results`, { method: 'POST', body: `${lines.join('\n')}\n`, headers: { 'content-type': 'text/csv' }, auth })).json();
    expect(upload).toMatchObject({ stored: 50, rejected: 0 });
    expect((await server.request(`/v1/algorithm-runs/${run.id}/publish`, { method: 'POST', auth })).status).toBe(200);
    const buckets = await (await server.request('/v1/icps/ts1/matches?from=2018-04-01&to=2018-04-02&bucket=hour', { auth })).json() as { start: string; local: string; offset: string; intervals: number }[];
    expect(buckets).toHaveLength(25);
    expect(buckets.filter((b) => b.local.endsWith('T02:00')).map((b) => [b.start, b.offset])).toEqual([['2018-03-31T13:00:00Z', '+13:00'], ['2018-03-31T14:00:00Z', '+12:00']]);
    expect(buckets.every((b) => b.intervals === 2)).toBe(true);
  });
});
