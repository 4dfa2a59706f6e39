import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startExchangeSim } from '../scripts/exchange-sim';
import { startMarketSim } from '../scripts/market-sim';
import { sql } from '../server/db';
import { ReferencePoller, type PollerOptions } from '../server/market-data/poller';
import { startTestServer, trade, type TestServer } from './helpers/server';
import { until } from './helpers/wait';

let server: TestServer;
const cleanup: (() => Promise<unknown>)[] = [];
beforeAll(async () => { server = await startTestServer(); });
afterEach(async () => { while (cleanup.length) await cleanup.pop()!().catch(() => {}); });
afterAll(async () => { await server?.close(); });

type Answer = { status: number; body?: unknown; delayMs?: number };

/** A provider whose answer per delivery_hour the test sets; it logs every request. */
async function provider(answer: (day: string, hour: string) => Answer) {
  const log: { day: string; hour: string }[] = [];
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const day = url.searchParams.get('delivery_day')!;
    const hour = url.searchParams.get('delivery_hour')!;
    log.push({ day, hour });
    const a = url.pathname === '/v1/reference-price' ? answer(day, hour) : { status: 404 };
    const t = setTimeout(() => { res.writeHead(a.status, { 'content-type': 'application/json' }); res.end(a.body === undefined ? '{"message":"no deals yet"}' : JSON.stringify(a.body)); }, a.delayMs ?? 0);
    res.on('close', () => clearTimeout(t));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise<void>((r) => { srv.closeAllConnections(); srv.close(() => r()); }));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/v1`, log };
}

function manualClock(iso: string) {
  let t = Date.parse(iso);
  return { now: () => new Date(t), advance: (ms: number) => { t += ms; } };
}

function poller(options: Omit<PollerOptions, 'db' | 'tz'>) {
  const p = new ReferencePoller({ db: server.deps.db, tz: 'Europe/Berlin', concurrency: 30, retryMinMs: 1000, ...options });
  cleanup.push(() => p.close());
  return p;
}

async function round(p: ReferencePoller) {
  await p.tick();
  await p.settled();
}

async function stored(day: string) {
  return server.deps.db.query<{ hour: number; value: string; unit: string; last_update: Date }>(sql`
    SELECT extract(hour FROM delivery_start AT TIME ZONE 'Europe/Berlin')::int AS hour, value, unit, last_update
    FROM reference_prices WHERE delivery_day = ${day} ORDER BY delivery_start, last_update`);
}

describe('reference-price poller', () => {
  it('stores values, stores nothing for 404 and null, and retries 500 and slow answers when the provider misbehaves', async () => {
    const day = '2024-06-12';
    let recovered = false;
    const p0 = await provider((d, hour) => {
      if (hour === '08-09') return { status: 200, body: { delivery_day: d, delivery_hour: hour, value: 87.35, unit: 'EUR/MWh', last_update: '2024-06-12T06:15:45Z' } };
      if (hour === '10-11') return { status: 200, body: { delivery_day: d, delivery_hour: hour, value: null, unit: 'EUR/MWh', last_update: null } };
      if (hour === '11-12') return recovered ? { status: 200, body: { delivery_day: d, delivery_hour: hour, value: -12.5, unit: 'EUR/MWh', last_update: '2024-06-12T08:00:00Z' } } : { status: 500, body: { message: 'boom' } };
      if (hour === '12-13') return { status: 200, delayMs: recovered ? 0 : 10_000, body: { delivery_day: d, delivery_hour: hour, value: 101, unit: 'EUR/MWh', last_update: '2024-06-12T08:01:00Z' } };
      if (hour === '13-14') return { status: 200, body: { delivery_day: d, delivery_hour: hour, unit: 'EUR/MWh' } }; // value missing
      return { status: 404 };
    });
    const clock = manualClock('2024-06-12T08:30:00Z'); // 10:30 in Berlin
    const p = poller({ url: p0.url, clock, timeoutMs: 1500 });
    await round(p);
    expect(p0.log.filter((r) => r.day === day)).toHaveLength(24);
    expect(p0.log.slice(0, 2).map((r) => r.hour)).toEqual(['10-11', '11-12']); // current and next hour first
    expect((await stored(day)).map((r) => [r.hour, r.value])).toEqual([[8, '87.3500']]);

    recovered = true;
    clock.advance(2000); // past the first retry (1 s ± 25 %), far before the 10-minute refresh
    const before = p0.log.length;
    await round(p);
    expect(p0.log.slice(before).map((r) => r.hour).sort()).toEqual(['11-12', '12-13']);
    expect((await stored(day)).map((r) => [r.hour, r.value])).toEqual([[8, '87.3500'], [11, '-12.5000'], [12, '101.0000']]);

    const res = await server.request(`/v1/reference-prices?delivery_day=${day}`);
    const body = await res.json() as { hours: { label: string; value: number | null; last_update: string | null }[] };
    expect(body.hours).toHaveLength(24);
    const byLabel = Object.fromEntries(body.hours.map((h) => [h.label, h]));
    expect(byLabel['08-09']).toMatchObject({ value: 87.35, last_update: '2024-06-12T06:15:45.000Z' });
    expect(byLabel['09-10']!.value).toBeNull();
    expect(byLabel['10-11']!.value).toBeNull();
    expect(byLabel['13-14']!.value).toBeNull();
    expect(byLabel['11-12']!.value).toBe(-12.5);
  });

  it('keeps each observed value and shows the latest when the provider updates an hour', async () => {
    const day = '2024-06-13';
    let version = 1;
    const p0 = await provider((d, hour) => (hour === '15-16'
      ? { status: 200, body: { delivery_day: d, delivery_hour: hour, value: version === 1 ? 70 : 72.5, unit: 'EUR/MWh', last_update: version === 1 ? '2024-06-13T09:00:00Z' : '2024-06-13T09:10:00Z' } }
      : { status: 404 }));
    const clock = manualClock('2024-06-13T09:05:00Z');
    const p = poller({ url: p0.url, clock, refreshMs: 600_000 });
    await round(p);
    clock.advance(600_000);
    await round(p); // same last_update: nothing new
    expect(await stored(day)).toHaveLength(1);
    version = 2;
    clock.advance(600_000);
    await round(p);
    expect((await stored(day)).map((r) => r.value)).toEqual(['70.0000', '72.5000']);
    const body = await (await server.request(`/v1/reference-prices?delivery_day=${day}`)).json() as { hours: { label: string; value: number | null; last_update: string | null }[] };
    expect(body.hours.find((h) => h.label === '15-16')).toMatchObject({ value: 72.5, last_update: '2024-06-13T09:10:00.000Z' });
  });

  it('stays within the per-minute and per-hour limits when many hours are due', async () => {
    const p0 = await provider(() => ({ status: 404 }));
    const clock = manualClock('2024-06-14T08:30:00Z');
    const p = poller({ url: p0.url, clock, perMinute: 5, perHour: 8, refreshMs: 60_000 });
    await round(p);
    expect(p0.log).toHaveLength(5);
    await round(p);
    expect(p0.log).toHaveLength(5); // same minute: no room
    clock.advance(60_000);
    await round(p);
    expect(p0.log).toHaveLength(8); // the hour's 8 are used up
    clock.advance(60_000);
    await round(p);
    expect(p0.log).toHaveLength(8);
    expect(p.used()).toEqual({ minute: 0, hour: 8 });
  });

  it('polls the hours of tomorrow that have trades when trades exist for them', async () => {
    await server.request('/v1/trades', { method: 'POST', json: trade({ id: 'md-1', trader_id: 'md', delivery_day: '2024-06-16', delivery_hour: 17 }) });
    const p0 = await provider(() => ({ status: 404 }));
    const p = poller({ url: p0.url, clock: manualClock('2024-06-15T08:30:00Z') });
    await round(p);
    expect(p0.log.filter((r) => r.day === '2024-06-16')).toEqual([{ day: '2024-06-16', hour: '17-18' }]);
    expect(p0.log.filter((r) => r.day === '2024-06-15')).toHaveLength(24);
  });

  it('asks for "02-03A" and "02-03B" when the day has 25 hours', async () => {
    const p0 = await provider(() => ({ status: 404 }));
    const p = poller({ url: p0.url, clock: manualClock('2024-10-27T08:30:00Z') });
    await round(p);
    const hours = p0.log.map((r) => r.hour);
    expect(hours).toHaveLength(25);
    expect(hours).toEqual(expect.arrayContaining(['02-03A', '02-03B', '01-02', '03-04']));
  });
});

describe('poller inside the server', () => {
  it('fills GET /v1/reference-prices for today when the server runs with MARKET_DATA_URL', async () => {
    const p0 = await provider((d, hour) => (hour.startsWith('07-') ? { status: 200, body: { delivery_day: d, delivery_hour: hour, value: 64.2, unit: 'EUR/MWh', last_update: new Date().toISOString() } } : { status: 404 }));
    const inner = await startTestServer({ db: server.deps.db, env: { MARKET_DATA_URL: p0.url } });
    cleanup.push(() => inner.close());
    const seven = await until(async () => {
      const body = await (await inner.request('/v1/reference-prices')).json() as { hours: { label: string; value: number | null }[] };
      return body.hours.find((h) => h.label === '07-08' && h.value !== null);
    }, "today's 07-08 value");
    expect(seven.value).toBe(64.2);
    expect(p0.log.length).toBeLessThanOrEqual(50); // the first minute's share of the limit
  });
});

describe('market-data simulator', () => {
  it('serves the VWAP of the exchange simulator\'s hourly deals and 404 for hours without deals', async () => {
    const exchange = await startExchangeSim();
    cleanup.push(() => exchange.close());
    const market = await startMarketSim({ exchange, updateMs: 0 });
    cleanup.push(() => market.close());
    exchange.sendDeal({ delivery_day: '2024-06-17', delivery_hour: '08-09', price: 100, quantity: 1 });
    exchange.sendDeal({ delivery_day: '2024-06-17', delivery_hour: '08-09', price: 40, quantity: 3 });
    exchange.sendDeal({ delivery_day: '2024-06-17', delivery_hour: '08:15-08:30', price: 999, quantity: 3 }); // quarter hour: another product
    const res = await fetch(`${market.url}/reference-price?delivery_day=2024-06-17&delivery_hour=08-09`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ delivery_day: '2024-06-17', delivery_hour: '08-09', value: 55, unit: 'EUR/MWh' });
    expect((await fetch(`${market.url}/reference-price?delivery_day=2024-06-17&delivery_hour=09-10`)).status).toBe(404);
    expect((await fetch(`${market.url}/reference-price?delivery_day=2024-06-17`)).status).toBe(400);

    const p = poller({ url: market.url, clock: manualClock('2024-06-17T06:30:00Z') });
    await round(p);
    await until(async () => (await stored('2024-06-17')).length === 1, 'the simulated value stored');
    expect((await stored('2024-06-17')).map((r) => [r.hour, r.value])).toEqual([[8, '55.0000']]);
  });
});
