// PnL reports on a hand-computed dataset (Europe/Berlin), through the real HTTP API and database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../server/auth/users';
import { sql } from '../server/db';
import { parsePeriod } from '../server/time/market-time';
import type { DeskReport, PnlReport } from '../server/live/events';
import type { TradeRow } from '../server/trades/normalize';
import { recallDeals } from '../server/trades/recalls';
import { ingestTrades } from '../server/trades/store';
import { basic, startTestServer, trade, type TestServer } from './helpers/server';

const tz = 'Europe/Berlin';
let server: TestServer;

/** A feed deal (period string, EUR/MWh decimals) straight through the real ingestion. */
function feedRow(id: string, trader: string, day: string, period: string, direction: 'buy' | 'sell', price: string, quantity: string): TradeRow {
  const { start, end } = parsePeriod(day, period, tz);
  return { id, trader_id: trader, direction, price, quantity, delivery_day: day, delivery_start: start, delivery_end: end, execution_time: new Date('2023-01-01T00:00:00Z') };
}

async function post(body: unknown) {
  const res = await server.request('/v1/trades/batch', { method: 'POST', json: body });
  expect(res.status).toBe(200);
  const result = (await res.json()) as { stored: number };
  expect(result.stored).toBe((body as unknown[]).length);
}

async function report(query: string, auth?: string) {
  return server.request(`/v1/reports/pnl?${query}`, auth ? { auth } : {});
}

const reportBody = async (res: Response | Promise<Response>) => (await (await res).json()) as PnlReport;
const errorBody = async (res: Response) => (await res.json()) as { status_code: number; message: string };

async function addReference(start: string, end: string, day: string, value: string, lastUpdate: string) {
  await server.deps.db.query(sql`INSERT INTO reference_prices (delivery_start, delivery_end, delivery_day, value, unit, last_update) VALUES (${start}::timestamptz, ${end}::timestamptz, ${day}::date, ${value}::numeric, 'euro', ${lastUpdate}::timestamptz)`);
}

beforeAll(async () => {
  server = await startTestServer();
  const day = '2023-02-07';
  // rep_a, 08-09: buy 10 MW @ 20.50, sell 4 MW @ 30.00, sell 2.5 MW @ 31.25 (API, eurocent).
  await post([
    trade({ id: 'a1', trader_id: 'rep_a', delivery_day: day, delivery_hour: 8, direction: 'buy', quantity: 10, price: 2050 }),
    trade({ id: 'a2', trader_id: 'rep_a', delivery_day: day, delivery_hour: 8, direction: 'sell', quantity: 4, price: 3000 }),
    trade({ id: 'a3', trader_id: 'rep_a', delivery_day: day, delivery_hour: 8, direction: 'sell', quantity: 2.5, price: 3125 }),
    // rep_b, 13-14: buy 1 MW @ 45.50
    trade({ id: 'b1', trader_id: 'rep_b', delivery_day: day, delivery_hour: 13, direction: 'buy', quantity: 1, price: 4550 }),
    // DST spring: 03-04 exists, 02-03 does not
    trade({ id: 's1', trader_id: 'rep_dst', delivery_day: '2023-03-26', delivery_hour: 3, direction: 'buy', quantity: 1, price: 1000 }),
  ]);
  // rep_a, 13-14 from the feed: quarter hours weigh a quarter of an hour.
  await ingestTrades(server.deps.db, [
    feedRow('q1', 'rep_a', day, '13:00-13:15', 'buy', '40.00', '8'),
    feedRow('q2', 'rep_a', day, '13:15-13:30', 'sell', '44.00', '8'),
    feedRow('q3', 'rep_a', day, '13-14', 'sell', '50.00', '1'),
    // DST autumn: the repeated hour, first (A) and second (B) occurrence
    feedRow('f1', 'rep_dst', '2023-10-29', '02-03A', 'sell', '50', '2'),
    feedRow('f2', 'rep_dst', '2023-10-29', '02-03B', 'buy', '30', '1'),
  ], 'feed', tz, new Date());
  // 13-14 on 2023-02-07 is 12:00Z; two observations, the later one counts.
  await addReference('2023-02-07T12:00:00Z', '2023-02-07T13:00:00Z', day, '40', '2023-02-07T09:00:00Z');
  await addReference('2023-02-07T12:00:00Z', '2023-02-07T13:00:00Z', day, '45.5', '2023-02-07T09:10:00Z');
  // Materialise what is there, so later deals for these days take the refresh path.
  await server.deps.pnlFreshness!.materialiseHistory();
  await addUser(server.deps.db, { username: 'alice', password: 'alice-password', role: 'trader', trader_id: 'rep_a' });
  await addUser(server.deps.db, { username: 'ana', password: 'analyst-password', role: 'analyst' });
});
afterAll(async () => { await server?.close(); });

