// Gate closure: continuous intraday trading of a product closes shortly before its delivery
// starts (5 minutes by default). The exchange simulator trades only open products; the feed
// flags, stores and counts a deal executed after its product's gate closure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeSim, type ExchangeSim } from '../scripts/exchange-sim';
import { loadConfig } from '../server/config';
import { sql } from '../server/db';
import { checkFeedDeal } from '../server/feed/message';
import { startTestServer, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

const tz = 'Europe/Berlin';

describe('exchange simulator', () => {
  const sims: ExchangeSim[] = [];
  afterAll(async () => { for (const s of sims) await s.close(); });

  /** Deals the simulator makes at `now`, parsed the way the feed parses them. */
  async function dealsAt(now: string, count = 600, gateClosureMinutes?: number) {
    const sim = await startExchangeSim({ rate: 0, now: () => new Date(now), gateClosureMinutes, quarterHours: 0.3 });
    sims.push(sim);
    return Array.from({ length: count }, () => {
      const deal = sim.makeDeal();
      const checked = checkFeedDeal(deal, tz, 'deal_confirmation', gateClosureMinutes);
      if (!checked.ok) throw new Error(`${JSON.stringify(deal)}: ${checked.message}`);
      return { deal, row: checked.value };
    });
  }

  it('does trade only products whose gate has not closed yet when it is evening', async () => {
    const now = '2023-02-06T18:13:00Z'; // 19:13 in Berlin
    const deals = await dealsAt(now);
    for (const { deal, row } of deals) {
      expect(row.after_gate_closure, JSON.stringify(deal)).toBe(false);
      expect(row.delivery_start.getTime() - 5 * 60_000, JSON.stringify(deal)).toBeGreaterThan(Date.parse(now));
    }
    expect(new Set(deals.map((d) => d.deal.delivery_day))).toEqual(new Set(['2023-02-06']));
    // The 19:00 hour itself has closed; only its later quarter hours are still open.
    const nineteen = deals.filter((d) => d.deal.delivery_hour.startsWith('19'));
    expect(nineteen.length).toBeGreaterThan(0);
    expect(new Set(nineteen.map((d) => d.deal.delivery_hour))).toEqual(new Set(['19:30-19:45', '19:45-20:00']));
    expect(deals.some((d) => d.deal.delivery_hour === '20-21')).toBe(true);
  });

  it('does trade tomorrow\'s products when every product of today has closed', async () => {
    const deals = await dealsAt('2023-02-06T22:58:00Z'); // 23:58 in Berlin
    expect(new Set(deals.map((d) => d.deal.delivery_day))).toEqual(new Set(['2023-02-07']));
    expect(deals.every((d) => !d.row.after_gate_closure)).toBe(true);
    // 00:00 tomorrow closed at 23:55: its first quarter hour and the hour are not traded.
    expect(deals.filter((d) => d.deal.delivery_hour.startsWith('00')).every((d) => !['00-01', '00:00-00:15'].includes(d.deal.delivery_hour))).toBe(true);
  });

  it('does trade the second 02:00 hour but not the first one once that has closed, on the autumn day', async () => {
    const now = '2023-10-29T00:30:00Z'; // 02:30 (+02:00), the first 02:00 hour
    const deals = await dealsAt(now);
    expect(deals.every((d) => !d.row.after_gate_closure && d.row.delivery_start.getTime() - 5 * 60_000 > Date.parse(now))).toBe(true);
    const periods = new Set(deals.map((d) => d.deal.delivery_hour).filter((p) => p.startsWith('02')));
    expect(periods.has('02-03B')).toBe(true);
    expect([...periods].filter((p) => p.endsWith('A'))).toEqual(periods.has('02:45-03:00A') ? ['02:45-03:00A'] : []);
  });

  it('does honour another gate closure', async () => {
    const now = '2023-02-06T18:13:00Z'; // 19:13; with 60 minutes, 20:00 has closed too
    const deals = await dealsAt(now, 400, 60);
    expect(deals.every((d) => d.row.delivery_start.getTime() - 60 * 60_000 > Date.parse(now))).toBe(true);
    expect(deals.some((d) => d.deal.delivery_hour === '20-21')).toBe(false);
  });
});

describe('feed and gate closure', () => {
  let server: TestServer;
  let exchange: ExchangeSim;
  beforeAll(async () => {
    exchange = await startExchangeSim({ rate: 0 });
    server = await startTestServer({ env: { EXCHANGE_WS_URL: exchange.url, FEED_HEARTBEAT_MS: '1000' } });
    await exchange.waitForClients(1, 20_000);
  });
  afterAll(async () => {
    await server?.close();
    await exchange?.close();
  });

  const metric = async () => {
    const text = await (await server.request('/metrics')).text();
    const m = /^powerdesk_feed_after_gate_closure_total(?:\{\})? (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  };

  it('does store, flag and count a deal executed after its product\'s gate closure, once even when it is sent again', async () => {
    const before = await metric();
    const common = { price: 40, quantity: 1, direction: 'buy' as const, delivery_day: '2023-02-06', trader_id: 'gate_t' };
    // 08-09 starts 07:00Z: its gate closed at 06:55Z.
    exchange.sendDeal({ ...common, id: 'gate-open', delivery_hour: '08-09', execution_time: '2023-02-06T06:55:00Z' });
    exchange.sendDeal({ ...common, id: 'gate-late', delivery_hour: '08-09', execution_time: '2023-02-06T06:57:00Z' });
    exchange.sendDeal({ ...common, id: 'gate-late', delivery_hour: '08-09', execution_time: '2023-02-06T06:57:00Z' }); // re-sent
    // 08:15-08:30 starts 07:15Z: executed at 06:58Z it was still open.
    exchange.sendDeal({ ...common, id: 'gate-quarter', delivery_hour: '08:15-08:30', execution_time: '2023-02-06T06:58:00Z' });
    exchange.sendDeal({ ...common, id: 'gate-during', delivery_hour: '08:15-08:30', execution_time: '2023-02-06T07:20:00Z' });
    const flags = async () => new Map((await server.deps.db.query<{ id: string; after_gate_closure: boolean }>(sql`SELECT id, after_gate_closure FROM trades WHERE trader_id = 'gate_t'`)).map((r) => [r.id, r.after_gate_closure]));
    await until(async () => (await flags()).size === 4, 'the four deals stored');
    expect(Object.fromEntries(await flags())).toEqual({ 'gate-open': false, 'gate-late': true, 'gate-quarter': false, 'gate-during': true });
    await until(async () => (await metric()) === before + 2, 'the metric counting the two late deals');
    // Late deals are trades like any other: the API shows them.
    const listed = (await (await server.request('/v1/trades?trader_id=gate_t')).json()) as { id: string }[];
    expect(listed.map((t) => t.id).sort()).toEqual(['gate-during', 'gate-late', 'gate-open', 'gate-quarter']);
  });

  it('does refuse a gate closure that is not a number of minutes from 0 to 1440, naming the variable', () => {
    expect(() => loadConfig({ FEED_GATE_CLOSURE_MINUTES: '-1' })).toThrow(/FEED_GATE_CLOSURE_MINUTES: must be a number of minutes from 0 to 1440/);
    expect(() => loadConfig({ FEED_GATE_CLOSURE_MINUTES: 'soon' })).toThrow(/FEED_GATE_CLOSURE_MINUTES: must be a number of minutes/);
    expect(loadConfig({}).FEED_GATE_CLOSURE_MINUTES).toBe(5);
    expect(loadConfig({ FEED_GATE_CLOSURE_MINUTES: '0' }).FEED_GATE_CLOSURE_MINUTES).toBe(0);
  });
});