describe('GET /v1/reports/pnl', () => {
  it('computes every hour of a normal day from buys and sells in the same hour and quarter-hour products', async () => {
    const res = await report('trader_id=rep_a&delivery_day=2023-02-07');
    expect(res.status).toBe(200);
    const body = await reportBody(res);
    expect(body).toMatchObject({ trader_id: 'rep_a', delivery_day: '2023-02-07', timezone: tz });
    expect(body.hours).toHaveLength(24);
    expect(body.hours.map((h) => h.label).slice(0, 3)).toEqual(['00-01', '01-02', '02-03']);
    // 08-09: sells 120 + 78.125, buys 205 -> -6.875, rounded to -6.88
    expect(body.hours[8]).toEqual({
      label: '08-09', delivery_start: '2023-02-07T07:00:00.000Z', delivery_end: '2023-02-07T08:00:00.000Z',
      trades: 3, buy_mw: 10, sell_mw: 6.5, pnl_eur: -6.88, net_mw: 3.5, vwap_buy: 20.5, vwap_sell: 30.4808,
      ref_price: null, mtm_pnl_eur: null, vs_ref_eur: null,
    });
    // 13-14: buy 8 MW x 0.25 h @ 40 = 80; sell 8 x 0.25 @ 44 = 88 and 1 x 1 @ 50 = 50 -> 58.
    // Reference 45.5: mtm = 58 + (2 - 3) MWh x 45.5 = 12.5; vs ref = (138 - 3 x 45.5) + (2 x 45.5 - 80) = 12.5
    expect(body.hours[13]).toEqual({
      label: '13-14', delivery_start: '2023-02-07T12:00:00.000Z', delivery_end: '2023-02-07T13:00:00.000Z',
      trades: 3, buy_mw: 8, sell_mw: 9, pnl_eur: 58, net_mw: -1, vwap_buy: 40, vwap_sell: 46,
      ref_price: 45.5, mtm_pnl_eur: 12.5, vs_ref_eur: 12.5,
      // The hour traded quarter hours: its products, in delivery order, add up to it.
      products: [
        { period: '13:00-13:15', delivery_start: '2023-02-07T12:00:00.000Z', delivery_end: '2023-02-07T12:15:00.000Z', trades: 1, buy_mw: 8, sell_mw: 0, pnl_eur: -80 },
        { period: '13-14', delivery_start: '2023-02-07T12:00:00.000Z', delivery_end: '2023-02-07T13:00:00.000Z', trades: 1, buy_mw: 0, sell_mw: 1, pnl_eur: 50 },
        { period: '13:15-13:30', delivery_start: '2023-02-07T12:15:00.000Z', delivery_end: '2023-02-07T12:30:00.000Z', trades: 1, buy_mw: 0, sell_mw: 8, pnl_eur: 88 },
      ],
    });
    expect(body.hours[0]).toMatchObject({ trades: 0, buy_mw: 0, sell_mw: 0, pnl_eur: 0, net_mw: 0, vwap_buy: null, vwap_sell: null, ref_price: null, mtm_pnl_eur: null });
    // Total: -6.875 + 58 = 51.125 -> 51.13; mark-to-market unknown since 08-09 has no reference
    expect(body.total).toEqual({
      trades: 6, buy_mw: 18, sell_mw: 15.5, pnl_eur: 51.13, net_mw: 2.5, vwap_buy: 23.75, vwap_sell: 35.3816,
      ref_price: null, mtm_pnl_eur: null, vs_ref_eur: null,
    });
  });

  it('marks the total to market when every traded hour has a reference price', async () => {
    const body = await reportBody(report('trader_id=rep_b&delivery_day=2023-02-07'));
    expect(body.hours[13]).toMatchObject({ trades: 1, pnl_eur: -45.5, ref_price: 45.5, mtm_pnl_eur: 0, vs_ref_eur: 0 });
    expect(body.total).toMatchObject({ trades: 1, buy_mw: 1, pnl_eur: -45.5, mtm_pnl_eur: 0, vs_ref_eur: 0 });
  });

  it('lists 23 hours without 02-03 on the spring DST day', async () => {
    const body = await reportBody(report('trader_id=rep_dst&delivery_day=2023-03-26'));
    expect(body.hours).toHaveLength(23);
    expect(body.hours.map((h) => h.label).slice(0, 4)).toEqual(['00-01', '01-02', '03-04', '04-05']);
    expect(body.hours[2]).toMatchObject({ label: '03-04', delivery_start: '2023-03-26T01:00:00.000Z', trades: 1, buy_mw: 1, pnl_eur: -10 });
    expect(body.total).toMatchObject({ trades: 1, pnl_eur: -10 });
  });

  it('lists 25 hours with the repeated hour labelled by offset on the autumn DST day', async () => {
    const body = await reportBody(report('trader_id=rep_dst&delivery_day=2023-10-29'));
    expect(body.hours).toHaveLength(25);
    expect(body.hours[2]).toMatchObject({ label: '02-03 (+02:00)', delivery_start: '2023-10-29T00:00:00.000Z', trades: 1, sell_mw: 2, pnl_eur: 100 });
    expect(body.hours[3]).toMatchObject({ label: '02-03 (+01:00)', delivery_start: '2023-10-29T01:00:00.000Z', trades: 1, buy_mw: 1, pnl_eur: -30 });
    expect(body.hours[4]).toMatchObject({ label: '03-04', trades: 0 });
    expect(body.total).toMatchObject({ trades: 2, buy_mw: 1, sell_mw: 2, pnl_eur: 70 });
  });

  it('does list the products of the second 02:00 hour under that hour, and none under an hour of plain hours', async () => {
    await ingestTrades(server.deps.db, [
      feedRow('pq1', 'rep_q', '2023-10-29', '02-03B', 'sell', '60', '1'),
      feedRow('pq2', 'rep_q', '2023-10-29', '02:15-02:30B', 'buy', '40', '4'),
      feedRow('pq3', 'rep_q', '2023-10-29', '02-03A', 'buy', '10', '1'),
    ], 'feed', tz, new Date());
    const body = await reportBody(report('trader_id=rep_q&delivery_day=2023-10-29'));
    expect(body.hours[2]).toMatchObject({ label: '02-03 (+02:00)', trades: 1, pnl_eur: -10 });
    expect(body.hours[2]!.products).toBeUndefined();
    expect(body.hours[3]).toMatchObject({ label: '02-03 (+01:00)', trades: 2, buy_mw: 4, sell_mw: 1, pnl_eur: 20 });
    expect(body.hours[3]!.products!.map((p) => [p.period, p.trades, p.pnl_eur])).toEqual([['02-03B', 1, 60], ['02:15-02:30B', 1, -40]]);
    // A quarter hour the exchange recalled leaves the products with its hour's PnL.
    await server.deps.db.transaction((tx) => recallDeals(tx, [{ id: 'pq2', reason: 'mistrade', recalledAt: new Date() }], 'feed', tz));
    await server.deps.pnlFreshness!.settled();
    const after = await reportBody(report('trader_id=rep_q&delivery_day=2023-10-29'));
    expect(after.hours[3]).toMatchObject({ trades: 1, pnl_eur: 60 });
    expect(after.hours[3]!.products).toBeUndefined();
  });

  it('returns a report of zeros for an unknown trader', async () => {
    const body = await reportBody(report('trader_id=nobody&delivery_day=2023-02-07'));
    expect(body.hours).toHaveLength(24);
    expect(body.hours.every((h) => h.trades === 0 && h.pnl_eur === 0)).toBe(true);
    expect(body.hours[13]).toMatchObject({ ref_price: 45.5, mtm_pnl_eur: 0 });
    expect(body.total).toEqual({ trades: 0, buy_mw: 0, sell_mw: 0, pnl_eur: 0, net_mw: 0, vwap_buy: null, vwap_sell: null, ref_price: null, mtm_pnl_eur: 0, vs_ref_eur: 0 });
  });

  it('reflects a late trade for a materialised day as soon as the trade is stored', async () => {
    const before = await reportBody(report('trader_id=rep_late&delivery_day=2023-02-07'));
    expect(before.total.trades).toBe(0);
    expect(await server.deps.pnlFreshness!.watermark()).toBeGreaterThan(Date.parse('2023-02-07T20:00:00Z'));
    const refreshes = server.deps.pnlFreshness!.stats.refreshes;
    const res = await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'late1', trader_id: 'rep_late', delivery_day: '2023-02-07', delivery_hour: 20, direction: 'sell', quantity: 3, price: 10001 }) });
    expect(res.status).toBe(200);
    const after = await reportBody(report('trader_id=rep_late&delivery_day=2023-02-07'));
    expect(after.hours[20]).toMatchObject({ trades: 1, sell_mw: 3, pnl_eur: 300.03 });
    expect(server.deps.pnlFreshness!.stats.refreshes).toBeGreaterThan(refreshes); // by the write, and again (a no-op) on its NOTIFY
  });

  it('reflects a trade for a day above the watermark through real-time aggregation', async () => {
    const res = await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'future1', trader_id: 'rep_future', delivery_day: '2030-01-10', delivery_hour: 0, direction: 'buy', quantity: 2, price: -500 }) });
    expect(res.status).toBe(200);
    const body = await reportBody(report('trader_id=rep_future&delivery_day=2030-01-10'));
    expect(body.hours[0]).toMatchObject({ trades: 1, buy_mw: 2, pnl_eur: 10, vwap_buy: -5 });
  });

  it('answers 400 naming the field when a parameter is wrong', async () => {
    const cases: [string, RegExp][] = [
      ['trader_id=rep_a&delivery_day=2023-02-30', /^delivery_day: must be a calendar date/],
      ['trader_id=rep_a', /^delivery_day: is required/],
      ['delivery_day=2023-02-07', /^trader_id: is required/],
      ['trader_id=rep_a&delivery_day=2023-02-07&hour=3', /unknown field "hour"/],
      ['trader_id=a%20b&delivery_day=2023-02-07', /^trader_id: must be printable ASCII/],
    ];
    for (const [query, message] of cases) {
      const res = await report(query);
      expect(res.status, query).toBe(400);
      const body = await errorBody(res);
      expect(body.status_code).toBe(400);
      expect(body.message, query).toMatch(message);
    }
  });

  it('gives a trader her own report and refuses another trader_id with 403', async () => {
    const alice = basic('alice', 'alice-password');
    const own = await report('delivery_day=2023-02-07', alice);
    expect(own.status).toBe(200);
    expect((await reportBody(own)).total.trades).toBe(6);
    const other = await report('trader_id=rep_b&delivery_day=2023-02-07', alice);
    expect(other.status).toBe(403);
    expect((await errorBody(other)).message).toMatch(/^trader_id: you may only see your own report/);
  });
});

describe('GET /v1/reports/desk', () => {
  it('sums every trader of the day for a desk role', async () => {
    const res = await server.request('/v1/reports/desk?delivery_day=2023-02-07', { auth: basic('ana', 'analyst-password') });
    expect(res.status).toBe(200);
    const body = (await res.json()) as DeskReport;
    expect(body.traders.map((t) => t.trader_id)).toEqual(['rep_a', 'rep_b', 'rep_late']);
    expect(body.traders[0]).toMatchObject({ trader_id: 'rep_a', trades: 6, pnl_eur: 51.13, mtm_pnl_eur: null });
    expect(body.traders[1]).toMatchObject({ trader_id: 'rep_b', trades: 1, pnl_eur: -45.5, mtm_pnl_eur: 0 });
    // 51.125 - 45.5 + 300.03 = 305.655 -> 305.66
    expect(body.total).toMatchObject({ trades: 8, buy_mw: 19, sell_mw: 18.5, pnl_eur: 305.66, mtm_pnl_eur: null });
  });

  it('refuses a trader with 403 and a bad day with 400', async () => {
    const res = await server.request('/v1/reports/desk?delivery_day=2023-02-07', { auth: basic('alice', 'alice-password') });
    expect(res.status).toBe(403);
    const bad = await server.request('/v1/reports/desk?delivery_day=yesterday');
    expect(bad.status).toBe(400);
    expect((await errorBody(bad)).message).toMatch(/^delivery_day:/);
  });
});

describe('OpenAPI', () => {
  it('describes both report endpoints with their query parameters', async () => {
    const doc = (await (await server.request('/v1/openapi.json')).json()) as { paths: Record<string, { get: { parameters: { name: string }[] } }> };
    expect(doc.paths['/v1/reports/pnl']!.get.parameters.map((p) => p.name)).toEqual(['trader_id', 'delivery_day']);
    expect(doc.paths['/v1/reports/desk']!.get.parameters.map((p) => p.name)).toEqual(['delivery_day']);
  });
});
